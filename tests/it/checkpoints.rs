//! Checkpoints recorded with the rows they cover, resumes from the latest one on disk, and the
//! runtime of rows across attempts: the tests issue #12 asks for, with real files and SIGKILL.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use runstore::{Resume, RunOptions, Store};

use crate::crash_harness::Rng;
use crate::support::{CHILD, Reports, SAY, child, options, temp_store};

/// The value a step has when logged by `attempt`: the attempt that logged a live row is read
/// back from its value.
fn loss(step: u64, attempt: u32) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let step = step as f64;
    f64::from(attempt) * 1e6 + step
}

/// Saves a checkpoint file as training code does: written beside, then renamed into place.
fn save(dir: &Path, step: u64) -> PathBuf {
    let path = dir.join(format!("ckpt-{step}.pt"));
    let partial = dir.join(format!("ckpt-{step}.pt.partial"));
    std::fs::write(&partial, step.to_le_bytes()).unwrap();
    std::fs::rename(&partial, &path).unwrap();
    path
}

/// A trainer that resumes from its latest checkpoint: logs every step up to `TEST_STEPS`
/// (pausing `TEST_PAUSE_US` after each), saves and records a checkpoint in `TEST_CKPT_DIR`
/// every 100 steps, and reports `start <checkpoint step or none> <next step> <attempt>`, then
/// `checkpoint <step>` once each is recorded, then `finished`.
#[test]
#[ignore = "a child process of other tests"]
fn trainer() {
    if std::env::var(CHILD).as_deref() != Ok("checkpoints::trainer") {
        return;
    }
    let number = |name: &str| std::env::var(name).unwrap().parse::<u64>().unwrap();
    let dir = PathBuf::from(std::env::var("TEST_CKPT_DIR").unwrap());
    let store = Store::from_env().unwrap();
    let options = RunOptions::new().id("train").resume(Resume::Allow).resume_from_checkpoint();
    let mut run = store.init(options).unwrap();
    let resumed = run.resumed_checkpoint().map_or("none".to_string(), |c| c.step.to_string());
    println!("{SAY}start {resumed} {} {}", run.step(), run.attempt());
    let pause = Duration::from_micros(number("TEST_PAUSE_US"));
    for step in run.step()..number("TEST_STEPS") {
        run.log([("loss", loss(step, run.attempt()))]).unwrap();
        if step % 100 == 99 {
            let path = save(&dir, step);
            run.checkpoint(&path).unwrap();
            println!("{SAY}checkpoint {step}");
        }
        std::thread::sleep(pause);
    }
    run.finish(0).unwrap();
    println!("{SAY}finished");
}

/// Runs the trainer until it finishes, or kills it with SIGKILL after `kill_after`; returns
/// its reports.
fn run_trainer(store: &Path, dir: &Path, steps: u64, kill_after: Option<Duration>) -> Vec<String> {
    let mut process = child("checkpoints::trainer", store)
        .env("TEST_CKPT_DIR", dir)
        .env("TEST_STEPS", steps.to_string())
        .env("TEST_PAUSE_US", "300")
        .spawn()
        .unwrap();
    let mut reports = Reports::of(&mut process);
    let reader = std::thread::spawn(move || std::iter::from_fn(|| reports.next()).collect::<Vec<_>>());
    if let Some(after) = kill_after {
        std::thread::sleep(after);
        let _ = process.kill();
    }
    process.wait().unwrap();
    reader.join().unwrap()
}

