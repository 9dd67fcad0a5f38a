//! Checkable frames: access units whose every byte a receiver can verify without the sender.
//!
//! The pattern source of the data plane fills frames with [`fill_checkable`] so the network path
//! can be pushed at rates no encoder makes (issue 10 item 5), and `strahl-client stream` proves
//! each reassembled frame with [`verify_checkable`]: the right length, the right sequence number
//! and every payload byte as generated — a frame that FEC rebuilt wrongly, or that the seal let
//! through altered, cannot pass.
//!
//! Layout (little-endian), [`CHECK_HEADER_LEN`] bytes of header, then the payload:
//!
//! | bytes  | field                                                          |
//! |--------|----------------------------------------------------------------|
//! | 0..4   | magic `STRC`                                                   |
//! | 4..12  | sequence number of the frame (u64)                             |
//! | 12..16 | total length of the frame, header included (u32)               |
//! | 16..24 | header check: `mix(seq ^ (len << 32) ^ MAGIC_SEED)`             |
//! | 24..   | payload: the splitmix64 stream seeded by `seq ^ len`, 8 bytes a word |
//!
//! Generation and verification are one pass of splitmix64 (≈ 1 ns per 8 bytes), no allocation.

/// Bytes of header at the start of every checkable frame (the smallest checkable frame).
pub const CHECK_HEADER_LEN: usize = 24;

const MAGIC: &[u8; 4] = b"STRC";
const MAGIC_SEED: u64 = 0x5354_5243_6672_616d;

/// Why a frame is not the checkable frame it claims to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// Fewer than [`CHECK_HEADER_LEN`] bytes (to fill or to verify).
    TooShort { len: usize },
    /// A frame longer than a `u32` can describe.
    TooLong { len: usize },
    /// The first four bytes are not `STRC`: not a pattern frame at all.
    BadMagic,
    /// The header's length field disagrees with the bytes received.
    LengthMismatch { header: u32, actual: usize },
    /// The header's check word does not match its sequence number and length.
    BadHeader,
    /// Payload byte `offset` (from the frame's start) differs from the pattern.
    BadPayload { seq: u64, offset: usize },
}

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckError::TooShort { len } => {
                write!(f, "{len} bytes is shorter than a checkable frame's header")
            }
            CheckError::TooLong { len } => write!(f, "{len} bytes is too long for a frame"),
            CheckError::BadMagic => write!(f, "not a pattern frame (no STRC magic)"),
            CheckError::LengthMismatch { header, actual } => {
                write!(f, "header says {header} bytes, frame has {actual}")
            }
            CheckError::BadHeader => write!(f, "header check word does not match"),
            CheckError::BadPayload { seq, offset } => {
                write!(
                    f,
                    "frame {seq}: payload differs from the pattern at byte {offset}"
                )
            }
        }
    }
}

impl std::error::Error for CheckError {}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The payload word stream of a frame.
struct Pattern(u64);

