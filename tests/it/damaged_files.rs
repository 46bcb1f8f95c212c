//! Damaged files: run databases truncated, zeroed and bit-flipped, lock files full of garbage,
//! a run directory without its database, a damaged store marker and `auto` pointer. A damaged
//! run gives a clear error naming its file — never a panic, even where redb itself panics on
//! the bytes — the rest of the store stays readable, and `Store::check` / `runstore check`
//! report what is wrong. A damaged file that still reads must read back intact, or `check` must
//! say it is damaged: nothing is silently wrong.

use std::fs::File;

use runstore::{Error, Resume, RunState};

use crate::damage::{damaged_store, damages, digest};
use crate::support::{options, row, temp_store};

/// What became of one damaged file.
#[derive(Debug, Default)]
struct Sweep {
    files: usize,
    errors: usize,
    engine_panics_caught: usize,
    intact: usize,
    changed_but_flagged: usize,
    check_flagged: usize,
    writer_errors: usize,
}

fn sweep(count: usize) -> Sweep {
    let (t, path) = damaged_store();
    let original = std::fs::read(&path).unwrap();
    let good = digest(&t.store, "victim").unwrap();
    let others = (digest(&t.store, "healthy").unwrap(), digest(&t.store, "fork").unwrap());
    let mut result = Sweep::default();
    for (n, (damage, bytes)) in damages(&original, count).into_iter().enumerate() {
        std::fs::write(&path, &bytes).unwrap();
        result.files += 1;
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| digest(&t.store, "victim")))
            .unwrap_or_else(|_| panic!("{damage}: a panic escaped the library"));
        let check = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.store.check("victim")))
            .unwrap_or_else(|_| panic!("{damage}: a panic escaped check"))
            .unwrap_or_else(|error| panic!("{damage}: check fails instead of reporting: {error}"));
        if !check.is_healthy() {
            result.check_flagged += 1;
            assert!(
                check.problems.iter().all(|p| p.path.starts_with(t.path.join("runs/victim"))),
                "{damage}: {check:?}"
            );
        }
        match read {
            Ok(text) if text == good => result.intact += 1,
            Ok(_) => {
                // The bytes decode to something else: check must say the file is damaged.
                assert!(!check.is_healthy(), "{damage}: the run reads differently and check finds nothing");
                result.changed_but_flagged += 1;
            }
            Err(error) => {
                result.errors += 1;
                match &error {
                    Error::Corrupt { path: p, detail } => {
                        assert_eq!(p, &path, "{damage}: {error}");
                        if detail.contains("storage engine failed") {
                            result.engine_panics_caught += 1;
                        }
                    }
                    Error::Storage { path: p, .. } | Error::Io { path: p, .. } => {
                        assert!(p.starts_with(t.path.join("runs/victim")), "{damage}: {error}");
                    }
                    other => panic!("{damage}: an untyped failure: {other:?}"),
                }
                assert!(error.to_string().contains("victim"), "{damage}: the message names the file: {error}");
                assert!(!check.is_healthy(), "{damage}: reading fails ({error}) but check finds nothing");
            }
        }
        // A writer on the damaged run: a typed error or a working run, never a panic.
        let write = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<(), Error> {
            let mut run = t.store.init(options().id("victim").resume(Resume::Allow))?;
            run.log(row(run.step()))?;
            run.finish(0)
        }))
        .unwrap_or_else(|_| panic!("{damage}: a panic escaped the writer"));
        if write.is_err() {
            result.writer_errors += 1;
        }
        // The other runs are untouched and still read.
        if n % 8 == 0 {
            assert_eq!((digest(&t.store, "healthy").unwrap(), digest(&t.store, "fork").unwrap()), others, "{damage}");
            let ids = t.store.run_ids().unwrap();
            assert!(ids.contains(&"healthy".to_string()) && ids.contains(&"fork".to_string()));
        }
    }
    eprintln!("damaged files: {result:?}");
    result
}

#[test]
fn a_damaged_run_file_gives_a_typed_error_naming_it_or_reads_intact_and_check_tells_which() {
    let result = sweep(60);
    assert!(result.errors > 0 && result.check_flagged > 0, "{result:?}");
}

/// The long version: a few hundred damaged files. `cargo test --test it damaged -- --ignored`.
#[test]
#[ignore = "the long version"]
fn many_damaged_run_files_give_typed_errors_or_read_intact() {
    let result = sweep(600);
    assert!(result.errors > 0, "{result:?}");
}

#[test]
fn lock_files_with_garbage_are_harmless_and_noted() {
    let t = temp_store();
    for id in ["junk", "huge", "wrong-types", "empty"] {
        let mut run = t.store.init(options().id(id)).unwrap();
        run.log(row(0)).unwrap();
        run.finish(0).unwrap();
    }
    let lock = |id: &str| t.path.join("runs").join(id).join("lock");
    std::fs::write(lock("junk"), [0xFF, 0x00, 0xC3, 0x28, b'{', b'"']).unwrap();
    std::fs::write(lock("huge"), vec![b'x'; 1 << 20]).unwrap();
    std::fs::write(lock("wrong-types"), br#"{"pid":"me","host":7,"since":-1}"#).unwrap();
    std::fs::write(lock("empty"), b"").unwrap();
    for id in ["junk", "huge", "wrong-types", "empty"] {
        let info = t.store.open_run(id).unwrap().info().unwrap();
        assert_eq!(info.state, RunState::Finished, "{id}");
        let check = t.store.check(id).unwrap();
        assert!(check.is_healthy(), "{id}: garbage in a lock file is not damage: {check:?}");
        if id != "empty" {
            assert!(check.notes.iter().any(|note| note.path == lock(id)), "{id}: noted: {check:?}");
        }
        // Held by someone who wrote garbage: refused, naming an unknown holder.
        let held = File::options().read(true).write(true).open(lock(id)).unwrap();
        held.try_lock().unwrap();
        match t.store.init(options().id(id).resume(Resume::Must)) {
            Err(Error::RunLocked { holder, .. }) => assert_eq!(holder.pid, 0, "{id}"),
            other => panic!("{id}: {other:?}"),
        }
        assert_eq!(t.store.open_run(id).unwrap().holder().unwrap().map(|h| h.pid), Some(0));
        drop(held);
        // Free again: the next writer rewrites the record.
        let run = t.store.init(options().id(id).resume(Resume::Must)).unwrap();
        let holder: serde_json::Value = serde_json::from_slice(&std::fs::read(lock(id)).unwrap()).unwrap();
        assert_eq!(holder["pid"], std::process::id());
        run.finish(0).unwrap();
    }
    // A lock that is a directory: a typed error naming it, for the writer; a problem for check.
    std::fs::remove_file(lock("junk")).unwrap();
    std::fs::create_dir(lock("junk")).unwrap();
    match t.store.init(options().id("junk").resume(Resume::Must)) {
        Err(Error::Io { path, .. }) => assert_eq!(path, lock("junk")),
        other => panic!("{other:?}"),
    }
    let check = t.store.check("junk").unwrap();
    assert!(check.problems.iter().any(|p| p.path == lock("junk")), "{check:?}");
}
