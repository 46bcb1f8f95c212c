//! The row chunk: the steps that exist and the time each row was logged, for up to a few
//! thousand rows, shared by every metric (so a thousand metrics do not repeat the clock).
//!
//! ```text
//! row_chunk := tag:u8=2  steps  times        (see `steps` and `times`)
//! ```

use super::steps::{self, StepRange};
use super::{ByteReader, Corrupt, times};

const TAG: u8 = 2;

/// Appends the row chunk of `steps` (non-empty, strictly increasing) and their `times`;
/// `scratch` is reused memory.
pub(crate) fn encode(steps: &[u64], times: &[u64], scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
    debug_assert_eq!(steps.len(), times.len());
    out.push(TAG);
    steps::encode(steps, out);
    times::encode(times, scratch, out);
}

fn read_range(reader: &mut ByteReader<'_>) -> Result<StepRange, Corrupt> {
    if reader.byte()? != TAG {
        return Err(Corrupt("not a row chunk"));
    }
    steps::read_range(reader)
}

/// The rows and steps a row chunk covers, read from its first bytes.
pub(crate) fn range(bytes: &[u8]) -> Result<StepRange, Corrupt> {
    read_range(&mut ByteReader::new(bytes))
}

/// Decodes the steps and times of a row chunk, validating every byte.
pub(crate) fn decode(bytes: &[u8], steps_out: &mut Vec<u64>, times_out: &mut Vec<u64>) -> Result<StepRange, Corrupt> {
    let mut reader = ByteReader::new(bytes);
    let range = read_range(&mut reader)?;
    steps::read_steps(&mut reader, range, steps_out)?;
    times::decode(&mut reader, range.count, times_out)?;
    if !reader.is_empty() {
        return Err(Corrupt("row chunk has trailing bytes"));
    }
    Ok(range)
}

/// Decodes the steps of a row chunk only (the times are checked for length, not kept).
pub(crate) fn decode_steps(bytes: &[u8], steps_out: &mut Vec<u64>) -> Result<StepRange, Corrupt> {
    let mut reader = ByteReader::new(bytes);
    let range = read_range(&mut reader)?;
    steps::read_steps(&mut reader, range, steps_out)?;
    times::skip(&mut reader)?;
    if !reader.is_empty() {
        return Err(Corrupt("row chunk has trailing bytes"));
    }
    Ok(range)
}
