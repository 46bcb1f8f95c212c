//! The records stored in the `meta` and `attempts` tables.

use serde::{Deserialize, Serialize};

use super::Corrupt;
use crate::state::RunState;

/// A run's identity and configuration. Stored as JSON: written rarely, and fields can be added
/// with `#[serde(default)]` without a format change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct RunRecord {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) project: Option<String>,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    #[serde(default)]
    pub(crate) notes: Option<String>,
    #[serde(default)]
    pub(crate) config: serde_json::Map<String, serde_json::Value>,
    pub(crate) created_at_ms: u64,
    /// Set for a fork: where its history up to the fork step comes from.
    #[serde(default)]
    pub(crate) forked_from: Option<ForkOrigin>,
    /// What the system-metrics sampler of the last attempt that ran one noted (no GPU series,
    /// and why). Left out when empty, so that a record without it reads as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) system_notes: Vec<String>,
}

/// A fork reads its history up to `step` from its parent's database instead of copying it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ForkOrigin {
    /// The parent run's id.
    pub(crate) run: String,
    /// The last inherited step.
    pub(crate) step: u64,
    /// How many archived branches the parent had at the fork: the parent's later rewinds are
    /// undone when the fork reads its history (see `docs/design.md`).
    pub(crate) parent_branches: u32,
    /// The last inherited row's step, if any row is inherited.
    pub(crate) inherited_last: Option<u64>,
    /// Last values of the metrics at the fork step, by metric id (ids are the parent's: a
    /// fork starts with a copy of its parent's metric names).
    #[serde(with = "json_values")]
    pub(crate) inherited_summary: Vec<(u32, f64)>,
}

/// `(metric id, value)` pairs in JSON, which has no NaN or infinity: a finite value is a
/// number; `inf`, `-inf`, `NaN` (or `NaN:0x<bits>` for another NaN) are strings, so that the
/// value reads back bit for bit. A `null` (how records before this encoding held a non-finite
/// value) reads as NaN.
mod json_values {
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Value {
        Number(f64),
        Text(String),
        Null(Option<()>),
    }

    pub(crate) fn serialize<S: Serializer>(pairs: &[(u32, f64)], serializer: S) -> Result<S::Ok, S::Error> {
        let encoded: Vec<(u32, Value)> = pairs
            .iter()
            .map(|&(id, value)| {
                let text = |text: &str| Value::Text(text.to_string());
                let value = match value {
                    value if value.is_finite() => Value::Number(value),
                    f64::INFINITY => text("inf"),
                    f64::NEG_INFINITY => text("-inf"),
                    nan if nan.to_bits() == f64::NAN.to_bits() => text("NaN"),
                    nan => Value::Text(format!("NaN:0x{:016x}", nan.to_bits())),
                };
                (id, value)
            })
            .collect();
        encoded.serialize(serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<(u32, f64)>, D::Error> {
        let encoded: Vec<(u32, Value)> = Vec::deserialize(deserializer)?;
        encoded
            .into_iter()
            .map(|(id, value)| {
                let value = match value {
                    Value::Number(value) => value,
                    Value::Null(_) => f64::NAN,
                    Value::Text(text) => match text.as_str() {
                        "inf" => f64::INFINITY,
                        "-inf" => f64::NEG_INFINITY,
                        "NaN" => f64::NAN,
                        other => other
                            .strip_prefix("NaN:0x")
                            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                            .map(f64::from_bits)
                            .filter(|value| value.is_nan())
                            .ok_or_else(|| D::Error::custom("not a value"))?,
                    },
                };
                Ok((id, value))
            })
            .collect()
    }
}

/// An archived branch: rows a rewind moved out of the live history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct BranchRecord {
    pub(crate) created_at_ms: u64,
    /// The step the run was rewound to: the branch holds rows after it.
    pub(crate) rewound_to: u64,
    pub(crate) first_step: u64,
    pub(crate) last_step: u64,
    pub(crate) rows: u64,
    /// The attempt that rewound the run (0 when done from outside any attempt).
    pub(crate) by_attempt: u32,
    /// The attempts whose steps the branch's rows fall in.
    pub(crate) attempts: Vec<u32>,
    /// The checkpoints (sequence numbers) this rewind archived: their steps are after
    /// `rewound_to`, so they are never a resume point again.
    pub(crate) checkpoints: Vec<u32>,
    /// Whether the rewind archived every row, step 0 included (a resume from checkpoint with
    /// no checkpoint to restart from): `rewound_to` is then 0 and not a kept step.
    pub(crate) restarted: bool,
}

/// A checkpoint of the training state, recorded with the rows it covers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct CheckpointRecord {
    /// The last step the checkpoint covers.
    pub(crate) step: u64,
    /// The path as given (raw `OsStr` bytes).
    pub(crate) path: Vec<u8>,
    /// The path made absolute when it was recorded (raw `OsStr` bytes).
    pub(crate) absolute: Vec<u8>,
    /// A file's length, or the total length of a directory's files, when recorded.
    pub(crate) size: u64,
    pub(crate) time_ms: u64,
    pub(crate) attempt: u32,
    /// Set when a rewind below `step` archived it (the branch's id).
    pub(crate) branch: Option<u32>,
}

