//! Fuzz target: the ANNOUNCE SDP parser into typed stream parameters.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strahl_rtsp::fuzzing::fuzz_sdp(data);
});
