//! Annex-B HEVC (H.265) helpers: NAL types, access-unit boundaries, IRAP detection, the SPS
//! fields the negotiation needs and the HDR10 SEI messages.
//!
//! Input is untrusted (a file on disk): every function is total — malformed input yields fewer
//! or odd results, never a panic. NAL units are found with [`crate::annexb::nal_units`] (the
//! start-code framing is the same as H.264's); only the 2-byte header differs.
//!
//! AU boundary rule (H.265 §7.4.2.4.4, single-layer subset): a new access unit starts at an
//! AUD (35), a VPS/SPS/PPS (32–34), a prefix SEI (39) or a reserved prefix type (41–44, 48–55)
//! that follows a VCL NAL of the current AU, or at a VCL NAL (0–31) whose
//! `first_slice_segment_in_pic_flag` is set when the current AU already holds one.

use std::ops::Range;

use crate::annexb::{BitReader, nal_units, unescape_into};
use crate::format::{Chroma, CodecKind, MasteringMetadata, StreamFormat, sat_u16};

/// NAL unit types used here (H.265 Table 7-1).
pub mod nal_type {
    pub const BLA_W_LP: u8 = 16;
    pub const CRA: u8 = 21;
    pub const VPS: u8 = 32;
    pub const SPS: u8 = 33;
    pub const PPS: u8 = 34;
    pub const AUD: u8 = 35;
    pub const PREFIX_SEI: u8 = 39;
    pub const SUFFIX_SEI: u8 = 40;
}

/// `nal_unit_type` of a NAL (header included), 0xff when too short.
pub fn kind(nal: &[u8]) -> u8 {
    if nal.len() < 2 {
        return 0xff;
    }
    (nal[0] >> 1) & 0x3f
}

fn is_vcl(k: u8) -> bool {
    k < 32
}

/// An intra random access point (BLA, IDR, CRA): a decoder can start here. With no leading
/// pictures (no B-frames, as every GameStream encoder is configured) a CRA is as good as an IDR.
pub fn is_irap(k: u8) -> bool {
    (nal_type::BLA_W_LP..=nal_type::CRA).contains(&k)
}

fn begins_au(k: u8) -> bool {
    matches!(
        k,
        nal_type::VPS | nal_type::SPS | nal_type::PPS | nal_type::AUD | nal_type::PREFIX_SEI
    ) || (41..=44).contains(&k)
        || (48..=55).contains(&k)
}

/// Byte ranges of the access units of `data` (each includes its start codes). Bytes before
/// the first NAL and a trailing AU without a slice are dropped.
pub fn access_unit_ranges(data: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut au_start: Option<usize> = None;
    let mut seen_vcl = false;
    for nal in nal_units(data) {
        let k = kind(nal.bytes);
        let first_slice = is_vcl(k) && nal.bytes.get(2).is_some_and(|b| b & 0x80 != 0);
        if seen_vcl && (begins_au(k) || first_slice) {
            if let Some(s) = au_start {
                out.push(s..nal.start_code_at);
            }
            au_start = Some(nal.start_code_at);
            seen_vcl = false;
        }
        au_start.get_or_insert(nal.start_code_at);
        seen_vcl |= is_vcl(k);
    }
    if let (Some(s), true) = (au_start, seen_vcl) {
        out.push(s..data.len());
    }
    out
}

/// True when the AU holds an IRAP picture.
pub fn has_irap(au: &[u8]) -> bool {
    nal_units(au).any(|n| is_irap(kind(n.bytes)))
}

/// True when the AU's first NAL (after AUD/SEI) is a VPS — the form Moonlight recognises as an
/// IDR (§A14).
pub fn starts_with_vps(au: &[u8]) -> bool {
    nal_units(au).map(|n| kind(n.bytes)).find(|&k| {
        !matches!(
            k,
            nal_type::AUD | nal_type::PREFIX_SEI | nal_type::SUFFIX_SEI
        )
    }) == Some(nal_type::VPS)
}

