//! Integrity checks of runs and of a whole store: `runstore check`.
//!
//! A run that no process writes is checked on a copy of its database, taken without the run's
//! lock (a writer may start at any time: the copy is kept only if the database did not change
//! while it was made): redb's own integrity check (every page checksum of the committed trees,
//! the allocator state) runs on the copy, so that the check never changes the run's file, not
//! even by recovering it after a crash or repairing it, and never blocks a writer. The copy is then read record by record and chunk
//! by chunk. A live run (its lock held by a writer) is read as a reader would, from the last
//! commit; redb's integrity check is skipped, since it must not run beside a writer.
//!
//! What is checked, besides redb's integrity:
//! - the format marker and version, the run record (whose id must name the run's directory),
//!   the progress record and its state;
//! - metric names: ids dense from 0, names that could have been logged;
//! - attempts: numbers dense from 1, records that decode, every attempt but the last closed;
//! - the live history: every row chunk and point chunk decodes, its key is its first step,
//!   steps strictly increase across chunks, every point is at a step that has a row, every
//!   point chunk names a known metric and has the summary of its points, the row count and last
//!   step agree with the progress record, and the stored summary is each metric's last value;
//! - archived branches: records and chunks decode and agree with each other;
//! - a fork's parent is there and the fork's history reads whole.
//!
//! Anything a file can hold gives a [`Problem`] naming the file, never a panic (see
//! `crate::guard`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::error::{Context, Error, Result};
use crate::files::TempFile;
use crate::format::RUN_FORMAT_VERSION;
use crate::format::journal::JournalMark;
use crate::format::records::{AttemptRecord, BranchRecord, Progress, RunRecord};
use crate::format::summary::ChunkSummary;
use crate::format::tables::{
    ARCHIVE_POINTS, ARCHIVE_ROWS, ARCHIVE_SUMMARIES, ATTEMPTS, BRANCHES, KEY_FORMAT, KEY_JOURNAL, KEY_PROGRESS,
    KEY_RUN, META, METRICS, POINTS, ROWS, SAMPLE_SUMMARIES, SAMPLES, SUMMARIES,
};
use crate::format::{Corrupt, point_chunk, row_chunk, time_chunk};
use crate::id::{validate_metric_name, validate_run_id};
use crate::read::snapshot::RunSnapshot;
use crate::state::RunState;
use crate::store::{DATABASE, LOCK, Store, decode_pointer};
use crate::write::writer::builder;
use crate::{guard, lock};

/// Something wrong (or worth knowing) about a file of the store.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let store = runstore::Store::open(dir.path())?;
/// store.init(runstore::RunOptions::new().id("r"))?.finish(0)?;
/// std::fs::write(dir.path().join("runs/r/lock"), b"\x00garbage")?;
/// let report = store.check("r")?;
/// assert!(report.is_healthy()); // a garbled lock file is harmless: noted, not a problem
/// let note = &report.notes[0];
/// assert!(note.path.ends_with("lock") && note.detail.contains("holder record"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The file or directory concerned.
    pub path: PathBuf,
    /// What is wrong, and what to do about it.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.detail)
    }
}

/// How far redb's own integrity check got on a run's database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Integrity {
    /// Every page checksum and the allocator state verified.
    Verified,
    /// Not run: a process is writing the run (the check must not run beside a writer).
    SkippedLive,
    /// Not run: the database could not be opened or copied (see the problems).
    NotRun,
    /// Damage found: see the problems.
    Failed,
}

impl Integrity {
    /// A lowercase word for the command line and JSON.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Integrity::Verified => "verified",
            Integrity::SkippedLive => "skipped (live)",
            Integrity::NotRun => "not run",
            Integrity::Failed => "failed",
        }
    }
}

/// The outcome of checking one run ([`Store::check`]).
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use runstore::{RunOptions, Store};
///
/// let store = Store::open(dir.path())?;
/// let mut run = store.init(RunOptions::new().id("r"))?;
/// run.log([("loss", 0.5)])?;
/// run.finish(0)?;
/// let report = store.check("r")?;
/// assert!(report.is_healthy(), "{:?}", report.problems);
/// assert_eq!((report.rows, report.integrity), (1, runstore::Integrity::Verified));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunCheck {
    /// The run id (its directory's name).
    pub id: String,
    /// The run's directory.
    pub dir: PathBuf,
    /// Whether a process was writing the run during the check.
    pub live: bool,
    /// How far redb's integrity check got.
    pub integrity: Integrity,
    /// Rows read from the live history (a fork's inherited rows included).
    pub rows: u64,
    /// Rows read from archived branches.
    pub archived_rows: u64,
    /// Chunks decoded (row chunks and point chunks), live and archived.
    pub chunks: u64,
    /// Archived branches.
    pub branches: u32,
    /// Attempts.
    pub attempts: u32,
    /// Damage: the run cannot be trusted until these are dealt with.
    pub problems: Vec<Problem>,
    /// Things that are not damage but worth knowing (a lock file without a holder record, a
    /// directory left by an interrupted creation).
    pub notes: Vec<Problem>,
}

