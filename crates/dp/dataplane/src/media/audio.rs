//! The audio worker of one GameStream session: a test tone → Opus CBR at the negotiated layout
//! and packet duration → GameStream audio packetizer (RTP PT 97, 4+2 FEC PT 127, AES-CBC with
//! rikey/rikeyid when ENCRYPT_AUDIO) → the destination learned from the audio pings.
//!
//! Real-time clock: packet k is due at k · packetDuration after the first ping. A worker that
//! falls behind by more than [`MAX_CATCH_UP`] packets skips ahead (the client conceals the gap)
//! rather than bursting seconds of audio.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strahl_audio::encoder::{MAX_PACKET_BYTES, OpusEncoder};
use strahl_audio::layout::{FrameDuration, Layout, OpusParams, Quality};
use strahl_audio::tone::ToneSource;
use strahl_ipc::{SessionStart, StopReason, StreamOptions};
use strahl_metrics::{Metric, Registry};
use strahl_packetize::gamestream::{GsAudioConfig, GsAudioPacketizer};
use strahl_seal::gamestream::AudioCipher;

use super::{MediaSettings, Shared, StreamSocket, WORKER_TICK, check_session};

/// Packets sent back to back when late before the clock skips instead (4 = one FEC block).
pub const MAX_CATCH_UP: u64 = 4;

type Failure = (String, StopReason);

fn fatal(m: String) -> Failure {
    (m, StopReason::Error)
}

pub struct AudioWorker {
    s: SessionStart,
    settings: MediaSettings,
    shared: Arc<Shared>,
    metrics: &'static Registry,
}

/// The Opus parameters for a session: layout from the channel count, high quality when the
/// negotiated bitrate is above the normal one.
pub fn opus_params(channels: u8, bitrate_kbps: u32) -> Result<OpusParams, String> {
    let layout = match channels {
        2 => Layout::Stereo,
        6 => Layout::Surround51,
        8 => Layout::Surround71,
        n => return Err(format!("{n} audio channels are not a GameStream layout")),
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

impl AudioWorker {
    pub fn new(
        s: SessionStart,
        settings: MediaSettings,
        shared: Arc<Shared>,
        metrics: &'static Registry,
    ) -> Self {
        Self {
            s,
            settings,
            shared,
            metrics,
        }
    }

    pub fn run(self) {
        let id = self.s.id;
        match self.stream() {
            Ok(()) => log::info!("session {id}: audio worker stopped"),
            Err((detail, why)) => {
                log::warn!("session {id}: audio: {detail}");
                self.shared.fail(detail, why);
            }
        }
    }

    fn stream(&self) -> Result<(), Failure> {
        let s = &self.s;
        let id = s.id;
        let (rikey, rikeyid) = check_session(s).map_err(fatal)?;
        let params = opus_params(s.audio.channels, s.audio.bitrate_kbps).map_err(fatal)?;
        let duration = if s.audio.packet_duration_ms >= 10 {
            FrameDuration::Ms10
        } else {
            FrameDuration::Ms5
        };
        let mut enc =
            OpusEncoder::new(params, duration).map_err(|e| fatal(format!("opus: {e}")))?;
        let cipher = s
            .stream
            .has(StreamOptions::ENCRYPT_AUDIO)
            .then(|| AudioCipher::new(rikey, rikeyid));
        let mut pk = GsAudioPacketizer::new(
            GsAudioConfig {
                packet_duration_ms: duration.millis(),
            },
            cipher,
        )
        .map_err(|e| fatal(format!("audio packetizer: {e}")))?;
        let mut tone = ToneSource::new(params.channels);
        let mut pcm = vec![0i16; duration.samples() * usize::from(params.channels)];
        let mut opus = vec![0u8; MAX_PACKET_BYTES];
        let mut pkt = vec![0u8; GsAudioPacketizer::MAX_PACKET_LEN];

        let mut ss = StreamSocket::bind(s.ports.audio_src, s).map_err(|e| {
            fatal(format!(
                "cannot bind the audio port 0.0.0.0:{}: {e}",
                s.ports.audio_src
            ))
        })?;
        let timeout = self.settings.ping_timeout;
        log::info!(
            "session {id}: audio {} ch {} ms at {} kbit/s CBR{} on 0.0.0.0:{}; waiting up to {timeout:?} for the audio ping",
            params.channels,
            duration.millis(),
            params.bitrate_bps / 1000,
            if cipher_on(s) { ", encrypted" } else { "" },
            s.ports.audio_src
        );
        let Some(mut dest) = ss.wait_first(&self.shared, timeout) else {
            if self.shared.stopped() {
                return Ok(());
            }
            return Err((
                format!("no audio ping from the client within {timeout:?}"),
                StopReason::ClientTimeout,
            ));
        };
        self.metrics.add_at(Metric::PingsLearned, 1, 1);
        log::info!("session {id}: audio destination {dest} learned from its ping");

        let period_ns = u64::from(duration.millis()) * 1_000_000;
        let t0 = Instant::now();
        let mut n: u64 = 0;
        while !self.shared.stopped() {
            if let Some(a) = ss.poll() {
                log::info!("session {id}: audio destination changed to {a}");
                self.metrics.add_at(Metric::PingsLearned, 1, 1);
                dest = a;
            }
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
            tone.fill(&mut pcm);
            let len = enc
                .encode(&pcm, &mut opus)
                .map_err(|e| fatal(format!("opus encode: {e}")))?;
            let push = pk
                .push(&opus[..len], &mut pkt)
                .map_err(|e| fatal(format!("audio packetizer: {e}")))?;
            self.send(&ss, &pkt[..push.len], dest);
            if push.fec_ready {
                while let Some(l) = pk
                    .next_fec(&mut pkt)
                    .map_err(|e| fatal(format!("audio FEC: {e}")))?
                {
                    self.send(&ss, &pkt[..l], dest);
                }
            }
        }
        Ok(())
    }

    /// One datagram; a refusal (client gone, buffer full) is logged at debug and skipped: audio
    /// is real-time and the client conceals losses.
    fn send(&self, ss: &StreamSocket, pkt: &[u8], dest: std::net::SocketAddr) {
        match ss.sock.send_to(pkt, dest) {
            Ok(n) => {
                self.metrics.add_at(Metric::PacketsSent, 1, 1);
                self.metrics.add_at(Metric::BytesSent, 1, n as u64);
            }
            Err(e) => log::debug!("session {}: audio send to {dest}: {e}", self.s.id),
        }
    }
}

fn cipher_on(s: &SessionStart) -> bool {
    s.stream.has(StreamOptions::ENCRYPT_AUDIO)
}
