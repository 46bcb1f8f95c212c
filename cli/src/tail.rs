//! `runstore tail`: the last rows of a run; with `-f`, follow it while it is written.

use std::collections::VecDeque;
use std::io::Write;
use std::time::Duration;

use runstore::{RunSnapshot, Store};

use crate::exit::Failure;
use crate::output;
use crate::rows::{self, Format, RowWriter, Stamp};

/// How often `-f` looks for new rows.
const POLL: Duration = Duration::from_millis(100);

/// Print the last rows of a run; with -f, follow it until it ends.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
With -f, rows appear as the writer flushes them (every second by default), and
tail ends when the run is no longer live (finished, failed, crashed, preempted).
In csv the columns are those of the first row printed: use --metric, or jsonl,
to see metrics that appear later. Formats as in `runstore history --help`.

Examples:
  runstore tail resnet-7
  runstore tail -f -n 0 resnet-7 --metric loss
  runstore tail -f resnet-7 --format jsonl")]
pub struct Args {
    /// The run id.
    id: String,
    /// How many of the last rows to print first.
    #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 10)]
    lines: usize,
    /// Print new rows as they are flushed, until the run ends.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Only this metric; repeat for more [default: all].
    #[arg(long = "metric", short = 'm', value_name = "M")]
    metrics: Vec<String>,
    /// Output format: table, csv or jsonl.
    #[arg(long, value_enum, default_value_t = Format::Table, hide_possible_values = true)]
    format: Format,
    /// Add `_timestamp` and `_runtime` (seconds) to each row
    #[arg(long)]
    time: bool,
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    rows::check_unique(&args.metrics)?;
    let reader = store.open_run(&args.id)?;
    let mut writer = RowWriter::new(args.format, args.metrics.clone());
    writer.with_time(args.time);
    let mut out = output::stdout();
    // Each poll reads one snapshot: its state, branches and rows are of one commit, so a run
    // seen not live has all its rows in it, and a rewind is seen once, with the rows after it.
    let snapshot = reader.snapshot()?;
    let mut live = snapshot.state()?.is_live();
    let mut branches = snapshot.info()?.branches;
    let Window { rows, names, mut last } = last_rows(&snapshot, &args.metrics, args.lines)?;
    drop(snapshot);
    writer.names(&names);
    if let Some(&(step, _, _)) = rows.back() {
        writer.fit_step(step);
    }
    for (step, stamp, points) in &rows {
        writer.row(&mut out, *step, *stamp, points)?;
    }
    out.flush()?;
    drop(rows);
    while args.follow && live {
        std::thread::sleep(POLL);
        let snapshot = reader.snapshot()?;
        let info = snapshot.info()?;
        live = info.state.is_live();
        if info.branches > branches {
            // A rewind: the steps after its target are logged again; follow from there.
            for branch in snapshot.branches()?.iter().skip(branches as usize) {
                output::warn(&format!(
                    "run {} was rewound to step {}; steps {}..={} are archived as branch {}",
                    args.id, branch.rewound_to, branch.first_step, branch.last_step, branch.id
                ));
                last = last.map(|step| step.min(branch.rewound_to));
            }
            branches = info.branches;
        }
        let from = last.map_or(0, |step| step.saturating_add(1));
        let mut history = rows::history(&snapshot, &args.metrics, from..)?;
        writer.names(history.metrics());
        while let Some(row) = history.next_row()? {
            writer.row(&mut out, row.step(), Stamp::of(&row), row.points())?;
            last = Some(row.step());
        }
        out.flush()?;
    }
    if args.follow {
        output::warn(&ending(&args.id, &reader.info()?));
    }
    Ok(())
}

/// How a followed run ended (or stood, if it was not live), for stderr.
fn ending(id: &str, info: &runstore::RunInfo) -> String {
    use runstore::RunState;
    let code = info.exit_code.map_or_else(String::new, |code| format!(" (exit code {code})"));
    let how = match info.state {
        RunState::Finished => format!("finished{code}"),
        RunState::Failed => format!("failed{code}"),
        RunState::Preempted => format!("was preempted{code}"),
        RunState::Crashed => "crashed: its process died without finishing".to_string(),
        other => other.as_str().to_string(),
    };
    format!("run {id} {how}; its last step is {}", info.last_step.map_or_else(|| "none".to_string(), |s| s.to_string()))
}

/// A row kept for the window: its step, time and points.
type WindowRow = (u64, Stamp, Vec<(u32, f64)>);

/// The last rows of a run, as of one snapshot.
struct Window {
    /// `(step, stamp, (metric id, value) pairs)`, oldest first.
    rows: VecDeque<WindowRow>,
    /// The metric names the ids index.
    names: Vec<std::sync::Arc<str>>,
    /// The run's last step in that snapshot: following continues after it.
    last: Option<u64>,
}

/// The last `count` rows. Reads windows of steps ending at the last step, doubling them until
/// they hold enough rows, so the cost follows `count`, not the length of the run.
fn last_rows(reader: &RunSnapshot, metrics: &[String], count: usize) -> Result<Window, Failure> {
    let last = reader.info()?.last_step;
    let (Some(last_step), true) = (last, count > 0) else {
        return Ok(Window { rows: VecDeque::new(), names: reader.history(..0)?.metrics().to_vec(), last });
    };
    let mut window = u64::try_from(count).unwrap_or(u64::MAX);
    loop {
        let from = last_step.saturating_sub(window - 1);
        let mut history = rows::history(reader, metrics, from..=last_step)?;
        let mut rows = VecDeque::with_capacity(count.min(1 << 16));
        while let Some(row) = history.next_row()? {
            if rows.len() == count {
                rows.pop_front();
            }
            rows.push_back((row.step(), Stamp::of(&row), row.points().to_vec()));
        }
        if rows.len() == count || from == 0 {
            return Ok(Window { rows, names: history.metrics().to_vec(), last });
        }
        window = window.saturating_mul(2);
    }
}
