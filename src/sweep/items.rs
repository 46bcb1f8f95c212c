//! A queue's items in a redb database, `queues/<name>/queue.redb`, opened only under the
//! queue lock.
//!
//! | table | key | value |
//! |---|---|---|
//! | `meta` | `"format"` | the queue format (2) |
//! | `meta` | `"next"` | the sequence number the next pushed item gets |
//! | `items` | `u64` sequence | the item, a JSON [`ItemRecord`] |
//! | `ids` | item id | its sequence number |
//! | `open` | `u64` sequence | `()`: the items that are pending or running, in queue order |
//!
//! Every operation runs in one write transaction, committed durably before the queue lock is
//! released, and touches O(log n) pages: a claim walks `open` (the pending items and the few
//! running ones) instead of the whole queue, so its cost and the agent's memory do not grow with
//! the items already done. Format 1 kept the items in `queue.json`, rewritten whole by every
//! operation; such a file is converted once (see [`Items::open`]).

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::queue::{ItemExit, ItemState, QueueItem};
use crate::error::{Context, Error, Result};
use crate::files::sync_dir;
use crate::guard;
use crate::id::validate_run_id;
use crate::state::LockHolder;
use crate::sys;

/// The queue database's file name, and the format-1 file it replaces.
pub(crate) const FILE: &str = "queue.redb";
pub(crate) const LEGACY_FILE: &str = "queue.json";

/// The queue format this build reads and writes (1 was `queue.json`).
const QUEUE_FORMAT_VERSION: u64 = 2;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const ITEMS: TableDefinition<u64, &[u8]> = TableDefinition::new("items");
const IDS: TableDefinition<&str, u64> = TableDefinition::new("ids");
const OPEN: TableDefinition<u64, ()> = TableDefinition::new("open");

const KEY_FORMAT: &str = "format";
const KEY_NEXT: &str = "next";

/// An item as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ItemRecord {
    pub(crate) id: String,
    pub(crate) config: Map<String, Value>,
    pub(crate) state: ItemState,
    pub(crate) attempts: u32,
    pub(crate) failures: u32,
    #[serde(default)]
    pub(crate) last_exit: Option<ItemExit>,
    #[serde(default)]
    pub(crate) claimant: Option<LockHolder>,
    pub(crate) created_at_ms: u64,
    pub(crate) updated_at_ms: u64,
}

impl ItemRecord {
    pub(crate) fn new(id: String, config: Map<String, Value>, now_ms: u64) -> ItemRecord {
        ItemRecord {
            id,
            config,
            state: ItemState::Pending,
            attempts: 0,
            failures: 0,
            last_exit: None,
            claimant: None,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        }
    }

    pub(crate) fn to_item(&self) -> QueueItem {
        QueueItem {
            id: self.id.clone(),
            config: self.config.clone(),
            state: self.state,
            attempts: self.attempts,
            failures: self.failures,
            last_exit: self.last_exit,
            claimant: self.claimant.clone(),
            created_at: sys::from_ms(self.created_at_ms),
            updated_at: sys::from_ms(self.updated_at_ms),
        }
    }

    fn is_open(&self) -> bool {
        matches!(self.state, ItemState::Pending | ItemState::Running)
    }
}

/// The format-1 `queue.json`.
#[derive(Deserialize)]
struct LegacyFile {
    runstore_queue: u32,
    #[serde(default)]
    items: Vec<ItemRecord>,
}

/// The queue database, open for one operation (the caller holds the queue lock).
pub(crate) struct Items {
    db: Database,
    path: PathBuf,
}

/// One operation's write transaction on the items.
pub(crate) struct Change<'a> {
    tx: WriteTransaction,
    path: &'a Path,
}

impl Items {
    /// Opens the queue database in `dir`: `None` if the queue has none (it was never pushed
    /// to), unless `create`. A format-1 `queue.json` is converted first: its items are written
    /// to `queue.redb.partial`, which is renamed into place, and the JSON file is renamed
    /// `queue.json.migrated`; a crash at any point leaves one of the two complete.
    pub(crate) fn open(dir: &Path, create: bool) -> Result<Option<Items>> {
        let path = dir.join(FILE);
        if !path.is_file() {
            let legacy = dir.join(LEGACY_FILE);
            let records = match std::fs::read(&legacy) {
                Ok(bytes) => Some(read_legacy(&legacy, &bytes)?),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
                Err(error) => return Err(Error::io(&legacy, error)),
            };
            if records.is_none() && !create {
                return Ok(None);
            }
            Items::create(&path, &records.unwrap_or_default())?;
            if legacy.is_file() {
                let migrated = dir.join(format!("{LEGACY_FILE}.migrated"));
                std::fs::rename(&legacy, &migrated).at(&legacy)?;
                sync_dir(dir)?;
            }
        }
        let db = guard::catch(&path, || builder().open(&path).at(&path))?;
        let items = Items { db, path };
        items.check_format()?;
        Ok(Some(items))
    }

