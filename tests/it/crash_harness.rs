//! The crash harness: a child process runs a seeded workload on a few runs — logging with the
//! default (buffered) policy and with per-log durability, explicit flushes, rewinds, summary
//! values, preemption marks, finishing, dropping and resuming — and reports each step it knows
//! is durable. The parent SIGKILLs it at a seeded moment, replays the reports into a model, and
//! checks the invariants:
//!
//! - the store opens and every run reads (`Store::check_all` finds no damage, and redb's
//!   integrity check passes on every run that is not live);
//! - every row reported durable is there, bit-exact — live, or in the archived branch that a
//!   reported rewind moved it to (or, when a rewind was cut short by the kill, in a branch the
//!   parent was not told about);
//! - every stored row is one the workload logged (values are a function of run, step and the
//!   number of rewinds before it, which is itself a metric), steps strictly increase, the row
//!   count, last step and summary agree with the history;
//! - the state is what the reported steps allow (crashed, or preempted once marked; finished or
//!   failed when a finish was under way), and so is the last attempt's outcome;
//! - the lock is free, and `init(allow)` resumes at the step after the last stored row (or
//!   after the last rewind's step);
//! - while the child writes, the parent reads every run the child holds through snapshots, each
//!   whole (as many rows as its progress record says, a finished attempt closed), and forks
//!   them now and then: a fork's history never changes, whatever its parent does after.
//!
//! This file is shared: the test binary runs a short version (`crash_harness::tests`), and
//! `examples/crash_soak.rs` includes it for the long one. It uses only `runstore` and std.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use runstore::{Claim, Durability, ItemExit, ItemState, Resume, Row, RunOptions, RunState, Store};

/// The runs the workload writes.
pub const RUNS: [&str; 3] = ["alpha", "beta", "gamma"];

/// Reports start with this and end with [`END`], so that a line cut by the kill is ignored.
const SAY: &str = "@@ ";
const END: &str = " $";

/// A small deterministic generator (splitmix64): the schedule and the workload are seeded.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True with probability `percent` in 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

// ---------------------------------------------------------------------------------------------
// The values the workload logs.

/// The value of `metric` at `step` of `run` in epoch `epoch` (the run's number of archived
/// branches when it was logged): NaN payloads, infinities and signed zeros included.
pub fn value(run: &str, step: u64, epoch: u64, metric: &str) -> f64 {
    let salt = run.bytes().fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    #[allow(clippy::cast_precision_loss)]
    let (x, e) = (step as f64, epoch as f64);
    match metric {
        "epoch" => e,
        "loss" => 2.0 / (1.0 + 0.001 * x) + 0.01 * (x + e).sin(),
        "acc" => 1.0 - 1.0 / (2.0 + x) - 1e-3 * e,
        "eval/special" => match (step + salt) % 6 {
            0 => f64::from_bits(0x7FF8_0000_0000_0000 | (step & 0xFFFF_FFFF) | (epoch << 40)),
            1 => f64::INFINITY,
            2 => f64::NEG_INFINITY,
            3 => -0.0,
            4 => f64::MIN_POSITIVE / 3.0,
            _ => -f64::NAN,
        },
        _ => x * 0.5 + e,
    }
}

/// The metrics a row at `step` has: some rows lack some metrics, and one metric first appears
/// late in a run.
pub fn metrics_at(step: u64) -> Vec<&'static str> {
    let mut metrics = vec!["epoch", "loss"];
    if !step.is_multiple_of(3) {
        metrics.push("acc");
    }
    if step.is_multiple_of(7) {
        metrics.push("eval/special");
    }
    if step >= 300 {
        metrics.push("late/metric");
    }
    metrics
}

pub fn row(run: &str, step: u64, epoch: u64) -> Vec<(&'static str, f64)> {
    metrics_at(step).into_iter().map(|metric| (metric, value(run, step, epoch, metric))).collect()
}

// ---------------------------------------------------------------------------------------------
// The child: the workload.

fn say(line: &str) {
    // One write per report: a line is in the pipe whole or not at all.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(format!("{SAY}{line}{END}\n").as_bytes());
    let _ = out.flush();
}

/// `1-5,7,9-12`: the steps as ranges.
fn ranges(steps: &[u64]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < steps.len() {
        let mut j = i;
        while j + 1 < steps.len() && steps[j + 1] == steps[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { steps[i].to_string() } else { format!("{}-{}", steps[i], steps[j]) });
        i = j + 1;
    }
    if parts.is_empty() { "-".to_string() } else { parts.join(",") }
}

fn parse_ranges(text: &str) -> Vec<u64> {
    if text == "-" {
        return Vec::new();
    }
    let mut steps = Vec::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) = (a.parse().expect("range start"), b.parse().expect("range end"));
                steps.extend(a..=b);
            }
            None => steps.push(part.parse().expect("step")),
        }
    }
    steps
}

/// One run open in the child.
struct Open {
    name: &'static str,
    run: runstore::Run,
    epoch: u64,
    durable: bool,
    marked: bool,
    /// Logged since the last report of durable steps.
    pending: Vec<u64>,
    /// How the run stood before this attempt: what `end_keeping_state` keeps.
    previous: Option<RunState>,
    /// The file the run's checkpoints name.
    checkpoint: std::path::PathBuf,
}

