//! A table of hostile input through the library and the command line: run ids with `/`, `..`,
//! NUL, newlines, 10 000 characters and unicode look-alikes; metric names empty or huge; NaN and
//! infinities everywhere; steps near `u64::MAX`; configs that are not JSON objects; a store
//! directory that is a file, read-only, or not ours to read. Each gets a typed error or a
//! documented behaviour, never a panic, and nothing on disk changes unless the input was valid.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use runstore::{Error, Resume, RunOptions, RunState, Store};

use crate::children::variant;
use crate::support::{TempStore, hostile_ids, options, snapshot, temp_store};

/// Inputs tried, for the README's figures (printed by each test).
static TRIED: AtomicU64 = AtomicU64::new(0);

fn tried(n: u64) {
    TRIED.fetch_add(n, Ordering::Relaxed);
}

/// The binary with none of the test's own `RUNSTORE_*` variables, in `cwd`.
fn cli(store: &Path, cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_runstore"));
    for variable in ["RUNSTORE_DIR", "RUNSTORE_RUN_ID", "RUNSTORE_RESUME", "RUNSTORE_PROJECT"] {
        command.env_remove(variable);
    }
    command.arg("--dir").arg(store).current_dir(cwd).stdin(Stdio::null());
    command
}

/// Runs the command: (exit code, stdout, stderr).
fn outcome(command: &mut Command) -> (i32, String, String) {
    let output = output_of_copy(command);
    (
        output.status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `command`, whose program may be a binary this process just copied: while another test
/// thread starts a child, the child holds the copy's file open until it execs, and running the
/// copy fails with "Text file busy" (ETXTBSY) for that moment. Retried, briefly.
fn output_of_copy(command: &mut Command) -> std::process::Output {
    for _ in 0..100 {
        match command.output() {
            Err(error) if error.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            result => return result.expect("run the command"),
        }
    }
    panic!("{command:?} stayed busy for 2 s");
}

/// Asserts exit `code`, and one `runstore: ` line on stderr containing `says`, without a panic.
fn assert_refused(command: &mut Command, code: i32, says: &str) {
    let described = format!("{command:?}");
    let (got, stdout, stderr) = outcome(command);
    assert_eq!(got, code, "{described}: stdout {stdout:?} stderr {stderr:?}");
    assert!(!stderr.contains("panicked"), "{described}: {stderr}");
    if code == 2 && stderr.starts_with("error:") {
        return; // clap's usage error
    }
    assert_eq!(stderr.lines().count(), 1, "{described}: one line: {stderr:?}");
    assert!(stderr.starts_with("runstore: ") && stderr.contains(says), "{described}: {stderr:?} should say {says:?}");
}

/// A store with a finished run `base` (steps 0..50) and a scratch working directory.
fn cli_store() -> (TempStore, tempfile::TempDir) {
    let t = temp_store();
    let mut base = t.store.init(options().id("base")).unwrap();
    for _ in 0..50 {
        base.log(crate::support::row(base.step())).unwrap();
    }
    base.finish(0).unwrap();
    (t, tempfile::tempdir().unwrap())
}

#[test]
fn hostile_run_ids_are_refused_by_every_command_and_nothing_changes() {
    let (t, cwd) = cli_store();
    let before = (snapshot(&t.path), snapshot(cwd.path()));
    // NUL cannot be passed in an argument; every other hostile id is.
    let ids: Vec<String> = hostile_ids().into_iter().filter(|id| !id.contains('\0') && !id.is_empty()).collect();
    let commands: Vec<Vec<&str>> = vec![
        vec!["show"],
        vec!["history"],
        vec!["tail"],
        vec!["plot"],
        vec!["export", "--format", "csv", "-o", "-"],
        vec!["log", "--resume", "allow", "x=1"],
        vec!["rewind", "--to", "0"],
        vec!["fork", "--at", "0"],
        vec!["check"],
    ];
    let mut calls = Vec::new();
    for id in &ids {
        for words in &commands {
            let mut command = cli(&t.path, cwd.path());
            command.arg(words[0]);
            if id.starts_with('-') {
                command.arg("--").arg(id);
            } else {
                command.arg(id);
            }
            command.args(&words[1..]);
            calls.push(command);
        }
        let mut fork_to = cli(&t.path, cwd.path());
        fork_to.args(["fork", "base", "--at", "1", "--id"]).arg(id);
        calls.push(fork_to);
        // Environment values are trimmed (a shell's `$(cat id-file)` keeps a newline): a
        // blank id is no id, a padded valid one is that id; those cases are checked below.
        if runstore::validate_run_id(id.trim()).is_err() && !id.trim().is_empty() {
            let mut from_environment = cli(&t.path, cwd.path());
            from_environment.env("RUNSTORE_RUN_ID", id).args(["log", "x=1"]);
            calls.push(from_environment);
        }
    }
    assert_refused(cli(&t.path, cwd.path()).env("RUNSTORE_RUN_ID", " \t").args(["log", "x=1"]), 2, "needs a run id");
    assert_refused(
        cli(&t.path, cwd.path()).env("RUNSTORE_RUN_ID", " a").args(["log", "x=1"]),
        3,
        "\"a\" does not exist",
    );
    let count = calls.len();
    // Four at a time: each call is a process.
    let chunks: Vec<Vec<Command>> =
        calls.into_iter().fold(vec![Vec::new(), Vec::new(), Vec::new(), Vec::new()], |mut acc, c| {
            let shortest = (0..4).min_by_key(|&i| acc[i].len()).unwrap_or(0);
            acc[shortest].push(c);
            acc
        });
    std::thread::scope(|scope| {
        for chunk in chunks {
            scope.spawn(move || {
                for mut command in chunk {
                    assert_refused(&mut command, 2, "invalid run id");
                }
            });
        }
    });
    assert_eq!((snapshot(&t.path), snapshot(cwd.path())), before, "nothing on disk changed, no file was written");
    tried(count as u64);
    eprintln!("hostile input: {count} commands with hostile run ids");
}

#[test]
fn hostile_metric_names_are_refused_whole_and_odd_valid_ones_round_trip() {
    let t = temp_store();
    let mut run = t.store.init(options().id("m")).unwrap();
    run.log([("kept", 1.0)]).unwrap();
    run.flush().unwrap();
    let before = snapshot(&t.path);
    let huge = "m".repeat(10_000);
    let just_over = "m".repeat(257);
    let hostile = ["", "a\nb", "tab\there", "nul\0", "\u{7f}", "esc\u{1b}[31m", huge.as_str(), just_over.as_str()];
    for name in hostile {
        let error = run.log([("kept", 2.0), (name, 1.0)]).unwrap_err();
        assert!(matches!(error, Error::InvalidMetricName { .. }), "{name:?}: {error:?}");
        assert!(error.to_string().len() < 400, "the message stays short for a huge name");
        let error = run.set_summary(name, 1.0).unwrap_err();
        assert!(matches!(error, Error::InvalidMetricName { .. }), "{name:?}: {error:?}");
        assert!(runstore::validate_metric_name(name).is_err());
    }
    assert_eq!(run.step(), 1, "no row was logged");
    run.flush().unwrap();
    assert_eq!(snapshot(&t.path), before, "a refused row changes nothing on disk");

    // Odd but valid names are stored and read back exactly, through the library and the CLI.
    let max = "m".repeat(256);
    let odd = ["名前", "a,b\"c", "a=b", " ", "🙂", "../../etc/passwd", "-rf", max.as_str()];
    for (i, name) in odd.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        run.log([(*name, i as f64)]).unwrap();
    }
    run.finish(0).unwrap();
    let reader = t.store.open_run("m").unwrap();
    let metrics = reader.metrics().unwrap();
    assert_eq!(metrics[1..], odd.map(String::from));
    let cwd = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = outcome(cli(&t.path, cwd.path()).args(["history", "m", "--format", "jsonl"]));
    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<serde_json::Value> = stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    for (i, name) in odd.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let expected = i as f64;
        assert_eq!(rows[i + 1][*name].as_f64(), Some(expected), "{name:?} through jsonl");
    }
    let (code, stdout, _) = outcome(cli(&t.path, cwd.path()).args(["history", "m", "--format", "csv"]));
    assert_eq!(code, 0);
    assert!(stdout.lines().next().unwrap().contains("\"a,b\"\"c\""), "RFC 4180 quoting: {stdout}");

    // Through the command line.
    let before = snapshot(&t.path);
    let huge_pair = format!("{huge}=1");
    for pair in ["=1", "a\nb=1", huge_pair.as_str(), "x=", "x=abc", "x=0x10", "x=1,5", "noequals"] {
        assert_refused(cli(&t.path, cwd.path()).args(["log", "m"]).arg(pair), 2, "");
    }
    assert_eq!(snapshot(&t.path), before, "a refused log changes nothing");
    tried((hostile.len() * 3 + odd.len() + 8) as u64);
}

