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
use crate::format::block::{self, DecodedBlock};
use crate::format::records::{AttemptRecord, Progress, RunRecord};
use crate::format::tables::{ATTEMPTS, BLOCKS, KEY_FORMAT, KEY_PROGRESS, KEY_RUN, META, METRICS};
use crate::lock;
use crate::state::{Attempt, RunInfo, RunState};
use crate::sys;
use crate::writer::{builder, check_format};

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
    db: ReadOnlyDatabase,
}

impl std::fmt::Debug for RunReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunReader").field("id", &self.id).field("path", &self.path).finish_non_exhaustive()
    }
}

impl RunReader {
    /// Opens the run database at `path`; `lock_path` is its lock file.
    pub(crate) fn open(id: &str, path: &Path, lock_path: &Path) -> Result<RunReader> {
        let db = open_read_only(path, lock_path)?;
        let reader = RunReader { id: id.to_string(), path: path.to_path_buf(), lock_path: lock_path.to_path_buf(), db };
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
        let tx = self.begin()?;
        let meta = tx.open_table(META).at(&self.path)?;
        let record = RunRecord::decode(self.required(&meta, KEY_RUN)?.as_slice()).at(&self.path)?;
        let mut progress = self.progress(&meta)?;
        let state = self.derive_state(&mut progress)?;
        let names = read_names(&tx, &self.path)?;
        let summary: BTreeMap<String, f64> = progress
            .summary
            .iter()
            .map(|&(id, value)| {
                Ok((names.get(id as usize).ok_or(Corrupt("summary names an unknown metric"))?.to_string(), value))
            })
            .collect::<Result<_, Corrupt>>()
            .at(&self.path)?;
        let attempts = u32::try_from(tx.open_table(ATTEMPTS).at(&self.path)?.len().at(&self.path)?).unwrap_or(u32::MAX);
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
        })
    }

    /// The run's state: `crashed` (or `preempted`) when it says running but no process holds
    /// its lock.
    ///
    /// # Errors
    ///
    /// As [`RunReader::info`].
    pub fn state(&self) -> Result<RunState> {
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
        let tx = self.begin()?;
        Ok(read_names(&tx, &self.path)?.iter().map(ToString::to_string).collect())
    }

    /// Streams the rows whose steps fall in `steps`, in step order, from the last committed
    /// flush. Memory stays bounded by one block, whatever the history's length.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] on a read error; the rows yield [`Error::Corrupt`] for a block that
    /// does not decode.
    pub fn history(&self, steps: impl RangeBounds<u64>) -> Result<History> {
        let (from, to) = bounds(&steps);
        let tx = self.begin()?;
        let names = read_names(&tx, &self.path)?;
        let blocks = tx.open_table(BLOCKS).at(&self.path)?;
        let range = blocks_from(&blocks, from, &self.path)?;
        Ok(History {
            path: self.path.clone(),
            names,
            blocks: range,
            block: DecodedBlock::default(),
            cursors: Vec::new(),
            next_row: 0,
            rows_in_block: 0,
            from,
            to,
            points: Vec::new(),
            done: false,
        })
    }

    /// Streams one metric's `(step, value)` points in step order, for steps in `steps`. Only
    /// that metric's column is decoded. An unknown metric yields nothing.
    ///
    /// # Errors
    ///
    /// As [`RunReader::history`].
    pub fn series(&self, metric: &str, steps: impl RangeBounds<u64>) -> Result<Series> {
        let (from, to) = bounds(&steps);
        let tx = self.begin()?;
        let names = read_names(&tx, &self.path)?;
        let id = names.iter().position(|name| &**name == metric).and_then(|id| u32::try_from(id).ok());
        let blocks = tx.open_table(BLOCKS).at(&self.path)?;
        let range = blocks_from(&blocks, from, &self.path)?;
        Ok(Series {
            path: self.path.clone(),
            metric: id,
            blocks: range,
            steps: Vec::new(),
            values: Vec::new(),
            buffer: Vec::new(),
            next: 0,
            from,
            to,
        })
    }
}

