//! What the running `serve` knows about the data plane and the session manager does not keep:
//! the one [`Live`] value, owned by `serve` (an `Arc` it hands to the status backend), written
//! by the IPC loop and read by the status page.
//!
//! Contract:
//! - [`Live::metrics`] is the data plane's metrics as of its last stats snapshot (the status
//!   endpoint exports it beside our own).
//! - The rest is the data plane's start-up transport choice (its `TransportChosen` event with
//!   id 0), its start-up choices for capture, encode and audio (its `Detected` events, gone
//!   with the data plane) beside our own input sink's (kept: it is this process's), the sessions we asked it to start (from the `SessionStart` we sent, until its
//!   `SessionEnded` or its loss) with the transport it reported for each (`TransportChosen`
//!   with the session's id, again on a fallback), and the send rates computed between two
//!   stats snapshots.
//! - Every method takes one short mutex section (never held across an `.await`); a poisoned
//!   lock is recovered (the state is plain data, valid after any partial update).
//! - This module imports nothing from the rest of the crate: the IPC loop (`serve.rs`) and the
//!   status backend both use it, and neither needs the other for it.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use strahl_ipc::{Protocol, SessionStart};
use strahl_metrics::{Metric, Registry};
use strahl_status::{DetectedInfo, TransportInfo};

/// A session the data plane was asked to run (from our `SessionStart`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SessionMeta {
    pub(crate) client: String,
    pub(crate) protocol: &'static str,
    pub(crate) mode: String,
    pub(crate) bitrate_kbps: u64,
    pub(crate) fec_percent: u32,
    /// The data plane's per-session `TransportChosen` (name, detail), once it has sent one.
    pub(crate) transport: Option<(String, String)>,
}

#[derive(Debug, Default)]
struct LiveInner {
    transport: Option<TransportInfo>,
    /// The data plane's `Detected` events, one per subsystem (the latest wins).
    detected: Vec<DetectedInfo>,
    sessions: BTreeMap<u64, SessionMeta>,
    /// (when, packets, bytes) of the previous snapshot.
    last_sample: Option<(Instant, u64, u64)>,
    packets_per_s: u64,
    send_kbps: u64,
}

/// See the module contract.
#[derive(Debug, Default)]
pub struct Live {
    metrics: Registry,
    inner: Mutex<LiveInner>,
    /// The input sink chosen at start (this process's own choice).
    input: Mutex<Option<DetectedInfo>>,
}

impl Live {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, LiveInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The data plane's metrics as of the last absorbed snapshot.
    pub fn metrics(&self) -> &Registry {
        &self.metrics
    }

    /// Absorbs a stats snapshot's counters at `now` and updates the rates; returns how many
    /// series this build does not know (see [`Registry::absorb`]).
    pub fn absorb_snapshot(&self, counters: &[(String, u64)], now: Instant) -> usize {
        let unknown = self.metrics.absorb(counters);
        self.snapshot_absorbed(now);
        unknown
    }

    /// The data plane's start-up `TransportChosen` event (host-wide, id 0).
    pub fn transport_chosen(&self, name: &str, reason: &str) {
        self.lock().transport = Some(TransportInfo {
            name: name.to_string(),
            reason: reason.to_string(),
        });
    }

    /// A data plane `Detected` event: its start-up choice for `subsystem`.
    pub fn detected(&self, subsystem: &str, choice: &str, reason: &str) {
        let d = DetectedInfo {
            subsystem: subsystem.to_string(),
            choice: choice.to_string(),
            reason: reason.to_string(),
        };
        let mut l = self.lock();
        match l.detected.iter_mut().find(|x| x.subsystem == subsystem) {
            Some(x) => *x = d,
            None => l.detected.push(d),
        }
    }

    /// The input sink chosen at start.
    pub fn input_chosen(&self, choice: &str, reason: &str) {
        *self.input.lock().unwrap_or_else(|p| p.into_inner()) = Some(DetectedInfo {
            subsystem: "input".into(),
            choice: choice.to_string(),
            reason: reason.to_string(),
        });
    }

