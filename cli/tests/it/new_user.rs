//! What a new user hit (issue 15): the attempt record after a rewind at resume, the messages,
//! and the commands for comparing and managing runs.

use crate::command::{fails, ok, runstore};
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

#[test]
fn each_command_says_what_to_do_for_that_command() {
    let t = temp_store();
    for i in 0..3 {
        ok(runstore(&t.path).args(["log", "r", "--resume", "allow", &format!("v={i}")]));
    }
    let said = fails(runstore(&t.path).args(["log", "r", "--step", "1", "v=5"]), 2, "--step 1 is behind run \"r\"");
    assert!(said.stderr.contains("give --step 2 (merged into that row) or 3 or later"), "{}", said.stderr);
    // The last step itself is allowed: it merges.
    ok(runstore(&t.path).args(["log", "r", "--step", "2", "w=1"]));

    let said = fails(runstore(&t.path).args(["rewind", "nope", "--to", "1"]), 3, "run \"nope\" does not exist");
    assert!(said.stderr.contains("runstore ls") && !said.stderr.contains("allow"), "{}", said.stderr);
    let said = fails(runstore(&t.path).args(["log", "nope", "x=1"]), 3, "run \"nope\" does not exist");
    assert!(said.stderr.contains("--resume allow"), "{}", said.stderr);
    let said = fails(runstore(&t.path).args(["fork", "r", "--at", "1", "--id", "r"]), 4, "run \"r\" already exists");
    assert!(said.stderr.contains("another --id") && !said.stderr.contains("resume"), "{}", said.stderr);
    let said = fails(runstore(&t.path).args(["log", "r", "--resume", "never", "x=1"]), 4, "already exists");
    assert!(said.stderr.contains("--resume must"), "{}", said.stderr);
}

#[test]
fn counts_of_one_are_singular() {
    let t = temp_store();
    ok(runstore(&t.path).args(["log", "one", "--resume", "allow", "loss=1"]));
    let check = ok(runstore(&t.path).args(["check", "one"]));
    assert!(check.contains("1 row,") && check.contains("1 block,") && check.contains("1 attempt;"), "{check}");
    assert!(check.contains("0 branches"), "{check}");
    let plot = ok(runstore(&t.path).args(["plot", "one", "-o"]).arg(t.path.join("one.svg")));
    assert!(plot.trim_end().ends_with("(1 metric)"), "{plot}");
    let show = ok(runstore(&t.path).args(["show", "one"]));
    assert!(show.contains("1 row") && !show.contains("1 rows"), "{show}");
}
