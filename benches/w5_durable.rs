//! W5 durable: log calls with `Durability::EveryLog` (each row durable in the run's journal,
//! one write + fdatasync, before the call returns), beside the fsync floor measured in the same
//! run: one small write + fsync.

mod support;

use std::io::Write;

use criterion::{Criterion, criterion_group, criterion_main};
use runstore::{Durability, Store};

fn w5_durable(c: &mut Criterion) {
    let mut group = c.benchmark_group("W5 durable");
    group.sample_size(50);

    let dir = tempfile::tempdir().expect("tempdir");
    let mut file = std::fs::File::create(dir.path().join("floor")).expect("file");
    group.bench_function("fsync floor (8-byte write + fsync)", |b| {
        b.iter(|| {
            file.write_all(&[7; 8]).expect("write");
            file.sync_all().expect("fsync");
        });
    });

    let store = Store::open(dir.path().join("store")).expect("store");
    let mut run = store.init(support::options(Durability::EveryLog)).expect("init");
    group.bench_function("durable log call", |b| {
        b.iter(|| {
            let step = run.step();
            run.log(support::row(step)).expect("log");
        });
    });
    run.finish(0).expect("finish");
    group.finish();
}

criterion_group!(benches, w5_durable);
criterion_main!(benches);
