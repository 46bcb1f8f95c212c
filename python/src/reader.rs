//! Reading runs: infos, attempts, branches, and history as columns of bytes (which numpy
//! wraps without a Python object per point) or as streamed chunks of row dicts. Reads run
//! without the GIL; it is taken to build the results.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyDict, PyList, PyString};
use runstore::{Attempt, Branch, Checkpoint, History, RunInfo, RunReader, Store};

use crate::errors::to_py;

fn seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH).map_or(0.0, |since| since.as_secs_f64())
}

/// A run's info as a dict; the config as JSON text (`config_json`), parsed by the Python layer.
pub(crate) fn info_dict<'py>(py: Python<'py>, info: &RunInfo) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("id", &info.id)?;
    dict.set_item("project", &info.project)?;
    dict.set_item("name", &info.name)?;
    dict.set_item("tags", &info.tags)?;
    dict.set_item("notes", &info.notes)?;
    dict.set_item("config_json", serde_json::Value::Object(info.config.clone()).to_string())?;
    dict.set_item("state", info.state.as_str())?;
    dict.set_item("exit_code", info.exit_code)?;
    dict.set_item("next_step", info.next_step)?;
    dict.set_item("last_step", info.last_step)?;
    dict.set_item("rows", info.rows)?;
    let summary = PyDict::new(py);
    for (name, value) in &info.summary {
        summary.set_item(name, value)?;
    }
    dict.set_item("summary", summary)?;
    dict.set_item("created_at", seconds(info.created_at))?;
    dict.set_item("updated_at", seconds(info.updated_at))?;
    dict.set_item("attempts", info.attempts)?;
    dict.set_item("branches", info.branches)?;
    dict.set_item("forked_from", info.forked_from.clone())?;
    dict.set_item("system_notes", &info.system_notes)?;
    Ok(dict)
}

fn attempt_dict<'py>(py: Python<'py>, attempt: &Attempt) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("number", attempt.number)?;
    dict.set_item("started_at", seconds(attempt.started_at))?;
    dict.set_item("host", &attempt.host)?;
    dict.set_item("pid", attempt.pid)?;
    dict.set_item("first_step", attempt.first_step)?;
    dict.set_item("ended_at", attempt.ended_at.map(seconds))?;
    dict.set_item("last_step", attempt.last_step)?;
    dict.set_item("outcome", attempt.outcome.map(runstore::RunState::as_str))?;
    dict.set_item("exit_code", attempt.exit_code)?;
    Ok(dict)
}

/// An archived branch as a dict.
pub(crate) fn branch_dict<'py>(py: Python<'py>, branch: &Branch) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("id", branch.id)?;
    dict.set_item("created_at", seconds(branch.created_at))?;
    dict.set_item("rewound_to", branch.rewound_to)?;
    dict.set_item("first_step", branch.first_step)?;
    dict.set_item("last_step", branch.last_step)?;
    dict.set_item("rows", branch.rows)?;
    dict.set_item("by_attempt", branch.by_attempt)?;
    dict.set_item("attempts", &branch.attempts)?;
    Ok(dict)
}

/// A checkpoint record as a dict: number, step, path, absolute, size, time, attempt, branch,
/// exists.
pub(crate) fn checkpoint_dict<'py>(py: Python<'py>, checkpoint: &Checkpoint) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("number", checkpoint.number)?;
    dict.set_item("step", checkpoint.step)?;
    dict.set_item("path", checkpoint.path.as_os_str())?;
    dict.set_item("absolute", checkpoint.absolute.as_os_str())?;
    dict.set_item("size", checkpoint.size)?;
    dict.set_item("time", seconds(checkpoint.time))?;
    dict.set_item("attempt", checkpoint.attempt)?;
    dict.set_item("branch", checkpoint.branch)?;
    dict.set_item("exists", checkpoint.exists)?;
    Ok(dict)
}

