//! A writer killed with SIGKILL: every flushed row survives, the run reads as crashed with its
//! lock free, and the next `init(allow)` resumes after the last stored row.

use std::fs::File;
use std::time::{Duration, Instant};

use runstore::{Resume, RunState};

use crate::support::{Reports, TempStore, bits, child, options, temp_store, value};

/// Checks that the history of `id` is exactly steps `0..=last`, each with the standard values.
pub(crate) fn assert_standard_prefix(t: &TempStore, id: &str) -> u64 {
    let reader = t.store.open_run(id).expect("the store opens after the crash");
    let info = reader.info().unwrap();
    let mut history = reader.history(..).unwrap();
    let mut expected_step = 0;
    while let Some(row) = history.next_row().unwrap() {
        assert_eq!(row.step(), expected_step, "steps are contiguous and increasing");
        for (m, name) in crate::support::METRICS.iter().enumerate() {
            let got = row.get(name).unwrap_or_else(|| panic!("step {expected_step} lacks {name}"));
            assert_eq!(bits(got), bits(value(expected_step, m)), "step {expected_step} {name} bit-exact");
        }
        expected_step += 1;
    }
    assert_eq!(info.rows, expected_step);
    assert_eq!(info.next_step, expected_step);
    expected_step.saturating_sub(1)
}

fn assert_lock_free(t: &TempStore, id: &str) {
    let lock = File::open(t.path.join("runs").join(id).join("lock")).unwrap();
    assert!(lock.try_lock().is_ok(), "the OS released the dead writer's lock");
}

fn resume_after_crash(t: &TempStore, id: &str, last: u64) {
    let run = t.store.init(options().id(id).resume(Resume::Allow)).expect("resume");
    assert!(run.resumed());
    assert_eq!(run.step(), last + 1, "resumes at the step after the last stored row");
    assert_eq!(run.attempt(), 2);
    run.finish(0).unwrap();
    let attempts = t.store.open_run(id).unwrap().attempts().unwrap();
    assert_eq!(attempts[0].outcome, Some(RunState::Crashed), "the killed attempt is closed as crashed");
    assert_eq!(attempts[0].last_step, Some(last));
}

#[test]
fn a_killed_writer_keeps_every_flushed_row_and_resumes_after_the_last() {
    let t = temp_store();
    let mut command = child("writer", &t.path);
    command
        .env("RUNSTORE_RUN_ID", "k")
        .env("RUNSTORE_RESUME", "allow")
        .env("TEST_END", "forever")
        .env("TEST_FLUSH_EVERY", "37")
        .env("TEST_FLUSH_ROWS", "1000000");
    let mut process = command.spawn().expect("spawn");
    let mut reports = Reports::of(&mut process);
    let mut flushed = 0;
    for _ in 0..25 {
        flushed = reports.expect("flushed").parse::<u64>().unwrap();
    }
    process.kill().expect("SIGKILL");
    process.wait().unwrap();

    assert_eq!(t.store.open_run("k").unwrap().state().unwrap(), RunState::Crashed);
    assert_lock_free(&t, "k");
    let last = assert_standard_prefix(&t, "k");
    assert!(last >= flushed, "every reported flush survived: stored up to {last}, reported {flushed}");
    resume_after_crash(&t, "k", last);
}

#[test]
fn a_killed_writer_in_durable_mode_keeps_every_logged_row() {
    let t = temp_store();
    let mut command = child("writer", &t.path);
    command
        .env("RUNSTORE_RUN_ID", "d")
        .env("RUNSTORE_RESUME", "allow")
        .env("TEST_END", "forever")
        .env("TEST_DURABLE", "1");
    let mut process = command.spawn().expect("spawn");
    let mut reports = Reports::of(&mut process);
    let mut logged = 0;
    for _ in 0..150 {
        logged = reports.expect("logged").parse::<u64>().unwrap();
    }
    process.kill().expect("SIGKILL");
    process.wait().unwrap();

    assert_eq!(t.store.open_run("d").unwrap().state().unwrap(), RunState::Crashed);
    assert_lock_free(&t, "d");
    let last = assert_standard_prefix(&t, "d");
    assert!(last >= logged, "every acknowledged durable log survived: stored {last}, acknowledged {logged}");
    resume_after_crash(&t, "d", last);
}

#[test]
fn with_the_default_policy_the_background_flush_stores_rows_and_a_kill_keeps_them() {
    let t = temp_store();
    let mut command = child("writer", &t.path);
    command
        .env("RUNSTORE_RUN_ID", "b")
        .env("RUNSTORE_RESUME", "allow")
        .env("TEST_END", "forever")
        .env("TEST_PAUSE_US", "100");
    let mut process = command.spawn().expect("spawn");
    let mut reports = Reports::of(&mut process);
    reports.expect("init ok");
    // No explicit flush: rows appear through the flusher's one-second timer alone.
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let rows = t.store.open_run("b").unwrap().info().unwrap().rows;
        if rows > 0 {
            break rows;
        }
        assert!(Instant::now() < deadline, "no background flush within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    process.kill().expect("SIGKILL");
    process.wait().unwrap();

    assert_eq!(t.store.open_run("b").unwrap().state().unwrap(), RunState::Crashed);
    let last = assert_standard_prefix(&t, "b");
    assert!(last + 1 >= seen);
    resume_after_crash(&t, "b", last);
}
