//! Overviews from chunk summaries (`metric_stats`, envelopes) equal what the points give, for
//! random histories of several chunks with NaN, infinities, signed zeros, rewinds and forks.

use runstore::{Bucket, Envelope, MetricStats, RunSnapshot};

use crate::support::{options, temp_store};

/// xorshift64*: a fixed sequence per seed, so that a failure can be replayed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Mostly noise (so chunks fill at a few thousand points), sometimes a special value.
    fn value(&mut self) -> f64 {
        match self.below(200) {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            3 => -0.0,
            4 => 0.0,
            5 => 1e6,
            6 => -1e6,
            #[allow(clippy::cast_precision_loss)]
            _ => (self.next() >> 11) as f64 / (1u64 << 53) as f64 - 0.5,
        }
    }
}

const METRICS: [&str; 3] = ["dense", "sparse", "late"];

/// Logs steps until `until` (exclusive): `dense` every step, `sparse` every 7th, `late` from
/// step 5000 on, all NaN in a stretch.
fn log_until(run: &mut runstore::Run, until: u64, random: &mut Random) {
    while run.step() < until {
        let step = run.step();
        let mut row = vec![(METRICS[0], random.value())];
        if step.is_multiple_of(7) {
            row.push((METRICS[1], random.value()));
        }
        if step >= 5000 {
            row.push((METRICS[2], if (6000..6100).contains(&step) { f64::NAN } else { random.value() }));
        }
        run.log(row).unwrap();
    }
}

fn points(snapshot: &RunSnapshot, metric: &str, branch: Option<u32>) -> Vec<(u64, f64)> {
    let series = match branch {
        Some(branch) => snapshot.branch_series(branch, metric, ..).unwrap(),
        None => snapshot.series(metric, ..).unwrap(),
    };
    series.collect::<Result<_, _>>().unwrap()
}

type Point = (u64, f64);

/// The stats of `points`, computed the obvious way: count, NaN count, first, last, lowest and
/// highest point.
struct Brute {
    count: u64,
    nans: u64,
    first: Option<Point>,
    last: Option<Point>,
    min: Option<Point>,
    max: Option<Point>,
}

fn brute_stats(points: &[Point]) -> Brute {
    let (mut min, mut max): (Option<Point>, Option<Point>) = (None, None);
    for &(step, value) in points {
        if value.is_nan() {
            continue;
        }
        if min.is_none_or(|(_, low)| value < low) {
            min = Some((step, value));
        }
        if max.is_none_or(|(_, high)| value > high) {
            max = Some((step, value));
        }
    }
    let nans = points.iter().filter(|point| point.1.is_nan()).count() as u64;
    Brute { count: points.len() as u64, nans, first: points.first().copied(), last: points.last().copied(), min, max }
}

fn bits(point: Option<(u64, f64)>) -> Option<(u64, u64)> {
    point.map(|(step, value)| (step, value.to_bits()))
}

fn assert_stats(stats: &MetricStats, points: &[(u64, f64)], context: &str) {
    let Brute { count, nans, first, last, min, max } = brute_stats(points);
    assert_eq!((stats.count, stats.nan_count), (count, nans), "{context}");
    assert_eq!(bits(stats.first), bits(first), "{context}: first");
    assert_eq!(bits(stats.last), bits(last), "{context}: last");
    assert_eq!(bits(stats.min), bits(min), "{context}: min");
    assert_eq!(bits(stats.max), bits(max), "{context}: max");
}

/// Equal, NaN equal to NaN (and 0.0 to -0.0: either is the extreme of both).
fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// The bucket of `points`, computed the obvious way.
fn brute_bucket(points: &[(u64, f64)]) -> (u64, u64, u64, u64, f64, f64, f64, f64) {
    let finite = points.iter().map(|p| p.1).filter(|v| !v.is_nan());
    let min = finite.clone().fold(f64::NAN, f64::min);
    let max = finite.fold(f64::NAN, f64::max);
    let (first, last) = (points[0], points[points.len() - 1]);
    let nans = points.iter().filter(|p| p.1.is_nan()).count() as u64;
    (first.0, last.0, points.len() as u64, nans, first.1, min, max, last.1)
}

