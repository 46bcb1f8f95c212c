//! Fault injection below the process: the run database is written through a redb
//! [`StorageBackend`] that fails, or loses power, at the k-th write or sync; k is swept over a
//! whole workload. After each fault the store is reopened with the real backend and checked:
//! it opens, the run reads, every row acknowledged before the fault is there bit-exact (or in
//! the archived branch an acknowledged rewind moved it to), steps strictly increase, every
//! stored row is one the workload logged, the state is one the acknowledged steps allow, the
//! lock is free, `Store::check` finds nothing wrong, and `init(allow)` resumes after the last
//! stored row.
//!
//! Faults:
//! - **fail**: the k-th write, `set_len` or sync returns an I/O error; `forever` fails every
//!   later one too (a disk gone bad), otherwise only that one (a transient error).
//! - **power cut**: from the k-th operation on, nothing reaches the file any more, and the
//!   writes made since the file's last sync are undone (all of them, or a seeded random subset:
//!   the page cache may have written any of them back before the power went). The process is
//!   told with I/O errors, so that it stops where a machine without power would, and nothing it
//!   does afterwards (such as renaming a half-created file) reaches the disk.
//!
//! The writer routes its database opens here while a plan is installed on the current thread
//! (`crate::write::writer::open_database`), and so does a durable attempt its journal
//! (`crate::write::journal`, made tiny so that the workload's rows fill it and it starts again);
//! readers always use the real file.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redb::StorageBackend;
use redb::backends::FileBackend;

use crate::error::{Context, Error, Result};
use crate::{Durability, Resume, RunOptions, RunState, Store};

/// What goes wrong, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Nothing: the dry run that counts operations.
    None,
    /// The k-th operation fails; `forever`: every later write or sync fails too.
    Fail { forever: bool },
    /// The power goes at the k-th operation; `subset`: a random subset of the unsynced writes
    /// is lost instead of all of them.
    Cut { subset: bool },
}

/// One undoable change made since its file's last sync.
struct Undo {
    file: Arc<File>,
    offset: u64,
    old: Vec<u8>,
    /// The file's length before the change, restored when the change is undone in full.
    old_len: u64,
}

/// The fault plan of this thread's test, shared by every backend it opens.
struct Plan {
    fault: Fault,
    at: u64,
    ops: u64,
    tripped: bool,
    rng: u64,
    unsynced: Vec<Undo>,
}

thread_local! {
    static PLAN: RefCell<Option<Arc<Mutex<Plan>>>> = const { RefCell::new(None) };
}

/// The backend the writer should open `path` with, while a plan is installed on this thread.
pub(crate) fn backend_for(path: &Path) -> Result<Option<FaultyBackend>> {
    let Some(plan) = PLAN.with(|plan| plan.borrow().clone()) else { return Ok(None) };
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).at(path)?;
    let shared = Arc::new(file.try_clone().at(path)?);
    let inner = FileBackend::new(file).map_err(|error| Error::storage(path, error))?;
    Ok(Some(FaultyBackend { inner, file: shared, plan }))
}

/// A [`FileBackend`] that obeys the thread's [`Plan`]. Locks are delegated unchanged (a run
/// database is opened in `SingleWriter` mode, which needs byte-range locks).
#[derive(Debug)]
pub(crate) struct FaultyBackend {
    inner: FileBackend,
    file: Arc<File>,
    plan: Arc<Mutex<Plan>>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("fault", &self.fault)
            .field("at", &self.at)
            .field("ops", &self.ops)
            .field("tripped", &self.tripped)
            .finish_non_exhaustive()
    }
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected fault: {what}"))
}

