//! The ANNOUNCE SDP body → typed [`StreamConfig`] (gamestream-host.md §A9 table, Appendix A).
//!
//! Contract:
//! - [`StreamConfig::parse`] reads every `a=<name>:<value>` line (value stripped of the trailing
//!   space the client appends) and the `m=video <port>` line, applies Sunshine's defaults for
//!   absent optional keys exactly as §A9 lists them, and returns a typed error for a missing
//!   required key, a non-numeric value or a value outside what this host can serve. Legacy GFE
//!   attributes (§A9 last row) are ignored. If a key repeats, the last occurrence wins (the client
//!   never repeats one; a map insert is what Sunshine does).
//! - [`StreamConfig::check_host`] applies the host-policy checks that need the launch context:
//!   a codec/bit depth/4:4:4 the encoder cannot make (400, a message naming what was asked)
//!   and mandatory encryption (403).
//! - Bounded: at most [`MAX_SDP_LINES`] lines; the body itself is already bounded by the request
//!   parser. No panics on any input.

use crate::limits::MAX_SDP_LINES;
use crate::request::parse_decimal;
use crate::response::StatusCode;

/// Video codec, from `x-nv-vqos[0].bitStreamFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    Hevc,
    Av1,
}

/// From `x-nv-video[0].dynamicRangeMode`: 1 = HDR / 10-bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynamicRange {
    Sdr,
    Hdr,
}

/// From `x-ss-video[0].chromaSamplingType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChromaSampling {
    Yuv420,
    Yuv444,
}

/// Colour space half of `x-nv-video[0].encoderCscMode` (`(space << 1) | range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorSpace {
    Rec601,
    Rec709,
    Rec2020,
}

/// `x-nv-video[0].encoderCscMode`, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderCsc {
    pub color_space: ColorSpace,
    pub full_range: bool,
}

/// SS_ENC_* bits (`encryptionSupported` / `encryptionRequested` / `encryptionEnabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EncryptionFlags(pub u32);

impl EncryptionFlags {
    pub const CONTROL_V2: u32 = 0x01;
    pub const VIDEO: u32 = 0x02;
    pub const AUDIO: u32 = 0x04;

    pub fn contains(self, bits: u32) -> bool {
        self.0 & bits == bits
    }
}

/// Legacy `x-nv-general.featureFlags` bit that also means audio encryption (§A9).
pub const NV_FF_AUDIO_ENCRYPTION: u32 = 0x20;
/// `x-ml-general.featureFlags` bit: the client sends SS_FRAME_FEC_STATUS.
pub const ML_FF_FEC_STATUS: u32 = 0x01;
/// `x-ml-general.featureFlags` bit: ping payload + connect data session binding.
pub const ML_FF_SESSION_ID_V1: u32 = 0x02;

/// The audio half of the ANNOUNCE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioRequest {
    /// `x-nv-audio.surround.numChannels`: 2, 6 or 8.
    pub channels: u8,
    /// `x-nv-audio.surround.channelMask` (3, 63, 1599 for the standard layouts).
    pub channel_mask: u32,
    /// `x-nv-audio.surround.AudioQuality` == 1: HQ surround. Stereo quality is chosen from the
    /// Host header instead (see [`crate::media::choose_audio`]).
    pub surround_high_quality: bool,
    /// `x-nv-aqos.packetDuration`: Opus frame length in ms, 5 (default) or 10.
    pub packet_duration_ms: u8,
    /// `x-nv-audio.surround.enable` (0 stereo, 1 surround), informational.
    pub surround_enable: Option<bool>,
}

