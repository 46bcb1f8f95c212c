//! The format-2 fixture: `tests/fixtures/format-2/` is a small store written by a format-2 build,
//! committed to the repository; every later build must open it and read it whole, forever.
//!
//! It holds a run with three attempts, a rewind (one archived branch), a sparse metric and
//! checkpoints (one archived by the rewind) and system samples; a fork of it; a wide run (64 metrics); NaN, infinities and a signed zero; a queue of three
//! items. `write_format_2_fixture` made it (ignored: run it only to add to the fixture while
//! format 2 is unreleased, never to change what it holds):
//!
//! ```text
//! cargo test -p runstore --test it fixture::write_format_2_fixture -- --ignored
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use runstore::{Resume, RunOptions, RunState, Store};

use crate::support::bits;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-2")
}

/// The fixture's values: defined here, not shared, so that changing other tests' data never
/// changes what this test expects of the stored bytes.
fn value(step: u64, metric: usize) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let x = step as f64;
    match (step, metric) {
        (77, 0) => f64::INFINITY,
        (78, 0) => f64::NEG_INFINITY,
        (100, 1) => -0.0,
        (s, 1) if s % 50 == 0 => f64::NAN,
        (_, 0) => 2.0 / (1.0 + 0.01 * x),
        (_, 1) => 0.5 + 0.4 * (x / 17.0).sin(),
        _ => 1e-3 * x,
    }
}

/// The values of the third attempt, after the rewind to 350: other than the archived ones.
fn rewritten(step: u64) -> f64 {
    value(step, 0) + 1000.0
}

/// When the fixture's system samples were taken (fixed: they are compared exactly).
fn sample_time(step: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_795_000_000_000 + step * 1000)
}

fn options(id: &str) -> RunOptions {
    RunOptions::new().ignore_environment().id(id)
}

#[test]
#[ignore = "writes the fixture: run by hand only (see the module's documentation)"]
fn write_format_2_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = Store::open(&path).unwrap();

    let checkpoint = |step: u64| {
        let path = dir.path().join(format!("ckpt-{step}.pt"));
        std::fs::write(&path, vec![7u8; usize::try_from(step).unwrap()]).unwrap();
        path
    };
    let mut run = store.init(options("base").resume(Resume::Never)).unwrap();
    for step in 0..300 {
        run.log([("loss", value(step, 0)), ("acc", value(step, 1))]).unwrap();
        if step % 30 == 0 {
            run.log_system(sample_time(step), [("system/cpu_percent", value(step, 1) * 100.0)]).unwrap();
        }
    }
    run.checkpoint(checkpoint(299)).unwrap();
    run.finish(0).unwrap();
    let mut run = store.init(options("base").resume(Resume::Must)).unwrap();
    for step in 300..400 {
        run.log([("loss", value(step, 0)), ("acc", value(step, 1))]).unwrap();
        if step % 50 == 0 {
            run.log_at(step, [("eval/acc", value(step, 2))]).unwrap();
        }
        if step % 50 == 49 {
            run.checkpoint(checkpoint(step)).unwrap();
        }
    }
    run.finish(0).unwrap();
    store.rewind("base", 350).unwrap().expect("a branch");
    let mut run = store.init(options("base").resume(Resume::Must)).unwrap();
    for step in 351..=360 {
        run.log([("loss", rewritten(step))]).unwrap();
    }
    run.finish(0).unwrap();

    let mut fork = store.fork("base", 200, options("base-fork")).unwrap();
    for step in 201..=220 {
        fork.log([("loss", rewritten(step))]).unwrap();
    }
    fork.finish(0).unwrap();

    let mut wide = store.init(options("wide")).unwrap();
    let names: Vec<String> = (0..64).map(|i| format!("layer{i:02}/grad_norm")).collect();
    for step in 0..20u64 {
        #[allow(clippy::cast_precision_loss)]
        wide.log(names.iter().enumerate().map(|(i, name)| (name.as_str(), step as f64 * 0.5 + i as f64))).unwrap();
    }
    wide.finish(0).unwrap();

    let queue = store.queue("sweep").unwrap();
    for lr in [1e-3, 3e-4, 1e-4] {
        queue.push(None, serde_json::json!({ "lr": lr })).unwrap();
    }

    let target = fixture();
    if target.exists() {
        std::fs::remove_dir_all(&target).unwrap();
    }
    copy_dir(&path, &target);
}

