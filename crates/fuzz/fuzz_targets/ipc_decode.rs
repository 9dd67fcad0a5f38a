//! Fuzz target: the IPC decoder must never panic on hostile datagrams, and anything it accepts
//! must re-encode to the same message (checked inside `fuzz_decode`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strahl_ipc::fuzzing::fuzz_decode(data);
});
