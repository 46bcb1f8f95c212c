//! One consistent view of a run: every read of the reading side goes through a [`RunSnapshot`].
//!
//! A snapshot is one redb read transaction on the run's file, begun while the run's lock is
//! probed (under a shared lock when no writer holds it, so that no writer can start and commit
//! before the transaction has begun), and for a fork the read transactions of its ancestors,
//! each begun after its descendant's. Everything a snapshot answers — records, state, attempts,
//! names, branches, history — comes from those transactions, so two answers never straddle a
//! commit, a rewind or a finish. The rule and the proof of the order are in docs/design.md
//! ("One snapshot per read").

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use redb::{ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use crate::checkpoint::{Checkpoint, CheckpointChoice};
use crate::error::{Context, Error, Result};
use crate::format::Corrupt;
use crate::format::records::{AttemptRecord, BranchRecord, ForkOrigin, Progress, RunRecord};
use crate::format::tables::SAMPLES;
use crate::format::tables::{ATTEMPTS, BRANCHES, KEY_FORMAT, KEY_JOURNAL, KEY_PROGRESS, KEY_RUN, META};
use crate::format::{point_chunk, row_chunk, time_chunk};
use crate::guard;
use crate::lock;
use crate::read::chunks::SegmentTables;
use crate::read::history::{self, History, Segment, Series, Table, TimedSeries};
use crate::read::reader::{RunReader, bounds, read_names};
use crate::state::{Attempt, Branch, RunInfo, RunState};
use crate::sys;
use crate::write::writer::{check_format, read_checkpoints};

/// A fork's ancestry deeper than this is taken for damage (a cycle, most likely).
const MAX_ANCESTRY: u32 = 64;

/// One consistent view of a run, as of one commit: take it with [`RunReader::snapshot`].
///
/// Every answer comes from the same commit, interpreted with the same test of the run's lock,
/// however long the snapshot is kept and whatever a live writer does meanwhile. The histories
/// it streams keep their snapshot for their whole life. A snapshot keeps the pages of its commit
/// from being reused, so a long-kept one makes a live run's file grow: take a new one to follow
/// a live run.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use runstore::{RunOptions, RunState, Store};
///
/// let store = Store::open(dir.path())?;
/// let mut run = store.init(RunOptions::new().id("r"))?;
/// run.log([("loss", 0.5)])?;
/// run.flush()?;
///
/// let snapshot = store.open_run("r")?.snapshot()?;
/// run.log([("loss", 0.25), ("acc", 0.9)])?;
/// run.finish(0)?;
/// // The snapshot still sees the run as it was: live, one row, one metric.
/// assert_eq!(snapshot.state()?, RunState::Running);
/// assert_eq!((snapshot.info()?.rows, snapshot.metrics()?), (1, vec!["loss".to_string()]));
/// assert_eq!(snapshot.history(..)?.count(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RunSnapshot {
    id: String,
    path: PathBuf,
    lock_path: PathBuf,
    tx: Arc<ReadTransaction>,
    /// Whether a process held the run's lock when the transaction began.
    held: bool,
    /// Why the lock could not be probed, where the filesystem's lock calls fail: the fields of
    /// [`Error::LocksUnsupported`].
    lock_failure: Option<(PathBuf, String, String)>,
    record: RunRecord,
    progress: Progress,
    names: Vec<Arc<str>>,
    /// The live history: a fork's inherited segments (from its ancestors' transactions), then
    /// its own.
    segments: Vec<Segment>,
}

/// Folds the journal records a dead writer left into the run's database, standing in for the
/// writer under the run's lock. Anything in the way (a writer that started
/// meanwhile, a store this process may not write) leaves the records to the next writer, and
/// the reader reads what the database holds.
fn fold_journal_left(reader: &RunReader) {
    if let Ok(_lock) =
        lock::RunLock::acquire_quietly(reader.lock_path(), "a reader folding the journal its writer left")
    {
        // An error leaves the records where they are; the next writer reports it.
        let _ = crate::write::writer::Writer::open(reader.path());
    }
}

impl std::fmt::Debug for RunSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunSnapshot").field("id", &self.id).field("held", &self.held).finish_non_exhaustive()
    }
}

