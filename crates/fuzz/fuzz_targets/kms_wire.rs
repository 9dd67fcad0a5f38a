//! Fuzz target: the KMS capture helper's socket messages — frame metadata, the data plane's mode
//! request, the helper's reply (decode, then re-encode round trip).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strahl_capture::fuzzing::fuzz_kms_wire(data);
});
