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
    format!("{error:?}").split([' ', '{', '(']).next().unwrap_or_default().to_string()
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
