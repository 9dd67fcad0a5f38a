//! What a coded video stream is: codec, profile, bit depth, chroma, size and HDR mastering
//! metadata — the facts an encoder's capability report and the GameStream negotiation need
//! (`gamestream-host.md` §A4 SCM bits, §A9 `bitStreamFormat` / `dynamicRangeMode`, §A12 0x010e).
//!
//! Contract: plain data, no parsing here (the per-codec readers live in [`crate::annexb`]
//! (H.264), [`crate::hevc`] and [`crate::av1`]); [`StreamFormat::describe`] is the one-line
//! form used in logs and refusals.

/// The coded formats the sources and encoders deal in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodecKind {
    H264,
    Hevc,
    Av1,
}

impl CodecKind {
    pub fn name(self) -> &'static str {
        match self {
            CodecKind::H264 => "H.264",
            CodecKind::Hevc => "HEVC",
            CodecKind::Av1 => "AV1",
        }
    }
}

/// Chroma subsampling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Chroma {
    Mono,
    Yuv420,
    Yuv422,
    Yuv444,
}

impl Chroma {
    pub fn name(self) -> &'static str {
        match self {
            Chroma::Mono => "4:0:0",
            Chroma::Yuv420 => "4:2:0",
            Chroma::Yuv422 => "4:2:2",
            Chroma::Yuv444 => "4:4:4",
        }
    }
}

/// HDR10 static metadata in the units of the GameStream HDR message (0x010e) and of
/// moonlight-common-c's `SS_HDR_METADATA`: chromaticities in 0.00002 steps (50000 = 1.0),
/// primaries in R, G, B order; maximum display luminance in cd/m²; minimum in 0.0001 cd/m²;
/// MaxCLL and MaxFALL in cd/m².
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MasteringMetadata {
    pub primaries: [(u16, u16); 3],
    pub white_point: (u16, u16),
    pub max_luminance: u16,
    pub min_luminance: u16,
    pub max_cll: u16,
    pub max_fall: u16,
}

/// Everything the negotiation needs to know about one coded stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamFormat {
    pub codec: CodecKind,
    /// The codec's own profile number: H.264 `profile_idc`, HEVC `general_profile_idc`
    /// (1 Main, 2 Main10, 4 RExt), AV1 `seq_profile` (0 Main, 1 High, 2 Professional).
    pub profile: u8,
    /// Luma bit depth (8, 10, 12).
    pub bit_depth: u8,
    pub chroma: Chroma,
    pub width: u32,
    pub height: u32,
    /// Mastering display + content light level, when the stream carries them.
    pub mastering: Option<MasteringMetadata>,
}

impl StreamFormat {
    /// E.g. "HEVC profile 2, 10-bit 4:2:0, 320x240, HDR metadata".
    pub fn describe(&self) -> String {
        format!(
            "{} profile {}, {}-bit {}, {}x{}{}",
            self.codec.name(),
            self.profile,
            self.bit_depth,
            self.chroma.name(),
            self.width,
            self.height,
            if self.mastering.is_some() {
                ", HDR metadata"
            } else {
                ""
            }
        )
    }
}

/// Clamps a wider value into a u16 field.
pub(crate) fn sat_u16(v: u64) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}
