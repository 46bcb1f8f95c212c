//! W2 resume: a cold handle opens an existing run with `allow`, learns the next step and logs one
//! more row, at 10³, 10⁵, 10⁶ and 10⁷ steps of history (each history built once).

mod support;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use runstore::{Durability, Store};

fn w2_resume(c: &mut Criterion) {
    let mut group = c.benchmark_group("W2 resume");
    group.sample_size(30);
    for n in [1_000u64, 100_000, 1_000_000, 10_000_000] {
        let dir = tempfile::tempdir().expect("tempdir");
        support::build(dir.path(), n);
        group.bench_function(format!("{n} steps"), |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let started = Instant::now();
                    let store = Store::open(dir.path()).expect("store");
                    let mut run = store.init(support::options(Durability::Buffered)).expect("resume");
                    let step = run.step();
                    run.log_at(step, support::row(step)).expect("log");
                    total += started.elapsed();
                    run.finish(0).expect("finish");
                }
                total
            });
        });
    }
    group.finish();
}

criterion_group!(benches, w2_resume);
criterion_main!(benches);
