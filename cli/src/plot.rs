//! `runstore plot`: metric curves against step, as an SVG file: one panel per metric, several
//! runs overlaid.

use std::io::Write;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;

use runstore::{RunSnapshot, Store};

use crate::downsample::{self, ByColumn, MinMax, x_column};
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

/// The most curves drawn when no `--metric` is given: a wide run's plot stays small and fast.
const MAX_CURVES: usize = 20;

/// The metrics to draw: those given, else the first [`MAX_CURVES`]; and a note when some were
/// left out.
fn chosen(given: &[String], names: &[std::sync::Arc<str>]) -> (Vec<String>, Option<String>) {
    if !given.is_empty() {
        return (given.to_vec(), None);
    }
    let all: Vec<String> =
        names.iter().filter(|name| !name.starts_with(runstore::SYSTEM_PREFIX)).map(ToString::to_string).collect();
    if all.len() <= MAX_CURVES {
        return (all, None);
    }
    let note = format!("first {MAX_CURVES} of {} metrics: choose with --metric", all.len());
    (all.into_iter().take(MAX_CURVES).collect(), Some(note))
}

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
Without --metric, the first 20 metrics are drawn (the title says how many
there are).

Examples:
  runstore plot resnet-7                         # writes resnet-7.svg
  runstore plot resnet-7 --metric loss --metric eval/loss -o loss.svg
  runstore plot lr-0.1 lr-0.01 -m loss --log-y --smooth 0.9 -o sweep.svg
  runstore plot resnet-7 --from 10000 -o - > tail.svg
  runstore plot resnet-7 --all-branches        # archived branches faded, dashed
  runstore plot resnet-7 --x runtime           # x: seconds of running time

--x runtime plots against the seconds the run had been running when each row
was logged (time dead between attempts is not counted); --x time against the
seconds since the first row plotted was logged.

--system draws the runs' system metrics (system/cpu_percent, ...; recorded by
time, not step) against wall-clock time: one panel per metric, x in seconds
since the first sample drawn, each reduced to 1200 time intervals.
  runstore plot resnet-7 --system -o resnet-7-system.svg")]
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
    /// The x axis: step, runtime or time.
    #[arg(long = "x", value_enum, default_value_t = Axis::Step)]
    x: Axis,
    /// The SVG file, or - for stdout [default: ID.svg].
    #[arg(short = 'o', long = "output", value_name = "FILE.svg")]
    output: Option<PathBuf>,
    /// Draw the system metrics (CPU, memory, GPU...) against wall-clock time
    #[arg(long, conflicts_with_all = ["from", "to", "all_branches", "time", "smooth", "x"])]
    system: bool,
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

