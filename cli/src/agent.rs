//! `runstore agent`: claim queue items one at a time, run a command for each, and settle them
//! by how the command ended; SIGINT and SIGTERM are passed to the command and requeue its item.

use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use runstore::{ENV_CONFIG, ENV_DIR, ENV_RESUME, ENV_RESUME_FROM, ENV_RUN_ID, Error, ItemExit, ItemState, Store};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::exit::Failure;
use crate::output;

/// How often the agent looks at its command and at signals while the command runs.
const POLL: Duration = Duration::from_millis(20);

/// Run a queue's items with a command, requeue what did not finish.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
For each item, in queue order, the agent runs CMD with these variables set:
  RUNSTORE_RUN_ID=<item id>        RUNSTORE_RESUME=allow
  RUNSTORE_CONFIG=<config JSON>    RUNSTORE_DIR=<the store, absolute>
(and RUNSTORE_RESUME_FROM=checkpoint with --resume-from-checkpoint)
so that a command using runstore resumes the item's run where it stopped. Then:
  exit 0                          done
  exit N after mark_preempting    requeued (the run reads preempted)
  exit N otherwise                requeued; failed after --max-attempts failures
  killed by a signal              requeued (no exit status)
  the agent dies                  claimable again once its command has ended
                                  (on another host: once the command no longer
                                  writes its run)
The agent stops when no item is claimable or --count items ran.

SIGINT (Ctrl-C) or SIGTERM to the agent is passed to the command (which runs in
its own process group), the agent waits for it, requeues the item whatever it
exits with, and stops with exit code 130 or 143. A second signal is passed on
too. The command's stdin is /dev/null.

Output, one line per event:
  claimed ID attempt N | started ID pid P | signal ID SIGINT passed to pid P
  exited ID code C | exited ID signal SIGKILL | lost ID (why)
  done ID | requeued ID (why) | failed ID (why) | stopping: why

Examples:
  runstore agent sweep-1 -- ./train --epochs 10
  runstore agent sweep-1 --count 1 --max-attempts 5 -- python train.py")]
pub struct Args {
    /// The queue to run.
    #[arg(value_name = "NAME")]
    queue: String,
    /// Stop after K items [default: none left to claim]
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Failures before an item fails
    #[arg(long, value_name = "A", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    max_attempts: u32,
    /// Resume items from their latest checkpoint
    #[arg(long)]
    resume_from_checkpoint: bool,
    /// The command to run for each item, and its arguments (after `--`).
    #[arg(value_name = "CMD", last = true, required = true, num_args = 1.., value_parser = clap::value_parser!(OsString))]
    command: Vec<OsString>,
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    let queue = store.queue(&args.queue)?;
    if !queue.exists() {
        return Err(Error::QueueNotFound { name: args.queue.clone() }.into());
    }
    let dir = std::fs::canonicalize(store.path())
        .or_else(|_| std::path::absolute(store.path()))
        .map_err(|source| Failure::Store(Error::Io { path: store.path().to_path_buf(), source }))?;
    let mut signals = Signals::new([SIGINT, SIGTERM])
        .map_err(|source| Failure::Store(Error::Io { path: PathBuf::from("(signal handlers)"), source }))?;
    let Some((program, program_args)) = args.command.split_first() else {
        return Err(Failure::input("give the command to run after `--`, as in `runstore agent q -- ./train`"));
    };
    let mut ran: u64 = 0;
    let mut failed: u64 = 0;
    loop {
        if let Some(signal) = signals.pending().next() {
            say(&format!("stopping: interrupted by {}", name(signal)));
            return Err(Failure::Interrupted { signal, message: format!("interrupted by {}", name(signal)) });
        }
        if let Some(count) = args.count.filter(|&count| ran >= count) {
            let plural = if ran == 1 { "" } else { "s" };
            say(&format!("stopping: ran {ran} item{plural} (--count {count})"));
            return outcome(ran, failed);
        }
        let Some(claim) = queue.claim()? else {
            say(&format!("stopping: no claimable item in queue {}", queue.name()));
            return outcome(ran, failed);
        };
        ran += 1;
        let item = claim.item().clone();
        say(&format!("claimed {} attempt {}", item.id, item.attempts));
        let mut command = Command::new(program);
        command
            .args(program_args)
            .env(ENV_RUN_ID, &item.id)
            .env(ENV_RESUME, "allow")
            .env(ENV_DIR, &dir)
            .env(ENV_CONFIG, item.config_json())
            // A rewind asked of the agent's environment is not meant for every item.
            .env_remove(ENV_RESUME_FROM)
            .stdin(Stdio::null())
            // Its own process group: a Ctrl-C on the terminal reaches the agent only, which
            // passes it on once (a second copy would make runstore's helper exit at once).
            .process_group(0);
        if args.resume_from_checkpoint {
            command.env(ENV_RESUME_FROM, "checkpoint");
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                claim.release()?;
                return Err(Failure::input(format!(
                    "cannot start {}: {error}: check the command after `--`",
                    program.to_string_lossy()
                )));
            }
        };
        say(&format!("started {} pid {}", item.id, child.id()));
        // Should this agent die before the command takes its run's lock, no other agent on this
        // host starts the item again while the command runs.
        if let Err(error) = claim.command_started(child.id()) {
            eprintln!("runstore agent: {error}: another agent could start {} again if this one dies", item.id);
        }
        let (status, interrupted) = wait(&mut child, &mut signals, &item.id);
        let exit = match (&status, interrupted) {
            (Ok(status), None) => match status.code() {
                Some(code) => ItemExit::Code { code },
                None => ItemExit::Signal { signal: status.signal().unwrap_or(0) },
            },
            (Ok(status), Some(signal)) => ItemExit::Interrupted { signal, code: status.code() },
            (Err(_), Some(signal)) => ItemExit::Interrupted { signal, code: None },
            (Err(_), None) => ItemExit::Lost,
        };
        match &status {
            Ok(status) => say(&format!("exited {} {}", item.id, describe(*status))),
            Err(error) => say(&format!("lost {} (cannot wait for it: {error})", item.id)),
        }
        let settled = claim.settle(exit, args.max_attempts)?;
        let why = settled.last_exit.map_or_else(String::new, |exit| exit.to_string());
        match settled.state {
            ItemState::Done => say(&format!("done {}", settled.id)),
            ItemState::Failed => {
                failed += 1;
                say(&format!("failed {} ({why}, failure {} of {})", settled.id, settled.failures, args.max_attempts));
            }
            _ if matches!(settled.last_exit, Some(ItemExit::Code { .. })) => {
                failed += 1;
                say(&format!("requeued {} ({why}, failure {} of {})", settled.id, settled.failures, args.max_attempts));
            }
            _ => say(&format!("requeued {} ({why})", settled.id)),
        }
        if let Some(signal) = interrupted {
            say(&format!("stopping: interrupted by {}", name(signal)));
            return Err(Failure::Interrupted {
                signal,
                message: format!("interrupted by {}: item {} was requeued", name(signal), settled.id),
            });
        }
    }
}

