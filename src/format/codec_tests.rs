//! Round-trip properties of the format-2 chunk codecs over seeded random inputs (NaN payloads,
//! signed zeros, infinities, huge steps, times that go backwards), and the rule that a damaged
//! chunk is a `Corrupt` error, never a panic.

// Indexes drawn from 64-bit random numbers are reduced below small lengths first.
#![allow(clippy::cast_possible_truncation)]

use super::summary::ChunkSummary;
use super::{point_chunk, row_chunk, time_chunk};
use crate::sweep::space::SplitMix64;

/// Cases per property: enough to meet every branch of the codecs many times, fast in debug.
const CASES: usize = 300;

fn bits(values: &[f64]) -> Vec<u64> {
    values.iter().map(|value| value.to_bits()).collect()
}

/// A value drawn to stress the XOR coder: specials, repeats, smooth runs and raw bit patterns.
fn value(rng: &mut SplitMix64, previous: f64) -> f64 {
    const SPECIAL: [u64; 10] = [
        0x7FF8_0000_0000_0000, // NaN
        0xFFF8_0000_0000_0001, // negative NaN with a payload
        0x7FF0_0000_0000_0001, // signalling NaN
        0x7FF0_0000_0000_0000, // +inf
        0xFFF0_0000_0000_0000, // -inf
        0x8000_0000_0000_0000, // -0.0
        0,                     // +0.0
        1,                     // the smallest subnormal
        0x7FEF_FFFF_FFFF_FFFF, // f64::MAX
        0xFFEF_FFFF_FFFF_FFFF, // f64::MIN
    ];
    match rng.next() % 8 {
        0 => f64::from_bits(SPECIAL[(rng.next() % SPECIAL.len() as u64) as usize]),
        1 => previous,
        2 => f64::from_bits(rng.next()),
        3 | 4 => previous + 1e-3,
        _ => {
            #[allow(clippy::cast_precision_loss)]
            let unit = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            unit * 4.0 - 2.0
        }
    }
}

/// Strictly increasing steps: contiguous, sparse, with huge gaps, or at the top of `u64`.
fn steps(rng: &mut SplitMix64, count: usize) -> Vec<u64> {
    let shape = rng.next() % 4;
    let start = match shape {
        3 => u64::MAX - count as u64 * 3,
        _ => rng.next() % 1_000_000,
    };
    let mut out = Vec::with_capacity(count);
    let mut step = start;
    for _ in 0..count {
        out.push(step);
        let gap = match shape {
            0 => 1,
            1 => 1 + rng.next() % 500,
            2 => 1 + (rng.next() >> (rng.next() % 63 + 1)).min(u64::MAX / 4 / count as u64),
            _ => 1 + rng.next() % 2,
        };
        step = step.saturating_add(gap);
    }
    out
}

/// Times: a steady clock with jitter, a clock stepped back, equal times, or raw bit patterns.
fn times(rng: &mut SplitMix64, count: usize) -> Vec<u64> {
    let shape = rng.next() % 4;
    let mut time = 1_795_741_387_000u64;
    (0..count)
        .map(|_| {
            time = match shape {
                0 => time + 50 + rng.next() % 7 - 3,
                1 => time.wrapping_add(rng.next() % 2000).wrapping_sub(1000),
                2 => time,
                _ => rng.next(),
            };
            time
        })
        .collect()
}

fn count(rng: &mut SplitMix64) -> usize {
    match rng.next() % 3 {
        0 => 1,
        1 => 2 + (rng.next() % 10) as usize,
        _ => 1 + (rng.next() % 5000) as usize,
    }
}

#[test]
fn row_chunks_round_trip_steps_and_times() {
    let mut rng = SplitMix64(1);
    for _ in 0..CASES {
        let n = count(&mut rng);
        let (steps, times) = (steps(&mut rng, n), times(&mut rng, n));
        let mut bytes = Vec::new();
        row_chunk::encode(&steps, &times, &mut Vec::new(), &mut bytes);
        let (mut s, mut t) = (Vec::new(), Vec::new());
        let range = row_chunk::decode(&bytes, &mut s, &mut t).unwrap();
        assert_eq!((s.as_slice(), t.as_slice()), (steps.as_slice(), times.as_slice()));
        assert_eq!((range.count, range.first_step, range.last_step), (n, steps[0], steps[n - 1]));
        assert_eq!(row_chunk::range(&bytes).unwrap(), range);
        row_chunk::decode_steps(&bytes, &mut s).unwrap();
        assert_eq!(s, steps);
    }
}

#[test]
fn point_chunks_round_trip_values_bit_exact() {
    let mut rng = SplitMix64(2);
    let mut scratch = Vec::new();
    for _ in 0..CASES {
        let n = count(&mut rng);
        let steps = steps(&mut rng, n);
        let mut previous = 0.5;
        let values: Vec<f64> = (0..n)
            .map(|_| {
                previous = value(&mut rng, previous);
                previous
            })
            .collect();
        let mut bytes = Vec::new();
        point_chunk::encode(&steps, &values, &mut scratch, &mut bytes);
        let (mut s, mut v) = (Vec::new(), Vec::new());
        let range = point_chunk::decode(&bytes, &mut s, &mut v).unwrap();
        assert_eq!(s, steps);
        assert_eq!(bits(&v), bits(&values));
        assert_eq!(point_chunk::range(&bytes).unwrap(), range);
        point_chunk::decode_steps(&bytes, &mut s).unwrap();
        assert_eq!(s, steps);
        let summary = ChunkSummary::of(&steps, &values);
        assert_eq!(ChunkSummary::decode(&summary.encode()).unwrap(), summary);
    }
}

