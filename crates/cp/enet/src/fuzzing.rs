//! Fuzz entry points (cargo-fuzz targets and the corpus replay test call these). Each must
//! return without panicking for any input.

use std::time::Instant;

use strahl_seal::gamestream::{ControlCipher, Role};

use crate::session::ControlSession;

/// The fixed key the fuzz targets and seeds share.
pub const FUZZ_KEY: [u8; 16] = *b"strahl-fuzz-key!";

/// Decode one 0x0206 input payload.
pub fn fuzz_input(data: &[u8]) {
    let _ = strahl_input::wire::decode(data);
}

/// Feed `data` to a fresh host session as one control packet, twice: raw (exercises the
/// framing and authentication checks) and, so the fuzzer also reaches the message decoders,
/// re-sealed as the plaintext of a valid client packet.
pub fn fuzz_control_frame(data: &[u8]) {
    let now = Instant::now();
    let mut s = ControlSession::new(&FUZZ_KEY, now);
    let _ = s.on_packet(data, now);
    if data.len() <= ControlCipher::MAX_PLAINTEXT_LEN {
        let mut s = ControlSession::new(&FUZZ_KEY, now);
        let mut c = ControlCipher::new(&FUZZ_KEY, Role::Client);
        let mut pkt = Vec::new();
        if c.seal(data, &mut pkt).is_ok() {
            let _ = s.on_packet(&pkt, now);
        }
    }
}
