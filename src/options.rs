//! What `Store::init` is asked for: the run options builder and the environment variables.
//!
//! The environment fills what the code leaves unset: `RUNSTORE_RUN_ID`, `RUNSTORE_RESUME`,
//! `RUNSTORE_PROJECT`, `RUNSTORE_RESUME_FROM`, `RUNSTORE_SYSTEM_METRICS`, and `RUNSTORE_CONFIG` (a
//! JSON object, set by `runstore agent` for the queue item it runs).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::state::ParseError;

/// The run id to create or resume (`RUNSTORE_RUN_ID`).
pub const ENV_RUN_ID: &str = "RUNSTORE_RUN_ID";
/// The resume policy: `must`, `allow`, `never` or `auto` (`RUNSTORE_RESUME`).
pub const ENV_RESUME: &str = "RUNSTORE_RESUME";
/// The project of a new run (`RUNSTORE_PROJECT`).
pub const ENV_PROJECT: &str = "RUNSTORE_PROJECT";
/// Rewind the resumed run to this step first (`RUNSTORE_RESUME_FROM`): the step of the
/// checkpoint training restarts from, or `checkpoint` for the latest recorded checkpoint whose
/// file exists (see [`RunOptions::resume_from_checkpoint`]).
pub const ENV_RESUME_FROM: &str = "RUNSTORE_RESUME_FROM";
/// Record system metrics every this many seconds (`RUNSTORE_SYSTEM_METRICS`): a number such as
/// `10` or `0.5`; `0` or `off` records none. See [`RunOptions::system_metrics`], which wins over it.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let store = runstore::Store::open(dir.path())?;
/// // A launcher turns sampling on for a training command that does not ask for it:
/// let mut command = std::process::Command::new("./train");
/// command.env(runstore::ENV_SYSTEM_METRICS, "10");
/// assert_eq!(runstore::ENV_SYSTEM_METRICS, "RUNSTORE_SYSTEM_METRICS");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub const ENV_SYSTEM_METRICS: &str = "RUNSTORE_SYSTEM_METRICS";
/// The store directory (`RUNSTORE_DIR`, default `./.runstore`).
///
/// The variables' names, for a launcher that sets them for a training command:
///
/// ```
/// use runstore::{ENV_DIR, ENV_PROJECT, ENV_RESUME, ENV_RESUME_FROM, ENV_RUN_ID};
///
/// let mut command = std::process::Command::new("./train");
/// command
///     .env(ENV_DIR, "/scratch/runs")
///     .env(ENV_RUN_ID, "resnet-7")
///     .env(ENV_RESUME, "allow")
///     .env(ENV_PROJECT, "cifar")
///     .env(ENV_RESUME_FROM, "1000");
/// assert_eq!(ENV_RESUME_FROM, "RUNSTORE_RESUME_FROM");
/// ```
pub const ENV_DIR: &str = "RUNSTORE_DIR";

/// What `init` does when a run with the requested id exists, or does not.
///
/// | policy | id exists | id does not exist |
/// |---|---|---|
/// | `Must` | resume it | [`Error::RunNotFound`] |
/// | `Allow` | resume it | create it |
/// | `Never` | [`Error::RunExists`] | create it |
/// | `Auto` | resume the run that did not finish in this working directory | create a new run |
///
/// With an id but no policy, `init` behaves as `Never`: an existing run is never overwritten
/// or mixed into.
///
/// ```
/// use runstore::Resume;
///
/// assert_eq!("allow".parse::<Resume>()?, Resume::Allow);
/// assert!("sometimes".parse::<Resume>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Resume {
    /// Resume the run; it must exist.
    Must,
    /// Resume the run if it exists, else create it.
    Allow,
    /// Create the run; it must not exist.
    Never,
    /// Resume the run left unfinished in this working directory, else start a new one (also
    /// when that run is live in another process: it did not crash).
    Auto,
}

