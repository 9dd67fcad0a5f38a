//! What the media plane streams, decided once at start: the video source and encoder
//! ([`MediaSettings::from_config`], through `strahl_encode::select`), the audio source, the
//! stream ports and payload sizes — and [`MediaSettings::detected`], the start-up line's and
//! the status page's account of what was chosen for capture, encode and audio, and why.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strahl_encode::select::{DriverNvenc, NvencOpen, Preference, Selection};
use strahl_ipc::{Detected, Subsystem};

use super::{MediaError, PING_TIMEOUT, audio};

/// Where video comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoSourceKind {
    /// Test pattern with the frame-number band, encoded with openh264.
    Synthetic,
    /// Replay of a pre-encoded Annex-B file at the session fps.
    Passthrough(PathBuf),
    /// The scan-out, from the KMS capture helper listening at this socket, encoded with
    /// openh264 (`strahl_capture::kms`: the helper holds CAP_SYS_ADMIN, this process does not).
    Kms(PathBuf),
}

/// `[video] source = "kms"`: the capture helper's socket (`STRAHL_KMS_SOCKET`, else
/// [`strahl_capture::kms_video::DEFAULT_SOCKET`]) when it answers at start, else the
/// synthetic pattern; with why (the start-up line says it).
fn kms_or_synthetic() -> (VideoSourceKind, String) {
    let socket = std::env::var_os("STRAHL_KMS_SOCKET").map_or_else(
        || PathBuf::from(strahl_capture::kms_video::DEFAULT_SOCKET),
        PathBuf::from,
    );
    match strahl_capture::kms_source::KmsSource::connect(&socket) {
        Ok(_) => (
            VideoSourceKind::Kms(socket.clone()),
            format!(
                "strahl-kms-helper answers at {} (dmabufs over SCM_RIGHTS; this process holds \
                 no CAP_SYS_ADMIN)",
                socket.display()
            ),
        ),
        Err(e) => (
            VideoSourceKind::Synthetic,
            format!(
                "kms requested, but {e} — start strahl-kms-helper (it needs CAP_SYS_ADMIN); the \
                 synthetic pattern stands in"
            ),
        ),
    }
}

/// Process-wide media settings (from the config).
#[derive(Debug, Clone)]
pub struct MediaSettings {
    pub video_source: VideoSourceKind,
    /// Why that source (the start-up line and the status page).
    pub video_source_why: String,
    /// The encoder of raw-frame sources, chosen at start ([`strahl_encode::select`]): every
    /// session's encoder is built from it, and the formats advertised are its.
    pub encoder: Selection,
    /// PipeWire, the test tone or nothing ([`audio::AudioChoice::from_config`]); with
    /// `auto`, the latest session's choice.
    pub audio: audio::AudioChoice,
    /// `Some` with `[audio] source = "auto"`: where each session's build looks again.
    pub audio_recheck: Option<audio::AutoProbe>,
    pub drop_fraction: f64,
    pub drop_seed: u64,
    pub ping_timeout: Duration,
    /// Largest UDP payload a transport frame holds (the MTU less IPv4 and UDP headers); a
    /// session whose packets are larger is refused.
    pub max_payload: usize,
    /// SCHED_FIFO priority of the media threads, 0 = normal ([`super::realtime`]: set by the data
    /// plane's start-up after [`super::realtime::prepare`]; 0 from the config alone).
    pub realtime_priority: u8,
}

impl MediaSettings {
    /// Decides the sources and the encoder with the NVIDIA driver as it is on this machine.
    /// Fails only when `[video] encoder = "nvenc"` and NVENC is not usable, or `[audio] source
    /// = "pipewire"` and PipeWire is not reachable.
    pub fn from_config(cfg: &strahl_config::Config) -> Result<Self, MediaError> {
        Self::from_config_with(cfg, Arc::new(DriverNvenc))
    }

