//! TensorBoard event files: TFRecord framing (length, masked CRC32C) around `Event` protocol
//! buffers, one per row, with a scalar summary value per metric.
//!
//! Written by hand (the format is small and stable): `Event { wall_time = 1 (double), step = 2
//! (int64), file_version = 3 (string), summary = 5 (Summary) }`, `Summary { repeated Value value
//! = 1 }`, `Value { tag = 1 (string), simple_value = 2 (float) }`. TensorBoard stores scalars as
//! 32-bit floats, so values are rounded to `f32`; steps are exact.

use std::io::Write;
use std::path::{Path, PathBuf};

use runstore::{Attempt, History, RunSnapshot};

use crate::exit::Failure;
use crate::output;

/// CRC-32C (Castagnoli), reflected, as TFRecord uses.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut byte = 0u32;
    while byte < 256 {
        let mut crc = byte;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
            bit += 1;
        }
        table[byte as usize] = crc;
        byte += 1;
    }
    table
};

fn crc32c(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |crc, &byte| CRC_TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8))
}

/// TFRecord's masked CRC: rotated and offset, so that CRCs of CRCs do not look like CRCs.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xA282_EAD8)
}

// Truncation is the point: seven bits at a time.
#[allow(clippy::cast_possible_truncation)]
fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value & 0x7F) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A length-delimited field (wire type 2).
fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, field << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends one TFRecord holding `data`.
fn record(out: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    let length = (data.len() as u64).to_le_bytes();
    out.write_all(&length)?;
    out.write_all(&masked_crc(&length).to_le_bytes())?;
    out.write_all(data)?;
    out.write_all(&masked_crc(data).to_le_bytes())
}

/// Encodes an `Event` with `wall_time`, `step`, and either a file version or scalar values.
struct EventWriter {
    event: Vec<u8>,
    summary: Vec<u8>,
    value: Vec<u8>,
}

impl EventWriter {
    fn new() -> EventWriter {
        EventWriter { event: Vec::new(), summary: Vec::new(), value: Vec::new() }
    }

    fn header(&mut self, out: &mut impl Write, wall_time: f64) -> std::io::Result<()> {
        self.event.clear();
        self.event.push(0x09);
        self.event.extend_from_slice(&wall_time.to_le_bytes());
        bytes_field(&mut self.event, 3, b"brain.Event:2");
        record(out, &self.event)
    }

    #[allow(clippy::cast_possible_truncation)] // TensorBoard scalars are f32: documented
    fn scalars<'a>(
        &mut self,
        out: &mut impl Write,
        wall_time: f64,
        step: u64,
        values: impl Iterator<Item = (&'a str, f64)>,
    ) -> std::io::Result<()> {
        self.summary.clear();
        for (tag, value) in values {
            self.value.clear();
            bytes_field(&mut self.value, 1, tag.as_bytes());
            self.value.push(0x15);
            self.value.extend_from_slice(&(value as f32).to_le_bytes());
            bytes_field(&mut self.summary, 1, &self.value);
        }
        self.event.clear();
        self.event.push(0x09);
        self.event.extend_from_slice(&wall_time.to_le_bytes());
        self.event.push(0x10);
        // int64 on the wire: steps above i64::MAX wrap, as a protobuf int64 would store them.
        varint(&mut self.event, step);
        bytes_field(&mut self.event, 5, &self.summary);
        record(out, &self.event)
    }
}

/// Seconds since the epoch, to the millisecond, as TensorBoard's `wall_time`.
fn wall_time(time: std::time::SystemTime) -> f64 {
    time.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |since| since.as_secs_f64())
}

fn events_file(dir: &Path) -> PathBuf {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    dir.join(format!("events.out.tfevents.{now}.runstore"))
}

/// A system metric's samples: its name and its (time, value) pairs in time order.
type SystemSeries = (String, Vec<(std::time::SystemTime, f64)>);

/// Writes `history`, then the `system` samples, as one event file in `dir`; returns the rows
/// written.
fn write_history(
    dir: &Path,
    mut history: History,
    system: &[SystemSeries],
    metrics: &[String],
    attempts: &[Attempt],
    progress: &mut impl FnMut(u64),
) -> Result<u64, Failure> {
    std::fs::create_dir_all(dir).map_err(|source| Failure::Output { target: dir.display().to_string(), source })?;
    let path = events_file(dir);
    output::write_file(&path, |out| {
        let mut writer = EventWriter::new();
        let started = attempts.first().map_or(std::time::UNIX_EPOCH, |attempt| attempt.started_at);
        writer.header(out, wall_time(started))?;
        let mut rows = 0u64;
        while let Some(row) = history.next_row()? {
            let values = row.iter().filter(|(name, _)| metrics.is_empty() || metrics.iter().any(|m| m == name));
            // Each event has the time its row was logged.
            writer.scalars(out, wall_time(row.time()), row.step(), values)?;
            rows += 1;
            if rows.is_multiple_of(4096) {
                progress(rows);
            }
        }
        // A sample's step is its index in its series, as `sync` gives MLflow: samples are by
        // time, and TensorBoard's wall-time axis shows them as they were taken.
        for (name, samples) in system {
            for (index, &(time, value)) in (0u64..).zip(samples) {
                writer.scalars(out, wall_time(time), index, std::iter::once((name.as_str(), value)))?;
            }
        }
        Ok(rows)
    })
}

/// Exports run `reader` to `dir`: the live history and the system metrics in `dir`, each
/// archived branch in `dir/branch-<id>`, so TensorBoard shows them as runs side by side.
/// System samples are by time, not step: all of them go with the live history (a rewind leaves
/// them alone), whatever the step range; `metrics`, when given, selects them too.
pub fn export(
    reader: &RunSnapshot,
    dir: &Path,
    steps: std::ops::RangeInclusive<u64>,
    metrics: &[String],
    mut progress: impl FnMut(u64),
) -> Result<u64, Failure> {
    let attempts = reader.attempts()?;
    let mut system = Vec::new();
    for name in crate::system::names(reader)? {
        if metrics.is_empty() || metrics.contains(&name) {
            let samples = reader.system(&name, ..)?;
            system.push((name, samples));
        }
    }
    let live = reader.history(steps.clone())?;
    let mut rows = write_history(dir, live, &system, metrics, &attempts, &mut progress)?;
    for branch in reader.branches()? {
        let done = rows;
        let history = reader.branch_history(branch.id, steps.clone())?;
        rows +=
            write_history(&dir.join(format!("branch-{}", branch.id)), history, &[], metrics, &attempts, &mut |n| {
                progress(done + n);
            })?;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_published_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn a_record_frames_its_data_with_length_and_masked_crcs() {
        let mut out = Vec::new();
        record(&mut out, b"abc").unwrap();
        assert_eq!(out.len(), 8 + 4 + 3 + 4);
        assert_eq!(&out[..8], &3u64.to_le_bytes());
        assert_eq!(&out[12..15], b"abc");
        assert_eq!(u32::from_le_bytes(out[15..19].try_into().unwrap()), masked_crc(b"abc"));
    }
}
