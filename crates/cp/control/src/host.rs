//! Thin async shells around [`SessionManager`]: the `SessionHost` the nvhttp servers call, and
//! the RTSP listener (TCP, default 48010, gamestream-host.md §A8).
//!
//! - [`ManagerHost`] locks the manager, draws the launch randomness from the OS, executes the
//!   resulting control actions on the ENet server and queues the IPC messages on the bounded
//!   outbox the data-plane connection drains (`shared.rs`).
//! - [`rtsp_listener`]: one request per TCP connection — read until the manager has one whole
//!   message (bounded in size and time), send the reply, shut the socket. While no launch is
//!   pending, connections are closed at once (§A7). At most [`MAX_RTSP_CONNECTIONS`] at a time.
//! - Several clients may stream at once: each nvhttp call concerns the asking client (its
//!   certificate), and the manager matches each RTSP connection to its client's pending launch
//!   (rules in `session.rs`).

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strahl_gamestream::{HostError, HostState, LaunchRequest, SessionHost};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::control_link::{ControlLink, dispatch};
use crate::session::{ClientKey, LaunchRandom, RtspStep, key_fingerprint};
use crate::shared::{Outbox, SharedManager, lock};

/// The client waits up to 15 s for a reply (§A8); it sends its request at once, so 10 s only
/// evicts idle peers.
pub const RTSP_CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// RTSP connections served at once. A client uses one at a time: room for the most clients
/// that may handshake at once (`[gamestream] max_sessions` ≤ 16) and their retries.
pub const MAX_RTSP_CONNECTIONS: usize = 32;

/// Random bytes from the OS.
pub fn os_random<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b)
}

fn launch_random() -> Result<LaunchRandom, HostError> {
    let b: [u8; 12] =
        os_random().map_err(|e| HostError::Unavailable(format!("no randomness: {e}")))?;
    Ok(LaunchRandom {
        ping_payload: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
        connect_data: u32::from_le_bytes(b[8..].try_into().expect("4 bytes")),
    })
}

/// The session manager as the nvhttp servers see it.
pub struct ManagerHost {
    pub manager: SharedManager,
    pub outbox: Outbox,
    pub control: Arc<ControlLink>,
}

fn describe(what: &str, req: &LaunchRequest) -> String {
    let p = &req.params;
    format!(
        "{what} from {:?} at {}: app {}, mode {}, corever {}, rikeyid {}, key {}",
        ClientKey::of_cert(&req.client_cert_der),
        req.client_ip,
        p.app_id,
        p.mode
            .map(|m| format!("{}x{}x{}", m.width, m.height, m.fps))
            .unwrap_or_else(|| "-".into()),
        p.corever,
        p.rikeyid as i32,
        key_fingerprint(&p.rikey)
    )
}

impl SessionHost for ManagerHost {
    fn video_support(&self) -> Option<strahl_gamestream::VideoSupport> {
        Some(lock(&self.manager).video_support())
    }

    fn launch(&self, req: LaunchRequest) -> Result<(), HostError> {
        let rand = launch_random()?;
        let r = lock(&self.manager).launch(&req, rand, Instant::now());
        match &r {
            Ok(()) => log::info!("{}; RTSP open for 10 s", describe("launch", &req)),
            Err(e) => log::info!("{} refused: {e:?}", describe("launch", &req)),
        }
        r
    }

    fn resume(&self, req: LaunchRequest) -> Result<(), HostError> {
        let rand = launch_random()?;
        let r = lock(&self.manager).resume(&req, rand, Instant::now());
        match r {
            Ok(actions) => {
                log::info!("{}; RTSP open for 10 s", describe("resume", &req));
                dispatch(&self.control, &self.outbox, actions);
                Ok(())
            }
            Err(e) => {
                log::info!("{} refused: {e:?}", describe("resume", &req));
                Err(e)
            }
        }
    }

    fn cancel(&self, client_cert_der: &[u8]) -> Result<(), HostError> {
        let client = ClientKey::of_cert(client_cert_der);
        let (actions, running) = {
            let mut m = lock(&self.manager);
            (m.cancel(&client), m.running_apps())
        };
        log::info!(
            "cancel from {client:?}: its app stopped{}; {running} app(s) still running",
            if actions.is_empty() {
                ""
            } else {
                ", control stream terminated, SessionStop sent to the data plane"
            }
        );
        dispatch(&self.control, &self.outbox, actions);
        Ok(())
    }

    fn state_for(&self, client_cert_der: Option<&[u8]>) -> HostState {
        let client = client_cert_der.map(ClientKey::of_cert);
        lock(&self.manager).state_for(client.as_ref())
    }
}

/// Serves RTSP on `listener` until `shutdown` changes.
pub async fn rtsp_listener(
    listener: TcpListener,
    manager: SharedManager,
    outbox: Outbox,
    control: Arc<ControlLink>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(MAX_RTSP_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    log::warn!("RTSP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        if !lock(&manager).rtsp_open(Instant::now()) {
            log::debug!("RTSP connection from {peer} closed: no launch is pending");
            drop(stream);
            continue;
        }
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            log::warn!("RTSP connection from {peer} dropped: {MAX_RTSP_CONNECTIONS} in flight");
            continue;
        };
        let manager = manager.clone();
        let outbox = outbox.clone();
        let control = control.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(
                RTSP_CONNECTION_TIMEOUT,
                serve_rtsp(stream, peer, &manager, &outbox, &control),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log::debug!("RTSP connection from {peer}: {e}"),
                Err(_) => log::info!(
                    "RTSP connection from {peer} timed out after {RTSP_CONNECTION_TIMEOUT:?}"
                ),
            }
        });
    }
}

async fn serve_rtsp(
    mut stream: TcpStream,
    peer: SocketAddr,
    manager: &SharedManager,
    outbox: &Outbox,
    control: &ControlLink,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut eof = false;
    loop {
        let step = lock(manager).rtsp_input(&buf, eof, peer, Instant::now());
        match step {
            RtspStep::NeedMore { limit } => {
                if buf.len() >= limit {
                    log::warn!("RTSP from {peer}: request larger than {limit} bytes; closed");
                    return Ok(());
                }
                let want = (limit - buf.len()).min(chunk.len());
                let n = stream.read(&mut chunk[..want]).await?;
                if n == 0 {
                    eof = true;
                } else {
                    buf.extend_from_slice(&chunk[..n]);
                }
            }
            RtspStep::Close { why } => {
                log::info!("RTSP from {peer} closed without a reply: {why}");
                return Ok(());
            }
            RtspStep::Reply {
                bytes,
                control: actions,
                ipc,
                summary,
            } => {
                log::info!("RTSP {peer}: {summary}");
                // Registered before the PLAY reply leaves: the client connects ENet right after.
                dispatch(
                    control,
                    outbox,
                    crate::session::Actions {
                        control: actions,
                        ipc,
                    },
                );
                stream.write_all(&bytes).await?;
                stream.shutdown().await?;
                return Ok(());
            }
        }
    }
}
