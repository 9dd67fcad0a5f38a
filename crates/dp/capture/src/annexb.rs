//! Annex-B H.264 byte-stream helpers: NAL unit iteration and access-unit boundaries.
//!
//! Input is untrusted (a file on disk, or an encoder's output under test): every function is
//! total — malformed input yields fewer/odd NAL units, never a panic.
//!
//! AU boundary rule (H.264 §7.4.1.2.3, the subset that matters for single-layer streams): a new
//! access unit starts at an access unit delimiter (type 9), at an SPS/PPS/SEI/prefix NAL
//! (6, 7, 8, 14–18) that follows a VCL NAL of the current AU, or at a slice (type 1 or 5) whose
//! `first_mb_in_slice` is 0 when the current AU already holds a slice.

use std::ops::Range;

use crate::format::{Chroma, CodecKind, StreamFormat};

/// NAL unit types used here (H.264 Table 7-1).
pub mod nal_type {
    pub const SLICE: u8 = 1;
    pub const IDR: u8 = 5;
    pub const SEI: u8 = 6;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const AUD: u8 = 9;
}

/// One NAL unit inside a byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nal<'a> {
    /// Offset of the start code that precedes this NAL.
    pub start_code_at: usize,
    /// The NAL unit: header byte first, start code and trailing zero bytes excluded.
    pub bytes: &'a [u8],
}

impl Nal<'_> {
    /// `nal_unit_type` (low 5 bits of the header), 0 for an empty NAL.
    pub fn kind(&self) -> u8 {
        self.bytes.first().map_or(0, |b| b & 0x1f)
    }

    /// True for coded slices (the types that carry picture data here).
    pub fn is_vcl(&self) -> bool {
        matches!(self.kind(), nal_type::SLICE | nal_type::IDR)
    }

    /// `first_mb_in_slice` of a slice NAL, `None` if not a slice or truncated.
    pub fn first_mb_in_slice(&self) -> Option<u32> {
        if !self.is_vcl() {
            return None;
        }
        // Remove emulation-prevention bytes from the first few payload bytes: ue(v) of a
        // 32-bit value needs at most 8 bytes.
        let mut rbsp = [0u8; 8];
        let mut n = 0;
        let mut zeros = 0;
        for &b in self.bytes.iter().skip(1) {
            if n == rbsp.len() {
                break;
            }
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            rbsp[n] = b;
            n += 1;
        }
        BitReader::new(&rbsp[..n]).ue()
    }
}

/// Finds the next 3-byte start code (00 00 01) at or after `from`; returns its offset.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 3 <= data.len() {
        if data[i + 2] > 1 {
            i += 3;
        } else if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            return Some(i);
        } else {
            i += 1;
        }
    }
    None
}

/// Iterator over the NAL units of an Annex-B stream.
#[derive(Clone, Debug)]
pub struct NalIter<'a> {
    data: &'a [u8],
    next_sc: Option<usize>,
}

/// NAL units of `data` in order. Bytes before the first start code are ignored.
pub fn nal_units(data: &[u8]) -> NalIter<'_> {
    NalIter {
        data,
        next_sc: find_start_code(data, 0),
    }
}

impl<'a> Iterator for NalIter<'a> {
    type Item = Nal<'a>;

    fn next(&mut self) -> Option<Nal<'a>> {
        let sc = self.next_sc?;
        let body = sc + 3;
        let following = find_start_code(self.data, body);
        self.next_sc = following;
        let mut end = following.unwrap_or(self.data.len());
        // Trailing zero bytes belong to the next 4-byte start code / trailing_zero_8bits;
        // a NAL never ends in 0x00 (rbsp_trailing_bits).
        while end > body && self.data[end - 1] == 0 {
            end -= 1;
        }
        // A 4-byte start code: report the leading zero as part of the start code.
        let start_code_at = if sc > 0 && self.data[sc - 1] == 0 {
            sc - 1
        } else {
            sc
        };
        Some(Nal {
            start_code_at,
            bytes: &self.data[body..end],
        })
    }
}

