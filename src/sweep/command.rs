//! The command an agent started for a queue item, recorded in the item's claim file: while that
//! process lives, another agent on the same host does not claim the item, even when the agent
//! that started it died before the command took its run's lock (a Python program can spend
//! seconds importing before `init`). Across hosts only the run's lock protects the item, from
//! the command's `init` on.
//!
//! A process is named by its pid, the host, the boot it runs in and the time it started
//! (`/proc/<pid>/stat`, field 22), so that a pid reused after it ended does not count.

use std::fs::File;
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

/// The record in a claim file.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct CommandRecord {
    pid: u32,
    host: String,
    boot: String,
    /// Clock ticks after boot at which the process started.
    start: u64,
}

impl CommandRecord {
    /// Process `pid` of this host as it runs now; `None` where /proc cannot say (not Linux),
    /// or when the process is gone.
    fn of(pid: u32) -> Option<CommandRecord> {
        Some(CommandRecord { pid, host: crate::sys::hostname(), boot: boot_id(), start: start_time(pid)? })
    }
}

/// Records in the held claim file `file` that the item's command runs as process `pid` of this
/// host. Where the process cannot be named (no /proc), the file is left empty: nothing is
/// protected beyond the run's lock, as before the record existed.
pub(crate) fn record(file: &File, pid: u32) -> std::io::Result<()> {
    file.set_len(0)?;
    let Some(record) = CommandRecord::of(pid) else { return Ok(()) };
    file.write_all_at(&serde_json::to_vec(&record).unwrap_or_default(), 0)
}

/// Forgets the command of the claim file `file`: a new claim starts a new command.
pub(crate) fn clear(file: &File) -> std::io::Result<()> {
    file.set_len(0)
}

/// Whether the command recorded in claim file `file` still runs on this host.
pub(crate) fn is_alive(file: &File) -> bool {
    let mut bytes = vec![0u8; 4096];
    let Ok(read) = file.read_at(&mut bytes, 0) else { return false };
    let Ok(recorded) = serde_json::from_slice::<CommandRecord>(&bytes[..read]) else { return false };
    CommandRecord::of(recorded.pid).is_some_and(|now| now == recorded)
}

/// When process `pid` started, in clock ticks after boot; `None` when it is gone or a zombie
/// (it ended, and waits only to be reaped).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, field 2, is in parentheses and may hold spaces and parentheses.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // Field 22; `fields` now starts at field 4.
    fields.nth(18)?.parse().ok()
}

/// This boot's id; empty where the kernel does not say.
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|id| id.trim().to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_process_is_alive_and_one_that_ended_is_not() {
        let dir = tempfile::tempdir().expect("dir");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.path().join("claim"))
            .expect("claim file");
        assert!(!is_alive(&file), "an empty claim file names no command");
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("sleep");
        record(&file, child.id()).expect("record");
        assert!(is_alive(&file));
        child.kill().expect("kill");
        child.wait().expect("wait");
        assert!(!is_alive(&file), "a process that ended is not alive");
        // A record from another boot, or with another start time, is not this process.
        record(&file, std::process::id()).expect("record");
        assert!(is_alive(&file));
        let mut other = CommandRecord::of(std::process::id()).expect("this process");
        other.start += 1;
        file.set_len(0).expect("truncate");
        file.write_all_at(&serde_json::to_vec(&other).expect("json"), 0).expect("write");
        assert!(!is_alive(&file), "a reused pid is another process");
        clear(&file).expect("clear");
        assert!(!is_alive(&file));
    }
}
