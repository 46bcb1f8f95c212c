//! The `runstore` command line, driven as a user would: the real binary against real stores.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runstore::{Resume, RunState};

use crate::command::{bare, fails, ok, run, runstore};
use crate::support::{Reports, TempStore, bits, child, options, row, temp_store, value};

/// A finished run `id` of `rows` standard rows.
fn finished_run(t: &TempStore, id: &str, rows: u64) {
    let mut run = t.store.init(options().id(id)).unwrap();
    for step in 0..rows {
        run.log(row(step)).unwrap();
    }
    run.finish(0).unwrap();
}

/// A run with NaN, infinities and rows that lack a metric:
/// step 0 `a=1.5, b=NaN`; step 1 `b=inf`; step 5 `a=-inf, b=-0.0`; step 6 `a=0.1`.
fn mixed_run(t: &TempStore, id: &str) {
    let mut run = t.store.init(options().id(id)).unwrap();
    run.log([("a", 1.5), ("b", f64::NAN)]).unwrap();
    run.log([("b", f64::INFINITY)]).unwrap();
    run.log_at(5, [("a", f64::NEG_INFINITY), ("b", -0.0)]).unwrap();
    run.log([("a", 0.1)]).unwrap();
    run.finish(0).unwrap();
}

fn assert_fits_80_columns(text: &str) {
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "wider than 80 columns: {line:?}");
    }
}

/// Waits for `process` to exit, killing it and failing after `limit`.
fn wait_for(process: &mut Child, limit: Duration, what: &str) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = process.try_wait().unwrap() {
            return status.code().expect("exited, not killed");
        }
        if Instant::now() > deadline {
            let _ = process.kill();
            panic!("{what} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child writer on run `id` that logs `rows` rows and holds the run until its stdin closes.
fn holding_writer(t: &TempStore, id: &str, rows: &str) -> (Child, Reports) {
    let mut command = child("writer", &t.path);
    command.env("RUNSTORE_RUN_ID", id).env("RUNSTORE_RESUME", "allow").env("TEST_ROWS", rows).env("TEST_END", "hold");
    let mut process = command.spawn().expect("spawn writer");
    let mut reports = Reports::of(&mut process);
    reports.expect("holding");
    (process, reports)
}

fn release(mut process: Child, mut reports: Reports) {
    drop(process.stdin.take());
    reports.expect("finished");
    assert!(process.wait().unwrap().success());
}

#[test]
fn ls_lists_runs_newest_first_with_live_and_crashed_states_and_filters() {
    let t = temp_store();
    t.store.init(options().id("old").project("vision")).unwrap().finish(0).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let mut failed = t.store.init(options().id("broken").project("nlp").name("a name")).unwrap();
    failed.log(row(0)).unwrap();
    failed.finish(1).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let mut command = child("writer", &t.path);
    command.env("RUNSTORE_RUN_ID", "dead").env("RUNSTORE_RESUME", "allow").env("TEST_ROWS", "3");
    command.env("TEST_FLUSH_EVERY", "1").env("TEST_END", "exit:9");
    assert!(command.output().unwrap().status.code() == Some(9));
    std::thread::sleep(Duration::from_millis(20));
    let (holder, reports) = holding_writer(&t, "live", "2");

    let table = ok(runstore(&t.path).arg("ls"));
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ID") && lines[0].contains("STATE") && lines[0].contains("UPDATED"), "{table}");
    let ids: Vec<&str> = lines[1..].iter().map(|line| line.split_whitespace().next().unwrap()).collect();
    assert_eq!(ids, ["live", "dead", "broken", "old"], "newest first:\n{table}");
    assert!(lines[1].contains("running") && lines[2].contains("crashed"), "{table}");
    assert!(lines[3].contains("failed") && lines[3].contains("nlp") && lines[3].contains("a name"), "{table}");
    assert_fits_80_columns(&table);

    let vision = ok(runstore(&t.path).args(["ls", "--project", "vision"]));
    assert_eq!(vision.lines().skip(1).map(|l| l.split_whitespace().next().unwrap()).collect::<Vec<_>>(), ["old"]);
    let crashed = ok(runstore(&t.path).args(["ls", "--state", "crashed", "--json"]));
    let crashed: serde_json::Value = serde_json::from_str(&crashed).unwrap();
    assert_eq!(crashed.as_array().unwrap().len(), 1);
    assert_eq!(crashed[0]["id"], "dead");
    assert_eq!(crashed[0]["state"], "crashed");
    assert_eq!(crashed[0]["next_step"], 3);
    assert_eq!(crashed[0]["attempts"], 1);

    let all: serde_json::Value = serde_json::from_str(&ok(runstore(&t.path).args(["ls", "--json"]))).unwrap();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0]["state"], "running");
    assert_eq!(all[2]["name"], "a name");
    assert_eq!(all[2]["project"], "nlp");
    let updated = all[2]["updated_at"].as_str().unwrap();
    assert!(updated.len() == 20 && updated.ends_with('Z') && updated.as_bytes()[10] == b'T', "RFC 3339: {updated}");
    release(holder, reports);

    let usage = run(runstore(&t.path).args(["ls", "--state", "sleeping"]));
    assert!(usage.code == 2 && usage.stderr.contains("possible values: running, finished"), "{}", usage.stderr);
}

