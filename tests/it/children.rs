//! The roles a child process plays, chosen by the parent test through [`support::child`].
//!
//! These are `#[ignore]`d so that a plain `cargo test` does not run them on their own; run
//! directly, without the environment a parent sets, each returns at once.

use std::io::Read;
use std::time::Duration;

use runstore::{Durability, RunOptions, Store};

use crate::support::{CHILD, SAY, row};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

fn number(name: &str) -> Option<u64> {
    var(name).map(|value| value.parse().unwrap_or_else(|_| panic!("{name}={value} is not a number")))
}

fn say(report: impl std::fmt::Display) {
    println!("{SAY}{report}");
}

/// The name of an error variant, as `RunLocked` for `RunLocked { .. }`.
pub fn variant(error: &runstore::Error) -> String {
    format!("{error:?}").split([' ', '{', '(', ':']).next().unwrap_or_default().to_string()
}

/// A writer driven by `TEST_*` variables: waits for `TEST_GO`, inits from the environment,
/// logs `TEST_ROWS` standard rows (forever with `TEST_END=forever`), flushing and reporting
/// every `TEST_FLUSH_EVERY` rows, then ends as `TEST_END` says: `finish:<code>`, `exit:<code>`
/// (the process exits without finishing), or `hold` (finish(0) once stdin closes).
/// `TEST_SIGNALS=obey` opts in to signal handling and finishes with 143 once told to stop;
/// `TEST_SIGNALS=ignore` opts in but keeps logging.
#[test]
#[ignore = "a child process of other tests"]
fn writer() {
    if std::env::var(CHILD).as_deref() != Ok("writer") {
        return;
    }
    if let Some(go) = var("TEST_GO") {
        while !std::path::Path::new(&go).exists() {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let store = Store::from_env().expect("store");
    let mut options = RunOptions::new();
    if var("TEST_DURABLE").is_some() {
        options = options.durability(Durability::EveryLog);
    }
    if let Some(rows) = number("TEST_FLUSH_ROWS") {
        options = options.flush_every(usize::try_from(rows).unwrap_or(usize::MAX), Duration::from_secs(3600));
    }
    if let Some(config) = var("TEST_CONFIG") {
        options = options.config(serde_json::from_str::<serde_json::Value>(&config).expect("config JSON"));
    }
    let mut run = match store.init(options) {
        Ok(run) => run,
        Err(error) => {
            say(format!("init err {} {error}", variant(&error)));
            return;
        }
    };
    say(format!("init ok {} {} {} {}", run.id(), run.step(), run.attempt(), run.resumed()));
    let signals = var("TEST_SIGNALS");
    if signals.is_some() {
        run.stop_on_signals().expect("signal handlers");
        say("listening");
    }
    let end = var("TEST_END").unwrap_or_else(|| "finish:0".into());
    let rows = if end == "forever" { u64::MAX } else { number("TEST_ROWS").unwrap_or(0) };
    let flush_every = number("TEST_FLUSH_EVERY").unwrap_or(0);
    let durable = var("TEST_DURABLE").is_some();
    let pause = number("TEST_PAUSE_US").map(Duration::from_micros);
    for _ in 0..rows {
        if signals.as_deref() == Some("obey") && run.should_stop() {
            say(format!("stopping at {}", run.step()));
            run.finish(143).expect("finish");
            say("finished");
            return;
        }
        let step = run.step();
        run.log(row(step)).expect("log");
        if durable {
            say(format!("logged {step}"));
        }
        if flush_every > 0 && (step + 1) % flush_every == 0 {
            run.flush().expect("flush");
            say(format!("flushed {step}"));
        }
        if let Some(pause) = pause {
            std::thread::sleep(pause);
        }
    }
    if var("TEST_PREEMPT").is_some() {
        run.mark_preempting().expect("mark_preempting");
        say("preempting");
    }
    if let Some(code) = end.strip_prefix("exit:") {
        say("exiting");
        std::process::exit(code.parse().expect("exit code"));
    }
    if end == "hold" {
        say("holding");
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        run.finish(0).expect("finish");
        say("finished");
        return;
    }
    let code = end.strip_prefix("finish:").expect("TEST_END").parse().expect("exit code");
    run.finish(code).expect("finish");
    say("finished");
}

/// A training command for `runstore agent`, driven by its item's config (`RUNSTORE_CONFIG`);
/// the run id and policy come from the agent's `RUNSTORE_RUN_ID` and `RUNSTORE_RESUME`.
/// It logs standard rows, flushing and reporting each, from the run's next step up to `steps`,
/// sleeping `pause_ms` after each, then finishes 0. On an attempt named in `plan` it stops at
/// step `at` instead and ends as the plan says: `fail` (finish 1, exit 1), `preempt:<code>`
/// (`mark_preempting`, finish and exit with code), `hang` (sleep until killed), or `obey`
/// (listen to signals, log until told to stop, finish 143 and exit 0: W&B #9568's case).
/// With `TEST_RECORD`, it appends `<id> start <ns>` as it starts and `<id> end <ns>` before
/// it ends.
#[test]
#[ignore = "a child process of other tests"]
fn trainer() {
    if std::env::var(CHILD).as_deref() != Ok("trainer") {
        return;
    }
    let config: serde_json::Value = serde_json::from_str(&var("RUNSTORE_CONFIG").expect("config")).expect("JSON");
    let id = var("RUNSTORE_RUN_ID").expect("RUNSTORE_RUN_ID");
    let record = |event: &str| {
        if let Some(path) = var("TEST_RECORD") {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            let mut file = std::fs::OpenOptions::new().append(true).create(true).open(path).expect("record");
            std::io::Write::write_all(&mut file, format!("{id} {event} {nanos}\n").as_bytes()).expect("record");
        }
    };
    record("start");
    // A program that takes a while before `init` (a Python import of a framework, say).
    if let Some(ms) = config["slow_start_ms"].as_u64() {
        say("starting");
        std::thread::sleep(Duration::from_millis(ms));
    }
    let store = Store::from_env().expect("store");
    let mut run = store.init(RunOptions::new().config(config.clone())).expect("init");
    say(format!("init ok {} {} {}", run.id(), run.step(), run.attempt()));
    let steps = config["steps"].as_u64().unwrap_or(10);
    let pause = Duration::from_millis(config["pause_ms"].as_u64().unwrap_or(0));
    let plan = config["plan"][run.attempt().to_string()].as_str().unwrap_or("").to_string();
    let last = if plan.is_empty() { steps } else { config["at"].as_u64().unwrap_or(steps) };
    if plan == "obey" {
        run.stop_on_signals().expect("signal handlers");
        say("listening");
    }
    while if plan == "obey" { !run.should_stop() } else { run.step() < last } {
        let step = run.step();
        run.log(row(step)).expect("log");
        run.flush().expect("flush");
        say(format!("flushed {step}"));
        std::thread::sleep(pause);
    }
    let code = match plan.as_str() {
        "" => 0,
        "fail" => 1,
        "obey" => 143,
        "hang" => {
            say("hanging");
            // Until killed; a minute at most, should the test that kills it fail first.
            std::thread::sleep(Duration::from_secs(60));
            std::process::exit(9);
        }
        other => other.strip_prefix("preempt:").expect("plan").parse().expect("exit code"),
    };
    if plan.starts_with("preempt:") {
        run.mark_preempting().expect("mark_preempting");
    }
    record("end");
    run.finish(code).expect("finish");
    say(format!("finished {code}"));
    if plan != "obey" {
        std::process::exit(code);
    }
}

/// A reader following the live run `TEST_FOLLOW` until it is no longer live: each pass reads
/// the whole history, which must be a prefix of the standard rows, bit-exact, at least as long
/// as the last pass. Reports `saw N` when the prefix grows, `bad WHAT` on a violation, and
/// `done N` at the end.
#[test]
#[ignore = "a child process of other tests"]
fn follower() {
    if std::env::var(CHILD).as_deref() != Ok("follower") {
        return;
    }
    let id = var("TEST_FOLLOW").expect("TEST_FOLLOW");
    let store = Store::from_env().expect("store");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut seen = 0u64;
    loop {
        let reader = match store.open_run(&id) {
            Ok(reader) => reader,
            Err(runstore::Error::RunNotFound { .. }) => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            Err(error) => return say(format!("bad open: {error}")),
        };
        let live = reader.state().map(runstore::RunState::is_live);
        let mut history = match reader.history(..) {
            Ok(history) => history,
            Err(error) => return say(format!("bad history: {error}")),
        };
        let mut rows = 0u64;
        loop {
            match history.next_row() {
                Ok(Some(row)) => {
                    if row.step() != rows {
                        return say(format!("bad step {} where {rows} was expected", row.step()));
                    }
                    let expected = crate::support::row(rows);
                    if row.points().len() != expected.len() {
                        return say(format!("bad row {rows}: {} points", row.points().len()));
                    }
                    for (name, value) in expected {
                        if row.get(name).map(f64::to_bits) != Some(value.to_bits()) {
                            return say(format!("bad row {rows}: {name}"));
                        }
                    }
                    rows += 1;
                }
                Ok(None) => break,
                Err(error) => return say(format!("bad row: {error}")),
            }
        }
        if rows < seen {
            return say(format!("bad: the history shrank from {seen} to {rows} rows"));
        }
        if rows > seen {
            seen = rows;
            say(format!("saw {rows}"));
        }
        match live {
            Ok(false) => break,
            Ok(true) => {}
            Err(error) => return say(format!("bad state: {error}")),
        }
        if std::time::Instant::now() > deadline {
            return say("bad: the writer never ended");
        }
    }
    say(format!("done {seen}"));
}

/// Creates runs `c0`, `c1`, … (`TEST_COUNT` of them), each with a few rows, finished; with
/// `TEST_DELETE`, removes the directory of run `c{i-2}` after creating `c{i}`, as a user
/// cleaning up would. Reports `done` at the end.
#[test]
#[ignore = "a child process of other tests"]
fn creator() {
    if std::env::var(CHILD).as_deref() != Ok("creator") {
        return;
    }
    let store = Store::from_env().expect("store");
    let count = number("TEST_COUNT").unwrap_or(10);
    for i in 0..count {
        let mut run = store.init(RunOptions::new().ignore_environment().id(format!("c{i}"))).expect("init");
        for _ in 0..5 {
            run.log(row(run.step())).expect("log");
        }
        run.finish(0).expect("finish");
        if var("TEST_DELETE").is_some() && i >= 2 {
            std::fs::remove_dir_all(store.path().join("runs").join(format!("c{}", i - 2))).expect("delete a run");
        }
    }
    say("done");
}

/// A writer that churns one run (`RUNSTORE_RUN_ID`): `TEST_ATTEMPTS` attempts, each resuming
/// it, logging 60 rows of `loss` and a metric new to the attempt (`m<attempt>`) with a flush
/// every 20, rewinding 25 steps, logging 10 more, and finishing (which compacts). It says
/// `attempt N` as each begins and `done` at the end.
#[test]
#[ignore = "a child process of other tests"]
fn churner() {
    if std::env::var(CHILD).as_deref() != Ok("churner") {
        return;
    }
    let store = Store::from_env().expect("store");
    let attempts = u32::try_from(number("TEST_ATTEMPTS").unwrap_or(10)).expect("TEST_ATTEMPTS");
    for attempt in 0..attempts {
        let mut run = store.init(RunOptions::new().resume(runstore::Resume::Allow)).expect("init");
        say(format!("attempt {attempt}"));
        let metric = format!("m{attempt}");
        for row in 0..70u32 {
            if row == 60 {
                let back = run.step() - 25;
                run.rewind(back).expect("rewind");
            }
            run.log([("loss", f64::from(row)), (metric.as_str(), f64::from(attempt))]).expect("log");
            if row % 20 == 19 {
                run.flush().expect("flush");
            }
        }
        run.finish(0).expect("finish");
    }
    say("done");
}
