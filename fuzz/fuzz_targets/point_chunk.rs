//! Fuzz target `point_chunk`: see `runstore::fuzzing::point_chunk`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    runstore::fuzzing::point_chunk(data);
});
