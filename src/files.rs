//! Files written whole or not at all: a temporary file beside the target, fsynced, renamed over
//! it (or linked, where an existing file must win), and the directory fsynced. Small enough to
//! keep here rather than pull `tempfile` and its eight crates into every training program.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Context, Result};

/// A new file with a name no other process or thread picks (pid, clock, counter, and
/// `create_new` to be sure), removed on drop unless it was persisted.
pub(crate) struct TempFile {
    path: PathBuf,
    file: File,
    keep: bool,
}

impl TempFile {
    /// Creates `dir/.{prefix}{unique}.tmp`, with the mode of any new file (the umask applies).
    pub(crate) fn new_in(dir: &Path, prefix: &str) -> std::io::Result<TempFile> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(".{prefix}{}-{nanos:x}-{n}.tmp", std::process::id()));
            match OpenOptions::new().write(true).read(true).create_new(true).open(&path) {
                Ok(file) => return Ok(TempFile { path, file, keep: false }),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(error) => return Err(error),
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `bytes` and fsyncs them.
    pub(crate) fn write_synced(&mut self, bytes: &[u8]) -> Result<()> {
        self.file.write_all(bytes).at(&self.path)?;
        self.file.sync_all().at(&self.path)
    }

    /// Renames the file to `to`, replacing what is there.
    pub(crate) fn persist(mut self, to: &Path) -> Result<()> {
        std::fs::rename(&self.path, to).at(to)?;
        self.keep = true;
        Ok(())
    }

    /// Links the file at `to` unless something is there already (`AlreadyExists`), then
    /// removes the temporary name.
    pub(crate) fn persist_noclobber(self, to: &Path) -> std::io::Result<()> {
        std::fs::hard_link(&self.path, to)
        // Dropping `self` removes the temporary name either way.
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            // Nothing to report to; a leftover temporary file is harmless and named as one.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Replaces `path` with `bytes` atomically: a crash leaves the old file or the new one.
pub(crate) fn write_atomically(path: &Path, prefix: &str, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let mut temp = TempFile::new_in(parent, prefix).at(parent)?;
    temp.write_synced(bytes)?;
    temp.persist(path)?;
    sync_dir(parent)
}

/// Makes a directory's entries (a rename, a new file) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        write_atomically(&path, "f-", b"one").unwrap();
        write_atomically(&path, "f-", b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn persist_noclobber_keeps_the_first_file_and_a_dropped_temporary_file_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marker");
        let mut first = TempFile::new_in(dir.path(), "m-").unwrap();
        first.write_synced(b"first").unwrap();
        let mut second = TempFile::new_in(dir.path(), "m-").unwrap();
        second.write_synced(b"second").unwrap();
        assert_ne!(first.path(), second.path());
        first.persist_noclobber(&path).unwrap();
        let error = second.persist_noclobber(&path).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
