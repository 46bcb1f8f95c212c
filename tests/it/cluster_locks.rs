//! A store where locks cannot keep one writer per run (node-local or failing locks, as on
//! some NFS, Lustre and FUSE mounts) is refused with `Error::LocksUnsupported` before anything
//! is written, unless `RUNSTORE_UNSAFE_LOCKS=1`. The failing lock call is made with the
//! testing-only `RUNSTORE_TEST_FLOCK_ERRNO`, the mounts with `RUNSTORE_TEST_MOUNTINFO` (a copy
//! of this process's mountinfo with the store's directory mounted as NFS, Lustre or sshfs).

use std::path::Path;
use std::process::Command;

use runstore::{Error, Filesystem, LockCall, LockSupport, Resume};

use crate::children::variant;
use crate::support::{CHILD, Reports, SAY, child, mountinfo_with, options, snapshot, temp_store};

/// Runs a child `role` on the store with `env` and returns its first report.
fn report_of(role: &str, store: &Path, env: &[(&str, &str)]) -> String {
    let mut command: Command = child(role, store);
    command.env_remove("RUNSTORE_UNSAFE_LOCKS").env_remove("RUNSTORE_TEST_MOUNTINFO");
    command.env_remove("RUNSTORE_TEST_FLOCK_ERRNO");
    command.envs(env.iter().copied()).env("RUNSTORE_RUN_ID", "r").env("RUNSTORE_RESUME", "allow");
    let mut process = command.spawn().expect("spawn");
    let mut reports = Reports::of(&mut process);
    let first = reports.expect(if role == "writer" { "init" } else { "" });
    drop(process.stdin.take());
    while reports.next().is_some() {}
    assert!(process.wait().unwrap().success());
    first
}

/// A store with one finished run "r" of 10 rows.
fn store_with_a_run() -> crate::support::TempStore {
    let t = temp_store();
    let mut run = t.store.init(options().id("r").resume(Resume::Allow)).unwrap();
    for step in 0..10 {
        run.log(crate::support::row(step)).unwrap();
    }
    run.finish(0).unwrap();
    t
}

#[test]
fn init_refuses_when_the_lock_call_fails_and_changes_nothing_on_disk() {
    for errno in ["ENOSYS", "ENOLCK", "EBADF"] {
        // A store with a run: untouched, byte for byte.
        let t = store_with_a_run();
        let before = snapshot(&t.path);
        let report = report_of("writer", &t.path, &[("RUNSTORE_TEST_FLOCK_ERRNO", errno)]);
        assert!(report.starts_with("err LocksUnsupported "), "{errno}: {report}");
        for says in [errno, "RUNSTORE_UNSAFE_LOCKS=1", "node-local disk", "runstore sync"] {
            assert!(report.contains(says), "{errno}: {report:?} should say {says:?}");
        }
        assert_eq!(snapshot(&t.path), before, "{errno}: nothing on disk changed");

        // No store yet: none is created.
        let fresh = temp_store();
        let report = report_of("writer", &fresh.path, &[("RUNSTORE_TEST_FLOCK_ERRNO", errno)]);
        assert!(report.starts_with("err LocksUnsupported "), "{errno}: {report}");
        assert!(!fresh.path.exists(), "{errno}: no store directory was created");
    }
}

#[test]
fn with_unsafe_locks_opted_in_a_writer_goes_on_where_the_lock_call_fails() {
    let t = store_with_a_run();
    let report =
        report_of("writer", &t.path, &[("RUNSTORE_TEST_FLOCK_ERRNO", "ENOSYS"), ("RUNSTORE_UNSAFE_LOCKS", "1")]);
    assert_eq!(report, "ok r 10 2 true", "resumed the run");
    assert_eq!(t.store.open_run("r").unwrap().attempts().unwrap().len(), 2);
}

#[test]
fn an_unsafe_locks_value_other_than_1_or_0_is_refused() {
    let t = temp_store();
    let report = report_of("writer", &t.path, &[("RUNSTORE_UNSAFE_LOCKS", "yes")]);
    assert!(report.starts_with("err InvalidEnvironment "), "{report}");
    assert!(report.contains("RUNSTORE_UNSAFE_LOCKS"), "{report}");
    assert!(!t.path.exists());
}

#[test]
fn init_refuses_on_mounts_whose_locks_are_node_local_or_off() {
    let cases = [
        ("nfs4", "fs1:/scratch", "rw,vers=4.2,hard,local_lock=flock,addr=10.0.0.2", "remount with local_lock=none"),
        ("nfs4", "fs1:/scratch", "rw,vers=4.1,local_lock=all,addr=10.0.0.2", "local_lock=all"),
        ("nfs", "fs1:/old", "rw,vers=3,nolock,local_lock=all,addr=10.0.0.2", "nolock"),
        ("lustre", "10.1.0.1@o2ib:/work", "rw,localflock,lazystatfs", "remount with -o flock"),
        ("lustre", "10.1.0.1@o2ib:/work", "rw,noflock,lazystatfs", "ENOSYS"),
        ("fuse.sshfs", "me@login:/home/me", "rw,user_id=0,group_id=0", "sshfs keeps locks in this machine's kernel"),
    ];
    for (fs_type, source, mount_options, says) in cases {
        let t = store_with_a_run();
        let mounts = mountinfo_with(t.path.parent().unwrap(), fs_type, source, mount_options);
        let mountinfo = mounts.path().to_str().unwrap();
        let before = snapshot(&t.path);
        let report = report_of("writer", &t.path, &[("RUNSTORE_TEST_MOUNTINFO", mountinfo)]);
        assert!(report.starts_with("err LocksUnsupported "), "{fs_type} {mount_options}: {report}");
        assert!(report.contains(&format!("({fs_type})")), "{report}");
        assert!(report.contains(says), "{report:?} should say {says:?}");
        assert_eq!(snapshot(&t.path), before, "{fs_type} {mount_options}: nothing changed");

        let opted_in =
            report_of("writer", &t.path, &[("RUNSTORE_TEST_MOUNTINFO", mountinfo), ("RUNSTORE_UNSAFE_LOCKS", "1")]);
        assert!(opted_in.starts_with("ok r 10 2 true"), "{fs_type} {mount_options}: {opted_in}");
    }
}

