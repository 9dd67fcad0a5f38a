//! Fuzz target: a passthrough clip from disk (H.264/HEVC Annex-B or AV1 OBUs) — codec
//! detection, header readers, AU split, key detection, parameter-set insertion.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strahl_capture::fuzzing::fuzz_clip(data);
});
