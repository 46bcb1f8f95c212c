//! One snapshot per read: a read that answers several things answers them from one commit,
//! whatever a live writer (in another thread here: the locks are per open file description, as
//! between processes) commits, rewinds or finishes meanwhile; and a fork reads the same
//! inherited history whatever its parent does after the fork.

// Steps are small here: exact as f64.
#![allow(clippy::cast_precision_loss)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use runstore::{Resume, RunState};

use crate::support::{options, temp_store};

/// A finished run `id` with `loss = step` at steps `0..rows`.
fn finished_run(store: &runstore::Store, id: &str, rows: u64) {
    let mut run = store.init(options().id(id)).unwrap();
    for step in 0..rows {
        run.log([("loss", step as f64)]).unwrap();
    }
    run.finish(0).unwrap();
}

/// The steps and `loss` values of a history.
fn losses(history: runstore::History) -> Vec<(u64, Option<f64>)> {
    history.map(|row| row.map(|row| (row.step(), row.get("loss")))).collect::<Result<_, _>>().unwrap()
}

#[test]
fn a_fork_stays_readable_when_its_parent_logs_a_new_metric_after_the_fork() {
    let t = temp_store();
    let mut parent = t.store.init(options().id("parent")).unwrap();
    for step in 0..200u64 {
        parent.log([("loss", step as f64)]).unwrap();
    }
    parent.flush().unwrap();
    let fork = t.store.fork("parent", 100, options().id("fork")).unwrap();
    fork.finish(0).unwrap();
    // The parent tops up the block that holds the fork step with a metric the fork never saw.
    parent.log([("loss", 200.0), ("acc", 0.5)]).unwrap();
    parent.finish(0).unwrap();

    let expected: Vec<(u64, Option<f64>)> = (0..=100).map(|step| (step, Some(step as f64))).collect();
    let reader = t.store.open_run("fork").unwrap();
    assert_eq!(losses(reader.history(..).unwrap()), expected);
    let check = t.store.check("fork").unwrap();
    assert!(check.is_healthy(), "{:?}", check.problems);

    // The same once the parent's rows after 50, the new metric's included, are archived.
    t.store.rewind("parent", 50).unwrap();
    assert_eq!(losses(reader.history(..).unwrap()), expected);
    let check = t.store.check("fork").unwrap();
    assert!(check.is_healthy(), "{:?}", check.problems);
}

#[test]
fn an_open_history_of_a_fork_keeps_its_rows_when_the_parent_is_rewound_and_relogged() {
    let t = temp_store();
    finished_run(&t.store, "parent", 200);
    t.store.fork("parent", 100, options().id("fork")).unwrap().finish(0).unwrap();
    let history = t.store.open_run("fork").unwrap().history(..).unwrap();

    t.store.rewind("parent", 50).unwrap();
    let mut parent = t.store.init(options().id("parent").resume(Resume::Must)).unwrap();
    for step in 51..=60 {
        parent.log_at(step, [("loss", -1.0)]).unwrap();
    }
    parent.finish(0).unwrap();

    let expected: Vec<(u64, Option<f64>)> = (0..=100).map(|step| (step, Some(step as f64))).collect();
    assert_eq!(losses(history), expected, "the history opened before the rewind");
    assert_eq!(losses(t.store.open_run("fork").unwrap().history(..).unwrap()), expected, "one opened after");
}

/// Runs `read` in 4 threads, as often as they can, while a writer logs a new metric in each of
/// 30 rows (a flush each) and finishes; then once more after. Returns what `read` said was wrong.
fn beside_a_finishing_writer(rounds: u32, read: impl Fn(&runstore::RunReader) -> Option<String> + Sync) -> Vec<String> {
    let t = temp_store();
    let mut problems = Vec::new();
    for round in 0..rounds {
        let id = format!("r{round}");
        let mut run = t.store.init(options().id(&id)).unwrap();
        run.log([("m0", 0.0)]).unwrap();
        run.flush().unwrap();
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let readers: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        let reader = t.store.open_run(&id).unwrap();
                        let mut found = Vec::new();
                        while !done.load(Ordering::SeqCst) {
                            found.extend(read(&reader));
                        }
                        found.extend(read(&reader));
                        found
                    })
                })
                .collect();
            for metric in 1..30 {
                run.log([(format!("m{metric}"), f64::from(metric))]).unwrap();
                run.flush().unwrap();
            }
            run.log([("last", 1.0)]).unwrap();
            run.finish(0).unwrap();
            std::thread::sleep(Duration::from_millis(5));
            done.store(true, Ordering::SeqCst);
            for reader in readers {
                problems.extend(reader.join().unwrap());
            }
        });
    }
    problems
}