impl RunCheck {
    fn new(id: &str, dir: PathBuf) -> RunCheck {
        RunCheck {
            id: id.to_string(),
            dir,
            live: false,
            integrity: Integrity::NotRun,
            rows: 0,
            archived_rows: 0,
            chunks: 0,
            branches: 0,
            attempts: 0,
            problems: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Whether nothing is wrong with the run.
    #[must_use]
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, path: &Path, detail: impl Into<String>) {
        self.problems.push(Problem { path: path.to_path_buf(), detail: detail.into() });
    }

    fn note(&mut self, path: &Path, detail: impl Into<String>) {
        self.notes.push(Problem { path: path.to_path_buf(), detail: detail.into() });
    }
}

/// The outcome of checking every run of a store ([`Store::check_all`]).
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let store = runstore::Store::open(dir.path())?;
/// store.init(runstore::RunOptions::new().id("a"))?.finish(0)?;
/// store.init(runstore::RunOptions::new().id("b"))?.finish(0)?;
/// let report = store.check_all()?;
/// assert!(report.is_healthy() && report.problems.is_empty());
/// assert_eq!(report.runs.iter().map(|run| run.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreCheck {
    /// The store directory.
    pub path: PathBuf,
    /// Each run directory's check, sorted by id.
    pub runs: Vec<RunCheck>,
    /// Damage outside any run.
    pub problems: Vec<Problem>,
    /// Things outside any run worth knowing (a damaged `auto` pointer, a stray file).
    pub notes: Vec<Problem>,
}

impl StoreCheck {
    /// Whether nothing is wrong with the store or any of its runs.
    #[must_use]
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty() && self.runs.iter().all(RunCheck::is_healthy)
    }
}

impl Store {
    /// Checks run `id` for damage: redb's integrity check (page checksums, allocator state) on
    /// a copy of its database taken under the run's lock, then every record and chunk: formats,
    /// metric ids, attempts, steps strictly increasing across chunks, chunk keys, row counts
    /// and the summary against the history, archived branches, a fork's parent. A run being
    /// written is read from its last commit, without redb's check. Damage is reported in the
    /// result, not as an error; the run's files are not changed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRunId`], [`Error::RunNotFound`] when the run has no directory.
    pub fn check(&self, id: &str) -> Result<RunCheck> {
        validate_run_id(id)?;
        let dir = self.path().join("runs").join(id);
        if !dir.is_dir() {
            return Err(Error::RunNotFound { id: id.to_string() });
        }
        let mut report = RunCheck::new(id, dir.clone());
        check_lock_file(&dir.join(LOCK), &mut report);
        let database = dir.join(DATABASE);
        match std::fs::symlink_metadata(&database) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => {
                report.problem(&database, "is not a regular file: move it away; the run cannot be read");
                return Ok(report);
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let partial = dir.join(format!("{DATABASE}.partial"));
                let detail = if partial.exists() {
                    "is missing and a half-written run.redb.partial is there: the run's creation was interrupted, \
                     so no run was created; the directory can be removed"
                } else {
                    "is missing: no run is stored here (its creation was interrupted, or the database was \
                     deleted); the directory can be removed"
                };
                report.note(&database, detail);
                return Ok(report);
            }
            Err(error) => {
                report.problem(&database, format!("cannot be examined: {error}"));
                return Ok(report);
            }
        }
        let lock_path = dir.join(LOCK);
        // The check never takes the run's lock, so a writer can start at any time during it:
        // with no writer, the database is copied while it stays the same from end to end (a
        // writer that starts changes it, and the copy is made again or given up).
        let copy = match lock::is_held(&lock_path) {
            Ok(true) => None,
            Ok(false) => match copy_unchanged(&database) {
                Ok(copy) => copy,
                Err(error) => {
                    report.problem(&database, format!("cannot be copied for the check: {error}"));
                    return Ok(report);
                }
            },
            Err(error) => {
                report.problem(&lock_path, format!("cannot be tested: {error}"));
                return Ok(report);
            }
        };
        if let Some(copy) = copy {
            check_copy(&database, copy.path(), &mut report);
            check_journal(&database, copy.path(), &mut report);
        } else {
            report.live = true;
            report.integrity = Integrity::SkippedLive;
            let outcome = guard::catch(&database, || {
                let db = builder().open_read_only(&database).at(&database)?;
                walk(&db.begin_read().at(&database)?, &database, &mut report)
            });
            if let Err(error) = outcome {
                report.problem(&database, detail_of(&error));
            }
        }
        if report.is_healthy() {
            self.check_fork(id, &database, &mut report);
        }
        Ok(report)
    }

    /// Checks every run directory of the store, and its `auto` pointers: see [`Store::check`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the store's directories cannot be listed.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let store = runstore::Store::open(dir.path())?;
    /// store.init(runstore::RunOptions::new().id("a"))?.finish(0)?;
    /// let report = store.check_all()?;
    /// assert!(report.is_healthy());
    /// assert_eq!(report.runs.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_all(&self) -> Result<StoreCheck> {
        let mut report =
            StoreCheck { path: self.path().to_path_buf(), runs: Vec::new(), problems: Vec::new(), notes: Vec::new() };
        let runs = self.path().join("runs");
        let mut ids = Vec::new();
        for entry in list(&runs)? {
            let path = entry.path();
            match entry.file_name().into_string() {
                Ok(id) if validate_run_id(&id).is_ok() && path.is_dir() => ids.push(id),
                Ok(id) if validate_run_id(&id).is_ok() => report
                    .notes
                    .push(Problem { path, detail: "is not a directory, so not a run: it is ignored".into() }),
                _ => report.notes.push(Problem {
                    path,
                    detail: "is not named like a run (an invalid run id): it is ignored".into(),
                }),
            }
        }
        ids.sort();
        for id in ids {
            report.runs.push(self.check(&id)?);
        }
        for entry in list(&self.path().join("auto"))? {
            let path = entry.path();
            let named = std::fs::read(&path).ok().and_then(|bytes| decode_pointer(&bytes, None));
            match named {
                None => report.notes.push(Problem {
                    path,
                    detail: "is not an auto pointer: `auto` ignores it and starts a new run; it can be removed".into(),
                }),
                Some(id) if !self.database_path(&id).is_file() => report.notes.push(Problem {
                    path,
                    detail: format!("points at run {id:?}, which does not exist: `auto` will start a new run"),
                }),
                Some(_) => {}
            }
        }
        Ok(report)
    }

    /// A fork's parent must be there and the fork's whole history must read, with as many rows
    /// as its progress record says: both from one snapshot, since a live fork commits meanwhile.
    fn check_fork(&self, id: &str, database: &Path, report: &mut RunCheck) {
        let outcome = (|| -> Result<Option<(u64, u64)>> {
            // As it is: a dead writer's journal is left for the next reader or writer to fold.
            let snapshot = RunSnapshot::take_as_is(&self.open_run(id)?)?;
            let info = snapshot.info()?;
            if info.forked_from.is_none() {
                return Ok(None);
            }
            let mut rows = 0;
            let mut history = snapshot.history(..)?;
            while history.next_row()?.is_some() {
                rows += 1;
            }
            Ok(Some((rows, info.rows)))
        })();
        match outcome {
            Ok(Some((rows, recorded))) => {
                if rows != recorded {
                    report.problem(
                        database,
                        format!("the fork's history has {rows} rows but its progress record says {recorded}"),
                    );
                }
            }
            Ok(None) => {}
            Err(error) => report.problem(database, detail_of(&error)),
        }
    }
}

