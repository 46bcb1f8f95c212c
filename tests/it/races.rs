//! Races between processes: eight processes racing `init` on one id with every policy; readers
//! following a live writer; `runstore ls` while runs are created (and deleted). No process may
//! see a second writer, a half-created run or a torn row, and the run is consistent after.

use std::fs::File;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use runstore::RunState;

use crate::support::{Reports, TempStore, child, options, row, shm_store, temp_store};

const RACERS: usize = 8;
const ROWS: u64 = 20;

/// How the winner behaves: holds the run until every racer has tried, or finishes at once so
/// that later racers may resume it in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Winner {
    Holds,
    Finishes,
}

/// The outcomes of one round: each racer's `init` report (`ok ID STEP ATTEMPT RESUMED` or
/// `err VARIANT ...`).
struct Round {
    outcomes: Vec<String>,
}

impl Round {
    fn ok(&self) -> Vec<&String> {
        self.outcomes.iter().filter(|outcome| outcome.starts_with("ok ")).collect()
    }

    fn errors(&self) -> Vec<&str> {
        self.outcomes.iter().filter_map(|o| o.strip_prefix("err ")?.split(' ').next()).collect()
    }

    fn created(&self) -> usize {
        self.ok().iter().filter(|outcome| outcome.ends_with(" false")).count()
    }
}

/// Starts [`RACERS`] writers on `id` with `policy` (`None`: an id without a policy; `id` empty:
/// no id), releases them at once, and collects their outcomes.
fn race(t: &TempStore, id: &str, policy: Option<&str>, winner: Winner, cwd: &Path) -> Round {
    let go_dir = tempfile::tempdir().unwrap();
    let go = go_dir.path().join("go");
    let mut racers: Vec<(Child, Reports)> = (0..RACERS)
        .map(|_| {
            let mut command = child("writer", &t.path);
            command.current_dir(cwd).env("TEST_GO", &go).env("TEST_ROWS", ROWS.to_string());
            command.env("TEST_END", if winner == Winner::Holds { "hold" } else { "finish:0" });
            if !id.is_empty() {
                command.env("RUNSTORE_RUN_ID", id);
            }
            if let Some(policy) = policy {
                command.env("RUNSTORE_RESUME", policy);
            }
            let mut process = command.spawn().expect("spawn a racer");
            let reports = Reports::of(&mut process);
            (process, reports)
        })
        .collect();
    File::create(&go).unwrap();
    let outcomes: Vec<String> = racers.iter_mut().map(|(_, reports)| reports.expect("init")).collect();
    for (process, reports) in &mut racers {
        drop(process.stdin.take());
        while reports.next().is_some() {}
        assert!(process.wait().unwrap().success(), "a racer failed: {outcomes:?}");
    }
    Round { outcomes }
}

/// The run is consistent: it reads whole, `check` finds nothing, its history is the standard
/// rows `0..rows`, and its attempts follow one another without overlapping.
fn assert_consistent(t: &TempStore, id: &str, rows: u64, attempts: usize) {
    let reader = t.store.open_run(id).unwrap();
    let info = reader.info().unwrap();
    assert_eq!((info.rows, info.next_step), (rows, rows), "{id}");
    let mut step = 0;
    for stored in reader.history(..).unwrap() {
        let stored = stored.unwrap();
        assert_eq!(stored.step(), step);
        for (name, value) in row(step) {
            assert_eq!(stored.get(name).map(f64::to_bits), Some(value.to_bits()), "{id} step {step} {name}");
        }
        step += 1;
    }
    assert_eq!(step, rows);
    let list = reader.attempts().unwrap();
    assert_eq!(list.len(), attempts, "{id}: one attempt per process that won the run: {list:?}");
    for pair in list.windows(2) {
        let ended = pair[0].ended_at.expect("an earlier attempt ended");
        assert!(pair[1].started_at >= ended, "{id}: attempts overlap, so two writers were live at once: {list:?}");
        assert_eq!(pair[1].first_step, pair[0].last_step.map_or(0, |last| last + 1), "{id}: {list:?}");
    }
    let check = t.store.check(id).unwrap();
    assert!(check.is_healthy(), "{id}: {:?}", check.problems);
}

