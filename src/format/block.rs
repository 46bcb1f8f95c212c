//! The row-block codec: up to [`BLOCK_ROWS`] rows stored as one redb value, column by column.
//!
//! ```text
//! block   := tag:u8=1  rows:varint  first_step:varint  span:varint  step_mode:u8  [deltas]
//!            columns:varint  column*
//! deltas  := (step[i] - step[i-1] - 1):varint  for i in 1..rows      (step_mode 1 only)
//! column  := metric:varint  flags:u8  [presence: ceil(rows/8) bytes]  len:varint  stream
//! flags   := bit 0: a presence bitmap follows (else the metric is in every row)
//!            bits 1-3: value predictor (0 previous, 1 linear)
//! ```
//! Step mode 0 means the steps are `first_step..=first_step + span`, one per row.

use super::batch::RowBatch;
use super::xor::{self, Predictor};
use super::{ByteReader, Corrupt, put_varint};

/// How big the encoder makes blocks. A block is one redb value, which redb stores in a page of a
/// power-of-two size: a block just under a page keeps the rounding waste small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockSize {
    /// About 60 KiB in a 64 KiB page: few entries, little waste, cheap top-ups at each flush.
    Large,
    /// About 3 KiB in a 4 KiB page: for a commit per row, where the last block is rewritten
    /// (and synced) on every commit.
    Small,
}

impl BlockSize {
    /// The encoded size a block aims for.
    fn target(self) -> usize {
        match self {
            BlockSize::Large => 60 << 10,
            BlockSize::Small => 3 << 10,
        }
    }

    /// The encoded size a block may not exceed (unless it is a single row): one page, with room
    /// for redb's leaf header.
    fn limit(self) -> usize {
        match self {
            BlockSize::Large => (64 << 10) - 512,
            BlockSize::Small => (4 << 10) - 512,
        }
    }

    /// A last block shorter than this is topped up with the next rows instead of starting a new
    /// one.
    pub(crate) fn top_up_below(self) -> usize {
        self.target() * 7 / 8
    }
}

/// Bounds on the rows per block the encoder picks.
const MIN_TARGET_ROWS: usize = 4;
const MAX_TARGET_ROWS: usize = 16_384;

/// The most rows a decoder accepts in one block, a bound against hostile lengths.
const MAX_ROWS: u64 = 1 << 20;

/// The most columns a decoder accepts in one block.
const MAX_COLUMNS: u64 = 1 << 20;

const TAG: u8 = 1;

/// What a block covers, read without decoding its columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockHeader {
    pub(crate) rows: usize,
    pub(crate) first_step: u64,
    pub(crate) last_step: u64,
}

fn read_header(reader: &mut ByteReader<'_>) -> Result<BlockHeader, Corrupt> {
    if reader.byte()? != TAG {
        return Err(Corrupt("unknown block tag"));
    }
    let rows = reader.varint_at_most(MAX_ROWS, "block has too many rows")?;
    if rows == 0 {
        return Err(Corrupt("block has no rows"));
    }
    let first_step = reader.varint()?;
    let span = reader.varint()?;
    let last_step = first_step.checked_add(span).ok_or(Corrupt("block steps overflow"))?;
    if span < rows - 1 {
        return Err(Corrupt("block spans fewer steps than it has rows"));
    }
    // `rows` is at most 2^20, so it fits usize everywhere this crate builds.
    #[allow(clippy::cast_possible_truncation)]
    Ok(BlockHeader { rows: rows as usize, first_step, last_step })
}

/// Reads the header of an encoded block.
pub(crate) fn header(bytes: &[u8]) -> Result<BlockHeader, Corrupt> {
    read_header(&mut ByteReader::new(bytes))
}

/// One column while a block is being built.
#[derive(Default)]
struct ColumnBuild {
    metric: u32,
    rows: Vec<u32>,
    values: Vec<f64>,
}

