//! `NativeRun`: a live run behind W&B's step and commit rules. The GIL is held only to read
//! arguments; the library's calls (buffering, flushing, finishing) run without it.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use std::ffi::CString;

use pyo3::exceptions::PyUserWarning;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use runstore::{Durability, Resume, Run, RunOptions, Store};

use crate::errors::{api_error, to_py};
use crate::values::{RowReader, number, refused};

/// The summary key counting the rows dropped by `on_step_regression="drop"`.
const DROPPED_KEY: &str = "runstore/dropped_rows";

/// A live run. Python's `runstore.Run` wraps it.
#[pyclass(module = "runstore._runstore", frozen)]
pub(crate) struct NativeRun {
    inner: Mutex<Inner>,
    /// W&B's handling of a step before the current one: drop the row with a warning.
    drop_regressions: bool,
    id: String,
    resumed: bool,
    attempt: u32,
    warnings: Vec<String>,
    /// The checkpoint `init` resumed from (`resume_from="checkpoint"`), if any.
    resumed_checkpoint: Option<runstore::Checkpoint>,
}

struct Inner {
    /// `None` once finished.
    run: Option<Run>,
    /// Rows dropped for a step before the current one (`on_step_regression="drop"`).
    dropped: u64,
    /// W&B's current step: where a `log` without a step goes.
    step: u64,
    reader: RowReader,
}

impl NativeRun {
    fn lock(&self, py: Python<'_>) -> MutexGuard<'_, Inner> {
        crate::locking::lock(py, &self.inner)
    }
}

fn finished(py: Python<'_>, id: &str) -> PyErr {
    api_error(py, "RunFinished", format!("run {id:?} is finished: start or resume it again with runstore.init"))
}

#[pymethods]
impl NativeRun {
    /// Logs `data` with W&B's step and commit rules.
    #[pyo3(signature = (data, step=None, commit=None))]
    fn log(&self, py: Python<'_>, data: &Bound<'_, PyAny>, step: Option<i64>, commit: Option<bool>) -> PyResult<()> {
        let Ok(data) = data.cast::<PyDict>() else {
            return Err(api_error(
                py,
                "InvalidValue",
                format!("log takes a dict of metric names to numbers, got a {}", data.get_type().name()?),
            ));
        };
        let mut guard = self.lock(py);
        let Inner { run, step: current, reader, dropped } = &mut *guard;
        let Some(run) = run.as_mut() else { return Err(finished(py, &self.id)) };
        let (at, commit) = match step {
            None => (*current, commit.unwrap_or(true)),
            Some(step) => {
                let Ok(step) = u64::try_from(step) else {
                    return Err(api_error(py, "InvalidStep", format!("step {step} is negative: steps start at 0")));
                };
                if step < *current {
                    if self.drop_regressions {
                        *dropped += 1;
                        let count = *dropped;
                        #[allow(clippy::cast_precision_loss)] // a count, far below 2^53
                        let count = count as f64;
                        py.detach(|| run.set_summary(DROPPED_KEY, count)).map_err(|error| to_py(py, error))?;
                        let message =
                            format!("runstore: dropped a row logged at step {step}, before the current step {current}");
                        let message = CString::new(message).unwrap_or_default();
                        return PyErr::warn(py, &py.get_type::<PyUserWarning>(), &message, 2);
                    }
                    return Err(to_py(
                        py,
                        runstore::Error::StepRegression {
                            id: self.id.clone(),
                            requested: step,
                            next: *current,
                            last: run.last_step(),
                        },
                    ));
                }
                (step, commit.unwrap_or(false))
            }
        };
        reader.read(data)?;
        if !reader.is_empty() {
            let reader = &*reader;
            py.detach(|| run.log_at(at, reader.points())).map_err(|error| to_py(py, error))?;
        }
        *current = if commit { at.saturating_add(1) } else { at };
        Ok(())
    }