/// The infos of every run in the store at `dir`.
#[pyfunction]
pub(crate) fn list_runs(py: Python<'_>, dir: PathBuf) -> PyResult<Bound<'_, PyList>> {
    let infos = py.detach(move || Store::open(dir).and_then(|store| store.runs())).map_err(|error| to_py(py, error))?;
    let list = PyList::empty(py);
    for info in &infos {
        list.append(info_dict(py, info)?)?;
    }
    Ok(list)
}

/// Opens run `id` of the store at `dir` for reading.
#[pyfunction]
pub(crate) fn open_run(py: Python<'_>, dir: PathBuf, id: String) -> PyResult<NativeReader> {
    let reader =
        py.detach(move || Store::open(dir).and_then(|store| store.open_run(&id))).map_err(|error| to_py(py, error))?;
    Ok(NativeReader { reader })
}

/// A reader of one run.
#[pyclass(module = "runstore._runstore", frozen)]
pub(crate) struct NativeReader {
    reader: RunReader,
}

impl NativeReader {
    /// The rows of the live history, or of archived branch `branch`, in `min..=max`.
    fn history(&self, branch: Option<u32>, min: u64, max: u64) -> runstore::Result<History> {
        match branch {
            None => self.reader.history(min..=max),
            Some(branch) => self.reader.branch_history(branch, min..=max),
        }
    }
}

/// Bytes in a `bytearray`, which numpy wraps writable without a copy.
fn bytearray<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyByteArray> {
    PyByteArray::new(py, bytes)
}

#[pymethods]
impl NativeReader {
    /// The run's info.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let info = py.detach(|| self.reader.info()).map_err(|error| to_py(py, error))?;
        info_dict(py, &info)
    }

    /// The run's attempts, oldest first.
    fn attempts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let attempts = py.detach(|| self.reader.attempts()).map_err(|error| to_py(py, error))?;
        let list = PyList::empty(py);
        for attempt in &attempts {
            list.append(attempt_dict(py, attempt)?)?;
        }
        Ok(list)
    }

    /// The run's archived branches.
    fn branches<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let branches = py.detach(|| self.reader.branches()).map_err(|error| to_py(py, error))?;
        let list = PyList::empty(py);
        for branch in &branches {
            list.append(branch_dict(py, branch)?)?;
        }
        Ok(list)
    }

    /// The run's recorded checkpoints, in the order recorded (archived ones included).
    fn checkpoints<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let checkpoints = py.detach(|| self.reader.checkpoints()).map_err(|error| to_py(py, error))?;
        let list = PyList::empty(py);
        for checkpoint in &checkpoints {
            list.append(checkpoint_dict(py, checkpoint)?)?;
        }
        Ok(list)
    }

    /// The names of the run's metrics.
    fn metrics(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        py.detach(|| self.reader.metrics()).map_err(|error| to_py(py, error))
    }

    /// Every system metric's samples, read in one snapshot: `(name, times, values)` with the
    /// times as seconds since the Unix epoch (f64) and the values (f64), native-endian.
    fn system<'py>(&self, py: Python<'py>) -> PyResult<Vec<SystemColumns<Bound<'py, PyByteArray>>>> {
        let read = py
            .detach(|| -> runstore::Result<Vec<SystemColumns<Vec<u8>>>> {
                let snapshot = self.reader.snapshot()?;
                let mut all = Vec::new();
                for name in snapshot.metrics()? {
                    if !name.starts_with(runstore::SYSTEM_PREFIX) {
                        continue;
                    }
                    let samples = snapshot.system(&name, ..)?;
                    let (mut times, mut values) =
                        (Vec::with_capacity(samples.len() * 8), Vec::with_capacity(samples.len() * 8));
                    for (time, value) in samples {
                        times.extend_from_slice(&seconds(time).to_ne_bytes());
                        values.extend_from_slice(&value.to_ne_bytes());
                    }
                    all.push((name, times, values));
                }
                Ok(all)
            })
            .map_err(|error| to_py(py, error))?;
        Ok(read
            .into_iter()
            .map(|(name, times, values)| (name, bytearray(py, &times), bytearray(py, &values)))
            .collect())
    }

    /// One metric's points as two bytearrays: steps (u64) and values (f64), native-endian.
    #[pyo3(signature = (metric, branch=None, min_step=0, max_step=u64::MAX))]
    fn series<'py>(
        &self,
        py: Python<'py>,
        metric: &str,
        branch: Option<u32>,
        min_step: u64,
        max_step: u64,
    ) -> PyResult<(Bound<'py, PyByteArray>, Bound<'py, PyByteArray>)> {
        let (steps, values) = py
            .detach(|| -> runstore::Result<(Vec<u8>, Vec<u8>)> {
                let series = match branch {
                    None => self.reader.series(metric, min_step..=max_step)?,
                    Some(branch) => self.reader.branch_series(branch, metric, min_step..=max_step)?,
                };
                // Sized for every row of the run: the vectors never grow point by point.
                let rows = usize::try_from(self.reader.info()?.rows).unwrap_or(0);
                let (mut steps, mut values) = (Vec::with_capacity(rows * 8), Vec::with_capacity(rows * 8));
                for point in series {
                    let (step, value) = point?;
                    steps.extend_from_slice(&step.to_ne_bytes());
                    values.extend_from_slice(&value.to_ne_bytes());
                }
                Ok((steps, values))
            })
            .map_err(|error| to_py(py, error))?;
        Ok((bytearray(py, &steps), bytearray(py, &values)))
    }

    /// The history as columns: the steps (u64 bytes) and, per metric, its values (f64 bytes)
    /// with NaN where a row lacks it, and its presence (a byte per row: 1 where the row has it). `keys` selects metrics (all, in first-logged order, when
    /// `None`).
    #[pyo3(signature = (keys=None, branch=None, min_step=0, max_step=u64::MAX))]
    fn columns<'py>(
        &self,
        py: Python<'py>,
        keys: Option<Vec<String>>,
        branch: Option<u32>,
        min_step: u64,
        max_step: u64,
    ) -> PyResult<(Bound<'py, PyByteArray>, Bound<'py, PyList>)> {
        let (steps, names, columns, present) = py
            .detach(|| -> runstore::Result<TableBytes> {
                let mut history = self.history(branch, min_step, max_step)?;
                let mut table = Table::new(keys);
                while let Some(row) = history.next_row()? {
                    table.push(&row);
                }
                Ok(table.finish())
            })
            .map_err(|error| to_py(py, error))?;
        let list = PyList::empty(py);
        for ((name, column), present) in names.iter().zip(&columns).zip(&present) {
            list.append((name, bytearray(py, column), bytearray(py, present)))?;
        }
        Ok((bytearray(py, &steps), list))
    }

    /// A stream over the rows, in chunks (see `NativeScan.next_chunk`).
    #[pyo3(signature = (keys=None, branch=None, min_step=0, max_step=u64::MAX))]
    fn scan(
        &self,
        py: Python<'_>,
        keys: Option<Vec<String>>,
        branch: Option<u32>,
        min_step: u64,
        max_step: u64,
    ) -> PyResult<NativeScan> {
        let history = py.detach(|| self.history(branch, min_step, max_step)).map_err(|error| to_py(py, error))?;
        Ok(NativeScan { state: Mutex::new(ScanState { history, keys, wanted: Vec::new(), names: Vec::new() }) })
    }
}