/// Every stream parameter the client announces, typed. Field docs name the SDP attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// `x-nv-video[0].clientViewportWd`.
    pub width: u32,
    /// `x-nv-video[0].clientViewportHt`.
    pub height: u32,
    /// `x-nv-video[0].maxFPS` (authoritative; /launch `mode` is informational).
    pub max_fps: u32,
    /// `x-nv-video[0].clientRefreshRateX100`, default 0. See [`Self::refresh_rate_x100`].
    pub client_refresh_rate_x100: u32,
    /// `x-nv-video[0].packetSize`: P, already reduced by 32 when SS_ENC_VIDEO is on.
    pub packet_size: u32,
    /// `x-ml-video.configuredBitrateKbps`, default 0 (= absent: use `maximum_bitrate_kbps`).
    pub configured_bitrate_kbps: u32,
    /// `x-nv-vqos[0].bw.maximumBitrateKbps` (required).
    pub maximum_bitrate_kbps: u32,
    /// `x-nv-vqos[0].bw.minimumBitrateKbps`, informational.
    pub minimum_bitrate_kbps: Option<u32>,
    /// `x-nv-video[0].initialBitrateKbps`, informational.
    pub initial_bitrate_kbps: Option<u32>,
    /// `x-nv-video[0].initialPeakBitrateKbps`, informational.
    pub initial_peak_bitrate_kbps: Option<u32>,
    /// `x-nv-vqos[0].fec.minRequiredFecPackets`, default 0: minimum parity shards per block.
    pub min_required_fec_packets: u32,
    /// `x-nv-vqos[0].bitStreamFormat`, default 0 (H.264).
    pub codec: VideoCodec,
    /// `x-nv-clientSupportHevc`, informational.
    pub client_supports_hevc: Option<bool>,
    /// `x-nv-video[0].dynamicRangeMode`, default 0.
    pub dynamic_range: DynamicRange,
    /// `x-ss-video[0].chromaSamplingType`, default 0.
    pub chroma: ChromaSampling,
    /// `x-nv-video[0].encoderCscMode`, default 0 (Rec.601 limited).
    pub csc: EncoderCsc,
    /// `x-nv-video[0].maxNumReferenceFrames` (required): 0 = any, 1 = single reference.
    pub max_num_reference_frames: u32,
    /// `x-nv-video[0].videoEncoderSlicesPerFrame` (required).
    pub slices_per_frame: u32,
    /// `x-ss-video[0].intraRefresh`, default 0. The key name is Sunshine's; the stock client
    /// (Appendix A) does not send it.
    pub intra_refresh: bool,
    pub audio: AudioRequest,
    /// `x-ss-general.encryptionEnabled`, default 0. See [`Self::effective_encryption`].
    pub encryption_enabled: EncryptionFlags,
    /// `x-ml-general.featureFlags`, default 0.
    pub ml_feature_flags: u32,
    /// `x-nv-general.featureFlags`, default 135.
    pub nv_feature_flags: u32,
    /// `x-nv-general.useReliableUdp`, default 1 (13 = encrypted control V2).
    pub use_reliable_udp: u32,
    /// `x-nv-vqos[0].qosTrafficType`, default 5 (0 = do not DSCP-tag video).
    pub video_qos_traffic_type: u32,
    /// `x-nv-aqos.qosTrafficType`, default 4.
    pub audio_qos_traffic_type: u32,
    /// The port of the `m=video <port>` line, if present.
    pub video_port: Option<u16>,
}

/// Sanity bounds on client-chosen geometry. Not protocol facts: they keep hostile values away
/// from the encoder and packetizer. 16384 is twice 8K UHD width; 1000 fps is 2x the fastest
/// consumer panel.
pub const MAX_DIMENSION: u32 = 16_384;
pub const MAX_FPS: u32 = 1_000;
/// Sunshine's lower clamp for its `packetsize` option (§A18).
pub const MIN_PACKET_SIZE: u32 = 200;
/// A shard is P+16 bytes on the wire (Appendix B) and must fit one IPv4 UDP datagram
/// (65507 bytes of payload): P ≤ 65491, rounded down to the client's multiple of 16.
pub const MAX_PACKET_SIZE: u32 = 65_488;

