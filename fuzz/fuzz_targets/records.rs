//! Fuzz target `records`: see `runstore::fuzzing::records`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    runstore::fuzzing::records(data);
});
