//! Stores on cluster filesystems: `runstore doctor`, exit code 6 where locks cannot keep one
//! writer per run, and the note of `show` and `ls` on locks that outlive a dead node. NFS and
//! Lustre mounts are simulated with the testing-only `RUNSTORE_TEST_MOUNTINFO` (a copy of this
//! process's mountinfo with the store's directory mounted as NFS), failing lock calls with
//! `RUNSTORE_TEST_FLOCK_ERRNO`.

use std::path::Path;
use std::process::Command;

use runstore::{Filesystem, LockSupport};

use crate::command::{fails, ok, run, runstore};
use crate::support::{Reports, TempStore, child, mountinfo_with, options, row, shm_store, snapshot, temp_store};

fn doctor_json(command: &mut Command) -> (i32, serde_json::Value) {
    let outcome = run(command.args(["doctor", "--json"]));
    let value = serde_json::from_str(&outcome.stdout).unwrap_or_else(|e| panic!("{e}: {}", outcome.stdout));
    (outcome.code, value)
}

fn store_with_a_run() -> TempStore {
    let t = temp_store();
    let mut run = t.store.init(options().id("r")).unwrap();
    run.log(row(0)).unwrap();
    run.finish(0).unwrap();
    t
}

/// The store's directory, simulated as mounted with `fs_type` and `mount_options`.
fn simulated(t: &TempStore, fs_type: &str, mount_options: &str) -> tempfile::NamedTempFile {
    mountinfo_with(t.path.parent().unwrap(), fs_type, "fs1:/export", mount_options)
}

#[test]
fn doctor_on_a_local_store_names_its_filesystem_and_finds_that_locks_exclude() {
    let t = store_with_a_run();
    let before = snapshot(&t.path);
    let (code, doctor) = doctor_json(&mut runstore(&t.path));
    assert_eq!(code, 0, "{doctor}");
    let expected = Filesystem::detect(&t.path).unwrap();
    assert_eq!(doctor["filesystem"]["type"], expected.fs_type.as_str());
    assert_eq!(doctor["filesystem"]["mount_point"], expected.mount_point.unwrap().to_str().unwrap());
    assert_eq!(doctor["examined"], std::fs::canonicalize(&t.path).unwrap().to_str().unwrap());
    assert_eq!(doctor["store_exists"], true);
    assert_eq!(doctor["locks"]["semantics"], expected.locks.as_str());
    assert_eq!(doctor["locks"]["refused"], false);
    assert_eq!(doctor["probe"]["lock_call"], "worked");
    for check in ["excludes_same_process", "excludes_other_process", "released_at_exit"] {
        assert_eq!(doctor["probe"][check], true, "{check}: {doctor}");
    }
    assert!(doctor["space"]["free_bytes"].as_u64().unwrap() > 0);
    assert!(doctor["space"]["total_bytes"].as_u64() >= doctor["space"]["free_bytes"].as_u64());
    // statfs and mountinfo agree (ext2/3/4 share one magic).
    let statfs_type = doctor["filesystem"]["statfs_type"].as_str().unwrap_or("?");
    assert!(expected.fs_type.starts_with(statfs_type) || statfs_type == "ext4", "{doctor}");
    assert_eq!(snapshot(&t.path), before, "doctor left nothing behind");

    let text = ok(runstore(&t.path).arg("doctor"));
    for says in ["filesystem  ", "lock test   ", "locks       ", "free space  ", "verdict     ok"] {
        assert!(text.contains(says), "{text:?} should say {says:?}");
    }
    assert!(text.lines().all(|line| line.chars().count() <= 80), "{text}");
}

#[test]
fn doctor_on_tmpfs_finds_local_locks() {
    let shm = shm_store();
    let fs = Filesystem::detect(&shm.path).unwrap();
    if fs.fs_type != "tmpfs" {
        eprintln!("skipped: {} is {}, not tmpfs", shm.path.display(), fs.fs_type);
        return;
    }
    std::fs::create_dir_all(&shm.path).unwrap();
    let (code, doctor) = doctor_json(&mut runstore(&shm.path));
    assert_eq!(code, 0, "{doctor}");
    assert_eq!(doctor["filesystem"]["type"], "tmpfs");
    assert_eq!(doctor["filesystem"]["statfs_type"], "tmpfs");
    assert_eq!(doctor["filesystem"]["statfs_magic"], "0x1021994");
    assert_eq!(doctor["locks"]["semantics"], "local");
    assert_eq!(doctor["probe"]["excludes_other_process"], true);
    assert_eq!(doctor["warnings"], serde_json::json!([]));
}

