//! Named queues of run specs for preemptible sweeps, and exclusive claims on their items.
//!
//! ```text
//! <store>/queues/<name>/queue.redb     the items, in queue order (see `items`)
//! <store>/queues/<name>/lock           flock held (blocking) for the milliseconds of each operation
//! <store>/queues/<name>/claims/<item>  flock held by the agent process running the item
//! ```
//!
//! Every operation takes the queue lock, then reads and changes the items in one durable redb
//! transaction before it lets go: operations are serialised across processes and a crash leaves
//! the queue as it was before the operation or after it. A claim marks the first claimable item
//! running and takes the item's claim lock, which its agent holds until it settles the item.
//! The OS releases the claim lock when the agent dies, so a running item whose claim lock is
//! free belongs to a dead agent and is claimable again — no heartbeat, no timeout. Claim locks
//! are taken and released only under the queue lock, so a claimer never mistakes a live claim
//! for a dead one.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::command;
use super::items::{FILE, ItemRecord, Items, LEGACY_FILE};
use crate::error::{Context, Error, Result};
use crate::files::sync_dir;
use crate::fs_check;
use crate::id::{generate_run_id, validate_run_id};
use crate::options::json_kind;
use crate::state::LockHolder;
use crate::store::Store;
use crate::sys;

/// The item's config as JSON, in the environment of the command an agent runs
/// (`RUNSTORE_CONFIG`).
///
/// ```
/// assert_eq!(runstore::ENV_CONFIG, "RUNSTORE_CONFIG");
/// ```
pub const ENV_CONFIG: &str = "RUNSTORE_CONFIG";

const QUEUES: &str = "queues";
const LOCK: &str = "lock";
const CLAIMS: &str = "claims";

/// How many open items a claim reads at a time while it looks for a claimable one.
const CLAIM_PAGE: usize = 64;

/// The state of a queue item.
///
/// | state | meaning | left by |
/// |---|---|---|
/// | `Pending` | waiting for an agent | `push`, a requeue, an agent that died |
/// | `Running` | claimed by a live agent | [`Queue::claim`] |
/// | `Done` | its command exited 0 | [`Claim::settle`] |
/// | `Failed` | its command failed (non-zero, not preempted) as often as the agent allows | [`Claim::settle`] |
///
/// ```
/// use runstore::ItemState;
///
/// assert_eq!(ItemState::Pending.to_string(), "pending");
/// assert_eq!(ItemState::ALL.len(), 4);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ItemState {
    /// Waiting for an agent.
    Pending,
    /// Claimed by a live agent, whose command runs it.
    Running,
    /// Its command exited 0: it is not run again.
    Done,
    /// Its command failed as many times as the agent allows: it is not run again.
    Failed,
}

impl ItemState {
    /// All states, in the order of the table above.
    pub const ALL: [ItemState; 4] = [ItemState::Pending, ItemState::Running, ItemState::Done, ItemState::Failed];

    /// The lowercase name used in the command line and in JSON.
    ///
    /// ```
    /// assert_eq!(runstore::ItemState::Done.as_str(), "done");
    /// ```
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Pending => "pending",
            ItemState::Running => "running",
            ItemState::Done => "done",
            ItemState::Failed => "failed",
        }
    }
}

impl std::fmt::Display for ItemState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an attempt at a queue item ended, as its agent saw it.
///
/// | exit | the item becomes |
/// |---|---|
/// | `Code { code: 0 }` | done |
/// | `Code { code }`, non-zero | pending, or failed once as many attempts failed as allowed |
/// | `Preempted { code }` | pending (the run was marked preempting: not a failure) |
/// | `Signal { .. }` | pending: no exit status |
/// | `Interrupted { .. }` | pending, whatever the command did then, exit 0 included |
/// | `Lost` | pending: the agent died or lost the command |
///
/// ```
/// use runstore::ItemExit;
///
/// assert_eq!(ItemExit::Code { code: 1 }.to_string(), "exit 1");
/// assert_eq!(ItemExit::Signal { signal: 9 }.to_string(), "killed by SIGKILL");
/// assert!(!ItemExit::Interrupted { signal: 2, code: Some(0) }.is_success());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum ItemExit {
    /// The command exited with this code.
    Code {
        /// The exit code.
        code: i32,
    },
    /// The command exited non-zero after its run was marked preempting (the run reads
    /// `preempted`): requeued without counting as a failure.
    Preempted {
        /// The exit code.
        code: i32,
    },
    /// The command was killed by this signal: it left no exit status.
    Signal {
        /// The signal number.
        signal: i32,
    },
    /// The agent was interrupted by `signal` (SIGINT, SIGTERM), passed it on, and the command
    /// then ended with `code` (`None`: killed by a signal). Never done, even after exit 0.
    Interrupted {
        /// The signal the agent received and forwarded.
        signal: i32,
        /// The command's exit code after that, if it exited.
        code: Option<i32>,
    },
    /// The agent died (or lost the command) before it saw the command end.
    Lost,
}