/// A finished run `id` with the standard rows `0..ROWS`.
fn existing(t: &TempStore, id: &str) {
    let mut run = t.store.init(options().id(id)).unwrap();
    for step in 0..ROWS {
        run.log(row(step)).unwrap();
    }
    run.finish(0).unwrap();
}

#[test]
fn eight_processes_racing_init_on_one_id_get_exactly_the_allowed_outcomes_with_every_policy() {
    let t = temp_store();
    let cwd = tempfile::tempdir().unwrap();
    let here = cwd.path();
    let mut rounds = 0;

    // allow, absent, the winner holds: one creates it, everyone else is refused as locked.
    let round = race(&t, "allow-new", Some("allow"), Winner::Holds, here);
    assert_eq!((round.ok().len(), round.created()), (1, 1), "{:?}", round.outcomes);
    assert!(round.errors().iter().all(|e| *e == "RunLocked"), "{:?}", round.outcomes);
    assert_consistent(&t, "allow-new", ROWS, 1);
    rounds += 1;

    // allow, absent, each winner finishes at once: one creates it, later ones may resume it in
    // turn; the rows of every winner follow one another.
    let round = race(&t, "allow-relay", Some("allow"), Winner::Finishes, here);
    assert_eq!(round.created(), 1, "{:?}", round.outcomes);
    assert!(round.errors().iter().all(|e| *e == "RunLocked"), "{:?}", round.outcomes);
    let winners = round.ok().len();
    assert_consistent(&t, "allow-relay", ROWS * winners as u64, winners);
    rounds += 1;

    // must, absent: nobody creates anything.
    let round = race(&t, "must-new", Some("must"), Winner::Holds, here);
    assert!(round.errors().iter().all(|e| *e == "RunNotFound") && round.ok().is_empty(), "{:?}", round.outcomes);
    assert!(!t.store.exists("must-new").unwrap());
    rounds += 1;

    // must, present, the winner holds: one resumes it, the others are refused.
    existing(&t, "must-old");
    let round = race(&t, "must-old", Some("must"), Winner::Holds, here);
    assert_eq!((round.ok().len(), round.created()), (1, 0), "{:?}", round.outcomes);
    assert!(round.errors().iter().all(|e| *e == "RunLocked"), "{:?}", round.outcomes);
    assert_consistent(&t, "must-old", 2 * ROWS, 2);
    rounds += 1;

    // must, present, winners finish: resumed in turn, never at once.
    existing(&t, "must-relay");
    let round = race(&t, "must-relay", Some("must"), Winner::Finishes, here);
    assert_eq!(round.created(), 0, "{:?}", round.outcomes);
    assert!(round.errors().iter().all(|e| *e == "RunLocked"), "{:?}", round.outcomes);
    let winners = round.ok().len();
    assert_consistent(&t, "must-relay", ROWS * (1 + winners as u64), 1 + winners);
    rounds += 1;

    // never, absent, even when winners finish at once: exactly one creates it.
    let round = race(&t, "never-new", Some("never"), Winner::Finishes, here);
    assert_eq!((round.ok().len(), round.created()), (1, 1), "{:?}", round.outcomes);
    assert!(round.errors().iter().all(|e| *e == "RunLocked" || *e == "RunExists"), "{:?}", round.outcomes);
    assert_consistent(&t, "never-new", ROWS, 1);
    rounds += 1;

    // never, present: nobody touches it.
    existing(&t, "never-old");
    let before = crate::support::snapshot(&t.path.join("runs/never-old"));
    let round = race(&t, "never-old", Some("never"), Winner::Holds, here);
    assert!(round.errors().iter().all(|e| *e == "RunExists") && round.ok().is_empty(), "{:?}", round.outcomes);
    assert_eq!(crate::support::snapshot(&t.path.join("runs/never-old")), before, "the run's files are untouched");
    rounds += 1;

    // An id without a policy behaves as never.
    let round = race(&t, "bare-new", None, Winner::Holds, here);
    assert_eq!((round.ok().len(), round.created()), (1, 1), "{:?}", round.outcomes);
    assert!(round.errors().iter().all(|e| *e == "RunLocked" || *e == "RunExists"), "{:?}", round.outcomes);
    assert_consistent(&t, "bare-new", ROWS, 1);
    rounds += 1;

    // auto without an id and without a pointer: each process starts its own run.
    let round = race(&t, "", Some("auto"), Winner::Finishes, here);
    assert_eq!(round.created(), RACERS, "{:?}", round.outcomes);
    let mut ids: Vec<&str> = round.ok().iter().map(|o| o.split(' ').nth(1).unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), RACERS, "distinct generated ids: {:?}", round.outcomes);
    for id in ids {
        assert_consistent(&t, id, ROWS, 1);
    }
    rounds += 1;

    // auto with this directory's pointer at a crashed run: one resumes it; to the others it is
    // then live, not crashed, so each starts a run of its own (never a second writer).
    let crashed_dir = tempfile::tempdir().unwrap();
    let mut command = child("writer", &t.path);
    command.current_dir(crashed_dir.path()).env("RUNSTORE_RESUME", "auto").env("TEST_ROWS", ROWS.to_string());
    command.env("TEST_FLUSH_EVERY", ROWS.to_string()).env("TEST_END", "exit:9");
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(9));
    let crashed = String::from_utf8(output.stdout).unwrap();
    let crashed_id = crashed.lines().find_map(|l| l.strip_prefix("@@ init ok ")).unwrap().split(' ').next().unwrap();
    // The reader that recovers the crashed database takes the run's lock for a moment; a child
    // that another test thread forks meanwhile shares that lock until it execs (flock follows
    // the open file description), so the run may look live for a moment.
    let reader = t.store.open_run(crashed_id).unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while reader.state().unwrap() == RunState::Running && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(reader.state().unwrap(), RunState::Crashed);
    let round = race(&t, "", Some("auto"), Winner::Holds, crashed_dir.path());
    assert_eq!((round.ok().len(), round.created()), (RACERS, RACERS - 1), "{:?}", round.outcomes);
    let resumed = round.ok().iter().filter(|o| o.contains(crashed_id)).count();
    assert_eq!(resumed, 1, "exactly one resumes the crashed run: {:?}", round.outcomes);
    assert_consistent(&t, crashed_id, 2 * ROWS, 2);
    for other in round.ok().iter().filter(|o| !o.contains(crashed_id)) {
        assert_consistent(&t, other.split(' ').nth(1).unwrap(), ROWS, 1);
    }
    rounds += 1;

    let all = t.store.check_all().unwrap();
    assert!(all.is_healthy(), "{all:?}");
    eprintln!("races: {rounds} rounds of {RACERS} processes racing init");
}

