//! What a new user hit (issue 15): the attempt record after a rewind at resume, the messages,
//! and the commands for comparing and managing runs.

use crate::command::{ok, runstore};
use crate::support::temp_store;

#[test]
fn log_with_runstore_resume_from_records_an_attempt_starting_after_the_rewind() {
    let t = temp_store();
    for i in 0..=20 {
        ok(runstore(&t.path).args(["log", "r1", "--resume", "allow", "--step", &i.to_string(), &format!("v={i}")]));
    }
    ok(runstore(&t.path).args(["log", "r1", "v=99"]).env("RUNSTORE_RESUME_FROM", "10"));

    let reader = t.store.open_run("r1").unwrap();
    let attempts = reader.attempts().unwrap();
    let last = attempts.last().unwrap();
    assert_eq!((last.first_step, last.last_step), (11, Some(11)));
    let show = ok(runstore(&t.path).args(["show", "r1"]));
    let line = show.lines().find(|line| line.trim_start().starts_with("22 ")).expect("attempt 22 in show");
    assert!(line.contains("11-11"), "{line}");
    ok(runstore(&t.path).args(["check", "r1"]));
}