#[test]
fn ls_of_a_store_that_does_not_exist_yet_finds_no_runs() {
    let t = temp_store();
    assert_eq!(ok(runstore(&t.path).arg("ls")).trim(), format!("no runs in {}", t.path.display()));
    assert_eq!(ok(runstore(&t.path).args(["ls", "--json"])).trim(), "[]");
    assert!(!t.path.exists(), "reading creates nothing");
}

#[test]
fn show_prints_state_config_summary_sparklines_and_attempts() {
    let t = temp_store();
    let config = serde_json::json!({"lr": 3e-4, "model": {"depth": 12}});
    let mut run = t
        .store
        .init(options().id("r").project("vision").name("resnet").tags(["bf16"]).notes("first try").config(config))
        .unwrap();
    for step in 0..200 {
        #[allow(clippy::cast_precision_loss)]
        let loss = 1.0 / (1.0 + f64::from(step));
        run.log([("loss", loss)]).unwrap();
    }
    run.log([("eval/acc", f64::NAN)]).unwrap();
    drop(run); // failed: dropped without finish
    let mut run = t.store.init(options().id("r").resume(Resume::Must)).unwrap();
    run.log([("loss", 0.001)]).unwrap();
    run.finish(0).unwrap();

    let text = ok(runstore(&t.path).args(["show", "r"]));
    for expected in ["vision", "resnet", "bf16", "first try", "finished", "next 202", "model.depth", "12"] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }
    let loss = text.lines().find(|line| line.trim_start().starts_with("loss")).expect("a loss line");
    assert!(loss.contains("0.001"), "last value: {loss}");
    let curve: String = loss.chars().filter(|c| ('▁'..='█').contains(c)).collect();
    assert_eq!(curve.chars().count(), 24, "a sparkline of the curve: {loss}");
    assert!(curve.starts_with('█') && curve.contains('▁'), "falling from high to low: {curve}");
    assert!(text.lines().any(|line| line.trim_start().starts_with("eval/acc") && line.contains("NaN")), "{text}");
    let attempts: Vec<&str> = text.lines().skip_while(|line| *line != "attempts").skip(2).collect();
    assert_eq!(attempts.len(), 2, "{text}");
    assert!(attempts[0].contains("failed") && attempts[0].contains("0-200"), "{text}");
    assert!(attempts[1].contains("finished (0)") && attempts[1].contains("201-201"), "{text}");
    assert_fits_80_columns(&text);

    let json: serde_json::Value = serde_json::from_str(&ok(runstore(&t.path).args(["show", "r", "--json"]))).unwrap();
    assert_eq!(json["id"], "r");
    assert_eq!(json["project"], "vision");
    assert_eq!(json["name"], "resnet");
    assert_eq!(json["state"], "finished");
    assert_eq!(json["next_step"], 202);
    assert_eq!(json["summary"]["loss"], 0.001);
    assert_eq!(json["summary"]["eval/acc"], "NaN");
    assert_eq!(json["config"]["model"]["depth"], 12);
    assert_eq!(json["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(json["attempts"][0]["outcome"], "failed");
    assert_eq!(json["attempts"][1]["exit_code"], 0);
    assert_eq!(json["holder"], serde_json::Value::Null);
}

#[test]
fn show_names_the_process_holding_a_live_run() {
    let t = temp_store();
    let (holder, reports) = holding_writer(&t, "live", "5");
    let pid = holder.id();
    let text = ok(runstore(&t.path).args(["show", "live"]));
    let state = text.lines().find(|line| line.starts_with("state")).unwrap();
    assert!(state.contains("running") && state.contains(&format!("pid {pid}")), "{state}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(runstore(&t.path).args(["show", "live", "--json"]))).unwrap();
    assert_eq!(json["holder"]["pid"], pid);
    assert_eq!(json["state"], "running");
    release(holder, reports);
}

#[test]
fn history_csv_has_empty_cells_and_writes_nan_and_infinities() {
    let t = temp_store();
    mixed_run(&t, "m");
    let csv = ok(runstore(&t.path).args(["history", "m"]));
    assert_eq!(csv, "step,a,b\n0,1.5,NaN\n1,,inf\n5,-inf,-0.0\n6,0.1,\n");
    let default_is_csv = ok(runstore(&t.path).args(["history", "m", "--format", "csv"]));
    assert_eq!(csv, default_is_csv);
}

#[test]
fn history_jsonl_has_the_metrics_of_each_row_and_non_finite_values_as_strings() {
    let t = temp_store();
    mixed_run(&t, "m");
    let jsonl = ok(runstore(&t.path).args(["history", "m", "--format", "jsonl"]));
    assert_eq!(
        jsonl,
        "{\"step\":0,\"a\":1.5,\"b\":\"NaN\"}\n{\"step\":1,\"b\":\"inf\"}\n\
         {\"step\":5,\"a\":\"-inf\",\"b\":-0.0}\n{\"step\":6,\"a\":0.1}\n"
    );
    for line in jsonl.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("each line is JSON");
    }
}

#[test]
fn history_selects_metrics_in_the_order_given_and_a_step_range() {
    let t = temp_store();
    mixed_run(&t, "m");
    let csv = ok(runstore(&t.path).args(["history", "m", "--metric", "b", "-m", "a", "--from", "1", "--to", "5"]));
    assert_eq!(csv, "step,b,a\n1,inf,\n5,-0.0,-inf\n");
    let jsonl = ok(runstore(&t.path).args(["history", "m", "-m", "a", "--from", "1", "--format", "jsonl"]));
    assert_eq!(jsonl, "{\"step\":1}\n{\"step\":5,\"a\":\"-inf\"}\n{\"step\":6,\"a\":0.1}\n");
    fails(runstore(&t.path).args(["history", "m", "--metric", "c"]), 2, "no metric \"c\"");
    fails(runstore(&t.path).args(["history", "m", "--from", "5", "--to", "1"]), 2, "--from 5");
}

#[test]
fn history_values_read_back_bit_for_bit() {
    let t = temp_store();
    finished_run(&t, "r", 300);
    let csv = ok(runstore(&t.path).args(["history", "r"]));
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("step,loss,acc,lr,grad_norm"));
    let mut steps = 0;
    for (step, line) in (0u64..).zip(lines) {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells[0], step.to_string());
        for metric in 0..4 {
            let read: f64 = cells[metric + 1].parse().unwrap();
            let expected = value(step, metric);
            assert!(bits(read) == bits(expected) || (read.is_nan() && expected.is_nan()), "{line}");
        }
        steps += 1;
    }
    assert_eq!(steps, 300);
}

