//! A store directory: where runs live, how `init` creates or resumes one, and `auto` pointers.
//!
//! ```text
//! <store>/FORMAT               {"runstore_format": 1}
//! <store>/runs/<id>/run.redb   the run database (see docs/design.md)
//! <store>/runs/<id>/lock       the run's OS lock and its holder record
//! <store>/auto/<hash>.json     {"dir": ..., "run_id": ...}: the run `auto` resumes in <dir>
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checkpoint::CheckpointChoice;
use crate::error::{Context, Error, Result};
use crate::files::{TempFile, sync_dir, write_atomically};
use crate::format::STORE_FORMAT_VERSION;
use crate::format::records::{AttemptRecord, ForkOrigin, RunRecord};
use crate::fs_check;
use crate::id::{generate_run_id, validate_run_id};
use crate::lock::RunLock;
use crate::options::{ENV_DIR, Resume, RunOptions};
use crate::read::reader::RunReader;
use crate::resume::{Action, Request, Snapshot, decide};
use crate::state::{Branch, RunInfo};
use crate::sys;
use crate::system::Setup;
use crate::write::run::{Run, RunParts};
use crate::write::writer::{ForkSeed, RewindTarget, Writer};

pub(crate) const MARKER: &str = "FORMAT";
pub(crate) const RUNS: &str = "runs";
const AUTO: &str = "auto";
pub(crate) const DATABASE: &str = "run.redb";
pub(crate) const LOCK: &str = "lock";

/// The default store directory, relative to the working directory.
///
/// ```
/// // Store::from_env() opens this one when RUNSTORE_DIR is unset.
/// assert_eq!(runstore::DEFAULT_DIR, ".runstore");
/// ```
pub const DEFAULT_DIR: &str = ".runstore";

#[derive(Serialize, Deserialize)]
struct Marker {
    runstore_format: u32,
}

