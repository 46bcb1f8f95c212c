//! System metrics (`system/...`, sampled by time) through the command line: `show`'s system
//! section, `plot --system`, and the viewer's system series.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::command::{fails, ok, runstore};
use crate::support::{TempStore, options, temp_store};

/// The names the sampler writes.
pub const NAMES: [&str; 9] = [
    "system/cpu_percent",
    "system/process_cpu_percent",
    "system/memory_rss_mib",
    "system/memory_used_percent",
    "system/disk_free_gib",
    "system/disk_read_mib_per_s",
    "system/net_recv_mib_per_s",
    "system/gpu0/utilization_percent",
    "system/gpu0/memory_used_mib",
];

/// When the first sample of [`sampled_run`] is taken: 1 700 000 000 s.
pub const START: u64 = 1_700_000_000;

/// A finished run `id` of 10 steps and `samples` samples of every metric of [`NAMES`], one every
/// 10 s from [`START`]: metric `m`'s sample `i` is `m * 1000 + i % 97`, except that
/// `system/cpu_percent` (`20 + i % 50`) peaks at 98 at sample 100 and ends at 43.1.
pub fn sampled_run(t: &TempStore, id: &str, samples: u64) {
    let mut run = t.store.init(options().id(id)).unwrap();
    for step in 0..10 {
        run.log([("loss", 1.0 / f64::from(step + 1))]).unwrap();
    }
    for index in 0..samples {
        let values = NAMES.iter().enumerate().map(|(metric, name)| (*name, sample(metric, index, samples)));
        run.log_system(at(index), values).unwrap();
        if index % 1000 == 999 {
            run.flush().unwrap();
        }
    }
    run.finish(0).unwrap();
}

/// Sample `index` of metric `metric` (an index into [`NAMES`]) of a run of `samples`.
pub fn sample(metric: usize, index: u64, samples: u64) -> f64 {
    if metric == 0 {
        return match index {
            100 => 98.0,
            _ if index + 1 == samples => 43.1,
            _ => 20.0 + f64::from(u32::try_from(index % 50).unwrap()),
        };
    }
    f64::from(u32::try_from(metric * 1000).unwrap() + u32::try_from(index % 97).unwrap())
}

/// When sample `index` is taken.
pub fn at(index: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(START + index * 10)
}

fn assert_fits_80_columns(text: &str) {
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "wider than 80 columns: {line:?}");
    }
}

#[test]
fn show_lists_each_system_metric_with_its_last_value_peak_and_time_span() {
    let t = temp_store();
    sampled_run(&t, "s", 361);
    let text = ok(runstore(&t.path).args(["show", "s"]));
    assert_fits_80_columns(&text);
    let section: Vec<&str> = text.split("\nsystem").nth(1).expect("a system section").lines().collect();
    assert!(section[0].contains("last") && section[0].contains("peak"), "{text}");
    let cpu = section.iter().find(|line| line.trim_start().starts_with("system/cpu_percent ")).expect("cpu line");
    let cells: Vec<&str> = cpu.split_whitespace().collect();
    assert_eq!(cells, ["system/cpu_percent", "43.1", "98", "361", "over", "1h00m"], "{text}");
    let gpu = section.iter().find(|line| line.contains("system/gpu0/memory_used_mib")).expect("gpu line");
    // 360 % 97 = 69; the highest of `index % 97` is 96.
    assert_eq!(gpu.split_whitespace().collect::<Vec<_>>()[1..3], ["8069", "8096"], "{text}");
    // Aligned: every value column ends at the same place.
    let ends: Vec<usize> =
        section[1..=NAMES.len()].iter().map(|line| line.find(" 361 over").expect("samples column")).collect();
    assert!(ends.windows(2).all(|pair| pair[0] == pair[1]), "{text}");
    // The step summary does not list them.
    let summary = text.split("\nsummary").nth(1).unwrap().split("\nsystem").next().unwrap();
    assert!(summary.contains("loss") && !summary.contains("system/"), "{text}");

    let json: serde_json::Value = serde_json::from_str(&ok(runstore(&t.path).args(["show", "s", "--json"]))).unwrap();
    let system = json["system"].as_object().expect("a system object");
    assert_eq!(system.len(), NAMES.len());
    let cpu = &system["system/cpu_percent"];
    assert_eq!(cpu["last"], 43.1);
    assert_eq!(cpu["peak"], 98.0);
    assert_eq!(cpu["samples"], 361);
    assert_eq!(cpu["first_time"], runstore::format_rfc3339(at(0)));
    assert_eq!(cpu["last_time"], runstore::format_rfc3339(at(360)));
    assert!(json["metrics"].as_array().unwrap().iter().all(|name| !name.as_str().unwrap().starts_with("system/")));
}

