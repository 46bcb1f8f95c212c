//! What a new user hit (issue 15): the attempt record after a rewind at resume, the messages,
//! and the commands for comparing and managing runs.

use crate::command::{fails, ok, runstore};
use crate::support::{options, temp_store};

#[test]
fn log_with_runstore_resume_from_records_an_attempt_starting_after_the_rewind() {
    let t = temp_store();
    for i in 0..=20 {
        ok(runstore(&t.path).args(["log", "r1", "--resume", "allow", "--step", &i.to_string(), &format!("v={i}")]));
    }
    ok(runstore(&t.path).args(["log", "r1", "v=99"]).env("RUNSTORE_RESUME_FROM", "10"));

    let reader = t.store.open_run("r1").unwrap();
    let attempts = reader.attempts().unwrap();
    let last = attempts.last().unwrap();
    assert_eq!((last.first_step, last.last_step), (11, Some(11)));
    let show = ok(runstore(&t.path).args(["show", "r1"]));
    let line = show.lines().find(|line| line.trim_start().starts_with("22 ")).expect("attempt 22 in show");
    assert!(line.contains("11-11"), "{line}");
    ok(runstore(&t.path).args(["check", "r1"]));
}

#[test]
fn each_command_says_what_to_do_for_that_command() {
    let t = temp_store();
    for i in 0..3 {
        ok(runstore(&t.path).args(["log", "r", "--resume", "allow", &format!("v={i}")]));
    }
    let said = fails(runstore(&t.path).args(["log", "r", "--step", "1", "v=5"]), 2, "--step 1 is behind run \"r\"");
    assert!(said.stderr.contains("give --step 2 (merged into that row) or 3 or later"), "{}", said.stderr);
    // The last step itself is allowed: it merges.
    ok(runstore(&t.path).args(["log", "r", "--step", "2", "w=1"]));

    let said = fails(runstore(&t.path).args(["rewind", "nope", "--to", "1"]), 3, "run \"nope\" does not exist");
    assert!(said.stderr.contains("runstore ls") && !said.stderr.contains("allow"), "{}", said.stderr);
    let said = fails(runstore(&t.path).args(["log", "nope", "x=1"]), 3, "run \"nope\" does not exist");
    assert!(said.stderr.contains("--resume allow"), "{}", said.stderr);
    let said = fails(runstore(&t.path).args(["fork", "r", "--at", "1", "--id", "r"]), 4, "run \"r\" already exists");
    assert!(said.stderr.contains("another --id") && !said.stderr.contains("resume"), "{}", said.stderr);
    let said = fails(runstore(&t.path).args(["log", "r", "--resume", "never", "x=1"]), 4, "already exists");
    assert!(said.stderr.contains("--resume must"), "{}", said.stderr);
}

#[test]
fn counts_of_one_are_singular() {
    let t = temp_store();
    ok(runstore(&t.path).args(["log", "one", "--resume", "allow", "loss=1"]));
    let check = ok(runstore(&t.path).args(["check", "one"]));
    // One row of one metric is two chunks in format 2: its row chunk and its point chunk.
    assert!(check.contains("1 row,") && check.contains("2 chunks,") && check.contains("1 attempt;"), "{check}");
    assert!(check.contains("0 branches"), "{check}");
    let plot = ok(runstore(&t.path).args(["plot", "one", "-o"]).arg(t.path.join("one.svg")));
    assert!(plot.trim_end().ends_with("(1 metric)"), "{plot}");
    let show = ok(runstore(&t.path).args(["show", "one"]));
    assert!(show.contains("1 row") && !show.contains("1 rows"), "{show}");
}

/// Three finished runs of a sweep over `lr` (tagged `sweep-1`; `lr-0.001` also `keep`) and
/// one untagged run: loss falls to `lr * 10` at step 9, with a spike of 25 in `grad_norm`.
fn sweep(t: &crate::support::TempStore) {
    for (lr, tags) in [(0.1, vec!["sweep-1"]), (0.01, vec!["sweep-1"]), (0.001, vec!["sweep-1", "keep"])] {
        let id = format!("lr-{lr}");
        let config = serde_json::json!({"lr": lr, "opt": "sgd", "model": {"depth": 12}});
        let mut run = t.store.init(options().id(&id).config(config).tags(tags)).unwrap();
        for step in 0..10u32 {
            let loss = 1.0 - f64::from(step) / 9.0 * (1.0 - lr);
            let grad = if step == 3 { 25.0 } else { 0.5 };
            run.log([("loss", loss), ("grad_norm", grad)]).unwrap();
        }
        run.finish(0).unwrap();
    }
    let mut other = t.store.init(options().id("other").config(serde_json::json!({"opt": "adam"}))).unwrap();
    other.log([("loss", f64::NAN)]).unwrap();
    other.finish(0).unwrap();
}

