//! The journal beside a run database written with `Durability::EveryLog`: each log call appends
//! its row as one checksummed record and syncs the file, one `fdatasync` into space written
//! beforehand, instead of a two-phase commit of the database. The flusher folds the rows into
//! the database in the background, with a [`JournalMark`] saying where the records it did not
//! take start; whoever opens the run after a crash replays them (`Writer::open`).
//!
//! The file is filled with zeros when created, so that a sync of a record changes no file
//! metadata. It is written from the start: when the next record does not fit, a journal that
//! filled with few records doubles; otherwise the log call commits to the database itself and
//! the journal starts again at offset 0 in a new epoch, which makes the old records stale.

use std::path::{Path, PathBuf};

use redb::StorageBackend;

use crate::error::{Context, Error, Result};
use crate::format::journal::{self, EntryRef, JournalMark};

/// The journal's file name, in the run's directory.
pub(crate) const JOURNAL_FILE: &str = "journal";

/// How long a journal is and grows.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// The length a new journal is zeroed to.
    initial: u64,
    /// The longest it grows.
    max: u64,
    /// A journal that fills with fewer records than this since it started again doubles: its
    /// rows are wide, and folding that often would put a database commit into many log calls.
    grow_below_records: u64,
}

const LIMITS: Limits = Limits { initial: 1 << 20, max: 64 << 20, grow_below_records: 4096 };

#[cfg(test)]
thread_local! {
    /// Limits that journals opened on this thread take instead, for a test.
    static TEST_LIMITS: std::cell::Cell<Option<Limits>> = const { std::cell::Cell::new(None) };
}

/// Makes the journals opened on this thread tiny, so that a test's few rows make one double
/// and then start again: about 6 records of 80 bytes fill its first 512 bytes, it doubles
/// (fewer than 8 records), and about 12 fill it.
#[cfg(test)]
pub(crate) fn tiny_journals_on_this_thread(on: bool) {
    let tiny = Limits { initial: 512, max: 1024, grow_below_records: 8 };
    TEST_LIMITS.with(|limits| limits.set(on.then_some(tiny)));
}

/// The journal of the run database at `database`.
pub(crate) fn path_for(database: &Path) -> PathBuf {
    database.with_file_name(JOURNAL_FILE)
}

/// The writing side of a journal, kept with the buffered rows (under their lock): a record is
/// appended under the same lock that a fold takes to swap the rows out, so that the fold's
/// mark says exactly which records it holds.
pub(crate) struct Journal {
    file: Box<dyn StorageBackend>,
    path: PathBuf,
    /// Bytes written with zeros or records (the file's length).
    len: u64,
    limits: Limits,
    epoch: u64,
    /// The next record's sequence number and offset.
    seq: u64,
    offset: u64,
    /// Records written since the journal last started again.
    records: u64,
    /// Whether the database holds a mark of this epoch, so that records appended now count.
    /// Cleared when the journal is full or a write or a fold failed: the next fold starts a
    /// new epoch.
    ready: bool,
    /// The epoch the fold in progress starts again with.
    restarting: Option<u64>,
    /// What the fold in progress took: how many of `sets` and `samples` there were, and the
    /// next record's number, when it swapped the rows out.
    folding: Option<(usize, usize, u64)>,
    /// Values set with `set_summary` and system samples taken since the last record, which the
    /// next record carries.
    pub(crate) sets: Vec<(u32, f64)>,
    pub(crate) samples: Vec<(u32, u64, f64)>,
    /// Metric ids below this are in the database or in a record; the next record carries the
    /// names from here on.
    names_through: u32,
    buffer: Vec<u8>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("epoch", &self.epoch)
            .field("seq", &self.seq)
            .field("offset", &self.offset)
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens (or creates) the journal of the run database at `database` and zeroes it to its
    /// initial length. It takes records once a fold has stored its first mark.
    pub(crate) fn open(database: &Path, names_stored: u32) -> Result<Journal> {
        #[cfg(test)]
        if let Some(limits) = TEST_LIMITS.with(std::cell::Cell::get) {
            return Journal::open_with(database, names_stored, limits);
        }
        Journal::open_with(database, names_stored, LIMITS)
    }