    /// Every start-up choice known: the data plane's in the order it sent them, then input.
    pub fn detections(&self) -> Vec<DetectedInfo> {
        let mut v = self.lock().detected.clone();
        v.extend(self.input.lock().unwrap_or_else(|p| p.into_inner()).clone());
        v
    }

    /// A `SessionStart` was sent to the data plane.
    pub fn session_start(&self, s: &SessionStart) {
        let meta = SessionMeta {
            client: s.peer.ip().to_string(),
            protocol: match s.protocol {
                Protocol::GameStream => "gamestream",
                Protocol::Native => "native",
            },
            mode: format!(
                "{}x{}@{} {:?}",
                s.video.width, s.video.height, s.video.fps, s.video.codec
            )
            .to_lowercase(),
            bitrate_kbps: u64::from(s.video.bitrate_kbps),
            fec_percent: u32::from(s.video.fec_percent),
            transport: None,
        };
        self.lock().sessions.insert(s.id, meta);
    }

    /// The data plane's `TransportChosen` for session `id` (its first choice or a fallback).
    /// Returns whether the session is known (a late event for an ended one is dropped).
    pub fn session_transport(&self, id: u64, name: &str, detail: &str) -> bool {
        match self.lock().sessions.get_mut(&id) {
            Some(m) => {
                m.transport = Some((name.to_string(), detail.to_string()));
                true
            }
            None => false,
        }
    }

    /// The data plane ended session `id`.
    pub fn session_ended(&self, id: u64) {
        self.lock().sessions.remove(&id);
    }

    /// The data plane went away: its sessions and rates are gone, its transport is unknown.
    /// Its last metrics stay (the page shows the last known counters, as before).
    pub fn dataplane_lost(&self) {
        *self.lock() = LiveInner::default();
    }

    /// A stats snapshot was absorbed into [`Live::metrics`] at `now`: update the rates.
    pub fn snapshot_absorbed(&self, now: Instant) {
        let packets = sum_all(&self.metrics, Metric::PacketsSent);
        let bytes = sum_all(&self.metrics, Metric::BytesSent);
        let mut l = self.lock();
        if let Some((t, p, b)) = l.last_sample {
            let dt = now.saturating_duration_since(t).as_secs_f64();
            if dt > 0.0 {
                l.packets_per_s = (packets.saturating_sub(p) as f64 / dt) as u64;
                l.send_kbps = (bytes.saturating_sub(b) as f64 * 8.0 / 1000.0 / dt) as u64;
            }
        }
        l.last_sample = Some((now, packets, bytes));
    }

    /// (packets/s, kbit/s) between the last two snapshots.
    pub fn rates(&self) -> (u64, u64) {
        let l = self.lock();
        (l.packets_per_s, l.send_kbps)
    }

    /// The start-up transport choice, once the data plane has reported it.
    pub fn transport(&self) -> Option<TransportInfo> {
        self.lock().transport.clone()
    }

