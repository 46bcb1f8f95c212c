//! The standard data and helpers shared by the benchmark targets (see `docs/benchmarks.md`).

#![allow(dead_code)] // each target uses a part

use std::path::Path;

use runstore::{Durability, Resume, RunOptions, Store};

/// The four metrics of the standard data at step `i`.
pub fn row(i: u64) -> [(&'static str, f64); 4] {
    #[allow(clippy::cast_precision_loss)]
    let x = i as f64;
    let loss = 2.0 / (1.0 + 0.001 * x) + 0.01 * x.sin();
    [
        ("loss", loss),
        ("acc", 1.0 - loss / 3.0),
        ("lr", 1e-3 * (0.5 + 0.5 * (x / 997.0).cos())),
        ("grad_norm", 0.5 + 0.25 * (x / 13.0).sin()),
    ]
}

pub const RUN: &str = "bench";

pub fn options(durability: Durability) -> RunOptions {
    RunOptions::new().ignore_environment().id(RUN).resume(Resume::Allow).durability(durability)
}

/// W1: creates the run in a fresh store at `dir`, logs `n` standard steps, finishes.
pub fn build(dir: &Path, n: u64) {
    let store = Store::open(dir).expect("store");
    let mut run = store.init(options(Durability::Buffered)).expect("init");
    for i in 0..n {
        run.log(row(i)).expect("log");
    }
    run.finish(0).expect("finish");
}

/// The time of `iterations` W1 builds of `n` steps, each in a fresh store and followed by
/// `then` on its directory (inside the timing).
pub fn timed_builds(iterations: u64, n: u64, then: impl Fn(&Path)) -> std::time::Duration {
    let mut total = std::time::Duration::ZERO;
    for _ in 0..iterations {
        let dir = tempfile::tempdir().expect("tempdir");
        let started = std::time::Instant::now();
        build(dir.path(), n);
        then(dir.path());
        total += started.elapsed();
    }
    total
}

/// Apparent bytes of every file under `dir`, as `du -sb`.
pub fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            let entry = entry.expect("entry");
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() { disk_bytes(&entry.path()) + meta.len() } else { meta.len() }
        })
        .sum()
}
