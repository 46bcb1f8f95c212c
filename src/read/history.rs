//! Streaming replay of a run's history: rows in step order, or one metric's points.
//!
//! A run's live history is a list of segments, each a step range of one set of tables of one
//! run database: a plain run has one (its live tables); a fork reads its inherited steps from
//! its parent's database (and, if the parent was rewound since, from the parent's archived
//! branches); an archived branch is one segment of the archive tables. Rows come from the row
//! chunks (steps and times), each metric's values from its own point chunks, advanced in step
//! with the rows; memory stays bounded by one chunk per metric, whatever the length.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use redb::{ReadTransaction, ReadableTable};

use crate::error::{Context, Result};
use crate::format::records::AttemptRecord;
use crate::format::tables::ATTEMPTS;
use crate::format::{point_chunk, row_chunk};
use crate::guard;
use crate::read::chunks::SegmentTables;

/// Which tables a segment reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Live,
    Archive(u32),
}

/// A step range of one set of tables of one run database, read in the transaction of a
/// snapshot.
#[derive(Clone)]
pub(crate) struct Segment {
    pub(crate) tx: Arc<ReadTransaction>,
    pub(crate) path: PathBuf,
    pub(crate) table: Table,
    pub(crate) first: u64,
    pub(crate) last: u64,
    /// The runtime (ms) the run of this segment's database had when it started: for a fork,
    /// its parent's at the fork step (see [`runtime_offsets`]); 0 otherwise.
    pub(crate) runtime_offset: u64,
}

/// Sets each segment's [`Segment::runtime_offset`], so that a fork's own rows go on from the
/// runtime of the last row it inherited instead of starting at 0 again: a segment of the same
/// database as the one before it shares its offset; the first of another database (a fork's,
/// after its parent's) starts from the runtime of the last earlier row before its first step.
pub(crate) fn runtime_offsets(segments: &mut [Segment]) -> Result<()> {
    for index in 1..segments.len() {
        let (before, rest) = segments.split_at_mut(index);
        let segment = &mut rest[0];
        let previous = &before[index - 1];
        if previous.path == segment.path {
            segment.runtime_offset = previous.runtime_offset;
            continue;
        }
        segment.runtime_offset = 0;
        let Some(upto) = segment.first.checked_sub(1) else { continue };
        for earlier in before.iter().rev() {
            if let Some(time) = last_row_time(earlier, upto)? {
                let runtime = runtime_at(&attempt_spans(earlier)?, time);
                segment.runtime_offset = runtime.saturating_add(earlier.runtime_offset);
                break;
            }
        }
    }
    Ok(())
}

/// The time (ms) of the last row of `segment` at or before step `upto`.
fn last_row_time(segment: &Segment, upto: u64) -> Result<Option<u64>> {
    let last = upto.min(segment.last);
    if last < segment.first {
        return Ok(None);
    }
    let tables = SegmentTables::open(segment)?;
    let Some((_, bytes)) = tables.last_rows(last)? else { return Ok(None) };
    let (mut steps, mut times) = (Vec::new(), Vec::new());
    row_chunk::decode(&bytes, &mut steps, &mut times).at(&segment.path)?;
    let found = steps.iter().zip(&times).rev().find(|&(&step, _)| step <= last && step >= segment.first);
    Ok(found.map(|(_, &time)| time))
}

/// Counts the rows of `segments` from row-chunk headers, decoding steps only for chunks that a
/// segment cuts.
pub(crate) fn count_rows(segments: VecDeque<Segment>) -> Result<u64> {
    let mut rows = 0;
    let mut steps = Vec::new();
    for segment in segments {
        let tables = SegmentTables::open(&segment)?;
        let mut from = tables.rows_start(segment.first)?;
        while let Some((key, bytes)) = tables.next_rows(from, segment.last)? {
            let range = row_chunk::range(&bytes).at(&segment.path)?;
            if range.first_step >= segment.first && range.last_step <= segment.last {
                rows += range.count as u64;
            } else {
                row_chunk::decode_steps(&bytes, &mut steps).at(&segment.path)?;
                rows += steps.iter().filter(|&&step| step >= segment.first && step <= segment.last).count() as u64;
            }
            from = key.saturating_add(1);
            if key == u64::MAX {
                break;
            }
        }
    }
    Ok(rows)
}