impl Pattern {
    fn new(seq: u64, len: usize) -> Self {
        Pattern(seq ^ len as u64)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
}

fn header_check(seq: u64, len: u32) -> u64 {
    mix(seq ^ (u64::from(len) << 32) ^ MAGIC_SEED)
}

/// Fill all of `out` as checkable frame `seq` (its length is `out.len()`).
pub fn fill_checkable(seq: u64, out: &mut [u8]) -> Result<(), CheckError> {
    let len = out.len();
    if len < CHECK_HEADER_LEN {
        return Err(CheckError::TooShort { len });
    }
    let len32 = u32::try_from(len).map_err(|_| CheckError::TooLong { len })?;
    let (header, payload) = out.split_at_mut(CHECK_HEADER_LEN);
    header[0..4].copy_from_slice(MAGIC);
    header[4..12].copy_from_slice(&seq.to_le_bytes());
    header[12..16].copy_from_slice(&len32.to_le_bytes());
    header[16..24].copy_from_slice(&header_check(seq, len32).to_le_bytes());
    let mut p = Pattern::new(seq, len);
    let mut words = payload.chunks_exact_mut(8);
    for w in &mut words {
        w.copy_from_slice(&p.next().to_le_bytes());
    }
    let tail = words.into_remainder();
    let last = p.next().to_le_bytes();
    tail.copy_from_slice(&last[..tail.len()]);
    Ok(())
}

/// Verify a received frame; its sequence number when every byte is as [`fill_checkable`] made it.
pub fn verify_checkable(au: &[u8]) -> Result<u64, CheckError> {
    let len = au.len();
    if len < CHECK_HEADER_LEN {
        return Err(CheckError::TooShort { len });
    }
    if &au[0..4] != MAGIC {
        return Err(CheckError::BadMagic);
    }
    let word = |r: std::ops::Range<usize>| {
        let mut b = [0u8; 8];
        b[..r.len()].copy_from_slice(&au[r]);
        u64::from_le_bytes(b)
    };
    let seq = word(4..12);
    let header_len = word(12..16) as u32;
    if header_len as usize != len {
        return Err(CheckError::LengthMismatch {
            header: header_len,
            actual: len,
        });
    }
    if word(16..24) != header_check(seq, header_len) {
        return Err(CheckError::BadHeader);
    }
    let payload = &au[CHECK_HEADER_LEN..];
    let mut p = Pattern::new(seq, len);
    let mut words = payload.chunks_exact(8);
    for (i, w) in (&mut words).enumerate() {
        let want = p.next().to_le_bytes();
        if w != want {
            let at = w.iter().zip(want).position(|(a, b)| *a != b).unwrap_or(0);
            return Err(CheckError::BadPayload {
                seq,
                offset: CHECK_HEADER_LEN + i * 8 + at,
            });
        }
    }
    let tail = words.remainder();
    let want = p.next().to_le_bytes();
    if let Some(at) = tail.iter().zip(want).position(|(a, b)| *a != b) {
        return Err(CheckError::BadPayload {
            seq,
            offset: len - tail.len() + at,
        });
    }
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_every_small_length_and_a_large_one() {
        for len in (CHECK_HEADER_LEN..CHECK_HEADER_LEN + 20).chain([1 << 20]) {
            let mut f = vec![0u8; len];
            fill_checkable(len as u64 * 7, &mut f).unwrap();
            assert_eq!(verify_checkable(&f), Ok(len as u64 * 7), "len {len}");
        }
    }

    #[test]
    fn every_single_byte_change_is_caught() {
        let mut f = vec![0u8; 301];
        fill_checkable(42, &mut f).unwrap();
        for i in 0..f.len() {
            let mut g = f.clone();
            g[i] ^= 0x01;
            let e = verify_checkable(&g).expect_err("a flipped byte passed");
            if i >= CHECK_HEADER_LEN {
                assert_eq!(e, CheckError::BadPayload { seq: 42, offset: i });
            }
        }
    }

    #[test]
    fn truncation_and_other_frames_are_refused() {
        let mut f = vec![0u8; 100];
        fill_checkable(1, &mut f).unwrap();
        assert_eq!(
            verify_checkable(&f[..99]),
            Err(CheckError::LengthMismatch {
                header: 100,
                actual: 99
            })
        );
        assert_eq!(
            verify_checkable(&f[..10]),
            Err(CheckError::TooShort { len: 10 })
        );
        assert_eq!(
            fill_checkable(0, &mut [0u8; 23]),
            Err(CheckError::TooShort { len: 23 })
        );
        // Frame 2 of the same length is another pattern.
        let mut g = vec![0u8; 100];
        fill_checkable(2, &mut g).unwrap();
        assert_ne!(f[CHECK_HEADER_LEN..], g[CHECK_HEADER_LEN..]);
        assert_eq!(verify_checkable(&[0u8; 64]), Err(CheckError::BadMagic));
    }
}