    /// [`MediaSettings::from_config`] with NVENC reached through `gpu` (the tests' fake).
    pub fn from_config_with(
        cfg: &strahl_config::Config,
        gpu: Arc<dyn NvencOpen>,
    ) -> Result<Self, MediaError> {
        let v = &cfg.video;
        let (video_source, video_source_why) = match v.source {
            strahl_config::VideoSource::Passthrough => (
                VideoSourceKind::Passthrough(PathBuf::from(&v.passthrough_file)),
                "[video] source = \"passthrough\": the clip is replayed as encoded".to_owned(),
            ),
            strahl_config::VideoSource::Kms => kms_or_synthetic(),
            strahl_config::VideoSource::Synthetic => (
                VideoSourceKind::Synthetic,
                "[video] source = \"synthetic\": the test pattern".to_owned(),
            ),
        };
        let encoder = match &video_source {
            // The clip is already encoded: no encoder is opened, none is probed.
            VideoSourceKind::Passthrough(_) => {
                Selection::openh264("unused: the passthrough clip is sent as encoded")
            }
            _ => {
                let pref = match v.encoder {
                    strahl_config::EncoderPref::Auto => Preference::Auto,
                    strahl_config::EncoderPref::Nvenc => Preference::Nvenc,
                    strahl_config::EncoderPref::Openh264 => Preference::Software,
                };
                Selection::select(pref, gpu).map_err(|e| {
                    MediaError::Encoder(format!(
                        "[video] encoder = \"nvenc\", but {e} (set encoder = \"auto\" to fall \
                         back to openh264; `strahl-control doctor` checks the driver)"
                    ))
                })?
            }
        };
        let env = strahl_audio::pipewire::Env::from_process();
        let audio =
            audio::AudioChoice::from_config(&cfg.audio, &env).map_err(MediaError::Environment)?;
        let audio_recheck = audio::AutoProbe::from_config(&cfg.audio, env);
        Ok(Self {
            video_source,
            video_source_why,
            encoder,
            audio,
            audio_recheck,
            drop_fraction: cfg.testing.video_drop_fraction.0,
            drop_seed: cfg.testing.video_drop_seed,
            ping_timeout: PING_TIMEOUT,
            max_payload: max_payload_for_mtu(cfg.dataplane.mtu),
            realtime_priority: 0,
        })
    }

    /// What was chosen at start for capture, encode and audio, and why: the start-up line
    /// ([`describe_detected`]) and the IPC's `Detected` events (the status page).
    pub fn detected(&self, caps: &strahl_encode::Capability) -> Vec<Detected> {
        let chosen = &self.encoder.choice;
        let name = chosen.backend.name();
        // The selection's reason starts with the backend's name: said once, as the choice.
        let why = chosen
            .reason
            .strip_prefix(name)
            .and_then(|r| r.strip_prefix(": "))
            .unwrap_or(&chosen.reason)
            .to_owned();
        let (capture, encode, encode_why) = match &self.video_source {
            VideoSourceKind::Synthetic => ("synthetic", name, why),
            // How captured frames reach the encoder (the session falls back to the CPU copy,
            // logged and counted, if the GPU refuses an import: video/zero_copy.rs).
            VideoSourceKind::Kms(_) => {
                let path = match chosen.backend {
                    strahl_encode::select::Backend::Nvenc => "KMS frames zero-copy: dmabuf → NVENC",
                    strahl_encode::select::Backend::OpenH264 => {
                        "KMS frames by CPU copy: mapped and converted"
                    }
                };
                ("kms", name, format!("{why}; {path}"))
            }
            VideoSourceKind::Passthrough(_) => ("passthrough", "passthrough", caps.describe()),
        };
        [
            (Subsystem::Capture, capture, self.video_source_why.clone()),
            (Subsystem::Encode, encode, encode_why),
        ]
        .into_iter()
        .map(|(subsystem, choice, reason)| Detected {
            subsystem,
            choice: choice.to_owned(),
            reason,
        })
        .chain([self.audio.detected()])
        .collect()
    }
}

/// The start-up line's words for [`MediaSettings::detected`]: "video source: synthetic (why);
/// encoder openh264 (why); audio test tone (…)".
pub fn describe_detected(detected: &[Detected]) -> String {
    detected
        .iter()
        .map(|d| match d.subsystem {
            Subsystem::Capture => format!("video source: {} ({})", d.choice, d.reason),
            Subsystem::Encode => format!("encoder {} ({})", d.choice, d.reason),
            // The audio description names the source itself.
            Subsystem::Audio => format!("audio {}", d.reason),
            other => format!("{} {} ({})", other.name(), d.choice, d.reason),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// UDP payload bytes one datagram of `mtu` carries over IPv4 (start-up sizes frames with it).
pub fn max_payload_for_mtu(mtu: u16) -> usize {
    usize::from(mtu).saturating_sub(28).max(64)
}
