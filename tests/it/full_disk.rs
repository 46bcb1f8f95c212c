//! A full disk: on a small size-limited file system (tmpfs with `size=`, else a loop-mounted
//! ext4 image; skipped with a printed reason where neither can be mounted), logging goes on
//! until a flush fails with an error; the rows that could not be written stay buffered, and once
//! space is freed the same run flushes them: every logged row is there, and the store is healthy.
//! With `Durability::EveryLog` the journal, zeroed in advance, keeps taking durable rows on the
//! full disk: a writer killed there loses none of them.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use runstore::{Error, Resume};

use crate::support::{bits, options, row, value};

/// A small file system mounted for the test, unmounted when dropped.
struct SmallDisk {
    _dir: tempfile::TempDir,
    mount: PathBuf,
    how: String,
}

impl SmallDisk {
    fn new() -> Result<SmallDisk, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).map_err(|e| e.to_string())?;
        let tmpfs = Command::new("mount").args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"]).arg(&mount).output();
        if tmpfs.as_ref().is_ok_and(|o| o.status.success()) {
            return Ok(SmallDisk { _dir: dir, mount, how: "tmpfs, 2 MiB".into() });
        }
        let image = dir.path().join("disk.img");
        let made = File::create(&image).and_then(|f| f.set_len(4 << 20)).is_ok()
            && Command::new("mkfs.ext4").arg("-q").arg(&image).output().is_ok_and(|o| o.status.success());
        let looped = made
            && Command::new("mount")
                .args(["-o", "loop"])
                .arg(&image)
                .arg(&mount)
                .output()
                .is_ok_and(|o| o.status.success());
        if looped {
            return Ok(SmallDisk { _dir: dir, mount, how: "a loop-mounted ext4 image, 4 MiB".into() });
        }
        Err(format!(
            "cannot mount a small file system here (tmpfs: {:?}; loop ext4: {})",
            tmpfs.map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string()),
            if made { "mount -o loop failed" } else { "mkfs.ext4 failed" }
        ))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.mount).output();
        if !unmounted.is_ok_and(|o| o.status.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.mount).output();
        }
    }
}

/// Fills the file system at `dir` with `filler` until it is full, then frees `leave` bytes.
fn fill(filler: &Path, leave: u64) -> u64 {
    let mut file = File::create(filler).unwrap();
    let chunk = vec![0x5A; 16 << 10];
    let mut written = 0u64;
    while file.write_all(&chunk).is_ok() {
        written += chunk.len() as u64;
    }
    let _ = file.sync_all();
    let kept = written.saturating_sub(leave);
    file.set_len(kept).unwrap();
    file.sync_all().unwrap();
    kept
}

fn is_disk_full(error: &Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut text = String::new();
    while let Some(error) = source {
        text += &error.to_string();
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::StorageFull
        {
            return true;
        }
        source = error.source();
    }
    text.contains("No space left on device")
}

