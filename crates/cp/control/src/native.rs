//! The native `strahl/1` host inside `strahl-control`: the quinn endpoint on UDP `native_port`
//! (`[network] native_port`, 47900), the pairing window and the paired native clients, and the
//! seam to the data plane.
//!
//! Contract:
//! - The endpoint presents the host's long-lived certificate — the GameStream host identity in
//!   the state dir (`host-cert.pem`/`host-key.pem`), so a box has one identity for both
//!   protocols. ALPN `strahl/1`, pinned mutual TLS for paired clients, the pairing path for
//!   the others (all in `strahl-native`).
//! - The pairing window ([`strahl_native::arm::ArmWindow`]) and the paired store live in one
//!   [`HostShared`], shared with the status backend: `strahl-control pair`, the page's button
//!   and `POST /api/v1/pair/arm` arm this window; the status page lists the stored clients and
//!   unpair removes them (`status_backend.rs`).
//! - A bind failure is not fatal (GameStream and the page still work); it is logged with the
//!   port, like the status page's.
//! - The seam to the data plane is [`NativeSessions`], the quinn shell's `SessionSink`. A
//!   started session becomes an IPC `SessionStart` ([`session_start`]: protocol native, only the
//!   host→client exporter secret, the client's media address, the GameStream video port as the
//!   source port) queued on the same bounded [`Outbox`] as GameStream's; the data plane streams
//!   it through its tx tile. A full outbox refuses the session `busy`, a closed one `internal`.
//!   The session's end (the client's stop, a vanished client, unpair) is a `SessionStop`.
//! - A client that chose the passthrough codec (codec bit 8) gets the data plane's pattern
//!   source (IPC `StreamOptions::CHECKABLE`): checkable frames of `bitrate / 8 / fps` bytes at
//!   the session's rate — "passthrough at any rate" for pushing the network path; the bitrate
//!   stays bounded by `[video] max_bitrate_kbps` (up to 10 Gbit/s). H.264 sessions get the
//!   configured source and encoder.
//! - Mid-stream: each loss report goes through the session's [`NativeFec`] (bounded to the
//!   policy's `fec_range`, `[video] fec_percent_min..max`) and then its [`NativePace`] (the
//!   pacing ceiling, never below what sends a frame in half its interval); a change of either
//!   is one IPC message (`SessionUpdate` with the FEC %, `SessionPace` with the ceiling). A
//!   keyframe request is a `SessionUpdate` with `request_keyframe` (the encoder's next frame is
//!   an IDR).
//! - A reconfigure (a new epoch: bitrate, FEC %, mode) is one IPC `SessionReconfigure` with the
//!   epoch's whole configuration; the data plane applies it at a frame boundary and answers
//!   with the `Reconfigured` event naming the epoch's first frame ([`NativeSessions::reconfigured`],
//!   fed by the IPC receive loop), which completes the [`FirstFrame`] the QUIC shell awaits
//!   (bounded there) before it sends the client `reconfigured`. An answer for another epoch or
//!   session completes nothing; a newer reconfigure replaces an unanswered one (its waiter
//!   fails). A full outbox refuses the reconfigure `busy`.
//! - A session the data plane ends by itself (refused at start, its media failed: IPC
//!   `SessionError` / `SessionEnded` for a running native id) is forgotten here and its
//!   connection sends the client `stop error` and closes ([`NativeHost::ended`]), so the client
//!   does not wait for media that will not come.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use strahl_gamestream::HostIdentity;
use strahl_ipc::{Message, SessionPace, SessionReconfigure, SessionStop, SessionUpdate};
use strahl_native::host::{EpochChange, HostPolicy};
use strahl_native::msg::{LossReport, Reason, StopReason, codec};
use strahl_native::pairing::fingerprint;
use strahl_native::quic::server::{FirstFrame, HostShared, NativeSession, SessionSink, lock};
use strahl_native::store::PairedStore;

use crate::native_fec::NativeFec;
use crate::native_pace::{NativePace, PaceChange, wire_kbps};
use crate::shared::{Outbox, OutboxError};

/// Where and with what limits the native endpoint runs.
#[derive(Debug, Clone)]
pub struct NativeOptions {
    pub addr: SocketAddr,
    pub policy: HostPolicy,
}

/// Bytes of a `strahl/1` datagram that are not shard: prefix 4 + sealed header 24 + GCM tag 16
/// (`docs/strahl1-wire.md` §Layout; `strahl_packetize::native::OVERHEAD`, which a cp crate may
/// not depend on).
pub const STRAHL1_OVERHEAD: u16 = 4 + 24 + 16;
/// IPv4 + UDP headers: the data plane sizes its transport frames for IPv4 (`mtu − 28`).
const IPV4_UDP: u16 = 28;
/// The largest shard a jumbo (9000 B) frame carries.
pub const MAX_SHARD_LEN: u16 = 8908;

