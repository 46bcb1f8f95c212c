//! # runstore
//!
//! An embedded, offline, crash-safe store for machine-learning runs, with the run-resuming
//! semantics of Weights & Biases (`resume = must | allow | never | auto`) and none of its gaps.
//!
//! A training program calls [`Store::init`], logs metrics from its hot loop with [`Run::log`],
//! and when the machine is preempted or the process crashes, the next start continues the same
//! run at the right step, with every flushed row intact. Other processes read the run while it
//! is written ([`Store::open_run`]); the `runstore` command line does the same from a shell.
//!
//! ```
//! use runstore::{Resume, RunOptions, RunState, Store};
//!
//! # let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?; // or Store::from_env(): RUNSTORE_DIR, else ./.runstore
//!
//! // First start: the run does not exist, `allow` creates it.
//! let options = || RunOptions::new().id("resnet-7").resume(Resume::Allow).config(serde_json::json!({"lr": 3e-4}));
//! let mut run = store.init(options())?;
//! for step in 0..1200 {
//!     run.log([("loss", 1.0 / (1.0 + step as f64))])?;
//! }
//! run.flush()?; // say a checkpoint was saved here
//! drop(run); // the process is preempted (a real crash leaves it `crashed`, not `failed`)
//!
//! // The job is requeued: the same id resumes at the next step.
//! let mut run = store.init(options())?;
//! assert!(run.resumed());
//! assert_eq!(run.step(), 1200);
//! run.log([("loss", 0.0008)])?;
//! run.finish(0)?;
//!
//! let reader = store.open_run("resnet-7")?;
//! assert_eq!(reader.info()?.state, RunState::Finished);
//! assert_eq!(reader.attempts()?.len(), 2);
//! assert_eq!(reader.history(..)?.count(), 1201);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Guarantees
//!
//! - **One writer per run.** `init` takes an exclusive OS lock on the run before it looks for
//!   it; a second writer gets [`Error::RunLocked`] naming the holder (pid, host, since). The OS
//!   releases the lock when the process dies, so a dead writer is noticed at once: the run
//!   reads as [`RunState::Crashed`]. Where the filesystem's locks cannot keep this promise (NFS
//!   mounted with `local_lock=flock`, Lustre `localflock` or `noflock`, sshfs, a failing `flock`),
//!   writers refuse with [`Error::LocksUnsupported`] before writing anything; see [`Filesystem`].
//! - **Nothing silently dropped or overwritten.** A step behind the run's next step is
//!   [`Error::StepRegression`]; an explicit id without a policy never touches an existing run.
//! - **Crash-safe.** Rows are committed in redb transactions together with the step counter and
//!   summary. After a crash every flushed row is there and the store opens cleanly; at most the
//!   unflushed buffer (one second, or [`RunOptions::flush_every`] rows) is lost.
//! - **Resume in constant time.** The step counter and summary are stored, not recomputed.
//!
//! ## Beyond one run
//!
//! - **Rewind** a run to the step of the checkpoint training restarts from
//!   ([`RunOptions::resume_from`], [`Run::rewind`], [`Store::rewind`]): the rows after it become an
//!   archived [`Branch`], readable with [`RunReader::branch_history`], never deleted.
//! - **Fork** a run at a step into a new one ([`Store::fork`]); nothing is copied.
//! - **Preemption**: [`Run::mark_preempting`], and the opt-in [`Run::stop_on_signals`] for SIGTERM
//!   and SIGINT.
//! - **Sweeps**: [`Queue`]s of run specs filled from a [`SearchSpace`], claimed exclusively by
//!   `runstore agent` processes, which requeue whatever is cut off.
//! - **System metrics**: [`RunOptions::system_metrics`] samples CPU, memory, disk, network and
//!   NVIDIA GPUs on a thread of its own, stored against time ([`RunReader::system`]).
//! - **Checks**: [`Store::check`] verifies a run's file, records and chunks.
//! - **Managing runs**: [`Store::delete_run`] (crash-safe: a run is whole or gone),
//!   [`Store::edit_tags`], [`Store::set_notes`]; [`Run::config`] is the config as stored.
//!
//! ## Environment
//!
//! What the code leaves unset, these fill: `RUNSTORE_RUN_ID`, `RUNSTORE_RESUME`,
//! `RUNSTORE_PROJECT`, [`ENV_SYSTEM_METRICS`] (`RUNSTORE_SYSTEM_METRICS=10`: record CPU, memory,
//! disk, network and GPUs every 10 s), and `RUNSTORE_DIR` for [`Store::from_env`]. [`ENV_UNSAFE_LOCKS`]
//! (`RUNSTORE_UNSAFE_LOCKS=1`) lets writers work where locks cannot keep one writer per run.

mod checkpoint;
mod error;
#[cfg(test)]
mod fault_tests;
mod files;
mod format;
mod fs_check;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod guard;
mod id;
mod lock;
mod manage;
mod options;
mod read;
mod resume;
mod state;
mod store;
mod sweep;
mod sys;
mod system;
mod write;

/// Every Rust block of the README, compiled (and run unless marked `no_run`) as a doctest, so
/// that the README's examples cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

pub use checkpoint::{Checkpoint, CheckpointChoice};
pub use error::{Error, Result};
pub use fs_check::{
    ENV_TEST_FLOCK_ERRNO, ENV_TEST_MOUNTINFO, ENV_UNSAFE_LOCKS, Filesystem, Linger, LockCall, LockSupport,
    fs_type_of_magic, unsafe_locks_allowed,
};
pub use id::{validate_metric_name, validate_run_id};
pub use options::{
    Durability, ENV_DIR, ENV_PROJECT, ENV_RESUME, ENV_RESUME_FROM, ENV_RUN_ID, ENV_SYSTEM_METRICS, Resume, RunOptions,
};
pub use read::check::{Integrity, Problem, RunCheck, StoreCheck};
pub use read::history::{History, Row, RowRef, Series, TimedSeries};
pub use read::overview::{Bucket, Envelope, MetricStats};
pub use read::reader::RunReader;
pub use read::snapshot::RunSnapshot;
pub use state::{Attempt, Branch, LockHolder, ParseError, RunInfo, RunState};
pub use store::{DEFAULT_DIR, Store};
pub use sweep::queue::{Claim, ENV_CONFIG, ItemExit, ItemState, Queue, QueueItem};
pub use sweep::space::{MAX_SWEEP_ITEMS, SearchSpace};
pub use sys::format_rfc3339;
#[doc(hidden)]
pub use system::sampler_cpu_time;
pub use write::interner::SYSTEM_PREFIX;
pub use write::run::Run;
