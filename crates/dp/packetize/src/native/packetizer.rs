//! `strahl/1` sender: access unit → k data shards + m GF(2^16) parity shards → sealed datagrams.
//!
//! Usage: `let mut f = packetizer.frame(au, meta)?;` then call `f.next_packet(buf)` with one
//! caller-owned buffer at a time until it returns `Ok(None)`. Data shards go first (so a loss-free
//! frame completes with its last data shard), parity after. Data shard bytes are copied straight
//! from the access unit into the caller's buffer and sealed there. Parity is computed once per
//! frame, after the data packets: either all at once straight into the caller's m parity buffers
//! with `f.parity_into(bufs)` (no extra copy), or, for strictly one-buffer-at-a-time callers, into
//! a reused scratch area that `next_packet` copies into each parity packet.
//!
//! Callers that cannot hold a borrow of the access unit between packets (the data plane's tx
//! tile hands the unit back on every call) use the owned cursor instead: `let mut c =
//! packetizer.begin(au, meta)?;` computes the parity at once into the scratch, then
//! `packetizer.write_next(&mut c, au, buf)` writes one datagram per call. Both APIs produce the
//! same bytes for the same frames (a test checks it).

use strahl_fec::gf16::Gf16Encoder;
use strahl_ipc::DEFAULT_FEC_PERCENT;
use strahl_seal::native::TxSealer;

use super::wire::{
    FLAG_KEYFRAME, HEADER_LEN, MAX_DATA_SHARDS, MAX_PARITY_SHARDS, MAX_PTS_US, MAX_SHARD_LEN,
    MAX_SHARDS, MIN_SHARD_LEN, OVERHEAD, PREFIX_LEN, Prefix, ShardHeader,
};
use crate::recycle::{recycle, recycle_mut};
use crate::stats::NativeTxStats;
use crate::{ConfigError, PacketizeError};

/// Parity floor per frame: a single lost packet of a small frame is the common case on a LAN, and
/// two parity shards cost little on frames of a few shards (same floor as Moonlight's
/// `minRequiredFecPackets`).
pub const DEFAULT_MIN_PARITY: u16 = 2;

/// Sender configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeConfig {
    /// Stream id in the clear prefix (0 = video).
    pub stream: u8,
    /// Shard payload S (even), from [`super::shard_len_for_mtu`].
    pub shard_len: usize,
    /// m = max(ceil(k · fec_percent / 100), min_parity), capped so k + m ≤ 65535.
    pub fec_percent: u32,
    pub min_parity: u16,
}

impl NativeConfig {
    pub fn new(shard_len: usize) -> NativeConfig {
        NativeConfig {
            stream: 0,
            shard_len,
            // Seed only: the control plane picks the session's share and adapts it from loss
            // reports; the data plane applies what it is sent.
            fec_percent: u32::from(DEFAULT_FEC_PERCENT),
            min_parity: DEFAULT_MIN_PARITY,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(MIN_SHARD_LEN..=MAX_SHARD_LEN).contains(&self.shard_len)
            || !self.shard_len.is_multiple_of(2)
        {
            return Err(ConfigError(
                "shard_len must be even and within MIN_SHARD_LEN..=MAX_SHARD_LEN",
            ));
        }
        if self.stream > 0x0F {
            return Err(ConfigError("stream id must fit 4 bits"));
        }
        if self.fec_percent > 1000 {
            return Err(ConfigError("fec_percent above 1000 makes no sense"));
        }
        Ok(())
    }

    /// Largest access unit one frame can carry (k ≤ 32768 data shards at the floor parity).
    pub fn max_access_unit_bytes(&self) -> usize {
        let k = (MAX_SHARDS - self.min_parity as usize).min(MAX_DATA_SHARDS);
        (k * self.shard_len).min(u32::MAX as usize)
    }
}

/// Per-frame metadata from the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameMeta {
    /// Presentation time in µs since the session's media clock origin (48 bits on the wire).
    pub pts_us: u64,
    pub keyframe: bool,
}

/// The FEC shape of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameShape {
    pub data_shards: usize,
    pub parity_shards: usize,
    pub shard_len: usize,
    /// Bytes of the largest datagram (what each caller buffer must hold).
    pub max_packet_len: usize,
}

impl FrameShape {
    pub fn packets(&self) -> usize {
        self.data_shards + self.parity_shards
    }
}

