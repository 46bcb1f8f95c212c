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

/// Plot metric curves against step as an SVG file.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
One colour per metric, a legend, axes with ticks. Long runs are reduced to the
first, lowest, highest and last point of each of 1200 step intervals per metric,
so the file stays small and spikes stay visible. NaN and infinite values are
left out of the curves.

Examples:
  runstore plot resnet-7                         # writes resnet-7.svg
  runstore plot resnet-7 --metric loss --metric eval/loss -o loss.svg
  runstore plot resnet-7 --from 10000 -o - > tail.svg
  runstore plot resnet-7 --all-branches        # archived branches faded, dashed")]
pub struct Args {
    /// The run id.
    id: String,
    #[command(flatten)]
    selection: Selection,
    /// The SVG file, or - for stdout [default: ID.svg].
    #[arg(short = 'o', long = "output", value_name = "FILE.svg")]
    output: Option<PathBuf>,
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    let steps = args.selection.steps()?;
    // One snapshot: the names, the x range and every series of one commit.
    let reader = store.open_run(&args.id)?.snapshot()?;
    let history = reader.history(steps.clone())?;
    rows::check_metrics(&args.id, &args.selection.metrics, history.metrics())?;
    let metrics: Vec<String> = if args.selection.metrics.is_empty() {
        history.metrics().iter().map(ToString::to_string).collect()
    } else {
        args.selection.metrics.clone()
    };
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
    let chart = Chart { title: format!("run {}", args.id), x_title: "step".into(), y_title, x_range, series };
    let svg = chart.render();
    let path = args.output.clone().unwrap_or_else(|| PathBuf::from(format!("{}.svg", args.id)));
    if path.as_os_str() == "-" {
        let mut out = output::stdout();
        out.write_all(svg.as_bytes())?;
        out.flush()?;
        return Ok(());
    }
    output::write_file(&path, |out| Ok(out.write_all(svg.as_bytes())?))?;
    output::stdout_line(&format!("wrote {} ({} metrics)", path.display(), metrics.len()))
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
