//! Time-indexed series (system metrics): stored against time beside the step history, read by
//! time range, untouched by rewinds, refused under the other kind's names.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use runstore::{Error, Resume};

use crate::support::{options, temp_store};

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_741_000 + seconds)
}

#[test]
fn samples_are_stored_by_time_and_read_back_by_time_range() {
    let t = temp_store();
    let mut run = t.store.init(options().id("s")).unwrap();
    for i in 0..3000u32 {
        run.log([("loss", f64::from(i))]).unwrap();
        if i % 10 == 0 {
            let cpu = f64::from(i % 97);
            run.log_system(at(u64::from(i)), [("system/cpu_percent", cpu), ("system/gpu0/power_w", 250.5)]).unwrap();
        }
    }
    run.finish(0).unwrap();
    let reader = t.store.open_run("s").unwrap();
    let cpu = reader.system("system/cpu_percent", ..).unwrap();
    assert_eq!(cpu.len(), 300);
    assert_eq!((cpu[0].0, cpu[299].0, cpu[299].1), (at(0), at(2990), f64::from(2990 % 97)));
    let window = reader.system("system/cpu_percent", at(100)..at(200)).unwrap();
    assert_eq!(
        window.iter().map(|(time, _)| *time).collect::<Vec<_>>(),
        (10..20).map(|i| at(i * 10)).collect::<Vec<_>>()
    );
    assert!(reader.system("system/unknown", ..).unwrap().is_empty());
    // The step history has no rows or points of theirs.
    let info = reader.info().unwrap();
    assert_eq!((info.rows, info.summary.contains_key("system/cpu_percent")), (3000, false));
    assert!(reader.history(..).unwrap().all(|row| row.unwrap().iter().all(|(name, _)| name == "loss")));
    assert!(t.store.check("s").unwrap().is_healthy());
}

#[test]
fn names_of_one_kind_are_refused_for_the_other() {
    let t = temp_store();
    let mut run = t.store.init(options().id("k")).unwrap();
    let error = run.log([("system/cpu_percent", 1.0)]).unwrap_err();
    assert!(matches!(error, Error::InvalidMetricName { .. }), "{error:?}");
    let error = run.log_system(at(0), [("cpu_percent", 1.0)]).unwrap_err();
    assert!(matches!(error, Error::InvalidMetricName { .. }), "{error:?}");
    assert_eq!(run.step(), 0, "nothing was taken");
    run.log_system(at(0), [("system/cpu_percent", 1.0)]).unwrap();
    assert!(run.log([("system/cpu_percent", 2.0)]).is_err(), "a known system name stays one");
    run.finish(0).unwrap();
    assert_eq!(t.store.open_run("k").unwrap().metrics().unwrap(), ["system/cpu_percent"]);
}

#[test]
fn a_rewind_leaves_samples_alone_and_a_resumed_run_appends_in_time_order() {
    let t = temp_store();
    let mut run = t.store.init(options().id("r")).unwrap();
    for i in 0..100u32 {
        run.log([("loss", f64::from(i))]).unwrap();
        run.log_system(at(u64::from(i)), [("system/memory_rss_mib", f64::from(i))]).unwrap();
    }
    drop(run);
    let mut run = t.store.init(options().id("r").resume(Resume::Must).resume_from(9)).unwrap();
    // A sample not after the series' last stored time is dropped (a retried commit stores
    // nothing twice).
    run.log_system(at(50), [("system/memory_rss_mib", -1.0)]).unwrap();
    run.log_system(at(200), [("system/memory_rss_mib", 200.0)]).unwrap();
    run.finish(0).unwrap();
    let reader = t.store.open_run("r").unwrap();
    assert_eq!(reader.info().unwrap().rows, 10);
    let samples = reader.system("system/memory_rss_mib", ..).unwrap();
    assert_eq!(samples.len(), 101);
    assert_eq!(samples[100], (at(200), 200.0));
    assert!(samples.iter().all(|(_, value)| *value >= 0.0));
    assert!(t.store.check("r").unwrap().is_healthy());
}
