//! The command line beside damaged files: `ls`, `show`, `history` and `check` name the damaged run
//! and go on with the rest; where redb panics on the bytes, the command reports damage.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use runstore::{Error, Integrity, Resume, Store};

use crate::damage::{damaged_store, damages, digest};
use crate::support::{options, row, temp_store};

/// `runstore` at `store`.
fn cli(store: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_runstore"));
    for variable in ["RUNSTORE_DIR", "RUNSTORE_RUN_ID", "RUNSTORE_RESUME", "RUNSTORE_PROJECT"] {
        command.env_remove(variable);
    }
    command.arg("--dir").arg(store).stdin(Stdio::null());
    command
}

fn exec(command: &mut Command) -> (i32, String, String) {
    let output = command.output().unwrap();
    (
        output.status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn where_redb_panics_on_a_damaged_file_the_library_and_the_cli_report_it_as_damage() {
    let (t, path) = damaged_store();
    let original = std::fs::read(&path).unwrap();
    // Find damage that makes redb panic: the library turns it into `Corrupt`.
    let mut found = None;
    for (damage, bytes) in damages(&original, 200) {
        std::fs::write(&path, &bytes).unwrap();
        if let Err(Error::Corrupt { detail, .. }) = digest(&t.store, "victim")
            && detail.contains("storage engine failed")
        {
            found = Some(damage);
            break;
        }
    }
    let damage = found.expect("some damage that makes the storage engine panic");
    let (code, stdout, stderr) = exec(cli(&t.path).args(["history", "victim"]));
    assert!(code == 1 || code == 0, "{damage}: exit {code}: {stderr}");
    if code == 1 {
        assert_eq!(stderr.lines().count(), 1, "{damage}: one line, no panic message: {stderr:?} {stdout:.200}");
        assert!(stderr.contains("victim/run.redb is damaged"), "{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    let (code, stdout, stderr) = exec(cli(&t.path).args(["check", "victim"]));
    assert_eq!(code, 1, "{stdout} {stderr}");
    assert!(stdout.contains("DAMAGED victim") && stdout.contains("victim/run.redb"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn with_one_damaged_run_the_others_list_read_and_check_healthy() {
    let (t, path) = damaged_store();
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 4096].fill(0);
    std::fs::write(&path, &bytes).unwrap();
    bytes.truncate(bytes.len() / 3);
    std::fs::write(&path, &bytes).unwrap();

    let (code, stdout, stderr) = exec(cli(&t.path).args(["ls"]));
    assert_eq!(code, 1, "ls fails at the end: {stderr}");
    assert!(stdout.contains("healthy") && stdout.contains("fork"), "the others are listed: {stdout}");
    assert!(stderr.contains("victim") && stderr.contains("run.redb"), "the damaged run is named: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let (code, _, stderr) = exec(cli(&t.path).args(["show", "victim"]));
    assert_eq!(code, 1);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("victim/run.redb"), "{stderr}");
    for id in ["healthy", "fork"] {
        let (code, _, stderr) = exec(cli(&t.path).args(["show", id]));
        assert_eq!(code, 0, "{id}: {stderr}");
        let (code, stdout, _) = exec(cli(&t.path).args(["check", id]));
        assert_eq!(code, 0, "{stdout}");
        assert!(stdout.starts_with(&format!("ok {id}:")) && stdout.contains("integrity verified"), "{stdout}");
    }
    let (code, stdout, stderr) = exec(cli(&t.path).args(["check"]));
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("DAMAGED victim") && stdout.contains("ok healthy") && stdout.contains("ok fork"),
        "{stdout}"
    );
    assert!(stdout.contains("3 runs checked") && stdout.contains("1 damaged"), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let (code, stdout, _) = exec(cli(&t.path).args(["check", "--json"]));
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["healthy"], false);
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    let victim = runs.iter().find(|run| run["id"] == "victim").unwrap();
    assert_eq!(victim["healthy"], false);
    assert!(victim["problems"][0]["path"].as_str().unwrap().ends_with("victim/run.redb"), "{victim}");
    // The library agrees.
    let all = t.store.check_all().unwrap();
    assert!(!all.is_healthy());
    assert!(all.runs.iter().filter(|run| run.id != "victim").all(runstore::RunCheck::is_healthy), "{all:?}");
    assert!(t.store.runs().is_err(), "Store::runs stops at the damaged run, as documented");
    assert_eq!(t.store.run_ids().unwrap(), ["fork", "healthy", "victim"]);
}

#[test]
fn a_run_directory_without_its_database_is_no_run_and_check_says_so() {
    let t = temp_store();
    let mut run = t.store.init(options().id("kept")).unwrap();
    run.log(row(0)).unwrap();
    run.finish(0).unwrap();
    let runs = t.path.join("runs");
    std::fs::create_dir(runs.join("empty")).unwrap();
    std::fs::create_dir(runs.join("lock-only")).unwrap();
    std::fs::write(runs.join("lock-only/lock"), br#"{"pid":1,"host":"h","since":0}"#).unwrap();
    std::fs::create_dir(runs.join("partial")).unwrap();
    std::fs::write(runs.join("partial/run.redb.partial"), vec![7; 10_000]).unwrap();
    std::fs::create_dir(runs.join("db-is-dir")).unwrap();
    std::fs::create_dir(runs.join("db-is-dir/run.redb")).unwrap();
    std::fs::write(runs.join("stray-file"), b"x").unwrap();
    std::fs::create_dir(runs.join(".not-an-id")).unwrap();

    assert_eq!(t.store.run_ids().unwrap(), ["kept"]);
    assert_eq!(t.store.runs().unwrap().len(), 1);
    for id in ["empty", "lock-only", "partial", "db-is-dir"] {
        assert!(matches!(t.store.open_run(id), Err(Error::RunNotFound { .. })), "{id}");
    }
    let (code, stdout, stderr) = exec(cli(&t.path).args(["ls"]));
    assert_eq!((code, stderr.as_str()), (0, ""), "{stdout}");
    assert!(stdout.contains("kept"));
    let report = t.store.check_all().unwrap();
    let by_id = |id: &str| report.runs.iter().find(|run| run.id == id).unwrap();
    for id in ["empty", "lock-only", "partial"] {
        assert!(by_id(id).is_healthy(), "{id}: {:?}", by_id(id));
        assert!(by_id(id).notes[0].detail.contains("no run"), "{id}: {:?}", by_id(id).notes);
    }
    assert!(by_id("partial").notes[0].detail.contains("interrupted"));
    assert!(!by_id("db-is-dir").is_healthy());
    assert!(by_id("kept").is_healthy() && by_id("kept").integrity == Integrity::Verified);
    assert_eq!(report.notes.len(), 2, "the stray file and the directory with an invalid name: {:?}", report.notes);
    // `allow` creates a run where a creation was interrupted.
    for id in ["empty", "lock-only", "partial"] {
        let mut run = t.store.init(options().id(id).resume(Resume::Allow)).unwrap();
        assert!(!run.resumed(), "{id}");
        run.log(row(0)).unwrap();
        run.finish(0).unwrap();
    }
    assert!(matches!(t.store.init(options().id("db-is-dir").resume(Resume::Allow)), Err(Error::Io { .. })));
    assert!(
        t.store.check_all().unwrap().runs.iter().filter(|r| r.id != "db-is-dir").all(runstore::RunCheck::is_healthy)
    );
}

#[test]
fn a_damaged_store_marker_or_auto_pointer_is_named_or_ignored() {
    let t = temp_store();
    t.store.init(options().id("r")).unwrap().finish(0).unwrap();
    for marker in [&b""[..], b"\xFF\xFE", b"{\"runstore_format\": \"one\"}", b"[]"] {
        std::fs::write(t.path.join("FORMAT"), marker).unwrap();
        match Store::open(&t.path) {
            Err(Error::Corrupt { path, .. }) => assert_eq!(path, t.path.join("FORMAT")),
            other => panic!("{marker:?}: {other:?}"),
        }
        let (code, _, stderr) = exec(cli(&t.path).args(["ls"]));
        assert_eq!(code, 1);
        assert!(stderr.contains("FORMAT is damaged") && stderr.lines().count() == 1, "{stderr}");
    }
    std::fs::write(t.path.join("FORMAT"), br#"{"runstore_format":1}"#).unwrap();
    // A garbage auto pointer for a working directory: auto starts a new run there.
    let cwd = tempfile::tempdir().unwrap();
    let first = t.store.init(options().resume(Resume::Auto).working_dir(cwd.path())).unwrap();
    let id = first.id().to_string();
    drop(first); // failed: auto resumes it next time
    let pointers: Vec<PathBuf> =
        std::fs::read_dir(t.path.join("auto")).unwrap().map(|entry| entry.unwrap().path()).collect();
    assert_eq!(pointers.len(), 1);
    File::create(&pointers[0]).unwrap().write_all(b"\x00garbage").unwrap();
    let second = t.store.init(options().resume(Resume::Auto).working_dir(cwd.path())).unwrap();
    assert!(!second.resumed() && second.id() != id, "a damaged pointer is ignored");
    second.finish(0).unwrap();
    std::fs::write(t.path.join("auto/0000000000000000.json"), b"{{{").unwrap();
    let report = t.store.check_all().unwrap();
    assert!(report.is_healthy(), "{report:?}");
    assert!(report.notes.iter().any(|note| note.path.ends_with("0000000000000000.json")), "{:?}", report.notes);
}
