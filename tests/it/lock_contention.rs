//! One writer per run: the per-run OS lock, across processes and within one.

use std::fs::File;

use runstore::{Error, Resume};

use crate::children::variant;
use crate::support::{Reports, child, options, temp_store};

#[test]
fn two_processes_racing_to_create_one_id_with_never_cannot_both_win() {
    let t = temp_store();
    let go_dir = tempfile::tempdir().unwrap();
    for round in 0..8 {
        let id = format!("race-{round}");
        let go = go_dir.path().join(format!("go-{round}"));
        let mut processes: Vec<_> = (0..2)
            .map(|_| {
                let mut command = child("writer", &t.path);
                command
                    .env("RUNSTORE_RUN_ID", &id)
                    .env("RUNSTORE_RESUME", "never")
                    .env("TEST_GO", &go)
                    .env("TEST_ROWS", "50")
                    .env("TEST_END", if round % 2 == 0 { "finish:0" } else { "hold" });
                let mut process = command.spawn().expect("spawn");
                let reports = Reports::of(&mut process);
                (process, reports)
            })
            .collect();
        File::create(&go).unwrap();
        let outcomes: Vec<String> = processes.iter_mut().map(|(_, reports)| reports.expect("init")).collect();
        for (process, reports) in &mut processes {
            drop(process.stdin.take());
            while reports.next().is_some() {}
            assert!(process.wait().unwrap().success());
        }
        let winners = outcomes.iter().filter(|o| o.starts_with("ok")).count();
        assert_eq!(winners, 1, "round {round}: {outcomes:?}");
        let loser = outcomes.iter().find(|o| o.starts_with("err")).expect("a loser");
        assert!(loser.starts_with("err RunLocked") || loser.starts_with("err RunExists"), "round {round}: {loser}");
        let attempts = t.store.open_run(&id).unwrap().attempts().unwrap();
        assert_eq!(attempts.len(), 1, "round {round}: one process created the run, nobody else touched it");
        assert_eq!(t.store.open_run(&id).unwrap().info().unwrap().rows, 50);
    }
}

#[test]
fn a_second_writer_on_a_live_run_is_refused_at_once_naming_the_holder() {
    let t = temp_store();
    let mut command = child("writer", &t.path);
    command
        .env("RUNSTORE_RUN_ID", "live")
        .env("RUNSTORE_RESUME", "allow")
        .env("TEST_ROWS", "10")
        .env("TEST_END", "hold");
    let mut process = command.spawn().expect("spawn");
    let mut reports = Reports::of(&mut process);
    reports.expect("holding");

    for policy in [Resume::Allow, Resume::Must, Resume::Auto] {
        let started = std::time::Instant::now();
        let err = t.store.init(options().id("live").resume(policy)).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "refused without waiting for the holder");
        match err {
            Error::RunLocked { id, holder } => {
                assert_eq!(id, "live");
                assert_eq!(holder.pid, process.id(), "the error names the holder's pid");
                assert!(!holder.host.is_empty());
                let message = Error::RunLocked { id, holder: holder.clone() }.to_string();
                assert!(message.contains(&format!("pid {}", process.id())), "{message}");
            }
            other => panic!("expected RunLocked, got {} ({other})", variant(&other)),
        }
    }
    assert_eq!(t.store.open_run("live").unwrap().state().unwrap(), runstore::RunState::Running);

    drop(process.stdin.take());
    reports.expect("finished");
    assert!(process.wait().unwrap().success());
    let run = t.store.init(options().id("live").resume(Resume::Must)).expect("free once the holder finished");
    assert_eq!(run.step(), 10);
}

#[test]
fn a_second_handle_in_the_same_process_is_refused() {
    let t = temp_store();
    let run = t.store.init(options().id("one").resume(Resume::Allow)).unwrap();
    let err = t.store.init(options().id("one").resume(Resume::Allow)).unwrap_err();
    assert!(matches!(err, Error::RunLocked { ref holder, .. } if holder.pid == std::process::id()), "{err:?}");
    drop(run);
    assert!(t.store.init(options().id("one").resume(Resume::Allow)).is_ok(), "dropping the handle releases the lock");
}

#[test]
fn finish_releases_the_os_lock() {
    let t = temp_store();
    let run = t.store.init(options().id("f").resume(Resume::Allow)).unwrap();
    let lock = File::open(t.path.join("runs/f/lock")).unwrap();
    assert!(lock.try_lock().is_err(), "held while the run is live");
    run.finish(0).unwrap();
    assert!(lock.try_lock().is_ok(), "released by finish");
}

/// A writer that takes the run's lock must find the database closed: whoever held the lock
/// before (a racer refused with `RunExists`, a winner that finished) closes the database before
/// it lets the lock go. Threads of one process race as processes would: both locks are per open
/// file description.
#[test]
fn racers_refused_after_the_lock_never_see_the_database_still_open() {
    let t = temp_store();
    let racers = 8;
    for round in 0..120 {
        let id = format!("relay-{round}");
        let barrier = std::sync::Barrier::new(racers);
        let outcomes: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..racers)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        match t.store.init(options().id(&id).resume(Resume::Never)) {
                            Ok(run) => {
                                run.finish(0).unwrap();
                                "ok".to_string()
                            }
                            Err(error) => format!("err {} {error}", variant(&error)),
                        }
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).collect()
        });
        assert_eq!(outcomes.iter().filter(|o| *o == "ok").count(), 1, "round {round}: {outcomes:?}");
        assert!(
            outcomes.iter().all(|o| o == "ok" || o.starts_with("err RunExists") || o.starts_with("err RunLocked")),
            "round {round}: {outcomes:?}"
        );
    }
}

/// `check` of a run nobody writes copies its database without taking the run's lock, so a
/// writer that starts meanwhile (a cron check beside a starting job) is never refused: the lock
/// is watched from another thread through a whole series of checks, and never seen held.
#[test]
fn check_never_holds_the_run_lock_so_a_starting_writer_is_never_refused() {
    let t = temp_store();
    let mut run = t.store.init(options().id("big")).unwrap();
    for step in 0..30_000 {
        run.log(crate::support::row(step)).unwrap();
    }
    run.finish(0).unwrap();
    let lock = File::open(t.path.join("runs/big/lock")).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let held = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut held = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                match lock.try_lock_shared() {
                    Ok(()) => lock.unlock().unwrap(),
                    Err(_) => held += 1,
                }
            }
            held
        });
        let reports: Vec<_> = (0..30).map(|_| t.store.check("big")).collect();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        for report in reports {
            let report = report.unwrap();
            assert!(report.is_healthy(), "{:?}", report.problems);
            assert_eq!(report.integrity, runstore::Integrity::Verified);
        }
        watcher.join().unwrap()
    });
    assert_eq!(held, 0, "the lock was seen held {held} times during the checks");
    // And a writer starting during a check starts.
    std::thread::scope(|scope| {
        let checker = scope.spawn(|| t.store.check("big").unwrap());
        for _ in 0..10 {
            t.store.init(options().id("big").resume(Resume::Must)).unwrap().end_keeping_state().unwrap();
        }
        assert!(checker.join().unwrap().is_healthy());
    });
}