impl Resume {
    /// The lowercase name used by `RUNSTORE_RESUME` and the command line.
    ///
    /// ```
    /// assert_eq!(runstore::Resume::Must.as_str(), "must");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Resume::Must => "must",
            Resume::Allow => "allow",
            Resume::Never => "never",
            Resume::Auto => "auto",
        }
    }
}

impl fmt::Display for Resume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Resume {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, ParseError> {
        [Resume::Must, Resume::Allow, Resume::Never, Resume::Auto]
            .into_iter()
            .find(|policy| policy.as_str() == text)
            .ok_or_else(|| ParseError {
                what: "resume policy",
                given: text.to_string(),
                expected: "must, allow, never, auto",
            })
    }
}

/// When logged rows reach the disk.
///
/// ```
/// use runstore::{Durability, RunOptions};
///
/// let options = RunOptions::new().durability(Durability::EveryLog);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Rows are buffered and committed by a background thread every second, every
    /// [`RunOptions::flush_every`] rows, on `flush`, `mark_preempting` and `finish`. A log call
    /// never waits for the disk, unless the buffer is full because the disk cannot keep up.
    #[default]
    Buffered,
    /// Every `log` makes its row durable before it returns: it appends the row to the run's
    /// journal and syncs it (one `fdatasync`), and the background thread folds the journal into
    /// the database as `Buffered` commits (readers of a live run see a row once it is folded:
    /// within a second, at once after [`Run::flush`](crate::Run::flush)). After a crash the
    /// next reader or writer of the run folds what the journal holds.
    EveryLog,
}

/// Default rows per flush.
pub(crate) const DEFAULT_FLUSH_ROWS: usize = 65_536;
/// Default longest time between flushes.
pub(crate) const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// The shortest interval between system samples: shorter ones are raised to it.
pub(crate) const MIN_SYSTEM_INTERVAL: Duration = Duration::from_millis(10);

/// How to start or resume a run: a builder passed to [`crate::Store::init`].
///
/// Every field is optional. What the code leaves unset, the environment fills:
/// `RUNSTORE_RUN_ID`, `RUNSTORE_RESUME`, `RUNSTORE_PROJECT`, `RUNSTORE_SYSTEM_METRICS`…
/// Explicit values win.
///
/// ```
/// use runstore::{Resume, RunOptions};
///
/// let options = RunOptions::new()
///     .id("resnet-7")
///     .resume(Resume::Allow)
///     .project("vision")
///     .name("resnet, lr 3e-4")
///     .tags(["baseline", "bf16"])
///     .notes("first try with the new augmentations")
///     .config(serde_json::json!({"lr": 3e-4, "batch": 256}));
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct RunOptions {
    pub(crate) id: Option<String>,
    pub(crate) resume: Option<Resume>,
    pub(crate) project: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) notes: Option<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) config: Option<std::result::Result<serde_json::Map<String, serde_json::Value>, String>>,
    pub(crate) durability: Durability,
    pub(crate) flush_rows: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) use_environment: bool,
    pub(crate) working_dir: Option<PathBuf>,
    pub(crate) resume_from: Option<u64>,
    pub(crate) resume_from_checkpoint: bool,
    pub(crate) fork: Option<(String, u64)>,
    /// The interval of system samples; `Some(ZERO)` is explicitly off.
    pub(crate) system_metrics: Option<Duration>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            id: None,
            resume: None,
            project: None,
            name: None,
            notes: None,
            tags: Vec::new(),
            config: None,
            durability: Durability::Buffered,
            flush_rows: DEFAULT_FLUSH_ROWS,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            use_environment: true,
            working_dir: None,
            resume_from: None,
            resume_from_checkpoint: false,
            fork: None,
            system_metrics: None,
        }
    }
}

impl RunOptions {
    /// Options with nothing set: a new run with a generated id, unless the environment says
    /// otherwise.
    pub fn new() -> Self {
        Self::default()
    }

    /// The run id to create or resume. Validated by `init` ([`Error::InvalidRunId`]).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The resume policy.
    pub fn resume(mut self, policy: Resume) -> Self {
        self.resume = Some(policy);
        self
    }