/// Why an ANNOUNCE body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceError {
    /// The body is not UTF-8 text.
    NotText,
    /// More than [`MAX_SDP_LINES`] lines.
    TooManyLines,
    /// A required attribute is absent (§A9 list).
    MissingKey(&'static str),
    /// An attribute value is not a plain decimal number of the expected width.
    BadValue(&'static str),
    /// A well-formed number outside what this host serves (unknown enum value, zero geometry…).
    UnsupportedValue { key: &'static str, value: u32 },
    /// The `m=video` line has no valid port.
    BadVideoPort,
    /// The client asked for a codec the host did not advertise.
    CodecDisabled(VideoCodec),
    /// HDR / 10-bit requested while the host did not advertise it (or with H.264).
    TenBitDisabled,
    /// 8-bit (SDR) requested of a codec the encoder makes only at 10 bits (a 10-bit clip).
    EightBitUnavailable(VideoCodec),
    /// 4:4:4 requested while the host did not advertise it.
    Yuv444Disabled,
    /// Encryption is mandatory and the client did not enable it (403).
    EncryptionRequired { required: u32, enabled: u32 },
}

impl AnnounceError {
    /// The RTSP status to answer with (§A9: 403 for mandatory encryption, else 400).
    pub fn status(&self) -> StatusCode {
        match self {
            AnnounceError::EncryptionRequired { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl std::fmt::Display for AnnounceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnnounceError::EncryptionRequired { required, enabled } => write!(
                f,
                "ANNOUNCE rejected: this host requires encrypted video and audio \
                 (SS_ENC bits {required:#x}) and the client enabled only {enabled:#x} \
                 (a client without video encryption; [gamestream] encryption = \"required\")"
            ),
            AnnounceError::CodecDisabled(c) => write!(
                f,
                "ANNOUNCE rejected: the client asked for {c:?} video, which this host's encoder \
                 cannot make (it is not in /serverinfo's ServerCodecModeSupport)"
            ),
            AnnounceError::TenBitDisabled => write!(
                f,
                "ANNOUNCE rejected: the client asked for 10-bit/HDR video (dynamicRangeMode 1), \
                 which this host's encoder cannot make in the requested codec"
            ),
            AnnounceError::EightBitUnavailable(c) => write!(
                f,
                "ANNOUNCE rejected: the client asked for 8-bit {c:?} video; this host's encoder \
                 makes {c:?} only at 10 bits (the client must enable HDR/10-bit)"
            ),
            _ => write!(f, "ANNOUNCE rejected: {self:?}"),
        }
    }
}

impl std::error::Error for AnnounceError {}

/// The encodings the host's encoder can make, and so advertises (§A4 SCM bits, §A10 DESCRIBE
/// markers) and accepts in ANNOUNCE. 4:2:0 unless `yuv444`. The default is H.264 only (what
/// OpenH264 makes). Built by the control plane from the data plane's encoder capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostCodecs {
    /// H.264 8-bit.
    pub h264: bool,
    /// HEVC Main (8-bit).
    pub hevc: bool,
    /// HEVC Main10.
    pub hevc_main10: bool,
    /// AV1 Main 8-bit.
    pub av1: bool,
    /// AV1 Main 10-bit.
    pub av1_main10: bool,
    /// 4:4:4 for the codecs above.
    pub yuv444: bool,
}

impl Default for HostCodecs {
    fn default() -> Self {
        HostCodecs {
            h264: true,
            hevc: false,
            hevc_main10: false,
            av1: false,
            av1_main10: false,
            yuv444: false,
        }
    }
}

/// ServerCodecModeSupport bits (§A4).
pub mod scm {
    pub const H264: u32 = 0x1;
    pub const HEVC: u32 = 0x100;
    pub const HEVC_MAIN10: u32 = 0x200;
    pub const AV1_MAIN8: u32 = 0x10000;
    pub const AV1_MAIN10: u32 = 0x20000;
    pub const H264_HIGH8_444: u32 = 0x40000;
    pub const HEVC_REXT8_444: u32 = 0x80000;
    pub const HEVC_REXT10_444: u32 = 0x100000;
    pub const AV1_HIGH8_444: u32 = 0x200000;
    pub const AV1_HIGH10_444: u32 = 0x400000;
}

impl HostCodecs {
    /// Nothing at all (the starting point of a build from capabilities).
    pub const NONE: HostCodecs = HostCodecs {
        h264: false,
        hevc: false,
        hevc_main10: false,
        av1: false,
        av1_main10: false,
        yuv444: false,
    };

    /// DESCRIBE carries the HEVC marker: some HEVC format is available.
    pub fn any_hevc(&self) -> bool {
        self.hevc || self.hevc_main10
    }

    /// DESCRIBE carries the AV1 marker: some AV1 format is available.
    pub fn any_av1(&self) -> bool {
        self.av1 || self.av1_main10
    }

    /// Whether `codec` at 8 or 10 bits is available.
    pub fn supports(&self, codec: VideoCodec, ten_bit: bool) -> bool {
        match (codec, ten_bit) {
            (VideoCodec::H264, false) => self.h264,
            (VideoCodec::H264, true) => false,
            (VideoCodec::Hevc, false) => self.hevc,
            (VideoCodec::Hevc, true) => self.hevc_main10,
            (VideoCodec::Av1, false) => self.av1,
            (VideoCodec::Av1, true) => self.av1_main10,
        }
    }

    /// The /serverinfo ServerCodecModeSupport value (§A4); H.264 alone when nothing is set,
    /// because clients refuse 0 (and ANNOUNCE then refuses what the encoder cannot make).
    pub fn scm(&self) -> u32 {
        let mut v = 0;
        let mut set = |on: bool, bits: u32| {
            if on {
                v |= bits;
            }
        };
        set(self.h264, scm::H264);
        set(self.hevc, scm::HEVC);
        set(self.hevc_main10, scm::HEVC_MAIN10);
        set(self.av1, scm::AV1_MAIN8);
        set(self.av1_main10, scm::AV1_MAIN10);
        set(self.yuv444 && self.h264, scm::H264_HIGH8_444);
        set(self.yuv444 && self.hevc, scm::HEVC_REXT8_444);
        set(self.yuv444 && self.hevc_main10, scm::HEVC_REXT10_444);
        set(self.yuv444 && self.av1, scm::AV1_HIGH8_444);
        set(self.yuv444 && self.av1_main10, scm::AV1_HIGH10_444);
        if v == 0 { scm::H264 } else { v }
    }

    /// Whether any 10-bit (HDR-capable) format is available: /applist's `IsHdrSupported`.
    pub fn ten_bit(&self) -> bool {
        self.hevc_main10 || self.av1_main10
    }
}

/// The raw `a=` attributes and `m=video` port of one SDP body, borrowing from it.
struct Attributes<'a> {
    attrs: Vec<(&'a str, &'a str)>,
    video_port: Option<&'a str>,
}

impl<'a> Attributes<'a> {
    fn scan(body: &'a [u8]) -> Result<Self, AnnounceError> {
        let text = std::str::from_utf8(body).map_err(|_| AnnounceError::NotText)?;
        let mut attrs = Vec::new();
        let mut video_port = None;
        // `lines` splits at "\n" and drops one "\r" before it, and yields no empty last line for
        // a body that ends with a line end.
        for (n, line) in text.lines().enumerate() {
            if n == MAX_SDP_LINES {
                return Err(AnnounceError::TooManyLines);
            }
            if let Some(attr) = line.strip_prefix("a=") {
                // `a=flag` without a value carries nothing this host reads.
                if let Some((name, value)) = attr.split_once(':') {
                    attrs.push((name, value.trim_matches(' ')));
                }
            } else if let Some(media) = line.strip_prefix("m=video ") {
                video_port = Some(media.split(' ').next().unwrap_or(""));
            }
        }
        Ok(Attributes { attrs, video_port })
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.attrs
            .iter()
            .rev()
            .find(|(name, _)| *name == key)
            .map(|(_, v)| *v)
    }

    fn u32_opt(&self, key: &'static str) -> Result<Option<u32>, AnnounceError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => parse_decimal(v)
                .and_then(|v| u32::try_from(v).ok())
                .map(Some)
                .ok_or(AnnounceError::BadValue(key)),
        }
    }

    fn u32_or(&self, key: &'static str, default: u32) -> Result<u32, AnnounceError> {
        Ok(self.u32_opt(key)?.unwrap_or(default))
    }

    fn u32_req(&self, key: &'static str) -> Result<u32, AnnounceError> {
        self.u32_opt(key)?.ok_or(AnnounceError::MissingKey(key))
    }
}