/// The `strahl/1` sender. Owns the sealer (one packet-number space per direction and stream
/// socket) and the reused FEC scratch.
pub struct NativePacketizer {
    cfg: NativeConfig,
    sealer: TxSealer,
    encoder: Gf16Encoder,
    next_frame_id: u32,
    /// m·S parity bytes of the current frame.
    parity: Vec<u8>,
    /// The last data shard, zero-padded to S (FEC needs equal lengths).
    last_pad: Vec<u8>,
    data_ptrs: Vec<&'static [u8]>,
    parity_ptrs: Vec<&'static mut [u8]>,
    stats: NativeTxStats,
}

impl NativePacketizer {
    pub fn new(cfg: NativeConfig, sealer: TxSealer) -> Result<NativePacketizer, ConfigError> {
        cfg.validate()?;
        let s = cfg.shard_len;
        Ok(NativePacketizer {
            cfg,
            sealer,
            encoder: Gf16Encoder::new(),
            next_frame_id: 0,
            parity: Vec::new(),
            last_pad: vec![0; s],
            data_ptrs: Vec::new(),
            parity_ptrs: Vec::new(),
            stats: NativeTxStats::default(),
        })
    }

    pub fn config(&self) -> &NativeConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &NativeTxStats {
        &self.stats
    }

    /// The sealer, for harnesses that seal hand-made datagrams in the same packet-number space
    /// (the fuzz targets use it to reach header validation behind authentication).
    #[doc(hidden)]
    pub fn sealer_mut(&mut self) -> &mut TxSealer {
        &mut self.sealer
    }

    /// The frame id the next [`Self::frame`] call will use.
    pub fn next_frame_id(&self) -> u32 {
        self.next_frame_id
    }

    /// Change the parity share (adaptive FEC); takes effect at the next frame.
    pub fn set_fec_percent(&mut self, pct: u32) {
        self.cfg.fec_percent = pct.min(1000);
    }

    /// The shape a frame of `au_len` bytes would get, or why it would be refused.
    pub fn shape(&self, au_len: usize) -> Result<FrameShape, PacketizeError> {
        shape_for(&self.cfg, au_len).map(|(s, _)| s)
    }

