//! Fuzz target: the `strahl/1` control stream (framing + every message decoder).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strahl_native::fuzzing::fuzz_control(data);
});
