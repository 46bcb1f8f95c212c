//! The resume policy table, end to end through the public API and the environment.

use runstore::{Error, Resume, RunState};

use crate::support::{Reports, child, options, row, snapshot, temp_store};

fn create_with_rows(store: &runstore::Store, id: &str, rows: u64) {
    let mut run = store.init(options().id(id).resume(Resume::Never)).expect("create");
    for _ in 0..rows {
        run.log(row(run.step())).expect("log");
    }
    run.finish(0).expect("finish");
}

#[test]
fn must_resumes_an_existing_run_and_refuses_a_missing_one() {
    let t = temp_store();
    create_with_rows(&t.store, "r", 5);
    let run = t.store.init(options().id("r").resume(Resume::Must)).expect("resume");
    assert!(run.resumed());
    assert_eq!(run.step(), 5);
    assert_eq!(run.attempt(), 2);
    drop(run);

    let before = snapshot(&t.path);
    let err = t.store.init(options().id("missing").resume(Resume::Must)).unwrap_err();
    assert!(matches!(err, Error::RunNotFound { ref id } if id == "missing"), "{err:?}");
    assert_eq!(snapshot(&t.path), before, "a refused `must` changes nothing on disk");
}

#[test]
fn allow_resumes_an_existing_run_or_creates_a_missing_one() {
    let t = temp_store();
    let run = t.store.init(options().id("r").resume(Resume::Allow)).expect("create");
    assert!(!run.resumed());
    assert_eq!(run.step(), 0);
    run.finish(0).expect("finish");
    create_with_rows(&t.store, "other", 0);

    let mut run = t.store.init(options().id("r").resume(Resume::Allow)).expect("resume");
    assert!(run.resumed());
    run.log(row(0)).expect("log");
    run.finish(0).expect("finish");
    assert_eq!(t.store.open_run("r").unwrap().info().unwrap().attempts, 2);
}

#[test]
fn never_creates_a_missing_run_and_refuses_an_existing_one_untouched() {
    let t = temp_store();
    create_with_rows(&t.store, "r", 3);
    let before = snapshot(&t.path);
    let err = t.store.init(options().id("r").resume(Resume::Never)).unwrap_err();
    assert!(matches!(err, Error::RunExists { ref id } if id == "r"), "{err:?}");
    assert_eq!(snapshot(&t.path), before, "a refused `never` changes nothing on disk");
}

#[test]
fn an_explicit_id_without_a_policy_never_overwrites_or_mixes() {
    let t = temp_store();
    let run = t.store.init(options().id("r")).expect("an unused id is created");
    assert!(!run.resumed());
    run.finish(0).expect("finish");
    let before = snapshot(&t.path);
    let err = t.store.init(options().id("r")).unwrap_err();
    assert!(matches!(err, Error::RunExists { .. }), "{err:?}");
    assert_eq!(snapshot(&t.path), before);
}

#[test]
fn must_without_an_id_is_an_error() {
    let t = temp_store();
    assert!(matches!(t.store.init(options().resume(Resume::Must)), Err(Error::RunIdRequired)));
}

