//! Pure decisions derived from the ANNOUNCE: the encoder bitrate (gamestream-host.md §A18) and
//! the Opus layout and quality (§A17).
//!
//! Contract: plain functions of their arguments, no state, no panics, no overflow (u64
//! intermediates, saturating results).

use crate::announce::StreamConfig;

/// Opus multistream layout and bitrate (48 kHz, §A17 table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusLayout {
    pub channels: u8,
    pub streams: u8,
    pub coupled_streams: u8,
    /// Opus channel mapping; the first `channels` entries are meaningful.
    pub mapping: [u8; 8],
    pub bitrate_bps: u32,
    pub high_quality: bool,
}

impl OpusLayout {
    /// The meaningful part of [`Self::mapping`].
    pub fn mapping(&self) -> &[u8] {
        &self.mapping[..usize::from(self.channels)]
    }

    /// The DESCRIBE `surround-params` digits: channels, streams, coupled streams, then the
    /// mapping. Normal-quality surround advertises GFE order (LFE moved last, §A9), which the
    /// client rotates back; HQ and stereo advertise the mapping as is.
    pub fn surround_params(&self) -> String {
        let mut s = format!("{}{}{}", self.channels, self.streams, self.coupled_streams);
        let mut advertised = self.mapping;
        let n = usize::from(self.channels);
        if !self.high_quality && n > 3 {
            advertised[3..n].rotate_left(1);
        }
        for d in &advertised[..n] {
            s.push(char::from(b'0' + d));
        }
        s
    }
}

/// Channel order FL FR C LFE BL BR SL SR (§A17); Opus mapping is the identity on it.
const IDENTITY: [u8; 8] = [0, 1, 2, 3, 4, 5, 6, 7];

const fn layout(ch: u8, streams: u8, coupled: u8, kbps: u32, hq: bool) -> OpusLayout {
    OpusLayout {
        channels: ch,
        streams,
        coupled_streams: coupled,
        mapping: IDENTITY,
        bitrate_bps: kbps * 1000,
        high_quality: hq,
    }
}

pub const STEREO: OpusLayout = layout(2, 1, 1, 96, false);
pub const STEREO_HQ: OpusLayout = layout(2, 1, 1, 512, true);
pub const SURROUND_51: OpusLayout = layout(6, 4, 2, 256, false);
pub const SURROUND_51_HQ: OpusLayout = layout(6, 6, 0, 1536, true);
pub const SURROUND_71: OpusLayout = layout(8, 5, 3, 450, false);
pub const SURROUND_71_HQ: OpusLayout = layout(8, 8, 0, 2048, true);

/// Whether the ANNOUNCE `Host` header asks for high-quality stereo: the client puts the host's
/// real address there at ≥ 15000 kbps and `0.0.0.0` below (§A9, §B6). An absent header is
/// treated as a low-bandwidth client (normal quality).
pub fn stereo_high_quality(host_header: Option<&str>) -> bool {
    let Some(host) = host_header.map(str::trim) else {
        return false;
    };
    // Strip a port: "[v6]:p" or "v4:p". A bare IPv6 literal has several ':' and no port.
    let addr = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or("")
    } else {
        host
    };
    !addr.is_empty() && addr != "0.0.0.0"
}

/// The Opus layout for a request (§A17): surround quality follows `AudioQuality`, stereo quality
/// follows the Host header. `None` for a channel count other than 2, 6, 8 (the SDP parser
/// already rejects those).
pub fn choose_audio(config: &StreamConfig, host_header: Option<&str>) -> Option<OpusLayout> {
    let hq = config.audio.surround_high_quality;
    match config.audio.channels {
        2 if stereo_high_quality(host_header) => Some(STEREO_HQ),
        2 => Some(STEREO),
        6 if hq => Some(SURROUND_51_HQ),
        6 => Some(SURROUND_51),
        8 if hq => Some(SURROUND_71_HQ),
        8 => Some(SURROUND_71),
        _ => None,
    }
}

/// Per-channel audio allowance subtracted from the video budget (§A18): 256 kbps per channel
/// for HQ, 96 kbps otherwise.
pub const AUDIO_KBPS_PER_CHANNEL_HQ: u64 = 256;
pub const AUDIO_KBPS_PER_CHANNEL: u64 = 96;
/// Fixed headroom taken last (§A18 step 3): at most 500 kbps or a tenth.
pub const BITRATE_HEADROOM_KBPS: u64 = 500;
/// FEC percentages above this leave the configured bitrate alone (§A18 step 1).
pub const FEC_SCALE_MAX_PERCENT: u32 = 80;