#[test]
fn sigkilled_training_resumes_at_its_last_recorded_checkpoint_with_each_step_once() {
    let t = temp_store();
    let dir = tempfile::tempdir().unwrap();
    let steps = 1000;
    let mut rng = Rng::new(12);
    // The last checkpoint step the child reported recorded, and the attempt of each round.
    let mut reported: Option<u64> = None;
    let mut kills = 0;
    loop {
        let finish = kills == 12;
        let kill_after = (!finish).then(|| Duration::from_millis(20 + rng.below(250)));
        let reports = run_trainer(&t.path, dir.path(), steps, kill_after);
        let Some(start) = reports.iter().find_map(|r| r.strip_prefix("start ")) else {
            // Killed before init reported: nothing changed.
            kills += 1;
            continue;
        };
        let fields: Vec<&str> = start.split(' ').collect();
        let resumed = fields[0].parse::<u64>().ok();
        // A checkpoint reported durable is there; one recorded but not yet reported may be too.
        match (reported, resumed) {
            (None, None) => {}
            (Some(known), Some(at)) => assert!(at == known || at == known + 100, "resumed at {at}, reported {known}"),
            (None, Some(at)) => assert_eq!(at, 99, "resumed at {at} with none reported"),
            (Some(known), None) => panic!("checkpoint {known} was reported durable but the resume found none"),
        }
        let next: u64 = fields[1].parse().unwrap();
        assert_eq!(next, resumed.map_or(0, |at| at + 1), "the attempt continues after its checkpoint");
        reported =
            reports.iter().rev().find_map(|r| r.strip_prefix("checkpoint ")).map(|s| s.parse().unwrap()).or(resumed);
        if finish {
            assert!(reports.iter().any(|r| r == "finished"), "{reports:?}");
            break;
        }
        kills += 1;
    }

    let run = t.store.open_run("train").unwrap();
    let rows: Vec<_> = run.history(..).unwrap().map(Result::unwrap).collect();
    assert_eq!(rows.iter().map(runstore::Row::step).collect::<Vec<_>>(), (0..steps).collect::<Vec<_>>());
    // Every live row was logged by the last attempt that reached its step: later attempts
    // re-logged every step after their checkpoint.
    let attempts = run.attempts().unwrap();
    for row in &rows {
        let value = row.get("loss").unwrap();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let attempt = ((value - loss(row.step(), 0)) / 1e6).round() as u32;
        let logger = &attempts[attempt as usize - 1];
        assert!(logger.first_step <= row.step() || attempt == 1, "step {} from attempt {attempt}", row.step());
    }
    for branch in run.branches().unwrap() {
        assert!(branch.first_step > branch.rewound_to || branch.restarted);
        let archived = run.branch_history(branch.id, ..).unwrap().count() as u64;
        assert_eq!(archived, branch.rows);
    }
    let live: Vec<_> = run.checkpoints().unwrap().into_iter().filter(|c| c.branch.is_none()).collect();
    assert_eq!(live.iter().map(|c| c.step).collect::<Vec<_>>(), (0..10).map(|i| i * 100 + 99).collect::<Vec<_>>());
    assert!(t.store.check("train").unwrap().is_healthy());
}

#[test]
fn a_deleted_checkpoint_file_makes_the_resume_fall_back_to_the_previous_one_and_say_so() {
    let t = temp_store();
    let dir = tempfile::tempdir().unwrap();
    let mut run = t.store.init(options().id("r")).unwrap();
    for step in 0..350 {
        run.log([("loss", loss(step, 1))]).unwrap();
        if step % 100 == 99 {
            let path = save(dir.path(), step);
            run.checkpoint(&path).unwrap();
        }
    }
    drop(run);
    std::fs::remove_file(dir.path().join("ckpt-299.pt")).unwrap();
    let choice = t.store.open_run("r").unwrap().latest_checkpoint().unwrap();
    assert_eq!(choice.latest.as_ref().map(|c| c.step), Some(199));
    assert_eq!(choice.missing.iter().map(|c| c.step).collect::<Vec<_>>(), [299]);

    let run = t.store.init(options().id("r").resume(Resume::Must).resume_from_checkpoint()).unwrap();
    let resumed = run.resumed_checkpoint().expect("ckpt-199.pt is there");
    assert_eq!((resumed.step, run.step()), (199, 200));
    assert!(resumed.path.ends_with("ckpt-199.pt"));
    assert!(
        run.warnings().iter().any(|w| w.contains("ckpt-299.pt") && w.contains("no longer exists")),
        "{:?}",
        run.warnings()
    );
    run.finish(0).unwrap();
    // The rewind to 199 archived checkpoint 299 with the rows after 199.
    let reader = t.store.open_run("r").unwrap();
    let branch = reader.branches().unwrap().pop().unwrap();
    assert_eq!((branch.rewound_to, branch.checkpoints.as_slice()), (199, &[2][..]));
    let checkpoints = reader.checkpoints().unwrap();
    assert_eq!(checkpoints[2].branch, Some(branch.id));
    assert!(!checkpoints[2].exists);
}

