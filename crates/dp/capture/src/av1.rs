//! AV1 low-overhead bitstream (AV1 spec §5, "Section 5" OBUs each with a size field, as
//! ffmpeg's `obu` muxer and every GameStream AV1 encoder write it): OBU iteration, temporal
//! units, key-frame detection, the sequence header fields the negotiation needs and the HDR
//! metadata OBUs.
//!
//! Input is untrusted: every function is total — a malformed OBU ends the iteration, never a
//! panic. A temporal unit (the GameStream "access unit" of AV1) starts at a temporal
//! delimiter OBU; it is a key unit when it carries a sequence header and its first frame
//! header is a shown KEY_FRAME (what a decoder can start on; §7.5).

use std::ops::Range;

use crate::annexb::BitReader;
use crate::format::{Chroma, CodecKind, MasteringMetadata, StreamFormat, sat_u16};

/// OBU types used here (AV1 §6.2.2).
pub mod obu_type {
    pub const SEQUENCE_HEADER: u8 = 1;
    pub const TEMPORAL_DELIMITER: u8 = 2;
    pub const FRAME_HEADER: u8 = 3;
    pub const METADATA: u8 = 5;
    pub const FRAME: u8 = 6;
}

/// METADATA OBU types (AV1 §6.7.1).
const METADATA_HDR_CLL: u64 = 1;
const METADATA_HDR_MDCV: u64 = 2;

/// One OBU inside a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Obu<'a> {
    pub kind: u8,
    /// Offset of the OBU header in the stream.
    pub start: usize,
    /// Offset one past the OBU's last byte.
    pub end: usize,
    /// The OBU's payload (after header, extension and size field).
    pub payload: &'a [u8],
}

/// Iterator over the OBUs of a low-overhead stream.
#[derive(Clone, Debug)]
pub struct ObuIter<'a> {
    data: &'a [u8],
    at: usize,
}

/// The OBUs of `data`, in order; stops at the first malformed one.
pub fn obus(data: &[u8]) -> ObuIter<'_> {
    ObuIter { data, at: 0 }
}

/// `leb128()`: the value and its length in bytes (at most 8, §4.10.5).
fn leb128(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().take(8).enumerate() {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

impl<'a> Iterator for ObuIter<'a> {
    type Item = Obu<'a>;

    fn next(&mut self) -> Option<Obu<'a>> {
        let start = self.at;
        let rest = self.data.get(start..)?;
        let h = *rest.first()?;
        if h & 0x80 != 0 {
            self.at = self.data.len();
            return None; // forbidden bit
        }
        let mut off = 1 + usize::from(h & 0x04 != 0);
        let size = if h & 0x02 != 0 {
            let (v, n) = leb128(rest.get(off..)?)?;
            off += n;
            usize::try_from(v).ok()?
        } else {
            rest.len().checked_sub(off)?
        };
        let end = off.checked_add(size)?;
        let Some(payload) = rest.get(off..end) else {
            self.at = self.data.len();
            return None;
        };
        self.at = start + end;
        Some(Obu {
            kind: (h >> 3) & 0x0f,
            start,
            end: self.at,
            payload,
        })
    }
}

/// Byte ranges of the temporal units of `data`; a unit without a frame is dropped.
pub fn temporal_unit_ranges(data: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut tu_start: Option<usize> = None;
    let mut has_frame = false;
    let mut end = 0;
    for obu in obus(data) {
        if obu.kind == obu_type::TEMPORAL_DELIMITER {
            if let (Some(s), true) = (tu_start, has_frame) {
                out.push(s..obu.start);
            }
            tu_start = Some(obu.start);
            has_frame = false;
        }
        tu_start.get_or_insert(obu.start);
        has_frame |= matches!(obu.kind, obu_type::FRAME | obu_type::FRAME_HEADER);
        end = obu.end;
    }
    if let (Some(s), true) = (tu_start, has_frame) {
        out.push(s..end);
    }
    out
}

/// Sequence header fields (payload of a SEQUENCE_HEADER OBU).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequenceHeader {
    pub format: StreamFormat,
    pub reduced_still_picture_header: bool,
}

fn uvlc(r: &mut BitReader<'_>) -> Option<u32> {
    let mut zeros = 0;
    while r.bit()? == 0 {
        zeros += 1;
        if zeros >= 32 {
            return None;
        }
    }
    let v = r.bits(zeros)?;
    Some(((1u64 << zeros) - 1 + u64::from(v)) as u32)
}

