//! The seam between the tx tile and a wire protocol: [`StreamPacketizer`].
//!
//! Contract:
//! - A stream packetizer turns one unit (an access unit, an Opus packet — a [`Slot`] the tile
//!   took from the stream's ring) into datagrams, written one at a time straight into transport
//!   frames the tile owns. The tile knows nothing of the protocol: it asks [`begin`] what the
//!   unit will cost (packets and wire bytes: the pacer's backlog), then calls [`next_packet`]
//!   with each frame's payload area until it returns `None`.
//! - FEC parity and sealing happen inside the packetizer, in its own preallocated scratch or in
//!   the caller's buffer; nothing allocates per packet or per unit.
//! - Units of one stream are packetized strictly one after another (`begin` after the previous
//!   unit's `next_packet` returned `None`): sequence numbers and parity scratch belong to the
//!   stream.
//! - Errors are local conditions ([`PacketizeError`]): a unit the protocol cannot carry is
//!   refused at `begin` (counted by the tile; a video stream then asks its encoder for an IDR).
//! - Implementations: [`GsVideoStream`] (GameStream video, nanors GF(2⁸) FEC, optional
//!   SS_ENC_VIDEO) and [`GsAudioStream`] (GameStream audio, 4+2 FEC, optional AES-CBC). The
//!   native `strahl/1` packetizer plugs in here without touching the tile.
//!
//! [`begin`]: StreamPacketizer::begin
//! [`next_packet`]: StreamPacketizer::next_packet

use std::time::Duration;

use strahl_pacer::Backlog;
use strahl_packetize::PacketizeError;
use strahl_packetize::gamestream::{
    FrameType, GsAudioPacketizer, GsCursor, GsFrameMeta, GsVideoPacketizer,
};

use super::ring::Slot;

/// Ethernet + IPv4 + UDP header bytes: the pacer paces wire bytes, not payload bytes, so a
/// stream of small packets is not under-counted (the 20-byte preamble and gap are left out:
/// they are the same for every transport).
pub const WIRE_OVERHEAD: u64 = 42;

/// What the unit in progress will cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnitCost {
    pub packets: u64,
    /// Wire bytes (payload + [`WIRE_OVERHEAD`] each).
    pub wire_bytes: u64,
    /// The packetizer lowered its FEC to fit (counted, never dropped).
    pub parity_lowered: bool,
}

impl UnitCost {
    pub fn backlog(&self) -> Backlog {
        Backlog {
            packets: self.packets,
            bytes: self.wire_bytes,
        }
    }
}

/// A protocol's per-stream packetizer, driven by the tx tile (see the module contract).
pub trait StreamPacketizer: Send {
    /// Payload bytes every transport frame must hold for this stream.
    fn max_packet_len(&self) -> usize;
    /// Start `unit`; what it will cost.
    fn begin(&mut self, unit: &Slot) -> Result<UnitCost, PacketizeError>;
    /// Write the next datagram of the unit begun last into `buf`; `None` when it is complete.
    fn next_packet(&mut self, unit: &Slot, buf: &mut [u8])
    -> Result<Option<usize>, PacketizeError>;
    /// Apply a new FEC percentage from the next unit on (streams without adaptive FEC ignore it).
    fn set_fec_percent(&mut self, _pct: u8) {}
    /// The FEC block the next packet of the current unit belongs to, for the test knob (it
    /// never drops more of a block than its parity restores); `None` for streams without
    /// per-block FEC or when no unit is in progress.
    fn next_fec_block(&self) -> Option<FecBlock> {
        None
    }
}

/// One FEC block of the unit in progress: `index` tells blocks of one unit apart, `parity` is how
/// many of its packets a receiver may lose and still rebuild it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FecBlock {
    pub index: u32,
    pub parity: u32,
}

/// GameStream video (gamestream-host.md §A14–A16).
pub struct GsVideoStream {
    pk: GsVideoPacketizer,
    cursor: Option<GsCursor>,
}

impl GsVideoStream {
    pub fn new(pk: GsVideoPacketizer) -> Self {
        Self { pk, cursor: None }
    }
}

impl StreamPacketizer for GsVideoStream {
    fn max_packet_len(&self) -> usize {
        self.pk.packet_len()
    }

    fn begin(&mut self, unit: &Slot) -> Result<UnitCost, PacketizeError> {
        let meta = GsFrameMeta {
            frame_type: if unit.meta.keyframe {
                FrameType::Idr
            } else {
                FrameType::P
            },
            capture_time: Duration::from_nanos(unit.meta.capture_ns),
            host_latency_tenth_ms: unit.meta.host_latency_tenth_ms,
        };
        let c = self.pk.begin(unit.unit(), meta)?;
        let packets = c.plan().packets() as u64;
        let lowered = c.plan().lowered_to.is_some();
        self.cursor = Some(c);
        Ok(UnitCost {
            packets,
            wire_bytes: packets * (self.pk.packet_len() as u64 + WIRE_OVERHEAD),
            parity_lowered: lowered,
        })
    }

    fn next_packet(
        &mut self,
        unit: &Slot,
        buf: &mut [u8],
    ) -> Result<Option<usize>, PacketizeError> {
        let Some(c) = self.cursor.as_mut() else {
            return Ok(None);
        };
        let r = self.pk.write_next(c, unit.unit(), buf)?;
        if r.is_none() {
            self.cursor = None;
        }
        Ok(r)
    }

    fn set_fec_percent(&mut self, pct: u8) {
        self.pk.set_fec_percent(pct);
    }

