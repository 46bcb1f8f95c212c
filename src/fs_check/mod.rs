//! Whether the filesystem under a store keeps runstore's one-writer promise.
//!
//! runstore's guarantees rest on `flock`, and shared filesystems differ: NFS clients forward it
//! to the server unless mounted with `local_lock=flock|all` (or `nolock`); Lustre forwards it
//! with `-o flock`, keeps it per node with `localflock` and fails it with `ENOSYS` under
//! `noflock`; FUSE filesystems such as sshfs keep it in the local kernel. Before a writer takes a
//! lock (and before `init` creates anything), runstore finds the mount holding the store in
//! `/proc/self/mountinfo` — the longest mount point that is a prefix of the store's canonical
//! path — and tries a shared lock on the store's `FORMAT` marker (or, before the store exists,
//! on the directory it would be created in). Where locks are known to be node-local, or the lock
//! call fails with `ENOSYS`, `ENOLCK`, `EBADF` or `EOPNOTSUPP`, it refuses with
//! [`Error::LocksUnsupported`](crate::Error::LocksUnsupported) unless [`ENV_UNSAFE_LOCKS`] is `1`.
//!
//! mountinfo rather than `statfs`: it names the type *and* the options that decide (`statfs`
//! gives only a magic number), and reading it needs no `unsafe` code, which the library forbids.
//! [`fs_type_of_magic`] names `statfs` magic numbers for callers that have them (the
//! `runstore doctor` command does).

mod mountinfo;
mod rules;

use std::fmt;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::state::LockHolder;

/// Set to `1` to let writers proceed where locks cannot keep one writer per run (node-local or
/// failing locks). Two processes on different nodes may then write one run at once and damage
/// it: use it only when you know that a single process writes the store.
///
/// ```
/// assert_eq!(runstore::ENV_UNSAFE_LOCKS, "RUNSTORE_UNSAFE_LOCKS");
/// ```
pub const ENV_UNSAFE_LOCKS: &str = "RUNSTORE_UNSAFE_LOCKS";

/// **For tests only.** Makes every lock call of runstore fail with this errno (a name such as
/// `ENOSYS`, `ENOLCK`, `EBADF`, or a number), as on a filesystem whose locks do not work, so
/// that the refusal can be tested where no such filesystem can be mounted.
///
/// ```
/// assert_eq!(runstore::ENV_TEST_FLOCK_ERRNO, "RUNSTORE_TEST_FLOCK_ERRNO");
/// ```
pub const ENV_TEST_FLOCK_ERRNO: &str = "RUNSTORE_TEST_FLOCK_ERRNO";

/// **For tests only.** A file read instead of `/proc/self/mountinfo`, so that a store can be
/// made to look as if it sat on NFS or Lustre.
///
/// ```
/// assert_eq!(runstore::ENV_TEST_MOUNTINFO, "RUNSTORE_TEST_MOUNTINFO");
/// ```
pub const ENV_TEST_MOUNTINFO: &str = "RUNSTORE_TEST_MOUNTINFO";

/// What a lock call did on a filesystem.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use runstore::{Filesystem, LockCall, LockSupport};
///
/// let fs = Filesystem::detect(dir.path())?;
/// // The same filesystem, had its lock call failed with ENOLCK (37): writers would refuse.
/// let failing = fs.with_lock_call(LockCall::Failed(37));
/// assert!(matches!(failing.locks, LockSupport::Unsupported { .. }) && failing.locks.refuses());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockCall {
    /// No lock was tried.
    NotTried,
    /// The lock was granted.
    Worked,
    /// It failed with this errno.
    Failed(i32),
}

/// How long the lock of a holder whose node died may outlive it.
///
/// ```
/// use std::time::Duration;
/// use runstore::Linger;
///
/// assert_eq!(Linger::Lease(Duration::from_secs(90)).to_string(), "for up to 90 s (the NFS lease)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Linger {
    /// Until the NFS (version 4) server's lease runs out (90 s by default on Linux servers).
    Lease(Duration),
    /// NFS version 3 (NLM): until the node starts again and tells the server, or an administrator
    /// clears the lock on the server.
    UntilReboot,
    /// Until the servers evict the node (Lustre, GPFS, Ceph, SMB).
    UntilEvicted,
}

