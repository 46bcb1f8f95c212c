//! Time per row and checkpoints through the command line: `--time`, `plot --x`,
//! `checkpoint`, `checkpoints`, `show`'s latest checkpoint, `agent --resume-from-checkpoint`.

use std::time::{Duration, UNIX_EPOCH};

use crate::command::{fails, ok, runstore};
use crate::support::{options, temp_store};

/// A run of 3 rows logged at known times: 1 700 000 000.000, .250 and .500 seconds.
fn timed_run(t: &crate::support::TempStore, id: &str) {
    let mut run = t.store.init(options().id(id)).unwrap();
    for step in 0..3u64 {
        let time = UNIX_EPOCH + Duration::from_millis(1_700_000_000_000 + step * 250);
        run.log_at_time(step, time, [("loss", 1.0 / (1.0 + f64::from(u32::try_from(step).unwrap())))]).unwrap();
    }
    run.finish(0).unwrap();
}

#[test]
fn history_time_adds_timestamp_and_runtime_columns_and_members() {
    let t = temp_store();
    timed_run(&t, "r");
    let csv = ok(runstore(&t.path).args(["history", "r", "--time"]));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "step,_timestamp,_runtime,loss");
    assert!(lines[1].starts_with("0,1700000000.000,"), "{csv}");
    assert!(lines[3].starts_with("2,1700000000.500,"), "{csv}");
    let jsonl = ok(runstore(&t.path).args(["history", "r", "--time", "--format", "jsonl"]));
    let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first["_timestamp"], serde_json::json!(1_700_000_000.0));
    assert!(first["_runtime"].is_number());
    // Without --time the documented output is unchanged.
    assert_eq!(ok(runstore(&t.path).args(["history", "r"])).lines().next(), Some("step,loss"));
    let tail = ok(runstore(&t.path).args(["tail", "r", "--time", "--format", "csv"]));
    assert!(tail.starts_with("step,_timestamp,_runtime,loss"), "{tail}");
    let exported = ok(runstore(&t.path).args(["export", "r", "--format", "csv", "--time"]));
    assert_eq!(exported, csv);
}

#[test]
fn plot_against_runtime_and_time_writes_an_svg() {
    let t = temp_store();
    timed_run(&t, "r");
    for axis in ["runtime", "time", "step"] {
        let svg = ok(runstore(&t.path).args(["plot", "r", "--x", axis, "-o", "-"]));
        assert!(svg.starts_with("<svg") || svg.contains("<svg"), "{axis}");
        assert!(svg.contains("<path"), "{axis}: a curve");
    }
    assert!(ok(runstore(&t.path).args(["plot", "r", "--x", "runtime", "-o", "-"])).contains("runtime (s)"));
}

#[test]
fn checkpoint_records_and_checkpoints_lists_and_show_names_the_latest() {
    let t = temp_store();
    let dir = tempfile::tempdir().unwrap();
    let mut run = t.store.init(options().id("c")).unwrap();
    for step in 0..10u32 {
        run.log([("loss", f64::from(step))]).unwrap();
    }
    run.finish(0).unwrap();
    let first = dir.path().join("ckpt-4.pt");
    let second = dir.path().join("ckpt-9");
    std::fs::write(&first, b"1234").unwrap();
    std::fs::create_dir(&second).unwrap();
    std::fs::write(second.join("a"), b"12").unwrap();
    std::fs::write(second.join("b"), b"345").unwrap();
    let said = ok(runstore(&t.path).args(["checkpoint", "c"]).arg(&first).args(["--step", "4"]));
    assert!(said.contains("checkpoint 0 of run c at step 4"), "{said}");
    ok(runstore(&t.path).args(["checkpoint", "c"]).arg(&second));
    fails(runstore(&t.path).args(["checkpoint", "c"]).arg(&first).args(["--step", "99"]), 2, "99");
    let listed = ok(runstore(&t.path).args(["checkpoints", "c", "--json"]));
    let rows: Vec<serde_json::Value> = listed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0]["step"].as_u64(), rows[0]["size"].as_u64()), (Some(4), Some(4)));
    assert_eq!((rows[1]["step"].as_u64(), rows[1]["size"].as_u64()), (Some(9), Some(5)));
    assert_eq!(rows[1]["latest"], serde_json::json!(true));
    let show = ok(runstore(&t.path).args(["show", "c"]));
    assert!(show.contains("checkpoint") && show.contains("step 9"), "{show}");
    std::fs::remove_dir_all(&second).unwrap();
    let show = ok(runstore(&t.path).args(["show", "c"]));
    assert!(show.contains("step 4") && show.contains("1 newer missing"), "{show}");
    let table = ok(runstore(&t.path).args(["checkpoints", "c"]));
    assert!(table.lines().any(|l| l.starts_with('*') && l.contains("ckpt-4.pt")), "{table}");
    // The run keeps its state: finished.
    assert_eq!(t.store.open_run("c").unwrap().info().unwrap().state, runstore::RunState::Finished);
}

#[test]
fn agent_resume_from_checkpoint_sets_the_variable_for_its_command() {
    let t = temp_store();
    t.store.queue("q").unwrap().push(Some("item"), serde_json::json!({})).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("seen");
    let script = format!("printf %s \"$RUNSTORE_RESUME_FROM\" > '{}'", seen.display());
    ok(runstore(&t.path).args(["agent", "q", "--resume-from-checkpoint", "--", "sh", "-c", &script]));
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), "checkpoint");
    t.store.queue("q").unwrap().push(Some("other"), serde_json::json!({})).unwrap();
    ok(runstore(&t.path).env("RUNSTORE_RESUME_FROM", "12").args(["agent", "q", "--", "sh", "-c", &script]));
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), "", "without the flag the variable is not passed on");
}

#[test]
fn history_system_prints_samples_by_time_and_step_outputs_leave_them_out() {
    let t = temp_store();
    let mut run = t.store.init(options().id("s")).unwrap();
    run.log([("loss", 0.5)]).unwrap();
    run.log_system(UNIX_EPOCH + Duration::from_millis(1_700_000_000_250), [("system/cpu_percent", 12.5)]).unwrap();
    run.log_system(UNIX_EPOCH + Duration::from_millis(1_700_000_010_250), [("system/cpu_percent", f64::NAN)]).unwrap();
    run.finish(0).unwrap();
    let csv = ok(runstore(&t.path).args(["history", "s", "--system"]));
    assert_eq!(
        csv,
        "_timestamp,metric,value\n1700000000.250,system/cpu_percent,12.5\n1700000010.250,system/cpu_percent,NaN\n"
    );
    let jsonl = ok(runstore(&t.path).args(["history", "s", "--system", "--format", "jsonl"]));
    assert_eq!(
        jsonl.lines().next(),
        Some(r#"{"_timestamp":1700000000.250,"metric":"system/cpu_percent","value":12.5}"#)
    );
    fails(runstore(&t.path).args(["history", "s", "--system", "-m", "system/nope"]), 2, "no system metric");
    assert_eq!(ok(runstore(&t.path).args(["history", "s"])), "step,loss\n0,0.5\n");
}
