//! Damaged files: run databases truncated, zeroed and bit-flipped, lock files full of garbage,
//! a run directory without its database, a damaged store marker and `auto` pointer. A damaged
//! run gives a clear error naming its file — never a panic, even where redb itself panics on
//! the bytes — the rest of the store stays readable, and `Store::check` / `runstore check`
//! report what is wrong. A damaged file that still reads must read back intact, or `check` must
//! say it is damaged: nothing is silently wrong.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use runstore::{Error, Integrity, Resume, RunState, Store};

use crate::support::{TempStore, options, row, temp_store};

/// Everything a reader can get out of a run, as comparable text; or the first error.
fn digest(store: &Store, id: &str) -> Result<String, Error> {
    let reader = store.open_run(id)?;
    let info = reader.info()?;
    let mut text = format!(
        "{:?} {:?} {:?} {} {:?} {:?}",
        info.rows,
        info.next_step,
        info.state,
        info.attempts,
        info.summary.iter().map(|(k, v)| (k.clone(), v.to_bits())).collect::<Vec<_>>(),
        reader.metrics()?
    );
    for attempt in reader.attempts()? {
        write!(text, "{:?}{:?}{:?}", attempt.first_step, attempt.last_step, attempt.outcome).unwrap();
    }
    let mut history = reader.history(..)?;
    while let Some(row) = history.next_row()? {
        write!(text, "{}:{:?};", row.step(), row.points().iter().map(|(m, v)| (*m, v.to_bits())).collect::<Vec<_>>())
            .unwrap();
    }
    for branch in reader.branches()? {
        write!(text, "b{}:{}", branch.id, branch.rows).unwrap();
        for row in reader.branch_history(branch.id, ..)? {
            let row = row?;
            write!(
                text,
                "{}:{:?};",
                row.step(),
                row.iter().map(|(m, v)| (m.to_string(), v.to_bits())).collect::<Vec<_>>()
            )
            .unwrap();
        }
    }
    Ok(text)
}

/// A store with two healthy runs (one a fork of the other) and the victim: 3000 rows with a
/// rewind, finished.
fn damaged_store() -> (TempStore, PathBuf) {
    let t = temp_store();
    let mut run = t.store.init(options().id("healthy")).unwrap();
    for _ in 0..500 {
        run.log(row(run.step())).unwrap();
    }
    run.rewind(400).unwrap();
    run.log(row(401)).unwrap();
    run.finish(0).unwrap();
    t.store.fork("healthy", 300, options().id("fork")).unwrap().finish(0).unwrap();
    let mut run = t.store.init(options().id("victim")).unwrap();
    for _ in 0..3000 {
        run.log(row(run.step())).unwrap();
        if run.step().is_multiple_of(700) {
            run.flush().unwrap();
        }
    }
    run.rewind(2500).unwrap();
    for _ in 0..200 {
        run.log(row(run.step())).unwrap();
    }
    run.finish(0).unwrap();
    let path = t.path.join("runs/victim/run.redb");
    (t, path)
}

/// The ways a file is damaged: (name, damaged bytes).
fn damages(original: &[u8], count: usize) -> Vec<(String, Vec<u8>)> {
    let len = original.len();
    let mut out = Vec::new();
    for cut in [0, 1, 512, 4096, len / 2, len - 4096, len - 1] {
        out.push((format!("truncated to {cut} bytes"), original[..cut].to_vec()));
    }
    let mut zeroed = original.to_vec();
    zeroed.fill(0);
    out.push(("zeroed whole".into(), zeroed));
    let pages = len / 4096;
    let stride = (pages / (count / 3).max(1)).max(1);
    for page in (0..pages).step_by(stride) {
        let mut bytes = original.to_vec();
        bytes[page * 4096..(page + 1) * 4096].fill(0);
        out.push((format!("page {page} zeroed"), bytes));
    }
    let flips = count.saturating_sub(out.len()).max(1);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..flips {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Half in the first pages (headers, tree roots), half anywhere.
        let offset = if i % 2 == 0 {
            usize::try_from(state % 8192).unwrap()
        } else {
            usize::try_from(state % len as u64).unwrap()
        };
        let mut bytes = original.to_vec();
        let bit = 1u8 << ((state >> 32) % 8);
        bytes[offset] ^= if i % 5 == 0 { 0xFF } else { bit };
        out.push((format!("byte {offset} flipped"), bytes));
    }
    out
}

/// What became of one damaged file.
#[derive(Debug, Default)]
struct Sweep {
    files: usize,
    errors: usize,
    engine_panics_caught: usize,
    intact: usize,
    changed_but_flagged: usize,
    check_flagged: usize,
    writer_errors: usize,
}