fn first_column(table: &str) -> Vec<&str> {
    table.lines().skip(1).map(|line| line.split_whitespace().next().unwrap()).collect()
}

#[test]
fn ls_shows_chosen_columns_sorted_and_filtered_by_tag() {
    let t = temp_store();
    sweep(&t);
    let out = ok(runstore(&t.path)
        .args(["ls", "--columns", "config.lr,summary.loss,config.model.depth", "--sort"])
        .arg("summary.loss"));
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["ID", "config.lr", "summary.loss", "config.model.depth"]);
    // Lowest loss first; the run whose loss is NaN, and which has no lr, last.
    assert_eq!(first_column(&out), ["lr-0.001", "lr-0.01", "lr-0.1", "other"]);
    let lines: Vec<Vec<&str>> = out.lines().map(|line| line.split_whitespace().collect()).collect();
    assert_eq!(lines[1], ["lr-0.001", "0.001", "0.001", "12"]);
    assert_eq!(lines[4], ["other", "-", "NaN", "-"]);

    let out =
        ok(runstore(&t.path).args(["ls", "--tag", "sweep-1", "--sort", "config.lr", "--desc", "--columns", "state"]));
    assert_eq!(first_column(&out), ["lr-0.1", "lr-0.01", "lr-0.001"]);
    let out = ok(runstore(&t.path).args(["ls", "--tag", "sweep-1", "--tag", "keep"]));
    assert_eq!(first_column(&out), ["lr-0.001"]);

    let json: serde_json::Value = serde_json::from_str(&ok(runstore(&t.path).args([
        "ls",
        "--json",
        "--tag",
        "keep",
        "--columns",
        "config.lr,summary.loss",
    ])))
    .unwrap();
    assert_eq!(json[0]["config.lr"], 0.001);
    assert_eq!(json[0]["summary.loss"].as_f64().unwrap(), 1.0 - (1.0 - 0.001));
    assert_eq!(json[0]["state"], "finished");

    fails(runstore(&t.path).args(["ls", "--columns", "colour"]), 2, "unknown column \"colour\"");
}

#[test]
fn ls_and_queue_ls_fill_a_wide_terminal_and_cut_long_values_in_the_middle() {
    let t = temp_store();
    let long = format!("eval/loss_{}_a", "x".repeat(60));
    let mut run = t.store.init(options().id("wide").name(format!("name-{}-end", "n".repeat(100)))).unwrap();
    run.log([(long.as_str(), 1.0)]).unwrap();
    run.finish(0).unwrap();
    let column = format!("summary.{long}");

    // 80 columns when nothing says wider (a pipe, no COLUMNS).
    let narrow = ok(runstore(&t.path).args(["ls", "--columns", &format!("name,{column}")]));
    assert!(narrow.lines().all(|line| line.chars().count() <= 80), "{narrow}");
    assert!(narrow.contains('…') && narrow.contains("end") && narrow.contains("name-"), "cut in the middle: {narrow}");

    let wide = ok(runstore(&t.path).args(["ls", "--columns", &format!("name,{column}")]).env("COLUMNS", "150"));
    let longest = wide.lines().map(|line| line.chars().count()).max().unwrap();
    assert!(longest > 80 && longest <= 150, "{wide}");
    assert!(wide.contains("_a"), "the metric's end is kept: {wide}");
    // Narrower than 80 is taken as 80.
    let tiny = ok(runstore(&t.path).args(["ls"]).env("COLUMNS", "20"));
    assert!(tiny.lines().next().unwrap().starts_with("ID"), "{tiny}");

    let config = format!("{{\"path\": \"/data/{}/shard-07\"}}", "d".repeat(120));
    ok(runstore(&t.path).args(["queue", "push", "q", "--config", &config, "--id", "item-1"]));
    let queue = ok(runstore(&t.path).args(["queue", "ls", "q"]).env("COLUMNS", "120"));
    let item = queue.lines().find(|line| line.starts_with("item-1")).unwrap();
    assert!(item.chars().count() > 80 && item.chars().count() <= 120, "{queue}");
    assert!(item.contains('…') && item.ends_with("shard-07\"}"), "{item}");
}

