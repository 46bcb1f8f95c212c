//! Run ids and metric names: validation and generation.
//!
//! A run id names a directory, so it is checked before any path is built from it.

use std::hash::{BuildHasher, Hasher};

use crate::error::{Error, Result};

/// The longest run id, in bytes.
pub(crate) const MAX_ID_LEN: usize = 64;

/// The longest metric name, in bytes.
pub(crate) const MAX_METRIC_LEN: usize = 256;

/// Checks that `id` can name a run: 1 to 64 characters of `[A-Za-z0-9_.-]`, not starting with
/// `.` (so never `.` or `..`).
///
/// # Errors
///
/// [`crate::Error::InvalidRunId`] saying which rule `id` breaks.
///
/// ```
/// assert!(runstore::validate_run_id("resnet-7").is_ok());
/// assert!(runstore::validate_run_id("../etc").is_err());
/// ```
pub fn validate_run_id(id: &str) -> Result<()> {
    let reason = if id.is_empty() {
        Some("it is empty")
    } else if id.len() > MAX_ID_LEN {
        Some("it is longer than 64 characters")
    } else if id.starts_with('.') {
        Some("it starts with `.`")
    } else if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
        Some("only ASCII letters, digits, `_`, `.` and `-` are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidRunId { id: id.to_string(), reason }),
        None => Ok(()),
    }
}

/// Checks that `name` can name a metric (or summary value): 1 to 256 bytes, no control
/// characters.
///
/// # Errors
///
/// [`crate::Error::InvalidMetricName`] saying which rule `name` breaks.
///
/// ```
/// assert!(runstore::validate_metric_name("eval/acc").is_ok());
/// assert!(runstore::validate_metric_name("").is_err());
/// ```
pub fn validate_metric_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_METRIC_LEN {
        Some("it is longer than 256 bytes")
    } else if name.chars().any(char::is_control) {
        Some("it contains control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidMetricName { name: name.chars().take(80).collect(), reason }),
        None => Ok(()),
    }
}

/// A fresh candidate id: 8 lowercase base-36 characters (41 bits).
///
/// The caller claims it by creating the run directory, which fails if it exists, and draws
/// again on a collision.
pub(crate) fn generate_run_id() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    hasher.write_u32(std::process::id());
    let mut bits = hasher.finish();
    let alphabet = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut id = String::with_capacity(8);
    // A letter first, so that an id never looks like a step number.
    id.push(char::from(alphabet[10 + usize::try_from(bits % 26).unwrap_or(0)]));
    bits /= 26;
    for _ in 1..8 {
        id.push(char::from(alphabet[usize::try_from(bits % 36).unwrap_or(0)]));
        bits /= 36;
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_follow_the_documented_rules() {
        for good in ["a", "run-1", "A_b.c", "x".repeat(64).as_str(), "1000", "a..b"] {
            assert!(validate_run_id(good).is_ok(), "{good:?}");
        }
        for bad in ["", ".", "..", ".hidden", "../x", "a/b", "a\\b", "a\0b", "a\nb", "ä", "а", "a b", &"x".repeat(65)]
        {
            assert!(matches!(validate_run_id(bad), Err(Error::InvalidRunId { .. })), "{bad:?}");
        }
    }

    #[test]
    fn metric_names_follow_the_documented_rules() {
        for good in ["loss", "eval/acc", "ü ber", &"m".repeat(256)] {
            assert!(validate_metric_name(good).is_ok(), "{good:?}");
        }
        for bad in ["", "a\nb", "\u{7f}", &"m".repeat(257)] {
            assert!(validate_metric_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn generated_ids_are_valid_and_differ() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| generate_run_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            validate_run_id(id).unwrap();
            assert_eq!(id.len(), 8);
            assert!(id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        }
    }
}
