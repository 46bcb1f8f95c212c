//! Preemptible sweeps: a `queue` of run specs claimed under OS locks, filled from a search
//! `space` (grid or seeded random draws).

mod command;
pub(crate) mod items;
pub(crate) mod queue;
pub(crate) mod space;
