//! The runs table: one row per run, cached between requests, then filtered, sorted and cut
//! into a page on the server, so a store of 10 000 runs sends the browser one page.
//!
//! A row is read again only when its database file changed (modification time and length) or
//! when it was live: a live run's state depends on its lock, which a dying writer releases
//! without touching the file.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use runstore::{RunInfo, Store};
use serde::Serialize;

/// Config and summary keys offered as table columns at most.
const MAX_KEY_COLUMNS: usize = 40;

/// One run as the table shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub id: String,
    /// A state's name, or `damaged` when the run cannot be read.
    pub state: String,
    pub live: bool,
    /// Why a damaged run cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub project: Option<String>,
    pub name: Option<String>,
    pub tags: Vec<String>,
    pub last_step: Option<u64>,
    pub rows: u64,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    pub updated_at: u64,
    pub attempts: u32,
    pub branches: u32,
    pub forked_from: Option<Fork>,
    pub config: serde_json::Map<String, serde_json::Value>,
    pub summary: BTreeMap<String, serde_json::Value>,
}

/// Where a fork starts: its parent and the last step it inherits.
#[derive(Debug, Clone, Serialize)]
pub struct Fork {
    pub run: String,
    pub step: u64,
}

impl RunRow {
    pub fn from_info(info: RunInfo) -> RunRow {
        RunRow {
            live: info.state.is_live(),
            state: info.state.as_str().to_string(),
            error: None,
            project: info.project,
            name: info.name,
            tags: info.tags,
            last_step: info.last_step,
            rows: info.rows,
            created_at: millis(info.created_at),
            updated_at: millis(info.updated_at),
            attempts: info.attempts,
            branches: info.branches,
            forked_from: info.forked_from.map(|(run, step)| Fork { run, step }),
            config: info.config,
            summary: info.summary.into_iter().map(|(key, value)| (key, crate::output::json_value(value))).collect(),
            id: info.id,
        }
    }

    /// A run that cannot be read: its id and why.
    pub fn damaged(id: &str, error: &runstore::Error) -> RunRow {
        RunRow {
            id: id.to_string(),
            state: "damaged".into(),
            live: false,
            error: Some(error.to_string()),
            project: None,
            name: None,
            tags: Vec::new(),
            last_step: None,
            rows: 0,
            created_at: 0,
            updated_at: 0,
            attempts: 0,
            branches: 0,
            forked_from: None,
            config: serde_json::Map::new(),
            summary: BTreeMap::new(),
        }
    }
}

pub fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// A cached row and what its file looked like when it was read.
struct Entry {
    path: Option<PathBuf>,
    stamp: Option<(SystemTime, u64)>,
    row: Arc<RunRow>,
}

/// The rows of every run, kept between requests.
#[derive(Default)]
pub struct Catalog {
    entries: HashMap<String, Entry>,
}

impl Catalog {
    /// Every run's row, read again where the run changed; sorted by id.
    ///
    /// # Errors
    ///
    /// When the runs directory cannot be listed. A run that cannot be read is a damaged row.
    pub fn rows(&mut self, store: &Store) -> runstore::Result<Vec<Arc<RunRow>>> {
        let ids = store.run_ids()?;
        self.entries.retain(|id, _| ids.binary_search(id).is_ok());
        let stale: Vec<&String> = ids
            .iter()
            .filter(|id| {
                !self.entries.get(*id).is_some_and(|entry| {
                    !entry.row.live && entry.stamp.is_some() && entry.path.as_ref().and_then(stamp) == entry.stamp
                })
            })
            .collect();
        // Reading a run is opening its database: a cold store of thousands of runs is read on
        // every core.
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let chunk = stale.len().div_ceil(threads).max(64);
        let read_ids = |ids: &[&String]| ids.iter().map(|id| ((*id).clone(), read(store, id))).collect::<Vec<_>>();
        let read_entries: Vec<(String, Entry)> = std::thread::scope(|scope| {
            let workers: Vec<_> = stale.chunks(chunk).map(|ids| (ids, scope.spawn(move || read_ids(ids)))).collect();
            // A reader that panicked is read again here, so the panic reaches the request's
            // handler (a 500) rather than leaving runs out of the table.
            workers.into_iter().flat_map(|(ids, worker)| worker.join().unwrap_or_else(|_| read_ids(ids))).collect()
        });
        self.entries.extend(read_entries);
        Ok(ids.iter().filter_map(|id| self.entries.get(id).map(|entry| Arc::clone(&entry.row))).collect())
    }
}

