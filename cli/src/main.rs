//! The `runstore` command line: inspect, append to, follow, plot and export the runs of a store.
//!
//! One module per command; `exit` maps failures to exit codes, `output` formats times and
//! numbers, `rows` writes history rows as csv, jsonl or a table.

mod agent;
mod check;
mod checkpoint;
mod compare;
mod doctor;
mod downsample;
mod exit;
mod export;
mod fork;
mod history;
mod lock_probe;
mod log;
mod ls;
mod mlflow;
mod note;
mod output;
mod plot;
mod queue;
mod rewind;
mod rm;
mod rows;
mod serve;
mod show;
mod spark;
mod stats;
mod svg;
mod sweep;
mod sync;
mod system;
mod system_plot;
mod table;
mod tag;
mod tail;
mod tensorboard;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::TypedValueParser as _;
use clap::{Parser, Subcommand};
use runstore::{RunState, Store};

use crate::exit::Failure;

/// Inspect, append to, follow, plot and export the runs of a runstore store.
#[derive(Debug, Parser)]
#[command(name = "runstore", version, propagate_version = true, max_term_width = 100)]
#[command(after_help = "\
Environment:
  RUNSTORE_DIR      the store when --dir is not given (default ./.runstore)
  RUNSTORE_RUN_ID   the run of `log` when no id is given
  RUNSTORE_RESUME   the policy of `log` without --resume (default must)
  RUNSTORE_UNSAFE_LOCKS=1  write where locks cannot keep one writer per run

Exit codes:
  0  success (also when stdout is closed early, as by `| head`)
  1  any other error: I/O, a damaged or newer store, a store path that is a file
  2  bad input: usage, invalid run id or metric name, bad KEY=VALUE, a bad
     RUNSTORE_RESUME, a step behind the run's last step, a rewind or fork
     after the last step, an invalid tag, rm of a run with forks
  3  the run (or archived branch, queue, queue item) does not exist
  4  the run already exists (log --resume never), or the queue item does
  5  the run is being written by another process, or the queue item is
     claimed by a live agent
  6  locks on the store's filesystem cannot keep one writer per run (NFS
     local_lock, Lustre localflock/noflock, a failing flock): see
     `runstore doctor`
  130, 143  agent: stopped by SIGINT, SIGTERM after requeueing its item

Examples:
  runstore ls
  runstore ls --columns config.lr,summary.loss --sort summary.loss
  runstore show resnet-7
  runstore compare lr-0.1 lr-0.01
  runstore log \"$RUN_ID\" eval/acc=0.93
  runstore tail -f resnet-7
  runstore rewind resnet-7 --to 1000
  runstore fork resnet-7 --at 5000 --id resnet-7-lowlr
  runstore tag resnet-7 +keep -debug
  runstore rm scratch-1
  runstore sweep sweep-1 --grid space.json
  runstore agent sweep-1 -- ./train
  runstore --dir /scratch/runs plot resnet-7 -o curves.svg
  runstore --dir /scratch/runs doctor
  runstore serve                    # a web viewer on http://127.0.0.1:6006/")]
struct Cli {
    #[arg(long, global = true, value_name = "DIR", help = "The store [default: $RUNSTORE_DIR, ./.runstore]", value_parser = clap::builder::NonEmptyStringValueParser::new().map(PathBuf::from))]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Ls(ls::Args),
    Show(show::Args),
    History(history::Args),
    Log(log::Args),
    Tail(tail::Args),
    Plot(plot::Args),
    Export(export::Args),
    Rewind(rewind::Args),
    Checkpoint(checkpoint::Args),
    Checkpoints(checkpoint::ListArgs),
    Fork(fork::Args),
    Sync(sync::Args),
    Queue(queue::Args),
    Sweep(sweep::Args),
    Agent(agent::Args),
    Check(check::Args),
    Compare(compare::Args),
    Doctor(doctor::Args),
    Rm(rm::Args),
    Serve(serve::Args),
    Tag(tag::Args),
    Note(note::Args),
}

/// Parses a run state, listing the states in `--help` and in the error.
fn state_parser() -> impl clap::builder::TypedValueParser<Value = RunState> {
    clap::builder::PossibleValuesParser::new(RunState::ALL.map(RunState::as_str))
        .try_map(|text| text.parse::<RunState>())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    quiet_panics_on_main_thread();
    let outcome = std::panic::catch_unwind(|| run(&cli)).unwrap_or_else(|_| {
        let panic = LAST_PANIC.lock().ok().and_then(|mut last| last.take()).unwrap_or_default();
        output::warn(&format!("internal error, please report it: {panic}"));
        std::process::exit(101);
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) if failure.is_closed_stdout() => ExitCode::SUCCESS,
        Err(failure) => {
            output::warn(&failure.to_string());
            ExitCode::from(failure.code())
        }
    }
}

/// The last panic of the main thread, reported by `main` if it was not caught.
static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// The library turns a panic of its storage engine on a damaged file into an error naming the
/// file (`Error::Corrupt`), which `main` prints as one line; the default hook would print the
/// panic first. On the main thread the hook only records the panic, and `main` prints it if
/// nothing caught it; other threads keep the default hook.
fn quiet_panics_on_main_thread() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some("main") {
            if let Ok(mut last) = LAST_PANIC.lock() {
                *last = Some(info.to_string().replace('\n', " "));
            }
        } else {
            default(info);
        }
    }));
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let store = match &cli.dir {
        Some(dir) => Store::open(dir)?,
        None => Store::from_env()?,
    };
    let result = match &cli.command {
        Command::Ls(args) => ls::run(&store, args),
        Command::Show(args) => show::run(&store, args),
        Command::History(args) => history::run(&store, args),
        Command::Log(args) => log::run(&store, args),
        Command::Tail(args) => tail::run(&store, args),
        Command::Plot(args) => plot::run(&store, args),
        Command::Export(args) => export::run(&store, args),
        Command::Rewind(args) => rewind::run(&store, args),
        Command::Checkpoint(args) => checkpoint::run(&store, args),
        Command::Checkpoints(args) => checkpoint::list(&store, args),
        Command::Fork(args) => fork::run(&store, args),
        Command::Sync(args) => sync::run(&store, args),
        Command::Queue(args) => queue::run(&store, args),
        Command::Sweep(args) => sweep::run(&store, args),
        Command::Agent(args) => agent::run(&store, args),
        Command::Check(args) => check::run(&store, args),
        Command::Compare(args) => compare::run(&store, args),
        Command::Doctor(args) => doctor::run(&store, args),
        Command::Rm(args) => rm::run(&store, args),
        Command::Serve(args) => serve::run(&store, args),
        Command::Tag(args) => tag::run(&store, args),
        Command::Note(args) => note::run(&store, args),
    };
    // The library's advice for a missing run is about resuming it; `log` words its own.
    if matches!(cli.command, Command::Log(_)) {
        return result;
    }
    result.map_err(|failure| {
        failure.explain(|error| match error {
            runstore::Error::RunNotFound { id } => {
                Some(format!("run {id:?} does not exist: check the id; `runstore ls` lists the runs of this store"))
            }
            _ => None,
        })
    })
}
