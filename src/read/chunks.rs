//! The chunk tables one history segment reads: the live tables of a run database, or one
//! archived branch's part of the archive tables. Every lookup is one key-range query, so a
//! reader holds no open range between chunks.

use std::path::{Path, PathBuf};

use redb::ReadOnlyTable;

use crate::error::{Context, Result};
use crate::format::summary::ChunkSummary;
use crate::format::tables::{ARCHIVE_POINTS, ARCHIVE_ROWS, ARCHIVE_SUMMARIES, POINTS, ROWS, SUMMARIES};
use crate::read::history::{Segment, Table};

enum Kind {
    Live {
        rows: ReadOnlyTable<u64, &'static [u8]>,
        points: ReadOnlyTable<(u32, u64), &'static [u8]>,
        summaries: ReadOnlyTable<(u32, u64), &'static [u8]>,
    },
    Archive {
        branch: u32,
        rows: ReadOnlyTable<(u32, u64), &'static [u8]>,
        points: ReadOnlyTable<(u32, u32, u64), &'static [u8]>,
        summaries: ReadOnlyTable<(u32, u32, u64), &'static [u8]>,
    },
}

/// A chunk read: its key (first step) and bytes.
pub(crate) type Chunk = (u64, Vec<u8>);

/// The tables of one segment, opened in its transaction.
pub(crate) struct SegmentTables {
    path: PathBuf,
    kind: Kind,
}

/// An entry of a chunk table as a range yields it.
type Entry<'a, K> = (redb::AccessGuard<'a, K>, redb::AccessGuard<'a, &'static [u8]>);

/// Copies a range's entry out, its key reduced to the chunk's first step.
fn owned<K: redb::Key + 'static>(
    entry: Option<std::result::Result<Entry<'_, K>, redb::StorageError>>,
    path: &Path,
    first_step: impl Fn(K::SelfType<'_>) -> u64,
) -> Result<Option<Chunk>> {
    match entry.transpose().at(path)? {
        Some((key, value)) => Ok(Some((first_step(key.value()), value.value().to_vec()))),
        None => Ok(None),
    }
}

impl SegmentTables {
    pub(crate) fn open(segment: &Segment) -> Result<SegmentTables> {
        let (tx, path) = (&segment.tx, &segment.path);
        let kind = match segment.table {
            Table::Live => Kind::Live {
                rows: tx.open_table(ROWS).at(path)?,
                points: tx.open_table(POINTS).at(path)?,
                summaries: tx.open_table(SUMMARIES).at(path)?,
            },
            Table::Archive(branch) => Kind::Archive {
                branch,
                rows: tx.open_table(ARCHIVE_ROWS).at(path)?,
                points: tx.open_table(ARCHIVE_POINTS).at(path)?,
                summaries: tx.open_table(ARCHIVE_SUMMARIES).at(path)?,
            },
        };
        Ok(SegmentTables { path: path.clone(), kind })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The first row chunk whose key is in `from..=to`.
    pub(crate) fn next_rows(&self, from: u64, to: u64) -> Result<Option<Chunk>> {
        if from > to {
            return Ok(None);
        }
        let path = &self.path;
        match &self.kind {
            Kind::Live { rows, .. } => owned(rows.range(from..=to).at(path)?.next(), path, |key| key),
            Kind::Archive { branch, rows, .. } => {
                owned(rows.range((*branch, from)..=(*branch, to)).at(path)?.next(), path, |key| key.1)
            }
        }
    }

    /// The last row chunk whose key is at most `upto`.
    pub(crate) fn last_rows(&self, upto: u64) -> Result<Option<Chunk>> {
        let path = &self.path;
        match &self.kind {
            Kind::Live { rows, .. } => owned(rows.range(..=upto).at(path)?.next_back(), path, |key| key),
            Kind::Archive { branch, rows, .. } => {
                owned(rows.range((*branch, 0)..=(*branch, upto)).at(path)?.next_back(), path, |key| key.1)
            }
        }
    }

    /// The first point chunk of `metric` whose key is in `from..=to`.
    pub(crate) fn next_points(&self, metric: u32, from: u64, to: u64) -> Result<Option<Chunk>> {
        if from > to {
            return Ok(None);
        }
        let path = &self.path;
        match &self.kind {
            Kind::Live { points, .. } => {
                owned(points.range((metric, from)..=(metric, to)).at(path)?.next(), path, |key| key.1)
            }
            Kind::Archive { branch, points, .. } => {
                let range = points.range((*branch, metric, from)..=(*branch, metric, to)).at(path)?;
                owned(range.into_iter().next(), path, |key| key.2)
            }
        }
    }

    /// The last point chunk of `metric` whose key is at most `upto`.
    pub(crate) fn last_points(&self, metric: u32, upto: u64) -> Result<Option<Chunk>> {
        let path = &self.path;
        match &self.kind {
            Kind::Live { points, .. } => {
                owned(points.range((metric, 0)..=(metric, upto)).at(path)?.next_back(), path, |key| key.1)
            }
            Kind::Archive { branch, points, .. } => {
                let mut range = points.range((*branch, metric, 0)..=(*branch, metric, upto)).at(path)?;
                owned(range.next_back(), path, |key| key.2)
            }
        }
    }

    /// The key a scan of `metric`'s chunks for steps from `step` on starts at: that of the
    /// chunk holding `step`, if one starts before it.
    pub(crate) fn points_start(&self, metric: u32, step: u64) -> Result<u64> {
        Ok(self.last_points(metric, step)?.map_or(step, |(key, _)| key))
    }

    /// As [`SegmentTables::points_start`], for row chunks.
    pub(crate) fn rows_start(&self, step: u64) -> Result<u64> {
        Ok(self.last_rows(step)?.map_or(step, |(key, _)| key))
    }

    /// The key a scan of `metric`'s summaries for steps from `step` on starts at: that of the
    /// chunk holding `step`, if one starts before it. Reads one summary, not the chunk.
    pub(crate) fn summaries_start(&self, metric: u32, step: u64) -> Result<u64> {
        let path = &self.path;
        let key = match &self.kind {
            Kind::Live { summaries, .. } => {
                let last = summaries.range((metric, 0)..=(metric, step)).at(path)?.next_back().transpose().at(path)?;
                last.map(|(key, _)| key.value().1)
            }
            Kind::Archive { branch, summaries, .. } => {
                let mut range = summaries.range((*branch, metric, 0)..=(*branch, metric, step)).at(path)?;
                range.next_back().transpose().at(path)?.map(|(key, _)| key.value().2)
            }
        };
        Ok(key.unwrap_or(step))
    }

    /// The summaries of `metric`'s chunks whose keys are in `from..=to`, in step order.
    pub(crate) fn summaries(&self, metric: u32, from: u64, to: u64) -> Result<Vec<(u64, ChunkSummary)>> {
        let path = &self.path;
        let mut out = Vec::new();
        if from > to {
            return Ok(out);
        }
        match &self.kind {
            Kind::Live { summaries, .. } => {
                for entry in summaries.range((metric, from)..=(metric, to)).at(path)? {
                    let (key, value) = entry.at(path)?;
                    out.push((key.value().1, ChunkSummary::decode(value.value()).at(path)?));
                }
            }
            Kind::Archive { branch, summaries, .. } => {
                for entry in summaries.range((*branch, metric, from)..=(*branch, metric, to)).at(path)? {
                    let (key, value) = entry.at(path)?;
                    out.push((key.value().2, ChunkSummary::decode(value.value()).at(path)?));
                }
            }
        }
        Ok(out)
    }
}
