//! The 64-byte chunk summary stored beside each point chunk and time chunk, so that `show`,
//! sparklines and plot downsampling read a metric's shape without decoding its values.
//!
//! ```text
//! summary := count:u64  first_step:u64  last_step:u64  min:f64  max:f64  first:f64  last:f64
//!            nan_count:u32  flags:u32                                    (little-endian)
//! ```
//! For a time chunk the steps are the first and last times (ms). `min` and `max` are over the
//! non-NaN values (infinities included), NaN when every value is NaN. No flag is defined yet: a
//! summary with a flag set is from a newer format and is refused.

use super::Corrupt;

/// The encoded size of a summary.
pub(crate) const SUMMARY_LEN: usize = 64;

/// A chunk's count, step range, extremes and ends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkSummary {
    pub(crate) count: u64,
    pub(crate) first_step: u64,
    pub(crate) last_step: u64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) first: f64,
    pub(crate) last: f64,
    pub(crate) nan_count: u32,
}

impl PartialEq for ChunkSummary {
    /// Bit-exact equality (NaN equals the same NaN).
    fn eq(&self, other: &Self) -> bool {
        self.encode() == other.encode()
    }
}

impl ChunkSummary {
    /// The summary of the points `keys` (steps or times) and `values`, both non-empty and of one
    /// length.
    pub(crate) fn of(keys: &[u64], values: &[f64]) -> ChunkSummary {
        debug_assert!(!values.is_empty() && keys.len() == values.len());
        let (mut min, mut max, mut nans) = (f64::NAN, f64::NAN, 0u32);
        for &value in values {
            if value.is_nan() {
                nans = nans.saturating_add(1);
            } else {
                // `f64::min` ignores a NaN operand, so the first real value replaces the start.
                min = min.min(value);
                max = max.max(value);
            }
        }
        ChunkSummary {
            count: values.len() as u64,
            first_step: keys.first().copied().unwrap_or_default(),
            last_step: keys.last().copied().unwrap_or_default(),
            min,
            max,
            first: values.first().copied().unwrap_or(f64::NAN),
            last: values.last().copied().unwrap_or(f64::NAN),
            nan_count: nans,
        }
    }

    /// The 64 stored bytes.
    pub(crate) fn encode(&self) -> [u8; SUMMARY_LEN] {
        let mut out = [0u8; SUMMARY_LEN];
        let words = [
            self.count,
            self.first_step,
            self.last_step,
            self.min.to_bits(),
            self.max.to_bits(),
            self.first.to_bits(),
            self.last.to_bits(),
        ];
        for (slot, word) in out.chunks_exact_mut(8).zip(words) {
            slot.copy_from_slice(&word.to_le_bytes());
        }
        out[56..60].copy_from_slice(&self.nan_count.to_le_bytes());
        out
    }

    /// Reads stored bytes, refusing a wrong length, unknown flags or impossible counts.
    pub(crate) fn decode(bytes: &[u8]) -> Result<ChunkSummary, Corrupt> {
        let bytes: &[u8; SUMMARY_LEN] = bytes.try_into().map_err(|_| Corrupt("a chunk summary is not 64 bytes"))?;
        let word = |i: usize| {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            u64::from_le_bytes(buf)
        };
        let quarter = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        if quarter(60) != 0 {
            return Err(Corrupt("a chunk summary has unknown flags"));
        }
        let summary = ChunkSummary {
            count: word(0),
            first_step: word(1),
            last_step: word(2),
            min: f64::from_bits(word(3)),
            max: f64::from_bits(word(4)),
            first: f64::from_bits(word(5)),
            last: f64::from_bits(word(6)),
            nan_count: quarter(56),
        };
        if summary.count == 0 || u64::from(summary.nan_count) > summary.count {
            return Err(Corrupt("a chunk summary has an impossible count"));
        }
        Ok(summary)
    }
}
