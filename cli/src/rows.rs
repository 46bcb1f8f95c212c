//! Writing history rows as csv, jsonl or an aligned table, one row at a time.
//!
//! - csv: header `step,<metric>...`; an empty cell where a row lacks a metric; values in the
//!   shortest form that reads back exactly; `NaN`, `inf`, `-inf`. Metric names are quoted as
//!   RFC 4180 says when they hold `,` or `"`.
//! - jsonl: one object per row, `{"step":12,"loss":0.25}`, holding only the metrics the row has;
//!   NaN and infinities as the strings `"NaN"`, `"inf"`, `"-inf"` (JSON has no such numbers).
//! - table (for people): right-aligned columns under a header, repeated when a metric appears.
//! - with `--time`, each row also has `_timestamp` (Unix seconds, to the millisecond) and
//!   `_runtime` (seconds the run had been running, dead time between attempts not counted):
//!   csv/table columns after `step`, jsonl members after `"step"`.
//! - with `--all-branches`, each row also names its branch: a first csv/table column `branch`
//!   holding `live` or an archived branch id, or a jsonl member `"branch":"live"` / `"branch":3`.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::Arc;

use crate::exit::Failure;
use crate::output;

/// How rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// Aligned columns, for people.
    Table,
}

/// When a row was logged and the run's runtime then, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub time_ms: u64,
    pub runtime_ms: u64,
}

impl Stamp {
    pub fn of(row: &runstore::RowRef<'_>) -> Stamp {
        Stamp { time_ms: ms(row.time()), runtime_ms: duration_ms(row.runtime()) }
    }
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn ms(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH).map_or(0, duration_ms)
}