// Attribute names (§A9 table, Appendix A).
pub mod keys {
    pub const ML_FEATURE_FLAGS: &str = "x-ml-general.featureFlags";
    pub const ENCRYPTION_ENABLED: &str = "x-ss-general.encryptionEnabled";
    pub const CHROMA: &str = "x-ss-video[0].chromaSamplingType";
    pub const INTRA_REFRESH: &str = "x-ss-video[0].intraRefresh";
    pub const WIDTH: &str = "x-nv-video[0].clientViewportWd";
    pub const HEIGHT: &str = "x-nv-video[0].clientViewportHt";
    pub const MAX_FPS: &str = "x-nv-video[0].maxFPS";
    pub const PACKET_SIZE: &str = "x-nv-video[0].packetSize";
    pub const INITIAL_BITRATE: &str = "x-nv-video[0].initialBitrateKbps";
    pub const INITIAL_PEAK_BITRATE: &str = "x-nv-video[0].initialPeakBitrateKbps";
    pub const MIN_BITRATE: &str = "x-nv-vqos[0].bw.minimumBitrateKbps";
    pub const MAX_BITRATE: &str = "x-nv-vqos[0].bw.maximumBitrateKbps";
    pub const CONFIGURED_BITRATE: &str = "x-ml-video.configuredBitrateKbps";
    pub const VIDEO_QOS: &str = "x-nv-vqos[0].qosTrafficType";
    pub const AUDIO_QOS: &str = "x-nv-aqos.qosTrafficType";
    pub const NV_FEATURE_FLAGS: &str = "x-nv-general.featureFlags";
    pub const USE_RELIABLE_UDP: &str = "x-nv-general.useReliableUdp";
    pub const MIN_FEC_PACKETS: &str = "x-nv-vqos[0].fec.minRequiredFecPackets";
    pub const SLICES: &str = "x-nv-video[0].videoEncoderSlicesPerFrame";
    pub const CLIENT_SUPPORT_HEVC: &str = "x-nv-clientSupportHevc";
    pub const BITSTREAM_FORMAT: &str = "x-nv-vqos[0].bitStreamFormat";
    pub const DYNAMIC_RANGE: &str = "x-nv-video[0].dynamicRangeMode";
    pub const MAX_REF_FRAMES: &str = "x-nv-video[0].maxNumReferenceFrames";
    pub const REFRESH_X100: &str = "x-nv-video[0].clientRefreshRateX100";
    pub const NUM_CHANNELS: &str = "x-nv-audio.surround.numChannels";
    pub const CHANNEL_MASK: &str = "x-nv-audio.surround.channelMask";
    pub const AUDIO_QUALITY: &str = "x-nv-audio.surround.AudioQuality";
    pub const SURROUND_ENABLE: &str = "x-nv-audio.surround.enable";
    pub const PACKET_DURATION: &str = "x-nv-aqos.packetDuration";
    pub const CSC_MODE: &str = "x-nv-video[0].encoderCscMode";

