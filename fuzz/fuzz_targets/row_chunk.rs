//! Fuzz target `row_chunk`: see `runstore::fuzzing::row_chunk`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    runstore::fuzzing::row_chunk(data);
});