#[test]
fn logging_until_the_disk_is_full_fails_cleanly_and_keeps_every_flushed_row() {
    let disk = match SmallDisk::new() {
        Ok(disk) => disk,
        Err(reason) => {
            eprintln!("SKIPPED logging_until_the_disk_is_full_fails_cleanly_and_keeps_every_flushed_row: {reason}");
            return;
        }
    };
    let store_dir = disk.mount.join("store");
    let store = runstore::Store::open(&store_dir).unwrap();
    // A run that exists before the disk fills.
    let mut run = store.init(options().id("full").resume(Resume::Allow)).unwrap();
    run.log(row(0)).unwrap();
    run.flush().unwrap();
    let filler = disk.mount.join("filler");
    fill(&filler, 192 << 10);

    let mut acknowledged = 0u64;
    let failure = loop {
        let step = run.step();
        assert!(step < 2_000_000, "the disk never filled up");
        // Values that compress badly, so that the file grows fast.
        let noisy: Vec<(String, f64)> = (0..8)
            .map(|m| {
                (
                    format!("m{m}"),
                    f64::from_bits(0x3FF0_0000_0000_0000 | (step.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (12 + m))),
                )
            })
            .collect();
        match run.log(row(step).into_iter().map(|(k, v)| (k.to_string(), v)).chain(noisy)) {
            Ok(()) => {}
            Err(error) => break error,
        }
        if (step + 1).is_multiple_of(200) {
            match run.flush() {
                Ok(()) => acknowledged = step,
                Err(error) => break error,
            }
        }
    };
    assert!(
        matches!(failure, Error::Storage { .. } | Error::Io { .. }) && is_disk_full(&failure),
        "a full disk is a storage or I/O error saying so: {failure:?}"
    );
    assert!(failure.to_string().contains(&store_dir.display().to_string()), "it names the file: {failure}");
    assert!(acknowledged > 0, "some rows were flushed before the disk filled");
    let logged = run.step();
    // Flushing again while the disk is still full fails again, with an error.
    assert!(run.flush().is_err(), "the disk is still full");
    // A new run on the full disk: an error, and no half-created run.
    let new = store.init(options().id("new-on-full").resume(Resume::Allow));
    assert!(matches!(new, Err(Error::Storage { .. } | Error::Io { .. })), "{new:?}");
    assert!(!store.run_ids().unwrap().contains(&"new-on-full".to_string()));
    // Reading while still full: the rows, or a typed error (recovery may need space).
    if let Ok(reader) = store.open_run("full") {
        let _ = reader.info();
    }

    std::fs::remove_file(&filler).unwrap();
    // The same run writes again once there is room: the buffered rows reach the disk.
    run.flush().expect("a flush succeeds once space is freed");
    run.finish(0).expect("the run finishes");
    let reader = store.open_run("full").expect("the run opens once space is freed");
    let info = reader.info().unwrap();
    let mut step = 0u64;
    for stored in reader.history(..).unwrap() {
        let stored = stored.unwrap();
        assert_eq!(stored.step(), step, "a contiguous prefix");
        for (m, name) in crate::support::METRICS.iter().enumerate() {
            assert_eq!(stored.get(name).map(bits), Some(bits(value(step, m))), "step {step} {name}");
        }
        step += 1;
    }
    assert!(step > acknowledged, "every flushed row is there: stored {step} rows, flushed up to step {acknowledged}");
    assert_eq!(step, logged, "the rows buffered while the disk was full were written once it was not");
    assert_eq!((info.rows, info.next_step), (step, step));
    let check = store.check("full").unwrap();
    assert!(check.is_healthy(), "{check:?}");
    drop(reader);
    let mut run = store.init(options().id("full").resume(Resume::Allow)).expect("the run resumes");
    assert_eq!(run.step(), step, "at the step after the last stored row");
    run.log(row(step)).unwrap();
    run.finish(0).unwrap();
    let created =
        store.init(options().id("new-on-full").resume(Resume::Allow)).expect("a new run, now that there is room");
    created.finish(0).unwrap();
    assert!(store.check_all().unwrap().is_healthy());
    eprintln!("full disk ({}): flushes failed after step {acknowledged}; {step} rows kept", disk.how);
}

#[test]
fn with_every_log_a_full_disk_does_not_stop_durable_rows_while_the_journal_has_room() {
    let disk = match SmallDisk::new() {
        Ok(disk) => disk,
        Err(reason) => {
            eprintln!(
                "SKIPPED with_every_log_a_full_disk_does_not_stop_durable_rows_while_the_journal_has_room: {reason}"
            );
            return;
        }
    };
    let store_dir = disk.mount.join("store");
    // A child logging durably, its journal zeroed in advance; the flusher tries to fold it
    // into the database every second.
    let mut command = crate::support::child("writer", &store_dir);
    command.env("RUNSTORE_RUN_ID", "d").env("RUNSTORE_RESUME", "allow").env("TEST_END", "forever");
    command.env("TEST_DURABLE", "1").env("TEST_PAUSE_US", "200");
    let mut process = command.spawn().expect("spawn");
    let mut reports = crate::support::Reports::of(&mut process);
    let mut logged = |at_least: u64| loop {
        let report = reports.next().expect("the child logs on");
        if let Some(step) = report.strip_prefix("logged ").and_then(|step| step.parse::<u64>().ok())
            && step >= at_least
        {
            return step;
        }
    };
    let before = logged(100);
    let filler = disk.mount.join("filler");
    fill(&filler, 0);
    // Long enough for folds to be tried, and to fail, on the full disk.
    let acknowledged = logged(before + 6_000);
    let probe = std::fs::write(disk.mount.join("probe"), vec![0u8; 64 << 10]);
    assert!(probe.is_err(), "the disk was full while the rows were acknowledged");
    process.kill().expect("SIGKILL");
    process.wait().expect("wait");

    std::fs::remove_file(&filler).expect("free the space");
    let store = runstore::Store::open(&store_dir).expect("store");
    let reader = store.open_run("d").expect("the run opens once space is freed");
    let mut step = 0u64;
    for stored in reader.history(..).expect("history") {
        let stored = stored.expect("row");
        assert_eq!(stored.step(), step, "a contiguous prefix");
        assert_eq!(stored.get("loss").map(bits), Some(bits(value(step, 0))), "step {step}");
        step += 1;
    }
    assert!(
        step > acknowledged,
        "every row acknowledged on the full disk is there: {step} rows, {acknowledged} acknowledged"
    );
    assert!(store.check("d").expect("check").is_healthy());
    eprintln!("full disk ({}): {} durable rows acknowledged while it was full", disk.how, acknowledged - before);
}
