//! The long crash soak: a child process runs the crash harness's seeded workload (buffered and
//! durable logging, flushes, rewinds, preemption marks, finishing and resuming) and is killed
//! with SIGKILL at a seeded moment, again and again; after each kill the store is reopened and
//! every invariant of `tests/it/crash_harness.rs` is checked.
//!
//! ```text
//! cargo run --release --example crash_soak -- --kills 1000 [--seed N] [--chain 25]
//! ```
//!
//! Prints the kills, the violations (each with the seed that reproduces it) and the rows
//! checked; exits 1 if any invariant broke.

#[path = "../tests/it/crash_harness.rs"]
mod crash_harness;

use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

fn flag(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|arg| arg == name)
        .and_then(|at| args.get(at + 1))
        .map_or(default, |value| value.parse().unwrap_or_else(|_| panic!("{name} takes a number, not {value:?}")))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        let store = args.get(2).expect("child STORE SEED");
        let seed = args.get(3).and_then(|seed| seed.parse().ok()).expect("child STORE SEED");
        crash_harness::child_main(std::path::Path::new(store), seed, 200);
        return ExitCode::SUCCESS;
    }
    let kills = flag(&args, "--kills", 1000);
    let seed = flag(&args, "--seed", 0x5EED_0001);
    let chain = flag(&args, "--chain", 25);
    let exe = std::env::current_exe().expect("this program");
    let spawn = |store: &std::path::Path, child_seed: u64| {
        let mut command = Command::new(&exe);
        command.arg("child").arg(store).arg(child_seed.to_string()).stderr(Stdio::inherit());
        for variable in ["RUNSTORE_DIR", "RUNSTORE_RUN_ID", "RUNSTORE_RESUME", "RUNSTORE_PROJECT"] {
            command.env_remove(variable);
        }
        command
    };
    let started = Instant::now();
    println!("crash soak: {kills} kills from seed {seed:#x}, a fresh store every {chain} kills");
    let tally = crash_harness::soak(kills, seed, chain, &spawn, &mut |tally| {
        let done = tally.kills + tally.unkilled;
        if done % 100 == 0 {
            println!(
                "  {done} rounds: {} kills, {} violations, {} rows checked",
                tally.kills,
                tally.violations.len(),
                tally.rows_checked
            );
        }
    });
    for violation in &tally.violations {
        println!("VIOLATION {violation}");
    }
    println!(
        "kills: {}, violations: {}, rows checked: {} ({} reported durable), snapshots read and forks made \
         beside the children: {} and {}, children that finished before their kill: {}, in {:.0} s",
        tally.kills,
        tally.violations.len(),
        tally.rows_checked,
        tally.durable_checked,
        tally.snapshots_read,
        tally.forks_made,
        tally.unkilled,
        started.elapsed().as_secs_f64()
    );
    if tally.violations.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
