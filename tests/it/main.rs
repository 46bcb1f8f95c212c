//! Integration tests of runstore, one module per behaviour, in one binary to keep builds short.
//! Child processes re-run this binary on one of the ignored tests in `children`.

// Exact comparisons are the point: values must round-trip bit for bit.
#![allow(clippy::float_cmp)]

mod bad_input;
mod checkpoints;
mod children;
mod cluster_locks;
mod crash_harness;
mod crash_recovery;
mod damage;
mod damaged_files;
mod fixture;
mod full_disk;
mod history;
mod hostile_input;
mod journal;
mod live_reader;
mod lock_contention;
mod overview;
mod preemption;
mod races;
mod resume_policy;
mod rewind_fork;
mod snapshots;
mod support;
mod system_metrics;
mod system_series;