/// A directory of runs. Cheap to open and clone; it holds no file handles.
///
/// The directory and its format marker are created by the first [`Store::init`]; reading a
/// store that does not exist yet finds no runs.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use runstore::{Resume, RunOptions, Store};
///
/// let store = Store::open(dir.path().join("runs-here"))?;
/// assert!(store.run_ids()?.is_empty());
/// let run = store.init(RunOptions::new().id("first").resume(Resume::Allow))?;
/// run.finish(0)?;
/// assert_eq!(store.run_ids()?, ["first"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens the store at `dir`.
    ///
    /// # Errors
    ///
    /// [`Error::UnsupportedFormat`] when a newer runstore wrote it, [`Error::Corrupt`] when its
    /// `FORMAT` marker is unreadable, [`Error::Io`] when `dir` exists but is not a directory.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        let root = dir.as_ref().to_path_buf();
        match std::fs::metadata(&root) {
            Ok(meta) if !meta.is_dir() => {
                return Err(Error::io(
                    &root,
                    std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
                ));
            }
            Ok(_) => {
                let store = Store { root };
                store.check_marker()?;
                return Ok(store);
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(Error::io(&root, error)),
        }
        Ok(Store { root })
    }

    /// Opens the store named by `RUNSTORE_DIR`, or `./.runstore`.
    ///
    /// # Errors
    ///
    /// As [`Store::open`].
    ///
    /// ```no_run
    /// let store = runstore::Store::from_env()?;
    /// # Ok::<(), runstore::Error>(())
    /// ```
    pub fn from_env() -> Result<Store> {
        let dir = std::env::var_os(ENV_DIR)
            .and_then(crate::options::environment_value)
            .map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from);
        Store::open(dir)
    }

    /// The store directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.root
    }

    fn check_marker(&self) -> Result<()> {
        let path = self.root.join(MARKER);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(Error::io(&path, error)),
        };
        let marker: Marker = serde_json::from_slice(&bytes)
            .map_err(|_| Error::corrupt(&path, "the store format marker is not valid JSON"))?;
        if marker.runstore_format > STORE_FORMAT_VERSION {
            return Err(Error::UnsupportedFormat {
                path,
                found: marker.runstore_format,
                supported: STORE_FORMAT_VERSION,
            });
        }
        Ok(())
    }

    /// Creates the store directory and its marker if they are missing.
    pub(crate) fn create(&self) -> Result<()> {
        let runs = self.root.join(RUNS);
        if runs.is_dir() && self.root.join(MARKER).is_file() {
            return self.check_marker();
        }
        std::fs::create_dir_all(&runs).at(&runs)?;
        let path = self.root.join(MARKER);
        if !path.exists() {
            let marker = serde_json::to_vec(&Marker { runstore_format: STORE_FORMAT_VERSION }).unwrap_or_default();
            let mut file = TempFile::new_in(&self.root, "FORMAT-").at(&self.root)?;
            file.write_synced(&marker)?;
            // Another process may have written it first: theirs is as good as ours.
            let _ = file.persist_noclobber(&path);
            sync_dir(&self.root)?;
        }
        self.check_marker()
    }

    fn run_dir(&self, id: &str) -> PathBuf {
        self.root.join(RUNS).join(id)
    }

    /// The run database of `id` (which must be a valid id).
    pub(crate) fn database_path(&self, id: &str) -> PathBuf {
        self.run_dir(id).join(DATABASE)
    }

    /// The lock file of `id` (which must be a valid id).
    pub(crate) fn lock_path(&self, id: &str) -> PathBuf {
        self.run_dir(id).join(LOCK)
    }

    /// Whether a run with this id exists.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRunId`] for an id that cannot name a run.
    pub fn exists(&self, id: &str) -> Result<bool> {
        validate_run_id(id)?;
        Ok(self.database_path(id).is_file())
    }

    /// The ids of all runs, sorted.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the runs directory cannot be read.
    pub fn run_ids(&self) -> Result<Vec<String>> {
        let runs = self.root.join(RUNS);
        let entries = match std::fs::read_dir(&runs) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(Error::io(&runs, error)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.at(&runs)?;
            let Ok(id) = entry.file_name().into_string() else { continue };
            if validate_run_id(&id).is_ok() && entry.path().join(DATABASE).is_file() {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// A snapshot of every run, sorted by id.
    ///
    /// # Errors
    ///
    /// The first error of [`Store::run_ids`] or [`RunReader::info`]; use `run_ids` and
    /// [`Store::open_run`] to read the others around a damaged run.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// use runstore::{RunOptions, RunState};
    ///
    /// store.init(RunOptions::new().id("a"))?.finish(0)?;
    /// store.init(RunOptions::new().id("b"))?.finish(1)?;
    /// let states: Vec<_> = store.runs()?.into_iter().map(|info| (info.id, info.state)).collect();
    /// assert_eq!(states, [("a".to_string(), RunState::Finished), ("b".to_string(), RunState::Failed)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn runs(&self) -> Result<Vec<RunInfo>> {
        self.run_ids()?.iter().map(|id| self.open_run(id)?.info()).collect()
    }

    /// Opens a run read-only; this works while another process writes it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRunId`], [`Error::RunNotFound`], [`Error::UnsupportedFormat`] for a run
    /// written by a newer runstore, [`Error::Corrupt`] or [`Error::Storage`] for a damaged file.
    pub fn open_run(&self, id: &str) -> Result<RunReader> {
        validate_run_id(id)?;
        let path = self.database_path(id);
        if !path.is_file() {
            return Err(Error::RunNotFound { id: id.to_string() });
        }
        RunReader::open(id, &path, &self.lock_path(id), &self.root.join(RUNS))
    }

    /// Starts or resumes a run, as the options (then the environment) ask; see [`Resume`].
    ///
    /// The run's lock is taken before the store looks for the run, so two processes racing on
    /// one id cannot both create it. An explicit id without a policy behaves as `never`.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidRunId`], [`Error::InvalidConfig`], [`Error::InvalidEnvironment`]:
    ///   before any file is touched;
    /// - [`Error::RunNotFound`] (`must`), [`Error::RunExists`] (`never`, or an id without a
    ///   policy), [`Error::RunIdRequired`] (`must` without an id);
    /// - [`Error::RunLocked`] when another process writes the run;
    /// - [`Error::LocksUnsupported`] when the store's filesystem cannot keep one writer per run
    ///   (see [`Filesystem`](crate::Filesystem)), before any file is created;
    /// - [`Error::UnsupportedFormat`], [`Error::Corrupt`], [`Error::Io`], [`Error::Storage`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use runstore::{Resume, RunOptions, Store};
    ///
    /// let store = Store::open(dir.path())?;
    /// let mut run = store.init(RunOptions::new().id("job-1").resume(Resume::Allow))?;
    /// run.log([("loss", 0.9)])?;
    /// drop(run); // as if the process had stopped
    ///
    /// let run = store.init(RunOptions::new().id("job-1").resume(Resume::Allow))?;
    /// assert!(run.resumed());
    /// assert_eq!(run.step(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn init(&self, options: RunOptions) -> Result<Run> {
        let mut options = options.with_environment(|name| std::env::var(name).ok())?;
        let config = options.config.take().transpose().map_err(|reason| Error::InvalidConfig { reason })?;
        if let Some(id) = &options.id {
            validate_run_id(id)?;
        }
        let pointer = match options.resume {
            Some(Resume::Auto) => Some(AutoPointer::new(self, options.working_dir.as_deref())?),
            _ => None,
        };
        let pointer_target = pointer.as_ref().and_then(AutoPointer::read);
        let request = Request { id: options.id.as_deref(), policy: options.resume, pointer: pointer_target.as_deref() };

        // Refuse what is certain to be refused before creating anything.
        if request.id.is_none() && request.policy == Some(Resume::Must) {
            return Err(Error::RunIdRequired);
        }
        if let Some(id) = request.id {
            let exists = self.database_path(id).is_file();
            match request.policy {
                Some(Resume::Must) if !exists => return Err(Error::RunNotFound { id: id.to_string() }),
                None | Some(Resume::Never) if exists => return Err(Error::RunExists { id: id.to_string() }),
                _ => {}
            }
            if let (Some(requested), false) = (options.resume_from, exists) {
                // Nothing to rewind in a run that would be created.
                return Err(Error::BeyondHistory { id: id.to_string(), requested, last: None });
            }
        }
        let fork = options.fork.as_ref().map(|(source, at)| self.fork_seed(source, *at)).transpose()?;
        // A filesystem whose locks cannot keep one writer is refused before anything is created.
        fs_check::ensure_locks_work(&self.root)?;
        self.create()?;

        // NVML is loaded before the run record is written, which keeps what it noted.
        let system = Setup::probe(options.system_interval());
        let mut warnings = Vec::new();
        let mut target = match request.target() {
            Some(id) => match self.lock_run(id) {
                Ok(locked) => Some(locked),
                // `auto` follows this directory's pointer to a run that is live in another
                // process: that run did not crash, so this process starts a run of its own.
                Err(Error::RunLocked { id, holder }) if request.id.is_none() => {
                    warnings.push(format!(
                        "run {id:?}, which this directory's auto pointer names, is being written by {holder}: started a new run"
                    ));
                    None
                }
                Err(error) => return Err(error),
            },
            None => None,
        };
        let snapshot = match &target {
            Some(LockedRun { writer: Some(writer), .. }) => {
                Some(Snapshot { state: writer.stored_state()?.without_writer(), next_step: writer.next_step() })
            }
            _ => None,
        };
        let decision = decide(&request, snapshot.as_ref())?;
        let mut resumed_checkpoint = None;
        let (id, lock, writer, config, resumed) = match decision.action {
            Action::Resume { next_step } => {
                let Some(LockedRun { writer: Some(mut writer), lock, id }) = target.take() else {
                    return Err(Error::RunNotFound { id: request.target().unwrap_or_default().to_string() });
                };
                let attempt = new_attempt(next_step);
                let (choice, record) =
                    Self::resume_attempt(&mut writer, &id, &options, attempt, config, system.as_ref())?;
                if let Some(choice) = choice {
                    warnings.extend(Self::checkpoint_warnings(&choice));
                    resumed_checkpoint = choice.latest;
                }
                (id, lock, writer, record.config, true)
            }
            Action::Create => {
                let (id, lock) = match (request.id, target.take()) {
                    (Some(_), Some(LockedRun { lock, id, .. })) => (id, lock),
                    // No explicit id (the auto pointer's run is finished or gone): a fresh one.
                    _ => self.claim_new_id()?,
                };
                if let Some(requested) = options.resume_from {
                    return Err(Error::BeyondHistory { id, requested, last: None });
                }
                let (writer, config) = self.create_run(&id, &options, config, fork, system.as_ref())?;
                (id, lock, writer, config, false)
            }
        };
        if decision.write_pointer
            && let Some(pointer) = &pointer
        {
            pointer.write(&id)?;
        }
        let names = writer.names()?;
        Run::start(RunParts {
            system: system.map(|setup| setup.plan(&self.run_dir(&id))),
            id,
            writer,
            config,
            names,
            lock,
            durability: options.durability,
            flush_rows: options.flush_rows,
            flush_interval: options.flush_interval,
            resumed,
            warnings: warnings.into_iter().chain(decision.warning).collect(),
            pointer,
            resumed_checkpoint,
        })
    }

    /// Records a new attempt on a resumed run, rewinding it first as asked: to `resume_from`'s
    /// step, or with `resume_from_checkpoint` to the latest checkpoint's step (or every row of
    /// its own when there is none). A rewind that would fail is refused before the attempt is
    /// recorded; one that succeeds is part of the attempt's first commit, so that the attempt
    /// starts after it. Returns the checkpoint choice made, if one was asked for, and the run
    /// record as stored.
    fn resume_attempt(
        writer: &mut Writer,
        id: &str,
        options: &RunOptions,
        attempt: AttemptRecord,
        config: Option<serde_json::Map<String, serde_json::Value>>,
        system: Option<&Setup>,
    ) -> Result<(Option<CheckpointChoice>, RunRecord)> {
        let choice = if options.resume_from.is_none() && options.resume_from_checkpoint {
            Some(crate::checkpoint::choose(&writer.checkpoints()?))
        } else {
            None
        };
        let rewind = match (&choice, options.resume_from) {
            (Some(choice), _) => Some(match &choice.latest {
                Some(checkpoint) => RewindTarget::Step(checkpoint.step),
                // No checkpoint to restart from: the program starts from scratch.
                None => RewindTarget::Everything,
            }),
            (None, Some(step)) => Some(RewindTarget::Step(step)),
            (None, None) => None,
        };
        let record = writer.begin_attempt(id, attempt, rewind, |record| {
            update_record(record, options, config);
            if let Some(system) = system {
                record.system_notes = system.notes();
            }
        })?;
        Ok((choice, record))
    }

    /// What a resume from checkpoint tells the user: the checkpoints skipped, or that none exists.
    fn checkpoint_warnings(choice: &CheckpointChoice) -> Vec<String> {
        let mut warnings: Vec<String> = choice
            .missing
            .iter()
            .map(|missing| {
                format!("checkpoint {} (step {}) no longer exists: skipped", missing.absolute.display(), missing.step)
            })
            .collect();
        if choice.latest.is_none() {
            warnings.push("no recorded checkpoint exists: the run starts again from the beginning".into());
        }
        warnings
    }

    /// Creates the database of run `id` (locked by the caller), a fork if `fork` is given;
    /// returns its writer and its config as stored.
    fn create_run(
        &self,
        id: &str,
        options: &RunOptions,
        config: Option<serde_json::Map<String, serde_json::Value>>,
        fork: Option<(ForkOrigin, ForkSeed, RunInfo)>,
        system: Option<&Setup>,
    ) -> Result<(Writer, serde_json::Map<String, serde_json::Value>)> {
        let mut record = RunRecord {
            id: id.to_string(),
            project: options.project.clone(),
            name: options.name.clone(),
            tags: dedupe(options.tags.clone()),
            notes: options.notes.clone(),
            config: config.unwrap_or_default(),
            created_at_ms: sys::now_ms(),
            forked_from: None,
            system_notes: system.map(Setup::notes).unwrap_or_default(),
        };
        let seed = match fork {
            Some((origin, seed, parent)) => {
                let mut config = parent.config;
                merge_objects(&mut config, std::mem::take(&mut record.config));
                record.config = config;
                if record.project.is_none() {
                    record.project = parent.project;
                }
                // A fork is its parent continued: it keeps the parent's name, marked as a fork,
                // and its tags, unless the options give its own.
                if record.name.is_none() {
                    record.name = parent.name.map(|name| format!("{name} (fork at {})", origin.step));
                }
                if record.tags.is_empty() {
                    record.tags = parent.tags;
                }
                record.forked_from = Some(origin);
                Some(seed)
            }
            None => None,
        };
        let first_step = record.forked_from.as_ref().map_or(0, |origin| origin.step.saturating_add(1));
        let writer = Writer::create(&self.database_path(id), &record, &new_attempt(first_step), seed.as_ref())?;
        Ok((writer, record.config))
    }

    /// What a fork of `source` at `at` starts from; checked before anything is created.
    fn fork_seed(&self, source: &str, at: u64) -> Result<(ForkOrigin, ForkSeed, RunInfo)> {
        // One snapshot: the row count, the rows after `at`, the names and the branch count must
        // all be of one commit of a parent that may be logging or rewinding right now.
        let parent = self.open_run(source)?.snapshot()?;
        let (origin, names, rows) = parent.fork_origin(at)?;
        Ok((origin, ForkSeed { names, rows }, parent.info()?))
    }

    /// Rewinds run `id` to step `to` from outside any attempt, in any state but live: the rows
    /// after `to` become an archived branch, the next step becomes `to + 1`, the summary is
    /// recomputed from the live history, and the state is left as it was. Returns the new
    /// branch, or `None` when no row is after `to`.
    ///
    /// # Errors
    ///
    /// [`Error::RunLocked`] while a process writes the run, [`Error::BeyondHistory`] for a step
    /// after the last logged one, [`Error::RewindBeforeFork`] below a fork's fork step,
    /// [`Error::InvalidRunId`], [`Error::RunNotFound`], and storage errors.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use runstore::{RunOptions, Store};
    ///
    /// let store = Store::open(dir.path())?;
    /// let mut run = store.init(RunOptions::new().id("r"))?;
    /// for step in 0..10 {
    ///     run.log([("loss", step as f64)])?;
    /// }
    /// run.finish(0)?;
    /// let branch = store.rewind("r", 6)?.expect("rows 7..=9 archived");
    /// assert_eq!((branch.first_step, branch.last_step), (7, 9));
    /// let info = store.open_run("r")?.info()?;
    /// assert_eq!((info.next_step, info.rows, info.summary["loss"]), (7, 7, 6.0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rewind(&self, id: &str, to: u64) -> Result<Option<Branch>> {
        validate_run_id(id)?;
        let path = self.database_path(id);
        if !path.is_file() {
            return Err(Error::RunNotFound { id: id.to_string() });
        }
        fs_check::ensure_locks_work(&self.root)?;
        let _lock = RunLock::acquire(&self.lock_path(id), id)?;
        let mut writer = Writer::open(&path)?;
        Ok(writer.rewind(id, to, 0)?.map(|(branch, record)| Branch::from_record(branch, record)))
    }

    /// Creates run `options`' id (or a generated one) as a fork of run `source` at step `at`
    /// and starts its first attempt: the same as `init(options.fork_of(source, at))`.
    ///
    /// # Errors
    ///
    /// As [`Store::init`], and [`Error::RunNotFound`] for a missing source,
    /// [`Error::BeyondHistory`] for a step after the source's last logged step.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use runstore::{RunOptions, Store};
    ///
    /// let store = Store::open(dir.path())?;
    /// let mut base = store.init(RunOptions::new().id("base").config(serde_json::json!({"lr": 0.1})))?;
    /// for step in 0..100 {
    ///     base.log([("loss", 1.0 / (1.0 + step as f64))])?;
    /// }
    /// base.finish(0)?;
    ///
    /// let mut fork = store.fork("base", 49, RunOptions::new().id("low-lr").config(serde_json::json!({"lr": 0.01})))?;
    /// assert_eq!(fork.step(), 50);
    /// fork.log([("loss", 0.01)])?;
    /// fork.finish(0)?;
    /// let info = store.open_run("low-lr")?.info()?;
    /// assert_eq!(info.forked_from, Some(("base".to_string(), 49)));
    /// assert_eq!(info.config["lr"], 0.01);
    /// assert_eq!(store.open_run("low-lr")?.history(..)?.count(), 51);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn fork(&self, source: &str, at: u64, options: RunOptions) -> Result<Run> {
        self.init(options.fork_of(source, at))
    }

    /// Takes the lock of run `id` (creating its directory) and opens its database if it exists.
    fn lock_run(&self, id: &str) -> Result<LockedRun> {
        let dir = self.run_dir(id);
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).at(&dir)?;
            sync_dir(&self.root.join(RUNS))?;
        }
        let lock = RunLock::acquire(&self.lock_path(id), id)?;
        let database = self.database_path(id);
        let writer = if database.is_file() { Some(Writer::open(&database)?) } else { None };
        Ok(LockedRun { writer, lock, id: id.to_string() })
    }

    /// Picks a generated id whose directory did not exist, creates the directory and locks it.
    fn claim_new_id(&self) -> Result<(String, RunLock)> {
        let runs = self.root.join(RUNS);
        loop {
            let id = generate_run_id();
            let dir = self.run_dir(&id);
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    sync_dir(&runs)?;
                    let lock = RunLock::acquire(&self.lock_path(&id), &id)?;
                    return Ok((id, lock));
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(error) => return Err(Error::io(&dir, error)),
            }
        }
    }
}