    /// The keys whose absence is a 400 (§A9), in the order the client sends them.
    pub const REQUIRED: [&str; 10] = [
        WIDTH,
        HEIGHT,
        MAX_FPS,
        PACKET_SIZE,
        MAX_BITRATE,
        SLICES,
        MAX_REF_FRAMES,
        NUM_CHANNELS,
        CHANNEL_MASK,
        AUDIO_QUALITY,
    ];
}

/// Sunshine's defaults for absent optional keys (§A9).
pub mod defaults {
    pub const CSC_MODE: u32 = 0;
    pub const BITSTREAM_FORMAT: u32 = 0;
    pub const DYNAMIC_RANGE: u32 = 0;
    pub const PACKET_DURATION_MS: u32 = 5;
    pub const USE_RELIABLE_UDP: u32 = 1;
    pub const MIN_FEC_PACKETS: u32 = 0;
    pub const NV_FEATURE_FLAGS: u32 = 135;
    pub const ML_FEATURE_FLAGS: u32 = 0;
    pub const VIDEO_QOS: u32 = 5;
    pub const AUDIO_QOS: u32 = 4;
    pub const CONFIGURED_BITRATE: u32 = 0;
    pub const ENCRYPTION_ENABLED: u32 = 0;
    pub const CHROMA: u32 = 0;
    pub const INTRA_REFRESH: u32 = 0;
    pub const REFRESH_X100: u32 = 0;
}

fn unsupported(key: &'static str, value: u32) -> AnnounceError {
    AnnounceError::UnsupportedValue { key, value }
}

fn in_range(
    key: &'static str,
    value: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, AnnounceError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(unsupported(key, value))
    }
}

fn flag(key: &'static str, value: u32) -> Result<bool, AnnounceError> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(unsupported(key, v)),
    }
}

