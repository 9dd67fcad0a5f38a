//! The one H.264 sequence parameter set reader (H.264 §7.3.2.1.1), shared by the stream-format
//! probe ([`crate::annexb::sps_format`]: what a passthrough file or an encoder carries) and the
//! encoder's self-checks (`strahl_encode::sps`: the fields GameStream has requirements on —
//! reference count, VUI bitstream restrictions).
//!
//! Input is untrusted: truncation or out-of-range values yield `None`, never a panic. The VUI is
//! read as far as the bitstream restriction; an SPS whose VUI carries HRD parameters, or whose
//! VUI is truncated, still parses, with `bitstream_restriction = None` (the picture fields do
//! not depend on the VUI).

use crate::annexb::{BitReader, nal_type, unescape_into};

/// Parsed SPS fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct H264Sps {
    pub profile_idc: u8,
    /// constraint_set0..5 flags byte (0x40 = constraint_set1: constrained baseline with 66).
    pub constraints: u8,
    pub level_idc: u8,
    /// 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4 (1 when the profile has no such field).
    pub chroma_format_idc: u32,
    /// Luma bit depth (8 when the profile has no such field).
    pub bit_depth: u32,
    pub max_num_ref_frames: u32,
    pub width_mbs: u32,
    pub height_map_units: u32,
    pub frame_mbs_only: bool,
    /// Frame cropping offsets left, right, top, bottom (in the spec's crop units).
    pub crop: [u32; 4],
    /// VUI `max_num_reorder_frames` and `max_dec_frame_buffering`, when bitstream
    /// restrictions are present (and readable, see the module header).
    pub bitstream_restriction: Option<(u32, u32)>,
}

impl H264Sps {
    /// The cropped picture size in pixels, `None` when the crop exceeds the coded size.
    pub fn cropped_size(&self) -> Option<(u32, u32)> {
        let (sub_w, sub_h) = match self.chroma_format_idc {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let h_mul = 2 - u32::from(self.frame_mbs_only);
        let [l, r, t, b] = self.crop;
        let width = self
            .width_mbs
            .checked_mul(16)?
            .checked_sub(sub_w * l.checked_add(r)?)?;
        let height = self
            .height_map_units
            .checked_mul(16 * h_mul)?
            .checked_sub((sub_h * h_mul).checked_mul(t.checked_add(b)?)?)?;
        Some((width, height))
    }
}

/// Profiles whose SPS carries chroma format, bit depths and scaling matrices.
fn has_chroma_fields(profile: u8) -> bool {
    matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

/// Parse an SPS NAL (header byte included).
pub fn parse_h264_sps(nal: &[u8]) -> Option<H264Sps> {
    if nal.first()? & 0x1f != nal_type::SPS {
        return None;
    }
    let mut rbsp = Vec::with_capacity(nal.len());
    unescape_into(&nal[1..], &mut rbsp);
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.bits(8)? as u8;
    let constraints = r.bits(8)? as u8;
    let level_idc = r.bits(8)? as u8;
    r.ue()?; // seq_parameter_set_id
    let (mut chroma_format_idc, mut bit_depth) = (1, 8);
    if has_chroma_fields(profile_idc) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return None;
        }
        if chroma_format_idc == 3 {
            r.bit()?; // separate_colour_plane_flag
        }
        bit_depth = r.ue()?.checked_add(8)?;
        r.ue()?; // chroma bit depth
        r.bit()?; // qpprime_y_zero_transform_bypass
        if r.bit()? == 1 {
            for i in 0..if chroma_format_idc == 3 { 12 } else { 8 } {
                if r.bit()? == 1 {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?;
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            let n = r.ue()?;
            if n > 255 {
                return None;
            }
            for _ in 0..n {
                r.se()?;
            }
        }
        _ => {}
    }
    let max_num_ref_frames = r.ue()?;
    r.bit()?; // gaps_in_frame_num_value_allowed
    let width_mbs = r.ue()?.checked_add(1)?;
    let height_map_units = r.ue()?.checked_add(1)?;
    let frame_mbs_only = r.bit()? == 1;
    if !frame_mbs_only {
        r.bit()?; // mb_adaptive_frame_field
    }
    r.bit()?; // direct_8x8_inference
    let crop = if r.bit()? == 1 {
        [r.ue()?, r.ue()?, r.ue()?, r.ue()?]
    } else {
        [0; 4]
    };
    let bitstream_restriction = if r.bit() == Some(1) {
        vui_bitstream_restriction(&mut r)
    } else {
        None
    };
    Some(H264Sps {
        profile_idc,
        constraints,
        level_idc,
        chroma_format_idc,
        bit_depth,
        max_num_ref_frames,
        width_mbs,
        height_map_units,
        frame_mbs_only,
        crop,
        bitstream_restriction,
    })
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i32, 8i32);
    for _ in 0..size {
        if next != 0 {
            next = (last + r.se()? + 256).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// The VUI (Annex E.1.1) up to the bitstream restriction; `None` when absent, when HRD
/// parameters stand in the way (not produced by our encoders) or when truncated.
fn vui_bitstream_restriction(r: &mut BitReader<'_>) -> Option<(u32, u32)> {
    if r.bit()? == 1 && r.bits(8)? == 255 {
        r.bits(32)?; // extended SAR
    }
    if r.bit()? == 1 {
        r.bit()?; // overscan_appropriate
    }
    if r.bit()? == 1 {
        r.bits(4)?; // video_format, full_range
        if r.bit()? == 1 {
            r.bits(24)?; // colour description
        }
    }
    if r.bit()? == 1 {
        r.ue()?;
        r.ue()?; // chroma sample locations
    }
    if r.bit()? == 1 {
        r.bits(32)?;
        r.bits(32)?;
        r.bit()?; // timing
    }
    let nal_hrd = r.bit()?;
    let vcl_hrd = r.bit()?;
    if nal_hrd == 1 || vcl_hrd == 1 {
        return None;
    }
    r.bit()?; // pic_struct_present
    if r.bit()? == 1 {
        r.bit()?;
        for _ in 0..4 {
            r.ue()?;
        }
        let reorder = r.ue()?;
        let dec_buf = r.ue()?;
        return Some((reorder, dec_buf));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hostile_sps_never_panics(mut data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Some(b) = data.first_mut() { *b = 0x67; }
            if let Some(s) = parse_h264_sps(&data) {
                let _ = s.cropped_size();
            }
        }
    }

    #[test]
    fn not_an_sps() {
        assert_eq!(parse_h264_sps(&[0x68, 0xce]), None);
        assert_eq!(parse_h264_sps(&[]), None);
    }
}
