//! Fuzz target: the input-packet decoder (payload of control message 0x0206).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strahl_enet::fuzzing::fuzz_input(data);
});
