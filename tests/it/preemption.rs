//! Preemption: `mark_preempting`, outcomes by how an attempt ends, and the opt-in signal helper.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

use runstore::{Resume, RunState};

use crate::support::{Reports, child, options, row, temp_store};

fn send(signal: &str, pid: u32) {
    let status = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().expect("kill");
    assert!(status.success());
}

#[test]
fn the_outcome_follows_how_the_attempt_ends() {
    let t = temp_store();
    // (id, marked preempting, how it ends, expected state)
    let cases = [
        ("clean", false, "finish:0", RunState::Finished),
        ("marked-clean", true, "finish:0", RunState::Finished),
        ("failed", false, "finish:1", RunState::Failed),
        ("marked-failed", true, "finish:1", RunState::Preempted),
        ("died", false, "exit:0", RunState::Crashed),
        ("marked-died", true, "exit:0", RunState::Preempted),
    ];
    for (id, preempt, end, expected) in cases {
        let mut command = child("writer", &t.path);
        command.env("RUNSTORE_RUN_ID", id).env("RUNSTORE_RESUME", "allow").env("TEST_ROWS", "20").env("TEST_END", end);
        if preempt {
            command.env("TEST_PREEMPT", "1");
        }
        let mut process = command.spawn().unwrap();
        let mut reports = Reports::of(&mut process);
        while reports.next().is_some() {}
        process.wait().unwrap();
        let reader = t.store.open_run(id).unwrap();
        assert_eq!(reader.state().unwrap(), expected, "{id}");
        assert_eq!(reader.attempts().unwrap()[0].outcome, Some(expected), "{id}: the attempt log records it");
        if preempt {
            assert_eq!(reader.info().unwrap().rows, 20, "{id}: mark_preempting flushed");
        }
    }
    // The next attempt closes a dead one with the same outcome.
    t.store.init(options().id("marked-died").resume(Resume::Must)).unwrap().finish(0).unwrap();
    let attempts = t.store.open_run("marked-died").unwrap().attempts().unwrap();
    assert_eq!(attempts[0].outcome, Some(RunState::Preempted));
    assert_eq!(attempts[1].outcome, Some(RunState::Finished));
}

#[test]
fn mark_preempting_shows_while_the_process_runs() {
    let t = temp_store();
    let mut run = t.store.init(options().id("p")).unwrap();
    run.log(row(0)).unwrap();
    run.mark_preempting().unwrap();
    assert_eq!(t.store.open_run("p").unwrap().state().unwrap(), RunState::Preempting);
    drop(run);
    assert_eq!(t.store.open_run("p").unwrap().state().unwrap(), RunState::Preempted);
}

#[test]
fn sigterm_flushes_marks_preempting_and_lets_the_loop_stop() {
    let t = temp_store();
    let mut command = child("writer", &t.path);
    command
        .env("RUNSTORE_RUN_ID", "sig")
        .env("RUNSTORE_RESUME", "allow")
        .env("TEST_SIGNALS", "obey")
        .env("TEST_END", "forever")
        .env("TEST_PAUSE_US", "200")
        // Nothing is flushed but by the signal: no timer, no row threshold.
        .env("TEST_FLUSH_ROWS", "100000000");
    let mut process = command.spawn().unwrap();
    let mut reports = Reports::of(&mut process);
    reports.expect("listening");
    std::thread::sleep(Duration::from_millis(300));
    send("TERM", process.id());
    let stopped_at: u64 = reports.expect("stopping at").parse().unwrap();
    reports.expect("finished");
    let status = process.wait().unwrap();
    assert!(status.success(), "the loop saw the flag and finished on its own: {status}");

    let reader = t.store.open_run("sig").unwrap();
    let info = reader.info().unwrap();
    assert_eq!((info.state, info.exit_code), (RunState::Preempted, Some(143)));
    assert_eq!(info.next_step, stopped_at, "every row logged before the stop was flushed");
    assert!(stopped_at > 0);
}

#[test]
fn a_second_signal_terminates_a_loop_that_does_not_stop() {
    let t = temp_store();
    let mut command = child("writer", &t.path);
    command
        .env("RUNSTORE_RUN_ID", "stuck")
        .env("RUNSTORE_RESUME", "allow")
        .env("TEST_SIGNALS", "ignore")
        .env("TEST_END", "forever")
        .env("TEST_PAUSE_US", "200");
    let mut process = command.spawn().unwrap();
    let mut reports = Reports::of(&mut process);
    reports.expect("listening");
    std::thread::sleep(Duration::from_millis(200));
    send("INT", process.id());
    // Wait until the first signal has marked the run, then send the second.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while t.store.open_run("stuck").unwrap().state().unwrap() != RunState::Preempting {
        assert!(std::time::Instant::now() < deadline, "the first signal did not mark the run");
        std::thread::sleep(Duration::from_millis(20));
    }
    send("INT", process.id());
    let status = process.wait().unwrap();
    assert_eq!(status.signal(), Some(2), "the second SIGINT terminated the process: {status}");
    assert_eq!(t.store.open_run("stuck").unwrap().state().unwrap(), RunState::Preempted);
}