#[test]
fn several_readers_following_a_live_writer_each_see_a_growing_bit_exact_prefix() {
    let t = shm_store();
    let mut writer = child("writer", &t.path);
    writer
        .env("RUNSTORE_RUN_ID", "followed")
        .env("RUNSTORE_RESUME", "allow")
        .env("TEST_ROWS", "2000")
        .env("TEST_FLUSH_EVERY", "37")
        .env("TEST_PAUSE_US", "100")
        .env("TEST_END", "finish:0");
    let followers: Vec<(Child, Reports)> = (0..4)
        .map(|_| {
            let mut command = child("follower", &t.path);
            command.env("TEST_FOLLOW", "followed");
            let mut process = command.spawn().expect("spawn a follower");
            let reports = Reports::of(&mut process);
            (process, reports)
        })
        .collect();
    let mut writer = writer.spawn().expect("spawn the writer");
    let mut writer_reports = Reports::of(&mut writer);
    for (mut process, mut reports) in followers {
        let mut sizes = Vec::new();
        let done = loop {
            let report = reports.next().expect("a follower report");
            assert!(!report.starts_with("bad"), "a follower saw a torn or wrong history: {report}");
            if let Some(rows) = report.strip_prefix("saw ") {
                sizes.push(rows.parse::<u64>().unwrap());
            }
            if let Some(rows) = report.strip_prefix("done ") {
                break rows.parse::<u64>().unwrap();
            }
        };
        assert_eq!(done, 2000, "the follower saw the whole history at the end");
        assert!(sizes.len() >= 3, "the follower saw the history grow: {sizes:?}");
        assert!(process.wait().unwrap().success());
    }
    while writer_reports.next().is_some() {}
    assert!(writer.wait().unwrap().success());
}

