//! Tests of the `runstore` command line through the real binary, one module per behaviour, in
//! one test binary. The library's own tests (`../tests/it`) share their helpers and child
//! processes with these: `support`, `children` and `damage` are the same files.

// Exact comparisons are the point: values must round-trip bit for bit.
#![allow(clippy::float_cmp)]

#[path = "../../../tests/it/children.rs"]
mod children;
mod cli;
mod cluster;
mod command;
#[path = "../../../tests/it/damage.rs"]
#[allow(dead_code)] // the library's damage tests use the rest
mod damage;
mod damaged_files;
mod hostile_input;
mod new_user;
mod queue_agent;
mod races;
mod readme;
mod serve;
mod serve_browser;
#[path = "../../../tests/it/support.rs"]
#[allow(dead_code)] // the library's tests use the rest
mod support;
mod system_metrics;
mod time_checkpoints;
