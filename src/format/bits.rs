//! Bit-level writer and reader for the XOR value streams (most significant bit first).

// The hot loops of the codec and the log path inline their helpers: measured with callgrind,
// the compiler left them out of line otherwise.
#![allow(clippy::inline_always)]

use super::Corrupt;

/// Appends bit fields to a byte vector.
pub(crate) struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Pending bits in the low `pending` bits; the bits above them are stale and never written.
    acc: u64,
    /// Fewer than 64: a full word is written out at once.
    pending: u32,
}

impl<'a> BitWriter<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out, acc: 0, pending: 0 }
    }

    /// Writes `value` as `bits` bits (`bits` ≤ 64); `value` must fit in them.
    #[inline(always)]
    pub(crate) fn write(&mut self, value: u64, bits: u32) {
        debug_assert!(bits <= 64);
        debug_assert!(bits == 64 || value >> bits == 0);
        let free = 64 - self.pending;
        if bits < free {
            self.acc = (self.acc << bits) | value;
            self.pending += bits;
        } else {
            // The pending bits, then the top `free` bits of `value`, make a word; the other
            // `rest` bits of `value` stay pending.
            let rest = bits - free;
            let word = self.acc.checked_shl(free).unwrap_or(0) | (value >> rest);
            self.out.extend_from_slice(&word.to_be_bytes());
            self.acc = value;
            self.pending = rest;
        }
    }

    /// Pads the last byte with zero bits and writes it out.
    pub(crate) fn finish(self) {
        if self.pending > 0 {
            let word = self.acc << (64 - self.pending);
            let bytes = self.pending.div_ceil(8) as usize;
            self.out.extend_from_slice(&word.to_be_bytes()[..bytes]);
        }
    }
}

/// Reads bit fields written by [`BitWriter`]; running past the end is [`Corrupt`].
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    next_byte: usize,
    /// Buffered bits, left-aligned.
    acc: u64,
    available: u32,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, next_byte: 0, acc: 0, available: 0 }
    }

    #[inline(always)]
    fn refill(&mut self) {
        if self.available <= 56 {
            if let Some(chunk) = self.data.get(self.next_byte..self.next_byte + 8) {
                // Fast path: take as many whole bytes as fit in one load.
                let word = u64::from_be_bytes(chunk.try_into().unwrap_or([0; 8]));
                let take = (64 - self.available) / 8;
                self.acc |= (word & mask_top(take * 8)) >> self.available;
                self.available += take * 8;
                self.next_byte += take as usize;
                return;
            }
            while self.available <= 56 {
                let Some(&byte) = self.data.get(self.next_byte) else { break };
                self.acc |= u64::from(byte) << (56 - self.available);
                self.available += 8;
                self.next_byte += 1;
            }
        }
    }

    /// Reads `bits` bits (≤ 64) as the low bits of the result.
    #[inline(always)]
    pub(crate) fn read(&mut self, bits: u32) -> Result<u64, Corrupt> {
        if bits <= 56 {
            return self.read_short(bits);
        }
        let high = self.read_short(bits - 32)?;
        let low = self.read_short(32)?;
        Ok((high << 32) | low)
    }

    /// [`BitReader::read`] for at most 56 bits: one refill at most, never recursive, so that
    /// the decoders' loops inline it.
    #[inline(always)]
    fn read_short(&mut self, bits: u32) -> Result<u64, Corrupt> {
        debug_assert!(bits <= 56);
        if bits == 0 {
            return Ok(0);
        }
        if self.available < bits {
            self.refill();
            if self.available < bits {
                return Err(Corrupt("bit stream ends early"));
            }
        }
        let value = self.acc >> (64 - bits);
        self.acc <<= bits;
        self.available -= bits;
        Ok(value)
    }

    #[inline]
    pub(crate) fn read_bit(&mut self) -> Result<bool, Corrupt> {
        Ok(self.read_short(1)? == 1)
    }

    /// The next (up to) 56 bits without consuming them, left-aligned, and how many of them
    /// the stream holds (bits past its end read as zeros).
    #[inline(always)]
    pub(crate) fn peek(&mut self) -> (u64, u32) {
        if self.available <= 56 {
            self.refill();
        }
        (self.acc, self.available)
    }

    /// Consumes `bits` bits that [`BitReader::peek`] showed to be there.
    #[inline(always)]
    pub(crate) fn consume(&mut self, bits: u32) {
        debug_assert!(bits <= self.available && bits < 64);
        self.acc <<= bits;
        self.available -= bits;
    }
}

/// A mask with the top `bits` bits set.
#[inline]
fn mask_top(bits: u32) -> u64 {
    if bits >= 64 { u64::MAX } else { !(u64::MAX >> bits) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_fields_of_every_width() {
        let mut fields = Vec::new();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for width in (0..=64).chain((0..=64).rev()).chain([1, 7, 63, 64, 13, 2]) {
            x = x.rotate_left(17) ^ 0xD1B5_4A32_D192_ED03;
            let value = if width == 64 {
                x
            } else if width == 0 {
                0
            } else {
                x & ((1u64 << width) - 1)
            };
            fields.push((value, width));
        }
        let mut out = Vec::new();
        let mut writer = BitWriter::new(&mut out);
        for &(value, width) in &fields {
            writer.write(value, width);
        }
        writer.finish();
        let mut reader = BitReader::new(&out);
        for &(value, width) in &fields {
            assert_eq!(reader.read(width).unwrap(), value, "width {width}");
        }
    }

    #[test]
    fn reading_past_the_end_is_an_error() {
        let mut reader = BitReader::new(&[0xFF]);
        assert_eq!(reader.read(8).unwrap(), 0xFF);
        assert!(reader.read(1).is_err());
    }
}
