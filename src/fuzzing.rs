//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`; not a public API).
//!
//! Every decoder of stored bytes is reachable here: the chunks of run format 2 (row, point and
//! time chunks, chunk summaries), the XOR value streams, the postcard records (progress,
//! attempt, branch, checkpoint), the journal's records, the JSON run record, the lock holder record, the `auto` pointer, and the
//! validation of run ids and metric names. Each function panics only when the code under test
//! is wrong: a decoder that accepts bytes must give results that agree with its siblings and
//! that re-encode to the same values; a validator must accept exactly what its rules allow.

use crate::format::journal::{self, EntryRef, JournalMark};
use crate::format::records::{AttemptRecord, BranchRecord, CheckpointRecord, Progress, RunRecord};
use crate::format::summary::ChunkSummary;
use crate::format::xor::{self, Predictor};
use crate::format::{point_chunk, row_chunk, time_chunk};

/// Decodes `data` as a row chunk (whole, steps only, range only), checks that the ways agree
/// and that the decoded rows re-encode to the same steps and times.
pub fn row_chunk(data: &[u8]) {
    let range = row_chunk::range(data);
    let (mut steps, mut times, mut only) = (Vec::new(), Vec::new(), Vec::new());
    let stepped = row_chunk::decode_steps(data, &mut only);
    let Ok(full) = row_chunk::decode(data, &mut steps, &mut times) else { return };
    assert_eq!(range, Ok(full));
    assert_eq!(stepped, Ok(full));
    assert_eq!(only, steps);
    assert_eq!((steps.len(), times.len()), (full.count, full.count));
    assert!(steps.windows(2).all(|pair| pair[0] < pair[1]));
    let mut bytes = Vec::new();
    row_chunk::encode(&steps, &times, &mut Vec::new(), &mut bytes);
    let (mut s, mut t) = (Vec::new(), Vec::new());
    row_chunk::decode(&bytes, &mut s, &mut t).expect("an encoded row chunk decodes");
    assert_eq!((s, t), (steps, times));
}

/// Decodes `data` as a point chunk, checks it against its range and steps-only decoding, and
/// that its points re-encode bit-exact; also decodes it as a chunk summary.
pub fn point_chunk(data: &[u8]) {
    if let Ok(summary) = ChunkSummary::decode(data) {
        assert_eq!(ChunkSummary::decode(&summary.encode()), Ok(summary));
    }
    let range = point_chunk::range(data);
    let (mut steps, mut values, mut only) = (Vec::new(), Vec::new(), Vec::new());
    let Ok(full) = point_chunk::decode(data, &mut steps, &mut values) else { return };
    assert_eq!(range, Ok(full));
    assert_eq!(point_chunk::decode_steps(data, &mut only), Ok(full));
    assert_eq!(only, steps);
    assert_eq!((steps.len(), values.len()), (full.count, full.count));
    let mut bytes = Vec::new();
    point_chunk::encode(&steps, &values, &mut Vec::new(), &mut bytes);
    let (mut s, mut v) = (Vec::new(), Vec::new());
    point_chunk::decode(&bytes, &mut s, &mut v).expect("an encoded point chunk decodes");
    let bits = |values: &[f64]| values.iter().map(|value| value.to_bits()).collect::<Vec<_>>();
    assert_eq!((s, bits(&v)), (steps.clone(), bits(&values)));
    let summary = ChunkSummary::of(&steps, &values);
    assert_eq!(ChunkSummary::decode(&summary.encode()), Ok(summary));
}

