//! Multistream Opus encoder for GameStream audio: RESTRICTED_LOWDELAY, CBR, 5/10 ms frames.

use opus::{Application, Bitrate, MSEncoder};

use crate::AudioError;
use crate::layout::{FrameDuration, OpusParams};

/// Largest audio payload GameStream carries (§A17: "then Opus (≤ 1400 B)").
pub const MAX_PACKET_BYTES: usize = 1400;

pub struct OpusEncoder {
    params: OpusParams,
    duration: FrameDuration,
    enc: MSEncoder,
    packets: u64,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("params", &self.params)
            .field("duration", &self.duration)
            .field("packets", &self.packets)
            .finish_non_exhaustive()
    }
}

impl OpusEncoder {
    pub fn new(params: OpusParams, duration: FrameDuration) -> Result<Self, AudioError> {
        if params.cbr_packet_bytes(duration) > MAX_PACKET_BYTES {
            return Err(AudioError::Config(format!(
                "{} bit/s × {} ms exceeds {MAX_PACKET_BYTES} B packets",
                params.bitrate_bps,
                duration.millis()
            )));
        }
        let mut enc = MSEncoder::new(
            crate::SAMPLE_RATE,
            params.streams,
            params.coupled,
            params.mapping(),
            Application::LowDelay,
        )?;
        enc.set_bitrate(Bitrate::Bits(params.bitrate_bps as i32))?;
        // CBR: equal-size payloads are required by the 4+2 audio FEC (§A17).
        enc.set_vbr(false)?;
        Ok(Self {
            params,
            duration,
            enc,
            packets: 0,
        })
    }

    pub fn params(&self) -> &OpusParams {
        &self.params
    }

    /// Interleaved samples one `encode` call consumes.
    pub fn samples_per_packet(&self) -> usize {
        self.duration.samples() * usize::from(self.params.channels)
    }

    /// Encodes one frame of interleaved PCM into `out`; returns the packet length.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, AudioError> {
        if pcm.len() != self.samples_per_packet() {
            return Err(AudioError::Config(format!(
                "expected {} interleaved samples, got {}",
                self.samples_per_packet(),
                pcm.len()
            )));
        }
        let n = self.enc.encode(pcm, out)?;
        self.packets += 1;
        Ok(n)
    }

    pub fn packets(&self) -> u64 {
        self.packets
    }
}
