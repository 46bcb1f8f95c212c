//! Bad input gets a typed error and leaves stored data intact.

use runstore::{Error, Resume, Store};

use crate::support::{options, row, snapshot, temp_store};

#[test]
fn invalid_run_ids_are_refused_before_any_file_is_touched() {
    let t = temp_store();
    let long = "x".repeat(65);
    for id in ["../x", "a/b", "", long.as_str(), "a\0b", "..", ".", ".hidden", "a\nb", "ａ", "run id"] {
        for policy in [None, Some(Resume::Allow), Some(Resume::Must), Some(Resume::Never), Some(Resume::Auto)] {
            let mut opts = options().id(id);
            if let Some(policy) = policy {
                opts = opts.resume(policy);
            }
            let err = t.store.init(opts).unwrap_err();
            assert!(matches!(err, Error::InvalidRunId { id: ref got, .. } if got == id), "{id:?}: {err:?}");
        }
        assert!(matches!(t.store.open_run(id), Err(Error::InvalidRunId { .. })), "{id:?}");
    }
    assert!(!t.path.exists(), "nothing was created: not even the store directory");
}

#[test]
fn a_step_behind_the_next_one_is_refused_and_nothing_is_dropped() {
    let t = temp_store();
    let mut run = t.store.init(options().id("r")).unwrap();
    for _ in 0..10 {
        run.log(row(run.step())).unwrap();
    }
    run.flush().unwrap();
    let err = run.log_at(5, row(5)).unwrap_err();
    assert!(matches!(err, Error::StepRegression { requested: 5, next: 10, ref id, .. } if id == "r"), "{err:?}");
    assert_eq!(
        err.to_string(),
        "step 5 is behind run \"r\", whose last logged step is 9: log at 9 (merged into that row) or later"
    );
    assert_eq!(run.step(), 10);
    run.finish(0).unwrap();

    // After a resume the counter comes from the store.
    let mut run = t.store.init(options().id("r").resume(Resume::Must)).unwrap();
    assert!(matches!(run.log_at(0, [("loss", 1.0)]), Err(Error::StepRegression { requested: 0, next: 10, .. })));
    run.finish(0).unwrap();
    let info = t.store.open_run("r").unwrap().info().unwrap();
    assert_eq!((info.rows, info.next_step), (10, 10));
}

#[test]
fn the_last_step_of_u64_is_out_of_range() {
    let t = temp_store();
    let mut run = t.store.init(options().id("big")).unwrap();
    run.log_at(u64::MAX - 1, [("x", 1.0)]).unwrap();
    assert!(matches!(run.log(row(0)), Err(Error::StepOutOfRange { step: u64::MAX })));
    run.finish(0).unwrap();
    let reader = t.store.open_run("big").unwrap();
    assert_eq!(reader.series("x", ..).unwrap().map(Result::unwrap).collect::<Vec<_>>(), [(u64::MAX - 1, 1.0)]);
}

#[test]
fn an_invalid_metric_name_refuses_the_whole_row() {
    let t = temp_store();
    let mut run = t.store.init(options().id("m")).unwrap();
    let long = "m".repeat(257);
    for bad in ["", "a\nb", "tab\there", long.as_str()] {
        let err = run.log([("fine", 1.0), (bad, 2.0)]).unwrap_err();
        assert!(matches!(err, Error::InvalidMetricName { .. }), "{bad:?}: {err:?}");
    }
    assert_eq!(run.step(), 0, "no row was logged");
    run.log([("fine", 3.0)]).unwrap();
    run.finish(0).unwrap();
    let reader = t.store.open_run("m").unwrap();
    assert_eq!(reader.metrics().unwrap(), ["fine"], "a refused row leaves no names behind");
    assert_eq!(reader.info().unwrap().rows, 1);
}

#[test]
fn a_config_that_is_not_a_json_object_is_refused() {
    let t = temp_store();
    for config in [serde_json::json!([1, 2]), serde_json::json!("lr=3"), serde_json::json!(null)] {
        let err = t.store.init(options().id("c").config(config)).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
    }
    assert!(!t.path.exists());
}

