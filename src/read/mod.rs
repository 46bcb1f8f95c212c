//! The reading side: a [`RunReader`](reader::RunReader) reads a run's records, `history` streams
//! its rows (through a fork's ancestors), and `check` verifies runs and stores.

pub(crate) mod check;
pub(crate) mod chunks;
pub(crate) mod history;
pub(crate) mod overview;
pub(crate) mod reader;
pub(crate) mod snapshot;