    fn open_with(database: &Path, names_stored: u32, limits: Limits) -> Result<Journal> {
        let path = path_for(database);
        let file = open_backend(&path)?;
        let len = file.len().at(&path)?;
        let mut journal = Journal {
            file,
            path,
            len,
            limits,
            epoch: 0,
            seq: 0,
            offset: 0,
            records: 0,
            ready: false,
            restarting: None,
            folding: None,
            sets: Vec::new(),
            samples: Vec::new(),
            names_through: names_stored,
            buffer: Vec::new(),
        };
        journal.zero_to(limits.initial)?;
        if len == 0 {
            // A new file: its name must be durable too, or a power cut could take the synced
            // records with it.
            if let Some(dir) = journal.path.parent() {
                crate::files::sync_dir(dir)?;
            }
        }
        Ok(journal)
    }

    /// Whether records appended now count (see [`Journal::ready`]).
    pub(crate) fn is_ready(&self) -> bool {
        self.ready
    }

    /// The first metric id whose name the next record must carry.
    pub(crate) fn names_through(&self) -> u32 {
        self.names_through
    }

    /// Appends the record of a row (`step`, `time_ms`, `points`), carrying `names` (the names
    /// of ids [`Journal::names_through`] on) and the values set and samples taken since the
    /// last record, and syncs it: `Ok(true)` once it is durable, `Ok(false)` when the journal
    /// cannot take it (not ready, or full: it then waits for a fold to start again), and the
    /// caller commits to the database instead. After an error, likewise.
    pub(crate) fn append(
        &mut self,
        step: u64,
        time_ms: u64,
        names: &[Box<str>],
        points: &[(u32, f64)],
    ) -> Result<bool> {
        if !self.ready {
            return Ok(false);
        }
        let first_name = self.names_through;
        let entry = EntryRef { step, time_ms, first_name, names, sets: &self.sets, points, samples: &self.samples };
        self.buffer.clear();
        journal::encode(&mut self.buffer, self.epoch, self.seq, &entry);
        let end = self.offset + self.buffer.len() as u64;
        let Limits { max, grow_below_records, .. } = self.limits;
        if end > self.len && self.records < grow_below_records && end <= max {
            let grown = self.len.saturating_mul(2).max(end).min(max);
            if let Err(error) = self.zero_to(grown) {
                self.ready = false;
                return Err(error);
            }
        }
        if end > self.len {
            self.ready = false;
            return Ok(false);
        }
        let written = self.file.write(self.offset, &self.buffer).and_then(|()| self.file.sync_data());
        if let Err(error) = written {
            // The record may be there in part: a new epoch makes sure nothing follows it.
            self.ready = false;
            return Err(Error::io(&self.path, error));
        }
        self.offset = end;
        self.seq += 1;
        self.records += 1;
        self.sets.clear();
        self.samples.clear();
        self.names_through = first_name.saturating_add(u32::try_from(names.len()).unwrap_or(u32::MAX));
        Ok(true)
    }

    /// The mark a fold that swaps out the buffered rows now stores: the next record's place,
    /// or, when the journal must start again, the start of a new epoch.
    pub(crate) fn fold_mark(&mut self) -> JournalMark {
        self.folding = Some((self.sets.len(), self.samples.len(), self.seq));
        if self.ready {
            return JournalMark { epoch: self.epoch, offset: self.offset, seq: self.seq };
        }
        let epoch = new_epoch(self.epoch);
        self.restarting = Some(epoch);
        JournalMark { epoch, offset: 0, seq: 0 }
    }

    /// The fold that stored `mark` is durable.
    pub(crate) fn folded(&mut self, mark: JournalMark) {
        if let Some((sets, samples, seq)) = self.folding.take()
            && seq == self.seq
        {
            // No record since the swap: the values and samples the fold took are stored, and
            // the next record need not carry them (one would have carried and cleared them).
            self.sets.drain(..sets.min(self.sets.len()));
            self.samples.drain(..samples.min(self.samples.len()));
        }
        if self.restarting.take() == Some(mark.epoch) {
            self.epoch = mark.epoch;
            self.offset = 0;
            self.seq = 0;
            self.records = 0;
            self.ready = true;
        }
    }

