//! Overviews of metrics from their chunk summaries: each metric's count, ends and extremes
//! ([`MetricStats`]), and one metric's [`Envelope`] over a step range, for `show`, sparklines and
//! plot downsampling.
//!
//! Every point chunk has a 64-byte summary (count, step range, lowest and highest value, first
//! and last value, NaN count). An overview reads those summaries and decodes only the chunks it
//! must: a chunk that a segment or the asked range cuts (a fork's parent's chunk running past the
//! fork step, a zoomed range's ends), the chunk holding a metric's extreme (for its step), and
//! for an envelope of fewer chunks than half its buckets, every chunk (the exact answer is then
//! cheap). The history is composed of segments as [`crate::RunSnapshot::series`] composes it, so
//! an overview equals what the points themselves give.

use std::ops::{Bound, RangeBounds};

use crate::error::{Context, Result};
use crate::format::point_chunk;
use crate::format::summary::ChunkSummary;
use crate::guard;
use crate::read::chunks::SegmentTables;
use crate::read::history::{self, Segment};
use crate::read::reader::bounds;
use crate::read::snapshot::RunSnapshot;

/// One metric's points over a run's live history, from chunk summaries (see
/// [`crate::RunSnapshot::metric_stats`]). NaN never counts as the lowest or highest value;
/// infinities do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MetricStats {
    /// The metric's name.
    pub name: String,
    /// How many points it has.
    pub count: u64,
    /// How many of them are NaN.
    pub nan_count: u64,
    /// The first point: its step and value (possibly NaN).
    pub first: Option<(u64, f64)>,
    /// The last point.
    pub last: Option<(u64, f64)>,
    /// The lowest non-NaN value and the first step that holds it.
    pub min: Option<(u64, f64)>,
    /// The highest non-NaN value and the first step that holds it.
    pub max: Option<(u64, f64)>,
}

/// A consecutive run of one metric's points, summarised: one bucket of an [`Envelope`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Bucket {
    /// The step of the bucket's first point.
    pub first_step: u64,
    /// The step of its last point.
    pub last_step: u64,
    /// How many points it holds (at least one).
    pub count: u64,
    /// How many of them are NaN.
    pub nan_count: u64,
    /// The first point's value (possibly NaN).
    pub first: f64,
    /// The lowest non-NaN value (infinities count), NaN when every value is NaN.
    pub min: f64,
    /// The highest non-NaN value, NaN when every value is NaN.
    pub max: f64,
    /// The last point's value.
    pub last: f64,
}

impl Bucket {
    fn of(summary: &ChunkSummary) -> Bucket {
        Bucket {
            first_step: summary.first_step,
            last_step: summary.last_step,
            count: summary.count,
            nan_count: u64::from(summary.nan_count),
            first: summary.first,
            min: summary.min,
            max: summary.max,
            last: summary.last,
        }
    }

    /// Appends `next`, which comes after this bucket's points.
    fn extend(&mut self, next: &Bucket) {
        self.last_step = next.last_step;
        self.count += next.count;
        self.nan_count += next.nan_count;
        self.last = next.last;
        // The first of equal extremes is kept (so -0.0 and 0.0 do not swap); NaN never wins.
        if next.min < self.min || self.min.is_nan() {
            self.min = next.min;
        }
        if next.max > self.max || self.max.is_nan() {
            self.max = next.max;
        }
    }
}

/// One metric's points over a step range, reduced to about `buckets` [`Bucket`]s (see
/// [`crate::RunSnapshot::envelope`]).
///
/// The range (its unbounded ends replaced by the metric's first and last step) is divided into
/// `buckets` equal step intervals. When the range holds fewer than `buckets / 2` chunks, its
/// points are decoded and each bucket holds exactly the points of one interval. Otherwise the
/// buckets follow chunk boundaries and only summaries are read: a bucket holds the whole chunks
/// whose first step falls in its interval (a chunk cut by the range's ends counts with its points
/// in range), so a bucket may run past its interval's end by less than one chunk. Intervals
/// without points have no bucket; buckets are in step order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Envelope {
    /// The buckets, in step order.
    pub buckets: Vec<Bucket>,
    /// Whether the buckets follow chunk boundaries (read from summaries) rather than the exact
    /// intervals (read from the points).
    pub whole_chunks: bool,
}

/// A part of a metric's points in one segment.
enum Piece {
    /// A chunk wholly inside the segment: its summary, and where it is (segment, key).
    Whole { summary: ChunkSummary, segment: usize, key: u64 },
    /// The points of a chunk that the segment cuts, those inside it (at least one).
    Points { steps: Vec<u64>, values: Vec<f64> },
}