/// Decodes `data` as a time chunk and checks that its samples re-encode bit-exact.
pub fn time_chunk(data: &[u8]) {
    let (mut times, mut values) = (Vec::new(), Vec::new());
    let Ok(count) = time_chunk::decode(data, &mut times, &mut values) else { return };
    assert_eq!((times.len(), values.len()), (count, count));
    let mut bytes = Vec::new();
    time_chunk::encode(&times, &values, &mut Vec::new(), &mut bytes);
    let (mut t, mut v) = (Vec::new(), Vec::new());
    time_chunk::decode(&bytes, &mut t, &mut v).expect("an encoded time chunk decodes");
    let bits = |values: &[f64]| values.iter().map(|value| value.to_bits()).collect::<Vec<_>>();
    assert_eq!((t, bits(&v)), (times, bits(&values)));
}

/// Decodes `data` as a value stream of `count` values with either predictor, and checks that
/// re-encoding the values gives them back.
pub fn value_stream(data: &[u8]) {
    let Some((&head, stream)) = data.split_first() else { return };
    let predictor = if head & 1 == 0 { Predictor::Previous } else { Predictor::Linear };
    let count = usize::from(head >> 1) * 8 + 1;
    let mut values = Vec::new();
    if xor::decode(stream, count, predictor, &mut values).is_ok() {
        assert_eq!(values.len(), count);
        let mut bytes = Vec::new();
        xor::encode(&values, predictor, &mut bytes);
        let mut back = Vec::new();
        xor::decode(&bytes, count, predictor, &mut back).expect("an encoded stream decodes");
        let bits = |values: &[f64]| values.iter().map(|value| value.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&values));
    }
}

/// Decodes `data` as each postcard record and the JSON run record; whatever decodes must
/// re-encode to bytes that decode to the same record.
pub fn records(data: &[u8]) {
    if let Ok(progress) = Progress::decode(data) {
        assert_eq!(Progress::decode(&progress.encode()).map(|p| p.encode()), Ok(progress.encode()));
        let _ = crate::state::RunState::try_from(progress.state);
    }
    if let Ok(attempt) = AttemptRecord::decode(data) {
        assert_eq!(AttemptRecord::decode(&attempt.encode()), Ok(attempt));
    }
    if let Ok(branch) = BranchRecord::decode(data) {
        assert_eq!(BranchRecord::decode(&branch.encode()), Ok(branch));
    }
    if let Ok(checkpoint) = CheckpointRecord::decode(data) {
        assert_eq!(CheckpointRecord::decode(&checkpoint.encode()), Ok(checkpoint));
    }
    if let Ok(record) = RunRecord::decode(data) {
        let again = RunRecord::decode(&record.encode()).expect("an encoded run record decodes");
        assert_eq!(again.encode(), record.encode());
    }
}

/// Reads `data` as a journal whose chain starts at offset 0 in the epoch of its first 8 bytes;
/// whatever chain reads must end inside the bytes and re-encode to records that read back to
/// the same bytes.
pub fn journal(data: &[u8]) {
    let epoch = data.get(..8).and_then(|bytes| bytes.try_into().ok()).map_or(1, u64::from_le_bytes);
    let mark = JournalMark { epoch, offset: 0, seq: 0 };
    let _ = journal::read_chain(data, JournalMark { offset: 1, ..mark });
    let Ok((entries, end)) = journal::read_chain(data, mark) else { return };
    assert!(usize::try_from(end).is_ok_and(|end| end <= data.len()));
    let encode = |entries: &[journal::Entry]| {
        let mut bytes = Vec::new();
        for (seq, entry) in (0u64..).zip(entries) {
            journal::encode(&mut bytes, epoch, seq, &entry.as_ref());
        }
        bytes
    };
    let bytes = encode(&entries);
    let (again, again_end) = journal::read_chain(&bytes, mark).expect("an encoded journal reads");
    assert_eq!((again.len(), again_end), (entries.len(), bytes.len() as u64));
    assert_eq!(encode(&again), bytes);
}

/// Parses `data` as a lock file's holder record and formats it, as `RunLocked` errors do.
pub fn lock_holder(data: &[u8]) {
    if let Some(holder) = crate::lock::parse_holder(data) {
        let text = holder.to_string();
        assert!(!text.is_empty());
    }
}