    fn next_fec_block(&self) -> Option<FecBlock> {
        let (index, parity) = self.cursor.as_ref()?.next_block()?;
        Some(FecBlock {
            index: index as u32,
            parity: parity as u32,
        })
    }
}

/// GameStream audio (§A17): one Opus packet → one RTP data packet, and after every fourth the
/// block's two FEC packets.
pub struct GsAudioStream {
    pk: GsAudioPacketizer,
    /// The data packet of the current unit is written.
    data_done: bool,
    active: bool,
}

impl GsAudioStream {
    pub fn new(pk: GsAudioPacketizer) -> Self {
        Self {
            pk,
            data_done: false,
            active: false,
        }
    }
}

impl StreamPacketizer for GsAudioStream {
    fn max_packet_len(&self) -> usize {
        GsAudioPacketizer::MAX_PACKET_LEN
    }

    fn begin(&mut self, unit: &Slot) -> Result<UnitCost, PacketizeError> {
        if unit.unit().is_empty() {
            return Err(PacketizeError::EmptyAccessUnit);
        }
        // The fourth packet of a block also carries the block's two FEC packets.
        let packets = if self.pk.block_fill() == 3 { 3 } else { 1 };
        self.data_done = false;
        self.active = true;
        Ok(UnitCost {
            packets,
            wire_bytes: packets * (unit.unit().len() as u64 + 12 + 16 + WIRE_OVERHEAD),
            parity_lowered: false,
        })
    }

    fn next_packet(
        &mut self,
        unit: &Slot,
        buf: &mut [u8],
    ) -> Result<Option<usize>, PacketizeError> {
        if !self.active {
            return Ok(None);
        }
        if !self.data_done {
            self.data_done = true;
            // Without a finished block, the next call finds no FEC packet and ends the unit.
            return Ok(Some(self.pk.push(unit.unit(), buf)?.len));
        }
        match self.pk.next_fec(buf)? {
            Some(n) => Ok(Some(n)),
            None => {
                self.active = false;
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::ring::UnitMeta;
    use strahl_packetize::gamestream::{GsAudioConfig, GsVideoConfig};

    fn slot(bytes: &[u8], keyframe: bool) -> Slot {
        Slot {
            bytes: bytes.to_vec(),
            meta: UnitMeta {
                len: bytes.len(),
                keyframe,
                capture_ns: 16_666_667,
                host_latency_tenth_ms: 3,
            },
        }
    }

    #[test]
    fn video_stream_writes_exactly_what_the_frame_api_writes() {
        // One block, then three (parity of every block encoded at `begin`), twice each, so
        // sequence numbers and frame indices run on across frames.
        let cfg = GsVideoConfig::new(1024);
        let mut reference = GsVideoPacketizer::new(cfg.clone(), None).unwrap();
        let mut s = GsVideoStream::new(GsVideoPacketizer::new(cfg, None).unwrap());
        let meta = GsFrameMeta {
            frame_type: FrameType::Idr,
            capture_time: Duration::from_nanos(16_666_667),
            host_latency_tenth_ms: 3,
        };
        let mut buf = vec![0u8; 2048];
        for len in [50_000u32, 600_000, 50_000, 600_000] {
            let au: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let mut want = Vec::new();
            let mut f = reference.frame(&au, meta).unwrap();
            let plan = *f.plan();
            let blocks = plan.blocks;
            while let Some(n) = f.next_packet(&mut buf).unwrap() {
                want.push(buf[..n].to_vec());
            }
            assert_eq!(blocks, if len > 100_000 { 3 } else { 1 }, "AU of {len} B");
            let unit = slot(&au, true);
            let cost = s.begin(&unit).unwrap();
            assert_eq!(cost.packets, want.len() as u64);
            let mut got = Vec::new();
            let mut spots = Vec::new();
            while let Some(spot) = s.next_fec_block() {
                let n = s.next_packet(&unit, &mut buf).unwrap().unwrap();
                got.push(buf[..n].to_vec());
                spots.push(spot);
            }
            // The knob's view: every packet names its block and that block's parity.
            let want_spots: Vec<FecBlock> = (0..blocks)
                .flat_map(|k| {
                    let b = plan.block[k];
                    std::iter::repeat_n(
                        FecBlock {
                            index: k as u32,
                            parity: b.parity as u32,
                        },
                        b.data + b.parity,
                    )
                })
                .collect();
            assert_eq!(spots, want_spots, "AU of {len} B");
            assert_eq!(
                got, want,
                "byte-identical packets, parity included ({len} B)"
            );
            assert_eq!(s.next_packet(&unit, &mut buf).unwrap(), None);
        }
    }

    #[test]
    fn audio_stream_adds_two_fec_packets_to_every_fourth_unit() {
        let mut s = GsAudioStream::new(
            GsAudioPacketizer::new(
                GsAudioConfig {
                    packet_duration_ms: 5,
                },
                None,
            )
            .unwrap(),
        );
        let mut buf = vec![0u8; GsAudioPacketizer::MAX_PACKET_LEN];
        let unit = slot(&[0x55; 100], false);
        for round in 0..8 {
            let cost = s.begin(&unit).unwrap();
            let mut n = 0;
            while s.next_packet(&unit, &mut buf).unwrap().is_some() {
                n += 1;
            }
            let want = if round % 4 == 3 { 3 } else { 1 };
            assert_eq!((cost.packets, n), (want, want), "round {round}");
        }
    }
}
