//! The read-only view of a run: metadata, attempts, and streaming replay of its history.
//!
//! A reader opens the run database read-only in the writer's concurrency mode, so it works
//! while another process writes: each call sees the last committed flush.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use redb::{ReadOnlyDatabase, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::error::{Context, Error, Result};
use crate::format::Corrupt;
use crate::format::block;
use crate::format::records::{AttemptRecord, BranchRecord, ForkOrigin, Progress, RunRecord};
use crate::format::tables::{ATTEMPTS, BRANCHES, KEY_FORMAT, KEY_PROGRESS, KEY_RUN, META, METRICS};
use crate::guard;
use crate::lock;
use crate::read::history::{self, History, Segment, Series, Table};
use crate::state::{Attempt, Branch, RunInfo, RunState};
use crate::sys;
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
        let tx = reader.begin()?;
        let meta = tx.open_table(META).at(path)?;
        check_format(path, meta.get(KEY_FORMAT).at(path)?.as_ref().map(redb::AccessGuard::value))?;
        Ok(reader)
    }

    fn begin(&self) -> Result<ReadTransaction> {
        self.db.begin_read().at(&self.path)
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

    /// Everything about the run but its attempts and history.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] when a record does not decode; [`Error::Storage`] on a read error.
    pub fn info(&self) -> Result<RunInfo> {
        guard::catch(&self.path, || self.info_unguarded())
    }

    fn info_unguarded(&self) -> Result<RunInfo> {
        let tx = self.begin()?;
        let meta = tx.open_table(META).at(&self.path)?;
        let record = RunRecord::decode(self.required(&meta, KEY_RUN)?.as_slice()).at(&self.path)?;
        let mut progress = self.progress(&meta)?;
        let state = self.derive_state(&mut progress)?;
        let names = read_names(&tx, &self.path)?;
        let summary: BTreeMap<String, f64> = progress
            .summary
            .iter()
            .chain(&progress.pinned)
            .map(|&(id, value)| {
                Ok((names.get(id as usize).ok_or(Corrupt("summary names an unknown metric"))?.to_string(), value))
            })
            .collect::<Result<_, Corrupt>>()
            .at(&self.path)?;
        let attempts = u32::try_from(tx.open_table(ATTEMPTS).at(&self.path)?.len().at(&self.path)?).unwrap_or(u32::MAX);
        let branches = u32::try_from(tx.open_table(BRANCHES).at(&self.path)?.len().at(&self.path)?).unwrap_or(u32::MAX);
        Ok(RunInfo {
            id: record.id,
            project: record.project,
            name: record.name,
            tags: record.tags,
            notes: record.notes,
            config: record.config,
            state,
            exit_code: progress.exit_code,
            next_step: progress.next_step,
            last_step: progress.last_step,
            rows: progress.rows,
            summary,
            created_at: sys::from_ms(record.created_at_ms),
            updated_at: sys::from_ms(progress.updated_at_ms),
            attempts,
            branches,
            forked_from: record.forked_from.map(|origin| (origin.run, origin.step)),
        })
    }

    /// The run's state: `crashed` (or `preempted`) when it says running but no process holds
    /// its lock.
    ///
    /// # Errors
    ///
    /// As [`RunReader::info`].
    pub fn state(&self) -> Result<RunState> {
        guard::catch(&self.path, || self.state_unguarded())
    }

    fn state_unguarded(&self) -> Result<RunState> {
        let tx = self.begin()?;
        let meta = tx.open_table(META).at(&self.path)?;
        let mut progress = self.progress(&meta)?;
        self.derive_state(&mut progress)
    }

    /// The process writing the run right now, as it recorded itself; `None` when no process
    /// holds the run's lock.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the lock file cannot be tested.
    pub fn holder(&self) -> Result<Option<crate::LockHolder>> {
        if !lock::is_held(&self.lock_path)? {
            return Ok(None);
        }
        Ok(Some(lock::holder(&self.lock_path).unwrap_or_else(crate::LockHolder::unknown)))
    }

    /// The step the next `log` of this run would use.
    ///
    /// # Errors
    ///
    /// As [`RunReader::info`].
    pub fn next_step(&self) -> Result<u64> {
        guard::catch(&self.path, || self.next_step_unguarded())
    }

    fn next_step_unguarded(&self) -> Result<u64> {
        let tx = self.begin()?;
        let meta = tx.open_table(META).at(&self.path)?;
        Ok(self.progress(&meta)?.next_step)
    }

    fn required(&self, meta: &ReadOnlyTable<&str, &[u8]>, key: &'static str) -> Result<Vec<u8>> {
        let value = meta.get(key).at(&self.path)?;
        Ok(value.ok_or_else(|| Error::corrupt(&self.path, format!("the {key} record is missing")))?.value().to_vec())
    }

    fn progress(&self, meta: &ReadOnlyTable<&str, &[u8]>) -> Result<Progress> {
        Progress::decode(&self.required(meta, KEY_PROGRESS)?).at(&self.path)
    }

    /// Turns a stored live state into crashed/preempted when nobody holds the lock. The
    /// progress is read again after the lock test: a writer that finished in between has
    /// committed its final state before releasing the lock.
    fn derive_state(&self, progress: &mut Progress) -> Result<RunState> {
        let stored = RunState::try_from(progress.state).at(&self.path)?;
        if !stored.is_live() || lock::is_held(&self.lock_path)? {
            return Ok(stored);
        }
        let tx = self.begin()?;
        let meta = tx.open_table(META).at(&self.path)?;
        *progress = self.progress(&meta)?;
        Ok(RunState::try_from(progress.state).at(&self.path)?.without_writer())
    }

    /// The run's attempts, oldest first. The last one of a run whose process died reads as
    /// crashed (or preempted) even before the next attempt closes it.
    ///
    /// # Errors
    ///
    /// As [`RunReader::info`].
    pub fn attempts(&self) -> Result<Vec<Attempt>> {
        guard::catch(&self.path, || self.attempts_unguarded())
    }

    fn attempts_unguarded(&self) -> Result<Vec<Attempt>> {
        let tx = self.begin()?;
        let table = tx.open_table(ATTEMPTS).at(&self.path)?;
        let mut attempts = Vec::new();
        for entry in table.iter().at(&self.path)? {
            let (number, bytes) = entry.at(&self.path)?;
            let record = AttemptRecord::decode(bytes.value()).at(&self.path)?;
            attempts.push(Attempt {
                number: number.value(),
                started_at: sys::from_ms(record.started_at_ms),
                host: record.host,
                pid: record.pid,
                first_step: record.first_step,
                ended_at: record.ended_at_ms.map(sys::from_ms),
                last_step: record.last_step,
                outcome: record.outcome.map(RunState::try_from).transpose().at(&self.path)?,
                exit_code: record.exit_code,
            });
        }
        drop(table);
        drop(tx);
        if let Some(last) = attempts.last_mut().filter(|attempt| attempt.outcome.is_none()) {
            let state = self.state()?;
            if !state.is_live() {
                last.outcome = Some(state);
            }
        }
        Ok(attempts)
    }

    /// The names of the run's metrics, in the order they were first logged.
    ///
    /// # Errors
    ///
    /// As [`RunReader::info`].
    pub fn metrics(&self) -> Result<Vec<String>> {
        guard::catch(&self.path, || self.metrics_unguarded())
    }

    fn metrics_unguarded(&self) -> Result<Vec<String>> {
        let tx = self.begin()?;
        Ok(read_names(&tx, &self.path)?.iter().map(ToString::to_string).collect())
    }

    /// Streams the rows whose steps fall in `steps`, in step order, from the last committed
    /// flush. Memory stays bounded by one block, whatever the history's length. A fork's rows
    /// up to its fork step come from its parent.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] on a read error, [`Error::Corrupt`] when a fork's parent is missing;
    /// the rows yield [`Error::Corrupt`] for a block that does not decode.
    pub fn history(&self, steps: impl RangeBounds<u64>) -> Result<History> {
        guard::catch(&self.path, || self.history_unguarded(steps))
    }

    fn history_unguarded(&self, steps: impl RangeBounds<u64>) -> Result<History> {
        let (first, last) = bounds(&steps);
        let names = self.names()?;
        let source = Some((Arc::clone(&self.db), self.path.clone()));
        Ok(History::new(history::narrow(self.live_segments()?, first, last), names, source))
    }

    /// Streams one metric's `(step, value)` points in step order, for steps in `steps`. Only
    /// that metric's column is decoded. An unknown metric yields nothing.
    ///
    /// # Errors
    ///
    /// As [`RunReader::history`].
    pub fn series(&self, metric: &str, steps: impl RangeBounds<u64>) -> Result<Series> {
        guard::catch(&self.path, || self.series_unguarded(metric, steps))
    }

    fn series_unguarded(&self, metric: &str, steps: impl RangeBounds<u64>) -> Result<Series> {
        let (first, last) = bounds(&steps);
        let names = self.names()?;
        let id = names.iter().position(|name| &**name == metric).and_then(|id| u32::try_from(id).ok());
        Ok(Series::new(history::narrow(self.live_segments()?, first, last), id))
    }

    /// The run's archived branches: the rows each rewind moved out of the live history.
    ///
    /// # Errors
    ///
    /// As [`RunReader::info`].
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
    /// let reader = store.open_run("r")?;
    /// let branches = reader.branches()?;
    /// assert_eq!((branches[0].first_step, branches[0].last_step, branches[0].rows), (1001, 1199, 199));
    /// assert_eq!(reader.branch_history(branches[0].id, ..)?.count(), 199);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn branches(&self) -> Result<Vec<Branch>> {
        guard::catch(&self.path, || self.branches_unguarded())
    }

    fn branches_unguarded(&self) -> Result<Vec<Branch>> {
        Ok(self.branch_records()?.into_iter().map(|(id, record)| Branch::from_record(id, record)).collect())
    }

    fn branch_records(&self) -> Result<Vec<(u32, BranchRecord)>> {
        let tx = self.begin()?;
        let table = tx.open_table(BRANCHES).at(&self.path)?;
        let mut branches = Vec::new();
        for entry in table.iter().at(&self.path)? {
            let (id, bytes) = entry.at(&self.path)?;
            branches.push((id.value(), BranchRecord::decode(bytes.value()).at(&self.path)?));
        }
        Ok(branches)
    }

    /// Streams the rows of archived branch `branch` whose steps fall in `steps`.
    ///
    /// # Errors
    ///
    /// [`Error::BranchNotFound`] for an unknown branch, else as [`RunReader::history`].
    pub fn branch_history(&self, branch: u32, steps: impl RangeBounds<u64>) -> Result<History> {
        guard::catch(&self.path, || self.branch_history_unguarded(branch, steps))
    }

    fn branch_history_unguarded(&self, branch: u32, steps: impl RangeBounds<u64>) -> Result<History> {
        let (first, last) = bounds(&steps);
        let segment = self.branch_segment(branch)?;
        let source = Some((Arc::clone(&self.db), self.path.clone()));
        Ok(History::new(history::narrow(vec![segment], first, last), self.names()?, source))
    }

    /// Streams one metric's points in archived branch `branch`, for steps in `steps`.
    ///
    /// # Errors
    ///
    /// As [`RunReader::branch_history`].
    pub fn branch_series(&self, branch: u32, metric: &str, steps: impl RangeBounds<u64>) -> Result<Series> {
        let (first, last) = bounds(&steps);
        let segment = self.branch_segment(branch)?;
        let id = self.names()?.iter().position(|name| &**name == metric).and_then(|id| u32::try_from(id).ok());
        Ok(Series::new(history::narrow(vec![segment], first, last), id))
    }

    fn branch_segment(&self, branch: u32) -> Result<Segment> {
        let record = self
            .branch_records()?
            .into_iter()
            .find(|(id, _)| *id == branch)
            .map(|(_, record)| record)
            .ok_or_else(|| Error::BranchNotFound { id: self.id.clone(), branch })?;
        Ok(Segment {
            db: Arc::clone(&self.db),
            path: self.path.clone(),
            table: Table::Archive(branch),
            first: record.first_step,
            last: record.last_step,
        })
    }

    /// What a fork of this run at step `at` starts from: the metric names, the branch count,
    /// the last row at or before `at`, the rows up to `at`, and each metric's value there.
    /// Reads block headers backwards from `at` until every metric is found, and forwards after
    /// `at` to count rows; it copies nothing.
    pub(crate) fn fork_origin(&self, at: u64) -> Result<(ForkOrigin, Vec<String>, u64)> {
        guard::catch(&self.path, || self.fork_origin_unguarded(at))
    }

    fn fork_origin_unguarded(&self, at: u64) -> Result<(ForkOrigin, Vec<String>, u64)> {
        let info = self.info()?;
        if info.last_step.is_none_or(|last| at > last) {
            return Err(Error::BeyondHistory { id: self.id.clone(), requested: at, last: info.last_step });
        }
        let names = self.metrics()?;
        let parent_branches = self.branch_records()?.last().map_or(0, |(id, _)| id + 1);
        let segments = self.live_segments()?;
        let mut missing: Vec<u32> = (0..u32::try_from(names.len()).unwrap_or(u32::MAX)).collect();
        let mut summary = Vec::new();
        let mut inherited_last = None;
        let (mut ids, mut steps, mut values, mut points) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for segment in history::narrow(segments.clone(), 0, at).iter().rev() {
            if missing.is_empty() && inherited_last.is_some() {
                break;
            }
            let path = segment.path.clone();
            segment.visit_backwards(|bytes| {
                let header = block::decode_steps(bytes, &mut steps).at(&path)?;
                let within = |step: &u64| *step >= segment.first && *step <= segment.last;
                if inherited_last.is_none() {
                    inherited_last = steps.iter().rev().copied().find(within);
                }
                block::metric_ids(bytes, &mut ids).at(&path)?;
                for metric in ids.iter().copied().filter(|id| missing.contains(id)).collect::<Vec<_>>() {
                    points.clear();
                    block::decode_metric(bytes, metric, &mut steps, &mut values, &mut points).at(&path)?;
                    if let Some(&(_, value)) = points.iter().rev().find(|(step, _)| within(step)) {
                        summary.push((metric, value));
                        missing.retain(|id| *id != metric);
                    }
                }
                Ok(!(missing.is_empty() && inherited_last.is_some()) && header.first_step > segment.first)
            })?;
        }
        let after = history::count_rows(history::narrow(segments, at.saturating_add(1), u64::MAX))?;
        summary.sort_unstable_by_key(|&(id, _)| id);
        let origin =
            ForkOrigin { run: self.id.clone(), step: at, parent_branches, inherited_last, inherited_summary: summary };
        Ok((origin, names, info.rows.saturating_sub(after)))
    }

    fn record(&self) -> Result<RunRecord> {
        let tx = self.begin()?;
        let meta = tx.open_table(META).at(&self.path)?;
        RunRecord::decode(self.required(&meta, KEY_RUN)?.as_slice()).at(&self.path)
    }

    fn names(&self) -> Result<Vec<Arc<str>>> {
        read_names(&self.begin()?, &self.path)
    }

    /// The segments of this run's live history.
    fn live_segments(&self) -> Result<Vec<Segment>> {
        let own = |first| Segment {
            db: Arc::clone(&self.db),
            path: self.path.clone(),
            table: Table::Live,
            first,
            last: u64::MAX,
        };
        match self.record()?.forked_from {
            None => Ok(vec![own(0)]),
            Some(origin) => {
                let mut segments = self.ancestor_view(&origin.run, origin.step, origin.parent_branches, 0)?;
                segments.push(own(origin.step.saturating_add(1)));
                Ok(segments)
            }
        }
    }

    /// The segments of run `id`'s history up to `upto` as it was when it had `epoch` branches:
    /// rows its later rewinds archived are read from those branches.
    fn ancestor_view(&self, id: &str, upto: u64, epoch: u32, depth: u32) -> Result<Vec<Segment>> {
        if depth > 64 {
            return Err(Error::corrupt(&self.path, "fork ancestry is deeper than 64 runs"));
        }
        let missing = || {
            Error::corrupt(&self.path, format!("the run inherits its history from run {id:?}, which cannot be read"))
        };
        crate::id::validate_run_id(id).map_err(|_| missing())?;
        let dir = self.runs_dir.join(id);
        let path = dir.join(crate::store::DATABASE);
        if !path.is_file() {
            return Err(missing());
        }
        let parent = RunReader::open(id, &path, &dir.join(crate::store::LOCK), &self.runs_dir)?;
        let mut cut = upto;
        let mut archived = Vec::new();
        for (branch, record) in parent.branch_records()? {
            if branch >= epoch && record.rewound_to < cut {
                archived.push(Segment {
                    db: Arc::clone(&parent.db),
                    path: parent.path.clone(),
                    table: Table::Archive(branch),
                    first: record.rewound_to.saturating_add(1),
                    last: cut,
                });
                cut = record.rewound_to;
            }
        }
        let live = |first| Segment {
            db: Arc::clone(&parent.db),
            path: parent.path.clone(),
            table: Table::Live,
            first,
            last: cut,
        };
        let mut segments = match parent.record()?.forked_from {
            None => vec![live(0)],
            Some(origin) if cut <= origin.step => {
                parent.ancestor_view(&origin.run, cut, origin.parent_branches, depth + 1)?
            }
            Some(origin) => {
                let mut segments = parent.ancestor_view(&origin.run, origin.step, origin.parent_branches, depth + 1)?;
                segments.push(live(origin.step.saturating_add(1)));
                segments
            }
        };
        archived.reverse();
        segments.extend(archived);
        Ok(segments)
    }
}

fn bounds(steps: &impl RangeBounds<u64>) -> (u64, u64) {
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
                match lock::RunLock::acquire_quietly(lock_path) {
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