/// Encodes blocks, reusing its scratch memory from one block to the next.
pub(crate) struct Encoder {
    size: BlockSize,
    /// Rows per block, adapted to the bytes per row seen so far.
    target_rows: usize,
    block: Vec<u8>,
    /// Column index + 1 for each metric id seen in the current block; 0 when absent.
    column_of: Vec<u32>,
    columns: Vec<ColumnBuild>,
    used: usize,
    stream: Vec<u8>,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            size: BlockSize::Large,
            target_rows: 2048,
            block: Vec::new(),
            column_of: Vec::new(),
            columns: Vec::new(),
            used: 0,
            stream: Vec::new(),
        }
    }
}

impl Encoder {
    /// Sets the block size for the blocks encoded from now on.
    pub(crate) fn set_size(&mut self, size: BlockSize) {
        if size != self.size {
            self.size = size;
            self.target_rows = 64;
        }
    }

    pub(crate) fn size(&self) -> BlockSize {
        self.size
    }

    /// Rows per block the encoder aims for now.
    pub(crate) fn target_rows(&self) -> usize {
        self.target_rows
    }

    /// Encodes rows `range` of `batch` as blocks of about the target size and hands each to
    /// `sink` with its first step.
    pub(crate) fn encode_blocks<E>(
        &mut self,
        batch: &RowBatch,
        range: std::ops::Range<usize>,
        mut sink: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let (target, limit) = (self.size.target(), self.size.limit());
        let mut start = range.start;
        let mut block = std::mem::take(&mut self.block);
        while start < range.end {
            let mut count = self.target_rows.min(range.end - start);
            loop {
                block.clear();
                self.encode(batch, start..start + count, &mut block);
                if block.len() <= limit || count == 1 {
                    break;
                }
                count = (count * target / block.len()).clamp(1, count - 1);
            }
            if block.len() > target / 4 || count == self.target_rows {
                self.target_rows = (count * target / block.len().max(1)).clamp(MIN_TARGET_ROWS, MAX_TARGET_ROWS);
            }
            let result = sink(batch.steps[start], &block);
            if result.is_err() {
                self.block = block;
                return result;
            }
            start += count;
        }
        self.block = block;
        Ok(())
    }

    /// Encodes rows `range` of `batch` as one block appended to `out`.
    ///
    /// The range must be non-empty and its steps strictly increasing (a `RowBatch` guarantees it).
    pub(crate) fn encode(&mut self, batch: &RowBatch, range: std::ops::Range<usize>, out: &mut Vec<u8>) {
        debug_assert!(!range.is_empty());
        let rows = range.len();
        let first_step = batch.steps[range.start];
        let last_step = batch.steps[range.end - 1];

        self.used = 0;
        for (local, index) in range.clone().enumerate() {
            let (_, metrics, values) = batch.row(index);
            // `local` < BLOCK_ROWS-sized ranges, far below u32::MAX.
            #[allow(clippy::cast_possible_truncation)]
            let local = local as u32;
            for (&metric, &value) in metrics.iter().zip(values) {
                let slot = metric as usize;
                if slot >= self.column_of.len() {
                    self.column_of.resize(slot + 1, 0);
                }
                let column = if self.column_of[slot] == 0 {
                    if self.used == self.columns.len() {
                        self.columns.push(ColumnBuild::default());
                    }
                    let column = &mut self.columns[self.used];
                    column.metric = metric;
                    column.rows.clear();
                    column.values.clear();
                    self.used += 1;
                    #[allow(clippy::cast_possible_truncation)]
                    let index = self.used as u32;
                    self.column_of[slot] = index;
                    column
                } else {
                    &mut self.columns[self.column_of[slot] as usize - 1]
                };
                if column.rows.last() == Some(&local) {
                    // A metric given twice in one (merged) row: the later value wins.
                    if let Some(last) = column.values.last_mut() {
                        *last = value;
                    }
                } else {
                    column.rows.push(local);
                    column.values.push(value);
                }
            }
        }
        for column in &self.columns[..self.used] {
            self.column_of[column.metric as usize] = 0;
        }
        self.columns[..self.used].sort_unstable_by_key(|column| column.metric);

        out.push(TAG);
        put_varint(out, rows as u64);
        put_varint(out, first_step);
        put_varint(out, last_step - first_step);
        if last_step - first_step == rows as u64 - 1 {
            out.push(0);
        } else {
            out.push(1);
            for pair in batch.steps[range].windows(2) {
                put_varint(out, pair[1] - pair[0] - 1);
            }
        }
        put_varint(out, self.used as u64);
        for column in &self.columns[..self.used] {
            put_varint(out, u64::from(column.metric));
            let predictor = xor::choose(&column.values);
            self.stream.clear();
            xor::encode(&column.values, predictor, &mut self.stream);
            let stream = &self.stream;
            let dense = column.rows.len() == rows;
            out.push(u8::from(!dense) | ((predictor as u8) << 1));
            if !dense {
                let start = out.len();
                out.resize(start + rows.div_ceil(8), 0);
                for &row in &column.rows {
                    out[start + row as usize / 8] |= 1 << (row % 8);
                }
            }
            put_varint(out, stream.len() as u64);
            out.extend_from_slice(stream);
        }
    }
}

