//! The control plane's [`StatusBackend`]: what the status page, `/api/v1/*` and the operator CLI
//! see of the running `serve`.
//!
//! Contract:
//! - [`LIVE`] is the one place the IPC loop (`serve.rs`) records what the status needs and the
//!   session manager does not keep: the data plane's transport choice (its `TransportChosen`
//!   event), the sessions we asked it to start (from the `SessionStart` we sent, until its
//!   `SessionEnded` or its loss), and send rates computed between two stats snapshots. It is a
//!   process-wide static like [`DATAPLANE_METRICS`] (one `serve` per process).
//! - [`ControlBackend::snapshot`] is cheap (a few short mutex sections, no I/O).
//! - Mutations reuse the existing paths: a Moonlight PIN goes through [`crate::admin::submit_pin`]
//!   (the same as `strahl-control pin`); unpair goes through the GameStream paired store (which
//!   writes its file atomically); stop is the session manager's `/cancel`; keyframe is a
//!   `SessionUpdate { request_keyframe }` to the data plane. Display names given by rename live
//!   in the state dir file [`NAMES_FILE`] (written atomically), an overlay over the name the
//!   client sent while pairing, so the paired-clients file keeps its one writer.
//! - Paired-client ids are [`client_id`]: the first 16 hex digits of SHA-256 over the client's
//!   certificate PEM (stable across renames and restarts, and not secret).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use strahl_gamestream::{PinError, ServerHandle};
use strahl_ipc::{Message, Protocol, SessionStart, SessionUpdate};
use strahl_metrics::{GLOBAL, Metric, Registry};
use strahl_status::{
    BackendError, HostInfo, NativeWindow, PairedClientInfo, PairingState, PendingPinInfo,
    SessionInfo, StatusBackend, StatusSnapshot, TransportInfo,
};

use crate::control_link::ControlLink;
use crate::host::{Outbox, SharedManager, lock};
use crate::serve::DATAPLANE_METRICS;

/// Display-name overlay file in the state dir (`{"<client id>": "<name>"}`).
pub const NAMES_FILE: &str = "client-names.json";
/// How long an armed native pairing window stays open (long enough to walk to the client and
/// type the PIN; short enough that a forgotten window closes by itself).
pub const NATIVE_WINDOW: Duration = Duration::from_secs(120);
/// Largest names overlay we read back (256 clients × a 64-character name fit many times).
const MAX_NAMES_FILE: u64 = 64 * 1024;

/// A session the data plane was asked to run (from our `SessionStart`).
#[derive(Debug, Clone, PartialEq)]
struct SessionMeta {
    client: String,
    protocol: &'static str,
    mode: String,
    bitrate_kbps: u64,
    fec_percent: u32,
}

#[derive(Debug, Default)]
struct LiveInner {
    transport: Option<TransportInfo>,
    sessions: BTreeMap<u64, SessionMeta>,
    /// (when, packets, bytes) of the previous snapshot.
    last_sample: Option<(Instant, u64, u64)>,
    packets_per_s: u64,
    send_kbps: u64,
}

/// See the module contract.
#[derive(Debug)]
pub struct Live {
    inner: Mutex<Option<LiveInner>>,
}

/// The process's live state, fed by the IPC loop.
pub static LIVE: Live = Live {
    inner: Mutex::new(None),
};

impl Live {
    fn with<R>(&self, f: impl FnOnce(&mut LiveInner) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(g.get_or_insert_with(LiveInner::default))
    }

