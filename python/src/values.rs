//! Reading a `log` dict into `(name, value)` points: keys interned by object, values through
//! float fast paths, nested dicts flattened with `/`. Everything is read before anything is
//! written, so a bad key or value leaves the run untouched.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyString};

use crate::errors::api_error;

/// Most distinct key objects remembered; past it, keys are decoded on every call (still right).
const MAX_CACHED_KEYS: usize = 1 << 16;
/// Deepest nesting of dicts in one logged value (a dict that contains itself stops here).
const MAX_DEPTH: usize = 32;

/// Hashes an object address: addresses are distinct, so one multiply spreads them enough.
#[derive(Default, Clone, Copy)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_usize(&mut self, address: usize) {
        self.0 = (address as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Where a point's name is: a remembered key, or a name built for this call (nested keys).
#[derive(Clone, Copy)]
enum Name {
    Cached(u32),
    Built(u32),
}

/// Python `str` keys to their UTF-8 text, remembered by object: training loops log the same
/// key objects (literals are interned) on every step, and under the stable ABI of Python 3.9
/// decoding a `str` allocates.
#[derive(Default)]
struct Keys {
    by_address: HashMap<usize, u32, BuildHasherDefault<AddressHasher>>,
    /// Held so that a remembered address cannot be reused by another object.
    objects: Vec<Py<PyString>>,
    names: Vec<Box<str>>,
}

impl Keys {
    fn name(&mut self, key: &Bound<'_, PyString>, built: &mut Vec<String>) -> PyResult<Name> {
        let address = key.as_ptr() as usize;
        if let Some(&index) = self.by_address.get(&address) {
            return Ok(Name::Cached(index));
        }
        let text = key.to_cow()?;
        if self.names.len() >= MAX_CACHED_KEYS {
            built.push(text.into_owned());
            return Ok(Name::Built(index_of(built.len() - 1)));
        }
        let index = index_of(self.names.len());
        self.names.push(text.into());
        self.objects.push(key.clone().unbind());
        self.by_address.insert(address, index);
        Ok(Name::Cached(index))
    }
}

fn index_of(position: usize) -> u32 {
    // Both tables are bounded far below u32::MAX (MAX_CACHED_KEYS; one call's keys).
    u32::try_from(position).unwrap_or(u32::MAX)
}

/// The points of one `log` call, reused from call to call.
#[derive(Default)]
pub(crate) struct RowReader {
    keys: Keys,
    built: Vec<String>,
    points: Vec<(Name, f64)>,
}

impl RowReader {
    /// Reads `data` (a dict of names to numbers or nested dicts) into this reader's points.
    pub(crate) fn read(&mut self, data: &Bound<'_, PyDict>) -> PyResult<()> {
        self.built.clear();
        self.points.clear();
        for (key, value) in data.iter() {
            self.entry(&key, &value, None, 0)?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        prefix: Option<&str>,
        depth: usize,
    ) -> PyResult<()> {
        let py = key.py();
        let Ok(key) = key.cast::<PyString>() else {
            let kind = type_name(key);
            return Err(api_error(
                py,
                "InvalidKey",
                format!("metric names must be str, got a key of type {kind} ({}): use str(key)", repr(key)),
            ));
        };
        if let Ok(nested) = value.cast::<PyDict>() {
            if depth >= MAX_DEPTH {
                return Err(api_error(
                    py,
                    "InvalidValue",
                    format!("dicts nested deeper than {MAX_DEPTH} levels (does a dict contain itself?)"),
                ));
            }
            let name = joined(prefix, &key.to_cow()?);
            for (inner_key, inner_value) in nested.iter() {
                self.entry(&inner_key, &inner_value, Some(&name), depth + 1)?;
            }
            return Ok(());
        }
        let Some(number) = number(value) else {
            let name = joined(prefix, &key.to_cow()?);
            return Err(refused(&name, value));
        };
        let name = match prefix {
            None => self.keys.name(key, &mut self.built)?,
            Some(prefix) => {
                self.built.push(joined(Some(prefix), &key.to_cow()?));
                Name::Built(index_of(self.built.len() - 1))
            }
        };
        self.points.push((name, number));
        Ok(())
    }

    /// The points read by the last [`RowReader::read`].
    pub(crate) fn points(&self) -> impl Iterator<Item = (&str, f64)> {
        self.points.iter().map(|&(name, value)| {
            let text: &str = match name {
                Name::Cached(index) => &self.keys.names[index as usize],
                Name::Built(index) => &self.built[index as usize],
            };
            (text, value)
        })
    }

    /// Whether the last read found no point.
    pub(crate) fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

fn joined(prefix: Option<&str>, key: &str) -> String {
    match prefix {
        Some(prefix) => format!("{prefix}/{key}"),
        None => key.to_string(),
    }
}

/// The number a logged value stands for: Python and numpy numbers, 0-d arrays and tensors
/// (through `.item()`), anything else with `__float__` but text. `None` for the rest.
pub(crate) fn number(value: &Bound<'_, PyAny>) -> Option<f64> {
    if let Ok(float) = value.cast_exact::<PyFloat>() {
        return Some(float.value());
    }
    if let Ok(flag) = value.cast_exact::<PyBool>() {
        return Some(if flag.is_true() { 1.0 } else { 0.0 });
    }
    if let Ok(int) = value.cast_exact::<PyInt>() {
        if let Ok(int) = int.extract::<i64>() {
            // Beyond 2^53 an int rounds to the nearest float, as float(int) does in Python.
            #[allow(clippy::cast_precision_loss)]
            return Some(int as f64);
        }
        return int.extract::<f64>().ok();
    }
    if value.is_instance_of::<PyString>()
        || value.is_instance_of::<PyBytes>()
        || value.is_instance_of::<PyByteArray>()
        || value.is_none()
    {
        return None;
    }
    // numpy scalars and arrays, torch tensors: only a single number (ndim 0) is a value.
    if let Ok(ndim) = value.getattr("ndim") {
        if ndim.extract::<i64>().ok()? != 0 {
            return None;
        }
        if let Ok(item) = value.call_method0("item") {
            return number(&item);
        }
    }
    value.extract::<f64>().ok()
}

/// The error for a value that is not a number, saying what it is and what to do.
pub(crate) fn refused(name: &str, value: &Bound<'_, PyAny>) -> PyErr {
    let kind = type_name(value);
    let hint = match value.getattr("ndim").ok().and_then(|ndim| ndim.extract::<i64>().ok()) {
        Some(ndim) if ndim > 0 => " (an array with dimensions: log a single number, such as x.mean().item())",
        _ => " (runstore stores numbers: Python, numpy and torch numbers, 0-d arrays and tensors)",
    };
    api_error(
        value.py(),
        "InvalidValue",
        format!("the value of {name:?} is of type {kind} ({}): not a number{hint}", repr(value)),
    )
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value.get_type().name().map_or_else(|_| "object".to_string(), |name| name.to_string())
}

fn repr(value: &Bound<'_, PyAny>) -> String {
    let text = value.repr().map_or_else(|_| "<unprintable>".to_string(), |repr| repr.to_string());
    if text.chars().count() > 60 { format!("{}...", text.chars().take(60).collect::<String>()) } else { text }
}