#[test]
fn info_of_a_run_that_finishes_with_new_metrics_never_reports_damage() {
    let problems = beside_a_finishing_writer(6, |reader| match reader.info() {
        Ok(info) if info.state == RunState::Crashed => Some("a live or finished run read as crashed".into()),
        Ok(_) => None,
        Err(error) => Some(error.to_string()),
    });
    assert!(problems.is_empty(), "{} problems, the first: {:?}", problems.len(), problems.first());
}

#[test]
fn attempts_read_beside_a_finishing_writer_are_each_of_one_commit() {
    let problems = beside_a_finishing_writer(6, |reader| {
        let attempts = reader.attempts().unwrap();
        let last = attempts.last()?;
        let closed = last.ended_at.is_some() && last.last_step.is_some() && last.exit_code.is_some();
        match last.outcome {
            Some(RunState::Finished) if !closed => Some(format!("finished but not closed: {last:?}")),
            Some(RunState::Crashed) => Some(format!("a live run's attempt read as crashed: {last:?}")),
            _ => None,
        }
    });
    assert!(problems.is_empty(), "{} problems, the first: {:?}", problems.len(), problems.first());
}

#[test]
fn check_of_a_live_fork_finds_no_damage_while_it_logs() {
    let t = temp_store();
    finished_run(&t.store, "parent", 100);
    let mut fork = t.store.fork("parent", 50, options().id("fork")).unwrap();
    let done = AtomicBool::new(false);
    let problems = std::thread::scope(|scope| {
        let checker = scope.spawn(|| {
            let mut problems = Vec::new();
            for _ in 0..40 {
                let check = t.store.check("fork").unwrap();
                problems.extend(check.problems.into_iter().map(|problem| problem.detail));
            }
            done.store(true, Ordering::SeqCst);
            problems
        });
        while !done.load(Ordering::SeqCst) {
            for _ in 0..10 {
                fork.log([("loss", 0.5)]).unwrap();
            }
            fork.flush().unwrap();
        }
        checker.join().unwrap()
    });
    fork.finish(0).unwrap();
    assert!(problems.is_empty(), "{} problems, the first: {:?}", problems.len(), problems.first());
}

#[test]
fn forks_of_a_parent_that_logs_and_rewinds_record_the_rows_they_inherit() {
    let t = temp_store();
    let mut parent = t.store.init(options().id("parent")).unwrap();
    for step in 0..2000u64 {
        parent.log([("loss", step as f64)]).unwrap();
    }
    parent.flush().unwrap();
    let done = AtomicBool::new(false);
    let forks = std::thread::scope(|scope| {
        let forker = scope.spawn(|| {
            let mut forks = Vec::new();
            for n in 0..150 {
                let id = format!("fork-{n}");
                t.store.fork("parent", 1000, options().id(&id)).unwrap().finish(0).unwrap();
                forks.push(id);
            }
            done.store(true, Ordering::SeqCst);
            forks
        });
        while !done.load(Ordering::SeqCst) {
            for _ in 0..50 {
                for _ in 0..10 {
                    parent.log([("loss", 0.0)]).unwrap();
                }
                parent.flush().unwrap();
            }
            parent.rewind(1500).unwrap();
            parent.flush().unwrap();
        }
        forker.join().unwrap()
    });
    parent.finish(0).unwrap();
    for id in forks {
        let reader = t.store.open_run(&id).unwrap();
        assert_eq!(reader.info().unwrap().rows, 1001, "{id}");
        let check = t.store.check(&id).unwrap();
        assert!(check.is_healthy(), "{id}: {:?}", check.problems);
    }
}