/// The entries of `dir`; none when it does not exist.
fn list(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.collect::<std::io::Result<Vec<_>>>().at(dir),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(Error::io(dir, error)),
    }
}

/// What an error says, without the path that the problem names already.
fn detail_of(error: &Error) -> String {
    match error {
        Error::Corrupt { detail, .. } => detail.clone(),
        Error::Storage { source, .. } => format!("the storage engine cannot read it: {source}"),
        Error::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

fn check_lock_file(path: &Path, report: &mut RunCheck) {
    match std::fs::symlink_metadata(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => report.problem(path, format!("cannot be examined: {error}")),
        Ok(meta) if !meta.is_file() => {
            report.problem(path, "is not a regular file, so no writer can lock the run: move it away");
        }
        Ok(meta) => {
            let bytes = std::fs::read(path).unwrap_or_default();
            if meta.len() > 0 && lock::parse_holder(&bytes).is_none() {
                report.note(
                    path,
                    "does not hold a holder record (pid, host, since): harmless, the next writer rewrites it",
                );
            }
        }
    }
}

/// A copy of `database` in the temporary directory, removed when dropped.
fn copy_database(database: &Path) -> std::io::Result<TempFile> {
    let copy = TempFile::new_in(&std::env::temp_dir(), "runstore-check-")?;
    std::fs::copy(database, copy.path())?;
    Ok(copy)
}

/// How many times a copy is made again when the database changed while it was copied.
const COPY_TRIES: u32 = 3;

/// A copy of `database` during which the database did not change; `None` when a writer kept
/// changing it (it is then checked as a live run). While it copies, a read transaction keeps
/// the last commit's pages from reuse; a commit rewrites the header, and any write changes the
/// modification time or the length, so the same header, length and time before and after the
/// copy mean that the copy holds one commit whole.
fn copy_unchanged(database: &Path) -> std::io::Result<Option<TempFile>> {
    for _ in 0..COPY_TRIES {
        let before = fingerprint(database)?;
        // A database its writer left needing recovery cannot be opened read-only: nothing
        // writes it then, unless a writer starts, which the fingerprint sees.
        let db = builder().open_read_only(database).ok();
        let pin = db.as_ref().and_then(|db| db.begin_read().ok());
        let copy = copy_database(database)?;
        drop(pin);
        drop(db);
        if fingerprint(database)? == before {
            return Ok(Some(copy));
        }
    }
    Ok(None)
}

/// The length, modification time and first page of a file.
fn fingerprint(path: &Path) -> std::io::Result<(u64, Option<std::time::SystemTime>, Vec<u8>)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let mut head = Vec::with_capacity(4096);
    (&mut file).take(4096).read_to_end(&mut head)?;
    Ok((meta.len(), meta.modified().ok(), head))
}

/// Runs redb's integrity check on the copy at `copy` of `database`, then walks it.
fn check_copy(database: &Path, copy: &Path, report: &mut RunCheck) {
    let outcome = guard::catch(database, || {
        let mut db = builder().open(copy).at(database)?;
        match db.check_integrity() {
            Ok(true) => report.integrity = Integrity::Verified,
            Ok(false) => {
                report.integrity = Integrity::Failed;
                report.problem(
                    database,
                    "fails the storage engine's integrity check (it could only be repaired by rolling back to an \
                     earlier commit or rebuilding its allocator): keep a copy, then resume or read what is left",
                );
            }
            Err(error) => {
                report.integrity = Integrity::Failed;
                report.problem(database, format!("fails the storage engine's integrity check: {error}"));
                return Ok(());
            }
        }
        walk(&db.begin_read().at(database)?, database, report)
    });
    if let Err(error) = outcome {
        if report.integrity == Integrity::NotRun || report.integrity == Integrity::Verified {
            report.integrity = Integrity::Failed;
        }
        report.problem(database, detail_of(&error));
    }
}

/// The run and progress records, checked; `None` (with a problem reported) when the rest of
/// the file cannot be interpreted without them.
fn read_meta(tx: &ReadTransaction, path: &Path, report: &mut RunCheck) -> Result<Option<(RunRecord, Progress)>> {
    let meta = tx.open_table(META).at(path)?;
    let format = meta.get(KEY_FORMAT).at(path)?.map(|v| v.value().to_vec());
    match format.as_deref().map(<[u8; 4]>::try_from) {
        Some(Ok(bytes)) if u32::from_le_bytes(bytes) <= RUN_FORMAT_VERSION => {}
        Some(Ok(bytes)) => {
            report.problem(
                path,
                format!(
                    "has format version {}, newer than {RUN_FORMAT_VERSION} that this runstore reads: check it with \
                     a newer runstore",
                    u32::from_le_bytes(bytes)
                ),
            );
            return Ok(None);
        }
        _ => {
            report.problem(path, "has no valid format marker");
            return Ok(None);
        }
    }
    let record = match meta.get(KEY_RUN).at(path)?.map(|v| RunRecord::decode(v.value())) {
        Some(Ok(record)) => record,
        Some(Err(corrupt)) => {
            report.problem(path, corrupt.0);
            return Ok(None);
        }
        None => {
            report.problem(path, "has no run record");
            return Ok(None);
        }
    };
    if record.id != report.id {
        report.problem(
            path,
            format!(
                "holds run {:?}, not the run its directory names ({:?}): it was moved or copied",
                record.id, report.id
            ),
        );
    }
    let progress = match meta.get(KEY_PROGRESS).at(path)?.map(|v| Progress::decode(v.value())) {
        Some(Ok(progress)) => progress,
        Some(Err(corrupt)) => {
            report.problem(path, corrupt.0);
            return Ok(None);
        }
        None => {
            report.problem(path, "has no progress record");
            return Ok(None);
        }
    };
    if let Err(corrupt) = RunState::try_from(progress.state) {
        report.problem(path, corrupt.0);
    }
    Ok(Some((record, progress)))
}

/// Reads the journal records that a dead writer left past the mark of `copy` (its database as
/// copied for the check): a note of how many there are, which the next reader or writer folds
/// in, or a problem where one does not decode. The run's files are not changed.
fn check_journal(database: &Path, copy: &Path, report: &mut RunCheck) {
    let read_mark = || {
        let db = builder().open_read_only(copy).at(copy)?;
        let tx = db.begin_read().at(copy)?;
        let meta = tx.open_table(META).at(copy)?;
        let mark = meta.get(KEY_JOURNAL).at(copy)?.map(|bytes| JournalMark::decode(bytes.value()));
        Ok(mark)
    };
    // A database that does not read is check_copy's to report.
    let Ok(Some(mark)) = guard::catch(copy, read_mark) else { return };
    let journal = crate::write::journal::path_for(database);
    let entries = match mark
        .map_err(|corrupt| corrupt.0)
        .and_then(|mark| crate::write::journal::read(database, mark).map_err(|_| "a journal record does not decode"))
    {
        Ok(entries) => entries,
        Err(detail) => {
            report.problem(&journal, format!("{detail}: the rows it holds cannot be read; move it away to resume"));
            return;
        }
    };
    if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
        let detail = format!(
            "holds {} records of rows (steps {} to {}) that the writer logged durably and did not fold \
             into the database before it stopped: the next reader or writer of the run folds them in",
            entries.len(),
            first.step,
            last.step
        );
        report.note(&journal, detail);
    }
}

