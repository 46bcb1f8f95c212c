//! `runstore plot --system`: the runs' system metrics against wall-clock time, one panel per
//! metric, several runs overlaid; each curve reduced to a fixed number of time intervals, so
//! the file stays small however many samples there are.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use runstore::Store;

use crate::downsample::{ByColumn, x_column};
use crate::exit::Failure;
use crate::output;
use crate::svg::{self, Chart, Panel, Series};

/// Time intervals a curve is reduced to (each keeps its first, lowest, highest, last sample).
const COLUMNS: u64 = 1200;

/// The most panels drawn when no `--metric` is given.
const MAX_PANELS: usize = 20;

/// A run's samples of one metric, as `(seconds since the Unix epoch, value)`.
type Samples = Vec<(f64, f64)>;

/// Draws the system metrics `asked` (else all, the first [`MAX_PANELS`]) of runs `ids` to `path`.
pub fn run(store: &Store, ids: &[String], asked: &[String], log_y: bool, path: &Path) -> Result<(), Failure> {
    for (index, id) in ids.iter().enumerate() {
        if ids[..index].contains(id) {
            return Err(Failure::input(format!("run {id:?} is given twice: give each run once")));
        }
    }
    crate::rows::check_unique(asked)?;
    // Per run, one snapshot: its names and every curve are of one commit.
    let mut runs: Vec<(String, Vec<String>, runstore::RunSnapshot)> = Vec::with_capacity(ids.len());
    for id in ids {
        let reader = store.open_run(id)?.snapshot()?;
        runs.push((id.clone(), crate::system::names(&reader)?, reader));
    }
    let (metrics, note) = chosen(ids, &runs, asked)?;
    // Every sample, read once: the x range is that of all the curves drawn.
    let mut samples: Vec<Vec<Option<Samples>>> = Vec::with_capacity(metrics.len());
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for metric in &metrics {
        let mut per_run = Vec::with_capacity(runs.len());
        for (_, names, reader) in &runs {
            if !names.contains(metric) {
                per_run.push(None);
                continue;
            }
            let curve: Samples =
                reader.system(metric, ..)?.into_iter().map(|(time, value)| (seconds(time), value)).collect();
            for &(x, _) in &curve {
                low = low.min(x);
                high = high.max(x);
            }
            per_run.push(Some(curve));
        }
        samples.push(per_run);
    }
    let origin = if low.is_finite() { low } else { 0.0 };
    let several = runs.len() > 1;
    let panels: Vec<Panel> = metrics
        .iter()
        .zip(samples)
        .map(|(metric, per_run)| {
            let series = per_run
                .into_iter()
                .enumerate()
                .filter_map(|(index, curve)| {
                    let curve = curve?;
                    let mut reducer = ByColumn::default();
                    for (x, value) in curve {
                        reducer.push(x_column(x, low, high, COLUMNS), x - origin, value);
                    }
                    let (label, colour) = if several {
                        (runs[index].0.clone(), svg::run_colour(index))
                    } else {
                        (metric.clone(), svg::metric_colour(metric))
                    };
                    Some(Series { label, colour, points: reducer.finish(), raw: None, branches: Vec::new() })
                })
                .collect();
            Panel { metric: metric.clone(), series }
        })
        .collect();
    let mut title = if several {
        format!("system metrics of runs {}", ids.join(", "))
    } else {
        format!("system metrics of run {}", ids[0])
    };
    if let Some(note) = note {
        title = format!("{title} ({note})");
    }
    let x_title = if low.is_finite() {
        format!("time (s since {})", output::time(UNIX_EPOCH + std::time::Duration::from_secs_f64(origin.max(0.0))))
    } else {
        "time (s): no samples".to_string()
    };
    let x_range = low.is_finite().then_some((0.0, high - origin));
    let chart = Chart { title, x_title, x_range, log_y, panels };
    if !crate::plot::write_svg(path, &chart.render())? {
        return Ok(());
    }
    let runs = if several { format!(" of {}", output::count(ids.len() as u64, "run", "runs")) } else { String::new() };
    output::stdout_line(&format!(
        "wrote {} ({}{runs})",
        path.display(),
        output::count(metrics.len() as u64, "system metric", "system metrics")
    ))
}

/// The metrics asked for (each must be a system metric of one of the runs at least), else every
/// system metric of every run (the first [`MAX_PANELS`]), and a note when some were left out.
fn chosen(
    ids: &[String],
    runs: &[(String, Vec<String>, runstore::RunSnapshot)],
    asked: &[String],
) -> Result<(Vec<String>, Option<String>), Failure> {
    let mut all: Vec<String> = Vec::new();
    for (_, names, _) in runs {
        for name in names {
            if !all.contains(name) {
                all.push(name.clone());
            }
        }
    }
    if let Some(unknown) = asked.iter().find(|name| !all.contains(name)) {
        let which = if ids.len() == 1 { format!("run {:?} has", ids[0]) } else { "none of the runs has".into() };
        return Err(Failure::input(format!(
            "{which} no system metric {unknown:?}: `runstore show ID` lists the system metrics"
        )));
    }
    if all.is_empty() {
        let which = if ids.len() == 1 { format!("run {:?} has no", ids[0]) } else { "none of the runs has".into() };
        return Err(Failure::input(format!("{which} system metrics (system/...): there is nothing to draw")));
    }
    if !asked.is_empty() {
        return Ok((asked.to_vec(), None));
    }
    let note = (all.len() > MAX_PANELS)
        .then(|| format!("first {MAX_PANELS} of {} system metrics: choose with --metric", all.len()));
    Ok((all.into_iter().take(MAX_PANELS).collect(), note))
}

/// Seconds since the Unix epoch (0 before it).
fn seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH).map_or(0.0, |since| since.as_secs_f64())
}
