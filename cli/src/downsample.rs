//! Min/max-per-column downsampling, shared by `plot` (SVG) and `serve` (chart data): a curve of
//! any length is reduced to the first, lowest, highest and last point of each of `columns`
//! equal step intervals, so spikes stay visible and the output stays small.
//!
//! A curve of many chunks is reduced from the library's [`runstore::Envelope`] instead, read
//! from chunk summaries ([`from_envelope`]): its columns follow chunk boundaries, and a column's
//! lowest and highest values, whose steps the summaries do not keep, are drawn at its middle.

/// The first, lowest, highest and last finite point of `series` in each of `columns` equal step
/// intervals of `first..=last`, in step order; streamed, so memory stays bounded by the output.
/// NaN and infinite values are left out.
///
/// # Errors
///
/// The first error `series` yields.
pub fn min_max(
    series: impl Iterator<Item = runstore::Result<(u64, f64)>>,
    first: u64,
    last: u64,
    columns: u64,
) -> runstore::Result<Vec<(u64, f64)>> {
    let mut reducer = MinMax::new(first, last, columns);
    for point in series {
        let (step, value) = point?;
        reducer.push(step, value);
    }
    Ok(reducer.finish())
}

/// [`min_max`] fed point by point, for a caller that reduces several curves in one pass over a
/// series (`plot --smooth`: the smoothed curve and the raw one). It finds each step's column
/// and leaves the cells to a [`ByColumn`].
pub struct MinMax {
    first: u64,
    span: u128,
    columns: u128,
    cells: ByColumn<u64>,
    /// The current column's index, and the step where it ends (exclusive).
    column: Option<(u64, u64)>,
}

impl MinMax {
    /// A reducer of steps `first..=last` to `columns` columns.
    pub fn new(first: u64, last: u64, columns: u64) -> MinMax {
        MinMax {
            first,
            span: u128::from(last.saturating_sub(first)) + 1,
            columns: u128::from(columns.max(1)),
            cells: ByColumn::default(),
            column: None,
        }
    }

    /// Adds a point; steps come in increasing order. NaN and infinities are left out.
    pub fn push(&mut self, step: u64, value: f64) {
        // The column index is a 128-bit division: done once per column, not once per point.
        let index = match self.column {
            Some((index, end)) if step < end => index,
            _ => {
                let index = u128::from(step.saturating_sub(self.first)) * self.columns / self.span;
                let end = u128::from(self.first) + ((index + 1) * self.span).div_ceil(self.columns);
                // `index` is below `columns`, a u64.
                let index = u64::try_from(index).unwrap_or(u64::MAX);
                self.column = Some((index, u64::try_from(end).unwrap_or(u64::MAX)));
                index
            }
        };
        self.cells.push(index, step, value);
    }

    /// The reduced points, in step order.
    pub fn finish(self) -> Vec<(u64, f64)> {
        self.cells.finish()
    }
}

/// The column of `x` among `columns` equal intervals of `low..=high`, for reducing against an
/// x that is not a step (runtime, time): shared by `plot --x` and the viewer's chart data.
pub fn x_column(x: f64, low: f64, high: f64, columns: u64) -> u64 {
    let span = (high - low).max(1e-9);
    // Columns are few (at most the chart's width): exact in f64; the result is in 0..columns.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let column = (((x - low) / span) * columns as f64).clamp(0.0, columns.max(1) as f64 - 1.0) as u64;
    column
}

/// Keeps the first, lowest, highest and last point of each column, the columns given by the
/// caller in increasing order ([`x_column`]); `P` is where the point is (its x, or x and step).
pub struct ByColumn<P> {
    points: Vec<(P, f64)>,
    column: Option<(u64, [(P, f64); 4])>,
}

impl<P: Copy + PartialEq + PartialOrd> Default for ByColumn<P> {
    fn default() -> Self {
        ByColumn { points: Vec::new(), column: None }
    }
}

impl<P: Copy + PartialEq + PartialOrd> ByColumn<P> {
    /// Adds a point of column `column`; NaN and infinities are left out.
    pub fn push(&mut self, column: u64, at: P, value: f64) {
        if !value.is_finite() {
            return;
        }
        match &mut self.column {
            Some((current, cell)) if *current == column => {
                if value < cell[1].1 {
                    cell[1] = (at, value);
                }
                if value > cell[2].1 {
                    cell[2] = (at, value);
                }
                cell[3] = (at, value);
            }
            _ => {
                self.flush();
                self.column = Some((column, [(at, value); 4]));
            }
        }
    }

