//! Native `strahl/1` media: wire format ([`wire`]), sender ([`NativePacketizer`]) and receiver
//! ([`Reassembler`], shared with the client). The byte layout is documented in [`wire`] and in
//! `docs/strahl1-wire.md`.

pub mod check;
pub mod packetizer;
pub mod reassembler;
pub mod wire;

pub use check::{CHECK_HEADER_LEN, CheckError, fill_checkable, verify_checkable};
pub use packetizer::{FrameMeta, FrameShape, NativeConfig, NativeFrame, NativePacketizer};
pub use reassembler::{Accepted, Anomaly, Frame, Reassembler, ReassemblerConfig};
pub use wire::{OVERHEAD, shard_len_for_mtu, shard_len_for_udp_payload};
