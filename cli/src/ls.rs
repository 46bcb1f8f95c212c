//! `runstore ls`: one line per run, most recently updated first (or sorted by a column).

use std::cmp::Ordering;
use std::io::Write;

use runstore::{Filesystem, RunInfo, RunState, Store};

use crate::exit::Failure;
use crate::output;
use crate::table::{self, Column};

/// List runs, most recently updated first.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
States: running, finished, failed, crashed, preempting, preempted.

Columns (--columns, --sort): id, project, name, state, next, last, rows,
updated, created, attempts, tags; config.KEY (a key of the config, nested keys
joined with dots: config.model.depth); summary.NAME (a metric's last value, or a
value set with set_summary). A run without the value shows `-` and sorts last.
Default: project,name,state,next,updated,attempts. With --json and --columns,
each object also has a member per column, named as given.

Examples:
  runstore ls
  runstore ls --project vision --state crashed
  runstore ls --columns config.lr,config.batch,summary.loss --sort summary.loss
  runstore ls --tag sweep-1 --sort summary.acc --desc --columns summary.acc
  runstore ls --json | jq -r '.[] | select(.state == \"failed\") | .id'")]
pub struct Args {
    /// Only runs of this project.
    #[arg(long, value_name = "P")]
    project: Option<String>,
    /// Only runs in this state (see States below).
    #[arg(long, value_name = "S", value_parser = crate::state_parser(), hide_possible_values = true)]
    state: Option<RunState>,
    /// Only runs with this tag; repeat for runs with every tag.
    #[arg(long, value_name = "T")]
    tag: Vec<String>,
    /// The columns after ID, comma-separated (see Columns).
    #[arg(long, value_name = "COLS", value_delimiter = ',')]
    columns: Vec<String>,
    /// Sort by this column, lowest first [default: by update].
    #[arg(long, value_name = "COL")]
    sort: Option<String>,
    /// With --sort: highest first.
    #[arg(long, requires = "sort")]
    desc: bool,
    /// A JSON array of run objects instead of a table.
    #[arg(long)]
    json: bool,
}

const DEFAULT_COLUMNS: [&str; 6] = ["project", "name", "state", "next", "updated", "attempts"];

/// What a column shows of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Id,
    Project,
    Name,
    State,
    Next,
    Last,
    Rows,
    Updated,
    Created,
    Attempts,
    Tags,
    Config(String),
    Summary(String),
}

/// One cell's value, for showing and for sorting.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// A step or a count, shown exactly.
    Count(u64),
    Number(f64),
    Text(String),
    Json(serde_json::Value),
    Missing,
}

impl Key {
    pub fn parse(text: &str) -> Result<Key, Failure> {
        let text = text.trim();
        Ok(match text {
            "id" => Key::Id,
            "project" => Key::Project,
            "name" => Key::Name,
            "state" => Key::State,
            "next" => Key::Next,
            "last" => Key::Last,
            "rows" => Key::Rows,
            "updated" => Key::Updated,
            "created" => Key::Created,
            "attempts" => Key::Attempts,
            "tags" => Key::Tags,
            _ => match (text.strip_prefix("config."), text.strip_prefix("summary.")) {
                (Some(key), _) if !key.is_empty() => Key::Config(key.to_string()),
                (_, Some(name)) if !name.is_empty() => Key::Summary(name.to_string()),
                _ => {
                    return Err(Failure::input(format!(
                        "unknown column {text:?}: give id, project, name, state, next, last, rows, updated, created, \
                         attempts, tags, config.KEY or summary.NAME"
                    )));
                }
            },
        })
    }

    fn header(&self, given: &str) -> String {
        match self {
            Key::Attempts => "ATT".to_string(),
            Key::Config(_) | Key::Summary(_) => given.trim().to_string(),
            _ => given.trim().to_uppercase(),
        }
    }

    fn is_number(&self) -> bool {
        matches!(self, Key::Next | Key::Last | Key::Rows | Key::Attempts | Key::Summary(_))
    }