#[test]
fn nan_and_infinities_everywhere_are_stored_and_returned_bit_exact() {
    let t = temp_store();
    let specials = [
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7FF0_0000_0000_0001), // signalling NaN
        f64::from_bits(0x7FF8_DEAD_BEEF_0000), // NaN with a payload
        f64::from_bits(0xFFFF_FFFF_FFFF_FFFF),
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        5e-324,
        -5e-324,
        f64::MIN_POSITIVE,
        f64::MAX,
        f64::MIN,
    ];
    let mut run = t.store.init(options().id("nan")).unwrap();
    // Every metric takes every special value, in every position of a block; one column is all
    // NaN; one is NaN in only some rows.
    for step in 0..2000u64 {
        let n = specials.len() as u64;
        let pick = |offset: u64| specials[usize::try_from((step + offset) % n).unwrap()];
        let mut points = vec![("a", pick(0)), ("b", pick(step / n)), ("all-nan", f64::NAN)];
        if step % 3 == 0 {
            points.push(("sparse", pick(7)));
        }
        run.log(points).unwrap();
    }
    run.set_summary("best", f64::NAN).unwrap();
    run.finish(0).unwrap();
    let check = |store: &Store| {
        let reader = store.open_run("nan").unwrap();
        let mut rows = 0u64;
        for row in reader.history(..).unwrap() {
            let row = row.unwrap();
            let step = row.step();
            let n = specials.len() as u64;
            let pick = |offset: u64| specials[usize::try_from((step + offset) % n).unwrap()].to_bits();
            assert_eq!(row.get("a").map(f64::to_bits), Some(pick(0)), "step {step}");
            assert_eq!(row.get("b").map(f64::to_bits), Some(pick(step / n)), "step {step}");
            assert_eq!(row.get("all-nan").map(f64::to_bits), Some(f64::NAN.to_bits()));
            assert_eq!(row.get("sparse").map(f64::to_bits), (step % 3 == 0).then(|| pick(7)), "step {step}");
            rows += 1;
        }
        assert_eq!(rows, 2000);
        let series: Vec<(u64, u64)> =
            reader.series("b", 100..=200).unwrap().map(|p| p.map(|(s, v)| (s, v.to_bits())).unwrap()).collect();
        assert_eq!(series.len(), 101);
        let info = reader.info().unwrap();
        assert_eq!(info.summary["best"].to_bits(), f64::NAN.to_bits());
        assert_eq!(info.summary["a"].to_bits(), specials[1999 % specials.len()].to_bits());
    };
    check(&t.store);
    // After a resume, a rewind and a compaction, still bit-exact.
    let run = t.store.init(options().id("nan").resume(Resume::Must)).unwrap();
    run.finish(0).unwrap();
    check(&t.store);

    // Through the command line: NaN and infinities go in as words and come out as documented.
    let cwd = tempfile::tempdir().unwrap();
    let (code, _, stderr) = outcome(cli(&t.path, cwd.path()).args([
        "log",
        "--resume",
        "allow",
        "cli",
        "a=nan",
        "b=inf",
        "c=-inf",
        "d=NaN",
        "e=-0",
        "f=1e999",
        "g=infinity",
    ]));
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = outcome(cli(&t.path, cwd.path()).args(["history", "cli", "--format", "jsonl"]));
    assert_eq!(code, 0);
    let row: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(row["a"], "NaN");
    assert_eq!(row["b"], "inf");
    assert_eq!(row["c"], "-inf");
    assert_eq!(row["d"], "NaN");
    assert_eq!(row["f"], "inf", "1e999 is documented as a number: it overflows to inf");
    let info = t.store.open_run("cli").unwrap().info().unwrap();
    assert_eq!(info.summary["e"].to_bits(), (-0.0f64).to_bits());
    tried(2000 * 4 + 8);
}

