//! The point chunk: one metric's steps and values, independent of row-chunk boundaries, so each
//! metric tops up its own last chunk and a reader of one metric reads only its bytes.
//!
//! ```text
//! point_chunk := tag:u8=3  steps  predictor:u8  stream_len:varint  stream
//! ```
//! `stream` is the XOR value stream of `xor` (format 1's), one value per step.

use super::steps::{self, StepRange};
use super::xor::{self, Predictor};
use super::{ByteReader, Corrupt, put_varint};

const TAG: u8 = 3;

/// Appends the point chunk of `steps` (non-empty, strictly increasing) and their `values`,
/// coding the values with whichever predictor suits them; `scratch` is reused memory.
pub(crate) fn encode(steps: &[u64], values: &[f64], scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
    debug_assert_eq!(steps.len(), values.len());
    out.push(TAG);
    steps::encode(steps, out);
    encode_values(values, scratch, out);
}

/// Appends `predictor stream_len stream` for `values`: shared with time chunks.
pub(crate) fn encode_values(values: &[f64], scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
    let predictor = xor::choose(values);
    scratch.clear();
    xor::encode(values, predictor, scratch);
    out.push(predictor as u8);
    put_varint(out, scratch.len() as u64);
    out.extend_from_slice(scratch);
}

/// Reads `predictor stream_len stream` for `count` values into `out` (cleared first), and checks
/// that nothing follows.
pub(crate) fn decode_values(reader: &mut ByteReader<'_>, count: usize, out: &mut Vec<f64>) -> Result<(), Corrupt> {
    let predictor = Predictor::from_tag(reader.byte()?)?;
    let len = usize::try_from(reader.varint()?).map_err(|_| Corrupt("stream length out of range"))?;
    let stream = reader.bytes(len)?;
    if !reader.is_empty() {
        return Err(Corrupt("chunk has trailing bytes"));
    }
    out.clear();
    xor::decode(stream, count, predictor, out)
}

fn read_range(reader: &mut ByteReader<'_>) -> Result<StepRange, Corrupt> {
    if reader.byte()? != TAG {
        return Err(Corrupt("not a point chunk"));
    }
    steps::read_range(reader)
}

/// The points and steps a point chunk covers, read from its first bytes.
pub(crate) fn range(bytes: &[u8]) -> Result<StepRange, Corrupt> {
    read_range(&mut ByteReader::new(bytes))
}

/// Decodes a point chunk, validating every byte.
pub(crate) fn decode(bytes: &[u8], steps_out: &mut Vec<u64>, values_out: &mut Vec<f64>) -> Result<StepRange, Corrupt> {
    let mut reader = ByteReader::new(bytes);
    let range = read_range(&mut reader)?;
    steps::read_steps(&mut reader, range, steps_out)?;
    decode_values(&mut reader, range.count, values_out)?;
    Ok(range)
}

/// Decodes the steps of a point chunk only.
#[cfg_attr(not(any(test, feature = "fuzzing")), allow(dead_code))]
pub(crate) fn decode_steps(bytes: &[u8], steps_out: &mut Vec<u64>) -> Result<StepRange, Corrupt> {
    let mut reader = ByteReader::new(bytes);
    let range = read_range(&mut reader)?;
    steps::read_steps(&mut reader, range, steps_out)?;
    Ok(range)
}