#[test]
fn show_has_no_system_section_for_a_run_without_samples_and_nan_never_peaks() {
    let t = temp_store();
    let mut run = t.store.init(options().id("plain")).unwrap();
    run.log([("loss", 0.5)]).unwrap();
    run.finish(0).unwrap();
    let text = ok(runstore(&t.path).args(["show", "plain"]));
    assert!(!text.contains("\nsystem"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(runstore(&t.path).args(["show", "plain", "--json"]))).unwrap();
    assert_eq!(json["system"], serde_json::json!({}));
    assert_eq!(json["system_notes"], serde_json::json!([]), "no sampler, no notes");

    let mut run = t.store.init(options().id("nan")).unwrap();
    run.log_system(at(0), [("system/cpu_percent", 12.5)]).unwrap();
    run.log_system(at(1), [("system/cpu_percent", f64::NAN), ("system/gpu0/utilization_percent", f64::NAN)]).unwrap();
    run.finish(0).unwrap();
    let json: serde_json::Value = serde_json::from_str(&ok(runstore(&t.path).args(["show", "nan", "--json"]))).unwrap();
    assert_eq!(json["system"]["system/cpu_percent"]["last"], "NaN");
    assert_eq!(json["system"]["system/cpu_percent"]["peak"], 12.5);
    assert_eq!(json["system"]["system/gpu0/utilization_percent"]["peak"], serde_json::Value::Null);
    let text = ok(runstore(&t.path).args(["show", "nan"]));
    let gpu = text.lines().find(|line| line.contains("system/gpu0/utilization_percent")).expect("gpu line");
    assert_eq!(
        gpu.split_whitespace().collect::<Vec<_>>(),
        ["system/gpu0/utilization_percent", "NaN", "-", "1", "sample"]
    );
}

#[test]
fn show_says_why_a_sampled_run_has_no_gpu_series() {
    let t = temp_store();
    // The real sampler, on this machine: with no NVIDIA GPU it records no GPU series and one
    // note; with one, GPU series and no note.
    let mut run = t.store.init(options().id("sampled").system_metrics(Duration::from_millis(20))).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    run.log([("loss", 0.5)]).unwrap();
    run.finish(0).unwrap();
    let notes = t.store.open_run("sampled").unwrap().info().unwrap().system_notes;
    let json: serde_json::Value =
        serde_json::from_str(&ok(runstore(&t.path).args(["show", "sampled", "--json"]))).unwrap();
    assert_eq!(json["system_notes"], serde_json::json!(notes));
    let text = ok(runstore(&t.path).args(["show", "sampled"]));
    assert_fits_80_columns(&text);
    assert!(text.contains("system/memory_rss_mib"), "{text}");
    if json["system"].as_object().unwrap().keys().any(|name| name.starts_with("system/gpu")) {
        assert!(notes.is_empty(), "{notes:?}");
    } else {
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(text.contains("no GPU metrics"), "{text}");
    }
}

/// The number of `<path class="curve">` elements of an SVG document and its panel titles
/// (above each panel, or along the y axis of a chart of one).
fn panels(svg: &str) -> (usize, Vec<String>) {
    assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
    let class = if svg.contains("class=\"panel-title\"") { "class=\"panel-title\"" } else { "rotate(-90" };
    let titles = svg
        .split(class)
        .skip(1)
        .map(|rest| rest.split('>').nth(1).unwrap().split('<').next().unwrap().to_string())
        .collect();
    (svg.matches("<path class=\"curve\"").count(), titles)
}

#[test]
fn plot_system_draws_a_panel_per_metric_against_wall_clock_time() {
    let t = temp_store();
    sampled_run(&t, "s", 361);
    let out = t.path.join("s-system.svg");
    let said = ok(runstore(&t.path).args(["plot", "s", "--system", "-o"]).arg(&out));
    assert!(said.contains("9 system metrics"), "{said}");
    let svg = std::fs::read_to_string(&out).unwrap();
    let (curves, titles) = panels(&svg);
    assert_eq!(titles, NAMES, "one panel per system metric, in the order recorded");
    assert_eq!(curves, NAMES.len());
    assert!(svg.contains(&format!("time (s since {})", runstore::format_rfc3339(at(0)))), "x is wall-clock time");
    assert!(svg.contains(">3600<"), "the axis ends at the last sample, 3600 s after the first");
    assert!(!svg.contains(">loss<"), "no step metric");

    // --metric picks some; a step metric or an unknown one is refused.
    let svg = ok(runstore(&t.path).args(["plot", "s", "--system", "-m", "system/cpu_percent", "-o", "-"]));
    assert_eq!(panels(&svg).1, ["system/cpu_percent"]);
    fails(runstore(&t.path).args(["plot", "s", "--system", "-m", "loss", "-o", "-"]), 2, "no system metric \"loss\"");
    let refused = crate::command::run(runstore(&t.path).args(["plot", "s", "--system", "--x", "runtime"]));
    assert!(refused.code == 2 && refused.stderr.contains("cannot be used with"), "{}", refused.stderr);
    let mut run = t.store.init(options().id("plain")).unwrap();
    run.log([("loss", 0.5)]).unwrap();
    run.finish(0).unwrap();
    fails(runstore(&t.path).args(["plot", "plain", "--system"]), 2, "has no system metrics");
}

#[test]
fn plot_system_overlays_several_runs_one_colour_each() {
    let t = temp_store();
    sampled_run(&t, "a", 50);
    sampled_run(&t, "b", 80);
    let svg = ok(runstore(&t.path).args(["plot", "a", "b", "--system", "-m", "system/cpu_percent", "-o", "-"]));
    let (curves, titles) = panels(&svg);
    assert_eq!((curves, titles), (2, vec!["system/cpu_percent".to_string()]), "both runs' curves in one panel");
    assert!(svg.contains(">a<") && svg.contains(">b<"), "a legend entry per run");
}

#[test]
fn plot_system_stays_small_for_a_week_of_samples() {
    let t = temp_store();
    // A week at one sample every 10 s.
    sampled_run(&t, "week", 60_480);
    let svg = ok(runstore(&t.path).args(["plot", "week", "--system", "-m", "system/cpu_percent", "-o", "-"]));
    let (curves, _) = panels(&svg);
    assert_eq!(curves, 1);
    let points =
        svg.split("<path class=\"curve\"").nth(1).unwrap().split("</path>").next().unwrap().matches('L').count();
    assert!(points < 4 * 1200, "reduced to at most 4 points per column: {points}");
    assert!(svg.len() < 200_000, "{} bytes", svg.len());
    assert!(svg.contains(">98<") || svg.contains(">100<"), "the peak sets the y range");
}

/// Not a test: the store writer of `cli/tests/sync/check.py`, which has no other way to record
/// system samples. Adds `RUNSTORE_FIXTURE_SAMPLES` samples of every metric of [`NAMES`] (and a
/// row) to run `sys` of the store at `RUNSTORE_FIXTURE_STORE`, after the samples it has.
#[test]
#[ignore = "a fixture of cli/tests/sync/check.py"]
fn sync_fixture() {
    let store = runstore::Store::open(std::env::var("RUNSTORE_FIXTURE_STORE").expect("the store")).unwrap();
    let samples: u64 = std::env::var("RUNSTORE_FIXTURE_SAMPLES").expect("how many").parse().unwrap();
    let mut run = store.init(options().id("sys").resume(runstore::Resume::Allow)).unwrap();
    let before = store.open_run("sys").unwrap().system(NAMES[0], ..).unwrap().len() as u64;
    run.log([("loss", 0.5)]).unwrap();
    for index in before..before + samples {
        let values = NAMES.iter().enumerate().map(|(metric, name)| (*name, sample(metric, index, u64::MAX)));
        run.log_system(at(index) + Duration::from_millis(index % 1000), values).unwrap();
    }
    run.finish(0).unwrap();
}

#[test]
fn the_viewer_api_lists_system_metrics_apart_and_serves_their_samples_against_time_downsampled() {
    let t = temp_store();
    sampled_run(&t, "s", 5000);
    let server = crate::serve::Server::start(&t.path, &[]);
    let detail = server.json("/api/runs/s");
    assert_eq!(detail["metrics"], serde_json::json!(["loss"]), "the step metrics");
    assert_eq!(detail["system"], serde_json::json!(NAMES), "the system metrics, apart");

    let series = server.json("/api/runs/s/system?metric=system/cpu_percent&width=100");
    assert_eq!(series["samples"], 5000);
    let x: Vec<f64> = serde_json::from_value(series["x"].clone()).unwrap();
    let values: Vec<f64> = serde_json::from_value(series["values"].clone()).unwrap();
    assert_eq!(x.len(), values.len());
    assert!(x.len() <= 4 * 100, "at most 4 samples per column: {}", x.len());
    assert!(x.windows(2).all(|pair| pair[0] < pair[1]), "in time order");
    #[allow(clippy::cast_precision_loss)]
    let (first, last) = (START as f64, (START + 4999 * 10) as f64);
    assert_eq!((x[0], x[x.len() - 1]), (first, last), "x is seconds since 1970, first and last sample kept");
    let peak = x.iter().position(|&x| x == first + 1000.0).expect("the peak's sample is kept");
    assert_eq!(values[peak], 98.0);
    assert_eq!(values[values.len() - 1], 43.1);
    // Every sample when the width allows it.
    let all = server.json("/api/runs/s/system?metric=system/gpu0/memory_used_mib&width=8192");
    assert_eq!(all["x"].as_array().unwrap().len(), 5000);

    for (path, status) in [
        ("/api/runs/s/system?metric=loss", 400),
        ("/api/runs/s/system", 400),
        ("/api/runs/s/system?metric=system/cpu_percent&width=x", 400),
        ("/api/runs/s/system?metric=system/nope", 404),
        ("/api/runs/nope/system?metric=system/cpu_percent", 404),
        ("/api/runs/..%2Fs/system?metric=system/cpu_percent", 400),
        ("/api/runs/s/series?metric=system/cpu_percent", 400),
    ] {
        let response = server.get(path);
        assert_eq!(response.status, status, "{path}: {}", response.text());
    }
}
