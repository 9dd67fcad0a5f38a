//! Packet sealing.
//!
//! Contract (callers in `strahl-packetize`, the future client and the bench rely on these names):
//! - [`aead`]: one AES-128-GCM trait, [`aead::PacketAead`], with two backends measured side by side
//!   in the bench; [`aead::Backend::DEFAULT`] is the faster one on this machine.
//! - [`native`]: `strahl/1` sealing — nonce = IV xor packet number, per-direction keys, key update
//!   before 2^23 packets, and a receiver replay window.
//! - [`gamestream`]: the four GameStream ciphers (RTSP `rtspenc`, control V2, SS_ENC_VIDEO, audio
//!   AES-CBC with the rikeyid IV).
//!
//! All sealing is in place into caller-owned buffers; no per-packet allocation.
#![forbid(unsafe_code)]

pub mod aead;
pub mod gamestream;
pub mod native;

pub const KEY_LEN: usize = 16;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;

/// Why sealing or opening failed. `Forged`, `Replayed` and `TooShort` are peer misbehaviour
/// (count them, drop the packet); `KeyExhausted` is a local bug guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealError {
    /// Authentication failed: wrong key, tampered bytes, or wrong nonce.
    Forged,
    /// Packet number already seen or older than the replay window.
    Replayed { packet_number: u64 },
    /// The buffer is smaller than the framing requires.
    TooShort { needed: usize, got: usize },
    /// The key reached its packet limit and was not rotated (never reuse a nonce).
    KeyExhausted,
    /// Bad padding or length in a CBC / framed message.
    Malformed(&'static str),
}

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealError::Forged => f.write_str("authentication failed"),
            SealError::Replayed { packet_number } => write!(f, "replayed packet {packet_number}"),
            SealError::TooShort { needed, got } => write!(f, "buffer too short: {got} < {needed}"),
            SealError::KeyExhausted => f.write_str("key exhausted: rotate before sealing more"),
            SealError::Malformed(why) => write!(f, "malformed: {why}"),
        }
    }
}

impl std::error::Error for SealError {}
