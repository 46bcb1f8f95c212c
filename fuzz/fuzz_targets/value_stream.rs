//! Fuzz target `value_stream`: see `runstore::fuzzing::value_stream`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    runstore::fuzzing::value_stream(data);
});
