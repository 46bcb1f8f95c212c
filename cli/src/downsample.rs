//! Min/max-per-column downsampling, shared by `plot` (SVG) and `serve` (chart data): a curve of
//! any length is reduced to the first, lowest, highest and last point of each of `columns`
//! equal step intervals, so spikes stay visible and the output stays small.

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

    /// The reduced points, in the order pushed.
    pub fn finish(mut self) -> Vec<(P, f64)> {
        self.flush();
        self.points
    }
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
    fn short_series_pass_through_and_non_finite_values_are_left_out() {
        let values = [(0, 1.0), (1, f64::NAN), (2, 3.0), (3, f64::INFINITY)];
        assert_eq!(min_max(points(&values), 0, 3, 1000).unwrap(), [(0, 1.0), (2, 3.0)]);
    }
}