fn bounds(steps: &impl RangeBounds<u64>) -> (u64, u64) {
    let from = match steps.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let to = match steps.end_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&0) => return (1, 0),
        Bound::Excluded(&s) => s - 1,
        Bound::Unbounded => u64::MAX,
    };
    (from, to)
}

/// The blocks from the one holding `from` onwards.
fn blocks_from(table: &ReadOnlyTable<u64, &'static [u8]>, from: u64, path: &Path) -> Result<BlockRange> {
    let start = match table.range(..=from).at(path)?.next_back() {
        Some(entry) => entry.at(path)?.0.value(),
        None => from,
    };
    table.range(start..).at(path)
}

type BlockRange = redb::Range<'static, u64, &'static [u8]>;

fn read_names(tx: &ReadTransaction, path: &Path) -> Result<Vec<Arc<str>>> {
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
                if let Ok(_lock) = lock::RunLock::acquire_quietly(lock_path) {
                    drop(builder().open(path).at(path)?);
                    continue;
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

/// A streamed row: its step and metrics, borrowed from the [`History`] until the next row.
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    step: u64,
    points: &'a [(u32, f64)],
    names: &'a [Arc<str>],
}

impl<'a> RowRef<'a> {
    /// The row's step.
    #[must_use]
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The value of `metric` in this row.
    #[must_use]
    pub fn get(&self, metric: &str) -> Option<f64> {
        self.points.iter().find(|(id, _)| &*self.names[*id as usize] == metric).map(|&(_, value)| value)
    }

    /// The row's `(metric, value)` pairs, in metric-id order (the order first logged).
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, f64)> + 'a {
        let names = self.names;
        self.points.iter().map(move |&(id, value)| (&*names[id as usize], value))
    }

    /// The row's `(metric id, value)` pairs; ids index [`History::metrics`].
    #[must_use]
    pub fn points(&self) -> &'a [(u32, f64)] {
        self.points
    }

    /// An owned copy of the row.
    #[must_use]
    pub fn to_row(&self) -> Row {
        Row {
            step: self.step,
            values: self.points.iter().map(|&(id, value)| (Arc::clone(&self.names[id as usize]), value)).collect(),
        }
    }
}

/// An owned row of history, as the [`History`] iterator yields it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    step: u64,
    values: Vec<(Arc<str>, f64)>,
}

impl Row {
    /// The row's step.
    #[must_use]
    pub fn step(&self) -> u64 {
        self.step
    }

    /// The value of `metric` in this row.
    #[must_use]
    pub fn get(&self, metric: &str) -> Option<f64> {
        self.values.iter().find(|(name, _)| &**name == metric).map(|&(_, value)| value)
    }

    /// The row's `(metric, value)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.values.iter().map(|(name, value)| (&**name, *value))
    }
}

/// Streams a run's rows in step order (see [`RunReader::history`]).
///
/// It is an [`Iterator`] of owned [`Row`]s; [`History::next_row`] lends rows without
/// allocating, for the fastest replay.
pub struct History {
    path: PathBuf,
    names: Vec<Arc<str>>,
    blocks: BlockRange,
    block: DecodedBlock,
    cursors: Vec<usize>,
    next_row: usize,
    rows_in_block: usize,
    from: u64,
    to: u64,
    points: Vec<(u32, f64)>,
    done: bool,
}

impl History {
    /// The metric names that row ids index, as of this history's snapshot.
    #[must_use]
    pub fn metrics(&self) -> &[Arc<str>] {
        &self.names
    }

