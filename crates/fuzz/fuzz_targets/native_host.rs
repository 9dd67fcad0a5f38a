//! Fuzz target: the host's `strahl/1` connection state machine (pairing and session paths).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strahl_native::fuzzing::fuzz_host(data);
});
