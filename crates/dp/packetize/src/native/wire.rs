//! The `strahl/1` media datagram, byte by byte (also in `docs/strahl1-wire.md`).
//!
//! ```text
//! offset size  field            (all multi-byte integers big-endian)
//! ---- clear prefix: authenticated as AAD, never encrypted ----
//!  0     1     tag              bits 7-6: 00 (RFC 9443 demux room: QUIC never starts with 00)
//!                               bits 5-4: version, 01 for strahl/1
//!                               bits 3-0: stream id (0 = video; others reserved for audio/probe)
//!  1     3     pn_low           packet number, low 24 bits; the receiver expands it against the
//!                               largest authenticated pn (± 2^23 packets of reorder)
//! ---- sealed (AES-128-GCM, nonce = IV_g xor pn, key generation g = pn >> 23) ----
//!  4     4     frame_id         +1 per frame, wraps; the receiver expands it to 64 bits
//!  8     2     shard_index      0..k-1 data shards, k..k+m-1 parity shards
//! 10     2     k                data shards of the frame, ≥ 1
//! 12     2     m                parity shards of the frame; k + m ≤ 65535
//! 14     2     shard_len        S, even, MIN_SHARD_LEN..=MAX_SHARD_LEN; every shard of a frame is
//!                               S bytes on the FEC side
//! 16     4     frame_len        access-unit bytes; (k-1)·S < frame_len ≤ k·S
//! 20     1     flags            bit 0 KEYFRAME (decodable without earlier frames);
//!                               bits 1-7 reserved, must be 0
//! 21     1     reserved         must be 0
//! 22     6     pts_us           presentation time, µs since the session's media clock origin
//! 28     L     shard            L = S, except the last data shard (index k-1), which carries only
//!                               frame_len - (k-1)·S bytes: the zero padding up to S is implied
//!                               (the receiver pads before FEC), not sent
//! 28+L  16     tag              GCM tag over prefix (AAD) and bytes 4..28+L
//! ```
//! Overhead per datagram: 4 + 24 + 16 = 44 bytes ([`OVERHEAD`]).
//!
//! Why these choices (compared with the peer format in `prior-art.md` §2.3, 46 B): the packet
//! number is truncated to 24 bits because the replay window and key generations (2^23) make
//! anything wider redundant; the frame length is explicit so every shard can be checked against
//! `k` and `S` on its own and the last data shard need not carry padding; parity count `m` and
//! `k` in every shard let a receiver recover from any `k` shards without having seen shard 0.

/// Version carried in bits 5-4 of the tag byte.
pub const VERSION: u8 = 1;
/// Clear prefix: tag + 24-bit packet number.
pub const PREFIX_LEN: usize = 4;
/// Sealed header that precedes the shard.
pub const HEADER_LEN: usize = 24;
/// AES-GCM tag.
pub const TAG_LEN: usize = strahl_seal::TAG_LEN;
/// Bytes per datagram that are not shard payload.
pub const OVERHEAD: usize = PREFIX_LEN + HEADER_LEN + TAG_LEN;
/// Packet-number bits on the wire.
pub const PN_BITS: u32 = 24;
/// Largest shard count of one GF(2^16) block (`reed-solomon-simd` supports up to 65535 in total
/// with at most 32768 of one kind; see [`MAX_DATA_SHARDS`]).
pub const MAX_SHARDS: usize = 65535;
/// `reed-solomon-simd` limits original and recovery counts to 32768 each when the other side is
/// large; we keep k ≤ 32768 and m ≤ 32768 so every shape with k + m ≤ 65535 encodes.
pub const MAX_DATA_SHARDS: usize = 32768;
/// See [`MAX_DATA_SHARDS`].
pub const MAX_PARITY_SHARDS: usize = 32768;
/// Smallest shard a sender may use. Any real path (IPv6 minimum MTU 1280 → 1188-byte shards)
/// gives far more; the floor keeps per-shard bookkeeping small against shard bytes so a peer
/// cannot make the receiver track 65535 two-byte shards.
pub const MIN_SHARD_LEN: usize = 64;
/// Largest shard: even and ≤ u16 (jumbo 9000 MTU needs 8908).
pub const MAX_SHARD_LEN: usize = 65534;
/// `flags` bit: the frame is a keyframe.
pub const FLAG_KEYFRAME: u8 = 0x01;
/// Largest pts (48 bits).
pub const MAX_PTS_US: u64 = (1 << 48) - 1;

/// Why a prefix or header was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    TooShort,
    /// Top bits not 00 or version not 1.
    BadTag,
    ZeroDataShards,
    TooManyShards,
    ShardIndexOutOfRange,
    BadShardLen,
    BadFrameLen,
    ReservedBits,
}

/// The clear prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    pub stream: u8,
    /// Low [`PN_BITS`] bits of the packet number.
    pub pn_low: u32,
}

impl Prefix {
    pub fn new(stream: u8, packet_number: u64) -> Prefix {
        Prefix {
            stream: stream & 0x0F,
            pn_low: (packet_number & ((1 << PN_BITS) - 1)) as u32,
        }
    }