impl RunSnapshot {
    /// Takes a snapshot of the run `reader` reads. When a writer that died left journal records
    /// not folded into the database (see `crate::write::journal`), the reader stands in for it
    /// and folds them first, so that every row the writer acknowledged reads.
    pub(crate) fn take(reader: &RunReader) -> Result<RunSnapshot> {
        let (snapshot, journal_left) = RunSnapshot::take_once(reader)?;
        if !journal_left {
            return Ok(snapshot);
        }
        // Not kept across the fold: its transaction would pin the pages the fold replaces.
        drop(snapshot);
        fold_journal_left(reader);
        Ok(RunSnapshot::take_once(reader)?.0)
    }

    /// A snapshot of the database as it is, without folding a dead writer's journal (for
    /// `check`, which changes nothing).
    pub(crate) fn take_as_is(reader: &RunReader) -> Result<RunSnapshot> {
        Ok(RunSnapshot::take_once(reader)?.0)
    }

    /// A snapshot, and whether its commit has journal records that a dead writer left.
    fn take_once(reader: &RunReader) -> Result<(RunSnapshot, bool)> {
        let path = reader.path();
        guard::catch(path, || {
            let begin = || reader.database().begin_read().at(path);
            // Where the lock call fails (a filesystem without working locks), the run still
            // reads; only whether it is live cannot be known, and `state` says so for a run that
            // is stored as running.
            let (held, tx, lock_failure) = match lock::probe(reader.lock_path(), begin) {
                Ok((held, tx)) => (held, tx, None),
                Err(Error::LocksUnsupported { path, fs, reason }) => (false, begin()?, Some((path, fs, reason))),
                Err(error) => return Err(error),
            };
            let tx = Arc::new(tx);
            let meta = tx.open_table(META).at(path)?;
            check_format(path, meta.get(KEY_FORMAT).at(path)?.as_ref().map(redb::AccessGuard::value))?;
            let record = RunRecord::decode(&required(&meta, KEY_RUN, path)?).at(path)?;
            let progress = Progress::decode(&required(&meta, KEY_PROGRESS, path)?).at(path)?;
            // Where locks do not work, a writer may be live: its journal is its own.
            let journal_left = !held && lock_failure.is_none() && meta.get(KEY_JOURNAL).at(path)?.is_some();
            drop(meta);
            let names = read_names(&tx, path)?;
            let own = |first| Segment {
                tx: Arc::clone(&tx),
                path: path.to_path_buf(),
                table: Table::Live,
                first,
                last: u64::MAX,
                runtime_offset: 0,
            };
            let segments = match &record.forked_from {
                None => vec![own(0)],
                Some(origin) => {
                    let mut segments =
                        ancestor_view(reader.runs_dir(), path, &origin.run, origin.step, origin.parent_branches, 0)?;
                    segments.push(own(origin.step.saturating_add(1)));
                    segments
                }
            };
            let snapshot = RunSnapshot {
                id: reader.id().to_string(),
                path: path.to_path_buf(),
                lock_path: reader.lock_path().to_path_buf(),
                tx,
                held,
                lock_failure,
                record,
                progress,
                names,
                segments,
            };
            Ok((snapshot, journal_left))
        })
    }

