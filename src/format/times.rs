//! Times in milliseconds since the Unix epoch, delta-of-delta coded as Gorilla codes
//! timestamps, for row chunks and time chunks.
//!
//! ```text
//! times := time_mode:u8  first_time_ms:varint  [stream_len:varint  stream]   (time_mode 1)
//! d[0] = 0, d[i] = t[i] - t[i-1], z[i] = zigzag(d[i] - d[i-1])   for i in 1..count
//! stream: per z, most significant bit first:  '0' (z = 0) | '10' + 6 bits (z < 2^6)
//!         | '110' + 13 bits (z < 2^13) | '1110' + 20 bits (z < 2^20) | '1111' + 64 bits
//! ```
//! Time mode 0: every entry has `first_time_ms`. The arithmetic wraps in 64 bits, so any `u64`
//! time round-trips, and a clock stepped back (a negative delta) costs a few bits, not an
//! error. Rows logged faster than the clock ticks cost a bit each; a steady pace with a few
//! milliseconds of jitter about a byte.

use super::bits::{BitReader, BitWriter};
use super::{ByteReader, Corrupt, put_varint};

/// Maps a signed difference to an unsigned varint-friendly number: 0, -1, 1, -2, … → 0, 1, 2, 3, …
#[inline]
fn zigzag(value: u64) -> u64 {
    // `value` is a two's-complement i64 carried in a u64.
    (value << 1) ^ (0u64.wrapping_sub(value >> 63))
}

#[inline]
fn unzigzag(value: u64) -> u64 {
    (value >> 1) ^ (0u64.wrapping_sub(value & 1))
}

/// The buckets after the zero case: (prefix, prefix bits, payload bits).
const BUCKETS: [(u64, u32, u32); 4] = [(0b10, 2, 6), (0b110, 3, 13), (0b1110, 4, 20), (0b1111, 4, 64)];

/// Appends the time list of `times` (non-empty); `scratch` is reused memory.
pub(crate) fn encode(times: &[u64], scratch: &mut Vec<u8>, out: &mut Vec<u8>) {
    debug_assert!(!times.is_empty());
    let first = times[0];
    if times.iter().all(|&time| time == first) {
        out.push(0);
        put_varint(out, first);
        return;
    }
    out.push(1);
    put_varint(out, first);
    scratch.clear();
    let mut writer = BitWriter::new(scratch);
    let mut delta = 0u64;
    for pair in times.windows(2) {
        let next = pair[1].wrapping_sub(pair[0]);
        let z = zigzag(next.wrapping_sub(delta));
        delta = next;
        if z == 0 {
            writer.write(0, 1);
            continue;
        }
        for (prefix, prefix_bits, bits) in BUCKETS {
            if bits == 64 || z >> bits == 0 {
                writer.write(prefix, prefix_bits);
                writer.write(z, bits);
                break;
            }
        }
    }
    writer.finish();
    put_varint(out, scratch.len() as u64);
    out.extend_from_slice(scratch);
}

/// Reads `count` times into `out` (cleared first).
pub(crate) fn decode(reader: &mut ByteReader<'_>, count: usize, out: &mut Vec<u64>) -> Result<(), Corrupt> {
    out.clear();
    let mode = reader.byte()?;
    let first = reader.varint()?;
    match mode {
        0 => out.resize(count, first),
        1 => {
            let len = usize::try_from(reader.varint()?).map_err(|_| Corrupt("time stream length out of range"))?;
            let mut bits = BitReader::new(reader.bytes(len)?);
            out.reserve(count);
            out.push(first);
            let (mut time, mut delta) = (first, 0u64);
            for _ in 1..count {
                let mut z = 0;
                if bits.read_bit()? {
                    let mut bucket = 0;
                    while bucket < 3 && bits.read_bit()? {
                        bucket += 1;
                    }
                    z = bits.read(BUCKETS[bucket].2)?;
                }
                delta = delta.wrapping_add(unzigzag(z));
                time = time.wrapping_add(delta);
                out.push(time);
            }
        }
        _ => return Err(Corrupt("unknown time mode")),
    }
    Ok(())
}

/// Skips `count` times.
pub(crate) fn skip(reader: &mut ByteReader<'_>) -> Result<(), Corrupt> {
    let mode = reader.byte()?;
    reader.varint()?;
    match mode {
        0 => Ok(()),
        1 => {
            let len = usize::try_from(reader.varint()?).map_err(|_| Corrupt("time stream length out of range"))?;
            reader.bytes(len).map(drop)
        }
        _ => Err(Corrupt("unknown time mode")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_round_trips_the_extremes() {
        for value in [0u64, 1, u64::MAX, 1 << 63, (1 << 63) - 1, 12345, 0u64.wrapping_sub(12345)] {
            assert_eq!(unzigzag(zigzag(value)), value);
        }
        assert_eq!([0u64, u64::MAX, 1, 0u64.wrapping_sub(2)].map(zigzag), [0, 1, 2, 3]);
    }

    #[test]
    fn a_steady_clock_with_jitter_costs_about_a_byte_per_time() {
        // 20 steps per second with ±3 ms of jitter.
        let mut state = 7u64;
        let times: Vec<u64> = (0..10_000u64)
            .map(|i| {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                1_795_741_387_000 + i * 50 + (state >> 61) - 3
            })
            .collect();
        let mut out = Vec::new();
        encode(&times, &mut Vec::new(), &mut out);
        assert!(out.len() < times.len() * 11 / 10, "{} bytes for {} times", out.len(), times.len());
        let mut back = Vec::new();
        decode(&mut ByteReader::new(&out), times.len(), &mut back).unwrap();
        assert_eq!(back, times);
    }
}

#[cfg(test)]
mod bit_tests {
    use super::*;

    #[test]
    fn rows_faster_than_the_clock_cost_a_bit_each() {
        let times: Vec<u64> = (0..8000u64).map(|i| 1_795_741_387_000 + i / 100).collect();
        let mut out = Vec::new();
        encode(&times, &mut Vec::new(), &mut out);
        assert!(out.len() < 8000 / 8 + 200, "{} bytes", out.len());
        let mut back = Vec::new();
        decode(&mut ByteReader::new(&out), times.len(), &mut back).unwrap();
        assert_eq!(back, times);
    }
}