/// What an operation may do under the plan.
enum Verdict {
    Proceed,
    Refuse(&'static str),
}

impl Plan {
    /// Counts a write, `set_len` or sync, and trips the fault at the k-th.
    fn count(&mut self) -> Verdict {
        if self.tripped {
            return match self.fault {
                Fault::Fail { forever: true } => Verdict::Refuse("the disk failed"),
                Fault::Cut { .. } => Verdict::Refuse("the power is off"),
                _ => Verdict::Proceed,
            };
        }
        self.ops += 1;
        if self.ops < self.at {
            return Verdict::Proceed;
        }
        match self.fault {
            Fault::None => Verdict::Proceed,
            Fault::Fail { .. } => {
                self.tripped = true;
                Verdict::Refuse("an i/o error")
            }
            Fault::Cut { subset } => {
                self.tripped = true;
                self.power_cut(subset);
                Verdict::Refuse("the power is off")
            }
        }
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Undoes the unsynced changes, newest first: all of them, or a random subset of the writes.
    fn power_cut(&mut self, subset: bool) {
        let unsynced = std::mem::take(&mut self.unsynced);
        for undo in unsynced.iter().rev() {
            if subset && self.next_random().is_multiple_of(2) {
                continue;
            }
            // The test fails loudly if the file cannot be put back: that is no fault of the code.
            undo.file.write_all_at(&undo.old, undo.offset).expect("undo a write");
            if !subset {
                undo.file.set_len(undo.old_len).expect("undo a length change");
            }
        }
    }
}

impl FaultyBackend {
    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records what a change at `offset..offset + len` overwrites, so that a power cut can undo it.
    fn remember(&self, plan: &mut Plan, offset: u64, len: u64) -> io::Result<()> {
        let old_len = self.file.metadata()?.len();
        let available = old_len.saturating_sub(offset).min(len);
        let mut old = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
        let readable = usize::try_from(available).unwrap_or(usize::MAX);
        self.file.read_exact_at(&mut old[..readable], offset)?;
        plan.unsynced.push(Undo { file: Arc::clone(&self.file), offset, old, old_len });
        Ok(())
    }
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> io::Result<u64> {
        if self.plan().tripped && matches!(self.plan().fault, Fault::Cut { .. }) {
            return Err(injected("the power is off"));
        }
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        if self.plan().tripped && matches!(self.plan().fault, Fault::Cut { .. }) {
            return Err(injected("the power is off"));
        }
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut plan = self.plan();
        if let Verdict::Refuse(why) = plan.count() {
            return Err(injected(why));
        }
        let current = self.file.metadata()?.len();
        if len < current {
            // A shrink loses the tail: remember it.
            self.remember(&mut plan, len, current - len)?;
        } else {
            plan.unsynced.push(Undo {
                file: Arc::clone(&self.file),
                offset: current,
                old: Vec::new(),
                old_len: current,
            });
        }
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut plan = self.plan();
        if let Verdict::Refuse(why) = plan.count() {
            return Err(injected(why));
        }
        // The simulation decides what survives a power cut, so no real fsync is needed: the
        // sync makes this file's changes durable.
        let file = Arc::clone(&self.file);
        plan.unsynced.retain(|undo| !Arc::ptr_eq(&undo.file, &file));
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut plan = self.plan();
        if let Verdict::Refuse(why) = plan.count() {
            return Err(injected(why));
        }
        self.remember(&mut plan, offset, data.len() as u64)?;
        self.inner.write(offset, data)
    }

    fn close(&self) -> io::Result<()> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> std::result::Result<bool, redb::BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> std::result::Result<bool, redb::BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> std::result::Result<(), redb::BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> std::result::Result<(), redb::BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> std::result::Result<(), redb::BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> std::result::Result<bool, redb::BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

/// Installs a plan on this thread until dropped.
struct Installed(Arc<Mutex<Plan>>);

impl Installed {
    fn new(fault: Fault, at: u64, seed: u64) -> Installed {
        let plan = Arc::new(Mutex::new(Plan { fault, at, ops: 0, tripped: false, rng: seed, unsynced: Vec::new() }));
        PLAN.with(|slot| *slot.borrow_mut() = Some(Arc::clone(&plan)));
        Installed(plan)
    }