#[test]
fn steps_near_the_top_of_u64_are_handled_or_refused_by_type() {
    let t = temp_store();
    let mut run = t.store.init(options().id("top")).unwrap();
    run.log_at(u64::MAX - 3, [("x", 1.0)]).unwrap();
    run.log_at(u64::MAX - 1, [("x", 2.0)]).unwrap();
    assert!(matches!(run.log_at(u64::MAX, [("x", 3.0)]), Err(Error::StepOutOfRange { step: u64::MAX })));
    assert!(matches!(run.log([("x", 3.0)]), Err(Error::StepOutOfRange { step: u64::MAX })));
    assert!(matches!(run.log_at(0, [("x", 3.0)]), Err(Error::StepRegression { .. })));
    run.finish(0).unwrap();
    let reader = t.store.open_run("top").unwrap();
    let all: Vec<u64> = reader.history(..).unwrap().map(|row| row.unwrap().step()).collect();
    assert_eq!(all, [u64::MAX - 3, u64::MAX - 1]);
    assert_eq!(reader.history(u64::MAX - 1..=u64::MAX).unwrap().count(), 1);
    assert_eq!(reader.history(u64::MAX..).unwrap().count(), 0);
    assert_eq!(reader.history(..0).unwrap().count(), 0);
    assert_eq!(reader.series("x", u64::MAX - 2..u64::MAX).unwrap().count(), 1);
    let info = reader.info().unwrap();
    assert_eq!((info.next_step, info.last_step), (u64::MAX, Some(u64::MAX - 1)));
    drop(reader);

    // Resuming at u64::MAX: the run takes no more rows, but can be rewound and forked.
    let mut run = t.store.init(options().id("top").resume(Resume::Must)).unwrap();
    assert_eq!(run.step(), u64::MAX);
    assert!(matches!(run.log([("x", 1.0)]), Err(Error::StepOutOfRange { .. })));
    assert!(matches!(run.rewind(u64::MAX), Err(Error::BeyondHistory { .. })));
    let branch = run.rewind(u64::MAX - 2).unwrap().unwrap();
    assert_eq!((branch.first_step, branch.last_step, branch.rows), (u64::MAX - 1, u64::MAX - 1, 1));
    assert_eq!(run.step(), u64::MAX - 1);
    run.log([("x", 4.0)]).unwrap();
    run.finish(0).unwrap();
    let fork = t.store.fork("top", u64::MAX - 1, options().id("top-fork")).unwrap();
    assert_eq!(fork.step(), u64::MAX);
    fork.finish(0).unwrap();
    assert_eq!(t.store.open_run("top-fork").unwrap().history(..).unwrap().count(), 2);
    assert!(matches!(
        t.store.init(options().id("top").resume(Resume::Must).resume_from(u64::MAX)),
        Err(Error::BeyondHistory { .. })
    ));
    assert!(t.store.check("top").unwrap().is_healthy());
    assert!(t.store.check("top-fork").unwrap().is_healthy());

    // The command line.
    let cwd = tempfile::tempdir().unwrap();
    let max = u64::MAX.to_string();
    assert_refused(cli(&t.path, cwd.path()).args(["log", "top", "--step", &max, "x=1"]), 2, "out of range");
    assert_refused(cli(&t.path, cwd.path()).args(["log", "top", "--step", "18446744073709551616", "x=1"]), 2, "");
    assert_refused(cli(&t.path, cwd.path()).args(["log", "top", "--step", "-1", "x=1"]), 2, "");
    assert_refused(cli(&t.path, cwd.path()).args(["rewind", "top", "--to", &max]), 2, "after the last logged step");
    let (code, stdout, stderr) = outcome(cli(&t.path, cwd.path()).args([
        "history",
        "top",
        "--from",
        &(u64::MAX - 5).to_string(),
        "--format",
        "csv",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&format!("{},", u64::MAX - 3)), "{stdout}");
    tried(20);
}

#[test]
fn configs_that_are_not_json_objects_are_refused_before_anything_is_created() {
    let t = temp_store();
    let cwd = tempfile::tempdir().unwrap();
    for config in [
        serde_json::json!([1, 2]),
        serde_json::json!("lr=3"),
        serde_json::json!(null),
        serde_json::json!(3.5),
        serde_json::json!(true),
    ] {
        let error = t.store.init(options().id("c").config(config.clone())).unwrap_err();
        assert!(matches!(error, Error::InvalidConfig { .. }), "{config}: {error:?}");
    }
    assert!(!t.path.exists(), "not even the store directory was created");
    // Through `fork --config`: not an object, not JSON, nested past the parser's limit.
    let mut base = t.store.init(options().id("base")).unwrap();
    base.log([("x", 1.0)]).unwrap();
    base.finish(0).unwrap();
    let before = snapshot(&t.path);
    let deep = format!("{}{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    for config in ["[1,2]", "\"s\"", "null", "{", "{\"lr\": NaN}", deep.as_str()] {
        let (code, _, stderr) =
            outcome(cli(&t.path, cwd.path()).args(["fork", "base", "--at", "0", "--id", "f", "--config", config]));
        assert_eq!(code, 2, "{config:.40}: {stderr}");
        assert!(!stderr.contains("panicked") && stderr.lines().count() == 1, "{stderr}");
    }
    assert_eq!(snapshot(&t.path), before);
    tried(11);
}

#[test]
fn a_store_path_that_is_a_file_is_refused_by_the_library_and_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"hello").unwrap();
    assert!(matches!(Store::open(&file), Err(Error::Io { ref path, .. }) if path == &file));
    for words in [vec!["ls"], vec!["show", "x"], vec!["log", "--resume", "allow", "x", "a=1"], vec!["check"]] {
        assert_refused(cli(&file, dir.path()).args(&words), 1, "not a directory");
    }
    // A store whose `runs` is a file.
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::write(store.join("runs"), b"not a directory").unwrap();
    let opened = Store::open(&store).unwrap();
    assert!(matches!(opened.run_ids(), Err(Error::Io { .. })));
    assert!(matches!(opened.init(options().id("r")), Err(Error::Io { .. })));
    assert_eq!(std::fs::read(&file).unwrap(), b"hello");
    assert_eq!(std::fs::read(store.join("runs")).unwrap(), b"not a directory");
    tried(7);
}