    pub fn encode(&self, out: &mut [u8; PREFIX_LEN]) {
        out[0] = (VERSION << 4) | (self.stream & 0x0F);
        out[1..4].copy_from_slice(&self.pn_low.to_be_bytes()[1..4]);
    }

    pub fn decode(b: &[u8]) -> Result<Prefix, HeaderError> {
        let b: &[u8; PREFIX_LEN] = b
            .get(..PREFIX_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(HeaderError::TooShort)?;
        if b[0] >> 4 != VERSION {
            return Err(HeaderError::BadTag);
        }
        Ok(Prefix {
            stream: b[0] & 0x0F,
            pn_low: u32::from_be_bytes([0, b[1], b[2], b[3]]),
        })
    }
}

/// The sealed per-shard header, validated: every value obeys the invariants in the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardHeader {
    pub frame_id: u32,
    pub shard_index: u16,
    pub data_shards: u16,
    pub parity_shards: u16,
    pub shard_len: u16,
    pub frame_len: u32,
    pub flags: u8,
    pub pts_us: u64,
}

impl ShardHeader {
    pub fn keyframe(&self) -> bool {
        self.flags & FLAG_KEYFRAME != 0
    }

    pub fn total_shards(&self) -> usize {
        self.data_shards as usize + self.parity_shards as usize
    }

    pub fn is_parity(&self) -> bool {
        self.shard_index >= self.data_shards
    }

    /// Bytes of the last data shard (1..=S).
    pub fn last_data_len(&self) -> usize {
        self.frame_len as usize - (self.data_shards as usize - 1) * self.shard_len as usize
    }

    /// Shard bytes this datagram carries on the wire.
    pub fn wire_shard_len(&self) -> usize {
        if self.shard_index as usize + 1 == self.data_shards as usize {
            self.last_data_len()
        } else {
            self.shard_len as usize
        }
    }

    /// Check the invariants (senders call it before encoding, receivers after decoding).
    pub fn validate(&self) -> Result<(), HeaderError> {
        let (k, m, s) = (
            self.data_shards as usize,
            self.parity_shards as usize,
            self.shard_len as usize,
        );
        if k == 0 {
            return Err(HeaderError::ZeroDataShards);
        }
        if k > MAX_DATA_SHARDS || m > MAX_PARITY_SHARDS || k + m > MAX_SHARDS {
            return Err(HeaderError::TooManyShards);
        }
        if self.shard_index as usize >= k + m {
            return Err(HeaderError::ShardIndexOutOfRange);
        }
        if !(MIN_SHARD_LEN..=MAX_SHARD_LEN).contains(&s) || !s.is_multiple_of(2) {
            return Err(HeaderError::BadShardLen);
        }
        let len = self.frame_len as usize;
        if len <= (k - 1) * s || len > k * s {
            return Err(HeaderError::BadFrameLen);
        }
        if self.flags & !FLAG_KEYFRAME != 0 || self.pts_us > MAX_PTS_US {
            return Err(HeaderError::ReservedBits);
        }
        Ok(())
    }

    /// Write the header (does not validate; the packetizer builds only valid ones).
    pub fn encode(&self, out: &mut [u8; HEADER_LEN]) {
        out[0..4].copy_from_slice(&self.frame_id.to_be_bytes());
        out[4..6].copy_from_slice(&self.shard_index.to_be_bytes());
        out[6..8].copy_from_slice(&self.data_shards.to_be_bytes());
        out[8..10].copy_from_slice(&self.parity_shards.to_be_bytes());
        out[10..12].copy_from_slice(&self.shard_len.to_be_bytes());
        out[12..16].copy_from_slice(&self.frame_len.to_be_bytes());
        out[16] = self.flags;
        out[17] = 0;
        out[18..24].copy_from_slice(&self.pts_us.to_be_bytes()[2..8]);
    }

    /// Parse and validate `b[..HEADER_LEN]`.
    pub fn decode(b: &[u8]) -> Result<ShardHeader, HeaderError> {
        let b: &[u8; HEADER_LEN] = b
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(HeaderError::TooShort)?;
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if b[17] != 0 {
            return Err(HeaderError::ReservedBits);
        }
        let mut pts = [0u8; 8];
        pts[2..8].copy_from_slice(&b[18..24]);
        let h = ShardHeader {
            frame_id: u32_at(0),
            shard_index: u16_at(4),
            data_shards: u16_at(6),
            parity_shards: u16_at(8),
            shard_len: u16_at(10),
            frame_len: u32_at(12),
            flags: b[16],
            pts_us: u64::from_be_bytes(pts),
        };
        h.validate()?;
        Ok(h)
    }
}

/// Even shard length for a given largest UDP payload (path MTU − IP − UDP header).
/// 1500 MTU: IPv4 1472 → 1428, IPv6 1452 → 1408; 9000 MTU: IPv4 8972 → 8928, IPv6 8952 → 8908.
pub fn shard_len_for_udp_payload(max_udp_payload: usize) -> usize {
    (max_udp_payload.saturating_sub(OVERHEAD) & !1).min(MAX_SHARD_LEN)
}

