//! GameStream video packetizer, byte-exact to `gamestream-host.md` §A14–A16.
//!
//! Shard = 32-byte header + (P − 16) payload bytes (B = P + 16 on the wire, or 32 + B with
//! SS_ENC_VIDEO, where the client already announced P reduced by 32). Header layout:
//! ```text
//!  0      RTP byte 0 = 0x90 (V=2, extension bit)      16..20 streamPacketIndex u32 LE = seq << 8
//!  1      payload type 0                              20..24 frameIndex u32 LE (from 1)
//!  2..4   RTP seq u16 BE (continuous, data+parity)    24     flags: PIC_DATA | SOF | EOF per block
//!  4..8   RTP timestamp u32 BE, 90 kHz                25     extraFlags 0
//!  8..12  ssrc 0                                      26     multiFecFlags 0x10
//! 12..16  4 extension bytes, 0                        27     multiFecBlocks (blk << 4 | (n−1) << 6)
//!                                                     28..32 fecInfo u32 LE: idx<<12 | d<<22 | pct<<4
//! ```
//! Per block, parity is computed over the full B-byte data shards **including headers** in the
//! reference's pre-encode state (flags, streamPacketIndex, frameIndex, multiFecFlags,
//! multiFecBlocks set; RTP bytes and fecInfo zero), then every shard's RTP byte 0, seq, timestamp,
//! frameIndex, multiFecBlocks and fecInfo are written (step 6), so parity shards keep parity bytes
//! everywhere else, as Sunshine's do.
//!
//! GF(2^8) is linear byte by byte, so the parity of the 32 header bytes and of the payload bytes
//! are computed as two independent encodes: the header part over 32-byte pre-encode headers in a
//! small scratch, the payload part straight over the access unit (only the first chunk, which
//! starts with the frame header, and the zero-padded last chunk are materialised). No copy of the
//! frame is made for FEC.

use std::time::Duration;

use strahl_fec::gf8::Gf8Code;
use strahl_ipc::DEFAULT_FEC_PERCENT;
use strahl_seal::gamestream::VideoCipher;

use super::plan::{
    FRAME_HEADER_LEN, FramePlan, MAX_BLOCK_SHARDS, MAX_BLOCKS, SHARD_HEADER_LEN,
    max_access_unit_bytes, plan_frame,
};
use crate::stats::GsVideoStats;
use crate::{ConfigError, PacketizeError};

pub const FLAG_PIC_DATA: u8 = 0x1;
pub const FLAG_EOF: u8 = 0x2;
pub const FLAG_SOF: u8 = 0x4;
pub const MULTI_FEC_FLAGS: u8 = 0x10;
pub const RTP_BYTE0: u8 = 0x90;
/// `x-nv-vqos[0].fec.minRequiredFecPackets` as every Moonlight client sends it (Appendix A).
pub const DEFAULT_MIN_REQUIRED_FEC_PACKETS: u8 = 2;

/// Frame types for byte 3 of the frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    P = 1,
    Idr = 2,
    IntraRefreshP = 4,
    PAfterRfi = 5,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GsVideoConfig {
    /// P: the ANNOUNCE packetSize (already reduced by 32 by the client when SS_ENC_VIDEO is on).
    pub packet_size: usize,
    /// F, 1..=255. 0 (no FEC) is refused: every frame carries parity.
    pub fec_percent: u8,
    /// minRequiredFecPackets, 0..=2.
    pub min_required_fec_packets: u8,
}

impl GsVideoConfig {
    pub fn new(packet_size: usize) -> GsVideoConfig {
        GsVideoConfig {
            packet_size,
            // The session's percentage comes from the control plane; this only seeds the config.
            fec_percent: DEFAULT_FEC_PERCENT,
            min_required_fec_packets: DEFAULT_MIN_REQUIRED_FEC_PACKETS,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        // P − 16 must hold the frame header plus at least one AU byte; lastPayloadLen is a u16.
        if self.packet_size < 16 + FRAME_HEADER_LEN + 1 || self.packet_size > 65535 {
            return Err(ConfigError("packet_size must be 25..=65535"));
        }
        if self.fec_percent == 0 {
            return Err(ConfigError("fec_percent 0 would send frames without FEC"));
        }
        if self.min_required_fec_packets > 2 {
            return Err(ConfigError(
                "min_required_fec_packets above 2 is not representable for 1-shard blocks",
            ));
        }
        Ok(())
    }

    /// B: shard bytes (header + payload).
    pub fn shard_len(&self) -> usize {
        self.packet_size + 16
    }

    /// Payload bytes per shard, P − 16.
    pub fn chunk_len(&self) -> usize {
        self.packet_size - 16
    }
}

/// Per-frame metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GsFrameMeta {
    pub frame_type: FrameType,
    /// Capture time since the session's clock origin → 90 kHz RTP timestamp.
    pub capture_time: Duration,
    /// Host processing latency in 0.1 ms (0 for a repeated frame).
    pub host_latency_tenth_ms: u16,
}

