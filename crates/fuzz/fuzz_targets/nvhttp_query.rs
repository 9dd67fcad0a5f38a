//! Fuzz target: the nvhttp query-string parser (hostile GET parameters).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strahl_gamestream::fuzzing::fuzz_query(data);
});