    /// The data plane's `TransportChosen` event (host-wide, id 0).
    pub fn transport_chosen(&self, name: &str, reason: &str) {
        self.with(|l| {
            l.transport = Some(TransportInfo {
                name: name.to_string(),
                reason: reason.to_string(),
            })
        });
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
        };
        self.with(|l| l.sessions.insert(s.id, meta));
    }

    /// The data plane ended session `id`.
    pub fn session_ended(&self, id: u64) {
        self.with(|l| l.sessions.remove(&id));
    }

    /// The data plane went away: its sessions and rates are gone, its transport is unknown.
    pub fn dataplane_lost(&self) {
        self.with(|l| *l = LiveInner::default());
    }

    /// A stats snapshot was absorbed into [`DATAPLANE_METRICS`] at `now`: update the rates.
    pub fn snapshot_absorbed(&self, now: Instant) {
        let packets = sum_all(&DATAPLANE_METRICS, Metric::PacketsSent);
        let bytes = sum_all(&DATAPLANE_METRICS, Metric::BytesSent);
        self.with(|l| {
            if let Some((t, p, b)) = l.last_sample {
                let dt = now.saturating_duration_since(t).as_secs_f64();
                if dt > 0.0 {
                    l.packets_per_s = (packets.saturating_sub(p) as f64 / dt) as u64;
                    l.send_kbps = (bytes.saturating_sub(b) as f64 * 8.0 / 1000.0 / dt) as u64;
                }
            }
            l.last_sample = Some((now, packets, bytes));
        });
    }

    fn sessions(&self) -> Vec<(u64, SessionMeta)> {
        self.with(|l| l.sessions.iter().map(|(k, v)| (*k, v.clone())).collect())
    }
}

fn sum_all(reg: &Registry, m: Metric) -> u64 {
    let n = strahl_metrics::TABLE[m as usize].series_count();
    (0..n).map(|i| reg.get_at(m, i)).sum()
}

/// A labelled series summed over both processes (whichever counts it).
fn both(m: Metric, label: &str) -> u64 {
    Registry::label_index(m, label)
        .map(|i| GLOBAL.get_at(m, i) + DATAPLANE_METRICS.get_at(m, i))
        .unwrap_or(0)
}