/// 90 kHz RTP timestamp of a capture time (wraps, as RTP does).
pub fn rtp_timestamp_90k(capture_time: Duration) -> u32 {
    (capture_time.as_micros() * 9 / 100) as u32
}

/// The GameStream video sender.
pub struct GsVideoPacketizer {
    cfg: GsVideoConfig,
    cipher: Option<VideoCipher>,
    next_frame_index: u32,
    /// Next RTP seq (low 16 bits on the wire; the low 24 bits feed streamPacketIndex).
    seq: u32,
    /// Parity of a frame: block k's p · B bytes at `k · MAX_BLOCK_SHARDS · B`, so a cursor's
    /// frame has every block's parity ready before its first packet ([`Self::begin`]).
    parity: Vec<u8>,
    /// d · 32 pre-encode headers of the block being encoded.
    headers: Vec<u8>,
    /// Chunk 0 (frame header + first AU bytes) and the last, zero-padded chunk.
    first_chunk: Vec<u8>,
    last_chunk: Vec<u8>,
    stats: GsVideoStats,
}

impl GsVideoPacketizer {
    /// `cipher`: `Some` when SS_ENC_VIDEO is on.
    pub fn new(
        cfg: GsVideoConfig,
        cipher: Option<VideoCipher>,
    ) -> Result<GsVideoPacketizer, ConfigError> {
        cfg.validate()?;
        let (b, c) = (cfg.shard_len(), cfg.chunk_len());
        Ok(GsVideoPacketizer {
            cipher,
            next_frame_index: 1,
            seq: 0,
            parity: vec![0; MAX_BLOCKS * MAX_BLOCK_SHARDS * b],
            headers: vec![0; MAX_BLOCK_SHARDS * SHARD_HEADER_LEN],
            first_chunk: vec![0; c],
            last_chunk: vec![0; c],
            stats: GsVideoStats::default(),
            cfg,
        })
    }

    pub fn config(&self) -> &GsVideoConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &GsVideoStats {
        &self.stats
    }

    /// Adapt F (e.g. from SS_FRAME_FEC_STATUS); 0 is ignored (never send without FEC).
    pub fn set_fec_percent(&mut self, pct: u8) {
        if pct > 0 {
            self.cfg.fec_percent = pct;
        }
    }

    /// Largest access unit a frame can carry (for the encoder's frame-size cap).
    pub fn max_access_unit_bytes(&self) -> usize {
        max_access_unit_bytes(self.cfg.packet_size)
    }

    /// Bytes each caller buffer must hold: B, plus the 32-byte ENC_VIDEO header when encrypting.
    pub fn packet_len(&self) -> usize {
        self.cfg.shard_len()
            + if self.cipher.is_some() {
                VideoCipher::HEADER_LEN
            } else {
                0
            }
    }

    /// The frame index the next frame gets (starts at 1).
    pub fn next_frame_index(&self) -> u32 {
        self.next_frame_index
    }

    /// The RTP seq of the next packet.
    pub fn next_seq(&self) -> u16 {
        self.seq as u16
    }

    /// The block plan for an access unit of `au_len` bytes.
    pub fn plan(&self, au_len: usize) -> Result<FramePlan, PacketizeError> {
        if au_len == 0 {
            return Err(PacketizeError::EmptyAccessUnit);
        }
        let n = (au_len + FRAME_HEADER_LEN).div_ceil(self.cfg.chunk_len());
        plan_frame(n, self.cfg.fec_percent, self.cfg.min_required_fec_packets).ok_or(
            PacketizeError::FrameTooLarge {
                bytes: au_len,
                max: self.max_access_unit_bytes(),
            },
        )
    }