impl ItemExit {
    /// Whether the attempt succeeded: exit code 0, not interrupted.
    ///
    /// ```
    /// assert!(runstore::ItemExit::Code { code: 0 }.is_success());
    /// ```
    #[must_use]
    pub fn is_success(self) -> bool {
        self == ItemExit::Code { code: 0 }
    }
}

fn signal_name(signal: i32) -> String {
    signal_hook::low_level::signal_name(signal).map_or_else(|| format!("signal {signal}"), str::to_string)
}

impl std::fmt::Display for ItemExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ItemExit::Code { code } => write!(f, "exit {code}"),
            ItemExit::Preempted { code } => write!(f, "exit {code}, preempted"),
            ItemExit::Signal { signal } => write!(f, "killed by {}", signal_name(signal)),
            ItemExit::Interrupted { signal, code: Some(code) } => {
                write!(f, "interrupted by {}, then exit {code}", signal_name(signal))
            }
            ItemExit::Interrupted { signal, code: None } => {
                write!(f, "interrupted by {}, then killed", signal_name(signal))
            }
            ItemExit::Lost => f.write_str("lost: its agent ended without its status"),
        }
    }
}

/// One item of a queue: a run id, the config its command gets, and where it stands.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use runstore::{ItemState, Store};
///
/// let store = Store::open(dir.path())?;
/// let item = store.queue("sweep")?.push(Some("lr-1"), serde_json::json!({"lr": 0.1}))?;
/// assert_eq!((item.id.as_str(), item.state, item.attempts), ("lr-1", ItemState::Pending, 0));
/// assert_eq!(item.config["lr"], 0.1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct QueueItem {
    /// The run id its command writes (`RUNSTORE_RUN_ID`).
    pub id: String,
    /// The config, a JSON object (`RUNSTORE_CONFIG`).
    pub config: Map<String, Value>,
    /// Where it stands. A running item whose agent died reads `Pending`, with `last_exit`
    /// `Lost`, once its command is no longer writing the run.
    pub state: ItemState,
    /// How many times it was claimed.
    pub attempts: u32,
    /// How many attempts failed: exited non-zero without being preempted.
    pub failures: u32,
    /// How the last attempt ended.
    pub last_exit: Option<ItemExit>,
    /// The agent running it (pid, host, when it claimed it), while `Running`.
    pub claimant: Option<LockHolder>,
    /// When it was pushed.
    pub created_at: SystemTime,
    /// When its state last changed.
    pub updated_at: SystemTime,
}

impl QueueItem {
    /// The config as compact JSON text, as an agent passes it in `RUNSTORE_CONFIG`.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let item = store.queue("q")?.push(None, serde_json::json!({"lr": 0.1, "opt": "sgd"}))?;
    /// assert_eq!(item.config_json(), r#"{"lr":0.1,"opt":"sgd"}"#);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn config_json(&self) -> String {
        Value::Object(self.config.clone()).to_string()
    }
}

/// What becomes of an item after an attempt that ended with `exit`: its new state and failure
/// count. `max_attempts` is how many failing attempts it gets (at least one).
pub(crate) fn next_state(exit: ItemExit, failures: u32, max_attempts: u32) -> (ItemState, u32) {
    match exit {
        ItemExit::Code { code: 0 } => (ItemState::Done, failures),
        ItemExit::Code { .. } => {
            let failures = failures.saturating_add(1);
            let state = if failures >= max_attempts.max(1) { ItemState::Failed } else { ItemState::Pending };
            (state, failures)
        }
        ItemExit::Preempted { .. } | ItemExit::Signal { .. } | ItemExit::Interrupted { .. } | ItemExit::Lost => {
            (ItemState::Pending, failures)
        }
    }
}

