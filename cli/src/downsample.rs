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
    let span = u128::from(last.saturating_sub(first)) + 1;
    let columns = u128::from(columns.max(1));
    let mut points = Vec::new();
    let mut column: Option<(u128, [(u64, f64); 4])> = None;
    let flush = |points: &mut Vec<(u64, f64)>, cell: [(u64, f64); 4]| {
        let [start, low, high, end] = cell;
        let (a, b) = if low.0 <= high.0 { (low, high) } else { (high, low) };
        let mut previous = None;
        for (step, value) in [start, a, b, end] {
            if previous != Some(step) {
                points.push((step, value));
                previous = Some(step);
            }
        }
    };
    for point in series {
        let (step, value) = point?;
        if !value.is_finite() {
            continue;
        }
        let index = u128::from(step.saturating_sub(first)) * columns / span;
        match &mut column {
            Some((current, cell)) if *current == index => {
                if value < cell[1].1 {
                    cell[1] = (step, value);
                }
                if value > cell[2].1 {
                    cell[2] = (step, value);
                }
                cell[3] = (step, value);
            }
            _ => {
                if let Some((_, cell)) = column.take() {
                    flush(&mut points, cell);
                }
                column = Some((index, [(step, value); 4]));
            }
        }
    }
    if let Some((_, cell)) = column {
        flush(&mut points, cell);
    }
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
    fn short_series_pass_through_and_non_finite_values_are_left_out() {
        let values = [(0, 1.0), (1, f64::NAN), (2, 3.0), (3, f64::INFINITY)];
        assert_eq!(min_max(points(&values), 0, 3, 1000).unwrap(), [(0, 1.0), (2, 3.0)]);
    }
}