/// Stable, non-secret id of a paired client: 16 hex digits of SHA-256(cert PEM).
pub fn client_id(cert_pem: &str) -> String {
    let d = Sha256::digest(cert_pem.as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Static facts for the host block.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub name: String,
    pub version: String,
    pub encoder: String,
    pub capture: String,
    pub state_dir: PathBuf,
}

/// See the module contract.
pub struct ControlBackend {
    facts: HostFacts,
    started: Instant,
    /// Weak: the host's shutdown unwraps its `Arc<ServerHandle>`; the status server may still
    /// be dropping its connection tasks then.
    server: Weak<ServerHandle>,
    /// The ENet control server (weak for the same reason): stopping a session terminates the
    /// client's control stream before the data plane stops sending.
    control: Weak<ControlLink>,
    manager: SharedManager,
    outbox: Outbox,
    /// First time each waiting Moonlight client was seen (for "waiting N s").
    pin_seen: Mutex<HashMap<String, Instant>>,
    native: Mutex<Option<(String, Instant)>>,
    /// Serialises rename's read-modify-write of the names file.
    names_lock: Mutex<()>,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ControlBackend {
    pub fn new(
        facts: HostFacts,
        server: &Arc<ServerHandle>,
        control: &Arc<ControlLink>,
        manager: SharedManager,
        outbox: Outbox,
    ) -> Self {
        ControlBackend {
            facts,
            started: Instant::now(),
            server: Arc::downgrade(server),
            control: Arc::downgrade(control),
            manager,
            outbox,
            pin_seen: Mutex::new(HashMap::new()),
            native: Mutex::new(None),
            names_lock: Mutex::new(()),
        }
    }

    fn server(&self) -> Result<Arc<ServerHandle>, BackendError> {
        self.server
            .upgrade()
            .ok_or_else(|| BackendError::Unavailable("the GameStream host is shutting down".into()))
    }

    fn names_path(&self) -> PathBuf {
        self.facts.state_dir.join(NAMES_FILE)
    }

    /// The names overlay; a missing, oversized or corrupt file reads as empty (names fall back
    /// to what the clients sent; nothing is lost but cosmetics).
    fn names(&self) -> BTreeMap<String, String> {
        use std::io::Read;
        let Ok(f) = std::fs::File::open(self.names_path()) else {
            return BTreeMap::new();
        };
        let mut s = String::new();
        if f.take(MAX_NAMES_FILE).read_to_string(&mut s).is_err() {
            return BTreeMap::new();
        }
        serde_json::from_str(&s).unwrap_or_default()
    }

    fn paired(&self) -> Vec<PairedClientInfo> {
        let names = self.names();
        let Ok(server) = self.server() else {
            return Vec::new();
        };
        server
            .paired_clients()
            .into_iter()
            .map(|c| {
                let id = client_id(&c.cert_pem);
                let name = names.get(&id).cloned().unwrap_or(c.name);
                PairedClientInfo {
                    id,
                    name,
                    protocol: "gamestream".into(),
                }
            })
            .collect()
    }

    fn pending(&self, now: Instant) -> Vec<PendingPinInfo> {
        let pending = self.server().map(|s| s.pending_pins()).unwrap_or_default();
        let mut seen = guard(&self.pin_seen);
        seen.retain(|k, _| pending.iter().any(|p| &p.uniqueid == k));
        pending
            .into_iter()
            .map(|p| {
                let t = *seen.entry(p.uniqueid.clone()).or_insert(now);
                PendingPinInfo {
                    client: format!("{} ({})", p.device_name, p.uniqueid),
                    waiting_s: now.saturating_duration_since(t).as_secs(),
                }
            })
            .collect()
    }

    fn session_infos(&self) -> Vec<SessionInfo> {
        let (pps, kbps) = LIVE.with(|l| (l.packets_per_s, l.send_kbps));
        let packets = sum_all(&DATAPLANE_METRICS, Metric::PacketsSent);
        let adaptive_fec = GLOBAL.get(Metric::ControlFecPercent);
        LIVE.sessions()
            .into_iter()
            .map(|(id, m)| SessionInfo {
                id,
                client: m.client,
                protocol: m.protocol.into(),
                mode: m.mode,
                bitrate_kbps: m.bitrate_kbps,
                // The adaptive controller's value once it runs, else what the session started with.
                fec_percent: if adaptive_fec > 0 {
                    adaptive_fec as u32
                } else {
                    m.fec_percent
                },
                fec_recovered: both(Metric::ControlFecReports, "recovered"),
                fec_failed: both(Metric::ControlFecReports, "lost"),
                // Measured send rate between the last two stats snapshots (host-wide: one
                // GameStream session runs at a time), and the pacer's rate for the latest frame.
                send_kbps: kbps,
                pacing_rate_kbps: DATAPLANE_METRICS.get(Metric::VideoPacingKbps),
                packets_per_s: pps,
                packets_sent: packets,
                drops: DATAPLANE_METRICS.get(Metric::FramesRefused),
                // ENet's estimate, reported every second while the control stream is up.
                latency_us: Some(GLOBAL.get(Metric::ControlRttMicros)).filter(|&us| us > 0),
            })
            .collect()
    }
}

fn pin_error(e: PinError) -> BackendError {
    BackendError::Rejected(e.to_string())
}

impl StatusBackend for ControlBackend {
    fn snapshot(&self) -> StatusSnapshot {
        let now = Instant::now();
        let native_window = {
            let mut w = guard(&self.native);
            if w.as_ref().is_some_and(|(_, until)| *until <= now) {
                *w = None;
            }
            w.as_ref().map(|(pin, until)| NativeWindow {
                pin: Some(pin.clone()),
                expires_in_s: until.saturating_duration_since(now).as_secs(),
            })
        };
        StatusSnapshot {
            host: HostInfo {
                name: self.facts.name.clone(),
                version: self.facts.version.clone(),
                uptime_s: now.saturating_duration_since(self.started).as_secs(),
                encoder: self.facts.encoder.clone(),
                capture: self.facts.capture.clone(),
            },
            dataplane_connected: GLOBAL.get(Metric::DataplaneConnected) == 1,
            transport: LIVE.with(|l| l.transport.clone()),
            sessions: self.session_infos(),
            paired_clients: self.paired(),
            pairing: PairingState {
                moonlight_pending: self.pending(now),
                native_window,
            },
        }
    }

    fn metrics(&self) -> &Registry {
        &GLOBAL
    }

    fn dataplane_metrics(&self) -> Option<&Registry> {
        Some(&DATAPLANE_METRICS)
    }

    fn submit_pin(&self, pin: &str) -> Result<(), BackendError> {
        let server = self.server()?;
        let client = crate::admin::submit_pin(&server, pin, None).map_err(pin_error)?;
        log::info!("PIN (from the status page) delivered to client {client}");
        Ok(())
    }

    fn arm_native_pairing(&self) -> Result<String, BackendError> {
        let hex = strahl_status::auth::random_hex()
            .map_err(|e| BackendError::Unavailable(e.to_string()))?;
        // 64 random hex digits → a uniform-enough 4-digit PIN (bias < 10^4 / 2^32).
        let n = u32::from_str_radix(&hex[..8], 16).unwrap_or(0) % 10_000;
        let pin = format!("{n:04}");
        *guard(&self.native) = Some((pin.clone(), Instant::now() + NATIVE_WINDOW));
        log::info!(
            "native pairing window armed for {} s",
            NATIVE_WINDOW.as_secs()
        );
        Ok(pin)
    }

    fn unpair(&self, id: &str) -> Result<(), BackendError> {
        let server = self.server()?;
        let Some(c) = server
            .paired_clients()
            .into_iter()
            .find(|c| client_id(&c.cert_pem) == id)
        else {
            return Err(BackendError::NotFound(format!("no paired client {id}")));
        };
        server
            .unpair(&c.cert_pem)
            .map_err(|e| BackendError::Unavailable(e.to_string()))?;
        log::info!("unpaired client {id} ({})", c.name);
        Ok(())
    }

    fn rename(&self, id: &str, name: &str) -> Result<(), BackendError> {
        if !self.paired().iter().any(|c| c.id == id) {
            return Err(BackendError::NotFound(format!("no paired client {id}")));
        }
        let _g = guard(&self.names_lock);
        let mut names = self.names();
        names.insert(id.to_string(), name.to_string());
        let text =
            serde_json::to_vec_pretty(&names).map_err(|e| BackendError::Rejected(e.to_string()))?;
        strahl_status::write_atomic(&self.names_path(), &text, 0o600)
            .map_err(|e| BackendError::Unavailable(format!("{NAMES_FILE}: {e}")))?;
        Ok(())
    }

    fn stop_session(&self, id: u64) -> Result<(), BackendError> {
        if !LIVE.sessions().iter().any(|(s, _)| *s == id) {
            return Err(BackendError::NotFound(format!("no session {id}")));
        }
        let link = self.control.upgrade().ok_or_else(|| {
            BackendError::Unavailable("the control plane is shutting down".into())
        })?;
        let actions = lock(&self.manager).cancel();
        crate::control_link::dispatch(&link, &self.outbox, actions);
        Ok(())
    }

    fn request_keyframe(&self, id: u64) -> Result<(), BackendError> {
        if !LIVE.sessions().iter().any(|(s, _)| *s == id) {
            return Err(BackendError::NotFound(format!("no session {id}")));
        }
        if GLOBAL.get(Metric::DataplaneConnected) != 1 {
            return Err(BackendError::Unavailable("data plane disconnected".into()));
        }
        self.outbox
            .send(Message::SessionUpdate(SessionUpdate {
                id,
                bitrate_kbps: None,
                fec_percent: None,
                request_keyframe: true,
            }))
            .map_err(|_| BackendError::Unavailable("control loop stopped".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_is_stable_and_short() {
        let a = client_id("-----BEGIN CERTIFICATE-----\nAAAA\n");
        assert_eq!(a.len(), 16);
        assert_eq!(a, client_id("-----BEGIN CERTIFICATE-----\nAAAA\n"));
        assert_ne!(a, client_id("-----BEGIN CERTIFICATE-----\nAAAB\n"));
    }

    #[test]
    fn rates_from_two_snapshots() {
        let live = Live {
            inner: Mutex::new(None),
        };
        // Uses the process-wide DATAPLANE_METRICS; only this test touches PacketsSent here.
        let video = Registry::label_index(Metric::PacketsSent, "video").unwrap();
        let t0 = Instant::now();
        DATAPLANE_METRICS.set_at(Metric::PacketsSent, video, 1000);
        DATAPLANE_METRICS.set_at(Metric::BytesSent, video, 1_000_000);
        live.snapshot_absorbed(t0);
        DATAPLANE_METRICS.set_at(Metric::PacketsSent, video, 3000);
        DATAPLANE_METRICS.set_at(Metric::BytesSent, video, 3_500_000);
        live.snapshot_absorbed(t0 + Duration::from_secs(2));
        let (pps, kbps) = live.with(|l| (l.packets_per_s, l.send_kbps));
        assert_eq!(pps, 1000);
        // 2.5 MB in 2 s = 10 Mbit/s.
        assert_eq!(kbps, 10_000);
        live.dataplane_lost();
        assert_eq!(live.with(|l| l.packets_per_s), 0);
    }
}
