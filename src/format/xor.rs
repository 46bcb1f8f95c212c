//! The value stream of one metric column: Gorilla-style XOR coding against a predicted value.
//!
//! Each value after the first is `XORed` with a prediction and the result written as
//! `0` (equal), `10` + bits (fits the previous window) or `11` + 5-bit leading-zero count +
//! 6-bit length + bits. Pelkonen et al., "Gorilla", VLDB 2015, with a choice of predictor.

// The hot loops of the codec and the log path inline their helpers: measured with callgrind,
// the compiler left them out of line otherwise.
#![allow(clippy::inline_always)]

use super::Corrupt;
use super::bits::{BitReader, BitWriter};

/// How the next value is predicted from the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Predictor {
    /// The previous value (plain Gorilla): best for noisy series.
    Previous = 0,
    /// Linear extrapolation from the previous two: best for smooth series such as schedules.
    Linear = 1,
}

impl Predictor {
    pub(crate) fn from_tag(tag: u8) -> Result<Self, Corrupt> {
        match tag {
            0 => Ok(Self::Previous),
            1 => Ok(Self::Linear),
            _ => Err(Corrupt("unknown value predictor")),
        }
    }

    /// The prediction for the value after `prev` (and `prev2` before it).
    ///
    /// Linear prediction is used only on finite inputs with a finite result: IEEE arithmetic
    /// on those is exact and portable, while NaN payloads may differ between processors. A
    /// finite result implies finite inputs (an infinite or NaN operand makes the result
    /// infinite or NaN), so only the result is checked.
    #[inline]
    fn predict(self, prev: f64, prev2: f64) -> u64 {
        if self == Self::Linear {
            let linear = 2.0 * prev - prev2;
            if linear.is_finite() {
                return linear.to_bits();
            }
        }
        prev.to_bits()
    }
}

/// Appends the stream of `values` to `out`.
pub(crate) fn encode(values: &[f64], predictor: Predictor, out: &mut Vec<u8>) {
    match predictor {
        Predictor::Previous => encode_with::<false>(values, out),
        Predictor::Linear => encode_with::<true>(values, out),
    }
}

fn encode_with<const LINEAR: bool>(values: &[f64], out: &mut Vec<u8>) {
    let Some((&first, rest)) = values.split_first() else { return };
    out.reserve(values.len() * 6);
    let mut writer = BitWriter::new(out);
    writer.write(first.to_bits(), 64);
    let (mut prev2, mut prev) = (first, first);
    // The current window as (leading zeros, meaningful length); (64, 0) before the first.
    let (mut w_leading, mut w_len) = (64u32, 0u32);
    for &value in rest {
        let xor = value.to_bits() ^ predict::<LINEAR>(prev, prev2);
        prev2 = prev;
        prev = value;
        if xor == 0 {
            writer.write(0, 1);
            continue;
        }
        let leading = xor.leading_zeros().min(31);
        let trailing = xor.trailing_zeros();
        if leading >= w_leading && trailing >= 64 - w_leading - w_len {
            // `10` and the bits inside the window, in one write when they fit.
            let payload = xor >> (64 - w_leading - w_len);
            if w_len <= 62 {
                writer.write((0b10 << w_len) | payload, w_len + 2);
            } else {
                writer.write(0b10, 2);
                writer.write(payload, w_len);
            }
        } else {
            let len = 64 - leading - trailing;
            let header = (0b11 << 11) | (u64::from(leading) << 6) | u64::from(len & 63);
            let payload = xor >> trailing;
            if len <= 51 {
                writer.write((header << len) | payload, len + 13);
            } else {
                writer.write(header, 13);
                writer.write(payload, len);
            }
            w_leading = leading;
            w_len = len;
        }
    }
    writer.finish();
}

/// Picks the predictor that codes an evenly spread sample of the column in fewer bits.
pub(crate) fn choose(values: &[f64]) -> Predictor {
    const RUN: usize = 32;
    if values.len() < 3 {
        return Predictor::Previous;
    }
    let (mut previous, mut linear) = (0, 0);
    // A few runs of consecutive values from across the column (predictors need neighbours).
    let stride = (values.len() / 4).max(RUN);
    for start in (0..values.len()).step_by(stride) {
        let run = &values[start..(start + RUN).min(values.len())];
        previous += estimate_bits(run, Predictor::Previous);
        linear += estimate_bits(run, Predictor::Linear);
    }
    if linear < previous { Predictor::Linear } else { Predictor::Previous }
}

/// An estimate of the bits [`encode`] spends on `values` with `predictor` (meaningful bits of
/// each XOR, ignoring window reuse): cheap enough to choose a predictor on a sample.
pub(crate) fn estimate_bits(values: &[f64], predictor: Predictor) -> u64 {
    match predictor {
        Predictor::Previous => estimate_bits_with::<false>(values),
        Predictor::Linear => estimate_bits_with::<true>(values),
    }
}

fn estimate_bits_with<const LINEAR: bool>(values: &[f64]) -> u64 {
    let Some((&first, rest)) = values.split_first() else { return 0 };
    let (mut prev2, mut prev) = (first, first);
    let mut bits = 0u64;
    for &value in rest {
        let xor = value.to_bits() ^ predict::<LINEAR>(prev, prev2);
        prev2 = prev;
        prev = value;
        bits += if xor == 0 { 1 } else { u64::from(64 - xor.leading_zeros() - xor.trailing_zeros()) + 2 };
    }
    bits
}