impl Piece {
    fn bucket(&self) -> Bucket {
        match self {
            Piece::Whole { summary, .. } => Bucket::of(summary),
            Piece::Points { steps, values } => Bucket::of(&ChunkSummary::of(steps, values)),
        }
    }

    fn first_step(&self) -> u64 {
        match self {
            Piece::Whole { summary, .. } => summary.first_step,
            Piece::Points { steps, .. } => steps.first().copied().unwrap_or_default(),
        }
    }
}

/// The segments of a history, with their tables open: the reads of one overview.
struct Segments {
    parts: Vec<(Segment, SegmentTables)>,
}

impl Segments {
    fn open(segments: impl IntoIterator<Item = Segment>) -> Result<Segments> {
        let parts = segments
            .into_iter()
            .map(|segment| SegmentTables::open(&segment).map(|tables| (segment, tables)))
            .collect::<Result<_>>()?;
        Ok(Segments { parts })
    }

    /// `metric`'s points as pieces, in step order: summaries of the chunks inside a segment,
    /// the decoded points of those it cuts.
    fn pieces(&self, metric: u32) -> Result<Vec<Piece>> {
        let mut pieces = Vec::new();
        for (index, (segment, tables)) in self.parts.iter().enumerate() {
            let start = tables.summaries_start(metric, segment.first)?;
            for (key, summary) in tables.summaries(metric, start, segment.last)? {
                if summary.first_step != key || summary.last_step < summary.first_step {
                    return Err(crate::Error::corrupt(tables.path(), "a chunk summary's steps differ from its key"));
                }
                if summary.last_step < segment.first {
                    continue;
                }
                if summary.first_step >= segment.first && summary.last_step <= segment.last {
                    pieces.push(Piece::Whole { summary, segment: index, key });
                    continue;
                }
                let (mut steps, mut values) = self.decode(metric, index, key)?;
                let keep = |step: &u64| *step >= segment.first && *step <= segment.last;
                let from = steps.iter().position(keep).unwrap_or(steps.len());
                let to = steps.iter().rposition(keep).map_or(from, |last| last + 1);
                steps.truncate(to);
                values.truncate(to);
                steps.drain(..from);
                values.drain(..from);
                if !steps.is_empty() {
                    pieces.push(Piece::Points { steps, values });
                }
            }
        }
        Ok(pieces)
    }

    /// The points of `metric`'s chunk `key` in segment `index`.
    fn decode(&self, metric: u32, index: usize, key: u64) -> Result<(Vec<u64>, Vec<f64>)> {
        let (_, tables) = &self.parts[index];
        let (steps, values) = (&mut Vec::new(), &mut Vec::new());
        let Some((found, bytes)) = tables.next_points(metric, key, key)? else {
            return Err(crate::Error::corrupt(tables.path(), "a chunk summary has no chunk"));
        };
        let range = point_chunk::decode(&bytes, steps, values).at(tables.path())?;
        if range.first_step != found {
            return Err(crate::Error::corrupt(tables.path(), "a point chunk's key differs from its first step"));
        }
        Ok((std::mem::take(steps), std::mem::take(values)))
    }

    /// The points of a piece.
    fn points(&self, metric: u32, piece: Piece) -> Result<(Vec<u64>, Vec<f64>)> {
        match piece {
            Piece::Whole { segment, key, .. } => self.decode(metric, segment, key),
            Piece::Points { steps, values } => Ok((steps, values)),
        }
    }

    /// The first point among `pieces` whose value equals `target` (which one of them summarises
    /// as its extreme, `pick`): its step and its value, bit-exact (-0.0 equals 0.0).
    #[allow(clippy::float_cmp)] // exact: the extreme is one of the stored values
    fn point_of(
        &self,
        metric: u32,
        pieces: &[Piece],
        target: f64,
        pick: fn(&Bucket) -> f64,
    ) -> Result<Option<(u64, f64)>> {
        let Some(piece) = pieces.iter().find(|piece| pick(&piece.bucket()) == target) else { return Ok(None) };
        let found =
            |steps: &[u64], values: &[f64]| values.iter().position(|v| *v == target).map(|at| (steps[at], values[at]));
        match piece {
            Piece::Whole { segment, key, .. } => {
                let (steps, values) = self.decode(metric, *segment, *key)?;
                Ok(found(&steps, &values))
            }
            Piece::Points { steps, values } => Ok(found(steps, values)),
        }
    }

