//! The viewer in a real browser: Debian's headless Chromium driven through `WebDriver`
//! (chromedriver), against a real `runstore serve` over a real store. Ignored by `cargo test`;
//! `cli/tests/browser/run.sh` installs Chromium and runs them. Screenshots are kept in
//! `target/browser/`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::serve::{Server, crashed_and_resumed, demo_store};
use crate::support::{Reports, TempStore, child, options, row, temp_store};

const CHROMEDRIVER: &str = "chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A chromedriver process and one browser session in it, both ended when dropped.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (run cli/tests/browser/run.sh, which installs it)");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while agent.get(&format!("{base}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser { driver, base, session: String::new(), agent, profile };
        let flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1440,960",
        ]
        .map(String::from)
        .into_iter()
        .chain([format!("--user-data-dir={}", browser.profile.path().display())])
        .collect::<Vec<_>>();
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": flags },
            "goog:loggingPrefs": { "browser": "ALL" },
        }}});
        let created = browser.call("POST", "/session", Some(capabilities));
        browser.session = created["sessionId"].as_str().expect("session id").to_string();
        browser
    }

    /// A `WebDriver` command; the answer's `value`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let response = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or_else(|| json!({})).to_string()),
        };
        let mut response = response.expect("chromedriver answers");
        let text = response.body_mut().with_config().limit(64 << 20).read_to_string().expect("answer");
        let answer: Value = serde_json::from_str(&text).expect("JSON answer");
        assert!(answer["value"]["error"].is_null(), "{method} {path}: {}", &text[..text.len().min(2000)]);
        answer["value"].clone()
    }

    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn open(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body) in the page with `args`; the script calls its last
    /// argument with the result.
    fn run_async(&self, script: &str, args: &Value) -> Value {
        self.command("POST", "/execute/async", Some(json!({ "script": script, "args": args })))
    }

    /// Runs `script` (a function body) in the page with `args`.
    fn run(&self, script: &str, args: &Value) -> Value {
        self.command("POST", "/execute/sync", Some(json!({ "script": script, "args": args })))
    }

    /// Waits until `script` returns something truthy, and returns it.
    fn wait(&self, what: &str, script: &str, args: &Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let value = self.run(script, args);
            if !(value.is_null() || value == false || value == 0 || value == "") {
                return value;
            }
            if Instant::now() > deadline {
                self.screenshot(&format!("timeout-{}", what.replace(' ', "-")));
                panic!("timed out waiting for {what}; console: {:?}", self.console());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The browser console's messages since the last call, as `LEVEL message`.
    fn console(&self) -> Vec<String> {
        let entries = self.command("POST", "/se/log", Some(json!({ "type": "browser" })));
        entries
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|entry| {
                        format!("{} {}", entry["level"].as_str().unwrap_or(""), entry["message"].as_str().unwrap_or(""))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Saves a screenshot as `target/browser/NAME.png` and returns its path.
    fn screenshot(&self, name: &str) -> PathBuf {
        let encoded = self.command("GET", "/screenshot", None);
        let png = base64(encoded.as_str().expect("base64 screenshot"));
        let dir = artifacts();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Runs pointer `actions` (W3C `WebDriver` actions) whose moves are relative to the element
    /// that `selector` finds (offsets from its centre).
    fn pointer(&self, selector: &str, actions: &[Value]) {
        let found = self.command("POST", "/element", Some(json!({ "using": "css selector", "value": selector })));
        let element = found.clone();
        let actions: Vec<Value> = actions
            .iter()
            .map(|action| {
                let mut action = action.clone();
                if action["type"] == "pointerMove" {
                    action["origin"] = element.clone();
                }
                action
            })
            .collect();
        let body = json!({ "actions": [{ "type": "pointer", "id": "mouse", "parameters": { "pointerType": "mouse" }, "actions": actions }] });
        self.command("POST", "/actions", Some(body));
        self.command("DELETE", "/actions", None);
    }

    /// Clicks the table row of run `id` (selecting or unselecting it).
    fn toggle(&self, id: &str) {
        self.wait(
            &format!("row {id}"),
            "return document.querySelector(`#runs tbody tr[data-id=\"${arguments[0]}\"]`) != null",
            &json!([id]),
        );
        self.run("document.querySelector(`#runs tbody tr[data-id=\"${arguments[0]}\"]`).click()", &json!([id]));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.agent.delete(&format!("{}/session/{}", self.base, self.session)).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Where the screenshots go: `target/browser/`.
fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"), PathBuf::from);
    target.join("browser")
}

/// Standard base64 (what `WebDriver` screenshots are) to bytes.
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let clean: Vec<u8> = text.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let bits = chunk.iter().enumerate().fold(0u32, |bits, (i, &c)| bits | u32::from(value(c)) << (18 - 6 * i));
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// Pixels of the `metric` chart's canvas within a small distance of `colour` (`#rrggbb`).
const COUNT_PIXELS: &str = "
    const canvas = document.querySelector(`.panel[data-metric=\"${arguments[0]}\"] canvas`);
    if (!canvas) return 0;
    // A copy, read once: reading the chart's own canvas repeatedly makes Chrome warn.
    const copy = document.createElement('canvas');
    [copy.width, copy.height] = [canvas.width, canvas.height];
    const context = copy.getContext('2d', { willReadFrequently: true });
    context.drawImage(canvas, 0, 0);
    const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
    const n = parseInt(arguments[1].slice(1), 16);
    const [r, g, b] = [n >> 16, (n >> 8) & 255, n & 255];
    let count = 0;
    for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3] > 200 && Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 40) count++;
    }
    return count;";

/// The colour the page gave run `id` (its swatch in the table).
const COLOUR_OF: &str = "
    const swatch = document.querySelector(`#runs tbody tr[data-id=\"${arguments[0]}\"] .swatch`);
    if (!swatch) return null;
    const [r, g, b] = getComputedStyle(swatch).backgroundColor.match(/\\d+/g).map(Number);
    return '#' + [r, g, b].map((v) => v.toString(16).padStart(2, '0')).join('');";

fn severe(console: &[String]) -> Vec<&String> {
    console.iter().filter(|line| line.starts_with("SEVERE") || line.starts_with("WARNING")).collect()
}

#[test]
#[ignore = "needs Chromium: cli/tests/browser/run.sh"]
fn the_page_loads_without_console_errors_lists_the_runs_and_shows_the_damaged_one() {
    let t = temp_store();
    demo_store(&t);
    let server = Server::start(&t.path, &[]);
    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{}/", server.port));
    let rows = browser.wait(
        "the runs table",
        "const n = document.querySelectorAll('#runs tbody tr').length; return n === 6 ? n : 0",
        &json!([]),
    );
    assert_eq!(rows, 6);
    let broken =
        browser.run("return document.querySelector('#runs tbody tr[data-id=\"broken\"]').dataset.state", &json!([]));
    assert_eq!(broken, "damaged");
    let header =
        browser.run("return [...document.querySelectorAll('#runs thead th')].map((th) => th.textContent)", &json!([]));
    for column in ["state", "id", "steps", "attempts", "lr", "optimizer", "loss"] {
        assert!(header.as_array().unwrap().iter().any(|th| th == column), "{column} in {header}");
    }
    let tooltip =
        browser.run("return document.querySelector('#runs tbody tr[data-id=\"broken\"] .state').title", &json!([]));
    assert!(tooltip.as_str().unwrap().contains("run.redb"), "the damage is explained: {tooltip}");
    // A damaged run cannot be selected; the others still chart.
    browser.run("document.querySelector('#runs tbody tr[data-id=\"broken\"]').click()", &json!([]));
    browser.toggle("sgd-lr-0.1");
    browser.wait(
        "a chart",
        "const p = document.querySelector('.panel[data-metric=\"loss\"]'); return p && p.dataset.series === '1'",
        &json!([]),
    );
    assert_eq!(browser.run("return document.querySelectorAll('#runs tbody tr.selected').length", &json!([])), 1);
    browser.screenshot("table");
    let console = browser.console();
    assert!(severe(&console).is_empty(), "console: {console:?}");
}

#[test]
#[ignore = "needs Chromium: cli/tests/browser/run.sh"]
fn selecting_two_runs_draws_both_curves_and_smoothing_changes_them() {
    let t = temp_store();
    demo_store(&t);
    let server = Server::start(&t.path, &[]);
    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{}/", server.port));
    browser.toggle("sgd-lr-0.1");
    browser.toggle("sgd-lr-0.01");
    browser.wait(
        "two curves",
        "const p = document.querySelector('.panel[data-metric=\"loss\"]'); return p && p.dataset.series === '2'",
        &json!([]),
    );
    for id in ["sgd-lr-0.1", "sgd-lr-0.01"] {
        let colour = browser.wait("a swatch", COLOUR_OF, &json!([id]));
        let pixels = browser.run(COUNT_PIXELS, &json!(["loss", colour])).as_u64().unwrap();
        assert!(pixels > 200, "{id}'s curve ({colour}) has {pixels} pixels");
    }
    let legend =
        browser.run("return document.querySelector('.panel[data-metric=\"loss\"] .u-legend').textContent", &json!([]));
    assert!(legend.as_str().unwrap().contains("sgd-lr-0.01"), "{legend}");
    let before =
        browser.run("return document.querySelector('.panel[data-metric=\"loss\"] canvas').toDataURL()", &json!([]));
    browser.run(
        "const s = document.querySelector('#smoothing'); s.value = '0.95'; s.dispatchEvent(new Event('input'));",
        &json!([]),
    );
    browser.wait(
        "smoothed",
        "return document.querySelector('.panel[data-metric=\"loss\"]').dataset.smoothing === '0.95'",
        &json!([]),
    );
    let after =
        browser.run("return document.querySelector('.panel[data-metric=\"loss\"] canvas').toDataURL()", &json!([]));
    assert_ne!(before, after, "smoothing redraws the curves");
    let raw = browser.run(
        "return document.querySelectorAll('.panel[data-metric=\"loss\"] .u-legend .u-series.hidden-entry').length",
        &json!([]),
    );
    assert_eq!(raw, 2, "each run's raw curve is drawn, faded, behind the smoothed one");
    browser.screenshot("two-runs-smoothed");
    let console = browser.console();
    assert!(severe(&console).is_empty(), "console: {console:?}");
}

#[test]
#[ignore = "needs Chromium: cli/tests/browser/run.sh"]
fn attempt_markers_and_the_archived_branch_are_drawn_for_a_run_that_crashed_and_resumed() {
    let t = temp_store();
    demo_store(&t);
    let server = Server::start(&t.path, &[]);
    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{}/", server.port));
    browser.toggle("resnet-preempt");
    browser.toggle("sgd-lr-0.1");
    browser.toggle("sgd-lr-0.03");
    browser.toggle("adam-finetune");
    browser.wait("markers", "const p = document.querySelector('.panel[data-metric=\"loss\"]'); return p && Number(p.dataset.markers) >= 1 && p.dataset.series === '4'", &json!([]));
    let crash_pixels = browser.run(COUNT_PIXELS, &json!(["loss", "#ff0033"])).as_u64().unwrap();
    assert!(crash_pixels > 50, "the crash marker is drawn in its colour: {crash_pixels} pixels");
    let notes =
        browser.run("return document.querySelector('.panel[data-metric=\"loss\"] .notes').textContent", &json!([]));
    let notes = notes.as_str().unwrap();
    assert!(
        notes.contains("resnet-preempt: attempt 2 resumed at step 1501 (rewound from 1799) after crashed"),
        "{notes}"
    );
    assert!(notes.contains("adam-finetune: steps up to 1200 inherited from sgd-lr-0.1"), "{notes}");
    let legend =
        browser.run("return document.querySelector('.panel[data-metric=\"loss\"] .u-legend').textContent", &json!([]));
    assert!(legend.as_str().unwrap().contains("resnet-preempt archived #0 (rewound to 1500)"), "{legend}");
    browser.run(
        "const s = document.querySelector('#smoothing'); s.value = '0.6'; s.dispatchEvent(new Event('input'));",
        &json!([]),
    );
    browser.wait(
        "smoothed",
        "return document.querySelector('.panel[data-metric=\"loss\"]').dataset.smoothing === '0.6'",
        &json!([]),
    );
    browser.run("document.querySelector('#chart-section').scrollIntoView()", &json!([]));
    browser.screenshot("resume-markers");
    // The checkpoint of resnet-preempt's last step: a tick on the axis, a line in the notes.
    let panel = ".panel[data-metric=\"loss\"]";
    browser.wait(
        "a checkpoint tick",
        &format!("return document.querySelector('{panel}').dataset.checkpoints === '1'"),
        &json!([]),
    );
    let notes = browser.run(&format!("return document.querySelector('{panel} .notes').textContent"), &json!([]));
    assert!(notes.as_str().unwrap().contains("resnet-preempt: checkpoint at step 2999"), "{notes}");
    // Switching the x axis fetches the curves against runtime, then wall time, and redraws
    // them, markers and ticks placed at their rows' x.
    let canvas = format!("return document.querySelector('{panel} canvas').toDataURL()");
    let mut before = browser.run(&canvas, &json!([]));
    for (axis, label) in [("runtime", "relative time (s)"), ("time", "wall time")] {
        browser.run(
            "const s = document.querySelector('#x-axis'); s.value = arguments[0]; s.dispatchEvent(new Event('change'));",
            &json!([axis]),
        );
        browser.wait(
            axis,
            &format!(
                "const p = document.querySelector('{panel}'); return p.dataset.xAxis === arguments[0] \
                 && p.dataset.series === '4' && Number(p.dataset.markers) >= 1 && p.dataset.checkpoints === '1'"
            ),
            &json!([axis]),
        );
        let text = browser.run(&format!("return document.querySelector('{panel} .u-axis').textContent"), &json!([]));
        let first_x =
            browser.run(&format!("return Number(document.querySelector('{panel}').dataset.firstX)"), &json!([]));
        let first_x = first_x.as_f64().unwrap();
        if axis == "runtime" {
            assert!((0.0..60.0).contains(&first_x), "runtime starts near 0 s: {first_x}");
        } else {
            assert!(first_x > 1.6e9, "wall time is seconds since 1970: {first_x}");
        }
        let legend =
            browser.run(&format!("return document.querySelector('{panel} .u-legend').textContent"), &json!([]));
        assert!(legend.as_str().unwrap().contains(label), "{legend} {text}");
        let after = browser.run(&canvas, &json!([]));
        assert_ne!(before, after, "switching to {axis} redraws the curves");
        before = after;
    }
    browser.screenshot("x-axis-wall-time");
    // Without the archived branches, the dashed curve goes and the markers stay.
    browser.run("document.querySelector('#show-branches').click()", &json!([]));
    browser.wait(
        "no branch",
        "return !document.querySelector('.panel[data-metric=\"loss\"] .u-legend').textContent.includes('archived')",
        &json!([]),
    );
    let console = browser.console();
    assert!(severe(&console).is_empty(), "console: {console:?}");
}

#[test]
#[ignore = "needs Chromium: cli/tests/browser/run.sh"]
fn grouping_by_a_config_key_draws_one_mean_line_per_group() {
    let t = temp_store();
    demo_store(&t);
    let server = Server::start(&t.path, &[]);
    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{}/", server.port));
    for id in ["sgd-lr-0.1", "sgd-lr-0.03", "sgd-lr-0.01", "adam-finetune"] {
        browser.toggle(id);
    }
    browser.wait(
        "four curves",
        "const p = document.querySelector('.panel[data-metric=\"loss\"]'); return p && p.dataset.series === '4'",
        &json!([]),
    );
    browser.run(
        "const g = document.querySelector('#group-by'); g.value = 'optimizer'; g.dispatchEvent(new Event('change'));",
        &json!([]),
    );
    browser.wait("two groups", "return [...document.querySelectorAll('.panel')].every((p) => p.dataset.series === '2' && p.dataset.grouped === 'optimizer')", &json!([]));
    let legend =
        browser.run("return document.querySelector('.panel[data-metric=\"loss\"] .u-legend').textContent", &json!([]));
    let legend = legend.as_str().unwrap();
    assert!(
        legend.contains("optimizer=sgd (3 runs) mean") && legend.contains("optimizer=adam (1 run) mean"),
        "{legend}"
    );
    browser.screenshot("grouped");
    let console = browser.console();
    assert!(severe(&console).is_empty(), "console: {console:?}");
}

#[test]
#[ignore = "needs Chromium: cli/tests/browser/run.sh"]
fn a_live_runs_new_rows_appear_without_reload_and_it_turns_crashed_when_its_writer_dies() {
    let t = temp_store();
    crashed_and_resumed(&t, "older", 300, 200, 600);
    let server = Server::start(&t.path, &[]);
    let mut writer = child("serve::curve_writer", &t.path);
    writer.env("TEST_ID", "live").env("TEST_TO", "100000").env("TEST_FLUSH", "50").env("TEST_PAUSE_MS", "400");
    let mut process = writer.spawn().expect("spawn writer");
    let mut reports = Reports::of(&mut process);
    reports.expect("flushed 49");
    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{}/", server.port));
    browser.toggle("live");
    let first = browser.wait(
        "a chart",
        "const p = document.querySelector('.panel[data-metric=\"loss\"]'); return p && Number(p.dataset.lastStep)",
        &json!([]),
    );
    let first = first.as_u64().unwrap();
    let reloads = browser
        .run("window.__notReloaded = true; return performance.getEntriesByType('navigation').length", &json!([]));
    let grown = browser.wait(
        "new rows",
        "const p = document.querySelector('.panel[data-metric=\"loss\"]'); return Number(p.dataset.lastStep) > arguments[0] && Number(p.dataset.lastStep)",
        &json!([first]),
    );
    assert!(grown.as_u64().unwrap() >= first + 50, "{first} -> {grown}");
    assert_eq!(browser.run("return window.__notReloaded === true", &json!([])), true, "no reload: {reloads}");
    process.kill().unwrap();
    process.wait().unwrap();
    browser.wait("crashed", "const r = document.querySelector('#runs tbody tr[data-id=\"live\"]'); return r && r.dataset.state === 'crashed'", &json!([]));
    let console = browser.console();
    assert!(severe(&console).is_empty(), "console: {console:?}");
}

#[test]
#[ignore = "needs Chromium: cli/tests/browser/run.sh"]
fn hovering_shows_step_and_values_dragging_zooms_a_double_click_resets_and_log_scale_redraws() {
    let t = temp_store();
    demo_store(&t);
    let server = Server::start(&t.path, &[]);
    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{}/", server.port));
    browser.toggle("sgd-lr-0.1");
    browser.toggle("sgd-lr-0.01");
    let panel = ".panel[data-metric=\"loss\"]";
    browser.wait(
        "two curves",
        &format!("const p = document.querySelector('{panel}'); return p && p.dataset.series === '2'"),
        &json!([]),
    );
    let over = format!("{panel} .u-over");
    browser.pointer(&over, &[json!({ "type": "pointerMove", "x": 0, "y": 0, "duration": 50 })]);
    // The legend at the cursor: each row's label and value (the ":" is drawn by CSS).
    let values = browser.wait(
        "hover values",
        &format!(
            "const rows = [...document.querySelectorAll('{panel} .u-legend .u-series')].map((r) => [r.querySelector('th').textContent, r.querySelector('.u-value').textContent]);
             return rows[0][1] !== '—' && rows"
        ),
        &json!([]),
    );
    let values: Vec<(String, String)> = serde_json::from_value(values).unwrap();
    assert_eq!(values[0].0, "step");
    assert!(values[0].1.parse::<u64>().is_ok(), "{values:?}");
    for run in ["sgd-lr-0.1", "sgd-lr-0.01"] {
        let value = &values.iter().find(|(label, _)| label == run).expect(run).1;
        assert!(value.parse::<f64>().is_ok(), "{run} has a value at the cursor: {values:?}");
    }
    browser.pointer(
        &over,
        &[
            json!({ "type": "pointerMove", "x": -150, "y": 0, "duration": 50 }),
            json!({ "type": "pointerDown", "button": 0 }),
            json!({ "type": "pointerMove", "x": -50, "y": 0, "duration": 200 }),
            json!({ "type": "pointerUp", "button": 0 }),
        ],
    );
    let range = browser.wait("zoomed", &format!("return document.querySelector('{panel}').dataset.range"), &json!([]));
    let (from, to) = range
        .as_str()
        .unwrap()
        .split_once('-')
        .map(|(a, b)| (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()))
        .unwrap();
    assert!(from > 100 && to < 2900 && from < to, "zoomed to {from}..{to}");
    browser.pointer(
        &over,
        &[
            json!({ "type": "pointerMove", "x": 0, "y": 0 }),
            json!({ "type": "pointerDown", "button": 0 }),
            json!({ "type": "pointerUp", "button": 0 }),
            json!({ "type": "pointerDown", "button": 0 }),
            json!({ "type": "pointerUp", "button": 0 }),
        ],
    );
    browser.wait("reset", &format!("return document.querySelector('{panel}').dataset.range === ''"), &json!([]));
    let before = browser.run(&format!("return document.querySelector('{panel} canvas').toDataURL()"), &json!([]));
    browser.run("document.querySelector('#log-scale').click()", &json!([]));
    browser.wait("log scale", &format!("return document.querySelector('{panel}').dataset.log === 'true'"), &json!([]));
    let after = browser.run(&format!("return document.querySelector('{panel} canvas').toDataURL()"), &json!([]));
    assert_ne!(before, after, "the log scale redraws the chart");
    let console = browser.console();
    assert!(severe(&console).is_empty(), "console: {console:?}");
}

#[test]
#[ignore = "needs Chromium: cli/tests/browser/run.sh"]
fn twenty_runs_of_four_metrics_are_drawn_from_an_address_that_names_them() {
    let t = temp_store();
    let ids: Vec<String> = (0..20).map(|n| format!("run-{n:02}")).collect();
    for id in &ids {
        let mut run = t.store.init(options().id(id)).unwrap();
        for step in 0..20_000 {
            run.log(row(step)).unwrap(); // NaN and infinities among the values
        }
        run.finish(0).unwrap();
    }
    let server = Server::start(&t.path, &[]);
    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{}/#select={}", server.port, ids.join(",")));
    let drawn = browser.wait(
        "80 curves",
        "const panels = [...document.querySelectorAll('.panel')];
         return panels.length === 4 && panels.every((p) => p.dataset.series === '20') && performance.now()",
        &json!([]),
    );
    // Not a timed test: the numbers are printed for the README (target: 1 s).
    let fetched = browser.run(
        "return Math.max(...performance.getEntriesByType('resource').filter((e) => e.name.includes('/series')).map((e) => e.responseEnd))",
        &json!([]),
    );
    let (drawn, fetched) = (drawn.as_f64().unwrap(), fetched.as_f64().unwrap());
    println!(
        "20 runs x 4 metrics: drawn {drawn:.0} ms after navigation; the last of the 80 series arrived at {fetched:.0} ms, drawn {:.0} ms later",
        drawn - fetched
    );
    let redraw = browser.run_async(
        "const done = arguments[arguments.length - 1];
         const start = performance.now();
         document.querySelector('#log-scale').click();
         const check = () => [...document.querySelectorAll('.panel')].every((p) => p.dataset.log === 'true')
             ? done(performance.now() - start) : requestAnimationFrame(check);
         check();",
        &json!([]),
    );
    println!(
        "20 runs x 4 metrics: redrawn in {:.0} ms (log scale, from the data in the page)",
        redraw.as_f64().unwrap()
    );
    let selected = browser.run("return document.querySelectorAll('#runs tbody tr.selected').length", &json!([]));
    assert_eq!(selected, 20, "the address's runs are selected in the table");
    browser.screenshot("twenty-runs");
    let console = browser.console();
    assert!(severe(&console).is_empty(), "console: {console:?}");
}

#[test]
#[ignore = "needs Chromium: cli/tests/browser/run.sh"]
fn system_metrics_are_drawn_against_wall_time_in_a_group_of_their_own_whatever_the_x_axis() {
    use crate::system_metrics::{NAMES, START, sampled_run};
    let t = temp_store();
    sampled_run(&t, "sys-a", 2000);
    sampled_run(&t, "sys-b", 700);
    let server = Server::start(&t.path, &[]);
    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{}/", server.port));
    browser.toggle("sys-a");
    browser.toggle("sys-b");
    let panel = ".panel[data-metric=\"system/cpu_percent\"]";
    browser.wait(
        "the system panels",
        &format!("const p = document.querySelector('{panel}'); return p && p.dataset.series === '2' && p.dataset.samples === '2700'"),
        &json!([]),
    );
    let group = browser.run(
        "const g = document.querySelector('.system-group'); return g && [g.querySelector('h2').textContent, \
         [...g.querySelectorAll('.panel')].map((p) => p.dataset.metric)]",
        &json!([]),
    );
    assert_eq!(group, json!(["System (wall time)", NAMES]), "every system metric in the System group");
    let outside = browser
        .run("return [...document.querySelectorAll('#charts > .panel')].map((p) => p.dataset.metric)", &json!([]));
    assert_eq!(outside, json!(["loss"]), "the step panels hold the step metrics only");
    browser.run("document.querySelector('#chart-section').scrollIntoView()", &json!([]));
    let first_x = browser.run(&format!("return Number(document.querySelector('{panel}').dataset.firstX)"), &json!([]));
    #[allow(clippy::cast_precision_loss)]
    let start = START as f64;
    assert_eq!(first_x.as_f64().unwrap(), start, "x is the first sample's wall time");
    for id in ["sys-a", "sys-b"] {
        let colour = browser.wait("a swatch", COLOUR_OF, &json!([id]));
        let pixels = browser.run(COUNT_PIXELS, &json!(["system/cpu_percent", colour])).as_u64().unwrap();
        assert!(pixels > 200, "{id}'s samples ({colour}) are drawn: {pixels} pixels");
    }
    let legend = browser.run(&format!("return document.querySelector('{panel} .u-legend').textContent"), &json!([]));
    assert!(legend.as_str().unwrap().contains("wall time"), "{legend}");
    browser.screenshot("system-metrics");
    // The step metrics follow the x axis chosen; the system metrics stay on wall time.
    browser.run(
        "const s = document.querySelector('#x-axis'); s.value = 'runtime'; s.dispatchEvent(new Event('change'));",
        &json!([]),
    );
    browser.wait(
        "runtime",
        "return document.querySelector('.panel[data-metric=\"loss\"]').dataset.xAxis === 'runtime'",
        &json!([]),
    );
    let axes = browser.run(
        &format!(
            "return [document.querySelector('{panel}').dataset.xAxis, document.querySelector('{panel}').dataset.series]"
        ),
        &json!([]),
    );
    assert_eq!(axes, json!(["time", "2"]));
    // Unselecting both runs removes the group.
    browser.toggle("sys-a");
    browser.toggle("sys-b");
    browser.wait("no group", "return document.querySelector('.system-group') === null", &json!([]));
    let console = browser.console();
    assert!(severe(&console).is_empty(), "console: {console:?}");
}

#[test]
#[ignore = "needs Chromium: cli/tests/browser/run.sh"]
fn a_live_runs_new_system_samples_are_drawn_without_reload_even_when_it_logs_no_rows() {
    use crate::system_metrics::at;
    let t = temp_store();
    // This test is the writer: the run stays live while the page polls.
    let mut run = t.store.init(options().id("live-sys")).unwrap();
    run.log([("loss", 1.0)]).unwrap();
    for index in 0..100 {
        run.log_system(at(index), [("system/gpu0/utilization_percent", 50.0)]).unwrap();
    }
    run.flush().unwrap();
    let server = Server::start(&t.path, &[]);
    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{}/", server.port));
    browser.toggle("live-sys");
    let panel = ".panel[data-metric=\"system/gpu0/utilization_percent\"]";
    browser.wait(
        "100 samples",
        &format!("const p = document.querySelector('{panel}'); return p && p.dataset.samples === '100'"),
        &json!([]),
    );
    browser.run("window.__notReloaded = true", &json!([]));
    // Updated times are in milliseconds: the next commit must be a later one.
    std::thread::sleep(Duration::from_millis(20));
    for index in 100..150 {
        run.log_system(at(index), [("system/gpu0/utilization_percent", 90.0)]).unwrap();
    }
    run.flush().unwrap();
    browser.wait(
        "150 samples",
        &format!("return document.querySelector('{panel}').dataset.samples === '150'"),
        &json!([]),
    );
    assert_eq!(browser.run("return window.__notReloaded === true", &json!([])), true, "no reload");
    run.finish(0).unwrap();
    let console = browser.console();
    assert!(severe(&console).is_empty(), "console: {console:?}");
}

/// The CPU panel of [`sweep_sampling_on_its_own_clocks`].
const CPU_PANEL: &str = ".panel[data-metric=\"system/cpu_percent\"]";

/// The rows of the legend of the panel `arguments[0]` after the x axis's: each one's label and
/// whether it is kept out of the legend.
const LEGEND_ROWS: &str = "
    return [...document.querySelectorAll(`${arguments[0]} .u-legend .u-series`)].slice(1)
        .map((r) => [r.querySelector('th').textContent, r.classList.contains('hidden-entry')])";

/// A finished run `id` of a sweep (config `optimizer`) whose `samples` CPU samples are taken
/// every `every` seconds from `start` seconds after [`crate::system_metrics::START`].
fn cpu_sampled_run(t: &TempStore, id: &str, optimizer: &str, start: u64, every: u64, samples: u64) {
    use crate::system_metrics::{START, sample};
    let mut run = t.store.init(options().id(id).config(json!({ "optimizer": optimizer }))).unwrap();
    run.log([("loss", 1.0)]).unwrap();
    for index in 0..samples {
        let at = std::time::UNIX_EPOCH + Duration::from_secs(START + start + index * every);
        run.log_system(at, [("system/cpu_percent", sample(0, index, samples))]).unwrap();
    }
    run.finish(0).unwrap();
}

/// Three runs of a sweep, sampling on clocks of their own (two sgd runs a day apart, every 10 s
/// and every 7 s; an adam run), selected in a browser whose CPU panel has drawn their 900
/// samples. Smoothing set to `smoothing`.
fn sweep_sampling_on_its_own_clocks(t: &TempStore, smoothing: &str) -> (Server, Browser) {
    cpu_sampled_run(t, "sgd-1", "sgd", 0, 10, 300);
    cpu_sampled_run(t, "sgd-2", "sgd", 86_400 + 3, 7, 400);
    cpu_sampled_run(t, "adam-1", "adam", 3600, 10, 200);
    let server = Server::start(&t.path, &[]);
    let browser = Browser::start();
    browser.open(&format!("http://127.0.0.1:{}/", server.port));
    for id in ["sgd-1", "sgd-2", "adam-1"] {
        browser.toggle(id);
    }
    browser.wait(
        "three runs",
        &format!("const p = document.querySelector('{CPU_PANEL}'); return p && p.dataset.series === '3' && p.dataset.samples === '900'"),
        &json!([]),
    );
    browser.run("document.querySelector('.system-group').scrollIntoView()", &json!([]));
    browser.run(
        "const s = document.querySelector('#smoothing'); s.value = arguments[0]; s.dispatchEvent(new Event('input'));",
        &json!([smoothing]),
    );
    browser.wait(
        "smoothing",
        &format!("return document.querySelector('{CPU_PANEL}').dataset.smoothing === arguments[0]"),
        &json!([smoothing]),
    );
    (server, browser)
}

#[test]
#[ignore = "needs Chromium: cli/tests/browser/run.sh"]
fn system_panels_draw_each_runs_raw_samples_faded_behind_its_smoothed_curve_and_take_the_log_scale() {
    use crate::system_metrics::START;
    let t = temp_store();
    let (_server, browser) = sweep_sampling_on_its_own_clocks(&t, "0");
    let panel = CPU_PANEL;
    let canvas = format!("return document.querySelector('{panel} canvas').toDataURL()");
    let plain = browser.run(LEGEND_ROWS, &json!([panel]));
    assert_eq!(plain, json!([["sgd-1", false], ["sgd-2", false], ["adam-1", false]]), "one curve per run");
    let before = browser.run(&canvas, &json!([]));
    browser.run(
        "const s = document.querySelector('#smoothing'); s.value = '0.9'; s.dispatchEvent(new Event('input'));",
        &json!([]),
    );
    browser.wait(
        "smoothed",
        &format!("return document.querySelector('{panel}').dataset.smoothing === '0.9'"),
        &json!([]),
    );
    let smoothed = browser.run(LEGEND_ROWS, &json!([panel]));
    let expected: Vec<Value> = ["sgd-1", "sgd-2", "adam-1"]
        .iter()
        .flat_map(|id| [json!([format!("{id} (raw)"), true]), json!([id, false])])
        .collect();
    assert_eq!(smoothed, json!(expected), "each run's raw samples (kept out of the legend) and its smoothed curve");
    let after = browser.run(&canvas, &json!([]));
    assert_ne!(before, after, "smoothing redraws the system panel");
    let attributes = browser.run(
        &format!("const d = document.querySelector('{panel}').dataset; return [d.system, d.xAxis, d.grouped, d.series, Number(d.firstX)]"),
        &json!([]),
    );
    assert_eq!(attributes, json!(["true", "time", "", "3", START]), "ungrouped: against wall time");
    browser.screenshot("system-smoothed");
    browser.run("document.querySelector('#log-scale').click()", &json!([]));
    browser.wait("log scale", &format!("return document.querySelector('{panel}').dataset.log === 'true'"), &json!([]));
    assert_ne!(after, browser.run(&canvas, &json!([])), "the log scale redraws the system panel");
    let console = browser.console();
    assert!(severe(&console).is_empty(), "console: {console:?}");
}

#[test]
#[ignore = "needs Chromium: cli/tests/browser/run.sh"]
fn system_panels_grouped_by_a_config_key_draw_each_groups_mean_and_band_against_time_since_each_runs_first_sample() {
    let t = temp_store();
    let (_server, browser) = sweep_sampling_on_its_own_clocks(&t, "0.9");
    let panel = CPU_PANEL;
    browser.run(
        "const g = document.querySelector('#group-by'); g.value = 'optimizer'; g.dispatchEvent(new Event('change'));",
        &json!([]),
    );
    let attributes = browser.wait(
        "grouped",
        &format!(
            "const d = document.querySelector('{panel}').dataset;
             return d.grouped === 'optimizer' && [d.system, d.xAxis, d.series, d.smoothing, d.samples, d.markers, Number(d.firstX), Number(d.lastStep)]"
        ),
        &json!([]),
    );
    assert_eq!(
        attributes.as_array().unwrap()[..6],
        json!(["true", "elapsed", "2", "0.9", "900", "0"]).as_array().unwrap()[..],
        "grouped: two groups against time since start, no attempt markers"
    );
    // The groups' x are their columns' middles, from a few seconds after 0 to the longest run's
    // 2990 s (the runs started hours apart).
    let (first_x, last_x) = (attributes[6].as_f64().unwrap(), attributes[7].as_f64().unwrap());
    assert!((0.0..20.0).contains(&first_x) && (2500.0..3000.0).contains(&last_x), "x: {first_x}..{last_x}");
    let grouped = browser.run(LEGEND_ROWS, &json!([panel]));
    let expected: Vec<Value> = [("sgd", "2 runs"), ("adam", "1 run")]
        .iter()
        .flat_map(|(key, runs)| {
            let label = format!("optimizer={key} ({runs})");
            [
                json!([format!("{label} max"), true]),
                json!([format!("{label} min"), true]),
                json!([format!("{label} (raw)"), true]),
                json!([format!("{label} mean"), false]),
            ]
        })
        .collect();
    assert_eq!(grouped, json!(expected), "per group its band's edges and its mean, raw and smoothed");
    // The x axis's label is drawn on the canvas; its legend row has the same text.
    let texts = browser.run(
        &format!(
            "return [document.querySelector('.system-group h2').textContent,
                     document.querySelector('{panel} .u-legend .u-series th').textContent]"
        ),
        &json!([]),
    );
    assert_eq!(texts, json!(["System (time since start)", "time since start (s)"]));
    // The two sgd runs' samples, 10 s and 7 s apart, are averaged together in each column: at
    // every point of the chart where both ran, the band spans two different values (columns
    // holding one run's sample, as a second or a pixel wide ones would, do not).
    let mut bands = Vec::new();
    for offset in (-250..=200).step_by(50) {
        browser.pointer(
            &format!("{panel} .u-over"),
            &[json!({ "type": "pointerMove", "x": offset, "y": 0, "duration": 20 })],
        );
        let band = browser.wait(
            "hover values",
            &format!(
                "const rows = [...document.querySelectorAll('{panel} .u-legend .u-series')];
                 const value = (label) => rows.find((r) => r.querySelector('th').textContent === label).querySelector('.u-value').textContent;
                 const [low, high] = ['min', 'max'].map((edge) => Number(value(`optimizer=sgd (2 runs) ${{edge}}`)));
                 return Number.isFinite(low) && Number.isFinite(high) && [rows[0].querySelector('.u-value').textContent, low, high]"
            ),
            &json!([]),
        );
        bands.push((band[0].as_str().unwrap().to_string(), band[1].as_f64().unwrap(), band[2].as_f64().unwrap()));
    }
    let at = |x: &str| x.trim_end_matches(" s").parse::<f64>().unwrap();
    assert!(bands.iter().all(|(x, _, _)| (100.0..2700.0).contains(&at(x))), "hovered where both ran: {bands:?}");
    assert!(
        bands.iter().all(|(_, low, high)| low < high && (20.0..=98.0).contains(low) && *high <= 98.0),
        "the sgd band spans both runs wherever the cursor is: {bands:?}"
    );
    browser.screenshot("system-grouped");
    // Ungrouped again: wall time.
    browser.run(
        "const g = document.querySelector('#group-by'); g.value = ''; g.dispatchEvent(new Event('change'));",
        &json!([]),
    );
    browser.wait(
        "ungrouped",
        &format!("const d = document.querySelector('{panel}').dataset; return d.grouped === '' && d.xAxis === 'time' && d.series === '3'"),
        &json!([]),
    );
    let header = browser.run("return document.querySelector('.system-group h2').textContent", &json!([]));
    assert_eq!(header, "System (wall time)");
    let console = browser.console();
    assert!(severe(&console).is_empty(), "console: {console:?}");
}