#[test]
fn history_into_a_pipe_closed_early_exits_quietly() {
    let t = temp_store();
    finished_run(&t, "long", 50_000);
    let mut process =
        runstore(&t.path).args(["history", "long"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut first = String::new();
    BufReader::new(process.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert_eq!(first, "step,loss,acc,lr,grad_norm\n");
    // The reader is gone, as with `| head -1`.
    let mut stderr = String::new();
    process.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let code = wait_for(&mut process, Duration::from_secs(60), "history into a closed pipe");
    assert_eq!((code, stderr.as_str()), (0, ""));
}

#[test]
fn log_appends_a_row_and_a_finished_run_stays_finished() {
    let t = temp_store();
    finished_run(&t, "t", 10);
    let out = ok(runstore(&t.path).args(["log", "t", "eval/acc=0.93", "eval/loss=nan"]));
    assert_eq!(out.trim(), "logged step 10 to run t");
    let reader = t.store.open_run("t").unwrap();
    let info = reader.info().unwrap();
    assert_eq!(info.state, RunState::Finished);
    assert_eq!((info.next_step, info.attempts), (11, 2));
    assert_eq!(info.summary["eval/acc"], 0.93);
    assert!(info.summary["eval/loss"].is_nan());
    assert_eq!(reader.attempts().unwrap()[1].outcome, Some(RunState::Finished));

    // At an explicit step: the last one merges into that row; a later one leaves a gap.
    ok(runstore(&t.path).args(["log", "t", "--step", "10", "eval/f1=0.5"]));
    ok(runstore(&t.path).args(["log", "t", "--step", "20", "test/acc=inf", "test/low=-inf"]));
    let rows: Vec<_> = reader.history(10..).unwrap().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].step(), rows[0].get("eval/acc"), rows[0].get("eval/f1")), (10, Some(0.93), Some(0.5)));
    assert_eq!((rows[1].step(), rows[1].get("test/acc")), (20, Some(f64::INFINITY)));
    assert_eq!(rows[1].get("test/low"), Some(f64::NEG_INFINITY));
    assert_eq!(reader.info().unwrap().state, RunState::Finished);
}

#[test]
fn log_keeps_a_failed_run_failed() {
    let t = temp_store();
    let mut run = t.store.init(options().id("f")).unwrap();
    run.log(row(0)).unwrap();
    run.finish(3).unwrap();
    ok(runstore(&t.path).args(["log", "f", "eval/acc=0.5"]));
    let info = t.store.open_run("f").unwrap().info().unwrap();
    assert_eq!((info.state, info.exit_code, info.next_step), (RunState::Failed, Some(3), 2));
}

