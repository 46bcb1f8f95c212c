//! Summaries of whole curves, kept between requests, so that a long run is read once and a live
//! one only for its new rows.
//!
//! A summary keeps the first, lowest, highest and last point of each of at most [`MAX_CELLS`]
//! cells of equal width (a power of two of steps, doubled as the curve grows). A chart of the
//! whole curve is then the shared min/max downsampling of those points: every point drawn is a
//! real point at its real step, and a column holding whole cells gets their exact extremes. Up to
//! 16 384 steps a cell is one step, and the answer is exactly that of the rows themselves.
//! Zoomed ranges are read from the store directly: they are narrower, and asked for detail.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::downsample;

/// Cells per summary: twice the widest chart, at most 1 MiB of points.
pub const MAX_CELLS: u64 = 16_384;
/// Summaries kept; the least recently used goes first.
const MAX_SUMMARIES: usize = 64;

/// What must stay the same for a summary to stay valid: the run (its creation time, in case it
/// was deleted and made again) and its archived branches (a rewind that moved rows adds one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    pub created_at: u64,
    pub branches: u32,
}

/// Which curve: run, metric, and the archived branch or `None` for the live history.
pub type Key = (String, String, Option<u32>);

/// The cells of one curve, and how far it has been read.
struct Summary {
    epoch: Epoch,
    /// The first step read: cell `i` covers steps `origin + (i << shift)` up to the next cell's.
    origin: Option<u64>,
    /// Cells are `1 << shift` steps wide: a shift, not a division, per point.
    shift: u32,
    cells: Vec<Option<[(u64, f64); 4]>>,
    /// The last step read.
    covered: Option<u64>,
}

impl Summary {
    fn new(epoch: Epoch) -> Summary {
        Summary { epoch, origin: None, shift: 0, cells: Vec::new(), covered: None }
    }

    fn add(&mut self, step: u64, value: f64) {
        self.covered = Some(step);
        if !value.is_finite() {
            return;
        }
        let origin = *self.origin.get_or_insert(step);
        let mut index = (step - origin) >> self.shift;
        while index >= MAX_CELLS {
            self.coarsen();
            index = (step - origin) >> self.shift;
        }
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        if self.cells.len() <= index {
            self.cells.resize(index + 1, None);
        }
        match &mut self.cells[index] {
            Some(cell) => {
                if value < cell[1].1 {
                    cell[1] = (step, value);
                }
                if value > cell[2].1 {
                    cell[2] = (step, value);
                }
                cell[3] = (step, value);
            }
            empty => *empty = Some([(step, value); 4]),
        }
    }

    /// Doubles the cell width, merging neighbours.
    fn coarsen(&mut self) {
        self.shift += 1;
        let merged = self
            .cells
            .chunks(2)
            .map(|pair| match pair {
                [Some(a), Some(b)] => Some([
                    a[0],
                    if b[1].1 < a[1].1 { b[1] } else { a[1] },
                    if b[2].1 > a[2].1 { b[2] } else { a[2] },
                    b[3],
                ]),
                [Some(a), None] | [Some(a)] => Some(*a),
                [None, Some(b)] => Some(*b),
                _ => None,
            })
            .collect();
        self.cells = merged;
    }

    /// The cells' points in step order.
    fn points(&self) -> impl Iterator<Item = runstore::Result<(u64, f64)>> + '_ {
        self.cells.iter().flatten().flat_map(|&[first, low, high, last]| {
            let (a, b) = if low.0 <= high.0 { (low, high) } else { (high, low) };
            let mut points = [first, a, b, last].into_iter().map(Ok).collect::<Vec<_>>();
            points.dedup_by_key(|point| point.as_ref().map(|p| p.0).ok());
            points
        })
    }
}

/// The summaries of the curves the page asked for.
#[derive(Default)]
pub struct Summaries {
    entries: Mutex<HashMap<Key, (Summary, u64)>>,
    clock: Mutex<u64>,
}