/// The segments that fall in `first..=last`, with their ranges narrowed to it.
pub(crate) fn narrow(segments: Vec<Segment>, first: u64, last: u64) -> VecDeque<Segment> {
    segments
        .into_iter()
        .filter_map(|mut segment| {
            segment.first = segment.first.max(first);
            segment.last = segment.last.min(last);
            (segment.first <= segment.last).then_some(segment)
        })
        .collect()
}

/// The spans `[start, end]` (ms) of the attempts of the database a segment reads, in order: an
/// attempt still open (or never closed) ends where the next begins, or never.
fn attempt_spans(segment: &Segment) -> Result<Vec<(u64, u64)>> {
    let table = segment.tx.open_table(ATTEMPTS).at(&segment.path)?;
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for entry in table.iter().at(&segment.path)? {
        let (_, bytes) = entry.at(&segment.path)?;
        let record = AttemptRecord::decode(bytes.value()).at(&segment.path)?;
        if let Some(previous) = spans.last_mut() {
            previous.1 = previous.1.min(record.started_at_ms).max(previous.0);
        }
        spans.push((record.started_at_ms, record.ended_at_ms.unwrap_or(u64::MAX).max(record.started_at_ms)));
    }
    Ok(spans)
}

/// The run's running time at wall-clock time `time` (ms): the attempts' time before it, not the
/// time the run was dead between them. A time outside every attempt takes the runtime at the
/// end of the attempt before it.
fn runtime_at(spans: &[(u64, u64)], time: u64) -> u64 {
    let mut total = 0u64;
    for &(start, end) in spans {
        if time < start {
            break;
        }
        if time <= end {
            return total.saturating_add(time - start);
        }
        total = total.saturating_add(end - start);
    }
    total
}

/// One metric's points in one segment, read a chunk at a time as the rows advance.
#[derive(Default)]
struct PointCursor {
    steps: Vec<u64>,
    values: Vec<f64>,
    index: usize,
    /// The key the next chunk is looked for from; `None` before the first lookup.
    next_key: Option<u64>,
    done: bool,
}

impl PointCursor {
    /// The metric's value at `step`, for steps asked in increasing order.
    fn value_at(&mut self, tables: &SegmentTables, metric: u32, step: u64, last: u64) -> Result<Option<f64>> {
        loop {
            if let Some(&at) = self.steps.get(self.index) {
                if at < step {
                    self.index += 1;
                    continue;
                }
                if at == step {
                    self.index += 1;
                    return Ok(Some(self.values[self.index - 1]));
                }
                return Ok(None);
            }
            if self.done {
                return Ok(None);
            }
            let from = match self.next_key {
                Some(key) => key,
                None => tables.points_start(metric, step)?,
            };
            match tables.next_points(metric, from, last)? {
                Some((key, bytes)) => {
                    let range = point_chunk::decode(&bytes, &mut self.steps, &mut self.values).at(tables.path())?;
                    if range.first_step != key {
                        return Err(crate::Error::corrupt(
                            tables.path(),
                            "a point chunk's key differs from its first step",
                        ));
                    }
                    self.index = 0;
                    self.done = key == u64::MAX;
                    self.next_key = Some(key.saturating_add(1));
                }
                None => self.done = true,
            }
        }
    }
}

/// The segment a history is reading: its tables, the current row chunk and each metric's
/// cursor.
struct SegmentRows {
    tables: SegmentTables,
    first: u64,
    last: u64,
    next_key: u64,
    rows_done: bool,
    steps: Vec<u64>,
    times: Vec<u64>,
    index: usize,
    cursors: Vec<PointCursor>,
    /// The attempts of this segment's database, for runtimes, and the runtime its run started
    /// from.
    spans: Vec<(u64, u64)>,
    runtime_offset: u64,
}

impl SegmentRows {
    fn open(segment: &Segment, metrics: usize) -> Result<SegmentRows> {
        let tables = SegmentTables::open(segment)?;
        let next_key = tables.rows_start(segment.first)?;
        let mut cursors = Vec::with_capacity(metrics);
        cursors.resize_with(metrics, PointCursor::default);
        let spans = attempt_spans(segment)?;
        Ok(SegmentRows {
            spans,
            runtime_offset: segment.runtime_offset,
            tables,
            first: segment.first,
            last: segment.last,
            next_key,
            rows_done: false,
            steps: Vec::new(),
            times: Vec::new(),
            index: 0,
            cursors,
        })
    }

