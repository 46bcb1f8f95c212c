//! Fuzz target `rows`: see `runstore::fuzzing::rows`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    runstore::fuzzing::rows(data);
});