    /// Start a frame. Refused frames consume no frame index.
    pub fn frame<'a>(
        &'a mut self,
        au: &'a [u8],
        meta: GsFrameMeta,
    ) -> Result<GsFrame<'a>, PacketizeError> {
        let plan = match self.plan(au.len()) {
            Ok(p) => p,
            Err(e) => {
                self.stats.refused += 1;
                return Err(e);
            }
        };
        let c = self.cfg.chunk_len();
        let payload_len = au.len() + FRAME_HEADER_LEN;
        let last_payload_len = match payload_len % c {
            0 => c,
            r => r,
        } as u16;
        let mut fh = [0u8; FRAME_HEADER_LEN];
        fh[0] = 0x01;
        fh[1..3].copy_from_slice(&meta.host_latency_tenth_ms.to_le_bytes());
        fh[3] = meta.frame_type as u8;
        fh[4..6].copy_from_slice(&last_payload_len.to_le_bytes());
        // Chunk 0: frame header then the first AU bytes, zero-padded when the AU is shorter.
        let head = au.len().min(c - FRAME_HEADER_LEN);
        self.first_chunk[..FRAME_HEADER_LEN].copy_from_slice(&fh);
        self.first_chunk[FRAME_HEADER_LEN..FRAME_HEADER_LEN + head].copy_from_slice(&au[..head]);
        self.first_chunk[FRAME_HEADER_LEN + head..].fill(0);
        if plan.shards > 1 {
            let start = (plan.shards - 1) * c - FRAME_HEADER_LEN;
            let tail = &au[start..];
            self.last_chunk[..tail.len()].copy_from_slice(tail);
            self.last_chunk[tail.len()..].fill(0);
        }
        let frame_index = self.next_frame_index;
        self.next_frame_index = self.next_frame_index.wrapping_add(1).max(1);
        let st = &mut self.stats;
        st.frames += 1;
        st.blocks += plan.blocks as u64;
        st.parity_lowered += plan.lowered_to.is_some() as u64;
        Ok(GsFrame {
            timestamp: rtp_timestamp_90k(meta.capture_time),
            p: self,
            au,
            plan,
            frame_index,
            block: 0,
            x: 0,
            lowseq: 0,
            parity_ready: false,
        })
    }
}

/// Where an owner of an access unit stands in its frame: [`GsVideoPacketizer::begin`] makes it,
/// [`GsVideoPacketizer::write_next`] advances it. Unlike [`GsFrame`] it borrows nothing, so a
/// tile that interleaves many sessions' frames keeps one per session next to the AU it owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GsCursor {
    plan: FramePlan,
    frame_index: u32,
    timestamp: u32,
    block: usize,
    x: usize,
    lowseq: u32,
    au_len: usize,
}

impl GsCursor {
    pub fn plan(&self) -> &FramePlan {
        &self.plan
    }

    pub fn frame_index(&self) -> u32 {
        self.frame_index
    }

    /// The FEC block the next packet belongs to — `(index in the frame, parity shards)` — or
    /// `None` after the frame's last packet. A block loses nothing while at most `parity` of its
    /// packets go missing.
    pub fn next_block(&self) -> Option<(usize, usize)> {
        (self.block < self.plan.blocks).then(|| (self.block, self.plan.block[self.block].parity))
    }

    /// Packets not yet written.
    pub fn remaining(&self) -> usize {
        let done: usize = self.plan.block[..self.block.min(self.plan.blocks)]
            .iter()
            .map(|b| b.data + b.parity)
            .sum();
        self.plan.packets() - done - self.x
    }
}

impl GsVideoPacketizer {
    /// Start a frame whose access unit the caller keeps (see [`GsCursor`]); same rules as
    /// [`GsVideoPacketizer::frame`].
    ///
    /// Unlike [`GsFrame::next_packet`], which encodes a block's parity when its first packet is
    /// written, `begin` encodes the parity of every block of the frame now: a pacing caller calls
    /// it before it schedules the frame, so no packet of the frame waits behind a block's
    /// Reed–Solomon encode (at 150 Mbit/s one block's encode held the frame's second release
    /// ~150 µs, and the rest of the frame then left in a catch-up burst).
    pub fn begin(&mut self, au: &[u8], meta: GsFrameMeta) -> Result<GsCursor, PacketizeError> {
        let mut f = self.frame(au, meta)?;
        let mut seq = f.p.seq;
        for k in 0..f.plan.blocks {
            f.block = k;
            f.lowseq = seq;
            f.encode_block()?;
            let b = f.plan.block[k];
            seq = seq.wrapping_add((b.data + b.parity) as u32);
        }
        Ok(GsCursor {
            plan: f.plan,
            frame_index: f.frame_index,
            timestamp: f.timestamp,
            block: 0,
            x: 0,
            lowseq: 0,
            au_len: au.len(),
        })
    }