    pub(crate) fn sessions(&self) -> Vec<(u64, SessionMeta)> {
        self.lock()
            .sessions
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// Whether the data plane runs session `id` for us.
    pub fn has_session(&self, id: u64) -> bool {
        self.lock().sessions.contains_key(&id)
    }
}

/// The sum of every series of `m` (e.g. packets over all streams).
pub fn sum_all(reg: &Registry, m: Metric) -> u64 {
    let n = strahl_metrics::TABLE[m as usize].series_count();
    (0..n).map(|i| reg.get_at(m, i)).sum()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn start(id: u64) -> SessionStart {
        use strahl_ipc::{
            AudioParams, Codec, KeyMaterial, Ports, Secret, StreamOptions, VideoParams,
        };
        SessionStart {
            id,
            protocol: Protocol::GameStream,
            peer: "10.0.0.7:0".parse().unwrap(),
            video: VideoParams {
                width: 1280,
                height: 720,
                fps: 60,
                bitrate_kbps: 15_000,
                packet_size: 1392,
                fec_percent: 20,
                codec: Codec::H264,
            },
            audio: AudioParams {
                channels: 2,
                sample_rate_hz: 48_000,
                packet_duration_ms: 5,
                bitrate_kbps: 96,
            },
            keys: KeyMaterial::GameStream {
                rikey: Secret([1; 16]),
                rikeyid: 1,
            },
            ports: Ports {
                video_src: 47998,
                audio_src: 48000,
                video_dst: 0,
                audio_dst: 0,
            },
            stream: StreamOptions::default(),
        }
    }

    #[test]
    fn each_session_keeps_its_own_transport_until_it_ends() {
        let live = Live::new();
        live.session_start(&start(1));
        live.session_start(&start(2));
        let transport = |id: u64| {
            live.sessions()
                .into_iter()
                .find(|(s, _)| *s == id)
                .and_then(|(_, m)| m.transport)
        };
        assert_eq!(transport(1), None, "unknown until the data plane says");
        assert!(live.session_transport(1, "af_xdp", "queue 0"));
        assert_eq!(transport(1), Some(("af_xdp".into(), "queue 0".into())));
        assert_eq!(
            transport(2),
            None,
            "another session's event is not this one's"
        );
        // A fallback replaces it.
        assert!(live.session_transport(1, "sendmmsg", "no TX completions"));
        assert_eq!(
            transport(1),
            Some(("sendmmsg".into(), "no TX completions".into()))
        );
        // Late events for ended or unknown sessions are dropped.
        live.session_ended(1);
        assert!(!live.session_transport(1, "af_xdp", "late"));
        assert!(!live.session_transport(9, "af_xdp", "never ours"));
        assert_eq!(live.sessions().len(), 1);
        // The start-up choice is separate from every session's.
        live.transport_chosen("io_uring", "AF_XDP refused");
        assert_eq!(transport(2), None);
        live.dataplane_lost();
        assert!(live.sessions().is_empty());
    }

    #[test]
    fn rates_from_two_snapshots() {
        // Its own registry now (no process-wide one shared with other tests).
        let live = Live::new();
        let video = Registry::label_index(Metric::PacketsSent, "video").unwrap();
        let t0 = Instant::now();
        live.metrics().set_at(Metric::PacketsSent, video, 1000);
        live.metrics().set_at(Metric::BytesSent, video, 1_000_000);
        live.snapshot_absorbed(t0);
        live.metrics().set_at(Metric::PacketsSent, video, 3000);
        live.metrics().set_at(Metric::BytesSent, video, 3_500_000);
        live.snapshot_absorbed(t0 + Duration::from_secs(2));
        let (pps, kbps) = live.rates();
        assert_eq!(pps, 1000);
        // 2.5 MB in 2 s = 10 Mbit/s.
        assert_eq!(kbps, 10_000);
        live.dataplane_lost();
        assert_eq!(live.rates().0, 0);
    }

    #[test]
    fn start_up_choices_come_from_the_data_plane_and_input_stays_ours() {
        let live = Live::new();
        live.input_chosen("record", "uinput unavailable");
        live.detected("capture", "synthetic", "[video] source = \"synthetic\"");
        live.detected("encode", "nvenc", "driver API 12.2 detected");
        // A reconnected data plane reports again: the latest choice wins, no duplicate.
        live.detected("encode", "openh264", "libnvidia-encode.so.1 not found");
        let d = live.detections();
        let names: Vec<(&str, &str)> = d
            .iter()
            .map(|d| (d.subsystem.as_str(), d.choice.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("capture", "synthetic"),
                ("encode", "openh264"),
                ("input", "record")
            ]
        );
        live.dataplane_lost();
        let d = live.detections();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].subsystem, "input");
    }
}