impl fmt::Display for Linger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Linger::Lease(lease) => write!(f, "for up to {} s (the NFS lease)", lease.as_secs()),
            Linger::UntilReboot => f.write_str("until that node restarts or the NFS server's lock is cleared (NFSv3)"),
            Linger::UntilEvicted => f.write_str("until the filesystem's servers evict that node"),
        }
    }
}

/// What runstore's locks promise on a filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockSupport {
    /// A local filesystem: locks exclude every process of this machine, and the OS releases a
    /// dead process's lock at once.
    Local,
    /// A shared filesystem whose servers arbitrate locks: they exclude processes on every node,
    /// but a holder whose node dies keeps its lock for a while.
    Shared {
        /// How long.
        linger: Linger,
    },
    /// Locks are kept by each node alone, so two nodes could write one run: writers refuse.
    NodeLocal {
        /// Why, and what to do.
        reason: String,
    },
    /// The lock call fails here: writers refuse.
    Unsupported {
        /// Why, and what to do.
        reason: String,
    },
    /// runstore cannot tell; writers proceed.
    Unknown {
        /// What is not known.
        note: String,
    },
}

impl LockSupport {
    /// Whether writers refuse to work here (unless [`ENV_UNSAFE_LOCKS`] is `1`).
    #[must_use]
    pub fn refuses(&self) -> bool {
        matches!(self, LockSupport::NodeLocal { .. } | LockSupport::Unsupported { .. })
    }

    /// A short name: `local`, `shared`, `node-local`, `unsupported`, `unknown`.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            LockSupport::Local => "local",
            LockSupport::Shared { .. } => "shared",
            LockSupport::NodeLocal { .. } => "node-local",
            LockSupport::Unsupported { .. } => "unsupported",
            LockSupport::Unknown { .. } => "unknown",
        }
    }
}

/// The filesystem holding a path, and what runstore's locks promise there.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use runstore::{Filesystem, LockSupport};
///
/// let fs = Filesystem::detect(dir.path())?;
/// // A temporary directory is on a local filesystem on most machines (ext4, xfs, tmpfs, ...).
/// if matches!(fs.locks, LockSupport::Local) {
///     assert!(!fs.locks.refuses());
/// }
/// println!("{} on {:?}: {}", fs.fs_type, fs.mount_point, fs.locks.as_str());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Filesystem {
    /// The directory examined: the path asked about or, if it does not exist yet, its nearest
    /// existing parent, with symbolic links resolved.
    pub path: PathBuf,
    /// Where the filesystem is mounted; `None` when mountinfo could not be read.
    pub mount_point: Option<PathBuf>,
    /// Its type as mountinfo names it (`nfs4`, `lustre`, `gpfs`, `fuse.sshfs`, `ext4`, ...), or
    /// `unknown`.
    pub fs_type: String,
    /// What is mounted (`server:/export`, `/dev/sda1`, ...), or empty.
    pub source: String,
    /// The mount options that decide lock semantics (`local_lock=…`, `vers=…`, `flock`, ...).
    pub options: Vec<String>,
    /// What a shared lock on the store's `FORMAT` marker in [`Filesystem::path`] did (on the
    /// directory itself where there is no marker).
    pub lock_call: LockCall,
    /// What locks promise here.
    pub locks: LockSupport,
    all_options: Vec<String>,
}

