//! What a run is doing and has done: its state, its attempts, who holds it.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The state of a run.
///
/// | state | meaning | left by |
/// |---|---|---|
/// | `Running` | a process holds the run's lock and writes it | `init` |
/// | `Finished` | the last attempt ended with exit code 0 | `finish(0)` |
/// | `Failed` | the last attempt ended with a non-zero code, or its `Run` was dropped unfinished | `finish(n)`, drop |
/// | `Crashed` | the writer died: stored `Running` while no process holds the lock | process death |
/// | `Preempting` | marked with `mark_preempting`, still running | `mark_preempting` |
/// | `Preempted` | marked preempting, then died or ended with a non-zero code | death, `finish(n)` |
///
/// ```
/// use runstore::RunState;
///
/// let state: RunState = "crashed".parse()?;
/// assert_eq!(state, RunState::Crashed);
/// assert_eq!(state.to_string(), "crashed");
/// assert!(state.is_resumable());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RunState {
    /// A process holds the run's lock.
    Running,
    /// Ended with exit code 0.
    Finished,
    /// Ended with a non-zero exit code, or dropped without `finish`.
    Failed,
    /// The writing process died without finishing.
    Crashed,
    /// Marked preempting; still running.
    Preempting,
    /// Marked preempting, then died or ended with a non-zero exit code.
    Preempted,
}

impl RunState {
    /// All states, in the order of the table above.
    pub const ALL: [RunState; 6] = [
        RunState::Running,
        RunState::Finished,
        RunState::Failed,
        RunState::Crashed,
        RunState::Preempting,
        RunState::Preempted,
    ];

    /// The lowercase name used in the command line and in JSON.
    ///
    /// ```
    /// assert_eq!(runstore::RunState::Preempted.as_str(), "preempted");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Finished => "finished",
            RunState::Failed => "failed",
            RunState::Crashed => "crashed",
            RunState::Preempting => "preempting",
            RunState::Preempted => "preempted",
        }
    }

    /// Whether a process is writing the run right now.
    ///
    /// ```
    /// assert!(runstore::RunState::Preempting.is_live());
    /// ```
    #[must_use]
    pub fn is_live(self) -> bool {
        matches!(self, RunState::Running | RunState::Preempting)
    }

    /// Whether the run ended without success, so that `auto` resumes it: failed, crashed or
    /// preempted.
    ///
    /// ```
    /// assert!(!runstore::RunState::Finished.is_resumable());
    /// ```
    #[must_use]
    pub fn is_resumable(self) -> bool {
        matches!(self, RunState::Failed | RunState::Crashed | RunState::Preempted)
    }

    /// What a stored state means when no process holds the run's lock.
    pub(crate) fn without_writer(self) -> RunState {
        match self {
            RunState::Running => RunState::Crashed,
            RunState::Preempting => RunState::Preempted,
            other => other,
        }
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`RunState`] or [`crate::Resume`] from text.
///
/// ```
/// let error = "sleeping".parse::<runstore::RunState>().unwrap_err();
/// assert!(error.to_string().starts_with("unknown run state \"sleeping\": expected one of"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {given:?}: expected one of {expected}")]
pub struct ParseError {
    pub(crate) what: &'static str,
    pub(crate) given: String,
    pub(crate) expected: &'static str,
}

impl FromStr for RunState {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        RunState::ALL.into_iter().find(|state| state.as_str() == text).ok_or_else(|| ParseError {
            what: "run state",
            given: text.to_string(),
            expected: "running, finished, failed, crashed, preempting, preempted",
        })
    }
}

/// The process that holds a run's lock, as it recorded itself in the lock file.
///
/// ```
/// use runstore::LockHolder;
///
/// let holder = LockHolder::current();
/// assert_eq!(holder.pid, std::process::id());
/// assert!(holder.to_string().starts_with(&format!("pid {}", holder.pid)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LockHolder {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// When it took the lock.
    #[serde(with = "unix_ms")]
    pub since: SystemTime,
    /// What it does, when it is not the run's writer (a reader recovering the database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

impl LockHolder {
    /// This process, now.
    #[must_use]
    pub fn current() -> Self {
        LockHolder { pid: std::process::id(), host: crate::sys::hostname(), since: SystemTime::now(), task: None }
    }

    /// A holder whose record could not be read (the lock is held, the file says nothing).
    pub(crate) fn unknown() -> Self {
        LockHolder { pid: 0, host: "unknown host".into(), since: UNIX_EPOCH, task: None }
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pid == 0 {
            return f.write_str("a process that has not recorded itself yet");
        }
        write!(f, "pid {} on {} since {}", self.pid, self.host, crate::sys::format_rfc3339(self.since))?;
        match &self.task {
            Some(task) => write!(f, " ({task})"),
            None => Ok(()),
        }
    }
}

/// Serde helper: a `SystemTime` as milliseconds since the Unix epoch.
pub(crate) mod unix_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    pub(crate) fn serialize<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(crate::sys::to_ms(*time))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
        Ok(crate::sys::from_ms(u64::deserialize(deserializer)?))
    }
}