/// Reads every record and chunk of one snapshot of a run database.
fn walk(tx: &ReadTransaction, path: &Path, report: &mut RunCheck) -> Result<()> {
    let Some((record, progress)) = read_meta(tx, path, report)? else { return Ok(()) };
    let names = read_names(tx, path, report)?;
    check_attempts(tx, path, report, record.forked_from.as_ref().map(|fork| fork.step))?;

    // The live history.
    let fork = record.forked_from.as_ref();
    let mut walker = Walker::new(names.len());
    let rows = tx.open_table(ROWS).at(path)?;
    let points = tx.open_table(POINTS).at(path)?;
    let summaries = tx.open_table(SUMMARIES).at(path)?;
    let outcome = walker.walk(
        |from| Ok(rows.range(from..)?.next().transpose()?.map(|(k, v)| (k.value(), v.value().to_vec()))),
        |step| Ok(rows.range(..=step)?.next_back().transpose()?.map(|(_, v)| v.value().to_vec())),
        |metric, from| {
            let entry = points.range((metric, from)..=(metric, u64::MAX))?.next().transpose()?;
            Ok(entry.map(|(k, v)| (k.value().1, v.value().to_vec())))
        },
        |metric, key| Ok(summaries.get((metric, key))?.map(|v| v.value().to_vec())),
        |known| Ok(points.range((known, 0)..)?.next().transpose()?.map(|(k, _)| k.value().0)),
        |known| Ok(summaries.range((known, 0)..)?.next().transpose()?.map(|(k, _)| k.value().0)),
    );
    if let Err(detail) = outcome {
        report.problem(path, format!("live history: {detail}"));
        return Ok(());
    }
    drop((rows, points, summaries));
    report.chunks += walker.chunks;
    let own_rows = walker.rows;
    if let (Some(fork), Some(first)) = (fork, walker.first_step)
        && first <= fork.step
    {
        report.problem(path, format!("a fork's own history starts at step {first}, at or before its fork step"));
    }
    let last_step = walker.last_step.or_else(|| fork.and_then(|fork| fork.inherited_last));
    if progress.last_step != last_step {
        report.problem(
            path,
            format!("the progress record's last step {:?} is not the history's {last_step:?}", progress.last_step),
        );
    }
    if last_step.is_some_and(|last| progress.next_step <= last) {
        report.problem(path, format!("the next step {} is not after the last step", progress.next_step));
    }
    if fork.is_none() {
        report.rows = own_rows;
        if progress.rows != own_rows {
            report
                .problem(path, format!("the progress record says {} rows, the history has {own_rows}", progress.rows));
        }
        // The summary is each metric's last logged value.
        let stored: BTreeMap<u32, u64> = progress.summary.iter().map(|&(id, value)| (id, value.to_bits())).collect();
        if stored != walker.last_values {
            report.problem(path, "the stored summary is not the last logged value of each metric");
        }
    } else {
        // Checked against the rows read through the parent by `check_fork`.
        report.rows = progress.rows;
    }
    let known = names.len();
    for &(id, _) in progress.summary.iter().chain(&progress.pinned) {
        if id as usize >= known {
            report.problem(path, format!("the summary names metric id {id}, which is not a metric"));
        }
    }

    check_samples(tx, path, report, &names)?;
    check_branches(tx, path, report, known)
}

