//! W4 size: bytes on disk per point after finish (`du -sb` of the store / 4·N). The size is
//! printed once per N; criterion times the build that produces it.

mod support;

use criterion::{Criterion, criterion_group, criterion_main};

fn w4_size(c: &mut Criterion) {
    let mut group = c.benchmark_group("W4 size");
    group.sample_size(10);
    for n in [100_000u64, 1_000_000] {
        let dir = tempfile::tempdir().expect("tempdir");
        support::build(dir.path(), n);
        let bytes = support::disk_bytes(dir.path());
        #[allow(clippy::cast_precision_loss)]
        let per_point = bytes as f64 / (4 * n) as f64;
        println!("W4 {n} steps: {bytes} bytes, {per_point:.3} bytes per point");
        group.bench_function(format!("{n} steps, build and measure"), |b| {
            b.iter_custom(|iterations| {
                support::timed_builds(iterations, n, |dir| {
                    std::hint::black_box(support::disk_bytes(dir));
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, w4_size);
criterion_main!(benches);
