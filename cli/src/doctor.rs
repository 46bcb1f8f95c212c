//! `runstore doctor`: whether the store's filesystem keeps the one-writer promise on this node.
//!
//! It reads what the library detects (`runstore::Filesystem`: the mount from mountinfo, its
//! options, what a shared lock does), names the `statfs` magic number (rustix's safe `statfs`),
//! and tries the locks as writers use them (`lock_probe`). It writes only the probe file, and
//! removes it.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use runstore::{Error, Filesystem, Linger, LockCall, LockSupport, Store};

use crate::exit::Failure;
use crate::lock_probe::{Probe, hold_lock, try_locks};
use crate::output;

/// Check that the store's filesystem keeps one writer per run
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Prints the filesystem the store is on (or, before the store exists, the
directory it would be created in), the mount options that decide how locks
behave, what a lock does when tried (a second open file and another process
must be excluded; the lock must go when its process exits), the lock
semantics that follow, free space, and warnings.

Lock semantics: local (one machine), shared (the servers arbitrate locks
across nodes; a dead node's lock persists for a while: NFSv4 90 s by
default), node-local (NFS local_lock=flock|all or nolock, Lustre localflock,
sshfs, s3fs: writers refuse), unsupported (the lock call fails: Lustre
noflock, ENOSYS, ENOLCK, EBADF: writers refuse), unknown.

Exit codes: 0 one writer per run holds here; 6 it does not (writers refuse
unless RUNSTORE_UNSAFE_LOCKS=1).

Examples:
  runstore doctor
  runstore --dir /scratch/$USER/runstore doctor --json | jq .locks")]
pub struct Args {
    /// A JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Internal: hold an exclusive lock on FILE until stdin closes (the probe's other process).
    #[arg(long, hide = true, value_name = "FILE")]
    hold_lock: Option<PathBuf>,
}

/// Below this much free space, doctor warns.
const LOW_SPACE: u64 = 1 << 30;

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    if let Some(path) = &args.hold_lock {
        return hold_lock(path);
    }
    let detected = Filesystem::detect(store.path())?;
    let (call, probe) = match detected.lock_call {
        LockCall::Failed(_) => (detected.lock_call, Probe::default()),
        _ => try_locks(store, &detected.path),
    };
    let fs = detected.with_lock_call(call);
    let magic = statfs_magic(&fs.path);
    let space = rustix::fs::statvfs(&fs.path).ok().map(|s| (s.f_bavail * s.f_frsize, s.f_blocks * s.f_frsize));
    let unsafe_locks = runstore::unsafe_locks_allowed().unwrap_or(false);
    let warnings = warnings(&fs, &probe, magic, space, unsafe_locks);
    let refused = fs.locks.refuses() || probe.failed_exclusion();

    let mut out = output::stdout();
    if args.json {
        let value = json(store, &fs, &probe, magic, space, unsafe_locks, refused, &warnings);
        serde_json::to_writer_pretty(&mut out, &value).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        text(&mut out, store, &fs, &probe, magic, space, refused, &warnings)?;
    }
    out.flush()?;
    if refused {
        let reason = match &fs.locks {
            LockSupport::NodeLocal { reason } | LockSupport::Unsupported { reason } => reason.clone(),
            _ => "an exclusive lock taken here did not exclude another holder".into(),
        };
        return Err(Error::LocksUnsupported { path: store.path().to_path_buf(), fs: fs.fs_type.clone(), reason }.into());
    }
    Ok(())
}

/// The `statfs` magic number of the filesystem holding `path`.
fn statfs_magic(path: &Path) -> Option<u64> {
    let stat = rustix::fs::statfs(path).ok()?;
    // f_type is a signed long on most targets, unsigned on some: its low 32 bits are the magic.
    #[allow(clippy::cast_sign_loss, clippy::unnecessary_cast)]
    Some(stat.f_type as u64 & 0xFFFF_FFFF)
}