#[test]
fn log_refuses_bad_input_with_exit_2_and_changes_nothing() {
    let t = temp_store();
    finished_run(&t, "t", 5);
    let before = crate::support::snapshot(&t.path);
    fails(runstore(&t.path).args(["log", "t", "acc=high"]), 2, "not a number");
    fails(runstore(&t.path).args(["log", "t", "acc"]), 2, "");
    fails(runstore(&t.path).args(["log", "t"]), 2, "KEY=VALUE");
    fails(runstore(&t.path).args(["log", "t", "=1"]), 2, "invalid metric name");
    fails(runstore(&t.path).args(["log", "t", "a=1", "a=2"]), 2, "twice");
    fails(runstore(&t.path).args(["log", "../t", "a=1"]), 2, "invalid run id");
    fails(runstore(&t.path).args(["log", "a=1"]), 2, "needs a run id");
    assert!(crate::support::snapshot(&t.path) == before, "nothing written");

    // A step behind the run: refused by the library, the run keeps its rows and state.
    fails(runstore(&t.path).args(["log", "t", "--step", "2", "a=1"]), 2, "behind run");
    let info = t.store.open_run("t").unwrap().info().unwrap();
    assert_eq!((info.state, info.rows, info.next_step), (RunState::Finished, 5, 5));
    assert!(!info.summary.contains_key("a"));
}

#[test]
fn log_honours_runstore_run_id_and_runstore_resume() {
    let t = temp_store();
    finished_run(&t, "env", 3);
    ok(runstore(&t.path).env("RUNSTORE_RUN_ID", "env").args(["log", "from_env=1"]));
    assert_eq!(t.store.open_run("env").unwrap().info().unwrap().summary["from_env"], 1.0);

    // The default policy is `must`; RUNSTORE_RESUME changes it, --resume wins over it.
    fails(runstore(&t.path).args(["log", "new", "x=1"]), 3, "does not exist");
    ok(runstore(&t.path).env("RUNSTORE_RESUME", "allow").args(["log", "new", "x=1"]));
    assert_eq!(t.store.open_run("new").unwrap().info().unwrap().state, RunState::Finished);
    fails(runstore(&t.path).env("RUNSTORE_RESUME", "never").args(["log", "env", "x=1"]), 4, "already exists");
    ok(runstore(&t.path).env("RUNSTORE_RESUME", "never").args(["log", "env", "--resume", "must", "x=1"]));
    fails(runstore(&t.path).env("RUNSTORE_RESUME", "sometimes").args(["log", "env", "x=1"]), 2, "RUNSTORE_RESUME");
    // An explicit id wins over RUNSTORE_RUN_ID.
    ok(runstore(&t.path).env("RUNSTORE_RUN_ID", "new").args(["log", "env", "explicit=1"]));
    assert!(t.store.open_run("env").unwrap().info().unwrap().summary.contains_key("explicit"));
    assert!(!t.store.open_run("new").unwrap().info().unwrap().summary.contains_key("explicit"));
}

#[test]
fn log_into_a_run_another_process_holds_exits_5_naming_it() {
    let t = temp_store();
    let (holder, reports) = holding_writer(&t, "held", "4");
    let pid = holder.id();
    fails(runstore(&t.path).args(["log", "held", "eval/acc=0.9"]), 5, &format!("pid {pid}"));
    release(holder, reports);
    let info = t.store.open_run("held").unwrap().info().unwrap();
    assert_eq!((info.rows, info.attempts), (4, 1), "the refused log wrote nothing");
    ok(runstore(&t.path).args(["log", "held", "eval/acc=0.9"]));
}

#[test]
fn the_store_is_dir_then_runstore_dir_then_dot_runstore() {
    let t = temp_store();
    finished_run(&t, "here", 1);
    let listed = |command: &mut Command| ok(command.arg("ls")).lines().skip(1).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(listed(bare().env("RUNSTORE_DIR", &t.path)).len(), 1);
    let elsewhere = tempfile::tempdir().unwrap();
    assert!(listed(bare().env("RUNSTORE_DIR", &t.path).arg("--dir").arg(elsewhere.path())).is_empty());

    let cwd = tempfile::tempdir().unwrap();
    ok(bare().current_dir(cwd.path()).args(["log", "--resume", "allow", "local", "x=1"]));
    assert!(cwd.path().join(".runstore/runs/local/run.redb").is_file());
    let local = listed(bare().current_dir(cwd.path()));
    assert_eq!(local.len(), 1);
    assert!(local[0].starts_with("local "));
}

