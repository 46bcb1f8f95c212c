//! The journal of `Durability::EveryLog`: each log call's row is durable in it when the call
//! returns; the flusher folds it into the run database, where live readers see it; after a
//! crash the first reader or writer folds what is left, and damage to it costs only the rows
//! after the damage.

use std::time::{Duration, Instant};

use runstore::{Durability, Resume, RunState};

use crate::crash_recovery::assert_standard_prefix;
use crate::support::{Reports, TempStore, child, options, row, temp_store};

fn journal_path(t: &TempStore, id: &str) -> std::path::PathBuf {
    t.path.join("runs").join(id).join("journal")
}

/// Starts a child that logs standard rows with `EveryLog` to run `id` forever, reporting each
/// acknowledged step (and flushing every `flush_every` rows, if given).
fn durable_writer(t: &TempStore, id: &str, flush_every: Option<u64>) -> (std::process::Child, Reports) {
    let mut command = child("writer", &t.path);
    command.env("RUNSTORE_RUN_ID", id).env("RUNSTORE_RESUME", "allow").env("TEST_END", "forever");
    command.env("TEST_DURABLE", "1").env("TEST_FLUSH_ROWS", "1000000");
    if let Some(rows) = flush_every {
        command.env("TEST_FLUSH_EVERY", rows.to_string());
    }
    let mut process = command.spawn().expect("spawn");
    let reports = Reports::of(&mut process);
    (process, reports)
}

/// Reads reports until step `at_least` is acknowledged; returns the last acknowledged step and
/// the last reported flush.
fn logged_until(reports: &mut Reports, at_least: u64) -> (u64, Option<u64>) {
    let mut flushed = None;
    loop {
        let report = reports.next().expect("the child reports");
        if let Some(step) = report.strip_prefix("flushed ") {
            flushed = Some(step.parse().expect("step"));
        } else if let Some(step) = report.strip_prefix("logged ") {
            let step: u64 = step.parse().expect("step");
            if step >= at_least {
                return (step, flushed);
            }
        }
    }
}

#[test]
fn a_reader_folds_the_journal_a_killed_durable_writer_left_past_its_restart() {
    let t = temp_store();
    let (mut process, mut reports) = durable_writer(&t, "d", None);
    // Rows of four metrics take about 90 bytes: the 1 MiB journal fills and starts again in a
    // new epoch after 11 000 or so.
    let (logged, _) = logged_until(&mut reports, 14_000);
    process.kill().expect("SIGKILL");
    process.wait().expect("wait");
    assert!(journal_path(&t, "d").is_file(), "the killed writer left its journal");
    // `check` changes nothing: it notes the records, twice.
    for _ in 0..2 {
        let report = t.store.check("d").expect("check");
        assert!(report.is_healthy(), "{report:?}");
        assert!(report.notes.iter().any(|note| note.detail.contains("did not fold")), "{:?}", report.notes);
    }

    // No writer resumes it: the reader stands in and folds the records.
    let info = t.store.open_run("d").expect("open").info().expect("info");
    assert_eq!(info.state, RunState::Crashed);
    assert!(info.rows > logged, "every acknowledged row reads: {} rows, step {logged} acknowledged", info.rows);
    assert!(!journal_path(&t, "d").exists(), "a folded journal is removed");
    let last = assert_standard_prefix(&t, "d");
    let report = t.store.check("d").expect("check");
    assert!(report.is_healthy() && report.notes.is_empty(), "folded: {report:?}");
    let mut run = t.store.init(options().id("d").resume(Resume::Allow)).expect("resume");
    assert_eq!(run.step(), last + 1, "the resumed attempt goes on after the last row");
    run.log(row(last + 1)).expect("log");
    run.finish(0).expect("finish");
    assert_eq!(assert_standard_prefix(&t, "d"), last + 1, "folded once: no row twice");
}

#[test]
fn a_writer_resuming_a_killed_durable_run_folds_its_journal_first() {
    let t = temp_store();
    let (mut process, mut reports) = durable_writer(&t, "w", None);
    let (logged, _) = logged_until(&mut reports, 300);
    process.kill().expect("SIGKILL");
    process.wait().expect("wait");

    let run = t.store.init(options().id("w").resume(Resume::Allow).durability(Durability::EveryLog)).expect("resume");
    assert!(run.step() > logged, "resumes after every acknowledged row: at {}, acknowledged {logged}", run.step());
    let next = run.step();
    run.finish(0).expect("finish");
    assert_eq!(assert_standard_prefix(&t, "w"), next - 1);
    assert!(!journal_path(&t, "w").exists(), "a finished run keeps no journal");
}

