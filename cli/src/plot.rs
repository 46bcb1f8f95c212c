//! `runstore plot`: metric curves against step, as an SVG file.

use std::io::Write;
use std::path::PathBuf;

use runstore::Store;

use crate::exit::Failure;
use crate::history::Selection;
use crate::output;
use crate::rows;
use crate::svg::{Chart, Series};

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
One colour per metric, a legend, axes with ticks; without --metric, the first
20 metrics (the title says how many there are). Long runs are reduced to the
first, lowest, highest and last point of each of 1200 step intervals per metric,
so the file stays small and spikes stay visible. NaN and infinite values are
left out of the curves.

Examples:
  runstore plot resnet-7                         # writes resnet-7.svg
  runstore plot resnet-7 --metric loss --metric eval/loss -o loss.svg
  runstore plot resnet-7 --from 10000 -o - > tail.svg
  runstore plot resnet-7 --all-branches        # archived branches faded, dashed
  runstore plot resnet-7 --x runtime           # x: seconds of running time

--x runtime plots against the seconds the run had been running when each row
was logged (time dead between attempts is not counted); --x time against the
seconds since the first row plotted was logged.")]
pub struct Args {
    /// The run id.
    id: String,
    #[command(flatten)]
    selection: Selection,
    /// The x axis: step, runtime or time.
    #[arg(long = "x", value_enum, default_value_t = Axis::Step)]
    x: Axis,
    /// The SVG file, or - for stdout [default: ID.svg].
    #[arg(short = 'o', long = "output", value_name = "FILE.svg")]
    output: Option<PathBuf>,
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
    if args.x != Axis::Step {
        return run_timed(store, args);
    }
    let steps = args.selection.steps()?;
    // One snapshot: the names, the x range and every series of one commit.
    let reader = store.open_run(&args.id)?.snapshot()?;
    let history = reader.history(steps.clone())?;
    rows::check_metrics(&args.id, &args.selection.metrics, history.metrics())?;
    let (metrics, note) = chosen(&args.selection.metrics, history.metrics());
    // The x range: from the first row in range to the last step in range, as of now.
    let mut history = history;
    let first = history.next_row()?.map(|row| row.step());
    drop(history);
    let last = reader.info()?.last_step.map(|last| last.min(*steps.end()));
    let branches = if args.selection.all_branches { reader.branches()? } else { Vec::new() };
    let mut series = Vec::with_capacity(metrics.len());
    for name in &metrics {
        let points = match (first, last) {
            (Some(first), Some(last)) if first <= last => downsample(reader.series(name, first..=last)?, first, last)?,
            _ => Vec::new(),
        };
        let mut archived = Vec::new();
        for branch in &branches {
            let (first, last) = (branch.first_step.max(*steps.start()), branch.last_step.min(*steps.end()));
            if first <= last {
                archived.push(downsample(reader.branch_series(branch.id, name, first..=last)?, first, last)?);
            }
        }
        series.push(Series { name: name.clone(), points, branches: archived });
    }
    let y_title = if metrics.len() == 1 { metrics[0].clone() } else { "value".to_string() };
    #[allow(clippy::cast_precision_loss)]
    let x_range = first.zip(last).map(|(first, last)| {
        let archived_last = branches.iter().map(|branch| branch.last_step.min(*steps.end())).max().unwrap_or(last);
        (first as f64, last.max(archived_last) as f64)
    });
    let chart = Chart { title: title(&args.id, note.as_deref()), x_title: "step".into(), y_title, x_range, series };
    write_svg(args, &chart.render(), metrics.len())
}

fn title(id: &str, note: Option<&str>) -> String {
    match note {
        Some(note) => format!("run {id} ({note})"),
        None => format!("run {id}"),
    }
}