/// Readers and a fork beside a process that churns the fork's parent: it resumes it, logs a
/// metric new to each attempt, rewinds, finishes and compacts, again and again. Each snapshot of
/// the parent is whole, and the fork's history, made before, never changes.
#[test]
fn readers_and_a_fork_stay_consistent_while_the_parent_logs_new_metrics_rewinds_finishes_and_compacts() {
    let t = temp_store();
    let mut parent = t.store.init(options().id("parent")).unwrap();
    for step in 0..100 {
        parent.log(row(step)).unwrap();
    }
    parent.finish(0).unwrap();
    t.store.fork("parent", 80, options().id("fork")).unwrap().finish(0).unwrap();
    // Rows as steps and value bits: NaN values must compare equal to themselves.
    let bits = |history: runstore::History| -> Vec<(u64, Vec<(String, u64)>)> {
        history
            .map(|row| {
                let row = row.unwrap();
                (row.step(), row.iter().map(|(name, value)| (name.to_string(), value.to_bits())).collect())
            })
            .collect()
    };
    let fork_rows = bits(t.store.open_run("fork").unwrap().history(..).unwrap());
    assert_eq!(fork_rows.len(), 81);

    let mut command = child("churner", &t.path);
    command.env("RUNSTORE_RUN_ID", "parent").env("TEST_ATTEMPTS", "12");
    let mut process = command.spawn().expect("spawn the churner");
    let mut reports = Reports::of(&mut process);
    reports.expect("attempt 0");
    let (done, mut snapshots, mut problems) = (std::sync::atomic::AtomicBool::new(false), 0, Vec::new());
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            while reports.next().is_some_and(|report| report != "done") {}
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let parent = t.store.open_run("parent").unwrap();
        let fork = t.store.open_run("fork").unwrap();
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let snapshot = parent.snapshot().unwrap();
            let info = snapshot.info().unwrap();
            let rows: Vec<runstore::Row> = snapshot.history(..).unwrap().map(Result::unwrap).collect();
            if (rows.len() as u64, rows.last().map(runstore::Row::step)) != (info.rows, info.last_step) {
                problems.push(format!("parent: {} rows, progress {info:?}", rows.len()));
            }
            if bits(fork.history(..).unwrap()) != fork_rows {
                problems.push("the fork's history changed".to_string());
            }
            snapshots += 1;
        }
        waiter.join().unwrap();
    });
    assert!(process.wait().unwrap().success());
    assert!(problems.is_empty(), "{} problems in {snapshots} reads, the first: {:?}", problems.len(), problems.first());
    assert!(snapshots > 10, "{snapshots} reads beside the writer");
    let check = t.store.check_all().unwrap();
    assert!(check.is_healthy(), "{:?}", check.runs.iter().map(|run| &run.problems).collect::<Vec<_>>());
}