/// Time-indexed series: every time chunk decodes, is keyed by its first time, belongs to a
/// known `system/` metric, and has the summary of its samples.
fn check_samples(tx: &ReadTransaction, path: &Path, report: &mut RunCheck, names: &[String]) -> Result<()> {
    let chunks = tx.open_table(SAMPLES).at(path)?;
    let summaries = tx.open_table(SAMPLE_SUMMARIES).at(path)?;
    let (mut times, mut values) = (Vec::new(), Vec::new());
    for entry in chunks.iter().at(path)? {
        let (key, bytes) = entry.at(path)?;
        let (metric, first) = key.value();
        let at = |detail: &str| format!("system series {metric}, chunk at time {first}: {detail}");
        if !names.get(metric as usize).is_some_and(|name| name.starts_with(crate::SYSTEM_PREFIX)) {
            report.problem(path, at("it is not a system metric's"));
            return Ok(());
        }
        if let Err(corrupt) = time_chunk::decode(bytes.value(), &mut times, &mut values) {
            report.problem(path, at(corrupt.0));
            return Ok(());
        }
        if times.first() != Some(&first) {
            report.problem(path, at("its key differs from its first time"));
            return Ok(());
        }
        let stored = summaries.get((metric, first)).at(path)?.map(|s| ChunkSummary::decode(s.value()));
        if stored != Some(Ok(ChunkSummary::of(&times, &values))) {
            report.problem(path, at("its summary is missing or does not describe its samples"));
            return Ok(());
        }
        report.chunks += 1;
    }
    Ok(())
}

