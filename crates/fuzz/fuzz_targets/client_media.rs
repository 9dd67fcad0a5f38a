//! Fuzz target: the client's media receive path (prefix, seal, header, reassembler, FEC,
//! verification, loss accounting) through `strahl-client`'s sans-IO receiver, fed a script of
//! honest sealed frames, network faults, forgeries and key-holder shards; the invariants are
//! checked inside `fuzz_media`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strahl_client::fuzzing::fuzz_media(data);
});
