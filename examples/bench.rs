//! The standard workloads of `docs/benchmarks.md`, outside criterion: one JSON line per measurement.
//!
//! ```text
//! cargo run --release --example bench -- --workload W1 --n 100000
//! cargo run --release --example bench -- --workload all --n 1000000
//! ```
//!
//! W1 log throughput and call latency, W2 resume time, W3 replay throughput, W4 bytes per point,
//! W5 durable log calls against the fsync floor measured in the same run; W6 a wide run (1 000
//! metrics at every step and 20 every 500 steps, `--n` steps, 10 000 by default): log
//! throughput, bytes per point, and one metric's series (`--keep DIR` keeps its store, for
//! timing `runstore show` and `plot` on it); Q1 a queue of N items:
//! the sweep that fills it, then push, claim and settle in a fresh process (its peak memory
//! shows that an agent's does not grow with the queue):
//!
//! ```text
//! cargo run --release --example bench -- --workload Q1 --n 1000000
//! ```
//!
//! S1, the system-metrics sampler: its own CPU time per reading (measured on its thread) while a
//! run idles with a 10 ms interval, as % of one core at the default 10 s interval, beside the
//! whole process's CPU over the same time; then W1 with the sampler off, on at 10 s and on at
//! 100 ms (medians of 5, alternated):
//!
//! ```text
//! cargo run --release --example bench -- --workload S1 --n 1000000
//! ```

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use runstore::{Durability, Store};

// The standard data and helpers, shared with the criterion targets.
#[path = "../benches/support/mod.rs"]
mod support;
use support::row;

type Error = Box<dyn std::error::Error>;

/// W1 without per-call timing: points per second from before create to after finish; with
/// system metrics every `system` interval, if given.
fn log_throughput(dir: &Path, n: u64, system: Option<Duration>) -> Result<f64, Error> {
    let started = Instant::now();
    let store = Store::open(dir)?;
    let options = support::options(Durability::Buffered);
    let mut run = store.init(match system {
        Some(interval) => options.system_metrics(interval),
        None => options,
    })?;
    for i in 0..n {
        run.log(row(i))?;
    }
    run.finish(0)?;
    Ok(started.elapsed().as_secs_f64())
}

/// W1/W5 with per-call timing into a histogram (nanoseconds).
fn log_latency(dir: &Path, n: u64, durability: Durability) -> Result<(Histogram<u64>, f64), Error> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let started = Instant::now();
    let store = Store::open(dir)?;
    let mut run = store.init(support::options(durability))?;
    for i in 0..n {
        let values = row(i);
        let call = Instant::now();
        run.log(values)?;
        histogram.record(u64::try_from(call.elapsed().as_nanos()).unwrap_or(u64::MAX).max(1))?;
    }
    run.finish(0)?;
    Ok((histogram, started.elapsed().as_secs_f64()))
}

fn latency_json(histogram: &Histogram<u64>) -> String {
    format!(
        r#"{{"p50_ns":{},"p99_ns":{},"p999_ns":{},"max_ns":{}}}"#,
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999),
        histogram.max()
    )
}

/// W2: a cold handle resumes the run and logs one more row; median of `repeats`, milliseconds.
fn resume_ms(dir: &Path, repeats: usize) -> Result<f64, Error> {
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let started = Instant::now();
        let store = Store::open(dir)?;
        let mut run = store.init(support::options(Durability::Buffered))?;
        let step = run.step();
        run.log_at(step, row(step))?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        run.finish(0)?;
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// W3: a new reader streams every point in step order; returns (points, seconds).
fn replay(dir: &Path) -> Result<(u64, f64), Error> {
    let started = Instant::now();
    let store = Store::open(dir)?;
    let reader = store.open_run(support::RUN)?;
    let mut history = reader.history(..)?;
    let mut points = 0u64;
    let mut checksum = 0u64;
    while let Some(row) = history.next_row()? {
        points += row.points().len() as u64;
        checksum = checksum.wrapping_add(row.step());
    }
    std::hint::black_box(checksum);
    Ok((points, started.elapsed().as_secs_f64()))
}

/// The fsync floor: `count` times one small write + fsync, appended to `times` (nanoseconds).
fn fsync_floor(dir: &Path, count: usize, times: &mut Vec<u64>) -> Result<(), Error> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("fsync-floor"))?;
    for i in 0..count {
        let started = Instant::now();
        file.write_all(&(i as u64).to_le_bytes())?;
        file.sync_all()?;
        times.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    Ok(())
}

