//! Managing stored runs from outside any attempt: deleting a run, editing its tags and notes.
//!
//! Each takes the run's lock first, so a run that a process writes is refused with
//! [`Error::RunLocked`], and each leaves the run whole or unchanged if the process dies
//! midway: a deletion renames the run's directory out of the runs' namespace in one step
//! before removing it, and an edit is one redb transaction.

use std::path::Path;

use crate::error::{Context, Error, Result};
use crate::files::sync_dir;
use crate::id::validate_run_id;
use crate::lock::RunLock;
use crate::store::{RUNS, Store};
use crate::write::writer::Writer;

/// The prefix of a run directory being deleted: not a valid run id, so never listed as a run.
const DELETING: &str = ".deleting-";

impl Store {
    /// Deletes run `id`: its directory, history, branches and lock file. The run's directory is
    /// first renamed out of the store's runs in one atomic step (then removed), so a process
    /// killed midway leaves the run either whole or gone, never half there; what a killed
    /// deletion leaves is removed by the next deletion. Checkpoint files are the user's and are
    /// not touched; nor are queue items or `auto` pointers naming the run.
    ///
    /// # Errors
    ///
    /// [`Error::RunLocked`] while a process writes the run, [`Error::RunHasForks`] while runs
    /// forked from it exist (they read their history from it: delete them first),
    /// [`Error::InvalidRunId`], [`Error::RunNotFound`], [`Error::Io`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use runstore::{RunOptions, Store};
    ///
    /// let store = Store::open(dir.path())?;
    /// store.init(RunOptions::new().id("scratch"))?.finish(0)?;
    /// store.delete_run("scratch")?;
    /// assert!(!store.exists("scratch")?);
    /// assert!(matches!(store.delete_run("scratch"), Err(runstore::Error::RunNotFound { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn delete_run(&self, id: &str) -> Result<()> {
        validate_run_id(id)?;
        let runs = self.path().join(RUNS);
        remove_leftovers(&runs);
        if !self.database_path(id).is_file() {
            return Err(Error::RunNotFound { id: id.to_string() });
        }
        let lock = RunLock::acquire(&self.lock_path(id), id)?;
        let forks = self.forks_of(id)?;
        if !forks.is_empty() {
            return Err(Error::RunHasForks { id: id.to_string(), forks });
        }
        let doomed = runs.join(format!("{DELETING}{id}-{}-{}", std::process::id(), crate::sys::now_ms()));
        let dir = runs.join(id);
        std::fs::rename(&dir, &doomed).at(&dir)?;
        sync_dir(&runs)?;
        let removed = std::fs::remove_dir_all(&doomed).at(&doomed);
        drop(lock);
        removed
    }

    /// The runs forked from `id`, sorted. A run that cannot be read is skipped: it cannot be
    /// read through its parent either.
    fn forks_of(&self, id: &str) -> Result<Vec<String>> {
        let mut forks = Vec::new();
        for other in self.run_ids()? {
            if other == id {
                continue;
            }
            let Ok(info) = self.open_run(&other).and_then(|reader| reader.info()) else { continue };
            if info.forked_from.is_some_and(|(parent, _)| parent == id) {
                forks.push(other);
            }
        }
        Ok(forks)
    }

    /// Adds and removes tags of run `id` in one transaction, and returns its tags after:
    /// those it had, less `remove`, then those of `add` it lacked, in the order given.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidTag`] for an empty tag or one with control characters (nothing is
    /// changed), [`Error::RunLocked`] while a process writes the run, [`Error::InvalidRunId`],
    /// [`Error::RunNotFound`], and storage errors.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use runstore::{RunOptions, Store};
    ///
    /// let store = Store::open(dir.path())?;
    /// store.init(RunOptions::new().id("r").tags(["debug", "sweep-1"]))?.finish(0)?;
    /// let tags = store.edit_tags("r", &["keep"], &["debug"])?;
    /// assert_eq!(tags, ["sweep-1", "keep"]);
    /// assert_eq!(store.open_run("r")?.info()?.tags, tags);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn edit_tags(&self, id: &str, add: &[&str], remove: &[&str]) -> Result<Vec<String>> {
        for tag in add.iter().chain(remove) {
            validate_tag(tag)?;
        }
        let record = self.edit_record(id, |record| {
            record.tags.retain(|tag| !remove.contains(&tag.as_str()));
            for tag in add {
                if !record.tags.iter().any(|have| have == tag) {
                    record.tags.push((*tag).to_string());
                }
            }
        })?;
        Ok(record.tags)
    }

    /// Sets the notes of run `id` (`None`, or an empty text, clears them), in one transaction.
    ///
    /// # Errors
    ///
    /// As [`Store::edit_tags`], without [`Error::InvalidTag`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use runstore::{RunOptions, Store};
    ///
    /// let store = Store::open(dir.path())?;
    /// store.init(RunOptions::new().id("r"))?.finish(0)?;
    /// store.set_notes("r", Some("diverged after the lr warm-up"))?;
    /// assert_eq!(store.open_run("r")?.info()?.notes.as_deref(), Some("diverged after the lr warm-up"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_notes(&self, id: &str, notes: Option<&str>) -> Result<()> {
        let notes = notes.filter(|text| !text.is_empty()).map(str::to_string);
        self.edit_record(id, |record| record.notes = notes)?;
        Ok(())
    }

    fn edit_record(
        &self,
        id: &str,
        edit: impl FnOnce(&mut crate::format::records::RunRecord),
    ) -> Result<crate::format::records::RunRecord> {
        validate_run_id(id)?;
        let path = self.database_path(id);
        if !path.is_file() {
            return Err(Error::RunNotFound { id: id.to_string() });
        }
        let _lock = RunLock::acquire(&self.lock_path(id), id)?;
        let mut writer = Writer::open(&path)?;
        writer.edit_record(edit)
    }
}

/// Removes what killed deletions left; their runs are gone already. Best effort: another
/// deletion may be removing the same directory.
fn remove_leftovers(runs: &Path) {
    let Ok(entries) = std::fs::read_dir(runs) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(DELETING) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A tag: not empty, at most 256 bytes, no control characters.
fn validate_tag(tag: &str) -> Result<()> {
    let reason = if tag.is_empty() {
        "it is empty"
    } else if tag.len() > 256 {
        "it is longer than 256 bytes"
    } else if tag.chars().any(char::is_control) {
        "it contains control characters"
    } else {
        return Ok(());
    };
    Err(Error::InvalidTag { tag: tag.to_string(), reason })
}
