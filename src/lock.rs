//! The per-run OS lock: one writer per run, released by the OS when the writer dies.
//!
//! The lock is an exclusive `flock` on `runs/<id>/lock`, taken through `std::fs::File::try_lock`.
//! The holder writes its pid, host and start time into the file so that a refused writer can
//! say who is in the way. Readers test the lock with a shared lock held for microseconds; a
//! writer therefore retries for a few milliseconds before it reports [`Error::RunLocked`].
//! A lock call that fails because the filesystem does not lock is never retried: it becomes
//! [`Error::LocksUnsupported`] (see `fs_check`).
//!
//! A `flock` belongs to the open file, and a child process that the holder forks shares it until
//! the child closes it (at `exec`, the descriptor being close-on-exec) or exits. So the lock can
//! outlive its recorded holder's hold: for a moment (a subprocess being started), or for as long
//! as a forked worker lives (a data loader forked by a training process that then died). A writer
//! that finds the lock held while the record names a holder that cannot be holding it — this
//! very process, which no longer does, or a process on this host that is gone — waits for such a
//! copy to go, up to [`INHERITED_WAIT`], and otherwise says what holds the run.

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Context, Error, Result};
use crate::fs_check;
use crate::state::LockHolder;

/// How long a writer keeps trying while the lock is held before it names the holder: a reader's
/// probe holds it for microseconds, and a process forked by the holder's process, between its
/// fork and its exec (where its copy of the lock file closes), for as long as a loaded machine
/// takes to get there: milliseconds or more (with a 10 ms wait, a CLI test on a loaded machine
/// saw a writer refused, most likely this way). A run really being written is reported after
/// this much.
const LOCKED_WAIT: Duration = Duration::from_millis(100);
/// The first pause between tries; each one doubles, up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(1);
const LONGEST_PAUSE: Duration = Duration::from_millis(8);

/// How long a writer waits for a lock held only through a copy of its recorded holder's file.
const INHERITED_WAIT: Duration = Duration::from_secs(2);

/// The run locks this process holds now, by lock file: the record of a lock held elsewhere in
/// this process names it as well as a copy inherited by a child does.
static HELD: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

fn held_here(path: &Path, change: Option<bool>) -> bool {
    let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
    let held = held.get_or_insert_with(HashSet::new);
    match change {
        Some(true) => held.insert(path.to_path_buf()),
        Some(false) => held.remove(path),
        None => held.contains(path),
    }
}

/// Whether `holder`, recorded in the lock file at `path`, cannot be what holds the lock now: this
/// process, which holds no lock on `path`, or a process of this host that is gone. Then a copy of
/// its open lock file, inherited by a process it forked, holds the lock.
fn holder_is_gone(path: &Path, holder: &LockHolder) -> bool {
    if holder.pid == 0 || holder.host != crate::sys::hostname() {
        return false;
    }
    if holder.pid == std::process::id() {
        return !held_here(path, None);
    }
    // Where there is no /proc, nothing can be said: the holder counts as alive.
    Path::new("/proc/self").exists() && !Path::new("/proc").join(holder.pid.to_string()).exists()
}

/// An exclusive lock on a run, held until dropped.
#[derive(Debug)]
pub(crate) struct RunLock {
    // Held for its lock; closing it releases the lock.
    _file: File,
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        held_here(&self.path, Some(false));
    }
}

impl RunLock {
    /// Takes the lock at `path` (creating the file), or fails with [`Error::RunLocked`] naming
    /// the holder.
    pub(crate) fn acquire(path: &Path, id: &str) -> Result<RunLock> {
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).at(path)?;
        let started = Instant::now();
        let mut pause = FIRST_PAUSE;
        let mut inherited_since: Option<Instant> = None;
        loop {
            match fs_check::try_lock(&file, false) {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if started.elapsed() < LOCKED_WAIT => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
                Err(TryLockError::WouldBlock) => {
                    let mut holder = read_holder(&mut file).unwrap_or_else(LockHolder::unknown);
                    if holder_is_gone(path, &holder) {
                        let since = *inherited_since.get_or_insert_with(Instant::now);
                        if since.elapsed() < INHERITED_WAIT {
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                        holder.task = Some(
                            "no longer: a process it forked (a data-loader worker, say) still has the run's lock \
                             file open, and holds the lock until it exits"
                                .into(),
                        );
                    }
                    return Err(Error::RunLocked { id: id.to_string(), holder });
                }
                Err(TryLockError::Error(error)) => {
                    fs_check::lock_failed(path, error)?;
                    break;
                }
            }
        }
        let record = serde_json::to_vec(&LockHolder::current()).unwrap_or_default();
        file.set_len(0).at(path)?;
        file.seek(SeekFrom::Start(0)).at(path)?;
        file.write_all(&record).at(path)?;
        held_here(path, Some(true));
        Ok(RunLock { _file: file, path: path.to_path_buf() })
    }

    /// Takes the lock without waiting, recording this process with `task`: for a reader that
    /// must briefly stand in for a dead writer (to let the database recover). A writer refused
    /// meanwhile is told what holds the run.
    pub(crate) fn acquire_quietly(path: &Path, task: &str) -> Result<RunLock> {
        // It writes (recovery): not where another node's writer cannot see the lock. The store
        // is three levels up: <store>/runs/<id>/lock.
        fs_check::ensure_locks_work(path.ancestors().nth(3).unwrap_or(path))?;
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).at(path)?;
        match fs_check::try_lock(&file, false) {
            Ok(()) => {
                let holder = LockHolder { task: Some(task.to_string()), ..LockHolder::current() };
                let record = serde_json::to_vec(&holder).unwrap_or_default();
                file.set_len(0).at(path)?;
                file.seek(SeekFrom::Start(0)).at(path)?;
                file.write_all(&record).at(path)?;
                held_here(path, Some(true));
                Ok(RunLock { _file: file, path: path.to_path_buf() })
            }
            Err(TryLockError::WouldBlock) => Err(Error::RunLocked { id: String::new(), holder: LockHolder::unknown() }),
            Err(TryLockError::Error(error)) => {
                fs_check::lock_failed(path, error)?;
                held_here(path, Some(true));
                Ok(RunLock { _file: file, path: path.to_path_buf() })
            }
        }
    }
}

/// Whether some process holds the lock at `path` right now. A missing file is not held.
pub(crate) fn is_held(path: &Path) -> Result<bool> {
    probe(path, || Ok(())).map(|(held, ())| held)
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
    match fs_check::try_lock(&file, true) {
        Ok(()) => {
            let value = read();
            file.unlock().at(path)?;
            Ok((false, value?))
        }
        Err(TryLockError::WouldBlock) => Ok((true, read()?)),
        // Opted in to unsafe locks: nobody can be seen holding it.
        Err(TryLockError::Error(error)) => {
            fs_check::lock_failed(path, error)?;
            Ok((false, read()?))
        }
    }
}
