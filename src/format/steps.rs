//! The step list shared by row chunks and point chunks.
//!
//! ```text
//! steps := count:varint  first_step:varint  span:varint  step_mode:u8  [deltas]
//! deltas := (step[i] - step[i-1] - 1):varint  for i in 1..count      (step_mode 1 only)
//! ```
//! Step mode 0 means the steps are `first_step ..= first_step + span`, one per entry: a metric
//! logged at every step costs no step bytes at all.

use super::{ByteReader, Corrupt, put_varint};

/// The most entries a decoder accepts in one chunk, a bound against hostile lengths (the writer
/// makes far fewer).
pub(crate) const MAX_ENTRIES: u64 = 1 << 20;

/// What a chunk's steps cover, read without decoding the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepRange {
    pub(crate) count: usize,
    pub(crate) first_step: u64,
    pub(crate) last_step: u64,
}

/// Appends the step list of `steps`, which must be non-empty and strictly increasing.
pub(crate) fn encode(steps: &[u64], out: &mut Vec<u8>) {
    debug_assert!(!steps.is_empty());
    debug_assert!(steps.windows(2).all(|pair| pair[0] < pair[1]));
    let (first, last) = (steps[0], steps[steps.len() - 1]);
    put_varint(out, steps.len() as u64);
    put_varint(out, first);
    put_varint(out, last - first);
    if last - first == steps.len() as u64 - 1 {
        out.push(0);
    } else {
        out.push(1);
        for pair in steps.windows(2) {
            put_varint(out, pair[1] - pair[0] - 1);
        }
    }
}

/// Reads the count, first step and span.
pub(crate) fn read_range(reader: &mut ByteReader<'_>) -> Result<StepRange, Corrupt> {
    let count = reader.varint_at_most(MAX_ENTRIES, "chunk has too many entries")?;
    if count == 0 {
        return Err(Corrupt("chunk has no entries"));
    }
    let first_step = reader.varint()?;
    let span = reader.varint()?;
    let last_step = first_step.checked_add(span).ok_or(Corrupt("chunk steps overflow"))?;
    if span < count - 1 {
        return Err(Corrupt("chunk spans fewer steps than it has entries"));
    }
    // `count` is at most 2^20, so it fits usize everywhere this crate builds.
    #[allow(clippy::cast_possible_truncation)]
    Ok(StepRange { count: count as usize, first_step, last_step })
}

/// Reads the step mode and deltas after [`read_range`] into `out` (cleared first).
pub(crate) fn read_steps(reader: &mut ByteReader<'_>, range: StepRange, out: &mut Vec<u64>) -> Result<(), Corrupt> {
    out.clear();
    match reader.byte()? {
        0 => {
            if range.last_step - range.first_step != range.count as u64 - 1 {
                return Err(Corrupt("contiguous chunk spans the wrong number of steps"));
            }
            out.extend(range.first_step..=range.last_step);
        }
        1 => {
            out.reserve(range.count);
            let mut step = range.first_step;
            out.push(step);
            for _ in 1..range.count {
                let gap = reader.varint()?;
                step = step.checked_add(gap).and_then(|s| s.checked_add(1)).ok_or(Corrupt("chunk steps overflow"))?;
                out.push(step);
            }
            if step != range.last_step {
                return Err(Corrupt("chunk steps do not end at its last step"));
            }
        }
        _ => return Err(Corrupt("unknown step mode")),
    }
    Ok(())
}