impl Store {
    /// The queue `name` of this store; it exists once something is pushed to it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidQueueName`]: queue names follow the rules of run ids.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let store = runstore::Store::open(dir.path())?;
    /// let queue = store.queue("sweep-1")?;
    /// assert!(!queue.exists());
    /// assert!(store.queue("../etc").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn queue(&self, name: &str) -> Result<Queue> {
        validate_run_id(name).map_err(|error| match error {
            Error::InvalidRunId { reason, .. } => Error::InvalidQueueName { name: name.to_string(), reason },
            other => other,
        })?;
        Ok(Queue { store: self.clone(), name: name.to_string(), dir: self.path().join(QUEUES).join(name) })
    }

    /// The names of the store's queues, sorted.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the queues directory cannot be read.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let store = runstore::Store::open(dir.path())?;
    /// store.queue("b")?.push(None, serde_json::json!({}))?;
    /// store.queue("a")?.push(None, serde_json::json!({}))?;
    /// assert_eq!(store.queue_names()?, ["a", "b"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn queue_names(&self) -> Result<Vec<String>> {
        let queues = self.path().join(QUEUES);
        let entries = match std::fs::read_dir(&queues) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(Error::io(&queues, error)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.at(&queues)?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            let dir = entry.path();
            if validate_run_id(&name).is_ok() && (dir.join(FILE).is_file() || dir.join(LEGACY_FILE).is_file()) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}

/// A named queue of run specs: agents claim its items one at a time, run them and settle them.
/// Cheap to clone; it holds no file handles.
///
/// Items are claimed in queue order (the order they were pushed); a requeued item keeps its
/// place, so interrupted work resumes before new work starts.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// use runstore::{ItemExit, ItemState, Store};
///
/// let store = Store::open(dir.path())?;
/// let queue = store.queue("sweep")?;
/// queue.push(Some("a"), serde_json::json!({"lr": 0.1}))?;
///
/// let claim = queue.claim()?.expect("a pending item");
/// assert_eq!(claim.item().id, "a");
/// // ... run the command with RUNSTORE_RUN_ID=a, RUNSTORE_CONFIG={"lr":0.1} ...
/// let item = claim.settle(ItemExit::Code { code: 1 }, 3)?;
/// assert_eq!((item.state, item.failures), (ItemState::Pending, 1)); // requeued
///
/// let claim = queue.claim()?.expect("requeued");
/// assert_eq!(claim.item().attempts, 2);
/// assert_eq!(claim.settle(ItemExit::Code { code: 0 }, 3)?.state, ItemState::Done);
/// assert!(queue.claim()?.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Queue {
    store: Store,
    name: String,
    dir: PathBuf,
}

/// The queue lock, held until dropped.
struct QueueLock {
    _file: File,
}

