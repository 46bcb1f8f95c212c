//! Rewind (resume from a checkpoint older than the last logged step) and fork, losing nothing.

use runstore::{Error, Resume, RunState, Store};

use crate::support::{METRICS, Reports, bits, child, options, row, temp_store, value};

/// The values a restarted attempt logs, distinguishable from the first attempt's.
fn second(step: u64) -> [(&'static str, f64); 4] {
    [0, 1, 2, 3].map(|m| (METRICS[m], value(step, m) + 1000.0))
}

/// Checks that the live history of `id` is steps 0..=last, each from `first` up to `switch`
/// and from `second` after it.
fn assert_history(store: &Store, id: &str, last: u64, switch: u64) {
    let reader = store.open_run(id).unwrap();
    let mut history = reader.history(..).unwrap();
    let mut expected = 0;
    while let Some(r) = history.next_row().unwrap() {
        assert_eq!(r.step(), expected, "each step once, in order");
        let want = if expected <= switch { row(expected) } else { second(expected) };
        for (name, value) in want {
            assert_eq!(bits(r.get(name).unwrap()), bits(value), "step {expected} {name}");
        }
        expected += 1;
    }
    assert_eq!(expected, last + 1);
    let info = reader.info().unwrap();
    assert_eq!((info.rows, info.next_step, info.last_step), (last + 1, last + 1, Some(last)));
    let want = if last <= switch { row(last) } else { second(last) };
    for (name, value) in want {
        assert_eq!(bits(info.summary[name]), bits(value), "summary of {name}");
    }
}

fn log_until(run: &mut runstore::Run, last: u64, values: fn(u64) -> [(&'static str, f64); 4]) {
    while run.step() <= last {
        run.log(values(run.step())).unwrap();
    }
}

#[test]
fn a_crash_at_1200_then_a_rewind_to_1000_keeps_every_row_once_and_archives_the_rest() {
    let t = temp_store();
    // The first attempt flushes 1200 rows (0..=1199) and dies without finishing.
    let mut command = child("writer", &t.path);
    command
        .env("RUNSTORE_RUN_ID", "r")
        .env("RUNSTORE_RESUME", "allow")
        .env("TEST_ROWS", "1200")
        .env("TEST_FLUSH_EVERY", "100")
        .env("TEST_END", "exit:1");
    let mut process = command.spawn().unwrap();
    let mut reports = Reports::of(&mut process);
    while reports.next().is_some() {}
    process.wait().unwrap();
    assert_eq!(t.store.open_run("r").unwrap().state().unwrap(), RunState::Crashed);

    // Training restarts from the checkpoint of step 1000.
    let mut run = t.store.init(options().id("r").resume(Resume::Must).resume_from(1000)).unwrap();
    assert_eq!(run.step(), 1001);
    log_until(&mut run, 1500, second);
    run.finish(0).unwrap();

    assert_history(&t.store, "r", 1500, 1000);
    let reader = t.store.open_run("r").unwrap();
    let branches = reader.branches().unwrap();
    assert_eq!(branches.len(), 1);
    let branch = &branches[0];
    assert_eq!((branch.rewound_to, branch.first_step, branch.last_step, branch.rows), (1000, 1001, 1199, 199));
    assert_eq!((branch.by_attempt, branch.attempts.clone()), (2, vec![1]));
    let mut archived = reader.branch_history(branch.id, ..).unwrap();
    let mut expected = 1001;
    while let Some(r) = archived.next_row().unwrap() {
        assert_eq!(r.step(), expected);
        for (name, value) in row(expected) {
            assert_eq!(bits(r.get(name).unwrap()), bits(value), "archived step {expected} {name} bit-exact");
        }
        expected += 1;
    }
    assert_eq!(expected, 1200);
    assert_eq!(reader.info().unwrap().branches, 1);
}

#[test]
fn repeated_rewinds_keep_every_branch_and_a_correct_live_history() {
    let t = temp_store();
    let mut run = t.store.init(options().id("r")).unwrap();
    log_until(&mut run, 1199, row);
    run.finish(1).unwrap();

    let mut run = t.store.init(options().id("r").resume(Resume::Must).resume_from(1000)).unwrap();
    log_until(&mut run, 1300, second);
    drop(run);
    let mut run = t.store.init(options().id("r").resume(Resume::Must).resume_from(800)).unwrap();
    assert_eq!(run.step(), 801);
    log_until(&mut run, 900, second);
    run.finish(0).unwrap();

    assert_history(&t.store, "r", 900, 800);
    let reader = t.store.open_run("r").unwrap();
    let branches = reader.branches().unwrap();
    assert_eq!(branches.len(), 2);
    assert_eq!((branches[0].first_step, branches[0].last_step, branches[0].rows), (1001, 1199, 199));
    assert_eq!((branches[1].first_step, branches[1].last_step, branches[1].rows), (801, 1300, 500));
    // The second branch holds the first attempt's 801..=1000 and the second's 1001..=1300.
    for r in reader.branch_history(1, ..).unwrap() {
        let r = r.unwrap();
        let want = if r.step() <= 1000 { row(r.step()) } else { second(r.step()) };
        assert_eq!(bits(r.get("loss").unwrap()), bits(want[0].1), "step {}", r.step());
    }
    // Rewinding again to the same step archives nothing new.
    assert!(t.store.rewind("r", 900).unwrap().is_none());
}

#[test]
fn rewind_works_from_every_ended_state_and_keeps_it() {
    let t = temp_store();
    for (id, end) in [("finished", "finish:0"), ("failed", "finish:3"), ("crashed", "exit:0"), ("preempted", "exit:9")]
    {
        let mut command = child("writer", &t.path);
        command
            .env("RUNSTORE_RUN_ID", id)
            .env("RUNSTORE_RESUME", "allow")
            .env("TEST_ROWS", "50")
            .env("TEST_FLUSH_EVERY", "50")
            .env("TEST_END", end);
        if id == "preempted" {
            command.env("TEST_PREEMPT", "1");
        }
        let mut process = command.spawn().unwrap();
        let mut reports = Reports::of(&mut process);
        while reports.next().is_some() {}
        process.wait().unwrap();
        let before = t.store.open_run(id).unwrap().state().unwrap();
        assert_eq!(before.as_str(), id);
        let branch = t.store.rewind(id, 19).unwrap().expect("a branch");
        assert_eq!((branch.first_step, branch.last_step, branch.by_attempt), (20, 49, 0));
        let info = t.store.open_run(id).unwrap().info().unwrap();
        assert_eq!((info.state, info.next_step, info.rows), (before, 20, 20), "{id}");
        assert_eq!(bits(info.summary["acc"]), bits(value(19, 1)));
    }
}

#[test]
fn rewind_is_refused_while_another_process_writes_the_run() {
    let t = temp_store();
    let mut command = child("writer", &t.path);
    command
        .env("RUNSTORE_RUN_ID", "live")
        .env("RUNSTORE_RESUME", "allow")
        .env("TEST_ROWS", "30")
        .env("TEST_FLUSH_EVERY", "10")
        .env("TEST_END", "hold");
    let mut process = command.spawn().unwrap();
    let mut reports = Reports::of(&mut process);
    reports.expect("holding");
    let err = t.store.rewind("live", 5).unwrap_err();
    assert!(matches!(err, Error::RunLocked { ref holder, .. } if holder.pid == process.id()), "{err:?}");
    assert_eq!(t.store.open_run("live").unwrap().info().unwrap().rows, 30);
    drop(process.stdin.take());
    while reports.next().is_some() {}
    process.wait().unwrap();
    assert!(t.store.open_run("live").unwrap().branches().unwrap().is_empty());
}

#[test]
fn rewinding_past_the_last_step_is_a_clear_error() {
    let t = temp_store();
    let mut run = t.store.init(options().id("r")).unwrap();
    log_until(&mut run, 9, row);
    let err = run.rewind(10).unwrap_err();
    assert!(matches!(err, Error::BeyondHistory { requested: 10, last: Some(9), .. }), "{err:?}");
    run.finish(0).unwrap();
    let err = t.store.init(options().id("r").resume(Resume::Must).resume_from(99)).unwrap_err();
    assert!(matches!(err, Error::BeyondHistory { requested: 99, last: Some(9), .. }), "{err:?}");
    let info = t.store.open_run("r").unwrap().info().unwrap();
    assert_eq!((info.attempts, info.state), (1, RunState::Finished), "a refused rewind records no attempt");
    let err = t.store.init(options().id("new").resume(Resume::Allow).resume_from(3)).unwrap_err();
    assert!(matches!(err, Error::BeyondHistory { last: None, .. }), "{err:?}");
    assert!(!t.store.exists("new").unwrap());
    assert!(!t.path.join("runs/new").exists(), "nothing was created");
}

#[test]
fn a_fork_shares_history_up_to_its_step_and_both_runs_go_on_independently() {
    let t = temp_store();
    let config = serde_json::json!({"lr": 0.1, "model": {"depth": 12}});
    let mut base = t.store.init(options().id("base").project("p").config(config)).unwrap();
    log_until(&mut base, 999, row);
    base.finish(0).unwrap();

    let mut fork = t.store.fork("base", 500, options().id("fork").config(serde_json::json!({"lr": 0.01}))).unwrap();
    assert_eq!(fork.step(), 501);
    log_until(&mut fork, 700, second);
    fork.finish(0).unwrap();
    let mut base = t.store.init(options().id("base").resume(Resume::Must)).unwrap();
    log_until(&mut base, 1099, row);
    base.finish(0).unwrap();

    assert_history(&t.store, "fork", 700, 500);
    assert_history(&t.store, "base", 1099, u64::MAX);
    let info = t.store.open_run("fork").unwrap().info().unwrap();
    assert_eq!(info.forked_from, Some(("base".to_string(), 500)));
    assert_eq!(serde_json::Value::Object(info.config), serde_json::json!({"lr": 0.01, "model": {"depth": 12}}));
    assert_eq!(info.project.as_deref(), Some("p"));
    let losses: Vec<(u64, f64)> =
        t.store.open_run("fork").unwrap().series("loss", 499..=502).unwrap().map(Result::unwrap).collect();
    assert_eq!(losses.iter().map(|p| p.0).collect::<Vec<_>>(), [499, 500, 501, 502]);
}

#[test]
fn a_fork_keeps_its_history_when_the_parent_is_rewound_below_the_fork_step() {
    let t = temp_store();
    let mut base = t.store.init(options().id("base")).unwrap();
    log_until(&mut base, 599, row);
    base.finish(0).unwrap();
    t.store.fork("base", 400, options().id("fork")).unwrap().finish(0).unwrap();
    let mut base = t.store.init(options().id("base").resume(Resume::Must).resume_from(300)).unwrap();
    log_until(&mut base, 450, second);
    base.finish(0).unwrap();
    let mut base = t.store.init(options().id("base").resume(Resume::Must).resume_from(100)).unwrap();
    log_until(&mut base, 200, second);
    base.finish(0).unwrap();

    assert_history(&t.store, "fork", 400, u64::MAX);
    assert_history(&t.store, "base", 200, 100);
    // A fork of the fork reads through both.
    let mut grandchild = t.store.fork("fork", 350, options().id("grandchild")).unwrap();
    log_until(&mut grandchild, 360, second);
    grandchild.finish(0).unwrap();
    assert_history(&t.store, "grandchild", 360, 350);
}

#[test]
fn a_live_run_can_be_forked_from_its_flushed_rows() {
    let t = temp_store();
    let mut command = child("writer", &t.path);
    command
        .env("RUNSTORE_RUN_ID", "live")
        .env("RUNSTORE_RESUME", "allow")
        .env("TEST_ROWS", "300")
        .env("TEST_FLUSH_EVERY", "100")
        .env("TEST_END", "hold");
    let mut process = command.spawn().unwrap();
    let mut reports = Reports::of(&mut process);
    reports.expect("holding");
    let fork = t.store.fork("live", 250, options().id("fork")).unwrap();
    fork.finish(0).unwrap();
    assert_history(&t.store, "fork", 250, u64::MAX);
    assert_eq!(t.store.open_run("live").unwrap().state().unwrap(), RunState::Running, "the source is unchanged");
    drop(process.stdin.take());
    while reports.next().is_some() {}
    process.wait().unwrap();
}

#[test]
fn a_fork_cannot_rewind_below_its_fork_step() {
    let t = temp_store();
    let mut base = t.store.init(options().id("base")).unwrap();
    log_until(&mut base, 99, row);
    base.finish(0).unwrap();
    let mut fork = t.store.fork("base", 50, options().id("fork")).unwrap();
    log_until(&mut fork, 80, second);
    assert!(matches!(fork.rewind(40), Err(Error::RewindBeforeFork { fork_step: 50, .. })));
    let branch = fork.rewind(60).unwrap().expect("own rows archived");
    assert_eq!((branch.first_step, branch.last_step), (61, 80));
    fork.finish(0).unwrap();
    assert_history(&t.store, "fork", 60, 50);
    assert!(matches!(t.store.fork("base", 100, options().id("x")), Err(Error::BeyondHistory { .. })));
    assert!(matches!(t.store.fork("missing", 1, options().id("y")), Err(Error::RunNotFound { .. })));
    assert!(!t.store.exists("x").unwrap() && !t.store.exists("y").unwrap());
}

#[test]
fn resume_from_is_read_from_the_environment() {
    let t = temp_store();
    let mut run = t.store.init(options().id("env")).unwrap();
    log_until(&mut run, 99, row);
    run.finish(1).unwrap();
    let mut command = child("writer", &t.path);
    command.env("RUNSTORE_RUN_ID", "env").env("RUNSTORE_RESUME", "must").env("RUNSTORE_RESUME_FROM", "49");
    let mut process = command.spawn().unwrap();
    let mut reports = Reports::of(&mut process);
    assert_eq!(reports.expect("init ok"), "env 50 2 true");
    while reports.next().is_some() {}
    process.wait().unwrap();
    assert_eq!(t.store.open_run("env").unwrap().branches().unwrap()[0].rows, 50);
}

#[test]
fn an_attempt_that_resumes_from_a_checkpoint_starts_at_the_step_after_it() {
    let t = temp_store();
    let mut run = t.store.init(options().id("r")).unwrap();
    log_until(&mut run, 1999, row);
    run.finish(1).unwrap();

    let mut run = t.store.init(options().id("r").resume(Resume::Must).resume_from(1000)).unwrap();
    log_until(&mut run, 1010, second);
    run.finish(0).unwrap();

    let reader = t.store.open_run("r").unwrap();
    let attempts = reader.attempts().unwrap();
    assert_eq!((attempts[1].first_step, attempts[1].last_step), (1001, Some(1010)));
    let branch = &reader.branches().unwrap()[0];
    // The resuming attempt rewound the run; none of the archived rows is its own.
    assert_eq!((branch.by_attempt, branch.attempts.clone()), (2, vec![1]));
    let report = t.store.check("r").unwrap();
    assert!(report.is_healthy(), "{:?}", report.problems);
}

#[test]
fn a_rewind_below_where_the_attempt_started_moves_its_first_step_back() {
    let t = temp_store();
    let mut run = t.store.init(options().id("r")).unwrap();
    log_until(&mut run, 99, row);
    run.finish(1).unwrap();
    let mut run = t.store.init(options().id("r").resume(Resume::Must)).unwrap();
    log_until(&mut run, 149, second);
    run.rewind(49).unwrap();
    run.finish(0).unwrap(); // nothing logged after the rewind

    let reader = t.store.open_run("r").unwrap();
    let attempts = reader.attempts().unwrap();
    assert_eq!((attempts[1].first_step, attempts[1].last_step), (50, Some(49)));
    assert_eq!(reader.branches().unwrap()[0].attempts, vec![1, 2]);
    let report = t.store.check("r").unwrap();
    assert!(report.is_healthy(), "{:?}", report.problems);
}

#[test]
fn a_crashed_attempt_rewound_from_outside_keeps_the_step_it_reached() {
    let t = temp_store();
    let mut command = child("writer", &t.path);
    command
        .env("RUNSTORE_RUN_ID", "r")
        .env("RUNSTORE_RESUME", "allow")
        .env("TEST_ROWS", "300")
        .env("TEST_FLUSH_EVERY", "100")
        .env("TEST_END", "exit:1");
    let mut process = command.spawn().unwrap();
    let mut reports = Reports::of(&mut process);
    while reports.next().is_some() {}
    process.wait().unwrap();
    assert_eq!(t.store.open_run("r").unwrap().state().unwrap(), RunState::Crashed);

    t.store.rewind("r", 99).unwrap();
    let run = t.store.init(options().id("r").resume(Resume::Must)).unwrap();
    run.finish(0).unwrap();

    let attempts = t.store.open_run("r").unwrap().attempts().unwrap();
    assert_eq!((attempts[0].first_step, attempts[0].last_step), (0, Some(299)));
    assert_eq!(attempts[0].outcome, Some(RunState::Crashed));
    assert_eq!(attempts[1].first_step, 100);
    let report = t.store.check("r").unwrap();
    assert!(report.is_healthy(), "{:?}", report.problems);
}

#[test]
fn a_fork_keeps_its_parents_name_marked_as_a_fork_and_its_tags_unless_given_its_own() {
    let t = temp_store();
    let mut base = t.store.init(options().id("base").name("resnet").tags(["sweep-1", "keep"])).unwrap();
    log_until(&mut base, 9, row);
    base.finish(0).unwrap();

    let fork = t.store.fork("base", 5, options().id("f1").config(serde_json::json!({"lr": 0.5}))).unwrap();
    assert_eq!(fork.config().get("lr"), Some(&serde_json::json!(0.5)), "Run::config: the fork's as stored");
    fork.finish(0).unwrap();
    let info = t.store.open_run("f1").unwrap().info().unwrap();
    assert_eq!(info.name.as_deref(), Some("resnet (fork at 5)"));
    assert_eq!(info.tags, ["sweep-1", "keep"]);

    t.store.fork("base", 5, options().id("f2").name("low-lr").tag("mine")).unwrap().finish(0).unwrap();
    let info = t.store.open_run("f2").unwrap().info().unwrap();
    assert_eq!((info.name.as_deref(), info.tags.clone()), (Some("low-lr"), vec!["mine".to_string()]));
}

#[test]
fn delete_run_removes_a_run_whole_and_refuses_a_live_run_or_one_with_forks() {
    let t = temp_store();
    let mut run = t.store.init(options().id("gone")).unwrap();
    log_until(&mut run, 99, row);
    run.rewind(49).unwrap();
    run.finish(0).unwrap();
    t.store.delete_run("gone").unwrap();
    assert!(!t.store.exists("gone").unwrap());
    assert!(!t.path.join("runs").join("gone").exists());
    assert!(matches!(t.store.delete_run("gone"), Err(Error::RunNotFound { .. })));
    // The id can be used again, for a new run.
    t.store.init(options().id("gone")).unwrap().finish(0).unwrap();
    assert_eq!(t.store.open_run("gone").unwrap().info().unwrap().rows, 0);

    let live = t.store.init(options().id("live")).unwrap();
    assert!(matches!(t.store.delete_run("live"), Err(Error::RunLocked { .. })));
    live.finish(0).unwrap();

    let mut base = t.store.init(options().id("base")).unwrap();
    log_until(&mut base, 9, row);
    base.finish(0).unwrap();
    t.store.fork("base", 5, options().id("child")).unwrap().finish(0).unwrap();
    let err = t.store.delete_run("base").unwrap_err();
    assert!(matches!(err, Error::RunHasForks { ref forks, .. } if forks == &["child"]), "{err:?}");
    t.store.delete_run("child").unwrap();
    t.store.delete_run("base").unwrap();
    assert_eq!(t.store.run_ids().unwrap(), ["gone", "live"]);
    assert!(t.store.check_all().unwrap().is_healthy());
}

#[test]
fn tags_and_notes_are_edited_after_creation_in_one_transaction() {
    let t = temp_store();
    t.store.init(options().id("r").tags(["debug", "sweep-1"])).unwrap().finish(0).unwrap();
    assert_eq!(t.store.edit_tags("r", &["keep", "sweep-1"], &["debug", "absent"]).unwrap(), ["sweep-1", "keep"]);
    t.store.set_notes("r", Some("diverged at 3k")).unwrap();
    let info = t.store.open_run("r").unwrap().info().unwrap();
    assert_eq!(
        (info.tags.clone(), info.notes.as_deref()),
        (vec!["sweep-1".into(), "keep".into()], Some("diverged at 3k"))
    );
    t.store.set_notes("r", None).unwrap();
    assert_eq!(t.store.open_run("r").unwrap().info().unwrap().notes, None);

    assert!(matches!(t.store.edit_tags("r", &["ok", "bad\n"], &[]), Err(Error::InvalidTag { .. })));
    assert_eq!(t.store.open_run("r").unwrap().info().unwrap().tags, ["sweep-1", "keep"], "nothing changed");
    let live = t.store.init(options().id("r").resume(Resume::Must)).unwrap();
    assert!(matches!(t.store.set_notes("r", Some("x")), Err(Error::RunLocked { .. })));
    live.finish(0).unwrap();
    assert!(t.store.check("r").unwrap().is_healthy());
}

#[test]
fn rewinding_a_crashed_run_from_outside_closes_the_dead_attempt_as_it_died() {
    let t = temp_store();
    let mut run = t.store.init(options().id("r")).unwrap();
    for step in 0..50 {
        run.log(row(step)).unwrap();
    }
    run.finish(0).unwrap();
    // Attempt 2 logs 50..99, flushes, and is killed.
    let mut command = child("writer", &t.path);
    command
        .env("RUNSTORE_RUN_ID", "r")
        .env("RUNSTORE_RESUME", "must")
        .env("TEST_ROWS", "50")
        .env("TEST_FLUSH_EVERY", "50")
        .env("TEST_END", "hold");
    let mut process = command.spawn().expect("spawn");
    let mut reports = Reports::of(&mut process);
    reports.expect("holding");
    process.kill().expect("SIGKILL");
    process.wait().unwrap();
    let died_at = t.store.open_run("r").unwrap().info().unwrap().updated_at;

    t.store.rewind("r", 20).unwrap();
    t.store.init(options().id("r").resume(Resume::Must)).unwrap().finish(0).unwrap();
    let attempts = t.store.open_run("r").unwrap().attempts().unwrap();
    let dead = &attempts[1];
    assert_eq!((dead.first_step, dead.last_step, dead.outcome), (50, Some(99), Some(RunState::Crashed)), "{dead:?}");
    assert_eq!(dead.ended_at, Some(died_at), "it ended at its last commit, not at the rewind");
    assert_eq!(attempts[2].first_step, 21);
}

#[test]
fn a_value_logged_at_a_forks_fork_step_is_refused_not_lost() {
    let t = temp_store();
    let mut base = t.store.init(options().id("base")).unwrap();
    for step in 0..5 {
        base.log(row(step)).unwrap();
    }
    base.finish(0).unwrap();
    let refused = |run: &mut runstore::Run| {
        let error = run.log_at(2, [("extra", 7.0)]).unwrap_err();
        assert!(matches!(error, Error::StepRegression { requested: 2, next: 3, .. }), "{error:?}");
    };
    let mut fork = t.store.fork("base", 2, options().id("fk")).unwrap();
    refused(&mut fork);
    fork.log_at(3, [("extra", 8.0)]).unwrap();
    fork.log_at(3, [("more", 9.0)]).unwrap(); // its own last row merges
    fork.rewind(2).unwrap();
    refused(&mut fork);
    fork.finish(0).unwrap();
    let mut again = t.store.init(options().id("fk").resume(Resume::Must)).unwrap();
    refused(&mut again);
    again.finish(0).unwrap();

    let reader = t.store.open_run("fk").unwrap();
    let info = reader.info().unwrap();
    assert_eq!((info.rows, info.summary.get("extra")), (3, None), "{info:?}");
    assert_eq!(reader.history(..).unwrap().count(), 3);
    let check = t.store.check("fk").unwrap();
    assert!(check.is_healthy(), "{:?}", check.problems);
}

#[test]
fn a_fork_where_the_last_values_are_nan_and_infinite_reads_them_back() {
    let t = temp_store();
    let mut base = t.store.init(options().id("base")).unwrap();
    base.log([("loss", 1.0), ("acc", 0.5)]).unwrap();
    base.log([("loss", f64::NAN), ("acc", f64::NEG_INFINITY)]).unwrap();
    base.finish(0).unwrap();
    let mut fork = t.store.fork("base", 1, options().id("fork")).unwrap();
    fork.log([("loss", 0.25)]).unwrap();
    fork.finish(0).unwrap();
    let fork = t.store.open_run("fork").unwrap();
    assert_eq!(fork.history(..).unwrap().count(), 3);
    assert_eq!(fork.info().unwrap().summary["acc"], f64::NEG_INFINITY);
    // Rewinding the fork to its fork step falls back to the inherited values.
    t.store.rewind("fork", 1).unwrap().expect("a branch");
    let summary = t.store.open_run("fork").unwrap().info().unwrap().summary;
    assert!(summary["loss"].is_nan());
    assert!(t.store.check("fork").unwrap().is_healthy());
}

#[test]
fn a_value_merged_into_the_last_row_in_a_later_commit_replaces_it() {
    let t = temp_store();
    let mut run = t.store.init(options().id("r")).unwrap();
    run.log_at(5, [("a", 1.0)]).unwrap();
    run.flush().unwrap();
    run.log_at(5, [("a", 2.0), ("b", 3.0)]).unwrap();
    run.flush().unwrap();
    run.log_at(6, [("b", 4.0)]).unwrap();
    run.finish(0).unwrap();
    let reader = t.store.open_run("r").unwrap();
    let rows: Vec<_> = reader.history(..).unwrap().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].get("a"), rows[0].get("b")), (Some(2.0), Some(3.0)));
    assert_eq!((rows[1].get("a"), rows[1].get("b")), (None, Some(4.0)));
    assert_eq!(reader.series("a", ..).unwrap().map(Result::unwrap).collect::<Vec<_>>(), [(5, 2.0)]);
    let info = reader.info().unwrap();
    assert_eq!((info.rows, info.summary["a"], info.summary["b"]), (2, 2.0, 4.0));
    assert!(t.store.check("r").unwrap().is_healthy());
}

