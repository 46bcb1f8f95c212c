//! `runstore note`: set a run's notes after its creation.

use runstore::Store;

use crate::exit::Failure;
use crate::output;

/// Set (or, with an empty TEXT, clear) the notes of a run.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
TEXT replaces the run's notes, in one transaction; `show` prints them. Works in
any state but live (a process writing the run: exit 5).

Examples:
  runstore note lr-0.01 \"diverged after the warm-up; rerun with clipping\"
  runstore note lr-0.01 \"\"     # clears the notes")]
pub struct Args {
    /// The run id.
    id: String,
    /// The notes.
    #[arg(value_name = "TEXT", allow_hyphen_values = true)]
    text: String,
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    store.set_notes(&args.id, Some(&args.text))?;
    let done = if args.text.is_empty() { "cleared" } else { "set" };
    output::stdout_line(&format!("run {} notes {done}", args.id))
}