    /// Writes a new queue database holding `records` as `<path>.partial`, then renames it
    /// into place: a queue exists whole or not at all.
    fn create(path: &Path, records: &[ItemRecord]) -> Result<()> {
        let partial = path.with_extension("redb.partial");
        // A leftover of a creation that died: never renamed, so never used.
        match std::fs::remove_file(&partial) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&partial, error)),
            _ => {}
        }
        {
            let db = guard::catch(&partial, || builder().create(&partial).at(&partial))?;
            let items = Items { db, path: partial.clone() };
            let mut change = items.begin()?;
            change.meta_set(KEY_FORMAT, QUEUE_FORMAT_VERSION)?;
            change.meta_set(KEY_NEXT, 0)?;
            change.push(records)?;
            change.commit()?;
        }
        std::fs::rename(&partial, path).at(path)?;
        sync_dir(path.parent().unwrap_or(Path::new(".")))
    }

    fn check_format(&self) -> Result<()> {
        let found = guard::catch(&self.path, || {
            let tx = self.db.begin_read().at(&self.path)?;
            let meta = tx.open_table(META).at(&self.path)?;
            Ok(meta.get(KEY_FORMAT).at(&self.path)?.map(|value| value.value()))
        })?;
        match found {
            Some(QUEUE_FORMAT_VERSION) => Ok(()),
            Some(found) if found > QUEUE_FORMAT_VERSION => Err(Error::UnsupportedFormat {
                path: self.path.clone(),
                found: u32::try_from(found).unwrap_or(u32::MAX),
                #[allow(clippy::cast_possible_truncation)] // a small constant
                supported: QUEUE_FORMAT_VERSION as u32,
            }),
            _ => Err(Error::corrupt(&self.path, "the queue database has no valid format marker")),
        }
    }

    /// Starts the operation's write transaction.
    pub(crate) fn begin(&self) -> Result<Change<'_>> {
        let mut tx = guard::catch(&self.path, || self.db.begin_write().at(&self.path))?;
        tx.set_durability(redb::Durability::Immediate).map_err(|error| Error::storage(&self.path, error))?;
        Ok(Change { tx, path: &self.path })
    }

    /// Every item in queue order (`queue ls`).
    pub(crate) fn all(&self) -> Result<Vec<ItemRecord>> {
        guard::catch(&self.path, || {
            let tx = self.db.begin_read().at(&self.path)?;
            let items = tx.open_table(ITEMS).at(&self.path)?;
            let mut records = Vec::with_capacity(usize::try_from(items.len().at(&self.path)?).unwrap_or(0));
            for entry in items.iter().at(&self.path)? {
                let (_, value) = entry.at(&self.path)?;
                records.push(decode(&self.path, value.value())?);
            }
            Ok(records)
        })
    }
}

