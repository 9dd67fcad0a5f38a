//! The audio encode tile of one session: the box's sound (PipeWire) or a test tone → Opus CBR
//! at the negotiated layout and packet duration → the stream's unit ring. The GameStream audio
//! packetizer (RTP PT 97, 4+2 FEC PT 127, AES-CBC) runs on the tx tile like every other
//! packetizer.
//!
//! Source: [`AudioChoice`], decided at start ([`AudioChoice::from_config`] probes,
//! [`AudioChoice::decide`] decides without IO): `[audio] source = "auto"` takes PipeWire where
//! it is reachable and the tone otherwise, with the reason; `"pipewire"` without a reachable
//! PipeWire refuses to start; `"tone"` and `"none"` are taken as they are. Only `auto` looks
//! again: the data plane usually starts before the desktop's PipeWire (an autologin after
//! `strahl.target`), so each GameStream session's build probes once more ([`AutoProbe`]: a
//! connect to the socket and PATH lookups, no process; on the IPC thread that builds the
//! session, never the tx tile or an encode thread) and [`AudioChoice::recheck`] (no IO) says
//! what that session streams and whether the choice changed — the caller logs a change once
//! and sends the new [`AudioChoice::detected`] entry to the status page. A session keeps what
//! it started with. With PipeWire the session runs its own `pw-record` through
//! [`strahl_audio::pipewire::Supervisor`], started when the client's audio ping arrives: the tile
//! never waits for it (silence while it primes, is down or restarts — a PipeWire that goes away
//! mid-session is one warning, `strahl_audio_capture_restarts_total` counting each lost
//! capture, and silence until it is back; never an error that ends the session).
//!
//! Real-time clock: packet k is due at k · packetDuration after the client's audio ping was
//! learned (`Shared::ready`). A thread that falls behind by more than [`MAX_CATCH_UP`] packets
//! skips ahead (the client conceals the gap) rather than bursting seconds of audio; a full ring
//! (the tx tile behind) skips the packet the same way.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strahl_audio::encoder::{MAX_PACKET_BYTES, OpusEncoder};
use strahl_audio::layout::{FrameDuration, Layout, OpusParams, Quality};
use strahl_audio::pipewire::{self, CaptureConfig, Detected, Note, Supervisor};
use strahl_audio::tone::ToneSource;
use strahl_ipc::{StopReason, Subsystem};
use strahl_metrics::{Metric, Registry};

use strahl_ipc::{SessionStart, StreamOptions};
use strahl_pacer::PacerConfig;
use strahl_packetize::gamestream::{GsAudioConfig, GsAudioPacketizer};
use strahl_seal::gamestream::AudioCipher;

use super::ping::PingMatcher;
use super::ring::{Producer, UnitMeta};
use super::tile::{StreamKind, StreamSetup};
use super::{AUDIO, AUDIO_PACE_BPS, AUDIO_SLOTS, MediaError, Shared, WORKER_TICK};

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

/// Where a session's audio comes from (decided at start; with `auto`, again at each session's
/// build).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioChoice {
    /// No audio stream.
    Off,
    /// The test tone; `fallback` says why `source = "auto"` did not take PipeWire.
    Tone { fallback: Option<String> },
    /// The default sink's monitor, captured through `pw-record`; `auto` when `source = "auto"`
    /// chose it.
    PipeWire { found: Detected, auto: bool },
}

impl AudioChoice {
    /// From `[audio]`: PipeWire is probed here (a connection to its socket, opened and closed;
    /// nothing played or recorded) unless the source is the tone or none. `Err` (the reason
    /// and the fix) only for `source = "pipewire"` without a reachable PipeWire.
    pub fn from_config(audio: &strahl_config::Audio, env: &pipewire::Env) -> Result<Self, String> {
        use strahl_config::AudioSource as S;
        let found = match audio.source {
            S::Auto | S::Pipewire => pipewire::detect(configured_socket(audio).as_deref(), env),
            S::Tone | S::None => Err("not probed".into()),
        };
        Self::decide(audio.source, found)
    }

