//! What goes in comes out: values bit-exact, rows merged at the last step, streaming ranges.

use std::time::Duration;

use runstore::Resume;

use crate::support::{bits, options, row, temp_store, value};

#[test]
fn special_values_come_back_bit_exact() {
    let t = temp_store();
    let specials = [
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7FF0_0000_DEAD_BEEF),
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        5e-324,
        f64::MAX,
        f64::MIN_POSITIVE,
    ];
    let mut run = t.store.init(options().id("s")).unwrap();
    for (i, &v) in specials.iter().enumerate() {
        run.log([("x", v), ("y", specials[specials.len() - 1 - i])]).unwrap();
    }
    run.finish(0).unwrap();
    let reader = t.store.open_run("s").unwrap();
    let xs: Vec<u64> = reader.series("x", ..).unwrap().map(|p| bits(p.unwrap().1)).collect();
    assert_eq!(xs, specials.map(bits));
    let ys: Vec<u64> = reader.history(..).unwrap().map(|r| bits(r.unwrap().get("y").unwrap())).collect();
    assert_eq!(ys, specials.iter().rev().copied().map(bits).collect::<Vec<_>>());
    assert_eq!(bits(reader.info().unwrap().summary["x"]), bits(f64::MIN_POSITIVE));
}

#[test]
fn logging_at_the_last_step_merges_into_its_row_even_after_a_flush() {
    let t = temp_store();
    let mut run = t.store.init(options().id("m")).unwrap();
    run.log_at(7, [("loss", 1.0)]).unwrap();
    run.log_at(7, [("acc", 0.5)]).unwrap();
    run.flush().unwrap();
    run.log_at(7, [("eval/acc", 0.25), ("loss", 0.75)]).unwrap();
    run.log_at(9, [("loss", 0.5)]).unwrap();
    run.finish(0).unwrap();
    let reader = t.store.open_run("m").unwrap();
    let rows: Vec<_> = reader.history(..).unwrap().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].step(), 7);
    assert_eq!((rows[0].get("loss"), rows[0].get("acc"), rows[0].get("eval/acc")), (Some(0.75), Some(0.5), Some(0.25)));
    assert_eq!(rows[1].step(), 9);
    let info = reader.info().unwrap();
    assert_eq!((info.rows, info.next_step, info.last_step), (2, 10, Some(9)));
}

#[test]
fn history_and_series_stream_step_ranges_across_many_blocks() {
    let t = temp_store();
    let mut run = t.store.init(options().id("big").flush_every(3000, Duration::from_secs(3600))).unwrap();
    let steps: Vec<u64> = (0..20_000u64).map(|i| i * 2 + u64::from(i > 10_000) * 5).collect();
    for &step in &steps {
        run.log_at(step, row(step)).unwrap();
        if step % 100 == 0 {
            run.log_at(step, [("eval/acc", value(step, 1))]).unwrap();
        }
    }
    run.finish(0).unwrap();
    let reader = t.store.open_run("big").unwrap();

    let mut history = reader.history(..).unwrap();
    let mut n = 0;
    while let Some(r) = history.next_row().unwrap() {
        assert_eq!(r.step(), steps[n]);
        assert_eq!(bits(r.get("grad_norm").unwrap()), bits(value(steps[n], 3)));
        assert_eq!(r.get("eval/acc").is_some(), steps[n].is_multiple_of(100));
        n += 1;
    }
    assert_eq!(n, steps.len());

    let window: Vec<u64> = reader.history(9_001..=12_345).unwrap().map(|r| r.unwrap().step()).collect();
    let expected: Vec<u64> = steps.iter().copied().filter(|s| (9_001..=12_345).contains(s)).collect();
    assert_eq!(window, expected);
    assert_eq!(reader.history(40_000..).unwrap().map(|r| r.unwrap().step()).collect::<Vec<_>>(), [40_001, 40_003]);
    assert!(reader.history(40_004..).unwrap().next().is_none());

    let evals: Vec<(u64, f64)> = reader.series("eval/acc", 5_000..).unwrap().map(Result::unwrap).collect();
    let expected: Vec<u64> = steps.iter().copied().filter(|s| *s >= 5_000 && s % 100 == 0).collect();
    assert_eq!(evals.iter().map(|p| p.0).collect::<Vec<_>>(), expected);
    assert!(reader.series("no-such-metric", ..).unwrap().next().is_none());
    assert_eq!(reader.metrics().unwrap(), ["loss", "acc", "lr", "grad_norm", "eval/acc"]);
}

#[test]
fn many_small_flushes_and_a_resume_continue_one_history() {
    let t = temp_store();
    let mut run = t.store.init(options().id("r").resume(Resume::Allow)).unwrap();
    for _ in 0..300 {
        run.log(row(run.step())).unwrap();
        run.flush().unwrap();
    }
    drop(run);
    let mut run = t.store.init(options().id("r").resume(Resume::Allow)).unwrap();
    assert_eq!(run.step(), 300);
    for _ in 0..300 {
        run.log(row(run.step())).unwrap();
    }
    run.set_summary("best_loss", 0.125).unwrap();
    run.finish(0).unwrap();
    let reader = t.store.open_run("r").unwrap();
    let steps: Vec<u64> = reader.series("acc", ..).unwrap().map(|p| p.unwrap().0).collect();
    assert_eq!(steps, (0..600).collect::<Vec<_>>());
    let summary = reader.info().unwrap().summary;
    assert_eq!(summary["best_loss"], 0.125);
    assert_eq!(bits(summary["loss"]), bits(value(599, 0)));
}

#[test]
fn a_dropped_run_is_flushed_and_recorded_as_failed() {
    let t = temp_store();
    let mut run = t.store.init(options().id("d")).unwrap();
    run.log(row(0)).unwrap();
    drop(run);
    let info = t.store.open_run("d").unwrap().info().unwrap();
    assert_eq!(info.state, runstore::RunState::Failed);
    assert_eq!(info.rows, 1);
}
