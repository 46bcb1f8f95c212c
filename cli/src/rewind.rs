//! `runstore rewind`: move a run's rows after a step into an archived branch.

use std::io::Write;

use runstore::{Branch, Store};

use crate::exit::Failure;
use crate::output;

/// Rewind a run: archive the rows after a step, go on from the next.
///
/// The rows after STEP become an archived branch (kept, readable with `history
/// --all-branches`), and the run's next step becomes STEP + 1.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
For training that restarts from a checkpoint older than the last logged step:
the rows logged after the checkpoint are archived instead of conflicting with
the ones the restarted training logs. Works in any state but live (a process
writing the run: exit 5); the state is left as it was. Rewinding to the last
logged step changes nothing; a later step is an error (exit 2).

From code, or a job script, the same is RunOptions::resume_from(STEP) or
RUNSTORE_RESUME_FROM=STEP at init.

Examples:
  runstore rewind resnet-7 --to 1000
  runstore rewind resnet-7 --to \"$(cat checkpoints/last-step)\" --json")]
pub struct Args {
    /// The run id.
    id: String,
    /// The step to rewind to: the last step kept in the live history.
    #[arg(long, value_name = "STEP")]
    to: u64,
    /// Print the new branch as one JSON object (`null` when nothing was archived).
    #[arg(long)]
    json: bool,
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    let branch = store.rewind(&args.id, args.to)?;
    let mut out = output::stdout();
    if args.json {
        let value = branch.as_ref().map_or(serde_json::Value::Null, branch_json);
        serde_json::to_writer(&mut out, &value).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        match &branch {
            Some(branch) => writeln!(
                out,
                "rewound run {} to step {}: steps {}..={} ({}) archived as branch {}",
                args.id,
                args.to,
                branch.first_step,
                branch.last_step,
                output::count(branch.rows, "row", "rows"),
                branch.id
            )?,
            None => writeln!(out, "run {} ends at step {}: nothing to archive", args.id, args.to)?,
        }
    }
    out.flush()?;
    Ok(())
}

/// A branch as JSON: the fields of `runstore show --json`'s `branches`.
pub fn branch_json(branch: &Branch) -> serde_json::Value {
    serde_json::json!({
        "id": branch.id,
        "created_at": output::time(branch.created_at),
        "rewound_to": branch.rewound_to,
        "first_step": branch.first_step,
        "last_step": branch.last_step,
        "rows": branch.rows,
        "by_attempt": branch.by_attempt,
        "attempts": branch.attempts,
    })
}
