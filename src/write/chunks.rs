//! How a commit and a rewind change the chunk tables of a run database: the rows' steps and
//! times are appended to the last row chunk, each metric's points to its own last point chunk
//! (with that chunk's summary rewritten), and a rewind splits the chunks holding its step and
//! moves every later chunk, bytes unchanged, to the archive tables.

use std::path::Path;

use redb::{ReadableTable, WriteTransaction};

use crate::error::{Context, Result};
use crate::format::batch::RowBatch;
use crate::format::summary::ChunkSummary;
use crate::format::tables::{
    ARCHIVE_POINTS, ARCHIVE_ROWS, ARCHIVE_SUMMARIES, POINTS, ROWS, SAMPLE_SUMMARIES, SAMPLES, SUMMARIES,
};
use crate::format::{Corrupt, point_chunk, row_chunk, time_chunk};

/// How big the writer makes chunks. A chunk is one redb value, stored in a page of a power-of-two
/// size: a chunk just under a page keeps the rounding waste small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkSize {
    /// About 15 KiB in a 16 KiB page: cheap top-ups of a thousand metrics' last chunks at each
    /// commit, little waste.
    Large,
    /// About 3 KiB in a 4 KiB page: for a commit per row, where the last chunks are rewritten
    /// (and synced) at every commit.
    Small,
}

impl ChunkSize {
    /// The encoded size a chunk aims for.
    fn target(self) -> usize {
        match self {
            ChunkSize::Large => 15 << 10,
            ChunkSize::Small => 3 << 10,
        }
    }

    /// The encoded size a chunk may not exceed (unless it holds one entry): one page, with room
    /// for redb's leaf header.
    fn limit(self) -> usize {
        match self {
            ChunkSize::Large => (16 << 10) - 512,
            ChunkSize::Small => (4 << 10) - 512,
        }
    }

    /// A last chunk shorter than this is topped up with the next entries.
    fn top_up_below(self) -> usize {
        self.target() * 7 / 8
    }

    /// The most rows in a row chunk: bounds the work of a top-up. A commit per row tops up
    /// the last row chunk at every commit, and rows that cost a bit each would otherwise fill
    /// thousands into one small chunk, decoded and encoded again for every row.
    fn max_rows(self) -> usize {
        match self {
            ChunkSize::Large => 8192,
            ChunkSize::Small => 512,
        }
    }

    /// The most points in a point chunk (and samples in a time chunk), for the same reason: a
    /// constant metric codes in a bit per point.
    fn max_points(self) -> usize {
        match self {
            ChunkSize::Large => 16_384,
            ChunkSize::Small => 256,
        }
    }
}

/// Encodes entries `0..count` as chunks of about the target size: `encode(range, out)` encodes
/// a range, `sink(range, bytes)` stores a chunk. `guess` is the entries per chunk to try
/// first; it is updated from the bytes per entry seen.
fn encode_sized(
    count: usize,
    size: ChunkSize,
    max: usize,
    guess: &mut usize,
    bytes: &mut Vec<u8>,
    mut encode: impl FnMut(std::ops::Range<usize>, &mut Vec<u8>),
    mut sink: impl FnMut(std::ops::Range<usize>, &[u8]) -> Result<()>,
) -> Result<()> {
    let (target, limit) = (size.target(), size.limit());
    let mut start = 0;
    while start < count {
        let mut take = (*guess).clamp(1, max).min(count - start);
        loop {
            bytes.clear();
            encode(start..start + take, bytes);
            if bytes.len() <= limit || take == 1 {
                break;
            }
            take = (take * target / bytes.len()).clamp(1, take - 1);
        }
        if bytes.len() > target / 4 || take == *guess {
            *guess = (take * target / bytes.len().max(1)).clamp(16, max);
        }
        sink(start..start + take, bytes)?;
        start += take;
    }
    Ok(())
}