#[test]
fn compare_shows_differing_config_and_each_metrics_last_min_and_max() {
    let t = temp_store();
    sweep(&t);
    let out = ok(runstore(&t.path).args(["compare", "lr-0.1", "lr-0.01", "lr-0.001"]));
    let lines: Vec<Vec<&str>> = out.lines().map(|line| line.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["lr-0.1", "lr-0.01", "lr-0.001"]);
    assert!(lines.contains(&vec!["lr", "0.1", "0.01", "0.001"]), "{out}");
    assert!(!out.contains("opt") && !out.contains("depth"), "equal keys are left out by default: {out}");
    let at = |label: &str| {
        let start = lines.iter().position(|line| line == &vec![label]).unwrap();
        lines[start + 1..start + 4].to_vec()
    };
    assert_eq!(at("loss")[0], ["last", "0.1", "0.01", "0.001"]);
    assert_eq!(at("loss")[1], ["min", "0.1", "@9", "0.01", "@9", "0.001", "@9"]);
    assert_eq!(at("grad_norm")[2], ["max", "25", "@3", "25", "@3", "25", "@3"]);

    let all = ok(runstore(&t.path).args(["compare", "lr-0.1", "other", "--all"]));
    assert!(all.contains("model.depth") && all.contains("adam"), "{all}");

    let json: serde_json::Value =
        serde_json::from_str(&ok(runstore(&t.path).args(["compare", "lr-0.1", "other", "--json", "-m", "loss"])))
            .unwrap();
    assert_eq!(json["runs"][1]["id"], "other");
    assert_eq!(json["config"]["lr"], serde_json::json!({"lr-0.1": 0.1, "other": null}));
    assert_eq!(json["config"]["opt"], serde_json::json!({"lr-0.1": "sgd", "other": "adam"}));
    assert_eq!(json["metrics"]["loss"]["lr-0.1"]["min_step"], 9);
    // NaN is the last value but never the lowest or highest.
    assert_eq!(
        json["metrics"]["loss"]["other"],
        serde_json::json!({"last": "NaN", "min": null, "min_step": null, "max": null, "max_step": null})
    );
    assert!(json["metrics"].get("grad_norm").is_none());

    fails(runstore(&t.path).args(["compare", "lr-0.1", "ghost"]), 3, "run \"ghost\" does not exist");
}

/// The `(stroke, d)` of every `<path class="CLASS">`.
fn paths<'a>(svg: &'a str, class: &str) -> Vec<(&'a str, &'a str)> {
    svg.split(&format!("<path class=\"{class}\""))
        .skip(1)
        .map(|path| {
            let attribute = |name: &str| path.split(&format!(" {name}=\"")).nth(1).unwrap().split('"').next().unwrap();
            (attribute("stroke"), attribute("d"))
        })
        .collect()
}

/// The y pixel coordinates of a path.
fn ys(d: &str) -> Vec<f64> {
    d.split(['M', 'L']).filter(|p| !p.is_empty()).map(|p| p.split(',').nth(1).unwrap().parse().unwrap()).collect()
}