#[test]
fn init_works_on_mounts_whose_servers_arbitrate_locks() {
    for (fs_type, source, mount_options) in [
        ("nfs4", "fs1:/home", "rw,vers=4.2,hard,local_lock=none,addr=10.0.0.2"),
        ("nfs", "fs1:/proj", "rw,vers=3,hard,local_lock=none,addr=10.0.0.2"),
        ("lustre", "10.1.0.1@o2ib:/work", "rw,flock,lazystatfs"),
        ("gpfs", "fs1", "rw"),
    ] {
        let t = store_with_a_run();
        let mounts = mountinfo_with(t.path.parent().unwrap(), fs_type, source, mount_options);
        let report = report_of("writer", &t.path, &[("RUNSTORE_TEST_MOUNTINFO", mounts.path().to_str().unwrap())]);
        assert_eq!(report, "ok r 10 2 true", "{fs_type} {mount_options}");
    }
}

/// Reads the states of runs `r` and `c`, rewinds `r`, and pushes to a queue, reporting each
/// outcome.
#[test]
#[ignore = "a child process of other tests"]
fn reader_rewinder_and_queue() {
    if std::env::var(CHILD).as_deref() != Ok("cluster_locks::reader_rewinder_and_queue") {
        return;
    }
    let store = runstore::Store::from_env().expect("store");
    let outcome = |result: Result<String, Error>| match result {
        Ok(text) => format!("ok {text}"),
        Err(error) => format!("err {} {error}", variant(&error)),
    };
    let state = |id| outcome(store.open_run(id).and_then(|run| run.state()).map(|state| state.to_string()));
    let (finished, crashed) = (state("r"), state("c"));
    let rewind = outcome(store.rewind("r", 4).map(|branch| format!("{:?}", branch.map(|b| b.first_step))));
    let push = outcome(store.queue("q").and_then(|q| q.push(None, serde_json::json!({}))).map(|item| item.id));
    println!("{SAY}{finished} | {crashed} | {rewind} | {push}");
}

#[test]
fn readers_rewinds_and_queues_say_the_lock_call_fails_without_waiting_or_writing() {
    let t = store_with_a_run();
    // Run "c": its writer died, so reading its state tests its lock.
    let mut writer = child("writer", &t.path);
    writer.env("RUNSTORE_RUN_ID", "c").env("RUNSTORE_RESUME", "allow").env("TEST_ROWS", "3").env("TEST_END", "exit:0");
    assert!(writer.status().unwrap().success());
    let before = snapshot(&t.path);
    let role = "cluster_locks::reader_rewinder_and_queue";
    let report = report_of(role, &t.path, &[("RUNSTORE_TEST_FLOCK_ERRNO", "ENOLCK")]);
    let parts: Vec<&str> = report.split(" | ").collect();
    // A finished run reads without a lock; the rest needs one.
    assert_eq!(parts[0], "ok finished", "{report}");
    assert_eq!(parts.len(), 4, "{report}");
    for part in &parts[1..] {
        assert!(part.starts_with("err LocksUnsupported "), "{part}");
        assert!(part.contains("ENOLCK"), "{part}");
    }
    assert_eq!(snapshot(&t.path), before, "nothing changed");

    // Opted in, they go on as if nobody held a lock.
    let report = report_of(role, &t.path, &[("RUNSTORE_TEST_FLOCK_ERRNO", "ENOLCK"), ("RUNSTORE_UNSAFE_LOCKS", "1")]);
    assert!(report.starts_with("ok finished | ok crashed | ok Some(5) | ok "), "{report}");
}

#[test]
fn the_filesystem_of_a_local_store_is_detected_with_working_locks() {
    let t = store_with_a_run();
    let fs = Filesystem::detect(&t.path).unwrap();
    assert_eq!(fs.path, std::fs::canonicalize(&t.path).unwrap());
    assert_eq!(fs.lock_call, LockCall::Worked);
    assert!(fs.mount_point.as_ref().is_some_and(|mount| fs.path.starts_with(mount)), "{fs:?}");
    assert!(!fs.locks.refuses(), "{fs:?}");
    // A store that does not exist yet is examined at its nearest existing parent.
    let missing = t.path.join("not/yet");
    assert_eq!(Filesystem::detect(&missing).unwrap().path, fs.path);
    // A failed lock call is judged as such whatever the mount.
    let failed = fs.with_lock_call(LockCall::Failed(libc_enosys()));
    assert!(matches!(failed.locks, LockSupport::Unsupported { ref reason } if reason.contains("ENOSYS")), "{failed:?}");
}

/// ENOSYS on Linux (asm-generic), without a dependency for one number.
fn libc_enosys() -> i32 {
    38
}
