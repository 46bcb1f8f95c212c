//! `runstore queue`: push run specs to a named queue, list where its items stand, remove one.

use std::io::Write;

use clap::Subcommand;
use runstore::{ItemState, QueueItem, Store};

use crate::exit::Failure;
use crate::output;
use crate::table::{self, Column};

/// Push run specs to a queue, list or remove its items (for `agent`).
#[derive(Debug, clap::Args)]
#[command(after_help = "\
A queue item is a run id and a config (a JSON object). `runstore agent` claims
items in queue order, runs a command for each with RUNSTORE_RUN_ID and
RUNSTORE_CONFIG set, and marks it done, requeues it, or marks it failed.

Item states: pending, running (claimed by a live agent), done, failed (its
command failed --max-attempts times). A running item whose agent died reads
pending, with last exit `lost`, and is claimable again.

Examples:
  runstore queue push sweep-1 --config '{\"lr\": 0.1}'
  runstore queue push sweep-1 --config '{\"lr\": 0.01}' --id lr-0.01
  runstore queue ls sweep-1
  runstore queue ls sweep-1 --json | jq -r '.[] | [.id, .state] | @tsv'
  runstore queue rm sweep-1 lr-0.01")]
pub struct Args {
    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    Push(PushArgs),
    Ls(LsArgs),
    Rm(RmArgs),
}

/// Add an item at the end of a queue, creating the queue if needed.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Prints `pushed ID to queue NAME`. Without --id the id is generated (8
characters, as run ids). An existing run may be queued: the agent's command
resumes it.

Examples:
  runstore queue push sweep-1 --config '{\"lr\": 0.1, \"batch\": 64}'
  runstore queue push sweep-1 --config '{}' --id resnet-7")]
pub struct PushArgs {
    /// The queue.
    #[arg(value_name = "NAME")]
    queue: String,
    /// The item's config: a JSON object.
    #[arg(long, value_name = "JSON")]
    config: String,
    /// The item's run id; default: a generated one.
    #[arg(long, value_name = "ID")]
    id: Option<String>,
}

/// List where every item of a queue stands, in queue order.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Columns: id, state, attempts (times claimed), failures (non-zero exits, not
preempted), last exit, the agent running it (pid@host), config.

--json prints an array of objects with id, state, attempts, failures,
last_exit, claimant ({pid, host, since} or null), config, created_at and
updated_at. last_exit is null or {\"kind\": K, ...}: code {code}, preempted
{code}, signal {signal}, interrupted {signal, code (null: killed)}, lost.

Examples:
  runstore queue ls sweep-1
  runstore queue ls sweep-1 --json")]
pub struct LsArgs {
    /// The queue.
    #[arg(value_name = "NAME")]
    queue: String,
    /// A JSON array of item objects instead of a table.
    #[arg(long)]
    json: bool,
}

/// Remove an item from a queue (its run, if any, is kept).
#[derive(Debug, clap::Args)]
#[command(after_help = "\
An item that a live agent is running cannot be removed (exit 5).

Examples:
  runstore queue rm sweep-1 lr-0.01")]
pub struct RmArgs {
    /// The queue.
    #[arg(value_name = "NAME")]
    queue: String,
    /// The item's id.
    #[arg(value_name = "ITEM")]
    item: String,
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    match &args.command {
        QueueCommand::Push(args) => push(store, args),
        QueueCommand::Ls(args) => ls(store, args),
        QueueCommand::Rm(args) => rm(store, args),
    }
}

fn push(store: &Store, args: &PushArgs) -> Result<(), Failure> {
    let queue = store.queue(&args.queue)?;
    let config: serde_json::Value = serde_json::from_str(&args.config).map_err(|error| {
        Failure::input(format!("--config is not valid JSON ({error}): give an object, as '{{\"lr\": 0.1}}'"))
    })?;
    let item = queue.push(args.id.as_deref(), config)?;
    output::stdout_line(&format!("pushed {} to queue {}", item.id, queue.name()))
}

fn rm(store: &Store, args: &RmArgs) -> Result<(), Failure> {
    let queue = store.queue(&args.queue)?;
    let item = queue.remove(&args.item)?;
    output::stdout_line(&format!("removed {} ({}) from queue {}", item.id, item.state, queue.name()))
}

fn ls(store: &Store, args: &LsArgs) -> Result<(), Failure> {
    let queue = store.queue(&args.queue)?;
    let items = queue.items()?;
    let mut out = output::stdout();
    if args.json {
        let list: Vec<_> = items.iter().map(json).collect();
        serde_json::to_writer_pretty(&mut out, &list).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else if items.is_empty() {
        writeln!(out, "queue {} has no items", queue.name())?;
    } else {
        table(&mut out, &items)?;
        let count = |state| items.iter().filter(|item| item.state == state).count();
        writeln!(
            out,
            "{}: {} pending, {} running, {} done, {} failed",
            output::count(items.len() as u64, "item", "items"),
            count(ItemState::Pending),
            count(ItemState::Running),
            count(ItemState::Done),
            count(ItemState::Failed)
        )?;
    }
    out.flush()?;
    Ok(())
}

fn json(item: &QueueItem) -> serde_json::Value {
    serde_json::json!({
        "id": item.id,
        "state": item.state.as_str(),
        "attempts": item.attempts,
        "failures": item.failures,
        "last_exit": item.last_exit,
        "claimant": item.claimant.as_ref().map(|claimant| serde_json::json!({
            "pid": claimant.pid,
            "host": claimant.host,
            "since": output::time(claimant.since),
        })),
        "config": item.config,
        "created_at": output::time(item.created_at),
        "updated_at": output::time(item.updated_at),
    })
}

fn table(out: &mut impl Write, items: &[QueueItem]) -> std::io::Result<()> {
    // Too wide for the terminal: cut the config, then the agent, then the last exit; ids stay whole.
    let header = [
        Column::whole("ID"),
        Column::whole("STATE"),
        Column::number("ATT"),
        Column::number("FAIL"),
        Column::cut("LAST EXIT", 9),
        Column::cut("AGENT", 12),
        Column::cut("CONFIG", 10),
    ];
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            vec![
                item.id.clone(),
                item.state.as_str().to_string(),
                item.attempts.to_string(),
                item.failures.to_string(),
                item.last_exit.map_or_else(|| "-".into(), |exit| exit.to_string()),
                item.claimant.as_ref().map_or_else(|| "-".into(), |c| format!("{}@{}", c.pid, c.host)),
                item.config_json(),
            ]
        })
        .collect();
    table::write(out, &header, &rows, table::terminal_columns())
}