/// What the curves are plotted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Axis {
    /// The step.
    Step,
    /// Seconds of running time (dead time not counted).
    Runtime,
    /// Seconds since the first row plotted was logged.
    Time,
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    if args.system {
        let path = args.output.clone().unwrap_or_else(|| default_path(&args.ids));
        return crate::system_plot::run(store, &args.ids, &args.selection.metrics, args.log_y, &path);
    }
    if args.x != Axis::Step {
        return run_timed(store, args);
    }
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
    let (metrics, note) = metrics(&sources, &args.selection.metrics)?;
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
                Some(span) => read_curve(&source.reader, name, None, span, args.smooth)?,
                None => (Vec::new(), None),
            };
            let mut archived = Vec::new();
            for branch in &source.branches {
                let (first, last) = (branch.first_step.max(*steps.start()), branch.last_step.min(*steps.end()));
                if first <= last {
                    archived.push(read_curve(&source.reader, name, Some(branch.id), (first, last), None)?.0);
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
    let mut title = if several { format!("runs {}", args.ids.join(", ")) } else { format!("run {}", args.ids[0]) };
    if let Some(note) = note {
        title = format!("{title} ({note})");
    }
    let chart = Chart { title, x_title: "step".into(), x_range, log_y: args.log_y, panels };
    let svg = chart.render();
    let path = args.output.clone().unwrap_or_else(|| default_path(&args.ids));
    if !write_svg(&path, &svg)? {
        return Ok(());
    }
    let runs =
        if several { format!(" of {}", output::count(sources.len() as u64, "run", "runs")) } else { String::new() };
    output::stdout_line(&format!(
        "wrote {} ({}{runs})",
        path.display(),
        output::count(metrics.len() as u64, "metric", "metrics")
    ))
}

/// The file a plot of `ids` goes to without `-o`: `ID.svg`, or `FIRST-and-N-more.svg`.
fn default_path(ids: &[String]) -> PathBuf {
    match ids {
        [id] => PathBuf::from(format!("{id}.svg")),
        _ => PathBuf::from(format!("{}-and-{}-more.svg", ids[0], ids.len().saturating_sub(1))),
    }
}

/// Writes the SVG to `path`, or to stdout for `-`; whether it wrote a file.
pub fn write_svg(path: &std::path::Path, svg: &str) -> Result<bool, Failure> {
    if path.as_os_str() == "-" {
        let mut out = output::stdout();
        out.write_all(svg.as_bytes())?;
        out.flush()?;
        return Ok(false);
    }
    output::write_file(path, |out| Ok(out.write_all(svg.as_bytes())?))?;
    Ok(true)
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
/// every run (the first [`MAX_CURVES`]), in the order the first run logged them, then the
/// others'; and a note when some were left out.
fn metrics(sources: &[Source], asked: &[String]) -> Result<(Vec<String>, Option<String>), Failure> {
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
    let mut names: Vec<Arc<str>> = Vec::new();
    for source in sources {
        for name in &source.names {
            if !names.iter().any(|known| **known == **name) {
                names.push(Arc::clone(name));
            }
        }
    }
    Ok(chosen(asked, &names))
}

/// The downsampled curve of `name` over `first..=last` in the live history or archived branch
/// `branch`: from chunk summaries when the range holds many chunks and nothing is smoothed
/// (see [`downsample::from_envelope`]), else from its points ([`curve`]).
fn read_curve(
    reader: &RunSnapshot,
    name: &str,
    branch: Option<u32>,
    (first, last): (u64, u64),
    weight: Option<f64>,
) -> Result<(Points, Option<Points>), Failure> {
    let series = |low: u64, high: u64| match branch {
        Some(branch) => reader.branch_series(branch, name, low..=high),
        None => reader.series(name, low..=high),
    };
    if weight.is_none() {
        let columns = usize::try_from(COLUMNS).unwrap_or(usize::MAX);
        let envelope = match branch {
            Some(branch) => reader.branch_summary_envelope(branch, name, first..=last, columns)?,
            None => reader.summary_envelope(name, first..=last, columns)?,
        };
        if let Some(envelope) = envelope {
            #[allow(clippy::cast_precision_loss)] // chart coordinates
            let points = downsample::from_envelope(&envelope, series)?.into_iter().map(|(s, v)| (s as f64, v));
            return Ok((points.collect(), None));
        }
    }
    curve(series(first, last)?, first, last, weight)
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

/// Plots against runtime or time: the rows are read twice (the x range, then the curves), a
/// few columns of points kept per metric.
fn run_timed(store: &Store, args: &Args) -> Result<(), Failure> {
    let [id] = args.ids.as_slice() else {
        return Err(Failure::input("--x runtime and --x time plot one run: give one ID, or plot against step"));
    };
    if args.smooth.is_some() {
        return Err(Failure::input("--smooth goes with --x step: plot against step to smooth"));
    }
    let steps = args.selection.steps()?;
    let reader = store.open_run(id)?.snapshot()?;
    let history = reader.history(..0)?;
    rows::check_metrics(id, &args.selection.metrics, history.metrics())?;
    let names: Vec<std::sync::Arc<str>> = history.metrics().to_vec();
    let (metrics, note) = chosen(&args.selection.metrics, &names);
    let selected: Vec<usize> = metrics.iter().filter_map(|m| names.iter().position(|n| **n == **m)).collect();
    let history = reader.history_of(&metrics, steps.clone())?;
    let branches = if args.selection.all_branches { reader.branches()? } else { Vec::new() };
    let mut histories = vec![history];
    for branch in &branches {
        histories.push(reader.branch_history(branch.id, steps.clone())?);
    }
    let x_of = |row: &runstore::RowRef<'_>| match args.x {
        Axis::Runtime => row.runtime().as_secs_f64(),
        _ => row.time().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |since| since.as_secs_f64()),
    };
    // Pass 1: the x range over every history plotted.
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for history in &mut histories {
        while let Some(row) = history.next_row()? {
            let x = x_of(&row);
            low = low.min(x);
            high = high.max(x);
        }
    }
    let origin = if args.x == Axis::Time && low.is_finite() { low } else { 0.0 };
    // Pass 2: each history's curves, reduced to columns of x.
    let mut curves: Vec<Vec<Vec<(f64, f64)>>> = Vec::new();
    let mut fresh = vec![reader.history_of(&metrics, steps.clone())?];
    for branch in &branches {
        fresh.push(reader.branch_history(branch.id, steps.clone())?);
    }
    for mut history in fresh {
        let mut reducers: Vec<ByColumn<f64>> = selected.iter().map(|_| ByColumn::default()).collect();
        while let Some(row) = history.next_row()? {
            let x = x_of(&row) - origin;
            let column = x_column(x + origin, low, high, COLUMNS);
            for &(id, value) in row.points() {
                if let Some(slot) = selected.iter().position(|&s| s == id as usize) {
                    reducers[slot].push(column, x, value);
                }
            }
        }
        curves.push(reducers.into_iter().map(ByColumn::finish).collect());
    }
    let mut curves = curves.into_iter();
    let live = curves.next().unwrap_or_default();
    let archived: Vec<Vec<Vec<(f64, f64)>>> = curves.collect();
    let panels: Vec<Panel> = selected
        .iter()
        .enumerate()
        .map(|(slot, &index)| {
            let name = names[index].to_string();
            let series = Series {
                label: name.clone(),
                colour: svg::metric_colour(&name),
                points: live.get(slot).cloned().unwrap_or_default(),
                raw: None,
                branches: archived.iter().map(|curves| curves.get(slot).cloned().unwrap_or_default()).collect(),
            };
            Panel { metric: name, series: vec![series] }
        })
        .collect();
    let x_title = match args.x {
        Axis::Runtime => "runtime (s)".to_string(),
        _ => format!("time (s since {})", output::time(runstore_time(origin))),
    };
    let x_range = low.is_finite().then_some((low - origin, high - origin));
    let title = match note {
        Some(note) => format!("run {id} ({note})"),
        None => format!("run {id}"),
    };
    let chart = Chart { title, x_title, x_range, log_y: args.log_y, panels };
    let path = args.output.clone().unwrap_or_else(|| PathBuf::from(format!("{id}.svg")));
    if !write_svg(&path, &chart.render())? {
        return Ok(());
    }
    output::stdout_line(&format!(
        "wrote {} ({})",
        path.display(),
        output::count(selected.len() as u64, "metric", "metrics")
    ))
}

fn runstore_time(seconds: f64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(seconds.max(0.0))
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
