//! Fuzz target: the pairing state machine driven by hostile stage parameters.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strahl_gamestream::fuzzing::fuzz_pair(data);
});
