//! Fuzz target `journal`: see `runstore::fuzzing::journal`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    runstore::fuzzing::journal(data);
});