/// How an agent that stopped by itself exits: 1 when the command failed (exited non-zero,
/// not preempted) for every item it ran, so that a job script notices a command that cannot
/// succeed; else 0. A command killed by a signal, or preempted, did not fail.
fn outcome(ran: u64, failed: u64) -> Result<(), Failure> {
    if ran > 0 && failed == ran {
        return Err(Failure::Explained {
            code: crate::exit::OTHER,
            message: format!(
                "the command failed for all {} this agent ran: see its output above and `runstore queue ls`",
                output::count(ran, "item", "items")
            ),
        });
    }
    Ok(())
}

/// Waits for the command, passing SIGINT and SIGTERM on as they arrive. Returns its status
/// and the first signal the agent received, if any.
fn wait(child: &mut Child, signals: &mut Signals, id: &str) -> (std::io::Result<ExitStatus>, Option<i32>) {
    let mut interrupted = None;
    loop {
        // Forwarded before the status is collected: the pid cannot have been reused yet.
        for signal in signals.pending() {
            interrupted.get_or_insert(signal);
            forward(signal, child.id());
            say(&format!("signal {id} {} passed to pid {}", name(signal), child.id()));
        }
        match child.try_wait() {
            Ok(Some(status)) => return (Ok(status), interrupted),
            Ok(None) => std::thread::sleep(POLL),
            Err(error) => return (Err(error), interrupted),
        }
    }
}

/// Sends `signal` to the command's process group (as a terminal's Ctrl-C would), or to the
/// command alone if it left its group. std has no `kill`, and this crate no `unsafe`: the
/// `kill` utility does it.
fn forward(signal: i32, pid: u32) {
    let short = name(signal).trim_start_matches("SIG").to_string();
    let send = |target: String| {
        Command::new("kill")
            .args(["-s", &short, "--", &target])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if !send(format!("-{pid}")) && !send(pid.to_string()) {
        output::warn(&format!("could not pass {} to pid {pid}", name(signal)));
    }
}

fn name(signal: i32) -> String {
    signal_hook::low_level::signal_name(signal).map_or_else(|| format!("signal {signal}"), str::to_string)
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("code {code}"),
        (None, Some(signal)) => format!("signal {}", name(signal)),
        (None, None) => "without a status".to_string(),
    }
}

/// One event line on stdout. The agent's work matters more than its report: a closed stdout
/// does not stop it.
fn say(line: &str) {
    let _ = output::stdout_line(line);
}