/// A system metric's name, its sample times and its values, as bytes.
type SystemColumns<Bytes> = (String, Bytes, Bytes);

/// The steps, the names, the values and the presence (1 where a row has the metric) of
/// [`NativeReader::columns`], as bytes.
type TableBytes = (Vec<u8>, Vec<String>, Vec<Vec<u8>>, Vec<Vec<u8>>);

/// What a metric id is to a [`Table`].
#[derive(Clone, Copy)]
enum Slot {
    /// Not met yet.
    Unseen,
    /// Not among the requested keys.
    Skipped,
    /// Its column.
    Column(usize),
}

/// Builds the columns of [`NativeReader::columns`] one row at a time.
struct Table {
    /// The requested names, or `None` for all.
    keys: Option<Vec<String>>,
    /// Metric id to column, grown as ids appear.
    by_id: Vec<Slot>,
    names: Vec<String>,
    values: Vec<Vec<f64>>,
    /// Whether each row has the metric: a logged NaN is a value, not a gap.
    present: Vec<Vec<u8>>,
    steps: Vec<u64>,
}

impl Table {
    fn new(keys: Option<Vec<String>>) -> Table {
        let (names, values, present) = match &keys {
            Some(keys) => (keys.clone(), vec![Vec::new(); keys.len()], vec![Vec::new(); keys.len()]),
            None => (Vec::new(), Vec::new(), Vec::new()),
        };
        Table { keys, by_id: Vec::new(), names, values, present, steps: Vec::new() }
    }

