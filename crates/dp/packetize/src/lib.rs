//! `strahl-packetize`: sans-IO packetizers for both wire protocols, and the native reassembler.
//!
//! Contract:
//! - Everything here takes bytes (and, on the receive side, `now` as a [`Duration`] since an
//!   arbitrary origin) and returns results; no sockets, clocks or threads.
//! - Senders write each packet into a caller-owned `&mut [u8]` (a transport's TX frame) and return
//!   how many bytes it uses. FEC parity and sealing happen in place; the only scratch memory is
//!   owned by the packetizer and reused, so the steady state allocates nothing per packet or per
//!   frame (proved by `tests/no_alloc.rs` with a counting global allocator).
//! - [`native`]: the `strahl/1` datagram (`docs/strahl1-wire.md`), [`native::NativePacketizer`]
//!   (GF(2^16), one block per frame, AES-128-GCM per datagram) and [`native::Reassembler`]
//!   (hostile input, hard memory bound, in-order delivery, every anomaly counted).
//! - [`gamestream`]: byte-exact GameStream video (`gamestream-host.md` §A14–A16) that never sends
//!   a frame without FEC, and GameStream audio with its 4+2 FEC (§A17).
//! - [`stats`]: plain `u64` counter structs, one per packetizer / reassembler.
//! - `fuzzing` (feature `fuzzing`, off in shipped builds): the entry points the cargo-fuzz
//!   targets and the corpus-replay test call.
//!
//! [`Duration`]: std::time::Duration
#![forbid(unsafe_code)]

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod gamestream;
pub mod native;
pub mod stats;

mod recycle;

use strahl_fec::FecError;
use strahl_seal::SealError;

/// Why a packetizer refused a frame or a packet. Everything here is a local condition (caller
/// input or configuration); peer misbehaviour is never an error of the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketizeError {
    /// An access unit must hold at least one byte.
    EmptyAccessUnit,
    /// The access unit does not fit the protocol's per-frame limits; the encoder must cap its
    /// frame size (see `max_access_unit_bytes`).
    FrameTooLarge { bytes: usize, max: usize },
    /// The caller's packet buffer cannot hold the next packet.
    BufferTooSmall { needed: usize, got: usize },
    /// A call out of the frame's order (e.g. parity requested before every data packet).
    OutOfOrder,
    /// The FEC layer refused a shape (a bug guard: shapes are validated before).
    Fec(FecError),
    /// Sealing failed (key exhausted).
    Seal(SealError),
}

impl std::fmt::Display for PacketizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PacketizeError::EmptyAccessUnit => f.write_str("empty access unit"),
            PacketizeError::FrameTooLarge { bytes, max } => {
                write!(
                    f,
                    "access unit of {bytes} bytes exceeds the per-frame limit of {max}"
                )
            }
            PacketizeError::BufferTooSmall { needed, got } => {
                write!(f, "packet buffer of {got} bytes, {needed} needed")
            }
            PacketizeError::OutOfOrder => f.write_str("packet requested out of the frame's order"),
            PacketizeError::Fec(e) => write!(f, "fec: {e}"),
            PacketizeError::Seal(e) => write!(f, "seal: {e}"),
        }
    }
}

impl std::error::Error for PacketizeError {}

impl From<FecError> for PacketizeError {
    fn from(e: FecError) -> Self {
        PacketizeError::Fec(e)
    }
}

impl From<SealError> for PacketizeError {
    fn from(e: SealError) -> Self {
        PacketizeError::Seal(e)
    }
}

/// A configuration the packetizer cannot work with (checked once, at construction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub &'static str);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid packetizer configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}
