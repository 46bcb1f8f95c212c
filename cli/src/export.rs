//! `runstore export`: `history` to a file, with a progress bar for large runs.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use runstore::{RunSnapshot, Store};

use crate::exit::Failure;
use crate::history::{self, Selection};
use crate::output;
use crate::rows::{self, Format};
use crate::tensorboard;

/// Rows above which writing a file shows a progress bar (on a terminal).
const LARGE: u64 = 100_000;

/// Write a run's rows to a file: csv, jsonl or TensorBoard events.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
csv and jsonl are written as `runstore history` writes them (see its --help),
to stdout without -o. tensorboard writes an event file into the directory -o
DIR, and one per archived branch into DIR/branch-<id>; TensorBoard stores
scalars as 32-bit floats, so values are rounded to f32 (steps are exact). Files
are written under a temporary name and renamed when complete. A progress bar
shows on stderr for runs of more than 100 000 rows when stderr is a terminal.

Examples:
  runstore export resnet-7 --format csv -o resnet-7.csv
  runstore export resnet-7 --format jsonl --metric loss | gzip > loss.jsonl.gz
  runstore export resnet-7 --format tensorboard -o tb/resnet-7
  tensorboard --logdir tb")]
pub struct Args {
    /// The run id.
    id: String,
    /// csv, jsonl, table or tensorboard.
    #[arg(long, value_enum, hide_possible_values = true)]
    format: ExportFormat,
    /// The file to write; stdout when omitted.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    selection: Selection,
}

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// Aligned columns, for people.
    Table,
    /// TensorBoard event files in a directory.
    Tensorboard,
}

impl ExportFormat {
    fn rows(self) -> Option<Format> {
        match self {
            ExportFormat::Csv => Some(Format::Csv),
            ExportFormat::Jsonl => Some(Format::Jsonl),
            ExportFormat::Table => Some(Format::Table),
            ExportFormat::Tensorboard => None,
        }
    }
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    let format = args.format.rows();
    let Some(path) = &args.output else {
        let Some(format) = format else {
            return Err(Failure::input("--format tensorboard writes a directory: give it with -o DIR"));
        };
        let mut out = output::stdout();
        history::write(&store.open_run(&args.id)?.snapshot()?, &args.selection, format, &mut out, |_| {})?;
        out.flush()?;
        return Ok(());
    };
    let reader = store.open_run(&args.id)?.snapshot()?;
    let rows = reader.info()?.rows;
    let bar = (rows > LARGE && std::io::stderr().is_terminal()).then(|| progress_bar(rows));
    let progress = |done| {
        if let Some(bar) = &bar {
            bar.set_position(done);
        }
    };
    let result = match format {
        Some(format) => to_file(&reader, args, format, path, progress),
        None => rows::check_metrics(&args.id, &args.selection.metrics, reader.history(..0)?.metrics()).and_then(|()| {
            tensorboard::export(&reader, path, args.selection.steps()?, &args.selection.metrics, progress)
        }),
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let written = result?;
    output::stdout_line(&format!("wrote {} to {}", output::count(written, "row", "rows"), path.display()))
}

fn to_file(
    reader: &RunSnapshot,
    args: &Args,
    format: Format,
    path: &Path,
    progress: impl FnMut(u64),
) -> Result<u64, Failure> {
    output::write_file(path, |out| history::write(reader, &args.selection, format, out, progress))
}

fn progress_bar(rows: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(Some(rows), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{wide_bar} {pos}/{len} rows, eta {eta}") {
        bar.set_style(style);
    }
    bar
}