    /// The next row, borrowed until the next call.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] for a block that does not decode, [`Error::Storage`] on a read
    /// error. The history ends after an error.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// # let mut run = store.init(runstore::RunOptions::new().id("h"))?;
    /// # run.log([("loss", 1.0)])?;
    /// # run.finish(0)?;
    /// let mut history = store.open_run("h")?.history(..)?;
    /// let mut points = 0;
    /// while let Some(row) = history.next_row()? {
    ///     points += row.points().len();
    /// }
    /// assert_eq!(points, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_row(&mut self) -> Result<Option<RowRef<'_>>> {
        loop {
            if self.done {
                return Ok(None);
            }
            if self.next_row == self.rows_in_block {
                match self.load_next_block() {
                    Ok(true) => {}
                    Ok(false) => {
                        self.done = true;
                        return Ok(None);
                    }
                    Err(error) => {
                        self.done = true;
                        return Err(error);
                    }
                }
                continue;
            }
            let row = self.next_row;
            self.next_row += 1;
            let step = self.block.steps[row];
            self.points.clear();
            for (column, cursor) in self.block.columns().iter().zip(self.cursors.iter_mut()) {
                if column.has_row(row) {
                    self.points.push((column.metric, column.values[*cursor]));
                    *cursor += 1;
                }
            }
            if step < self.from {
                continue;
            }
            if step > self.to {
                self.done = true;
                return Ok(None);
            }
            return Ok(Some(RowRef { step, points: &self.points, names: &self.names }));
        }
    }

    fn load_next_block(&mut self) -> Result<bool> {
        let Some(entry) = self.blocks.next() else { return Ok(false) };
        let (key, bytes) = entry.at(&self.path)?;
        let header = block::decode(bytes.value(), &mut self.block).at(&self.path)?;
        if header.first_step != key.value() {
            return Err(Error::corrupt(&self.path, "a block's key differs from its first step"));
        }
        if header.first_step > self.to {
            return Ok(false);
        }
        let known = self.names.len();
        if self.block.columns().iter().any(|column| column.metric as usize >= known) {
            return Err(Error::corrupt(&self.path, "a block names an unknown metric"));
        }
        self.cursors.clear();
        self.cursors.resize(self.block.columns().len(), 0);
        self.rows_in_block = header.rows;
        self.next_row = 0;
        Ok(true)
    }
}

impl Iterator for History {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Result<Row>> {
        self.next_row().map(|row| row.map(|row| row.to_row())).transpose()
    }
}

/// Streams one metric's `(step, value)` points (see [`RunReader::series`]).
pub struct Series {
    path: PathBuf,
    metric: Option<u32>,
    blocks: BlockRange,
    steps: Vec<u64>,
    values: Vec<f64>,
    buffer: Vec<(u64, f64)>,
    next: usize,
    from: u64,
    to: u64,
}

impl Series {
    fn refill(&mut self) -> Result<bool> {
        let Some(metric) = self.metric else { return Ok(false) };
        loop {
            let Some(entry) = self.blocks.next() else { return Ok(false) };
            let (_, bytes) = entry.at(&self.path)?;
            self.buffer.clear();
            self.next = 0;
            let header =
                block::decode_metric(bytes.value(), metric, &mut self.steps, &mut self.values, &mut self.buffer)
                    .at(&self.path)?;
            if header.first_step > self.to {
                return Ok(false);
            }
            let (from, to) = (self.from, self.to);
            if header.first_step < from || header.last_step > to {
                self.buffer.retain(|&(step, _)| step >= from && step <= to);
            }
            if !self.buffer.is_empty() {
                return Ok(true);
            }
        }
    }
}

impl Iterator for Series {
    type Item = Result<(u64, f64)>;

    fn next(&mut self) -> Option<Result<(u64, f64)>> {
        if self.next == self.buffer.len() {
            match self.refill() {
                Ok(true) => {}
                Ok(false) => {
                    self.metric = None;
                    return None;
                }
                Err(error) => {
                    self.metric = None;
                    return Some(Err(error));
                }
            }
        }
        let point = self.buffer[self.next];
        self.next += 1;
        Some(Ok(point))
    }
}
