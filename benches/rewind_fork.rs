//! Rewind and fork cost against history length: 10⁴, 10⁶ and 10⁷ points (four per step).
//! Each rewind archives the last 1 000 steps; each fork branches 1 000 steps before the end.

mod support;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use runstore::{Durability, Resume, RunOptions, Store};

fn rewind_fork(c: &mut Criterion) {
    let mut group = c.benchmark_group("rewind and fork");
    group.sample_size(10);
    for points in [10_000u64, 1_000_000, 10_000_000] {
        let steps = points / 4;
        let dir = tempfile::tempdir().expect("tempdir");
        support::build(dir.path(), steps);
        let store = Store::open(dir.path()).expect("store");
        group.bench_function(format!("rewind 1000 steps of {points} points"), |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    // Log 1 000 more steps (untimed), then rewind them away.
                    let mut run = store.init(support::options(Durability::Buffered)).expect("resume");
                    let end = run.step() + 1000;
                    while run.step() < end {
                        run.log(support::row(run.step())).expect("log");
                    }
                    run.finish(0).expect("finish");
                    let started = Instant::now();
                    store.rewind(support::RUN, end - 1001).expect("rewind");
                    total += started.elapsed();
                }
                total
            });
        });
        let mut forks = 0u64;
        group.bench_function(format!("fork 1000 steps before the end of {points} points"), |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    forks += 1;
                    let options =
                        RunOptions::new().ignore_environment().id(format!("fork-{forks}")).resume(Resume::Never);
                    let started = Instant::now();
                    let run = store.fork(support::RUN, steps - 1000, options).expect("fork");
                    total += started.elapsed();
                    run.finish(0).expect("finish");
                }
                total
            });
        });
    }
    group.finish();
}

criterion_group!(benches, rewind_fork);
criterion_main!(benches);