    /// The project the run belongs to.
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// A display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Free-form notes; on resume they replace the stored notes.
    pub fn notes(mut self, notes: impl Into<String>) -> Self {
        self.notes = Some(notes.into());
        self
    }

    /// Adds one tag; on resume, tags are added to the stored ones.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// use runstore::RunOptions;
    ///
    /// store.init(RunOptions::new().id("t").tag("baseline").tags(["cifar", "resnet"]))?.finish(0)?;
    /// assert_eq!(store.open_run("t")?.info()?.tags, ["baseline", "cifar", "resnet"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Adds tags; on resume, tags are added to the stored ones.
    pub fn tags<I, T>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// The run's config: anything that serialises to a JSON object. On resume it is merged
    /// into the stored config: keys are added or updated, nested objects merged, none dropped.
    /// Anything other than an object makes `init` fail with [`Error::InvalidConfig`].
    pub fn config(mut self, config: impl Serialize) -> Self {
        self.config = Some(match serde_json::to_value(config) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(other) => Err(format!("expected a JSON object, got {}", json_kind(&other))),
            Err(error) => Err(error.to_string()),
        });
        self
    }

    /// When rows reach the disk; [`Durability::Buffered`] by default.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Buffered mode flushes when this many rows are waiting, or when `interval` has passed
    /// since the last flush. Defaults: 65 536 rows, 1 second. Zero values are raised to 1 row
    /// and 1 millisecond.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// use std::time::Duration;
    /// use runstore::RunOptions;
    ///
    /// // A flush at least every 100 rows or every 10 seconds, whichever comes first.
    /// let mut run = store.init(RunOptions::new().flush_every(100, Duration::from_secs(10)))?;
    /// for step in 0..250 {
    ///     run.log([("loss", 1.0 / (1.0 + f64::from(step)))])?;
    /// }
    /// run.finish(0)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush_every(mut self, rows: usize, interval: Duration) -> Self {
        self.flush_rows = rows.max(1);
        self.flush_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// When the run is resumed, first rewind it to `step`: the rows after it become an archived
    /// branch (readable, never deleted) and the next `log` uses `step + 1`. For training that
    /// restarts from a checkpoint older than the last logged step. Rewinding to the last
    /// logged step changes nothing; a later step is [`Error::BeyondHistory`], and so is a
    /// `resume_from` on a run that `init` creates.
    pub fn resume_from(mut self, step: u64) -> Self {
        self.resume_from = Some(step);
        self
    }

    /// When the run is resumed, rewind it to its latest recorded checkpoint whose file still
    /// exists (see [`crate::Run::checkpoint`]): the rows after that checkpoint's step become an
    /// archived branch, the next `log` uses `step + 1`, and [`crate::Run::resumed_checkpoint`]
    /// returns it for the program to load. Newer checkpoints whose files are gone are skipped
    /// and named in [`crate::Run::warnings`]. With no such checkpoint, every earlier row is
    /// archived and the attempt starts at step 0 (a fork: at its fork step + 1), since the
    /// program starts from scratch. A run that `init` creates starts as usual.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path().join("store"))?;
    /// use runstore::{Resume, RunOptions};
    ///
    /// let mut run = store.init(RunOptions::new().id("t"))?;
    /// for step in 0..250 {
    ///     run.log([("loss", 1.0 / (1.0 + step as f64))])?;
    ///     if step % 100 == 99 {
    ///         let path = dir.path().join(format!("ckpt-{step}.pt"));
    ///         std::fs::write(&path, b"state")?;
    ///         run.checkpoint(&path)?;
    ///     }
    /// }
    /// drop(run); // the process dies at step 249
    ///
    /// let run = store.init(RunOptions::new().id("t").resume(Resume::Must).resume_from_checkpoint())?;
    /// let checkpoint = run.resumed_checkpoint().expect("ckpt-199.pt exists");
    /// assert_eq!((checkpoint.step, run.step()), (199, 200));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resume_from_checkpoint(mut self) -> Self {
        self.resume_from_checkpoint = true;
        self
    }

    /// When `init` creates the run, make it a fork of run `source` at step `at`: its history up
    /// to `at` is `source`'s (read from `source`, not copied), its config is `source`'s merged
    /// with this one, its project, its tags and its name (as `NAME (fork at AT)`) are
    /// `source`'s unless these options give them, and `source` is unchanged. When the run already exists, the policy decides
    /// as usual (`allow` resumes the fork made earlier).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// use runstore::RunOptions;
    ///
    /// let mut base = store.init(RunOptions::new().id("base"))?;
    /// for step in 0..100 {
    ///     base.log([("loss", 1.0 / (1.0 + f64::from(step)))])?;
    /// }
    /// base.finish(0)?;
    /// let fork = store.init(RunOptions::new().id("low-lr").fork_of("base", 49).config(serde_json::json!({"lr": 1e-4})))?;
    /// assert_eq!(fork.step(), 50);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fork_of(mut self, source: impl Into<String>, at: u64) -> Self {
        self.fork = Some((source.into(), at));
        self
    }

    /// Records system metrics every `interval` while the run is live: CPU, memory, disk, network
    /// and NVIDIA GPUs, as the time-indexed series `system/...` (the list is in
    /// `docs/design.md`), read back with [`crate::RunReader::system`]. A background thread takes
    /// the readings; log calls never wait for it. Off by default; `Duration::ZERO` turns it off
    /// also when [`ENV_SYSTEM_METRICS`] asks for it, since an explicit value wins over the
    /// environment, as for every option. Intervals under 10 ms are raised to 10 ms.
    ///
    /// Samples are committed with the rows (at each flush); those of the last moments are
    /// committed by `finish`. Without a GPU, or without NVIDIA's `libnvidia-ml.so.1`, no GPU
    /// series is recorded and [`crate::Run::warnings`] and [`crate::RunInfo::system_notes`] say
    /// why.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// use std::time::Duration;
    /// use runstore::RunOptions;
    ///
    /// let mut run = store.init(RunOptions::new().id("t").system_metrics(Duration::from_secs(10)))?;
    /// run.log([("loss", 0.5)])?; // train: a sample of every series every 10 s meanwhile
    /// run.finish(0)?;
    /// let reader = store.open_run("t")?;
    /// assert!(reader.metrics()?.contains(&"system/memory_rss_mib".to_string()));
    /// let rss = reader.system("system/memory_rss_mib", ..)?; // (time, MiB), one per 10 s of the run
    /// # let _ = rss;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn system_metrics(mut self, interval: Duration) -> Self {
        self.system_metrics = Some(if interval.is_zero() { interval } else { interval.max(MIN_SYSTEM_INTERVAL) });
        self
    }

    /// The interval of system samples this run is to record, if any.
    pub(crate) fn system_interval(&self) -> Option<Duration> {
        self.system_metrics.filter(|interval| !interval.is_zero())
    }

    /// Ignore `RUNSTORE_RUN_ID`, `RUNSTORE_RESUME`, `RUNSTORE_PROJECT`, `RUNSTORE_RESUME_FROM`,
    /// `RUNSTORE_SYSTEM_METRICS` and `RUNSTORE_CONFIG`.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// use runstore::RunOptions;
    ///
    /// // Whatever RUNSTORE_RUN_ID says, this creates the run "probe".
    /// let run = store.init(RunOptions::new().id("probe").ignore_environment())?;
    /// assert_eq!(run.id(), "probe");
    /// # run.finish(0)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ignore_environment(mut self) -> Self {
        self.use_environment = false;
        self
    }

    /// The directory whose `auto` pointer is used and updated; default: the current directory.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path().join("store"))?;
    /// use runstore::{Resume, RunOptions};
    ///
    /// let job = dir.path().join("job");
    /// std::fs::create_dir(&job)?;
    /// let auto = || RunOptions::new().resume(Resume::Auto).working_dir(&job);
    /// let first = store.init(auto())?;
    /// let id = first.id().to_string();
    /// drop(first); // it did not finish: the next auto start in `job` resumes it
    /// assert_eq!(store.init(auto())?.id(), id);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn working_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }

    /// The options with the environment filled in where the code left a field unset.
    pub(crate) fn with_environment(mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        if !self.use_environment {
            return Ok(self);
        }
        let get = |name: &str| lookup(name).and_then(|value| environment_value(value.into())?.into_string().ok());
        if self.id.is_none() {
            self.id = get(ENV_RUN_ID).map(|id| id.trim().to_string());
        }
        if self.resume.is_none()
            && let Some(value) = get(ENV_RESUME)
        {
            let policy = value.trim().to_ascii_lowercase().parse().map_err(|_| Error::InvalidEnvironment {
                variable: ENV_RESUME,
                value,
                reason: "expected must, allow, never or auto",
            })?;
            self.resume = Some(policy);
        }
        if self.project.is_none() {
            self.project = get(ENV_PROJECT);
        }
        if self.config.is_none()
            && let Some(value) = get(crate::sweep::queue::ENV_CONFIG)
        {
            // Set by `runstore agent` for the queue item being run.
            self.config = Some(match serde_json::from_str(&value) {
                Ok(serde_json::Value::Object(map)) => Ok(map),
                _ => {
                    return Err(Error::InvalidEnvironment {
                        variable: crate::sweep::queue::ENV_CONFIG,
                        value,
                        reason: "expected a JSON object",
                    });
                }
            });
        }
        if self.resume_from.is_none()
            && !self.resume_from_checkpoint
            && let Some(value) = get(ENV_RESUME_FROM)
        {
            if value.trim().eq_ignore_ascii_case("checkpoint") {
                self.resume_from_checkpoint = true;
            } else {
                let step = value.trim().parse().map_err(|_| Error::InvalidEnvironment {
                    variable: ENV_RESUME_FROM,
                    value,
                    reason: "expected a step number or checkpoint",
                })?;
                self.resume_from = Some(step);
            }
        }
        if self.system_metrics.is_none()
            && let Some(value) = get(ENV_SYSTEM_METRICS)
        {
            let interval = parse_interval(&value).ok_or(Error::InvalidEnvironment {
                variable: ENV_SYSTEM_METRICS,
                value,
                reason: "expected seconds between samples (such as 10 or 0.5), or 0 or off",
            })?;
            self = self.system_metrics(interval);
        }
        Ok(self)
    }
}