#[test]
fn plot_overlays_several_runs_in_one_panel_per_metric_with_a_colour_per_run() {
    let t = temp_store();
    sweep(&t);
    let svg = ok(runstore(&t.path).args(["plot", "lr-0.1", "lr-0.01", "lr-0.001", "-o", "-"]));
    assert_eq!(svg.matches("class=\"panel-title\"").count(), 2, "loss and grad_norm, one panel each");
    let curves = paths(&svg, "curve");
    assert_eq!(curves.len(), 6, "three runs in each of two panels");
    let colours: std::collections::HashSet<&str> = curves.iter().map(|(stroke, _)| *stroke).collect();
    assert_eq!(colours.len(), 3, "one colour per run");
    assert_eq!(curves[0].0, curves[3].0, "a run keeps its colour in every panel");
    for id in ["lr-0.1", "lr-0.01", "lr-0.001"] {
        assert!(svg.contains(&format!(">{id}<")), "{id} in the legend");
    }
    // Panels stack: every loss point lies above every grad_norm point, each with its own y axis,
    // so the spike of 25 does not flatten the loss curves.
    let loss_lowest = curves[..3].iter().flat_map(|(_, d)| ys(d)).fold(f64::MIN, f64::max);
    let grad_highest = curves[3..].iter().flat_map(|(_, d)| ys(d)).fold(f64::MAX, f64::min);
    assert!(loss_lowest < grad_highest, "{loss_lowest} {grad_highest}");
    let loss_span = curves[0].1;
    let spread =
        ys(loss_span).iter().fold(f64::MIN, |a, &b| a.max(b)) - ys(loss_span).iter().fold(f64::MAX, |a, &b| a.min(b));
    assert!(spread > 100.0, "the loss curve fills its panel: {spread} px");
    assert!(svg.contains(">9<"), "a tick at the last step");

    let cwd = tempfile::tempdir().unwrap();
    let said = ok(runstore(&t.path).current_dir(cwd.path()).args(["plot", "lr-0.1", "other", "-m", "loss"]));
    assert!(said.contains("lr-0.1-and-1-more.svg (1 metric of 2 runs)"), "{said}");
    fails(runstore(&t.path).args(["plot", "lr-0.1", "other", "-m", "nope"]), 2, "none of the runs lr-0.1, other");
}

#[test]
fn plot_keeps_a_metrics_colour_across_plots_and_draws_log_y_and_smoothing() {
    let t = temp_store();
    sweep(&t);
    let all = ok(runstore(&t.path).args(["plot", "lr-0.1", "-o", "-"]));
    let one = ok(runstore(&t.path).args(["plot", "lr-0.1", "-m", "grad_norm", "-o", "-"]));
    assert_eq!(paths(&all, "curve")[1].0, paths(&one, "curve")[0].0, "grad_norm has the same colour alone");
    assert_ne!(paths(&all, "curve")[0].0, paths(&all, "curve")[1].0);

    // The loss falls by 0.1 a step, from 1 to 0.1: even drops on a linear axis; on a log axis
    // the drop from 0.2 to 0.1 is many times that from 1 to 0.9 (SVG's y grows downwards).
    let log = ok(runstore(&t.path).args(["plot", "lr-0.1", "-m", "loss", "--log-y", "-o", "-"]));
    assert!(log.contains("loss (log)") && log.contains(">1<") && log.contains(">0.1<"), "log ticks");
    let loss = ys(paths(&log, "curve")[0].1);
    let (first, last) = (loss[1] - loss[0], loss[9] - loss[8]);
    assert!(first > 0.0 && last > 5.0 * first, "{loss:?}");
    let linear = ys(paths(&ok(runstore(&t.path).args(["plot", "lr-0.1", "-m", "loss", "-o", "-"])), "curve")[0].1);
    assert!(((linear[9] - linear[8]) - (linear[1] - linear[0])).abs() < 1.0, "{linear:?}");

    let smooth = ok(runstore(&t.path).args(["plot", "lr-0.1", "-m", "grad_norm", "--smooth", "0.6", "-o", "-"]));
    let raw = paths(&smooth, "raw");
    let curve = paths(&smooth, "curve");
    assert_eq!((raw.len(), curve.len()), (1, 1));
    assert_eq!(raw[0].0, curve[0].0, "the raw curve in the same colour, faded");
    assert!(smooth.contains("stroke-opacity=\"0.25\""));
    // The smoothed spike is lower (a greater y pixel) than the raw one.
    let peak = |d: &str| ys(d).into_iter().fold(f64::MAX, f64::min);
    assert!(peak(curve[0].1) > peak(raw[0].1) + 10.0, "{} {}", peak(curve[0].1), peak(raw[0].1));
    fails(runstore(&t.path).args(["plot", "lr-0.1", "--smooth", "1"]), 2, "--smooth 1 is not in [0, 1)");
}