    fn push(&mut self, row: &runstore::RowRef<'_>) {
        let rows = self.steps.len();
        self.steps.push(row.step());
        for column in &mut self.values {
            column.push(f64::NAN);
        }
        for column in &mut self.present {
            column.push(0);
        }
        for ((id, value), (name, _)) in row.points().iter().zip(row.iter()) {
            let id = *id as usize;
            if id >= self.by_id.len() {
                self.by_id.resize(id + 1, Slot::Unseen);
            }
            if let Slot::Unseen = self.by_id[id] {
                self.by_id[id] = match &self.keys {
                    Some(keys) => keys.iter().position(|key| key == name).map_or(Slot::Skipped, Slot::Column),
                    None => {
                        // A metric first met at this row: NaN in every earlier row.
                        self.names.push(name.to_string());
                        self.values.push(vec![f64::NAN; rows + 1]);
                        self.present.push(vec![0; rows + 1]);
                        Slot::Column(self.values.len() - 1)
                    }
                };
            }
            if let Slot::Column(column) = self.by_id[id] {
                self.values[column][rows] = *value;
                self.present[column][rows] = 1;
            }
        }
    }

    fn finish(self) -> TableBytes {
        let steps = self.steps.iter().flat_map(|step| step.to_ne_bytes()).collect();
        let values =
            self.values.iter().map(|column| column.iter().flat_map(|value| value.to_ne_bytes()).collect()).collect();
        (steps, self.names, values, self.present)
    }
}

/// A streaming read of a run's rows.
#[pyclass(module = "runstore._runstore", frozen)]
pub(crate) struct NativeScan {
    state: Mutex<ScanState>,
}

struct ScanState {
    history: History,
    keys: Option<Vec<String>>,
    /// Per metric id: whether it is wanted (`None`: not yet looked at).
    wanted: Vec<Option<bool>>,
    /// Per metric id: its name as a Python str, made once.
    names: Vec<Option<Py<PyString>>>,
}

#[pymethods]
impl NativeScan {
    /// Up to `rows` rows as `(step, {name: value})` pairs; an empty list at the end.
    fn next_chunk<'py>(&self, py: Python<'py>, rows: usize) -> PyResult<Bound<'py, PyList>> {
        let mut state = crate::locking::lock(py, &self.state);
        let ScanState { history, keys, wanted, names } = &mut *state;
        // Read without the GIL: steps, and per row its points and the names of new metric ids.
        let (steps, ends, points, new_names) = py
            .detach(|| -> runstore::Result<_> {
                let mut steps = Vec::with_capacity(rows);
                let mut ends = Vec::with_capacity(rows);
                let mut points: Vec<(u32, f64)> = Vec::new();
                let mut new_names: HashMap<u32, String> = HashMap::new();
                while steps.len() < rows {
                    let Some(row) = history.next_row()? else { break };
                    steps.push(row.step());
                    for (&(id, value), (name, _)) in row.points().iter().zip(row.iter()) {
                        let index = id as usize;
                        if index >= wanted.len() {
                            wanted.resize(index + 1, None);
                        }
                        let keep = *wanted[index]
                            .get_or_insert_with(|| keys.as_ref().is_none_or(|keys| keys.iter().any(|key| key == name)));
                        if keep {
                            if names.get(index).is_none_or(Option::is_none) {
                                new_names.entry(id).or_insert_with(|| name.to_string());
                            }
                            points.push((id, value));
                        }
                    }
                    ends.push(points.len());
                }
                Ok((steps, ends, points, new_names))
            })
            .map_err(|error| to_py(py, error))?;
        for (id, name) in new_names {
            let index = id as usize;
            if index >= names.len() {
                names.resize_with(index + 1, || None);
            }
            names[index] = Some(PyString::new(py, &name).unbind());
        }
        let list = PyList::empty(py);
        let mut start = 0;
        for (step, end) in steps.into_iter().zip(ends) {
            let row = PyDict::new(py);
            for &(id, value) in &points[start..end] {
                if let Some(Some(name)) = names.get(id as usize) {
                    row.set_item(name.bind(py), value)?;
                }
            }
            start = end;
            list.append((step, row))?;
        }
        Ok(list)
    }
}