    /// Sets a summary value.
    fn set_summary(&self, py: Python<'_>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let Some(value) = number(value) else { return Err(refused(name, value)) };
        let mut guard = self.lock(py);
        let Some(run) = guard.run.as_mut() else { return Err(finished(py, &self.id)) };
        py.detach(|| run.set_summary(name, value)).map_err(|error| to_py(py, error))
    }

    /// Merges a config (JSON object text) into the stored config.
    fn update_config(&self, py: Python<'_>, config_json: &str) -> PyResult<()> {
        let value: serde_json::Value = serde_json::from_str(config_json)
            .map_err(|error| to_py(py, runstore::Error::InvalidConfig { reason: error.to_string() }))?;
        let mut guard = self.lock(py);
        let Some(run) = guard.run.as_mut() else { return Err(finished(py, &self.id)) };
        py.detach(|| run.update_config(value)).map_err(|error| to_py(py, error))
    }

    /// Commits every buffered row now.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let mut guard = self.lock(py);
        let Some(run) = guard.run.as_mut() else { return Err(finished(py, &self.id)) };
        py.detach(|| run.flush()).map_err(|error| to_py(py, error))
    }

    /// Flushes and marks the run preempting.
    fn mark_preempting(&self, py: Python<'_>) -> PyResult<()> {
        let mut guard = self.lock(py);
        let Some(run) = guard.run.as_mut() else { return Err(finished(py, &self.id)) };
        py.detach(|| run.mark_preempting()).map_err(|error| to_py(py, error))
    }

    /// Rewinds to `step`; returns the archived branch as a dict, or `None`.
    fn rewind<'py>(&self, py: Python<'py>, step: u64) -> PyResult<Option<Bound<'py, PyDict>>> {
        let mut guard = self.lock(py);
        let Inner { run, step: current, .. } = &mut *guard;
        let Some(run) = run.as_mut() else { return Err(finished(py, &self.id)) };
        let branch = py.detach(|| run.rewind(step)).map_err(|error| to_py(py, error))?;
        *current = run.step();
        branch.map(|branch| crate::reader::branch_dict(py, &branch)).transpose()
    }

    /// Records that the state after `step` (default: the last logged step) was saved at
    /// `path`; commits it with every buffered row and returns the record as a dict.
    #[pyo3(signature = (path, step=None))]
    fn checkpoint<'py>(&self, py: Python<'py>, path: PathBuf, step: Option<i64>) -> PyResult<Bound<'py, PyDict>> {
        let step = step
            .map(|step| {
                u64::try_from(step)
                    .map_err(|_| api_error(py, "InvalidStep", format!("step {step} is negative: steps start at 0")))
            })
            .transpose()?;
        let mut guard = self.lock(py);
        let Some(run) = guard.run.as_mut() else { return Err(finished(py, &self.id)) };
        let checkpoint = py
            .detach(move || match step {
                Some(step) => run.checkpoint_at(step, path),
                None => run.checkpoint(path),
            })
            .map_err(|error| to_py(py, error))?;
        crate::reader::checkpoint_dict(py, &checkpoint)
    }

    /// The checkpoint `init` resumed from, as a dict, or `None`.
    #[getter]
    fn resumed_checkpoint<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.resumed_checkpoint.as_ref().map(|checkpoint| crate::reader::checkpoint_dict(py, checkpoint)).transpose()
    }

    /// Ends the attempt with `exit_code`.
    fn finish(&self, py: Python<'_>, exit_code: i32) -> PyResult<()> {
        let mut guard = self.lock(py);
        let Some(run) = guard.run.take() else { return Err(finished(py, &self.id)) };
        py.detach(|| run.finish(exit_code)).map_err(|error| to_py(py, error))
    }

    /// The run id.
    #[getter]
    fn id(&self) -> &str {
        &self.id
    }

    /// W&B's current step.
    #[getter]
    fn step(&self, py: Python<'_>) -> u64 {
        self.lock(py).step
    }

    /// The last logged step, if any.
    #[getter]
    fn last_step(&self, py: Python<'_>) -> Option<u64> {
        self.lock(py).run.as_ref().and_then(Run::last_step)
    }

    /// Whether `init` resumed an existing run.
    #[getter]
    fn resumed(&self) -> bool {
        self.resumed
    }

    /// This attempt's number.
    #[getter]
    fn attempt(&self) -> u32 {
        self.attempt
    }

    /// What `init` decided that the user may not expect.
    #[getter]
    fn warnings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, &self.warnings)
    }

    /// Rows dropped by `on_step_regression="drop"` in this attempt.
    #[getter]
    fn dropped_rows(&self, py: Python<'_>) -> u64 {
        self.lock(py).dropped
    }

    /// Whether `finish` was called.
    #[getter]
    fn finished(&self, py: Python<'_>) -> bool {
        self.lock(py).run.is_none()
    }
}

