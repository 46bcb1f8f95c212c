//! The lock test of `runstore doctor`: an exclusive `flock` on a probe file beside the store must
//! exclude a second open file of this process and another process (this program, run as
//! `doctor --hold-lock FILE`), and the other process's lock must go when it exits. The probe
//! file is removed afterwards.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use runstore::{Error, LockCall, Store};

use crate::exit::Failure;
use crate::output;

/// What trying the locks showed; `None` where a step could not be tried.
#[derive(Default)]
pub struct Probe {
    pub excludes_same_process: Option<bool>,
    pub excludes_other_process: Option<bool>,
    pub released_at_exit: Option<bool>,
    /// Why the probe stopped early.
    pub error: Option<String>,
}

impl Probe {
    pub fn failed_exclusion(&self) -> bool {
        [self.excludes_same_process, self.excludes_other_process, self.released_at_exit].contains(&Some(false))
    }
}

/// The child's side of the probe: lock `path`, say so, hold it until stdin closes.
pub fn hold_lock(path: &Path) -> Result<(), Failure> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|error| Error::Io { path: path.to_path_buf(), source: error })?;
    match file.try_lock() {
        Ok(()) => output::stdout_line("locked")?,
        Err(error) => output::stdout_line(&format!("not locked: {error}"))?,
    }
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    Ok(())
}

/// Tries an exclusive lock on a probe file in `dir` as writers use locks. Returns what the
/// first lock call did and what exclusion it showed.
pub fn try_locks(store: &Store, dir: &Path) -> (LockCall, Probe) {
    let mut probe = Probe::default();
    let path = dir.join(format!(".runstore-doctor-{}.lock", std::process::id()));
    let open = || OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path);
    let (first, second) = match (open(), open()) {
        (Ok(first), Ok(second)) => (first, second),
        (Err(error), _) | (_, Err(error)) => {
            probe.error = Some(format!("cannot create a probe file in {}: {error}", dir.display()));
            return (LockCall::NotTried, probe);
        }
    };
    let call = match first.try_lock() {
        Ok(()) => LockCall::Worked,
        Err(TryLockError::Error(error)) => {
            probe.error = Some(format!("flock: {error}"));
            let _ = std::fs::remove_file(&path);
            return (error.raw_os_error().map_or(LockCall::NotTried, LockCall::Failed), probe);
        }
        Err(TryLockError::WouldBlock) => {
            probe.error = Some("the new probe file was locked by someone else".into());
            let _ = std::fs::remove_file(&path);
            return (LockCall::NotTried, probe);
        }
    };
    probe.excludes_same_process = Some(matches!(second.try_lock(), Err(TryLockError::WouldBlock)));
    drop(second);
    let _ = first.unlock();
    if let Err(error) = other_process(store, &path, &first, &mut probe) {
        probe.error = Some(error);
    }
    let _ = std::fs::remove_file(&path);
    (call, probe)
}

/// A child process takes the lock: this process must be excluded until the child exits.
fn other_process(store: &Store, path: &Path, file: &File, probe: &mut Probe) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|error| format!("cannot find this program: {error}"))?;
    let mut child = Command::new(exe)
        .arg("--dir")
        .arg(store.path())
        .arg("doctor")
        .arg("--hold-lock")
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| format!("cannot start a second process: {error}"))?;
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = BufReader::new(stdout).read_line(&mut line);
    }
    let held = line.trim() == "locked";
    if held {
        probe.excludes_other_process = Some(matches!(file.try_lock(), Err(TryLockError::WouldBlock)));
        let _ = file.unlock();
    }
    drop(child.stdin.take());
    let _ = child.wait();
    if !held {
        return Err(format!("the second process could not take the lock: {}", line.trim()));
    }
    probe.released_at_exit = Some(file.try_lock().is_ok());
    let _ = file.unlock();
    Ok(())
}
