//! The one error type of the crate.

use std::io;
use std::path::{Path, PathBuf};

use crate::state::LockHolder;

/// A specialised `Result` for runstore operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in runstore, with the context needed to act on it.
///
/// Messages are one line, lowercase, and say what to do next. Match on the variant, not the
/// message. New variants may be added in minor releases.
///
/// `Debug` prints the variant's name and the message (and the errors that caused it), so that
/// `fn main() -> Result<(), runstore::Error>` reports an error in plain words:
/// `Error: RunLocked: run "r" is being written by pid 4242 on node-7 since 2026-11-27T01:03:07Z: …`.
///
/// ```
/// use runstore::{Error, Resume, RunOptions, Store};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// let err = store.init(RunOptions::new().id("nope").resume(Resume::Must)).unwrap_err();
/// assert!(matches!(err, Error::RunNotFound { ref id } if id == "nope"));
/// assert_eq!(err.to_string(), "run \"nope\" does not exist: check the id, or resume with `allow` to create it");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A run id that cannot name a run: ids are 1 to 64 characters of `[A-Za-z0-9_.-]`, not
    /// starting with `.`.
    #[error("invalid run id {id:?}: {reason}")]
    InvalidRunId {
        /// The rejected id.
        id: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// A metric (or summary) name that cannot be stored: empty, longer than 256 bytes, or
    /// containing control characters.
    #[error("invalid metric name {name:?}: {reason}")]
    InvalidMetricName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// A config that is not a JSON object, or cannot be serialised.
    #[error("invalid config: {reason}")]
    InvalidConfig {
        /// What is wrong with it.
        reason: String,
    },

    /// An environment variable that runstore reads holds a value it cannot use.
    #[error("invalid value {value:?} in {variable}: {reason}")]
    InvalidEnvironment {
        /// The variable, e.g. `RUNSTORE_RESUME`.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What is expected instead.
        reason: &'static str,
    },

    /// The policy `must` was given without a run id to resume.
    #[error("resume policy `must` needs a run id: pass one, or set RUNSTORE_RUN_ID")]
    RunIdRequired,

    /// No run with this id exists (policy `must`, or a read of a missing run).
    #[error("run {id:?} does not exist: check the id, or resume with `allow` to create it")]
    RunNotFound {
        /// The id that was looked up.
        id: String,
    },

    /// A run with this id exists and the policy (`never`, or an explicit id without a policy)
    /// forbids touching it.
    #[error("run {id:?} already exists: resume it with `allow` or `must`, or choose another id")]
    RunExists {
        /// The existing run's id.
        id: String,
    },

    /// Another process (or another handle in this one) is writing the run.
    #[error("run {id:?} is being written by {holder}: wait for it to end, or stop that process")]
    RunLocked {
        /// The run's id.
        id: String,
        /// Who holds the lock, as recorded in the lock file.
        holder: LockHolder,
    },

    /// The store's filesystem cannot keep one writer per run: its locks are node-local (NFS
    /// `local_lock=flock|all` or `nolock`, Lustre `localflock`, sshfs, s3fs, ...) or the lock call
    /// fails (Lustre `noflock`: `ENOSYS`; `ENOLCK`, `EBADF`). Nothing was written. See
    /// `runstore doctor`, and [`ENV_UNSAFE_LOCKS`](crate::ENV_UNSAFE_LOCKS) to write anyway.
    #[error(
        "locks on {path} ({fs}) cannot keep one writer per run: {reason}; or keep the store on a node-local disk, copy it \
         out when the job ends and `runstore sync` or `runstore export` it from the login node (the README's cluster \
         guide; `runstore doctor` checks a store), or set RUNSTORE_UNSAFE_LOCKS=1 to write anyway"
    )]
    LocksUnsupported {
        /// The store, or the lock file whose lock call failed.
        path: PathBuf,
        /// The filesystem type (`nfs4`, `lustre`, `fuse.sshfs`, ...), or `unknown`.
        fs: String,
        /// Why locks cannot work there, and what would make them work.
        reason: String,
    },

    /// A row was logged at a step before the run's next step, other than its last logged step.
    #[error("step {requested} is behind run {id:?}, {}", step_advice(*last, *next))]
    StepRegression {
        /// The run's id.
        id: String,
        /// The step that was asked for.
        requested: u64,
        /// The lowest new step that may be logged.
        next: u64,
        /// The last logged step, if any: a row logged there merges into it.
        last: Option<u64>,
    },

    /// A step at the very top of the `u64` range, which would leave no next step.
    #[error("step {step} is out of range: steps must be below 18446744073709551615")]
    StepOutOfRange {
        /// The step that was asked for.
        step: u64,
    },

    /// A rewind or fork at a step after the run's last logged step: there is nothing to go back
    /// to (or to fork from) there.
    #[error("step {requested} is after the last logged step of run {id:?} ({}): rewind or fork at or before it", last.map_or_else(|| "none".to_string(), |l| l.to_string()))]
    BeyondHistory {
        /// The run's id.
        id: String,
        /// The step that was asked for.
        requested: u64,
        /// The run's last logged step, `None` when it has no rows.
        last: Option<u64>,
    },

    /// A rewind of a fork to a step before the step it was forked at, whose rows belong to the
    /// parent run.
    #[error(
        "run {id:?} was forked from {parent:?} at step {fork_step}: it cannot rewind to {requested}; fork {parent:?} at {requested} instead"
    )]
    RewindBeforeFork {
        /// The fork's id.
        id: String,
        /// The step that was asked for.
        requested: u64,
        /// The run it was forked from.
        parent: String,
        /// The step it was forked at.
        fork_step: u64,
    },

    /// A fork cannot record a checkpoint of a step before the one it was forked at: those steps
    /// are its parent's, and resuming from it would rewind past the fork.
    #[error(
        "run {id:?} was forked from {parent:?} at step {fork_step}: a checkpoint of step {step} is of {parent:?}'s history; record it on {parent:?}, or checkpoint a step from {fork_step} on"
    )]
    CheckpointBeforeFork {
        /// The fork's id.
        id: String,
        /// The checkpoint's step.
        step: u64,
        /// The run it was forked from.
        parent: String,
        /// The step it was forked at.
        fork_step: u64,
    },

    /// A process forked from a run's writer (`fork()` without `exec`, as some data loaders do)
    /// tried to log to, flush or finish the run: only the process that started it writes it.
    /// Dropping the `Run` in the forked process leaves the run alone.
    #[error(
        "run {id:?} is written by process {owner}; process {pid} is a fork of it and cannot log to it, flush or finish it (start a run of its own instead)"
    )]
    ForkedProcess {
        /// The run.
        id: String,
        /// The process that writes it.
        owner: u32,
        /// This process.
        pid: u32,
    },

    /// A run cannot be deleted while runs forked from it exist: they read their history from it.
    #[error("run {id:?} has forks that read their history from it ({}): delete them first", forks.join(", "))]
    RunHasForks {
        /// The run asked to be deleted.
        id: String,
        /// The runs forked from it.
        forks: Vec<String>,
    },

    /// A tag that cannot be stored: empty, longer than 256 bytes, or with control characters.
    #[error("invalid tag {tag:?}: {reason}")]
    InvalidTag {
        /// The rejected tag.
        tag: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// An archived branch id that the run does not have.
    #[error("run {id:?} has no archived branch {branch}: list its branches with `runstore show`")]
    BranchNotFound {
        /// The run's id.
        id: String,
        /// The branch id asked for.
        branch: u32,
    },

    /// A queue name that cannot name a queue: the rules of run ids apply (1 to 64 characters of
    /// `[A-Za-z0-9_.-]`, not starting with `.`).
    #[error("invalid queue name {name:?}: {reason}")]
    InvalidQueueName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// No queue with this name exists in the store.
    #[error("queue {name:?} does not exist: fill it with `runstore queue push` or `runstore sweep`")]
    QueueNotFound {
        /// The queue name that was looked up.
        name: String,
    },

    /// The queue has no item with this id.
    #[error("queue {queue:?} has no item {item:?}: list its items with `runstore queue ls {queue}`")]
    QueueItemNotFound {
        /// The queue.
        queue: String,
        /// The item id that was looked up.
        item: String,
    },

    /// The queue already has an item with this id.
    #[error("queue {queue:?} already has an item {item:?}: choose another id, or remove that item first")]
    QueueItemExists {
        /// The queue.
        queue: String,
        /// The item id.
        item: String,
    },

    /// The item is claimed by a live agent, so it cannot be removed.
    #[error("item {item:?} of queue {queue:?} is being run by {claimant}: stop that agent first, or wait for the item")]
    QueueItemClaimed {
        /// The queue.
        queue: String,
        /// The item id.
        item: String,
        /// The agent process that claimed it.
        claimant: LockHolder,
    },

    /// A sweep search space that cannot be used.
    #[error("invalid sweep space {path}: {reason}")]
    InvalidSweepSpace {
        /// The space file (`(inline)` for text given directly).
        path: PathBuf,
        /// What is wrong with it, naming the parameter where there is one.
        reason: String,
    },

    /// A file written by a newer version of runstore, or a run database of format 1 (the
    /// development builds before format 2), which this build does not read: the message says
    /// how to move it.
    #[error("{}", unsupported_format(path, *found, *supported))]
    UnsupportedFormat {
        /// The store marker or run database.
        path: PathBuf,
        /// The version found in it.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },

    /// A file whose contents cannot be interpreted.
    #[error("{path} is damaged: {detail}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// An I/O error on a file of the store.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// The storage engine reported an error on a run database (full disk, I/O error, …).
    #[error("{path}: {source}")]
    Storage {
        /// The run database.
        path: PathBuf,
        /// The engine's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What may be logged instead of a step behind the run.
fn step_advice(last: Option<u64>, next: u64) -> String {
    match last {
        Some(last) if last.saturating_add(1) == next => {
            format!("whose last logged step is {last}: log at {last} (merged into that row) or later")
        }
        Some(last) => format!(
            "whose last logged step is {last} and next step {next}: log at {last} (merged into that row), or at {next} or later"
        ),
        None => format!("whose next step is {next}: log at {next} or later"),
    }
}

impl Error {
    /// The variant's name, as matched on: `RunLocked`, `StepRegression`, ...
    fn variant(&self) -> &'static str {
        match self {
            Error::InvalidRunId { .. } => "InvalidRunId",
            Error::InvalidMetricName { .. } => "InvalidMetricName",
            Error::InvalidConfig { .. } => "InvalidConfig",
            Error::InvalidEnvironment { .. } => "InvalidEnvironment",
            Error::RunIdRequired => "RunIdRequired",
            Error::RunNotFound { .. } => "RunNotFound",
            Error::RunExists { .. } => "RunExists",
            Error::RunLocked { .. } => "RunLocked",
            Error::LocksUnsupported { .. } => "LocksUnsupported",
            Error::StepRegression { .. } => "StepRegression",
            Error::StepOutOfRange { .. } => "StepOutOfRange",
            Error::BeyondHistory { .. } => "BeyondHistory",
            Error::RewindBeforeFork { .. } => "RewindBeforeFork",
            Error::CheckpointBeforeFork { .. } => "CheckpointBeforeFork",
            Error::ForkedProcess { .. } => "ForkedProcess",
            Error::BranchNotFound { .. } => "BranchNotFound",
            Error::RunHasForks { .. } => "RunHasForks",
            Error::InvalidTag { .. } => "InvalidTag",
            Error::InvalidQueueName { .. } => "InvalidQueueName",
            Error::QueueNotFound { .. } => "QueueNotFound",
            Error::QueueItemNotFound { .. } => "QueueItemNotFound",
            Error::QueueItemExists { .. } => "QueueItemExists",
            Error::QueueItemClaimed { .. } => "QueueItemClaimed",
            Error::InvalidSweepSpace { .. } => "InvalidSweepSpace",
            Error::UnsupportedFormat { .. } => "UnsupportedFormat",
            Error::Corrupt { .. } => "Corrupt",
            Error::Io { .. } => "Io",
            Error::Storage { .. } => "Storage",
        }
    }

    pub(crate) fn io(path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), source }
    }

    pub(crate) fn storage(path: impl AsRef<Path>, source: impl Into<redb::Error>) -> Self {
        let source: redb::Error = source.into();
        match source {
            redb::Error::Corrupted(detail) => return Error::Corrupt { path: path.as_ref().to_path_buf(), detail },
            // redb's word for a file that is not a database at all ("magic number mismatch").
            redb::Error::Io(error) if error.kind() == io::ErrorKind::InvalidData => {
                return Error::Corrupt { path: path.as_ref().to_path_buf(), detail: error.to_string() };
            }
            _ => {}
        }
        Error::Storage { path: path.as_ref().to_path_buf(), source: Box::new(source) }
    }

    pub(crate) fn corrupt(path: impl AsRef<Path>, detail: impl Into<String>) -> Self {
        Error::Corrupt { path: path.as_ref().to_path_buf(), detail: detail.into() }
    }
}

