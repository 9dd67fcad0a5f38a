//! The GameStream ciphers, from `gamestream-host.md` §A8, §A12, §A16, §A17.
//!
//! Contract:
//! - [`RtspCipher`] (§A8 `rtspenc`) and [`ControlCipher`] (§A12 control V2) are control-plane:
//!   they write into a caller-owned `Vec<u8>` that the caller reuses (cleared, then filled; it
//!   only grows to the largest message). RTSP frame parsing is sans-IO: [`RtspRead::NeedMore`]
//!   says how many bytes are needed, a malformed frame is a typed [`SealError`].
//! - [`VideoCipher`] (§A16) and [`AudioCipher`] (§A17) are per-packet data-plane paths: fixed
//!   caller buffers, no allocation.
//! - AES-128-GCM goes through [`crate::aead::PacketAead`] ([`Backend::DEFAULT`] unless a
//!   `with_backend` constructor says otherwise); AES-128-CBC is RustCrypto `aes` + `cbc`.
//! - Every sealing side refuses to wrap its counter ([`SealError::KeyExhausted`]): the counter is
//!   the nonce, and a repeated GCM nonce under rikey would leak the keystream and the GHASH key.
//!
//! All of it is checked against known-answer vectors from an independent implementation
//! (`kat/gen_vectors.py`, Python `cryptography`) in `tests/kat.rs`.

mod av;
mod control;
mod rtsp;
#[cfg(test)]
mod tests;

pub use av::{AudioCipher, VideoCipher};
pub use control::ControlCipher;
pub use rtsp::{RtspCipher, RtspRead};

#[cfg(doc)]
use crate::aead::Backend;

/// Which end of a GameStream session this cipher sits on. The host seals with the host→client
/// IV tag ('H') and opens the client's ('C'); a client (tests, a future native client) the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Host,
    Client,
}

impl Role {
    /// IV byte 10 for what this side sends.
    fn own_tag(self) -> u8 {
        match self {
            Role::Host => b'H',
            Role::Client => b'C',
        }
    }

    /// IV byte 10 for what the peer sends.
    fn peer_tag(self) -> u8 {
        match self {
            Role::Host => b'C',
            Role::Client => b'H',
        }
    }
}

/// IV shared by RTSP and control V2: seq LE in bytes 0–3, zeros in 4–9, then `side`, `channel`.
fn seq_iv(seq: u32, side: u8, channel: u8) -> [u8; crate::NONCE_LEN] {
    let mut iv = [0u8; crate::NONCE_LEN];
    iv[..4].copy_from_slice(&seq.to_le_bytes());
    iv[10] = side;
    iv[11] = channel;
    iv
}
