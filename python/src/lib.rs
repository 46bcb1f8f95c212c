//! `runstore._runstore`: the private extension module of the `runstore` Python package, a
//! thin layer over the runstore library. The public API is the Python package around it.

mod errors;
mod locking;
mod reader;
mod run;
mod values;

use pyo3::prelude::*;

/// The module: `init` and `NativeRun` for writing; `open_run`, `list_runs`, `NativeReader`
/// and `NativeScan` for reading.
#[pymodule]
fn _runstore(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(run::init, module)?)?;
    module.add_function(wrap_pyfunction!(reader::open_run, module)?)?;
    module.add_function(wrap_pyfunction!(reader::list_runs, module)?)?;
    module.add_class::<run::NativeRun>()?;
    module.add_class::<reader::NativeReader>()?;
    module.add_class::<reader::NativeScan>()?;
    Ok(())
}