impl Change<'_> {
    fn meta_set(&mut self, key: &str, value: u64) -> Result<()> {
        let mut meta = self.tx.open_table(META).at(self.path)?;
        meta.insert(key, value).at(self.path)?;
        Ok(())
    }

    /// Whether an item has this id.
    pub(crate) fn contains(&self, id: &str) -> Result<bool> {
        let ids = self.tx.open_table(IDS).at(self.path)?;
        Ok(ids.get(id).at(self.path)?.is_some())
    }

    /// Appends `records` at the end of the queue, in order (the caller checked that their ids
    /// are free). The tables are opened once: a sweep of a million items is one pass.
    pub(crate) fn push(&mut self, records: &[ItemRecord]) -> Result<()> {
        let path = self.path;
        let mut meta = self.tx.open_table(META).at(path)?;
        let mut items = self.tx.open_table(ITEMS).at(path)?;
        let mut ids = self.tx.open_table(IDS).at(path)?;
        let mut open = self.tx.open_table(OPEN).at(path)?;
        let mut seq = meta.get(KEY_NEXT).at(path)?.map_or(0, |value| value.value());
        let mut bytes = Vec::new();
        for record in records {
            bytes.clear();
            // Plain strings, numbers and a JSON map: serialising cannot fail.
            let _ = serde_json::to_writer(&mut bytes, record);
            items.insert(seq, bytes.as_slice()).at(path)?;
            ids.insert(record.id.as_str(), seq).at(path)?;
            if record.is_open() {
                open.insert(seq, ()).at(path)?;
            }
            seq += 1;
        }
        meta.insert(KEY_NEXT, seq).at(path)?;
        Ok(())
    }

    /// The sequence number and record of item `id`.
    pub(crate) fn find(&self, id: &str) -> Result<Option<(u64, ItemRecord)>> {
        let seq = {
            let ids = self.tx.open_table(IDS).at(self.path)?;
            let Some(seq) = ids.get(id).at(self.path)?.map(|value| value.value()) else { return Ok(None) };
            seq
        };
        let items = self.tx.open_table(ITEMS).at(self.path)?;
        let bytes = items.get(seq).at(self.path)?.ok_or_else(|| Error::corrupt(self.path, "an id names no item"))?;
        Ok(Some((seq, decode(self.path, bytes.value())?)))
    }

    /// The open (pending or running) items from sequence `from` on, in queue order, at most
    /// `count` of them: a claim walks them in pages, so its memory stays bounded.
    pub(crate) fn open_items(&self, from: u64, count: usize) -> Result<Vec<(u64, ItemRecord)>> {
        let open = self.tx.open_table(OPEN).at(self.path)?;
        let items = self.tx.open_table(ITEMS).at(self.path)?;
        let mut found = Vec::new();
        for entry in open.range(from..).at(self.path)?.take(count) {
            let seq = entry.at(self.path)?.0.value();
            let bytes = items
                .get(seq)
                .at(self.path)?
                .ok_or_else(|| Error::corrupt(self.path, "an open entry names no item"))?;
            found.push((seq, decode(self.path, bytes.value())?));
        }
        Ok(found)
    }

    /// Stores `record` as item `seq`, keeping the open index in step with its state.
    pub(crate) fn put(&mut self, seq: u64, record: &ItemRecord) -> Result<()> {
        // Plain strings, numbers and a JSON map: serialising cannot fail.
        let bytes = serde_json::to_vec(record).unwrap_or_default();
        self.tx.open_table(ITEMS).at(self.path)?.insert(seq, bytes.as_slice()).at(self.path)?;
        let mut open = self.tx.open_table(OPEN).at(self.path)?;
        if record.is_open() {
            open.insert(seq, ()).at(self.path)?;
        } else {
            open.remove(seq).at(self.path)?;
        }
        Ok(())
    }

    /// Removes item `seq` with id `id`.
    pub(crate) fn remove(&mut self, seq: u64, id: &str) -> Result<()> {
        self.tx.open_table(ITEMS).at(self.path)?.remove(seq).at(self.path)?;
        self.tx.open_table(IDS).at(self.path)?.remove(id).at(self.path)?;
        self.tx.open_table(OPEN).at(self.path)?.remove(seq).at(self.path)?;
        Ok(())
    }

    /// Commits durably.
    pub(crate) fn commit(self) -> Result<()> {
        let path = self.path;
        guard::catch(path, || self.tx.commit().at(path))
    }
}

/// Every open of a queue database: the default exclusive mode (the queue lock already makes
/// each operation the only one), a small cache.
fn builder() -> redb::Builder {
    let mut builder = redb::Builder::new();
    builder.set_cache_size(4 << 20);
    builder
}

fn decode(path: &Path, bytes: &[u8]) -> Result<ItemRecord> {
    let record: ItemRecord = serde_json::from_slice(bytes)
        .map_err(|error| Error::corrupt(path, format!("a queue item does not decode: {error}")))?;
    if validate_run_id(&record.id).is_err() {
        return Err(Error::corrupt(path, format!("item id {:?} is not a valid run id", record.id)));
    }
    Ok(record)
}

/// The items of a format-1 `queue.json`.
fn read_legacy(path: &Path, bytes: &[u8]) -> Result<Vec<ItemRecord>> {
    #[derive(Deserialize)]
    struct Version {
        runstore_queue: u32,
    }
    let version: Version =
        serde_json::from_slice(bytes).map_err(|error| Error::corrupt(path, format!("not a queue file: {error}")))?;
    if version.runstore_queue > 1 {
        return Err(Error::UnsupportedFormat { path: path.to_path_buf(), found: version.runstore_queue, supported: 1 });
    }
    let file: LegacyFile =
        serde_json::from_slice(bytes).map_err(|error| Error::corrupt(path, format!("not a queue file: {error}")))?;
    debug_assert_eq!(file.runstore_queue, version.runstore_queue);
    let mut seen = std::collections::HashSet::new();
    for item in &file.items {
        if validate_run_id(&item.id).is_err() {
            return Err(Error::corrupt(path, format!("item id {:?} is not a valid run id", item.id)));
        }
        if !seen.insert(item.id.as_str()) {
            return Err(Error::corrupt(path, format!("item id {:?} appears twice", item.id)));
        }
    }
    Ok(file.items)
}