/// Parses `sequence_header_obu()` (AV1 §5.5) up to the colour config's bit depth and chroma.
pub fn parse_sequence_header(p: &[u8]) -> Option<SequenceHeader> {
    let mut r = BitReader::new(p);
    let profile = r.bits(3)? as u8;
    r.bit()?; // still_picture
    let reduced = r.bit()? == 1;
    if reduced {
        r.bits(5)?;
    } else {
        let mut decoder_model = None;
        if r.bit()? == 1 {
            // timing_info()
            r.bits(32)?;
            r.bits(32)?;
            if r.bit()? == 1 {
                uvlc(&mut r)?;
            }
            if r.bit()? == 1 {
                // decoder_model_info()
                let delay_len = r.bits(5)? + 1;
                r.bits(32)?;
                r.bits(5)?;
                r.bits(5)?;
                decoder_model = Some(delay_len);
            }
        }
        let initial_display_delay = r.bit()? == 1;
        let points = r.bits(5)? + 1;
        for _ in 0..points {
            r.bits(12)?;
            if r.bits(5)? > 7 {
                r.bit()?;
            }
            if let Some(n) = decoder_model
                && r.bit()? == 1
            {
                r.bits(n)?;
                r.bits(n)?;
                r.bit()?;
            }
            if initial_display_delay && r.bit()? == 1 {
                r.bits(4)?;
            }
        }
    }
    let wbits = r.bits(4)? + 1;
    let hbits = r.bits(4)? + 1;
    let width = r.bits(wbits)?.checked_add(1)?;
    let height = r.bits(hbits)?.checked_add(1)?;
    if !reduced && r.bit()? == 1 {
        r.bits(7)?;
    }
    r.bits(3)?; // 128x128, filter intra, intra edge
    if !reduced {
        r.bits(4)?; // interintra, masked, warped, dual filter
        let order_hint = r.bit()? == 1;
        if order_hint {
            r.bits(2)?;
        }
        let force_sct = if r.bit()? == 1 { 2 } else { r.bit()? };
        if force_sct > 0 && r.bit()? == 0 {
            r.bit()?;
        }
        if order_hint {
            r.bits(3)?;
        }
    }
    r.bits(3)?; // superres, cdef, restoration
    // color_config()
    let high = r.bit()? == 1;
    let bit_depth = match (profile, high) {
        (2, true) if r.bit()? == 1 => 12,
        (_, true) => 10,
        _ => 8,
    };
    let mono = profile != 1 && r.bit()? == 1;
    let chroma = match (mono, profile, bit_depth) {
        (true, _, _) => Chroma::Mono,
        (_, 0, _) => Chroma::Yuv420,
        (_, 1, _) => Chroma::Yuv444,
        (_, 2, 8 | 10) => Chroma::Yuv422,
        _ => return None,
    };
    Some(SequenceHeader {
        format: StreamFormat {
            codec: CodecKind::Av1,
            profile,
            bit_depth,
            chroma,
            width,
            height,
            mastering: None,
        },
        reduced_still_picture_header: reduced,
    })
}

/// Whether the temporal unit `tu` can start decoding: a sequence header (its own, or `known`
/// from earlier in the stream when `tu` has none), then a first frame header that is a shown
/// KEY_FRAME (§5.9.2: `show_existing_frame` 0, `frame_type` 0).
pub fn is_key_unit_with(tu: &[u8], known: Option<SequenceHeader>) -> bool {
    let mut seq = known;
    for obu in obus(tu) {
        match obu.kind {
            obu_type::SEQUENCE_HEADER => seq = parse_sequence_header(obu.payload),
            obu_type::FRAME | obu_type::FRAME_HEADER => {
                let Some(seq) = seq else {
                    return false;
                };
                if seq.reduced_still_picture_header {
                    return true;
                }
                let mut r = BitReader::new(obu.payload);
                return r.bit() == Some(0) && r.bits(2) == Some(0);
            }
            _ => {}
        }
    }
    false
}

/// [`is_key_unit_with`] without earlier knowledge: the unit must carry its sequence header.
pub fn is_key_unit(tu: &[u8]) -> bool {
    is_key_unit_with(tu, None)
}

/// The sequence header OBU (whole, header included) of `tu`, if it has one.
pub fn sequence_header_obu(tu: &[u8]) -> Option<Range<usize>> {
    obus(tu)
        .find(|o| o.kind == obu_type::SEQUENCE_HEADER)
        .map(|o| o.start..o.end)
}

/// HDR metadata from a METADATA OBU payload, merged into `into`; whether it was an MDCV.
pub fn read_hdr_metadata(p: &[u8], into: &mut MasteringMetadata) -> bool {
    let Some((kind, n)) = leb128(p) else {
        return false;
    };
    let b = &p[n..];
    let be16 = |i: usize| u64::from(u16::from_be_bytes([b[i], b[i + 1]]));
    let be32 = |i: usize| u64::from(u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]));
    match kind {
        METADATA_HDR_CLL if b.len() >= 4 => {
            into.max_cll = be16(0) as u16;
            into.max_fall = be16(2) as u16;
            false
        }
        METADATA_HDR_MDCV if b.len() >= 24 => {
            // 0.16 fixed-point chromaticities → 0.00002 steps; luminance 24.8 → cd/m²,
            // 18.14 → 0.0001 cd/m².
            let c = |i: usize| sat_u16((be16(i) * 50_000 + 32_768) / 65_536);
            into.primaries = [(c(0), c(2)), (c(4), c(6)), (c(8), c(10))];
            into.white_point = (c(12), c(14));
            into.max_luminance = sat_u16(be32(16) >> 8);
            into.min_luminance = sat_u16(be32(20) * 10_000 / 16_384);
            true
        }
        _ => false,
    }
}