/// Whether this process runs as root (permissions do not stop root).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Makes `dir` read-only until dropped: a read-only bind mount where we may mount, else
/// `chattr +i` on every file and directory, else (not root) permission bits.
struct ReadOnly {
    dir: PathBuf,
    how: &'static str,
    immutable: Vec<PathBuf>,
}

impl ReadOnly {
    fn new(dir: &Path) -> Result<ReadOnly, String> {
        if !is_root() {
            set_writable(dir, false);
            return Ok(ReadOnly { dir: dir.to_path_buf(), how: "permission bits", immutable: Vec::new() });
        }
        let bind = Command::new("mount").arg("--bind").arg(dir).arg(dir).output();
        if bind.as_ref().is_ok_and(|o| o.status.success()) {
            let ro = Command::new("mount").args(["-o", "remount,bind,ro"]).arg(dir).output();
            if ro.as_ref().is_ok_and(|o| o.status.success()) {
                return Ok(ReadOnly { dir: dir.to_path_buf(), how: "a read-only bind mount", immutable: Vec::new() });
            }
            let _ = Command::new("umount").arg(dir).output();
        }
        let mut paths = vec![dir.to_path_buf()];
        paths.extend(snapshot(dir).into_iter().map(|(path, _)| path));
        let chattr = Command::new("chattr").arg("+i").args(&paths).output();
        if chattr.as_ref().is_ok_and(|o| o.status.success()) {
            return Ok(ReadOnly { dir: dir.to_path_buf(), how: "chattr +i", immutable: paths });
        }
        Err(format!("neither a read-only bind mount nor chattr +i worked here: {bind:?} {chattr:?}"))
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        match self.how {
            "permission bits" => set_writable(&self.dir, true),
            "chattr +i" => {
                let _ = Command::new("chattr").arg("-i").args(&self.immutable).output();
            }
            _ => {
                let unmounted = Command::new("umount").arg(&self.dir).output();
                if !unmounted.is_ok_and(|o| o.status.success()) {
                    // Something still has a file open there: detach it now, free it when closed.
                    let _ = Command::new("umount").arg("-l").arg(&self.dir).output();
                }
            }
        }
    }
}

