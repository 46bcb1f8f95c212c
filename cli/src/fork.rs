//! `runstore fork`: a new run that starts from another run's history up to a step.

use std::io::Write;

use runstore::{Resume, RunOptions, Store};

use crate::exit::Failure;
use crate::output;

/// Create a run from another run's history up to a step.
///
/// For training on from that step with other settings; the source run is not changed.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The fork's history up to STEP is the source's (read from it, not copied), its
config is the source's merged with --config, and it records where it came from
(`forked_from`). Forking a live run reads the rows it has flushed. The fork is
created with one attempt that logs nothing and ends finished; train on it with
RUNSTORE_RUN_ID=NEW RUNSTORE_RESUME=must.

Examples:
  runstore fork resnet-7 --at 5000 --id resnet-7-lowlr --config '{\"lr\": 1e-4}'
  RUNSTORE_RUN_ID=resnet-7-lowlr RUNSTORE_RESUME=must python train.py")]
pub struct Args {
    /// The source run id.
    id: String,
    /// The last step taken from the source.
    #[arg(long, value_name = "STEP")]
    at: u64,
    /// The new run's id [default: generated].
    #[arg(long = "id", value_name = "NEW")]
    new_id: Option<String>,
    /// Config keys to set on the fork, as a JSON object (merged into the source's).
    #[arg(long, value_name = "JSON")]
    config: Option<String>,
    /// Print the new run as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    let mut options = RunOptions::new().ignore_environment().resume(Resume::Never);
    if let Some(id) = &args.new_id {
        options = options.id(id);
    }
    if let Some(text) = &args.config {
        let config: serde_json::Value = serde_json::from_str(text).map_err(|error| {
            Failure::input(format!("--config is not JSON ({error}): give an object, as '{{\"lr\": 1e-4}}'"))
        })?;
        options = options.config(config);
    }
    let run = store.fork(&args.id, args.at, options).map_err(|error| {
        Failure::from(error).explain(|error| match error {
            runstore::Error::RunExists { id } => Some(format!(
                "run {id:?} already exists: give the fork another --id, or leave --id out for a generated one"
            )),
            _ => None,
        })
    })?;
    let (id, next) = (run.id().to_string(), run.step());
    run.end_keeping_state()?;
    let mut out = output::stdout();
    if args.json {
        let value = serde_json::json!({"id": id, "forked_from": args.id, "at": args.at, "next_step": next});
        serde_json::to_writer(&mut out, &value).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        writeln!(out, "forked run {} at step {} into {id}: its next step is {next}", args.id, args.at)?;
    }
    out.flush()?;
    Ok(())
}