#[test]
fn resuming_from_checkpoint_with_none_on_disk_starts_again_at_step_0() {
    let t = temp_store();
    let mut run = t.store.init(options().id("r")).unwrap();
    for step in 0..50 {
        run.log([("loss", loss(step, 1))]).unwrap();
    }
    drop(run);
    let mut run = t.store.init(options().id("r").resume(Resume::Must).resume_from_checkpoint()).unwrap();
    assert!(run.resumed_checkpoint().is_none());
    assert_eq!(run.step(), 0);
    assert!(run.warnings().iter().any(|w| w.contains("no recorded checkpoint")), "{:?}", run.warnings());
    run.log([("loss", loss(0, 2))]).unwrap();
    run.finish(0).unwrap();
    let reader = t.store.open_run("r").unwrap();
    let rows: Vec<_> = reader.history(..).unwrap().map(Result::unwrap).collect();
    assert_eq!((rows.len(), rows[0].get("loss")), (1, Some(loss(0, 2))));
    let branch = &reader.branches().unwrap()[0];
    assert!(branch.restarted);
    assert_eq!((branch.first_step, branch.last_step, branch.rows), (0, 49, 50));
    assert_eq!(reader.branch_history(0, ..).unwrap().count(), 50);
    assert!(t.store.check("r").unwrap().is_healthy());
}

#[test]
fn the_resume_point_can_come_from_the_environment() {
    let t = temp_store();
    let dir = tempfile::tempdir().unwrap();
    let mut run = t.store.init(options().id("r")).unwrap();
    for step in 0..120 {
        run.log([("loss", loss(step, 1))]).unwrap();
    }
    run.checkpoint_at(99, save(dir.path(), 99)).unwrap();
    assert!(matches!(run.checkpoint_at(500, save(dir.path(), 500)), Err(runstore::Error::BeyondHistory { .. })));
    drop(run);
    let mut process = child("checkpoints::resume_from_environment", &t.path)
        .env("RUNSTORE_RUN_ID", "r")
        .env("RUNSTORE_RESUME", "must")
        .env("RUNSTORE_RESUME_FROM", "checkpoint")
        .spawn()
        .unwrap();
    let mut reports = Reports::of(&mut process);
    assert_eq!(reports.expect("resumed"), "99 100");
    while reports.next().is_some() {}
    assert!(process.wait().unwrap().success());
}

/// Resumes from the environment and reports `resumed <checkpoint step> <next step>`.
#[test]
#[ignore = "a child process of other tests"]
fn resume_from_environment() {
    if std::env::var(CHILD).as_deref() != Ok("checkpoints::resume_from_environment") {
        return;
    }
    let run = Store::from_env().unwrap().init(RunOptions::new()).unwrap();
    let at = run.resumed_checkpoint().map(|c| c.step).unwrap();
    println!("{SAY}resumed {at} {}", run.step());
    run.finish(0).unwrap();
}