    pub fn of(&self, info: &RunInfo) -> Cell {
        let text = |value: Option<&String>| value.map_or(Cell::Missing, |value| Cell::Text(value.clone()));
        match self {
            Key::Id => Cell::Text(info.id.clone()),
            Key::Project => text(info.project.as_ref()),
            Key::Name => text(info.name.as_ref()),
            Key::State => Cell::Text(info.state.as_str().to_string()),
            Key::Next => Cell::Count(info.next_step),
            Key::Last => info.last_step.map_or(Cell::Missing, Cell::Count),
            Key::Rows => Cell::Count(info.rows),
            Key::Updated => Cell::Text(output::time(info.updated_at)),
            Key::Created => Cell::Text(output::time(info.created_at)),
            Key::Attempts => Cell::Count(u64::from(info.attempts)),
            Key::Tags if info.tags.is_empty() => Cell::Missing,
            Key::Tags => Cell::Text(info.tags.join(",")),
            Key::Config(key) => config_value(&info.config, key).map_or(Cell::Missing, |value| match value {
                serde_json::Value::Number(number) => number.as_f64().map_or(Cell::Missing, Cell::Number),
                serde_json::Value::String(text) => Cell::Text(text.clone()),
                serde_json::Value::Null => Cell::Missing,
                other => Cell::Json(other.clone()),
            }),
            Key::Summary(name) => info.summary.get(name).map_or(Cell::Missing, |&value| Cell::Number(value)),
        }
    }
}

/// A config value by key: the key as it is, else split at dots into nested objects.
pub fn config_value<'a>(
    config: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Option<&'a serde_json::Value> {
    if let Some(value) = config.get(key) {
        return Some(value);
    }
    let (first, rest) = key.split_once('.')?;
    match config.get(first)? {
        serde_json::Value::Object(inner) => config_value(inner, rest),
        _ => None,
    }
}

impl Cell {
    pub fn show(&self) -> String {
        match self {
            Cell::Count(count) => count.to_string(),
            Cell::Number(value) => output::human(*value),
            Cell::Text(text) => text.replace('\n', " "),
            Cell::Json(value) => value.to_string(),
            Cell::Missing => "-".to_string(),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Cell::Count(count) => serde_json::Value::from(*count),
            Cell::Number(value) => output::json_value(*value),
            Cell::Text(text) => serde_json::Value::String(text.clone()),
            Cell::Json(value) => value.clone(),
            Cell::Missing => serde_json::Value::Null,
        }
    }

    /// Missing values and NaN sort last whichever the direction; numbers before text.
    fn compare(&self, other: &Cell, desc: bool) -> Ordering {
        let rank = |cell: &Cell| match cell {
            Cell::Number(value) if value.is_nan() => 3,
            Cell::Number(_) | Cell::Count(_) => 0,
            Cell::Text(_) | Cell::Json(_) => 1,
            Cell::Missing => 3,
        };
        let order = match (self, other) {
            (Cell::Count(a), Cell::Count(b)) => a.cmp(b),
            (Cell::Number(a), Cell::Number(b)) if !a.is_nan() && !b.is_nan() => a.total_cmp(b),
            (Cell::Text(a), Cell::Text(b)) => a.cmp(b),
            (Cell::Json(a), Cell::Json(b)) => a.to_string().cmp(&b.to_string()),
            _ => return rank(self).cmp(&rank(other)),
        };
        if desc { order.reverse() } else { order }
    }
}