#[test]
fn a_rewind_recomputes_logged_summary_values_and_keeps_set_ones() {
    let t = temp_store();
    let mut run = t.store.init(options().id("s")).unwrap();
    for step in 0..10u32 {
        run.log([("loss", f64::from(step))]).unwrap();
    }
    run.set_summary("best_acc", 0.97).unwrap();
    run.finish(0).unwrap();
    t.store.rewind("s", 4).unwrap();
    let summary = t.store.open_run("s").unwrap().info().unwrap().summary;
    assert_eq!((summary["loss"], summary["best_acc"]), (4.0, 0.97), "{summary:?}");
}

#[test]
fn a_fork_at_a_step_whose_values_are_nan_or_infinite_reads_and_keeps_them_bit_for_bit() {
    let t = temp_store();
    let odd_nan = f64::from_bits(0x7ff8_0000_0000_0123);
    let mut base = t.store.init(options().id("base")).unwrap();
    base.log([("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)]).unwrap();
    base.log([("a", f64::NAN), ("b", f64::INFINITY), ("c", f64::NEG_INFINITY), ("d", odd_nan)]).unwrap();
    base.finish(0).unwrap();
    let mut fork = t.store.fork("base", 1, options().id("fk")).unwrap();
    fork.log([("e", 5.0)]).unwrap();
    fork.rewind(1).unwrap(); // the summary comes back from the inherited values
    fork.finish(0).unwrap();
    let info = t.store.open_run("fk").unwrap().info().unwrap();
    let bits: Vec<u64> = ["a", "b", "c", "d"].iter().map(|name| info.summary[*name].to_bits()).collect();
    assert_eq!(bits, [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, odd_nan].map(f64::to_bits));
    assert!(t.store.check("fk").unwrap().is_healthy());
}

#[test]
fn a_forks_own_rows_go_on_from_the_runtime_it_inherited() {
    let t = temp_store();
    let mut parent = t.store.init(options().id("p")).unwrap();
    for step in 0..10 {
        parent.log(row(step)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(40));
    }
    parent.finish(0).unwrap();
    // A fork of a fork: each goes on from the runtime of the row it forked at.
    let mut fork = t.store.fork("p", 7, options().id("f")).unwrap();
    for step in 8..12 {
        fork.log(row(step)).unwrap();
    }
    fork.finish(0).unwrap();
    let mut grandchild = t.store.fork("f", 9, options().id("g")).unwrap();
    grandchild.log(row(10)).unwrap();
    grandchild.finish(0).unwrap();

    let runtimes = |id: &str| -> Vec<(u64, std::time::Duration)> {
        let reader = t.store.open_run(id).unwrap();
        reader
            .history(..)
            .unwrap()
            .map(|row| row.map(|row| (row.step(), row.runtime())))
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let parent = runtimes("p");
    assert!(parent[7].1 >= std::time::Duration::from_millis(7 * 40), "{parent:?}");
    for id in ["f", "g"] {
        let rows = runtimes(id);
        assert!(rows.windows(2).all(|pair| pair[0].1 <= pair[1].1), "{id}: runtime never goes back: {rows:?}");
        assert_eq!(rows[..8], parent[..8], "{id}: inherited rows keep the parent's runtime");
    }
    let fork = runtimes("f");
    assert!(fork[8].1 >= parent[7].1, "the fork's first own row goes on from the fork step's: {fork:?}");
    assert_eq!(runtimes("g")[..10], fork[..10], "the grandchild inherits the fork's runtimes, own rows included");
}