    /// Start packetizing one access unit. The frame id is consumed even if the caller stops early.
    pub fn frame<'a>(
        &'a mut self,
        au: &'a [u8],
        meta: FrameMeta,
    ) -> Result<NativeFrame<'a>, PacketizeError> {
        let (shape, header) = self.start_frame(au.len(), meta)?;
        Ok(NativeFrame {
            p: self,
            au,
            shape,
            header,
            next: 0,
            parity_ready: false,
        })
    }

    /// Start one access unit as an owned [`NativeCursor`] (see the module header): the frame's
    /// parity is computed here, into the reused scratch, so every later
    /// [`Self::write_next`] costs one copy and one seal — a pacer releasing the frame's packets
    /// never waits for FEC in the middle of a frame. The frame id is consumed even if the caller
    /// stops early.
    pub fn begin(&mut self, au: &[u8], meta: FrameMeta) -> Result<NativeCursor, PacketizeError> {
        let (shape, header) = self.start_frame(au.len(), meta)?;
        self.compute_parity(au, &shape)?;
        Ok(NativeCursor {
            shape,
            header,
            next: 0,
        })
    }

    /// Write the next datagram of the frame `c` was begun with into `buf` — `au` must be the
    /// same access unit (its length is checked: [`PacketizeError::OutOfOrder`] otherwise).
    /// Returns its length, or `None` after the last one.
    pub fn write_next(
        &mut self,
        c: &mut NativeCursor,
        au: &[u8],
        buf: &mut [u8],
    ) -> Result<Option<usize>, PacketizeError> {
        let idx = c.next;
        if idx >= c.shape.packets() {
            return Ok(None);
        }
        if au.len() != c.header.frame_len as usize {
            return Err(PacketizeError::OutOfOrder);
        }
        let total = self.copy_shard(&c.shape, &c.header, idx, au, buf)?;
        self.seal_packet(&c.shape, &c.header, idx, buf)?;
        c.next += 1;
        Ok(Some(total))
    }

    /// Frame id, counters and the header template of a frame of `au_len` bytes.
    fn start_frame(
        &mut self,
        au_len: usize,
        meta: FrameMeta,
    ) -> Result<(FrameShape, ShardHeader), PacketizeError> {
        let (shape, lowered) = match shape_for(&self.cfg, au_len) {
            Ok(s) => s,
            Err(e) => {
                self.stats.refused += 1;
                return Err(e);
            }
        };
        let frame_id = self.next_frame_id;
        self.next_frame_id = self.next_frame_id.wrapping_add(1);
        self.stats.frames += 1;
        self.stats.keyframes += meta.keyframe as u64;
        self.stats.parity_lowered += lowered as u64;
        let header = ShardHeader {
            frame_id,
            shard_index: 0,
            data_shards: shape.data_shards as u16,
            parity_shards: shape.parity_shards as u16,
            shard_len: shape.shard_len as u16,
            frame_len: au_len as u32,
            flags: if meta.keyframe { FLAG_KEYFRAME } else { 0 },
            pts_us: meta.pts_us & MAX_PTS_US,
        };
        debug_assert_eq!(header.validate(), Ok(()));
        Ok((shape, header))
    }

    /// Copy shard `idx` (data from `au`, parity from the scratch, which must hold this frame's
    /// parity) into its place in `buf`; returns the datagram's length.
    fn copy_shard(
        &self,
        shape: &FrameShape,
        header: &ShardHeader,
        idx: usize,
        au: &[u8],
        buf: &mut [u8],
    ) -> Result<usize, PacketizeError> {
        let (k, s) = (shape.data_shards, shape.shard_len);
        let len = ShardHeader {
            shard_index: idx as u16,
            ..*header
        }
        .wire_shard_len();
        let total = OVERHEAD + len;
        if buf.len() < total {
            return Err(PacketizeError::BufferTooSmall {
                needed: total,
                got: buf.len(),
            });
        }
        let body = &mut buf[PREFIX_LEN + HEADER_LEN..PREFIX_LEN + HEADER_LEN + len];
        if idx < k {
            body.copy_from_slice(&au[idx * s..idx * s + len]);
        } else {
            let j = idx - k;
            body.copy_from_slice(&self.parity[j * s..(j + 1) * s]);
        }
        Ok(total)
    }

    /// Write prefix and header of shard `idx` around the shard bytes already in `buf`, seal in
    /// place, append the tag, count it.
    fn seal_packet(
        &mut self,
        shape: &FrameShape,
        header: &ShardHeader,
        idx: usize,
        buf: &mut [u8],
    ) -> Result<(), PacketizeError> {
        let header = ShardHeader {
            shard_index: idx as u16,
            ..*header
        };
        let len = header.wire_shard_len();
        let total = OVERHEAD + len;
        let pn = self.sealer.next_packet_number();
        let mut prefix = [0u8; PREFIX_LEN];
        Prefix::new(self.cfg.stream, pn).encode(&mut prefix);
        buf[..PREFIX_LEN].copy_from_slice(&prefix);
        let mut hdr = [0u8; HEADER_LEN];
        header.encode(&mut hdr);
        buf[PREFIX_LEN..PREFIX_LEN + HEADER_LEN].copy_from_slice(&hdr);
        let (aad, rest) = buf.split_at_mut(PREFIX_LEN);
        let (used_pn, tag) = self.sealer.seal(aad, &mut rest[..HEADER_LEN + len])?;
        debug_assert_eq!(
            used_pn, pn,
            "the prefix must carry the packet number the sealer used"
        );
        buf[total - strahl_seal::TAG_LEN..total].copy_from_slice(&tag);
        let st = &mut self.stats;
        st.packets += 1;
        st.bytes += total as u64;
        if idx < shape.data_shards {
            st.data_packets += 1;
        } else {
            st.parity_packets += 1;
        }
        Ok(())
    }

    /// Compute the frame's parity into `self.parity` (m · S scratch).
    fn compute_parity(&mut self, au: &[u8], shape: &FrameShape) -> Result<(), PacketizeError> {
        let (m, s) = (shape.parity_shards, shape.shard_len);
        if self.parity.len() < m * s {
            self.parity.resize(m * s, 0);
        }
        let mut scratch = std::mem::take(&mut self.parity);
        let r = self.encode(au, shape, scratch[..m * s].chunks_exact_mut(s));
        self.parity = scratch;
        r
    }

    /// GF(2^16) parity of the frame's k data shards into the m slices `out` yields (each S bytes).
    fn encode<'o>(
        &mut self,
        au: &[u8],
        shape: &FrameShape,
        out: impl Iterator<Item = &'o mut [u8]>,
    ) -> Result<(), PacketizeError> {
        let (k, m, s) = (shape.data_shards, shape.parity_shards, shape.shard_len);
        if m == 0 {
            return Ok(());
        }
        let last = &au[(k - 1) * s..];
        self.last_pad[..last.len()].copy_from_slice(last);
        self.last_pad[last.len()..].fill(0);
        let mut data: Vec<&[u8]> = recycle(std::mem::take(&mut self.data_ptrs));
        data.extend(au[..(k - 1) * s].chunks_exact(s));
        data.push(&self.last_pad);
        let mut parity: Vec<&mut [u8]> = recycle_mut(std::mem::take(&mut self.parity_ptrs));
        parity.extend(out.take(m));
        let r = self.encoder.encode(&data, &mut parity);
        self.data_ptrs = recycle(data);
        self.parity_ptrs = recycle_mut(parity);
        r.map_err(PacketizeError::from)
    }
}

