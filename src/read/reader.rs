//! The read-only view of a run: metadata, attempts, and streaming replay of its history.
//!
//! A reader opens the run database read-only in the writer's concurrency mode, so it works
//! while another process writes. Every read goes through a [`RunSnapshot`]: each call of a
//! reader takes a new one and sees the last committed flush; a snapshot taken once answers
//! several questions from one commit.

use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use redb::{ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::error::{Context, Error, Result};
use crate::format::tables::{KEY_FORMAT, META, METRICS};
use crate::guard;
use crate::lock;
use crate::read::history::{History, Series};
use crate::read::snapshot::RunSnapshot;
use crate::state::{Attempt, Branch, RunInfo, RunState};
use crate::write::writer::{builder, check_format};

/// How long a reader waits for a live writer to finish recovering a crashed database.
const RECOVERY_WAIT: Duration = Duration::from_secs(5);

/// A read-only view of one run, safe to use while another process writes it.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use runstore::{RunOptions, Store};
///
/// let store = Store::open(dir.path())?;
/// let mut run = store.init(RunOptions::new().id("r"))?;
/// for step in 0..5 {
///     run.log([("loss", 1.0 / (step as f64 + 1.0))])?;
/// }
/// run.finish(0)?;
///
/// let reader = store.open_run("r")?;
/// let steps: Vec<u64> = reader.series("loss", ..)?.map(|point| point.map(|(step, _)| step)).collect::<Result<_, _>>()?;
/// assert_eq!(steps, [0, 1, 2, 3, 4]);
/// for row in reader.history(3..)? {
///     let row = row?;
///     assert!(row.get("loss").is_some());
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RunReader {
    id: String,
    path: PathBuf,
    lock_path: PathBuf,
    runs_dir: PathBuf,
    db: Arc<ReadOnlyDatabase>,
}

impl std::fmt::Debug for RunReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunReader").field("id", &self.id).field("path", &self.path).finish_non_exhaustive()
    }
}

impl RunReader {
    /// Opens the run database at `path`; `lock_path` is its lock file.
    pub(crate) fn open(id: &str, path: &Path, lock_path: &Path, runs_dir: &Path) -> Result<RunReader> {
        guard::catch(path, || RunReader::open_unguarded(id, path, lock_path, runs_dir))
    }

    fn open_unguarded(id: &str, path: &Path, lock_path: &Path, runs_dir: &Path) -> Result<RunReader> {
        let db = Arc::new(open_read_only(path, lock_path)?);
        let reader = RunReader {
            id: id.to_string(),
            path: path.to_path_buf(),
            lock_path: lock_path.to_path_buf(),
            runs_dir: runs_dir.to_path_buf(),
            db,
        };
        let tx = reader.db.begin_read().at(path)?;
        let meta = tx.open_table(META).at(path)?;
        check_format(path, meta.get(KEY_FORMAT).at(path)?.as_ref().map(redb::AccessGuard::value))?;
        Ok(reader)
    }

    /// The run id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The run database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A consistent view of the run as of now: every answer it gives comes from one commit
    /// (see [`RunSnapshot`]). Read through one snapshot whatever must agree.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] when a record does not decode or a fork's parent is missing;
    /// [`Error::Storage`] on a read error; [`Error::Io`] when the lock cannot be tested.
    pub fn snapshot(&self) -> Result<RunSnapshot> {
        RunSnapshot::take(self)
    }

    pub(crate) fn database(&self) -> &ReadOnlyDatabase {
        &self.db
    }

    pub(crate) fn lock_path(&self) -> &Path {
        &self.lock_path
    }

    pub(crate) fn runs_dir(&self) -> &Path {
        &self.runs_dir
    }

    /// Everything about the run but its attempts and history, from a new snapshot.
    ///
    /// # Errors
    ///
    /// As [`RunReader::snapshot`].
    pub fn info(&self) -> Result<RunInfo> {
        self.snapshot()?.info()
    }

