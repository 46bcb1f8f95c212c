//! `runstore ls` while runs are created and deleted by other processes: never a half-created run,
//! never a failure for a run that went away.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};

use runstore::RunState;

use crate::support::{Reports, child, shm_store};

/// `runstore ls --json` on `store`: its runs, with exit 0 and nothing on stderr.
fn ls(store: &Path) -> Result<Vec<serde_json::Value>, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_runstore"))
        .arg("--dir")
        .arg(store)
        .args(["ls", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() || !stderr.is_empty() {
        return Err(format!("exit {:?}: {stderr}", output.status.code()));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|error| format!("{error}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// Starts the child and a thread that reads its reports: the receiver gets its `done` report.
fn spawn_reporting(command: &mut Command) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = command.spawn().unwrap();
    let mut reports = Reports::of(&mut child);
    let (send, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = send.send(reports.expect("done"));
        // Read to the end, so that the child's last lines find a reader.
        while reports.next().is_some() {}
    });
    (child, done)
}

#[test]
fn ls_never_reports_a_half_created_run_while_runs_are_created() {
    let t = shm_store();
    let store = runstore::Store::open(&t.path).unwrap();
    let mut creator = child("creator", &t.path);
    creator.env("TEST_COUNT", "30");
    let (mut creator, done) = spawn_reporting(&mut creator);
    let started = Instant::now();
    let mut listings = 0;
    let mut library_listings = 0;
    loop {
        let finished = done.try_recv().is_ok();
        let runs = ls(&t.path).unwrap_or_else(|error| panic!("ls failed during creation: {error}"));
        for run in &runs {
            let state = run["state"].as_str().unwrap();
            assert!(state == "running" || state == "finished", "a run half created or lost: {run}");
        }
        listings += 1;
        // The library's listing, too.
        for info in store.runs().expect("Store::runs during creation") {
            assert!(matches!(info.state, RunState::Running | RunState::Finished), "{info:?}");
        }
        library_listings += 1;
        if finished {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the creator did not finish");
    }
    assert!(creator.wait().unwrap().success());
    assert_eq!(ls(&t.path).unwrap().len(), 30);
    assert!(listings >= 5, "ls ran {listings} times while runs were created");
    eprintln!("races: ls ran {listings} times and Store::runs {library_listings} times during 30 creations");
}

#[test]
fn ls_skips_runs_deleted_while_it_lists() {
    let t = shm_store();
    let mut creator = child("creator", &t.path);
    creator.env("TEST_COUNT", "30").env("TEST_DELETE", "1");
    let (mut creator, done) = spawn_reporting(&mut creator);
    let mut failures = Vec::new();
    let mut listings = 0;
    loop {
        let finished = done.try_recv().is_ok();
        if let Err(error) = ls(&t.path) {
            failures.push(error);
        }
        listings += 1;
        if finished {
            break;
        }
    }
    assert!(creator.wait().unwrap().success());
    assert_eq!(ls(&t.path).unwrap().len(), 2);
    assert!(failures.is_empty(), "ls failed {} of {listings} times: {failures:?}", failures.len());
}

/// `tail -f` on a run that rewinds faster than it polls: each poll reads one snapshot, so each
/// rewind is announced once, and the last value printed for each step is the live one.
#[test]
fn tail_follows_rapid_rewinds_announcing_each_once_and_ending_on_the_live_values() {
    use std::io::Read;
    let t = crate::support::temp_store();
    let mut run = t.store.init(crate::support::options().id("r")).unwrap();
    for step in 0..20u32 {
        run.log([("x", f64::from(step))]).unwrap();
    }
    run.flush().unwrap();
    let mut tail = Command::new(env!("CARGO_BIN_EXE_runstore"))
        .arg("--dir")
        .arg(&t.path)
        .args(["tail", "-f", "-n", "0", "r", "--format", "jsonl"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut stdout, mut stderr) = (tail.stdout.take().unwrap(), tail.stderr.take().unwrap());
    let reading = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text)
    });
    std::thread::sleep(Duration::from_millis(300));
    for epoch in 1..=120u32 {
        for _ in 0..6 {
            let step = run.step();
            #[allow(clippy::cast_precision_loss)]
            run.log([("x", f64::from(epoch) * 1e6 + step as f64)]).unwrap();
        }
        run.flush().unwrap();
        let back = run.step() - 4;
        run.rewind(back).unwrap();
        std::thread::sleep(Duration::from_millis(3));
    }
    run.finish(0).unwrap();
    assert!(tail.wait().unwrap().success());
    let mut warnings = String::new();
    stderr.read_to_string(&mut warnings).unwrap();
    let mut announced: Vec<u64> =
        warnings.lines().map(|line| line.rsplit("branch ").next().unwrap().trim().parse().expect(line)).collect();
    let count = announced.len();
    announced.sort_unstable();
    announced.dedup();
    assert_eq!(announced.len(), count, "a rewind announced twice: {warnings}");
    assert!(count > 0, "tail saw rewinds");

    let mut last_printed = std::collections::BTreeMap::new();
    for line in reading.join().unwrap().unwrap().lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        last_printed.insert(row["step"].as_u64().unwrap(), row["x"].as_f64().unwrap());
    }
    let live: std::collections::BTreeMap<u64, f64> = t
        .store
        .open_run("r")
        .unwrap()
        .history(20..)
        .unwrap()
        .map(|row| row.map(|row| (row.step(), row.get("x").unwrap())))
        .collect::<Result<_, _>>()
        .unwrap();
    let printed_live: std::collections::BTreeMap<u64, f64> =
        last_printed.iter().filter(|(step, _)| live.contains_key(step)).map(|(&s, &v)| (s, v)).collect();
    assert_eq!(printed_live, live, "the last value printed for each live step is its live value");
}
