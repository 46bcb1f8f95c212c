//! `runstore serve`: every endpoint of the viewer through a real server (the binary on a free
//! loopback port) over a real store, with plain HTTP/1.1 over a TCP socket so that the tests
//! choose every header themselves.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use runstore::{Resume, Store};
use serde_json::Value;

use crate::command::runstore;
use crate::support::{CHILD, Reports, TempStore, child, options, temp_store};

/// A running `runstore serve`, stopped when dropped.
pub struct Server {
    process: Child,
    pub port: u16,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    /// Starts `runstore --dir STORE serve --port 0` with `extra` arguments and reads the port
    /// from its first line.
    pub fn start(store: &std::path::Path, extra: &[&str]) -> Server {
        let mut process = runstore(store)
            .args(["serve", "--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start runstore serve");
        let mut stderr = process.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let mut line = String::new();
        BufReader::new(process.stdout.take().expect("stdout")).read_line(&mut line).expect("first line");
        let address = line.split("http://").nth(1).and_then(|rest| rest.split('/').next()).expect(&line);
        let port = address.rsplit(':').next().and_then(|port| port.parse().ok()).expect(&line);
        Server { process, port, stderr: Some(stderr) }
    }

    /// Stops the server and returns what it wrote to stderr.
    pub fn stop(mut self) -> String {
        let _ = self.process.kill();
        let _ = self.process.wait();
        self.stderr.take().map(|thread| thread.join().expect("stderr reader")).unwrap_or_default()
    }

    /// `GET path` with `Host: 127.0.0.1:PORT`.
    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &format!("127.0.0.1:{}", self.port))
    }

    /// `GET path`, expecting 200 and JSON.
    pub fn json(&self, path: &str) -> Value {
        let response = self.get(path);
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        assert_eq!(response.header("content-type"), Some("application/json"), "{path}");
        serde_json::from_slice(&response.body).expect("JSON")
    }

    /// Any request with the given method and `Host` header.
    pub fn request(&self, method: &str, path: &str, host: &str) -> Response {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(stream, "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read response");
        Response::parse(&raw)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// An HTTP response as it came.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn parse(raw: &[u8]) -> Response {
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines.next().and_then(|line| line.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status");
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Response { status, headers, body: raw[end + 4..].to_vec() }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn error(&self) -> String {
        serde_json::from_slice::<Value>(&self.body).expect("JSON error")["error"]
            .as_str()
            .expect("error text")
            .to_string()
    }
}

/// A smooth, noisy training curve: deterministic, so screenshots and assertions are stable.
#[allow(clippy::cast_precision_loss)]
pub fn curve(step: u64, seed: u64, scale: f64) -> f64 {
    let noise = ((step.wrapping_mul(2_654_435_761).wrapping_add(seed * 97)) % 1000) as f64 / 1000.0 - 0.5;
    let x = step as f64;
    scale * (2.2 * (-x / (600.0 + 150.0 * seed as f64)).exp() + 0.15) + 0.08 * noise
}

/// Logs `loss` and `acc` for steps `from..to` of a run.
fn log_curves(run: &mut runstore::Run, from: u64, to: u64, seed: u64, scale: f64) {
    for step in from..to {
        let loss = curve(step, seed, scale);
        run.log_at(step, [("loss", loss), ("acc", 1.0 - loss / 2.5)]).unwrap();
    }
}

/// The viewer's demo store: a learning-rate sweep, a run that crashed (a child writer killed)
/// and resumed from a checkpoint before the crash (an archived branch), a fork, and a damaged
/// run.
pub fn demo_store(t: &TempStore) {
    let sweep = [("sgd-lr-0.1", 0.1, 0, 1.0), ("sgd-lr-0.03", 0.03, 1, 0.9), ("sgd-lr-0.01", 0.01, 2, 1.1)];
    for (id, lr, seed, scale) in sweep {
        let config = serde_json::json!({ "lr": lr, "optimizer": "sgd", "batch_size": 128 });
        let mut run = t
            .store
            .init(
                options()
                    .id(id)
                    .project("cifar10")
                    .name(format!("resnet18 lr={lr}"))
                    .tags(["resnet", "sweep"])
                    .config(config),
            )
            .unwrap();
        log_curves(&mut run, 0, 3000, seed, scale);
        run.finish(0).unwrap();
    }
    crashed_and_resumed(t, "resnet-preempt", 1800, 1500, 3000);
    let config = serde_json::json!({ "lr": 0.003, "optimizer": "adam", "batch_size": 128 });
    let mut fork =
        t.store.fork("sgd-lr-0.1", 1200, options().id("adam-finetune").project("cifar10").config(config)).unwrap();
    log_curves(&mut fork, 1201, 2600, 3, 0.8);
    fork.finish(0).unwrap();
    damage(t, "broken");
}

/// A run `id` whose first attempt (a child process) logs `0..crash_at` and is killed; the
/// second resumes from the checkpoint at `resume_from`, archiving the rows after it, and logs
/// up to `end`.
pub fn crashed_and_resumed(t: &TempStore, id: &str, crash_at: u64, resume_from: u64, end: u64) {
    let mut writer = child("serve::curve_writer", &t.path);
    writer.env("TEST_ID", id).env("TEST_TO", crash_at.to_string());
    let mut process = writer.spawn().expect("spawn writer");
    Reports::of(&mut process).expect("holding");
    process.kill().unwrap();
    process.wait().unwrap();
    let config = serde_json::json!({ "lr": 0.1, "optimizer": "sgd", "batch_size": 256 });
    let mut run = t
        .store
        .init(
            options()
                .id(id)
                .resume(Resume::Must)
                .resume_from(resume_from)
                .project("cifar10")
                .config(config)
                .tags(["preemptible"]),
        )
        .unwrap();
    // The resumed attempt learns a little differently from where it started again.
    log_curves(&mut run, resume_from + 1, end, 2, 0.8);
    // A checkpoint of the last step, its file beside the store: a tick on the chart.
    let path = t.path.join(format!("{id}.ckpt"));
    std::fs::write(&path, b"weights").unwrap();
    run.checkpoint(&path).unwrap();
    run.finish(0).unwrap();
}

/// A run whose database is garbage.
pub fn damage(t: &TempStore, id: &str) {
    let mut run = t.store.init(options().id(id)).unwrap();
    log_curves(&mut run, 0, 10, 0, 1.0);
    run.finish(0).unwrap();
    let path = t.store.open_run(id).unwrap().path().to_path_buf();
    std::fs::write(path, vec![0x5a; 8192]).unwrap();
}

/// A child that logs the curves of run `TEST_ID` for steps `TEST_FROM..TEST_TO`, flushing
/// every `TEST_FLUSH` rows and pausing `TEST_PAUSE_MS` after each flush, then says `holding`
/// and waits for its stdin to close (or to be killed: a crash).
#[test]
#[ignore = "a child process of other tests"]
fn curve_writer() {
    if std::env::var(CHILD).as_deref() != Ok("serve::curve_writer") {
        return;
    }
    let number = |key: &str, default: u64| std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let id = std::env::var("TEST_ID").expect("TEST_ID");
    let store = Store::from_env().expect("store");
    let config = serde_json::json!({ "lr": 0.1, "optimizer": "sgd", "batch_size": 256 });
    let mut run = store.init(options().id(&id).resume(Resume::Allow).project("cifar10").config(config)).expect("init");
    let (from, to, flush) = (number("TEST_FROM", run.step()), number("TEST_TO", 100), number("TEST_FLUSH", 0));
    let pause = Duration::from_millis(number("TEST_PAUSE_MS", 0));
    for step in from..to {
        let loss = curve(step, 4, 0.95);
        run.log_at(step, [("loss", loss), ("acc", 1.0 - loss / 2.5)]).expect("log");
        if flush > 0 && (step + 1) % flush == 0 {
            run.flush().expect("flush");
            println!("{}flushed {step}", crate::support::SAY);
            std::thread::sleep(pause);
        }
    }
    run.flush().expect("flush");
    println!("{}holding", crate::support::SAY);
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    run.finish(0).expect("finish");
}

fn ids(page: &Value) -> Vec<&str> {
    page["runs"].as_array().unwrap().iter().map(|run| run["id"].as_str().unwrap()).collect()
}

#[test]
fn the_runs_table_lists_every_run_with_its_state_config_and_summary_and_a_damaged_run_as_damaged() {
    let t = temp_store();
    demo_store(&t);
    let server = Server::start(&t.path, &[]);
    let page = server.json("/api/runs?sort=id&desc=0");
    assert_eq!(ids(&page), ["adam-finetune", "broken", "resnet-preempt", "sgd-lr-0.01", "sgd-lr-0.03", "sgd-lr-0.1"]);
    assert_eq!((page["total"].as_u64(), page["all"].as_u64()), (Some(6), Some(6)));
    assert_eq!(page["states"], serde_json::json!({ "damaged": 1, "finished": 5 }));
    let keys: Vec<&str> = page["config_keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(keys, ["batch_size", "lr", "optimizer"]);
    assert_eq!(page["summary_keys"], serde_json::json!(["acc", "loss"]));
    let broken = &page["runs"][1];
    assert_eq!(broken["state"], "damaged");
    assert!(broken["error"].as_str().unwrap().contains("run.redb"), "{broken}");
    let sweep = &page["runs"][5];
    assert_eq!(sweep["project"], "cifar10");
    assert_eq!(sweep["name"], "resnet18 lr=0.1");
    assert_eq!(sweep["tags"], serde_json::json!(["resnet", "sweep"]));
    assert_eq!(
        (sweep["last_step"].as_u64(), sweep["rows"].as_u64(), sweep["attempts"].as_u64()),
        (Some(2999), Some(3000), Some(1))
    );
    assert_eq!(sweep["config"]["lr"], 0.1);
    assert_eq!(sweep["summary"]["loss"].as_f64(), Some(curve(2999, 0, 1.0)));
    assert_eq!(page["runs"][0]["forked_from"], serde_json::json!({ "run": "sgd-lr-0.1", "step": 1200 }));
}

#[test]
fn the_runs_table_filters_by_text_and_state_sorts_by_config_and_summary_and_pages() {
    let t = temp_store();
    demo_store(&t);
    let server = Server::start(&t.path, &[]);
    assert_eq!(ids(&server.json("/api/runs?q=LR-0.0&sort=id")), ["sgd-lr-0.01", "sgd-lr-0.03"]);
    assert_eq!(ids(&server.json("/api/runs?q=preemptible")), ["resnet-preempt"], "tags match");
    assert_eq!(ids(&server.json("/api/runs?state=damaged")), ["broken"]);
    assert_eq!(server.json("/api/runs?state=running")["total"], 0);
    let by_lr = server.json("/api/runs?sort=config:lr&desc=0");
    assert_eq!(ids(&by_lr), ["adam-finetune", "sgd-lr-0.01", "sgd-lr-0.03", "resnet-preempt", "sgd-lr-0.1", "broken"]);
    let by_loss = server.json("/api/runs?sort=summary:loss&desc=1&offset=1&limit=2");
    let all = server.json("/api/runs?sort=summary:loss&desc=1");
    assert_eq!(ids(&by_loss), ids(&all)[1..3]);
    assert_eq!((by_loss["total"].as_u64(), by_loss["offset"].as_u64()), (Some(6), Some(1)));
    assert_eq!(ids(&all).last(), Some(&"broken"), "a run without the value sorts last");
    assert_eq!(server.get("/api/runs?limit=lots").status, 400);
}

#[test]
fn a_run_detail_shows_its_attempts_with_outcomes_its_archived_branches_and_metrics() {
    let t = temp_store();
    crashed_and_resumed(&t, "resumed", 1800, 1500, 2500);
    let server = Server::start(&t.path, &[]);
    let detail = server.json("/api/runs/resumed");
    assert_eq!(detail["run"]["state"], "finished");
    assert_eq!(detail["metrics"], serde_json::json!(["loss", "acc"]));
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!((attempts[0]["outcome"].as_str(), attempts[0]["first_step"].as_u64()), (Some("crashed"), Some(0)));
    // The second attempt found the run at step 1800, rewound it to its checkpoint at 1500 and
    // started at 1501 (the attempt record starts after the rewind, issue 15).
    assert_eq!((attempts[1]["outcome"].as_str(), attempts[1]["first_step"].as_u64()), (Some("finished"), Some(1501)));
    let branch = &detail["branches"][0];
    assert_eq!(
        (branch["rewound_to"].as_u64(), branch["first_step"].as_u64(), branch["last_step"].as_u64()),
        (Some(1500), Some(1501), Some(1799))
    );
    assert_eq!(branch["by_attempt"], 2);
    assert_eq!(detail["holder"], Value::Null);
}

#[test]
#[allow(clippy::cast_precision_loss)]
fn chart_data_is_downsampled_to_the_width_keeps_every_spike_and_zooms_into_a_range() {
    let t = temp_store();
    let mut run = t.store.init(options().id("long")).unwrap();
    for step in 0..200_000u64 {
        let value = if step == 170_000 {
            1e6
        } else if step == 7 {
            -5.0
        } else {
            1.0 + (step % 10) as f64 * 0.01
        };
        run.log([("loss", value)]).unwrap();
    }
    run.rewind(150_000).unwrap();
    run.log([("loss", 2.0)]).unwrap();
    run.finish(0).unwrap();
    let server = Server::start(&t.path, &[]);
    let series = server.json("/api/runs/long/series?metric=loss&width=100");
    let steps = series["steps"].as_array().unwrap();
    let values: Vec<f64> = series["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(steps.len() <= 400 && steps.len() >= 100, "{} points", steps.len());
    assert_eq!((series["first"].as_u64(), series["last"].as_u64()), (Some(0), Some(150_001)));
    assert!(values.contains(&-5.0));
    assert_eq!(values.last(), Some(&2.0));
    assert!(!values.contains(&1e6), "the spike is in the archived branch, not the live history");
    let branch = &series["branches"][0];
    assert_eq!(branch["rewound_to"], 150_000);
    assert!(branch["values"].as_array().unwrap().iter().any(|v| v.as_f64() == Some(1e6)));
    assert!(branch["steps"].as_array().unwrap().len() <= 400);

    let zoomed = server.json("/api/runs/long/series?metric=loss&width=1000&from=1000&to=1099&branches=0");
    let steps: Vec<u64> = zoomed["steps"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(steps, (1000..1100).collect::<Vec<_>>(), "a zoomed range narrower than the width is every row");
    assert_eq!(zoomed["branches"], serde_json::json!([]));
}

/// The `x` column and the `steps` column of chart data, as pairs.
fn x_and_steps(series: &Value) -> Vec<(f64, u64)> {
    let xs = series["x"].as_array().expect("an x column");
    let steps = series["steps"].as_array().unwrap();
    assert_eq!(xs.len(), steps.len());
    xs.iter().zip(steps).map(|(x, step)| (x.as_f64().unwrap(), step.as_u64().unwrap())).collect()
}

#[test]
fn chart_data_against_runtime_leaves_out_dead_time_against_time_keeps_it_and_is_downsampled_in_x() {
    let t = temp_store();
    // Rows 20 ms apart, so that each has its own column of x at the widths asked for below.
    let log = |run: &mut runstore::Run, steps: std::ops::Range<u64>| {
        for step in steps {
            run.log_at(step, [("loss", 1.0 / f64::from(u32::try_from(step).unwrap() + 1))]).unwrap();
            run.flush().unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let mut run = t.store.init(options().id("paused")).unwrap();
    log(&mut run, 0..10);
    run.finish(0).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let mut run = t.store.init(options().id("paused").resume(Resume::Must)).unwrap();
    log(&mut run, 10..20);
    run.finish(0).unwrap();
    let server = Server::start(&t.path, &[]);

    let step = server.json("/api/runs/paused/series?metric=loss&width=1000");
    assert!(step.get("x").is_none(), "the step axis needs no x column");
    let gap = |points: &[(f64, u64)]| {
        let at = |s: u64| points.iter().find(|p| p.1 == s).unwrap().0;
        at(10) - at(9)
    };
    let runtime = x_and_steps(&server.json("/api/runs/paused/series?metric=loss&width=1000&x=runtime"));
    let time = x_and_steps(&server.json("/api/runs/paused/series?metric=loss&width=1000&x=time"));
    assert_eq!(runtime.len(), 20, "every row when each has its own column");
    assert_eq!(time.len(), 20);
    assert!(runtime.windows(2).all(|w| w[0].0 <= w[1].0), "runtime grows with the step");
    assert!(runtime[0].0 < 1.0, "runtime starts near 0: {runtime:?}");
    assert!(gap(&runtime) < 1.0, "the 1.5 s between attempts is not running time: {}", gap(&runtime));
    assert!(gap(&time) >= 1.5, "wall time keeps the 1.5 s between attempts: {}", gap(&time));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - time[19].0).abs() < 600.0, "wall time is seconds since the epoch: {}", time[19].0);

    // Downsampled per column of x: at most four points a column, here two (values only fall).
    // The gap is most of the wall time: the first column holds the first attempt, the last the second.
    let narrow = x_and_steps(&server.json("/api/runs/paused/series?metric=loss&width=4&x=time"));
    assert!(narrow.len() < 20, "{narrow:?}");
    let steps: Vec<u64> = narrow.iter().map(|p| p.1).collect();
    assert_eq!(steps, [0, 9, 10, 19], "each attempt's column keeps its first (highest) and last (lowest) point");
}

#[test]
fn a_run_detail_lists_its_checkpoints_with_step_path_and_whether_the_path_exists() {
    let t = temp_store();
    let mut run = t.store.init(options().id("saved")).unwrap();
    let kept = t.path.join("kept.pt");
    std::fs::write(&kept, b"weights").unwrap();
    for step in 0..30u64 {
        run.log_at(step, [("loss", 1.0)]).unwrap();
    }
    run.checkpoint_at(10, &kept).unwrap();
    let gone = t.path.join("gone.pt");
    std::fs::write(&gone, b"weights").unwrap();
    run.checkpoint_at(20, &gone).unwrap();
    std::fs::remove_file(&gone).unwrap();
    run.finish(0).unwrap();
    let server = Server::start(&t.path, &[]);
    let checkpoints = server.json("/api/runs/saved")["checkpoints"].clone();
    let seen: Vec<(u64, String, bool)> = checkpoints
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["step"].as_u64().unwrap(), c["path"].as_str().unwrap().to_string(), c["exists"].as_bool().unwrap()))
        .collect();
    assert_eq!(seen, [(10, kept.display().to_string(), true), (20, gone.display().to_string(), false)]);
}

#[test]
fn bad_ids_metrics_and_parameters_are_refused_before_any_file_is_named_and_unknown_runs_are_404() {
    let t = temp_store();
    demo_store(&t);
    let server = Server::start(&t.path, &[]);
    for (path, status, says) in [
        ("/api/runs/..", 400, "run id"),
        ("/api/runs/%2E%2E", 400, "run id"),
        ("/api/runs/a%2Fb", 400, "run id"),
        ("/api/runs/%00x", 400, "run id"),
        ("/api/runs/nope", 404, "nope"),
        ("/api/runs/nope/series?metric=loss", 404, "nope"),
        ("/api/runs/sgd-lr-0.1/series", 400, "metric"),
        ("/api/runs/sgd-lr-0.1/series?metric=%00", 400, "metric"),
        ("/api/runs/sgd-lr-0.1/series?metric=val%2Floss", 404, "no metric"),
        ("/api/runs/sgd-lr-0.1/series?metric=loss&width=-1", 400, "width"),
        ("/api/runs/sgd-lr-0.1/series?metric=loss&from=x", 400, "from"),
        ("/api/runs/sgd-lr-0.1/series?metric=loss&x=epoch", 400, "step, runtime or time"),
        ("/api/live?ids=..", 400, "run id"),
        ("/api/nothing", 404, "endpoint"),
        ("/etc/passwd", 404, "page"),
        ("/../Cargo.toml", 404, "page"),
    ] {
        let response = server.get(path);
        assert_eq!(response.status, status, "{path}: {}", response.text());
        assert!(response.error().contains(says), "{path}: {}", response.text());
    }
    let broken = server.get("/api/runs/broken");
    assert_eq!(broken.status, 500);
    assert!(broken.error().contains("run.redb"), "{}", broken.text());
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let response = server.request(method, "/api/runs", &format!("127.0.0.1:{}", server.port));
        assert_eq!(response.status, 405, "{method}");
    }
}

#[test]
fn requests_naming_another_host_than_the_server_or_localhost_are_refused() {
    let t = temp_store();
    let server = Server::start(&t.path, &[]);
    let port = server.port;
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), format!("[::1]:{port}"), "localhost".into()]
    {
        assert_eq!(server.request("GET", "/api/runs", &host).status, 200, "{host}");
    }
    for host in [
        format!("evil.example:{port}"),
        format!("localhost:{}", port.wrapping_add(1)),
        format!("localhost.evil.example:{port}"),
        "10.1.2.3".into(),
    ] {
        let response = server.request("GET", "/", &host);
        assert_eq!(response.status, 403, "{host}");
        assert!(response.error().contains("DNS rebinding"));
    }
}