    /// The run id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
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
        let path = &self.path;
        let progress = &self.progress;
        let summary: BTreeMap<String, f64> = progress
            .summary
            .iter()
            .chain(&progress.pinned)
            .map(|&(id, value)| {
                Ok((self.names.get(id as usize).ok_or(Corrupt("summary names an unknown metric"))?.to_string(), value))
            })
            .collect::<Result<_, Corrupt>>()
            .at(path)?;
        let attempts = u32::try_from(self.tx.open_table(ATTEMPTS).at(path)?.len().at(path)?).unwrap_or(u32::MAX);
        let branches = u32::try_from(self.tx.open_table(BRANCHES).at(path)?.len().at(path)?).unwrap_or(u32::MAX);
        let record = self.record.clone();
        Ok(RunInfo {
            id: record.id,
            project: record.project,
            name: record.name,
            tags: record.tags,
            notes: record.notes,
            config: record.config,
            state: self.state()?,
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
            system_notes: record.system_notes,
        })
    }

    /// The run's state: `crashed` (or `preempted`) when it says running but no process held
    /// its lock when the snapshot was taken.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] for an unknown stored state; [`Error::LocksUnsupported`] for a run
    /// stored as running on a filesystem whose lock calls fail (whether it is live cannot be
    /// known there).
    pub fn state(&self) -> Result<RunState> {
        let stored = RunState::try_from(self.progress.state).at(&self.path)?;
        if stored.is_live()
            && let Some((path, fs, reason)) = &self.lock_failure
        {
            return Err(Error::LocksUnsupported { path: path.clone(), fs: fs.clone(), reason: reason.clone() });
        }
        Ok(if stored.is_live() && !self.held { stored.without_writer() } else { stored })
    }

    /// The process that held the run's lock when the snapshot was taken, as it recorded itself
    /// (read now); `None` when no process held it.
    /// (See [`RunReader::holder`](crate::RunReader::holder) for an example.)
    #[must_use]
    pub fn holder(&self) -> Option<crate::LockHolder> {
        self.held.then(|| lock::holder(&self.lock_path).unwrap_or_else(crate::LockHolder::unknown))
    }

    /// The step the next `log` of this run would use.
    /// (See [`RunReader::next_step`](crate::RunReader::next_step) for an example.)
    #[must_use]
    pub fn next_step(&self) -> u64 {
        self.progress.next_step
    }

    /// The run's attempts, oldest first. The last one of a run whose process died reads as
    /// crashed (or preempted) even before the next attempt closes it.
    ///
    /// # Errors
    ///
    /// As [`RunSnapshot::info`].
    pub fn attempts(&self) -> Result<Vec<Attempt>> {
        guard::catch(&self.path, || self.attempts_unguarded())
    }

    fn attempts_unguarded(&self) -> Result<Vec<Attempt>> {
        let path = &self.path;
        let table = self.tx.open_table(ATTEMPTS).at(path)?;
        let mut attempts = Vec::new();
        for entry in table.iter().at(path)? {
            let (number, bytes) = entry.at(path)?;
            let record = AttemptRecord::decode(bytes.value()).at(path)?;
            attempts.push(Attempt {
                number: number.value(),
                started_at: sys::from_ms(record.started_at_ms),
                host: record.host,
                pid: record.pid,
                first_step: record.first_step,
                ended_at: record.ended_at_ms.map(sys::from_ms),
                last_step: record.last_step,
                outcome: record.outcome.map(RunState::try_from).transpose().at(path)?,
                exit_code: record.exit_code,
            });
        }
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
    /// None today; kept fallible like the other reads.
    pub fn metrics(&self) -> Result<Vec<String>> {
        Ok(self.names.iter().map(ToString::to_string).collect())
    }

    /// Streams the rows whose steps fall in `steps`, in step order. Memory stays bounded by
    /// one chunk per metric, whatever the history's length. A fork's rows up to its fork step come from
    /// its parent, as the snapshot saw it.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] on a read error; the rows yield [`Error::Corrupt`] for a chunk that
    /// does not decode.
    pub fn history(&self, steps: impl RangeBounds<u64>) -> Result<History> {
        let (first, last) = bounds(&steps);
        Ok(History::new(history::narrow(self.timed_segments()?, first, last), self.names.clone()))
    }

    /// The live history's segments with the runtime each starts from (a fork's own rows go on
    /// from its parent's runtime at the fork step).
    fn timed_segments(&self) -> Result<Vec<Segment>> {
        let mut segments = self.segments.clone();
        if segments.len() > 1 {
            guard::catch(&self.path, || history::runtime_offsets(&mut segments))?;
        }
        Ok(segments)
    }

    /// As [`RunSnapshot::history`], reading only the metrics named in `metrics` (names the run
    /// does not have are left out): every row in `steps` is yielded, with its points of those
    /// metrics. The other metrics' bytes are never read, which matters for a wide run.
    ///
    /// # Errors
    ///
    /// As [`RunSnapshot::history`].
    pub fn history_of<S: AsRef<str>>(&self, metrics: &[S], steps: impl RangeBounds<u64>) -> Result<History> {
        let (first, last) = bounds(&steps);
        let mut selected: Vec<u32> = metrics.iter().filter_map(|name| self.metric_id(name.as_ref())).collect();
        selected.sort_unstable();
        selected.dedup();
        Ok(History::of_metrics(history::narrow(self.timed_segments()?, first, last), self.names.clone(), selected))
    }

    /// Streams one metric's `(step, value)` points in step order, for steps in `steps`. Only
    /// that metric's column is decoded. An unknown metric yields nothing.
    ///
    /// # Errors
    ///
    /// As [`RunSnapshot::history`].
    pub fn series(&self, metric: &str, steps: impl RangeBounds<u64>) -> Result<Series> {
        let (first, last) = bounds(&steps);
        Ok(Series::new(history::narrow(self.segments.clone(), first, last), self.metric_id(metric)))
    }

    /// As [`RunSnapshot::series`], with the time each point's row was logged.
    ///
    /// # Errors
    ///
    /// As [`RunSnapshot::history`].
    pub fn series_with_time(&self, metric: &str, steps: impl RangeBounds<u64>) -> Result<TimedSeries> {
        let (first, last) = bounds(&steps);
        Ok(TimedSeries::new(history::narrow(self.segments.clone(), first, last), self.metric_id(metric)))
    }

    /// The live history's segments, for the overviews.
    pub(crate) fn live_segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The run's metric names, in id order.
    pub(crate) fn names(&self) -> &[Arc<str>] {
        &self.names
    }

    pub(crate) fn file(&self) -> &Path {
        &self.path
    }

    pub(crate) fn metric_id(&self, metric: &str) -> Option<u32> {
        self.names.iter().position(|name| &**name == metric).and_then(|id| u32::try_from(id).ok())
    }

    /// The run's archived branches: the rows each rewind moved out of the live history.
    ///
    /// # Errors
    ///
    /// As [`RunSnapshot::info`].
    pub fn branches(&self) -> Result<Vec<Branch>> {
        let records = guard::catch(&self.path, || branch_records(&self.tx, &self.path))?;
        Ok(records.into_iter().map(|(id, record)| Branch::from_record(id, record)).collect())
    }

    /// Streams the rows of archived branch `branch` whose steps fall in `steps`.
    ///
    /// # Errors
    ///
    /// [`Error::BranchNotFound`] for an unknown branch, else as [`RunSnapshot::history`].
    pub fn branch_history(&self, branch: u32, steps: impl RangeBounds<u64>) -> Result<History> {
        let (first, last) = bounds(&steps);
        let segment = self.branch_segment(branch)?;
        Ok(History::new(history::narrow(vec![segment], first, last), self.names.clone()))
    }

    /// Streams one metric's points in archived branch `branch`, for steps in `steps`.
    ///
    /// # Errors
    ///
    /// As [`RunSnapshot::branch_history`].
    /// (See [`RunReader::branch_series`](crate::RunReader::branch_series) for an example.)
    pub fn branch_series(&self, branch: u32, metric: &str, steps: impl RangeBounds<u64>) -> Result<Series> {
        let (first, last) = bounds(&steps);
        let segment = self.branch_segment(branch)?;
        Ok(Series::new(history::narrow(vec![segment], first, last), self.metric_id(metric)))
    }

    pub(crate) fn branch_segment(&self, branch: u32) -> Result<Segment> {
        let record = guard::catch(&self.path, || branch_records(&self.tx, &self.path))?
            .into_iter()
            .find(|(id, _)| *id == branch)
            .map(|(_, record)| record)
            .ok_or_else(|| Error::BranchNotFound { id: self.id.clone(), branch })?;
        Ok(Segment {
            tx: Arc::clone(&self.tx),
            path: self.path.clone(),
            table: Table::Archive(branch),
            first: record.first_step,
            last: record.last_step,
            runtime_offset: 0,
        })
    }

    /// The samples of the time-indexed series `metric` (a system metric, `system/...`) taken in
    /// `times`, in time order: `(time, value)`. An unknown series yields none.
    ///
    /// # Errors
    ///
    /// As [`RunSnapshot::history`].
    pub fn system(&self, metric: &str, times: impl RangeBounds<SystemTime>) -> Result<Vec<(SystemTime, f64)>> {
        let ms = |bound: Bound<&SystemTime>| match bound {
            Bound::Included(time) => Bound::Included(sys::to_ms(*time)),
            Bound::Excluded(time) => Bound::Excluded(sys::to_ms(*time)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let (first, last) = bounds(&(ms(times.start_bound()), ms(times.end_bound())));
        let Some(metric) = self.metric_id(metric) else { return Ok(Vec::new()) };
        guard::catch(&self.path, || {
            let path = &self.path;
            let table = self.tx.open_table(SAMPLES).at(path)?;
            // The chunk holding `first` may start before it.
            let start = match table.range((metric, 0)..=(metric, first)).at(path)?.next_back() {
                Some(entry) => entry.at(path)?.0.value().1,
                None => first,
            };
            let (mut stamps, mut values, mut out) = (Vec::new(), Vec::new(), Vec::new());
            if start > last {
                return Ok(out);
            }
            for entry in table.range((metric, start)..=(metric, last)).at(path)? {
                let (_, bytes) = entry.at(path)?;
                time_chunk::decode(bytes.value(), &mut stamps, &mut values).at(path)?;
                for (&time, &value) in stamps.iter().zip(&values) {
                    if time >= first && time <= last {
                        out.push((sys::from_ms(time), value));
                    }
                }
            }
            Ok(out)
        })
    }

    /// The run's checkpoints in the order recorded, each with whether its path exists now.
    ///
    /// # Errors
    ///
    /// As [`RunSnapshot::info`].
    /// (See [`RunReader::checkpoints`](crate::RunReader::checkpoints) for an example.)
    pub fn checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let records = guard::catch(&self.path, || read_checkpoints(&self.tx, &self.path))?;
        Ok(records.into_iter().map(|(number, record)| Checkpoint::from_record(number, record)).collect())
    }

    /// The checkpoint a resume from checkpoint would restart from: the newest live one whose
    /// path exists, and the newer ones whose paths are gone (skipped, not an error).
    ///
    /// # Errors
    ///
    /// As [`RunSnapshot::info`].
    pub fn latest_checkpoint(&self) -> Result<CheckpointChoice> {
        Ok(crate::checkpoint::choose(&self.checkpoints()?))
    }

    /// What a fork of this run at step `at` starts from: the metric names, the branch count,
    /// the last row at or before `at`, the rows up to `at`, and each metric's value there. All
    /// of it from this snapshot. Reads the row chunk before `at` and each metric's chunk there,
    /// and row-chunk headers after `at` to count rows; it copies nothing.
    pub(crate) fn fork_origin(&self, at: u64) -> Result<(ForkOrigin, Vec<String>, u64)> {
        guard::catch(&self.path, || self.fork_origin_unguarded(at))
    }

    fn fork_origin_unguarded(&self, at: u64) -> Result<(ForkOrigin, Vec<String>, u64)> {
        let last_step = self.progress.last_step;
        if last_step.is_none_or(|last| at > last) {
            return Err(Error::BeyondHistory { id: self.id.clone(), requested: at, last: last_step });
        }
        let names = self.metrics()?;
        let parent_branches = branch_records(&self.tx, &self.path)?.last().map_or(0, |(id, _)| id + 1);
        let segments: Vec<(Segment, SegmentTables)> = history::narrow(self.segments.clone(), 0, at)
            .into_iter()
            .map(|segment| SegmentTables::open(&segment).map(|tables| (segment, tables)))
            .collect::<Result<_>>()?;
        let (mut steps, mut times, mut values) = (Vec::new(), Vec::new(), Vec::new());
        // The last row at or before `at`: the last row chunk of the last segment that has one.
        let mut inherited_last = None;
        'rows: for (segment, tables) in segments.iter().rev() {
            let mut upto = segment.last;
            while let Some((key, bytes)) = tables.last_rows(upto)? {
                row_chunk::decode(&bytes, &mut steps, &mut times).at(tables.path())?;
                inherited_last = steps.iter().rev().copied().find(|s| *s >= segment.first && *s <= segment.last);
                if inherited_last.is_some() || key <= segment.first {
                    break;
                }
                upto = key - 1;
            }
            if inherited_last.is_some() {
                break 'rows;
            }
        }
        // Each metric's last value at or before `at`: one chunk per metric and segment at most,
        // since a chunk keyed inside a segment holds a point of it.
        let mut summary = Vec::new();
        for metric in 0..u32::try_from(names.len()).unwrap_or(u32::MAX) {
            for (segment, tables) in segments.iter().rev() {
                let Some((_, bytes)) = tables.last_points(metric, segment.last)? else { continue };
                point_chunk::decode(&bytes, &mut steps, &mut values).at(tables.path())?;
                let within = steps.iter().rposition(|s| *s >= segment.first && *s <= segment.last);
                if let Some(index) = within {
                    summary.push((metric, values[index]));
                    break;
                }
            }
        }
        let after = history::count_rows(history::narrow(self.segments.clone(), at.saturating_add(1), u64::MAX))?;
        let origin =
            ForkOrigin { run: self.id.clone(), step: at, parent_branches, inherited_last, inherited_summary: summary };
        Ok((origin, names, self.progress.rows.saturating_sub(after)))
    }
}

