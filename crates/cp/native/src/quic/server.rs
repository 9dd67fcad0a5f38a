//! The host's quinn shell: accepts `strahl/1` connections and runs each through the sans-IO
//! [`HostConn`]; sessions it starts go to a [`SessionSink`] (the control plane's seam to the
//! data plane).
//!
//! Contract:
//! - At most [`MAX_CONNECTIONS`] connections are handled at once; more are refused at the QUIC
//!   level before any TLS work.
//! - Every wait is bounded: the handshake and each step by [`STEP_TIMEOUT`] (through the core's
//!   deadline), a streaming session by QUIC's idle timeout (`tls.rs`): a client that vanishes
//!   mid-session has its session stopped ([`StopReason::Timeout`]) within that time plus one
//!   keep-alive interval (8 s).
//! - A paired client is stored (atomically) before `pair-ok` is sent; if storing fails the
//!   client is told `refused internal`, never `pair-ok`.
//! - A refusal is sent as a `refused` message on the stream, then the stream is finished and
//!   the host waits (bounded) for the client to close, so the reason is never lost to a reset.
//! - Unpairing ([`HostShared::unpair`]) revokes at once: a running session of that client is
//!   sent `stop unpaired`, stopped in the data plane and its connection closed.
//! - A session whose media the data plane ended by itself (refused at start, failed) is ended
//!   here too ([`HostShared::end_session`]): the client is sent `stop error` and the connection
//!   closes, so it does not wait for media that will not come.
//! - A reconfigure is answered `reconfigured` only with the first frame of the new epoch as the
//!   data plane reports it ([`SessionSink::reconfigure`] hands back a [`FirstFrame`]), waited
//!   for at most [`RECONFIGURE_TIMEOUT`]. No answer in time (or the sink refusing) ends the
//!   session — stopped in the data plane, the client sent `stop error` — rather than telling
//!   the client a frame boundary nobody knows.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::arm::ArmWindow;
use crate::host::{Action, EpochChange, HostConn, HostPolicy, STEP_TIMEOUT, SessionPlan, refused};
use crate::msg::{LossReport, Message, Reason, Reconfigured, Stop, StopReason};
use crate::pairing::{Binding, Fingerprint};
use crate::quic::tls::peer_fingerprint;
use crate::quic::{StreamError, channel_binding, media_secrets, read_msg, send_msg};
use crate::store::{PairedClient, PairedStore, StoreError};
use crate::wire::FrameReader;

/// Connections handled at once.
pub const MAX_CONNECTIONS: usize = 64;
/// How long the host waits for the client to close after the last message.
const LINGER: Duration = Duration::from_secs(2);
/// How long a reconfigure waits for the data plane's first frame of the new epoch. The data
/// plane applies it at the next frame its encode thread makes, after the frames already queued
/// for the tx tile (a few frame intervals: ~0.1 s at 30 fps) and an encoder re-made at the new
/// size (openh264 at 4K: ~0.1 s); 3 s is far beyond that on a loaded host and still short of
/// the client's patience (it keeps receiving the old epoch meanwhile).
pub const RECONFIGURE_TIMEOUT: Duration = Duration::from_secs(3);

/// What the control plane shares with the shell.
pub struct HostShared {
    pub arm: Mutex<ArmWindow>,
    pub store: Mutex<PairedStore>,
    pub policy: HostPolicy,
    /// Fingerprint of the certificate the endpoint presents.
    pub host_fp: Fingerprint,
    /// Bumped by every unpair and [`Self::end_session`]: running sessions recheck that their
    /// client is still paired and that their media still runs.
    revoked: tokio::sync::watch::Sender<u64>,
    /// Running sessions the data plane ended, until their connection has seen it.
    ending: Mutex<BTreeSet<u64>>,
}

impl HostShared {
    pub fn new(store: PairedStore, policy: HostPolicy, host_fp: Fingerprint) -> Self {
        HostShared {
            arm: Mutex::new(ArmWindow::default()),
            store: Mutex::new(store),
            policy,
            host_fp,
            revoked: tokio::sync::watch::Sender::new(0),
            ending: Mutex::new(BTreeSet::new()),
        }
    }

    /// The data plane ended session `id`'s media: its connection sends `stop error` and closes
    /// (see the module contract). The session is not stopped in the data plane again.
    pub fn end_session(&self, id: u64) {
        lock(&self.ending).insert(id);
        self.revoked.send_modify(|g| *g += 1);
    }