/// `rows` standard rows in a finished run `id`.
fn finished(t: &crate::support::TempStore, id: &str, rows: u64) {
    let mut run = t.store.init(options().id(id)).unwrap();
    for step in 0..rows {
        run.log(crate::support::row(step)).unwrap();
    }
    run.finish(0).unwrap();
}

#[test]
fn rm_asks_deletes_and_refuses_live_runs_runs_with_forks_and_unknown_ids() {
    let t = temp_store();
    for id in ["a", "b", "c"] {
        finished(&t, id, 10);
    }
    // Asked: "n" keeps, "y" deletes; no answer deletes nothing.
    let mut command = runstore(&t.path);
    command.args(["rm", "a", "b"]).stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut process = command.stderr(std::process::Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(process.stdin.as_mut().unwrap(), b"n\ny\n").unwrap();
    let output = process.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), "kept run a\ndeleted run b\n");
    assert!(String::from_utf8_lossy(&output.stderr).contains("delete run a (finished, 10 rows, 1 attempt)? [y/N]"));
    assert_eq!(t.store.run_ids().unwrap(), ["a", "c"]);
    let said = crate::command::run(runstore(&t.path).args(["rm", "a"]));
    assert_eq!(said.code, 2, "{}", said.stderr);
    assert!(
        said.stderr
            .ends_with("runstore: no answer on stdin, so nothing was deleted: pass --yes to delete without asking\n")
    );
    assert!(t.store.exists("a").unwrap());

    // An unknown id: nothing is deleted.
    fails(runstore(&t.path).args(["rm", "--yes", "a", "ghost"]), 3, "run \"ghost\" does not exist");
    assert!(t.store.exists("a").unwrap());

    let live = t.store.init(options().id("c").resume(runstore::Resume::Must)).unwrap();
    let said = fails(runstore(&t.path).args(["rm", "--yes", "c", "a"]), 5, "run \"c\" is being written by pid");
    assert!(said.stdout.contains("deleted run a"), "the others are still deleted: {}", said.stdout);
    assert!(t.store.exists("c").unwrap());
    live.finish(0).unwrap();

    finished(&t, "base", 10);
    ok(runstore(&t.path).args(["fork", "base", "--at", "4", "--id", "child"]));
    fails(runstore(&t.path).args(["rm", "-y", "base"]), 2, "has forks that read their history from it (child)");
    ok(runstore(&t.path).args(["rm", "-y", "child", "base", "c"]));
    assert!(t.store.run_ids().unwrap().is_empty());
    ok(runstore(&t.path).args(["check"]));
}

