//! The redb tables of a run database. See `docs/design.md` for what each holds.

use redb::TableDefinition;

/// Small records by name: [`KEY_FORMAT`], [`KEY_RUN`], [`KEY_PROGRESS`].
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Interned metric names: id → name. Ids are dense, starting at 0, never reused.
pub(crate) const METRICS: TableDefinition<u32, &str> = TableDefinition::new("metrics");

/// Attempts by number (1, 2, …), postcard-encoded [`super::records::AttemptRecord`]s.
pub(crate) const ATTEMPTS: TableDefinition<u32, &[u8]> = TableDefinition::new("attempts");

/// History blocks keyed by their first step; see [`super::block`].
pub(crate) const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");

/// Archived branches by id (0, 1, …): postcard [`super::records::BranchRecord`]s, one per rewind
/// that moved rows out of the live history.
pub(crate) const BRANCHES: TableDefinition<u32, &[u8]> = TableDefinition::new("branches");

/// The blocks of archived branches, keyed by (branch id, first step); same encoding as
/// [`BLOCKS`].
pub(crate) const ARCHIVE: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("archive");

/// The run format version, a little-endian `u32`.
pub(crate) const KEY_FORMAT: &str = "format";

/// The run's identity and configuration, a JSON [`super::records::RunRecord`].
pub(crate) const KEY_RUN: &str = "run";

/// State, step counter and summary, a postcard [`super::records::Progress`]. Rewritten by every
/// commit that adds rows, in the same transaction.
pub(crate) const KEY_PROGRESS: &str = "progress";