/// Encoder bitrate from the client's configured total (§A18):
/// 1. if F ≤ 80, C ← C·(100−F)/100;
/// 2. C −= min(audio, C/5) with audio = (256 if HQ else 96) kbps × channels;
/// 3. C −= min(500, C/10).
///
/// `audio_hq` is the ANNOUNCE `AudioQuality` flag (Sunshine's HIGH_QUALITY audio flag), not the
/// Host-header stereo choice: that is what makes the reference example (20000 kbps, F = 20,
/// stereo, AudioQuality 0 → 15308 kbps) come out.
pub fn encoder_bitrate_kbps(
    configured_kbps: u32,
    fec_percent: u32,
    audio_channels: u8,
    audio_hq: bool,
) -> u32 {
    let mut c = u64::from(configured_kbps);
    if fec_percent <= FEC_SCALE_MAX_PERCENT {
        c = c * u64::from(100 - fec_percent) / 100;
    }
    let per_channel = if audio_hq {
        AUDIO_KBPS_PER_CHANNEL_HQ
    } else {
        AUDIO_KBPS_PER_CHANNEL
    };
    c -= (per_channel * u64::from(audio_channels)).min(c / 5);
    c -= BITRATE_HEADROOM_KBPS.min(c / 10);
    // c never grows, so it still fits in u32.
    u32::try_from(c).unwrap_or(u32::MAX)
}

impl StreamConfig {
    /// The encoder bitrate for this stream (§A18): from `configuredBitrateKbps` when the client
    /// sent it, else the `maximumBitrateKbps` fallback as is.
    pub fn encoder_bitrate_kbps(&self, fec_percent: u32) -> u32 {
        if self.configured_bitrate_kbps == 0 {
            return self.maximum_bitrate_kbps;
        }
        encoder_bitrate_kbps(
            self.configured_bitrate_kbps,
            fec_percent,
            self.audio.channels,
            self.audio.surround_high_quality,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_bitrate_example() {
        // §A18: 20000 at F = 20 → 15308 kbps (stereo, normal quality).
        assert_eq!(encoder_bitrate_kbps(20_000, 20, 2, false), 15_308);
    }

    #[test]
    fn bitrate_steps_each_matter() {
        // F > 80: no FEC scaling. 20000 − 192 = 19808; − 500 = 19308.
        assert_eq!(encoder_bitrate_kbps(20_000, 81, 2, false), 19_308);
        // F = 0, HQ 7.1: 20000 − 2048 = 17952; − 500 = 17452.
        assert_eq!(encoder_bitrate_kbps(20_000, 0, 8, true), 17_452);
        // Tiny budgets: the min() caps bite. 1000·0.8 = 800; −min(192,160) = 640; −min(500,64).
        assert_eq!(encoder_bitrate_kbps(1_000, 20, 2, false), 576);
        assert_eq!(encoder_bitrate_kbps(0, 20, 2, false), 0);
        // No overflow at the top of the range.
        assert!(encoder_bitrate_kbps(u32::MAX, 0, 8, true) < u32::MAX);
    }

    #[test]
    fn host_header_picks_stereo_quality() {
        assert!(!stereo_high_quality(Some("0.0.0.0")));
        assert!(!stereo_high_quality(Some("0.0.0.0:48010")));
        assert!(!stereo_high_quality(None));
        assert!(stereo_high_quality(Some("10.0.0.2")));
        assert!(stereo_high_quality(Some("10.0.0.2:48010")));
        assert!(stereo_high_quality(Some("[fe80::1]:48010")));
        assert!(stereo_high_quality(Some("fe80::1")));
        assert!(!stereo_high_quality(Some("")));
    }

    #[test]
    fn surround_params_strings() {
        // §A9: Sunshine advertises 2ch as "21101"; normal surround moves LFE last.
        assert_eq!(STEREO.surround_params(), "21101");
        assert_eq!(SURROUND_51.surround_params(), "642012453");
        assert_eq!(SURROUND_51_HQ.surround_params(), "660012345");
        assert_eq!(SURROUND_71.surround_params(), "85301245673");
        assert_eq!(SURROUND_71_HQ.surround_params(), "88001234567");
        assert_eq!(SURROUND_71.mapping(), &[0, 1, 2, 3, 4, 5, 6, 7]);
    }
}
