//! Rows in memory: the write buffer, and a decoded block on its way to being re-encoded.

/// Rows in step order, stored column-wise so that appending a row never allocates per point.
///
/// Row `r` holds the points `metrics[start..end]` / `values[start..end]` where
/// `end = ends[r]` and `start = ends[r - 1]` (0 for the first row), logged at `times[r]`
/// (milliseconds since the Unix epoch). A metric may appear twice in one row when a row is
/// merged; the later value wins when the row is encoded, and the row keeps its first time.
#[derive(Default, Clone, Debug, PartialEq)]
pub(crate) struct RowBatch {
    pub(crate) steps: Vec<u64>,
    pub(crate) times: Vec<u64>,
    pub(crate) ends: Vec<usize>,
    pub(crate) metrics: Vec<u32>,
    pub(crate) values: Vec<f64>,
}

impl RowBatch {
    pub(crate) fn rows(&self) -> usize {
        self.steps.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    pub(crate) fn first_step(&self) -> Option<u64> {
        self.steps.first().copied()
    }

    pub(crate) fn last_step(&self) -> Option<u64> {
        self.steps.last().copied()
    }

    pub(crate) fn clear(&mut self) {
        self.steps.clear();
        self.times.clear();
        self.ends.clear();
        self.metrics.clear();
        self.values.clear();
    }

    /// Makes room for `rows` more rows of `points_per_row` points, so that the hot path does not
    /// reallocate.
    pub(crate) fn reserve(&mut self, rows: usize, points_per_row: usize) {
        self.steps.reserve(rows);
        self.times.reserve(rows);
        self.ends.reserve(rows);
        self.metrics.reserve(rows * points_per_row);
        self.values.reserve(rows * points_per_row);
    }

    /// Appends a row, or merges into the last row when `step` equals its step.
    ///
    /// The caller guarantees `step >= self.last_step()`.
    #[inline]
    pub(crate) fn push_row(&mut self, step: u64, time_ms: u64, points: &[(u32, f64)]) {
        debug_assert!(self.last_step().is_none_or(|last| step >= last));
        // Slice iterators know their length: one capacity check per column, not per point.
        self.metrics.extend(points.iter().map(|&(metric, _)| metric));
        self.values.extend(points.iter().map(|&(_, value)| value));
        self.close_row(step, time_ms);
    }

    /// Ends the row whose points were just pushed: a new row, or the last one extended.
    #[inline]
    fn close_row(&mut self, step: u64, time_ms: u64) {
        if self.last_step() == Some(step) {
            if let Some(end) = self.ends.last_mut() {
                *end = self.metrics.len();
            }
        } else {
            self.steps.push(step);
            self.times.push(time_ms);
            self.ends.push(self.metrics.len());
        }
    }

    /// As [`RowBatch::push_row`], with the points as two slices.
    pub(crate) fn push_points(&mut self, step: u64, time_ms: u64, metrics: &[u32], values: &[f64]) {
        self.metrics.extend_from_slice(metrics);
        self.values.extend_from_slice(values);
        self.close_row(step, time_ms);
    }

    /// Drops the rows before `step` (kept: the rows at and after it).
    pub(crate) fn drop_before(&mut self, step: u64) {
        let first = self.steps.partition_point(|&s| s < step);
        if first == 0 {
            return;
        }
        let points = self.ends[first - 1];
        self.steps.drain(..first);
        self.times.drain(..first);
        self.ends.drain(..first);
        self.ends.iter_mut().for_each(|end| *end -= points);
        self.metrics.drain(..points);
        self.values.drain(..points);
    }

    /// The step and points of row `index`.
    pub(crate) fn row(&self, index: usize) -> (u64, &[u32], &[f64]) {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        let end = self.ends[index];
        (self.steps[index], &self.metrics[start..end], &self.values[start..end])
    }

    /// Moves all rows of `other` behind these; a first row at this batch's last step merges.
    pub(crate) fn append(&mut self, other: &RowBatch) {
        for index in 0..other.rows() {
            let (step, metrics, values) = other.row(index);
            self.push_points(step, other.times[index], metrics, values);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_at_the_last_step_merges() {
        let mut batch = RowBatch::default();
        batch.push_row(3, 100, &[(0, 1.0)]);
        batch.push_row(3, 101, &[(1, 2.0)]);
        batch.push_row(5, 102, &[(0, 3.0)]);
        assert_eq!(batch.rows(), 2);
        assert_eq!(batch.row(0), (3, &[0, 1][..], &[1.0, 2.0][..]));
        let mut tail = RowBatch::default();
        tail.push_row(5, 103, &[(2, 4.0)]);
        tail.push_row(6, 104, &[(0, 5.0)]);
        batch.append(&tail);
        assert_eq!(batch.rows(), 3);
        assert_eq!(batch.times, [100, 102, 104]);
        assert_eq!(batch.row(1), (5, &[0, 2][..], &[3.0, 4.0][..]));
        let mut copy = batch.clone();
        copy.drop_before(5);
        assert_eq!((copy.steps.clone(), copy.row(0)), (vec![5, 6], (5, &[0, 2][..], &[3.0, 4.0][..])));
    }
}