impl Filesystem {
    /// Examines the filesystem holding `path` (or its nearest existing parent): its mount, and
    /// what a shared lock there does: on the store's `FORMAT` marker if `path` is a store, else
    /// on the directory. Changes nothing on disk.
    ///
    /// The marker is tried rather than the directory where it exists because some filesystems
    /// lock directories differently from files (an NFS client may keep directory locks local), so a
    /// failing lock call shows only on a file. Before the store exists, such a failure shows at
    /// the first lock of a run, after the store directory was created.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when no parent of `path` can be examined.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let fs = runstore::Filesystem::detect(&dir.path().join("not-yet/a-store"))?;
    /// // The store does not exist yet: its nearest existing parent is examined.
    /// assert!(dir.path().canonicalize()?.starts_with(&fs.path));
    /// println!("{} on {:?}: locks {}", fs.fs_type, fs.mount_point, fs.locks.as_str());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn detect(path: &Path) -> Result<Filesystem> {
        let existing = path.ancestors().find(|dir| dir.exists()).unwrap_or(Path::new("."));
        let canonical = std::fs::canonicalize(existing).map_err(|error| Error::io(existing, error))?;
        let lock_call = try_shared_lock(&canonical);
        let mount = read_mountinfo().and_then(|text| mountinfo::mount_of(&text, &canonical));
        let mut fs = Filesystem {
            path: canonical,
            mount_point: mount.as_ref().map(|m| m.mount_point.clone()),
            fs_type: mount.as_ref().map_or_else(|| "unknown".to_string(), |m| m.fs_type.clone()),
            source: mount.as_ref().map(|m| m.source.clone()).unwrap_or_default(),
            options: mount.as_ref().map(|m| rules::options_that_matter(&m.options)).unwrap_or_default(),
            lock_call,
            locks: LockSupport::Local,
            all_options: mount.map(|m| m.options).unwrap_or_default(),
        };
        fs.locks = fs.judge(lock_call);
        Ok(fs)
    }

    /// The same filesystem, judged again with the outcome of another lock call (one that
    /// `runstore doctor` made, say). See [`LockCall`] for an example.
    #[must_use]
    pub fn with_lock_call(mut self, call: LockCall) -> Filesystem {
        self.lock_call = call;
        self.locks = self.judge(call);
        self
    }

    fn judge(&self, call: LockCall) -> LockSupport {
        match (self.mount_point.is_some(), call) {
            (true, _) | (false, LockCall::Failed(_)) => {
                rules::judge(&self.fs_type, &self.source, &self.all_options, call)
            }
            (false, _) => LockSupport::Unknown {
                note: "/proc/self/mountinfo cannot be read, so the filesystem type is not known".into(),
            },
        }
    }

    /// How long the lock of `holder` may outlive it if its node died: `Some` for a holder on
    /// another host of a shared filesystem (NFS, Lustre, GPFS, ...), where a run whose writer's
    /// node is down reads running until then; `None` on this host, or where the OS releases
    /// the locks of the dead at once.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let fs = runstore::Filesystem::detect(dir.path())?;
    /// // This process's own lock is never one that may outlive its holder.
    /// assert_eq!(fs.lingering_lock(&runstore::LockHolder::current()), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn lingering_lock(&self, holder: &LockHolder) -> Option<Linger> {
        let LockSupport::Shared { linger } = &self.locks else { return None };
        (holder.host != LockHolder::current().host).then_some(*linger)
    }
}

/// The filesystem type a `statfs` magic number (`f_type`) names, for the filesystems whose
/// locks runstore knows: `nfs`, `lustre`, `gpfs`, `cifs`, `smb3`, `ceph`, `beegfs`, `fuse`,
/// `ext4` (also ext2 and ext3), `xfs`, `btrfs`, `zfs`, `tmpfs`, `overlay`, ...
///
/// ```
/// assert_eq!(runstore::fs_type_of_magic(0x6969), Some("nfs"));
/// assert_eq!(runstore::fs_type_of_magic(0x0BD0_0BD0), Some("lustre"));
/// assert_eq!(runstore::fs_type_of_magic(1), None);
/// ```
#[must_use]
pub fn fs_type_of_magic(magic: u64) -> Option<&'static str> {
    rules::fs_type_of_magic(magic)
}

/// Whether [`ENV_UNSAFE_LOCKS`] opts in to writing where locks cannot work.
///
/// # Errors
///
/// [`Error::InvalidEnvironment`] for a value other than `1`, `0` or empty.
///
/// ```
/// // Unset in a normal environment: writers refuse where locks cannot keep one writer per run.
/// if std::env::var_os(runstore::ENV_UNSAFE_LOCKS).is_none() {
///     assert!(!runstore::unsafe_locks_allowed()?);
/// }
/// # Ok::<(), runstore::Error>(())
/// ```
pub fn unsafe_locks_allowed() -> Result<bool> {
    match std::env::var(ENV_UNSAFE_LOCKS) {
        Err(_) => Ok(false),
        Ok(value) => match value.as_str() {
            "1" => Ok(true),
            "" | "0" => Ok(false),
            _ => Err(Error::InvalidEnvironment { variable: ENV_UNSAFE_LOCKS, value, reason: "expected 1 or 0" }),
        },
    }
}