fn assert_bucket(bucket: &Bucket, points: &[(u64, f64)], context: &str) {
    assert!(!points.is_empty(), "{context}: a bucket without points");
    let (first_step, last_step, count, nans, first, min, max, last) = brute_bucket(points);
    assert_eq!(
        (bucket.first_step, bucket.last_step, bucket.count, bucket.nan_count),
        (first_step, last_step, count, nans),
        "{context}"
    );
    assert_eq!((bucket.first.to_bits(), bucket.last.to_bits()), (first.to_bits(), last.to_bits()), "{context}");
    assert!(same(bucket.min, min) && same(bucket.max, max), "{context}: {bucket:?} vs {min} {max}");
}

/// The interval of `step` among `buckets` equal intervals of `low..=high`.
fn interval(step: u64, low: u64, high: u64, buckets: usize) -> u128 {
    let span = u128::from(high - low) + 1;
    (u128::from(step - low) * buckets as u128 / span).min(buckets as u128 - 1)
}

/// An envelope of `points` (those of the range `low..=high`) in `buckets` is what the rule says.
fn assert_envelope(envelope: &Envelope, points: &[(u64, f64)], (low, high): (u64, u64), buckets: usize, context: &str) {
    let total: u64 = envelope.buckets.iter().map(|bucket| bucket.count).sum();
    assert_eq!(total, points.len() as u64, "{context}: every point in one bucket");
    assert!(envelope.buckets.len() <= buckets, "{context}");
    let mut at = 0;
    let mut previous = None;
    for (index, bucket) in envelope.buckets.iter().enumerate() {
        let count = usize::try_from(bucket.count).unwrap();
        let mine = &points[at..at + count];
        at += count;
        let context = format!("{context}, bucket {index}");
        assert_bucket(bucket, mine, &context);
        let first = interval(mine[0].0, low, high, buckets);
        assert!(previous.is_none_or(|previous| previous < first), "{context}: intervals increase");
        previous = Some(first);
        if !envelope.whole_chunks {
            // Exact: a bucket is one interval's points, all of them.
            assert!(mine.iter().all(|p| interval(p.0, low, high, buckets) == first), "{context}");
        }
    }
}

