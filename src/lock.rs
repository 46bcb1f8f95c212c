//! The per-run OS lock: one writer per run, released by the OS when the writer dies.
//!
//! The lock is an exclusive `flock` on `runs/<id>/lock`, taken through `std::fs::File::try_lock`.
//! The holder writes its pid, host and start time into the file so that a refused writer can
//! say who is in the way. Readers test the lock with a shared lock held for microseconds; a
//! writer therefore retries for a few milliseconds before it reports [`Error::RunLocked`].

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use crate::error::{Context, Error, Result};
use crate::state::LockHolder;

/// How long a writer keeps trying while the lock is held (by a reader's probe, most likely).
const RETRIES: u32 = 10;
const RETRY_PAUSE: Duration = Duration::from_millis(1);

/// An exclusive lock on a run, held until dropped.
#[derive(Debug)]
pub(crate) struct RunLock {
    // Held for its lock; closing it releases the lock.
    _file: File,
}

impl RunLock {
    /// Takes the lock at `path` (creating the file), or fails with [`Error::RunLocked`] naming
    /// the holder.
    pub(crate) fn acquire(path: &Path, id: &str) -> Result<RunLock> {
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).at(path)?;
        let mut tries = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if tries < RETRIES => {
                    tries += 1;
                    std::thread::sleep(RETRY_PAUSE);
                }
                Err(TryLockError::WouldBlock) => {
                    let holder = read_holder(&mut file).unwrap_or_else(LockHolder::unknown);
                    return Err(Error::RunLocked { id: id.to_string(), holder });
                }
                Err(TryLockError::Error(error)) => return Err(Error::io(path, error)),
            }
        }
        let record = serde_json::to_vec(&LockHolder::current()).unwrap_or_default();
        file.set_len(0).at(path)?;
        file.seek(SeekFrom::Start(0)).at(path)?;
        file.write_all(&record).at(path)?;
        Ok(RunLock { _file: file })
    }

    /// Takes the lock without waiting, recording this process with `task`: for a reader that
    /// must briefly stand in for a dead writer (to let the database recover). A writer refused
    /// meanwhile is told what holds the run.
    pub(crate) fn acquire_quietly(path: &Path, task: &str) -> Result<RunLock> {
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).at(path)?;
        match file.try_lock() {
            Ok(()) => {
                let holder = LockHolder { task: Some(task.to_string()), ..LockHolder::current() };
                let record = serde_json::to_vec(&holder).unwrap_or_default();
                file.set_len(0).at(path)?;
                file.seek(SeekFrom::Start(0)).at(path)?;
                file.write_all(&record).at(path)?;
                Ok(RunLock { _file: file })
            }
            Err(TryLockError::WouldBlock) => Err(Error::RunLocked { id: String::new(), holder: LockHolder::unknown() }),
            Err(TryLockError::Error(error)) => Err(Error::io(path, error)),
        }
    }
}

/// Whether some process holds the lock at `path` right now. A missing file is not held.
pub(crate) fn is_held(path: &Path) -> Result<bool> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(Error::io(path, error)),
    };
    match file.try_lock_shared() {
        Ok(()) => {
            file.unlock().at(path)?;
            Ok(false)
        }
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(error)) => Err(Error::io(path, error)),
    }
}

/// The holder recorded in a lock file, if it reads as one.
pub(crate) fn holder(path: &Path) -> Option<LockHolder> {
    read_holder(&mut File::open(path).ok()?)
}

fn read_holder(file: &mut File) -> Option<LockHolder> {
    let mut text = Vec::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(4096).read_to_end(&mut text).ok()?;
    parse_holder(&text)
}

/// The holder record in the bytes of a lock file, if they hold one.
pub(crate) fn parse_holder(bytes: &[u8]) -> Option<LockHolder> {
    serde_json::from_slice(bytes).ok()
}

/// Tests the lock at `path` and runs `read` while the outcome still holds: when no process
/// holds the lock, `read` runs under a shared lock, so no writer can start (and commit) until
/// it returns. Returns whether a process held the lock, and what `read` returned. A missing
/// file is not held.
pub(crate) fn probe<T>(path: &Path, read: impl FnOnce() -> Result<T>) -> Result<(bool, T)> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok((false, read()?)),
        Err(error) => return Err(Error::io(path, error)),
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let value = read();
            file.unlock().at(path)?;
            Ok((false, value?))
        }
        Err(TryLockError::WouldBlock) => Ok((true, read()?)),
        Err(TryLockError::Error(error)) => Err(Error::io(path, error)),
    }
}
