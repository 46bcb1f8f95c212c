//! The writer handle: log rows, flush, finish. Buffered rows go to disk on a background thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::checkpoint::{self, Checkpoint};
use crate::error::{Error, Result};
use crate::format::batch::RowBatch;
use crate::format::records::CheckpointRecord;
use crate::lock::RunLock;
use crate::options::Durability;
use crate::state::{Branch, RunState};
use crate::store::AutoPointer;
use crate::system::{Plan, Sampler, Samples};
use crate::write::interner::Interner;
use crate::write::journal::Journal;
use crate::write::signals;
use crate::write::writer::{Ending, Extras, JournalUpdate, Reopen, Writer};

/// Buffered rows at which a log call waits for the flusher: this many flushes' worth.
const MAX_PENDING_FLUSHES: usize = 4;

/// A live run: the one handle that writes it, holding its lock until finished or dropped.
///
/// Made by [`crate::Store::init`]. Rows are buffered and committed by a background thread (see
/// [`Durability`]); [`Run::flush`] commits now. [`Run::finish`] records how the attempt ended.
/// A `Run` dropped without `finish` flushes and records the run as failed: it never said it
/// succeeded. Only a process that dies leaves a run crashed.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use runstore::{Resume, RunOptions, Store};
///
/// let store = Store::open(dir.path())?;
/// let mut run = store.init(RunOptions::new().id("demo").resume(Resume::Allow))?;
/// for step in 0..100 {
///     let loss = 1.0 / (1.0 + step as f64);
///     run.log([("loss", loss), ("acc", 1.0 - loss)])?;
/// }
/// assert_eq!(run.step(), 100);
/// run.finish(0)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Run {
    id: String,
    config: serde_json::Map<String, serde_json::Value>,
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
    interner: Interner,
    points: Vec<(u32, f64)>,
    next_step: u64,
    last_step: Option<u64>,
    /// The step a `log_at` may merge into: the last row this run stores itself (a fork's
    /// inherited rows are its parent's).
    merge_step: Option<u64>,
    durability: Durability,
    flush_rows: usize,
    signal_listener: Option<Arc<dyn signals::Listener>>,
    resumed: bool,
    attempt: u32,
    warnings: Vec<String>,
    pointer: Option<AutoPointer>,
    previous: Option<Ending>,
    /// The checkpoint a resume from checkpoint restarted from.
    resumed_checkpoint: Option<Checkpoint>,
    lock: Option<RunLock>,
    /// The system-metrics sampler, when the run records system metrics.
    sampler: Option<Sampler>,
    closed: bool,
}

/// What the log path and the flusher share.
struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the flusher: enough rows, or shutdown.
    wake: Condvar,
    /// Wakes log calls waiting for room in the buffer.
    drained: Condvar,
    slot: Mutex<Slot>,
    failure: Mutex<Option<Error>>,
    failed: AtomicBool,
    /// Marked preempting (by `mark_preempting` or a signal).
    preempting: AtomicBool,
    /// A signal asked the training loop to stop.
    stop: AtomicBool,
    /// The run's id and the process that started it: a process forked from that one has a copy
    /// of this memory but not its threads, and must never write the run (it would be a second
    /// writer behind the lock's back).
    id: String,
    owner: u32,
}

