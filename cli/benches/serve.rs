//! `runstore serve` on a big store: the server time of the runs table's first page with 1 000
//! runs in the store (cold, then cached), and of a 10⁷-step metric's chart data (its first
//! request reads the chunk summaries: the library's envelope is timed alone too). A benchmark,
//! not a test: it prints the numbers (the server's own `Server-Timing`, and the time the client
//! waited). `cargo bench -p runstore-cli --bench serve`; `SERVE_BENCH_RUNS=10000` for a bigger
//! store, `SERVE_BENCH_STEPS` for another length.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runstore::{RunOptions, Store};

fn number(key: &str, default: u64) -> u64 {
    std::env::var(key).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

/// `GET path`: (server milliseconds from `Server-Timing`, client milliseconds, body bytes).
fn get(port: u16, path: &str) -> (f64, f64, usize) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let client = started.elapsed().as_secs_f64() * 1000.0;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{path}: {}", &text[..text.len().min(300)]);
    let server = text
        .lines()
        .find_map(|line| line.strip_prefix("Server-Timing: handler;dur="))
        .and_then(|ms| ms.trim().parse().ok())
        .expect("Server-Timing");
    let body = text.split_once("\r\n\r\n").map_or(0, |(_, body)| body.len());
    (server, client, body)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn report(what: &str, port: u16, path: &str, repeats: usize) {
    let samples: Vec<(f64, f64, usize)> = (0..repeats).map(|_| get(port, path)).collect();
    let server = median(samples.iter().map(|s| s.0).collect());
    let client = median(samples.iter().map(|s| s.1).collect());
    println!(
        "{what:<52} server {server:>8.2} ms  client {client:>8.2} ms  {:>8} bytes  (median of {repeats})",
        samples[0].2
    );
}

/// The library alone: streaming the long metric's column (what any answer over the whole
/// history costs at least), and its envelope from chunk summaries (what the chart reads).
fn library_reads(store: &Store, steps: u64) {
    // What any answer over the whole history costs at least: the library streaming the column.
    let reader = store.open_run("long").expect("open");
    let replays: Vec<f64> = (0..3)
        .map(|_| {
            let started = Instant::now();
            let mut count = 0u64;
            for point in reader.series("loss", ..).expect("series") {
                point.expect("point");
                count += 1;
            }
            assert_eq!(count, steps);
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    println!(
        "{:<52} library  {:>8.2} ms  (median of 3: streaming the column, no server)",
        format!("replay of the {steps}-step metric"),
        median(replays)
    );

    // What the chart of the whole curve reads: the chunk summaries, 1 000 buckets.
    let envelopes: Vec<(f64, usize, bool)> = (0..3)
        .map(|_| {
            let started = Instant::now();
            let envelope = reader.envelope("loss", .., 1000).expect("envelope");
            (started.elapsed().as_secs_f64() * 1000.0, envelope.buckets.len(), envelope.whole_chunks)
        })
        .collect();
    let (buckets, whole_chunks) = (envelopes[0].1, envelopes[0].2);
    println!(
        "{:<52} library  {:>8.2} ms  (median of 3: {buckets} buckets, from summaries: {whole_chunks})",
        "envelope of the metric, 1000 buckets",
        median(envelopes.iter().map(|e| e.0).collect())
    );
}

#[allow(clippy::cast_precision_loss)]
fn main() {
    let runs = number("SERVE_BENCH_RUNS", 1000);
    let steps = number("SERVE_BENCH_STEPS", 10_000_000);
    // SERVE_BENCH_DIR keeps the store for the next run (building 10 000 runs takes minutes).
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = std::env::var_os("SERVE_BENCH_DIR").map_or_else(|| dir.path().join("store"), std::path::PathBuf::from);
    let store = Store::open(&path).expect("store");
    let reuse = store.exists("long").expect("long");
    let started = Instant::now();
    for n in (0..runs).filter(|_| !reuse) {
        let optimizer = if n % 2 == 0 { "sgd" } else { "adam" };
        let config = serde_json::json!({ "lr": 0.1 / (1 + n % 7) as f64, "seed": n, "optimizer": optimizer });
        let options = RunOptions::new().ignore_environment().id(format!("run-{n:05}")).project("bench").config(config);
        let mut run = store.init(options).expect("init");
        for step in 0..10 {
            run.log([("loss", 1.0 / (1.0 + f64::from(step) + n as f64)), ("acc", 0.5)]).expect("log");
        }
        run.finish(0).expect("finish");
    }
    if !reuse {
        let mut run = store.init(RunOptions::new().ignore_environment().id("long")).expect("init");
        for step in 0..steps {
            run.log([("loss", 1.0 / (1.0 + step as f64 * 1e-4) + 0.01 * ((step % 17) as f64))]).expect("log");
        }
        run.finish(0).expect("finish");
    }
    let runs = store.run_ids().expect("runs").len() as u64 - 1;
    let steps = store.open_run("long").expect("long").info().expect("info").rows;
    let built = if reuse { "reused".to_string() } else { format!("built in {:.1} s", started.elapsed().as_secs_f64()) };
    println!("store: {runs} runs of 10 rows and one of {steps} steps, {built}");

    library_reads(&store, steps);

    let mut server = Command::new(env!("CARGO_BIN_EXE_runstore"))
        .arg("--dir")
        .arg(&path)
        .args(["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("runstore serve");
    let mut line = String::new();
    BufReader::new(server.stdout.take().expect("stdout")).read_line(&mut line).expect("first line");
    let port: u16 = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|address| address.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .expect("port");
    std::thread::sleep(Duration::from_millis(100));

    let (server_ms, client_ms, bytes) = get(port, "/api/runs?limit=100");
    println!(
        "{:<52} server {server_ms:>8.2} ms  client {client_ms:>8.2} ms  {bytes:>8} bytes  (once: nothing cached)",
        format!("first page of the runs table, {} runs, cold", runs + 1)
    );
    report(&format!("first page of the runs table, {} runs, cached", runs + 1), port, "/api/runs?limit=100", 20);
    report("same, sorted by a config key, filtered by text", port, "/api/runs?limit=100&sort=config:lr&q=run-00", 20);
    let whole = "/api/runs/long/series?metric=loss&width=1000";
    let (server_ms, client_ms, bytes) = get(port, whole);
    println!(
        "{:<52} server {server_ms:>8.2} ms  client {client_ms:>8.2} ms  {bytes:>8} bytes  (once: read and summarised)",
        format!("chart data of a {steps}-step metric, first time")
    );
    report("the same, summarised (a reload, a live poll)", port, whole, 5);
    report("the same at another width (1300 columns)", port, "/api/runs/long/series?metric=loss&width=1300", 5);
    report(
        "chart data, zoomed to 10^5 steps, width 1000",
        port,
        "/api/runs/long/series?metric=loss&width=1000&from=5000000&to=5099999",
        5,
    );
    report(
        "live status of 20 runs",
        port,
        &format!("/api/live?ids={}", (0..20).map(|n| format!("run-{n:05}")).collect::<Vec<_>>().join(",")),
        20,
    );
    let _ = server.kill();
    let _ = server.wait();
}