#[test]
fn every_failure_has_its_exit_code() {
    let t = temp_store();
    finished_run(&t, "r", 2);
    assert_eq!(run(runstore(&t.path).args(["show", "r"])).code, 0);

    // 2: usage (clap's own message), invalid ids and input.
    for usage in [&["frobnicate"][..], &["history"], &["history", "r", "--format", "xml"], &["tail", "r", "-n", "x"]] {
        let outcome = run(runstore(&t.path).args(usage));
        assert_eq!(outcome.code, 2, "{usage:?}: {}", outcome.stderr);
        assert!(outcome.stderr.contains("error:") && !outcome.stderr.contains("panicked"), "{}", outcome.stderr);
    }
    fails(runstore(&t.path).args(["show", "../r"]), 2, "invalid run id");
    fails(runstore(&t.path).args(["history", "a b"]), 2, "invalid run id");
    // 3: not found, for every command that reads a run.
    for command in ["show", "history", "tail", "plot", "export"] {
        let mut args = vec![command, "nope"];
        if command == "export" {
            args.extend(["--format", "csv"]);
        }
        fails(runstore(&t.path).args(&args), 3, "\"nope\" does not exist");
    }
    fails(runstore(&t.path).args(["log", "nope", "x=1"]), 3, "does not exist");
    // 4: exists.
    fails(runstore(&t.path).args(["log", "--resume", "never", "r", "x=1"]), 4, "already exists");
    // 1: anything else, such as a store path that is a file.
    let file = t.path.join("FORMAT");
    fails(runstore(&file).arg("ls"), 1, "not a directory");
    fails(runstore(&file).args(["show", "r"]), 1, "not a directory");
    // (5, a locked run, is in `log_into_a_run_another_process_holds_exits_5_naming_it`; 6, locks
    // that cannot work, in `cluster`.)

    // Help and version succeed, with examples and the exit codes documented.
    let help = ok(bare().arg("--help"));
    assert!(help.contains("Exit codes:") && help.contains("5  the run is being written"), "{help}");
    assert_fits_80_columns(&help);
    for command in ["ls", "show", "history", "log", "tail", "plot", "export", "compare", "doctor", "rm", "tag", "note"]
    {
        let help = ok(bare().args([command, "--help"]));
        assert!(help.contains("Examples:\n  runstore "), "{command} --help has an example:\n{help}");
        assert_fits_80_columns(&help);
    }
    assert!(ok(bare().arg("--version")).starts_with("runstore "));
}

#[test]
fn tail_prints_the_last_rows() {
    let t = temp_store();
    finished_run(&t, "r", 50);
    let csv = ok(runstore(&t.path).args(["tail", "r", "-n", "3", "--format", "csv"]));
    assert_eq!(csv.lines().next(), Some("step,loss,acc,lr,grad_norm"));
    let steps: Vec<&str> = csv.lines().skip(1).map(|line| line.split(',').next().unwrap()).collect();
    assert_eq!(steps, ["47", "48", "49"]);

    let table = ok(runstore(&t.path).args(["tail", "r"]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 11, "a header and the default 10 rows:\n{table}");
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["step", "loss", "acc", "lr", "grad_norm"]);
    assert!(lines[1].trim_start().starts_with("40 ") && lines[10].trim_start().starts_with("49 "), "{table}");
    let widths: Vec<usize> = lines.iter().map(|line| line.chars().count()).collect();
    assert!(widths.iter().all(|&w| w == widths[0]), "aligned: {table}");

    // Sparse steps: the last rows, not the last steps.
    let mut run = t.store.init(options().id("sparse")).unwrap();
    for step in [0, 1000, 50_000, 1_000_000] {
        run.log_at(step, [("x", 1.0)]).unwrap();
    }
    run.finish(0).unwrap();
    let jsonl = ok(runstore(&t.path).args(["tail", "sparse", "-n", "3", "--format", "jsonl"]));
    assert_eq!(jsonl, "{\"step\":1000,\"x\":1.0}\n{\"step\":50000,\"x\":1.0}\n{\"step\":1000000,\"x\":1.0}\n");
    assert_eq!(ok(runstore(&t.path).args(["tail", "sparse", "-n", "0"])), "");
}