impl CheckpointRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, Corrupt> {
        postcard::from_bytes(bytes).map_err(|_| Corrupt("checkpoint record does not decode"))
    }
}

impl BranchRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, Corrupt> {
        postcard::from_bytes(bytes).map_err(|_| Corrupt("branch record does not decode"))
    }
}

impl RunRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Serialising plain strings, numbers and a JSON map cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, Corrupt> {
        serde_json::from_slice(bytes).map_err(|_| Corrupt("run record is not valid JSON"))
    }
}

/// The stored state of a run. `Crashed` and `Preempted` are also derived at read time from
/// `Running` and `Preempting` when no process holds the run's lock.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct StateTag(pub(crate) u8);

impl From<RunState> for StateTag {
    fn from(state: RunState) -> Self {
        StateTag(match state {
            RunState::Running => 0,
            RunState::Finished => 1,
            RunState::Failed => 2,
            RunState::Crashed => 3,
            RunState::Preempting => 4,
            RunState::Preempted => 5,
        })
    }
}

impl TryFrom<StateTag> for RunState {
    type Error = Corrupt;

    fn try_from(tag: StateTag) -> Result<Self, Corrupt> {
        Ok(match tag.0 {
            0 => RunState::Running,
            1 => RunState::Finished,
            2 => RunState::Failed,
            3 => RunState::Crashed,
            4 => RunState::Preempting,
            5 => RunState::Preempted,
            _ => return Err(Corrupt("unknown run state")),
        })
    }
}

/// Where a run stands; changes in the same transaction as the rows it describes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Progress {
    pub(crate) state: StateTag,
    pub(crate) exit_code: Option<i32>,
    /// The step the next `log` uses.
    pub(crate) next_step: u64,
    /// The step of the last stored row, if any.
    pub(crate) last_step: Option<u64>,
    /// Rows in the history.
    pub(crate) rows: u64,
    pub(crate) updated_at_ms: u64,
    /// Last logged value of each metric, by metric id.
    pub(crate) summary: Vec<(u32, f64)>,
    /// Values set with `set_summary`, by metric id; logging the metric again removes one.
    pub(crate) pinned: Vec<(u32, f64)>,
}

impl Progress {
    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, Corrupt> {
        postcard::from_bytes(bytes).map_err(|_| Corrupt("progress record does not decode"))
    }
}

/// One process's session with a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct AttemptRecord {
    pub(crate) started_at_ms: u64,
    pub(crate) host: String,
    pub(crate) pid: u32,
    pub(crate) first_step: u64,
    pub(crate) ended_at_ms: Option<u64>,
    pub(crate) last_step: Option<u64>,
    pub(crate) outcome: Option<StateTag>,
    pub(crate) exit_code: Option<i32>,
}

impl AttemptRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, Corrupt> {
        postcard::from_bytes(bytes).map_err(|_| Corrupt("attempt record does not decode"))
    }
}