#[test]
fn a_store_of_a_future_format_is_refused_untouched() {
    let t = temp_store();
    t.store.init(options().id("old")).unwrap().finish(0).unwrap();
    std::fs::write(t.path.join("FORMAT"), br#"{"runstore_format": 99}"#).unwrap();
    let before = snapshot(&t.path);
    let err = Store::open(&t.path).unwrap_err();
    assert!(matches!(err, Error::UnsupportedFormat { found: 99, supported: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("upgrade runstore"), "{err}");
    // A handle opened before the upgrade refuses to write, too.
    assert!(matches!(t.store.init(options().id("new")), Err(Error::UnsupportedFormat { .. })));
    assert_eq!(snapshot(&t.path), before, "nothing on disk changed");
}

/// Rewrites the format marker of run `id`'s database.
fn set_run_format(store: &std::path::Path, id: &str, version: u32) {
    let mut builder = redb::Builder::new();
    builder.set_concurrency_mode(redb::ConcurrencyMode::SingleWriter);
    let db = builder.open(store.join("runs").join(id).join("run.redb")).unwrap();
    let tx = db.begin_write().unwrap();
    let table: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
    tx.open_table(table).unwrap().insert("format", version.to_le_bytes().as_slice()).unwrap();
    tx.commit().unwrap();
}

#[test]
fn a_run_of_a_future_format_is_refused() {
    let t = temp_store();
    t.store.init(options().id("r")).unwrap().finish(0).unwrap();
    set_run_format(&t.path, "r", 7);
    let err = t.store.open_run("r").unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedFormat { found: 7, ref path, .. } if path.ends_with("run.redb")),
        "{err:?}"
    );
    assert!(err.to_string().contains("upgrade runstore"), "{err}");
    let err = t.store.init(options().id("r").resume(Resume::Allow)).unwrap_err();
    assert!(matches!(err, Error::UnsupportedFormat { found: 7, .. }), "{err:?}");
}

#[test]
fn a_run_of_format_1_is_refused_with_how_to_move_it() {
    let t = temp_store();
    let mut run = t.store.init(options().id("old")).unwrap();
    run.log([("loss", 0.5)]).unwrap();
    run.finish(0).unwrap();
    set_run_format(&t.path, "old", 1);
    let err = t.store.open_run("old").unwrap_err();
    assert!(matches!(err, Error::UnsupportedFormat { found: 1, supported: 2, .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("runstore export") && message.contains("log_at"), "{message}");
    let err = t.store.init(options().id("old").resume(Resume::Must)).unwrap_err();
    assert!(matches!(err, Error::UnsupportedFormat { found: 1, .. }), "{err:?}");
    assert!(!t.store.check("old").unwrap().is_healthy());
    // Nothing was changed by the refusals: with its marker back, the run reads as it was.
    set_run_format(&t.path, "old", 2);
    let info = t.store.open_run("old").unwrap().info().unwrap();
    assert_eq!((info.state, info.rows, info.attempts), (runstore::RunState::Finished, 1, 1));
}

#[test]
fn a_store_path_that_is_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"hello").unwrap();
    let err = Store::open(&file).unwrap_err();
    assert!(matches!(err, Error::Io { ref path, .. } if path == &file), "{err:?}");
    assert_eq!(std::fs::read(&file).unwrap(), b"hello");
}

#[test]
fn reading_a_missing_run_is_run_not_found() {
    let t = temp_store();
    assert!(matches!(t.store.open_run("ghost"), Err(Error::RunNotFound { ref id }) if id == "ghost"));
    assert!(!t.store.exists("ghost").unwrap());
}

#[test]
fn an_error_printed_by_main_reads_in_plain_words() {
    let t = temp_store();
    let _run = t.store.init(options().id("r")).unwrap();
    let err = t.store.init(options().id("r").resume(Resume::Must)).unwrap_err();
    // What `fn main() -> Result<(), runstore::Error>` prints after `Error: `.
    let printed = format!("{err:?}");
    assert!(printed.starts_with("RunLocked: run \"r\" is being written by pid "), "{printed}");
    assert!(printed.contains(&format!("pid {} on ", std::process::id())), "{printed}");
    assert!(!printed.contains("SystemTime") && !printed.contains("tv_sec") && !printed.contains('{'), "{printed}");
    assert!(printed.ends_with("wait for it to end, or stop that process"), "{printed}");

    let err = runstore::Store::open(t.path.join("FORMAT")).unwrap_err();
    let printed = format!("{err:?}");
    assert!(printed.starts_with("Io: ") && printed.contains("FORMAT") && !printed.contains("Os {"), "{printed}");
}

#[test]
fn runstore_dir_is_trimmed_and_a_blank_one_means_the_default_store() {
    let work = tempfile::tempdir().unwrap();
    let padded = work.path().join("padded");
    for (value, expected) in
        [("   ".to_string(), work.path().join(".runstore")), (format!(" {} ", padded.display()), padded)]
    {
        let mut command = crate::support::child("writer", &expected);
        command
            .env("RUNSTORE_DIR", &value)
            .env("RUNSTORE_RUN_ID", "r")
            .env("RUNSTORE_RESUME", "allow")
            .env("TEST_ROWS", "1")
            .current_dir(work.path());
        let mut process = command.spawn().unwrap();
        let mut reports = crate::support::Reports::of(&mut process);
        reports.expect("init");
        while reports.next().is_some() {}
        assert!(process.wait().unwrap().success());
        assert!(expected.join("runs/r/run.redb").is_file(), "RUNSTORE_DIR={value:?}: the store is {expected:?}");
    }
    let names: Vec<_> = std::fs::read_dir(work.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "no directory named after blanks or with a trailing blank: {names:?}");
}
