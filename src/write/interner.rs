//! Metric names to dense ids, fast on the hot path.
//!
//! Training loops log the same keys in the same order on every step, so the id of the key at
//! position `i` is first guessed from the previous row and checked with one string compare;
//! only a miss hashes the name.

// The hot loops of the codec and the log path inline their helpers: measured with callgrind,
// the compiler left them out of line otherwise.
#![allow(clippy::inline_always)]

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::error::Result;
use crate::id::validate_metric_name;

/// The `FxHash` function of rustc: fast on short keys; collisions cost speed only.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
            self.add(word);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }

    #[inline]
    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

#[derive(Default)]
pub(crate) struct Interner {
    ids: HashMap<Box<str>, u32, BuildHasherDefault<FxHasher>>,
    names: Vec<Box<str>>,
    /// The ids of the previous row's keys, by position.
    recent: Vec<u32>,
    /// Names interned since [`Interner::mark`], which [`Interner::rollback`] forgets.
    mark: usize,
}

impl Interner {
    pub(crate) fn with_names(names: Vec<String>) -> Self {
        let mut interner = Interner::default();
        for name in names {
            interner.insert(name.into_boxed_str());
        }
        interner.mark = interner.names.len();
        interner
    }

    fn insert(&mut self, name: Box<str>) -> u32 {
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.ids.insert(name.clone(), id);
        self.names.push(name);
        id
    }

    /// The id of `name` as the `position`-th key of a row, interning it if new (and valid).
    #[inline]
    pub(crate) fn id(&mut self, name: &str, position: usize) -> Result<u32> {
        if let Some(&id) = self.recent.get(position)
            && self.names.get(id as usize).is_some_and(|known| same_name(known, name))
        {
            return Ok(id);
        }
        check_kind(name, false)?;
        let id = if let Some(&id) = self.ids.get(name) {
            id
        } else {
            validate_metric_name(name)?;
            self.insert(name.into())
        };
        if position < self.recent.len() {
            self.recent[position] = id;
        } else if position == self.recent.len() {
            self.recent.push(id);
        }
        Ok(id)
    }

    /// The id of the time-indexed series `name` (which starts with `system/`), interning it
    /// if new (and valid).
    pub(crate) fn system_id(&mut self, name: &str) -> Result<u32> {
        check_kind(name, true)?;
        if let Some(&id) = self.ids.get(name) {
            return Ok(id);
        }
        validate_metric_name(name)?;
        Ok(self.insert(name.into()))
    }

    /// Starts a row: names interned from here on can be rolled back.
    pub(crate) fn mark(&mut self) {
        self.mark = self.names.len();
    }

    /// Forgets the names interned since [`Interner::mark`] (the row they came with was refused).
    pub(crate) fn rollback(&mut self) {
        for name in self.names.drain(self.mark..) {
            self.ids.remove(&name);
        }
        let known = self.names.len();
        self.recent.retain(|&id| (id as usize) < known);
    }

    /// The names of ids `first..`, in id order.
    pub(crate) fn names_from(&self, first: u32) -> &[Box<str>] {
        self.names.get(first as usize..).unwrap_or_default()
    }

    /// The names interned since [`Interner::mark`], to be stored with the row.
    pub(crate) fn added(&self) -> impl Iterator<Item = &str> {
        self.names[self.mark..].iter().map(|name| &**name)
    }
}

/// `a == b` for metric names, inlined: names are short, and the hot path compares one per
/// key of every row, where a call to `memcmp` costs more than the comparison.
#[inline(always)]
fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let len = a.len();
    if len != b.len() {
        return false;
    }
    // Two overlapping loads cover every byte of a name of 4 to 16 bytes.
    let word = |bytes: &[u8], at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
    let half = |bytes: &[u8], at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]));
    match len {
        8..=16 => word(a, 0) == word(b, 0) && word(a, len - 8) == word(b, len - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, len - 4) == half(b, len - 4),
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        _ => a == b,
    }
}

/// Names starting with this are time-indexed series (system metrics, see
/// [`crate::Run::log_system`]), never step metrics.
///
/// ```
/// assert!(runstore::validate_metric_name("system/cpu_percent").is_ok());
/// assert_eq!(runstore::SYSTEM_PREFIX, "system/");
/// ```
pub const SYSTEM_PREFIX: &str = "system/";

/// Refuses a step metric named like a system metric, and a system metric named otherwise.
fn check_kind(name: &str, system: bool) -> Result<()> {
    let reason = match (name.starts_with(SYSTEM_PREFIX), system) {
        (true, false) => "names starting with system/ are for system metrics (Run::log_system)",
        (false, true) => "a system metric's name starts with system/",
        _ => return Ok(()),
    };
    Err(crate::Error::InvalidMetricName { name: name.chars().take(80).collect(), reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_equal_exactly_when_their_bytes_do() {
        let names = ["", "a", "lr", "acc", "loss", "train", "grad_nor", "grad_norm", "layer012/grad_norm", "é", "ée"];
        for a in names {
            for b in names {
                assert_eq!(same_name(a, b), a == b, "{a:?} vs {b:?}");
            }
            for at in 0..a.len() {
                let mut changed = a.as_bytes().to_vec();
                changed[at] ^= 1;
                let changed = String::from_utf8_lossy(&changed).into_owned();
                assert_eq!(same_name(a, &changed), a == changed, "{a:?} vs {changed:?}");
            }
        }
    }

    #[test]
    fn ids_are_dense_stable_and_rolled_back_with_a_refused_row() {
        let mut interner = Interner::with_names(vec!["loss".into()]);
        interner.mark();
        assert_eq!(interner.id("loss", 0).unwrap(), 0);
        assert_eq!(interner.id("acc", 1).unwrap(), 1);
        assert_eq!(interner.added().collect::<Vec<_>>(), ["acc"]);
        interner.mark();
        assert_eq!(interner.id("lr", 0).unwrap(), 2);
        assert!(interner.id("", 1).is_err());
        interner.rollback();
        assert_eq!(interner.id("acc", 0).unwrap(), 1);
        assert_eq!(interner.id("lr", 1).unwrap(), 2);
    }
}