/// Parses `data` as an `auto` pointer file; a pointer must name a valid run id.
pub fn auto_pointer(data: &[u8]) {
    if let Some(id) = crate::store::decode_pointer(data, None) {
        assert!(crate::validate_run_id(&id).is_ok());
    }
}

/// Validates `data` (as UTF-8, lossily) as a run id and as a metric name, and checks the
/// documented rules: ids are 1 to 64 bytes of `[A-Za-z0-9_.-]` not starting with `.`; metric
/// names are 1 to 256 bytes without control characters.
pub fn names(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let id_ok = !text.is_empty()
        && text.len() <= 64
        && !text.starts_with('.')
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    assert_eq!(crate::validate_run_id(&text).is_ok(), id_ok, "run id {text:?}");
    if id_ok {
        assert!(!text.contains('/') && text != "." && text != "..");
    }
    let name_ok = !text.is_empty() && text.len() <= 256 && !text.chars().any(char::is_control);
    assert_eq!(crate::validate_metric_name(&text).is_ok(), name_ok, "metric name {text:?}");
    if let Err(error) = crate::validate_metric_name(&text) {
        assert!(!error.to_string().is_empty());
    }
}

/// Seed inputs for each target, made with the encoders: `(target, bytes)`.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut seeds = Vec::new();
    let steps: Vec<u64> = (0..300u64).map(|i| if i > 200 { i * 3 } else { i }).collect();
    let times: Vec<u64> = (0..300u64).map(|i| 1_795_741_387_000 + i * 50 + i % 7).collect();
    #[allow(clippy::cast_precision_loss)]
    let values: Vec<f64> = steps.iter().map(|&s| if s % 7 == 0 { f64::NAN } else { 1.0 / (1.0 + s as f64) }).collect();
    for range in [0..1, 0..200, 0..300] {
        let mut bytes = Vec::new();
        row_chunk::encode(&steps[range.clone()], &times[range.clone()], &mut Vec::new(), &mut bytes);
        seeds.push(("row_chunk", bytes));
        let mut bytes = Vec::new();
        point_chunk::encode(&steps[range.clone()], &values[range.clone()], &mut Vec::new(), &mut bytes);
        seeds.push(("point_chunk", bytes));
        let summary = ChunkSummary::of(&steps[range.clone()], &values[range.clone()]);
        seeds.push(("point_chunk", summary.encode().to_vec()));
        let mut bytes = Vec::new();
        time_chunk::encode(&times[range.clone()], &values[range], &mut Vec::new(), &mut bytes);
        seeds.push(("time_chunk", bytes));
    }
    let values: Vec<f64> = (0..64).map(|i| f64::from(i).cos()).collect();
    for predictor in [Predictor::Previous, Predictor::Linear] {
        let mut bytes = vec![(7 << 1) | predictor as u8];
        xor::encode(&values, predictor, &mut bytes);
        seeds.push(("value_stream", bytes));
    }
    let progress = Progress {
        state: crate::format::records::StateTag(0),
        exit_code: Some(-3),
        next_step: 1201,
        last_step: Some(1200),
        rows: 1201,
        updated_at_ms: 1_795_741_387_000,
        summary: vec![(0, 0.25), (1, f64::NAN)],
        pinned: vec![(2, 0.9)],
    };
    seeds.push(("records", progress.encode()));
    let attempt = AttemptRecord {
        started_at_ms: 1,
        host: "node-7".into(),
        pid: 4242,
        first_step: 0,
        ended_at_ms: Some(9),
        last_step: Some(8),
        outcome: Some(crate::format::records::StateTag(3)),
        exit_code: None,
    };
    seeds.push(("records", attempt.encode()));
    let branch = BranchRecord {
        created_at_ms: 5,
        rewound_to: 1000,
        first_step: 1001,
        last_step: 1199,
        rows: 199,
        by_attempt: 2,
        attempts: vec![1, 2],
        checkpoints: vec![3],
        restarted: false,
    };
    seeds.push(("records", branch.encode()));
    let checkpoint = CheckpointRecord {
        step: 1200,
        path: b"ckpt/step-1200.pt".to_vec(),
        absolute: b"/home/me/train/ckpt/step-1200.pt".to_vec(),
        size: 1 << 20,
        time_ms: 1_795_741_387_000,
        attempt: 2,
        branch: None,
    };
    seeds.push(("records", checkpoint.encode()));
    seeds.push((
        "records",
        br#"{"id":"resnet-7","project":"vision","tags":["a"],"config":{"lr":0.0003},"created_at_ms":5}"#.to_vec(),
    ));
    let names: [Box<str>; 2] = ["loss".into(), "eval/acc".into()];
    let mut bytes = Vec::new();
    for step in 0..4u64 {
        #[allow(clippy::cast_precision_loss)]
        let points = [(0, step as f64), (1, f64::NAN)];
        let entry = EntryRef {
            step: 41 + step,
            time_ms: 1_795_741_387_000 + step,
            first_name: if step == 0 { 0 } else { 2 },
            names: if step == 0 { &names } else { &[] },
            sets: if step == 2 { &[(1, 0.5)] } else { &[] },
            points: &points[..usize::try_from(1 + step % 2).unwrap_or(1)],
            samples: if step == 3 { &[(2, 1_795_741_387_000, 93.5)] } else { &[] },
        };
        journal::encode(&mut bytes, 0x5EED_0000_0000_0001, step, &entry);
        seeds.push(("journal", bytes.clone()));
    }
    seeds.push(("lock_holder", br#"{"pid":4242,"host":"node-7","since":1795741387000}"#.to_vec()));
    seeds.push(("auto_pointer", br#"{"dir":"/home/me/train","run_id":"resnet-7"}"#.to_vec()));
    for name in ["resnet-7", "../etc", "eval/acc", ".hidden", "a\u{0}b", "ｒｕｎ"] {
        seeds.push(("names", name.as_bytes().to_vec()));
    }
    seeds
}

/// The entry point of the target named `name`.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    Some(match name {
        "row_chunk" => row_chunk,
        "point_chunk" => point_chunk,
        "time_chunk" => time_chunk,
        "value_stream" => value_stream,
        "records" => records,
        "lock_holder" => lock_holder,
        "auto_pointer" => auto_pointer,
        "names" => names,
        "journal" => journal,
        _ => return None,
    })
}

