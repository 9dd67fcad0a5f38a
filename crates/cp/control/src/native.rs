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
//! - The seam to the data plane is [`NativeSessions`]: a started session's IPC `SessionStart`
//!   (protocol native, the host→client exporter secret, the client's media address) is built
//!   by [`session_start`]; the data plane has no native media path yet (issue 10 item 3), so
//!   the session is recorded and logged, not sent. Sending it is one `Outbox::send` here once
//!   the tx tile packetizes `strahl/1`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use strahl_gamestream::HostIdentity;
use strahl_native::host::{EpochChange, HostPolicy};
use strahl_native::msg::{LossReport, Reason, StopReason, codec};
use strahl_native::pairing::fingerprint;
use strahl_native::quic::server::{HostShared, NativeSession, SessionSink, lock};
use strahl_native::store::PairedStore;

/// Where and with what limits the native endpoint runs.
#[derive(Debug, Clone)]
pub struct NativeOptions {
    pub addr: SocketAddr,
    pub policy: HostPolicy,
}

impl NativeOptions {
    /// The policy from the video settings (FEC bounds and default, bitrate cap), shards up to
    /// a jumbo frame's.
    pub fn new(addr: SocketAddr, fec: (u8, u8, u8), max_bitrate_kbps: u64) -> Self {
        let (min, default, max) = fec;
        NativeOptions {
            addr,
            policy: HostPolicy {
                codecs: codec::H264 | codec::PASSTHROUGH,
                max_bitrate_kbps,
                max_shard_len: 8908,
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
    /// Errors only for state that cannot be read (a corrupt store is not papered over).
    pub fn start(opts: &NativeOptions, state_dir: &Path) -> Result<NativeHost, String> {
        let store = PairedStore::load(state_dir).map_err(|e| e.to_string())?;
        let identity = HostIdentity::load_or_create(state_dir).map_err(|e| e.to_string())?;
        let (cert, key) = identity.tls_cert_and_key();
        let shared = Arc::new(HostShared::new(
            store,
            opts.policy.clone(),
            fingerprint(&cert),
        ));
        let sessions = Arc::new(NativeSessions::default());
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
        stream: strahl_ipc::StreamOptions::default(),
    }
}

/// The seam to the data plane: records running native sessions (see the module contract).
#[derive(Default)]
pub struct NativeSessions {
    running: Mutex<BTreeMap<u64, NativeSession>>,
}

impl NativeSessions {
    pub fn running(&self) -> Vec<NativeSession> {
        lock(&self.running).values().cloned().collect()
    }
}

impl SessionSink for NativeSessions {
    fn start(&self, s: &NativeSession) -> Result<(), Reason> {
        let start = session_start(s, 0);
        log::warn!(
            "native session {} for {} ({}x{}@{}, {} kbit/s, FEC {} %) accepted on the control \
             plane; the data plane has no strahl/1 media path yet, so no media is sent",
            start.id,
            start.peer,
            start.video.width,
            start.video.height,
            start.video.fps,
            start.video.bitrate_kbps,
            start.video.fec_percent
        );
        lock(&self.running).insert(s.plan.welcome.session_id, s.clone());
        Ok(())
    }

    fn loss(&self, id: u64, r: &LossReport) {
        log::debug!(
            "native session {id}: loss report ({} lost, {} ppm shards)",
            r.frames_lost,
            r.shard_loss_ppm
        );
    }

    fn keyframe(&self, id: u64) {
        log::debug!("native session {id}: keyframe requested");
    }

    fn reconfigure(&self, e: &EpochChange) -> u64 {
        log::info!(
            "native session {}: epoch {} ({} kbit/s, FEC {} %)",
            e.session_id,
            e.epoch,
            e.bitrate_kbps,
            e.fec_percent
        );
        // No media is sent yet, so the new epoch starts at the first frame.
        0
    }

    fn stop(&self, id: u64, why: StopReason) {
        if lock(&self.running).remove(&id).is_some() {
            log::info!("native session {id} ended (reason {})", why.code());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strahl_native::host::SessionPlan;
    use strahl_native::msg::{Mode, Welcome};

    #[test]
    fn a_native_session_becomes_a_native_ipc_start_with_only_the_h2c_secret() {
        let s = NativeSession {
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
        };
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
        // It encodes as a valid IPC message.
        let mut b = vec![0u8; strahl_ipc::MAX_MESSAGE_LEN];
        strahl_ipc::encode(&strahl_ipc::Message::SessionStart(Box::new(m)), &mut b).unwrap();
    }
}