/// A run whose lock this process holds, with its database open if it exists.
///
/// The fields drop in declaration order: the database closes before the lock goes. The other
/// order lets the next lock holder find the database still open and fail with redb's
/// `DatabaseAlreadyOpen` (a racer refused with `RunExists` used to do this).
struct LockedRun {
    writer: Option<Writer>,
    lock: RunLock,
    id: String,
}

/// The record of an attempt starting now, in this process, at `first_step`.
fn new_attempt(first_step: u64) -> AttemptRecord {
    AttemptRecord {
        started_at_ms: sys::now_ms(),
        host: sys::hostname(),
        pid: std::process::id(),
        first_step,
        ended_at_ms: None,
        last_step: None,
        outcome: None,
        exit_code: None,
    }
}

/// Applies the options of a resuming `init` to the stored record: config merged, tags added,
/// notes, name and project replaced when given.
fn update_record(
    record: &mut RunRecord,
    options: &RunOptions,
    config: Option<serde_json::Map<String, serde_json::Value>>,
) {
    if let Some(config) = config {
        merge_objects(&mut record.config, config);
    }
    record.tags.extend(options.tags.iter().cloned());
    record.tags = dedupe(std::mem::take(&mut record.tags));
    if options.notes.is_some() {
        record.notes.clone_from(&options.notes);
    }
    if options.name.is_some() {
        record.name.clone_from(&options.name);
    }
    if options.project.is_some() {
        record.project.clone_from(&options.project);
    }
}