#[test]
fn time_chunks_round_trip_times_that_go_backwards() {
    let mut rng = SplitMix64(3);
    let mut scratch = Vec::new();
    for _ in 0..CASES {
        let n = count(&mut rng);
        let times = times(&mut rng, n);
        let values: Vec<f64> = (0..n).map(|_| value(&mut rng, 1.0)).collect();
        let mut bytes = Vec::new();
        time_chunk::encode(&times, &values, &mut scratch, &mut bytes);
        let (mut t, mut v) = (Vec::new(), Vec::new());
        assert_eq!(time_chunk::decode(&bytes, &mut t, &mut v).unwrap(), n);
        assert_eq!(t, times);
        assert_eq!(bits(&v), bits(&values));
    }
}

#[test]
fn a_dense_metric_costs_no_step_bytes() {
    let steps: Vec<u64> = (1000..9192).collect();
    let values = vec![0.25; steps.len()];
    let mut bytes = Vec::new();
    point_chunk::encode(&steps, &values, &mut Vec::new(), &mut bytes);
    // Tag, four header bytes, predictor, length, the first value, then one bit per repeat.
    assert!(bytes.len() < 8 + 8 + 3 + steps.len() / 8 + 2, "{} bytes", bytes.len());
}

#[test]
fn summaries_ignore_nan_but_keep_infinities() {
    let values = [f64::NAN, 2.0, f64::NEG_INFINITY, -0.0, f64::NAN, 7.0];
    let summary = ChunkSummary::of(&[1, 2, 3, 4, 5, 9], &values);
    assert_eq!((summary.count, summary.first_step, summary.last_step, summary.nan_count), (6, 1, 9, 2));
    assert_eq!((summary.min, summary.max, summary.last), (f64::NEG_INFINITY, 7.0, 7.0));
    assert!(summary.first.is_nan());
    let all_nan = ChunkSummary::of(&[4], &[f64::NAN]);
    assert!(all_nan.min.is_nan() && all_nan.max.is_nan());
    let mut flagged = summary.encode();
    flagged[63] = 1;
    assert!(ChunkSummary::decode(&flagged).is_err());
    assert!(ChunkSummary::decode(&summary.encode()[..63]).is_err());
    let mut empty = summary.encode();
    empty[..8].fill(0);
    assert!(ChunkSummary::decode(&empty).is_err());
}

/// Every prefix of a chunk is an error, and flipped bytes never panic.
fn damage_never_panics(bytes: &[u8], mut decode: impl FnMut(&[u8]) -> bool) {
    for cut in 0..bytes.len() {
        assert!(!decode(&bytes[..cut]), "a chunk cut at {cut} of {} decoded", bytes.len());
    }
    let mut rng = SplitMix64(bytes.len() as u64);
    for _ in 0..2000 {
        let mut flipped = bytes.to_vec();
        let at = (rng.next() % bytes.len() as u64) as usize;
        flipped[at] ^= 1 << (rng.next() % 8);
        let _ = decode(&flipped);
        let at = (rng.next() % bytes.len() as u64) as usize;
        flipped[at] = [0x00, 0x7F, 0x80, 0xFF][(rng.next() % 4) as usize];
        let _ = decode(&flipped);
    }
}

#[test]
fn damaged_chunks_are_errors_not_panics() {
    let steps: Vec<u64> = (0..300u64).map(|i| i * i).collect();
    let times: Vec<u64> = (0..300u64).map(|i| 1_795_741_387_000 + i * 37 % 101).collect();
    #[allow(clippy::cast_precision_loss)]
    let values: Vec<f64> = steps.iter().map(|&s| (s as f64).sin()).collect();
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    let mut rows = Vec::new();
    row_chunk::encode(&steps, &times, &mut Vec::new(), &mut rows);
    damage_never_panics(&rows, |bytes| row_chunk::decode(bytes, &mut a, &mut b).is_ok());
    damage_never_panics(&rows, |bytes| row_chunk::decode_steps(bytes, &mut a).is_ok());
    let mut points = Vec::new();
    point_chunk::encode(&steps, &values, &mut Vec::new(), &mut points);
    damage_never_panics(&points, |bytes| point_chunk::decode(bytes, &mut a, &mut c).is_ok());
    let mut samples = Vec::new();
    time_chunk::encode(&times, &values, &mut Vec::new(), &mut samples);
    damage_never_panics(&samples, |bytes| time_chunk::decode(bytes, &mut a, &mut c).is_ok());
}

#[test]
fn hostile_counts_are_refused_before_allocating() {
    // A point chunk claiming 2^40 points in a few bytes.
    let mut bytes = vec![3];
    super::put_varint(&mut bytes, 1 << 40);
    super::put_varint(&mut bytes, 0);
    super::put_varint(&mut bytes, 1 << 40);
    bytes.push(0);
    assert!(point_chunk::decode(&bytes, &mut Vec::new(), &mut Vec::new()).is_err());
    let mut bytes = vec![4];
    super::put_varint(&mut bytes, 1 << 40);
    assert!(time_chunk::decode(&bytes, &mut Vec::new(), &mut Vec::new()).is_err());
    // A row chunk whose chunk type is a point chunk's.
    let mut rows = Vec::new();
    row_chunk::encode(&[1], &[2], &mut Vec::new(), &mut rows);
    rows[0] = 3;
    assert!(row_chunk::decode(&rows, &mut Vec::new(), &mut Vec::new()).is_err());
}