    /// `source = "auto"` looking again as a session is built: `previous` is the choice the
    /// last session (or the start) took, `found` what the probe sees now. No IO.
    pub fn recheck(previous: &AudioChoice, found: Result<Detected, String>) -> Recheck {
        let choice = Self::auto(found);
        Recheck {
            changed: choice != *previous,
            choice,
        }
    }

    /// What `auto` takes: PipeWire where reachable, the tone and why otherwise.
    fn auto(found: Result<Detected, String>) -> Self {
        match found {
            Ok(found) => Self::PipeWire { found, auto: true },
            Err(why) => Self::Tone {
                fallback: Some(why),
            },
        }
    }

    /// The decision without IO: the configured source and what the probe found.
    pub fn decide(
        source: strahl_config::AudioSource,
        found: Result<Detected, String>,
    ) -> Result<Self, String> {
        use strahl_config::AudioSource as S;
        match (source, found) {
            (S::None, _) => Ok(Self::Off),
            (S::Tone, _) => Ok(Self::Tone { fallback: None }),
            (S::Auto, found) => Ok(Self::auto(found)),
            (S::Pipewire, Ok(found)) => Ok(Self::PipeWire { found, auto: false }),
            (S::Pipewire, Err(why)) => Err(format!(
                "[audio] source = \"pipewire\", but {why} (set source = \"auto\" to stream the \
                 test tone instead)"
            )),
        }
    }

    /// The start-up line's words: what was chosen and why.
    pub fn describe(&self) -> String {
        match self {
            Self::Off => "off ([audio] source = \"none\")".into(),
            Self::Tone { fallback: None } => "test tone ([audio] source = \"tone\")".into(),
            Self::Tone {
                fallback: Some(why),
            } => format!("test tone ([audio] source = \"auto\": {why})"),
            Self::PipeWire { found, auto } => format!(
                "PipeWire, the default sink's monitor ({}{} on {}, from {})",
                if *auto {
                    "[audio] source = \"auto\": reachable; "
                } else {
                    ""
                },
                found.pw_record.display(),
                found.socket.display(),
                found.origin,
            ),
        }
    }

    /// The `strahl_audio_source` label value.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Off => "none",
            Self::Tone { .. } => "tone",
            Self::PipeWire { .. } => "pipewire",
        }
    }

    /// The status page's audio entry (an IPC `Detected` event).
    pub fn detected(&self) -> strahl_ipc::Detected {
        strahl_ipc::Detected {
            subsystem: Subsystem::Audio,
            choice: self.label().to_owned(),
            reason: self.describe(),
        }
    }
}

/// `[audio] pipewire_socket` as a path (`None`: `"auto"`, the environment's).
fn configured_socket(audio: &strahl_config::Audio) -> Option<PathBuf> {
    match &audio.pipewire_socket {
        strahl_config::AutoPath::Auto => None,
        strahl_config::AutoPath::Path(p) => Some(p.clone()),
    }
}

/// What a session's build takes ([`AudioChoice::recheck`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recheck {
    pub choice: AudioChoice,
    /// It differs from the previous choice: log it once and update the status page.
    pub changed: bool,
}

/// Where `source = "auto"` looks for PipeWire, kept from start-up so that each session's build
/// can look again (the other sources are decided once: they have none).
#[derive(Debug, Clone)]
pub struct AutoProbe {
    /// `[audio] pipewire_socket`; `None`: the environment's ([`pipewire::Env::socket`]).
    pub socket: Option<PathBuf>,
    pub env: pipewire::Env,
}

impl AutoProbe {
    /// `Some` only for `[audio] source = "auto"`.
    pub fn from_config(audio: &strahl_config::Audio, env: pipewire::Env) -> Option<Self> {
        (audio.source == strahl_config::AudioSource::Auto).then(|| Self {
            socket: configured_socket(audio),
            env,
        })
    }

