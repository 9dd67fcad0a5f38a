//! Fuzz target: the incremental RTSP request parser (Moonlight dialect).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strahl_rtsp::fuzzing::fuzz_request(data);
});