impl StreamConfig {
    /// Parse an ANNOUNCE body. See the module contract.
    pub fn parse(body: &[u8]) -> Result<Self, AnnounceError> {
        use keys as k;
        let a = Attributes::scan(body)?;
        // Required keys first, in the order the client sends them, so the error names the first
        // missing one deterministically.
        for key in k::REQUIRED {
            if a.get(key).is_none() {
                return Err(AnnounceError::MissingKey(key));
            }
        }

        let codec = match a.u32_or(k::BITSTREAM_FORMAT, defaults::BITSTREAM_FORMAT)? {
            0 => VideoCodec::H264,
            1 => VideoCodec::Hevc,
            2 => VideoCodec::Av1,
            v => return Err(unsupported(k::BITSTREAM_FORMAT, v)),
        };
        let dynamic_range = match a.u32_or(k::DYNAMIC_RANGE, defaults::DYNAMIC_RANGE)? {
            0 => DynamicRange::Sdr,
            1 => DynamicRange::Hdr,
            v => return Err(unsupported(k::DYNAMIC_RANGE, v)),
        };
        let chroma = match a.u32_or(k::CHROMA, defaults::CHROMA)? {
            0 => ChromaSampling::Yuv420,
            1 => ChromaSampling::Yuv444,
            v => return Err(unsupported(k::CHROMA, v)),
        };
        let csc_raw = a.u32_or(k::CSC_MODE, defaults::CSC_MODE)?;
        let color_space = match csc_raw >> 1 {
            0 => ColorSpace::Rec601,
            1 => ColorSpace::Rec709,
            2 => ColorSpace::Rec2020,
            _ => return Err(unsupported(k::CSC_MODE, csc_raw)),
        };
        let channels = match a.u32_req(k::NUM_CHANNELS)? {
            c @ (2 | 6 | 8) => c as u8,
            v => return Err(unsupported(k::NUM_CHANNELS, v)),
        };
        let packet_duration_ms = match a.u32_or(k::PACKET_DURATION, defaults::PACKET_DURATION_MS)? {
            d @ (5 | 10) => d as u8,
            v => return Err(unsupported(k::PACKET_DURATION, v)),
        };
        let video_port = match a.video_port {
            None => None,
            Some(p) => Some(
                parse_decimal(p)
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|&p| p != 0)
                    .ok_or(AnnounceError::BadVideoPort)?,
            ),
        };