/// Checks every overview of `snapshot` against its points, for several ranges and widths.
fn check_run(snapshot: &RunSnapshot, random: &mut Random, label: &str) -> (usize, usize) {
    let stats = snapshot.metric_stats().unwrap();
    assert_eq!(stats.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), snapshot.metrics().unwrap());
    let (mut aligned, mut exact) = (0, 0);
    for metric in METRICS {
        let all = points(snapshot, metric, None);
        let mine = stats.iter().find(|s| s.name == metric).unwrap();
        assert_stats(mine, &all, &format!("{label} {metric}"));
        let Some(&(data_first, _)) = all.first() else { continue };
        let data_last = all[all.len() - 1].0;
        for buckets in [1, 2, 3, 7, 24, 1000, 20_000] {
            let context = format!("{label} {metric} .. in {buckets}");
            let envelope = snapshot.envelope(metric, .., buckets).unwrap();
            assert_envelope(&envelope, &all, (data_first, data_last), buckets, &context);
            let summary = snapshot.summary_envelope(metric, .., buckets).unwrap();
            assert_eq!(summary.is_some(), envelope.whole_chunks, "{context}");
            if let Some(summary) = summary {
                assert_eq!(format!("{summary:?}"), format!("{envelope:?}"), "{context}");
            }
            if envelope.whole_chunks {
                aligned += 1;
            } else {
                exact += 1;
            }
            // A range cut at random steps, both ends given.
            let low = data_first + random.below(data_last - data_first + 1);
            let high = low + random.below(data_last - low + 1);
            let inside: Vec<(u64, f64)> = all.iter().copied().filter(|p| p.0 >= low && p.0 <= high).collect();
            let envelope = snapshot.envelope(metric, low..=high, buckets).unwrap();
            assert_envelope(&envelope, &inside, (low, high), buckets, &format!("{context} {low}..={high}"));
            let from: Vec<(u64, f64)> = all.iter().copied().filter(|p| p.0 >= low).collect();
            let envelope = snapshot.envelope(metric, low.., buckets).unwrap();
            if let Some(&(_, _)) = from.first() {
                assert_envelope(&envelope, &from, (low, data_last), buckets, &format!("{context} {low}.."));
            }
        }
    }
    for branch in snapshot.branches().unwrap() {
        for metric in METRICS {
            let all = points(snapshot, metric, Some(branch.id));
            let Some(&(data_first, _)) = all.first() else { continue };
            let data_last = all[all.len() - 1].0;
            for buckets in [2, 24, 5000] {
                let envelope = snapshot.branch_envelope(branch.id, metric, .., buckets).unwrap();
                let context = format!("{label} branch {} {metric} in {buckets}", branch.id);
                assert_envelope(&envelope, &all, (data_first, data_last), buckets, &context);
                let summary = snapshot.branch_summary_envelope(branch.id, metric, .., buckets).unwrap();
                assert_eq!(summary.is_some(), envelope.whole_chunks, "{context}");
            }
        }
    }
    assert!(snapshot.envelope("no such metric", .., 10).unwrap().buckets.is_empty());
    let missing = snapshot.branch_envelope(999, "dense", .., 10).unwrap_err();
    assert!(matches!(missing, runstore::Error::BranchNotFound { branch: 999, .. }), "{missing}");
    (aligned, exact)
}

#[test]
fn stats_and_envelopes_from_summaries_equal_those_of_the_points_through_rewinds_and_forks() {
    let (mut aligned, mut exact) = (0, 0);
    for seed in [0x9E37_79B9_7F4A_7C15u64, 0xD1B5_4A32_D192_ED03, 0x1234_5678_9ABC_DEF1] {
        let t = temp_store();
        let mut random = Random(seed);
        // A base run: some chunks, a rewind into them, more chunks.
        let mut base = t.store.init(options().id("base")).unwrap();
        let first_end = 12_000 + random.below(8000);
        log_until(&mut base, first_end, &mut random);
        base.flush().unwrap();
        let rewound_to = 3000 + random.below(first_end - 3000);
        base.rewind(rewound_to).unwrap();
        log_until(&mut base, rewound_to + 1 + 9000 + random.below(6000), &mut random);
        base.finish(0).unwrap();
        // A fork inside the base's history, then a rewind of the base below the fork step: the
        // fork inherits from the base's live rows and from its new archived branch.
        let last = t.store.open_run("base").unwrap().info().unwrap().last_step.unwrap();
        let fork_at = 1000 + random.below(last - 1000);
        let mut fork = t.store.fork("base", fork_at, options().id("fork")).unwrap();
        log_until(&mut fork, fork_at + 1 + 5000 + random.below(5000), &mut random);
        fork.finish(0).unwrap();
        t.store.rewind("base", random.below(fork_at)).unwrap();
        let mut base = t.store.init(options().id("base").resume(runstore::Resume::Must)).unwrap();
        let until = base.step() + 4000;
        log_until(&mut base, until, &mut random);
        base.finish(0).unwrap();
        for id in ["base", "fork"] {
            let snapshot = t.store.open_run(id).unwrap().snapshot().unwrap();
            // Several chunks (at least three): six buckets are read from summaries.
            assert!(snapshot.envelope("dense", .., 6).unwrap().whole_chunks, "{id}");
            let (a, e) = check_run(&snapshot, &mut random, &format!("seed {seed:x} run {id}"));
            aligned += a;
            exact += e;
        }
    }
    // Both ways of answering were exercised.
    assert!(aligned > 0 && exact > 0, "{aligned} {exact}");
}
