//! W1 log: points per second with the default durability, from before create to after finish.

mod support;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn w1_log(c: &mut Criterion) {
    let mut group = c.benchmark_group("W1 log");
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    for n in [100_000u64, 1_000_000] {
        group.throughput(Throughput::Elements(4 * n));
        group.bench_function(format!("{n} steps"), |b| {
            b.iter_custom(|iterations| support::timed_builds(iterations, n, |_| {}));
        });
    }
    group.finish();
}

criterion_group!(benches, w1_log);
criterion_main!(benches);