    fn tripped(&self) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).tripped
    }

    fn ops(&self) -> u64 {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).ops
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        PLAN.with(|slot| *slot.borrow_mut() = None);
    }
}

// ----------------------------------------------------------------------------------------------
// The workload and its model.

const ID: &str = "f";

/// The value of `metric` logged at `step` in epoch `epoch` (the number of rewinds before it),
/// with NaN payloads, infinities and signed zeros mixed in.
fn value(step: u64, epoch: u64, metric: &str) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let x = step as f64;
    #[allow(clippy::cast_precision_loss)]
    let e = epoch as f64;
    match metric {
        "epoch" => e,
        "loss" => 1.0 / (1.0 + 0.01 * x) + 0.001 * e,
        "sparse" => x.sqrt() - e,
        _ => match step % 4 {
            0 => f64::from_bits(0x7FF8_0000_0000_0000 | (step & 0xFFFF) | (epoch << 20)),
            1 => f64::INFINITY,
            2 => -0.0,
            _ => f64::NEG_INFINITY,
        },
    }
}

/// The metrics a row at `step` has.
fn metrics_at(step: u64) -> Vec<&'static str> {
    let mut metrics = vec!["epoch", "loss"];
    if step.is_multiple_of(3) {
        metrics.push("sparse");
    }
    if step.is_multiple_of(5) {
        metrics.push("special");
    }
    metrics
}

fn row(step: u64, epoch: u64) -> Vec<(&'static str, f64)> {
    metrics_at(step).into_iter().map(|metric| (metric, value(step, epoch, metric))).collect()
}

/// What the workload knows is on disk, from the calls that returned `Ok` before the fault.
#[derive(Debug, Default)]
struct Model {
    /// Live rows acknowledged durable: step → epoch.
    live: BTreeMap<u64, u64>,
    /// Acknowledged rewinds: branch id → the acknowledged rows it took.
    archived: BTreeMap<u32, BTreeMap<u64, u64>>,
    /// Whether the run was acknowledged created.
    created: bool,
    /// The states the run may be in after the fault.
    allowed: Vec<RunState>,
    /// A rewind was started but not acknowledged: acknowledged rows may sit in an unknown branch.
    rewind_in_flight: bool,
    /// Steps of acknowledged checkpoints that no acknowledged rewind archived.
    checkpoints: Vec<u64>,
    /// Steps of acknowledged checkpoints that an acknowledged rewind archived.
    archived_checkpoints: Vec<u64>,
    /// Times (seconds) of acknowledged system samples.
    samples: Vec<u64>,
}

impl Model {
    /// An operation that may change the state to `state` is starting.
    fn may_become(&mut self, state: RunState) {
        if !self.allowed.contains(&state) {
            self.allowed.push(state);
        }
    }

    /// It returned `Ok`: the state is `state`.
    fn became(&mut self, state: RunState) {
        self.allowed = vec![state];
    }

    fn flushed(&mut self, steps: impl IntoIterator<Item = u64>, epoch: u64) {
        for step in steps {
            self.live.insert(step, epoch);
        }
    }

    fn rewound(&mut self, to: u64, branch: Option<u32>) {
        self.rewind_in_flight = false;
        let archived = self.live.split_off(&(to + 1));
        if let Some(branch) = branch {
            self.archived.insert(branch, archived);
        }
        let (gone, kept) = self.checkpoints.iter().partition(|&&step| step > to);
        self.checkpoints = kept;
        self.archived_checkpoints.extend::<Vec<u64>>(gone);
    }
}

/// Options for the workload's `init`s: no background flush, so that the operation count is the
/// same on every run.
fn options() -> RunOptions {
    RunOptions::new().ignore_environment().id(ID).flush_every(1 << 20, Duration::from_secs(3600))
}

