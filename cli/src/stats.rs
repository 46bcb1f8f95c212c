//! Each metric's last, lowest and highest value over a run's live history, from chunk summaries.

use runstore::{RunInfo, RunSnapshot};

use crate::exit::Failure;

/// One metric of one run. NaN never counts as the lowest or highest value; infinities do.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// The summary value: the last logged value, or one set with `set_summary` after it.
    pub last: Option<f64>,
    /// The lowest value and its step.
    pub min: Option<(u64, f64)>,
    /// The highest value and its step.
    pub max: Option<(u64, f64)>,
}

/// The stats of every metric of the run, in the order first logged: the extremes from the
/// chunk summaries (the library decodes only the chunks holding them), the last value from the
/// run's summary.
pub fn of_run(reader: &RunSnapshot, info: &RunInfo) -> Result<Vec<(String, Stats)>, Failure> {
    let mut all: Vec<(String, Stats)> = reader
        .metric_stats()?
        .into_iter()
        .map(|metric| {
            let stats = Stats { last: info.summary.get(&metric.name).copied(), min: metric.min, max: metric.max };
            (metric.name, stats)
        })
        .collect();
    all.retain(|(_, stats)| stats.last.is_some() || stats.min.is_some());
    Ok(all)
}