    /// The run's state, from a new snapshot: `crashed` (or `preempted`) when it says running but
    /// no process holds its lock.
    ///
    /// # Errors
    ///
    /// As [`RunReader::snapshot`].
    pub fn state(&self) -> Result<RunState> {
        self.snapshot()?.state()
    }

    /// The process writing the run right now, as it recorded itself; `None` when no process
    /// holds the run's lock.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the lock file cannot be tested.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let mut run = store.init(runstore::RunOptions::new().id("r"))?;
    /// run.log([("loss", 1.0)])?;
    /// run.flush()?;
    /// let reader = store.open_run("r")?;
    /// assert_eq!(reader.holder()?.map(|holder| holder.pid), Some(std::process::id()));
    /// assert_eq!(reader.next_step()?, 1);
    /// run.finish(0)?;
    /// assert_eq!(reader.holder()?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn holder(&self) -> Result<Option<crate::LockHolder>> {
        if !lock::is_held(&self.lock_path)? {
            return Ok(None);
        }
        Ok(Some(lock::holder(&self.lock_path).unwrap_or_else(crate::LockHolder::unknown)))
    }

    /// The step the next `log` of this run would use, from a new snapshot.
    ///
    /// # Errors
    ///
    /// As [`RunReader::snapshot`]. See [`RunReader::holder`] for an example.
    pub fn next_step(&self) -> Result<u64> {
        Ok(self.snapshot()?.next_step())
    }

    /// The run's attempts, oldest first, from a new snapshot (see [`RunSnapshot::attempts`]).
    ///
    /// # Errors
    ///
    /// As [`RunReader::snapshot`].
    pub fn attempts(&self) -> Result<Vec<Attempt>> {
        self.snapshot()?.attempts()
    }

    /// The names of the run's metrics, in the order they were first logged.
    ///
    /// # Errors
    ///
    /// As [`RunReader::snapshot`].
    pub fn metrics(&self) -> Result<Vec<String>> {
        self.snapshot()?.metrics()
    }

    /// Streams the rows whose steps fall in `steps`, in step order, from a new snapshot that
    /// the history keeps for its whole life: rows committed, rewound or archived after this
    /// call do not change what it yields. Memory stays bounded by one chunk per metric, whatever the
    /// history's length. A fork's rows up to its fork step come from its parent.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] on a read error, [`Error::Corrupt`] when a fork's parent is missing;
    /// the rows yield [`Error::Corrupt`] for a chunk that does not decode.
    pub fn history(&self, steps: impl RangeBounds<u64>) -> Result<History> {
        self.snapshot()?.history(steps)
    }

    /// As [`RunReader::history`], reading only the metrics named (see
    /// [`RunSnapshot::history_of`](crate::RunSnapshot::history_of)).
    ///
    /// # Errors
    ///
    /// As [`RunReader::history`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let mut run = store.init(runstore::RunOptions::new().id("w"))?;
    /// run.log([("loss", 0.5), ("acc", 0.1)])?;
    /// run.log([("acc", 0.2)])?;
    /// run.finish(0)?;
    /// let rows: Vec<_> = store.open_run("w")?.history_of(&["loss"], ..)?.collect::<Result<_, _>>()?;
    /// assert_eq!(rows.len(), 2);
    /// assert_eq!((rows[0].get("loss"), rows[0].get("acc"), rows[1].get("loss")), (Some(0.5), None, None));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn history_of<S: AsRef<str>>(&self, metrics: &[S], steps: impl RangeBounds<u64>) -> Result<History> {
        self.snapshot()?.history_of(metrics, steps)
    }

    /// Streams one metric's `(step, value)` points in step order, for steps in `steps`. Only
    /// that metric's column is decoded. An unknown metric yields nothing.
    ///
    /// # Errors
    ///
    /// As [`RunReader::history`].
    pub fn series(&self, metric: &str, steps: impl RangeBounds<u64>) -> Result<Series> {
        self.snapshot()?.series(metric, steps)
    }

    /// As [`RunReader::series`], with the time each point's row was logged: `(step, time,
    /// value)`.
    ///
    /// # Errors
    ///
    /// As [`RunReader::history`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let mut run = store.init(runstore::RunOptions::new().id("t"))?;
    /// run.log([("loss", 0.5)])?;
    /// run.finish(0)?;
    /// let (step, time, loss) = store.open_run("t")?.series_with_time("loss", ..)?.next().unwrap()?;
    /// assert_eq!((step, loss), (0, 0.5));
    /// assert!(time <= std::time::SystemTime::now());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn series_with_time(&self, metric: &str, steps: impl RangeBounds<u64>) -> Result<crate::TimedSeries> {
        self.snapshot()?.series_with_time(metric, steps)
    }

    /// The samples of the time-indexed series `metric` (a system metric, see
    /// [`crate::Run::log_system`]) taken in `times`, in time order.
    ///
    /// # Errors
    ///
    /// As [`RunReader::history`].
    pub fn system(
        &self,
        metric: &str,
        times: impl RangeBounds<std::time::SystemTime>,
    ) -> Result<Vec<(std::time::SystemTime, f64)>> {
        self.snapshot()?.system(metric, times)
    }

    /// The run's checkpoints in the order recorded (see [`crate::Run::checkpoint`]), each with
    /// whether its path exists now.
    ///
    /// # Errors
    ///
    /// As [`RunReader::snapshot`]. See [`crate::Checkpoint`] for an example.
    pub fn checkpoints(&self) -> Result<Vec<crate::Checkpoint>> {
        self.snapshot()?.checkpoints()
    }

    /// The newest live checkpoint whose path exists, and the newer ones skipped because their
    /// paths are gone: what a resume from checkpoint restarts from.
    ///
    /// # Errors
    ///
    /// As [`RunReader::snapshot`].
    pub fn latest_checkpoint(&self) -> Result<crate::CheckpointChoice> {
        self.snapshot()?.latest_checkpoint()
    }

    /// The run's archived branches: the rows each rewind moved out of the live history.
    ///
    /// # Errors
    ///
    /// As [`RunReader::snapshot`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use runstore::{Resume, RunOptions, Store};
    ///
    /// let store = Store::open(dir.path())?;
    /// let mut run = store.init(RunOptions::new().id("r"))?;
    /// for step in 0..1200 {
    ///     run.log([("loss", 1.0 / (1.0 + step as f64))])?;
    /// }
    /// drop(run); // crashed at 1200; the checkpoint is from step 1000
    ///
    /// let run = store.init(RunOptions::new().id("r").resume(Resume::Must).resume_from(1000))?;
    /// assert_eq!(run.step(), 1001);
    /// drop(run);
    /// let snapshot = store.open_run("r")?.snapshot()?;
    /// let branches = snapshot.branches()?;
    /// assert_eq!((branches[0].first_step, branches[0].last_step, branches[0].rows), (1001, 1199, 199));
    /// assert_eq!(snapshot.branch_history(branches[0].id, ..)?.count(), 199);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn branches(&self) -> Result<Vec<Branch>> {
        self.snapshot()?.branches()
    }

    /// Streams the rows of archived branch `branch` whose steps fall in `steps`.
    ///
    /// # Errors
    ///
    /// [`Error::BranchNotFound`] for an unknown branch, else as [`RunReader::history`].
    pub fn branch_history(&self, branch: u32, steps: impl RangeBounds<u64>) -> Result<History> {
        self.snapshot()?.branch_history(branch, steps)
    }

    /// Streams one metric's points in archived branch `branch`, for steps in `steps`.
    ///
    /// # Errors
    ///
    /// As [`RunReader::branch_history`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let mut run = store.init(runstore::RunOptions::new().id("r"))?;
    /// for step in 0..10 {
    ///     run.log([("loss", f64::from(step))])?;
    /// }
    /// run.rewind(6)?;
    /// run.finish(0)?;
    /// let archived: Vec<(u64, f64)> = store.open_run("r")?.branch_series(0, "loss", ..)?.collect::<Result<_, _>>()?;
    /// assert_eq!(archived, [(7, 7.0), (8, 8.0), (9, 9.0)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn branch_series(&self, branch: u32, metric: &str, steps: impl RangeBounds<u64>) -> Result<Series> {
        self.snapshot()?.branch_series(branch, metric, steps)
    }

    /// Every metric's count, ends and extremes from chunk summaries, from a new snapshot (see
    /// [`RunSnapshot::metric_stats`]).
    ///
    /// # Errors
    ///
    /// As [`RunSnapshot::metric_stats`].
    pub fn metric_stats(&self) -> Result<Vec<crate::MetricStats>> {
        self.snapshot()?.metric_stats()
    }

    /// `metric`'s points in `steps` reduced to about `buckets` buckets, from a new snapshot
    /// (see [`RunSnapshot::envelope`]).
    ///
    /// # Errors
    ///
    /// As [`RunSnapshot::envelope`].
    pub fn envelope(&self, metric: &str, steps: impl RangeBounds<u64>, buckets: usize) -> Result<crate::Envelope> {
        self.snapshot()?.envelope(metric, steps, buckets)
    }

    /// As [`RunReader::envelope`], in archived branch `branch` (see
    /// [`RunSnapshot::branch_envelope`]).
    ///
    /// # Errors
    ///
    /// As [`RunSnapshot::branch_envelope`].
    pub fn branch_envelope(
        &self,
        branch: u32,
        metric: &str,
        steps: impl RangeBounds<u64>,
        buckets: usize,
    ) -> Result<crate::Envelope> {
        self.snapshot()?.branch_envelope(branch, metric, steps, buckets)
    }
}