/// The largest (even) shard whose datagram fits the data plane's `[dataplane] mtu`: a client
/// asking for more (its own MTU, a jumbo path) gets this in its welcome, so the data plane never
/// refuses the session for a datagram it cannot send.
pub fn max_shard_len_for_mtu(mtu: u16) -> u16 {
    (mtu.saturating_sub(IPV4_UDP + STRAHL1_OVERHEAD) & !1).clamp(64, MAX_SHARD_LEN)
}

impl NativeOptions {
    /// The policy from the video settings (FEC bounds and default, bitrate cap) and the data
    /// plane's MTU (the largest shard).
    pub fn new(addr: SocketAddr, fec: (u8, u8, u8), max_bitrate_kbps: u64, mtu: u16) -> Self {
        let (min, default, max) = fec;
        NativeOptions {
            addr,
            policy: HostPolicy {
                codecs: codec::H264 | codec::PASSTHROUGH,
                max_bitrate_kbps,
                max_shard_len: max_shard_len_for_mtu(mtu),
                fec_percent: default,
                fec_range: (min, max),
            },
        }
    }
}

/// The running native host.
pub struct NativeHost {
    pub shared: Arc<HostShared>,
    pub sessions: Arc<NativeSessions>,
    endpoint: Option<strahl_native::quic::quinn::Endpoint>,
}

impl NativeHost {
    /// Loads the paired store and the host identity, then binds (see the module contract).
    /// Sessions go to the data plane through `outbox`, from `video_port`. Errors only for state
    /// that cannot be read (a corrupt store is not papered over).
    pub fn start(
        opts: &NativeOptions,
        state_dir: &Path,
        outbox: Outbox,
        video_port: u16,
    ) -> Result<NativeHost, String> {
        let store = PairedStore::load(state_dir).map_err(|e| e.to_string())?;
        let identity = HostIdentity::load_or_create(state_dir).map_err(|e| e.to_string())?;
        let (cert, key) = identity.tls_cert_and_key();
        let shared = Arc::new(HostShared::new(
            store,
            opts.policy.clone(),
            fingerprint(&cert),
        ));
        let sessions = Arc::new(NativeSessions::new(
            outbox,
            video_port,
            opts.policy.fec_range,
        ));
        let endpoint =
            match strahl_native::quic::server::bind(opts.addr, &cert, key.secret_pkcs8_der()) {
                Ok(ep) => {
                    log::info!(
                        "native strahl/1 host listening on UDP {} ({} paired native client(s))",
                        ep.local_addr().unwrap_or(opts.addr),
                        lock(&shared.store).clients().len()
                    );
                    let sink: Arc<dyn SessionSink> = sessions.clone();
                    tokio::spawn(strahl_native::quic::server::serve(
                        ep.clone(),
                        shared.clone(),
                        sink,
                    ));
                    Some(ep)
                }
                Err(e) => {
                    log::error!("native protocol unavailable: {e}");
                    None
                }
            };
        Ok(NativeHost {
            shared,
            sessions,
            endpoint,
        })
    }

    /// The data plane ended session `id` (see the module contract); whether it was a running
    /// native session (else it is GameStream's, or already stopped).
    pub fn ended(&self, id: u64) -> bool {
        let ours = self.sessions.ended(id);
        if ours {
            self.shared.end_session(id);
        }
        ours
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.as_ref().and_then(|e| e.local_addr().ok())
    }

    /// Closes the endpoint (every connection gets a close frame).
    pub fn shutdown(&self) {
        if let Some(ep) = &self.endpoint {
            ep.close(0u32.into(), b"host shutdown");
        }
    }
}

/// The IPC `SessionStart` a native session becomes (see the module contract).
pub fn session_start(s: &NativeSession, video_src_port: u16) -> strahl_ipc::SessionStart {
    let w = &s.plan.welcome;
    strahl_ipc::SessionStart {
        id: w.session_id,
        protocol: strahl_ipc::Protocol::Native,
        peer: s.client,
        video: strahl_ipc::VideoParams {
            // The codec bounds them (≤ 16384, ≤ 1000): they fit.
            width: u16::try_from(w.mode.width).unwrap_or(u16::MAX),
            height: u16::try_from(w.mode.height).unwrap_or(u16::MAX),
            fps: u16::try_from(w.mode.fps).unwrap_or(u16::MAX),
            bitrate_kbps: u32::try_from(w.bitrate_kbps).unwrap_or(u32::MAX),
            packet_size: w.shard_len,
            fec_percent: w.fec_percent,
            // The passthrough codec's frames are the data plane's pattern (flag below).
            codec: strahl_ipc::Codec::H264,
        },
        audio: strahl_ipc::AudioParams {
            channels: 2,
            sample_rate_hz: 48_000,
            packet_duration_ms: 5,
            bitrate_kbps: 96,
        },
        // The host→client secret only: the pairing identity and the c2h secret stay here.
        keys: strahl_ipc::KeyMaterial::Native {
            secret: strahl_ipc::Secret(s.h2c),
        },
        ports: strahl_ipc::Ports {
            video_src: video_src_port,
            audio_src: 0,
            video_dst: s.client.port(),
            audio_dst: 0,
        },
        stream: strahl_ipc::StreamOptions {
            flags: if w.codec == codec::PASSTHROUGH {
                strahl_ipc::StreamOptions::CHECKABLE
            } else {
                0
            },
            ..strahl_ipc::StreamOptions::default()
        },
    }
}