#[test]
fn the_page_and_its_scripts_are_served_from_the_binary_with_a_strict_content_security_policy() {
    let t = temp_store();
    let server = Server::start(&t.path, &[]);
    let page = server.get("/");
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let policy = page.header("content-security-policy").unwrap();
    assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"), "{policy}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    let html = page.text();
    assert!(!html.contains("http://") && !html.contains("https://"), "nothing is fetched from elsewhere");
    let mut scripts = String::new();
    for (path, kind, contains) in [
        ("/js/app.js", "text/javascript; charset=utf-8", "pollLive"),
        ("/js/common.js", "text/javascript; charset=utf-8", "textContent"),
        ("/js/table.js", "text/javascript; charset=utf-8", "renderTable"),
        ("/js/series.js", "text/javascript; charset=utf-8", "smooth"),
        ("/js/charts.js", "text/javascript; charset=utf-8", "uPlot"),
        ("/app.css", "text/css; charset=utf-8", ".panel"),
        ("/uPlot.iife.min.js", "text/javascript; charset=utf-8", "uPlot"),
        ("/uPlot.min.css", "text/css; charset=utf-8", ".uplot"),
        ("/LICENSE-uPlot.txt", "text/plain; charset=utf-8", "MIT"),
    ] {
        let asset = server.get(path);
        assert_eq!((asset.status, asset.header("content-type")), (200, Some(kind)), "{path}");
        assert!(asset.text().contains(contains), "{path}");
        scripts.push_str(&asset.text());
    }
    // The page loads its entry module and uPlot; the modules import one another.
    for loaded in ["/app.css", "/js/app.js", "/uPlot.iife.min.js", "/uPlot.min.css"] {
        assert!(html.contains(loaded), "the page loads {loaded}");
    }
    for module in ["common", "table", "series", "charts"] {
        assert!(scripts.contains(&format!("from './{module}.js'")), "{module}.js is imported");
    }
    let head = server.request("HEAD", "/js/app.js", &format!("localhost:{}", server.port));
    assert_eq!((head.status, head.body.len()), (200, 0));
}