/// Plots against runtime or time: the rows are read twice (the x range, then the curves), a
/// few columns of points kept per metric.
fn run_timed(store: &Store, args: &Args) -> Result<(), Failure> {
    let steps = args.selection.steps()?;
    let reader = store.open_run(&args.id)?.snapshot()?;
    let history = reader.history(..0)?;
    rows::check_metrics(&args.id, &args.selection.metrics, history.metrics())?;
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
    let span = (high - low).max(1e-9);
    let mut fresh = vec![reader.history_of(&metrics, steps.clone())?];
    for branch in &branches {
        fresh.push(reader.branch_history(branch.id, steps.clone())?);
    }
    for mut history in fresh {
        let mut reducers: Vec<Reducer> = selected.iter().map(|_| Reducer::default()).collect();
        while let Some(row) = history.next_row()? {
            let x = x_of(&row) - origin;
            // COLUMNS is small: exact in f64; the column index is within 0..COLUMNS.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
            let column = (((x + origin - low) / span) * COLUMNS as f64).min(COLUMNS as f64 - 1.0) as u64;
            for &(id, value) in row.points() {
                if let Some(slot) = selected.iter().position(|&s| s == id as usize)
                    && value.is_finite()
                {
                    reducers[slot].push(column, x, value);
                }
            }
        }
        curves.push(reducers.into_iter().map(Reducer::finish).collect());
    }
    let mut curves = curves.into_iter();
    let live = curves.next().unwrap_or_default();
    let archived: Vec<Vec<Vec<(f64, f64)>>> = curves.collect();
    let series: Vec<Series> = selected
        .iter()
        .enumerate()
        .map(|(slot, &id)| Series {
            name: names[id].to_string(),
            points: live.get(slot).cloned().unwrap_or_default(),
            branches: archived.iter().map(|curves| curves.get(slot).cloned().unwrap_or_default()).collect(),
        })
        .collect();
    let y_title = if series.len() == 1 { series[0].name.clone() } else { "value".to_string() };
    let x_title = match args.x {
        Axis::Runtime => "runtime (s)".to_string(),
        _ => format!("time (s since {})", output::time(runstore_time(origin))),
    };
    let x_range = low.is_finite().then_some((low - origin, high - origin));
    let chart = Chart { title: title(&args.id, note.as_deref()), x_title, y_title, x_range, series };
    write_svg(args, &chart.render(), selected.len())
}

fn runstore_time(seconds: f64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(seconds.max(0.0))
}

fn write_svg(args: &Args, svg: &str, metrics: usize) -> Result<(), Failure> {
    let path = args.output.clone().unwrap_or_else(|| PathBuf::from(format!("{}.svg", args.id)));
    if path.as_os_str() == "-" {
        let mut out = output::stdout();
        out.write_all(svg.as_bytes())?;
        out.flush()?;
        return Ok(());
    }
    output::write_file(&path, |out| Ok(out.write_all(svg.as_bytes())?))?;
    output::stdout_line(&format!("wrote {} ({metrics} metrics)", path.display()))
}

/// Keeps the first, lowest, highest and last point of each column of x.
#[derive(Default)]
struct Reducer {
    points: Vec<(f64, f64)>,
    column: Option<(u64, [(f64, f64); 4])>,
}

impl Reducer {
    fn push(&mut self, column: u64, x: f64, value: f64) {
        match &mut self.column {
            Some((current, cell)) if *current == column => {
                if value < cell[1].1 {
                    cell[1] = (x, value);
                }
                if value > cell[2].1 {
                    cell[2] = (x, value);
                }
                cell[3] = (x, value);
            }
            _ => {
                self.flush();
                self.column = Some((column, [(x, value); 4]));
            }
        }
    }

    fn flush(&mut self) {
        if let Some((_, [start, low, high, end])) = self.column.take() {
            let (a, b) = if low.0 <= high.0 { (low, high) } else { (high, low) };
            let mut previous: Option<f64> = None;
            for (x, value) in [start, a, b, end] {
                if previous.is_none_or(|p| p.to_bits() != x.to_bits()) {
                    self.points.push((x, value));
                    previous = Some(x);
                }
            }
        }
    }

    fn finish(mut self) -> Vec<(f64, f64)> {
        self.flush();
        self.points
    }
}

/// The first, lowest, highest and last finite point of `series` in each of [`COLUMNS`] equal
/// step intervals of `first..=last`, in step order; streamed, so memory stays small.
#[allow(clippy::cast_precision_loss)]
fn downsample(
    series: impl Iterator<Item = runstore::Result<(u64, f64)>>,
    first: u64,
    last: u64,
) -> Result<Vec<(f64, f64)>, Failure> {
    let span = u128::from(last - first) + 1;
    let mut points = Vec::new();
    let mut column: Option<(u128, [(u64, f64); 4])> = None;
    let flush = |points: &mut Vec<(f64, f64)>, cell: [(u64, f64); 4]| {
        let [start, low, high, end] = cell;
        let (a, b) = if low.0 <= high.0 { (low, high) } else { (high, low) };
        let mut previous = None;
        for (step, value) in [start, a, b, end] {
            if previous != Some(step) {
                points.push((step as f64, value));
                previous = Some(step);
            }
        }
    };
    for point in series {
        let (step, value) = point?;
        if !value.is_finite() {
            continue;
        }
        let index = u128::from(step - first) * u128::from(COLUMNS) / span;
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