    /// The stats of `metric`, named `name`.
    fn stats(&self, metric: u32, name: &str) -> Result<MetricStats> {
        let pieces = self.pieces(metric)?;
        let mut stats = MetricStats {
            name: name.to_string(),
            count: 0,
            nan_count: 0,
            first: None,
            last: None,
            min: None,
            max: None,
        };
        let Some(total) = pieces.iter().map(Piece::bucket).reduce(|mut all, next| {
            all.extend(&next);
            all
        }) else {
            return Ok(stats);
        };
        stats.count = total.count;
        stats.nan_count = total.nan_count;
        stats.first = Some((total.first_step, total.first));
        stats.last = Some((total.last_step, total.last));
        if !total.min.is_nan() {
            stats.min = self.point_of(metric, &pieces, total.min, |bucket| bucket.min)?;
            stats.max = self.point_of(metric, &pieces, total.max, |bucket| bucket.max)?;
            if stats.min.is_none() || stats.max.is_none() {
                let path = self.parts.first().map(|(_, tables)| tables.path().to_path_buf()).unwrap_or_default();
                return Err(crate::Error::corrupt(path, "a chunk summary's extreme is not in its chunk"));
            }
        }
        Ok(stats)
    }

    /// The envelope of `metric` over `steps` (the bounds the caller asked for: unbounded ends
    /// take the metric's first and last step), in `buckets` buckets; `None` when it would need
    /// every point decoded and `exact_allowed` is false.
    fn envelope(
        &self,
        metric: u32,
        steps: (Bound<u64>, Bound<u64>),
        buckets: usize,
        exact_allowed: bool,
    ) -> Result<Option<Envelope>> {
        let pieces = self.pieces(metric)?;
        let buckets = buckets.max(1);
        let whole_chunks = pieces.len().saturating_mul(2) >= buckets;
        if !whole_chunks && !exact_allowed {
            return Ok(None);
        }
        let (Some(data_first), Some(data_last)) =
            (pieces.first().map(Piece::first_step), pieces.last().map(|piece| piece.bucket().last_step))
        else {
            return Ok(Some(Envelope { buckets: Vec::new(), whole_chunks }));
        };
        let low = match steps.0 {
            Bound::Included(step) => step,
            Bound::Excluded(step) => step.saturating_add(1),
            Bound::Unbounded => data_first,
        };
        let high = match steps.1 {
            Bound::Included(step) => step,
            Bound::Excluded(step) => step.saturating_sub(1),
            Bound::Unbounded => data_last,
        };
        let grid = Grid::new(low, high, buckets);
        let mut out: Vec<(u64, Bucket)> = Vec::new();
        let mut add = |interval: u64, bucket: Bucket| match out.last_mut() {
            Some((current, all)) if *current == interval => all.extend(&bucket),
            _ => out.push((interval, bucket)),
        };
        if whole_chunks {
            for piece in &pieces {
                add(grid.interval(piece.first_step()), piece.bucket());
            }
        } else {
            for piece in pieces {
                let (steps, values) = self.points(metric, piece)?;
                for (&step, &value) in steps.iter().zip(&values) {
                    add(grid.interval(step), Bucket::of(&ChunkSummary::of(&[step], &[value])));
                }
            }
        }
        Ok(Some(Envelope { buckets: out.into_iter().map(|(_, bucket)| bucket).collect(), whole_chunks }))
    }
}

/// Equal step intervals of `low..=high`.
struct Grid {
    low: u64,
    span: u128,
    count: u128,
}

impl Grid {
    fn new(low: u64, high: u64, count: usize) -> Grid {
        Grid { low, span: u128::from(high.saturating_sub(low)) + 1, count: count as u128 }
    }

    /// The interval holding `step`; steps outside the range take the nearest interval.
    fn interval(&self, step: u64) -> u64 {
        let index = (u128::from(step.saturating_sub(self.low)) * self.count / self.span).min(self.count - 1);
        // Below `count`, a usize.
        u64::try_from(index).unwrap_or(u64::MAX)
    }
}

impl RunSnapshot {
    /// Every metric's count, NaN count, first and last point, and lowest and highest value with
    /// its step, over the live history, in the order first logged. Reads the chunk summaries,
    /// and decodes only the chunks holding each metric's extremes (and those a fork's
    /// inheritance cuts): the cost grows with the number of chunks, not of points.
    ///
    /// A metric without points here (a system metric, or one only an archived branch has) has a
    /// count of 0 and no points.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let mut run = store.init(runstore::RunOptions::new().id("r"))?;
    /// for step in 0..100 {
    ///     let loss = if step == 7 { f64::NAN } else { 1.0 / (1.0 + step as f64) };
    ///     run.log([("loss", loss)])?;
    /// }
    /// run.finish(0)?;
    /// let stats = store.open_run("r")?.snapshot()?.metric_stats()?;
    /// let loss = &stats[0];
    /// assert_eq!((loss.name.as_str(), loss.count, loss.nan_count), ("loss", 100, 1));
    /// assert_eq!(loss.max, Some((0, 1.0)));
    /// assert_eq!(loss.min, Some((99, 0.01)));
    /// assert_eq!(loss.last, Some((99, 0.01)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`](crate::Error::Corrupt) for a summary or chunk that does not decode, or
    /// that disagree; [`Error::Storage`](crate::Error::Storage) on a read error.
    pub fn metric_stats(&self) -> Result<Vec<MetricStats>> {
        guard::catch(self.file(), || {
            let segments = Segments::open(self.live_segments().iter().cloned())?;
            (0u32..).zip(self.names()).map(|(metric, name)| segments.stats(metric, name)).collect()
        })
    }