/// The stream's format from its first sequence header, with HDR metadata when present.
pub fn probe(data: &[u8]) -> Option<StreamFormat> {
    let mut format = None;
    let mut hdr = MasteringMetadata::default();
    let mut has_hdr = false;
    for obu in obus(data).take(4096) {
        match obu.kind {
            obu_type::SEQUENCE_HEADER if format.is_none() => {
                format = parse_sequence_header(obu.payload).map(|s| s.format);
            }
            obu_type::METADATA => has_hdr |= read_hdr_metadata(obu.payload, &mut hdr),
            _ => {}
        }
    }
    let mut f = format?;
    f.mastering = has_hdr.then_some(hdr);
    Some(f)
}

/// Whether `data` looks like a low-overhead AV1 stream: it opens with a temporal delimiter OBU
/// carrying a size field (0x12 0x00), as every AV1 encoder's output does.
pub fn looks_like_av1(data: &[u8]) -> bool {
    data.starts_with(&[0x12, 0x00])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn obu(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(kind << 3) | 0x02, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    /// A reduced-still-picture sequence header: profile 0, 8-bit 4:2:0, 320x240 — bits written
    /// by hand: profile 000, still 1, reduced 1, level 00000, wbits-1 1000 (9), hbits-1 0111
    /// (8), width-1 (319, 9 bits), height-1 (239, 8 bits), 3 tool bits, 3 more, high 0, mono 0.
    fn seq_header(high: bool) -> Vec<u8> {
        let mut bits = String::from("000110000010000111");
        bits.push_str(&format!("{:09b}{:08b}", 319, 239));
        bits.push_str("000000");
        bits.push(if high { '1' } else { '0' });
        bits.push('0');
        while bits.len() % 8 != 0 {
            bits.push('0');
        }
        bits.as_bytes()
            .chunks(8)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 2).unwrap())
            .collect()
    }

    #[test]
    fn units_keys_and_format() {
        let mut s = Vec::new();
        s.extend(obu(obu_type::TEMPORAL_DELIMITER, &[]));
        s.extend(obu(obu_type::SEQUENCE_HEADER, &seq_header(true)));
        s.extend(obu(obu_type::FRAME, &[0x10, 0xaa]));
        s.extend(obu(obu_type::TEMPORAL_DELIMITER, &[]));
        s.extend(obu(obu_type::FRAME, &[0x30, 0xbb]));
        assert!(looks_like_av1(&s));
        let tus = temporal_unit_ranges(&s);
        assert_eq!(tus.len(), 2);
        assert_eq!(tus[1].end, s.len());
        assert!(is_key_unit(&s[tus[0].clone()]));
        assert!(!is_key_unit(&s[tus[1].clone()]));
        let f = probe(&s).unwrap();
        assert_eq!(
            (f.codec, f.profile, f.bit_depth, f.chroma, f.width, f.height),
            (CodecKind::Av1, 0, 10, Chroma::Yuv420, 320, 240)
        );
        assert_eq!(
            probe(&obu(obu_type::SEQUENCE_HEADER, &seq_header(false)))
                .unwrap()
                .bit_depth,
            8
        );
    }

    #[test]
    fn mdcv_and_cll_are_converted() {
        let mut p = vec![METADATA_HDR_MDCV as u8];
        for v in [
            45_000u16, 21_000, 17_000, 45_000, 9_800, 3_900, 20_500, 21_560,
        ] {
            p.extend(v.to_be_bytes());
        }
        p.extend((1000u32 << 8).to_be_bytes());
        p.extend(16_384u32.to_be_bytes()); // 1.0 cd/m²
        let mut m = MasteringMetadata::default();
        assert!(read_hdr_metadata(&p, &mut m));
        assert_eq!(m.primaries[0], (34332, 16022));
        assert_eq!((m.max_luminance, m.min_luminance), (1000, 10_000));
        let cll = [METADATA_HDR_CLL as u8, 0x03, 0xe8, 0x01, 0x90];
        assert!(!read_hdr_metadata(&cll, &mut m));
        assert_eq!((m.max_cll, m.max_fall), (1000, 400));
    }

    proptest! {
        #[test]
        fn hostile_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            for r in temporal_unit_ranges(&data) {
                prop_assert!(r.start <= r.end && r.end <= data.len());
                let _ = is_key_unit(&data[r.clone()]);
            }
            let _ = probe(&data);
            let _ = parse_sequence_header(&data);
            let _ = read_hdr_metadata(&data, &mut MasteringMetadata::default());
        }
    }
}