fn read_names(tx: &ReadTransaction, path: &Path, report: &mut RunCheck) -> Result<Vec<String>> {
    let table = tx.open_table(METRICS).at(path)?;
    let mut names = Vec::new();
    for (expected, entry) in (0u32..).zip(table.iter().at(path)?) {
        let (id, name) = entry.at(path)?;
        if id.value() != expected {
            report.problem(path, format!("metric ids are not dense: {} where {expected} was expected", id.value()));
            break;
        }
        if let Err(error) = validate_metric_name(name.value()) {
            report.problem(path, format!("metric {expected} has a name that cannot be logged: {error}"));
        }
        names.push(name.value().to_string());
    }
    Ok(names)
}

fn check_attempts(tx: &ReadTransaction, path: &Path, report: &mut RunCheck, fork_step: Option<u64>) -> Result<()> {
    // An attempt that logged nothing starts after the last step it ends at; by more than one
    // step only where a rewind (or the fork) left the next step past the last stored row.
    let mut gaps: Vec<u64> = fork_step.into_iter().collect();
    for entry in tx.open_table(BRANCHES).at(path)?.iter().at(path)? {
        if let Ok(branch) = BranchRecord::decode(entry.at(path)?.1.value()) {
            gaps.push(branch.rewound_to);
        }
    }
    let table = tx.open_table(ATTEMPTS).at(path)?;
    let count = table.len().at(path)?;
    report.attempts = u32::try_from(count).unwrap_or(u32::MAX);
    for (expected, entry) in (1u32..).zip(table.iter().at(path)?) {
        let (number, bytes) = entry.at(path)?;
        if number.value() != expected {
            report.problem(
                path,
                format!("attempt numbers are not dense: {} where {expected} was expected", number.value()),
            );
            break;
        }
        match AttemptRecord::decode(bytes.value()) {
            Err(corrupt) => report.problem(path, format!("attempt {expected}: {}", corrupt.0)),
            Ok(record) => {
                if let Some(Err(corrupt)) = record.outcome.map(RunState::try_from) {
                    report.problem(path, format!("attempt {expected}: {}", corrupt.0));
                }
                if record.outcome.is_none() && u64::from(expected) < count {
                    report.problem(path, format!("attempt {expected} was never closed, though a later one began"));
                }
                let reached = record.last_step.map_or(0, |last| last.saturating_add(1));
                if record.outcome.is_some()
                    && record.first_step > reached
                    && !gaps.iter().any(|&to| to.saturating_add(1) == record.first_step)
                {
                    let ended = record.last_step.map_or_else(|| "no step".to_string(), |last| format!("step {last}"));
                    report.problem(
                        path,
                        format!(
                            "attempt {expected} starts at step {} but ended with the run at {ended}, before it",
                            record.first_step
                        ),
                    );
                }
            }
        }
    }
    if count == 0 {
        report.problem(path, "has no attempts");
    }
    Ok(())
}

