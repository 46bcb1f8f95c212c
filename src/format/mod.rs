//! The on-disk format: redb tables, the records stored in them, and the row-block codec.
//!
//! `docs/design.md` specifies every byte; this module is its implementation. Only the writer
//! (`crate::write::writer`) and the reader (`crate::read::reader`) use it.

pub(crate) mod batch;
mod bits;
#[cfg(test)]
mod codec_tests;
pub(crate) mod journal;
pub(crate) mod point_chunk;
pub(crate) mod records;
pub(crate) mod row_chunk;
pub(crate) mod steps;
pub(crate) mod summary;
pub(crate) mod tables;
pub(crate) mod time_chunk;
mod times;
pub(crate) mod xor;

/// The version of the run database format this code writes and reads.
pub(crate) const RUN_FORMAT_VERSION: u32 = 2;

/// The version of the store directory layout this code writes and reads.
pub(crate) const STORE_FORMAT_VERSION: u32 = 1;

/// A decoder found bytes it cannot interpret; the message says what.
///
/// Converted into [`crate::Error::Corrupt`] with the file's path by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Corrupt(pub(crate) &'static str);

/// Appends `value` as an unsigned LEB128 varint.
#[inline]
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        // Truncation is the point: the low seven bits go out with the continuation flag.
        #[allow(clippy::cast_possible_truncation)]
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)]
    out.push(value as u8);
}

/// A bounds-checked cursor over stored bytes.
pub(crate) struct ByteReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub(crate) fn byte(&mut self) -> Result<u8, Corrupt> {
        let byte = *self.data.get(self.pos).ok_or(Corrupt("record ends early"))?;
        self.pos += 1;
        Ok(byte)
    }

    pub(crate) fn varint(&mut self) -> Result<u64, Corrupt> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7F);
            if shift == 63 && bits > 1 {
                return Err(Corrupt("varint overflows 64 bits"));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Corrupt("varint overflows 64 bits"))
    }

    /// Reads a varint that must fit `max`.
    pub(crate) fn varint_at_most(&mut self, max: u64, what: &'static str) -> Result<u64, Corrupt> {
        let value = self.varint()?;
        if value > max {
            return Err(Corrupt(what));
        }
        Ok(value)
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Result<&'a [u8], Corrupt> {
        let end = self.pos.checked_add(len).ok_or(Corrupt("length overflows"))?;
        let slice = self.data.get(self.pos..end).ok_or(Corrupt("record ends early"))?;
        self.pos = end;
        Ok(slice)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_overflow() {
        for value in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX - 1, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            let mut reader = ByteReader::new(&out);
            assert_eq!(reader.varint().unwrap(), value);
            assert!(reader.is_empty());
        }
        let overflow = [0xFF; 10];
        assert!(ByteReader::new(&overflow).varint().is_err());
        assert!(ByteReader::new(&[0x80]).varint().is_err());
    }
}
