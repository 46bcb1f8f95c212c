//! The redb tables of a run database (format 2). See `docs/design.md` for what each holds.

use redb::TableDefinition;

/// Small records by name: [`KEY_FORMAT`], [`KEY_RUN`], [`KEY_PROGRESS`], [`KEY_JOURNAL`].
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Interned metric names: id → name. Ids are dense, starting at 0, never reused.
pub(crate) const METRICS: TableDefinition<u32, &str> = TableDefinition::new("metrics");

/// Attempts by number (1, 2, …), postcard-encoded [`super::records::AttemptRecord`]s.
pub(crate) const ATTEMPTS: TableDefinition<u32, &[u8]> = TableDefinition::new("attempts");

/// The live history's row chunks (steps and times, see [`super::row_chunk`]) by first step.
pub(crate) const ROWS: TableDefinition<u64, &[u8]> = TableDefinition::new("rows");

/// The live history's point chunks (one metric's steps and values, see
/// [`super::point_chunk`]) by (metric id, first step).
pub(crate) const POINTS: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("points");

/// The 64-byte [`super::summary::ChunkSummary`] of each point chunk, same key.
pub(crate) const SUMMARIES: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("summaries");

/// Archived branches by id (0, 1, …): postcard [`super::records::BranchRecord`]s, one per rewind
/// that moved rows out of the live history.
pub(crate) const BRANCHES: TableDefinition<u32, &[u8]> = TableDefinition::new("branches");

/// Row chunks of archived branches by (branch, first step).
pub(crate) const ARCHIVE_ROWS: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("archive_rows");

/// Point chunks of archived branches by (branch, metric, first step).
pub(crate) const ARCHIVE_POINTS: TableDefinition<(u32, u32, u64), &[u8]> = TableDefinition::new("archive_points");

/// The summaries of [`ARCHIVE_POINTS`], same key.
pub(crate) const ARCHIVE_SUMMARIES: TableDefinition<(u32, u32, u64), &[u8]> = TableDefinition::new("archive_summaries");

/// Checkpoints by sequence number (0, 1, …): postcard [`super::records::CheckpointRecord`]s.
pub(crate) const CHECKPOINTS: TableDefinition<u32, &[u8]> = TableDefinition::new("checkpoints");

/// Time chunks of time-indexed series (see [`super::time_chunk`]) by (metric, first time ms).
pub(crate) const SAMPLES: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("samples");

/// The summaries of [`SAMPLES`], same key (steps stand for times).
pub(crate) const SAMPLE_SUMMARIES: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("sample_summaries");

/// The run format version, a little-endian `u32`.
pub(crate) const KEY_FORMAT: &str = "format";

/// The run's identity and configuration, a JSON [`super::records::RunRecord`].
pub(crate) const KEY_RUN: &str = "run";

/// State, step counter and summary, a postcard [`super::records::Progress`]. Rewritten by every
/// commit that adds rows, in the same transaction.
pub(crate) const KEY_PROGRESS: &str = "progress";

/// Where the records of the run's journal that no fold took start, a postcard
/// [`super::journal::JournalMark`]; only while a writer with `Durability::EveryLog` uses the
/// journal (and after it crashed, until its records are replayed).
pub(crate) const KEY_JOURNAL: &str = "journal";
