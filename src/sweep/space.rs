//! Sweeps: the configs of a search space, as a full grid or as seeded random draws.
//!
//! A space is a JSON object mapping each parameter name to a list of values (both modes) or,
//! for random draws only, a range:
//!
//! | spec | grid | random draw |
//! |---|---|---|
//! | `[v1, v2, ...]` | each value, in the order given | one value, uniformly |
//! | `{"min": a, "max": b}` | refused | a float, uniform in `[a, b)` |
//! | `{"min": a, "max": b, "int": true}` | refused | an integer, uniform in `[a, b]` |
//! | `{"log_min": a, "log_max": b}` | refused | a float, log-uniform in `[a, b)`, `0 < a < b` |
//!
//! The grid is the cartesian product with the parameters in name order (bytewise) and the
//! last name varying fastest, as scikit-learn's `ParameterGrid` does. Random draws come from
//! splitmix64 seeded with the seed; each config takes one 64-bit draw per parameter, in name
//! order, so the first K configs of a seed are the same whatever the count.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::options::json_kind;

/// The most configs one sweep may add.
///
/// ```
/// let space = runstore::SearchSpace::parse(r#"{"a": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}"#)?;
/// assert_eq!(space.grid()?.len(), 10);
/// let huge = format!("{{{}}}", (0..7).map(|i| format!("\"p{i}\": [1,2,3,4,5,6,7,8,9,10]")).collect::<Vec<_>>().join(","));
/// assert!(runstore::SearchSpace::parse(&huge)?.grid().is_err(), "10^7 configs > {}", runstore::MAX_SWEEP_ITEMS);
/// # Ok::<(), runstore::Error>(())
/// ```
pub const MAX_SWEEP_ITEMS: usize = 1_000_000;

/// What one parameter may take.
#[derive(Debug, Clone, PartialEq)]
enum Param {
    Values(Vec<Value>),
    Uniform { min: f64, max: f64 },
    Int { min: i64, max: i64 },
    LogUniform { min: f64, max: f64 },
}

/// A sweep's search space, read from a JSON file: see the module table for what each
/// parameter may be.
///
/// ```
/// use runstore::SearchSpace;
///
/// let space = SearchSpace::parse(r#"{"lr": [0.1, 0.01], "batch": [32, 64]}"#)?;
/// let configs = space.grid()?;
/// // Parameters in name order, the last varying fastest: batch, then lr.
/// let pairs: Vec<(u64, f64)> =
///     configs.iter().map(|c| (c["batch"].as_u64().unwrap(), c["lr"].as_f64().unwrap())).collect();
/// assert_eq!(pairs, [(32, 0.1), (32, 0.01), (64, 0.1), (64, 0.01)]);
///
/// let space = SearchSpace::parse(r#"{"lr": {"log_min": 1e-5, "log_max": 1e-1}, "layers": {"min": 2, "max": 8, "int": true}}"#)?;
/// let drawn = space.random(10, 7);
/// assert_eq!(drawn, space.random(10, 7)); // the same seed draws the same configs
/// assert!(drawn.iter().all(|c| (2..=8).contains(&c["layers"].as_i64().unwrap())));
/// # Ok::<(), runstore::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpace {
    path: PathBuf,
    params: Vec<(String, Param)>,
}

