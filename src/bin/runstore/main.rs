//! The `runstore` command line.

fn main() {}