/// Byte ranges of the access units of `data` (each range includes its NAL start codes).
/// Bytes before the first NAL and AUs without a slice (trailing parameter sets) are dropped.
pub fn access_unit_ranges(data: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut au_start: Option<usize> = None;
    let mut seen_vcl = false;
    for nal in nal_units(data) {
        let kind = nal.kind();
        let begins_new = seen_vcl
            && (matches!(
                kind,
                nal_type::AUD | nal_type::SEI | nal_type::SPS | nal_type::PPS
            ) || (14..=18).contains(&kind)
                || (nal.is_vcl() && nal.first_mb_in_slice() == Some(0)));
        if begins_new {
            if let Some(s) = au_start {
                out.push(s..nal.start_code_at);
            }
            au_start = Some(nal.start_code_at);
            seen_vcl = false;
        }
        au_start.get_or_insert(nal.start_code_at);
        seen_vcl |= nal.is_vcl();
    }
    if let (Some(s), true) = (au_start, seen_vcl) {
        out.push(s..data.len());
    }
    out
}

/// True when the AU is an IDR access unit in the form Moonlight recognises: its first NAL
/// (after any AUD/SEI) is an SPS, and it contains an IDR slice.
pub fn is_idr_au(au: &[u8]) -> bool {
    let mut first = None;
    let mut has_idr = false;
    for nal in nal_units(au) {
        let k = nal.kind();
        if first.is_none() && !matches!(k, nal_type::AUD | nal_type::SEI) {
            first = Some(k);
        }
        has_idr |= k == nal_type::IDR;
    }
    first == Some(nal_type::SPS) && has_idr
}

/// MSB-first bit reader for Exp-Golomb fields.
#[derive(Debug)]
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(b))
    }

    pub fn bits(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }

    /// Unsigned Exp-Golomb `ue(v)`; `None` when truncated or longer than 32 bits.
    pub fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        Some(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    /// Signed Exp-Golomb `se(v)`.
    pub fn se(&mut self) -> Option<i32> {
        let k = self.ue()?;
        let mag = k.div_ceil(2) as i32;
        Some(if k % 2 == 1 { mag } else { -mag })
    }
}

/// Removes emulation-prevention bytes (00 00 03 → 00 00) from a NAL payload into `out`.
pub fn unescape_into(nal: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
}