#[test]
fn no_id_creates_a_run_with_a_fresh_generated_id() {
    let t = temp_store();
    let first = t.store.init(options()).expect("first");
    let second = t.store.init(options().resume(Resume::Allow)).expect("second");
    assert_ne!(first.id(), second.id());
    for id in [first.id(), second.id()] {
        assert_eq!(id.len(), 8);
        assert!(id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    }
}

/// Runs a child that inits with `auto` from `dir`, logs `rows` rows and ends as `end` says;
/// returns the run id it reported.
fn auto_child(t: &crate::support::TempStore, dir: &std::path::Path, rows: u64, end: &str) -> String {
    let mut command = child("writer", &t.path);
    command
        .current_dir(dir)
        .env("RUNSTORE_RESUME", "auto")
        .env("TEST_ROWS", rows.to_string())
        .env("TEST_FLUSH_EVERY", rows.to_string())
        .env("TEST_END", end);
    let mut process = command.spawn().expect("spawn");
    let mut reports = Reports::of(&mut process);
    let init = reports.expect("init ok");
    while reports.next().is_some() {}
    process.wait().expect("wait");
    init.split_whitespace().next().expect("id").to_string()
}

#[test]
fn auto_resumes_the_run_that_crashed_in_this_directory() {
    let t = temp_store();
    let work = tempfile::tempdir().unwrap();
    // The process flushes, then exits without finishing: the OS drops its lock, and the run
    // reads as crashed.
    let id = auto_child(&t, work.path(), 10, "exit:0");
    assert_eq!(t.store.open_run(&id).unwrap().state().unwrap(), RunState::Crashed);

    let run = t.store.init(options().resume(Resume::Auto).working_dir(work.path())).expect("auto");
    assert_eq!(run.id(), id, "auto resumes the crashed run");
    assert!(run.resumed());
    assert_eq!(run.step(), 10);
    drop(run); // recorded as failed: the pointer stays

    let run = t.store.init(options().resume(Resume::Auto).working_dir(work.path())).expect("auto again");
    assert_eq!(run.id(), id, "auto resumes after a failure too");
    run.finish(0).expect("clean finish");

    let run = t.store.init(options().resume(Resume::Auto).working_dir(work.path())).expect("auto after finish");
    assert_ne!(run.id(), id, "a clean finish clears the pointer: auto starts a new run");
    assert!(!run.resumed());
}

#[test]
fn auto_without_a_pointer_starts_a_new_run_and_writes_the_pointer() {
    let t = temp_store();
    let work = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let run = t.store.init(options().resume(Resume::Auto).working_dir(work.path())).expect("auto");
    assert!(!run.resumed());
    let id = run.id().to_string();
    run.finish(3).expect("a failure");

    let other = t.store.init(options().resume(Resume::Auto).working_dir(elsewhere.path())).expect("elsewhere");
    assert_ne!(other.id(), id, "another directory has its own pointer");
    drop(other);
    let again = t.store.init(options().resume(Resume::Auto).working_dir(work.path())).expect("same directory");
    assert_eq!(again.id(), id);
}

#[test]
fn an_explicit_id_wins_over_the_auto_pointer_with_a_warning() {
    let t = temp_store();
    let work = tempfile::tempdir().unwrap();
    let pointed = t.store.init(options().resume(Resume::Auto).working_dir(work.path())).expect("auto");
    let pointed_id = pointed.id().to_string();
    drop(pointed);

    let run = t.store.init(options().id("explicit").resume(Resume::Auto).working_dir(work.path())).expect("explicit");
    assert_eq!(run.id(), "explicit");
    assert_eq!(run.warnings().len(), 1);
    assert!(run.warnings()[0].contains(&pointed_id), "{:?}", run.warnings());
}

#[test]
fn the_environment_chooses_id_and_policy_and_code_would_win() {
    let t = temp_store();
    create_with_rows(&t.store, "shared", 4);
    let spawn = |vars: &[(&str, &str)]| {
        let mut command = child("writer", &t.path);
        command.envs(vars.iter().copied());
        let mut process = command.spawn().expect("spawn");
        let mut reports = Reports::of(&mut process);
        let first = reports.next().expect("a report");
        while reports.next().is_some() {}
        assert!(process.wait().expect("wait").success());
        first
    };
    let resumed = spawn(&[("RUNSTORE_RUN_ID", "shared"), ("RUNSTORE_RESUME", "allow"), ("TEST_ROWS", "2")]);
    assert_eq!(resumed, "init ok shared 4 2 true");
    let refused = spawn(&[("RUNSTORE_RUN_ID", "shared"), ("RUNSTORE_RESUME", "never")]);
    assert!(refused.starts_with("init err RunExists"), "{refused}");
    let bad = spawn(&[("RUNSTORE_RUN_ID", "shared"), ("RUNSTORE_RESUME", "sometimes")]);
    assert!(bad.starts_with("init err InvalidEnvironment"), "{bad}");
    let invalid = spawn(&[("RUNSTORE_RUN_ID", "../escape"), ("RUNSTORE_RESUME", "allow")]);
    assert!(invalid.starts_with("init err InvalidRunId"), "{invalid}");
    assert_eq!(t.store.open_run("shared").unwrap().next_step().unwrap(), 6);

    // In-process, explicit options win over the variables the test process might carry.
    let run = t.store.init(runstore::RunOptions::new().id("code").resume(Resume::Never)).expect("explicit");
    assert_eq!(run.id(), "code");
}

#[test]
fn resuming_merges_config_tags_and_notes() {
    let t = temp_store();
    let first = options()
        .id("r")
        .resume(Resume::Allow)
        .project("p")
        .tags(["a", "b"])
        .notes("first")
        .config(serde_json::json!({"lr": 0.1, "model": {"depth": 12, "width": 768}}));
    t.store.init(first).expect("create").finish(1).expect("finish");
    let second = options()
        .id("r")
        .resume(Resume::Allow)
        .tags(["b", "c"])
        .notes("second")
        .config(serde_json::json!({"lr": 0.05, "model": {"depth": 24}, "resumed_from": 1000}));
    t.store.init(second).expect("resume").finish(0).expect("finish");
    let info = t.store.open_run("r").unwrap().info().unwrap();
    assert_eq!(
        serde_json::Value::Object(info.config),
        serde_json::json!({"lr": 0.05, "model": {"depth": 24, "width": 768}, "resumed_from": 1000})
    );
    assert_eq!(info.tags, ["a", "b", "c"]);
    assert_eq!(info.notes.as_deref(), Some("second"));
    assert_eq!(info.project.as_deref(), Some("p"));
}

#[test]
fn every_init_records_an_attempt_and_its_outcome() {
    let t = temp_store();
    let mut run = t.store.init(options().id("r").resume(Resume::Allow)).unwrap();
    for _ in 0..3 {
        run.log(row(run.step())).unwrap();
    }
    run.finish(2).unwrap();
    let mut run = t.store.init(options().id("r").resume(Resume::Allow)).unwrap();
    run.log(row(run.step())).unwrap();
    run.finish(0).unwrap();

    let attempts = t.store.open_run("r").unwrap().attempts().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!((attempts[0].number, attempts[0].first_step, attempts[0].last_step), (1, 0, Some(2)));
    assert_eq!((attempts[0].outcome, attempts[0].exit_code), (Some(RunState::Failed), Some(2)));
    assert_eq!((attempts[1].number, attempts[1].first_step, attempts[1].last_step), (2, 3, Some(3)));
    assert_eq!(attempts[1].outcome, Some(RunState::Finished));
    assert!(attempts.iter().all(|a| a.pid == std::process::id() && a.ended_at.is_some()));
}

#[test]
fn auto_starts_a_new_run_when_the_pointed_run_is_live_in_another_process() {
    let t = temp_store();
    let work = tempfile::tempdir().unwrap();
    let mut command = child("writer", &t.path);
    command.current_dir(work.path()).env("RUNSTORE_RESUME", "auto").env("TEST_ROWS", "5").env("TEST_END", "hold");
    let mut process = command.spawn().expect("spawn");
    let mut reports = Reports::of(&mut process);
    let live = reports.expect("init ok").split_whitespace().next().unwrap().to_string();
    reports.expect("holding");

    let run = t.store.init(options().resume(Resume::Auto).working_dir(work.path())).expect("not RunLocked");
    assert_ne!(run.id(), live, "the live run is not taken over");
    assert!(!run.resumed());
    assert!(run.warnings().iter().any(|w| w.contains(&live) && w.contains("being written")), "{:?}", run.warnings());
    drop(run);
    drop(process.stdin.take());
    while reports.next().is_some() {}
    assert!(process.wait().unwrap().success());
}

#[test]
fn directories_that_differ_only_in_bytes_that_are_not_utf8_have_their_own_auto_runs() {
    use std::os::unix::ffi::OsStrExt;
    let t = temp_store();
    let work = tempfile::tempdir().unwrap();
    let first = work.path().join(std::ffi::OsStr::from_bytes(b"job\xff"));
    let second = work.path().join(std::ffi::OsStr::from_bytes(b"job\xfe"));
    std::fs::create_dir(&first).unwrap();
    std::fs::create_dir(&second).unwrap();

    let mut run = t.store.init(options().resume(Resume::Auto).working_dir(&first)).unwrap();
    run.log([("loss", 1.0)]).unwrap();
    let first_id = run.id().to_string();
    drop(run); // stopped without finishing: `auto` from this directory resumes it

    let other = t.store.init(options().resume(Resume::Auto).working_dir(&second)).unwrap();
    assert!(!other.resumed() && other.id() != first_id, "the second directory started a run of its own");
    other.finish(0).unwrap();
    let again = t.store.init(options().resume(Resume::Auto).working_dir(&first)).unwrap();
    assert!(again.resumed() && again.id() == first_id, "the first directory still resumes its run");
    again.finish(0).unwrap();
    assert!(t.store.check_all().unwrap().is_healthy());
}