/// The IPC stop reason of a native stop reason.
pub fn ipc_stop_reason(why: StopReason) -> strahl_ipc::StopReason {
    match why {
        StopReason::ClientQuit => strahl_ipc::StopReason::ClientQuit,
        StopReason::Timeout => strahl_ipc::StopReason::ClientTimeout,
        // The host ended it: shutting down, or its operator unpaired the client.
        StopReason::HostShutdown | StopReason::Unpaired => strahl_ipc::StopReason::ControlShutdown,
        StopReason::Error | StopReason::Other(_) => strahl_ipc::StopReason::Error,
    }
}

/// The seam to the data plane (see the module contract).
pub struct NativeSessions {
    outbox: Outbox,
    video_port: u16,
    fec_range: (u8, u8),
    running: Mutex<BTreeMap<u64, Running>>,
}

/// A native session the data plane was asked to stream. `session.plan.welcome` follows the
/// epochs (bitrate, FEC %, mode, epoch number).
struct Running {
    session: NativeSession,
    fec: NativeFec,
    pace: NativePace,
    /// The epoch asked for and not yet answered by the data plane, with its waiter.
    pending: Option<(u32, tokio::sync::oneshot::Sender<u64>)>,
}

impl NativeSessions {
    pub fn new(outbox: Outbox, video_port: u16, fec_range: (u8, u8)) -> Self {
        NativeSessions {
            outbox,
            video_port,
            fec_range,
            running: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn running(&self) -> Vec<NativeSession> {
        lock(&self.running)
            .values()
            .map(|r| r.session.clone())
            .collect()
    }

    /// The current FEC % of session `id`.
    pub fn fec_percent(&self, id: u64) -> Option<u8> {
        lock(&self.running).get(&id).map(|r| r.fec.current())
    }

    /// The current pacing ceiling of session `id` (`Some(None)`: the link rate).
    pub fn pace_kbps(&self, id: u64) -> Option<Option<u64>> {
        lock(&self.running).get(&id).map(|r| r.pace.ceiling_kbps())
    }

    /// The data plane opened epoch `epoch` of session `id` at frame `first_frame` (IPC
    /// `Reconfigured`): the waiting reconfigure is answered. Whether one was waiting for it.
    pub fn reconfigured(&self, id: u64, epoch: u32, first_frame: u64) -> bool {
        let mut running = lock(&self.running);
        let Some(r) = running.get_mut(&id) else {
            return false;
        };
        match r.pending.take() {
            Some((e, tx)) if e == epoch => {
                log::info!("native session {id}: epoch {epoch} from frame {first_frame}");
                tx.send(first_frame).is_ok()
            }
            other => {
                log::warn!(
                    "native session {id}: the data plane reported epoch {epoch}, not the one \
                     asked for ({:?})",
                    other.as_ref().map(|p| p.0)
                );
                r.pending = other;
                false
            }
        }
    }

    /// The data plane ended session `id` by itself; whether it was a native one of ours.
    pub fn ended(&self, id: u64) -> bool {
        let ours = lock(&self.running).remove(&id).is_some();
        if ours {
            log::warn!("native session {id}: the data plane ended its media");
        }
        ours
    }

    fn send(&self, id: u64, m: Message) {
        if let Err(e) = self.outbox.send(m) {
            log::warn!("native session {id}: not sent to the data plane: {e}");
        }
    }

    fn update(&self, id: u64, bitrate_kbps: Option<u32>, fec: Option<u8>, keyframe: bool) {
        self.send(
            id,
            Message::SessionUpdate(SessionUpdate {
                id,
                bitrate_kbps,
                fec_percent: fec,
                request_keyframe: keyframe,
            }),
        );
    }
}

impl SessionSink for NativeSessions {
    fn start(&self, s: &NativeSession) -> Result<(), Reason> {
        let start = session_start(s, self.video_port);
        let id = start.id;
        log::info!(
            "native session {id} for {} ({}x{}@{}, {} kbit/s, FEC {} %, {}): starting media",
            start.peer,
            start.video.width,
            start.video.height,
            start.video.fps,
            start.video.bitrate_kbps,
            start.video.fec_percent,
            if start.stream.has(strahl_ipc::StreamOptions::CHECKABLE) {
                "checkable frames"
            } else {
                "H.264"
            }
        );
        let fec = NativeFec::new(start.video.fec_percent, self.fec_range, Instant::now());
        match self.outbox.send(Message::SessionStart(Box::new(start))) {
            Ok(()) => {}
            Err(OutboxError::Full) => return Err(Reason::Busy),
            Err(OutboxError::Closed) => return Err(Reason::Internal),
        }
        lock(&self.running).insert(
            id,
            Running {
                session: s.clone(),
                fec,
                pace: NativePace::new(Instant::now()),
                pending: None,
            },
        );
        Ok(())
    }

    fn loss(&self, id: u64, r: &LossReport) {
        let now = Instant::now();
        let (fec, pace) = {
            let mut running = lock(&self.running);
            let Some(x) = running.get_mut(&id) else {
                return;
            };
            let fec = x.fec.on_report(r, now);
            let w = &x.session.plan.welcome;
            let wire = wire_kbps(w.bitrate_kbps, x.fec.current(), w.shard_len);
            (fec, x.pace.on_report(r, wire, now))
        };
        log::debug!(
            "native session {id}: loss report ({} lost, {} recovered, {} ppm shards)",
            r.frames_lost,
            r.frames_recovered,
            r.shard_loss_ppm
        );
        if let Some(pct) = fec {
            log::info!(
                "native session {id}: FEC {pct} % ({} frames lost, {} ppm shards lost)",
                r.frames_lost,
                r.shard_loss_ppm
            );
            self.update(id, None, Some(pct), false);
        }
        if let Some(p) = pace {
            match p {
                PaceChange::Link => log::info!("native session {id}: paced at the link rate"),
                PaceChange::Kbps(k) => log::info!(
                    "native session {id}: paced at most {k} kbit/s ({} frames lost)",
                    r.frames_lost
                ),
            }
            self.send(
                id,
                Message::SessionPace(SessionPace {
                    id,
                    rate_kbps: p.ipc_kbps(),
                }),
            );
        }
    }

    fn keyframe(&self, id: u64) {
        if lock(&self.running).contains_key(&id) {
            log::debug!("native session {id}: keyframe requested");
            self.update(id, None, None, true);
        }
    }

    fn reconfigure(&self, e: &EpochChange) -> Result<FirstFrame, Reason> {
        let id = e.session_id;
        // The codec bounds the mode (≤ 16384, ≤ 1000): it fits.
        let n = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        let m = SessionReconfigure {
            id,
            epoch: e.epoch,
            width: n(e.mode.width),
            height: n(e.mode.height),
            fps: n(e.mode.fps),
            bitrate_kbps: u32::try_from(e.bitrate_kbps).unwrap_or(u32::MAX),
            fec_percent: e.fec_percent,
            shard_len: e.shard_len,
        };
        let mut running = lock(&self.running);
        let Some(r) = running.get_mut(&id) else {
            return Err(Reason::Internal);
        };
        match self.outbox.send(Message::SessionReconfigure(m)) {
            Ok(()) => {}
            Err(OutboxError::Full) => return Err(Reason::Busy),
            Err(OutboxError::Closed) => return Err(Reason::Internal),
        }
        log::info!(
            "native session {id}: asking for epoch {} ({}x{}@{}, {} kbit/s, FEC {} %)",
            e.epoch,
            e.mode.width,
            e.mode.height,
            e.mode.fps,
            e.bitrate_kbps,
            e.fec_percent
        );
        r.fec.set(e.fec_percent, Instant::now());
        let w = &mut r.session.plan.welcome;
        (w.epoch, w.bitrate_kbps, w.fec_percent, w.mode) =
            (e.epoch, e.bitrate_kbps, e.fec_percent, e.mode);
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A newer epoch replaces an unanswered one: its waiter fails (dropped sender).
        r.pending = Some((e.epoch, tx));
        Ok(rx)
    }

    fn stop(&self, id: u64, why: StopReason) {
        if lock(&self.running).remove(&id).is_some() {
            log::info!("native session {id} ended (reason {})", why.code());
            self.send(
                id,
                Message::SessionStop(SessionStop {
                    id,
                    reason: ipc_stop_reason(why),
                }),
            );
        }
    }
}

#[cfg(test)]
#[path = "native_tests.rs"]
mod tests;