/// `RUNSTORE_SYSTEM_METRICS`'s value: seconds (a finite number, at least 0), or `off`.
fn parse_interval(text: &str) -> Option<Duration> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Some(Duration::ZERO);
    }
    let seconds: f64 = text.trim().parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// "a number", "an array"…: what a JSON value is, for error messages.
pub(crate) fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A variable's value as every variable of the library is read: trimmed, and unset when that
/// leaves nothing. A value that is not UTF-8 (a path) is kept as it is unless empty.
pub(crate) fn environment_value(value: std::ffi::OsString) -> Option<std::ffi::OsString> {
    match value.to_str() {
        Some(text) => Some(text.trim()).filter(|text| !text.is_empty()).map(std::ffi::OsString::from),
        None => Some(value).filter(|value| !value.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_is_trimmed_and_a_blank_one_is_unset() {
        let options = RunOptions::new()
            .with_environment(env(&[("RUNSTORE_PROJECT", "  vision \t"), ("RUNSTORE_RUN_ID", "   ")]))
            .unwrap();
        assert_eq!((options.project.as_deref(), options.id.as_deref()), (Some("vision"), None));
        assert_eq!(environment_value("   ".into()), None);
        assert_eq!(environment_value(" /scratch/runs ".into()), Some("/scratch/runs".into()));
    }

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_string())
    }

    #[test]
    fn the_environment_fills_what_the_code_leaves_unset() {
        let vars = env(&[(ENV_RUN_ID, "from-env"), (ENV_RESUME, "allow"), (ENV_PROJECT, "p-env")]);
        let filled = RunOptions::new().with_environment(&vars).unwrap();
        assert_eq!(filled.id.as_deref(), Some("from-env"));
        assert_eq!(filled.resume, Some(Resume::Allow));
        assert_eq!(filled.project.as_deref(), Some("p-env"));

        let explicit = RunOptions::new().id("code").resume(Resume::Must).project("p").with_environment(&vars).unwrap();
        assert_eq!(explicit.id.as_deref(), Some("code"));
        assert_eq!(explicit.resume, Some(Resume::Must));
        assert_eq!(explicit.project.as_deref(), Some("p"));

        let configured = RunOptions::new().with_environment(env(&[("RUNSTORE_CONFIG", r#"{"lr": 0.5}"#)])).unwrap();
        assert_eq!(configured.config, Some(Ok(serde_json::json!({"lr": 0.5}).as_object().cloned().unwrap())));
        let explicit = RunOptions::new().config(serde_json::json!({"lr": 1}));
        let explicit = explicit.with_environment(env(&[("RUNSTORE_CONFIG", r#"{"lr": 0.5}"#)])).unwrap();
        assert_eq!(explicit.config, Some(Ok(serde_json::json!({"lr": 1}).as_object().cloned().unwrap())));
        assert!(RunOptions::new().with_environment(env(&[("RUNSTORE_CONFIG", "[1]")])).is_err());

        let ignored = RunOptions::new().ignore_environment().with_environment(&vars).unwrap();
        assert_eq!((ignored.id, ignored.resume), (None, None));
    }

    #[test]
    fn a_bad_policy_in_the_environment_is_a_typed_error() {
        let result = RunOptions::new().with_environment(env(&[(ENV_RESUME, "sometimes")]));
        assert!(matches!(result, Err(Error::InvalidEnvironment { variable: ENV_RESUME, .. })));
        let empty = RunOptions::new().with_environment(env(&[(ENV_RESUME, " ")])).unwrap();
        assert_eq!(empty.resume, None);
    }

    #[test]
    fn system_metrics_come_from_the_environment_unless_the_code_says() {
        let interval = |value: &str| {
            let lookup = |name: &str| (name == ENV_SYSTEM_METRICS).then(|| value.to_string());
            RunOptions::new().with_environment(lookup).map(|options| options.system_interval())
        };
        assert_eq!(interval("10").unwrap(), Some(Duration::from_secs(10)));
        assert_eq!(interval(" 0.5 ").unwrap(), Some(Duration::from_millis(500)));
        assert_eq!(interval("0.001").unwrap(), Some(MIN_SYSTEM_INTERVAL));
        for off in ["0", "off", "OFF", "0.0", ""] {
            assert_eq!(interval(off).unwrap(), None, "{off}");
        }
        for bad in ["ten", "-1", "inf", "NaN", "1e400", "10s"] {
            let result = interval(bad);
            assert!(
                matches!(&result, Err(Error::InvalidEnvironment { variable: ENV_SYSTEM_METRICS, value, .. }) if value == bad),
                "{bad}: {result:?}"
            );
        }
        let vars = env(&[(ENV_SYSTEM_METRICS, "10")]);
        let off = RunOptions::new().system_metrics(Duration::ZERO).with_environment(&vars).unwrap();
        assert_eq!(off.system_interval(), None);
        let code = RunOptions::new().system_metrics(Duration::from_secs(2)).with_environment(&vars).unwrap();
        assert_eq!(code.system_interval(), Some(Duration::from_secs(2)));
        let ignored = RunOptions::new().ignore_environment().with_environment(&vars).unwrap();
        assert_eq!(ignored.system_interval(), None);
    }

    #[test]
    fn a_config_must_be_an_object() {
        assert!(matches!(RunOptions::new().config(serde_json::json!([1, 2])).config, Some(Err(_))));
        assert!(matches!(RunOptions::new().config(serde_json::json!({"a": 1})).config, Some(Ok(_))));
    }
}