/// One metric's new points, gathered from a batch of rows.
#[derive(Default)]
struct MetricPoints {
    steps: Vec<u64>,
    values: Vec<f64>,
    /// Points per chunk to try first, learnt from this metric's own data: metrics differ in
    /// bytes per point (a smooth schedule codes in a few bits, a noisy loss in most of 64), and
    /// a guess made on another metric's data would be encoded again at another size. A metric
    /// not yet encoded starts from the last metric's guess (`None` until then).
    guess: Option<usize>,
    /// The last chunk this writer stored for the metric, with its points: a commit per row tops
    /// it up at every commit, and finding the stored bytes equal to these spares decoding them.
    /// Kept for small chunks only (a thousand metrics' large chunks would hold tens of MB).
    tail: Tail,
}

/// A chunk's bytes and the points they decode to.
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
    steps: Vec<u64>,
    values: Vec<f64>,
}

impl Tail {
    /// Appends the points of `chunk` to `steps` and `values`: the kept ones if `chunk` is the
    /// chunk they came from (byte for byte), else decoded.
    fn points_of(&self, chunk: &[u8], steps: &mut Vec<u64>, values: &mut Vec<f64>) -> Result<(), Corrupt> {
        if !self.bytes.is_empty() && self.bytes == chunk {
            steps.extend_from_slice(&self.steps);
            values.extend_from_slice(&self.values);
            return Ok(());
        }
        point_chunk::decode(chunk, steps, values).map(drop)
    }

    /// Keeps `chunk` and its points (or forgets them, when `keep` is false).
    fn keep(&mut self, keep: bool, chunk: &[u8], steps: &[u64], values: &[f64]) {
        self.bytes.clear();
        self.steps.clear();
        self.values.clear();
        if keep {
            self.bytes.extend_from_slice(chunk);
            self.steps.extend_from_slice(steps);
            self.values.extend_from_slice(values);
        }
    }
}

/// Memory reused from one commit to the next.
pub(crate) struct Scratch {
    /// Rows per chunk, and points per chunk of a metric encoded for the first time (and
    /// samples per time chunk), to try first, learnt from the data.
    rows_guess: usize,
    points_guess: usize,
    steps: Vec<u64>,
    times: Vec<u64>,
    values: Vec<f64>,
    bytes: Vec<u8>,
    stream: Vec<u8>,
    by_metric: Vec<MetricPoints>,
    touched: Vec<u32>,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            rows_guess: ChunkSize::Large.max_rows(),
            points_guess: 2048,
            steps: Vec::new(),
            times: Vec::new(),
            values: Vec::new(),
            bytes: Vec::new(),
            stream: Vec::new(),
            by_metric: Vec::new(),
            touched: Vec::new(),
        }
    }
}

/// Appends the steps and times of `rows` (non-empty, starting at or after the last stored step)
/// to the row chunks, topping up the last one. Returns how many rows are new: a first row at the
/// last stored step merges into it (and keeps its time).
pub(crate) fn append_rows(
    tx: &WriteTransaction,
    path: &Path,
    rows: &RowBatch,
    size: ChunkSize,
    scratch: &mut Scratch,
) -> Result<u64> {
    let mut table = tx.open_table(ROWS).at(path)?;
    let Scratch { steps, times, bytes, stream, rows_guess, .. } = scratch;
    steps.clear();
    times.clear();
    let mut start = 0;
    let last = table.last().at(path)?.map(|(key, value)| (key.value(), value.value().to_vec()));
    if let Some((_, chunk)) = last {
        let range = row_chunk::range(&chunk).at(path)?;
        let merges = rows.first_step() == Some(range.last_step);
        if (chunk.len() < size.top_up_below() && range.count < size.max_rows()) || merges {
            row_chunk::decode(&chunk, steps, times).at(path)?;
            start = usize::from(merges);
        }
    }
    steps.extend_from_slice(&rows.steps[start..]);
    times.extend_from_slice(&rows.times[start..]);
    let (steps, times) = (&*steps, &*times);
    encode_sized(
        steps.len(),
        size,
        size.max_rows(),
        rows_guess,
        bytes,
        |range, out| row_chunk::encode(&steps[range.clone()], &times[range], stream, out),
        |range, chunk| table.insert(steps[range.start], chunk).map(drop).at(path),
    )?;
    Ok((rows.rows() - start) as u64)
}

