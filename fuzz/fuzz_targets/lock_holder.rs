//! Fuzz target `lock_holder`: see `runstore::fuzzing::lock_holder`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    runstore::fuzzing::lock_holder(data);
});