/// Reads one run's row; the file's stamp is taken before the read, so a change during it makes
/// the next request read again.
fn read(store: &Store, id: &str) -> Entry {
    let reader = match store.open_run(id) {
        Ok(reader) => reader,
        Err(error) => return Entry { path: None, stamp: None, row: Arc::new(RunRow::damaged(id, &error)) },
    };
    let path = reader.path().to_path_buf();
    let before = stamp(&path);
    match reader.info() {
        Ok(info) => Entry { path: Some(path), stamp: before, row: Arc::new(RunRow::from_info(info)) },
        Err(error) => Entry { path: Some(path), stamp: before, row: Arc::new(RunRow::damaged(id, &error)) },
    }
}

fn stamp(path: &PathBuf) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// What the table asks for.
pub struct Query {
    /// Case-insensitive text found in the id, name, project or a tag.
    pub text: Option<String>,
    /// A state's name, `live`, or `damaged`.
    pub state: Option<String>,
    /// `id`, `state`, `project`, `name`, `steps`, `rows`, `created`, `updated`, `attempts`,
    /// `config:KEY` or `summary:KEY`.
    pub sort: String,
    pub descending: bool,
    pub offset: usize,
    pub limit: usize,
}

/// One page of the table, and what the controls need.
#[derive(Serialize)]
pub struct Page {
    /// Runs that match the filters.
    pub total: usize,
    /// Runs in the store.
    pub all: usize,
    /// Runs per state, over the whole store.
    pub states: BTreeMap<String, usize>,
    /// The config keys found in the store, most common first.
    pub config_keys: Vec<String>,
    /// The summary keys found in the store, most common first.
    pub summary_keys: Vec<String>,
    pub offset: usize,
    pub runs: Vec<RunRow>,
}

/// Filters, sorts and pages `rows`.
pub fn page(rows: &[Arc<RunRow>], query: &Query) -> Page {
    let mut states = BTreeMap::new();
    let (mut config_keys, mut summary_keys) = (HashMap::new(), HashMap::new());
    for row in rows {
        *states.entry(row.state.clone()).or_insert(0) += 1;
        for key in row.config.keys() {
            *config_keys.entry(key.as_str()).or_insert(0usize) += 1;
        }
        for key in row.summary.keys() {
            *summary_keys.entry(key.as_str()).or_insert(0usize) += 1;
        }
    }
    let text = query.text.as_deref().map(str::to_lowercase);
    let matching: Vec<&Arc<RunRow>> = rows
        .iter()
        .filter(|row| match query.state.as_deref() {
            None => true,
            Some("live") => row.live,
            Some(state) => row.state == state,
        })
        .filter(|row| text.as_deref().is_none_or(|text| matches_text(row, text)))
        .collect();
    // Each key computed once, not once per comparison.
    let mut keyed: Vec<(Key, &Arc<RunRow>)> =
        matching.into_iter().map(|row| (sort_key(row, &query.sort), row)).collect();
    keyed.sort_by(|(key_a, a), (key_b, b)| compare(key_a, key_b, query.descending).then_with(|| a.id.cmp(&b.id)));
    let total = keyed.len();
    let offset = query.offset.min(total);
    let runs = keyed.into_iter().skip(offset).take(query.limit).map(|(_, row)| RunRow::clone(row)).collect();
    Page {
        total,
        all: rows.len(),
        states,
        config_keys: most_common(config_keys),
        summary_keys: most_common(summary_keys),
        offset,
        runs,
    }
}

fn most_common(counts: HashMap<&str, usize>) -> Vec<String> {
    let mut keys: Vec<(&str, usize)> = counts.into_iter().collect();
    keys.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    keys.into_iter().take(MAX_KEY_COLUMNS).map(|(key, _)| key.to_string()).collect()
}