impl SearchSpace {
    /// Reads the space file at `path`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSweepSpace`] naming the file and the problem: unreadable, not JSON, not
    /// an object, or a parameter that is not a non-empty list or a valid range.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("space.json");
    /// std::fs::write(&path, r#"{"lr": [0.1, 0.01]}"#)?;
    /// assert_eq!(runstore::SearchSpace::read(&path)?.grid()?.len(), 2);
    ///
    /// std::fs::write(&path, r#"{"lr": []}"#)?;
    /// let err = runstore::SearchSpace::read(&path).unwrap_err();
    /// assert!(err.to_string().contains("space.json: parameter \"lr\" has no values"), "{err}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read(path: impl AsRef<Path>) -> Result<SearchSpace> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| invalid(path, format!("cannot read it: {error}")))?;
        SearchSpace::parse_at(&text, path)
    }

    /// Parses a space from JSON text; errors name it `(inline)`.
    ///
    /// # Errors
    ///
    /// As [`SearchSpace::read`].
    ///
    /// ```
    /// let err = runstore::SearchSpace::parse(r#"{"lr": {"min": 1, "max": 0}}"#).unwrap_err();
    /// assert!(err.to_string().contains("min must be below max"), "{err}");
    /// ```
    pub fn parse(text: &str) -> Result<SearchSpace> {
        SearchSpace::parse_at(text, Path::new("(inline)"))
    }

    fn parse_at(text: &str, path: &Path) -> Result<SearchSpace> {
        let value: Value =
            serde_json::from_str(text).map_err(|error| invalid(path, format!("it is not valid JSON: {error}")))?;
        let Value::Object(object) = value else {
            return Err(invalid(path, "expected a JSON object of parameter name to values, as {\"lr\": [0.1, 0.01]}"));
        };
        if object.is_empty() {
            return Err(invalid(path, "it has no parameters: give at least one, as {\"lr\": [0.1, 0.01]}"));
        }
        let mut params = Vec::with_capacity(object.len());
        for (name, spec) in object {
            let param = parse_param(&name, spec).map_err(|reason| invalid(path, reason))?;
            params.push((name, param));
        }
        params.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(SearchSpace { path: path.to_path_buf(), params })
    }

    /// Every combination of the parameters' values: the cartesian product, parameters in name
    /// order, the last varying fastest.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSweepSpace`] when a parameter is a range (a grid needs lists), or the
    /// grid has more than [`MAX_SWEEP_ITEMS`] configs.
    ///
    /// ```
    /// let space = runstore::SearchSpace::parse(r#"{"opt": ["sgd", "adam"], "lr": [0.1]}"#)?;
    /// let grid = space.grid()?;
    /// assert_eq!(grid[0]["opt"], "sgd");
    /// assert_eq!(grid[1]["opt"], "adam");
    /// # Ok::<(), runstore::Error>(())
    /// ```
    pub fn grid(&self) -> Result<Vec<Map<String, Value>>> {
        let mut lists = Vec::with_capacity(self.params.len());
        let mut total: usize = 1;
        for (name, param) in &self.params {
            let Param::Values(values) = param else {
                return Err(invalid(
                    &self.path,
                    format!(
                        "parameter {name:?} is a range: a grid takes lists of values; use a random sweep for ranges"
                    ),
                ));
            };
            total = total.checked_mul(values.len()).filter(|&total| total <= MAX_SWEEP_ITEMS).ok_or_else(|| {
                invalid(&self.path, format!("the grid has more than {MAX_SWEEP_ITEMS} configs: use fewer values"))
            })?;
            lists.push((name, values));
        }
        let mut configs = Vec::with_capacity(total);
        for index in 0..total {
            // Mixed radix, the last parameter the least significant digit.
            let mut rest = index;
            let mut config = Map::new();
            for (name, values) in lists.iter().rev() {
                config.insert((*name).clone(), values[rest % values.len()].clone());
                rest /= values.len();
            }
            configs.push(config);
        }
        Ok(configs)
    }

    /// `count` configs drawn at random, deterministically for `seed`.
    ///
    /// ```
    /// let space = runstore::SearchSpace::parse(r#"{"dropout": {"min": 0.1, "max": 0.5}}"#)?;
    /// let ten = space.random(10, 42);
    /// assert_eq!(space.random(5, 42), ten[..5]); // a prefix of the longer draw
    /// assert_ne!(space.random(10, 43), ten);
    /// assert!(ten.iter().all(|c| (0.1..0.5).contains(&c["dropout"].as_f64().unwrap())));
    /// # Ok::<(), runstore::Error>(())
    /// ```
    #[must_use]
    pub fn random(&self, count: usize, seed: u64) -> Vec<Map<String, Value>> {
        let mut rng = SplitMix64(seed);
        (0..count)
            .map(|_| self.params.iter().map(|(name, param)| (name.clone(), draw(param, rng.next()))).collect())
            .collect()
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::InvalidSweepSpace { path: path.to_path_buf(), reason: reason.into() }
}

const RANGE_HELP: &str = "expected a list of values, {\"min\": a, \"max\": b} (with \"int\": true for integers) or {\"log_min\": a, \"log_max\": b}";

fn parse_param(name: &str, spec: Value) -> std::result::Result<Param, String> {
    match spec {
        Value::Array(values) if values.is_empty() => {
            Err(format!("parameter {name:?} has no values: give at least one, as [0.1]"))
        }
        Value::Array(values) => Ok(Param::Values(values)),
        Value::Object(range) => parse_range(name, &range),
        other => Err(format!("parameter {name:?} is {}: {RANGE_HELP} (one value: [{other}])", json_kind(&other))),
    }
}

