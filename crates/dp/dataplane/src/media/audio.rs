//! The audio encode tile of one session: a test tone → Opus CBR at the negotiated layout and
//! packet duration → the stream's unit ring. The GameStream audio packetizer (RTP PT 97, 4+2
//! FEC PT 127, AES-CBC) runs on the tx tile like every other packetizer.
//!
//! Real-time clock: packet k is due at k · packetDuration after the client's audio ping was
//! learned (`Shared::ready`). A thread that falls behind by more than [`MAX_CATCH_UP`] packets
//! skips ahead (the client conceals the gap) rather than bursting seconds of audio; a full ring
//! (the tx tile behind) skips the packet the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strahl_audio::encoder::{MAX_PACKET_BYTES, OpusEncoder};
use strahl_audio::layout::{FrameDuration, Layout, OpusParams, Quality};
use strahl_audio::tone::ToneSource;
use strahl_ipc::StopReason;

use super::ring::{Producer, UnitMeta};
use super::{AUDIO, MediaError, Shared, WORKER_TICK};

/// Packets sent back to back when late before the clock skips instead (4 = one FEC block).
pub const MAX_CATCH_UP: u64 = 4;

/// The Opus parameters for a session: layout from the channel count, high quality when the
/// negotiated bitrate is above the normal one.
pub fn opus_params(channels: u8, bitrate_kbps: u32) -> Result<OpusParams, MediaError> {
    let layout = match channels {
        2 => Layout::Stereo,
        6 => Layout::Surround51,
        8 => Layout::Surround71,
        n => {
            return Err(MediaError::Session(format!(
                "{n} audio channels are not a GameStream layout"
            )));
        }
    };
    let normal = OpusParams::new(layout, Quality::Normal);
    Ok(
        if u64::from(bitrate_kbps) * 1000 > u64::from(normal.bitrate_bps) {
            OpusParams::new(layout, Quality::High)
        } else {
            normal
        },
    )
}

/// Tone source + Opus encoder of one session.
pub struct AudioPipeline {
    pub params: OpusParams,
    pub duration: FrameDuration,
    enc: OpusEncoder,
    tone: ToneSource,
    pcm: Vec<i16>,
}

impl AudioPipeline {
    pub fn build(channels: u8, bitrate_kbps: u32, packet_ms: u8) -> Result<Self, MediaError> {
        let params = opus_params(channels, bitrate_kbps)?;
        let duration = if packet_ms >= 10 {
            FrameDuration::Ms10
        } else {
            FrameDuration::Ms5
        };
        let enc = OpusEncoder::new(params, duration)
            .map_err(|e| MediaError::Encoder(format!("opus: {e}")))?;
        Ok(Self {
            params,
            duration,
            enc,
            tone: ToneSource::new(params.channels),
            pcm: vec![0i16; duration.samples() * usize::from(params.channels)],
        })
    }
}

/// The thread body of one session's audio encode tile.
pub struct AudioProducer {
    id: u64,
    pipeline: AudioPipeline,
    units: Producer,
    shared: Arc<Shared>,
}

impl AudioProducer {
    pub fn new(id: u64, pipeline: AudioPipeline, units: Producer, shared: Arc<Shared>) -> Self {
        Self {
            id,
            pipeline,
            units,
            shared,
        }
    }

    pub fn run(mut self) {
        let id = self.id;
        match self.stream() {
            Ok(()) => log::info!("session {id}: audio encoder stopped"),
            Err(e) => {
                log::warn!("session {id}: audio: {e}");
                self.shared.fail(e.to_string(), StopReason::Error);
            }
        }
    }

    fn stream(&mut self) -> Result<(), MediaError> {
        if !self.shared.wait_ready(AUDIO) {
            return Ok(());
        }
        let period_ns = u64::from(self.pipeline.duration.millis()) * 1_000_000;
        let t0 = Instant::now();
        let mut n: u64 = 0;
        while !self.shared.stopped() {
            let now = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let due = n * period_ns;
            if now < due {
                std::thread::sleep(Duration::from_nanos(due - now).min(WORKER_TICK));
                continue;
            }
            if (now - due) / period_ns > MAX_CATCH_UP {
                n = now / period_ns;
            }
            n += 1;
            let p = &mut self.pipeline;
            p.tone.fill(&mut p.pcm);
            let Some(mut slot) = self.units.acquire() else {
                continue; // the tx tile is a full ring behind: this packet is skipped
            };
            slot.bytes.resize(MAX_PACKET_BYTES, 0);
            let len = p
                .enc
                .encode(&p.pcm, &mut slot.bytes)
                .map_err(|e| MediaError::Encoder(format!("opus encode: {e}")))?;
            slot.meta = UnitMeta {
                len,
                keyframe: false,
                capture_ns: due,
                host_latency_tenth_ms: 0,
            };
            if !self.units.publish(slot) {
                return Ok(());
            }
        }
        Ok(())
    }
}
