//! `runstore history`: a run's rows in step order, streamed.

use std::io::Write;
use std::ops::RangeInclusive;

use runstore::{RunSnapshot, Store};

use crate::exit::Failure;
use crate::output;
use crate::rows::{self, Format, RowWriter};

/// Print a run's rows in step order as csv or jsonl, streamed.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Output:
  csv    header `step,<metric>...`; an empty cell where a row lacks a metric;
         NaN and infinities written NaN, inf, -inf
  jsonl  one object per row, with the metrics the row has:
         {\"step\":12,\"loss\":0.25}; NaN and infinities as the strings
         \"NaN\", \"inf\", \"-inf\"
  table  aligned columns, for people
Values are written in the shortest form that reads back as the same number.
--time adds `_timestamp` (Unix seconds, to the millisecond, when the row was
logged) and `_runtime` (seconds the run had been running: time spent dead
between attempts is not counted) after `step`. --system prints the samples of
the run's system metrics (stored by time, not step) instead: csv
`_timestamp,metric,value`, or jsonl.

Examples:
  runstore history resnet-7 > resnet-7.csv
  runstore history resnet-7 -m loss -m eval/acc --from 1000 --to 2000
  runstore history resnet-7 --format jsonl | head
  runstore history resnet-7 --all-branches --from 900 --to 1300")]
pub struct Args {
    /// The run id.
    id: String,
    #[command(flatten)]
    selection: Selection,
    /// Output format: csv, jsonl or table.
    #[arg(long, value_enum, default_value_t = Format::Csv, hide_possible_values = true)]
    format: Format,
    /// Print the system metrics' samples (by time) instead
    #[arg(long, conflicts_with_all = ["from", "to", "all_branches", "time"])]
    system: bool,
}

/// Which metrics and steps to write: shared by `history` and `export`.
#[derive(Debug, clap::Args)]
pub struct Selection {
    /// Only this metric; repeat for more [default: all].
    #[arg(long = "metric", short = 'm', value_name = "M")]
    pub metrics: Vec<String>,
    /// The first step to write.
    #[arg(long, value_name = "STEP")]
    pub from: Option<u64>,
    /// The last step to write (inclusive).
    #[arg(long, value_name = "STEP")]
    pub to: Option<u64>,
    /// Add archived branches, each row naming its branch.
    #[arg(long)]
    pub all_branches: bool,
    /// Add `_timestamp` and `_runtime` (seconds) to each row
    #[arg(long)]
    pub time: bool,
}

impl Selection {
    /// The steps asked for.
    pub fn steps(&self) -> Result<RangeInclusive<u64>, Failure> {
        let (from, to) = (self.from.unwrap_or(0), self.to.unwrap_or(u64::MAX));
        if from > to {
            return Err(Failure::input(format!("--from {from} is after --to {to}: give a range that holds steps")));
        }
        Ok(from..=to)
    }
}

/// Writes the selected rows of the run `reader` reads to `out`, live and archived from the
/// one snapshot; `progress` as for [`rows::stream`].
pub fn write(
    reader: &RunSnapshot,
    selection: &Selection,
    format: Format,
    out: &mut impl Write,
    progress: impl FnMut(u64),
) -> Result<u64, Failure> {
    let id = reader.id();
    let steps = selection.steps()?;
    let last = reader.info()?.last_step;
    // With --metric, only those metrics' bytes are read (a wide run has thousands).
    let mut history = rows::history(reader, &selection.metrics, steps.clone())?;
    rows::check_metrics(id, &selection.metrics, history.metrics())?;
    let mut writer = RowWriter::new(format, selection.metrics.clone());
    writer.with_time(selection.time);
    if let Some(last) = last {
        writer.fit_step(last);
    }
    if !selection.all_branches {
        return rows::stream(&mut history, &mut writer, out, progress);
    }
    writer.set_branch("live");
    let mut progress = progress;
    let mut rows = rows::stream(&mut history, &mut writer, out, &mut progress)?;
    for branch in reader.branches()? {
        writer.fit_step(branch.last_step);
        writer.set_branch(branch.id.to_string());
        let mut archived = reader.branch_history(branch.id, steps.clone())?;
        let done = rows;
        rows += rows::stream(&mut archived, &mut writer, out, |n| progress(done + n))?;
    }
    Ok(rows)
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    if args.system {
        return system(store, args);
    }
    let mut out = output::stdout();
    write(&store.open_run(&args.id)?.snapshot()?, &args.selection, args.format, &mut out, |_| {})?;
    out.flush()?;
    Ok(())
}

/// `--system`: every sample of the run's system metrics (or of the `--metric`s given), metric
/// by metric, in time order.
fn system(store: &Store, args: &Args) -> Result<(), Failure> {
    let snapshot = store.open_run(&args.id)?.snapshot()?;
    let names = snapshot.metrics()?;
    let system: Vec<String> = names.into_iter().filter(|name| name.starts_with(runstore::SYSTEM_PREFIX)).collect();
    let selected = if args.selection.metrics.is_empty() { system.clone() } else { args.selection.metrics.clone() };
    if let Some(unknown) = selected.iter().find(|name| !system.contains(name)) {
        return Err(Failure::input(format!("run {:?} has no system metric {unknown:?}", args.id)));
    }
    let mut out = output::stdout();
    if args.format != Format::Jsonl {
        writeln!(out, "_timestamp,metric,value")?;
    }
    for name in &selected {
        for (time, value) in snapshot.system(name, ..)? {
            let stamp = rows::seconds(rows::ms(time));
            if args.format == Format::Jsonl {
                let key = serde_json::to_string(name).map_err(std::io::Error::from)?;
                write!(out, "{{\"_timestamp\":{stamp},\"metric\":{key},\"value\":")?;
                match output::non_finite(value) {
                    Some(text) => write!(out, "\"{text}\"")?,
                    None => output::write_exact(&mut out, value)?,
                }
                writeln!(out, "}}")?;
            } else {
                write!(out, "{stamp},{name},")?;
                output::write_exact(&mut out, value)?;
                writeln!(out)?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
