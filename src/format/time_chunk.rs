//! The time chunk: one time-indexed series' samples (system metrics), keyed by time, not step.
//!
//! ```text
//! time_chunk := tag:u8=4  count:varint  times  predictor:u8  stream_len:varint  stream
//! ```
//! `times` as in `times` (delta-of-delta; they need not increase), the values as in a point
//! chunk.

use super::point_chunk::{decode_values, encode_values};
use super::steps::MAX_ENTRIES;
use super::{ByteReader, Corrupt, put_varint, times};

const TAG: u8 = 4;

/// Appends the time chunk of `times_ms` (non-empty) and their `values`.
pub(crate) fn encode(times_ms: &[u64], values: &[f64], scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
    debug_assert_eq!(times_ms.len(), values.len());
    debug_assert!(!times_ms.is_empty());
    out.push(TAG);
    put_varint(out, times_ms.len() as u64);
    times::encode(times_ms, scratch, out);
    encode_values(values, scratch, out);
}

/// Decodes a time chunk into `times_out` and `values_out`, returning the sample count.
pub(crate) fn decode(bytes: &[u8], times_out: &mut Vec<u64>, values_out: &mut Vec<f64>) -> Result<usize, Corrupt> {
    let mut reader = ByteReader::new(bytes);
    if reader.byte()? != TAG {
        return Err(Corrupt("not a time chunk"));
    }
    let count = reader.varint_at_most(MAX_ENTRIES, "chunk has too many entries")?;
    if count == 0 {
        return Err(Corrupt("chunk has no entries"));
    }
    // At most 2^20.
    #[allow(clippy::cast_possible_truncation)]
    let count = count as usize;
    times::decode(&mut reader, count, times_out)?;
    decode_values(&mut reader, count, values_out)?;
    Ok(count)
}