impl Summaries {
    /// The whole curve `key`, `first..=last`, reduced to `columns` columns: from its summary,
    /// after reading the steps after those already read (`read(from)` streams steps
    /// `from..=last`); read again from the start when `epoch` changed or the curve got shorter.
    ///
    /// # Errors
    ///
    /// The first error of `read`; the summary is then dropped.
    pub fn whole<I>(
        &self,
        key: Key,
        epoch: Epoch,
        (first, last): (u64, u64),
        columns: u64,
        read: impl FnOnce(u64) -> runstore::Result<I>,
    ) -> runstore::Result<Vec<(u64, f64)>>
    where
        I: Iterator<Item = runstore::Result<(u64, f64)>>,
    {
        // Taken out while it is read, so that other curves are not kept waiting.
        let taken = self.entries.lock().ok().and_then(|mut entries| entries.remove(&key));
        let mut summary = match taken {
            Some((summary, _)) if summary.epoch == epoch && summary.covered.is_none_or(|covered| covered <= last) => {
                summary
            }
            _ => Summary::new(epoch),
        };
        let from = summary.covered.map_or(first, |covered| covered + 1);
        if from <= last {
            for point in read(from)? {
                let (step, value) = point?;
                summary.add(step, value);
            }
            // Steps up to `last` are read, whether or not the last of them has a value.
            summary.covered = Some(last);
        }
        let points = downsample::min_max(summary.points(), first, last, columns)?;
        self.keep(key, summary);
        Ok(points)
    }

    fn keep(&self, key: Key, summary: Summary) {
        let now = self.clock.lock().map_or(0, |mut clock| {
            *clock += 1;
            *clock
        });
        let Ok(mut entries) = self.entries.lock() else { return };
        entries.insert(key, (summary, now));
        if entries.len() > MAX_SUMMARIES
            && let Some(oldest) = entries.iter().min_by_key(|(_, (_, used))| *used).map(|(key, _)| key.clone())
        {
            entries.remove(&oldest);
        }
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp, clippy::unnecessary_wraps)] // exact values are the point; `read` returns a Result
mod tests {
    use super::*;

    const EPOCH: Epoch = Epoch { created_at: 1, branches: 0 };

    fn key() -> Key {
        ("run".into(), "loss".into(), None)
    }

    #[allow(clippy::cast_precision_loss)]
    fn curve(step: u64) -> f64 {
        if step == 777_777 { 1e9 } else { (step % 101) as f64 }
    }

    fn rows(from: u64, to: u64) -> runstore::Result<impl Iterator<Item = runstore::Result<(u64, f64)>>> {
        Ok((from..=to).map(|step| Ok((step, curve(step)))))
    }

    #[test]
    fn a_short_curve_is_answered_exactly_as_from_its_rows() {
        let summaries = Summaries::default();
        let answer = summaries.whole(key(), EPOCH, (0, 9999), 300, |from| rows(from, 9999)).unwrap();
        let direct = downsample::min_max(rows(0, 9999).unwrap(), 0, 9999, 300).unwrap();
        assert_eq!(answer, direct);
    }

    #[test]
    fn a_growing_curve_is_read_only_for_its_new_steps_and_keeps_its_spikes() {
        let summaries = Summaries::default();
        let mut read_from = Vec::new();
        for last in [100_000u64, 500_000, 1_000_000] {
            let answer = summaries
                .whole(key(), EPOCH, (0, last), 1000, |from| {
                    read_from.push(from);
                    rows(from, last)
                })
                .unwrap();
            assert!(answer.len() <= 4000);
            assert_eq!(answer.last().map(|p| p.0), Some(last));
            assert_eq!(answer.iter().any(|p| p.1 == 1e9), last >= 777_777);
            let lowest = answer.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            assert_eq!(lowest, 0.0);
        }
        assert_eq!(read_from, [0, 100_001, 500_001]);
    }

    #[test]
    fn a_new_epoch_or_a_shorter_curve_reads_from_the_start() {
        let summaries = Summaries::default();
        let mut read_from = Vec::new();
        let mut ask = |epoch, last| {
            summaries
                .whole(key(), epoch, (0, last), 100, |from| {
                    read_from.push(from);
                    rows(from, last)
                })
                .unwrap()
        };
        ask(EPOCH, 5000);
        ask(Epoch { branches: 1, ..EPOCH }, 6000);
        ask(Epoch { branches: 1, ..EPOCH }, 3000);
        assert_eq!(read_from, [0, 0, 0]);
    }
}