/// Shape of a frame plus whether the parity had to be cut to fit the block.
fn shape_for(cfg: &NativeConfig, au_len: usize) -> Result<(FrameShape, bool), PacketizeError> {
    if au_len == 0 {
        return Err(PacketizeError::EmptyAccessUnit);
    }
    let max = cfg.max_access_unit_bytes();
    if au_len > max {
        return Err(PacketizeError::FrameTooLarge { bytes: au_len, max });
    }
    let s = cfg.shard_len;
    let k = au_len.div_ceil(s);
    let wanted = (k * cfg.fec_percent as usize)
        .div_ceil(100)
        .max(cfg.min_parity as usize);
    let m = wanted.min(MAX_SHARDS - k).min(MAX_PARITY_SHARDS);
    Ok((
        FrameShape {
            data_shards: k,
            parity_shards: m,
            shard_len: s,
            max_packet_len: s + OVERHEAD,
        },
        m < wanted,
    ))
}

/// One frame being packetized; borrows the access unit and the packetizer.
pub struct NativeFrame<'a> {
    p: &'a mut NativePacketizer,
    au: &'a [u8],
    shape: FrameShape,
    header: ShardHeader,
    next: usize,
    parity_ready: bool,
}

impl NativeFrame<'_> {
    pub fn shape(&self) -> FrameShape {
        self.shape
    }

    pub fn frame_id(&self) -> u32 {
        self.header.frame_id
    }

    /// Packets not yet written.
    pub fn remaining(&self) -> usize {
        self.shape.packets() - self.next
    }

    /// Write the next datagram into `buf`; returns its length, or `None` after the last one.
    pub fn next_packet(&mut self, buf: &mut [u8]) -> Result<Option<usize>, PacketizeError> {
        let idx = self.next;
        if idx >= self.shape.packets() {
            return Ok(None);
        }
        let len = ShardHeader {
            shard_index: idx as u16,
            ..self.header
        }
        .wire_shard_len();
        if buf.len() < OVERHEAD + len {
            return Err(PacketizeError::BufferTooSmall {
                needed: OVERHEAD + len,
                got: buf.len(),
            });
        }
        if idx >= self.shape.data_shards && !self.parity_ready {
            self.p.compute_parity(self.au, &self.shape)?;
            self.parity_ready = true;
        }
        let total = self
            .p
            .copy_shard(&self.shape, &self.header, idx, self.au, buf)?;
        self.seal_packet(idx, buf)?;
        Ok(Some(total))
    }

    /// Write all m parity datagrams at once, the parity computed straight into the caller's
    /// buffers (one copy of the parity bytes fewer than [`Self::next_packet`]). Call it after the
    /// k data packets, instead of `next_packet` for the parity; `bufs` must hold ≥ m buffers of
    /// ≥ S + 44 bytes. Returns m; every parity datagram is S + 44 bytes long.
    pub fn parity_into(&mut self, bufs: &mut [&mut [u8]]) -> Result<usize, PacketizeError> {
        let (k, m, s) = (
            self.shape.data_shards,
            self.shape.parity_shards,
            self.shape.shard_len,
        );
        if self.next != k || self.parity_ready {
            return Err(PacketizeError::OutOfOrder);
        }
        let total = OVERHEAD + s;
        if bufs.len() < m {
            return Err(PacketizeError::BufferTooSmall {
                needed: m,
                got: bufs.len(),
            });
        }
        if let Some(b) = bufs[..m].iter().find(|b| b.len() < total) {
            return Err(PacketizeError::BufferTooSmall {
                needed: total,
                got: b.len(),
            });
        }
        let body = PREFIX_LEN + HEADER_LEN;
        self.p.encode(
            self.au,
            &self.shape,
            bufs[..m].iter_mut().map(|b| &mut b[body..body + s]),
        )?;
        self.parity_ready = true;
        for (j, buf) in bufs[..m].iter_mut().enumerate() {
            self.seal_packet(k + j, buf)?;
        }
        Ok(m)
    }

    /// Seal shard `idx` (already copied into `buf`) and count it.
    fn seal_packet(&mut self, idx: usize, buf: &mut [u8]) -> Result<(), PacketizeError> {
        self.p.seal_packet(&self.shape, &self.header, idx, buf)?;
        self.next += 1;
        Ok(())
    }
}