fn matches_text(row: &RunRow, text: &str) -> bool {
    let found = |field: &str| field.to_lowercase().contains(text);
    found(&row.id)
        || row.name.as_deref().is_some_and(found)
        || row.project.as_deref().is_some_and(found)
        || row.tags.iter().any(|tag| found(tag))
}

/// A value to sort by: numbers before text; a run without the value sorts last either way.
#[derive(PartialEq)]
enum Key {
    Number(f64),
    Text(String),
    Missing,
}

#[allow(clippy::cast_precision_loss)]
fn sort_key(row: &RunRow, sort: &str) -> Key {
    let text = |value: Option<&String>| value.map_or(Key::Missing, |value| Key::Text(value.to_lowercase()));
    let json = |value: Option<&serde_json::Value>| match value {
        None | Some(serde_json::Value::Null) => Key::Missing,
        Some(serde_json::Value::Number(number)) => number.as_f64().map_or(Key::Missing, Key::Number),
        Some(serde_json::Value::String(text)) => Key::Text(text.to_lowercase()),
        Some(other) => Key::Text(other.to_string()),
    };
    match sort {
        "state" => Key::Text(row.state.clone()),
        "project" => text(row.project.as_ref()),
        "name" => text(row.name.as_ref()),
        "steps" => row.last_step.map_or(Key::Missing, |step| Key::Number(step as f64)),
        "rows" => Key::Number(row.rows as f64),
        "created" => Key::Number(row.created_at as f64),
        "updated" => Key::Number(row.updated_at as f64),
        "attempts" => Key::Number(f64::from(row.attempts)),
        other => match other.split_once(':') {
            Some(("config", key)) => json(row.config.get(key)),
            Some(("summary", key)) => json(row.summary.get(key)),
            _ => Key::Text(row.id.clone()),
        },
    }
}

fn compare(a: &Key, b: &Key, descending: bool) -> Ordering {
    let rank = |key: &Key| match key {
        Key::Number(_) => 0,
        Key::Text(_) => 1,
        Key::Missing => 2,
    };
    let order = match (a, b) {
        (Key::Number(x), Key::Number(y)) => x.total_cmp(y),
        (Key::Text(x), Key::Text(y)) => x.cmp(y),
        (Key::Missing, Key::Missing) => Ordering::Equal,
        _ => return rank(a).cmp(&rank(b)),
    };
    if descending { order.reverse() } else { order }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, state: &str, loss: Option<f64>) -> Arc<RunRow> {
        let mut row = RunRow::damaged(id, &runstore::Error::RunNotFound { id: id.into() });
        row.state = state.into();
        row.error = None;
        if let Some(loss) = loss {
            row.summary.insert("loss".into(), crate::output::json_value(loss));
        }
        Arc::new(row)
    }

    fn query(sort: &str, descending: bool) -> Query {
        Query { text: None, state: None, sort: sort.into(), descending, offset: 0, limit: 10 }
    }

    #[test]
    fn runs_without_the_sorted_value_come_last_in_both_directions() {
        let rows = [row("a", "finished", Some(2.0)), row("b", "finished", None), row("c", "crashed", Some(1.0))];
        let ids = |page: Page| page.runs.iter().map(|row| row.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(page(&rows, &query("summary:loss", false))), ["c", "a", "b"]);
        assert_eq!(ids(page(&rows, &query("summary:loss", true))), ["a", "c", "b"]);
    }

    #[test]
    fn filters_count_the_matches_and_pages_cut_them() {
        let rows: Vec<_> = (0..25)
            .map(|n| row(&format!("run-{n:02}"), if n % 5 == 0 { "crashed" } else { "finished" }, None))
            .collect();
        let mut q = query("id", false);
        q.state = Some("crashed".into());
        q.offset = 2;
        let page = page(&rows, &q);
        assert_eq!((page.total, page.all, page.states["crashed"]), (5, 25, 5));
        assert_eq!(page.runs.iter().map(|row| row.id.as_str()).collect::<Vec<_>>(), ["run-10", "run-15", "run-20"]);
        let mut q = query("id", false);
        q.text = Some("RUN-2".into());
        assert_eq!(super::page(&rows, &q).total, 5);
    }
}