/// Whether the statfs type and the mountinfo type name one filesystem.
fn same_family(magic_type: &str, fs_type: &str) -> bool {
    let family = |name: &str| match name {
        "nfs4" => "nfs".to_string(),
        "ext2" | "ext3" => "ext4".to_string(),
        "smb3" | "smbfs" => "cifs".to_string(),
        name if name.starts_with("fuse") => "fuse".to_string(),
        name => name.to_string(),
    };
    family(magic_type) == family(fs_type)
}

fn semantics(locks: &LockSupport) -> String {
    match locks {
        LockSupport::Local => {
            "local: locks exclude every process of this machine, and a dead process's lock goes at once".into()
        }
        LockSupport::Shared { linger } => format!(
            "shared: the filesystem's servers arbitrate locks across nodes; the lock of a writer whose node dies \
             persists {linger}"
        ),
        LockSupport::NodeLocal { reason } => format!("node-local: {reason}"),
        LockSupport::Unsupported { reason } => format!("unsupported: {reason}"),
        LockSupport::Unknown { note } => format!("unknown: {note}"),
        _ => locks.as_str().to_string(),
    }
}

fn linger_seconds(locks: &LockSupport) -> Option<u64> {
    match locks {
        LockSupport::Shared { linger: Linger::Lease(lease) } => Some(lease.as_secs()),
        _ => None,
    }
}

fn warnings(
    fs: &Filesystem,
    probe: &Probe,
    magic: Option<u64>,
    space: Option<(u64, u64)>,
    unsafe_locks: bool,
) -> Vec<String> {
    let mut warnings = Vec::new();
    match &fs.locks {
        // The reason is the `locks` line already; only the opt-in is news.
        LockSupport::NodeLocal { .. } | LockSupport::Unsupported { .. } if unsafe_locks => {
            warnings.push("RUNSTORE_UNSAFE_LOCKS=1 is set: writers write here anyway".into());
        }
        LockSupport::Shared { linger } => warnings.push(format!(
            "if a writer's node dies, its lock persists {linger}: the run reads running and resuming it fails with \
             \"run is being written\" until then (a requeued job can retry after that)"
        )),
        LockSupport::Unknown { note } => warnings.push(note.clone()),
        _ => {}
    }
    if probe.excludes_same_process == Some(false) {
        warnings.push("two open files of one process both took the exclusive lock: locks do not exclude here".into());
    }
    if probe.excludes_other_process == Some(false) {
        warnings.push("another process's exclusive lock did not exclude this one: locks do not exclude here".into());
    }
    if probe.released_at_exit == Some(false) {
        warnings.push("the lock of a process that exited was still held: dead writers would block their runs".into());
    }
    if let Some(error) = &probe.error {
        warnings.push(format!("the locks could not be fully tried: {error}"));
    }
    if let Some(magic_type) = magic.and_then(runstore::fs_type_of_magic)
        && fs.mount_point.is_some()
        && !same_family(magic_type, &fs.fs_type)
    {
        warnings
            .push(format!("statfs says {magic_type} but mountinfo says {}: the detection may be wrong", fs.fs_type));
    }
    if let Some((free, _)) = space.filter(|(free, _)| *free < LOW_SPACE) {
        warnings.push(format!("only {} free: flushes fail once the disk is full", bytes(free)));
    }
    warnings
}