/// One decoded column.
#[derive(Default, Debug)]
pub(crate) struct Column {
    pub(crate) metric: u32,
    /// Presence bitmap, one bit per row; `None` when the metric is in every row.
    pub(crate) present: Option<Vec<u8>>,
    pub(crate) values: Vec<f64>,
}

impl Column {
    #[inline]
    pub(crate) fn has_row(&self, row: usize) -> bool {
        self.present.as_ref().is_none_or(|bits| bits[row / 8] & (1 << (row % 8)) != 0)
    }
}

/// A block decoded into memory; reused from block to block by readers.
#[derive(Default, Debug)]
pub(crate) struct DecodedBlock {
    pub(crate) steps: Vec<u64>,
    pub(crate) columns: Vec<Column>,
    used: usize,
}

impl DecodedBlock {
    pub(crate) fn columns(&self) -> &[Column] {
        &self.columns[..self.used]
    }

    /// Converts the block back into rows (for re-encoding it together with new rows).
    pub(crate) fn append_to(&self, batch: &mut RowBatch) {
        let columns = self.columns();
        let mut cursor = vec![0usize; columns.len()];
        let mut points = Vec::with_capacity(columns.len());
        for (row, &step) in self.steps.iter().enumerate() {
            points.clear();
            for (column, next) in columns.iter().zip(cursor.iter_mut()) {
                if column.has_row(row) {
                    points.push((column.metric, column.values[*next]));
                    *next += 1;
                }
            }
            batch.push_row(step, &points);
        }
    }
}

fn read_steps(reader: &mut ByteReader<'_>, header: BlockHeader, steps: &mut Vec<u64>) -> Result<(), Corrupt> {
    steps.clear();
    steps.reserve(header.rows);
    match reader.byte()? {
        0 => {
            if header.last_step - header.first_step != header.rows as u64 - 1 {
                return Err(Corrupt("contiguous block spans the wrong number of steps"));
            }
            steps.extend(header.first_step..=header.last_step);
        }
        1 => {
            let mut step = header.first_step;
            steps.push(step);
            for _ in 1..header.rows {
                let gap = reader.varint()?;
                step = step.checked_add(gap).and_then(|s| s.checked_add(1)).ok_or(Corrupt("block steps overflow"))?;
                steps.push(step);
            }
            if step != header.last_step {
                return Err(Corrupt("block steps do not end at its last step"));
            }
        }
        _ => return Err(Corrupt("unknown step mode")),
    }
    Ok(())
}

