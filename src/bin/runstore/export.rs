//! `runstore export`: `history` to a file, with a progress bar for large runs.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use runstore::Store;

use crate::exit::Failure;
use crate::history::{self, Selection};
use crate::output;
use crate::rows::Format;

/// Rows above which writing a file shows a progress bar (on a terminal).
const LARGE: u64 = 100_000;

/// Write a run's rows as csv or jsonl to a file, with a progress bar.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Rows are written as `runstore history` writes them (see its --help), to stdout
without -o. The file is written under a temporary name and renamed when
complete. A progress bar shows on stderr for runs of more than 100 000 rows when
stderr is a terminal.

Examples:
  runstore export resnet-7 --format csv -o resnet-7.csv
  runstore export resnet-7 --format jsonl --metric loss | gzip > loss.jsonl.gz")]
pub struct Args {
    /// The run id.
    id: String,
    /// csv, jsonl or table.
    #[arg(long, value_enum, hide_possible_values = true)]
    format: Format,
    /// The file to write; stdout when omitted.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    selection: Selection,
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    let Some(path) = &args.output else {
        let mut out = output::stdout();
        history::write(store, &args.id, &args.selection, args.format, &mut out, |_| {})?;
        out.flush()?;
        return Ok(());
    };
    let rows = store.open_run(&args.id)?.info()?.rows;
    let bar = (rows > LARGE && std::io::stderr().is_terminal()).then(|| progress_bar(rows));
    let result = to_file(store, args, path, |done| {
        if let Some(bar) = &bar {
            bar.set_position(done);
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let written = result?;
    output::stdout_line(&format!("wrote {written} rows to {}", path.display()))
}

fn to_file(store: &Store, args: &Args, path: &Path, progress: impl FnMut(u64)) -> Result<u64, Failure> {
    output::write_file(path, |out| history::write(store, &args.id, &args.selection, args.format, out, progress))
}

fn progress_bar(rows: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(Some(rows), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{wide_bar} {pos}/{len} rows, eta {eta}") {
        bar.set_style(style);
    }
    bar
}