    /// `metric`'s points with steps in `steps`, reduced to about `buckets` buckets of equal
    /// step intervals (see [`Envelope`] for the rule): each with its first and last step and
    /// value, lowest and highest value, and counts. When the range holds many chunks (at least
    /// `buckets / 2`), only their summaries are read, and the chunks the range's ends cut; else
    /// the points are decoded. An unknown metric has no buckets.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let mut run = store.init(runstore::RunOptions::new().id("r"))?;
    /// for step in 0..1000u32 {
    ///     run.log([("loss", if step == 500 { 9.0 } else { f64::from(step % 10) })])?;
    /// }
    /// run.finish(0)?;
    /// let envelope = store.open_run("r")?.envelope("loss", 100.., 3)?;
    /// let buckets = &envelope.buckets;
    /// // 100..=999 in three intervals of 300 steps; few chunks, so exactly those.
    /// assert!(!envelope.whole_chunks);
    /// assert_eq!((buckets.len(), buckets[0].first_step, buckets[0].last_step), (3, 100, 399));
    /// assert_eq!((buckets[1].min, buckets[1].max, buckets[1].count), (0.0, 9.0, 300));
    /// assert_eq!((buckets[2].first, buckets[2].last_step, buckets[2].last), (0.0, 999, 9.0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`RunSnapshot::metric_stats`].
    pub fn envelope(&self, metric: &str, steps: impl RangeBounds<u64>, buckets: usize) -> Result<Envelope> {
        let envelope = self.envelope_of(self.live_segments().to_vec(), metric, &steps, buckets, true)?;
        Ok(envelope.unwrap_or(Envelope { buckets: Vec::new(), whole_chunks: false }))
    }

    /// As [`RunSnapshot::envelope`], but only when it can be read from summaries: `None` when
    /// the range holds fewer than `buckets / 2` chunks (read its points then: there are few).
    /// For a caller that wants exact points where they are cheap and an envelope where they
    /// are not.
    ///
    /// # Errors
    ///
    /// As [`RunSnapshot::metric_stats`].
    pub fn summary_envelope(
        &self,
        metric: &str,
        steps: impl RangeBounds<u64>,
        buckets: usize,
    ) -> Result<Option<Envelope>> {
        self.envelope_of(self.live_segments().to_vec(), metric, &steps, buckets, false)
    }

    /// As [`RunSnapshot::envelope`], in archived branch `branch`.
    ///
    /// # Errors
    ///
    /// [`Error::BranchNotFound`](crate::Error::BranchNotFound) for an unknown branch, else as
    /// [`RunSnapshot::metric_stats`].
    pub fn branch_envelope(
        &self,
        branch: u32,
        metric: &str,
        steps: impl RangeBounds<u64>,
        buckets: usize,
    ) -> Result<Envelope> {
        let envelope = self.envelope_of(vec![self.branch_segment(branch)?], metric, &steps, buckets, true)?;
        Ok(envelope.unwrap_or(Envelope { buckets: Vec::new(), whole_chunks: false }))
    }

    /// As [`RunSnapshot::summary_envelope`], in archived branch `branch`.
    ///
    /// # Errors
    ///
    /// As [`RunSnapshot::branch_envelope`].
    pub fn branch_summary_envelope(
        &self,
        branch: u32,
        metric: &str,
        steps: impl RangeBounds<u64>,
        buckets: usize,
    ) -> Result<Option<Envelope>> {
        self.envelope_of(vec![self.branch_segment(branch)?], metric, &steps, buckets, false)
    }

    fn envelope_of(
        &self,
        segments: Vec<Segment>,
        metric: &str,
        steps: &impl RangeBounds<u64>,
        buckets: usize,
        exact_allowed: bool,
    ) -> Result<Option<Envelope>> {
        let Some(metric) = self.metric_id(metric) else {
            return Ok(Some(Envelope { buckets: Vec::new(), whole_chunks: false }));
        };
        let (first, last) = bounds(steps);
        let asked = (steps.start_bound().cloned(), steps.end_bound().cloned());
        guard::catch(self.file(), || {
            Segments::open(history::narrow(segments, first, last))?.envelope(metric, asked, buckets, exact_allowed)
        })
    }
}