    /// The next row's step and time in the segment, or `None` at its end.
    fn next_row(&mut self) -> Result<Option<(u64, u64)>> {
        loop {
            if let Some(&step) = self.steps.get(self.index) {
                let time = self.times[self.index];
                self.index += 1;
                if step < self.first {
                    continue;
                }
                if step > self.last {
                    self.rows_done = true;
                    self.steps.clear();
                    return Ok(None);
                }
                return Ok(Some((step, time)));
            }
            if self.rows_done {
                return Ok(None);
            }
            match self.tables.next_rows(self.next_key, self.last)? {
                Some((key, bytes)) => {
                    let range = row_chunk::decode(&bytes, &mut self.steps, &mut self.times).at(self.tables.path())?;
                    if range.first_step != key {
                        return Err(crate::Error::corrupt(
                            self.tables.path(),
                            "a row chunk's key differs from its first step",
                        ));
                    }
                    self.index = 0;
                    self.rows_done = key == u64::MAX;
                    self.next_key = key.saturating_add(1);
                }
                None => self.rows_done = true,
            }
        }
    }
}

/// A streamed row: its step, time and metrics, borrowed from the [`History`] until the next
/// row.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let store = runstore::Store::open(dir.path())?;
/// let mut run = store.init(runstore::RunOptions::new().id("r"))?;
/// for step in 0..3 {
///     run.log([("loss", f64::from(step)), ("acc", 0.5)])?;
/// }
/// run.finish(0)?;
/// let mut history = store.open_run("r")?.history(..)?;
/// let mut kept = Vec::new();
/// while let Some(row) = history.next_row()? {
///     // Borrowed: no allocation per row. Keep one with `to_row`.
///     assert_eq!(row.get("acc"), Some(0.5));
///     assert!(row.runtime() < std::time::Duration::from_secs(60));
///     kept.push(row.to_row());
/// }
/// assert_eq!(kept[2].step(), 2);
/// assert_eq!(kept[2].get("loss"), Some(2.0));
/// assert!(kept[2].time() >= kept[0].time() && kept[2].runtime() >= kept[0].runtime());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RowRef<'a> {
    step: u64,
    time_ms: u64,
    runtime_ms: u64,
    points: &'a [(u32, f64)],
    names: &'a [Arc<str>],
}

impl<'a> RowRef<'a> {
    /// The row's step.
    #[must_use]
    pub fn step(&self) -> u64 {
        self.step
    }

    /// When the row was logged (the clock of the logging machine, to the millisecond).
    #[must_use]
    pub fn time(&self) -> SystemTime {
        crate::sys::from_ms(self.time_ms)
    }

    /// How long the run had been running when the row was logged: the attempts' running time
    /// up to it, not the time the run was dead between attempts (W&B's `_runtime`). Rows a fork
    /// inherited have their parent's runtime, and its own rows go on from the runtime of the
    /// last row it inherited.
    #[must_use]
    pub fn runtime(&self) -> Duration {
        Duration::from_millis(self.runtime_ms)
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
            time_ms: self.time_ms,
            runtime_ms: self.runtime_ms,
            values: self.points.iter().map(|&(id, value)| (Arc::clone(&self.names[id as usize]), value)).collect(),
        }
    }
}

/// An owned row of history, as the [`History`] iterator yields it (see [`RowRef`] for an
/// example).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    step: u64,
    time_ms: u64,
    runtime_ms: u64,
    values: Vec<(Arc<str>, f64)>,
}

impl Row {
    /// The row's step.
    #[must_use]
    pub fn step(&self) -> u64 {
        self.step
    }

    /// When the row was logged (the clock of the logging machine, to the millisecond).
    #[must_use]
    pub fn time(&self) -> SystemTime {
        crate::sys::from_ms(self.time_ms)
    }