/// The variant and the message, then each underlying cause on a line of its own: what `?` in
/// `main` prints. The fields are in the message, in plain words (times as RFC 3339).
///
/// ```
/// let error = runstore::Error::RunNotFound { id: "nope".into() };
/// assert_eq!(
///     format!("{error:?}"),
///     "RunNotFound: run \"nope\" does not exist: check the id, or resume with `allow` to create it"
/// );
/// ```
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {self}", self.variant())?;
        let mut cause = std::error::Error::source(self);
        while let Some(error) = cause {
            let text = error.to_string();
            // Io and Storage print their source in their message already.
            if !self.to_string().ends_with(&text) {
                write!(f, "\n  caused by: {text}")?;
            }
            cause = error.source();
        }
        Ok(())
    }
}

/// Adds the path of the file being worked on to lower-level errors.
pub(crate) trait Context<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> Context<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| Error::io(path, source))
    }
}

impl<T> Context<T> for std::result::Result<T, crate::format::Corrupt> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|corrupt| Error::corrupt(path, corrupt.0))
    }
}

macro_rules! storage_context {
    ($($error:ty),*) => {$(
        impl<T> Context<T> for std::result::Result<T, $error> {
            fn at(self, path: &Path) -> Result<T> {
                self.map_err(|source| Error::storage(path, source))
            }
        }
    )*};
}

storage_context!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The message of [`Error::UnsupportedFormat`]: upgrade for a newer file, move an older one.
fn unsupported_format(path: &Path, found: u32, supported: u32) -> String {
    let path = path.display();
    if found > supported {
        format!("{path} has format version {found}, newer than {supported} that this runstore reads: upgrade runstore")
    } else {
        format!(
            "{path} has format version {found}, older than {supported} that this runstore reads (format 1 existed \
             only in development builds): export the run with the build that wrote it (`runstore export ID --format \
             jsonl`) and log its rows into a run of this build (`Run::log_at`, or `runstore log ID --step N KEY=VALUE`)"
        )
    }
}