#[test]
fn a_journal_damaged_after_the_crash_costs_only_the_rows_after_the_damage() {
    let t = temp_store();
    // A flush every 100 rows folds the journal: those rows are in the database.
    let (mut process, mut reports) = durable_writer(&t, "x", Some(100));
    let (logged, flushed) = logged_until(&mut reports, 450);
    process.kill().expect("SIGKILL");
    process.wait().expect("wait");
    let flushed = flushed.expect("a flush was reported");

    // Damage the middle of what the journal holds past the last fold: the records, of about
    // one size, run from step 0 at its start to the last at the end of what is used.
    let path = journal_path(&t, "x");
    let mut bytes = std::fs::read(&path).expect("journal");
    let used = bytes.iter().rposition(|&byte| byte != 0).expect("records");
    let per_record = used / usize::try_from(logged + 1).expect("small");
    let middle = used - per_record * usize::try_from((logged - flushed) / 2).expect("small");
    bytes[middle..middle + 64].fill(0x5A);
    std::fs::write(&path, &bytes).expect("damage");

    let last = assert_standard_prefix(&t, "x");
    assert!(last >= flushed, "the folded rows are intact: stored up to {last}, flushed {flushed}");
    assert!(last < logged, "the rows after the damage are not read: stored {last}, acknowledged {logged}");
    let run = t.store.init(options().id("x").resume(Resume::Allow)).expect("resume");
    assert_eq!(run.step(), last + 1);
    run.finish(0).expect("finish");
}

#[test]
fn a_live_reader_sees_durable_rows_once_the_flusher_folds_them() {
    let t = temp_store();
    let durable = options().id("l").durability(Durability::EveryLog).flush_every(1 << 20, Duration::from_millis(50));
    let mut run = t.store.init(durable).expect("init");
    for step in 0..10 {
        run.log(row(step)).expect("log");
    }
    assert!(journal_path(&t, "l").is_file());
    // No flush: the flusher's timer folds the journal.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = t.store.open_run("l").expect("open").info().expect("info");
        assert_eq!(info.state, RunState::Running, "a live writer's journal is its own to fold");
        if info.rows == 10 {
            break;
        }
        assert!(Instant::now() < deadline, "no fold within 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    run.set_summary("best", 0.5).expect("set_summary");
    run.log(row(10)).expect("log");
    run.finish(0).expect("finish");
    let info = t.store.open_run("l").expect("open").info().expect("info");
    assert_eq!((info.rows, info.summary["best"]), (11, 0.5));
    assert!(!journal_path(&t, "l").exists(), "a finished run keeps no journal");
}

#[test]
fn a_journal_record_that_is_whole_but_does_not_decode_is_a_typed_error_and_the_journal_is_kept() {
    let t = temp_store();
    let (mut process, mut reports) = durable_writer(&t, "c", None);
    logged_until(&mut reports, 50);
    process.kill().expect("SIGKILL");
    process.wait().expect("wait");

    // The first record keeps its header; its payload becomes bytes that do not decode, with a
    // checksum that holds (FNV-1a 64 over the header's first 20 bytes and the payload).
    let path = journal_path(&t, "c");
    let mut bytes = std::fs::read(&path).expect("journal");
    let len = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes")) as usize;
    bytes[28..28 + len].fill(0xFF);
    let fnv = |bytes: &[u8]| {
        bytes
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
    };
    let mut checked = bytes[..20].to_vec();
    checked.extend_from_slice(&bytes[28..28 + len]);
    let check = fnv(&checked);
    bytes[20..28].copy_from_slice(&check.to_le_bytes());
    std::fs::write(&path, &bytes).expect("damage");
    let before = crate::support::snapshot(&t.path.join("runs").join("c"));

    match t.store.init(options().id("c").resume(Resume::Allow)) {
        Err(runstore::Error::Corrupt { path: named, .. }) => assert_eq!(named, path),
        other => panic!("expected Corrupt naming the journal, got {other:?}"),
    }
    // A reader reads what the database holds, and leaves the journal for a writer to report.
    let info = t.store.open_run("c").expect("open").info().expect("info");
    assert_eq!((info.state, info.rows), (RunState::Crashed, 0));
    let after = crate::support::snapshot(&t.path.join("runs").join("c"));
    let files = |files: &[(std::path::PathBuf, Vec<u8>)]| -> Vec<std::path::PathBuf> {
        files.iter().map(|(path, _)| path.clone()).collect()
    };
    assert_eq!(files(&after), files(&before), "no file came or went");
    let journal =
        |files: &[(std::path::PathBuf, Vec<u8>)]| files.iter().find(|(p, _)| *p == path).map(|(_, b)| b.clone());
    assert_eq!(journal(&after), journal(&before), "the journal is untouched");
}