impl Open {
    fn report_pending(&mut self) {
        say_flushed(self.name, self.epoch, &self.pending);
        self.pending.clear();
    }
}

/// Reports `steps` of `run`, logged in `epoch`, as durable.
fn say_flushed(run: &str, epoch: u64, steps: &[u64]) {
    if !steps.is_empty() {
        say(&format!("flushed {run} {epoch} {}", ranges(steps)));
    }
}

/// Fails the child with a report the parent counts as a violation.
fn fail(what: &str, error: &runstore::Error) -> ! {
    say(&format!("error {what}: {error}").replace('\n', " "));
    std::process::exit(3)
}

/// Runs the workload of `seed` on the store at `store` until `episodes` are done (or the parent
/// kills the process, which is the point).
pub fn child_main(store: &Path, seed: u64, episodes: u64) {
    let store = Store::open(store).unwrap_or_else(|error| fail("open the store", &error));
    let mut rng = Rng::new(seed);
    let mut queue = QueueWork { seed, pushed: 0, held: None };
    for _ in 0..episodes {
        if rng.chance(50) {
            queue.operate(&store, &mut rng);
        }
        let name = RUNS[usize::try_from(rng.below(RUNS.len() as u64)).unwrap_or(0)];
        let previous = match store.open_run(name) {
            Ok(reader) => Some(reader.info().unwrap_or_else(|error| fail("read before init", &error)).state),
            Err(runstore::Error::RunNotFound { .. }) => None,
            Err(error) => fail("open before init", &error),
        };
        let durable = rng.chance(25);
        let mut options = RunOptions::new().ignore_environment().id(name).resume(Resume::Allow);
        if durable {
            options = options.durability(Durability::EveryLog);
        } else {
            let rows = usize::try_from(8 + rng.below(500)).unwrap_or(64);
            options = options.flush_every(rows, Duration::from_millis(2 + rng.below(100)));
        }
        say(&format!("init-start {name}"));
        let run = store.init(options).unwrap_or_else(|error| fail("init", &error));
        let epoch = u64::from(store.open_run(name).and_then(|r| r.info()).map_or(0, |info| info.branches));
        say(&format!("init-ok {name} {} {epoch}", run.step()));
        let checkpoint = store.path().with_extension("ckpt");
        if !checkpoint.exists()
            && let Err(error) = std::fs::write(&checkpoint, b"state")
        {
            say(&format!("error write a checkpoint: {error}"));
            std::process::exit(3);
        }
        let mut open = Open { name, run, epoch, durable, marked: false, pending: Vec::new(), previous, checkpoint };
        let forever = rng.chance(15);
        let operations = if forever { u64::MAX } else { 3 + rng.below(25) };
        for _ in 0..operations {
            operate(&mut open, &mut rng);
        }
        end(open, &mut rng);
    }
}

/// The queue part of the workload: push items, claim one and hold the claim across a run's
/// episode (so that kills land while it is held), settle it later.
struct QueueWork {
    seed: u64,
    pushed: u64,
    held: Option<Claim>,
}

impl QueueWork {
    fn operate(&mut self, store: &Store, rng: &mut Rng) {
        let queue = store.queue(QUEUE).unwrap_or_else(|error| fail("queue", &error));
        if let Some(claim) = self.held.take() {
            let item = claim.item().id.clone();
            let done = rng.chance(70);
            say(&format!("qsettle-start {QUEUE} {item} {}", if done { "done" } else { "pending" }));
            let exit = ItemExit::Code { code: i32::from(!done) };
            claim.settle(exit, 1000).unwrap_or_else(|error| fail("settle", &error));
            say(&format!("qsettle-ok {QUEUE} {item} {}", if done { "done" } else { "pending" }));
        }
        for _ in 0..=rng.below(2) {
            self.pushed += 1;
            let item = format!("q{:x}-{}", self.seed & 0xFFFF_FFFF, self.pushed);
            say(&format!("qpush-start {QUEUE} {item}"));
            queue.push(Some(&item), serde_json::json!({"n": self.pushed})).unwrap_or_else(|error| fail("push", &error));
            say(&format!("qpush-ok {QUEUE} {item}"));
        }
        if let Some(claim) = queue.claim().unwrap_or_else(|error| fail("claim", &error)) {
            say(&format!("qclaim-ok {QUEUE} {}", claim.item().id));
            self.held = Some(claim);
        }
    }
}

/// The queue the workload pushes to and claims from.
const QUEUE: &str = "work";