/// The names of every target.
pub const TARGETS: [&str; 9] = [
    "row_chunk",
    "point_chunk",
    "time_chunk",
    "value_stream",
    "records",
    "journal",
    "lock_holder",
    "auto_pointer",
    "names",
];

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{TARGETS, seeds, target};

    #[test]
    fn every_target_takes_its_seeds() {
        for (name, bytes) in seeds() {
            target(name).expect("a target")(&bytes);
        }
    }

    /// Writes the seed corpus to `fuzz/seeds/<target>/` (or `RUNSTORE_FUZZ_SEEDS`).
    /// Inputs on which a target once failed (`fuzz/regressions/<target>/`), kept fixed.
    #[test]
    fn every_target_passes_its_regressions() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
        let mut tried = 0;
        for name in TARGETS {
            let Ok(entries) = std::fs::read_dir(root.join(name)) else { continue };
            for entry in entries {
                let path = entry.expect("a regression file").path();
                target(name).expect("a target")(&std::fs::read(&path).expect("readable"));
                tried += 1;
            }
        }
        assert!(tried > 0, "no regression inputs under {}", root.display());
    }

    #[test]
    #[ignore = "writes files: run by fuzz/run.sh when the seeds are missing"]
    fn write_seed_corpus() {
        let root = std::env::var_os("RUNSTORE_FUZZ_SEEDS")
            .map_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds"), Into::into);
        for (n, (name, bytes)) in seeds().into_iter().enumerate() {
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).expect("seed directory");
            std::fs::write(dir.join(format!("seed-{n:02}")), bytes).expect("seed file");
        }
    }

    /// A small generator (xorshift64*): the stand-in fuzzer is deterministic.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
        }
    }

    /// One to eight random edits of `input`: bit flips, interesting bytes, insertions,
    /// deletions, duplications, truncation, and splices with another input.
    fn mutate(input: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
        let mut data = input.to_vec();
        for _ in 0..=rng.below(8) {
            let len = data.len();
            match rng.below(9) {
                0 if len > 0 => {
                    let at = rng.below(len);
                    data[at] ^= 1 << rng.below(8);
                }
                1 if len > 0 => {
                    let at = rng.below(len);
                    data[at] = [0, 1, 0x7F, 0x80, 0xFF, 0xFE][rng.below(6)];
                }
                2 => {
                    let at = rng.below(len + 1);
                    let bytes: Vec<u8> = (0..=rng.below(16)).map(|_| rng.next().to_le_bytes()[0]).collect();
                    data.splice(at..at, bytes);
                }
                3 if len > 0 => {
                    let at = rng.below(len);
                    let end = (at + 1 + rng.below(32)).min(len);
                    data.drain(at..end);
                }
                4 if len > 0 => {
                    let at = rng.below(len);
                    let end = (at + 1 + rng.below(64)).min(len);
                    let copy = data[at..end].to_vec();
                    let to = rng.below(len + 1);
                    data.splice(to..to, copy);
                }
                5 => data.truncate(rng.below(len + 1)),
                6 if !other.is_empty() => {
                    let cut = rng.below(len + 1);
                    let from = rng.below(other.len());
                    data.truncate(cut);
                    data.extend_from_slice(&other[from..]);
                }
                7 if len > 0 => {
                    // A varint-sized edit: the codec's lengths and counts are varints.
                    let at = rng.below(len);
                    let value = rng.next() >> rng.below(64);
                    let mut varint = Vec::new();
                    crate::format::put_varint(&mut varint, value);
                    let end = (at + varint.len()).min(len);
                    data.splice(at..end, varint);
                }
                _ => {
                    let at = rng.below(len + 1);
                    data.splice(at..at, rng.next().to_le_bytes());
                }
            }
        }
        data
    }

    /// A stable stand-in for `cargo fuzz` (no coverage feedback): random edits of the seeds for
    /// `RUNSTORE_FUZZ_SECONDS` (10) seconds per target, or only `RUNSTORE_FUZZ_TARGET`.
    #[test]
    #[ignore = "long: run by fuzz/run.sh --stable"]
    fn stable_fuzz() {
        let seconds = std::env::var("RUNSTORE_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
        let only = std::env::var("RUNSTORE_FUZZ_TARGET").ok();
        let all = seeds();
        let mut total = 0u64;
        for name in TARGETS.iter().filter(|name| only.as_deref().is_none_or(|only| only == **name)) {
            let run = target(name).expect("a target");
            let mut corpus: Vec<Vec<u8>> =
                all.iter().filter(|(n, _)| n == name).map(|(_, bytes)| bytes.clone()).collect();
            corpus.extend(all.iter().filter(|(n, _)| n != name).map(|(_, bytes)| bytes.clone()).take(4));
            corpus.push(Vec::new());
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
            let deadline = Instant::now() + Duration::from_secs(seconds);
            let mut executions = 0u64;
            while Instant::now() < deadline {
                for _ in 0..512 {
                    let input = &corpus[rng.below(corpus.len())];
                    let other = &corpus[rng.below(corpus.len())];
                    run(&mutate(input, other, &mut rng));
                    executions += 1;
                }
            }
            println!("stable fuzz {name}: {executions} executions in {seconds} s, no panic");
            total += executions;
        }
        println!("stable fuzz: {total} executions");
    }
}