        Ok(StreamConfig {
            width: in_range(k::WIDTH, a.u32_req(k::WIDTH)?, 1..=MAX_DIMENSION)?,
            height: in_range(k::HEIGHT, a.u32_req(k::HEIGHT)?, 1..=MAX_DIMENSION)?,
            max_fps: in_range(k::MAX_FPS, a.u32_req(k::MAX_FPS)?, 1..=MAX_FPS)?,
            client_refresh_rate_x100: a.u32_or(k::REFRESH_X100, defaults::REFRESH_X100)?,
            packet_size: in_range(
                k::PACKET_SIZE,
                a.u32_req(k::PACKET_SIZE)?,
                MIN_PACKET_SIZE..=MAX_PACKET_SIZE,
            )?,
            configured_bitrate_kbps: a
                .u32_or(k::CONFIGURED_BITRATE, defaults::CONFIGURED_BITRATE)?,
            maximum_bitrate_kbps: a.u32_req(k::MAX_BITRATE)?,
            minimum_bitrate_kbps: a.u32_opt(k::MIN_BITRATE)?,
            initial_bitrate_kbps: a.u32_opt(k::INITIAL_BITRATE)?,
            initial_peak_bitrate_kbps: a.u32_opt(k::INITIAL_PEAK_BITRATE)?,
            min_required_fec_packets: a.u32_or(k::MIN_FEC_PACKETS, defaults::MIN_FEC_PACKETS)?,
            codec,
            client_supports_hevc: a.u32_opt(k::CLIENT_SUPPORT_HEVC)?.map(|v| v != 0),
            dynamic_range,
            chroma,
            csc: EncoderCsc {
                color_space,
                full_range: csc_raw & 1 == 1,
            },
            max_num_reference_frames: a.u32_req(k::MAX_REF_FRAMES)?,
            slices_per_frame: a.u32_req(k::SLICES)?,
            intra_refresh: flag(
                k::INTRA_REFRESH,
                a.u32_or(k::INTRA_REFRESH, defaults::INTRA_REFRESH)?,
            )?,
            audio: AudioRequest {
                channels,
                channel_mask: a.u32_req(k::CHANNEL_MASK)?,
                surround_high_quality: flag(k::AUDIO_QUALITY, a.u32_req(k::AUDIO_QUALITY)?)?,
                packet_duration_ms,
                surround_enable: a.u32_opt(k::SURROUND_ENABLE)?.map(|v| v != 0),
            },
            encryption_enabled: EncryptionFlags(
                a.u32_or(k::ENCRYPTION_ENABLED, defaults::ENCRYPTION_ENABLED)?,
            ),
            ml_feature_flags: a.u32_or(k::ML_FEATURE_FLAGS, defaults::ML_FEATURE_FLAGS)?,
            nv_feature_flags: a.u32_or(k::NV_FEATURE_FLAGS, defaults::NV_FEATURE_FLAGS)?,
            use_reliable_udp: a.u32_or(k::USE_RELIABLE_UDP, defaults::USE_RELIABLE_UDP)?,
            video_qos_traffic_type: a.u32_or(k::VIDEO_QOS, defaults::VIDEO_QOS)?,
            audio_qos_traffic_type: a.u32_or(k::AUDIO_QOS, defaults::AUDIO_QOS)?,
            video_port,
        })
    }

    /// Host-policy checks (§A9, §A10): a codec/format the host did not advertise is a 400;
    /// `required_encryption` (the SS_ENC_VIDEO|SS_ENC_AUDIO part of what the host requested,
    /// non-zero only in "mandatory" mode) missing from the client's enabled set is a 403.
    pub fn check_host(
        &self,
        codecs: HostCodecs,
        required_encryption: EncryptionFlags,
    ) -> Result<(), AnnounceError> {
        let ten_bit = self.dynamic_range == DynamicRange::Hdr;
        if !codecs.supports(self.codec, false) && !codecs.supports(self.codec, true) {
            return Err(AnnounceError::CodecDisabled(self.codec));
        }
        if ten_bit && !codecs.supports(self.codec, true) {
            return Err(AnnounceError::TenBitDisabled);
        }
        if !ten_bit && !codecs.supports(self.codec, false) {
            return Err(AnnounceError::EightBitUnavailable(self.codec));
        }
        if self.chroma == ChromaSampling::Yuv444 && !codecs.yuv444 {
            return Err(AnnounceError::Yuv444Disabled);
        }
        let required = required_encryption.0 & (EncryptionFlags::VIDEO | EncryptionFlags::AUDIO);
        let enabled = self.effective_encryption();
        if !enabled.contains(required) {
            return Err(AnnounceError::EncryptionRequired {
                required,
                enabled: enabled.0,
            });
        }
        Ok(())
    }

    /// The SS_ENC_* bits in use, with the legacy nv featureFlags 0x20 folded in as AUDIO.
    pub fn effective_encryption(&self) -> EncryptionFlags {
        let legacy_audio = if self.nv_feature_flags & NV_FF_AUDIO_ENCRYPTION != 0 {
            EncryptionFlags::AUDIO
        } else {
            0
        };
        EncryptionFlags(self.encryption_enabled.0 | legacy_audio)
    }

    /// The client binds sessions with ping payload + connect data (else by peer IP, "PING").
    pub fn session_id_v1(&self) -> bool {
        self.ml_feature_flags & ML_FF_SESSION_ID_V1 != 0
    }

    /// The client sends SS_FRAME_FEC_STATUS reports.
    pub fn fec_status_reports(&self) -> bool {
        self.ml_feature_flags & ML_FF_FEC_STATUS != 0
    }

    /// The client's display refresh rate ×100, kept only when within 1 % of `max_fps`
    /// (Sunshine's rule, §A9); `None` otherwise.
    pub fn refresh_rate_x100(&self) -> Option<u32> {
        let r = u64::from(self.client_refresh_rate_x100);
        let f = u64::from(self.max_fps) * 100;
        // |r - f| <= 1 % of f  ⇔  100·|r - f| <= f
        (r != 0 && 100 * r.abs_diff(f) <= f).then_some(self.client_refresh_rate_x100)
    }
}