/// Logs `steps` at `epoch`.
fn log_all(run: &mut crate::Run, steps: impl IntoIterator<Item = u64>, epoch: u64) -> Result<()> {
    for step in steps {
        run.log_at(step, row(step, epoch))?;
    }
    Ok(())
}

/// The workload: a buffered attempt with explicit flushes, a gap in the steps, a rewind,
/// preemption; a durable attempt; a rewind from outside any attempt; a final attempt that
/// finishes. Stops at the first error. Every `Ok` is recorded in `model`.
fn workload(store: &Store, model: &mut Model) -> Result<()> {
    model.may_become(RunState::Crashed);
    let mut run = store.init(options().resume(Resume::Allow))?;
    model.created = true;
    model.became(RunState::Crashed);
    // A `Run` dropped after an error flushes and records itself failed (it opens the file
    // again after a failed commit, so a passing fault does not stop that).
    model.may_become(RunState::Failed);
    log_all(&mut run, 0..300, 0)?;
    for second in 0..5 {
        run.log_system(
            sample_time(second),
            [("system/cpu_percent", 10.0 * f64::from(u32::try_from(second).unwrap_or(0)))],
        )?;
    }
    // The checkpoint commits the rows it covers (and the samples) with it.
    run.checkpoint(checkpoint_file(store))?;
    model.flushed(0..300, 0);
    model.checkpoints.push(299);
    model.samples.extend(0..5);
    run.flush()?;
    log_all(&mut run, (300..340).chain(345..350), 0)?;
    run.flush()?;
    model.flushed((300..340).chain(345..350), 0);
    model.rewind_in_flight = true;
    let branch = run.rewind(200)?;
    model.rewound(200, branch.map(|branch| branch.id));
    log_all(&mut run, 201..320, 1)?;
    run.set_summary("best", 0.5)?;
    run.flush()?;
    model.flushed(201..320, 1);
    model.may_become(RunState::Preempted);
    run.mark_preempting()?;
    model.became(RunState::Preempted);
    run.finish(143)?;
    model.became(RunState::Preempted);

    model.may_become(RunState::Crashed);
    // A tiny journal: the attempt's rows make it double and then start again in a new epoch,
    // so that the faults also land in those.
    crate::write::journal::tiny_journals_on_this_thread(true);
    let opened = store.init(options().resume(Resume::Must).durability(Durability::EveryLog));
    crate::write::journal::tiny_journals_on_this_thread(false);
    let mut run = opened?;
    model.became(RunState::Crashed);
    // A `Run` dropped after an error flushes and records itself failed (it opens the file
    // again after a failed commit, so a passing fault does not stop that).
    model.may_become(RunState::Failed);
    for step in 320..340 {
        run.log_system(sample_time(step), [("system/cpu_percent", f64::from(u32::try_from(step).unwrap_or(0)))])?;
        run.log_at(step, row(step, 1))?;
        model.flushed([step], 1);
        model.samples.push(step);
    }
    model.may_become(RunState::Finished);
    run.finish(0)?;
    model.became(RunState::Finished);

    model.rewind_in_flight = true;
    let branch = store.rewind(ID, 330)?;
    model.rewound(330, branch.map(|branch| branch.id));

    model.may_become(RunState::Crashed);
    let mut run = store.init(options().resume(Resume::Allow))?;
    model.became(RunState::Crashed);
    // A `Run` dropped after an error flushes and records itself failed (it opens the file
    // again after a failed commit, so a passing fault does not stop that).
    model.may_become(RunState::Failed);
    log_all(&mut run, 331..400, 2)?;
    run.checkpoint_at(390, checkpoint_file(store))?;
    model.flushed(331..400, 2);
    model.checkpoints.push(390);
    run.flush()?;
    model.may_become(RunState::Failed);
    run.finish(3)?;
    model.became(RunState::Failed);
    Ok(())
}