impl Queue {
    /// The queue's name.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// assert_eq!(store.queue("q")?.name(), "q");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether anything was ever pushed to the queue (it may be empty now).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let queue = store.queue("q")?;
    /// assert!(!queue.exists());
    /// queue.push(None, serde_json::json!({}))?;
    /// assert!(queue.exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn exists(&self) -> bool {
        self.dir.join(FILE).is_file() || self.dir.join(LEGACY_FILE).is_file()
    }

    /// Adds an item at the end of the queue, creating the queue if needed: the run `id` (a
    /// generated one if `None`) with `config`, which must serialise to a JSON object. An
    /// existing run may be queued: the agent's command resumes it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRunId`], [`Error::InvalidConfig`], [`Error::QueueItemExists`] when the
    /// queue has an item with this id, [`Error::Io`], [`Error::Corrupt`],
    /// [`Error::UnsupportedFormat`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let queue = store.queue("q")?;
    /// let item = queue.push(None, serde_json::json!({"seed": 1}))?;
    /// assert_eq!(item.id.len(), 8); // generated, as run ids are
    /// assert!(queue.push(Some(&item.id), serde_json::json!({})).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push(&self, id: Option<&str>, config: impl Serialize) -> Result<QueueItem> {
        if let Some(id) = id {
            validate_run_id(id)?;
        }
        let config = match serde_json::to_value(config) {
            Ok(Value::Object(map)) => map,
            Ok(other) => {
                return Err(Error::InvalidConfig {
                    reason: format!("expected a JSON object, got {}", json_kind(&other)),
                });
            }
            Err(error) => return Err(Error::InvalidConfig { reason: error.to_string() }),
        };
        let mut items = self.push_all_with_ids(vec![(id.map(str::to_string), config)])?;
        items.pop().ok_or_else(|| Error::corrupt(self.dir.join(FILE), "the pushed item is missing"))
    }

    /// Adds one item per config at the end of the queue, each with a generated id, in one
    /// transaction: all of them or none. For sweeps.
    ///
    /// # Errors
    ///
    /// As [`Queue::push`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// use serde_json::json;
    ///
    /// let queue = store.queue("q")?;
    /// let configs = [json!({"lr": 0.1}), json!({"lr": 0.01})].map(|c| c.as_object().unwrap().clone());
    /// let items = queue.push_all(configs)?;
    /// assert_eq!(items.len(), 2);
    /// assert_eq!(queue.items()?[1].config["lr"], 0.01);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push_all(&self, configs: impl IntoIterator<Item = Map<String, Value>>) -> Result<Vec<QueueItem>> {
        self.push_all_with_ids(configs.into_iter().map(|config| (None, config)).collect())
    }

    fn push_all_with_ids(&self, new: Vec<(Option<String>, Map<String, Value>)>) -> Result<Vec<QueueItem>> {
        let claims = self.dir.join(CLAIMS);
        if !claims.is_dir() {
            fs_check::ensure_locks_work(self.store.path())?;
            // A store that holds only queues is a store too: its format marker first.
            self.store.create()?;
            std::fs::create_dir_all(&claims).at(&claims)?;
            sync_dir(&self.dir)?;
            if let Some(queues) = self.dir.parent() {
                sync_dir(queues)?;
            }
        }
        let _lock = self.lock()?;
        let items = Items::open(&self.dir, true)?.ok_or_else(|| Error::QueueNotFound { name: self.name.clone() })?;
        let mut change = items.begin()?;
        let now = sys::now_ms();
        // Generated ids must not name an existing run (the item would resume it): for a sweep,
        // the store's runs are listed once rather than looked up per item.
        let generated = new.iter().filter(|(id, _)| id.is_none()).count();
        let runs: Option<std::collections::HashSet<String>> =
            if generated > 64 { Some(self.store.run_ids()?.into_iter().collect()) } else { None };
        let mut taken = std::collections::HashSet::new();
        let mut records = Vec::with_capacity(new.len());
        for (id, config) in new {
            let id = match id {
                Some(id) if taken.contains(&id) || change.contains(&id)? => {
                    return Err(Error::QueueItemExists { queue: self.name.clone(), item: id });
                }
                Some(id) => id,
                None => loop {
                    let id = generate_run_id();
                    let is_run = match &runs {
                        Some(runs) => runs.contains(&id),
                        None => self.store.exists(&id)?,
                    };
                    if !taken.contains(&id) && !is_run && !change.contains(&id)? {
                        break id;
                    }
                },
            };
            taken.insert(id.clone());
            records.push(ItemRecord::new(id, config, now));
        }
        change.push(&records)?;
        let pushed = records.iter().map(ItemRecord::to_item).collect();
        change.commit()?;
        Ok(pushed)
    }

    /// Every item, in queue order, as it stands now. A running item whose agent died (its claim
    /// lock is free) reads `Pending` with `last_exit` `Lost` — unless its command outlived the
    /// agent and still writes the run, in which case it reads `Running` until that ends.
    ///
    /// # Errors
    ///
    /// [`Error::QueueNotFound`], [`Error::Io`], [`Error::Corrupt`],
    /// [`Error::UnsupportedFormat`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let queue = store.queue("q")?;
    /// assert!(matches!(queue.items(), Err(runstore::Error::QueueNotFound { .. })));
    /// queue.push(Some("x"), serde_json::json!({}))?;
    /// assert_eq!(queue.items()?[0].id, "x");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn items(&self) -> Result<Vec<QueueItem>> {
        let (_lock, stored) = self.open()?;
        let records = stored.all()?;
        let mut items = Vec::with_capacity(records.len());
        for record in &records {
            let mut item = record.to_item();
            if item.state == ItemState::Running && self.claimant_is_gone(&record.id)? {
                item.state = ItemState::Pending;
                item.last_exit = Some(ItemExit::Lost);
                item.claimant = None;
            }
            items.push(item);
        }
        Ok(items)
    }

    /// Removes the item `id` from the queue (its run, if any, is left alone) and returns it.
    ///
    /// # Errors
    ///
    /// [`Error::QueueItemClaimed`] while a live agent runs it, [`Error::QueueItemNotFound`],
    /// [`Error::QueueNotFound`], [`Error::InvalidRunId`], [`Error::Io`], [`Error::Corrupt`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let queue = store.queue("q")?;
    /// queue.push(Some("x"), serde_json::json!({}))?;
    /// assert_eq!(queue.remove("x")?.id, "x");
    /// assert!(queue.items()?.is_empty());
    /// assert!(matches!(queue.remove("x"), Err(runstore::Error::QueueItemNotFound { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove(&self, id: &str) -> Result<QueueItem> {
        validate_run_id(id)?;
        let (_lock, stored) = self.open()?;
        let mut change = stored.begin()?;
        let Some((seq, removed)) = change.find(id)? else {
            return Err(Error::QueueItemNotFound { queue: self.name.clone(), item: id.to_string() });
        };
        let Some(claim_lock) = self.try_claim_lock(id)? else {
            let claimant = removed.claimant.clone().unwrap_or_else(LockHolder::unknown);
            return Err(Error::QueueItemClaimed { queue: self.name.clone(), item: id.to_string(), claimant });
        };
        change.remove(seq, id)?;
        change.commit()?;
        let claim_path = self.claim_path(id);
        // Deleted while locked, under the queue lock: nobody can hold or take it meanwhile.
        std::fs::remove_file(&claim_path).at(&claim_path)?;
        drop(claim_lock);
        Ok(removed.to_item())
    }

    /// Claims the next item to run, or `None` when no item is claimable: marks it running by
    /// this process, counts the attempt, and takes its claim lock until the [`Claim`] is
    /// settled or dropped.
    ///
    /// The claimable items, in queue order: a pending item, and a running item whose agent
    /// died (its claim lock is free). An item whose run is being written by some process (for
    /// example a command that outlived its agent) is skipped until that process ends, and so
    /// is one whose command, recorded with [`Claim::command_started`], still runs on this host
    /// (it may not have taken its run's lock yet), so no item ever runs twice at once. The
    /// claim lock's file descriptor is close-on-exec: commands started by the agent do not
    /// hold it.
    ///
    /// # Errors
    ///
    /// [`Error::QueueNotFound`], [`Error::Io`], [`Error::Corrupt`],
    /// [`Error::UnsupportedFormat`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let queue = store.queue("q")?;
    /// queue.push(Some("only"), serde_json::json!({}))?;
    /// let claim = queue.claim()?.expect("pending");
    /// assert!(queue.claim()?.is_none(), "claimed by a live agent: this process");
    /// drop(claim); // as if the agent had died
    /// assert_eq!(queue.claim()?.expect("claimable again").item().attempts, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn claim(&self) -> Result<Option<Claim>> {
        let (_lock, stored) = self.open()?;
        let mut change = stored.begin()?;
        let mut from = 0;
        loop {
            let page = change.open_items(from, CLAIM_PAGE)?;
            let Some(&(page_end, _)) = page.last() else { return Ok(None) };
            for (seq, mut record) in page {
                let lost = record.state == ItemState::Running;
                // Held: a live agent runs it.
                let Some(claim_lock) = self.try_claim_lock(&record.id)? else { continue };
                // Its agent died, but the command it started still runs (and may not have
                // taken the run's lock yet), here or anywhere.
                if self.run_is_live(&record.id)? || command::is_alive(&claim_lock) {
                    continue;
                }
                command::clear(&claim_lock).at(&self.claim_path(&record.id))?;
                let holder = LockHolder::current();
                if lost {
                    record.last_exit = Some(ItemExit::Lost);
                }
                record.state = ItemState::Running;
                record.attempts = record.attempts.saturating_add(1);
                record.claimant = Some(holder.clone());
                record.updated_at_ms = sys::now_ms();
                change.put(seq, &record)?;
                change.commit()?;
                return Ok(Some(Claim { queue: self.clone(), item: record.to_item(), holder, lock: claim_lock }));
            }
            from = page_end + 1;
        }
    }

    /// Takes the queue lock and opens the queue's items, which must exist.
    fn open(&self) -> Result<(QueueLock, Items)> {
        if !self.exists() {
            return Err(Error::QueueNotFound { name: self.name.clone() });
        }
        let lock = self.lock()?;
        let items = Items::open(&self.dir, false)?.ok_or_else(|| Error::QueueNotFound { name: self.name.clone() })?;
        Ok((lock, items))
    }

    /// Takes the queue lock, waiting for other processes' operations (milliseconds each).
    fn lock(&self) -> Result<QueueLock> {
        fs_check::ensure_locks_work(self.store.path())?;
        let path = self.dir.join(LOCK);
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).at(&path)?;
        // Blocks while another process operates; a call that cannot lock fails, never loops.
        if let Err(error) = fs_check::lock(&file) {
            fs_check::lock_failed(&path, error)?;
        }
        Ok(QueueLock { _file: file })
    }

    fn claim_path(&self, id: &str) -> PathBuf {
        self.dir.join(CLAIMS).join(id)
    }

    /// The claim lock of item `id`, or `None` when a live agent holds it. Called under the
    /// queue lock only.
    fn try_claim_lock(&self, id: &str) -> Result<Option<File>> {
        let path = self.claim_path(id);
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).at(&path)?;
        match fs_check::try_lock(&file, false) {
            Ok(()) => Ok(Some(file)),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(error)) => fs_check::lock_failed(&path, error).map(|()| Some(file)),
        }
    }

    /// Whether a process writes the run `id` right now.
    fn run_is_live(&self, id: &str) -> Result<bool> {
        crate::lock::is_held(&self.store.lock_path(id))
    }

    /// Whether a running item's agent is gone and its command neither writes its run nor runs
    /// on this host.
    fn claimant_is_gone(&self, id: &str) -> Result<bool> {
        match self.try_claim_lock(id)? {
            Some(probe) => Ok(!self.run_is_live(id)? && !command::is_alive(&probe)),
            None => Ok(false),
        }
    }
}