    /// The fold failed, and may have stored its mark or not. A fold of the same epoch leaves
    /// the journal as it is: the records from either mark on are one chain, so the log calls go
    /// on being durable (on a full disk, say, until the journal is full). After a failed start
    /// of a new epoch no record counts until a fold stores one.
    pub(crate) fn fold_failed(&mut self) {
        self.folding = None;
        if self.restarting.take().is_some() {
            self.ready = false;
        }
    }

    /// Removes the file, once a final fold has cleared the mark. Best effort: a journal left
    /// behind is stale (no mark names its epoch) and the next one reuses it.
    pub(crate) fn remove(self) {
        let _ = self.file.close();
        let _ = std::fs::remove_file(&self.path);
    }

    /// Writes zeros from the file's end up to `len` and syncs them.
    fn zero_to(&mut self, len: u64) -> Result<()> {
        if self.len >= len {
            return Ok(());
        }
        let zeros = vec![0u8; 64 << 10];
        let mut at = self.len;
        while at < len {
            let n = usize::try_from(len - at).unwrap_or(usize::MAX).min(zeros.len());
            self.file.write(at, &zeros[..n]).at(&self.path)?;
            at += n as u64;
        }
        self.file.sync_data().at(&self.path)?;
        self.len = len;
        Ok(())
    }
}

/// An epoch that is neither 0 (zeros never read as a record) nor `previous`.
fn new_epoch(previous: u64) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut seed = Vec::with_capacity(32);
    seed.extend_from_slice(&nanos.to_le_bytes());
    seed.extend_from_slice(&std::process::id().to_le_bytes());
    seed.extend_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let epoch = crate::sys::stable_hash(&seed);
    if epoch == 0 || epoch == previous { epoch.wrapping_add(1).max(1) } else { epoch }
}

/// Opens the journal file for reading and writing, creating it. Unit tests route it through
/// the storage backend that injects I/O faults and power cuts (`crate::fault_tests`).
fn open_backend(path: &Path) -> Result<Box<dyn StorageBackend>> {
    #[cfg(test)]
    if let Some(backend) = crate::fault_tests::backend_for(path)? {
        return Ok(Box::new(backend));
    }
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).at(path)?;
    Ok(Box::new(redb::backends::FileBackend::new(file).map_err(|error| Error::storage(path, error))?))
}