    fn flush(&mut self) {
        let Some((_, [start, low, high, end])) = self.column.take() else { return };
        let (a, b) = if low.0 <= high.0 { (low, high) } else { (high, low) };
        let mut previous: Option<P> = None;
        for (at, value) in [start, a, b, end] {
            if previous != Some(at) {
                self.points.push((at, value));
                previous = Some(at);
            }
        }
    }

    /// The points reduced so far, the current column's included; the reducer starts empty.
    fn take(&mut self) -> Vec<(P, f64)> {
        self.flush();
        std::mem::take(&mut self.points)
    }

    /// The reduced points, in the order pushed.
    pub fn finish(mut self) -> Vec<(P, f64)> {
        self.flush();
        self.points
    }
}

/// The first, lowest, highest and last finite point of each bucket of `envelope` (read from
/// chunk summaries), in step order: the output of [`min_max`] for columns that follow chunk
/// boundaries. A bucket of finite values only gives its first and last point, and its lowest
/// and highest value at the two steps in its middle (their own steps are not in the summaries);
/// a bucket holding NaN or infinities, or of fewer than four steps, is read (`read(first,
/// last)` streams its points) and reduced exactly.
///
/// # Errors
///
/// The first error `read` yields.
pub fn from_envelope<I>(
    envelope: &runstore::Envelope,
    mut read: impl FnMut(u64, u64) -> runstore::Result<I>,
) -> runstore::Result<Vec<(u64, f64)>>
where
    I: Iterator<Item = runstore::Result<(u64, f64)>>,
{
    let mut cells = ByColumn::default();
    let mut points = Vec::with_capacity(envelope.buckets.len() * 4);
    for (column, bucket) in (0u64..).zip(&envelope.buckets) {
        let finite = bucket.nan_count == 0 && bucket.min.is_finite() && bucket.max.is_finite();
        if finite && bucket.last_step - bucket.first_step >= 3 {
            let middle = bucket.first_step + (bucket.last_step - bucket.first_step) / 2;
            // Falling: the highest value first, as a falling curve passes it first.
            let (a, b) = if bucket.first > bucket.last { (bucket.max, bucket.min) } else { (bucket.min, bucket.max) };
            points.extend(cells.take());
            points.extend([
                (bucket.first_step, bucket.first),
                (middle, a),
                (middle + 1, b),
                (bucket.last_step, bucket.last),
            ]);
        } else {
            for point in read(bucket.first_step, bucket.last_step)? {
                let (step, value) = point?;
                cells.push(column, step, value);
            }
        }
    }
    points.extend(cells.finish());
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(values: &[(u64, f64)]) -> impl Iterator<Item = runstore::Result<(u64, f64)>> + '_ {
        values.iter().map(|&point| Ok(point))
    }

    #[test]
    fn each_column_keeps_its_first_lowest_highest_and_last_point() {
        let values: Vec<(u64, f64)> = (0..100).map(|step| (step, if step == 37 { 9.0 } else { 1.0 })).collect();
        let reduced = min_max(points(&values), 0, 99, 2).unwrap();
        assert_eq!(reduced, [(0, 1.0), (37, 9.0), (49, 1.0), (50, 1.0), (99, 1.0)]);
    }

    #[test]
    fn columns_match_the_exact_division_for_every_step() {
        for (first, last, columns) in [(0u64, 99u64, 7u64), (5, 1000, 1000), (3, 10, 100), (0, 1_000_003, 997)] {
            let values: Vec<(u64, f64)> =
                (first..=last).map(|step| (step, f64::from(u8::try_from(step % 13).unwrap()))).collect();
            let reduced = min_max(points(&values), first, last, columns).unwrap();
            let span = u128::from(last - first) + 1;
            let column = |step: u64| u128::from(step - first) * u128::from(columns) / span;
            // Each column's first point is kept: the first step of every column appears.
            let mut expected: Vec<u64> = Vec::new();
            for step in first..=last {
                if step == first || column(step) != column(step - 1) {
                    expected.push(step);
                }
            }
            let kept: std::collections::BTreeSet<u64> = reduced.iter().map(|p| p.0).collect();
            assert!(expected.iter().all(|step| kept.contains(step)), "{first} {last} {columns}");
            let columns_seen: std::collections::BTreeSet<u128> = reduced.iter().map(|p| column(p.0)).collect();
            assert_eq!(columns_seen.len(), expected.len());
            assert!(reduced.len() <= expected.len() * 4);
        }
    }

    #[test]
    fn x_columns_keep_each_columns_extremes_and_cover_the_range() {
        assert_eq!(x_column(0.0, 0.0, 10.0, 5), 0);
        assert_eq!(x_column(10.0, 0.0, 10.0, 5), 4);
        assert_eq!(x_column(4.1, 0.0, 10.0, 5), 2);
        let mut reducer = ByColumn::default();
        for (x, value) in [(0.0, 1.0), (0.5, 5.0), (0.7, -1.0), (0.9, 2.0), (3.0, 7.0), (3.5, f64::NAN)] {
            reducer.push(x_column(x, 0.0, 4.0, 2), x, value);
        }
        assert_eq!(reducer.finish(), [(0.0, 1.0), (0.5, 5.0), (0.7, -1.0), (0.9, 2.0), (3.0, 7.0)]);
    }

    #[test]
    #[allow(clippy::cast_precision_loss, clippy::float_cmp)] // exact values are the point
    fn a_curve_of_many_chunks_keeps_its_ends_and_extremes_from_the_summaries_and_reads_only_odd_buckets() {
        let dir = tempfile::tempdir().unwrap();
        let store = runstore::Store::open(dir.path()).unwrap();
        let mut run = store.init(runstore::RunOptions::new().ignore_environment().id("r")).unwrap();
        // Noise fills a chunk every few thousand points: dozens of chunks.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut values = Vec::new();
        for step in 0..100_000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let value = match step {
                31_337 => 1e9,
                77_777 => f64::INFINITY,
                80_000 => f64::NAN,
                _ => (state >> 11) as f64 / (1u64 << 53) as f64,
            };
            values.push((step, value));
            run.log([("loss", value)]).unwrap();
        }
        run.finish(0).unwrap();
        let snapshot = store.open_run("r").unwrap().snapshot().unwrap();
        let envelope = snapshot.summary_envelope("loss", 0..=99_999, 20).unwrap().expect("many chunks");
        let mut reads = Vec::new();
        let points = from_envelope(&envelope, |low, high| {
            reads.push((low, high));
            snapshot.series("loss", low..=high)
        })
        .unwrap();
        // Only the buckets holding the infinity and the NaN were read.
        let odd: Vec<(u64, u64)> = envelope
            .buckets
            .iter()
            .filter(|b| [77_777, 80_000].iter().any(|step| (b.first_step..=b.last_step).contains(step)))
            .map(|b| (b.first_step, b.last_step))
            .collect();
        assert_eq!(reads, odd);
        assert!(points.windows(2).all(|pair| pair[0].0 < pair[1].0), "steps increase");
        assert!(points.len() <= envelope.buckets.len() * 4);
        assert_eq!((points[0], points[points.len() - 1]), (values[0], values[99_999]));
        let finite = values.iter().map(|p| p.1).filter(|v| v.is_finite());
        let (low, high) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
        assert!(points.iter().any(|p| p.1 == low) && points.iter().any(|p| p.1 == high), "{low} {high}");
        assert!(points.iter().all(|p| p.1.is_finite()));
        // Every bucket's first and last point is a real point.
        for bucket in &envelope.buckets {
            let first = points.iter().find(|p| p.0 == bucket.first_step).copied();
            assert_eq!(first, Some(values[usize::try_from(bucket.first_step).unwrap()]));
        }
    }

    #[test]
    fn short_series_pass_through_and_non_finite_values_are_left_out() {
        let values = [(0, 1.0), (1, f64::NAN), (2, 3.0), (3, f64::INFINITY)];
        assert_eq!(min_max(points(&values), 0, 3, 1000).unwrap(), [(0, 1.0), (2, 3.0)]);
    }
}
