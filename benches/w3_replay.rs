//! W3 replay: a new reader streams all 4·N points in step order.

mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use runstore::Store;

fn w3_replay(c: &mut Criterion) {
    let mut group = c.benchmark_group("W3 replay");
    group.sample_size(20);
    for n in [100_000u64, 1_000_000] {
        let dir = tempfile::tempdir().expect("tempdir");
        support::build(dir.path(), n);
        group.throughput(Throughput::Elements(4 * n));
        group.bench_function(format!("{n} steps"), |b| {
            b.iter(|| {
                let store = Store::open(dir.path()).expect("store");
                let reader = store.open_run(support::RUN).expect("reader");
                let mut history = reader.history(..).expect("history");
                let mut points = 0u64;
                while let Some(row) = history.next_row().expect("row") {
                    points += row.points().len() as u64;
                }
                assert_eq!(points, 4 * n);
                points
            });
        });
    }
    group.finish();
}

criterion_group!(benches, w3_replay);
criterion_main!(benches);
