//! The journal's records: what a run written with `Durability::EveryLog` makes durable per log
//! call, before the flusher folds it into the run database (see `docs/design.md`, "The
//! journal").
//!
//! A record is a 28-byte header and a postcard [`Entry`]:
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | epoch, `u64` LE: which series of records this is (never 0) |
//! | 8..16 | sequence number in the epoch, `u64` LE, from 0 |
//! | 16..20 | payload length, `u32` LE |
//! | 20..28 | FNV-1a 64 of bytes 0..20 and of the payload, `u64` LE |
//!
//! A chain is read from the [`JournalMark`] stored with the last fold: records of the mark's
//! epoch with consecutive sequence numbers, each whole and checksummed. The first record that
//! is not one ends it: zeros, a record cut short by a crash, or a record of an earlier epoch.

use serde::{Deserialize, Serialize};

use crate::format::Corrupt;
use crate::sys::{stable_hash, stable_hash_on};

/// Bytes before each record's payload.
pub(crate) const HEADER_LEN: usize = 28;

/// Where the part of the journal not yet folded into the database starts: stored in the
/// database (table `meta`, key `journal`) by every fold, in the same transaction as its rows.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct JournalMark {
    /// The epoch of the records that count.
    pub(crate) epoch: u64,
    /// The offset of the first record not folded.
    pub(crate) offset: u64,
    /// Its sequence number.
    pub(crate) seq: u64,
}

impl JournalMark {
    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, Corrupt> {
        postcard::from_bytes(bytes).map_err(|_| Corrupt("journal mark does not decode"))
    }
}

/// One logged row, with what was made known since the previous record: metric names interned
/// (ids `first_name..`; a name the database holds already is skipped on replay, since a fold in
/// progress may or may not have stored it), values set with `set_summary` (applied before the
/// row) and system samples (a sample stored already is dropped by the commit, as ever).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct EntryRef<'a> {
    pub(crate) step: u64,
    pub(crate) time_ms: u64,
    pub(crate) first_name: u32,
    pub(crate) names: &'a [Box<str>],
    pub(crate) sets: &'a [(u32, f64)],
    pub(crate) points: &'a [(u32, f64)],
    /// Samples of time-indexed series taken since the previous record: (metric, time ms, value).
    pub(crate) samples: &'a [(u32, u64, f64)],
}

/// An [`EntryRef`] as read back.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub(crate) struct Entry {
    pub(crate) step: u64,
    pub(crate) time_ms: u64,
    pub(crate) first_name: u32,
    pub(crate) names: Vec<Box<str>>,
    pub(crate) sets: Vec<(u32, f64)>,
    pub(crate) points: Vec<(u32, f64)>,
    pub(crate) samples: Vec<(u32, u64, f64)>,
}

#[cfg(any(test, feature = "fuzzing"))]
impl Entry {
    /// The entry to encode again.
    pub(crate) fn as_ref(&self) -> EntryRef<'_> {
        EntryRef {
            step: self.step,
            time_ms: self.time_ms,
            first_name: self.first_name,
            names: &self.names,
            sets: &self.sets,
            points: &self.points,
            samples: &self.samples,
        }
    }
}

/// Appends the record of `entry` (epoch `epoch`, number `seq`) to `out`.
pub(crate) fn encode(out: &mut Vec<u8>, epoch: u64, seq: u64, entry: &EntryRef<'_>) {
    let start = out.len();
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&[0; 12]);
    // Writing into a Vec cannot fail.
    if let Ok(payload) = postcard::to_extend(entry, std::mem::take(out)) {
        *out = payload;
    }
    let len = u32::try_from(out.len() - start - HEADER_LEN).unwrap_or(u32::MAX);
    out[start + 16..start + 20].copy_from_slice(&len.to_le_bytes());
    let check = checksum(&out[start..start + 20], &out[start + HEADER_LEN..]);
    out[start + 20..start + HEADER_LEN].copy_from_slice(&check.to_le_bytes());
}

fn checksum(header: &[u8], payload: &[u8]) -> u64 {
    stable_hash_on(stable_hash(header), payload)
}

