//! Streaming replay of a run's history: rows in step order, or one metric's points.
//!
//! A run's live history is a list of segments, each a step range of one table of one run
//! database: a plain run has one (its `blocks` table); a fork reads its inherited steps from
//! its parent's database (and, if the parent was rewound since, from the parent's archived
//! branches); an archived branch is one segment of the `archive` table. Memory stays bounded by
//! one block, whatever the length.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;

use redb::ReadTransaction;

use crate::error::{Context, Error, Result};
use crate::format::block::{self, BlockHeader, DecodedBlock};
use crate::format::tables::{ARCHIVE, BLOCKS};
use crate::guard;

/// Which table a segment reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Live,
    Archive(u32),
}

/// A step range of one table of one run database, read in the transaction of a snapshot.
#[derive(Clone)]
pub(crate) struct Segment {
    pub(crate) tx: Arc<ReadTransaction>,
    pub(crate) path: PathBuf,
    pub(crate) table: Table,
    pub(crate) first: u64,
    pub(crate) last: u64,
}

impl Segment {
    /// The blocks that may hold steps `first..=last` of this segment, in step order.
    fn blocks(&self, first: u64) -> Result<Blocks> {
        let path = &self.path;
        let tx = &self.tx;
        match self.table {
            Table::Live => {
                let table = tx.open_table(BLOCKS).at(path)?;
                let start = match table.range(..=first).at(path)?.next_back() {
                    Some(entry) => entry.at(path)?.0.value(),
                    None => first,
                };
                Ok(Blocks::Live(table.range(start..).at(path)?))
            }
            Table::Archive(branch) => {
                let table = tx.open_table(ARCHIVE).at(path)?;
                let start = match table.range((branch, 0)..=(branch, first)).at(path)?.next_back() {
                    Some(entry) => entry.at(path)?.0.value().1,
                    None => first,
                };
                Ok(Blocks::Archive(table.range((branch, start)..=(branch, u64::MAX)).at(path)?))
            }
        }
    }
}