/// Appends each metric's points of `rows` to its point chunks, topping up its last chunk (a
/// point at that chunk's last step replaces it: the later value wins) and rewriting the
/// summaries of the chunks it writes.
pub(crate) fn append_points(
    tx: &WriteTransaction,
    path: &Path,
    rows: &RowBatch,
    size: ChunkSize,
    scratch: &mut Scratch,
) -> Result<()> {
    gather(rows, scratch);
    let mut points = tx.open_table(POINTS).at(path)?;
    let mut summaries = tx.open_table(SUMMARIES).at(path)?;
    let Scratch { steps, values, bytes, stream, by_metric, touched, points_guess, .. } = scratch;
    for &metric in touched.iter() {
        let new = &mut by_metric[metric as usize];
        steps.clear();
        values.clear();
        let last = points
            .range((metric, 0)..=(metric, u64::MAX))
            .at(path)?
            .next_back()
            .transpose()
            .at(path)?
            .map(|(_, value)| value.value().to_vec());
        if let Some(chunk) = last {
            let range = point_chunk::range(&chunk).at(path)?;
            let merges = new.steps.first() == Some(&range.last_step);
            if (chunk.len() < size.top_up_below() && range.count < size.max_points()) || merges {
                new.tail.points_of(&chunk, steps, values).at(path)?;
                if merges {
                    steps.pop();
                    values.pop();
                }
            }
        }
        if steps.is_empty() {
            // Nothing to top up: encode the gathered points where they are.
            std::mem::swap(steps, &mut new.steps);
            std::mem::swap(values, &mut new.values);
        } else {
            steps.extend_from_slice(&new.steps);
            values.extend_from_slice(&new.values);
        }
        new.steps.clear();
        new.values.clear();
        let (steps, values) = (&*steps, &*values);
        let tail = &mut new.tail;
        let guess = new.guess.get_or_insert(*points_guess);
        encode_sized(
            steps.len(),
            size,
            size.max_points(),
            guess,
            bytes,
            |range, out| point_chunk::encode(&steps[range.clone()], &values[range], stream, out),
            |range, chunk| {
                let key = (metric, steps[range.start]);
                points.insert(key, chunk).at(path)?;
                let (chunk_steps, chunk_values) = (&steps[range.clone()], &values[range.clone()]);
                let summary = ChunkSummary::of(chunk_steps, chunk_values);
                summaries.insert(key, summary.encode().as_slice()).at(path)?;
                if range.end == steps.len() {
                    tail.keep(size == ChunkSize::Small, chunk, chunk_steps, chunk_values);
                }
                Ok(())
            },
        )?;
        *points_guess = *guess;
    }
    touched.clear();
    Ok(())
}

/// Appends samples of time-indexed series, each series' to its last time chunk (topped up
/// while small) with its summary. A sample at or before its series' last stored time is
/// dropped: a series is stored in time order, and a retried commit that had landed stores
/// nothing twice.
pub(crate) fn append_samples(
    tx: &WriteTransaction,
    path: &Path,
    samples: &[(u32, u64, f64)],
    size: ChunkSize,
    scratch: &mut Scratch,
) -> Result<()> {
    let mut chunks = tx.open_table(SAMPLES).at(path)?;
    let mut summaries = tx.open_table(SAMPLE_SUMMARIES).at(path)?;
    let mut metrics: Vec<u32> = samples.iter().map(|&(metric, _, _)| metric).collect();
    metrics.sort_unstable();
    metrics.dedup();
    let Scratch { times, values, bytes, stream, points_guess, .. } = scratch;
    for metric in metrics {
        times.clear();
        values.clear();
        let last = chunks
            .range((metric, 0)..=(metric, u64::MAX))
            .at(path)?
            .next_back()
            .transpose()
            .at(path)?
            .map(|(key, value)| (key.value().1, value.value().to_vec()));
        let mut last_time = None;
        if let Some((_, chunk)) = last {
            let mut stored_times = Vec::new();
            let mut stored_values = Vec::new();
            time_chunk::decode(&chunk, &mut stored_times, &mut stored_values).at(path)?;
            last_time = stored_times.last().copied();
            if chunk.len() < size.top_up_below() && stored_times.len() < size.max_points() {
                *times = stored_times;
                *values = stored_values;
            }
        }
        for &(_, time, value) in samples.iter().filter(|sample| sample.0 == metric) {
            if last_time.is_none_or(|last| time > last) {
                times.push(time);
                values.push(value);
                last_time = Some(time);
            }
        }
        if times.is_empty() {
            continue;
        }
        let (times, values) = (&*times, &*values);
        encode_sized(
            times.len(),
            size,
            size.max_points(),
            points_guess,
            bytes,
            |range, out| time_chunk::encode(&times[range.clone()], &values[range], stream, out),
            |range, chunk| {
                let key = (metric, times[range.start]);
                chunks.insert(key, chunk).at(path)?;
                let summary = ChunkSummary::of(&times[range.clone()], &values[range]);
                summaries.insert(key, summary.encode().as_slice()).at(path)?;
                Ok(())
            },
        )?;
    }
    Ok(())
}