/// The median of `times` (milliseconds).
fn median_ms(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Q1, first half: a sweep of `n` items into the queue `q` of the store at `dir`, in one
/// transaction (as `runstore sweep` does); returns seconds.
fn queue_sweep(dir: &Path, n: u64) -> Result<f64, Error> {
    let store = Store::open(dir)?;
    let configs = (0..n).map(|i| {
        let mut config = serde_json::Map::new();
        config.insert("lr".into(), serde_json::json!(1e-3 * f64::from(1 + u8::try_from(i % 7).unwrap_or(0))));
        config.insert("seed".into(), serde_json::json!(i));
        config
    });
    let started = Instant::now();
    store.queue("q")?.push_all(configs)?;
    Ok(started.elapsed().as_secs_f64())
}

/// Q1, second half, in a fresh process: 101 pushes, claims and settles on the queue at `dir`;
/// prints their medians and this process's peak resident memory.
fn queue_operations(dir: &Path, n: u64) -> Result<(), Error> {
    let store = Store::open(dir)?;
    let queue = store.queue("q")?;
    let (mut pushes, mut claims, mut settles) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..101 {
        let started = Instant::now();
        queue.push(Some(&format!("extra-{i}")), serde_json::json!({"i": i}))?;
        pushes.push(started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        let claim = queue.claim()?.ok_or("the queue has pending items")?;
        claims.push(started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        claim.settle(runstore::ItemExit::Code { code: 0 }, 3)?;
        settles.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    println!(
        r#"{{"workload":"Q1-ops","n":{n},"push_ms_median":{:.3},"claim_ms_median":{:.3},"settle_ms_median":{:.3},"peak_rss_kib":{peak_kib}}}"#,
        median_ms(pushes),
        median_ms(claims),
        median_ms(settles)
    );
    Ok(())
}

/// W6: logs a wide run, then reads one dense and one sparse metric's series (medians of 21).
fn wide(dir: &Path, steps: u64) -> Result<(), Error> {
    let started = Instant::now();
    let points = support::build_wide(dir, steps);
    let seconds = started.elapsed().as_secs_f64();
    let bytes = support::disk_bytes(dir);
    #[allow(clippy::cast_precision_loss)]
    let (rate, per_point) = (points as f64 / seconds, bytes as f64 / points as f64);
    println!(
        r#"{{"workload":"W6","steps":{steps},"points":{points},"seconds":{seconds:.3},"points_per_sec":{rate:.0},"bytes":{bytes},"bytes_per_point":{per_point:.3}}}"#
    );
    let store = Store::open(dir)?;
    let reader = store.open_run(support::RUN)?;
    let (dense, sparse) = support::w6_names();
    for name in [&dense[support::W6_DENSE / 2], &sparse[0]] {
        let mut times = Vec::new();
        let mut read = 0;
        for _ in 0..21 {
            let started = Instant::now();
            read = reader
                .series(name, ..)?
                .map(|point| point.map(|(_, value)| value))
                .collect::<Result<Vec<_>, _>>()?
                .len();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        println!(r#"{{"workload":"W6-series","metric":"{name}","points":{read},"ms_median":{:.3}}}"#, median_ms(times));
    }
    Ok(())
}

/// This process's CPU time (user + system) from `/proc/self/stat`, in clock ticks of 10 ms.
fn process_cpu_ticks() -> Result<u64, Error> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> = stat[stat.rfind(')').ok_or("/proc/self/stat")? + 1..].split_whitespace().collect();
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

/// S1: the sampler's cost while a run idles for `seconds` with a 10 ms interval, then W1 with it
/// off and on.
fn system_sampler(n: u64, seconds: u64) -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let (cpu_before, readings_before) = runstore::sampler_cpu_time();
    let ticks_before = process_cpu_ticks()?;
    let run = store.init(support::options(Durability::Buffered).system_metrics(Duration::from_millis(10)))?;
    std::thread::sleep(Duration::from_secs(seconds));
    run.finish(0)?;
    let process_ms = (process_cpu_ticks()? - ticks_before) * 10;
    let (cpu_after, readings_after) = runstore::sampler_cpu_time();
    let readings = readings_after - readings_before;
    #[allow(clippy::cast_precision_loss)]
    let per_reading_us = cpu_after.saturating_sub(cpu_before).as_secs_f64() * 1e6 / readings as f64;
    // One reading every 10 s: its CPU time as a share of one core.
    let percent_at_10s = per_reading_us / 1e6 / 10.0 * 100.0;
    #[allow(clippy::cast_precision_loss)]
    let process_per_reading_us = process_ms as f64 * 1e3 / readings as f64;
    println!(
        r#"{{"workload":"S1-cost","seconds":{seconds},"readings":{readings},"sampler_cpu_us_per_reading":{per_reading_us:.1},"percent_of_one_core_at_10s":{percent_at_10s:.5},"process_cpu_ms":{process_ms},"process_cpu_us_per_reading":{process_per_reading_us:.1}}}"#
    );
    let settings = [("off", None), ("10s", Some(Duration::from_secs(10))), ("100ms", Some(Duration::from_millis(100)))];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); settings.len()];
    for _ in 0..5 {
        for (times, (_, system)) in times.iter_mut().zip(settings) {
            let dir = tempfile::tempdir()?;
            times.push(log_throughput(dir.path(), n, system)?);
        }
    }
    for (times, (name, _)) in times.into_iter().zip(settings) {
        // The median of the seconds (the helper is unit-blind).
        let seconds = median_ms(times);
        #[allow(clippy::cast_precision_loss)]
        let rate = (4 * n) as f64 / seconds;
        println!(
            r#"{{"workload":"S1-W1","system_metrics":"{name}","n":{n},"seconds_median":{seconds:.4},"points_per_sec":{rate:.0}}}"#
        );
    }
    Ok(())
}

/// W2 with the fsync floor measured around the resumes: a resume is a few syncs (redb's open,
/// the attempt's two-phase commit), and the floor tells a slow disk from a slow resume.
fn resume(dir: &Path, n: u64) -> Result<(), Error> {
    let mut floors = Vec::new();
    fsync_floor(dir, 100, &mut floors)?;
    let ms = resume_ms(dir, 21)?;
    fsync_floor(dir, 100, &mut floors)?;
    floors.sort_unstable();
    let floor = floors[floors.len() / 2];
    #[allow(clippy::cast_precision_loss)]
    let floor_ms = floor as f64 / 1e6;
    println!(
        r#"{{"workload":"W2","n":{n},"resume_ms_median":{ms:.3},"fsync_floor_ns":{floor},"resume_over_floor":{:.2}}}"#,
        ms / floor_ms
    );
    Ok(())
}

/// W5: durable log calls, their latency quantiles against the fsync floor of the same run.
fn durable(n: u64) -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    // The floor is measured before and after the durable calls, so that a change in the
    // machine's load during the run weighs on both sides of the ratio.
    let mut floors = Vec::new();
    fsync_floor(dir.path(), 500, &mut floors)?;
    let (histogram, seconds) = log_latency(dir.path(), n, Durability::EveryLog)?;
    fsync_floor(dir.path(), 500, &mut floors)?;
    floors.sort_unstable();
    let floor = floors[floors.len() / 2];
    #[allow(clippy::cast_precision_loss)]
    let calls = n as f64 / seconds;
    // The target is the p99 of the durable call against the floor of the same run.
    #[allow(clippy::cast_precision_loss)]
    let over_floor = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / floor as f64;
    println!(
        r#"{{"workload":"W5","n":{n},"calls_per_sec":{calls:.0},"latency":{},"fsync_floor_ns":{floor},"p50_over_floor":{:.2},"p99_over_floor":{:.2},"p999_over_floor":{:.2}}}"#,
        latency_json(&histogram),
        over_floor(0.5),
        over_floor(0.99),
        over_floor(0.999)
    );
    Ok(())
}

fn main() -> Result<(), Error> {
    let mut workload = "all".to_string();
    let mut n: u64 = 100_000;
    let mut keep: Option<std::path::PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--workload" => workload = args.next().ok_or("--workload needs a value")?.to_uppercase(),
            "--n" => n = args.next().ok_or("--n needs a value")?.parse()?,
            "--bench" => {} // passed by `cargo bench`
            "--keep" => keep = Some(args.next().ok_or("--keep needs a directory")?.into()),
            "--queue-operations" => {
                // The fresh process of Q1: --queue-operations DIR.
                let dir = args.next().ok_or("--queue-operations needs a directory")?;
                return queue_operations(Path::new(&dir), n);
            }
            other => {
                return Err(
                    format!("unknown argument {other:?}; use --workload W1..W6|Q1|S1|all --n N [--keep DIR]").into()
                );
            }
        }
    }
    let all = workload == "ALL";
    let points = 4 * n;
    #[allow(clippy::cast_precision_loss)]
    let per_second = |seconds: f64| points as f64 / seconds;

    if all || workload == "W1" {
        let dir = tempfile::tempdir()?;
        let seconds = log_throughput(dir.path(), n, None)?;
        println!(
            r#"{{"workload":"W1","n":{n},"points":{points},"seconds":{seconds:.4},"points_per_sec":{:.0}}}"#,
            per_second(seconds)
        );
        let dir = tempfile::tempdir()?;
        let (histogram, _) = log_latency(dir.path(), n, Durability::Buffered)?;
        println!(r#"{{"workload":"W1-latency","n":{n},"latency":{}}}"#, latency_json(&histogram));
    }
    if all || ["W2", "W3", "W4"].contains(&workload.as_str()) {
        let dir = tempfile::tempdir()?;
        let seconds = log_throughput(dir.path(), n, None)?;
        if all || workload == "W4" {
            let bytes = support::disk_bytes(dir.path());
            #[allow(clippy::cast_precision_loss)]
            let per_point = bytes as f64 / points as f64;
            println!(
                r#"{{"workload":"W4","n":{n},"bytes":{bytes},"bytes_per_point":{per_point:.3},"build_seconds":{seconds:.3}}}"#
            );
        }
        if all || workload == "W3" {
            let (read, seconds) = replay(dir.path())?;
            assert_eq!(read, points, "replay returned every point");
            println!(
                r#"{{"workload":"W3","n":{n},"points":{read},"seconds":{seconds:.4},"points_per_sec":{:.0}}}"#,
                per_second(seconds)
            );
        }
        if all || workload == "W2" {
            resume(dir.path(), n)?;
        }
    }
    if all || workload == "W5" {
        durable(n)?;
    }
    if all || workload == "W6" {
        // W6 is 10^4 steps as the standard defines it, whatever `--n` says for the others.
        let steps = if workload == "W6" && n != 100_000 { n } else { 10_000 };
        match &keep {
            Some(dir) => wide(dir, steps)?,
            None => wide(tempfile::tempdir()?.path(), steps)?,
        }
    }
    if workload == "S1" {
        system_sampler(n, 5)?;
    }
    if workload == "Q1" {
        let dir = tempfile::tempdir()?;
        let seconds = queue_sweep(dir.path(), n)?;
        let bytes = support::disk_bytes(dir.path());
        println!(r#"{{"workload":"Q1-sweep","n":{n},"seconds":{seconds:.3},"bytes":{bytes}}}"#);
        let status = std::process::Command::new(std::env::current_exe()?)
            .args(["--n", &n.to_string(), "--queue-operations"])
            .arg(dir.path())
            .status()?;
        if !status.success() {
            return Err(format!("the queue operations process failed: {status}").into());
        }
    }
    Ok(())
}