fn parse_range(name: &str, range: &Map<String, Value>) -> std::result::Result<Param, String> {
    if let Some(key) = range.keys().find(|key| !matches!(key.as_str(), "min" | "max" | "int" | "log_min" | "log_max")) {
        return Err(format!("parameter {name:?} has an unknown key {key:?}: {RANGE_HELP}"));
    }
    let number = |key: &str| -> std::result::Result<Option<f64>, String> {
        match range.get(key) {
            None => Ok(None),
            Some(Value::Number(number)) => match number.as_f64() {
                Some(value) if value.is_finite() => Ok(Some(value)),
                _ => Err(format!("parameter {name:?}: {key} is out of range")),
            },
            Some(other) => Err(format!("parameter {name:?}: {key} must be a number, not {}", json_kind(other))),
        }
    };
    let int = match range.get("int") {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(other) => {
            return Err(format!("parameter {name:?}: int must be true or false, not {}", json_kind(other)));
        }
    };
    match (number("min")?, number("max")?, number("log_min")?, number("log_max")?) {
        (Some(_), Some(_), None, None) if int => {
            let integer = |key: &str| {
                range.get(key).and_then(whole).ok_or_else(|| {
                    format!("parameter {name:?}: {key} must be a whole number (within ±9.2e18) when int is true")
                })
            };
            let (min, max) = (integer("min")?, integer("max")?);
            if min > max {
                return Err(format!("parameter {name:?}: min must be at most max, but {min} > {max}"));
            }
            Ok(Param::Int { min, max })
        }
        (Some(min), Some(max), None, None) => {
            if min >= max {
                return Err(format!("parameter {name:?}: min must be below max, but {min} >= {max}"));
            }
            if !(max - min).is_finite() {
                return Err(format!("parameter {name:?}: the range from {min} to {max} is too wide"));
            }
            Ok(Param::Uniform { min, max })
        }
        (None, None, Some(min), Some(max)) if !int => {
            if min <= 0.0 {
                return Err(format!("parameter {name:?}: log_min must be above 0, but it is {min}"));
            }
            if min >= max {
                return Err(format!("parameter {name:?}: log_min must be below log_max, but {min} >= {max}"));
            }
            Ok(Param::LogUniform { min, max })
        }
        _ => Err(format!("parameter {name:?} is not a valid range: {RANGE_HELP}")),
    }
}

/// A JSON number that is a whole number in the `i64` range: `8` or `8.0`.
fn whole(value: &Value) -> Option<i64> {
    if let Some(value) = value.as_i64() {
        return Some(value);
    }
    let value = value.as_f64()?;
    // -2^63 ..= 2^63 (exclusive) converts exactly once the fraction is zero.
    #[allow(clippy::cast_possible_truncation)]
    let whole = (value.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&value))
        .then_some(value as i64);
    whole
}

/// One value of `param` from the 64 random bits `bits`.
fn draw(param: &Param, bits: u64) -> Value {
    match param {
        Param::Values(values) => {
            let len = u64::try_from(values.len()).unwrap_or(u64::MAX);
            let index = usize::try_from(scale(bits, u128::from(len))).unwrap_or(0);
            values.get(index).cloned().unwrap_or(Value::Null)
        }
        Param::Uniform { min, max } => float(min + (max - min) * unit(bits), *min, *max),
        Param::Int { min, max } => {
            let span = u128::try_from(i128::from(*max) - i128::from(*min) + 1).unwrap_or(1);
            let offset = scale(bits, span);
            // min + offset <= max, which fits in i64.
            let value = i64::try_from(i128::from(*min) + i128::from(offset)).unwrap_or(*max);
            Value::from(value)
        }
        Param::LogUniform { min, max } => {
            let (low, high) = (min.ln(), max.ln());
            float((low + (high - low) * unit(bits)).exp(), *min, *max)
        }
    }
}

/// `bits` scaled to `0..span` (`span` at most 2^64) by a multiply-high: one draw per value,
/// with a bias below `span / 2^64`.
fn scale(bits: u64, span: u128) -> u64 {
    u64::try_from((u128::from(bits) * span) >> 64).unwrap_or(u64::MAX)
}

/// A float in `[0, 1)` from the top 53 bits.
fn unit(bits: u64) -> f64 {
    // 53 bits convert to f64 exactly.
    #[allow(clippy::cast_precision_loss)]
    let mantissa = (bits >> 11) as f64;
    mantissa * (1.0 / 9_007_199_254_740_992.0)
}

/// `value` kept in `[min, max)` (rounding can reach `max`), as a JSON number.
fn float(value: f64, min: f64, max: f64) -> Value {
    let value = if value >= max { max.next_down().max(min) } else { value.max(min) };
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

/// splitmix64 (Steele, Lea, Flood 2014): a small, fast generator that passes `BigCrush`.
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // The first outputs for seed 1234567 from the reference implementation.
        let mut rng = SplitMix64(1_234_567);
        let first: Vec<u64> = (0..3).map(|_| rng.next()).collect();
        assert_eq!(first, [6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423]);
    }

    #[test]
    fn draws_cover_their_ranges() {
        assert_eq!(scale(0, 5), 0);
        assert_eq!(scale(u64::MAX, 5), 4);
        assert_eq!(unit(0).to_bits(), 0.0_f64.to_bits());
        assert!(unit(u64::MAX) < 1.0);
        let int = Param::Int { min: i64::MIN, max: i64::MAX };
        assert_eq!(draw(&int, 0), Value::from(i64::MIN));
        assert_eq!(draw(&int, u64::MAX), Value::from(i64::MAX));
        let small = Param::Int { min: -1, max: 1 };
        assert_eq!([0, u64::MAX / 2, u64::MAX].map(|bits| draw(&small, bits)), [-1, 0, 1].map(Value::from));
        let uniform = Param::Uniform { min: 1.0, max: 2.0 };
        assert!(draw(&uniform, u64::MAX).as_f64().unwrap() < 2.0);
    }
}
