//! A table of hostile input through the library and the command line: run ids with `/`, `..`,
//! NUL, newlines, 10 000 characters and unicode look-alikes; metric names empty or huge; NaN and
//! infinities everywhere; steps near `u64::MAX`; configs that are not JSON objects; a store
//! directory that is a file, read-only, or not ours to read. Each gets a typed error or a
//! documented behaviour, never a panic, and nothing on disk changes unless the input was valid.

use std::sync::atomic::{AtomicU64, Ordering};

use runstore::{Error, Resume};

use crate::support::{hostile_ids, options, snapshot, temp_store};

/// Inputs tried, for the README's figures (printed by each test).
static TRIED: AtomicU64 = AtomicU64::new(0);

fn tried(n: u64) {
    TRIED.fetch_add(n, Ordering::Relaxed);
}

#[test]
fn hostile_run_ids_are_refused_by_every_library_entry_point_and_nothing_changes() {
    let t = temp_store();
    let mut base = t.store.init(options().id("base")).unwrap();
    for _ in 0..50 {
        base.log(crate::support::row(base.step())).unwrap();
    }
    base.finish(0).unwrap();
    let before = snapshot(&t.path);
    let policies = [None, Some(Resume::Allow), Some(Resume::Must), Some(Resume::Never), Some(Resume::Auto)];
    let mut inputs = 0;
    for id in hostile_ids() {
        let refused = |result: Result<(), Error>, what: &str| match result {
            Err(Error::InvalidRunId { id: ref got, reason }) => {
                assert_eq!(got, &id, "{what}: the error names the id as given");
                assert!(!reason.is_empty());
            }
            other => panic!("{what} with id {id:?}: expected InvalidRunId, got {other:?}"),
        };
        for policy in policies {
            let mut opts = options().id(id.as_str());
            if let Some(policy) = policy {
                opts = opts.resume(policy);
            }
            refused(t.store.init(opts).map(drop), "init");
        }
        refused(t.store.open_run(&id).map(drop), "open_run");
        refused(t.store.exists(&id).map(drop), "exists");
        refused(t.store.rewind(&id, 0).map(drop), "rewind");
        refused(t.store.fork("base", 10, options().id(id.as_str())).map(drop), "fork to");
        refused(t.store.check(&id).map(drop), "check");
        refused(runstore::validate_run_id(&id), "validate_run_id");
        match t.store.fork(&id, 10, options().id("fork")) {
            Err(Error::InvalidRunId { .. }) => {}
            other => panic!("fork from {id:?}: {other:?}"),
        }
        inputs += policies.len() + 8;
    }
    assert_eq!(snapshot(&t.path), before, "nothing on disk changed");
    tried(inputs as u64);
    eprintln!("hostile input: {inputs} library calls with hostile run ids");
}

/// Config numbers are kept bit-exact through the run record's JSON, however many times a resume
/// reads and writes it again (the record's JSON is parsed with `serde_json`'s `float_roundtrip`:
/// libFuzzer found a record whose number moved by a unit in the last place at each rewrite
/// without it; that input is in `fuzz/regressions/records/`).
#[test]
fn config_numbers_survive_every_resume_bit_exact() {
    let t = temp_store();
    let numbers = [
        2_222_222_222_222_444.8,
        0.1 + 0.2,
        1.0 / 3.0,
        5e-324,
        2.225_073_858_507_201_4e-308,
        f64::MAX,
        9_007_199_254_740_993.0,
    ];
    // The number libFuzzer found, as JSON text (as `RUNSTORE_CONFIG` or `runstore sweep` give
    // it): the nearest double is 2222222222222445 exactly, and it must stay that.
    let found: serde_json::Value = serde_json::from_str(r#"{"lr": 2222222222222445.0003}"#).unwrap();
    let mut config = serde_json::json!({ "values": numbers });
    config["found"] = found;
    t.store.init(options().id("cfg").config(config)).unwrap().finish(0).unwrap();
    for attempt in 0..3 {
        let mut run = t.store.init(options().id("cfg").resume(Resume::Must)).unwrap();
        run.update_config(serde_json::json!({ "attempt": attempt })).unwrap();
        run.finish(0).unwrap();
        let stored = t.store.open_run("cfg").unwrap().info().unwrap().config;
        let got: Vec<u64> =
            stored["values"].as_array().unwrap().iter().map(|value| value.as_f64().unwrap().to_bits()).collect();
        let want: Vec<u64> = numbers.iter().map(|value| value.to_bits()).collect();
        assert_eq!(got, want, "after resume {attempt}");
        let found = stored["found"]["lr"].as_f64().unwrap();
        assert_eq!(found.to_bits(), 2_222_222_222_222_445.0f64.to_bits(), "after resume {attempt}: {found}");
    }
}
