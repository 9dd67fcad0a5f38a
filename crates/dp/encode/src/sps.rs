//! Minimal H.264 SPS reader: the fields the GameStream path has requirements on (profile,
//! reference count, picture size, VUI bitstream restrictions). Used by tests and by startup
//! self-checks of an encoder's first IDR. Input is untrusted: truncation yields `None`.

use strahl_capture::annexb::{BitReader, unescape_into};

/// Parsed SPS fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpsInfo {
    pub profile_idc: u8,
    /// constraint_set0..5 flags byte (0x40 = constraint_set1: constrained baseline with 66).
    pub constraints: u8,
    pub level_idc: u8,
    pub max_num_ref_frames: u32,
    pub width_mbs: u32,
    pub height_map_units: u32,
    pub frame_mbs_only: bool,
    /// VUI `max_num_reorder_frames` and `max_dec_frame_buffering`, when bitstream
    /// restrictions are present.
    pub bitstream_restriction: Option<(u32, u32)>,
}

/// Parses an SPS NAL (header byte included).
pub fn parse_sps(nal: &[u8]) -> Option<SpsInfo> {
    if nal.first()? & 0x1f != 7 {
        return None;
    }
    let mut rbsp = Vec::with_capacity(nal.len());
    unescape_into(&nal[1..], &mut rbsp);
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.bits(8)? as u8;
    let constraints = r.bits(8)? as u8;
    let level_idc = r.bits(8)? as u8;
    let _sps_id = r.ue()?;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        // High-profile extensions: chroma format etc. Not produced by our encoders.
        return None;
    }
    let _log2_max_frame_num = r.ue()?;
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
    let _gaps = r.bit()?;
    let width_mbs = r.ue()? + 1;
    let height_map_units = r.ue()? + 1;
    let frame_mbs_only = r.bit()? == 1;
    if !frame_mbs_only {
        r.bit()?;
    }
    let _direct_8x8 = r.bit()?;
    if r.bit()? == 1 {
        for _ in 0..4 {
            r.ue()?;
        }
    }
    let mut bitstream_restriction = None;
    if r.bit()? == 1 {
        // VUI
        if r.bit()? == 1 && r.bits(8)? == 255 {
            r.bits(32)?;
        }
        if r.bit()? == 1 {
            r.bit()?;
        }
        if r.bit()? == 1 {
            r.bits(4)?;
            if r.bit()? == 1 {
                r.bits(24)?;
            }
        }
        if r.bit()? == 1 {
            r.ue()?;
            r.ue()?;
        }
        if r.bit()? == 1 {
            r.bits(32)?;
            r.bits(32)?;
            r.bit()?;
        }
        let nal_hrd = r.bit()?;
        let vcl_hrd = r.bit()?;
        if nal_hrd == 1 || vcl_hrd == 1 {
            // HRD parameters are not produced by our encoders; stop here.
            return None;
        }
        let _pic_struct = r.bit()?;
        if r.bit()? == 1 {
            r.bit()?;
            for _ in 0..4 {
                r.ue()?;
            }
            let reorder = r.ue()?;
            let dec_buf = r.ue()?;
            bitstream_restriction = Some((reorder, dec_buf));
        }
    }
    Some(SpsInfo {
        profile_idc,
        constraints,
        level_idc,
        max_num_ref_frames,
        width_mbs,
        height_map_units,
        frame_mbs_only,
        bitstream_restriction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hostile_sps_never_panics(mut data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Some(b) = data.first_mut() { *b = 0x67; }
            let _ = parse_sps(&data);
        }
    }

    #[test]
    fn not_an_sps() {
        assert_eq!(parse_sps(&[0x68, 0xce]), None);
        assert_eq!(parse_sps(&[]), None);
    }
}
