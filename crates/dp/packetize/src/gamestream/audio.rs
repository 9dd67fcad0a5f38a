//! GameStream audio packetizer (`gamestream-host.md` §A17).
//!
//! - Data packet: RTP `0x80`, PT 97, seq u16 BE from 0, timestamp u32 BE in **ms** (0, then plus
//!   packetDuration per packet), ssrc 0, then the Opus packet, AES-128-CBC encrypted when on
//!   (standard clients always turn it on; it stays switchable for tests and legacy clients).
//! - After the data packet with seq ≡ 3 (mod 4), two FEC packets: RTP `0x80`, PT 127,
//!   seq = last data seq + 1 + shard index, timestamp 0, ssrc 0; then the 12-byte
//!   AUDIO_FEC_HEADER (shard index u8, PT 97, baseSequenceNumber u16 BE, baseTimestamp u32 BE,
//!   ssrc 0); then the parity of the block's 4 (encrypted) payloads with the fixed 4+2 matrix.
//! - The 4 payloads of a block must be the same size (CBR encoder); if they are not, the block is
//!   sent without FEC and counted (`fec_skipped_unequal`) because the client drops such blocks.
//! - Usage: [`GsAudioPacketizer::push`] for each Opus packet; when it reports `fec_ready`, call
//!   [`GsAudioPacketizer::next_fec`] (twice) before the next push.

use strahl_fec::gf8::AudioFec;
use strahl_seal::gamestream::AudioCipher;

use crate::stats::GsAudioStats;
use crate::{ConfigError, PacketizeError};

pub const RTP_HEADER_LEN: usize = 12;
pub const FEC_HEADER_LEN: usize = 12;
pub const RTP_BYTE0: u8 = 0x80;
pub const PT_AUDIO: u8 = 97;
pub const PT_FEC: u8 = 127;
/// Largest Opus packet (§A17: ≤ 1400 B).
pub const MAX_OPUS_LEN: usize = 1400;
/// Largest payload after CBC padding.
pub const MAX_PAYLOAD_LEN: usize = MAX_OPUS_LEN + 16;
/// Data packets per FEC block.
pub const BLOCK_DATA: usize = AudioFec::DATA;
/// FEC packets per block.
pub const BLOCK_PARITY: usize = AudioFec::PARITY;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GsAudioConfig {
    /// packetDuration from the ANNOUNCE (5 ms normally, 10 ms for slow clients).
    pub packet_duration_ms: u32,
}

impl Default for GsAudioConfig {
    fn default() -> Self {
        GsAudioConfig {
            packet_duration_ms: 5,
        }
    }
}

/// What [`GsAudioPacketizer::push`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioPush {
    /// Bytes of the data packet.
    pub len: usize,
    /// Its RTP seq.
    pub seq: u16,
    /// Two FEC packets are ready for [`GsAudioPacketizer::next_fec`].
    pub fec_ready: bool,
}

pub struct GsAudioPacketizer {
    cfg: GsAudioConfig,
    cipher: Option<AudioCipher>,
    seq: u16,
    timestamp: u32,
    /// The block's 4 payloads (as sent) and their common length.
    block: Vec<u8>,
    block_lens: [usize; BLOCK_DATA],
    parity: Vec<u8>,
    base_seq: u16,
    base_ts: u32,
    /// FEC packets of the finished block still to hand out (0..=2).
    fec_pending: usize,
    fec_len: usize,
    stats: GsAudioStats,
}

impl GsAudioPacketizer {
    /// `cipher`: `Some` when audio encryption is on.
    pub fn new(
        cfg: GsAudioConfig,
        cipher: Option<AudioCipher>,
    ) -> Result<GsAudioPacketizer, ConfigError> {
        if cfg.packet_duration_ms == 0 || cfg.packet_duration_ms > 1000 {
            return Err(ConfigError("packet_duration_ms must be 1..=1000"));
        }
        Ok(GsAudioPacketizer {
            cfg,
            cipher,
            seq: 0,
            timestamp: 0,
            block: vec![0; BLOCK_DATA * MAX_PAYLOAD_LEN],
            block_lens: [0; BLOCK_DATA],
            parity: vec![0; BLOCK_PARITY * MAX_PAYLOAD_LEN],
            base_seq: 0,
            base_ts: 0,
            fec_pending: 0,
            fec_len: 0,
            stats: GsAudioStats::default(),
        })
    }

    pub fn stats(&self) -> &GsAudioStats {
        &self.stats
    }

    /// Data packets pushed into the current FEC block so far (0..=3): the push that makes it 4
    /// also readies the block's two FEC packets (when the four payloads have equal lengths).
    pub fn block_fill(&self) -> usize {
        usize::from(self.seq % BLOCK_DATA as u16)
    }