    /// Probes now (a connect to the socket, closed again, and PATH lookups: no process, no
    /// waiting beyond the connect) and re-decides against `previous`. Not for a real-time
    /// thread: it makes system calls and allocates.
    pub fn recheck(&self, previous: &AudioChoice) -> Recheck {
        AudioChoice::recheck(
            previous,
            pipewire::detect(self.socket.as_deref(), &self.env),
        )
    }
}

/// A session's audio stream: the tx tile's setup (GameStream packetizer with the session's
/// AES-CBC key when it asks for encrypted audio, its ring, pacing) and the encode thread's
/// body; `None` when audio is off.
pub fn build_stream(
    s: &SessionStart,
    choice: &AudioChoice,
    (rikey, rikeyid): (&[u8; 16], u32),
    tile_thread: &std::thread::Thread,
    shared: &Arc<Shared>,
    metrics: &'static Registry,
) -> Result<Option<(StreamSetup, AudioProducer)>, MediaError> {
    if *choice == AudioChoice::Off {
        return Ok(None);
    }
    let a = &s.audio;
    let ap = AudioPipeline::build(choice, a.channels, a.bitrate_kbps, a.packet_duration_ms)?;
    let cipher = s
        .stream
        .has(StreamOptions::ENCRYPT_AUDIO)
        .then(|| AudioCipher::new(rikey, rikeyid));
    let config = GsAudioConfig {
        packet_duration_ms: ap.duration.millis(),
    };
    let pk = GsAudioPacketizer::new(config, cipher)
        .map_err(|e| MediaError::Session(format!("audio packetizer: {e}")))?;
    let (prod, cons) = super::ring::ring(AUDIO_SLOTS, MAX_PACKET_BYTES, Some(tile_thread.clone()));
    let setup = StreamSetup {
        kind: StreamKind::Audio,
        port: s.ports.audio_src,
        packetizer: Box::new(super::stream::GsAudioStream::new(pk)),
        units: cons,
        pacer: PacerConfig::new(AUDIO_PACE_BPS),
        unit_interval_ns: 0,
        knob: super::knob::DropKnob::new(0.0, 0),
        matcher: PingMatcher::new(s.stream.ping_payload, s.peer.ip()),
    };
    let producer = AudioProducer::new(s.id, ap, prod, shared.clone(), metrics);
    Ok(Some((setup, producer)))
}

/// PCM for the encoder.
enum Source {
    Tone(ToneSource),
    PipeWire(Box<Supervisor>),
}

/// Audio source + Opus encoder of one session.
pub struct AudioPipeline {
    pub params: OpusParams,
    pub duration: FrameDuration,
    enc: OpusEncoder,
    source: Source,
    pcm: Vec<i16>,
}