/// [`shard_len_for_udp_payload`] from a link MTU.
pub fn shard_len_for_mtu(mtu: usize, ipv6: bool) -> usize {
    let ip = if ipv6 { 40 } else { 20 };
    shard_len_for_udp_payload(mtu.saturating_sub(ip + 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ShardHeader {
        ShardHeader {
            frame_id: 0x0102_0304,
            shard_index: 7,
            data_shards: 10,
            parity_shards: 2,
            shard_len: 1408,
            frame_len: 9 * 1408 + 5,
            flags: FLAG_KEYFRAME,
            pts_us: 0x0A0B_0C0D_0E0F,
        }
    }

    #[test]
    fn header_bytes_are_as_documented() {
        let mut b = [0u8; HEADER_LEN];
        sample().encode(&mut b);
        let frame_len = (9u32 * 1408 + 5).to_be_bytes();
        let expected = [
            1,
            2,
            3,
            4, // frame_id
            0,
            7, // shard_index
            0,
            10, // k
            0,
            2, // m
            0x05,
            0x80, // 1408
            frame_len[0],
            frame_len[1],
            frame_len[2],
            frame_len[3],
            0x01,
            0x00, // flags, reserved
            0x0A,
            0x0B,
            0x0C,
            0x0D,
            0x0E,
            0x0F, // pts
        ];
        assert_eq!(b, expected);
        assert_eq!(ShardHeader::decode(&b), Ok(sample()));
        let mut p = [0u8; PREFIX_LEN];
        Prefix::new(3, 0x0012_3456_789A).encode(&mut p);
        assert_eq!(p, [0x13, 0x56, 0x78, 0x9A]);
        assert_eq!(
            Prefix::decode(&p),
            Ok(Prefix {
                stream: 3,
                pn_low: 0x56789A
            })
        );
    }

    #[test]
    fn invariants_are_enforced() {
        let bad = |f: &dyn Fn(&mut ShardHeader)| {
            let mut h = sample();
            f(&mut h);
            let mut b = [0u8; HEADER_LEN];
            h.encode(&mut b);
            ShardHeader::decode(&b)
        };
        assert_eq!(
            bad(&|h| h.data_shards = 0),
            Err(HeaderError::ZeroDataShards)
        );
        assert_eq!(
            bad(&|h| h.shard_index = 12),
            Err(HeaderError::ShardIndexOutOfRange)
        );
        assert_eq!(bad(&|h| h.shard_len = 1407), Err(HeaderError::BadShardLen));
        assert_eq!(bad(&|h| h.shard_len = 62), Err(HeaderError::BadShardLen));
        assert_eq!(
            bad(&|h| h.frame_len = 9 * 1408),
            Err(HeaderError::BadFrameLen)
        );
        assert_eq!(
            bad(&|h| h.frame_len = 10 * 1408 + 1),
            Err(HeaderError::BadFrameLen)
        );
        assert_eq!(bad(&|h| h.flags = 0x02), Err(HeaderError::ReservedBits));
        assert_eq!(
            bad(&|h| {
                h.data_shards = 40000;
                h.frame_len = 39999 * 1408 + 1;
            }),
            Err(HeaderError::TooManyShards)
        );
        assert_eq!(
            bad(&|h| h.frame_len = 10 * 1408),
            Ok(ShardHeader {
                frame_len: 10 * 1408,
                ..sample()
            })
        );
        let mut b = [0u8; HEADER_LEN];
        sample().encode(&mut b);
        b[17] = 1;
        assert_eq!(ShardHeader::decode(&b), Err(HeaderError::ReservedBits));
        assert_eq!(ShardHeader::decode(&b[..23]), Err(HeaderError::TooShort));
        assert_eq!(Prefix::decode(&[0x20, 0, 0, 0]), Err(HeaderError::BadTag));
        assert_eq!(Prefix::decode(&[0x50, 0, 0, 0]), Err(HeaderError::BadTag));
    }

    #[test]
    fn last_shard_carries_only_its_bytes() {
        let h = ShardHeader {
            shard_index: 9,
            ..sample()
        };
        assert_eq!(h.wire_shard_len(), 5);
        assert_eq!(sample().wire_shard_len(), 1408);
        assert_eq!(
            ShardHeader {
                shard_index: 10,
                ..sample()
            }
            .wire_shard_len(),
            1408
        );
    }

    #[test]
    fn shard_sizes_from_mtu() {
        assert_eq!(shard_len_for_mtu(1500, true), 1408);
        assert_eq!(shard_len_for_mtu(1500, false), 1428);
        assert_eq!(shard_len_for_mtu(9000, true), 8908);
        assert_eq!(shard_len_for_mtu(9000, false), 8928);
        assert_eq!(shard_len_for_udp_payload(1451), 1406);
    }
}
