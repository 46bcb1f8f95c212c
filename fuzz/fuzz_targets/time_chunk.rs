//! Fuzz target `time_chunk`: see `runstore::fuzzing::time_chunk`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    runstore::fuzzing::time_chunk(data);
});