    /// Largest data or FEC packet.
    pub const MAX_PACKET_LEN: usize = RTP_HEADER_LEN + FEC_HEADER_LEN + MAX_PAYLOAD_LEN;

    /// Packetize one Opus packet into `buf`.
    pub fn push(&mut self, opus: &[u8], buf: &mut [u8]) -> Result<AudioPush, PacketizeError> {
        if opus.is_empty() {
            self.stats.refused += 1;
            return Err(PacketizeError::EmptyAccessUnit);
        }
        if opus.len() > MAX_OPUS_LEN {
            self.stats.refused += 1;
            return Err(PacketizeError::FrameTooLarge {
                bytes: opus.len(),
                max: MAX_OPUS_LEN,
            });
        }
        let payload_len = if self.cipher.is_some() {
            AudioCipher::padded_len(opus.len())
        } else {
            opus.len()
        };
        let total = RTP_HEADER_LEN + payload_len;
        if buf.len() < total {
            return Err(PacketizeError::BufferTooSmall {
                needed: total,
                got: buf.len(),
            });
        }
        if self.fec_pending > 0 {
            self.stats.fec_dropped_undrained += self.fec_pending as u64;
            self.fec_pending = 0;
        }
        let seq = self.seq;
        buf[0] = RTP_BYTE0;
        buf[1] = PT_AUDIO;
        buf[2..4].copy_from_slice(&seq.to_be_bytes());
        buf[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        buf[8..12].fill(0);
        let payload = &mut buf[RTP_HEADER_LEN..total];
        match &self.cipher {
            Some(c) => {
                let n = c.encrypt(seq, opus, payload)?;
                debug_assert_eq!(n, payload_len);
            }
            None => payload.copy_from_slice(opus),
        }
        let i = (seq % BLOCK_DATA as u16) as usize;
        if i == 0 {
            self.base_seq = seq;
            self.base_ts = self.timestamp;
        }
        self.block[i * MAX_PAYLOAD_LEN..i * MAX_PAYLOAD_LEN + payload_len].copy_from_slice(payload);
        self.block_lens[i] = payload_len;
        let mut fec_ready = false;
        if i == BLOCK_DATA - 1 {
            let l = self.block_lens[0];
            if self.block_lens.iter().all(|&x| x == l) {
                let (b, p) = (&self.block, &mut self.parity);
                let data: [&[u8]; 4] =
                    std::array::from_fn(|j| &b[j * MAX_PAYLOAD_LEN..j * MAX_PAYLOAD_LEN + l]);
                let (p0, p1) = p.split_at_mut(MAX_PAYLOAD_LEN);
                AudioFec::encode(&data, &mut [&mut p0[..l], &mut p1[..l]])?;
                self.fec_pending = BLOCK_PARITY;
                self.fec_len = l;
                fec_ready = true;
            } else {
                self.stats.fec_skipped_unequal += 1;
            }
        }
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(self.cfg.packet_duration_ms);
        self.stats.packets += 1;
        self.stats.bytes += total as u64;
        Ok(AudioPush {
            len: total,
            seq,
            fec_ready,
        })
    }

    /// Write the next FEC packet of the last finished block, or `None` when there is none.
    pub fn next_fec(&mut self, buf: &mut [u8]) -> Result<Option<usize>, PacketizeError> {
        if self.fec_pending == 0 {
            return Ok(None);
        }
        let total = RTP_HEADER_LEN + FEC_HEADER_LEN + self.fec_len;
        if buf.len() < total {
            return Err(PacketizeError::BufferTooSmall {
                needed: total,
                got: buf.len(),
            });
        }
        let shard = BLOCK_PARITY - self.fec_pending;
        // Last data seq = base + 3; FEC seq = last + 1 + shard index.
        let seq = self.base_seq.wrapping_add(BLOCK_DATA as u16 + shard as u16);
        buf[0] = RTP_BYTE0;
        buf[1] = PT_FEC;
        buf[2..4].copy_from_slice(&seq.to_be_bytes());
        buf[4..12].fill(0);
        let h = &mut buf[RTP_HEADER_LEN..RTP_HEADER_LEN + FEC_HEADER_LEN];
        h[0] = shard as u8;
        h[1] = PT_AUDIO;
        h[2..4].copy_from_slice(&self.base_seq.to_be_bytes());
        h[4..8].copy_from_slice(&self.base_ts.to_be_bytes());
        h[8..12].fill(0);
        let src = &self.parity[shard * MAX_PAYLOAD_LEN..shard * MAX_PAYLOAD_LEN + self.fec_len];
        buf[RTP_HEADER_LEN + FEC_HEADER_LEN..total].copy_from_slice(src);
        self.fec_pending -= 1;
        self.stats.fec_packets += 1;
        self.stats.bytes += total as u64;
        Ok(Some(total))
    }
}
