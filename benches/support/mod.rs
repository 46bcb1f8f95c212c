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

/// W6's width: dense metrics logged at every step, sparse ones every [`W6_SPARSE_EVERY`] steps.
pub const W6_DENSE: usize = 1000;
pub const W6_SPARSE: usize = 20;
pub const W6_SPARSE_EVERY: u64 = 500;

/// W6's metric names: per-layer gradient norms, then per-class evaluation accuracies.
pub fn w6_names() -> (Vec<String>, Vec<String>) {
    let dense = (0..W6_DENSE).map(|i| format!("layer{i:03}/grad_norm")).collect();
    let sparse = (0..W6_SPARSE).map(|j| format!("eval/class{j:02}/acc")).collect();
    (dense, sparse)
}

/// W6's value of dense metric `metric` at step `step`: a per-layer decay with a wobble, as
/// gradient norms look.
pub fn w6_dense(step: u64, metric: usize) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let (x, m) = (step as f64, metric as f64);
    (1.0 + m / 100.0) / (1.0 + 0.001 * x) + 0.01 * (x / 7.0 + m).sin()
}

/// W6's value of sparse metric `metric` at an evaluation step.
pub fn w6_sparse(step: u64, metric: usize) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let (x, m) = (step as f64, metric as f64);
    0.9 - 0.5 / (1.0 + 0.001 * x) - 0.001 * m
}

/// W6: creates the run in a fresh store at `dir` and logs `steps` wide rows; returns the points
/// logged.
pub fn build_wide(dir: &Path, steps: u64) -> u64 {
    let (dense, sparse) = w6_names();
    let store = Store::open(dir).expect("store");
    let mut run = store.init(options(Durability::Buffered)).expect("init");
    let mut row: Vec<(&str, f64)> = Vec::with_capacity(W6_DENSE + W6_SPARSE);
    let mut points = 0u64;
    for step in 0..steps {
        row.clear();
        row.extend(dense.iter().enumerate().map(|(i, name)| (name.as_str(), w6_dense(step, i))));
        if step % W6_SPARSE_EVERY == 0 {
            row.extend(sparse.iter().enumerate().map(|(j, name)| (name.as_str(), w6_sparse(step, j))));
        }
        points += row.len() as u64;
        run.log(row.iter().copied()).expect("log");
    }
    run.finish(0).expect("finish");
    points
}
