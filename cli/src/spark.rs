//! One-line terminal sparklines of a metric's curve, computed from a streamed series.

use runstore::RunSnapshot;

const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// The curve of `metric` over steps `first..=last` in `width` characters: each character is the
/// mean of the finite values in its share of the steps; a share without any is a space.
pub fn sparkline(reader: &RunSnapshot, metric: &str, first: u64, last: u64, width: usize) -> runstore::Result<String> {
    let mut sums = vec![0.0f64; width];
    let mut counts = vec![0u64; width];
    let span = u128::from(last.saturating_sub(first)) + 1;
    for point in reader.series(metric, first..=last)? {
        let (step, value) = point?;
        if value.is_finite() {
            let bucket = u128::from(step - first) * width as u128 / span;
            let bucket = usize::try_from(bucket).unwrap_or(width - 1).min(width - 1);
            sums[bucket] += value;
            counts[bucket] += 1;
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let means: Vec<Option<f64>> =
        sums.iter().zip(&counts).map(|(&sum, &count)| (count > 0).then(|| sum / count as f64)).collect();
    Ok(render(&means))
}

/// Characters for values scaled between their minimum and maximum.
pub fn render(values: &[Option<f64>]) -> String {
    let finite = values.iter().flatten().copied().filter(|value| value.is_finite());
    let (low, high) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    values
        .iter()
        .map(|value| match value {
            Some(value) if value.is_finite() => {
                if high > low {
                    let level = ((value - low) / (high - low) * 7.0).round();
                    // level is in 0.0..=7.0.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    LEVELS[(level as usize).min(7)]
                } else {
                    LEVELS[3]
                }
            }
            _ => ' ',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_between_minimum_and_maximum() {
        assert_eq!(render(&[Some(0.0), Some(7.0), None, Some(3.5)]), "▁█ ▅");
        assert_eq!(render(&[Some(2.0), Some(2.0)]), "▄▄");
    }
}