fn set_writable(dir: &Path, writable: bool) {
    use std::os::unix::fs::PermissionsExt;
    for (path, _) in snapshot(dir).into_iter().chain([(dir.to_path_buf(), Vec::new())]) {
        let mode = if path.is_dir() {
            if writable { 0o755 } else { 0o555 }
        } else if writable {
            0o644
        } else {
            0o444
        };
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode));
    }
}

#[test]
fn a_read_only_store_reads_and_refuses_writes_with_typed_errors() {
    let (t, cwd) = cli_store();
    // A crashed run too: reading it needs the recovery that a read-only store cannot give.
    let mut command = crate::support::child("writer", &t.path);
    command.env("RUNSTORE_RUN_ID", "crashed").env("RUNSTORE_RESUME", "allow");
    command.env("TEST_ROWS", "10").env("TEST_FLUSH_EVERY", "10").env("TEST_END", "exit:9");
    assert_eq!(command.output().unwrap().status.code(), Some(9));
    let before = snapshot(&t.path);
    let read_only = match ReadOnly::new(&t.path) {
        Ok(read_only) => read_only,
        Err(reason) => {
            eprintln!("SKIPPED a_read_only_store_reads_and_refuses_writes_with_typed_errors: {reason}");
            return;
        }
    };
    eprintln!("read-only store through {}", read_only.how);
    let store = Store::open(&t.path).unwrap();
    let reader = store.open_run("base").unwrap();
    assert_eq!(reader.info().unwrap().state, RunState::Finished);
    assert_eq!(reader.history(..).unwrap().count(), 50);
    match store.init(options().id("base").resume(Resume::Must)) {
        Err(Error::Io { .. } | Error::Storage { .. }) => {}
        other => panic!("a write to a read-only store: {other:?}"),
    }
    assert!(matches!(store.init(options().id("new")), Err(Error::Io { .. } | Error::Storage { .. })));
    assert!(matches!(store.rewind("base", 3), Err(Error::Io { .. } | Error::Storage { .. })));
    let started = std::time::Instant::now();
    match store.open_run("crashed") {
        Err(ref error @ Error::Io { ref path, .. }) => {
            assert!(path.starts_with(t.path.join("runs/crashed")), "{path:?}");
            assert!(error.to_string().contains("recovering it needs write access"), "{error}");
        }
        other => panic!("a crashed run in a read-only store: {other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "refused at once, not after waiting for a writer");
    let report = store.check("base").unwrap();
    assert!(report.is_healthy(), "{report:?}");
    assert_eq!(report.integrity, runstore::Integrity::Verified, "checked on a copy, without the lock: {report:?}");
    // The command line: reading works, writing fails with one line and exit 1.
    let (code, stdout, stderr) = outcome(cli(&t.path, cwd.path()).args(["show", "base"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("finished"));
    let (code, stdout, stderr) = outcome(cli(&t.path, cwd.path()).args(["ls"]));
    assert_eq!(code, 1, "the crashed run cannot be read: {stderr}");
    assert!(stdout.contains("base") && stderr.contains("crashed"), "{stdout} {stderr}");
    assert_refused(cli(&t.path, cwd.path()).args(["log", "base", "x=1"]), 1, "");
    assert_refused(cli(&t.path, cwd.path()).args(["rewind", "base", "--to", "3"]), 1, "");
    drop((reader, store));
    drop(read_only);
    assert_eq!(snapshot(&t.path), before, "nothing on disk changed");
    tried(12);
}

/// The first uid that is not ours, for running a command without our permissions.
const NOBODY: u32 = 65_534;

#[test]
fn a_store_without_permission_gives_typed_errors_through_the_library_and_the_cli() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let (t, _) = cli_store();
    // A world-readable place for the store, so that only the store's own modes deny access.
    let place = tempfile::tempdir().unwrap();
    std::fs::set_permissions(place.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = place.path().join("store");
    std::fs::rename(&t.path, &store).unwrap_or_else(|_| {
        let status = Command::new("cp").arg("-a").arg(&t.path).arg(&store).status().unwrap();
        assert!(status.success());
    });
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).unwrap();
    let before = snapshot(&store);
    let as_other = |command: &mut Command| {
        if is_root() {
            command.uid(NOBODY).gid(NOBODY);
        } else {
            std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o000)).unwrap();
        }
    };
    let cwd = place.path();
    // The other user must be able to run the binaries: the build directory may be private to
    // us (a clone under a mode-700 temporary directory), so run copies from the open place.
    let runnable = |binary: &Path| {
        let copy = place.path().join(binary.file_name().unwrap());
        std::fs::copy(binary, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        copy
    };
    let cli_copy = runnable(Path::new(env!("CARGO_BIN_EXE_runstore")));
    for words in [vec!["ls"], vec!["show", "base"], vec!["log", "base", "x=1"], vec!["check"]] {
        let mut command = cli(&store, cwd);
        command.args(&words);
        let mut command = retarget(&command, &cli_copy);
        as_other(&mut command);
        assert_refused(&mut command, 1, "ermission denied");
    }
    // The library, in a process without our permissions.
    let probe = crate::support::child("hostile_input::permission_probe", &store);
    let mut probe = retarget(&probe, &runnable(&std::env::current_exe().unwrap()));
    probe.current_dir(cwd);
    as_other(&mut probe);
    let output = output_of_copy(&mut probe);
    let reports = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = reports.lines().filter_map(|l| l.strip_prefix("@@ ")).collect();
    assert_eq!(lines, ["open Io", "init Io"], "{reports}");
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(snapshot(&store), before, "nothing on disk changed");
    tried(6);
    eprintln!("hostile input: {} inputs tried by this binary so far", TRIED.load(Ordering::Relaxed));
}

/// `command` with the same arguments, environment and directory, run from `program` instead.
fn retarget(command: &Command, program: &Path) -> Command {
    let mut moved = Command::new(program);
    moved.args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => moved.env(key, value),
            None => moved.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        moved.current_dir(dir);
    }
    moved.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    moved
}

/// What the library says without permission: opening the store (its marker unreadable), and
/// creating a store in a directory we may not write. Run by the `permission_probe` child.
pub fn probe_permissions(store: &Path) -> Vec<String> {
    let open = match Store::open(store) {
        Ok(_) => "open ok".to_string(),
        Err(error) => format!("open {}", variant(&error)),
    };
    let fresh = store.parent().unwrap_or(store).join("fresh");
    let init = match Store::open(&fresh).and_then(|s| s.init(RunOptions::new().ignore_environment().id("r"))) {
        Ok(_) => "init ok".to_string(),
        Err(error) => format!("init {}", variant(&error)),
    };
    vec![open, init]
}

/// Reports what the library says in a process without permission on the store in
/// `RUNSTORE_DIR` (see `hostile_input`).
#[test]
#[ignore = "a child process of other tests"]
fn permission_probe() {
    if std::env::var(crate::support::CHILD).as_deref() != Ok("hostile_input::permission_probe") {
        return;
    }
    let store = std::env::var("RUNSTORE_DIR").expect("RUNSTORE_DIR");
    for report in probe_permissions(std::path::Path::new(&store)) {
        println!("{}{report}", crate::support::SAY);
    }
}