#[test]
fn a_live_run_shows_its_flushed_rows_and_turns_crashed_when_its_writer_dies() {
    let t = temp_store();
    let server = Server::start(&t.path, &[]);
    let mut writer = child("serve::curve_writer", &t.path);
    writer.env("TEST_ID", "live").env("TEST_TO", "300").env("TEST_FLUSH", "100").env("TEST_PAUSE_MS", "300");
    let mut process = writer.spawn().expect("spawn writer");
    let mut reports = Reports::of(&mut process);
    reports.expect("flushed 99");
    // The whole curve is summarised now, then only its new rows are read: it ends up every row.
    let steps =
        |series: &Value| series["steps"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap()).collect::<Vec<_>>();
    let early = server.json("/api/runs/live/series?metric=loss&width=1000");
    // Usually 100 rows (the writer pauses after each flush); more on a slow machine.
    assert!(steps(&early).len() >= 100, "{}", steps(&early).len());
    let wait_until = |what: &str, check: &dyn Fn(&Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let live = server.json("/api/live?ids=live");
            if check(&live["runs"]["live"]) {
                return live;
            }
            assert!(Instant::now() < deadline, "{what}: {live}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    reports.expect("holding");
    let status = wait_until("all rows", &|run| run["rows"] == 300);
    assert_eq!(
        (status["runs"]["live"]["state"].as_str(), status["runs"]["live"]["live"].as_bool()),
        (Some("running"), Some(true))
    );
    let listed = server.json("/api/runs?state=live");
    assert_eq!(ids(&listed), ["live"]);
    let detail = server.json("/api/runs/live");
    assert!(detail["holder"].as_str().unwrap().starts_with(&format!("pid {}", process.id())), "{detail}");
    let full = server.json("/api/runs/live/series?metric=loss");
    assert_eq!(full["last"], 299);
    assert_eq!(steps(&full), (0..300).collect::<Vec<_>>());
    let values: Vec<f64> = full["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    // serde_json parses without its float_roundtrip feature, which may miss by one ulp.
    for (step, value) in (0..300).zip(values) {
        assert!((value - curve(step, 4, 0.95)).abs() <= 1e-15 * value.abs(), "step {step}: {value}");
    }
    process.kill().unwrap();
    process.wait().unwrap();
    let status = wait_until("crashed", &|run| run["state"] == "crashed");
    assert_eq!(status["runs"]["live"]["live"], false);
    assert_eq!(ids(&server.json("/api/runs?state=crashed")), ["live"], "the table's cache sees the crash");
}

#[test]
fn listening_on_all_interfaces_warns_that_the_store_becomes_readable_by_the_network() {
    let t = temp_store();
    let server = Server::start(&t.path, &["--host", "0.0.0.0"]);
    assert_eq!(server.get("/api/runs").status, 200, "an address literal is a valid Host");
    assert_eq!(server.request("GET", "/api/runs", &format!("attacker.example:{}", server.port)).status, 403);
    let stderr = server.stop();
    assert!(stderr.contains("anyone who can reach this machine") && stderr.contains("can read the store"), "{stderr}");
}

#[test]
fn a_store_of_many_runs_is_read_whole_and_sent_a_page_at_a_time() {
    let t = temp_store();
    let mut expected = Vec::new();
    for n in 0..150 {
        let id = format!("run-{n:03}");
        let mut run = t.store.init(options().id(&id).config(serde_json::json!({ "n": n }))).unwrap();
        run.log([("loss", f64::from(n))]).unwrap();
        run.finish(0).unwrap();
        expected.push(id);
    }
    let server = Server::start(&t.path, &[]);
    let first = server.json("/api/runs?sort=config:n&desc=0");
    let second = server.json("/api/runs?sort=config:n&desc=0&offset=100");
    assert_eq!((first["total"].as_u64(), first["runs"].as_array().unwrap().len()), (Some(150), 100));
    assert_eq!(second["runs"].as_array().unwrap().len(), 50);
    let listed: Vec<&str> = ids(&first).into_iter().chain(ids(&second)).collect();
    assert_eq!(listed, expected);
    let page = server.json("/api/runs?limit=5000");
    assert_eq!(page["runs"].as_array().unwrap().len(), 150, "at most 1000 a page, all 150 here");
}

#[test]
fn serve_help_fits_80_columns_and_shows_examples() {
    let help = crate::command::ok(crate::command::bare().args(["serve", "--help"]));
    assert!(help.contains("Examples:\n  runstore serve"), "{help}");
    assert!(help.contains("127.0.0.1") && help.contains("DNS rebinding"), "{help}");
    for line in help.lines().chain(crate::command::ok(crate::command::bare().arg("--help")).lines()) {
        assert!(line.chars().count() <= 80, "wider than 80 columns: {line:?}");
    }
}