/// The records of the journal of `database` from `mark` on, as [`journal::read_chain`] reads
/// them; none when there is no journal.
pub(crate) fn read(database: &Path, mark: JournalMark) -> Result<Vec<journal::Entry>> {
    let path = path_for(database);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(Error::io(&path, error)),
    };
    Ok(journal::read_chain(&bytes, mark).at(&path)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::journal::Entry;

    const SMALL: Limits = Limits { initial: 4 << 10, max: 16 << 10, grow_below_records: 8 };

    fn started(dir: &Path) -> Journal {
        let mut journal = Journal::open_with(&dir.join("run.redb"), 0, SMALL).expect("open");
        assert!(!journal.is_ready(), "no record counts before a fold stores a mark");
        let mark = journal.fold_mark();
        journal.folded(mark);
        assert!(journal.is_ready());
        journal
    }

    fn mark_of(journal: &Journal) -> JournalMark {
        JournalMark { epoch: journal.epoch, offset: journal.offset, seq: journal.seq }
    }

    fn chain(dir: &Path, mark: JournalMark) -> Vec<Entry> {
        read(&dir.join("run.redb"), mark).expect("read")
    }

    /// A row of `width` points at `step`.
    fn append(journal: &mut Journal, step: u64, width: u32) -> bool {
        let points: Vec<(u32, f64)> = (0..width).map(|id| (id, f64::from(id))).collect();
        journal.append(step, 1000, &[], &points).expect("append")
    }

    #[test]
    fn a_full_journal_doubles_while_its_rows_are_wide_then_asks_for_a_fold_that_starts_it_again() {
        let dir = tempfile::tempdir().expect("dir");
        let mut journal = started(dir.path());
        let first = mark_of(&journal);
        let mut step = 0;
        // Records of about 1 KiB: the journal doubles from 4 to 16 KiB, as it fills with
        // fewer than 8 records; past 8 it asks for a fold instead.
        while append(&mut journal, step, 120) {
            step += 1;
        }
        assert!((8..16).contains(&step), "{step} records");
        assert_eq!(std::fs::metadata(path_for(&dir.path().join("run.redb"))).expect("journal").len(), 16 << 10);
        assert!(!journal.is_ready());
        assert_eq!(chain(dir.path(), first).len() as u64, step, "every record appended reads back");
        let restart = journal.fold_mark();
        assert_ne!(restart.epoch, first.epoch);
        assert_eq!((restart.offset, restart.seq), (0, 0));
        journal.folded(restart);
        assert!(append(&mut journal, step, 3), "the journal starts again at its start");
        let entries = chain(dir.path(), restart);
        assert_eq!(entries.iter().map(|entry| entry.step).collect::<Vec<_>>(), [step]);
        assert!(chain(dir.path(), first).is_empty(), "the first record of the old epoch is overwritten");
    }

    #[test]
    fn records_appended_while_a_fold_commits_stay_after_its_mark() {
        let dir = tempfile::tempdir().expect("dir");
        let mut journal = started(dir.path());
        assert!(append(&mut journal, 0, 2) && append(&mut journal, 1, 2));
        let mark = journal.fold_mark();
        assert_eq!(mark, mark_of(&journal), "the fold takes the rows of every record so far");
        assert!(append(&mut journal, 2, 2));
        journal.folded(mark);
        assert!(journal.is_ready(), "a fold that does not start the journal again leaves it as it is");
        assert_eq!(chain(dir.path(), mark).iter().map(|entry| entry.step).collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn after_a_failed_fold_of_the_epoch_records_go_on_counting_from_either_mark() {
        let dir = tempfile::tempdir().expect("dir");
        let mut journal = started(dir.path());
        assert!(append(&mut journal, 0, 2));
        let before = mark_of(&journal);
        assert!(append(&mut journal, 1, 2));
        // The fold fails: the database holds `before` or `taken`, whichever it got to.
        let taken = journal.fold_mark();
        journal.fold_failed();
        assert!(journal.is_ready());
        assert!(append(&mut journal, 2, 2), "a full disk does not stop durable rows");
        let steps = |mark| chain(dir.path(), mark).iter().map(|entry| entry.step).collect::<Vec<_>>();
        assert_eq!(steps(before), [1, 2]);
        assert_eq!(steps(taken), [2]);
    }

    #[test]
    fn after_a_failed_start_of_a_new_epoch_no_record_counts_until_one_is_stored() {
        let dir = tempfile::tempdir().expect("dir");
        let mut journal = started(dir.path());
        let epoch = journal.epoch;
        while append(&mut journal, 0, 40) {}
        let restart = journal.fold_mark();
        assert_ne!(restart.epoch, epoch);
        journal.fold_failed();
        assert!(!append(&mut journal, 1, 2), "the failed fold may have stored the new epoch's mark or not");
        let again = journal.fold_mark();
        assert_ne!(again.epoch, restart.epoch);
        journal.folded(again);
        assert!(append(&mut journal, 1, 2));
    }

    #[test]
    fn values_and_samples_are_carried_until_a_record_or_a_fold_that_took_them_stores_them() {
        let dir = tempfile::tempdir().expect("dir");
        let mut journal = started(dir.path());
        journal.sets.push((0, 0.5));
        journal.samples.push((1, 10, 2.0));
        // A fold takes them, but a record follows before it commits: the record carries them,
        // in case the fold does not land.
        let mark = journal.fold_mark();
        assert!(append(&mut journal, 0, 1));
        journal.folded(mark);
        let entries = chain(dir.path(), mark);
        assert_eq!((entries[0].sets.clone(), entries[0].samples.clone()), (vec![(0, 0.5)], vec![(1, 10, 2.0)]));
        // A fold takes them and commits with no record since: they are stored.
        journal.sets.push((0, 0.25));
        let mark = journal.fold_mark();
        journal.sets.push((0, 0.125));
        journal.folded(mark);
        assert_eq!(journal.sets, [(0, 0.125)], "only the value set after the fold's swap is left");
    }
}