/// The [`StreamFormat`] of an H.264 SPS NAL (header byte included): profile, bit depth,
/// chroma and the cropped picture size. `None` when truncated or malformed
/// ([`crate::h264_sps`] reads it).
pub fn sps_format(nal: &[u8]) -> Option<StreamFormat> {
    let sps = crate::h264_sps::parse_h264_sps(nal)?;
    let (width, height) = sps.cropped_size()?;
    Some(StreamFormat {
        codec: CodecKind::H264,
        profile: sps.profile_idc,
        bit_depth: u8::try_from(sps.bit_depth).ok()?,
        chroma: match sps.chroma_format_idc {
            0 => Chroma::Mono,
            1 => Chroma::Yuv420,
            2 => Chroma::Yuv422,
            3 => Chroma::Yuv444,
            _ => return None,
        },
        width,
        height,
        mastering: None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nal(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 0, 1, 0x60 | kind];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn exp_golomb() {
        // 1 → 0; 010 → 1; 011 → 2; 00100 → 3
        let mut r = BitReader::new(&[0b1010_0110, 0b0100_0000]);
        assert_eq!(r.ue(), Some(0));
        assert_eq!(r.ue(), Some(1));
        assert_eq!(r.ue(), Some(2));
        assert_eq!(r.ue(), Some(3));
        assert_eq!(BitReader::new(&[0, 0, 0, 0, 0]).ue(), None);
        let mut r = BitReader::new(&[0b0100_1100]);
        assert_eq!((r.se(), r.se()), (Some(1), Some(-1)));
    }

    #[test]
    fn splits_on_first_mb_and_parameter_sets() {
        // first_mb_in_slice = 0 is the bit '1'; = 1 is '010'.
        let mut s = Vec::new();
        s.extend(nal(nal_type::SPS, &[0x42, 0x80]));
        s.extend(nal(nal_type::PPS, &[0xce]));
        s.extend(nal(nal_type::IDR, &[0x88, 0x80])); // mb 0
        s.extend(nal(nal_type::IDR, &[0x48, 0x80])); // mb 1: same AU
        s.extend(nal(nal_type::SLICE, &[0x9a, 0x80])); // mb 0: new AU
        s.extend(&[0, 0, 1, 0x09, 0xf0]); // AUD: new AU (3-byte start code)
        s.extend(nal(nal_type::SLICE, &[0x9a, 0x80, 0, 0])); // trailing zeros
        let aus = access_unit_ranges(&s);
        assert_eq!(aus.len(), 3);
        assert!(is_idr_au(&s[aus[0].clone()]));
        assert!(!is_idr_au(&s[aus[1].clone()]));
        assert_eq!(nal_units(&s[aus[0].clone()]).count(), 4);
        assert_eq!(s[aus[2].clone()][..4], [0, 0, 1, 9]);
        assert_eq!(aus[2].end, s.len());
        let kinds: Vec<u8> = nal_units(&s).map(|n| n.kind()).collect();
        assert_eq!(kinds, [7, 8, 5, 5, 1, 9, 1]);
    }

    #[test]
    fn emulation_prevention_in_first_mb() {
        // first_mb_in_slice with leading zero bytes escaped: 00 00 03 01 ... is
        // rbsp 00 00 01 → 23 zeros then 1 then 23 bits.
        let n = Nal {
            start_code_at: 0,
            bytes: &[0x01, 0x00, 0x00, 0x03, 0x01, 0xff, 0xff, 0xff],
        };
        assert_eq!(n.first_mb_in_slice(), Some((1 << 23) - 1 + 0x7fffff));
        let mut out = Vec::new();
        unescape_into(&[0, 0, 3, 1, 0, 0, 3], &mut out);
        assert_eq!(out, [0, 0, 1, 0, 0]);
    }

    /// A constrained-baseline SPS for 320x240 (20 x 15 macroblocks), bits written by hand.
    pub(crate) fn sps_320x240() -> Vec<u8> {
        let bits = format!(
            "{:08b}{:08b}{:08b}1{}{}{}0{}{}11001",
            66, 0xc0, 30, "1", "011", "010", "000010100", "0001111"
        );
        let mut v = vec![0, 0, 0, 1, 0x67];
        v.extend(bits.as_bytes().chunks(8).map(|c| {
            let s = std::str::from_utf8(c).unwrap();
            u8::from_str_radix(&format!("{s:0<8}"), 2).unwrap()
        }));
        v
    }

    #[test]
    fn sps_format_reads_size_and_depth() {
        let sps = sps_320x240();
        let f = sps_format(&sps[4..]).unwrap();
        assert_eq!(
            (f.codec, f.profile, f.bit_depth, f.chroma, f.width, f.height),
            (CodecKind::H264, 66, 8, Chroma::Yuv420, 320, 240)
        );
        assert_eq!(sps_format(&[0x68, 0xce]), None);
    }

    proptest! {
        #[test]
        fn hostile_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut sps = vec![0x67];
            sps.extend(&data);
            let _ = sps_format(&sps);
            let aus = access_unit_ranges(&data);
            for r in &aus {
                prop_assert!(r.start <= r.end && r.end <= data.len());
                let _ = is_idr_au(&data[r.clone()]);
            }
            for n in nal_units(&data) {
                let _ = n.first_mb_in_slice();
            }
        }
    }
}