/// The time of the workload's system sample number `second`.
fn sample_time(second: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(1_795_000_000 + second)
}

/// The file the workload's checkpoints name, beside the store (written once: runstore only
/// stats it).
fn checkpoint_file(store: &Store) -> std::path::PathBuf {
    let path = store.path().with_extension("ckpt");
    if !path.exists() {
        std::fs::write(&path, b"state").expect("checkpoint file");
    }
    path
}

/// Checks the reopened store against what was acknowledged; returns the violations.
#[allow(clippy::too_many_lines)] // one check after another, in the order of the module docs
fn verify(store: &Store, model: &Model) -> Vec<String> {
    let mut violations = Vec::new();
    let mut fail = |what: String| violations.push(what);
    if !store.exists(ID).unwrap_or(false) {
        if model.created {
            fail("the run was acknowledged created but does not exist".into());
        }
        return violations;
    }
    let reader = match store.open_run(ID) {
        Ok(reader) => reader,
        Err(error) => {
            fail(format!("the run does not open: {error}"));
            return violations;
        }
    };
    let info = match reader.info() {
        Ok(info) => info,
        Err(error) => {
            fail(format!("the run's info does not read: {error}"));
            return violations;
        }
    };
    // Every stored row is one the workload logged, in strictly increasing steps.
    let mut live = BTreeMap::new();
    let mut last_values: BTreeMap<String, u64> = BTreeMap::new();
    match reader.history(..) {
        Err(error) => fail(format!("the history does not open: {error}")),
        Ok(history) => {
            for row in history {
                let row = match row {
                    Ok(row) => row,
                    Err(error) => {
                        fail(format!("a row does not read: {error}"));
                        break;
                    }
                };
                if live.last_key_value().is_some_and(|(&last, _)| row.step() <= last) {
                    fail(format!("step {} after a step not below it", row.step()));
                }
                if let Some(message) = row_problem(&row) {
                    fail(message);
                }
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                live.insert(row.step(), row.get("epoch").unwrap_or(-1.0) as u64);
                for (name, value) in row.iter() {
                    last_values.insert(name.to_string(), value.to_bits());
                }
            }
        }
    }
    let branches = reader.branches().unwrap_or_else(|error| {
        fail(format!("the branches do not read: {error}"));
        Vec::new()
    });
    let known: Vec<u32> = model.archived.keys().copied().collect();
    let unknown_branches: Vec<u32> = branches.iter().map(|b| b.id).filter(|id| !known.contains(id)).collect();
    let branch_rows = |id: u32| -> BTreeMap<u64, u64> {
        let mut rows = BTreeMap::new();
        if let Ok(history) = reader.branch_history(id, ..) {
            for row in history.flatten() {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                rows.insert(row.step(), row.get("epoch").unwrap_or(-1.0) as u64);
            }
        }
        rows
    };
    // Acknowledged rows: live, or in an unacknowledged rewind's branch.
    for (&step, &epoch) in &model.live {
        if live.get(&step) == Some(&epoch) {
            continue;
        }
        let elsewhere =
            model.rewind_in_flight && unknown_branches.iter().any(|&id| branch_rows(id).get(&step) == Some(&epoch));
        if !elsewhere {
            fail(format!("acknowledged row {step} (epoch {epoch}) is missing: live has {:?}", live.get(&step)));
        }
    }
    for (&branch, rows) in &model.archived {
        let stored = branch_rows(branch);
        for (&step, &epoch) in rows {
            if stored.get(&step) != Some(&epoch) {
                fail(format!("acknowledged archived row {step} (epoch {epoch}) is not in branch {branch}"));
            }
        }
    }
    if info.rows != live.len() as u64 {
        fail(format!("progress says {} rows, the history has {}", info.rows, live.len()));
    }
    let last = live.last_key_value().map(|(&step, _)| step);
    if info.last_step != last {
        fail(format!("progress says the last step is {:?}, the history ends at {last:?}", info.last_step));
    }
    let latest_rewind = branches.iter().max_by_key(|b| b.id).map(|b| b.rewound_to);
    let expected_next = last.map_or(0, |l| l + 1).max(latest_rewind.map_or(0, |r| r + 1));
    if info.next_step != expected_next {
        fail(format!("next step {} where {expected_next} was expected", info.next_step));
    }
    for (name, bits) in &last_values {
        if name != "best" && info.summary.get(name).map(|v| v.to_bits()) != Some(*bits) {
            fail(format!("summary of {name} is not its last logged value"));
        }
    }
    if !model.allowed.contains(&info.state) {
        fail(format!("state {} where {:?} was allowed", info.state, model.allowed));
    }
    match reader.system("system/cpu_percent", ..) {
        Err(error) => fail(format!("the system samples do not read: {error}")),
        Ok(samples) => {
            let times: Vec<std::time::SystemTime> = samples.iter().map(|(time, _)| *time).collect();
            if times.windows(2).any(|pair| pair[0] >= pair[1]) {
                fail(format!("system samples are not stored once each, in time order: {times:?}"));
            }
            for &second in &model.samples {
                if !times.contains(&sample_time(second)) {
                    fail(format!("acknowledged system sample {second} is missing"));
                }
            }
        }
    }
    match reader.checkpoints() {
        Err(error) => fail(format!("the checkpoints do not read: {error}")),
        Ok(checkpoints) => {
            for &step in &model.checkpoints {
                // A rewind that failed after reaching the file archived what it covers.
                let archived_ok = model.rewind_in_flight;
                if !checkpoints.iter().any(|c| c.step == step && (c.branch.is_none() || archived_ok)) {
                    fail(format!("acknowledged checkpoint at {step} is not live: {checkpoints:?}"));
                }
            }
            for &step in &model.archived_checkpoints {
                if !checkpoints.iter().any(|c| c.step == step && c.branch.is_some()) {
                    fail(format!("checkpoint at {step} is not archived by its acknowledged rewind: {checkpoints:?}"));
                }
            }
            for checkpoint in checkpoints.iter().filter(|c| c.branch.is_none()) {
                if !live.contains_key(&checkpoint.step) {
                    fail(format!("live checkpoint at {} covers a step that is not live", checkpoint.step));
                }
            }
        }
    }
    match reader.holder() {
        Ok(None) => {}
        other => fail(format!("the lock is not free: {other:?}")),
    }
    match store.check(ID) {
        Ok(report) if report.is_healthy() => {}
        Ok(report) => fail(format!("check finds problems: {:?}", report.problems)),
        Err(error) => fail(format!("check fails: {error}")),
    }
    drop(reader);
    match store.init(RunOptions::new().ignore_environment().id(ID).resume(Resume::Allow)) {
        Ok(mut run) => {
            if run.step() != expected_next {
                fail(format!("init(allow) resumes at {} instead of {expected_next}", run.step()));
            }
            let step = run.step();
            if let Err(error) = run.log(row(step, 99)).and_then(|()| run.finish(0)) {
                fail(format!("the resumed run does not take a row: {error}"));
            }
        }
        Err(error) => fail(format!("init(allow) fails: {error}")),
    }
    violations
}

