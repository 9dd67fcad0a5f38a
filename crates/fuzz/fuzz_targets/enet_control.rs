//! Fuzz target: the encrypted control-V2 framing and the control message decoders.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strahl_enet::fuzzing::fuzz_control_frame(data);
});
