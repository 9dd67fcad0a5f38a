//! A fake control plane for tests and the demo: two running GameStream sessions (one whose
//! transport the data plane has reported, one not yet) whose counters move with wall time, two
//! paired clients, a Moonlight client waiting for its PIN, and a record of every mutation so
//! tests can check what reached the backend.

use std::sync::Mutex;
use std::time::Instant;

use strahl_metrics::{Metric, Registry};

use crate::backend::*;

/// Packets per second the fake session "sends" (≈ 20 Mbit/s of 1400-byte shards).
pub const FAKE_PACKETS_PER_S: u64 = 1800;
/// The fake session's id.
pub const FAKE_SESSION_ID: u64 = 1;
/// The fake session's paired-client name (tests look for it in the page).
pub const FAKE_CLIENT: &str = "Living-room TV";
/// The fake session's transport, as the data plane reported it for that session.
pub const FAKE_TRANSPORT: &str = "af_xdp";
/// The fake host's start-up choices: (subsystem, choice, reason).
pub const FAKE_DETECTED: [(&str, &str, &str); 4] = [
    (
        "capture",
        "synthetic",
        "kms requested, but no capture helper (fake backend)",
    ),
    (
        "encode",
        "openh264",
        "libnvidia-encode.so.1 not found (fake backend)",
    ),
    (
        "audio",
        "tone",
        "test tone: PipeWire unavailable (fake backend)",
    ),
    ("input", "record", "uinput unavailable (fake backend)"),
];
/// The second fake session (its transport is not reported yet).
pub const FAKE_SECOND_SESSION_ID: u64 = 2;
pub const FAKE_SECOND_CLIENT: &str = "Laptop";

/// Mutations the fake backend received, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    pub pins: Vec<String>,
    pub armed: u32,
    pub unpaired: Vec<String>,
    pub renamed: Vec<(String, String)>,
    pub stopped: Vec<u64>,
    pub keyframes: Vec<u64>,
}

struct State {
    recorded: Recorded,
    dataplane_connected: bool,
    /// Ids of the fake sessions still running.
    running: Vec<u64>,
    clients: Vec<PairedClientInfo>,
    pin_pending: bool,
    native_pin: Option<String>,
    last_packets: u64,
}

pub struct FakeBackend {
    started: Instant,
    registry: Registry,
    state: Mutex<State>,
}