#[test]
fn doctor_before_the_store_exists_examines_its_parent_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("not/yet/store");
    let (code, doctor) = doctor_json(&mut runstore(&store));
    assert_eq!(code, 0, "{doctor}");
    assert_eq!(doctor["store_exists"], false);
    assert_eq!(doctor["examined"], std::fs::canonicalize(dir.path()).unwrap().to_str().unwrap());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing created");
}

#[test]
fn doctor_exits_6_on_mounts_whose_locks_are_node_local_or_failing() {
    let t = store_with_a_run();
    let cases = [
        ("nfs4", "rw,vers=4.2,local_lock=flock", "node-local", "local_lock=flock"),
        ("lustre", "rw,localflock", "node-local", "-o flock"),
        ("lustre", "rw,noflock", "unsupported", "noflock"),
    ];
    for (fs_type, mount_options, semantics, says) in cases {
        let mounts = simulated(&t, fs_type, mount_options);
        let mut command = runstore(&t.path);
        command.env("RUNSTORE_TEST_MOUNTINFO", mounts.path());
        let (code, doctor) = doctor_json(&mut command);
        assert_eq!(code, 6, "{doctor}");
        assert_eq!(doctor["filesystem"]["type"], fs_type);
        assert_eq!(doctor["locks"]["semantics"], semantics, "{doctor}");
        assert_eq!(doctor["locks"]["refused"], true);
        assert!(doctor["locks"]["detail"].as_str().unwrap().contains(says), "{doctor}");
        assert!(
            doctor["filesystem"]["options"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| mount_options.contains(o.as_str().unwrap()))
        );

        let mut command = runstore(&t.path);
        fails(command.env("RUNSTORE_TEST_MOUNTINFO", mounts.path()).arg("doctor"), 6, "cannot keep one writer per run");
    }

    let mut command = runstore(&t.path);
    let (code, doctor) = doctor_json(command.env("RUNSTORE_TEST_FLOCK_ERRNO", "ENOSYS"));
    assert_eq!(code, 6, "{doctor}");
    assert_eq!(doctor["locks"]["semantics"], "unsupported");
    assert!(doctor["locks"]["detail"].as_str().unwrap().contains("ENOSYS"), "{doctor}");
    assert_eq!(doctor["probe"]["lock_call"], "Function not implemented (os error 38)");
}

#[test]
fn doctor_on_shared_nfs_says_how_long_a_dead_nodes_lock_persists() {
    let t = store_with_a_run();
    let mounts = simulated(&t, "nfs4", "rw,vers=4.2,hard,local_lock=none,addr=10.0.0.2");
    let mut command = runstore(&t.path);
    let (code, doctor) = doctor_json(command.env("RUNSTORE_TEST_MOUNTINFO", mounts.path()));
    assert_eq!(code, 0, "{doctor}");
    assert_eq!(doctor["locks"]["semantics"], "shared");
    assert_eq!(doctor["locks"]["linger_seconds"], 90);
    assert_eq!(doctor["filesystem"]["options"], serde_json::json!(["vers=4.2", "local_lock=none"]));
    let warnings = doctor["warnings"].as_array().unwrap();
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("for up to 90 s (the NFS lease)")), "{doctor}");
}