/// One process's session with a run: a resumed run has several.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use runstore::{RunOptions, RunState, Store};
///
/// let store = Store::open(dir.path())?;
/// let run = store.init(RunOptions::new().id("a"))?;
/// run.finish(0)?;
/// let attempts = store.open_run("a")?.attempts()?;
/// assert_eq!(attempts.len(), 1);
/// assert_eq!(attempts[0].outcome, Some(RunState::Finished));
/// assert_eq!(attempts[0].pid, std::process::id());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Attempt {
    /// 1 for the run's first attempt.
    pub number: u32,
    /// When the process called `init`.
    pub started_at: SystemTime,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// The run's next step when the attempt started: after the rewind of `resume_from`, if one
    /// was asked for, and moved back to `N + 1` if the attempt later rewound the run to `N` below it.
    pub first_step: u64,
    /// When it ended: at `finish`, or the last flush of a process that died. `None` while live.
    pub ended_at: Option<SystemTime>,
    /// The last step stored when it ended.
    pub last_step: Option<u64>,
    /// How it ended: finished, failed, crashed or preempted. `None` while live.
    pub outcome: Option<RunState>,
    /// The exit code given to `finish`, if any.
    pub exit_code: Option<i32>,
}

/// A snapshot of a run's metadata: what `runstore show` prints.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use runstore::{RunOptions, RunState, Store};
///
/// let store = Store::open(dir.path())?;
/// let mut run = store.init(RunOptions::new().id("a").project("demo"))?;
/// run.log([("loss", 0.5)])?;
/// run.finish(0)?;
/// let info = store.open_run("a")?.info()?;
/// assert_eq!(info.project.as_deref(), Some("demo"));
/// assert_eq!((info.state, info.next_step, info.rows), (RunState::Finished, 1, 1));
/// assert_eq!(info.summary["loss"], 0.5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunInfo {
    /// The run id.
    pub id: String,
    /// Project, if set.
    pub project: Option<String>,
    /// Display name, if set.
    pub name: Option<String>,
    /// Tags, in the order first given.
    pub tags: Vec<String>,
    /// Free-form notes.
    pub notes: Option<String>,
    /// The config, a JSON object.
    pub config: serde_json::Map<String, serde_json::Value>,
    /// The state, with `Crashed`/`Preempted` derived from the lock.
    pub state: RunState,
    /// The exit code of the last `finish`, if any.
    pub exit_code: Option<i32>,
    /// The step the next `log` will use.
    pub next_step: u64,
    /// The step of the last stored row.
    pub last_step: Option<u64>,
    /// Rows in the history.
    pub rows: u64,
    /// Last value of each metric, and the values set with `Run::set_summary`.
    pub summary: std::collections::BTreeMap<String, f64>,
    /// When the run was created.
    pub created_at: SystemTime,
    /// The last time rows or state were stored.
    pub updated_at: SystemTime,
    /// How many attempts (sessions) the run has had.
    pub attempts: u32,
    /// How many archived branches (rewinds that moved rows) the run has.
    pub branches: u32,
    /// For a fork: the parent run and the step it was forked at.
    pub forked_from: Option<(String, u64)>,
    /// What the system-metrics sampler of the last attempt that recorded system metrics noted,
    /// such as `system metrics: no GPU metrics (libnvidia-ml.so.1 not found)`; empty when it
    /// noted nothing or none ran. See [`crate::RunOptions::system_metrics`].
    pub system_notes: Vec<String>,
}

/// An archived branch: the rows one rewind moved out of the live history. Readable with
/// [`crate::RunReader::branch_history`]; never deleted implicitly.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let store = runstore::Store::open(dir.path())?;
/// let mut run = store.init(runstore::RunOptions::new().id("r"))?;
/// for step in 0..100 {
///     run.log([("loss", f64::from(step))])?;
/// }
/// run.rewind(49)?; // training restarts from the checkpoint of step 49
/// run.finish(0)?;
/// let branch = &store.open_run("r")?.branches()?[0];
/// assert_eq!((branch.id, branch.rewound_to, branch.first_step, branch.last_step, branch.rows), (0, 49, 50, 99, 50));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Branch {
    /// The branch id: 0 for the run's first rewind, then 1, 2, …
    pub id: u32,
    /// When the rewind happened.
    pub created_at: SystemTime,
    /// The step the run was rewound to; the branch holds the rows after it.
    pub rewound_to: u64,
    /// The branch's first step.
    pub first_step: u64,
    /// The branch's last step.
    pub last_step: u64,
    /// Rows in the branch.
    pub rows: u64,
    /// The attempt that rewound the run; 0 when rewound from outside any attempt
    /// ([`crate::Store::rewind`]).
    pub by_attempt: u32,
    /// The attempts that logged the branch's steps.
    pub attempts: Vec<u32>,
    /// The checkpoints the rewind archived (their numbers): never a resume point again.
    pub checkpoints: Vec<u32>,
    /// Whether the rewind archived every row, step 0 included (a resume from checkpoint that
    /// found none): `rewound_to` is then 0 but step 0 is in the branch.
    pub restarted: bool,
}

impl Branch {
    pub(crate) fn from_record(id: u32, record: crate::format::records::BranchRecord) -> Branch {
        Branch {
            id,
            created_at: crate::sys::from_ms(record.created_at_ms),
            rewound_to: record.rewound_to,
            first_step: record.first_step,
            last_step: record.last_step,
            rows: record.rows,
            by_attempt: record.by_attempt,
            attempts: record.attempts,
            checkpoints: record.checkpoints,
            restarted: record.restarted,
        }
    }
}

pub(crate) fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
