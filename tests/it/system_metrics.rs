//! System metrics (`RunOptions::system_metrics`, `RUNSTORE_SYSTEM_METRICS`): a sampler thread
//! records the machine while the run is live, stops at finish, keeps every flushed sample through
//! a SIGKILL, never changes the rows, and notes why there are no GPU series where there are none.

use std::time::{Duration, Instant, SystemTime};

use runstore::{Durability, Resume, RunState, Store};

use crate::support::{Reports, bits, child, options, row, temp_store};

/// The series every Linux machine gives (the disk and network rates need a physical disk and a
/// network interface: see [`rates_expected`]).
const ALWAYS: [&str; 6] = [
    "system/cpu_percent",
    "system/process_cpu_percent",
    "system/memory_rss_mib",
    "system/memory_used_mib",
    "system/memory_used_percent",
    "system/disk_free_gib",
];

/// The rate series this machine can give, judged from the files the sampler does not use to
/// decide: a disk under `/sys/block` with a device, an interface other than `lo`.
fn rates_expected() -> Vec<&'static str> {
    let mut series = Vec::new();
    let disks = std::fs::read_dir("/sys/block")
        .map(|entries| entries.filter_map(Result::ok).any(|entry| entry.path().join("device").exists()));
    if disks.unwrap_or(false) {
        series.extend(["system/disk_read_mib_per_s", "system/disk_write_mib_per_s"]);
    }
    let dev = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    if dev.lines().skip(2).any(|line| line.split(':').next().is_some_and(|name| name.trim() != "lo")) {
        series.extend(["system/net_recv_mib_per_s", "system/net_sent_mib_per_s"]);
    }
    series
}

/// The GPUs the NVIDIA driver shows, independently of NVML: `/proc/driver/nvidia/gpus/*`.
fn driver_gpus() -> usize {
    std::fs::read_dir("/proc/driver/nvidia/gpus").map_or(0, Iterator::count)
}

fn samples(store: &Store, id: &str, series: &str) -> Vec<(SystemTime, f64)> {
    store.open_run(id).unwrap().system(series, ..).unwrap()
}

#[test]
fn samples_appear_at_the_interval_while_the_run_is_live_and_stop_at_finish() {
    let t = temp_store();
    let interval = Duration::from_millis(100);
    let started = Instant::now();
    let mut run = t
        .store
        .init(options().id("live").system_metrics(interval).flush_every(1 << 20, Duration::from_millis(50)))
        .unwrap();
    // Training goes on; another handle reads the samples the flusher committed meanwhile.
    let mut step = 0;
    let live = loop {
        run.log(row(step)).unwrap();
        step += 1;
        std::thread::sleep(Duration::from_millis(2));
        let live = samples(&t.store, "live", "system/memory_rss_mib");
        if live.len() >= 3 || started.elapsed() > Duration::from_secs(60) {
            break live;
        }
    };
    let elapsed = started.elapsed();
    assert!(live.len() >= 3, "{} samples after {elapsed:?}", live.len());
    // One sample per elapsed interval at most, whatever the load: none is taken early.
    let most = usize::try_from(elapsed.as_millis() / interval.as_millis()).unwrap();
    assert!(live.len() <= most, "{} samples in {elapsed:?}", live.len());
    assert!(live.windows(2).all(|pair| pair[0].0 < pair[1].0), "times increase");
    assert!(live.iter().all(|(_, mib)| *mib > 1.0), "a test process holds more than 1 MiB: {live:?}");
    run.finish(0).unwrap();

    let finished = samples(&t.store, "live", "system/memory_rss_mib");
    assert!(finished.len() >= live.len());
    assert_eq!(finished[..live.len()], live[..], "the live samples are kept as they were");
    std::thread::sleep(interval * 4);
    assert_eq!(samples(&t.store, "live", "system/memory_rss_mib"), finished, "no sample after finish");

    let reader = t.store.open_run("live").unwrap();
    for series in ALWAYS.into_iter().chain(rates_expected()) {
        let got = reader.system(series, ..).unwrap();
        assert!(!got.is_empty(), "{series} was sampled");
        assert!(got.iter().all(|(_, value)| value.is_finite() && *value >= 0.0), "{series}: {got:?}");
    }
    for series in ["system/cpu_percent", "system/memory_used_percent"] {
        assert!(reader.system(series, ..).unwrap().iter().all(|(_, percent)| *percent <= 100.0), "{series}");
    }
    // The step history is exactly what was logged: the sampler adds no row and no step.
    let info = reader.info().unwrap();
    assert_eq!((info.rows, info.next_step, info.state), (step, step, RunState::Finished));
    assert!(!info.summary.keys().any(|name| name.starts_with("system/")));
    let mut history = reader.history(..).unwrap();
    let mut expected = 0;
    while let Some(got) = history.next_row().unwrap() {
        assert_eq!(got.step(), expected);
        for (name, value) in row(expected) {
            assert_eq!(got.get(name).map(bits), Some(bits(value)), "step {expected} {name}");
        }
        expected += 1;
    }
    assert_eq!(expected, step);
    assert!(t.store.check("live").unwrap().is_healthy());
}

