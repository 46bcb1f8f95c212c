//! Fuzz target `block`: see `runstore::fuzzing::block`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    runstore::fuzzing::block(data);
});