/// One operation on an open run.
fn operate(open: &mut Open, rng: &mut Rng) {
    let name = open.name;
    match rng.below(100) {
        0..=54 => {
            for _ in 0..=rng.below(60) {
                let mut step = open.run.step();
                if rng.chance(4) {
                    step += 1 + rng.below(5);
                }
                open.run.log_at(step, row(name, step, open.epoch)).unwrap_or_else(|error| fail("log", &error));
                if open.durable {
                    say_flushed(name, open.epoch, &[step]);
                } else {
                    open.pending.push(step);
                }
            }
        }
        55..=74 => {
            open.run.flush().unwrap_or_else(|error| fail("flush", &error));
            open.report_pending();
        }
        75..=84 => {
            let Some(last) = open.run.last_step() else { return };
            let to = last.saturating_sub(rng.below(150));
            say(&format!("rewind-start {name} {to}"));
            let branch = open.run.rewind(to).unwrap_or_else(|error| fail("rewind", &error));
            // The rewind flushed everything logged before it.
            open.report_pending();
            match branch {
                Some(branch) => {
                    open.epoch = u64::from(branch.id) + 1;
                    say(&format!("rewind-ok {name} {to} {}", branch.id));
                }
                None => say(&format!("rewind-ok {name} {to} none")),
            }
        }
        85..=89 => {
            #[allow(clippy::cast_precision_loss)]
            let best = rng.below(1000) as f64 / 1000.0;
            open.run.set_summary("best", best).unwrap_or_else(|error| fail("set_summary", &error));
        }
        90..=92 => {
            say(&format!("mark-start {name}"));
            open.run.mark_preempting().unwrap_or_else(|error| fail("mark_preempting", &error));
            open.marked = true;
            open.report_pending();
            say(&format!("mark-ok {name}"));
        }
        93..=95 => {
            // A checkpoint of the state after the last logged step: a real file beside the
            // store, recorded with every row logged so far.
            let Some(last) = open.run.last_step() else { return };
            say(&format!("checkpoint-start {name} {last}"));
            open.run.checkpoint(&open.checkpoint).unwrap_or_else(|error| fail("checkpoint", &error));
            open.report_pending();
            say(&format!("checkpoint-ok {name} {last}"));
        }
        // (Queue claims are made between episodes: see `QueueWork`.)
        _ => std::thread::sleep(Duration::from_millis(1 + rng.below(4))),
    }
}