#[test]
fn a_durable_run_whose_loop_stalls_still_stores_its_samples() {
    // No log call commits them: the flusher, which folds `EveryLog`'s journal, stores the
    // readings, so that a run stuck in its data loader shows the machine while it is stuck.
    let t = temp_store();
    let mut run = t
        .store
        .init(options().id("stuck").durability(Durability::EveryLog).system_metrics(Duration::from_millis(50)))
        .unwrap();
    run.log(row(0)).unwrap();
    let started = Instant::now();
    let stored = loop {
        std::thread::sleep(Duration::from_millis(20));
        let stored = samples(&t.store, "stuck", "system/memory_rss_mib");
        if stored.len() >= 3 || started.elapsed() > Duration::from_secs(60) {
            break stored;
        }
    };
    assert!(stored.len() >= 3, "{} samples stored in {:?} without a log call", stored.len(), started.elapsed());
    run.log(row(1)).unwrap();
    run.finish(0).unwrap();
    let reader = t.store.open_run("stuck").unwrap();
    assert_eq!(reader.info().unwrap().rows, 2, "the sampler's commits add no row");
    assert!(t.store.check("stuck").unwrap().is_healthy());
}

#[test]
fn finish_and_drop_stop_the_sampler_without_waiting_out_its_interval() {
    let t = temp_store();
    // A first reading at the start and none until the hour is up: finish must not wait for it.
    let hour = Duration::from_secs(3600);
    let run = t.store.init(options().id("f").system_metrics(hour)).unwrap();
    let started = Instant::now();
    run.finish(0).unwrap();
    assert!(started.elapsed() < Duration::from_secs(600), "finish returned before the interval passed");
    let run = t.store.init(options().id("d").system_metrics(hour)).unwrap();
    drop(run);
    assert!(started.elapsed() < Duration::from_secs(600), "drop returned before the interval passed");
    assert_eq!(t.store.open_run("d").unwrap().state().unwrap(), RunState::Failed);
    // The series are known from the start, with no sample yet.
    assert!(samples(&t.store, "f", "system/cpu_percent").is_empty());
    assert!(t.store.open_run("f").unwrap().metrics().unwrap().contains(&"system/cpu_percent".to_string()));
}

#[test]
fn a_killed_writer_keeps_every_flushed_sample_and_row() {
    let t = temp_store();
    let mut command = child("writer", &t.path);
    // Enabled by the environment, as a launcher would; samples every 20 ms, committed only by the
    // writer's explicit flushes (the background flush waits an hour).
    command
        .env("RUNSTORE_RUN_ID", "k")
        .env("RUNSTORE_RESUME", "allow")
        .env("RUNSTORE_SYSTEM_METRICS", "0.02")
        .env("TEST_END", "forever")
        .env("TEST_FLUSH_EVERY", "20")
        .env("TEST_FLUSH_ROWS", "1000000")
        .env("TEST_PAUSE_US", "1000");
    let mut process = command.spawn().expect("spawn");
    let mut reports = Reports::of(&mut process);
    reports.expect("init ok");
    let started = Instant::now();
    let flushed = loop {
        reports.expect("flushed");
        let stored = samples(&t.store, "k", "system/cpu_percent");
        if stored.len() >= 5 || started.elapsed() > Duration::from_secs(120) {
            break stored;
        }
    };
    assert!(flushed.len() >= 5, "the child's flushes committed samples: {}", flushed.len());
    let last_flushed_step: u64 = reports.expect("flushed").parse().unwrap();
    let before_kill: Vec<_> = ALWAYS.iter().map(|series| samples(&t.store, "k", series)).collect();
    process.kill().expect("SIGKILL");
    process.wait().unwrap();

    assert_eq!(t.store.open_run("k").unwrap().state().unwrap(), RunState::Crashed);
    for (series, before) in ALWAYS.iter().zip(&before_kill) {
        let after = samples(&t.store, "k", series);
        assert!(after.len() >= before.len(), "{series}: {} after the kill, {} before", after.len(), before.len());
        assert_eq!(after[..before.len()], before[..], "{series}: every flushed sample survived as it was");
    }
    let last = crate::crash_recovery::assert_standard_prefix(&t, "k");
    assert!(last >= last_flushed_step, "every flushed row survived: stored up to {last}, flushed {last_flushed_step}");
    assert!(t.store.check("k").unwrap().is_healthy());
}