impl signals::Listener for Shared {
    fn on_signal(&self) {
        // Marked before the loop can see the flag, so that its `finish` ends the run preempted.
        self.preempting.store(true, Ordering::SeqCst);
        if let Err(error) = self.flush(Some(Ending { state: RunState::Preempting, exit_code: None }), false) {
            self.record_failure(error);
        }
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Pending {
    rows: RowBatch,
    new_names: Vec<String>,
    summary_sets: Vec<(u32, f64)>,
    /// Time-indexed samples: (metric id, time ms, value).
    samples: Vec<(u32, u64, f64)>,
    /// The journal every row is appended to before its log call returns, with
    /// `Durability::EveryLog`: kept under this lock, so that a fold swaps out exactly the rows
    /// of the records before its mark.
    journal: Option<Journal>,
    shutdown: bool,
}

/// The writer, and the spare buffer that swaps with the pending rows at each flush.
struct Slot {
    writer: Option<Writer>,
    /// Set after a failed commit, whose handle redb no longer lets write: the next flush opens
    /// the database again from this (the run's lock is still held) and retries.
    reopen: Option<Reopen>,
    spare: RowBatch,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; carry on with it.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The error for a process forked from the run's writer, when it is this one.
    fn forked(&self) -> Option<Error> {
        let pid = std::process::id();
        (pid != self.owner).then(|| Error::ForkedProcess { id: self.id.clone(), owner: self.owner, pid })
    }

    /// Commits everything pending (with `state`, if given). Holding the slot lock across the
    /// swap and the commit keeps commits in log order.
    fn flush(&self, state: Option<Ending>, close_attempt: bool) -> Result<()> {
        // Before the lock: in a forked process it may be held by a thread that is not there.
        if let Some(error) = self.forked() {
            return Err(error);
        }
        self.flush_in(&mut lock(&self.slot), state, close_attempt, None)
    }

    /// [`Shared::flush`] with the slot already locked. A success stores every buffered row,
    /// including those of any earlier failed flush, so it also clears that failure.
    fn flush_in(
        &self,
        slot: &mut Slot,
        state: Option<Ending>,
        close_attempt: bool,
        checkpoint: Option<&CheckpointRecord>,
    ) -> Result<()> {
        let Slot { writer, reopen, spare } = slot;
        if writer.is_none()
            && let Some(plan) = reopen.as_ref()
        {
            let (opened, landed) = plan.open()?;
            // What the failed commit stored after all must not be stored twice.
            let mut pending = lock(&self.pending);
            let names = landed.names.min(pending.new_names.len());
            pending.new_names.drain(..names);
            if let Some(stored) = landed.rows_before {
                pending.rows.drop_before(stored);
            }
            drop(pending);
            *writer = Some(opened);
            *reopen = None;
        }
        let Some(open) = writer.as_mut() else { return Ok(()) };
        let (names, sets, samples, journal) = {
            let mut pending = lock(&self.pending);
            if pending.rows.is_empty()
                && pending.new_names.is_empty()
                && pending.summary_sets.is_empty()
                && pending.samples.is_empty()
                && state.is_none()
                && checkpoint.is_none()
                // A journal that is to start again needs a fold to store its new mark.
                && pending.journal.as_ref().is_none_or(Journal::is_ready)
            {
                return Ok(());
            }
            std::mem::swap(&mut pending.rows, spare);
            // Taken with the rows: the records from here on are not in this fold.
            let journal = match pending.journal.as_mut() {
                Some(_) if close_attempt => JournalUpdate::Clear,
                Some(journal) => JournalUpdate::Set(journal.fold_mark()),
                None => JournalUpdate::Keep,
            };
            (
                std::mem::take(&mut pending.new_names),
                std::mem::take(&mut pending.summary_sets),
                std::mem::take(&mut pending.samples),
                journal,
            )
        };
        let extras = Extras {
            new_names: &names,
            summary_sets: &sets,
            state,
            close_attempt,
            checkpoint,
            samples: &samples,
            journal,
        };
        let result = open.commit(spare, &extras);
        let mut pending = lock(&self.pending);
        if let Ok(()) = &result {
            spare.clear();
            self.failed.store(false, Ordering::Release);
            lock(&self.failure).take();
            match journal {
                JournalUpdate::Set(mark) => pending.journal.iter_mut().for_each(|journal| journal.folded(mark)),
                JournalUpdate::Clear => pending.journal.take().into_iter().for_each(Journal::remove),
                JournalUpdate::Keep => {}
            }
        } else {
            if let Some(journal) = pending.journal.as_mut() {
                journal.fold_failed();
            }
            *reopen = Some(open.reopen_plan());
            // Closed before the next flush opens the file again.
            *writer = None;
            // Keep the rows: older ones first, then what was logged meanwhile.
            spare.append(&pending.rows);
            std::mem::swap(&mut pending.rows, spare);
            spare.clear();
            let mut all_names = names;
            all_names.append(&mut pending.new_names);
            pending.new_names = all_names;
            // A value set in the failed commit yields to a row logged meanwhile with its metric,
            // as it would have had the commit succeeded (the rows are stored before the sets).
            let mut all_sets = sets;
            all_sets.retain(|(metric, _)| !pending.rows.metrics.contains(metric));
            all_sets.append(&mut pending.summary_sets);
            pending.summary_sets = all_sets;
            // Samples that landed are not stored twice: a sample not after its series' last
            // stored time is dropped by the commit.
            let mut all_samples = samples;
            all_samples.append(&mut pending.samples);
            pending.samples = all_samples;
        }
        drop(pending);
        self.drained.notify_all();
        result
    }

    fn record_failure(&self, error: Error) {
        let mut failure = lock(&self.failure);
        if failure.is_none() {
            *failure = Some(error);
        }
        self.failed.store(true, Ordering::Release);
        self.drained.notify_all();
    }

    fn take_failure(&self) -> Option<Error> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        self.failed.store(false, Ordering::Release);
        lock(&self.failure).take()
    }
}

/// The background flusher: commits when enough rows wait, and at least every `interval`.
fn flusher(shared: &Shared, flush_rows: usize, interval: Duration) {
    loop {
        let mut pending = lock(&shared.pending);
        let deadline = std::time::Instant::now() + interval;
        loop {
            if pending.shutdown {
                return;
            }
            if pending.rows.rows() >= flush_rows {
                break;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                break;
            }
            pending = shared.wake.wait_timeout(pending, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
        drop(pending);
        let failed = {
            // Recorded under the slot lock, so that a later successful flush clears it.
            let mut slot = lock(&shared.slot);
            shared.flush_in(&mut slot, None, false, None).map_err(|error| shared.record_failure(error)).is_err()
        };
        if failed {
            // Retry on the next tick rather than spinning on a failing disk.
            std::thread::sleep(interval.min(Duration::from_secs(1)));
        }
    }
}

/// Interns the series of `plan` (a fixed set: the GPUs are counted at the start) and starts
/// its sampler, which appends to the pending samples under the buffer's lock, briefly; the
/// flusher commits them, so that a stalled training loop, the moment its samples matter most,
/// does not hold them back.
fn start_sampler(id: &str, plan: Plan, interner: &mut Interner, shared: &Arc<Shared>) -> Result<Sampler> {
    interner.mark();
    let ids = plan.series_names().iter().map(|name| interner.system_id(name)).collect::<Result<Vec<u32>>>()?;
    lock(&shared.pending).new_names.extend(interner.added().map(str::to_string));
    let shared = Arc::clone(shared);
    Sampler::start(id, plan, ids, move |samples: &mut Samples| {
        let mut pending = lock(&shared.pending);
        if let Some(journal) = pending.journal.as_mut() {
            journal.samples.extend_from_slice(samples);
        }
        pending.samples.append(samples);
    })
}

/// Everything `Store::init` hands to a new `Run`.
pub(crate) struct RunParts {
    pub(crate) id: String,
    pub(crate) writer: Writer,
    /// The run's config as stored, after this attempt's changes.
    pub(crate) config: serde_json::Map<String, serde_json::Value>,
    pub(crate) names: Vec<String>,
    pub(crate) lock: RunLock,
    pub(crate) durability: Durability,
    pub(crate) flush_rows: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) resumed: bool,
    pub(crate) warnings: Vec<String>,
    pub(crate) pointer: Option<AutoPointer>,
    pub(crate) resumed_checkpoint: Option<Checkpoint>,
    /// What the system-metrics sampler is to record, if it runs.
    pub(crate) system: Option<Plan>,
}

impl Run {
    pub(crate) fn start(parts: RunParts) -> Result<Run> {
        let RunParts {
            id,
            mut writer,
            config,
            names,
            lock,
            durability,
            flush_rows,
            flush_interval,
            resumed,
            mut warnings,
            pointer,
            resumed_checkpoint,
            system,
        } = parts;
        warnings.extend(system.iter().flat_map(|plan| plan.notes().iter().cloned()));
        let mut journal = None;
        if durability == Durability::EveryLog {
            writer.set_chunk_size(crate::write::chunks::ChunkSize::Small);
            match Journal::open(writer.path(), writer.names_stored()) {
                Ok(opened) => journal = Some(opened),
                // Every log call then commits to the database itself: durable, only slower.
                Err(error) => warnings.push(format!("every log call commits to the database: no journal ({error})")),
            }
        }
        let next_step = writer.next_step();
        let last_step = writer.last_step();
        let merge_step = writer.own_last_step();
        let attempt = writer.attempt();
        let previous = writer.previous();
        let has_journal = journal.is_some();
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending { journal, ..Pending::default() }),
            wake: Condvar::new(),
            drained: Condvar::new(),
            slot: Mutex::new(Slot { writer: Some(writer), reopen: None, spare: RowBatch::default() }),
            failure: Mutex::new(None),
            failed: AtomicBool::new(false),
            preempting: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            id: id.clone(),
            owner: std::process::id(),
        });
        if has_journal {
            // The journal's first mark, before any record counts.
            shared.flush(None, false)?;
        }
        // Started first: should the flusher not start, dropping the sampler stops it.
        let mut interner = Interner::with_names(names);
        let sampler = match system {
            Some(plan) => Some(start_sampler(&id, plan, &mut interner, &shared)?),
            None => None,
        };
        // With `EveryLog` too: it folds the journal into the database, where readers see it.
        let flusher = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("runstore-flush-{id}"))
                .spawn(move || flusher(&shared, flush_rows, flush_interval))
                .map_err(|error| Error::io("(flusher thread)", error))?
        };
        Ok(Run {
            id,
            config,
            shared,
            flusher: Some(flusher),
            interner,
            points: Vec::new(),
            next_step,
            last_step,
            merge_step,
            durability,
            flush_rows,
            signal_listener: None,
            resumed,
            attempt,
            warnings,
            pointer,
            previous,
            resumed_checkpoint,
            lock: Some(lock),
            sampler,
            closed: false,
        })
    }

    /// The run id.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let store = runstore::Store::open(dir.path())?;
    /// let run = store.init(runstore::RunOptions::new())?;
    /// assert_eq!(run.id().len(), 8); // generated: 8 lowercase letters and digits
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The step the next [`Run::log`] uses: 0 for a new run, the step after the last stored
    /// row for a resumed one.
    #[must_use]
    pub fn step(&self) -> u64 {
        self.next_step
    }

    /// The step of the last logged row (buffered or stored), if any.
    #[must_use]
    pub fn last_step(&self) -> Option<u64> {
        self.last_step
    }

    /// The run's config as stored: on resume, the stored config merged with the one given to
    /// `init` (or `RUNSTORE_CONFIG`); for a fork, its parent's merged with its own.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use runstore::{Resume, RunOptions, Store};
    ///
    /// let store = Store::open(dir.path())?;
    /// let options = || RunOptions::new().id("c").resume(Resume::Allow);
    /// store.init(options().config(serde_json::json!({"lr": 0.1, "batch": 64})))?.finish(1)?;
    /// let run = store.init(options().config(serde_json::json!({"lr": 0.05})))?;
    /// let lr = run.config().get("lr").and_then(serde_json::Value::as_f64).unwrap_or(1e-3);
    /// assert_eq!((lr, run.config()["batch"].as_u64()), (0.05, Some(64)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn config(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.config
    }

    /// Whether `init` resumed an existing run rather than creating one.
    #[must_use]
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// This attempt's number: 1 for a new run, one more for each resume.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// use runstore::{Resume, RunOptions};
    ///
    /// let mut run = store.init(RunOptions::new().id("r"))?;
    /// run.log([("loss", 1.0)])?;
    /// assert_eq!((run.attempt(), run.last_step(), run.step()), (1, Some(0), 1));
    /// run.finish(0)?;
    /// let run = store.init(RunOptions::new().id("r").resume(Resume::Must))?;
    /// assert_eq!(run.attempt(), 2);
    /// assert!(run.warnings().is_empty()); // nothing unexpected decided
    /// # run.finish(0)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Things `init` decided that the user may not expect, such as an explicit id winning over
    /// the `auto` pointer of this directory, or that system metrics have no GPU series (see
    /// [`RunOptions::system_metrics`](crate::RunOptions::system_metrics)).
    #[must_use]
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The checkpoint this attempt resumed from, with
    /// [`RunOptions::resume_from_checkpoint`](crate::RunOptions::resume_from_checkpoint): load
    /// it, and train on from [`Run::step`]. `None` when no live checkpoint's file existed (the
    /// run starts again from step 0) or when the option was not set.
    #[must_use]
    pub fn resumed_checkpoint(&self) -> Option<&Checkpoint> {
        self.resumed_checkpoint.as_ref()
    }

    /// Records that the training state after the last logged step was saved at `path` (a
    /// file or a directory, already saved and renamed into place). The record and every row
    /// logged so far are committed in one durable transaction: once this returns, a crash
    /// cannot lose a row the checkpoint covers, and a resume with
    /// [`RunOptions::resume_from_checkpoint`](crate::RunOptions::resume_from_checkpoint) can
    /// restart from it. runstore never opens or deletes the file.
    ///
    /// # Errors
    ///
    /// [`Error::BeyondHistory`] before any row is logged; [`Error::Io`] when `path` cannot be
    /// read (it must exist); the errors of [`Run::flush`] (then nothing of the checkpoint is
    /// stored and the rows stay buffered).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path().join("store"))?;
    /// let mut run = store.init(runstore::RunOptions::new().id("c"))?;
    /// for step in 0..100 {
    ///     run.log([("loss", 1.0 / (1.0 + step as f64))])?;
    /// }
    /// let path = dir.path().join("step-99.pt");
    /// std::fs::write(&path, b"weights")?;
    /// let checkpoint = run.checkpoint(&path)?;
    /// assert_eq!((checkpoint.step, checkpoint.size), (99, 7));
    /// run.finish(0)?;
    /// let latest = store.open_run("c")?.latest_checkpoint()?.latest.expect("on disk");
    /// assert_eq!(latest.path, path);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn checkpoint(&mut self, path: impl AsRef<std::path::Path>) -> Result<Checkpoint> {
        let Some(step) = self.last_step else {
            return Err(Error::BeyondHistory { id: self.id.clone(), requested: 0, last: None });
        };
        self.checkpoint_at(step, path)
    }

    /// As [`Run::checkpoint`], for the state after `step` (at most the last logged step): for
    /// a checkpoint saved asynchronously while training went on.
    ///
    /// # Errors
    ///
    /// [`Error::BeyondHistory`] for a step after the last logged one,
    /// [`Error::CheckpointBeforeFork`] on a fork for a step before its fork step, else as
    /// [`Run::checkpoint`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let mut run = store.init(runstore::RunOptions::new().id("r"))?;
    /// for step in 0..120 {
    ///     run.log([("loss", f64::from(step))])?;
    /// }
    /// let path = dir.path().join("ckpt-100");
    /// std::fs::create_dir(&path)?; // a checkpoint directory, saved while steps 101.. ran
    /// assert_eq!(run.checkpoint_at(100, &path)?.step, 100);
    /// assert!(run.checkpoint_at(500, &path).is_err()); // not logged yet
    /// # run.finish(0)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn checkpoint_at(&mut self, step: u64, path: impl AsRef<std::path::Path>) -> Result<Checkpoint> {
        if let Some(error) = self.shared.forked() {
            return Err(error);
        }
        if self.last_step.is_none_or(|last| step > last) {
            return Err(Error::BeyondHistory { id: self.id.clone(), requested: step, last: self.last_step });
        }
        // Resuming from it would rewind past the fork, which fails: refuse it now, not then.
        let fork = lock(&self.shared.slot).writer.as_ref().and_then(Writer::fork_origin);
        if let Some((parent, fork_step)) = fork.filter(|&(_, fork_step)| step < fork_step) {
            return Err(Error::CheckpointBeforeFork { id: self.id.clone(), step, parent, fork_step });
        }
        let record = checkpoint::record(path.as_ref(), step, self.attempt)?;
        self.shared.flush_in(&mut lock(&self.shared.slot), None, false, Some(&record))?;
        let slot = lock(&self.shared.slot);
        let stored = slot.writer.as_ref().map(Writer::checkpoints).transpose()?.unwrap_or_default();
        drop(slot);
        stored
            .into_iter()
            .rev()
            .find(|checkpoint| {
                checkpoint.step == step && checkpoint.absolute.as_os_str().as_encoded_bytes() == record.absolute
            })
            .ok_or_else(|| Error::corrupt(path.as_ref(), "a checkpoint just recorded is missing"))
    }

    /// Logs one row at [`Run::step`] and advances the step.
    ///
    /// `metrics` maps names to values; NaN and infinities are stored bit-exact.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMetricName`] for an empty, over-long or control-character name (nothing
    /// of the row is stored); the error of a background flush that failed since the last call
    /// ([`Error::Storage`], [`Error::Io`]), reported once — the rows it concerned stay
    /// buffered, and the next flush opens the database again and retries them. A failure that a
    /// later flush made good (every buffered row stored) is not reported. With
    /// [`Durability::EveryLog`] a call answers for its own row only: `Ok` once the row is
    /// durable (in the run's journal, which keeps taking rows while background commits fail,
    /// on a full disk say, until it is full; those failures are the errors of
    /// [`Run::flush`] and [`Run::finish`]); else the error of the row's own commit: the row is
    /// taken (the step advances) but not yet durable; it stays buffered and the next flush
    /// stores it.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let mut run = store.init(runstore::RunOptions::new())?;
    /// run.log([("loss", 0.25), ("lr", 1e-3)])?;
    /// run.log(vec![("loss".to_string(), f64::NAN)])?;
    /// assert_eq!(run.step(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn log<I, K>(&mut self, metrics: I) -> Result<()>
    where
        I: IntoIterator<Item = (K, f64)>,
        K: AsRef<str>,
    {
        self.log_at(self.next_step, metrics)
    }

    /// Logs one row at `step`, which must be at least the next step; logging again at the last
    /// logged step merges the keys into that row (a key given twice keeps the later value). A
    /// fork's rows up to its fork step are its parent's: they are never merged into.
    ///
    /// # Errors
    ///
    /// [`Error::StepRegression`] for a step below the last logged one (or below the next step
    /// when the run has no rows of its own, such as a fork at its fork step),
    /// [`Error::StepOutOfRange`] for `u64::MAX` (nothing of the row is taken for these), and the
    /// errors of [`Run::log`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let mut run = store.init(runstore::RunOptions::new())?;
    /// run.log_at(10, [("loss", 0.5)])?;
    /// run.log_at(10, [("eval/acc", 0.9)])?; // merges into step 10
    /// let err = run.log_at(3, [("loss", 0.1)]).unwrap_err();
    /// assert!(matches!(err, runstore::Error::StepRegression { requested: 3, next: 11, .. }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn log_at<I, K>(&mut self, step: u64, metrics: I) -> Result<()>
    where
        I: IntoIterator<Item = (K, f64)>,
        K: AsRef<str>,
    {
        self.log_row(step, None, metrics)
    }

    /// Logs one row at `step` with the time it was taken at, instead of now: for importing
    /// history recorded elsewhere. The step rules are [`Run::log_at`]'s; times need not
    /// increase. A row merged into the last one keeps that row's time.
    ///
    /// # Errors
    ///
    /// As [`Run::log_at`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// use std::time::{Duration, UNIX_EPOCH};
    ///
    /// let mut run = store.init(runstore::RunOptions::new().id("imported"))?;
    /// let logged = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    /// run.log_at_time(0, logged, [("loss", 0.9)])?;
    /// run.finish(0)?;
    /// let row = store.open_run("imported")?.history(..)?.next().unwrap()?;
    /// assert_eq!(row.time(), logged);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn log_at_time<I, K>(&mut self, step: u64, time: std::time::SystemTime, metrics: I) -> Result<()>
    where
        I: IntoIterator<Item = (K, f64)>,
        K: AsRef<str>,
    {
        self.log_row(step, Some(crate::sys::to_ms(time)), metrics)
    }

    #[inline]
    fn log_row<I, K>(&mut self, step: u64, time_ms: Option<u64>, metrics: I) -> Result<()>
    where
        I: IntoIterator<Item = (K, f64)>,
        K: AsRef<str>,
    {
        // A background commit that failed is this call's error; with `EveryLog` the call says
        // whether its own row is durable instead (the journal may take it while commits fail).
        if self.durability == Durability::Buffered
            && let Some(error) = self.shared.take_failure()
        {
            return Err(error);
        }
        if step < self.next_step && Some(step) != self.merge_step {
            return Err(Error::StepRegression {
                id: self.id.clone(),
                requested: step,
                next: self.next_step,
                last: self.merge_step,
            });
        }
        if step == u64::MAX {
            return Err(Error::StepOutOfRange { step });
        }
        self.interner.mark();
        self.points.clear();
        for (position, (name, value)) in metrics.into_iter().enumerate() {
            match self.interner.id(name.as_ref(), position) {
                Ok(id) => self.points.push((id, value)),
                Err(error) => {
                    self.interner.rollback();
                    return Err(error);
                }
            }
        }
        // One clock read per row, outside the buffer's lock.
        let time_ms = time_ms.unwrap_or_else(crate::sys::now_ms);
        let mut journaled = false;
        {
            let mut pending = lock(&self.shared.pending);
            pending.new_names.extend(self.interner.added().map(str::to_string));
            if pending.rows.steps.capacity() == 0 {
                pending.rows.reserve(self.flush_rows.min(1 << 20), self.points.len().max(1));
            }
            if !pending.summary_sets.is_empty() {
                // A logged value replaces a summary value set earlier in the same buffer.
                let points = &self.points;
                pending.summary_sets.retain(|(id, _)| !points.iter().any(|(p, _)| p == id));
            }
            pending.rows.push_row(step, time_ms, &self.points);
            if self.durability == Durability::EveryLog {
                journaled = self.journal_row(&mut pending, step, time_ms);
            }
            let rows = pending.rows.rows();
            if rows >= self.flush_rows && self.flusher.is_some() {
                // Wake the flusher once, as the buffer reaches the mark; while it commits, it
                // sees the full buffer without being woken again (a wake is a syscall).
                if rows == self.flush_rows {
                    self.shared.wake.notify_one();
                }
                while pending.rows.rows() >= self.flush_rows * MAX_PENDING_FLUSHES
                    && !self.shared.failed.load(Ordering::Acquire)
                {
                    // A forked process has no flusher to wait for.
                    if let Some(error) = self.shared.forked() {
                        return Err(error);
                    }
                    pending = self.shared.drained.wait(pending).unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
        self.last_step = Some(step);
        self.merge_step = Some(step);
        self.next_step = step + 1;
        if self.durability == Durability::EveryLog && !journaled {
            self.shared.flush(None, false)?;
        }
        Ok(())
    }

    /// Appends the row just buffered to the journal and syncs it; `false` when it is not
    /// durable there (no journal, full, or failing) and the caller must commit it.
    fn journal_row(&self, pending: &mut Pending, step: u64, time_ms: u64) -> bool {
        // A forked process must not write its parent's journal; its commit then fails.
        if self.shared.forked().is_some() {
            return false;
        }
        let Some(journal) = pending.journal.as_mut() else { return false };
        let names = self.interner.names_from(journal.names_through());
        // An error is not the caller's: its commit stores the row, and a fold starts the
        // journal again.
        journal.append(step, time_ms, names, &self.points).unwrap_or(false)
    }

    /// Sets a summary value (such as `best_acc`) that is not simply a metric's last value. A
    /// later `log` of the same name replaces it, as in W&B. It is not tied to a step: a rewind,
    /// which recomputes the logged values of the summary from the live history, keeps it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMetricName`] for a name that cannot be stored.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let mut run = store.init(runstore::RunOptions::new().id("s"))?;
    /// run.set_summary("best_acc", 0.97)?;
    /// run.finish(0)?;
    /// assert_eq!(store.open_run("s")?.info()?.summary["best_acc"], 0.97);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_summary(&mut self, name: &str, value: f64) -> Result<()> {
        self.interner.mark();
        let id = self.interner.id(name, usize::MAX)?;
        let mut pending = lock(&self.shared.pending);
        pending.new_names.extend(self.interner.added().map(str::to_string));
        pending.summary_sets.push((id, value));
        if let Some(journal) = pending.journal.as_mut() {
            journal.sets.push((id, value));
        }
        Ok(())
    }

    /// Merges `config` into the run's stored config, as a resuming `init` does: keys are added
    /// or updated, nested objects merged, none dropped. For settings known only once the run
    /// has started (W&B's `run.config.update`). Flushes first, and returns when the config is
    /// on disk.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for anything but a JSON object (nothing is stored), and the
    /// errors of [`Run::flush`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let mut run = store.init(runstore::RunOptions::new().id("c").config(serde_json::json!({"lr": 0.1})))?;
    /// run.update_config(serde_json::json!({"batch": 64}))?;
    /// assert_eq!(store.open_run("c")?.info()?.config["batch"], 64);
    /// assert_eq!(store.open_run("c")?.info()?.config["lr"], 0.1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update_config(&mut self, config: impl serde::Serialize) -> Result<()> {
        let config = match serde_json::to_value(config) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(other) => {
                let reason = format!("expected a JSON object, got {}", crate::options::json_kind(&other));
                return Err(Error::InvalidConfig { reason });
            }
            Err(error) => return Err(Error::InvalidConfig { reason: error.to_string() }),
        };
        self.flush()?;
        let mut slot = lock(&self.shared.slot);
        let Slot { writer, reopen, .. } = &mut *slot;
        let Some(open) = writer.as_mut() else { return Ok(()) };
        if let Err(error) = open.merge_config(config) {
            // As after a failed flush: redb refuses further writes on this handle.
            *reopen = Some(open.reopen_plan());
            *writer = None;
            return Err(error);
        }
        Ok(())
    }

    /// Records samples of time-indexed series (system metrics: CPU, memory, GPU…) taken at
    /// `time`: stored against time, not step, so they never create steps, never meet the step
    /// rules, and a rewind leaves them alone. Names start with `system/`; a step metric may not.
    /// They are committed with the next flush; each series keeps its samples in time order, and a
    /// sample at or before its series' last stored time is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidMetricName`] for a name that does not start with `system/` or cannot be
    /// stored (nothing of the call is kept).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// use std::time::SystemTime;
    ///
    /// let mut run = store.init(runstore::RunOptions::new().id("s"))?;
    /// run.log_system(SystemTime::now(), [("system/cpu_percent", 93.5), ("system/memory_rss_mib", 2048.0)])?;
    /// run.finish(0)?;
    /// let cpu = store.open_run("s")?.system("system/cpu_percent", ..)?;
    /// assert_eq!(cpu.len(), 1);
    /// assert_eq!(cpu[0].1, 93.5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn log_system<I, K>(&mut self, time: std::time::SystemTime, samples: I) -> Result<()>
    where
        I: IntoIterator<Item = (K, f64)>,
        K: AsRef<str>,
    {
        let time_ms = crate::sys::to_ms(time);
        self.interner.mark();
        let mut taken = Vec::new();
        for (name, value) in samples {
            match self.interner.system_id(name.as_ref()) {
                Ok(id) => taken.push((id, time_ms, value)),
                Err(error) => {
                    self.interner.rollback();
                    return Err(error);
                }
            }
        }
        let mut pending = lock(&self.shared.pending);
        pending.new_names.extend(self.interner.added().map(str::to_string));
        if let Some(journal) = pending.journal.as_mut() {
            journal.samples.extend_from_slice(&taken);
        }
        pending.samples.append(&mut taken);
        Ok(())
    }

    /// Rewinds the run to `step`, as [`crate::RunOptions::resume_from`] does at `init`: flushes,
    /// moves the rows after `step` into an archived branch, and makes `step + 1` the next step.
    /// For training code that decides which checkpoint to restart from after `init`.
    ///
    /// # Errors
    ///
    /// [`Error::BeyondHistory`] for a step after the last logged one,
    /// [`Error::RewindBeforeFork`] below a fork's fork step, and the errors of [`Run::flush`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let mut run = store.init(runstore::RunOptions::new().id("r"))?;
    /// for step in 0..20 {
    ///     run.log([("loss", step as f64)])?;
    /// }
    /// let branch = run.rewind(9)?.expect("rows 10..=19 archived");
    /// assert_eq!((branch.rows, branch.by_attempt), (10, 1));
    /// assert_eq!(run.step(), 10);
    /// run.log([("loss", -1.0)])?; // step 10 again, on the new branch
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rewind(&mut self, step: u64) -> Result<Option<Branch>> {
        self.flush()?;
        let mut slot = lock(&self.shared.slot);
        let Some(writer) = slot.writer.as_mut() else { return Ok(None) };
        let attempt = writer.attempt();
        let branch = writer.rewind(&self.id, step, attempt)?;
        self.next_step = writer.next_step();
        self.last_step = writer.last_step();
        self.merge_step = writer.own_last_step();
        Ok(branch.map(|(id, record)| Branch::from_record(id, record)))
    }

    /// Commits every buffered row now, durably, and returns when they are on disk.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] or [`Error::Io`] when the commit fails: the rows stay buffered, and
    /// the next flush opens the database again (redb refuses further writes on a handle after
    /// an I/O error) and retries them — after a full disk is given space, for instance.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let mut run = store.init(runstore::RunOptions::new().id("f"))?;
    /// run.log([("loss", 1.0)])?;
    /// run.flush()?;
    /// // Another reader (or process) sees the row now.
    /// assert_eq!(store.open_run("f")?.info()?.rows, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn flush(&mut self) -> Result<()> {
        self.shared.flush(None, false)
    }

    /// Flushes and marks the run `preempting`: the machine is about to take it away. If the
    /// process then dies, or finishes with a non-zero code, the run ends `preempted`;
    /// `finish(0)` still ends it `finished`.
    ///
    /// # Errors
    ///
    /// As [`Run::flush`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// use runstore::RunState;
    ///
    /// let mut run = store.init(runstore::RunOptions::new().id("p"))?;
    /// run.mark_preempting()?;
    /// assert_eq!(store.open_run("p")?.info()?.state, RunState::Preempting);
    /// run.finish(143)?;
    /// assert_eq!(store.open_run("p")?.info()?.state, RunState::Preempted);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn mark_preempting(&mut self) -> Result<()> {
        self.shared.flush(Some(Ending { state: RunState::Preempting, exit_code: None }), false)?;
        self.shared.preempting.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Opts in to SIGTERM and SIGINT handling for this run: when one arrives, the run is
    /// flushed and marked preempting (on a runstore thread) and [`Run::should_stop`] turns
    /// true, so that the training loop can save a checkpoint and exit — with a non-zero code, so
    /// that a sweep agent or SLURM requeues it. A second signal terminates the process at once.
    /// Nothing is installed unless this is called; the handling ends with the run.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the handlers cannot be installed.
    ///
    /// ```no_run
    /// # let store = runstore::Store::from_env()?;
    /// let mut run = store.init(runstore::RunOptions::new())?;
    /// run.stop_on_signals()?;
    /// while !run.should_stop() {
    ///     // train one step, log it
    /// #   break;
    /// }
    /// // save a checkpoint here
    /// let code = if run.should_stop() { 143 } else { 0 };
    /// run.finish(code)?;
    /// # Ok::<(), runstore::Error>(())
    /// ```
    pub fn stop_on_signals(&mut self) -> Result<()> {
        if self.signal_listener.is_none() {
            let listener: Arc<dyn signals::Listener> = self.shared.clone();
            signals::listen(&listener)?;
            self.signal_listener = Some(listener);
        }
        Ok(())
    }

    /// Whether SIGTERM or SIGINT arrived since [`Run::stop_on_signals`]: time to checkpoint and
    /// exit. The run is already flushed and marked preempting.
    #[must_use]
    pub fn should_stop(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    /// Ends this attempt: flushes, records `finished` for exit code 0, otherwise `failed` (or
    /// `preempted` after [`Run::mark_preempting`]), and releases the run's lock. A clean finish
    /// clears this directory's `auto` pointer.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] or [`Error::Io`] when the last commit fails; the lock is released
    /// anyway, and the run then reads as crashed with every earlier flushed row intact.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let run = store.init(runstore::RunOptions::new().id("x"))?;
    /// run.finish(1)?;
    /// assert_eq!(store.open_run("x")?.info()?.state, runstore::RunState::Failed);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn finish(mut self, exit_code: i32) -> Result<()> {
        let state = match (exit_code, self.shared.preempting.load(Ordering::SeqCst)) {
            (0, _) => RunState::Finished,
            (_, true) => RunState::Preempted,
            (_, false) => RunState::Failed,
        };
        self.close(Ending { state, exit_code: Some(exit_code) }, true)
    }

    /// Ends this attempt without changing how the run stands: a finished run stays finished, a
    /// failed one failed (a crashed one reads as failed). For appending evaluation results to a
    /// run whose training is over (`runstore log`). A run this attempt created ends finished.
    /// The `auto` pointer is left alone.
    ///
    /// # Errors
    ///
    /// As [`Run::finish`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// use runstore::{Resume, RunOptions, RunState};
    ///
    /// store.init(RunOptions::new().id("t"))?.finish(0)?;
    /// let mut eval = store.init(RunOptions::new().id("t").resume(Resume::Must))?;
    /// eval.log([("eval/acc", 0.93)])?;
    /// eval.end_keeping_state()?;
    /// assert_eq!(store.open_run("t")?.info()?.state, RunState::Finished);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn end_keeping_state(mut self) -> Result<()> {
        let ending = match self.previous {
            Some(Ending { state: RunState::Crashed, exit_code }) => Ending { state: RunState::Failed, exit_code },
            Some(previous) => previous,
            None => Ending { state: RunState::Finished, exit_code: Some(0) },
        };
        self.close(ending, false)
    }

    fn close(&mut self, ending: Ending, clear_pointer: bool) -> Result<()> {
        self.closed = true;
        if let Some(error) = self.shared.forked() {
            // A forked process: the threads to join are not in it, its copies of the locks may
            // be held by them, and the database is its parent's to write and close. Touch none
            // of it: what is shared stays alive (never dropped, never closed) until it exits.
            std::mem::forget(self.flusher.take());
            std::mem::forget(Arc::clone(&self.shared));
            return Err(error);
        }
        if let Some(listener) = self.signal_listener.take() {
            signals::unlisten(&listener);
        }
        // Joined before the last flush, which commits the samples it took.
        if let Some(sampler) = self.sampler.take() {
            sampler.stop();
        }
        if let Some(handle) = self.flusher.take() {
            lock(&self.shared.pending).shutdown = true;
            self.shared.wake.notify_all();
            // The flusher returns nothing and does not panic; a join error leaves nothing to do.
            let _ = handle.join();
        }
        let result = self.shared.flush(Some(ending), true);
        // Close the database before the lock goes, so that the next writer can open it.
        let writer = lock(&self.shared.slot).writer.take();
        if let Some(writer) = writer
            && result.is_ok()
        {
            writer.compact();
        }
        if result.is_ok()
            && clear_pointer
            && ending.state == RunState::Finished
            && let Some(pointer) = self.pointer.take()
        {
            pointer.clear_if_names(&self.id)?;
        }
        self.lock = None;
        result
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if !self.closed {
            let state =
                if self.shared.preempting.load(Ordering::SeqCst) { RunState::Preempted } else { RunState::Failed };
            // Nobody is left to report an error to; the rows flushed before stay intact.
            let _ = self.close(Ending { state, exit_code: None }, false);
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("id", &self.id)
            .field("step", &self.next_step)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}
