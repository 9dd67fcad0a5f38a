//! The control plane's [`StatusBackend`]: what the status page, `/api/v1/*` and the operator CLI
//! see of the running `serve`.
//!
//! Contract:
//! - What the IPC loop (`serve.rs`) learns from the data plane and the session manager does not
//!   keep (its metrics, transports, the sessions it runs for us, send rates) comes from the
//!   [`Live`] that `serve` owns and hands to [`ControlBackend::new`] (contract in `live.rs`).
//!   Our own counters come from the registry `serve` hands in (the process registry).
//! - Per-session figures come from that session alone: its target bitrate (its SessionStart),
//!   its adaptive FEC %, FEC reports and ENet round-trip time (the session manager keeps them
//!   per session), its transport, and whose it is (`client_name`: the paired client's name,
//!   matched through its certificate; several clients may share an address). The data plane's
//!   send figures (send rate, packets, pacing rate, refused frames) exist only host-wide: a
//!   session row carries them only while it is the only session (they are then exactly its
//!   own) and `null` otherwise; the totals are the snapshot's `media`.
//! - [`ControlBackend::snapshot`] is cheap (a few short mutex sections and one read of the small
//!   names overlay).
//! - Mutations reuse the existing paths: a Moonlight PIN goes through [`crate::admin::submit_pin`]
//!   (the same as `strahl-control pin`); unpair goes through the GameStream paired store (which
//!   writes its file atomically); stop is the session manager's `/cancel`; keyframe is a
//!   `SessionUpdate { request_keyframe }` to the data plane. Display names given by rename live
//!   in the state dir file [`NAMES_FILE`] (written atomically), an overlay over the name the
//!   client sent while pairing, so the paired-clients file keeps its one writer.
//! - Paired-client ids are [`client_id`]: the first 16 hex digits of SHA-256 over the client's
//!   certificate PEM (stable across renames and restarts, and not secret). Native clients are
//!   listed beside them with `n-` and 16 hex digits of their certificate fingerprint; unpair
//!   removes them from the native store (atomic write) and ends their running sessions, rename
//!   uses the same names overlay.
//! - The native pairing window is the native host's own ([`HostShared::arm`]): arming here is
//!   what the QUIC endpoint's pairing path consumes (one guess per arm).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use strahl_gamestream::crypto::CertInfo;
use strahl_gamestream::{PinError, ServerHandle};
use strahl_ipc::{Message, SessionUpdate, StopReason};
use strahl_metrics::{Metric, Registry};
use strahl_native::quic::server::{HostShared, lock as native_lock};
use strahl_status::{
    BackendError, HostInfo, MediaTotals, NativeWindow, PairedClientInfo, PairingState,
    PendingPinInfo, SessionInfo, StatusBackend, StatusSnapshot,
};

use crate::control_link::ControlLink;
use crate::live::{Live, sum_all};
use crate::session::ClientKey;
use crate::shared::{Outbox, OutboxError, SharedManager, lock};