/// A claimed queue item: this process runs it and must then [`Claim::settle`] it. Dropping a
/// claim unsettled (or dying) leaves the item running with a free claim lock, which the next
/// claim treats as a dead agent's: the item is run again.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let store = runstore::Store::open(dir.path())?;
/// use runstore::{ItemExit, ItemState};
///
/// let queue = store.queue("q")?;
/// queue.push(Some("job"), serde_json::json!({"lr": 0.1}))?;
/// let claim = queue.claim()?.expect("pending");
/// assert_eq!(claim.item().state, ItemState::Running);
/// let item = claim.settle(ItemExit::Signal { signal: 9 }, 3)?;
/// assert_eq!((item.state, item.failures), (ItemState::Pending, 0)); // no status: requeued
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Claim {
    queue: Queue,
    item: QueueItem,
    holder: LockHolder,
    // Held for its lock; closing it releases the claim.
    lock: File,
}

impl Claim {
    /// The item as claimed: running, its attempt counted.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// # let queue = store.queue("q")?;
    /// queue.push(Some("job"), serde_json::json!({}))?;
    /// let claim = queue.claim()?.expect("pending");
    /// assert_eq!((claim.item().id.as_str(), claim.item().attempts), ("job", 1));
    /// assert_eq!(claim.item().claimant.as_ref().map(|c| c.pid), Some(std::process::id()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn item(&self) -> &QueueItem {
        &self.item
    }

    /// Records that the command running this item started as process `pid` of this host.
    /// While that process lives, no agent on this host claims the item again, even if this
    /// claim's process dies before the command takes its run's lock (a program can spend
    /// seconds importing before `init`); on another host only the run's lock protects the item,
    /// from the command's `init` on. Where `/proc` cannot name the process, nothing is
    /// recorded.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the claim file cannot be written.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let queue = store.queue("q")?;
    /// queue.push(Some("job"), serde_json::json!({}))?;
    /// let claim = queue.claim()?.expect("pending");
    /// let mut command = std::process::Command::new("sleep").arg("30").spawn()?;
    /// claim.command_started(command.id())?;
    /// drop(claim); // as if the agent had died, its command still starting
    /// assert!(queue.claim()?.is_none(), "not while its command runs");
    /// command.kill()?;
    /// command.wait()?;
    /// assert_eq!(queue.claim()?.expect("claimable again").item().attempts, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn command_started(&self, pid: u32) -> Result<()> {
        let path = self.queue.claim_path(&self.item.id);
        command::record(&self.lock, pid).at(&path)
    }

    /// The queue the item belongs to.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// # let queue = store.queue("q")?;
    /// queue.push(None, serde_json::json!({}))?;
    /// assert_eq!(queue.claim()?.expect("pending").queue().name(), "q");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Records how the attempt ended and releases the claim; returns the item as it now stands
    /// (see [`ItemExit`] for the table). A non-zero [`ItemExit::Code`] whose run's latest
    /// attempt, begun after this claim, ended `preempted` is recorded as
    /// [`ItemExit::Preempted`]: requeued, not a failure. `max_attempts` is how many failing
    /// attempts the item gets before it is marked failed (at least one).
    ///
    /// # Errors
    ///
    /// [`Error::QueueItemNotFound`] if the item was removed meanwhile (it cannot be while
    /// claimed, unless the file was edited), [`Error::Io`], [`Error::Corrupt`]. On error the
    /// claim is released anyway and the item reads as lost: it is claimable again.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// use runstore::{ItemExit, ItemState};
    ///
    /// let queue = store.queue("q")?;
    /// queue.push(Some("job"), serde_json::json!({}))?;
    /// let item = queue.claim()?.expect("pending").settle(ItemExit::Code { code: 2 }, 1)?;
    /// assert_eq!((item.state, item.last_exit), (ItemState::Failed, Some(ItemExit::Code { code: 2 })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn settle(self, exit: ItemExit, max_attempts: u32) -> Result<QueueItem> {
        let exit = match exit {
            ItemExit::Code { code } if code != 0 && self.run_was_preempted() => ItemExit::Preempted { code },
            other => other,
        };
        self.update(|record| {
            let (state, failures) = next_state(exit, record.failures, max_attempts);
            record.state = state;
            record.failures = failures;
            record.last_exit = Some(exit);
        })
    }

    /// Gives the item back unrun: pending again, this attempt not counted. For an agent that
    /// could not start its command.
    ///
    /// # Errors
    ///
    /// As [`Claim::settle`].
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let store = runstore::Store::open(dir.path())?;
    /// let queue = store.queue("q")?;
    /// queue.push(Some("job"), serde_json::json!({}))?;
    /// let item = queue.claim()?.expect("pending").release()?;
    /// assert_eq!((item.state, item.attempts), (runstore::ItemState::Pending, 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn release(self) -> Result<QueueItem> {
        self.update(|record| {
            record.state = ItemState::Pending;
            record.attempts = record.attempts.saturating_sub(1);
        })
    }

    /// Applies `change` to the claimed item under the queue lock, then lets the claim go
    /// while still holding the queue lock, so that no claimer sees the item running with a
    /// free claim lock.
    fn update(self, change: impl FnOnce(&mut ItemRecord)) -> Result<QueueItem> {
        let Claim { queue, item, holder: _, lock } = self;
        let (queue_lock, stored) = queue.open()?;
        let mut transaction = stored.begin()?;
        let Some((seq, mut record)) = transaction.find(&item.id)? else {
            return Err(Error::QueueItemNotFound { queue: queue.name.clone(), item: item.id });
        };
        change(&mut record);
        record.claimant = None;
        record.updated_at_ms = sys::now_ms();
        let settled = record.to_item();
        transaction.put(seq, &record)?;
        transaction.commit()?;
        // The database closes before the queue lock goes: the next process opens it at once.
        drop(stored);
        drop(lock);
        drop(queue_lock);
        Ok(settled)
    }

    /// Whether the run's latest attempt began after this claim and ended preempted.
    fn run_was_preempted(&self) -> bool {
        let Ok(reader) = self.queue.store.open_run(&self.item.id) else { return false };
        let Ok(attempts) = reader.attempts() else { return false };
        attempts.last().is_some_and(|attempt| {
            sys::to_ms(attempt.started_at) >= sys::to_ms(self.holder.since)
                && attempt.outcome == Some(crate::state::RunState::Preempted)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outcome_table() {
        let code = |code| ItemExit::Code { code };
        assert_eq!(next_state(code(0), 0, 3), (ItemState::Done, 0));
        assert_eq!(next_state(code(1), 0, 3), (ItemState::Pending, 1));
        assert_eq!(next_state(code(1), 1, 3), (ItemState::Pending, 2));
        assert_eq!(next_state(code(1), 2, 3), (ItemState::Failed, 3));
        assert_eq!(next_state(code(1), 0, 1), (ItemState::Failed, 1));
        assert_eq!(next_state(code(1), 0, 0), (ItemState::Failed, 1), "at least one attempt");
        assert_eq!(next_state(ItemExit::Preempted { code: 143 }, 2, 3), (ItemState::Pending, 2));
        assert_eq!(next_state(ItemExit::Signal { signal: 9 }, 2, 3), (ItemState::Pending, 2));
        assert_eq!(next_state(ItemExit::Lost, 0, 1), (ItemState::Pending, 0));
        // W&B #9568: an interrupted run is never done, even when the command then exits 0.
        assert_eq!(next_state(ItemExit::Interrupted { signal: 2, code: Some(0) }, 0, 3), (ItemState::Pending, 0));
    }

    #[test]
    fn exits_describe_themselves() {
        assert_eq!(ItemExit::Preempted { code: 143 }.to_string(), "exit 143, preempted");
        assert_eq!(
            ItemExit::Interrupted { signal: 2, code: Some(0) }.to_string(),
            "interrupted by SIGINT, then exit 0"
        );
        assert_eq!(ItemExit::Interrupted { signal: 15, code: None }.to_string(), "interrupted by SIGTERM, then killed");
    }

    #[test]
    fn a_newer_or_damaged_queue_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let queue = store.queue("q").unwrap();
        queue.push(None, serde_json::json!({})).unwrap();
        let file = dir.path().join(QUEUES).join("q").join(FILE);
        {
            let db = redb::Database::open(&file).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(redb::TableDefinition::<&str, u64>::new("meta")).unwrap().insert("format", 3).unwrap();
            tx.commit().unwrap();
        }
        assert!(matches!(queue.items(), Err(Error::UnsupportedFormat { found: 3, supported: 2, .. })));
        std::fs::write(&file, "{").unwrap();
        let error = queue.claim().unwrap_err();
        assert!(matches!(error, Error::Corrupt { .. }), "{error:?}");
    }

    #[test]
    fn a_format_1_queue_file_is_converted_once_with_every_item_and_its_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let queue = store.queue("q").unwrap();
        let queue_dir = dir.path().join(QUEUES).join("q");
        std::fs::create_dir_all(queue_dir.join(CLAIMS)).unwrap();
        let item = |id: &str, state: &str| {
            format!(
                r#"{{"id":"{id}","config":{{"lr":0.1}},"state":"{state}","attempts":1,"failures":0,"created_at_ms":1,"updated_at_ms":2}}"#
            )
        };
        let legacy = format!(
            "{{\"runstore_queue\":1,\"items\":[\n{},\n{},\n{}\n]}}\n",
            item("b", "done"),
            item("a", "pending"),
            item("c", "failed")
        );
        std::fs::write(queue_dir.join(LEGACY_FILE), legacy).unwrap();
        assert!(queue.exists());
        assert_eq!(store.queue_names().unwrap(), ["q"]);
        let items = queue.items().unwrap();
        let ids: Vec<_> = items.iter().map(|item| (item.id.as_str(), item.state)).collect();
        assert_eq!(ids, [("b", ItemState::Done), ("a", ItemState::Pending), ("c", ItemState::Failed)]);
        assert!(queue_dir.join(FILE).is_file() && !queue_dir.join(LEGACY_FILE).exists());
        assert!(queue_dir.join("queue.json.migrated").is_file(), "the old file is kept, renamed");
        // The converted queue works as any other: the pending item is claimed, then nothing.
        let claim = queue.claim().unwrap().expect("a is pending");
        assert_eq!(claim.item().id, "a");
        claim.settle(ItemExit::Code { code: 0 }, 3).unwrap();
        assert!(queue.claim().unwrap().is_none());
    }

    #[test]
    fn a_newer_format_1_file_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let queue_dir = dir.path().join(QUEUES).join("q");
        std::fs::create_dir_all(&queue_dir).unwrap();
        std::fs::write(queue_dir.join(LEGACY_FILE), r#"{"runstore_queue":7,"items":[]}"#).unwrap();
        let queue = store.queue("q").unwrap();
        assert!(matches!(queue.items(), Err(Error::UnsupportedFormat { found: 7, .. })));
        assert!(!queue_dir.join(FILE).exists());
        std::fs::write(queue_dir.join(LEGACY_FILE), "{").unwrap();
        assert!(matches!(queue.claim(), Err(Error::Corrupt { .. })));
    }
}
