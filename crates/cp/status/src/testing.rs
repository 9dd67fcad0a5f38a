//! A fake control plane for tests and the demo: one running GameStream session whose counters
//! move with wall time, two paired clients, a Moonlight client waiting for its PIN, and a record
//! of every mutation so tests can check what reached the backend.

use std::sync::Mutex;
use std::time::Instant;

use strahl_metrics::{Metric, Registry};

use crate::backend::*;

/// Packets per second the fake session "sends" (≈ 20 Mbit/s of 1400-byte shards).
pub const FAKE_PACKETS_PER_S: u64 = 1800;
/// The fake session's id.
pub const FAKE_SESSION_ID: u64 = 1;
/// The fake session's client name (tests look for it in the page).
pub const FAKE_CLIENT: &str = "Living-room TV";

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
    session_running: bool,
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
        registry.set(Metric::SessionsActive, 1);
        registry.inc(Metric::SessionsStarted);
        if let Some(i) = Registry::label_index(Metric::TransportChosen, "sendmmsg") {
            registry.set_info(Metric::TransportChosen, i);
        }
        FakeBackend {
            started: Instant::now(),
            registry,
            state: Mutex::new(State {
                recorded: Recorded::default(),
                dataplane_connected: true,
                session_running: true,
                clients: vec![
                    PairedClientInfo {
                        id: "a1b2c3".into(),
                        name: FAKE_CLIENT.into(),
                        protocol: "gamestream".into(),
                    },
                    PairedClientInfo {
                        id: "d4e5f6".into(),
                        name: "Laptop".into(),
                        protocol: "native".into(),
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
        if !st.session_running {
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
        let sessions = if st.session_running {
            vec![SessionInfo {
                id: FAKE_SESSION_ID,
                client: FAKE_CLIENT.into(),
                protocol: "gamestream".into(),
                mode: "1920x1080@60 h264".into(),
                bitrate_kbps: 20_000 + wobble * 500,
                fec_percent: 20,
                fec_recovered: ms / 700,
                fec_failed: ms / 60_000,
                send_kbps: 18_000 + wobble * 400,
                pacing_rate_kbps: 36_000,
                packets_per_s: FAKE_PACKETS_PER_S + wobble * 40,
                packets_sent: ms * FAKE_PACKETS_PER_S / 1000,
                drops: ms / 30_000,
                latency_us: Some(4_200 + wobble * 150),
            }]
        } else {
            Vec::new()
        };
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
            sessions,
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

    fn stop_session(&self, id: u64) -> Result<(), BackendError> {
        let mut st = self.lock();
        if id != FAKE_SESSION_ID || !st.session_running {
            return Err(BackendError::NotFound(format!("session {id}")));
        }
        st.session_running = false;
        st.recorded.stopped.push(id);
        self.registry.set(Metric::SessionsActive, 0);
        self.registry.inc(Metric::SessionsStopped);
        Ok(())
    }

    fn request_keyframe(&self, id: u64) -> Result<(), BackendError> {
        let mut st = self.lock();
        if id != FAKE_SESSION_ID || !st.session_running {
            return Err(BackendError::NotFound(format!("session {id}")));
        }
        st.recorded.keyframes.push(id);
        Ok(())
    }
}
