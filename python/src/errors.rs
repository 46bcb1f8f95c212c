//! runstore's errors as the Python exception classes of `runstore.errors`, one per variant of
//! the Rust `Error`, carrying the variant's fields as attributes.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Raises `runstore.errors.<class>(message)` with `fields` set as attributes.
pub(crate) fn raise(py: Python<'_>, class: &str, message: &str, fields: &Bound<'_, PyDict>) -> PyErr {
    let built = (|| -> PyResult<PyErr> {
        let class = py.import("runstore.errors")?.getattr(class)?;
        let instance = class.call1((message,))?;
        for (name, value) in fields.iter() {
            instance.setattr(name.cast::<pyo3::types::PyString>()?, value)?;
        }
        Ok(PyErr::from_value(instance))
    })();
    // Only a broken installation lacks runstore.errors; say what failed rather than hide it.
    built.unwrap_or_else(|error| PyRuntimeError::new_err(format!("{message} (and runstore.errors failed: {error})")))
}

/// A Python-only error of the API (a value that is not a number, a finished run, ...).
pub(crate) fn api_error(py: Python<'_>, class: &str, message: impl Into<String>) -> PyErr {
    raise(py, class, &message.into(), &PyDict::new(py))
}

/// The library's error as its Python class.
#[allow(clippy::too_many_lines)] // one short arm per variant of the library's `Error`
pub(crate) fn to_py(py: Python<'_>, error: runstore::Error) -> PyErr {
    use runstore::Error as E;
    let fields = PyDict::new(py);
    let message = error.to_string();
    let class = match error {
        E::InvalidRunId { id, reason } => {
            set_str(&fields, "id", &id);
            set_str(&fields, "reason", reason);
            "InvalidRunId"
        }
        E::InvalidMetricName { name, reason } => {
            set_str(&fields, "name", &name);
            set_str(&fields, "reason", reason);
            "InvalidMetricName"
        }
        E::InvalidConfig { reason } => {
            set_str(&fields, "reason", &reason);
            "InvalidConfig"
        }
        E::InvalidEnvironment { variable, value, reason } => {
            set_str(&fields, "variable", variable);
            set_str(&fields, "value", &value);
            set_str(&fields, "reason", reason);
            "InvalidEnvironment"
        }
        E::RunIdRequired => "RunIdRequired",
        E::RunNotFound { id } => {
            set_str(&fields, "id", &id);
            "RunNotFound"
        }
        E::RunExists { id } => {
            set_str(&fields, "id", &id);
            "RunExists"
        }
        E::RunLocked { id, holder } => {
            set_str(&fields, "id", &id);
            set_int(&fields, "pid", u64::from(holder.pid));
            set_str(&fields, "host", &holder.host);
            let since = holder.since.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |since| since.as_secs_f64());
            set_float(&fields, "since", since);
            "RunLocked"
        }
        E::StepRegression { id, requested, next, last } => {
            set_str(&fields, "id", &id);
            set_int(&fields, "requested", requested);
            set_int(&fields, "next", next);
            match last {
                Some(last) => set_int(&fields, "last", last),
                None => set_none(&fields, "last"),
            }
            "StepRegression"
        }
        E::StepOutOfRange { step } => {
            set_int(&fields, "step", step);
            "StepOutOfRange"
        }
        E::BeyondHistory { id, requested, last } => {
            set_str(&fields, "id", &id);
            set_int(&fields, "requested", requested);
            match last {
                Some(last) => set_int(&fields, "last", last),
                None => set_none(&fields, "last"),
            }
            "BeyondHistory"
        }
        E::RewindBeforeFork { id, requested, parent, fork_step } => {
            set_str(&fields, "id", &id);
            set_int(&fields, "requested", requested);
            set_str(&fields, "parent", &parent);
            set_int(&fields, "fork_step", fork_step);
            "RewindBeforeFork"
        }
        E::ForkedProcess { id, owner, pid } => {
            set_str(&fields, "id", &id);
            set_int(&fields, "owner", u64::from(owner));
            set_int(&fields, "pid", u64::from(pid));
            "ForkedProcess"
        }
        E::CheckpointBeforeFork { id, step, parent, fork_step } => {
            set_str(&fields, "id", &id);
            set_int(&fields, "step", step);
            set_str(&fields, "parent", &parent);
            set_int(&fields, "fork_step", fork_step);
            "CheckpointBeforeFork"
        }
        E::BranchNotFound { id, branch } => {
            set_str(&fields, "id", &id);
            set_int(&fields, "branch", u64::from(branch));
            "BranchNotFound"
        }
        E::InvalidQueueName { name, reason } => {
            set_str(&fields, "name", &name);
            set_str(&fields, "reason", reason);
            "InvalidQueueName"
        }
        E::QueueNotFound { name } => {
            set_str(&fields, "name", &name);
            "QueueNotFound"
        }
        E::QueueItemNotFound { queue, item } => {
            set_str(&fields, "queue", &queue);
            set_str(&fields, "item", &item);
            "QueueItemNotFound"
        }
        E::QueueItemExists { queue, item } => {
            set_str(&fields, "queue", &queue);
            set_str(&fields, "item", &item);
            "QueueItemExists"
        }
        E::QueueItemClaimed { queue, item, claimant } => {
            set_str(&fields, "queue", &queue);
            set_str(&fields, "item", &item);
            set_int(&fields, "pid", u64::from(claimant.pid));
            set_str(&fields, "host", &claimant.host);
            "QueueItemClaimed"
        }
        E::InvalidSweepSpace { path, reason } => {
            set_str(&fields, "path", &path.to_string_lossy());
            set_str(&fields, "reason", &reason);
            "InvalidSweepSpace"
        }
        E::UnsupportedFormat { path, found, supported } => {
            set_str(&fields, "path", &path.to_string_lossy());
            set_int(&fields, "found", u64::from(found));
            set_int(&fields, "supported", u64::from(supported));
            "UnsupportedFormat"
        }
        E::Corrupt { path, detail } => {
            set_str(&fields, "path", &path.to_string_lossy());
            set_str(&fields, "detail", &detail);
            "Corrupt"
        }
        E::Io { path, source } => {
            set_str(&fields, "path", &path.to_string_lossy());
            if let Some(code) = source.raw_os_error() {
                set_int(&fields, "errno", u64::try_from(code).unwrap_or(0));
            }
            "Io"
        }
        E::Storage { path, .. } => {
            set_str(&fields, "path", &path.to_string_lossy());
            "Storage"
        }
        // A variant added to the library later: the base class, with its message.
        _ => "Error",
    };
    raise(py, class, &message, &fields)
}

fn set_str(fields: &Bound<'_, PyDict>, name: &str, value: &str) {
    // Setting a str key in a fresh dict does not fail.
    let _ = fields.set_item(name, value);
}

fn set_int(fields: &Bound<'_, PyDict>, name: &str, value: u64) {
    let _ = fields.set_item(name, value);
}

fn set_float(fields: &Bound<'_, PyDict>, name: &str, value: f64) {
    let _ = fields.set_item(name, value);
}

fn set_none(fields: &Bound<'_, PyDict>, name: &str) {
    let _ = fields.set_item(name, fields.py().None());
}