fn duration_ms(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds as decimal seconds: `1795741387.042`.
pub fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// The widest a table column gets; longer metric names are cut.
const MAX_COLUMN: usize = 24;
/// The narrowest table column: fits any value `output::human` writes.
const MIN_COLUMN: usize = 11;

/// One output column.
struct Column {
    name: String,
    /// The name as a JSON string, with quotes.
    key: String,
    /// The header cell: the name, csv-quoted or cut to the table width.
    header: String,
    width: usize,
}

/// Streams rows in one format. Metric ids index the names of the history snapshot, which only
/// grow; call [`RowWriter::names`] with each new snapshot's names.
pub struct RowWriter {
    format: Format,
    /// `--metric`s, in the order given; empty for all metrics.
    selected: Vec<String>,
    columns: Vec<Column>,
    /// Metric id → column index.
    by_id: Vec<Option<usize>>,
    /// Names seen so far, by id.
    known: usize,
    cells: Vec<Option<f64>>,
    /// Columns covered by the last header written (csv: frozen once written).
    header_columns: Option<usize>,
    step_width: usize,
    /// With `--all-branches`: the branch of the rows being written (`live` or a branch id),
    /// written as a first column (csv, table) or a `branch` member (jsonl).
    branch: Option<String>,
    /// With `--time`: `_timestamp` and `_runtime` after the step.
    time: bool,
}

impl RowWriter {
    pub fn new(format: Format, selected: Vec<String>) -> RowWriter {
        let mut writer = RowWriter {
            format,
            selected,
            columns: Vec::new(),
            by_id: Vec::new(),
            known: 0,
            cells: Vec::new(),
            header_columns: None,
            step_width: 8,
            branch: None,
            time: false,
        };
        // Selected metrics are columns from the start, in the order given, present or not.
        for name in writer.selected.clone() {
            writer.add_column(&name);
        }
        writer
    }

    /// Writes each row's `_timestamp` and `_runtime` (`--time`).
    pub fn with_time(&mut self, time: bool) {
        self.time = time;
    }

    /// Labels the rows written from now on with their branch: `live` or an archived branch id.
    pub fn set_branch(&mut self, branch: impl Into<String>) {
        self.branch = Some(branch.into());
    }

    /// Widens the step column of a table to fit `step`.
    pub fn fit_step(&mut self, step: u64) {
        self.step_width = self.step_width.max(step.to_string().len());
    }

    /// Takes the names of a (possibly newer) snapshot: ids beyond those known are new metrics.
    pub fn names(&mut self, names: &[Arc<str>]) {
        for name in names.iter().skip(self.known) {
            let column = if self.selected.is_empty() {
                // csv columns are frozen by the header; later metrics have no column there.
                // System metrics have samples by time, not points in rows: no column.
                (!name.starts_with(runstore::SYSTEM_PREFIX)
                    && (self.format != Format::Csv || self.header_columns.is_none()))
                .then(|| self.add_column(name))
            } else {
                self.columns.iter().position(|column| column.name == **name)
            };
            self.by_id.push(column);
        }
        self.known = self.known.max(names.len());
    }

    fn add_column(&mut self, name: &str) -> usize {
        let header = match self.format {
            Format::Csv if name.contains([',', '"', '\n', '\r']) => format!("\"{}\"", name.replace('"', "\"\"")),
            Format::Table => output::fit(name, MAX_COLUMN),
            _ => name.to_string(),
        };
        let width = output::width(&header).max(MIN_COLUMN);
        let key = serde_json::to_string(name).unwrap_or_else(|_| format!("\"{}\"", name.escape_default()));
        self.columns.push(Column { name: name.to_string(), key, header, width });
        self.cells.push(None);
        self.columns.len() - 1
    }

    /// Writes the csv or table header now, if it is due (csv: once; table: when columns grew).
    pub fn header(&mut self, out: &mut impl Write) -> io::Result<()> {
        if self.header_columns == Some(self.columns.len()) || self.format == Format::Jsonl {
            return Ok(());
        }
        match self.format {
            Format::Csv if self.header_columns.is_some() => return Ok(()),
            Format::Csv => {
                if self.branch.is_some() {
                    out.write_all(b"branch,")?;
                }
                out.write_all(b"step")?;
                if self.time {
                    out.write_all(b",_timestamp,_runtime")?;
                }
                for column in &self.columns {
                    write!(out, ",{}", column.header)?;
                }
            }
            _ => {
                if self.branch.is_some() {
                    write!(out, "{:>6}  ", "branch")?;
                }
                write!(out, "{:>width$}", "step", width = self.step_width)?;
                if self.time {
                    write!(out, "  {:>14}  {:>11}", "_timestamp", "_runtime")?;
                }
                for column in &self.columns {
                    write!(out, "  {:>width$}", column.header, width = column.width)?;
                }
            }
        }
        out.write_all(b"\n")?;
        self.header_columns = Some(self.columns.len());
        Ok(())
    }

    /// Writes one row; `points` are `(metric id, value)` pairs of the last snapshot given.
    pub fn row(&mut self, out: &mut impl Write, step: u64, stamp: Stamp, points: &[(u32, f64)]) -> io::Result<()> {
        if self.format == Format::Jsonl {
            return self.jsonl(out, step, stamp, points);
        }
        self.header(out)?;
        self.cells.iter_mut().for_each(|cell| *cell = None);
        for &(id, value) in points {
            if let Some(Some(column)) = self.by_id.get(id as usize) {
                self.cells[*column] = Some(value);
            }
        }
        if self.format == Format::Csv {
            if let Some(branch) = &self.branch {
                write!(out, "{branch},")?;
            }
            write!(out, "{step}")?;
            if self.time {
                write!(out, ",{},{}", seconds(stamp.time_ms), seconds(stamp.runtime_ms))?;
            }
            for cell in &self.cells {
                out.write_all(b",")?;
                if let Some(value) = cell {
                    output::write_exact(out, *value)?;
                }
            }
        } else {
            let mut line = match &self.branch {
                Some(branch) => format!("{branch:>6}  "),
                None => String::new(),
            };
            let _ = write!(line, "{step:>width$}", width = self.step_width);
            if self.time {
                let _ = write!(line, "  {:>14}  {:>11}", seconds(stamp.time_ms), seconds(stamp.runtime_ms));
            }
            for (cell, column) in self.cells.iter().zip(&self.columns) {
                let text = cell.map_or_else(String::new, output::human);
                let _ = write!(line, "  {text:>width$}", width = column.width);
            }
            out.write_all(line.trim_end().as_bytes())?;
        }
        out.write_all(b"\n")
    }

    fn jsonl(&mut self, out: &mut impl Write, step: u64, stamp: Stamp, points: &[(u32, f64)]) -> io::Result<()> {
        match self.branch.as_deref() {
            Some("live") => out.write_all(b"{\"branch\":\"live\",")?,
            Some(branch) => write!(out, "{{\"branch\":{branch},")?,
            None => out.write_all(b"{")?,
        }
        write!(out, "\"step\":{step}")?;
        if self.time {
            write!(out, ",\"_timestamp\":{},\"_runtime\":{}", seconds(stamp.time_ms), seconds(stamp.runtime_ms))?;
        }
        if self.selected.is_empty() {
            for &(id, value) in points {
                if let Some(Some(column)) = self.by_id.get(id as usize) {
                    write_member(out, &self.columns[*column].key, value)?;
                }
            }
        } else {
            self.cells.iter_mut().for_each(|cell| *cell = None);
            for &(id, value) in points {
                if let Some(Some(column)) = self.by_id.get(id as usize) {
                    self.cells[*column] = Some(value);
                }
            }
            for (cell, column) in self.cells.iter().zip(&self.columns) {
                if let Some(value) = cell {
                    write_member(out, &column.key, *value)?;
                }
            }
        }
        out.write_all(b"}\n")
    }
}

fn write_member(out: &mut impl Write, key: &str, value: f64) -> io::Result<()> {
    write!(out, ",{key}:")?;
    match output::non_finite(value) {
        Some(text) => write!(out, "\"{text}\""),
        // JSON's own form of the number (`1.0` for 1): what JSON readers of the jsonl expect.
        None => match serde_json::Number::from_f64(value) {
            Some(number) => write!(out, "{number}"),
            None => output::write_exact(out, value),
        },
    }
}

/// Refuses a `--metric` given twice.
pub fn check_unique(selected: &[String]) -> Result<(), Failure> {
    match selected.iter().enumerate().find(|(index, name)| selected[..*index].contains(name)) {
        Some((_, name)) => Err(Failure::input(format!("--metric {name:?} is given twice: give each metric once"))),
        None => Ok(()),
    }
}

/// Refuses `--metric` names the run does not have (listing the ones it has), or given twice.
pub fn check_metrics(id: &str, selected: &[String], names: &[Arc<str>]) -> Result<(), Failure> {
    check_unique(selected)?;
    let Some(unknown) = selected.iter().find(|name| !names.iter().any(|known| **known == ***name)) else {
        return Ok(());
    };
    let mut list = names.iter().take(20).map(|name| format!("{name:?}")).collect::<Vec<_>>().join(", ");
    if names.len() > 20 {
        list.push_str(", …");
    }
    if names.is_empty() {
        list = "none yet".to_string();
    }
    Err(Failure::input(format!("run {id:?} has no metric {unknown:?}: its metrics are {list}")))
}

/// The rows of `steps` with every metric, or with only the `metrics` given (whose bytes alone
/// are read).
pub fn history(
    reader: &runstore::RunSnapshot,
    metrics: &[String],
    steps: impl std::ops::RangeBounds<u64>,
) -> runstore::Result<runstore::History> {
    if metrics.is_empty() { reader.history(steps) } else { reader.history_of(metrics, steps) }
}

/// Writes the rows of `history` (all of them, streamed) and returns how many there were;
/// `progress` is called every 4096 rows with the count so far.
pub fn stream(
    history: &mut runstore::History,
    writer: &mut RowWriter,
    out: &mut impl Write,
    mut progress: impl FnMut(u64),
) -> Result<u64, Failure> {
    writer.names(history.metrics());
    writer.header(out)?;
    let mut rows = 0u64;
    while let Some(row) = history.next_row()? {
        writer.row(out, row.step(), Stamp::of(&row), row.points())?;
        rows += 1;
        if rows.is_multiple_of(4096) {
            progress(rows);
        }
    }
    progress(rows);
    Ok(rows)
}