fn sweep(count: usize) -> Sweep {
    let (t, path) = damaged_store();
    let original = std::fs::read(&path).unwrap();
    let good = digest(&t.store, "victim").unwrap();
    let others = (digest(&t.store, "healthy").unwrap(), digest(&t.store, "fork").unwrap());
    let mut result = Sweep::default();
    for (n, (damage, bytes)) in damages(&original, count).into_iter().enumerate() {
        std::fs::write(&path, &bytes).unwrap();
        result.files += 1;
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| digest(&t.store, "victim")))
            .unwrap_or_else(|_| panic!("{damage}: a panic escaped the library"));
        let check = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.store.check("victim")))
            .unwrap_or_else(|_| panic!("{damage}: a panic escaped check"))
            .unwrap_or_else(|error| panic!("{damage}: check fails instead of reporting: {error}"));
        if !check.is_healthy() {
            result.check_flagged += 1;
            assert!(
                check.problems.iter().all(|p| p.path.starts_with(t.path.join("runs/victim"))),
                "{damage}: {check:?}"
            );
        }
        match read {
            Ok(text) if text == good => result.intact += 1,
            Ok(_) => {
                // The bytes decode to something else: check must say the file is damaged.
                assert!(!check.is_healthy(), "{damage}: the run reads differently and check finds nothing");
                result.changed_but_flagged += 1;
            }
            Err(error) => {
                result.errors += 1;
                match &error {
                    Error::Corrupt { path: p, detail } => {
                        assert_eq!(p, &path, "{damage}: {error}");
                        if detail.contains("storage engine failed") {
                            result.engine_panics_caught += 1;
                        }
                    }
                    Error::Storage { path: p, .. } | Error::Io { path: p, .. } => {
                        assert!(p.starts_with(t.path.join("runs/victim")), "{damage}: {error}");
                    }
                    other => panic!("{damage}: an untyped failure: {other:?}"),
                }
                assert!(error.to_string().contains("victim"), "{damage}: the message names the file: {error}");
                assert!(!check.is_healthy(), "{damage}: reading fails ({error}) but check finds nothing");
            }
        }
        // A writer on the damaged run: a typed error or a working run, never a panic.
        let write = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<(), Error> {
            let mut run = t.store.init(options().id("victim").resume(Resume::Allow))?;
            run.log(row(run.step()))?;
            run.finish(0)
        }))
        .unwrap_or_else(|_| panic!("{damage}: a panic escaped the writer"));
        if write.is_err() {
            result.writer_errors += 1;
        }
        // The other runs are untouched and still read.
        if n % 8 == 0 {
            assert_eq!((digest(&t.store, "healthy").unwrap(), digest(&t.store, "fork").unwrap()), others, "{damage}");
            let ids = t.store.run_ids().unwrap();
            assert!(ids.contains(&"healthy".to_string()) && ids.contains(&"fork".to_string()));
        }
    }
    eprintln!("damaged files: {result:?}");
    result
}

#[test]
fn a_damaged_run_file_gives_a_typed_error_naming_it_or_reads_intact_and_check_tells_which() {
    let result = sweep(60);
    assert!(result.errors > 0 && result.check_flagged > 0, "{result:?}");
}

/// The long version: a few hundred damaged files. `cargo test --test it damaged -- --ignored`.
#[test]
#[ignore = "the long version"]
fn many_damaged_run_files_give_typed_errors_or_read_intact() {
    let result = sweep(600);
    assert!(result.errors > 0, "{result:?}");
}

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
fn lock_files_with_garbage_are_harmless_and_noted() {
    let t = temp_store();
    for id in ["junk", "huge", "wrong-types", "empty"] {
        let mut run = t.store.init(options().id(id)).unwrap();
        run.log(row(0)).unwrap();
        run.finish(0).unwrap();
    }
    let lock = |id: &str| t.path.join("runs").join(id).join("lock");
    std::fs::write(lock("junk"), [0xFF, 0x00, 0xC3, 0x28, b'{', b'"']).unwrap();
    std::fs::write(lock("huge"), vec![b'x'; 1 << 20]).unwrap();
    std::fs::write(lock("wrong-types"), br#"{"pid":"me","host":7,"since":-1}"#).unwrap();
    std::fs::write(lock("empty"), b"").unwrap();
    for id in ["junk", "huge", "wrong-types", "empty"] {
        let info = t.store.open_run(id).unwrap().info().unwrap();
        assert_eq!(info.state, RunState::Finished, "{id}");
        let check = t.store.check(id).unwrap();
        assert!(check.is_healthy(), "{id}: garbage in a lock file is not damage: {check:?}");
        if id != "empty" {
            assert!(check.notes.iter().any(|note| note.path == lock(id)), "{id}: noted: {check:?}");
        }
        // Held by someone who wrote garbage: refused, naming an unknown holder.
        let held = File::options().read(true).write(true).open(lock(id)).unwrap();
        held.try_lock().unwrap();
        match t.store.init(options().id(id).resume(Resume::Must)) {
            Err(Error::RunLocked { holder, .. }) => assert_eq!(holder.pid, 0, "{id}"),
            other => panic!("{id}: {other:?}"),
        }
        assert_eq!(t.store.open_run(id).unwrap().holder().unwrap().map(|h| h.pid), Some(0));
        drop(held);
        // Free again: the next writer rewrites the record.
        let run = t.store.init(options().id(id).resume(Resume::Must)).unwrap();
        let holder: serde_json::Value = serde_json::from_slice(&std::fs::read(lock(id)).unwrap()).unwrap();
        assert_eq!(holder["pid"], std::process::id());
        run.finish(0).unwrap();
    }
    // A lock that is a directory: a typed error naming it, for the writer; a problem for check.
    std::fs::remove_file(lock("junk")).unwrap();
    std::fs::create_dir(lock("junk")).unwrap();
    match t.store.init(options().id("junk").resume(Resume::Must)) {
        Err(Error::Io { path, .. }) => assert_eq!(path, lock("junk")),
        other => panic!("{other:?}"),
    }
    let check = t.store.check("junk").unwrap();
    assert!(check.problems.iter().any(|p| p.path == lock("junk")), "{check:?}");
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