    /// How long the run had been running when the row was logged (see [`RowRef::runtime`]).
    #[must_use]
    pub fn runtime(&self) -> Duration {
        Duration::from_millis(self.runtime_ms)
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

/// Streams a run's rows in step order (see [`crate::RunSnapshot::history`]). It reads from its
/// snapshot's transactions for its whole life.
///
/// It is an [`Iterator`] of owned [`Row`]s; [`History::next_row`] lends rows without
/// allocating, for the fastest replay (see [`RowRef`] for an example).
pub struct History {
    segments: VecDeque<Segment>,
    current: Option<SegmentRows>,
    /// The run's names, from the same snapshot as every chunk read. Each segment reads the
    /// points of these metrics only: a fork's ancestor may hold metrics the fork never saw.
    names: Vec<Arc<str>>,
    /// The metric ids read, in id order: every metric, or those asked for.
    selected: Vec<u32>,
    points: Vec<(u32, f64)>,
    done: bool,
}

impl History {
    pub(crate) fn new(segments: VecDeque<Segment>, names: Vec<Arc<str>>) -> History {
        let selected = (0..u32::try_from(names.len()).unwrap_or(u32::MAX)).collect();
        History { segments, current: None, names, selected, points: Vec::new(), done: false }
    }

    /// A history that reads only the metrics `selected` (ids, in increasing order): the other
    /// metrics' chunks are never read.
    pub(crate) fn of_metrics(segments: VecDeque<Segment>, names: Vec<Arc<str>>, selected: Vec<u32>) -> History {
        History { segments, current: None, names, selected, points: Vec::new(), done: false }
    }

    /// The metric names that row ids index, as of this history's snapshot.
    #[must_use]
    pub fn metrics(&self) -> &[Arc<str>] {
        &self.names
    }

    /// The file the next chunk comes from, to name in an error.
    fn path(&self) -> PathBuf {
        let current = self.current.as_ref().map(|rows| rows.tables.path().to_path_buf());
        current.or_else(|| self.segments.front().map(|segment| segment.path.clone())).unwrap_or_default()
    }

    /// The next row, borrowed until the next call.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`](crate::Error::Corrupt) for a chunk that does not decode,
    /// [`Error::Storage`](crate::Error::Storage) on a read error. The history ends after an
    /// error.
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
        if self.done {
            return Ok(None);
        }
        match guard::catch_in(self, History::advance, History::path) {
            Ok(Some((step, time_ms, runtime_ms))) => {
                Ok(Some(RowRef { step, time_ms, runtime_ms, points: &self.points, names: &self.names }))
            }
            Ok(None) => {
                self.done = true;
                Ok(None)
            }
            Err(error) => {
                self.done = true;
                Err(error)
            }
        }
    }

    /// Moves to the next row, filling `points`: its step, time and runtime.
    fn advance(&mut self) -> Result<Option<(u64, u64, u64)>> {
        loop {
            if self.current.is_none() {
                // Popped once open: a panic opening it names its file (see `path`).
                let Some(segment) = self.segments.front() else { return Ok(None) };
                let rows = SegmentRows::open(segment, self.names.len())?;
                self.segments.pop_front();
                self.current = Some(rows);
            }
            let Some(rows) = self.current.as_mut() else { continue };
            let Some((step, time)) = rows.next_row()? else {
                self.current = None;
                continue;
            };
            self.points.clear();
            let SegmentRows { tables, cursors, last, spans, runtime_offset, .. } = rows;
            for &metric in &self.selected {
                if let Some(cursor) = cursors.get_mut(metric as usize)
                    && let Some(value) = cursor.value_at(tables, metric, step, *last)?
                {
                    self.points.push((metric, value));
                }
            }
            return Ok(Some((step, time, runtime_at(spans, time).saturating_add(*runtime_offset))));
        }
    }
}

impl Iterator for History {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Result<Row>> {
        self.next_row().map(|row| row.map(|row| row.to_row())).transpose()
    }
}

/// Streams one metric's `(step, value)` points (see [`crate::RunReader::series`]): a range scan
/// of that metric's own chunks, no other metric's bytes read.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let store = runstore::Store::open(dir.path())?;
/// let mut run = store.init(runstore::RunOptions::new().id("r"))?;
/// for step in 0..10 {
///     run.log([("loss", 1.0 / (1.0 + f64::from(step))), ("lr", 1e-3)])?;
/// }
/// run.finish(0)?;
/// let reader = store.open_run("r")?;
/// let points: Vec<(u64, f64)> = reader.series("loss", 8..)?.collect::<Result<_, _>>()?;
/// assert_eq!(points, [(8, 1.0 / 9.0), (9, 0.1)]);
/// // With the time each row was logged (TimedSeries).
/// let (step, time, value) = reader.series_with_time("lr", ..)?.next().expect("a point")?;
/// assert_eq!((step, value), (0, 1e-3));
/// assert!(time <= std::time::SystemTime::now());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Series {
    segments: VecDeque<Segment>,
    current: Option<SegmentTables>,
    metric: Option<u32>,
    /// The current segment's steps.
    first: u64,
    last: u64,
    /// The key of the next chunk to read in the current segment; `None` after its last.
    next_key: Option<u64>,
    steps: Vec<u64>,
    values: Vec<f64>,
    index: usize,
}