fn required(meta: &ReadOnlyTable<&str, &[u8]>, key: &'static str, path: &Path) -> Result<Vec<u8>> {
    let value = meta.get(key).at(path)?;
    Ok(value.ok_or_else(|| Error::corrupt(path, format!("the {key} record is missing")))?.value().to_vec())
}

fn branch_records(tx: &ReadTransaction, path: &Path) -> Result<Vec<(u32, BranchRecord)>> {
    let table = tx.open_table(BRANCHES).at(path)?;
    let mut branches = Vec::new();
    for entry in table.iter().at(path)? {
        let (id, bytes) = entry.at(path)?;
        branches.push((id.value(), BranchRecord::decode(bytes.value()).at(path)?));
    }
    Ok(branches)
}

/// The segments of run `id`'s history up to `upto` as it was when it had `epoch` branches:
/// rows its later rewinds archived are read from those branches. The run's transaction begins
/// here, after its descendant's (`child` names the descendant's file, for errors); its own
/// ancestors' begin after it.
fn ancestor_view(runs_dir: &Path, child: &Path, id: &str, upto: u64, epoch: u32, depth: u32) -> Result<Vec<Segment>> {
    if depth > MAX_ANCESTRY {
        return Err(Error::corrupt(child, "fork ancestry is deeper than 64 runs"));
    }
    let missing =
        || Error::corrupt(child, format!("the run inherits its history from run {id:?}, which cannot be read"));
    crate::id::validate_run_id(id).map_err(|_| missing())?;
    let dir = runs_dir.join(id);
    let path = dir.join(crate::store::DATABASE);
    if !path.is_file() {
        return Err(missing());
    }
    let parent = RunReader::open(id, &path, &dir.join(crate::store::LOCK), runs_dir)?;
    let tx = Arc::new(parent.database().begin_read().at(&path)?);
    let meta = tx.open_table(META).at(&path)?;
    let record = RunRecord::decode(&required(&meta, KEY_RUN, &path)?).at(&path)?;
    drop(meta);
    let mut cut = upto;
    let mut archived = Vec::new();
    for (branch, branch_record) in branch_records(&tx, &path)? {
        if branch >= epoch && (branch_record.restarted || branch_record.rewound_to < cut) {
            let first = if branch_record.restarted { 0 } else { branch_record.rewound_to.saturating_add(1) };
            archived.push(Segment {
                tx: Arc::clone(&tx),
                path: path.clone(),
                table: Table::Archive(branch),
                first,
                last: cut,
                runtime_offset: 0,
            });
            if branch_record.restarted {
                // Every row up to the cut was archived at once: nothing earlier is live.
                archived.reverse();
                return Ok(archived);
            }
            cut = branch_record.rewound_to;
        }
    }
    let live = |first| Segment {
        tx: Arc::clone(&tx),
        path: path.clone(),
        table: Table::Live,
        first,
        last: cut,
        runtime_offset: 0,
    };
    let mut segments = match record.forked_from {
        None => vec![live(0)],
        Some(origin) if cut <= origin.step => {
            ancestor_view(runs_dir, &path, &origin.run, cut, origin.parent_branches, depth + 1)?
        }
        Some(origin) => {
            let mut segments =
                ancestor_view(runs_dir, &path, &origin.run, origin.step, origin.parent_branches, depth + 1)?;
            segments.push(live(origin.step.saturating_add(1)));
            segments
        }
    };
    archived.reverse();
    segments.extend(archived);
    Ok(segments)
}