/// Copies a directory tree.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn steps_and_loss(store: &Store, id: &str) -> Vec<(u64, u64)> {
    let history = store.open_run(id).unwrap().history(..).unwrap();
    history.map(|row| row.unwrap()).map(|row| (row.step(), bits(row.get("loss").unwrap()))).collect()
}

#[test]
fn the_format_2_fixture_opens_and_reads_forever() {
    // A copy: reading must not depend on writing to the committed files.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    copy_dir(&fixture(), &path);
    let store = Store::open(&path).unwrap();
    // 2026-12-01, before the fixture was written; and no row is from the future.
    let written_after = UNIX_EPOCH + Duration::from_secs(1_795_000_000);

    let base = store.open_run("base").unwrap();
    let info = base.info().unwrap();
    assert_eq!((info.state, info.rows, info.last_step, info.next_step), (RunState::Finished, 361, Some(360), 361));
    assert_eq!(base.attempts().unwrap().len(), 3);
    let branches = base.branches().unwrap();
    assert_eq!(branches.len(), 1);
    assert_eq!((branches[0].rewound_to, branches[0].first_step, branches[0].last_step), (350, 351, 399));
    let expected: Vec<(u64, u64)> =
        (0..=350).map(|s| (s, bits(value(s, 0)))).chain((351..=360).map(|s| (s, bits(rewritten(s))))).collect();
    assert_eq!(steps_and_loss(&store, "base"), expected);
    for row in base.history(..).unwrap() {
        let row = row.unwrap();
        assert!(row.time() > written_after && row.time() <= SystemTime::now(), "step {}", row.step());
        let acc = row.get("acc").map(bits);
        let expected = (row.step() <= 350).then(|| bits(value(row.step(), 1)));
        assert_eq!(acc, expected, "acc at step {}", row.step());
    }
    let eval: Vec<(u64, u64)> =
        base.series("eval/acc", ..).unwrap().map(|p| p.unwrap()).map(|(s, v)| (s, bits(v))).collect();
    assert_eq!(eval, [300, 350].map(|s| (s, bits(value(s, 2)))));
    let archived: Vec<u64> = base.branch_series(0, "loss", ..).unwrap().map(|p| bits(p.unwrap().1)).collect();
    assert_eq!(archived, (351..400).map(|s| bits(value(s, 0))).collect::<Vec<_>>());
    let samples = base.system("system/cpu_percent", ..).unwrap();
    let expected: Vec<(SystemTime, u64)> =
        (0..300).step_by(30).map(|s| (sample_time(s), bits(value(s, 1) * 100.0))).collect();
    assert_eq!(samples.into_iter().map(|(time, v)| (time, bits(v))).collect::<Vec<_>>(), expected);
    let checkpoints = base.checkpoints().unwrap();
    let summary: Vec<(u32, u64, u64, u32, Option<u32>)> =
        checkpoints.iter().map(|c| (c.number, c.step, c.size, c.attempt, c.branch)).collect();
    assert_eq!(summary, [(0, 299, 299, 1, None), (1, 349, 349, 2, None), (2, 399, 399, 2, Some(0))]);
    assert!(checkpoints.iter().all(|c| c.path.ends_with(format!("ckpt-{}.pt", c.step))));
    assert_eq!(branches[0].checkpoints, [2]);
    assert!(store.check("base").unwrap().is_healthy());

    let fork: Vec<(u64, u64)> =
        (0..=200).map(|s| (s, bits(value(s, 0)))).chain((201..=220).map(|s| (s, bits(rewritten(s))))).collect();
    assert_eq!(steps_and_loss(&store, "base-fork"), fork);
    assert!(store.check("base-fork").unwrap().is_healthy());

    let wide = store.open_run("wide").unwrap();
    let rows: Vec<_> = wide.history(..).unwrap().map(|row| row.unwrap()).collect();
    assert_eq!(rows.len(), 20);
    assert!(rows.iter().all(|row| row.iter().count() == 64));
    assert_eq!(rows[19].get("layer63/grad_norm"), Some(9.5 + 63.0));
    assert!(store.check("wide").unwrap().is_healthy());

    let items = store.queue("sweep").unwrap().items().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[1].config["lr"], serde_json::json!(3e-4));
}