#[allow(clippy::too_many_arguments)]
fn json(
    store: &Store,
    fs: &Filesystem,
    probe: &Probe,
    magic: Option<u64>,
    space: Option<(u64, u64)>,
    unsafe_locks: bool,
    refused: bool,
    warnings: &[String],
) -> serde_json::Value {
    let lock_call = match fs.lock_call {
        LockCall::Worked => "worked".to_string(),
        LockCall::Failed(errno) => std::io::Error::from_raw_os_error(errno).to_string(),
        _ => "not tried".to_string(),
    };
    serde_json::json!({
        "store": store.path(),
        "store_exists": store.path().is_dir(),
        "examined": fs.path,
        "filesystem": {
            "type": fs.fs_type,
            "source": fs.source,
            "mount_point": fs.mount_point,
            "options": fs.options,
            "statfs_magic": magic.map(|magic| format!("{magic:#x}")),
            "statfs_type": magic.and_then(runstore::fs_type_of_magic),
        },
        "locks": {
            "semantics": fs.locks.as_str(),
            "detail": semantics(&fs.locks),
            "linger_seconds": linger_seconds(&fs.locks),
            "refused": refused,
            "unsafe_locks": unsafe_locks,
        },
        "probe": {
            "lock_call": lock_call,
            "excludes_same_process": probe.excludes_same_process,
            "excludes_other_process": probe.excludes_other_process,
            "released_at_exit": probe.released_at_exit,
            "error": probe.error,
        },
        "space": space.map(|(free, total)| serde_json::json!({"free_bytes": free, "total_bytes": total})),
        "warnings": warnings,
    })
}

#[allow(clippy::too_many_arguments)]
fn text(
    out: &mut impl Write,
    store: &Store,
    fs: &Filesystem,
    probe: &Probe,
    magic: Option<u64>,
    space: Option<(u64, u64)>,
    refused: bool,
    warnings: &[String],
) -> std::io::Result<()> {
    let field = |out: &mut dyn Write, label: &str, value: &str| -> std::io::Result<()> {
        for (index, line) in output::wrap(value, output::COLUMNS - 12).iter().enumerate() {
            writeln!(out, "{}{line}", output::pad(if index == 0 { label } else { "" }, 12))?;
        }
        Ok(())
    };
    let mut place = store.path().display().to_string();
    if !store.path().is_dir() {
        let _ = write!(place, " (does not exist yet: examined {})", fs.path.display());
    }
    field(out, "store", &place)?;
    let mut filesystem = fs.fs_type.clone();
    if let Some(mount) = &fs.mount_point {
        let _ = write!(filesystem, " mounted on {}", mount.display());
    }
    if !fs.source.is_empty() {
        let _ = write!(filesystem, " from {}", fs.source);
    }
    if let Some(magic) = magic {
        let name = runstore::fs_type_of_magic(magic).unwrap_or("not known to runstore");
        let _ = write!(filesystem, " (statfs: {name}, {magic:#x})");
    }
    field(out, "filesystem", &filesystem)?;
    let options = if fs.options.is_empty() { "none that decide locking".to_string() } else { fs.options.join(", ") };
    field(out, "options", &options)?;
    field(out, "lock test", &lock_test(fs.lock_call, probe))?;
    field(out, "locks", &semantics(&fs.locks))?;
    let space =
        space.map_or_else(|| "not known".into(), |(free, total)| format!("{} of {}", bytes(free), bytes(total)));
    field(out, "free space", &space)?;
    let verdict = if refused {
        "writers refuse this store: one writer per run does not hold here (exit 6)"
    } else {
        "ok: one writer per run holds for processes on this node"
    };
    field(out, "verdict", verdict)?;
    for warning in warnings {
        field(out, "warning", warning)?;
    }
    Ok(())
}

fn lock_test(call: LockCall, probe: &Probe) -> String {
    let word = |value: Option<bool>| match value {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "not tried",
    };
    match call {
        LockCall::Failed(errno) => format!("flock fails: {}", std::io::Error::from_raw_os_error(errno)),
        LockCall::Worked => format!(
            "an exclusive flock excludes a second open file: {}; another process: {}; goes when its process exits: {}",
            word(probe.excludes_same_process),
            word(probe.excludes_other_process),
            word(probe.released_at_exit)
        ),
        _ => format!("not tried: {}", probe.error.as_deref().unwrap_or("no probe file")),
    }
}

/// A size in GiB (MiB below one GiB), one decimal.
fn bytes(count: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let count = count as f64;
    if count >= f64::from(1u32 << 30) {
        format!("{:.1} GiB", count / f64::from(1u32 << 30))
    } else {
        format!("{:.1} MiB", count / f64::from(1u32 << 20))
    }
}
