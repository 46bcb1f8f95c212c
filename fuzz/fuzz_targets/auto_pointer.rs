//! Fuzz target `auto_pointer`: see `runstore::fuzzing::auto_pointer`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    runstore::fuzzing::auto_pointer(data);
});