impl Default for FakeBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeBackend {
    pub fn new() -> FakeBackend {
        let registry = Registry::new();
        registry.set(Metric::DataplaneConnected, 1);
        registry.set(Metric::SessionsActive, 2);
        registry.add(Metric::SessionsStarted, 2);
        if let Some(i) = Registry::label_index(Metric::TransportChosen, "sendmmsg") {
            registry.set_info(Metric::TransportChosen, i);
        }
        FakeBackend {
            started: Instant::now(),
            registry,
            state: Mutex::new(State {
                recorded: Recorded::default(),
                dataplane_connected: true,
                running: vec![FAKE_SESSION_ID, FAKE_SECOND_SESSION_ID],
                clients: vec![
                    PairedClientInfo {
                        id: "a1b2c3".into(),
                        name: FAKE_CLIENT.into(),
                        protocol: "gamestream".into(),
                        permissions: Some(vec!["view".into(), "list".into()]),
                    },
                    PairedClientInfo {
                        id: "d4e5f6".into(),
                        name: "Laptop".into(),
                        protocol: "native".into(),
                        permissions: None,
                    },
                ],
                pin_pending: true,
                native_pin: None,
                last_packets: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn recorded(&self) -> Recorded {
        self.lock().recorded.clone()
    }

    pub fn set_dataplane_connected(&self, up: bool) {
        self.lock().dataplane_connected = up;
        self.registry.set(Metric::DataplaneConnected, up as u64);
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Moves the registry's packet counters up to the current fake total.
    fn sync_counters(&self) {
        let mut st = self.lock();
        if st.running.is_empty() {
            return;
        }
        let total = self.elapsed_ms() * FAKE_PACKETS_PER_S / 1000;
        let delta = total.saturating_sub(st.last_packets);
        st.last_packets = total;
        self.registry.add(Metric::PacketsSent, delta);
        self.registry.add(Metric::BytesSent, delta * 1400);
    }
}

impl StatusBackend for FakeBackend {
    fn snapshot(&self) -> StatusSnapshot {
        self.sync_counters();
        let ms = self.elapsed_ms();
        let st = self.lock();
        // A slow wobble so the page's charts visibly move.
        let wobble = (ms / 1000) % 10;
        let media = MediaTotals {
            send_kbps: 18_000 + wobble * 400,
            pacing_rate_kbps: 36_000,
            packets_per_s: FAKE_PACKETS_PER_S + wobble * 40,
            packets_sent: ms * FAKE_PACKETS_PER_S / 1000,
            drops: ms / 30_000,
            frames_skipped: ms / 10_000,
            audio_source: Some("tone".into()),
        };
        // The data plane's send figures are host-wide: a row carries them only while it is the
        // only session (as the real backend does).
        let alone = st.running.len() == 1;
        let host_wide = |v: u64| alone.then_some(v);
        let sessions = st
            .running
            .iter()
            .map(|&id| {
                let first = id == FAKE_SESSION_ID;
                SessionInfo {
                    id,
                    client: if first {
                        "192.168.1.20"
                    } else {
                        "192.168.1.31"
                    }
                    .into(),
                    client_name: Some(
                        if first {
                            FAKE_CLIENT
                        } else {
                            FAKE_SECOND_CLIENT
                        }
                        .into(),
                    ),
                    protocol: "gamestream".into(),
                    mode: if first {
                        "1920x1080@60 h264"
                    } else {
                        "1280x720@120 h264"
                    }
                    .into(),
                    video: Some(VideoInfo {
                        codec: if first { "HEVC" } else { "H.264" }.into(),
                        bit_depth: if first { 10 } else { 8 },
                        hdr: first,
                        encrypted: first,
                    }),
                    bitrate_kbps: if first { 20_000 + wobble * 500 } else { 50_000 },
                    fec_percent: if first { 20 } else { 35 },
                    fec_recovered: if first { ms / 700 } else { ms / 300 },
                    fec_failed: if first { ms / 60_000 } else { ms / 20_000 },
                    send_kbps: host_wide(media.send_kbps),
                    pacing_rate_kbps: host_wide(media.pacing_rate_kbps),
                    packets_per_s: host_wide(media.packets_per_s),
                    packets_sent: host_wide(media.packets_sent),
                    drops: host_wide(media.drops),
                    latency_us: Some(if first { 4_200 + wobble * 150 } else { 9_800 }),
                    transport: first.then(|| FAKE_TRANSPORT.into()),
                    transport_detail: first
                        .then(|| "AF_XDP copy mode on queue 0 (fake backend)".into()),
                }
            })
            .collect();
        StatusSnapshot {
            host: HostInfo {
                name: "strahl-demo".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                uptime_s: ms / 1000,
                encoder: "openh264 (fake)".into(),
                capture: "synthetic 1920x1080".into(),
            },
            dataplane_connected: st.dataplane_connected,
            transport: Some(TransportInfo {
                name: "sendmmsg".into(),
                reason: "AF_XDP unavailable (fake backend); io_uring self-test skipped".into(),
            }),
            detected: FAKE_DETECTED
                .iter()
                .map(|(subsystem, choice, reason)| DetectedInfo {
                    subsystem: (*subsystem).into(),
                    choice: (*choice).into(),
                    reason: (*reason).into(),
                })
                .collect(),
            sessions,
            media,
            paired_clients: st.clients.clone(),
            pairing: PairingState {
                moonlight_pending: if st.pin_pending {
                    vec![PendingPinInfo {
                        client: "Steam Deck".into(),
                        waiting_s: (ms / 1000) % 60,
                    }]
                } else {
                    Vec::new()
                },
                native_window: st.native_pin.as_ref().map(|p| NativeWindow {
                    pin: Some(p.clone()),
                    expires_in_s: 120,
                }),
            },
        }
    }

    fn metrics(&self) -> &Registry {
        self.sync_counters();
        &self.registry
    }

    fn submit_pin(&self, pin: &str) -> Result<(), BackendError> {
        let mut st = self.lock();
        st.recorded.pins.push(pin.into());
        if !st.pin_pending {
            return Err(BackendError::Rejected(
                "no Moonlight client is waiting for a PIN".into(),
            ));
        }
        st.pin_pending = false;
        Ok(())
    }

    fn arm_native_pairing(&self) -> Result<String, BackendError> {
        let mut st = self.lock();
        st.recorded.armed += 1;
        // Deterministic but different per arming; a real backend draws it from the OS RNG.
        let pin = format!("{:04}", (4821 + st.recorded.armed * 1337) % 10_000);
        st.native_pin = Some(pin.clone());
        Ok(pin)
    }

    fn unpair(&self, id: &str) -> Result<(), BackendError> {
        let mut st = self.lock();
        let before = st.clients.len();
        st.clients.retain(|c| c.id != id);
        if st.clients.len() == before {
            return Err(BackendError::NotFound(format!("client {id}")));
        }
        st.recorded.unpaired.push(id.into());
        Ok(())
    }

    fn rename(&self, id: &str, name: &str) -> Result<(), BackendError> {
        let mut st = self.lock();
        let Some(c) = st.clients.iter_mut().find(|c| c.id == id) else {
            return Err(BackendError::NotFound(format!("client {id}")));
        };
        c.name = name.into();
        st.recorded.renamed.push((id.into(), name.into()));
        Ok(())
    }

    fn set_permissions(&self, id: &str, permissions: &str) -> Result<(), BackendError> {
        const KNOWN: [&str; 10] = [
            "view",
            "list",
            "launch",
            "keyboard",
            "mouse",
            "controller",
            "touch",
            "pen",
            "clipboard-read",
            "clipboard-set",
        ];
        let names: Vec<String> = match permissions.trim() {
            "all" => KNOWN.iter().map(|n| n.to_string()).collect(),
            "none" | "" => Vec::new(),
            list => list.split(',').map(|n| n.trim().to_string()).collect(),
        };
        if let Some(bad) = names.iter().find(|n| !KNOWN.contains(&n.as_str())) {
            return Err(BackendError::Rejected(format!(
                "unknown permission {bad:?}"
            )));
        }
        let mut st = self.lock();
        let Some(c) = st.clients.iter_mut().find(|c| c.id == id) else {
            return Err(BackendError::NotFound(format!("client {id}")));
        };
        c.permissions = Some(names);
        Ok(())
    }

    fn stop_session(&self, id: u64) -> Result<(), BackendError> {
        let mut st = self.lock();
        if !st.running.contains(&id) {
            return Err(BackendError::NotFound(format!("session {id}")));
        }
        st.running.retain(|&r| r != id);
        st.recorded.stopped.push(id);
        self.registry
            .set(Metric::SessionsActive, st.running.len() as u64);
        self.registry.inc(Metric::SessionsStopped);
        Ok(())
    }

    fn request_keyframe(&self, id: u64) -> Result<(), BackendError> {
        let mut st = self.lock();
        if !st.running.contains(&id) {
            return Err(BackendError::NotFound(format!("session {id}")));
        }
        st.recorded.keyframes.push(id);
        Ok(())
    }
}