#[test]
fn a_resumed_run_samples_on_after_the_samples_of_its_earlier_attempt() {
    let t = temp_store();
    let resume = || options().id("r").resume(Resume::Allow).system_metrics(Duration::from_millis(20));
    for attempt in 1..=2 {
        let mut run = t.store.init(resume()).unwrap();
        let had = samples(&t.store, "r", "system/cpu_percent").len();
        let started = Instant::now();
        while samples(&t.store, "r", "system/cpu_percent").len() < had + 2
            && started.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(20));
            run.flush().unwrap();
        }
        assert_eq!(run.attempt(), attempt);
        run.finish(0).unwrap();
    }
    let reader = t.store.open_run("r").unwrap();
    let cpu = reader.system("system/cpu_percent", ..).unwrap();
    assert!(cpu.len() >= 4, "{cpu:?}");
    assert!(cpu.windows(2).all(|pair| pair[0].0 < pair[1].0), "one series, in time order");
    let second = reader.attempts().unwrap()[1].started_at;
    assert!(cpu.iter().filter(|(time, _)| *time >= second).count() >= 2, "the second attempt sampled");
    assert!(cpu.iter().filter(|(time, _)| *time < second).count() >= 2, "the first attempt's samples are kept");
    assert!(t.store.check("r").unwrap().is_healthy());
}

#[test]
fn an_interval_the_environment_cannot_give_is_a_typed_error_naming_the_variable() {
    let t = temp_store();
    for value in ["often", "-5", "10s"] {
        let mut command = child("writer", &t.path);
        command.env("RUNSTORE_RUN_ID", "bad").env("RUNSTORE_SYSTEM_METRICS", value);
        let mut process = command.spawn().expect("spawn");
        let mut reports = Reports::of(&mut process);
        let report = reports.expect("init err");
        while reports.next().is_some() {}
        process.wait().unwrap();
        assert!(report.starts_with("InvalidEnvironment "), "{value}: {report}");
        assert!(report.contains("RUNSTORE_SYSTEM_METRICS"), "{value}: {report}");
    }
    assert!(t.store.run_ids().unwrap().is_empty(), "nothing was created");
}

#[test]
fn off_in_the_environment_records_nothing_and_the_option_is_off_by_default() {
    let t = temp_store();
    let mut command = child("writer", &t.path);
    command.env("RUNSTORE_RUN_ID", "off").env("RUNSTORE_SYSTEM_METRICS", "off").env("TEST_ROWS", "10");
    let mut process = command.spawn().expect("spawn");
    let mut reports = Reports::of(&mut process);
    reports.expect("finished");
    while reports.next().is_some() {}
    process.wait().unwrap();
    t.store.init(options().id("default")).unwrap().finish(0).unwrap();
    for id in ["off", "default"] {
        let reader = t.store.open_run(id).unwrap();
        assert!(!reader.metrics().unwrap().iter().any(|name| name.starts_with("system/")), "{id}");
        assert!(reader.info().unwrap().system_notes.is_empty(), "{id}");
    }
}

/// The GPU path runs where the NVIDIA driver shows GPUs (and must then record every GPU);
/// elsewhere the run records no GPU series and one note saying why, kept with the run.
#[test]
fn gpus_are_sampled_where_the_driver_shows_them_and_noted_as_skipped_elsewhere() {
    let t = temp_store();
    let mut run = t.store.init(options().id("g").system_metrics(Duration::from_millis(50))).unwrap();
    let warnings = run.warnings().to_vec();
    let started = Instant::now();
    while samples(&t.store, "g", "system/cpu_percent").len() < 2 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
        run.flush().unwrap();
    }
    run.finish(0).unwrap();
    let reader = t.store.open_run("g").unwrap();
    let gpu_series: Vec<String> =
        reader.metrics().unwrap().into_iter().filter(|name| name.starts_with("system/gpu")).collect();
    let notes = reader.info().unwrap().system_notes;
    match driver_gpus() {
        0 => {
            assert!(gpu_series.is_empty(), "{gpu_series:?}");
            assert_eq!(notes.len(), 1, "{notes:?}");
            assert!(notes[0].starts_with("system metrics: no GPU metrics ("), "{notes:?}");
            assert_eq!(warnings, notes, "the warning and the stored note are the same");
        }
        gpus => {
            assert!(notes.is_empty() && warnings.is_empty(), "{notes:?}");
            assert_eq!(gpu_series.len(), 4 * gpus, "{gpu_series:?}");
            for gpu in 0..gpus {
                let utilization = reader.system(&format!("system/gpu{gpu}/utilization_percent"), ..).unwrap();
                assert!(!utilization.is_empty(), "gpu{gpu} sampled");
                assert!(utilization.iter().all(|(_, percent)| (0.0..=100.0).contains(percent)));
                let memory = reader.system(&format!("system/gpu{gpu}/memory_used_mib"), ..).unwrap();
                assert!(memory.iter().all(|(_, mib)| *mib >= 0.0));
            }
        }
    }
}