/// A column's layout, read before its values.
struct ColumnHead<'a> {
    metric: u32,
    predictor: Predictor,
    present: Option<&'a [u8]>,
    count: usize,
    stream: &'a [u8],
}

fn read_column<'a>(reader: &mut ByteReader<'a>, rows: usize) -> Result<ColumnHead<'a>, Corrupt> {
    let metric = u32::try_from(reader.varint()?).map_err(|_| Corrupt("metric id out of range"))?;
    let flags = reader.byte()?;
    if flags >> 4 != 0 {
        return Err(Corrupt("unknown column flags"));
    }
    let predictor = Predictor::from_tag((flags >> 1) & 0b111)?;
    let (present, count) = if flags & 1 == 1 {
        let bits = reader.bytes(rows.div_ceil(8))?;
        if !rows.is_multiple_of(8) && bits[bits.len() - 1] >> (rows % 8) != 0 {
            return Err(Corrupt("presence bitmap marks rows past the end"));
        }
        let count = bits.iter().map(|b| b.count_ones() as usize).sum();
        (Some(bits), count)
    } else {
        (None, rows)
    };
    let len = usize::try_from(reader.varint()?).map_err(|_| Corrupt("stream length out of range"))?;
    let stream = reader.bytes(len)?;
    Ok(ColumnHead { metric, predictor, present, count, stream })
}

/// Decodes a whole block into `out`, validating everything a hostile file could get wrong.
pub(crate) fn decode(bytes: &[u8], out: &mut DecodedBlock) -> Result<BlockHeader, Corrupt> {
    let mut reader = ByteReader::new(bytes);
    let header = read_header(&mut reader)?;
    read_steps(&mut reader, header, &mut out.steps)?;
    let columns = reader.varint_at_most(MAX_COLUMNS, "block has too many columns")?;
    out.used = 0;
    let mut previous_metric = None;
    for _ in 0..columns {
        let head = read_column(&mut reader, header.rows)?;
        if previous_metric.is_some_and(|previous| head.metric <= previous) {
            return Err(Corrupt("block columns are not in metric order"));
        }
        previous_metric = Some(head.metric);
        if out.used == out.columns.len() {
            out.columns.push(Column::default());
        }
        let column = &mut out.columns[out.used];
        out.used += 1;
        column.metric = head.metric;
        column.values.clear();
        match head.present {
            Some(bits) => {
                let buffer = column.present.get_or_insert_with(Vec::new);
                buffer.clear();
                buffer.extend_from_slice(bits);
            }
            None => column.present = None,
        }
        xor::decode(head.stream, head.count, head.predictor, &mut column.values)?;
    }
    if !reader.is_empty() {
        return Err(Corrupt("block has trailing bytes"));
    }
    Ok(header)
}

/// Decodes the steps of a block only.
pub(crate) fn decode_steps(bytes: &[u8], steps: &mut Vec<u64>) -> Result<BlockHeader, Corrupt> {
    let mut reader = ByteReader::new(bytes);
    let header = read_header(&mut reader)?;
    read_steps(&mut reader, header, steps)?;
    Ok(header)
}

/// The metric ids a block has columns for, read from the column headers alone.
pub(crate) fn metric_ids(bytes: &[u8], out: &mut Vec<u32>) -> Result<BlockHeader, Corrupt> {
    let mut reader = ByteReader::new(bytes);
    let header = read_header(&mut reader)?;
    match reader.byte()? {
        0 => {}
        1 => {
            for _ in 1..header.rows {
                reader.varint()?;
            }
        }
        _ => return Err(Corrupt("unknown step mode")),
    }
    let columns = reader.varint_at_most(MAX_COLUMNS, "block has too many columns")?;
    out.clear();
    for _ in 0..columns {
        out.push(read_column(&mut reader, header.rows)?.metric);
    }
    Ok(header)
}