/// Splits `rows` by metric into `scratch.by_metric`, listing the metrics met in `touched` in id
/// order. A metric given twice in one (merged) row keeps the later value.
fn gather(rows: &RowBatch, scratch: &mut Scratch) {
    let Scratch { by_metric, touched, .. } = scratch;
    touched.clear();
    for index in 0..rows.rows() {
        let (step, metrics, values) = rows.row(index);
        for (&metric, &value) in metrics.iter().zip(values) {
            let slot = metric as usize;
            if slot >= by_metric.len() {
                by_metric.resize_with(slot + 1, MetricPoints::default);
            }
            let points = &mut by_metric[slot];
            if points.steps.is_empty() {
                touched.push(metric);
            }
            if points.steps.last() == Some(&step) {
                if let Some(last) = points.values.last_mut() {
                    *last = value;
                }
            } else {
                points.steps.push(step);
                points.values.push(value);
            }
        }
    }
    touched.sort_unstable();
}

/// What a rewind moved to the archive.
pub(crate) struct Archived {
    /// Rows moved.
    pub(crate) rows: u64,
    /// The first step moved, if any row was.
    pub(crate) first_step: Option<u64>,
}

/// Moves every row and point after step `to` (every one for `None`) into archived branch
/// `branch`: the chunks holding `to` are split (head kept, tail archived), every later chunk
/// moves with its summary, bytes unchanged. `metrics` is the number of metric ids.
pub(crate) fn archive_after(
    tx: &WriteTransaction,
    path: &Path,
    branch: u32,
    to: Option<u64>,
    metrics: u32,
    scratch: &mut Scratch,
) -> Result<Archived> {
    let after = to.map_or(0, |to| to.saturating_add(1));
    // With nothing kept, no chunk straddles: `..=to` is empty.
    let kept = |step: u64| to.is_some_and(|to| step <= to);
    let mut archived = Archived { rows: 0, first_step: None };
    {
        let mut rows = tx.open_table(ROWS).at(path)?;
        let mut archive = tx.open_table(ARCHIVE_ROWS).at(path)?;
        let Scratch { steps, times, bytes, stream, .. } = &mut *scratch;
        let straddling = match to {
            Some(to) => rows.range(..=to).at(path)?.next_back().transpose().at(path)?,
            None => None,
        };
        let straddling = straddling.map(|(key, value)| (key.value(), value.value().to_vec()));
        if let Some((key, chunk)) = straddling
            && !kept(row_chunk::range(&chunk).at(path)?.last_step)
        {
            row_chunk::decode(&chunk, steps, times).at(path)?;
            let keep = steps.partition_point(|&step| kept(step));
            bytes.clear();
            row_chunk::encode(&steps[..keep], &times[..keep], stream, bytes);
            rows.insert(key, bytes.as_slice()).at(path)?;
            bytes.clear();
            row_chunk::encode(&steps[keep..], &times[keep..], stream, bytes);
            archive.insert((branch, steps[keep]), bytes.as_slice()).at(path)?;
            archived.rows += (steps.len() - keep) as u64;
            archived.first_step = Some(steps[keep]);
        }
        let later: Vec<(u64, Vec<u8>)> = rows
            .range(after..)
            .at(path)?
            .map(|entry| entry.map(|(key, value)| (key.value(), value.value().to_vec())))
            .collect::<std::result::Result<_, _>>()
            .at(path)?;
        for (key, chunk) in later {
            archived.rows += row_chunk::range(&chunk).at(path)?.count as u64;
            archived.first_step.get_or_insert(key);
            archive.insert((branch, key), chunk.as_slice()).at(path)?;
            rows.remove(key).at(path)?;
        }
    }
    let mut points = tx.open_table(POINTS).at(path)?;
    let mut summaries = tx.open_table(SUMMARIES).at(path)?;
    let mut archive = tx.open_table(ARCHIVE_POINTS).at(path)?;
    let mut archive_summaries = tx.open_table(ARCHIVE_SUMMARIES).at(path)?;
    let Scratch { steps, values, bytes, stream, .. } = scratch;
    for metric in 0..metrics {
        let straddling = match to {
            Some(to) => points.range((metric, 0)..=(metric, to)).at(path)?.next_back().transpose().at(path)?,
            None => None,
        };
        let straddling = straddling.map(|(key, value)| (key.value().1, value.value().to_vec()));
        if let Some((key, chunk)) = straddling
            && !kept(point_chunk::range(&chunk).at(path)?.last_step)
        {
            point_chunk::decode(&chunk, steps, values).at(path)?;
            let keep = steps.partition_point(|&step| kept(step));
            bytes.clear();
            point_chunk::encode(&steps[..keep], &values[..keep], stream, bytes);
            points.insert((metric, key), bytes.as_slice()).at(path)?;
            let head = ChunkSummary::of(&steps[..keep], &values[..keep]);
            summaries.insert((metric, key), head.encode().as_slice()).at(path)?;
            bytes.clear();
            point_chunk::encode(&steps[keep..], &values[keep..], stream, bytes);
            archive.insert((branch, metric, steps[keep]), bytes.as_slice()).at(path)?;
            let tail = ChunkSummary::of(&steps[keep..], &values[keep..]);
            archive_summaries.insert((branch, metric, steps[keep]), tail.encode().as_slice()).at(path)?;
        }
        let later: Vec<(u64, Vec<u8>)> = points
            .range((metric, after)..=(metric, u64::MAX))
            .at(path)?
            .map(|entry| entry.map(|(key, value)| (key.value().1, value.value().to_vec())))
            .collect::<std::result::Result<_, _>>()
            .at(path)?;
        for (key, chunk) in later {
            archive.insert((branch, metric, key), chunk.as_slice()).at(path)?;
            points.remove((metric, key)).at(path)?;
            if let Some(summary) = summaries.remove((metric, key)).at(path)? {
                archive_summaries.insert((branch, metric, key), summary.value()).at(path)?;
            }
        }
    }
    Ok(archived)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(steps: &[u64], values: &[f64]) -> Vec<u8> {
        let mut out = Vec::new();
        point_chunk::encode(steps, values, &mut Vec::new(), &mut out);
        out
    }

    #[test]
    fn a_kept_tail_stands_for_its_own_bytes_only() {
        let (steps, values) = ([3, 4, 7], [0.5, f64::NAN, -0.0]);
        let kept = chunk(&steps, &values);
        let mut tail = Tail::default();
        tail.keep(true, &kept, &steps, &values);
        let (mut got_steps, mut got_values) = (Vec::new(), Vec::new());
        tail.points_of(&kept, &mut got_steps, &mut got_values).unwrap();
        assert_eq!(got_steps, steps);
        assert_eq!(got_values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), values.map(f64::to_bits));
        // Other bytes (a rewind split the chunk, another writer wrote it) are decoded.
        let other = chunk(&[3, 4], &[0.5, 1.5]);
        let (mut got_steps, mut got_values) = (Vec::new(), Vec::new());
        tail.points_of(&other, &mut got_steps, &mut got_values).unwrap();
        assert_eq!((got_steps, got_values), (vec![3, 4], vec![0.5, 1.5]));
        // A forgotten tail decodes even its former bytes, and damaged bytes are an error.
        tail.keep(false, &kept, &steps, &values);
        let (mut got_steps, mut got_values) = (Vec::new(), Vec::new());
        tail.points_of(&kept, &mut got_steps, &mut got_values).unwrap();
        assert_eq!(got_steps, steps);
        assert!(tail.points_of(&kept[..kept.len() - 1], &mut Vec::new(), &mut Vec::new()).is_err());
    }
}
