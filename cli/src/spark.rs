//! One-line terminal sparklines of a metric's curve, computed from a streamed series or, for a
//! long one, from chunk summaries.

use runstore::RunSnapshot;

const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// Finer buckets asked of a curve's envelope per character: the mean of a character is then
/// estimated from many pieces, each the middle of its range, not from one range.
const PIECES_PER_CHARACTER: usize = 8;

/// The curve of `metric` over steps `first..=last` in `width` characters: each character is the
/// mean of the finite values in its share of the steps; a share without any is a space.
///
/// A curve of many chunks is read from their summaries (the library's envelope, in up to
/// [`PIECES_PER_CHARACTER`] buckets per character, or one): a bucket of finite values then
/// counts as its count of points at the middle of its range, in the share of its first step,
/// and only a bucket holding NaN or infinities is read.
pub fn sparkline(reader: &RunSnapshot, metric: &str, first: u64, last: u64, width: usize) -> runstore::Result<String> {
    let mut shares = Shares {
        first,
        span: u128::from(last.saturating_sub(first)) + 1,
        sums: vec![0.0; width],
        counts: vec![0; width],
    };
    let mut envelope = None;
    for buckets in [width * PIECES_PER_CHARACTER, width] {
        envelope = reader.summary_envelope(metric, first..=last, buckets)?;
        if envelope.is_some() {
            break;
        }
    }
    let Some(envelope) = envelope else {
        // Few chunks: every point.
        shares.read(reader, metric, first, last)?;
        return Ok(render(&shares.means()));
    };
    for bucket in &envelope.buckets {
        if bucket.nan_count == 0 && bucket.min.is_finite() && bucket.max.is_finite() {
            #[allow(clippy::cast_precision_loss)]
            let sum = (bucket.min / 2.0 + bucket.max / 2.0) * bucket.count as f64;
            shares.add(bucket.first_step, sum, bucket.count);
        } else {
            shares.read(reader, metric, bucket.first_step, bucket.last_step)?;
        }
    }
    Ok(render(&shares.means()))
}

/// The sums and counts of finite values in each character's share of the steps.
struct Shares {
    first: u64,
    span: u128,
    sums: Vec<f64>,
    counts: Vec<u64>,
}

impl Shares {
    fn add(&mut self, step: u64, sum: f64, count: u64) {
        let width = self.sums.len();
        let share = u128::from(step.saturating_sub(self.first)) * width as u128 / self.span;
        let share = usize::try_from(share).unwrap_or(width - 1).min(width - 1);
        self.sums[share] += sum;
        self.counts[share] += count;
    }

    /// Adds the finite points of `metric` in `low..=high`.
    fn read(&mut self, reader: &RunSnapshot, metric: &str, low: u64, high: u64) -> runstore::Result<()> {
        for point in reader.series(metric, low..=high)? {
            let (step, value) = point?;
            if value.is_finite() {
                self.add(step, value, 1);
            }
        }
        Ok(())
    }

    #[allow(clippy::cast_precision_loss)]
    fn means(&self) -> Vec<Option<f64>> {
        self.sums.iter().zip(&self.counts).map(|(&sum, &count)| (count > 0).then(|| sum / count as f64)).collect()
    }
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
    #[allow(clippy::cast_precision_loss)]
    fn a_long_curve_from_chunk_summaries_draws_within_a_level_of_its_means() {
        let dir = tempfile::tempdir().unwrap();
        let store = runstore::Store::open(dir.path()).unwrap();
        let mut run = store.init(runstore::RunOptions::new().ignore_environment().id("r")).unwrap();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let curve: Vec<f64> = (0..200_000u64)
            .map(|step| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let noise = (state >> 11) as f64 / (1u64 << 53) as f64 * 0.05;
                if step == 150_000 { f64::INFINITY } else { 10.0 / (1.0 + step as f64 / 5000.0) + noise }
            })
            .collect();
        for &loss in &curve {
            run.log([("loss", loss)]).unwrap();
        }
        run.finish(0).unwrap();
        let snapshot = store.open_run("r").unwrap().snapshot().unwrap();
        assert!(snapshot.summary_envelope("loss", 0..=199_999, 24).unwrap().is_some(), "many chunks");
        let line = sparkline(&snapshot, "loss", 0, 199_999, 24).unwrap();
        // The means of the finite values of each 24th, as a short curve is drawn.
        let means: Vec<Option<f64>> = curve
            .chunks(200_000usize.div_ceil(24))
            .map(|share| {
                let finite: Vec<f64> = share.iter().copied().filter(|v| v.is_finite()).collect();
                Some(finite.iter().sum::<f64>() / finite.len() as f64)
            })
            .collect();
        let exact = render(&means);
        assert_eq!(line.chars().count(), 24);
        let level = |c: char| LEVELS.iter().position(|&l| l == c).unwrap();
        for (drawn, mean) in line.chars().zip(exact.chars()) {
            assert!(level(drawn).abs_diff(level(mean)) <= 1, "{line} vs {exact}");
        }
    }

    #[test]
    fn scales_between_minimum_and_maximum() {
        assert_eq!(render(&[Some(0.0), Some(7.0), None, Some(3.5)]), "▁█ ▅");
        assert_eq!(render(&[Some(2.0), Some(2.0)]), "▄▄");
    }
}