/// Fields of an SPS (NAL header included).
pub fn parse_sps(nal: &[u8]) -> Option<StreamFormat> {
    if kind(nal) != nal_type::SPS {
        return None;
    }
    let mut rbsp = Vec::with_capacity(nal.len());
    unescape_into(nal.get(2..)?, &mut rbsp);
    let mut r = BitReader::new(&rbsp);
    r.bits(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?;
    r.bit()?; // temporal_id_nesting
    // profile_tier_level(1, max_sub_layers_minus1)
    r.bits(3)?; // profile_space, tier
    let profile = r.bits(5)? as u8;
    r.bits(32)?; // compatibility flags
    r.bits(32)?; // progressive, interlaced, non-packed, frame-only + 28 more flag bits
    r.bits(16)?; // the other 16 of the 48 flag bits
    r.bits(8)?; // general_level_idc
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(max_sub_layers_minus1 as usize) {
        *p = (r.bit()? == 1, r.bit()? == 1);
    }
    if max_sub_layers_minus1 > 0 {
        for _ in max_sub_layers_minus1..8 {
            r.bits(2)?;
        }
    }
    for &(profile_present, level_present) in present.iter().take(max_sub_layers_minus1 as usize) {
        if profile_present {
            r.bits(32)?;
            r.bits(32)?;
            r.bits(24)?;
        }
        if level_present {
            r.bits(8)?;
        }
    }
    r.ue()?; // sps_seq_parameter_set_id
    let chroma_format_idc = r.ue()?;
    if chroma_format_idc == 3 {
        r.bit()?;
    }
    let width = r.ue()?;
    let height = r.ue()?;
    if r.bit()? == 1 {
        for _ in 0..4 {
            r.ue()?;
        }
    }
    let bit_depth = r.ue()?.checked_add(8)?;
    r.ue()?; // bit_depth_chroma_minus8
    Some(StreamFormat {
        codec: CodecKind::Hevc,
        profile,
        bit_depth: u8::try_from(bit_depth).ok()?,
        chroma: match chroma_format_idc {
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

/// Mastering display colour volume (payload 137) and content light level (144) from a prefix
/// SEI NAL, merged into `into`. Returns whether an MDCV message was found.
pub fn read_hdr_sei(nal: &[u8], into: &mut MasteringMetadata) -> bool {
    if kind(nal) != nal_type::PREFIX_SEI {
        return false;
    }
    let mut rbsp = Vec::with_capacity(nal.len());
    unescape_into(&nal[2..], &mut rbsp);
    let mut found = false;
    let mut at = 0usize;
    // sei_message()s until the trailing bits (0x80) or the end.
    while at < rbsp.len() && rbsp[at] != 0x80 {
        let read_var = |at: &mut usize| -> Option<usize> {
            let mut v = 0usize;
            loop {
                let b = *rbsp.get(*at)?;
                *at += 1;
                v += usize::from(b);
                if b != 0xff {
                    return Some(v);
                }
            }
        };
        let (Some(ptype), Some(size)) = (read_var(&mut at), read_var(&mut at)) else {
            break;
        };
        let Some(payload) = rbsp.get(at..at + size) else {
            break;
        };
        at += size;
        let be16 = |i: usize| u16::from_be_bytes([payload[i], payload[i + 1]]);
        let be32 = |i: usize| {
            u32::from_be_bytes([payload[i], payload[i + 1], payload[i + 2], payload[i + 3]])
        };
        match ptype {
            137 if size >= 24 => {
                // Order in the SEI: G, B, R (x then y each); ours is R, G, B.
                let c = |k: usize| (be16(4 * k), be16(4 * k + 2));
                into.primaries = [c(2), c(0), c(1)];
                into.white_point = (be16(12), be16(14));
                // 0.0001 cd/m² units in the SEI.
                into.max_luminance = sat_u16(u64::from(be32(16)) / 10_000);
                into.min_luminance = sat_u16(u64::from(be32(20)));
                found = true;
            }
            144 if size >= 4 => {
                into.max_cll = be16(0);
                into.max_fall = be16(2);
            }
            _ => {}
        }
    }
    found
}

/// The stream's format from its first SPS, with HDR metadata when an MDCV SEI is present.
pub fn probe(data: &[u8]) -> Option<StreamFormat> {
    let mut format = None;
    let mut hdr = MasteringMetadata::default();
    let mut has_hdr = false;
    for nal in nal_units(data) {
        match kind(nal.bytes) {
            nal_type::SPS if format.is_none() => format = parse_sps(nal.bytes),
            nal_type::PREFIX_SEI if !has_hdr => has_hdr = read_hdr_sei(nal.bytes, &mut hdr),
            _ => {}
        }
        if format.is_some() && has_hdr {
            break;
        }
    }
    let mut f = format?;
    f.mastering = has_hdr.then_some(hdr);
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nal(k: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 0, 1, k << 1, 1];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn splits_access_units_and_finds_irap() {
        let mut s = Vec::new();
        s.extend(nal(nal_type::VPS, &[0x0c]));
        s.extend(nal(nal_type::SPS, &[0x01]));
        s.extend(nal(nal_type::PPS, &[0xc1]));
        s.extend(nal(19, &[0x80, 0x11])); // IDR_W_RADL, first slice
        s.extend(nal(19, &[0x20, 0x11])); // second slice of the same picture
        s.extend(nal(1, &[0x80, 0x22])); // TRAIL_R, first slice: new AU
        s.extend(nal(nal_type::AUD, &[0x50])); // AUD: new AU
        s.extend(nal(1, &[0x80, 0x33]));
        let aus = access_unit_ranges(&s);
        assert_eq!(aus.len(), 3);
        assert!(has_irap(&s[aus[0].clone()]) && starts_with_vps(&s[aus[0].clone()]));
        assert!(!has_irap(&s[aus[1].clone()]) && !starts_with_vps(&s[aus[1].clone()]));
        assert_eq!(nal_units(&s[aus[0].clone()]).count(), 5);
        assert_eq!(aus[2].end, s.len());
    }

    #[test]
    fn mastering_sei_is_read_in_rgb_order() {
        // payload 137: G(13250,34500) B(7500,3000) R(34000,16000) WP(15635,16450)
        // L(10000000, 1); then payload 144: 1000, 400.
        let mut p = vec![137, 24];
        for v in [13250u16, 34500, 7500, 3000, 34000, 16000, 15635, 16450] {
            p.extend(v.to_be_bytes());
        }
        p.extend(10_000_000u32.to_be_bytes());
        p.extend(1u32.to_be_bytes());
        p.extend([144, 4, 0x03, 0xe8, 0x01, 0x90, 0x80]);
        let mut sei = vec![nal_type::PREFIX_SEI << 1, 1];
        sei.extend(p);
        let mut m = MasteringMetadata::default();
        assert!(read_hdr_sei(&sei, &mut m));
        assert_eq!(m.primaries, [(34000, 16000), (13250, 34500), (7500, 3000)]);
        assert_eq!(m.white_point, (15635, 16450));
        assert_eq!((m.max_luminance, m.min_luminance), (1000, 1));
        assert_eq!((m.max_cll, m.max_fall), (1000, 400));
    }

    proptest! {
        #[test]
        fn hostile_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            for r in access_unit_ranges(&data) {
                prop_assert!(r.start <= r.end && r.end <= data.len());
                let _ = has_irap(&data[r.clone()]);
            }
            let _ = probe(&data);
            let mut sps = vec![nal_type::SPS << 1, 1];
            sps.extend(&data);
            let _ = parse_sps(&sps);
            let mut sei = vec![nal_type::PREFIX_SEI << 1, 1];
            sei.extend(&data);
            let _ = read_hdr_sei(&sei, &mut MasteringMetadata::default());
        }
    }
}