/// Ends an attempt: finish, drop, or end keeping the state.
fn end(mut open: Open, rng: &mut Rng) {
    let name = open.name;
    match rng.below(10) {
        0..=4 => {
            let code = if rng.chance(60) { 0 } else { 1 + i32::try_from(rng.below(200)).unwrap_or(1) };
            let state = match (code, open.marked) {
                (0, _) => RunState::Finished,
                (_, true) => RunState::Preempted,
                _ => RunState::Failed,
            };
            say(&format!("end-start {name} {state}"));
            let pending = std::mem::take(&mut open.pending);
            open.run.finish(code).unwrap_or_else(|error| fail("finish", &error));
            // `finish` returned: everything logged is durable.
            say_flushed(name, open.epoch, &pending);
            say(&format!("end-ok {name} {state}"));
        }
        5..=7 => {
            let state = if open.marked { RunState::Preempted } else { RunState::Failed };
            say(&format!("end-start {name} {state}"));
            // Drop reports no error, so its rows are not known to be durable.
            drop(open.run);
            say(&format!("end-ok {name} {state}"));
        }
        _ => {
            let state = match open.previous {
                None => RunState::Finished,
                Some(RunState::Crashed) => RunState::Failed,
                Some(state) => state,
            };
            say(&format!("end-start {name} {state}"));
            let pending = std::mem::take(&mut open.pending);
            open.run.end_keeping_state().unwrap_or_else(|error| fail("end_keeping_state", &error));
            say_flushed(name, open.epoch, &pending);
            say(&format!("end-ok {name} {state}"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parent: the model and the checks.

/// What the parent knows about one run from the reports.
#[derive(Debug, Default)]
struct Model {
    /// An `init` of the run returned.
    created: bool,
    /// Durable live rows: step → epoch.
    live: BTreeMap<u64, u64>,
    /// Reported rewinds: branch → the durable rows they moved.
    archived: BTreeMap<u32, BTreeMap<u64, u64>>,
    /// A rewind began and has not been reported done: after a kill, a branch that no report
    /// names may exist (see `verify_run`).
    unreported_rewind: bool,
    /// Steps of checkpoints reported recorded and not archived by a reported rewind.
    checkpoints: Vec<u64>,
    /// Steps of reported checkpoints that a reported rewind archived.
    archived_checkpoints: Vec<u64>,
    /// The states the run may be in.
    allowed: Vec<RunState>,
}

impl Model {
    fn may_become(&mut self, state: RunState) {
        if !self.allowed.contains(&state) {
            self.allowed.push(state);
        }
    }
}

fn state_named(text: &str) -> RunState {
    text.parse().expect("a state")
}

/// Replays one report into the models.
fn apply(models: &mut BTreeMap<String, Model>, report: &str, violations: &mut Vec<String>) {
    let words: Vec<&str> = report.split(' ').collect();
    if words[0] == "error" {
        violations.push(format!("the workload failed: {report}"));
        return;
    }
    if words[0].starts_with('q') {
        return;
    }
    let model = models.entry(words[1].to_string()).or_default();
    match words[0] {
        "init-start" => model.may_become(RunState::Crashed),
        "init-ok" => {
            model.created = true;
            model.allowed = vec![RunState::Crashed];
            let step: u64 = words[2].parse().expect("step");
            if let Some((&last, _)) = model.live.last_key_value()
                && step <= last
            {
                violations.push(format!("run {} resumed at {step}, not after durable step {last}", words[1]));
            }
        }
        "flushed" => {
            let epoch = words[2].parse().expect("epoch");
            for step in parse_ranges(words[3]) {
                model.live.insert(step, epoch);
            }
        }
        "rewind-start" => model.unreported_rewind = true,
        "rewind-ok" => {
            model.unreported_rewind = false;
            let to: u64 = words[2].parse().expect("step");
            let moved = model.live.split_off(&(to + 1));
            match words[3] {
                "none" if moved.is_empty() => {}
                "none" => violations
                    .push(format!("run {}: a rewind to {to} moved nothing, though rows were after it", words[1])),
                branch => {
                    model.archived.insert(branch.parse().expect("branch"), moved);
                }
            }
            let (gone, kept): (Vec<u64>, Vec<u64>) = model.checkpoints.iter().partition(|&&step| step > to);
            model.checkpoints = kept;
            model.archived_checkpoints.extend(gone);
        }
        "checkpoint-start" => {}
        "checkpoint-ok" => model.checkpoints.push(words[2].parse().expect("step")),
        "mark-start" => model.may_become(RunState::Preempted),
        "mark-ok" => model.allowed = vec![RunState::Preempted],
        "end-start" => model.may_become(state_named(words[2])),
        "end-ok" => model.allowed = vec![state_named(words[2])],
        other => violations.push(format!("unknown report {other:?}")),
    }
}

/// What the parent knows of the queue's items from the reports: item → what was acknowledged.
#[derive(Debug, Default)]
struct QueueModel {
    /// Push began (the item may exist) / push returned (it must).
    started: BTreeMap<String, bool>,
    /// Settled done and acknowledged: must read done.
    done: Vec<String>,
    /// A settle began and was not acknowledged: the item may be done, or claimable.
    settling: Vec<String>,
}

impl QueueModel {
    fn apply(&mut self, report: &str) {
        let words: Vec<&str> = report.split(' ').collect();
        let item = words.get(2).copied().unwrap_or_default().to_string();
        match words[0] {
            "qpush-start" => {
                self.started.entry(item).or_insert(false);
            }
            "qpush-ok" => {
                self.started.insert(item, true);
            }
            "qsettle-start" => self.settling.push(item),
            "qsettle-ok" => {
                self.settling.retain(|i| *i != item);
                if words.get(3) == Some(&"done") {
                    self.done.push(item);
                }
            }
            _ => {}
        }
    }

    /// Checks the queue after a kill: it reads; every acknowledged push is there once and
    /// nothing else is; acknowledged settles stuck; and every item that is not done — pending,
    /// or running for the dead child — can be claimed again (the claims are then given back).
    fn verify(&self, store: &Store) -> Vec<String> {
        let mut violations = Vec::new();
        let Ok(queue) = store.queue(QUEUE) else { return vec!["the queue name is refused".into()] };
        if !queue.exists() {
            if self.started.values().any(|&acknowledged| acknowledged) {
                violations.push("an acknowledged push, but the queue does not exist".into());
            }
            return violations;
        }
        let items = match queue.items() {
            Ok(items) => items,
            Err(error) => return vec![format!("the queue does not read: {error}")],
        };
        let mut seen = std::collections::BTreeSet::new();
        for item in &items {
            if !seen.insert(item.id.clone()) {
                violations.push(format!("queue item {} is there twice", item.id));
            }
            if !self.started.contains_key(&item.id) {
                violations.push(format!("queue item {} was never pushed", item.id));
            }
        }
        for (id, _) in self.started.iter().filter(|(_, acknowledged)| **acknowledged) {
            if !seen.contains(id) {
                violations.push(format!("queue item {id} was pushed but is gone"));
            }
        }
        for id in &self.done {
            if items.iter().find(|item| item.id == *id).is_some_and(|item| item.state != ItemState::Done) {
                violations.push(format!("queue item {id} was settled done but is not"));
            }
        }
        let mut open: Vec<String> =
            items.iter().filter(|item| item.state != ItemState::Done).map(|item| item.id.clone()).collect();
        let mut claims = Vec::new();
        loop {
            match queue.claim() {
                Ok(Some(claim)) => {
                    let id = claim.item().id.clone();
                    if !open.contains(&id) {
                        violations.push(format!("claimed queue item {id}, which is done"));
                    }
                    open.retain(|other| *other != id);
                    claims.push(claim);
                }
                Ok(None) => break,
                Err(error) => {
                    violations.push(format!("a claim fails: {error}"));
                    break;
                }
            }
        }
        for id in &open {
            violations.push(format!("queue item {id} is not done and cannot be claimed"));
        }
        for claim in claims {
            if let Err(error) = claim.release() {
                violations.push(format!("a claim cannot be given back: {error}"));
            }
        }
        violations
    }
}

/// What one check found.
#[derive(Debug, Default)]
pub struct Tally {
    /// Kills made (children that ended by the kill).
    pub kills: u64,
    /// Children that finished their workload before the kill came.
    pub unkilled: u64,
    /// Rows read back and compared, live and archived.
    pub rows_checked: u64,
    /// Rows the children reported durable, checked after each kill.
    pub durable_checked: u64,
    /// Snapshots read by the parent while the child wrote, and forks it made of live runs.
    pub snapshots_read: u64,
    pub forks_made: u64,
    /// Every broken invariant, with the seed that shows it.
    pub violations: Vec<String>,
}

/// A row's metrics as (name, bits), sorted.
fn points(row: &Row) -> Vec<(String, u64)> {
    let mut points: Vec<(String, u64)> = row.iter().map(|(name, value)| (name.to_string(), value.to_bits())).collect();
    points.sort();
    points
}

/// The epoch of a stored row, checking that the row is exactly one the workload logged.
fn logged_epoch(run: &str, row: &Row) -> Result<u64, String> {
    let epoch = row.get("epoch").ok_or_else(|| format!("row {} has no epoch", row.step()))?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let epoch = epoch as u64;
    let mut expected: Vec<(String, u64)> = self::row(run, row.step(), epoch)
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_bits()))
        .collect();
    expected.sort();
    if points(row) == expected {
        Ok(epoch)
    } else {
        Err(format!("row {} is not a logged row: {:?}", row.step(), points(row)))
    }
}

/// Checks every run of the store against the models, then resumes each to check its step.
fn verify(store: &Store, models: &mut BTreeMap<String, Model>, tally: &mut Tally) -> Vec<String> {
    let mut violations = Vec::new();
    match store.check_all() {
        Ok(report) if report.is_healthy() => {}
        Ok(report) => {
            for run in report.runs.iter().filter(|run| !run.is_healthy()) {
                violations.push(format!("check finds damage in {}: {:?}", run.id, run.problems));
            }
            violations.extend(report.problems.iter().map(|problem| format!("check: {problem}")));
        }
        Err(error) => violations.push(format!("check fails: {error}")),
    }
    let ids = match store.run_ids() {
        Ok(ids) => ids,
        Err(error) => {
            violations.push(format!("the store does not list its runs: {error}"));
            return violations;
        }
    };
    for (name, model) in models.iter_mut() {
        if !ids.contains(name) {
            if model.created {
                violations.push(format!("run {name} was created but is gone"));
            }
            continue;
        }
        let mut problems = Vec::new();
        verify_run(store, name, model, tally, &mut problems);
        violations.extend(problems.into_iter().map(|problem| format!("run {name}: {problem}")));
    }
    violations
}

#[allow(clippy::too_many_lines)] // one invariant after another, in the order of the module docs
fn verify_run(store: &Store, name: &str, model: &mut Model, tally: &mut Tally, problems: &mut Vec<String>) {
    let reader = match store.open_run(name) {
        Ok(reader) => reader,
        Err(error) => return problems.push(format!("does not open: {error}")),
    };
    let info = match reader.info() {
        Ok(info) => info,
        Err(error) => return problems.push(format!("info does not read: {error}")),
    };
    let mut live = BTreeMap::new();
    let mut last_values: BTreeMap<String, u64> = BTreeMap::new();
    match reader.history(..) {
        Err(error) => problems.push(format!("history does not open: {error}")),
        Ok(history) => {
            for row in history {
                let row = match row {
                    Ok(row) => row,
                    Err(error) => {
                        problems.push(format!("a row does not read: {error}"));
                        break;
                    }
                };
                tally.rows_checked += 1;
                if let Some((&last, _)) = live.last_key_value()
                    && row.step() <= last
                {
                    problems.push(format!("step {} follows step {last}", row.step()));
                }
                match logged_epoch(name, &row) {
                    Ok(epoch) => {
                        live.insert(row.step(), epoch);
                    }
                    Err(problem) => problems.push(problem),
                }
                for (metric, value) in row.iter() {
                    last_values.insert(metric.to_string(), value.to_bits());
                }
            }
        }
    }
    let branches = reader.branches().unwrap_or_else(|error| {
        problems.push(format!("branches do not read: {error}"));
        Vec::new()
    });
    let mut branch_rows = BTreeMap::new();
    for branch in &branches {
        let mut rows = BTreeMap::new();
        match reader.branch_history(branch.id, ..) {
            Err(error) => problems.push(format!("branch {} does not open: {error}", branch.id)),
            Ok(history) => {
                for row in history {
                    match row {
                        Ok(row) => {
                            tally.rows_checked += 1;
                            match logged_epoch(name, &row) {
                                Ok(epoch) => {
                                    rows.insert(row.step(), epoch);
                                }
                                Err(problem) => problems.push(format!("branch {}: {problem}", branch.id)),
                            }
                        }
                        Err(error) => {
                            problems.push(format!("branch {} row does not read: {error}", branch.id));
                            break;
                        }
                    }
                }
            }
        }
        if rows.len() as u64 != branch.rows {
            problems.push(format!("branch {} says {} rows and has {}", branch.id, branch.rows, rows.len()));
        }
        branch_rows.insert(branch.id, rows);
    }
    // A branch no report names is a rewind the kill cut short after its commit: it moved every
    // live row after its step, durable ones included. The model adopts it.
    for branch in &branches {
        if model.archived.contains_key(&branch.id) {
            continue;
        }
        if !model.unreported_rewind {
            problems.push(format!("branch {} appeared though no rewind was under way", branch.id));
        }
        let moved = model.live.split_off(&(branch.rewound_to + 1));
        model.archived.insert(branch.id, moved);
        // It archived the checkpoints after its step too.
        let (gone, kept): (Vec<u64>, Vec<u64>) = model.checkpoints.iter().partition(|&&step| step > branch.rewound_to);
        model.checkpoints = kept;
        model.archived_checkpoints.extend(gone);
    }
    model.unreported_rewind = false;
    for (&step, &epoch) in &model.live {
        tally.durable_checked += 1;
        if live.get(&step) != Some(&epoch) {
            problems.push(format!("durable row {step} (epoch {epoch}) is lost: live has epoch {:?}", live.get(&step)));
        }
    }
    for (branch, rows) in &model.archived {
        for (&step, &epoch) in rows {
            tally.durable_checked += 1;
            if branch_rows.get(branch).and_then(|stored| stored.get(&step)) != Some(&epoch) {
                problems.push(format!("durable row {step} (epoch {epoch}) is not in branch {branch}"));
            }
        }
    }
    if info.rows != live.len() as u64 {
        problems.push(format!("says {} rows and has {}", info.rows, live.len()));
    }
    let last = live.last_key_value().map(|(&step, _)| step);
    if info.last_step != last {
        problems.push(format!("says its last step is {:?}; the history ends at {last:?}", info.last_step));
    }
    let rewound = branches.iter().max_by_key(|branch| branch.id).map(|branch| branch.rewound_to + 1);
    let expected_next = last.map_or(0, |last| last + 1).max(rewound.unwrap_or(0));
    if info.next_step != expected_next {
        problems.push(format!("next step {} where {expected_next} was expected", info.next_step));
    }
    for (metric, bits) in &last_values {
        if info.summary.get(metric).map(|value| value.to_bits()) != Some(*bits) {
            problems.push(format!("the summary of {metric} is not its last value"));
        }
    }
    if !model.allowed.contains(&info.state) {
        problems.push(format!("state {} where {:?} was allowed", info.state, model.allowed));
    }
    match reader.checkpoints() {
        Err(error) => problems.push(format!("checkpoints do not read: {error}")),
        Ok(checkpoints) => {
            // A checkpoint reported recorded is there: live, unless a rewind archived it (the
            // model adopted above the branch of a rewind the kill cut short).
            for &step in &model.checkpoints {
                if !checkpoints.iter().any(|c| c.step == step && c.branch.is_none()) {
                    problems.push(format!("reported checkpoint at step {step} is not live"));
                }
            }
            for &step in &model.archived_checkpoints {
                if !checkpoints.iter().any(|c| c.step == step && c.branch.is_some()) {
                    problems.push(format!("checkpoint at step {step} is not archived by its reported rewind"));
                }
            }
            for checkpoint in checkpoints.iter().filter(|c| c.branch.is_none()) {
                if !live.contains_key(&checkpoint.step) {
                    problems.push(format!("live checkpoint at step {} covers a step not live", checkpoint.step));
                }
            }
        }
    }
    match reader.attempts() {
        Ok(attempts) => {
            let open = attempts.iter().filter(|attempt| attempt.outcome.is_none()).count();
            if open > 0 {
                problems.push(format!("{open} attempts without an outcome after the kill"));
            }
            if attempts.last().and_then(|attempt| attempt.outcome) != Some(info.state) {
                problems.push(format!("the last attempt's outcome is not the state {}", info.state));
            }
        }
        Err(error) => problems.push(format!("attempts do not read: {error}")),
    }
    match reader.holder() {
        Ok(None) => {}
        other => problems.push(format!("the lock is held after the kill: {other:?}")),
    }
    let lock = store.path().join("runs").join(name).join("lock");
    if let Ok(file) = std::fs::File::open(&lock)
        && file.try_lock().is_err()
    {
        problems.push("the lock file is still locked".into());
    }
    drop(reader);
    // The run resumes at the next step; ending the attempt keeps its state (a crashed run
    // reads failed afterwards).
    match store.init(RunOptions::new().ignore_environment().id(name).resume(Resume::Allow)) {
        Ok(run) => {
            if run.step() != expected_next {
                problems.push(format!("init(allow) resumes at {} instead of {expected_next}", run.step()));
            }
            if let Err(error) = run.end_keeping_state() {
                problems.push(format!("the resumed attempt does not end: {error}"));
            }
            model.allowed = vec![if info.state == RunState::Crashed { RunState::Failed } else { info.state }];
        }
        Err(error) => problems.push(format!("init(allow) fails: {error}")),
    }
}

/// Runs `kills` kill rounds from `seed`, a fresh store every `chain` kills, each child started
/// by `spawn(store, child_seed)`. `progress` is told after each kill.
pub fn soak(
    kills: u64,
    seed: u64,
    chain: u64,
    spawn: &dyn Fn(&Path, u64) -> Command,
    progress: &mut dyn FnMut(&Tally),
) -> Tally {
    let mut tally = Tally::default();
    let mut schedule = Rng::new(seed);
    let mut store_dir: Option<tempfile::TempDir> = None;
    let mut models = BTreeMap::new();
    let mut queue = QueueModel::default();
    let mut forks: BTreeMap<String, u64> = BTreeMap::new();
    for round in 0..kills {
        if round % chain.max(1) == 0 {
            store_dir = Some(scratch());
            models = BTreeMap::new();
            queue = QueueModel::default();
            forks = BTreeMap::new();
        }
        let path = store_dir.as_ref().map(|dir| dir.path().join("store")).expect("a store");
        let child_seed = schedule.next();
        let wait_reports = schedule.below(40);
        let delay = Duration::from_micros(schedule.below(15_000));
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (killed, reports, read) = std::thread::scope(|scope| {
            let reader = scope.spawn(|| read_while_written(&path, &stop, child_seed));
            let (killed, reports) = kill_one(spawn(&path, child_seed), wait_reports, delay, &|| {
                stop.store(true, std::sync::atomic::Ordering::SeqCst);
                while !reader.is_finished() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
            (killed, reports, reader.join().expect("the reader thread"))
        });
        tally.snapshots_read += read.snapshots;
        tally.forks_made += read.forks.len() as u64;
        forks.extend(read.forks);
        if killed {
            tally.kills += 1;
        } else {
            tally.unkilled += 1;
        }
        let mut violations = Vec::new();
        for report in &reports {
            apply(&mut models, report, &mut violations);
            queue.apply(report);
        }
        violations.extend(read.violations);
        let store = Store::open(&path);
        match store {
            Ok(store) => {
                violations.extend(verify(&store, &mut models, &mut tally));
                violations.extend(queue.verify(&store));
                violations.extend(verify_forks(&store, &forks));
            }
            Err(error) => violations.push(format!("the store does not open: {error}")),
        }
        tally.violations.extend(
            violations.into_iter().map(|violation| format!("round {round} (child seed {child_seed:#x}): {violation}")),
        );
        progress(&tally);
    }
    tally
}

/// What the parent read while a child wrote.
struct Read {
    snapshots: u64,
    /// The forks it made, with the digest of each one's history.
    forks: BTreeMap<String, u64>,
    violations: Vec<String>,
}

/// A digest of a history: its steps and points, in order.
fn digest(history: runstore::History) -> Result<(u64, u64), runstore::Error> {
    let (mut hash, mut rows) = (0xcbf2_9ce4_8422_2325_u64, 0);
    let mut mix = |word: u64| hash = (hash ^ word).wrapping_mul(0x0100_0000_01b3);
    for row in history {
        let row = row?;
        mix(row.step());
        for (name, value) in row.iter() {
            name.bytes().for_each(|byte| mix(u64::from(byte)));
            mix(value.to_bits());
        }
        rows += 1;
    }
    Ok((hash, rows))
}

/// Reads the runs the child writes, each from one snapshot, until `stop`: every snapshot is
/// whole (its history has the rows and last step its progress record says, a finished last
/// attempt is closed), whatever the child commits, rewinds, finishes or compacts meanwhile.
/// Now and then it forks a live run at a flushed step and keeps the fork's digest: a fork's
/// history never changes, whatever its parent does after. Only runs whose lock the child holds
/// are read, so that a reader never stands in for the child to recover a database.
fn read_while_written(path: &Path, stop: &std::sync::atomic::AtomicBool, seed: u64) -> Read {
    let mut read = Read { snapshots: 0, forks: BTreeMap::new(), violations: Vec::new() };
    let mut rng = Rng::new(seed ^ 0xF0_F0);
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(Duration::from_micros(300));
        let Ok(store) = Store::open(path) else { continue };
        for name in RUNS {
            let Ok(lock) = std::fs::File::open(path.join("runs").join(name).join("lock")) else { continue };
            if lock.try_lock_shared().is_ok() {
                continue; // not written now
            }
            let Ok(snapshot) = store.open_run(name).and_then(|reader| reader.snapshot()) else { continue };
            let outcome = (|| -> Result<Option<String>, runstore::Error> {
                let info = snapshot.info()?;
                let (_, rows) = digest(snapshot.history(..)?)?;
                let last = snapshot.history(..)?.last().transpose()?.map(|row| row.step());
                if (rows, last) != (info.rows, info.last_step) {
                    return Ok(Some(format!("{rows} rows up to {last:?}, but progress says {info:?}")));
                }
                let attempts = snapshot.attempts()?;
                // A crashed last attempt is derived, not yet closed; any other outcome is stored.
                let derived = |outcome: RunState| outcome == RunState::Crashed || outcome == RunState::Preempted;
                if let Some(attempt) = attempts.last()
                    && attempt.outcome.is_some_and(|outcome| !outcome.is_live() && !derived(outcome))
                    && attempt.ended_at.is_none()
                {
                    return Ok(Some(format!("an ended attempt without an end: {attempt:?}")));
                }
                Ok(None)
            })();
            read.snapshots += 1;
            match outcome {
                Ok(None) => {}
                Ok(Some(problem)) => {
                    read.violations.push(format!("a snapshot of {name} read while written: {problem}"));
                }
                Err(error) => read.violations.push(format!("a snapshot of {name} read while written fails: {error}")),
            }
            if let (Some(last), 0) = (snapshot.info().ok().and_then(|info| info.last_step), rng.below(20)) {
                let id = format!("{name}-fork-{}", rng.next() % 1_000_000);
                let at = last / 2;
                // The parent may rewind below `at` first: then there is nothing to fork there.
                if let Ok(fork) = store.fork(name, at, RunOptions::new().ignore_environment().id(&id)) {
                    match fork.finish(0).and_then(|()| digest(store.open_run(&id)?.history(..)?)) {
                        Ok((hash, _)) => {
                            read.forks.insert(id, hash);
                        }
                        Err(error) => read.violations.push(format!("fork {id} of a live run: {error}")),
                    }
                }
            }
        }
    }
    read
}

/// Every fork made reads the same history as when it was made, and reads whole.
fn verify_forks(store: &Store, forks: &BTreeMap<String, u64>) -> Vec<String> {
    let mut violations = Vec::new();
    for (id, expected) in forks {
        match store.open_run(id).and_then(|reader| digest(reader.history(..)?)) {
            Ok((hash, _)) if hash == *expected => {}
            Ok(_) => violations.push(format!("fork {id}: its history changed")),
            Err(error) => violations.push(format!("fork {id} does not read: {error}")),
        }
    }
    violations
}

/// Starts the child, waits for `wait_reports` reports and `delay`, and SIGKILLs it. Returns
/// whether the kill ended it, and every whole report it made.
fn kill_one(mut command: Command, wait_reports: u64, delay: Duration, before_kill: &dyn Fn()) -> (bool, Vec<String>) {
    command.stdout(Stdio::piped()).stdin(Stdio::null());
    let mut child: Child = command.spawn().expect("spawn the workload");
    let stdout = child.stdout.take().expect("piped stdout");
    let (send, receive) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut reports = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(report) = line.strip_prefix(SAY).and_then(|rest| rest.strip_suffix(END)) {
                reports.push(report.to_string());
                let _ = send.send(());
            }
        }
        reports
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    for _ in 0..wait_reports {
        if receive.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_err() {
            break;
        }
    }
    std::thread::sleep(delay);
    before_kill();
    let killed = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let status = child.wait().expect("wait for the child");
    let mut reports = reader.join().expect("the report reader");
    if !killed && !status.success() {
        reports.push(format!("error the workload exited with {status}"));
    }
    (killed, reports)
}

/// A directory for a store, on tmpfs when there is one (the kills do not depend on fsync).
fn scratch() -> tempfile::TempDir {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(&shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("a temporary directory")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use runstore::{RunOptions, RunState, Store};

    use super::{Tally, apply, row, soak, verify};
    use crate::support::child;

    /// The checks are not vacuous: a lost durable row, an unexpected state and a stored row
    /// that was never logged are each reported.
    #[test]
    fn the_checks_catch_lost_rows_wrong_states_and_foreign_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut run = store.init(RunOptions::new().ignore_environment().id("alpha")).unwrap();
        for step in 0..10 {
            run.log(row("alpha", step, 0)).unwrap();
        }
        run.log([("epoch", 0.0), ("loss", 1.0)]).unwrap(); // step 10: not what the workload logs
        run.flush().unwrap();
        std::mem::forget(run); // as if killed: the lock stays with this process, the state running
        let mut models = BTreeMap::new();
        let mut violations = Vec::new();
        for report in ["init-start alpha", "init-ok alpha 0 0", "flushed alpha 0 0-9,12", "mark-ok alpha"] {
            apply(&mut models, report, &mut violations);
        }
        assert!(violations.is_empty(), "{violations:?}");
        let found = verify(&store, &mut models, &mut Tally::default()).join("\n");
        assert!(found.contains("durable row 12 (epoch 0) is lost"), "{found}");
        assert!(found.contains("row 10 is not a logged row"), "{found}");
        assert!(found.contains(&format!("state {} where [Preempted] was allowed", RunState::Running)), "{found}");
        assert!(found.contains("the lock is held"), "{found}");
    }

    /// About twenty kills at seeded moments; `cargo run --release --example crash_soak` runs a
    /// thousand.
    #[test]
    fn every_durable_row_survives_twenty_kills_at_random_moments() {
        let spawn = |store: &std::path::Path, seed: u64| {
            let mut command = child("crash_harness::tests::crash_workload", store);
            command.env("TEST_SEED", seed.to_string());
            command
        };
        let tally = soak(20, 0x5EED_0001, 10, &spawn, &mut |_| {});
        eprintln!(
            "crash harness: {} kills, {} rows checked, {} durable rows checked, {} snapshots read and {} forks made \
             while written, {} violations",
            tally.kills,
            tally.rows_checked,
            tally.durable_checked,
            tally.snapshots_read,
            tally.forks_made,
            tally.violations.len()
        );
        assert!(tally.violations.is_empty(), "{}", tally.violations.join("\n"));
        assert!(tally.kills >= 15, "most children were killed: {tally:?}");
        assert!(tally.durable_checked > 0);
        assert!(tally.snapshots_read > 0 && tally.forks_made > 0, "readers and forks ran beside the writer: {tally:?}");
    }

    /// The crash harness's workload (`crash_harness::child_main`), seeded by `TEST_SEED`, on the
    /// store in `RUNSTORE_DIR`; the parent kills it.
    #[test]
    #[ignore = "a child process of other tests"]
    fn crash_workload() {
        if std::env::var(crate::support::CHILD).as_deref() != Ok("crash_harness::tests::crash_workload") {
            return;
        }
        let store = std::env::var("RUNSTORE_DIR").expect("RUNSTORE_DIR");
        let seed: u64 = std::env::var("TEST_SEED").ok().and_then(|seed| seed.parse().ok()).expect("TEST_SEED");
        super::child_main(std::path::Path::new(&store), seed, 200);
    }
}