/// Refuses, before anything is created, a store whose filesystem cannot keep one writer per run.
pub(crate) fn ensure_locks_work(store: &Path) -> Result<()> {
    if unsafe_locks_allowed()? {
        return Ok(());
    }
    let fs = Filesystem::detect(store)?;
    match fs.locks {
        LockSupport::NodeLocal { reason } | LockSupport::Unsupported { reason } => {
            Err(Error::LocksUnsupported { path: store.to_path_buf(), fs: fs.fs_type, reason })
        }
        _ => Ok(()),
    }
}

/// Turns a failed lock call on `path` into the error to report — or into `Ok(())`, "go on as if
/// locked", when the call failed because the filesystem does not lock and the user opted in with
/// [`ENV_UNSAFE_LOCKS`]. Never a reason to try again.
pub(crate) fn lock_failed(path: &Path, error: std::io::Error) -> Result<()> {
    let Some(errno) = error.raw_os_error().filter(|errno| rules::unsupported_errno(*errno).is_some()) else {
        return Err(Error::io(path, error));
    };
    if unsafe_locks_allowed()? {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(path);
    let (fs, reason) = match Filesystem::detect(dir) {
        Ok(fs) => {
            let fs = fs.with_lock_call(LockCall::Failed(errno));
            let reason = match fs.locks {
                LockSupport::Unsupported { reason } | LockSupport::NodeLocal { reason } => reason,
                other => other.as_str().to_string(),
            };
            (fs.fs_type, reason)
        }
        Err(_) => ("unknown".to_string(), format!("flock fails here: {error}")),
    };
    Err(Error::LocksUnsupported { path: path.to_path_buf(), fs, reason })
}

/// `File::try_lock` (exclusive) or `try_lock_shared`, failing as [`ENV_TEST_FLOCK_ERRNO`] says.
pub(crate) fn try_lock(file: &File, shared: bool) -> std::result::Result<(), TryLockError> {
    if let Some(errno) = test_flock_errno() {
        return Err(TryLockError::Error(std::io::Error::from_raw_os_error(errno)));
    }
    if shared { file.try_lock_shared() } else { file.try_lock() }
}

/// `File::lock` (exclusive, blocking), failing as [`ENV_TEST_FLOCK_ERRNO`] says.
pub(crate) fn lock(file: &File) -> std::io::Result<()> {
    if let Some(errno) = test_flock_errno() {
        return Err(std::io::Error::from_raw_os_error(errno));
    }
    file.lock()
}

fn test_flock_errno() -> Option<i32> {
    let value = std::env::var(ENV_TEST_FLOCK_ERRNO).ok()?;
    match value.as_str() {
        "ENOSYS" => Some(libc::ENOSYS),
        "ENOLCK" => Some(libc::ENOLCK),
        "EBADF" => Some(libc::EBADF),
        "EOPNOTSUPP" => Some(libc::EOPNOTSUPP),
        number => number.parse().ok(),
    }
}

/// Tries a shared lock on the store marker in `dir` (else on `dir`) and lets go at once.
fn try_shared_lock(dir: &Path) -> LockCall {
    let marker = dir.join(crate::store::MARKER);
    let target = if marker.is_file() { marker } else { dir.to_path_buf() };
    let Ok(file) = File::open(target) else { return LockCall::NotTried };
    match try_lock(&file, true) {
        // Closing the file releases the lock.
        Ok(()) | Err(TryLockError::WouldBlock) => LockCall::Worked,
        Err(TryLockError::Error(error)) => error.raw_os_error().map_or(LockCall::NotTried, LockCall::Failed),
    }
}

fn read_mountinfo() -> Option<String> {
    let path = std::env::var_os(ENV_TEST_MOUNTINFO).unwrap_or_else(|| "/proc/self/mountinfo".into());
    std::fs::read_to_string(path).ok()
}