    /// Removes a paired client (by `PairedClient::id` or fingerprint; atomic write) and ends
    /// its running sessions; `Ok(None)` when there is no such client.
    pub fn unpair(&self, id: &str) -> Result<Option<PairedClient>, StoreError> {
        let gone = lock(&self.store).remove(id)?;
        if gone.is_some() {
            self.revoked.send_modify(|g| *g += 1);
        }
        Ok(gone)
    }
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A session ready for the data plane.
#[derive(Debug, Clone)]
pub struct NativeSession {
    pub plan: SessionPlan,
    /// Where media goes: the connection's address with the client's media port.
    pub client: SocketAddr,
    /// Host → client media secret (TLS exporter), for `strahl-seal`'s native sealer.
    pub h2c: [u8; 32],
    /// Client → host media secret (reserved for client media: probes, input).
    pub c2h: [u8; 32],
}

/// The first frame id of a new epoch, once the data plane has sent it (see
/// [`SessionSink::reconfigure`]).
pub type FirstFrame = tokio::sync::oneshot::Receiver<u64>;

/// A [`FirstFrame`] already known (sinks that decide the boundary themselves, test fakes).
pub fn first_frame_known(first_frame: u64) -> FirstFrame {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let _ = tx.send(first_frame);
    rx
}

/// The seam to the data plane (implemented by the control plane).
pub trait SessionSink: Send + Sync + 'static {
    fn start(&self, s: &NativeSession) -> Result<(), Reason>;
    fn loss(&self, id: u64, r: &LossReport);
    fn keyframe(&self, id: u64);
    /// Asks for a new epoch; the answer is its first frame id when the data plane has it (a
    /// dropped sender: it never will). `Err` when the epoch cannot be asked for at all.
    fn reconfigure(&self, e: &EpochChange) -> Result<FirstFrame, Reason>;
    fn stop(&self, id: u64, why: StopReason);
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The system RNG failing is not recoverable for a key context; zeros would only weaken
    // domain separation of per-session secrets that the TLS exporter already makes unique.
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        tracing::error!("native: system random source failed");
    }
    b
}

/// Accepts connections until the endpoint closes.
pub async fn serve(endpoint: quinn::Endpoint, shared: Arc<HostShared>, sink: Arc<dyn SessionSink>) {
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    while let Some(incoming) = endpoint.accept().await {
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!("native: {MAX_CONNECTIONS} connections open, refusing another");
            incoming.refuse();
            continue;
        };
        let (shared, sink) = (shared.clone(), sink.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let peer = incoming.remote_address();
            if let Err(e) = handle(incoming, &shared, &*sink).await {
                tracing::info!("native: connection from {peer}: {e}");
            }
        });
    }
}

async fn handle(
    incoming: quinn::Incoming,
    shared: &HostShared,
    sink: &dyn SessionSink,
) -> Result<(), String> {
    let conn = tokio::time::timeout(STEP_TIMEOUT, incoming)
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| format!("handshake: {e}"))?;
    let client_fp = peer_fingerprint(&conn).ok_or("no client certificate")?;
    let channel = channel_binding(&conn).ok_or("no TLS exporter")?;
    let paired = lock(&shared.store).contains(&client_fp);
    let bind = Binding {
        client_fp,
        host_fp: shared.host_fp,
        channel,
    };
    let mut core = HostConn::new(bind, paired, shared.policy.clone(), Instant::now());
    let (mut send, mut recv) = tokio::time::timeout(STEP_TIMEOUT, conn.accept_bi())
        .await
        .map_err(|_| "no control stream".to_string())?
        .map_err(|e| format!("control stream: {e}"))?;
    let mut reader = FrameReader::new();
    let mut revoked = shared.revoked.subscribe();
    let mut running: Option<u64> = None;
    // The session this connection started, if any (one per connection).
    let mut ran: Option<u64> = None;
    let mut outcome = Ok(());
    while !core.is_closed() {
        let deadline = core
            .deadline()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        let actions = tokio::select! {
            r = read_msg(&mut recv, &mut reader) => match r {
                Ok(Some(m)) => {
                    tracing::debug!("native: {} from {}", m.name(), conn.remote_address());
                    let mut arm = lock(&shared.arm);
                    core.on_message(m, &mut arm, Instant::now(), random(), u64::from_be_bytes(random()))
                }
                Ok(None) => break,
                Err(StreamError::Wire(e)) => {
                    vec![Action::Close(Reason::Malformed, e.to_string())]
                }
                Err(e) => {
                    outcome = Err(e.to_string());
                    break;
                }
            },
            _ = tokio::time::sleep_until(deadline) => core.on_timeout(Instant::now()),
            Ok(()) = revoked.changed(), if running.is_some() => {
                match running {
                    Some(id) if lock(&shared.ending).remove(&id) => {
                        tracing::info!("native: session {id} ends: the host's media stopped");
                        core.close();
                        vec![
                            Action::Stop(id, StopReason::Error),
                            Action::Send(Message::Stop(Stop { reason: StopReason::Error })),
                        ]
                    }
                    Some(id) if !lock(&shared.store).contains(&client_fp) => {
                        tracing::info!("native: session {id} ends: its client was unpaired");
                        core.close();
                        // Stopped in the data plane first, then the client is told.
                        vec![
                            Action::Stop(id, StopReason::Unpaired),
                            Action::Send(Message::Stop(Stop { reason: StopReason::Unpaired })),
                        ]
                    }
                    _ => Vec::new(),
                }
            }
        };
        for a in actions {
            if let Err(e) = act(a, &conn, &mut send, shared, sink, &mut running, &mut core).await {
                outcome = Err(e);
                break;
            }
        }
        ran = ran.or(running);
        if outcome.is_err() {
            break;
        }
    }
    if let Some(id) = running {
        // The connection ended without a stop: the client vanished or the host closed.
        sink.stop(id, StopReason::Timeout);
    }
    if let Some(id) = ran {
        // An end the data plane reported after this connection stopped looking.
        lock(&shared.ending).remove(&id);
    }
    let _ = send.finish();
    let _ = tokio::time::timeout(LINGER, conn.closed()).await;
    conn.close(0u32.into(), b"");
    outcome
}