/// Decodes `count` values from `data`, appending them to `out`.
pub(crate) fn decode(data: &[u8], count: usize, predictor: Predictor, out: &mut Vec<f64>) -> Result<(), Corrupt> {
    // One loop per predictor, so that the choice is not made again for every value.
    match predictor {
        Predictor::Previous => decode_with::<false>(data, count, out),
        Predictor::Linear => decode_with::<true>(data, count, out),
    }
}

/// [`Predictor::predict`] with the predictor known at compile time.
#[inline(always)]
fn predict<const LINEAR: bool>(prev: f64, prev2: f64) -> u64 {
    let predictor = if LINEAR { Predictor::Linear } else { Predictor::Previous };
    predictor.predict(prev, prev2)
}

fn decode_with<const LINEAR: bool>(data: &[u8], count: usize, out: &mut Vec<f64>) -> Result<(), Corrupt> {
    if count == 0 {
        return Ok(());
    }
    let start = out.len();
    out.resize(start + count, 0.0);
    let result = decode_into::<LINEAR>(data, &mut out[start..]);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Decodes `slots.len()` (at least one) values into `slots`.
#[inline(always)]
fn decode_into<const LINEAR: bool>(data: &[u8], slots: &mut [f64]) -> Result<(), Corrupt> {
    let Some((first_slot, rest)) = slots.split_first_mut() else { return Ok(()) };
    let mut reader = BitReader::new(data);
    let first = f64::from_bits(reader.read(64)?);
    *first_slot = first;
    let (mut prev2, mut prev) = (first, first);
    // The current window as (leading zeros, meaningful length); none before the first `11`.
    let mut window: Option<(u32, u32)> = None;
    for slot in rest {
        let predicted = predict::<LINEAR>(prev, prev2);
        // The control bits and an `11` header are at most 13 bits: one peek sees them all.
        let (bits, available) = reader.peek();
        let xor = if bits >> 63 == 0 {
            if available < 1 {
                return Err(Corrupt("bit stream ends early"));
            }
            reader.consume(1);
            0
        } else if (bits >> 62) & 1 == 0 {
            if available < 2 {
                return Err(Corrupt("bit stream ends early"));
            }
            reader.consume(2);
            let (w_leading, w_len) = window.ok_or(Corrupt("value stream reuses a window before defining one"))?;
            reader.read(w_len)? << (64 - w_leading - w_len)
        } else {
            if available < 13 {
                return Err(Corrupt("bit stream ends early"));
            }
            reader.consume(13);
            // Both fields are at most 6 bits wide, so the casts cannot truncate.
            #[allow(clippy::cast_possible_truncation)]
            let leading = ((bits >> 57) & 31) as u32;
            #[allow(clippy::cast_possible_truncation)]
            let len = match ((bits >> 51) & 63) as u32 {
                0 => 64,
                len => len,
            };
            if leading + len > 64 {
                return Err(Corrupt("value stream window is wider than 64 bits"));
            }
            window = Some((leading, len));
            reader.read(len)? << (64 - leading - len)
        };
        let value = f64::from_bits(predicted ^ xor);
        *slot = value;
        prev2 = prev;
        prev = value;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(values: &[f64], predictor: Predictor) -> usize {
        let mut bytes = Vec::new();
        encode(values, predictor, &mut bytes);
        let mut decoded = Vec::new();
        decode(&bytes, values.len(), predictor, &mut decoded).unwrap();
        let expected: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
        let actual: Vec<u64> = decoded.iter().map(|v| v.to_bits()).collect();
        assert_eq!(actual, expected);
        bytes.len()
    }

    #[test]
    fn special_values_round_trip_bit_exact() {
        let weird = [
            0.0,
            -0.0,
            f64::NAN,
            -f64::NAN,
            f64::from_bits(0x7FF0_0000_0000_0001),
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            5e-324,
            1.0,
            1.0,
            f64::MAX,
            -f64::MAX,
        ];
        for predictor in [Predictor::Previous, Predictor::Linear] {
            round_trip(&weird, predictor);
            round_trip(&weird[..1], predictor);
        }
    }

    #[test]
    fn smooth_series_compress_better_with_the_linear_predictor() {
        let values: Vec<f64> = (0..4096).map(|i| 1e-3 * (0.5 + 0.5 * (f64::from(i) / 997.0).cos())).collect();
        let linear = round_trip(&values, Predictor::Linear);
        let previous = round_trip(&values, Predictor::Previous);
        assert!(linear < previous, "linear {linear} bytes, previous {previous} bytes");
    }

    #[test]
    fn truncated_streams_are_errors_not_panics() {
        let values: Vec<f64> = (0..100).map(|i| f64::from(i).sin()).collect();
        let mut bytes = Vec::new();
        encode(&values, Predictor::Previous, &mut bytes);
        for cut in 0..bytes.len() {
            let mut out = Vec::new();
            assert!(decode(&bytes[..cut], values.len(), Predictor::Previous, &mut out).is_err());
        }
    }
}