/// Display-name overlay file in the state dir (`{"<client id>": "<name>"}`).
pub const NAMES_FILE: &str = "client-names.json";
/// How long an armed native pairing window stays open (long enough to walk to the client and
/// type the PIN; short enough that a forgotten window closes by itself).
pub const NATIVE_WINDOW: Duration = Duration::from_secs(120);
/// Largest names overlay we read back (256 clients × a 64-character name fit many times).
const MAX_NAMES_FILE: u64 = 64 * 1024;

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
    /// What the IPC loop learnt from the data plane (shared with it).
    live: Arc<Live>,
    /// Our own counters (the process registry in production).
    metrics: &'static Registry,
    /// First time each waiting Moonlight client was seen (for "waiting N s").
    pin_seen: Mutex<HashMap<String, Instant>>,
    /// The native host's pairing window and paired store.
    native: Arc<HostShared>,
    /// Serialises rename's read-modify-write of the names file.
    names_lock: Mutex<()>,
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ControlBackend {
    // Each argument is a distinct handle the backend reads; a builder would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        facts: HostFacts,
        server: &Arc<ServerHandle>,
        control: &Arc<ControlLink>,
        manager: SharedManager,
        outbox: Outbox,
        live: Arc<Live>,
        metrics: &'static Registry,
        native: Arc<HostShared>,
    ) -> Self {
        ControlBackend {
            facts,
            started: Instant::now(),
            server: Arc::downgrade(server),
            control: Arc::downgrade(control),
            manager,
            outbox,
            live,
            metrics,
            pin_seen: Mutex::new(HashMap::new()),
            native,
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
        self.paired_with(&self.names())
    }

    fn paired_with(&self, names: &BTreeMap<String, String>) -> Vec<PairedClientInfo> {
        let Ok(server) = self.server() else {
            return Vec::new();
        };
        server
            .paired_clients()
            .into_iter()
            .map(|c| {
                let id = client_id(&c.cert_pem);
                let perms = c.perms();
                let name = names.get(&id).cloned().unwrap_or(c.name);
                PairedClientInfo {
                    id,
                    name,
                    protocol: "gamestream".into(),
                    permissions: Some(perms.names().into_iter().map(String::from).collect()),
                }
            })
            .chain(native_lock(&self.native.store).clients().iter().map(|c| {
                let id = c.id();
                PairedClientInfo {
                    name: names.get(&id).cloned().unwrap_or_else(|| c.name.clone()),
                    id,
                    protocol: "native".into(),
                    permissions: None,
                }
            }))
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

    /// Display names of the paired clients by the manager's key (certificate DER digest).
    fn names_by_key(&self, names: &BTreeMap<String, String>) -> Vec<(ClientKey, String)> {
        let Ok(server) = self.server() else {
            return Vec::new();
        };
        server
            .paired_clients()
            .into_iter()
            .filter_map(|c| {
                let der = CertInfo::from_pem(c.cert_pem.as_bytes()).ok()?.der;
                let name = names
                    .get(&client_id(&c.cert_pem))
                    .cloned()
                    .unwrap_or(c.name);
                Some((ClientKey::of_cert(&der), name))
            })
            .collect()
    }

    fn session_infos(
        &self,
        media: &MediaTotals,
        overlay: &BTreeMap<String, String>,
    ) -> Vec<SessionInfo> {
        let streams = lock(&self.manager).streams();
        let names = if streams.is_empty() {
            Vec::new()
        } else {
            self.names_by_key(overlay)
        };
        let sessions = self.live.sessions();
        // The data plane measures its send figures host-wide: exact for a session only while it
        // is the only one.
        let alone = sessions.len() == 1;
        let host_wide = |v: u64| alone.then_some(v);
        sessions
            .into_iter()
            .map(|(id, m)| {
                let own = streams.iter().find(|s| s.id == id);
                let (transport, transport_detail) = match m.transport {
                    Some((n, d)) => (Some(n), Some(d)),
                    None => (None, None),
                };
                let client_name = own.and_then(|s| {
                    names
                        .iter()
                        .find(|(k, _)| *k == s.client)
                        .map(|(_, n)| n.clone())
                });
                SessionInfo {
                    id,
                    client: m.client,
                    client_name,
                    protocol: m.protocol.into(),
                    mode: m.mode,
                    video: own.map(|s| strahl_status::VideoInfo {
                        codec: s.format.codec_name().into(),
                        bit_depth: s.format.bit_depth,
                        hdr: s.format.hdr,
                        encrypted: s.format.encrypted_video,
                    }),
                    bitrate_kbps: m.bitrate_kbps,
                    // Its adaptive controller's value while the manager streams it, else what
                    // the session started with.
                    fec_percent: own.map_or(m.fec_percent, |s| u32::from(s.fec_percent)),
                    fec_recovered: own.map_or(0, |s| s.fec_recovered),
                    fec_failed: own.map_or(0, |s| s.fec_lost),
                    send_kbps: host_wide(media.send_kbps),
                    pacing_rate_kbps: host_wide(media.pacing_rate_kbps),
                    packets_per_s: host_wide(media.packets_per_s),
                    packets_sent: host_wide(media.packets_sent),
                    drops: host_wide(media.drops),
                    // ENet's estimate for this session's control stream, reported every second.
                    latency_us: own
                        .and_then(|s| s.rtt)
                        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
                    transport,
                    transport_detail,
                }
            })
            .collect()
    }

    /// The data plane's send figures over all sessions.
    fn media(&self) -> MediaTotals {
        let (pps, kbps) = self.live.rates();
        let dp = self.live.metrics();
        MediaTotals {
            send_kbps: kbps,
            pacing_rate_kbps: dp.get(Metric::VideoPacingKbps),
            packets_per_s: pps,
            packets_sent: sum_all(dp, Metric::PacketsSent),
            drops: dp.get(Metric::FramesRefused),
            frames_skipped: dp.get(Metric::VideoFramesSkipped),
            audio_source: audio_source(dp),
        }
    }
}

/// The label value the data plane's `strahl_audio_source` gauge is 1 on.
fn audio_source(dp: &Registry) -> Option<String> {
    let label = strahl_metrics::TABLE[Metric::AudioSource as usize].label?;
    let i = (0..label.values.len()).find(|&i| dp.get_at(Metric::AudioSource, i) == 1)?;
    Some(label.values[i].to_owned())
}

fn pin_error(e: PinError) -> BackendError {
    BackendError::Rejected(e.to_string())
}

impl StatusBackend for ControlBackend {
    fn snapshot(&self) -> StatusSnapshot {
        let now = Instant::now();
        let media = self.media();
        let names = self.names();
        let native_window =
            native_lock(&self.native.arm)
                .peek(now)
                .map(|(pin, left)| NativeWindow {
                    pin: Some(pin.to_owned()),
                    expires_in_s: left.as_secs(),
                });
        let detected = self.live.detections();
        // What runs, once the data plane said; the configured preference until then.
        let chosen = |subsystem: &str, configured: &str| {
            detected
                .iter()
                .find(|d| d.subsystem == subsystem)
                .map_or_else(|| configured.to_owned(), |d| d.choice.clone())
        };
        StatusSnapshot {
            host: HostInfo {
                name: self.facts.name.clone(),
                version: self.facts.version.clone(),
                uptime_s: now.saturating_duration_since(self.started).as_secs(),
                encoder: chosen("encode", &self.facts.encoder),
                capture: chosen("capture", &self.facts.capture),
            },
            dataplane_connected: self.metrics.get(Metric::DataplaneConnected) == 1,
            transport: self.live.transport(),
            detected,
            sessions: self.session_infos(&media, &names),
            media,
            paired_clients: self.paired_with(&names),
            pairing: PairingState {
                moonlight_pending: self.pending(now),
                native_window,
            },
        }
    }

    fn metrics(&self) -> &Registry {
        self.metrics
    }

    fn dataplane_metrics(&self) -> Option<&Registry> {
        Some(self.live.metrics())
    }

    fn submit_pin(&self, pin: &str) -> Result<(), BackendError> {
        let server = self.server()?;
        let client = crate::admin::submit_pin(&server, pin, None).map_err(pin_error)?;
        log::info!("PIN (from the status page) delivered to client {client}");
        Ok(())
    }

    fn arm_native_pairing(&self) -> Result<String, BackendError> {
        // 64 random hex digits = 8 draws of 32 bits; rejection sampling needs one but rarely
        // two (p ≈ 1.6e-6 per draw to retry); a fresh 64 digits covers the unlucky case.
        let mut hex = strahl_status::auth::random_hex()
            .map_err(|e| BackendError::Unavailable(e.to_string()))?;
        let mut draws = 0;
        let pin = strahl_native::arm::pin_from_random(|| {
            if draws == 8 {
                hex = strahl_status::auth::random_hex().unwrap_or_default();
                draws = 0;
            }
            let at = draws * 8;
            draws += 1;
            hex.get(at..at + 8)
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .unwrap_or(u32::MAX)
        });
        native_lock(&self.native.arm).arm(pin.clone(), Instant::now(), NATIVE_WINDOW);
        log::info!(
            "native pairing window armed for {} s",
            NATIVE_WINDOW.as_secs()
        );
        Ok(pin)
    }

    fn unpair(&self, id: &str) -> Result<(), BackendError> {
        if id.starts_with("n-") {
            // Also ends the client's running sessions (revoked at once).
            let gone = self
                .native
                .unpair(id)
                .map_err(|e| BackendError::Unavailable(e.to_string()))?;
            let Some(c) = gone else {
                return Err(BackendError::NotFound(format!("no paired client {id}")));
            };
            log::info!("unpaired native client {id} ({})", c.name);
            return Ok(());
        }
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

    fn set_permissions(&self, id: &str, permissions: &str) -> Result<(), BackendError> {
        let perms = strahl_gamestream::Permissions::parse(permissions)
            .map_err(|e| BackendError::Rejected(e.to_string()))?;
        let server = self.server()?;
        let Some(c) = server
            .paired_clients()
            .into_iter()
            .find(|c| client_id(&c.cert_pem) == id)
        else {
            return Err(BackendError::NotFound(format!(
                "no GameStream client {id} (native clients have no permissions)"
            )));
        };
        server
            .set_permissions(&c.cert_pem, perms)
            .map_err(|e| BackendError::Unavailable(e.to_string()))?;
        log::info!("permissions of client {id} ({}) set to {perms}", c.name);
        Ok(())
    }

    fn stop_session(&self, id: u64) -> Result<(), BackendError> {
        if !self.live.has_session(id) {
            return Err(BackendError::NotFound(format!("no session {id}")));
        }
        let link = self.control.upgrade().ok_or_else(|| {
            BackendError::Unavailable("the control plane is shutting down".into())
        })?;
        // The session's client's app is cancelled (as its /cancel would); other sessions go on.
        let actions = lock(&self.manager).cancel_session(id);
        match actions {
            Some(a) => crate::control_link::dispatch(&link, &self.outbox, a),
            // The manager no longer streams it (its control stream ended) but the data plane
            // still runs it: stop it there.
            // Full: logged and counted by the outbox; closed: shutting down anyway.
            None => {
                let _ = self
                    .outbox
                    .send(Message::SessionStop(strahl_ipc::SessionStop {
                        id,
                        reason: StopReason::ClientQuit,
                    }));
            }
        }
        log::info!("session {id} stopped from the status page");
        Ok(())
    }

    fn request_keyframe(&self, id: u64) -> Result<(), BackendError> {
        if !self.live.has_session(id) {
            return Err(BackendError::NotFound(format!("no session {id}")));
        }
        if self.metrics.get(Metric::DataplaneConnected) != 1 {
            return Err(BackendError::Unavailable("data plane disconnected".into()));
        }
        self.outbox
            .send(Message::SessionUpdate(SessionUpdate {
                id,
                bitrate_kbps: None,
                fec_percent: None,
                request_keyframe: true,
            }))
            .map_err(|e: OutboxError| BackendError::Unavailable(e.to_string()))
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
}