/// Merges `update` into `base`: keys added or replaced, nested objects merged, none dropped.
pub(crate) fn merge_objects(
    base: &mut serde_json::Map<String, serde_json::Value>,
    update: serde_json::Map<String, serde_json::Value>,
) {
    for (key, value) in update {
        match (base.get_mut(&key), value) {
            (Some(serde_json::Value::Object(inner)), serde_json::Value::Object(value)) => merge_objects(inner, value),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn dedupe(items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items.into_iter().filter(|item| seen.insert(item.clone())).collect()
}

/// The `auto` pointer of one working directory: which run `auto` resumes there.
#[derive(Debug)]
pub(crate) struct AutoPointer {
    path: PathBuf,
    /// The canonical working directory's raw bytes: two directories are one only if these are.
    dir: Vec<u8>,
}

/// A pointer file: `dir` is the directory as text; a directory whose name is not UTF-8 also
/// has `dir_hex`, its raw bytes, since the text is lossy.
#[derive(Serialize, Deserialize)]
struct PointerRecord {
    dir: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dir_hex: Option<String>,
    run_id: String,
}

impl PointerRecord {
    /// The raw bytes of the directory the record is for (`None` for a damaged `dir_hex`).
    fn dir_bytes(&self) -> Option<Vec<u8>> {
        match &self.dir_hex {
            None => Some(self.dir.clone().into_bytes()),
            Some(hex) => {
                let digits = hex.as_bytes();
                if digits.len() % 2 != 0 {
                    return None;
                }
                digits
                    .chunks(2)
                    .map(|pair| std::str::from_utf8(pair).ok().and_then(|pair| u8::from_str_radix(pair, 16).ok()))
                    .collect()
            }
        }
    }
}

/// The run id an `auto` pointer file names, if its bytes hold a pointer record (for the working
/// directory whose raw bytes are `dir`, when given) naming a valid id.
pub(crate) fn decode_pointer(bytes: &[u8], dir: Option<&[u8]>) -> Option<String> {
    let record: PointerRecord = serde_json::from_slice(bytes).ok()?;
    let for_dir = dir.is_none_or(|dir| record.dir_bytes().as_deref() == Some(dir));
    (for_dir && validate_run_id(&record.run_id).is_ok()).then_some(record.run_id)
}

impl AutoPointer {
    fn new(store: &Store, working_dir: Option<&Path>) -> Result<AutoPointer> {
        let dir = match working_dir {
            Some(dir) => dir.to_path_buf(),
            None => std::env::current_dir().at(Path::new("."))?,
        };
        // Keyed on the raw bytes: directories that differ only in bytes that are not UTF-8 are
        // different directories (their lossy texts are the same).
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir).into_os_string().into_encoded_bytes();
        let name = format!("{:016x}.json", sys::stable_hash(&dir));
        Ok(AutoPointer { path: store.root.join(AUTO).join(name), dir })
    }

    /// The run id this directory's pointer names, if any (a damaged pointer names none).
    fn read(&self) -> Option<String> {
        decode_pointer(&std::fs::read(&self.path).ok()?, Some(&self.dir))
    }

    /// An exclusive `flock` on the `auto` directory, held while a pointer is read and changed:
    /// a clear that read its run's id must not remove a pointer another `init` wrote since.
    fn lock_pointers(&self) -> Result<std::fs::File> {
        let parent = self.path.parent().unwrap_or(&self.path);
        std::fs::create_dir_all(parent).at(parent)?;
        let dir = std::fs::File::open(parent).at(parent)?;
        dir.lock().at(parent)?;
        Ok(dir)
    }

    fn write(&self, id: &str) -> Result<()> {
        let _pointers = self.lock_pointers()?;
        let (dir, dir_hex) = match std::str::from_utf8(&self.dir) {
            Ok(text) => (text.to_string(), None),
            Err(_) => (
                String::from_utf8_lossy(&self.dir).into_owned(),
                Some(self.dir.iter().fold(String::new(), |mut hex, byte| {
                    use std::fmt::Write;
                    let _ = write!(hex, "{byte:02x}");
                    hex
                })),
            ),
        };
        let record = serde_json::to_vec(&PointerRecord { dir, dir_hex, run_id: id.to_string() }).unwrap_or_default();
        write_atomically(&self.path, "pointer-", &record)
    }

    /// Removes the pointer if it still names `id` (a clean finish of that run).
    pub(crate) fn clear_if_names(&self, id: &str) -> Result<()> {
        let _pointers = self.lock_pointers()?;
        if self.read().as_deref() == Some(id) {
            match std::fs::remove_file(&self.path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&self.path, error)),
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_auto_pointer_written_while_a_clear_is_under_way_survives_it() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let work = tempfile::tempdir().unwrap();
        let pointer = AutoPointer::new(&store, Some(work.path())).unwrap();
        pointer.write("a").unwrap();
        // A finishing run `a` clears the pointer: it has read it and not yet removed it.
        let clearing = pointer.lock_pointers().unwrap();
        assert_eq!(pointer.read().as_deref(), Some("a"));
        let written = AtomicBool::new(false);
        std::thread::scope(|scope| {
            // Meanwhile another `auto` start in the same directory writes its run's pointer.
            scope.spawn(|| {
                pointer.write("b").unwrap();
                written.store(true, Ordering::SeqCst);
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!written.load(Ordering::SeqCst), "the write waits for the clear");
            std::fs::remove_file(&pointer.path).unwrap(); // the clear's remove
            drop(clearing);
        });
        assert_eq!(pointer.read().as_deref(), Some("b"), "the new pointer is not lost");
        pointer.clear_if_names("a").unwrap();
        assert_eq!(pointer.read().as_deref(), Some("b"), "a clear for another run leaves it");
    }

    #[test]
    fn configs_merge_without_dropping_keys() {
        let mut base = serde_json::json!({"lr": 0.1, "model": {"depth": 12, "width": 768}, "seed": 1});
        let update = serde_json::json!({"lr": 0.05, "model": {"depth": 24}, "epochs": 3});
        if let (serde_json::Value::Object(base), serde_json::Value::Object(update)) = (&mut base, update) {
            merge_objects(base, update);
        }
        assert_eq!(base, serde_json::json!({"lr": 0.05, "model": {"depth": 24, "width": 768}, "seed": 1, "epochs": 3}));
    }
}
