//! Fuzz target: a scripted session (real packetizer, lossy/reordering/duplicating/corrupting
//! network, hand-made authenticated shards, time steps) against the strahl/1 reassembler: memory
//! bound, in-order delivery and exact frame content are checked inside `fuzz_reassembler`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    strahl_packetize::fuzzing::fuzz_reassembler(data);
});
