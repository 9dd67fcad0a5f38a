//! Opus stream layouts per gamestream-host.md §A17.
//!
//! | Layout | Normal (ch/streams/coupled, rate) | HQ |
//! |---|---|---|
//! | Stereo | 2/1/1, 96 kbps | 2/1/1, 512 kbps |
//! | 5.1 | 6/4/2, 256 kbps | 6/6/0, 1536 kbps |
//! | 7.1 | 8/5/3, 450 kbps | 8/8/0, 2048 kbps |
//!
//! Channel order is FL FR C LFE BL BR SL SR. libopus decodes coupled streams first (two output
//! channels each), then mono streams; the mapping sends each input channel to its decoded
//! channel. Our normal-quality mappings pair FL/FR, BL/BR (and SL/SR) into the coupled streams
//! and carry C and LFE as mono streams; HQ uses one mono stream per channel. Whatever mapping is
//! used here must be advertised unchanged in the SDP `surround-params` line (§A9) — the client
//! builds its decoder from that line.

/// Speaker layouts a client can negotiate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Stereo,
    Surround51,
    Surround71,
}

impl Layout {
    pub fn channels(self) -> u8 {
        match self {
            Self::Stereo => 2,
            Self::Surround51 => 6,
            Self::Surround71 => 8,
        }
    }
}

/// Normal or high quality (§A17: stereo follows the ANNOUNCE Host header, surround AudioQuality).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quality {
    Normal,
    High,
}

/// Frame duration: 5 ms normally, 10 ms for slow clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameDuration {
    Ms5,
    Ms10,
}

impl FrameDuration {
    pub fn millis(self) -> u32 {
        match self {
            Self::Ms5 => 5,
            Self::Ms10 => 10,
        }
    }

    /// Samples per channel at 48 kHz.
    pub fn samples(self) -> usize {
        48 * self.millis() as usize
    }
}

/// Parameters of one multistream Opus configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpusParams {
    pub channels: u8,
    pub streams: u8,
    pub coupled: u8,
    /// `mapping[input channel]` = decoded channel index; only the first `channels` are used.
    pub mapping: [u8; 8],
    pub bitrate_bps: u32,
}

impl OpusParams {
    pub fn new(layout: Layout, quality: Quality) -> Self {
        let (channels, streams, coupled, bitrate_bps, mapping) = match (layout, quality) {
            (Layout::Stereo, Quality::Normal) => (2, 1, 1, 96_000, [0, 1, 0, 0, 0, 0, 0, 0]),
            (Layout::Stereo, Quality::High) => (2, 1, 1, 512_000, [0, 1, 0, 0, 0, 0, 0, 0]),
            // FL FR → stream 0 (ch 0,1); BL BR → stream 1 (ch 2,3); C → ch 4; LFE → ch 5.
            (Layout::Surround51, Quality::Normal) => (6, 4, 2, 256_000, [0, 1, 4, 5, 2, 3, 0, 0]),
            (Layout::Surround51, Quality::High) => (6, 6, 0, 1_536_000, [0, 1, 2, 3, 4, 5, 0, 0]),
            // FL FR → 0,1; BL BR → 2,3; SL SR → 4,5; C → 6; LFE → 7.
            (Layout::Surround71, Quality::Normal) => (8, 5, 3, 450_000, [0, 1, 6, 7, 2, 3, 4, 5]),
            (Layout::Surround71, Quality::High) => (8, 8, 0, 2_048_000, [0, 1, 2, 3, 4, 5, 6, 7]),
        };
        Self {
            channels,
            streams,
            coupled,
            mapping,
            bitrate_bps,
        }
    }

    /// The mapping for this channel count.
    pub fn mapping(&self) -> &[u8] {
        &self.mapping[..usize::from(self.channels)]
    }

    /// CBR packet size in bytes for a frame duration (bitrate × duration / 8).
    pub fn cbr_packet_bytes(&self, d: FrameDuration) -> usize {
        (self.bitrate_bps as usize * d.millis() as usize) / 8000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_reference() {
        for (layout, q, (ch, s, c, rate)) in [
            (Layout::Stereo, Quality::Normal, (2, 1, 1, 96_000)),
            (Layout::Stereo, Quality::High, (2, 1, 1, 512_000)),
            (Layout::Surround51, Quality::Normal, (6, 4, 2, 256_000)),
            (Layout::Surround51, Quality::High, (6, 6, 0, 1_536_000)),
            (Layout::Surround71, Quality::Normal, (8, 5, 3, 450_000)),
            (Layout::Surround71, Quality::High, (8, 8, 0, 2_048_000)),
        ] {
            let p = OpusParams::new(layout, q);
            assert_eq!(
                (p.channels, p.streams, p.coupled, p.bitrate_bps),
                (ch, s, c, rate)
            );
            assert_eq!(p.channels, layout.channels());
            // Every decoded channel is the target of exactly one input channel.
            let mut seen = p.mapping().to_vec();
            seen.sort_unstable();
            assert_eq!(seen, (0..ch).collect::<Vec<u8>>());
        }
        let p = OpusParams::new(Layout::Stereo, Quality::Normal);
        assert_eq!(p.cbr_packet_bytes(FrameDuration::Ms5), 60);
        // The largest configuration still fits a 1400-byte audio payload.
        let p = OpusParams::new(Layout::Surround71, Quality::High);
        assert!(p.cbr_packet_bytes(FrameDuration::Ms5) <= 1400);
    }
}
