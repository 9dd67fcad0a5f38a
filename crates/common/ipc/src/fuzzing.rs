//! Entry point shared by the `ipc_decode` fuzz target and the corpus-replay test.
//!
//! Contract checked on every input: `decode` never panics, and any message it accepts encodes
//! again and decodes to the same value (the decoder only produces canonical messages).

use crate::{MAX_MESSAGE_LEN, decode, encode_versioned};

/// Decodes `data`; if it decodes, re-encodes with the same version and checks the round trip.
pub fn fuzz_decode(data: &[u8]) {
    let Ok(first) = decode(data) else { return };
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    let h = first.header;
    let n = match encode_versioned(&first.message, h.major, h.minor, &mut buf) {
        Ok(n) => n,
        Err(e) => panic!(
            "decoded message does not re-encode: {e} ({:?})",
            first.message
        ),
    };
    let again = decode(&buf[..n]).expect("re-encoded message must decode");
    assert_eq!(
        again.message, first.message,
        "round trip changed the message"
    );
    assert!(
        n <= data.len(),
        "canonical encoding is never longer than the input"
    );
}