pub(crate) fn bounds(steps: &impl RangeBounds<u64>) -> (u64, u64) {
    let first = match steps.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let last = match steps.end_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&0) => return (1, 0),
        Bound::Excluded(&s) => s - 1,
        Bound::Unbounded => u64::MAX,
    };
    (first, last)
}

pub(crate) fn read_names(tx: &ReadTransaction, path: &Path) -> Result<Vec<Arc<str>>> {
    let table = tx.open_table(METRICS).at(path)?;
    let mut names = Vec::with_capacity(usize::try_from(table.len().at(path)?).unwrap_or(0));
    for (expected, entry) in table.iter().at(path)?.enumerate() {
        let (id, name) = entry.at(path)?;
        if id.value() as usize != expected {
            return Err(Error::corrupt(path, "metric ids are not dense"));
        }
        names.push(Arc::from(name.value()));
    }
    Ok(names)
}

/// Opens a run database read-only. A database left by a dead writer needs recovery, which only
/// a writing open performs: take the run's lock briefly to do it, or wait for the live writer.
fn open_read_only(path: &Path, lock_path: &Path) -> Result<ReadOnlyDatabase> {
    let deadline = std::time::Instant::now() + RECOVERY_WAIT;
    loop {
        match builder().open_read_only(path) {
            Ok(db) => return Ok(db),
            Err(redb::DatabaseError::RepairAborted) => {
                match lock::RunLock::acquire_quietly(lock_path, "a reader recovering the database its writer left") {
                    Ok(_lock) => {
                        drop(builder().open(path).at(path)?);
                        continue;
                    }
                    // The live writer recovers it: wait below.
                    Err(Error::RunLocked { .. }) => {}
                    // Nobody holds the lock and we cannot take it (a read-only store, no write
                    // permission): no process here can recover the database, so say why now.
                    Err(Error::Io { path: lock_file, source }) => {
                        let reason = format!("{source}: the run's writer died and recovering it needs write access");
                        return Err(Error::Io { path: lock_file, source: std::io::Error::new(source.kind(), reason) });
                    }
                    Err(error) => return Err(error),
                }
                if std::time::Instant::now() >= deadline {
                    return Err(Error::corrupt(path, "the database needs recovery and its writer does not finish it"));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(error) => return Err(Error::storage(path, error)),
        }
    }
}