/// The records of the chain `mark` starts, read from the journal's bytes, and the offset after
/// the last one. A record whose checksum holds but whose payload does not decode is damage,
/// not a crash: an error.
pub(crate) fn read_chain(bytes: &[u8], mark: JournalMark) -> Result<(Vec<Entry>, u64), Corrupt> {
    let mut entries = Vec::new();
    let mut offset = usize::try_from(mark.offset).unwrap_or(usize::MAX);
    let mut seq = mark.seq;
    while let Some(header) = offset.checked_add(HEADER_LEN).and_then(|end| bytes.get(offset..end)) {
        let field = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or_default());
        let len = u32::from_le_bytes(header[16..20].try_into().unwrap_or_default()) as usize;
        if field(0) != mark.epoch || field(8) != seq {
            break;
        }
        let start = offset + HEADER_LEN;
        let Some(payload) = start.checked_add(len).and_then(|end| bytes.get(start..end)) else { break };
        if checksum(&header[..20], payload) != field(20) {
            break;
        }
        entries.push(postcard::from_bytes(payload).map_err(|_| Corrupt("journal record does not decode"))?);
        offset = start + len;
        seq += 1;
    }
    Ok((entries, offset as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(step: u64, names: &'a [Box<str>], points: &'a [(u32, f64)]) -> EntryRef<'a> {
        EntryRef { step, time_ms: 1000 + step, first_name: 0, names, sets: &[], points, samples: &[(9, 5, 0.5)] }
    }

    fn owned(entry: &EntryRef<'_>) -> Entry {
        Entry {
            step: entry.step,
            time_ms: entry.time_ms,
            first_name: entry.first_name,
            names: entry.names.to_vec(),
            sets: entry.sets.to_vec(),
            points: entry.points.to_vec(),
            samples: entry.samples.to_vec(),
        }
    }

    #[test]
    fn a_chain_reads_back_and_ends_at_the_first_record_that_is_not_the_next() {
        let names: [Box<str>; 1] = ["loss".into()];
        let points = [(0, 0.5), (1, f64::NAN)];
        let first = entry(0, &names, &points);
        let second = entry(1, &[], &points[..1]);
        let mut bytes = Vec::new();
        encode(&mut bytes, 7, 0, &first);
        encode(&mut bytes, 7, 1, &second);
        let end = bytes.len() as u64;
        // An old epoch's record and then zeros follow.
        encode(&mut bytes, 6, 2, &second);
        bytes.resize(bytes.len() + 100, 0);
        let (entries, after) = read_chain(&bytes, JournalMark { epoch: 7, offset: 0, seq: 0 }).expect("chain");
        assert_eq!(after, end);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1], owned(&second));
        assert_eq!(entries[1].as_ref(), second);
        assert_eq!(entries[0].points[1].1.to_bits(), f64::NAN.to_bits());
        // From the second record on.
        let second_at = (HEADER_LEN + postcard::to_allocvec(&first).expect("encode").len()) as u64;
        let (entries, _) = read_chain(&bytes, JournalMark { epoch: 7, offset: second_at, seq: 1 }).expect("chain");
        assert_eq!(entries, [owned(&second)]);
        // Another epoch, or a number out of sequence, reads nothing.
        assert!(read_chain(&bytes, JournalMark { epoch: 8, offset: 0, seq: 0 }).expect("chain").0.is_empty());
        assert!(read_chain(&bytes, JournalMark { epoch: 7, offset: 0, seq: 1 }).expect("chain").0.is_empty());
    }

    #[test]
    fn a_record_cut_short_or_changed_ends_the_chain() {
        let points = [(0, 1.0), (1, 2.0), (2, 3.0)];
        let mut bytes = Vec::new();
        encode(&mut bytes, 3, 0, &entry(0, &[], &points));
        let first = bytes.len();
        encode(&mut bytes, 3, 1, &entry(1, &[], &points));
        let mark = JournalMark { epoch: 3, offset: 0, seq: 0 };
        for cut in first..bytes.len() {
            let (entries, after) = read_chain(&bytes[..cut], mark).expect("chain");
            assert_eq!((entries.len(), after), (1, first as u64), "cut at {cut}");
        }
        for flip in first..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[flip] ^= 0x10;
            assert_eq!(read_chain(&damaged, mark).expect("chain").0.len(), 1, "flip at {flip}");
        }
        // The old contents of a reused file under a new record's tail are not the tail.
        let mut reused = bytes.clone();
        reused[first + HEADER_LEN..].fill(0xAB);
        assert_eq!(read_chain(&reused, mark).expect("chain").0.len(), 1);
    }

    #[test]
    fn a_whole_record_whose_payload_does_not_decode_is_damage_not_the_end() {
        // A payload of 0xFF bytes: a varint that never ends.
        let payload = [0xFF; 12];
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&5u64.to_le_bytes());
        bytes.extend_from_slice(&0u64.to_le_bytes());
        bytes.extend_from_slice(&12u32.to_le_bytes());
        let check = checksum(&bytes, &payload);
        bytes.extend_from_slice(&check.to_le_bytes());
        bytes.extend_from_slice(&payload);
        let mark = JournalMark { epoch: 5, offset: 0, seq: 0 };
        assert_eq!(read_chain(&bytes, mark), Err(Corrupt("journal record does not decode")));
    }
}