/// One frame begun with [`NativePacketizer::begin`]: owned (no borrow of the access unit or the
/// packetizer), so it can live in a struct between packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NativeCursor {
    shape: FrameShape,
    header: ShardHeader,
    next: usize,
}

impl NativeCursor {
    pub fn shape(&self) -> FrameShape {
        self.shape
    }

    pub fn frame_id(&self) -> u32 {
        self.header.frame_id
    }

    /// Packets not yet written.
    pub fn remaining(&self) -> usize {
        self.shape.packets() - self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let mut cfg = NativeConfig::new(1408);
        let (s, low) = shape_for(&cfg, 1).unwrap();
        assert_eq!((s.data_shards, s.parity_shards, low), (1, 2, false));
        let (s, _) = shape_for(&cfg, 1408 * 100 + 1).unwrap();
        assert_eq!((s.data_shards, s.parity_shards), (101, 21));
        assert_eq!(s.max_packet_len, 1408 + 44);
        cfg.fec_percent = 50;
        assert!(matches!(
            shape_for(&cfg, 1408 * 40000),
            Err(PacketizeError::FrameTooLarge { .. })
        ));
        cfg.fec_percent = 200;
        let (s, low) = shape_for(&cfg, 1408 * 30000).unwrap();
        assert_eq!((s.data_shards, s.parity_shards, low), (30000, 32768, true));
        assert_eq!(shape_for(&cfg, 0), Err(PacketizeError::EmptyAccessUnit));
        assert!(matches!(
            shape_for(&cfg, 32769 * 1408),
            Err(PacketizeError::FrameTooLarge { max, .. }) if max == 32768 * 1408
        ));
    }

    #[test]
    fn the_cursor_writes_exactly_what_the_frame_api_writes() {
        use strahl_seal::aead::Backend;
        use strahl_seal::native::Direction;
        let new = || {
            let mut cfg = NativeConfig::new(1408);
            cfg.fec_percent = 30;
            let tx = TxSealer::new(&[3; 32], Direction::HostToClient, Backend::DEFAULT);
            NativePacketizer::new(cfg, tx).unwrap()
        };
        let (mut a, mut b) = (new(), new());
        let mut buf = vec![0u8; 1408 + OVERHEAD];
        for (i, len) in [1usize, 1408, 50_000, 140_801].into_iter().enumerate() {
            let au: Vec<u8> = (0..len).map(|j| (j * 31 + i) as u8).collect();
            let meta = FrameMeta {
                pts_us: i as u64 * 8333,
                keyframe: i == 0,
            };
            let mut want = Vec::new();
            let mut f = a.frame(&au, meta).unwrap();
            while let Some(n) = f.next_packet(&mut buf).unwrap() {
                want.push(buf[..n].to_vec());
            }
            let mut c = b.begin(&au, meta).unwrap();
            assert_eq!(c.remaining(), want.len());
            let mut got = Vec::new();
            while let Some(n) = b.write_next(&mut c, &au, &mut buf).unwrap() {
                got.push(buf[..n].to_vec());
            }
            assert_eq!(got, want, "AU of {len} B");
            assert_eq!(c.remaining(), 0);
        }
        assert_eq!(a.stats(), b.stats());
        // Another AU than the one begun is refused, not packetized.
        let mut c = b.begin(&[1; 100], FrameMeta::default()).unwrap();
        assert_eq!(
            b.write_next(&mut c, &[1; 99], &mut buf),
            Err(PacketizeError::OutOfOrder)
        );
    }

    #[test]
    fn config_validation() {
        assert!(NativeConfig::new(1407).validate().is_err());
        assert!(NativeConfig::new(62).validate().is_err());
        assert!(NativeConfig::new(8908).validate().is_ok());
        let mut c = NativeConfig::new(1408);
        c.stream = 16;
        assert!(c.validate().is_err());
    }
}