impl Series {
    pub(crate) fn new(segments: VecDeque<Segment>, metric: Option<u32>) -> Series {
        Series {
            segments,
            current: None,
            metric,
            first: 0,
            last: 0,
            next_key: None,
            steps: Vec::new(),
            values: Vec::new(),
            index: 0,
        }
    }

    fn path(&self) -> PathBuf {
        let current = self.current.as_ref().map(|tables| tables.path().to_path_buf());
        current.or_else(|| self.segments.front().map(|segment| segment.path.clone())).unwrap_or_default()
    }

    /// The next point, loading chunks and segments as needed.
    fn advance(&mut self) -> Result<Option<(u64, f64)>> {
        let Some(metric) = self.metric else { return Ok(None) };
        loop {
            if let Some(&step) = self.steps.get(self.index) {
                let value = self.values[self.index];
                self.index += 1;
                if step < self.first {
                    continue;
                }
                if step <= self.last {
                    return Ok(Some((step, value)));
                }
                // Past the segment: the rest of this chunk and segment is not read.
                self.steps.clear();
                self.next_key = None;
                continue;
            }
            let Some(tables) = &self.current else {
                // Popped once open: a panic opening it names its file (see `path`).
                let Some(segment) = self.segments.front() else { return Ok(None) };
                let tables = SegmentTables::open(segment)?;
                self.next_key = Some(tables.points_start(metric, segment.first)?);
                (self.first, self.last) = (segment.first, segment.last);
                self.segments.pop_front();
                self.current = Some(tables);
                continue;
            };
            let chunk = match self.next_key {
                Some(from) => tables.next_points(metric, from, self.last)?,
                None => None,
            };
            let Some((key, bytes)) = chunk else {
                self.current = None;
                continue;
            };
            let range = point_chunk::decode(&bytes, &mut self.steps, &mut self.values).at(tables.path())?;
            if range.first_step != key {
                return Err(crate::Error::corrupt(tables.path(), "a point chunk's key differs from its first step"));
            }
            self.index = 0;
            self.next_key = key.checked_add(1);
        }
    }
}

impl Iterator for Series {
    type Item = Result<(u64, f64)>;

    fn next(&mut self) -> Option<Result<(u64, f64)>> {
        self.metric?;
        match guard::catch_in(self, Series::advance, Series::path) {
            Ok(Some(point)) => Some(Ok(point)),
            Ok(None) => {
                self.metric = None;
                None
            }
            Err(error) => {
                self.metric = None;
                Some(Err(error))
            }
        }
    }
}

/// Streams one metric's points with the time each row was logged (see
/// [`crate::RunReader::series_with_time`]): the metric's own chunks, joined with the row chunks
/// for the times. See [`Series`] for an example.
pub struct TimedSeries {
    series: Series,
    rows: VecDeque<Segment>,
    current: Option<SegmentRows>,
}

impl TimedSeries {
    pub(crate) fn new(segments: VecDeque<Segment>, metric: Option<u32>) -> TimedSeries {
        TimedSeries { series: Series::new(segments.clone(), metric), rows: segments, current: None }
    }

    /// The time of the row at `step`; rows are asked for in increasing step order.
    fn time_of(&mut self, step: u64) -> Result<u64> {
        loop {
            if self.current.is_none() {
                let Some(segment) = self.rows.pop_front() else {
                    return Err(crate::Error::corrupt(PathBuf::new(), format!("a point at step {step} has no row")));
                };
                self.current = Some(SegmentRows::open(&segment, 0)?);
            }
            let Some(rows) = self.current.as_mut() else { continue };
            match rows.next_row()? {
                Some((at, time)) if at == step => return Ok(time),
                Some((at, _)) if at < step => {}
                Some(_) => {
                    let path = rows.tables.path().to_path_buf();
                    return Err(crate::Error::corrupt(path, format!("a point at step {step} has no row")));
                }
                None => self.current = None,
            }
        }
    }
}

impl Iterator for TimedSeries {
    type Item = Result<(u64, SystemTime, f64)>;

    fn next(&mut self) -> Option<Result<(u64, SystemTime, f64)>> {
        let (step, value) = match self.series.next()? {
            Ok(point) => point,
            Err(error) => return Some(Err(error)),
        };
        match guard::catch_in(self, |timed| timed.time_of(step), |timed| timed.series.path()) {
            Ok(time) => Some(Ok((step, crate::sys::from_ms(time), value))),
            Err(error) => {
                self.series.metric = None;
                Some(Err(error))
            }
        }
    }
}