impl Segment {
    /// Visits the blocks that may hold steps of this segment, last first, until `visit`
    /// returns `false`.
    pub(crate) fn visit_backwards(&self, mut visit: impl FnMut(&[u8]) -> Result<bool>) -> Result<()> {
        let path = &self.path;
        let tx = &self.tx;
        match self.table {
            Table::Live => {
                let table = tx.open_table(BLOCKS).at(path)?;
                for entry in table.range(..=self.last).at(path)?.rev() {
                    let (_, bytes) = entry.at(path)?;
                    if !visit(bytes.value())? || block::header(bytes.value()).at(path)?.first_step <= self.first {
                        break;
                    }
                }
            }
            Table::Archive(branch) => {
                let table = tx.open_table(ARCHIVE).at(path)?;
                for entry in table.range((branch, 0)..=(branch, self.last)).at(path)?.rev() {
                    let (_, bytes) = entry.at(path)?;
                    if !visit(bytes.value())? || block::header(bytes.value()).at(path)?.first_step <= self.first {
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Counts the rows of `segments` from block headers, decoding steps only for blocks that a
/// segment cuts.
pub(crate) fn count_rows(segments: VecDeque<Segment>) -> Result<u64> {
    let mut feed = BlockFeed { segments, current: None };
    let mut rows = 0;
    let mut steps = Vec::new();
    while let Some(FedBlock { bytes, first, last, path }) = feed.next()? {
        let header = block::header(&bytes).at(&path)?;
        if header.first_step >= first && header.last_step <= last {
            rows += header.rows as u64;
        } else {
            block::decode_steps(&bytes, &mut steps).at(&path)?;
            rows += steps.iter().filter(|&&step| step >= first && step <= last).count() as u64;
        }
    }
    Ok(rows)
}

enum Blocks {
    Live(redb::Range<'static, u64, &'static [u8]>),
    Archive(redb::Range<'static, (u32, u64), &'static [u8]>),
}

impl Blocks {
    /// The next block's first step (its key) and bytes.
    fn next(&mut self, path: &std::path::Path) -> Result<Option<(u64, Vec<u8>)>> {
        let entry = match self {
            Blocks::Live(range) => range.next().map(|e| e.map(|(k, v)| (k.value(), v.value().to_vec()))),
            Blocks::Archive(range) => range.next().map(|e| e.map(|(k, v)| (k.value().1, v.value().to_vec()))),
        };
        entry.transpose().at(path)
    }
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

/// The segment being read and its block cursor.
struct Cursor {
    segment: Segment,
    blocks: Blocks,
}

/// A block handed out by a [`BlockFeed`], with the step range of the segment it is read for.
struct FedBlock {
    bytes: Vec<u8>,
    first: u64,
    last: u64,
    path: PathBuf,
}

/// Hands out the blocks of a list of segments, one after the other.
struct BlockFeed {
    segments: VecDeque<Segment>,
    current: Option<Cursor>,
}

impl BlockFeed {
    /// The file the next block comes from, to name in an error.
    fn path(&self) -> PathBuf {
        let current = self.current.as_ref().map(|cursor| &cursor.segment);
        current.or_else(|| self.segments.front()).map(|segment| segment.path.clone()).unwrap_or_default()
    }

    /// The next block that may hold rows of the current segment: its bytes, and the segment's
    /// step range. `None` at the end.
    fn next(&mut self) -> Result<Option<FedBlock>> {
        loop {
            if self.current.is_none() {
                let Some(segment) = self.segments.pop_front() else { return Ok(None) };
                let blocks = segment.blocks(segment.first)?;
                self.current = Some(Cursor { segment, blocks });
            }
            let Some(cursor) = self.current.as_mut() else { continue };
            let (first, last, path) = (cursor.segment.first, cursor.segment.last, cursor.segment.path.clone());
            match cursor.blocks.next(&path)? {
                Some((key, bytes)) if key <= last => {
                    if block::header(&bytes).at(&path)?.first_step != key {
                        return Err(Error::corrupt(&path, "a block's key differs from its first step"));
                    }
                    return Ok(Some(FedBlock { bytes, first, last, path }));
                }
                _ => self.current = None,
            }
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

/// Streams a run's rows in step order (see [`crate::RunSnapshot::history`]). It reads from its
/// snapshot's transactions for its whole life.
///
/// It is an [`Iterator`] of owned [`Row`]s; [`History::next_row`] lends rows without
/// allocating, for the fastest replay.
pub struct History {
    feed: BlockFeed,
    /// The run's names, from the same snapshot as every block read.
    names: Vec<Arc<str>>,
    block: DecodedBlock,
    path: PathBuf,
    cursors: Vec<usize>,
    next_row: usize,
    rows_in_block: usize,
    first: u64,
    last: u64,
    points: Vec<(u32, f64)>,
    done: bool,
}

impl History {
    pub(crate) fn new(segments: VecDeque<Segment>, names: Vec<Arc<str>>) -> History {
        History {
            feed: BlockFeed { segments, current: None },
            names,
            block: DecodedBlock::default(),
            path: PathBuf::new(),
            cursors: Vec::new(),
            next_row: 0,
            rows_in_block: 0,
            first: 0,
            last: 0,
            points: Vec::new(),
            done: false,
        }
    }

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
                let path = self.feed.path();
                match guard::catch(&path, || self.load_next_block()) {
                    Ok(true) => continue,
                    Ok(false) => {
                        self.done = true;
                        return Ok(None);
                    }
                    Err(error) => {
                        self.done = true;
                        return Err(error);
                    }
                }
            }
            let row = self.next_row;
            self.next_row += 1;
            let step = self.block.steps[row];
            if step < self.first || step > self.last {
                for (column, cursor) in self.block.columns().iter().zip(self.cursors.iter_mut()) {
                    *cursor += usize::from(column.has_row(row));
                }
                if step > self.last {
                    // The rest of this block is past the segment.
                    self.next_row = self.rows_in_block;
                }
                continue;
            }
            self.points.clear();
            for (column, cursor) in self.block.columns().iter().zip(self.cursors.iter_mut()) {
                if column.has_row(row) {
                    self.points.push((column.metric, column.values[*cursor]));
                    *cursor += 1;
                }
            }
            return Ok(Some(RowRef { step, points: &self.points, names: &self.names }));
        }
    }

    fn load_next_block(&mut self) -> Result<bool> {
        let Some(FedBlock { bytes, first, last, path }) = self.feed.next()? else { return Ok(false) };
        let header: BlockHeader = block::decode(&bytes, &mut self.block).at(&path)?;
        // Names and blocks come from one snapshot, so a column of this run names a known metric.
        // A block of a fork's ancestor may also hold rows after the fork step, logged later with
        // metrics the fork does not know (or knows under another id): those rows are never
        // yielded, so only a column with a point in the segment's range must be known.
        let known = self.names.len();
        let steps = &self.block.steps;
        for column in self.block.columns().iter().filter(|column| column.metric as usize >= known) {
            if (0..header.rows).any(|row| column.has_row(row) && steps[row] >= first && steps[row] <= last) {
                return Err(Error::corrupt(&path, "a block names an unknown metric"));
            }
        }
        self.cursors.clear();
        self.cursors.resize(self.block.columns().len(), 0);
        self.rows_in_block = header.rows;
        self.next_row = 0;
        self.first = first;
        self.last = last;
        self.path = path;
        Ok(true)
    }
}

impl Iterator for History {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Result<Row>> {
        self.next_row().map(|row| row.map(|row| row.to_row())).transpose()
    }
}

/// Streams one metric's `(step, value)` points (see [`crate::RunReader::series`]).
pub struct Series {
    feed: BlockFeed,
    metric: Option<u32>,
    steps: Vec<u64>,
    values: Vec<f64>,
    buffer: Vec<(u64, f64)>,
    next: usize,
}

impl Series {
    pub(crate) fn new(segments: VecDeque<Segment>, metric: Option<u32>) -> Series {
        Series {
            feed: BlockFeed { segments, current: None },
            metric,
            steps: Vec::new(),
            values: Vec::new(),
            buffer: Vec::new(),
            next: 0,
        }
    }

    fn refill(&mut self) -> Result<bool> {
        let Some(metric) = self.metric else { return Ok(false) };
        loop {
            let Some(FedBlock { bytes, first, last, path }) = self.feed.next()? else { return Ok(false) };
            self.buffer.clear();
            self.next = 0;
            let header =
                block::decode_metric(&bytes, metric, &mut self.steps, &mut self.values, &mut self.buffer).at(&path)?;
            if header.first_step < first || header.last_step > last {
                self.buffer.retain(|&(step, _)| step >= first && step <= last);
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
            let path = self.feed.path();
            match guard::catch(&path, || self.refill()) {
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