/// Why a stored row is not one the workload logged, if it is not.
fn row_problem(stored: &crate::Row) -> Option<String> {
    let Some(epoch) = stored.get("epoch") else { return Some(format!("row {} has no epoch", stored.step())) };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let epoch = epoch as u64;
    let expected: Vec<(String, u64)> =
        row_sorted(row(stored.step(), epoch).into_iter().map(|(name, value)| (name.to_string(), value.to_bits())));
    let points = row_sorted(stored.iter().map(|(name, value)| (name.to_string(), value.to_bits())));
    (expected != points).then(|| format!("row {} is not what was logged: {points:?}", stored.step()))
}

fn row_sorted(points: impl Iterator<Item = (String, u64)>) -> Vec<(String, u64)> {
    let mut points: Vec<_> = points.collect();
    points.sort();
    points
}

/// A store directory on tmpfs when there is one: fsyncs there are free.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("temporary directory")
}

/// One workload under `fault` at operation `at`, then the checks. Returns whether the fault
/// tripped, and the violations.
fn trial(fault: Fault, at: u64, seed: u64) -> (bool, u64, Vec<String>) {
    let dir = scratch();
    let store = Store::open(dir.path().join("store")).expect("store");
    let mut model = Model::default();
    let (tripped, ops, outcome) = {
        let plan = Installed::new(fault, at, seed);
        let outcome = workload(&store, &mut model);
        (plan.tripped(), plan.ops(), outcome)
    };
    let mut violations = Vec::new();
    // A fault may go unnoticed where errors are deliberately ignored (compaction at finish).
    match (&outcome, tripped) {
        (Err(error), _) if !matches!(error, Error::Storage { .. } | Error::Io { .. } | Error::Corrupt { .. }) => {
            violations.push(format!("the fault surfaced as an unexpected error: {error:?}"));
        }
        (Err(error), false) => violations.push(format!("an error without a fault: {error}")),
        _ => {}
    }
    violations.extend(verify(&store, &model));
    (tripped, ops, violations.into_iter().map(|v| format!("{fault:?} at op {at}: {v}")).collect())
}

