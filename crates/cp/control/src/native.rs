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
//!   policy's `fec_range`, `[video] fec_percent_min..max`); a change is one `SessionUpdate`.
//!   A keyframe request is a `SessionUpdate` with `request_keyframe` (the encoder's next frame is
//!   an IDR). A reconfigure applies its bitrate and FEC % and asks for a keyframe; its first
//!   frame is answered as 0 (the data plane does not report frame ids: bitrate and FEC need no
//!   boundary on the wire, every shard carries its frame's k, m and S), and a mode change is not
//!   applied (the session's resolution is fixed at its start; logged).
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
use strahl_ipc::{Message, SessionStop, SessionUpdate};
use strahl_native::host::{EpochChange, HostPolicy};
use strahl_native::msg::{LossReport, Reason, StopReason, codec};
use strahl_native::pairing::fingerprint;
use strahl_native::quic::server::{HostShared, NativeSession, SessionSink, lock};
use strahl_native::store::PairedStore;

use crate::native_fec::NativeFec;
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

/// A native session the data plane was asked to stream.
struct Running {
    session: NativeSession,
    fec: NativeFec,
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
            },
        );
        Ok(())
    }

    fn loss(&self, id: u64, r: &LossReport) {
        let change = lock(&self.running)
            .get_mut(&id)
            .and_then(|x| x.fec.on_report(r, Instant::now()));
        log::debug!(
            "native session {id}: loss report ({} lost, {} recovered, {} ppm shards)",
            r.frames_lost,
            r.frames_recovered,
            r.shard_loss_ppm
        );
        if let Some(pct) = change {
            log::info!(
                "native session {id}: FEC {pct} % ({} frames lost, {} ppm shards lost)",
                r.frames_lost,
                r.shard_loss_ppm
            );
            self.update(id, None, Some(pct), false);
        }
    }

    fn keyframe(&self, id: u64) {
        if lock(&self.running).contains_key(&id) {
            log::debug!("native session {id}: keyframe requested");
            self.update(id, None, None, true);
        }
    }

    fn reconfigure(&self, e: &EpochChange) -> u64 {
        let id = e.session_id;
        let mode_changed = {
            let mut running = lock(&self.running);
            let Some(r) = running.get_mut(&id) else {
                return 0;
            };
            r.fec.set(e.fec_percent, Instant::now());
            r.session.plan.welcome.mode != e.mode
        };
        log::info!(
            "native session {id}: epoch {} ({} kbit/s, FEC {} %)",
            e.epoch,
            e.bitrate_kbps,
            e.fec_percent
        );
        if mode_changed {
            log::warn!(
                "native session {id}: mode {}x{}@{} asked mid-stream; the stream keeps the mode it \
                 started with",
                e.mode.width,
                e.mode.height,
                e.mode.fps
            );
        }
        let bitrate = u32::try_from(e.bitrate_kbps).unwrap_or(u32::MAX);
        self.update(id, Some(bitrate), Some(e.fec_percent), true);
        // The data plane does not report frame ids (see the module contract).
        0
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
mod tests {
    use super::*;
    use strahl_native::host::SessionPlan;
    use strahl_native::msg::{Mode, Welcome};

    fn native_session(id: u64, codec: u64) -> NativeSession {
        let mut s = sample();
        s.plan.welcome.session_id = id;
        s.plan.welcome.codec = codec;
        s
    }

    fn sample() -> NativeSession {
        NativeSession {
            plan: SessionPlan {
                welcome: Welcome {
                    mode: Mode {
                        width: 1280,
                        height: 720,
                        fps: 120,
                    },
                    codec: codec::H264,
                    bitrate_kbps: 1_000_000,
                    fec_percent: 20,
                    shard_len: 1408,
                    key_context: [0; 16],
                    session_id: 9,
                    epoch: 0,
                },
                media_port: 40_000,
                client_fp: [1; 32],
            },
            client: "192.0.2.7:40000".parse().unwrap(),
            h2c: [5; 32],
            c2h: [6; 32],
        }
    }

    #[test]
    fn a_native_session_becomes_a_native_ipc_start_with_only_the_h2c_secret() {
        let s = sample();
        let m = session_start(&s, 47_998);
        assert_eq!(m.protocol, strahl_ipc::Protocol::Native);
        assert_eq!(
            m.keys,
            strahl_ipc::KeyMaterial::Native {
                secret: strahl_ipc::Secret([5; 32])
            }
        );
        assert_eq!((m.ports.video_src, m.ports.video_dst), (47_998, 40_000));
        assert_eq!((m.video.packet_size, m.video.fec_percent), (1408, 20));
        assert_eq!(m.stream.flags, 0, "H.264: the configured source");
        // It encodes as a valid IPC message.
        let mut b = vec![0u8; strahl_ipc::MAX_MESSAGE_LEN];
        strahl_ipc::encode(&strahl_ipc::Message::SessionStart(Box::new(m)), &mut b).unwrap();
        // The passthrough codec asks for the pattern source's checkable frames.
        let m = session_start(&native_session(9, codec::PASSTHROUGH), 47_998);
        assert!(m.stream.has(strahl_ipc::StreamOptions::CHECKABLE));
    }

    fn sessions(capacity: usize) -> (NativeSessions, crate::shared::OutboxReceiver) {
        let reg: &'static strahl_metrics::Registry =
            Box::leak(Box::new(strahl_metrics::Registry::new()));
        let (tx, rx) = crate::shared::outbox(capacity, reg);
        (NativeSessions::new(tx, 47_998, (5, 50)), rx)
    }

    fn loss(ppm: u32, lost: u64) -> LossReport {
        LossReport {
            epoch: 0,
            frames_received: 100,
            frames_recovered: 0,
            frames_lost: lost,
            shard_loss_ppm: ppm,
        }
    }

    /// The session's life as the data plane sees it: start, FEC raised by loss reports (bounded),
    /// a keyframe request, a reconfigure, the stop — one IPC message each, in order, and nothing
    /// for a session that is not running.
    #[test]
    fn a_session_start_loss_keyframe_reconfigure_and_stop_reach_the_data_plane() {
        let (ns, mut rx) = sessions(16);
        ns.start(&native_session(7, codec::PASSTHROUGH)).unwrap();
        let Ok(Message::SessionStart(m)) = rx.try_recv() else {
            panic!("a SessionStart")
        };
        assert_eq!(
            (m.id, m.ports.video_src, m.video.fec_percent),
            (7, 47_998, 20)
        );
        assert_eq!(ns.running().len(), 1);
        // Clean: nothing. 15 % shard loss: 36 %. 40 %: the policy's 50 % cap.
        ns.loss(7, &loss(0, 0));
        ns.loss(7, &loss(150_000, 0));
        ns.loss(7, &loss(400_000, 0));
        ns.loss(7, &loss(400_000, 0));
        let fec: Vec<Option<u8>> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|m| match m {
                Message::SessionUpdate(u) => {
                    assert_eq!((u.id, u.bitrate_kbps, u.request_keyframe), (7, None, false));
                    u.fec_percent
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(fec, [Some(36), Some(50)]);
        assert_eq!(ns.fec_percent(7), Some(50));
        ns.keyframe(7);
        let Ok(Message::SessionUpdate(u)) = rx.try_recv() else {
            panic!("an update")
        };
        assert!(u.request_keyframe && u.fec_percent.is_none());
        let e = EpochChange {
            session_id: 7,
            epoch: 1,
            bitrate_kbps: 5_000_000,
            fec_percent: 10,
            mode: Mode {
                width: 1280,
                height: 720,
                fps: 120,
            },
            shard_len: 1408,
        };
        assert_eq!(ns.reconfigure(&e), 0);
        let Ok(Message::SessionUpdate(u)) = rx.try_recv() else {
            panic!("an update")
        };
        assert_eq!(
            (u.bitrate_kbps, u.fec_percent, u.request_keyframe),
            (Some(5_000_000), Some(10), true)
        );
        assert_eq!(ns.fec_percent(7), Some(10), "the controller follows");
        // Another session's reports and requests send nothing.
        ns.loss(8, &loss(400_000, 3));
        ns.keyframe(8);
        ns.stop(8, StopReason::ClientQuit);
        assert!(rx.try_recv().is_err());
        // A vanished client: stopped as a time-out, once.
        ns.stop(7, StopReason::Timeout);
        ns.stop(7, StopReason::Timeout);
        let Ok(Message::SessionStop(st)) = rx.try_recv() else {
            panic!("a SessionStop")
        };
        assert_eq!(
            (st.id, st.reason),
            (7, strahl_ipc::StopReason::ClientTimeout)
        );
        assert!(rx.try_recv().is_err());
        assert!(ns.running().is_empty());
    }

    #[test]
    fn a_full_outbox_refuses_the_session_busy_and_the_data_plane_can_end_one() {
        let (ns, mut rx) = sessions(1);
        ns.start(&native_session(1, codec::H264)).unwrap();
        assert_eq!(ns.start(&native_session(2, codec::H264)), Err(Reason::Busy));
        assert_eq!(ns.running().len(), 1);
        assert!(matches!(rx.try_recv(), Ok(Message::SessionStart(_))));
        assert!(ns.ended(1), "ours");
        assert!(!ns.ended(1) && !ns.ended(99), "GameStream ids are not");
        drop(rx);
        assert_eq!(
            ns.start(&native_session(3, codec::H264)),
            Err(Reason::Internal)
        );
    }

    #[test]
    fn shards_fit_the_data_planes_mtu() {
        // 1500: 1472 B of UDP payload less 44 B of overhead.
        assert_eq!(max_shard_len_for_mtu(1500), 1428);
        assert_eq!(max_shard_len_for_mtu(9000), 8908);
        assert_eq!(
            max_shard_len_for_mtu(9216),
            8908,
            "capped at a jumbo frame's"
        );
        assert_eq!(max_shard_len_for_mtu(577), 504, "even");
        assert_eq!(max_shard_len_for_mtu(0), 64);
        let o = NativeOptions::new("127.0.0.1:47900".parse().unwrap(), (5, 20, 50), 1000, 1500);
        assert_eq!(o.policy.max_shard_len, 1428);
    }

    #[test]
    fn stop_reasons_map_to_the_ipc_ones() {
        use strahl_ipc::StopReason as Ipc;
        let cases = [
            (StopReason::ClientQuit, Ipc::ClientQuit),
            (StopReason::Timeout, Ipc::ClientTimeout),
            (StopReason::HostShutdown, Ipc::ControlShutdown),
            (StopReason::Unpaired, Ipc::ControlShutdown),
            (StopReason::Error, Ipc::Error),
            (StopReason::Other(77), Ipc::Error),
        ];
        for (n, i) in cases {
            assert_eq!(ipc_stop_reason(n), i, "{n:?}");
        }
    }
}