impl AudioPipeline {
    /// `choice` must not be [`AudioChoice::Off`] (no pipeline then); it is treated as the tone.
    pub fn build(
        choice: &AudioChoice,
        channels: u8,
        bitrate_kbps: u32,
        packet_ms: u8,
    ) -> Result<Self, MediaError> {
        let params = opus_params(channels, bitrate_kbps)?;
        let duration = if packet_ms >= 10 {
            FrameDuration::Ms10
        } else {
            FrameDuration::Ms5
        };
        let enc = OpusEncoder::new(params, duration)
            .map_err(|e| MediaError::Encoder(format!("opus: {e}")))?;
        let source = match choice {
            AudioChoice::PipeWire { found, .. } => Source::PipeWire(Box::new(Supervisor::new(
                CaptureConfig::new(params.channels, found),
                Instant::now(),
            ))),
            _ => Source::Tone(ToneSource::new(params.channels)),
        };
        Ok(Self {
            params,
            duration,
            enc,
            source,
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
    metrics: &'static Registry,
    /// Capture counters already added to the metrics.
    counted: pipewire::CaptureStats,
}

impl AudioProducer {
    pub fn new(
        id: u64,
        pipeline: AudioPipeline,
        units: Producer,
        shared: Arc<Shared>,
        metrics: &'static Registry,
    ) -> Self {
        Self {
            id,
            pipeline,
            units,
            shared,
            metrics,
            counted: pipewire::CaptureStats::default(),
        }
    }

    /// Fills the next packet's PCM from the session's source.
    fn fill(&mut self) {
        let p = &mut self.pipeline;
        let sup = match &mut p.source {
            Source::Tone(t) => return t.fill(&mut p.pcm),
            Source::PipeWire(s) => s,
        };
        sup.fill(&mut p.pcm, Instant::now());
        match sup.take_note() {
            Some(Note::Stopped(why)) => log::warn!(
                "session {}: audio: PipeWire capture stopped: {why}; silence until it restarts",
                self.id
            ),
            Some(Note::Restarted) => {
                log::info!("session {}: audio: PipeWire capture running again", self.id)
            }
            None => {}
        }
        let now = sup.stats();
        let m = self.metrics;
        m.add(
            Metric::AudioCaptureUnderruns,
            now.underruns - self.counted.underruns,
        );
        m.add(
            Metric::AudioCaptureRestarts,
            now.restarts - self.counted.restarts,
        );
        self.counted = now;
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
            self.fill();
            let p = &mut self.pipeline;
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

#[cfg(test)]
mod tests {
    use super::*;
    use strahl_config::AudioSource as S;

    fn found() -> Detected {
        Detected {
            socket: "/run/user/1000/pipewire-0".into(),
            origin: "[audio] pipewire_socket",
            pw_record: "/usr/bin/pw-record".into(),
            stdbuf: "/usr/bin/stdbuf".into(),
        }
    }

    #[test]
    fn auto_takes_pipewire_when_reachable_and_the_tone_with_why_otherwise() {
        let c = AudioChoice::decide(S::Auto, Ok(found())).unwrap();
        assert_eq!(c.label(), "pipewire");
        let line = c.describe();
        assert!(
            line.starts_with("PipeWire, the default sink's monitor ("),
            "{line}"
        );
        assert!(line.contains("source = \"auto\": reachable"), "{line}");
        assert!(
            line.contains("/run/user/1000/pipewire-0, from [audio] pipewire_socket"),
            "{line}"
        );

        let c = AudioChoice::decide(S::Auto, Err("no PipeWire at /x: gone".into())).unwrap();
        assert_eq!(c.label(), "tone");
        assert_eq!(
            c.describe(),
            "test tone ([audio] source = \"auto\": no PipeWire at /x: gone)"
        );
    }

    #[test]
    fn pipewire_unreachable_refuses_to_start_with_the_reason() {
        let c = AudioChoice::decide(S::Pipewire, Ok(found())).unwrap();
        assert_eq!(
            c,
            AudioChoice::PipeWire {
                found: found(),
                auto: false
            }
        );
        assert!(!c.describe().contains("auto"), "{}", c.describe());
        let e =
            AudioChoice::decide(S::Pipewire, Err("no PipeWire at /x: gone".into())).unwrap_err();
        assert!(
            e.starts_with("[audio] source = \"pipewire\", but no PipeWire at /x"),
            "{e}"
        );
        assert!(e.contains("source = \"auto\""), "{e}");
    }

    #[test]
    fn tone_and_none_are_taken_as_configured() {
        for found in [Ok(found()), Err("x".to_string())] {
            assert_eq!(
                AudioChoice::decide(S::Tone, found.clone()),
                Ok(AudioChoice::Tone { fallback: None })
            );
            assert_eq!(AudioChoice::decide(S::None, found), Ok(AudioChoice::Off));
        }
        // Nothing is probed for them: from_config with an environment that would fail the
        // probe still gives the configured choice.
        let audio = strahl_config::Audio {
            source: S::Tone,
            ..strahl_config::Audio::default()
        };
        assert_eq!(
            AudioChoice::from_config(&audio, &pipewire::Env::default()),
            Ok(AudioChoice::Tone { fallback: None })
        );
    }

    #[test]
    fn auto_rechecks_at_each_session_and_says_when_the_choice_changed() {
        let gone = || Err::<Detected, _>("no PipeWire at /x: gone".to_string());
        // Started before the desktop's PipeWire: the tone, and why.
        let start = AudioChoice::decide(S::Auto, gone()).unwrap();
        // Still not there: the same choice, nothing to announce.
        let r = AudioChoice::recheck(&start, gone());
        assert_eq!((&r.choice, r.changed), (&start, false));
        // Reachable now: PipeWire (as `auto` chose it), announced once.
        let r = AudioChoice::recheck(&start, Ok(found()));
        assert_eq!(
            (&r.choice, r.changed),
            (
                &AudioChoice::PipeWire {
                    found: found(),
                    auto: true
                },
                true
            )
        );
        let r = AudioChoice::recheck(&r.choice, Ok(found()));
        assert!(!r.changed, "{r:?}");
        assert_eq!(r.choice.label(), "pipewire");
        // Gone again (the desktop user logged out): the tone for the next session, and why.
        let r = AudioChoice::recheck(&r.choice, gone());
        assert_eq!((&r.choice, r.changed), (&start, true));
        // Still the tone, but for another reason (reachable, the grant missing): the status
        // page must say the new why.
        let denied = Err("no PipeWire at /x: Permission denied".to_string());
        let r = AudioChoice::recheck(&r.choice, denied);
        assert!(r.changed && r.choice.label() == "tone", "{r:?}");
        assert!(r.choice.describe().contains("Permission denied"), "{r:?}");
    }

    #[test]
    fn only_auto_looks_again() {
        let audio = |source| strahl_config::Audio {
            source,
            pipewire_socket: strahl_config::AutoPath::Path("/run/pw".into()),
            ..strahl_config::Audio::default()
        };
        for s in [S::Pipewire, S::Tone, S::None] {
            assert!(AutoProbe::from_config(&audio(s), pipewire::Env::default()).is_none());
        }
        let p = AutoProbe::from_config(&audio(S::Auto), pipewire::Env::default()).unwrap();
        assert_eq!(p.socket.as_deref(), Some(std::path::Path::new("/run/pw")));
    }

    #[test]
    fn the_status_entry_is_the_choice_and_its_why() {
        let c = AudioChoice::PipeWire {
            found: found(),
            auto: true,
        };
        let d = c.detected();
        assert_eq!(
            (d.subsystem, d.choice.as_str(), d.reason),
            (Subsystem::Audio, "pipewire", c.describe())
        );
    }

    #[test]
    fn the_appliance_socket_is_the_one_the_config_and_doctor_name() {
        // strahl-audio does not depend on strahl-config; this crate sees both.
        assert_eq!(
            pipewire::APPLIANCE_SOCKET,
            strahl_config::APPLIANCE_PIPEWIRE_SOCKET
        );
    }

    #[test]
    fn from_config_probes_the_configured_socket() {
        let gone = std::env::temp_dir().join(format!("strahl-no-pw-{}", std::process::id()));
        let audio = strahl_config::Audio {
            source: S::Auto,
            pipewire_socket: strahl_config::AutoPath::Path(gone.clone()),
            ..strahl_config::Audio::default()
        };
        let c = AudioChoice::from_config(&audio, &pipewire::Env::default()).unwrap();
        let line = c.describe();
        assert!(
            line.starts_with("test tone ([audio] source = \"auto\": no PipeWire at "),
            "{line}"
        );
        assert!(line.contains(&gone.display().to_string()), "{line}");
        let e = AudioChoice::from_config(
            &strahl_config::Audio {
                source: S::Pipewire,
                ..audio
            },
            &pipewire::Env::default(),
        )
        .unwrap_err();
        assert!(e.contains(&gone.display().to_string()), "{e}");
    }
}