fn check_branches(tx: &ReadTransaction, path: &Path, report: &mut RunCheck, known: usize) -> Result<()> {
    let records = tx.open_table(BRANCHES).at(path)?;
    let mut branches = BTreeMap::new();
    for (expected, entry) in (0u32..).zip(records.iter().at(path)?) {
        let (id, bytes) = entry.at(path)?;
        if id.value() != expected {
            report.problem(path, format!("branch ids are not dense: {} where {expected} was expected", id.value()));
            break;
        }
        match BranchRecord::decode(bytes.value()) {
            Ok(record) => {
                branches.insert(expected, (record, Walker::new(known)));
            }
            Err(corrupt) => report.problem(path, format!("branch {expected}: {}", corrupt.0)),
        }
    }
    drop(records);
    report.branches = u32::try_from(branches.len()).unwrap_or(u32::MAX);
    let rows = tx.open_table(ARCHIVE_ROWS).at(path)?;
    let points = tx.open_table(ARCHIVE_POINTS).at(path)?;
    let summaries = tx.open_table(ARCHIVE_SUMMARIES).at(path)?;
    let strays = [
        rows.iter().at(path)?.next_back().transpose().at(path)?.map(|(k, _)| k.value().0),
        points.iter().at(path)?.next_back().transpose().at(path)?.map(|(k, _)| k.value().0),
        summaries.iter().at(path)?.next_back().transpose().at(path)?.map(|(k, _)| k.value().0),
    ];
    if let Some(branch) = strays.into_iter().flatten().find(|branch| !branches.contains_key(branch)) {
        report.problem(path, format!("archived chunks of branch {branch}, which has no record"));
        return Ok(());
    }
    for (&branch, (_, walker)) in &mut branches {
        let walked = walker.walk(
            |from| {
                let entry = rows.range((branch, from)..=(branch, u64::MAX))?.next().transpose()?;
                Ok(entry.map(|(k, v)| (k.value().1, v.value().to_vec())))
            },
            |step| {
                let entry = rows.range((branch, 0)..=(branch, step))?.next_back().transpose()?;
                Ok(entry.map(|(_, v)| v.value().to_vec()))
            },
            |metric, from| {
                let entry = points.range((branch, metric, from)..=(branch, metric, u64::MAX))?.next().transpose()?;
                Ok(entry.map(|(k, v)| (k.value().2, v.value().to_vec())))
            },
            |metric, key| Ok(summaries.get((branch, metric, key))?.map(|v| v.value().to_vec())),
            |known| {
                let entry = points.range((branch, known, 0)..=(branch, u32::MAX, u64::MAX))?.next().transpose()?;
                Ok(entry.map(|(k, _)| k.value().1))
            },
            |known| {
                let entry = summaries.range((branch, known, 0)..=(branch, u32::MAX, u64::MAX))?.next().transpose()?;
                Ok(entry.map(|(k, _)| k.value().1))
            },
        );
        if let Err(detail) = walked {
            report.problem(path, format!("branch {branch}: {detail}"));
            return Ok(());
        }
    }
    for (id, (record, walker)) in &branches {
        report.chunks += walker.chunks;
        report.archived_rows += walker.rows;
        let agrees = walker.rows == record.rows
            && walker.first_step == Some(record.first_step)
            && walker.last_step == Some(record.last_step)
            && (record.rewound_to < record.first_step || (record.restarted && record.first_step == 0));
        if !agrees {
            report.problem(
                path,
                format!(
                    "branch {id}: its record (steps {}..={}, {} rows, rewound to {}) does not match its chunks \
                     (steps {:?}..={:?}, {} rows)",
                    record.first_step,
                    record.last_step,
                    record.rows,
                    record.rewound_to,
                    walker.first_step,
                    walker.last_step,
                    walker.rows
                ),
            );
        }
    }
    Ok(())
}

/// A lookup in the chunk tables of one part of a run (live, or one branch).
type Lookup<T> = std::result::Result<T, redb::StorageError>;

/// Walks the chunks of one part of a run: its row chunks in order, then each metric's point
/// chunks, checking keys, order, that every point has a row, and each chunk's summary.
struct Walker {
    known_metrics: usize,
    chunks: u64,
    rows: u64,
    first_step: Option<u64>,
    last_step: Option<u64>,
    /// Each metric's last value (bits), by id.
    last_values: BTreeMap<u32, u64>,
    steps: Vec<u64>,
    times: Vec<u64>,
    values: Vec<f64>,
    /// The row chunk last read to look a point's step up, and its steps.
    row_steps: Vec<u64>,
}

impl Walker {
    fn new(known_metrics: usize) -> Walker {
        Walker {
            known_metrics,
            chunks: 0,
            rows: 0,
            first_step: None,
            last_step: None,
            last_values: BTreeMap::new(),
            steps: Vec::new(),
            times: Vec::new(),
            values: Vec::new(),
            row_steps: Vec::new(),
        }
    }