/// Sweeps `at` over `1..=ops` with `stride`, for each fault. Returns (trials, violations).
fn sweep(faults: &[Fault], stride: usize) -> (u64, Vec<String>) {
    let (_, ops, violations) = trial(Fault::None, u64::MAX, 0);
    assert!(violations.is_empty(), "the workload fails without faults: {violations:?}");
    assert!(ops > 50, "the workload makes {ops} writes and syncs");
    let mut trials = 0;
    let mut all = Vec::new();
    for (index, &fault) in (0u64..).zip(faults) {
        // Each fault starts at another offset, so that together they cover more positions.
        let first = 1 + index * (stride as u64) / (faults.len() as u64);
        for at in (first..=ops).step_by(stride) {
            let (tripped, _, violations) = trial(fault, at, at.wrapping_mul(0x9E37_79B9));
            assert!(tripped, "{fault:?} at {at} of {ops} did not trip");
            trials += 1;
            all.extend(violations);
        }
    }
    eprintln!("fault injection: {ops} writes and syncs in the workload, {trials} faults injected");
    (trials, all)
}

const ALL_FAULTS: [Fault; 4] = [
    Fault::Fail { forever: true },
    Fault::Fail { forever: false },
    Fault::Cut { subset: false },
    Fault::Cut { subset: true },
];

#[test]
fn a_commit_that_reports_failure_after_reaching_the_file_is_not_stored_twice() {
    // A single failed write or sync in and around the workload's first commits: when the error
    // comes after the commit reached the file, the retry must not store its rows again.
    let mut violations = Vec::new();
    for at in 1..=120 {
        let (tripped, _, found) = trial(Fault::Fail { forever: false }, at, at.wrapping_mul(0x9E37_79B9));
        assert!(tripped, "the fault at {at} did not trip");
        violations.extend(found);
    }
    assert!(violations.is_empty(), "{} violations:\n{}", violations.len(), violations.join("\n"));
}

#[test]
fn every_acknowledged_row_survives_a_fault_at_any_write_or_sync() {
    // A stride that is prime to the usual commit length spreads the faults over every phase.
    let (trials, violations) = sweep(&ALL_FAULTS, 17);
    assert!(trials > 50);
    assert!(violations.is_empty(), "{} violations:\n{}", violations.len(), violations.join("\n"));
}

