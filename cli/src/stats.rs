//! Each metric's last, lowest and highest value over a run's live history, in one pass.

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

/// The stats of every metric of the run, in the order first logged (then summary-only values).
pub fn of_run(reader: &RunSnapshot, info: &RunInfo) -> Result<Vec<(String, Stats)>, Failure> {
    let mut by_id: Vec<Stats> = Vec::new();
    let mut history = reader.history(..)?;
    while let Some(row) = history.next_row()? {
        let step = row.step();
        for &(metric, value) in row.points() {
            let index = metric as usize;
            if by_id.len() <= index {
                by_id.resize(index + 1, Stats::default());
            }
            if value.is_nan() {
                continue;
            }
            let stats = &mut by_id[index];
            if stats.min.is_none_or(|(_, min)| value < min) {
                stats.min = Some((step, value));
            }
            if stats.max.is_none_or(|(_, max)| value > max) {
                stats.max = Some((step, value));
            }
        }
    }
    let names = history.metrics().to_vec();
    let mut all: Vec<(String, Stats)> = names
        .iter()
        .enumerate()
        .map(|(index, name)| (name.to_string(), by_id.get(index).copied().unwrap_or_default()))
        .collect();
    for (name, stats) in &mut all {
        stats.last = info.summary.get(name.as_str()).copied();
    }
    all.retain(|(_, stats)| stats.last.is_some() || stats.min.is_some());
    Ok(all)
}
