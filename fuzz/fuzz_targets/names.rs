//! Fuzz target `names`: see `runstore::fuzzing::names`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    runstore::fuzzing::names(data);
});
