//! `runstore plot`: metric curves against step, as an SVG file: one panel per metric, several
//! runs overlaid.

use std::io::Write;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;

use runstore::{RunSnapshot, Store};

use crate::downsample::MinMax;
use crate::exit::Failure;
use crate::history::Selection;
use crate::output;
use crate::rows;
use crate::svg::{self, Chart, Panel, Series};

/// A curve's points `(step, value)`, in step order.
type Points = Vec<(f64, f64)>;

/// Columns a curve is reduced to: each keeps its first, lowest, highest and last point, so a
/// run of any length makes a small file that still shows every spike.
const COLUMNS: u64 = 1200;

/// Plot metric curves against step as an SVG file.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
One panel per metric, stacked, over a shared step axis, each with its own y
axis (a spike in one metric does not flatten another). With one run, each
metric has its own colour, the same in every plot; with several runs, each run
has a colour and a legend entry, and every panel overlays their curves. The
step axis ends with a tick at the last step shown.

The default file for several runs is FIRST-and-N-more.svg. --log-y draws the
y axes on a log scale; values at or below zero are left out.
--smooth W draws the exponential moving average s = W·s + (1−W)·x (W in
[0, 1), as TensorBoard's smoothing; bias-corrected at the start) as the curve,
with the raw values faded behind it.

Long runs are reduced to the first, lowest, highest and last point of each of
1200 step intervals per metric, so the file stays small and spikes stay
visible. NaN and infinite values are left out of the curves.

Examples:
  runstore plot resnet-7                         # writes resnet-7.svg
  runstore plot resnet-7 --metric loss --metric eval/loss -o loss.svg
  runstore plot lr-0.1 lr-0.01 -m loss --log-y --smooth 0.9 -o sweep.svg
  runstore plot resnet-7 --from 10000 -o - > tail.svg
  runstore plot resnet-7 --all-branches        # archived branches faded, dashed")]
pub struct Args {
    /// The run ids: several are overlaid, one colour per run.
    #[arg(value_name = "ID", required = true, num_args = 1..)]
    ids: Vec<String>,
    #[command(flatten)]
    selection: Selection,
    /// A logarithmic y axis.
    #[arg(long)]
    log_y: bool,
    /// Smooth the curves with this weight, in [0, 1).
    #[arg(long, value_name = "W")]
    smooth: Option<f64>,
    /// The SVG file, or - for stdout [default: ID.svg].
    #[arg(short = 'o', long = "output", value_name = "FILE.svg")]
    output: Option<PathBuf>,
}

/// A run to plot, with the steps it shows.
struct Source {
    id: String,
    reader: RunSnapshot,
    names: Vec<Arc<str>>,
    /// From the first row in range to the last step in range, as of now; `None` when empty.
    span: Option<(u64, u64)>,
    branches: Vec<runstore::Branch>,
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    let steps = args.selection.steps()?;
    if let Some(weight) = args.smooth
        && !(0.0..1.0).contains(&weight)
    {
        return Err(Failure::input(format!("--smooth {weight} is not in [0, 1): give a weight such as 0.9")));
    }
    for (index, id) in args.ids.iter().enumerate() {
        if args.ids[..index].contains(id) {
            return Err(Failure::input(format!("run {id:?} is given twice: give each run once")));
        }
    }
    let mut sources = Vec::with_capacity(args.ids.len());
    for id in &args.ids {
        sources.push(open(store, id, &steps, args.selection.all_branches)?);
    }
    let metrics = metrics(&sources, &args.selection.metrics)?;
    let several = sources.len() > 1;
    let mut panels = Vec::with_capacity(metrics.len());
    for name in &metrics {
        let mut series = Vec::new();
        for (index, source) in sources.iter().enumerate() {
            if !source.names.iter().any(|known| **known == **name) {
                continue;
            }
            let (label, colour) = if several {
                (source.id.clone(), svg::run_colour(index))
            } else {
                (name.clone(), svg::metric_colour(name))
            };
            let (points, raw) = match source.span {
                Some((first, last)) => curve(source.reader.series(name, first..=last)?, first, last, args.smooth)?,
                None => (Vec::new(), None),
            };
            let mut archived = Vec::new();
            for branch in &source.branches {
                let (first, last) = (branch.first_step.max(*steps.start()), branch.last_step.min(*steps.end()));
                if first <= last {
                    let series = source.reader.branch_series(branch.id, name, first..=last)?;
                    archived.push(curve(series, first, last, None)?.0);
                }
            }
            series.push(Series { label, colour, points, raw, branches: archived });
        }
        panels.push(Panel { metric: name.clone(), series });
    }
    #[allow(clippy::cast_precision_loss)]
    let x_range = sources
        .iter()
        .filter_map(|source| {
            let (first, last) = source.span?;
            let archived = source.branches.iter().map(|branch| branch.last_step.min(*steps.end())).max();
            Some((first, last.max(archived.unwrap_or(last))))
        })
        .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
        .map(|(first, last)| (first as f64, last as f64));
    let title = if several { format!("runs {}", args.ids.join(", ")) } else { format!("run {}", args.ids[0]) };
    let chart = Chart { title, x_title: "step".into(), x_range, log_y: args.log_y, panels };
    let svg = chart.render();
    let path = args.output.clone().unwrap_or_else(|| match args.ids.len() {
        1 => PathBuf::from(format!("{}.svg", args.ids[0])),
        n => PathBuf::from(format!("{}-and-{}-more.svg", args.ids[0], n - 1)),
    });
    if path.as_os_str() == "-" {
        let mut out = output::stdout();
        out.write_all(svg.as_bytes())?;
        out.flush()?;
        return Ok(());
    }
    output::write_file(&path, |out| Ok(out.write_all(svg.as_bytes())?))?;
    let runs =
        if several { format!(" of {}", output::count(sources.len() as u64, "run", "runs")) } else { String::new() };
    output::stdout_line(&format!(
        "wrote {} ({}{runs})",
        path.display(),
        output::count(metrics.len() as u64, "metric", "metrics")
    ))
}

fn open(store: &Store, id: &str, steps: &RangeInclusive<u64>, all_branches: bool) -> Result<Source, Failure> {
    // One snapshot per run: its names, its x range and every series of one commit.
    let reader = store.open_run(id)?.snapshot()?;
    let mut history = reader.history(steps.clone())?;
    let first = history.next_row()?.map(|row| row.step());
    let names = history.metrics().to_vec();
    drop(history);
    let last = reader.info()?.last_step.map(|last| last.min(*steps.end()));
    let span = first.zip(last).filter(|(first, last)| first <= last);
    let branches = if all_branches { reader.branches()? } else { Vec::new() };
    Ok(Source { id: id.to_string(), reader, names, span, branches })
}

/// The metrics asked for (each must belong to one of the runs at least), else every metric of
/// every run, in the order the first run logged them, then the others'.
fn metrics(sources: &[Source], asked: &[String]) -> Result<Vec<String>, Failure> {
    if sources.len() == 1 {
        rows::check_metrics(&sources[0].id, asked, &sources[0].names)?;
    } else {
        rows::check_unique(asked)?;
        if let Some(unknown) =
            asked.iter().find(|name| !sources.iter().any(|source| source.names.iter().any(|known| **known == ***name)))
        {
            let ids: Vec<&str> = sources.iter().map(|source| source.id.as_str()).collect();
            return Err(Failure::input(format!(
                "none of the runs {} has a metric {unknown:?}: `runstore show ID` lists a run's metrics",
                ids.join(", ")
            )));
        }
    }
    if !asked.is_empty() {
        return Ok(asked.to_vec());
    }
    let mut names: Vec<String> = Vec::new();
    for source in sources {
        for name in &source.names {
            if !names.iter().any(|known| **known == **name) {
                names.push(name.to_string());
            }
        }
    }
    Ok(names)
}

/// The downsampled curve of `series` over `first..=last`, smoothed with `weight` if given,
/// and then the downsampled raw values too; one pass over the series.
fn curve(
    series: impl Iterator<Item = runstore::Result<(u64, f64)>>,
    first: u64,
    last: u64,
    weight: Option<f64>,
) -> Result<(Points, Option<Points>), Failure> {
    let mut raw = MinMax::new(first, last, COLUMNS);
    let mut smooth = weight.map(|weight| (Smoother::new(weight), MinMax::new(first, last, COLUMNS)));
    for point in series {
        let (step, value) = point?;
        if !value.is_finite() {
            continue;
        }
        raw.push(step, value);
        if let Some((smoother, smoothed)) = &mut smooth {
            smoothed.push(step, smoother.next(value));
        }
    }
    #[allow(clippy::cast_precision_loss)] // chart coordinates
    let chart = |reducer: MinMax| -> Points {
        reducer.finish().into_iter().map(|(step, value)| (step as f64, value)).collect()
    };
    Ok(match smooth {
        Some((_, smoothed)) => (chart(smoothed), Some(chart(raw))),
        None => (chart(raw), None),
    })
}

/// An exponential moving average, bias-corrected as TensorBoard's: `s = w·s + (1−w)·x`,
/// divided by `1 − wⁿ` after n values so that the first values are not pulled towards 0.
struct Smoother {
    weight: f64,
    average: f64,
    correction: f64,
}

impl Smoother {
    fn new(weight: f64) -> Smoother {
        Smoother { weight, average: 0.0, correction: 1.0 }
    }

    fn next(&mut self, value: f64) -> f64 {
        self.average = self.weight * self.average + (1.0 - self.weight) * value;
        self.correction *= self.weight;
        self.average / (1.0 - self.correction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_starts_at_the_first_value_and_follows_a_step_slowly() {
        let mut smoother = Smoother::new(0.9);
        assert!((smoother.next(5.0) - 5.0).abs() < 1e-12, "bias-corrected");
        let mut last = 5.0;
        for _ in 0..10 {
            last = smoother.next(15.0);
        }
        assert!(last > 5.0 && last < 15.0, "{last}");
    }
}