/// Starts or resumes a run in the store at `dir`. Arguments are validated by the Python layer;
/// the library validates ids, policies and steps.
#[pyfunction]
#[pyo3(signature = (dir, *, id=None, resume=None, project=None, name=None, notes=None, tags=Vec::new(),
    config_json=None, resume_from=None, resume_from_checkpoint=false, fork=None, working_dir=None, flush_rows=None, flush_seconds=None,
    every_log=false, drop_regressions=false, system_metrics=None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn init(
    py: Python<'_>,
    dir: PathBuf,
    id: Option<String>,
    resume: Option<String>,
    project: Option<String>,
    name: Option<String>,
    notes: Option<String>,
    tags: Vec<String>,
    config_json: Option<String>,
    resume_from: Option<u64>,
    resume_from_checkpoint: bool,
    fork: Option<(String, u64)>,
    working_dir: Option<PathBuf>,
    flush_rows: Option<usize>,
    flush_seconds: Option<f64>,
    every_log: bool,
    drop_regressions: bool,
    system_metrics: Option<f64>,
) -> PyResult<NativeRun> {
    let mut options = RunOptions::new().tags(tags);
    if let Some(id) = id {
        options = options.id(id);
    }
    if let Some(resume) = resume {
        let policy: Resume =
            resume.parse().map_err(|error: runstore::ParseError| api_error(py, "InvalidResume", error.to_string()))?;
        options = options.resume(policy);
    }
    if let Some(project) = project {
        options = options.project(project);
    }
    if let Some(name) = name {
        options = options.name(name);
    }
    if let Some(notes) = notes {
        options = options.notes(notes);
    }
    if let Some(config) = config_json {
        let value: serde_json::Value = serde_json::from_str(&config)
            .map_err(|error| to_py(py, runstore::Error::InvalidConfig { reason: error.to_string() }))?;
        options = options.config(value);
    }
    if let Some(step) = resume_from {
        options = options.resume_from(step);
    }
    if resume_from_checkpoint {
        options = options.resume_from_checkpoint();
    }
    if let Some((source, at)) = fork {
        options = options.fork_of(source, at);
    }
    if let Some(dir) = working_dir {
        options = options.working_dir(dir);
    }
    if flush_rows.is_some() || flush_seconds.is_some() {
        let interval = Duration::try_from_secs_f64(flush_seconds.unwrap_or(1.0)).unwrap_or(Duration::from_secs(1));
        options = options.flush_every(flush_rows.unwrap_or(65_536), interval);
    }
    if every_log {
        options = options.durability(Durability::EveryLog);
    }
    // Seconds between samples, 0 for none; unset leaves it to RUNSTORE_SYSTEM_METRICS. The
    // Python layer has checked the value.
    if let Some(seconds) = system_metrics {
        options = options.system_metrics(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::ZERO));
    }
    let run =
        py.detach(move || Store::open(dir).and_then(|store| store.init(options))).map_err(|error| to_py(py, error))?;
    Ok(NativeRun {
        id: run.id().to_string(),
        resumed: run.resumed(),
        attempt: run.attempt(),
        warnings: run.warnings().to_vec(),
        resumed_checkpoint: run.resumed_checkpoint().cloned(),
        drop_regressions,
        inner: Mutex::new(Inner { step: run.step(), run: Some(run), reader: RowReader::default(), dropped: 0 }),
    })
}