#[test]
fn tail_follow_prints_every_row_of_a_live_writer_and_ends_when_it_finishes() {
    let t = temp_store();
    let mut command = child("writer", &t.path);
    command
        .env("RUNSTORE_RUN_ID", "live")
        .env("RUNSTORE_RESUME", "allow")
        .env("TEST_ROWS", "3000")
        .env("TEST_FLUSH_EVERY", "100")
        .env("TEST_PAUSE_US", "700")
        .env("TEST_END", "finish:0");
    let mut writer = command.spawn().expect("spawn writer");
    let mut reports = Reports::of(&mut writer);
    reports.expect("flushed");

    let mut tail = runstore(&t.path)
        .args(["tail", "-f", "-n", "5", "live", "--format", "csv"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let info = t.store.open_run("live").unwrap().info().unwrap();
    assert!(info.state == RunState::Running && info.rows < 3000, "tail started on a live run: {info:?}");
    let stdout = tail.stdout.take().unwrap();
    let reading = std::thread::spawn(move || {
        let mut text = String::new();
        BufReader::new(stdout).read_to_string(&mut text).map(|_| text)
    });
    let code = wait_for(&mut tail, Duration::from_secs(120), "tail -f");
    while reports.next().is_some() {}
    assert!(writer.wait().unwrap().success());
    let mut stderr = String::new();
    tail.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(
        (code, stderr.as_str()),
        (0, "runstore: run live finished (exit code 0); its last step is 2999\n"),
        "tail -f ended cleanly once the run finished, and said so"
    );

    let text = reading.join().unwrap().unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("step,loss,acc,lr,grad_norm"));
    let rows: Vec<Vec<&str>> = lines.map(|line| line.split(',').collect()).collect();
    let first: u64 = rows[0][0].parse().unwrap();
    assert!(first > 0, "began with the last rows, not the first");
    for (step, cells) in (first..).zip(&rows) {
        assert_eq!(cells[0], step.to_string(), "every step once, in order");
        let loss: f64 = cells[1].parse().unwrap();
        assert!(bits(loss) == bits(value(step, 0)) || loss.is_nan() && value(step, 0).is_nan());
    }
    assert_eq!(rows.last().unwrap()[0], "2999", "followed to the last row");
    assert!(rows.len() > 100, "printed the rows written while it followed: {}", rows.len());
}

/// The curve paths of an SVG document, after checking that it is one `<svg>` element.
fn curves(svg: &str) -> Vec<&str> {
    assert!(svg.starts_with("<svg "), "{}", &svg[..svg.len().min(80)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<svg").count(), 1);
    assert_eq!(svg.matches("<path").count(), svg.matches("<path class=\"curve\"").count(), "paths are curves");
    svg.split("<path class=\"curve\"").skip(1).collect()
}

#[test]
fn plot_writes_an_svg_with_one_curve_per_metric_axes_and_a_legend() {
    let t = temp_store();
    finished_run(&t, "r", 500);
    let cwd = tempfile::tempdir().unwrap();
    let out = ok(runstore(&t.path).current_dir(cwd.path()).args(["plot", "r"]));
    assert!(out.contains("r.svg"), "{out}");
    let svg = std::fs::read_to_string(cwd.path().join("r.svg")).expect("default output ID.svg");
    let paths = curves(&svg);
    assert_eq!(paths.len(), 4, "one path per metric");
    let colours: std::collections::HashSet<&str> =
        paths.iter().map(|path| path.split("stroke=\"").nth(1).unwrap().split('"').next().unwrap()).collect();
    assert_eq!(colours.len(), 4, "one colour per metric");
    assert!(paths.iter().all(|path| path.contains(" d=\"M")), "every curve has points");
    for label in [">step<", ">loss<", ">grad_norm<", ">0<", ">400<", ">499<"] {
        assert!(svg.contains(label), "{label} in the SVG");
    }
    // One panel per metric, each titled with its metric (no shared "value" axis).
    assert_eq!(svg.matches("class=\"panel-title\"").count(), 4);

    let file = cwd.path().join("sub.svg");
    ok(runstore(&t.path).args(["plot", "r", "--metric", "acc", "-o"]).arg(&file));
    assert_eq!(curves(&std::fs::read_to_string(&file).unwrap()).len(), 1);
    let stdout = ok(runstore(&t.path).args(["plot", "r", "-m", "loss", "-m", "lr", "-o", "-"]));
    assert_eq!(curves(&stdout).len(), 2);
    fails(runstore(&t.path).args(["plot", "r", "--metric", "nope"]), 2, "no metric");
}

#[test]
fn plot_of_a_wide_run_draws_the_first_twenty_metrics_and_says_so() {
    let t = temp_store();
    let mut run = t.store.init(options().id("wide")).unwrap();
    let names: Vec<String> = (0..50).map(|i| format!("layer{i:02}")).collect();
    for step in 0..100u32 {
        run.log(names.iter().map(|name| (name.as_str(), f64::from(step)))).unwrap();
    }
    run.finish(0).unwrap();
    for axis in ["step", "runtime"] {
        let svg = ok(runstore(&t.path).args(["plot", "wide", "--x", axis, "-o", "-"]));
        assert_eq!(curves(&svg).len(), 20, "{axis}");
        assert!(svg.contains("first 20 of 50 metrics: choose with --metric"), "{axis}");
    }
    let svg = ok(runstore(&t.path).args(["plot", "wide", "-m", "layer49", "-o", "-"]));
    assert_eq!(curves(&svg).len(), 1);
    let csv = ok(runstore(&t.path).args(["history", "wide", "-m", "layer49", "-m", "layer00", "--to", "1"]));
    assert_eq!(csv, "step,layer49,layer00\n0,0,0\n1,1,1\n");
}

#[test]
fn plot_escapes_names_and_draws_a_path_for_a_metric_without_finite_values() {
    let t = temp_store();
    let mut run = t.store.init(options().id("odd")).unwrap();
    run.log([("a<b & \"c\"", 1.0), ("only_nan", f64::NAN)]).unwrap();
    run.log([("a<b & \"c\"", 2.0), ("only_nan", f64::INFINITY)]).unwrap();
    run.finish(0).unwrap();
    let svg = ok(runstore(&t.path).args(["plot", "odd", "-o", "-"]));
    assert_eq!(curves(&svg).len(), 2);
    assert!(svg.contains("a&lt;b &amp; &quot;c&quot;") && !svg.contains("a<b"), "escaped");
}

#[test]
fn plot_of_a_long_run_is_downsampled_to_a_small_file() {
    let t = temp_store();
    let mut run = t.store.init(options().id("long")).unwrap();
    for step in 0..300_000u64 {
        #[allow(clippy::cast_precision_loss)]
        let spike = if step == 123_457 { 100.0 } else { (step as f64 / 1000.0).sin() };
        run.log([("x", spike)]).unwrap();
    }
    run.finish(0).unwrap();
    let svg = ok(runstore(&t.path).args(["plot", "long", "-o", "-"]));
    assert!(svg.len() < 150_000, "{} bytes", svg.len());
    let path = curves(&svg)[0].split(" d=\"").nth(1).unwrap().split('"').next().unwrap();
    let points = path.matches(['M', 'L']).count();
    assert!((1200..=4 * 1200).contains(&points), "{points} points");
    assert!(svg.contains(">100<") || svg.contains(">80<"), "the spike sets the y range");
}

#[test]
fn export_writes_history_to_a_file_or_stdout() {
    let t = temp_store();
    let mut writer = t.store.init(options().id("big")).unwrap();
    for step in 0..120_000u64 {
        writer.log([("loss", value(step, 0))]).unwrap();
    }
    writer.finish(0).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.csv");
    let outcome = run(runstore(&t.path).args(["export", "big", "--format", "csv", "-o"]).arg(&file));
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert_eq!(outcome.stderr, "", "no progress bar when stderr is not a terminal");
    assert!(outcome.stdout.contains("120000 rows"), "{}", outcome.stdout);
    let exported = std::fs::read_to_string(&file).unwrap();
    assert_eq!(exported, ok(runstore(&t.path).args(["history", "big"])), "as history writes it");
    assert_eq!(exported.lines().count(), 120_001);
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 1, "no temporary file left behind");

    let jsonl = ok(runstore(&t.path).args(["export", "big", "--format", "jsonl", "--to", "1"]));
    assert_eq!(jsonl.lines().count(), 2);
    assert!(jsonl.starts_with("{\"step\":0,\"loss\":"));
    fails(
        runstore(&t.path).args(["export", "big", "--format", "csv", "-o"]).arg(dir.path().join("no/such/dir.csv")),
        1,
        "",
    );
}

#[test]
fn rewind_archives_the_rows_after_a_step_and_history_all_branches_shows_them() {
    let t = temp_store();
    finished_run(&t, "r", 10);
    let said = ok(runstore(&t.path).args(["rewind", "r", "--to", "6"]));
    assert_eq!(said, "rewound run r to step 6: steps 7..=9 (3 rows) archived as branch 0\n");
    let said = ok(runstore(&t.path).args(["rewind", "r", "--to", "6", "--json"]));
    assert_eq!(said, "null\n", "nothing more to archive");
    assert_eq!(t.store.open_run("r").unwrap().state().unwrap(), RunState::Finished, "the state is kept");

    let live = ok(runstore(&t.path).args(["history", "r", "-m", "loss"]));
    assert_eq!(live.lines().count(), 1 + 7);
    let all = ok(runstore(&t.path).args(["history", "r", "-m", "loss", "--all-branches", "--from", "5"]));
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines[0], "branch,step,loss");
    let labels: Vec<(&str, &str)> =
        lines[1..].iter().map(|l| (l.split(',').next().unwrap(), l.split(',').nth(1).unwrap())).collect();
    assert_eq!(labels, [("live", "5"), ("live", "6"), ("0", "7"), ("0", "8"), ("0", "9")]);
    let jsonl =
        ok(runstore(&t.path).args(["history", "r", "-m", "acc", "--all-branches", "--from", "6", "--format", "jsonl"]));
    let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    let last: serde_json::Value = serde_json::from_str(jsonl.lines().last().unwrap()).unwrap();
    assert_eq!((first["branch"].clone(), first["step"].clone()), (serde_json::json!("live"), serde_json::json!(6)));
    assert_eq!((last["branch"].clone(), last["step"].clone()), (serde_json::json!(0), serde_json::json!(9)));

    let shown = ok(runstore(&t.path).args(["show", "r"]));
    assert!(shown.contains("archived branches"), "{shown}");
    assert_fits_80_columns(&shown);
    let json: serde_json::Value = serde_json::from_str(&ok(runstore(&t.path).args(["show", "r", "--json"]))).unwrap();
    assert_eq!(json["branches"][0]["first_step"], 7);
    assert_eq!(json["branches"][0]["rows"], 3);
    assert_eq!(json["next_step"], 7);

    let svg = ok(runstore(&t.path).args(["plot", "r", "--all-branches", "-o", "-"]));
    assert_eq!(svg.matches("<path class=\"curve\"").count(), 4);
    assert_eq!(svg.matches("<path class=\"branch\"").count(), 4, "one faded path per metric and branch");
    assert!(svg.contains("archived branches"));
}

#[test]
fn rewind_and_fork_fail_with_the_documented_exit_codes() {
    let t = temp_store();
    finished_run(&t, "r", 10);
    fails(runstore(&t.path).args(["rewind", "r", "--to", "10"]), 2, "after the last logged step");
    fails(runstore(&t.path).args(["rewind", "ghost", "--to", "1"]), 3, "does not exist");
    fails(runstore(&t.path).args(["fork", "r", "--at", "99"]), 2, "after the last logged step");
    fails(runstore(&t.path).args(["fork", "r", "--at", "3", "--id", "r"]), 4, "already exists");
    fails(runstore(&t.path).args(["fork", "r", "--at", "3", "--config", "[1]"]), 2, "invalid config");
    let (process, reports) = holding_writer(&t, "live", "5");
    fails(runstore(&t.path).args(["rewind", "live", "--to", "2"]), 5, "is being written by");
    release(process, reports);
}

#[test]
fn fork_creates_a_run_that_shares_history_up_to_the_step() {
    let t = temp_store();
    let mut run = t.store.init(options().id("base").config(serde_json::json!({"lr": 0.1, "bs": 64}))).unwrap();
    for step in 0..20 {
        run.log(row(step)).unwrap();
    }
    run.finish(0).unwrap();
    let said = ok(runstore(&t.path).args(["fork", "base", "--at", "9", "--id", "low", "--config", r#"{"lr": 0.01}"#]));
    assert_eq!(said, "forked run base at step 9 into low: its next step is 10\n");
    let json: serde_json::Value = serde_json::from_str(&ok(runstore(&t.path).args(["show", "low", "--json"]))).unwrap();
    assert_eq!(json["forked_from"], serde_json::json!({"run": "base", "step": 9}));
    assert_eq!(json["config"], serde_json::json!({"lr": 0.01, "bs": 64}));
    assert_eq!(json["next_step"], 10);
    let csv = ok(runstore(&t.path).args(["history", "low", "-m", "loss"]));
    assert_eq!(csv.lines().count(), 1 + 10);
    assert!(csv.lines().nth(10).unwrap().starts_with("9,"));
    // The fork is trained with RUNSTORE_RESUME=must; `log` is such a use.
    ok(runstore(&t.path).args(["log", "low", "loss=0.5"]));
    assert_eq!(t.store.open_run("low").unwrap().series("loss", 10..).unwrap().count(), 1);
    assert_eq!(t.store.open_run("base").unwrap().info().unwrap().rows, 20, "the source is unchanged");
    let generated = ok(runstore(&t.path).args(["fork", "base", "--at", "5", "--json"]));
    let generated: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(generated["id"].as_str().unwrap().len(), 8);
}

#[test]
fn tail_follow_notices_a_rewind_and_follows_the_new_branch() {
    let t = temp_store();
    let mut run = t.store.init(options().id("rw")).unwrap();
    for step in 0..50 {
        run.log(row(step)).unwrap();
    }
    run.flush().unwrap();
    let mut tail = runstore(&t.path)
        .args(["tail", "-f", "-n", "1", "rw", "--format", "csv", "-m", "loss"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    run.rewind(29).unwrap();
    for step in 30..40 {
        run.log([("loss", -f64::from(step))]).unwrap();
    }
    run.flush().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    run.finish(0).unwrap();
    assert_eq!(wait_for(&mut tail, Duration::from_secs(20), "tail -f"), 0);
    let mut out = String::new();
    tail.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let mut err = String::new();
    tail.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(err.contains("was rewound to step 29"), "{err}");
    let steps: Vec<u64> = out.lines().skip(1).map(|l| l.split(',').next().unwrap().parse().unwrap()).collect();
    assert_eq!(steps.first(), Some(&49));
    assert_eq!(&steps[1..], (30..40).collect::<Vec<_>>(), "{out}");
}
