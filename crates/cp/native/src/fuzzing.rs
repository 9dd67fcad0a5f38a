//! Fuzz entry points, shared by the cargo-fuzz targets and the corpus-replay test.
//!
//! Contract: each function accepts any bytes and never panics on its own account; it asserts
//! the codec's invariants (a decoded message re-encodes to something that decodes to itself;
//! the stream reader never holds more than one frame's bound). An assertion failure here is a
//! bug found.

use crate::msg::{Message, decode, decode_body, encode};
use crate::wire::{FrameReader, MAX_BODY};

/// `native_control`: the input is a control stream, delivered in chunks whose sizes the first
/// byte picks; every frame read from it is decoded and round-tripped.
pub fn fuzz_control(data: &[u8]) {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut reader = FrameReader::new();
    for piece in rest.chunks(chunk) {
        reader.push(piece);
        loop {
            match reader.next_frame() {
                Ok(Some((t, body))) => check(t, &body),
                Ok(None) => break,
                // A framing error ends the stream (the shell closes the connection).
                Err(_) => return,
            }
        }
        assert!(reader.pending() <= MAX_BODY + 16 + chunk);
    }
}

fn check(t: u64, body: &[u8]) {
    let Ok(m) = decode_body(t, body) else {
        return;
    };
    if matches!(m, Message::Unknown(_)) {
        return;
    }
    let again = decode(&encode(&m)).expect("a decoded message re-encodes validly");
    assert_eq!(again, m);
}