#[test]
fn runtime_across_a_crash_does_not_count_the_time_the_run_was_dead() {
    let t = temp_store();
    let mut process = child("writer", &t.path)
        .env("RUNSTORE_RUN_ID", "rt")
        .env("RUNSTORE_RESUME", "allow")
        .env("TEST_ROWS", "50")
        .env("TEST_FLUSH_EVERY", "50")
        .env("TEST_PAUSE_US", "4000")
        .env("TEST_END", "hold")
        .spawn()
        .unwrap();
    let mut reports = Reports::of(&mut process);
    reports.expect("holding");
    process.kill().unwrap();
    process.wait().unwrap();
    let dead = Duration::from_millis(1500);
    std::thread::sleep(dead);
    let mut run = t.store.init(options().id("rt").resume(Resume::Must)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    run.log([("loss", 1.0)]).unwrap();
    run.finish(0).unwrap();

    let rows: Vec<_> = t.store.open_run("rt").unwrap().history(..).unwrap().map(Result::unwrap).collect();
    let (first, last_before, resumed) = (&rows[0], &rows[49], &rows[50]);
    // Wall-clock, the resumed row is more than the dead time after the last row before it...
    let wall = resumed.time().duration_since(last_before.time()).unwrap();
    assert!(wall >= dead, "{wall:?}");
    // ...but its runtime is not: the first attempt's running time, then this attempt's 100 ms.
    let gained = resumed.runtime().checked_sub(last_before.runtime()).expect("runtime does not go back");
    assert!(gained < dead, "runtime grew {gained:?} across {wall:?} of which {dead:?} dead");
    assert!(gained >= Duration::from_millis(100), "{gained:?}");
    assert!(first.runtime() <= last_before.runtime());
    assert!(last_before.runtime() >= Duration::from_millis(150), "50 rows 4 ms apart: {:?}", last_before.runtime());
    assert!(resumed.time() <= SystemTime::now());
}

#[test]
fn series_with_time_gives_each_point_its_rows_time() {
    let t = temp_store();
    let mut run = t.store.init(options().id("ts")).unwrap();
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for step in 0..5000u64 {
        let time = base + Duration::from_millis(step * 50 + step % 3);
        if step % 500 == 0 {
            run.log_at_time(step, time, [("loss", 1.0), ("eval", 2.0)]).unwrap();
        } else {
            run.log_at_time(step, time, [("loss", 1.0)]).unwrap();
        }
    }
    run.finish(0).unwrap();
    let reader = t.store.open_run("ts").unwrap();
    let eval: Vec<_> = reader.series_with_time("eval", ..).unwrap().map(Result::unwrap).collect();
    assert_eq!(eval.len(), 10);
    for (step, time, value) in eval {
        assert_eq!((time, value), (base + Duration::from_millis(step * 50 + step % 3), 2.0));
    }
    let times: Vec<_> = reader.history(..).unwrap().map(|row| row.unwrap().time()).collect();
    assert_eq!(times[4999], base + Duration::from_millis(4999 * 50 + 4999 % 3));
}

#[test]
fn a_fork_resumed_from_checkpoint_with_none_keeps_its_inherited_rows() {
    let t = temp_store();
    let mut base = t.store.init(options().id("base")).unwrap();
    for step in 0..20 {
        base.log_at(step * 2, [("loss", loss(step, 1))]).unwrap();
    }
    base.finish(0).unwrap();
    // A fork at step 25, between the parent's rows 24 and 26: it inherits 13 rows and has
    // none of its own.
    t.store.fork("base", 25, options().id("fork")).unwrap().finish(0).unwrap();
    let run = t.store.init(options().id("fork").resume(Resume::Must).resume_from_checkpoint()).unwrap();
    assert_eq!(run.step(), 26);
    run.finish(0).unwrap();
    let mut fork = t.store.init(options().id("fork").resume(Resume::Must)).unwrap();
    for step in 26..40 {
        fork.log([("loss", loss(step, 2))]).unwrap();
    }
    drop(fork);
    let run = t.store.init(options().id("fork").resume(Resume::Must).resume_from_checkpoint()).unwrap();
    assert_eq!(run.step(), 26, "its own rows archived, the inherited ones kept");
    run.finish(0).unwrap();
    assert_eq!(t.store.open_run("fork").unwrap().history(..).unwrap().count(), 13);
}

#[test]
fn a_fork_refuses_a_checkpoint_of_a_step_before_its_fork_and_stores_nothing() {
    let t = temp_store();
    let mut base = t.store.init(options().id("base")).unwrap();
    for step in 0..50 {
        base.log([("loss", loss(step, 1))]).unwrap();
    }
    base.finish(0).unwrap();
    let mut fork = t.store.fork("base", 30, options().id("fork")).unwrap();
    for step in 31..40 {
        fork.log([("loss", loss(step, 2))]).unwrap();
    }
    let early = save(t.path.parent().unwrap(), 20);
    match fork.checkpoint_at(20, &early) {
        Err(runstore::Error::CheckpointBeforeFork { id, step: 20, parent, fork_step: 30 }) => {
            assert_eq!((id.as_str(), parent.as_str()), ("fork", "base"));
        }
        other => panic!("expected CheckpointBeforeFork, got {other:?}"),
    }
    // At the fork step and after, a checkpoint is the fork's own, and a resume uses it.
    let at_fork = save(t.path.parent().unwrap(), 30);
    assert_eq!(fork.checkpoint_at(30, &at_fork).unwrap().step, 30);
    drop(fork);
    let checkpoints = t.store.open_run("fork").unwrap().checkpoints().unwrap();
    assert_eq!(checkpoints.iter().map(|c| c.step).collect::<Vec<_>>(), [30]);
    let run = t.store.init(options().id("fork").resume(Resume::Must).resume_from_checkpoint()).unwrap();
    assert_eq!(run.step(), 31);
    run.finish(0).unwrap();
}