    /// Walks with lookups: the first row chunk keyed at or after a step; the last row chunk
    /// keyed at or before a step (its bytes); a metric's first point chunk keyed at or after a
    /// step; a point chunk's summary; the first metric id at or after `known_metrics` with a
    /// point chunk, and with a summary (there must be none).
    #[allow(clippy::too_many_arguments)]
    fn walk(
        &mut self,
        next_rows: impl Fn(u64) -> Lookup<Option<(u64, Vec<u8>)>>,
        rows_at: impl Fn(u64) -> Lookup<Option<Vec<u8>>>,
        next_points: impl Fn(u32, u64) -> Lookup<Option<(u64, Vec<u8>)>>,
        summary: impl Fn(u32, u64) -> Lookup<Option<Vec<u8>>>,
        stray_points: impl Fn(u32) -> Lookup<Option<u32>>,
        stray_summaries: impl Fn(u32) -> Lookup<Option<u32>>,
    ) -> std::result::Result<(), String> {
        let storage = |error: redb::StorageError| format!("read error: {error}");
        let corrupt = |corrupt: Corrupt| corrupt.0.to_string();
        let mut from = 0u64;
        while let Some((key, bytes)) = next_rows(from).map_err(storage)? {
            let range = row_chunk::decode(&bytes, &mut self.steps, &mut self.times)
                .map_err(|c| format!("row chunk at step {key}: {}", corrupt(c)))?;
            if range.first_step != key {
                return Err(format!(
                    "row chunk at step {key}: its key differs from its first step {}",
                    range.first_step
                ));
            }
            if let Some(last) = self.last_step.filter(|last| range.first_step <= *last) {
                return Err(format!(
                    "row chunk at step {key} does not start after the previous one's last step {last}"
                ));
            }
            self.chunks += 1;
            self.rows += range.count as u64;
            self.first_step.get_or_insert(range.first_step);
            self.last_step = Some(range.last_step);
            let Some(next) = key.checked_add(1) else { break };
            from = next;
        }
        let known = u32::try_from(self.known_metrics).unwrap_or(u32::MAX);
        for metric in 0..known {
            let mut from = 0u64;
            let mut previous: Option<u64> = None;
            while let Some((key, bytes)) = next_points(metric, from).map_err(storage)? {
                let at = |detail: String| format!("metric {metric}, point chunk at step {key}: {detail}");
                let range =
                    point_chunk::decode(&bytes, &mut self.steps, &mut self.values).map_err(|c| at(corrupt(c)))?;
                if range.first_step != key {
                    return Err(at(format!("its key differs from its first step {}", range.first_step)));
                }
                if let Some(last) = previous.filter(|last| range.first_step <= *last) {
                    return Err(at(format!("it does not start after the previous chunk's last step {last}")));
                }
                previous = Some(range.last_step);
                let stored = summary(metric, key).map_err(storage)?.ok_or_else(|| at("it has no summary".into()))?;
                let stored = ChunkSummary::decode(&stored).map_err(|c| at(corrupt(c)))?;
                if stored != ChunkSummary::of(&self.steps, &self.values) {
                    return Err(at("its summary does not describe its points".into()));
                }
                for index in 0..self.steps.len() {
                    let step = self.steps[index];
                    if !self.has_row(step, &rows_at).map_err(storage)? {
                        return Err(at(format!("it has a point at step {step}, which has no row")));
                    }
                }
                if let Some(&value) = self.values.last() {
                    self.last_values.insert(metric, value.to_bits());
                }
                self.chunks += 1;
                let Some(next) = key.checked_add(1) else { break };
                from = next;
            }
        }
        if let Some(metric) = stray_points(known).map_err(storage)? {
            return Err(format!("it has point chunks of metric id {metric}, which is not a metric"));
        }
        if let Some(metric) = stray_summaries(known).map_err(storage)? {
            return Err(format!("it has chunk summaries of metric id {metric}, which is not a metric"));
        }
        Ok(())
    }

    /// Whether a row exists at `step`, reading the row chunk that would hold it when the one
    /// read last does not cover it.
    fn has_row(&mut self, step: u64, rows_at: impl Fn(u64) -> Lookup<Option<Vec<u8>>>) -> Lookup<bool> {
        let covered = self.row_steps.first().is_some_and(|first| *first <= step)
            && self.row_steps.last().is_some_and(|last| *last >= step);
        if !covered {
            self.row_steps.clear();
            if let Some(bytes) = rows_at(step)? {
                // A chunk that does not decode was reported by the row walk already.
                let _ = row_chunk::decode_steps(&bytes, &mut self.row_steps);
            }
        }
        Ok(self.row_steps.binary_search(&step).is_ok())
    }
}

#[cfg(test)]
mod attempt_tests {
    use redb::ReadableTable;

    use crate::format::records::AttemptRecord;
    use crate::format::tables::ATTEMPTS;
    use crate::{RunOptions, Store};

    fn store_with_steps(dir: &std::path::Path, steps: &[u64]) -> Store {
        let store = Store::open(dir).unwrap();
        let mut run = store.init(RunOptions::new().id("r")).unwrap();
        for &step in steps {
            run.log_at(step, [("v", f64::from(u32::try_from(step).unwrap()))]).unwrap();
        }
        run.finish(0).unwrap();
        store
    }

    #[test]
    fn check_flags_an_attempt_whose_first_step_is_after_its_last() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_steps(dir.path(), &(0..=20).collect::<Vec<_>>());
        assert!(store.check("r").unwrap().is_healthy());
        // What resume_from used to record: an attempt starting where the rewound run had been.
        let db = crate::write::writer::builder().open(store.database_path("r")).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut attempts = tx.open_table(ATTEMPTS).unwrap();
            let mut record = AttemptRecord::decode(attempts.get(1).unwrap().unwrap().value()).unwrap();
            record.first_step = 30;
            attempts.insert(1, record.encode().as_slice()).unwrap();
        }
        tx.commit().unwrap();
        drop(db);
        let report = store.check("r").unwrap();
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(report.problems[0].detail.contains("attempt 1 starts at step 30"), "{}", report.problems[0].detail);
    }

    #[test]
    fn check_accepts_an_empty_attempt_after_a_rewind_between_sparse_steps() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_steps(dir.path(), &[0, 10, 20]);
        store.rewind("r", 15).unwrap();
        // Resumes at 16 with the last row at 10, logs nothing.
        let run = store.init(RunOptions::new().id("r").resume(crate::Resume::Must)).unwrap();
        assert_eq!(run.step(), 16);
        run.finish(0).unwrap();
        let report = store.check("r").unwrap();
        assert!(report.is_healthy(), "{:?}", report.problems);
    }
}