#[test]
fn writing_commands_exit_6_where_locks_fail_and_change_nothing() {
    let t = store_with_a_run();
    let before = snapshot(&t.path);
    let mut log = runstore(&t.path);
    log.env("RUNSTORE_TEST_FLOCK_ERRNO", "ENOLCK").args(["log", "r", "loss=0.5"]);
    let outcome = fails(&mut log, 6, "ENOLCK");
    assert!(outcome.stderr.contains("RUNSTORE_UNSAFE_LOCKS=1"), "{}", outcome.stderr);

    let mounts = simulated(&t, "nfs4", "rw,vers=4.1,local_lock=all");
    let mut rewind = runstore(&t.path);
    rewind.env("RUNSTORE_TEST_MOUNTINFO", mounts.path()).args(["rewind", "r", "--to", "0"]);
    fails(&mut rewind, 6, "remount with local_lock=none");
    assert_eq!(snapshot(&t.path), before, "nothing changed");

    // Opted in, the write goes through.
    let mut log = runstore(&t.path);
    log.env("RUNSTORE_TEST_FLOCK_ERRNO", "ENOLCK").env("RUNSTORE_UNSAFE_LOCKS", "1").args(["log", "r", "loss=0.5"]);
    ok(&mut log);
    assert_eq!(t.store.open_run("r").unwrap().info().unwrap().rows, 2);
}

/// Rewrites the holder record of run `id` as if its writer ran on `host`.
fn pretend_holder_host(store: &Path, id: &str, host: &str) {
    let lock = store.join("runs").join(id).join("lock");
    let mut record: serde_json::Value = serde_json::from_slice(&std::fs::read(&lock).unwrap()).unwrap();
    record["host"] = host.into();
    std::fs::write(&lock, serde_json::to_vec(&record).unwrap()).unwrap();
}

#[test]
fn show_and_ls_say_that_a_lock_held_from_another_host_may_outlive_a_dead_node() {
    let t = store_with_a_run();
    let mut writer = child("writer", &t.path);
    writer.env("RUNSTORE_RUN_ID", "live").env("RUNSTORE_RESUME", "allow").env("TEST_ROWS", "3").env("TEST_END", "hold");
    let mut process = writer.spawn().unwrap();
    let mut reports = Reports::of(&mut process);
    reports.expect("holding");

    let nfs = simulated(&t, "nfs4", "rw,vers=4.2,local_lock=none");
    let show = |mounts: Option<&Path>| {
        let mut command = runstore(&t.path);
        if let Some(mounts) = mounts {
            command.env("RUNSTORE_TEST_MOUNTINFO", mounts);
        }
        let text = ok(command.args(["show", "live"]));
        let json: serde_json::Value = serde_json::from_str(&ok(runstore(&t.path)
            .envs(mounts.map(|m| ("RUNSTORE_TEST_MOUNTINFO", m)))
            .args(["show", "live", "--json"])))
        .unwrap();
        (text, json)
    };
    let ls = |mounts: &Path| run(runstore(&t.path).env("RUNSTORE_TEST_MOUNTINFO", mounts).arg("ls"));

    // Held from this host: the OS tells at once if the holder dies, so nothing to say.
    let (text, json) = show(Some(nfs.path()));
    assert!(!text.contains("note:"), "{text}");
    assert_eq!(json["holder_note"], serde_json::Value::Null);
    assert_eq!(ls(nfs.path()).stderr, "");

    pretend_holder_host(&t.path, "live", "node-17");
    let (text, json) = show(Some(nfs.path()));
    let note = "the holder runs on host node-17: if that node is down, its lock on this nfs4 filesystem persists for \
                up to 90 s (the NFS lease), and the run reads running until then";
    assert!(text.replace('\n', " ").contains(note), "{text}");
    assert_eq!(json["holder_note"], note);
    let listed = ls(nfs.path());
    assert_eq!(listed.code, 0);
    assert!(listed.stdout.contains("live"), "{}", listed.stdout);
    assert_eq!(
        listed.stderr,
        "runstore: note: held from other hosts: live (host node-17); if a node is down, its lock on this nfs4 \
         filesystem persists for up to 90 s (the NFS lease), and its runs read running until then\n"
    );

    // A local filesystem releases a dead process's lock at once, whoever holds it.
    let (text, json) = show(None);
    if matches!(Filesystem::detect(&t.path).unwrap().locks, LockSupport::Local) {
        assert!(!text.contains("note:"), "{text}");
        assert_eq!(json["holder_note"], serde_json::Value::Null);
    }

    drop(process.stdin.take());
    reports.expect("finished");
    assert!(process.wait().unwrap().success());
}
