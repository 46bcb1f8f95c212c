//! Another process reads a run while it is written.

use std::time::{Duration, Instant};

use runstore::RunState;

use crate::support::{Reports, bits, child, temp_store, value};

#[test]
fn a_reader_follows_a_live_writer_and_sees_flushed_rows() {
    let t = temp_store();
    let mut command = child("writer", &t.path);
    command
        .env("RUNSTORE_RUN_ID", "live")
        .env("RUNSTORE_RESUME", "allow")
        .env("TEST_ROWS", "4000")
        .env("TEST_FLUSH_EVERY", "100")
        .env("TEST_PAUSE_US", "300")
        .env("TEST_END", "finish:0");
    let mut process = command.spawn().expect("spawn");
    let mut reports = Reports::of(&mut process);
    reports.expect("flushed");

    let reader = t.store.open_run("live").expect("open while the writer runs");
    let mut counts_while_running = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = reader.state().unwrap();
        // Read the rows the writer has flushed so far: a prefix, bit-exact.
        let mut rows = 0u64;
        for point in reader.series("loss", ..).unwrap() {
            let (step, loss) = point.unwrap();
            assert_eq!(step, rows);
            assert_eq!(bits(loss), bits(value(step, 0)));
            rows += 1;
        }
        if state == RunState::Running {
            if counts_while_running.last() != Some(&rows) {
                counts_while_running.push(rows);
            }
        } else {
            assert_eq!(state, RunState::Finished);
            break;
        }
        assert!(Instant::now() < deadline, "the writer did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    while reports.next().is_some() {}
    assert!(process.wait().unwrap().success());

    assert!(counts_while_running.len() >= 3, "saw the history grow while it was written: {counts_while_running:?}");
    assert!(counts_while_running.windows(2).all(|w| w[0] < w[1]));
    let info = reader.info().unwrap();
    assert_eq!((info.rows, info.next_step), (4000, 4000));
}