/// Decodes the steps and the values of one metric only, appending `(step, value)` pairs.
pub(crate) fn decode_metric(
    bytes: &[u8],
    metric: u32,
    steps: &mut Vec<u64>,
    values: &mut Vec<f64>,
    out: &mut Vec<(u64, f64)>,
) -> Result<BlockHeader, Corrupt> {
    let mut reader = ByteReader::new(bytes);
    let header = read_header(&mut reader)?;
    read_steps(&mut reader, header, steps)?;
    let columns = reader.varint_at_most(MAX_COLUMNS, "block has too many columns")?;
    for _ in 0..columns {
        let head = read_column(&mut reader, header.rows)?;
        if head.metric != metric {
            continue;
        }
        values.clear();
        xor::decode(head.stream, head.count, head.predictor, values)?;
        match head.present {
            None => out.extend(steps.iter().copied().zip(values.iter().copied())),
            Some(bits) => {
                let present = steps
                    .iter()
                    .enumerate()
                    .filter(|(row, _)| bits[row / 8] & (1 << (row % 8)) != 0)
                    .map(|(_, &step)| step);
                out.extend(present.zip(values.iter().copied()));
            }
        }
        break;
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RowBatch {
        let mut batch = RowBatch::default();
        for step in 0..1000u64 {
            #[allow(clippy::cast_precision_loss)]
            let x = step as f64;
            let mut points = vec![(0, 2.0 / (1.0 + 0.001 * x)), (2, x.sin())];
            if step % 10 == 0 {
                points.push((7, f64::NAN));
            }
            let step = if step > 500 { step * 3 } else { step };
            batch.push_row(step, &points);
        }
        batch
    }

    #[test]
    fn blocks_round_trip_through_rows() {
        let batch = sample();
        let mut bytes = Vec::new();
        Encoder::default().encode(&batch, 0..batch.rows(), &mut bytes);
        let mut decoded = DecodedBlock::default();
        let header = decode(&bytes, &mut decoded).unwrap();
        assert_eq!(header.rows, 1000);
        assert_eq!(header.last_step, 999 * 3);
        let mut back = RowBatch::default();
        decoded.append_to(&mut back);
        assert_eq!(back.steps, batch.steps);
        let bits = |values: &[f64]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.values).len(), bits(&batch.values).len());
        for row in 0..batch.rows() {
            let (_, m1, v1) = batch.row(row);
            let (_, m2, v2) = back.row(row);
            let mut expected: Vec<_> = m1.iter().zip(bits(v1)).collect();
            expected.sort();
            let actual: Vec<_> = m2.iter().zip(bits(v2)).collect();
            assert_eq!(actual, expected);
        }
        let mut series = Vec::new();
        decode_metric(&bytes, 7, &mut Vec::new(), &mut Vec::new(), &mut series).unwrap();
        assert_eq!(series.len(), 100);
        assert!(series.iter().all(|(_, v)| v.is_nan()));
    }

    #[test]
    fn a_metric_repeated_in_a_row_keeps_the_later_value() {
        let mut batch = RowBatch::default();
        batch.push_row(4, &[(1, 1.0), (1, 2.0)]);
        let mut bytes = Vec::new();
        Encoder::default().encode(&batch, 0..1, &mut bytes);
        let mut series = Vec::new();
        decode_metric(&bytes, 1, &mut Vec::new(), &mut Vec::new(), &mut series).unwrap();
        assert_eq!(series, vec![(4, 2.0)]);
    }

    #[test]
    fn damaged_blocks_are_errors_not_panics() {
        let batch = sample();
        let mut bytes = Vec::new();
        Encoder::default().encode(&batch, 0..batch.rows(), &mut bytes);
        let mut decoded = DecodedBlock::default();
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], &mut decoded).is_err(), "cut at {cut}");
        }
        for position in (0..bytes.len()).step_by(7) {
            let mut flipped = bytes.clone();
            flipped[position] ^= 0x5A;
            // A flip may still decode (to other values); it must never panic.
            let _ = decode(&flipped, &mut decoded);
        }
    }
}