pub fn run(store: &Store, args: &Args) -> Result<(), Failure> {
    let given: Vec<&str> = if args.columns.is_empty() {
        DEFAULT_COLUMNS.to_vec()
    } else {
        args.columns.iter().map(String::as_str).filter(|column| !column.trim().is_empty()).collect()
    };
    let keys = given.iter().map(|column| Key::parse(column)).collect::<Result<Vec<_>, _>>()?;
    let sort = args.sort.as_deref().map(Key::parse).transpose()?;

    let mut runs = Vec::new();
    let mut first_error = None;
    for id in store.run_ids()? {
        match store.open_run(&id).and_then(|reader| reader.info()) {
            Ok(info) => runs.push(info),
            // A run deleted while we list it is gone, not damaged.
            Err(_) if !store.exists(&id).unwrap_or(true) => {}
            // A damaged run must not hide the others: say so, list the rest, fail at the end.
            Err(error) => {
                output::warn(&format!("skipping run {id:?}: {error}"));
                first_error.get_or_insert(error);
            }
        }
    }
    runs.retain(|info| {
        args.project.as_ref().is_none_or(|project| info.project.as_ref() == Some(project))
            && args.state.is_none_or(|state| info.state == state)
            && args.tag.iter().all(|tag| info.tags.contains(tag))
    });
    runs.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| a.id.cmp(&b.id)));
    if let Some(key) = &sort {
        // Stable: runs with equal values stay most recently updated first.
        runs.sort_by(|a, b| key.of(a).compare(&key.of(b), args.desc));
    }
    let mut out = output::stdout();
    if args.json {
        let list: Vec<_> = runs
            .iter()
            .map(|info| {
                let mut value = json(info);
                if !args.columns.is_empty() {
                    for (given, key) in given.iter().zip(&keys) {
                        value[given.trim()] = key.of(info).json();
                    }
                }
                value
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &list).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else if runs.is_empty() {
        writeln!(out, "no runs in {}", store.path().display())?;
    } else {
        let mut header = vec![Column::whole("ID")];
        header.extend(given.iter().zip(&keys).map(|(given, key)| {
            let title = key.header(given);
            match key {
                // Its header may be a long metric name; its values never take more than 10.
                Key::Summary(_) => Column { cut_to: Some(10), ..Column::number(&title) },
                _ if key.is_number() => Column::number(&title),
                Key::Updated | Key::Created | Key::State => Column::whole(&title),
                _ => Column::cut(&title, title.chars().count().max(6)),
            }
        }));
        let rows: Vec<Vec<String>> = runs
            .iter()
            .map(|info| std::iter::once(info.id.clone()).chain(keys.iter().map(|key| key.of(info).show())).collect())
            .collect();
        table::write(&mut out, &header, &rows, table::terminal_columns())?;
    }
    out.flush()?;
    if let Some(note) = lingering_locks_note(store, &runs) {
        output::warn(&note);
    }
    first_error.map_or(Ok(()), |error| Err(error.into()))
}

/// On a shared filesystem, live runs held from other hosts may be held by nodes that died: one
/// note on stderr naming them (stdout stays what scripts read).
fn lingering_locks_note(store: &Store, runs: &[RunInfo]) -> Option<String> {
    let live: Vec<&RunInfo> = runs.iter().filter(|info| info.state.is_live()).collect();
    if live.is_empty() {
        return None;
    }
    let fs = Filesystem::detect(store.path()).ok()?;
    let mut held = Vec::new();
    let mut linger = None;
    for info in live {
        let Ok(Some(holder)) = store.open_run(&info.id).and_then(|reader| reader.holder()) else { continue };
        if let Some(lingers) = fs.lingering_lock(&holder) {
            linger = Some(lingers);
            held.push(format!("{} (host {})", info.id, holder.host));
        }
    }
    Some(format!(
        "note: held from other hosts: {}; if a node is down, its lock on this {} filesystem persists {}, and its \
         runs read running until then",
        held.join(", "),
        fs.fs_type,
        linger?
    ))
}

fn json(info: &RunInfo) -> serde_json::Value {
    serde_json::json!({
        "id": info.id,
        "project": info.project,
        "name": info.name,
        "state": info.state.as_str(),
        "next_step": info.next_step,
        "last_step": info.last_step,
        "rows": info.rows,
        "attempts": info.attempts,
        "tags": info.tags,
        "created_at": output::time(info.created_at),
        "updated_at": output::time(info.updated_at),
    })
}