#[test]
fn a_deletion_killed_midway_leaves_each_run_whole_or_gone() {
    let t = temp_store();
    let ids: Vec<String> = (0..20).map(|n| format!("r{n:02}")).collect();
    let rows = 100;
    let fill = |t: &crate::support::TempStore| {
        for id in &ids {
            if !t.store.exists(id).unwrap() {
                finished(t, id, rows);
            }
        }
    };
    fill(&t);
    // How long deleting them all takes, to spread the kills over it.
    let started = std::time::Instant::now();
    ok(runstore(&t.path).args(["rm", "--yes"]).args(&ids));
    let whole = started.elapsed();
    eprintln!("deleting {} runs took {whole:?}", ids.len());
    let mut partial = 0;
    for round in 1..=8u32 {
        fill(&t);
        let mut process =
            runstore(&t.path).args(["rm", "--yes"]).args(&ids).stdout(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(whole * round / 8);
        process.kill().unwrap(); // SIGKILL
        process.wait().unwrap();

        let mut gone = 0;
        for id in &ids {
            if !t.store.exists(id).unwrap() {
                gone += 1;
                assert!(!t.path.join("runs").join(id).exists(), "{id}: a directory left where the run was");
                continue;
            }
            let reader = t.store.open_run(id).unwrap();
            let info = reader.info().unwrap();
            assert_eq!((info.rows, info.state), (rows, runstore::RunState::Finished), "{id} whole");
            assert_eq!(reader.history(..).unwrap().count(), usize::try_from(rows).unwrap(), "{id} reads whole");
        }
        if 0 < gone && gone < ids.len() {
            partial += 1;
        }
        let listed: Vec<serde_json::Value> =
            serde_json::from_str(&ok(runstore(&t.path).args(["ls", "--json"]))).unwrap();
        assert_eq!(listed.len(), ids.len() - gone);
        let check = t.store.check_all().unwrap();
        assert!(check.is_healthy(), "{:?}", check.runs.iter().flat_map(|run| &run.problems).collect::<Vec<_>>());
        ok(runstore(&t.path).args(["check"]));
    }
    assert!(partial > 0, "no kill landed while runs were being deleted ({whole:?} for all)");
    // What killed deletions left is cleared by the next one.
    fill(&t);
    ok(runstore(&t.path).args(["rm", "--yes"]).args(&ids));
    let left: Vec<_> = std::fs::read_dir(t.path.join("runs")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn tag_and_note_edit_a_finished_run_and_fork_keeps_name_and_tags() {
    let t = temp_store();
    let mut run = t.store.init(options().id("r").name("resnet").tags(["debug", "sweep-1"])).unwrap();
    run.log([("loss", 1.0)]).unwrap();
    run.log([("loss", 0.5)]).unwrap();
    run.finish(0).unwrap();
    assert_eq!(ok(runstore(&t.path).args(["tag", "r", "+keep", "-debug"])), "run r tags: sweep-1, keep\n");
    fails(runstore(&t.path).args(["tag", "r", "keep"]), 2, "neither +TAG nor -TAG");
    fails(runstore(&t.path).args(["tag", "r", "+"]), 2, "invalid tag \"\"");
    ok(runstore(&t.path).args(["note", "r", "diverged after warm-up"]));
    let show = ok(runstore(&t.path).args(["show", "r"]));
    assert!(show.contains("sweep-1, keep") && show.contains("diverged after warm-up"), "{show}");
    ok(runstore(&t.path).args(["note", "r", ""]));
    assert_eq!(t.store.open_run("r").unwrap().info().unwrap().notes, None);
    let json: serde_json::Value =
        serde_json::from_str(&ok(runstore(&t.path).args(["ls", "--json", "--tag", "keep"]))).unwrap();
    assert_eq!(json[0]["tags"], serde_json::json!(["sweep-1", "keep"]));

    ok(runstore(&t.path).args(["fork", "r", "--at", "0", "--id", "f"]));
    let info = t.store.open_run("f").unwrap().info().unwrap();
    assert_eq!(
        (info.name.as_deref(), info.tags.clone()),
        (Some("resnet (fork at 0)"), vec!["sweep-1".into(), "keep".into()])
    );
    let _live = t.store.init(options().id("r").resume(runstore::Resume::Must)).unwrap();
    fails(runstore(&t.path).args(["tag", "r", "+x"]), 5, "is being written by");
    fails(runstore(&t.path).args(["note", "r", "x"]), 5, "is being written by");
}

#[test]
fn show_prints_each_metrics_lowest_and_highest_value_beside_the_last() {
    let t = temp_store();
    sweep(&t);
    let text = ok(runstore(&t.path).args(["show", "lr-0.1"]));
    let header = text.lines().find(|line| line.starts_with("summary")).unwrap();
    assert_eq!(header.split_whitespace().collect::<Vec<_>>(), ["summary", "last", "min", "max", "curve"]);
    let grad = text.lines().find(|line| line.trim_start().starts_with("grad_norm")).unwrap();
    assert_eq!(grad.split_whitespace().take(4).collect::<Vec<_>>(), ["grad_norm", "0.5", "0.5", "25"], "{grad}");
    assert!(text.lines().all(|line| line.chars().count() <= 80), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(runstore(&t.path).args(["show", "lr-0.1", "--json"]))).unwrap();
    assert_eq!(
        json["extremes"]["grad_norm"],
        serde_json::json!({"min": 0.5, "min_step": 0, "max": 25.0, "max_step": 3})
    );
    let other: serde_json::Value =
        serde_json::from_str(&ok(runstore(&t.path).args(["show", "other", "--json"]))).unwrap();
    assert_eq!(other["extremes"]["loss"]["min"], serde_json::Value::Null, "NaN is no extreme");
}

#[test]
fn tail_follow_says_on_stderr_how_the_run_ended() {
    let t = temp_store();
    let mut run = t.store.init(options().id("f")).unwrap();
    run.log([("loss", 1.0)]).unwrap();
    run.finish(3).unwrap();
    let said = crate::command::run(runstore(&t.path).args(["tail", "-f", "f"]));
    assert_eq!((said.code, said.stderr.as_str()), (0, "runstore: run f failed (exit code 3); its last step is 0\n"));

    // A writer that dies: the follower reports the crash.
    let mut command = crate::support::child("writer", &t.path);
    command
        .env("RUNSTORE_RUN_ID", "c")
        .env("RUNSTORE_RESUME", "allow")
        .env("TEST_ROWS", "5")
        .env("TEST_FLUSH_EVERY", "5")
        .env("TEST_END", "hold");
    let mut writer = command.spawn().unwrap();
    let mut reports = crate::support::Reports::of(&mut writer);
    reports.expect("holding");
    let tail = runstore(&t.path)
        .args(["tail", "-f", "c"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    writer.kill().unwrap(); // SIGKILL: no finish
    writer.wait().unwrap();
    let output = tail.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "runstore: run c crashed: its process died without finishing; its last step is 4\n"
    );
}

#[test]
fn an_agent_whose_every_item_failed_exits_1() {
    let t = temp_store();
    for id in ["a", "b"] {
        ok(runstore(&t.path).args(["queue", "push", "q", "--config", "{}", "--id", id]));
    }
    let said = crate::command::run(runstore(&t.path).args(["agent", "q", "--max-attempts", "1", "--", "false"]));
    assert_eq!(said.code, 1, "{}", said.stdout);
    assert!(said.stdout.contains("failed a (exit 1, failure 1 of 1)"), "{}", said.stdout);
    assert!(said.stderr.contains("the command failed for all 2 items this agent ran"), "{}", said.stderr);

    ok(runstore(&t.path).args(["queue", "push", "q", "--config", "{}", "--id", "c"]));
    ok(runstore(&t.path).args(["agent", "q", "--", "true"]));
    // Nothing to run is no failure.
    ok(runstore(&t.path).args(["agent", "q", "--", "false"]));
}

#[test]
fn tag_and_note_killed_midway_leave_the_old_record_or_the_new() {
    let t = temp_store();
    finished(&t, "r", 50);
    t.store.edit_tags("r", &["a"], &[]).unwrap();
    // How long an edit takes, to spread the kills over it.
    let started = std::time::Instant::now();
    ok(runstore(&t.path).args(["note", "r", "first"]));
    let whole = started.elapsed();
    let mut changed = 0;
    for round in 0..16u64 {
        // Flip between two whole sets of tags and notes; a kill may land anywhere in it.
        let (tags, note) = if round % 2 == 0 { (["+b", "-a"], "second") } else { (["+a", "-b"], "first") };
        let mut process =
            runstore(&t.path).args(["tag", "r", tags[0], tags[1]]).stdout(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(whole * u32::try_from(round).unwrap() / 12);
        process.kill().unwrap(); // SIGKILL
        process.wait().unwrap();
        let mut process =
            runstore(&t.path).args(["note", "r", note]).stdout(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(whole * u32::try_from(round).unwrap() / 12);
        process.kill().unwrap();
        process.wait().unwrap();

        let info = t.store.open_run("r").unwrap().info().unwrap();
        assert!(info.tags == ["a"] || info.tags == ["b"], "{:?}", info.tags);
        assert!(matches!(info.notes.as_deref(), Some("first" | "second")), "{:?}", info.notes);
        changed += u32::from(info.tags == ["b"]);
        assert_eq!((info.rows, info.state), (50, runstore::RunState::Finished));
        assert!(t.store.check("r").unwrap().is_healthy());
    }
    // Unkilled, both land.
    ok(runstore(&t.path).args(["tag", "r", "+z"]));
    ok(runstore(&t.path).args(["note", "r", "last"]));
    let info = t.store.open_run("r").unwrap().info().unwrap();
    assert!(info.tags.contains(&"z".to_string()) && info.notes.as_deref() == Some("last"));
    eprintln!("tags flipped to b in {changed} of 16 killed rounds ({whole:?} an edit)");
    assert!(changed > 0, "no kill came after an edit landed");
}