async fn act(
    a: Action,
    conn: &quinn::Connection,
    send: &mut quinn::SendStream,
    shared: &HostShared,
    sink: &dyn SessionSink,
    running: &mut Option<u64>,
    core: &mut HostConn,
) -> Result<(), String> {
    let s = |r: Result<(), StreamError>| r.map_err(|e| e.to_string());
    match a {
        Action::Send(m) => s(send_msg(send, &m).await),
        Action::Paired(p) => {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let stored = lock(&shared.store).add(&p, now);
            match stored {
                Ok(()) => {
                    tracing::info!(
                        "native: paired client {:?} ({})",
                        p.name,
                        crate::pairing::hex(&p.fingerprint)
                    );
                    s(send_msg(send, &Message::PairOk).await)
                }
                Err(e) => {
                    tracing::error!("native: storing a paired client failed: {e}");
                    s(send_msg(
                        send,
                        &refused(Reason::Internal, "could not store the pairing"),
                    )
                    .await)?;
                    Err(format!("store: {e}"))
                }
            }
        }
        Action::StartSession(plan) => {
            let (h2c, c2h) =
                media_secrets(conn, &plan.welcome.key_context).ok_or("no TLS exporter")?;
            let mut client = conn.remote_address();
            client.set_port(plan.media_port);
            let session = NativeSession {
                plan,
                client,
                h2c,
                c2h,
            };
            match sink.start(&session) {
                Ok(()) => {
                    *running = Some(session.plan.welcome.session_id);
                    Ok(())
                }
                Err(r) => {
                    s(send_msg(send, &refused(r, "session could not start")).await)?;
                    core.close();
                    Err(format!("session refused: {}", r.text()))
                }
            }
        }
        Action::Loss(id, r) => {
            sink.loss(id, &r);
            Ok(())
        }
        Action::Keyframe(id, _) => {
            sink.keyframe(id);
            Ok(())
        }
        Action::Reconfigure(e) => {
            let first_frame = match sink.reconfigure(&e) {
                Ok(rx) => match tokio::time::timeout(RECONFIGURE_TIMEOUT, rx).await {
                    Ok(Ok(f)) => Ok(f),
                    Ok(Err(_)) => Err("the data plane dropped it".to_string()),
                    Err(_) => Err(format!(
                        "the data plane did not report its first frame within {RECONFIGURE_TIMEOUT:?}"
                    )),
                },
                Err(r) => Err(format!("refused: {}", r.text())),
            };
            let first_frame = match first_frame {
                Ok(f) => f,
                Err(why) => {
                    // The boundary is unknown: the session cannot go on consistently.
                    let id = e.session_id;
                    tracing::warn!("native: session {id}: epoch {} failed: {why}", e.epoch);
                    sink.stop(id, StopReason::Error);
                    *running = None;
                    core.close();
                    return s(send_msg(
                        send,
                        &Message::Stop(Stop {
                            reason: StopReason::Error,
                        }),
                    )
                    .await);
                }
            };
            let m = Message::Reconfigured(Reconfigured {
                epoch: e.epoch,
                first_frame,
                bitrate_kbps: e.bitrate_kbps,
                fec_percent: e.fec_percent,
                mode: e.mode,
                shard_len: e.shard_len,
            });
            s(send_msg(send, &m).await)
        }
        Action::Stop(id, why) => {
            sink.stop(id, why);
            *running = None;
            Ok(())
        }
        Action::Close(reason, detail) => {
            tracing::info!(
                "native: refusing {}: {} ({detail})",
                conn.remote_address(),
                reason.text()
            );
            s(send_msg(send, &refused(reason, &detail)).await)
        }
    }
}

/// Binds the host's endpoint (UDP, ALPN `strahl/1`) with its certificate (DER) and PKCS#8 key.
pub fn bind(addr: SocketAddr, cert_der: &[u8], key_der: &[u8]) -> Result<quinn::Endpoint, String> {
    let cfg = crate::quic::tls::server_config(cert_der, key_der)?;
    quinn::Endpoint::server(cfg, addr).map_err(|e| format!("cannot bind UDP {addr}: {e}"))
}