    /// Write the cursor's next datagram into `buf` (as [`GsFrame::next_packet`]). `au` must be
    /// the access unit the cursor was begun with; another length is refused as `OutOfOrder`.
    /// Cursors of different frames must not be interleaved on one packetizer: a frame's blocks
    /// share its sequence numbers and parity scratch, so each frame finishes before the next
    /// begins (the tile keeps one packetizer per session stream).
    pub fn write_next(
        &mut self,
        c: &mut GsCursor,
        au: &[u8],
        buf: &mut [u8],
    ) -> Result<Option<usize>, PacketizeError> {
        if au.len() != c.au_len {
            return Err(PacketizeError::OutOfOrder);
        }
        let mut f = GsFrame {
            p: self,
            au,
            plan: c.plan,
            frame_index: c.frame_index,
            timestamp: c.timestamp,
            block: c.block,
            x: c.x,
            lowseq: c.lowseq,
            parity_ready: true,
        };
        let r = f.next_packet(buf);
        c.block = f.block;
        c.x = f.x;
        c.lowseq = f.lowseq;
        r
    }
}

/// One frame being packetized.
pub struct GsFrame<'a> {
    p: &'a mut GsVideoPacketizer,
    au: &'a [u8],
    plan: FramePlan,
    frame_index: u32,
    timestamp: u32,
    block: usize,
    /// Next shard within the current block (0..d+p).
    x: usize,
    /// Sequence counter of the current block's first shard.
    lowseq: u32,
    /// Every block's parity is in the scratch already ([`GsVideoPacketizer::begin`]); else
    /// each block's is encoded when its first packet is written.
    parity_ready: bool,
}

