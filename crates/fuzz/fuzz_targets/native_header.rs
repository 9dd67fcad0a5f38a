//! Fuzz target: strahl/1 prefix + sealed-header parsing, and an authenticated hostile header fed
//! to a fresh reassembler (checks inside `fuzz_native_header`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strahl_packetize::fuzzing::fuzz_native_header(data);
});
