//! Fuzz target: the mDNS responder's query parser and answer builder (hostile datagrams on 5353).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strahl_gamestream::fuzzing::fuzz_mdns(data);
});