impl GsFrame<'_> {
    pub fn plan(&self) -> &FramePlan {
        &self.plan
    }

    pub fn frame_index(&self) -> u32 {
        self.frame_index
    }

    /// Payload chunk `j` of the frame (frame header ‖ AU, cut into P − 16 bytes, last zero-padded).
    fn chunk(&self, j: usize) -> &[u8] {
        let c = self.p.cfg.chunk_len();
        if j == 0 {
            &self.p.first_chunk
        } else if j + 1 == self.plan.shards {
            &self.p.last_chunk
        } else {
            &self.au[j * c - FRAME_HEADER_LEN..(j + 1) * c - FRAME_HEADER_LEN]
        }
    }

    /// The reference's pre-encode header of data shard `x` of the current block (step 3).
    fn pre_header(&self, x: usize, out: &mut [u8]) {
        let b = &self.plan.block[self.block];
        out[..16].fill(0);
        out[16..20].copy_from_slice(&(self.lowseq.wrapping_add(x as u32) << 8).to_le_bytes());
        out[20..24].copy_from_slice(&self.frame_index.to_le_bytes());
        let mut flags = FLAG_PIC_DATA;
        if x == 0 {
            flags |= FLAG_SOF;
        }
        if x + 1 == b.data {
            flags |= FLAG_EOF;
        }
        out[24] = flags;
        out[25] = 0;
        out[26] = MULTI_FEC_FLAGS;
        out[27] = self.multi_fec_blocks();
        out[28..32].fill(0);
    }

    fn multi_fec_blocks(&self) -> u8 {
        ((self.block as u8) << 4) | (((self.plan.blocks - 1) as u8) << 6)
    }

    /// Step 6 fields, for data and parity shards alike.
    fn finish_header(&self, x: usize, out: &mut [u8]) {
        let b = &self.plan.block[self.block];
        out[0] = RTP_BYTE0;
        out[2..4].copy_from_slice(&(self.lowseq.wrapping_add(x as u32) as u16).to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[20..24].copy_from_slice(&self.frame_index.to_le_bytes());
        out[27] = self.multi_fec_blocks();
        let fec_info = ((x as u32) << 12) | ((b.data as u32) << 22) | ((b.fec_pct as u32) << 4);
        out[28..32].copy_from_slice(&fec_info.to_le_bytes());
    }

    /// Parity of the current block into the packetizer's scratch (steps 3–5).
    fn encode_block(&mut self) -> Result<(), PacketizeError> {
        let b = self.plan.block[self.block];
        let (d, p, bl) = (b.data, b.parity, self.p.cfg.shard_len());
        let mut headers = std::mem::take(&mut self.p.headers);
        for x in 0..d {
            self.pre_header(
                x,
                &mut headers[x * SHARD_HEADER_LEN..(x + 1) * SHARD_HEADER_LEN],
            );
        }
        let mut parity = std::mem::take(&mut self.p.parity);
        let base = self.block * MAX_BLOCK_SHARDS * bl;
        let r = (|| {
            let code = Gf8Code::new(d, p)?;
            let mut hdr_in: [&[u8]; MAX_BLOCK_SHARDS] = [&[]; MAX_BLOCK_SHARDS];
            let mut pay_in: [&[u8]; MAX_BLOCK_SHARDS] = [&[]; MAX_BLOCK_SHARDS];
            for x in 0..d {
                hdr_in[x] = &headers[x * SHARD_HEADER_LEN..(x + 1) * SHARD_HEADER_LEN];
                pay_in[x] = self.chunk(b.first_shard + x);
            }
            let mut hdr_out: [&mut [u8]; MAX_BLOCK_SHARDS] =
                std::array::from_fn(|_| Default::default());
            let mut pay_out: [&mut [u8]; MAX_BLOCK_SHARDS] =
                std::array::from_fn(|_| Default::default());
            for (j, shard) in parity[base..base + p * bl].chunks_exact_mut(bl).enumerate() {
                let (h, pl) = shard.split_at_mut(SHARD_HEADER_LEN);
                hdr_out[j] = h;
                pay_out[j] = pl;
            }
            code.encode(&hdr_in[..d], &mut hdr_out[..p])?;
            code.encode(&pay_in[..d], &mut pay_out[..p])
        })();
        self.p.headers = headers;
        self.p.parity = parity;
        r.map_err(PacketizeError::from)
    }

    /// Packets not yet written.
    pub fn remaining(&self) -> usize {
        let done: usize = self.plan.block[..self.block]
            .iter()
            .map(|b| b.data + b.parity)
            .sum();
        self.plan.packets() - done - self.x
    }

    /// Write the next datagram into `buf`: data shards of block 0, its parity, block 1, ...
    /// Returns its length, or `None` after the frame's last packet.
    pub fn next_packet(&mut self, buf: &mut [u8]) -> Result<Option<usize>, PacketizeError> {
        if self.block >= self.plan.blocks {
            return Ok(None);
        }
        let total = self.p.packet_len();
        if buf.len() < total {
            return Err(PacketizeError::BufferTooSmall {
                needed: total,
                got: buf.len(),
            });
        }
        let b = self.plan.block[self.block];
        if self.x == 0 {
            self.lowseq = self.p.seq;
            if !self.parity_ready {
                self.encode_block()?;
            }
        }
        let bl = self.p.cfg.shard_len();
        let off = total - bl;
        let x = self.x;
        {
            let shard = &mut buf[off..total];
            if x < b.data {
                self.pre_header(x, &mut shard[..SHARD_HEADER_LEN]);
                shard[SHARD_HEADER_LEN..].copy_from_slice(self.chunk(b.first_shard + x));
            } else {
                let at = self.block * MAX_BLOCK_SHARDS * bl + (x - b.data) * bl;
                shard.copy_from_slice(&self.p.parity[at..at + bl]);
            }
            self.finish_header(x, &mut shard[..SHARD_HEADER_LEN]);
        }
        if let Some(cipher) = self.p.cipher.as_mut() {
            cipher.seal_shard(self.frame_index, &mut buf[..total])?;
            self.p.stats.encrypted += 1;
        }
        self.p.seq = self.p.seq.wrapping_add(1);
        let st = &mut self.p.stats;
        st.packets += 1;
        st.bytes += total as u64;
        if x < b.data {
            st.data_packets += 1;
        } else {
            st.parity_packets += 1;
        }
        self.x += 1;
        if self.x == b.data + b.parity {
            self.x = 0;
            self.block += 1;
        }
        Ok(Some(total))
    }
}
