//! The writing side: a live [`Run`](run::Run) buffers rows from the hot loop (`interner` turns
//! metric names into ids), a background flusher hands them to the run database's `writer`, and
//! `signals` lets SIGTERM/SIGINT flush and mark a run preempting.

pub(crate) mod chunks;
pub(crate) mod interner;
pub(crate) mod journal;
pub(crate) mod run;
pub(crate) mod signals;
pub(crate) mod writer;
