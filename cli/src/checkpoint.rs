//! `runstore checkpoint` records a checkpoint of a run from a shell script; `runstore
//! checkpoints` lists a run's checkpoints.

use std::io::Write;
use std::path::PathBuf;

use runstore::{Checkpoint, Resume, RunOptions, Store};

use crate::exit::Failure;
use crate::output;

/// Record that a checkpoint of a run was saved at PATH.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
PATH (a file or a directory, saved and renamed into place before this runs)
holds the training state after step N, by default the run's last logged step.
The record is committed with the run's rows; a later start with
RUNSTORE_RESUME_FROM=checkpoint (RunOptions::resume_from_checkpoint) restarts
from the newest recorded checkpoint whose path still exists. The run keeps its
state; it must not be live (exit 5). runstore never deletes checkpoint files.

Examples:
  runstore checkpoint resnet-7 ckpt/step-12000.pt
  runstore checkpoint resnet-7 ckpt/step-12000/ --step 12000")]
pub struct Args {
    /// The run id.
    id: String,
    /// The checkpoint's file or directory.
    path: PathBuf,
    /// The step it covers [default: the last logged step]
    #[arg(long, value_name = "N")]
    step: Option<u64>,
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    let mut run = store.init(RunOptions::new().id(&args.id).resume(Resume::Must))?;
    let recorded = match args.step {
        Some(step) => run.checkpoint_at(step, &args.path),
        None => run.checkpoint(&args.path),
    };
    // End the attempt whatever happened, so that a refused checkpoint leaves the run as it was.
    let ended = run.end_keeping_state();
    let checkpoint = recorded?;
    ended?;
    output::stdout_line(&format!(
        "recorded checkpoint {} of run {} at step {}: {}",
        checkpoint.number,
        args.id,
        checkpoint.step,
        checkpoint.absolute.display()
    ))
}

/// List a run's checkpoints.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Columns: the checkpoint's number, step, whether its path exists now, size when
recorded, when recorded, the attempt that recorded it, the archived branch it
belongs to (`-` when live: a rewind below its step archives it), and the path.
The one a resume from checkpoint would use is marked `*`.

Examples:
  runstore checkpoints resnet-7
  runstore checkpoints resnet-7 --json")]
pub struct ListArgs {
    /// The run id.
    id: String,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn list(store: &Store, args: &ListArgs) -> Result<(), Failure> {
    let snapshot = store.open_run(&args.id)?.snapshot()?;
    let checkpoints = snapshot.checkpoints()?;
    let latest = runstore_choice(&snapshot)?;
    let mut out = output::stdout();
    if args.json {
        for checkpoint in &checkpoints {
            let mut value = checkpoint_json(checkpoint);
            value["latest"] = serde_json::Value::Bool(Some(checkpoint.number) == latest);
            serde_json::to_writer(&mut out, &value).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
    } else {
        writeln!(
            out,
            "{:>4} {:>10}  {:6} {:>10}  {:20}  {:>7}  {:>6}  path",
            "#", "step", "exists", "size", "time", "attempt", "branch"
        )?;
        for c in &checkpoints {
            let mark = if Some(c.number) == latest { "*" } else { " " };
            writeln!(
                out,
                "{mark}{:>3} {:>10}  {:6} {:>10}  {:20}  {:>7}  {:>6}  {}",
                c.number,
                c.step,
                if c.exists { "yes" } else { "no" },
                c.size,
                output::time(c.time),
                c.attempt,
                c.branch.map_or_else(|| "-".to_string(), |b| b.to_string()),
                c.path.display()
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

fn runstore_choice(snapshot: &runstore::RunSnapshot) -> Result<Option<u32>, Failure> {
    Ok(snapshot.latest_checkpoint()?.latest.map(|checkpoint| checkpoint.number))
}

/// A checkpoint as JSON: the fields of `runstore checkpoints --json`.
pub fn checkpoint_json(checkpoint: &Checkpoint) -> serde_json::Value {
    serde_json::json!({
        "number": checkpoint.number,
        "step": checkpoint.step,
        "path": checkpoint.path.to_string_lossy(),
        "absolute": checkpoint.absolute.to_string_lossy(),
        "exists": checkpoint.exists,
        "size": checkpoint.size,
        "time": output::time(checkpoint.time),
        "attempt": checkpoint.attempt,
        "branch": checkpoint.branch,
    })
}
