//! `runstore rm`: delete runs, asking first.

use std::io::{BufRead, Write};

use runstore::Store;

use crate::exit::Failure;
use crate::output;

/// Delete runs: their history, branches and records.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Asks for each run (answer y to delete it) unless --yes is given; with no answer
(stdin closed or not a terminal, as in a script) nothing is deleted: pass --yes.
A run that a process is writing is refused (exit 5), and so is a run that other
runs were forked from (exit 2: they read their history from it; delete them
first). Every id must name a run (exit 3) before anything is deleted.

A deletion is crash-safe: the run's directory is renamed out of the store in
one step, then removed, so a deletion cut short leaves the run whole or gone.
Checkpoint files, queue items and auto pointers naming the run are not touched.

Examples:
  runstore rm scratch-1
  runstore rm --yes $(runstore ls --state failed --json | jq -r '.[].id')")]
pub struct Args {
    /// The runs to delete.
    #[arg(value_name = "ID", required = true, num_args = 1..)]
    ids: Vec<String>,
    /// Delete without asking.
    #[arg(short, long)]
    yes: bool,
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    // Every id first: a typo must not leave half of the list deleted.
    let mut described = Vec::with_capacity(args.ids.len());
    for id in &args.ids {
        let info = store.open_run(id)?.info()?;
        described.push(format!(
            "run {id} ({}, {}, {})",
            info.state,
            output::count(info.rows, "row", "rows"),
            output::count(info.attempts, "attempt", "attempts")
        ));
    }
    let mut answers = std::io::stdin().lock();
    let mut first_failure = None;
    for (id, description) in args.ids.iter().zip(&described) {
        if !args.yes && !confirm(&mut answers, description)? {
            output::stdout_line(&format!("kept run {id}"))?;
            continue;
        }
        match store.delete_run(id) {
            Ok(()) => output::stdout_line(&format!("deleted run {id}"))?,
            // One refusal must not stop the others; the first decides the exit code.
            // (`main` prints the first as the command ends.)
            Err(error) => match first_failure {
                None => first_failure = Some(Failure::from(error)),
                Some(_) => output::warn(&Failure::from(error).to_string()),
            },
        }
    }
    first_failure.map_or(Ok(()), Err)
}

/// Asks on stderr whether to delete; reads the answer from stdin.
fn confirm(answers: &mut impl BufRead, description: &str) -> Result<bool, Failure> {
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "delete {description}? [y/N] ");
    let _ = stderr.flush();
    let mut answer = String::new();
    let read =
        answers.read_line(&mut answer).map_err(|error| Failure::input(format!("cannot read an answer: {error}")))?;
    if read == 0 {
        let _ = writeln!(stderr);
        return Err(Failure::input("no answer on stdin, so nothing was deleted: pass --yes to delete without asking"));
    }
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
}