/// The whole sweep: every operation, every fault. `cargo test --lib fault_tests -- --ignored`.
#[test]
#[ignore = "the long version: a few minutes"]
fn every_acknowledged_row_survives_a_fault_at_every_write_or_sync() {
    let (trials, violations) = sweep(&ALL_FAULTS, 1);
    eprintln!("{trials} faults injected, {} violations", violations.len());
    assert!(violations.is_empty(), "{} violations:\n{}", violations.len(), violations.join("\n"));
}

// ----------------------------------------------------------------------------------------------
// Suspected bugs of issue #19, confirmed or ruled out.

/// Trips the plan's fault at the next write or sync.
fn trip_next(plan: &Installed) {
    let mut plan = plan.0.lock().unwrap_or_else(PoisonError::into_inner);
    plan.at = plan.ops + 1;
}

#[test]
fn a_value_logged_after_a_set_summary_whose_commit_failed_wins_on_retry() {
    let dir = scratch();
    let store = Store::open(dir.path().join("store")).expect("store");
    let plan = Installed::new(Fault::Fail { forever: false }, u64::MAX, 1);
    let mut run = store.init(options()).expect("init");
    run.log([("x", 1.0)]).expect("log");
    run.flush().expect("flush");
    run.set_summary("x", 5.0).expect("set_summary");
    trip_next(&plan);
    assert!(run.flush().is_err(), "the injected fault fails the commit of the pinned value");
    // Logged after the set: as in W&B, the later log replaces the set value.
    run.log([("x", 7.0)]).expect("log");
    run.flush().expect("the retry");
    run.finish(0).expect("finish");
    drop(plan);
    assert_eq!(store.open_run(ID).expect("open").info().expect("info").summary["x"].to_bits(), 7.0f64.to_bits());
}

#[test]
fn a_preempting_mark_after_the_final_commit_does_not_change_the_ended_state() {
    // What a signal thread's flush does when it takes the writer's slot after `finish` committed
    // and before the writer is taken away: a state change that does not close the attempt.
    let dir = scratch();
    let store = Store::open(dir.path().join("store")).expect("store");
    let path = store.database_path(ID);
    drop(store.init(options()).expect("init").finish(0));
    let mut writer = crate::write::writer::Writer::open(&path).expect("open");
    let preempting = crate::write::writer::Ending { state: RunState::Preempting, exit_code: None };
    let extras = crate::write::writer::Extras { state: Some(preempting), ..Default::default() };
    writer.commit(&crate::format::batch::RowBatch::default(), &extras).expect("commit");
    drop(writer);
    assert_eq!(store.open_run(ID).expect("open").info().expect("info").state, RunState::Finished);
}

/// Ends a `forever` fault: the disk works again.
fn heal(plan: &Installed) {
    let mut plan = plan.0.lock().unwrap_or_else(PoisonError::into_inner);
    plan.tripped = false;
    plan.at = u64::MAX;
}

#[test]
fn with_every_log_a_row_whose_commit_failed_stays_buffered_and_the_next_flush_stores_it() {
    let dir = scratch();
    let store = Store::open(dir.path().join("store")).expect("store");
    let plan = Installed::new(Fault::Fail { forever: true }, u64::MAX, 1);
    let mut run = store.init(options().durability(Durability::EveryLog)).expect("init");
    run.log([("x", 1.0)]).expect("log");
    // The journal's write fails, and so does the commit the log call falls back to.
    trip_next(&plan);
    assert!(run.log([("x", 2.0)]).is_err(), "the row's own commit fails");
    assert_eq!(run.step(), 2, "the row was taken");
    heal(&plan);
    run.flush().expect("the retry");
    run.finish(0).expect("finish");
    drop(plan);
    let reader = store.open_run(ID).expect("open");
    let rows: Vec<_> = reader.history(..).expect("history").map(|row| row.expect("row").get("x")).collect();
    assert_eq!(rows, [Some(1.0), Some(2.0)], "as the documentation of `Run::log` says");
}
