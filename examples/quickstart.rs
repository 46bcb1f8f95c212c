//! The README's main job: a training loop that logs, is killed mid-run (SIGKILL, as a
//! preempted job would be), restarts, resumes at the right step, and prints the replayed history.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! The store is `RUNSTORE_DIR`, else `target/quickstart-store`; each invocation makes a new run.
//! `quickstart train` is the training program alone (on `RUNSTORE_RUN_ID`); `QUICKSTART_STEP_MS`
//! sets the time one step takes (default 2 ms).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use runstore::{Resume, RunOptions, Store};

const STEPS: u64 = 500;
const KILL_AFTER: u64 = 230;
const CHECKPOINT_EVERY: u64 = 50;

/// The training program: resumes the run named by `RUNSTORE_RUN_ID` (or creates it), logs a
/// loss curve, and flushes at every checkpoint.
fn train() -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::from_env()?;
    let mut run = store.init(
        RunOptions::new()
            .resume(Resume::Allow)
            .project("quickstart")
            .config(serde_json::json!({"lr": 3e-4, "batch_size": 64, "steps": STEPS})),
    )?;
    println!(
        "  [pid {}] attempt {} of run {}: starting at step {}",
        std::process::id(),
        run.attempt(),
        run.id(),
        run.step()
    );
    let step_ms = std::env::var("QUICKSTART_STEP_MS").ok().and_then(|ms| ms.parse().ok()).unwrap_or(2);
    let step_time = Duration::from_millis(step_ms);
    while run.step() < STEPS {
        let step = run.step();
        #[allow(clippy::cast_precision_loss)]
        let x = step as f64;
        let loss = 2.0 / (1.0 + 0.01 * x) + 0.02 * x.sin();
        run.log([("loss", loss), ("acc", 1.0 - loss / 3.0), ("lr", 3e-4 * (0.5 + 0.5 * (x / 97.0).cos()))])?;
        if (step + 1) % CHECKPOINT_EVERY == 0 {
            run.flush()?; // a checkpoint: model saved, rows on disk
            println!("  [pid {}] checkpoint at step {step}", std::process::id());
        }
        std::thread::sleep(step_time); // the "work"
    }
    run.finish(0)?;
    println!("  [pid {}] finished", std::process::id());
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("train") {
        return train();
    }
    let dir =
        std::env::var_os("RUNSTORE_DIR").map_or_else(|| "target/quickstart-store".into(), std::path::PathBuf::from);
    let id = format!("quickstart-{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs());
    let trainer = || {
        let mut command = Command::new(std::env::current_exe().expect("this program"));
        command.arg("train").env("RUNSTORE_DIR", &dir).env("RUNSTORE_RUN_ID", &id).stdout(Stdio::piped());
        command
    };

    println!("1. training run {id} in {}; it is killed with SIGKILL shortly after step {KILL_AFTER}", dir.display());
    let mut first = trainer().spawn()?;
    let output = BufReader::new(first.stdout.take().ok_or("no stdout")?);
    for line in output.lines() {
        let line = line?;
        println!("{line}");
        if line.ends_with(&format!("checkpoint at step {}", KILL_AFTER / CHECKPOINT_EVERY * CHECKPOINT_EVERY - 1)) {
            // Let it log a few more rows past the checkpoint, then pull the plug.
            std::thread::sleep(Duration::from_millis(2 * (KILL_AFTER % CHECKPOINT_EVERY)));
            first.kill()?; // SIGKILL: no chance to flush or finish
            break;
        }
    }
    first.wait()?;

    let store = Store::open(&dir)?;
    let info = store.open_run(&id)?.info()?;
    println!("2. killed: the run is {} with {} rows stored; next step {}", info.state, info.rows, info.next_step);

    println!("3. the job is requeued and starts again with the same id");
    let status = trainer().stdout(Stdio::inherit()).status()?;
    if !status.success() {
        return Err(format!("the second attempt failed: {status}").into());
    }

    let reader = store.open_run(&id)?;
    let info = reader.info()?;
    println!("4. replayed history of {id}: {} ({} rows, next step {})", info.state, info.rows, info.next_step);
    println!("   {:>5}  {:>8}  {:>8}  {:>10}", "step", "loss", "acc", "lr");
    let mut previous = None;
    let mut count = 0u64;
    for row in reader.history(..)? {
        let row = row?;
        assert!(previous.is_none_or(|p| row.step() == p + 1), "every step once, in order");
        previous = Some(row.step());
        count += 1;
        if row.step() % 50 == 0 || row.step() == STEPS - 1 {
            let get = |name| row.get(name).unwrap_or(f64::NAN);
            println!("   {:>5}  {:>8.4}  {:>8.4}  {:>10.3e}", row.step(), get("loss"), get("acc"), get("lr"));
        }
    }
    println!("   {count} rows, steps 0..={} each exactly once", previous.unwrap_or_default());
    for attempt in reader.attempts()? {
        let outcome = attempt.outcome.map_or("running".to_string(), |state| state.to_string());
        let last = attempt.last_step.map_or("-".to_string(), |step| step.to_string());
        println!(
            "   attempt {}: pid {}, steps {}..={}, {}",
            attempt.number, attempt.pid, attempt.first_step, last, outcome
        );
    }
    Ok(())
}
