//! `strahl-control serve`: keep a connection to the data plane.
//!
//! - Connect with exponential back-off (50 ms doubling to 2 s) until the socket answers, for at
//!   most `connect_timeout` — at start and again after losing the data plane. A version
//!   mismatch is not retried (it needs an upgrade, not patience).
//! - Poll statistics every `stats_interval` and keep the latest snapshot in
//!   [`DATAPLANE_METRICS`] (the status endpoint exports it).
//! - Track the sessions the data plane reports for us; when the data plane goes away they are
//!   gone too (it stops them on disconnect).
//! - On shutdown (SIGTERM/SIGINT in the binary) stop our own sessions with `SessionStop`, wait
//!   for their `SessionEnded` (bounded), and return. The data plane is left running.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use strahl_ipc::{Event, Message, SessionStop, StatsRequest, StopReason};
use strahl_metrics::{GLOBAL, Metric, Registry};
use tokio::time::{Instant, MissedTickBehavior};

use crate::ipc::{Client, ClientError};

/// The data plane's metrics as of the last snapshot.
pub static DATAPLANE_METRICS: Registry = Registry::new();

/// First reconnect delay; short so a data plane starting alongside us is found quickly.
const BACKOFF_START: Duration = Duration::from_millis(50);
/// Longest delay between attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long shutdown waits for the data plane to confirm our SessionStops.
const STOP_CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct Options {
    pub socket: PathBuf,
    pub stats_interval: Duration,
    pub connect_timeout: Duration,
}

#[derive(Debug)]
pub enum ServeError {
    /// The data plane could not be reached within the connect timeout.
    Unreachable {
        socket: PathBuf,
        waited: Duration,
        last: String,
    },
    /// A handshake failure that retrying cannot fix (version mismatch).
    Fatal(ClientError),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable {
                socket,
                waited,
                last,
            } => write!(
                f,
                "data plane not reachable at {} after {:.1} s (last error: {last})",
                socket.display(),
                waited.as_secs_f64()
            ),
            Self::Fatal(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServeError {}

enum Ended {
    Shutdown,
    Lost(String),
}

/// Runs until `shutdown` completes (→ `Ok`) or the data plane is unreachable / incompatible.
pub async fn serve(opts: &Options, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    tokio::pin!(shutdown);
    let mut sessions = BTreeSet::new();
    loop {
        let client = tokio::select! {
            _ = &mut shutdown => {
                log::info!("shutdown while waiting for the data plane");
                return Ok(());
            }
            r = connect_with_backoff(opts) => r?,
        };
        log::info!(
            "connected to dataplane v{}.{} (pid {}, {})",
            client.peer.major,
            client.peer.minor,
            client.peer.pid,
            client.peer.build
        );
        GLOBAL.set(Metric::DataplaneConnected, 1);
        let ended = connected(client, opts, &mut shutdown, &mut sessions).await;
        GLOBAL.set(Metric::DataplaneConnected, 0);
        match ended {
            Ended::Shutdown => return Ok(()),
            Ended::Lost(why) => {
                log::warn!(
                    "lost the data plane ({why}); {} session(s) ended with it; reconnecting",
                    sessions.len()
                );
                sessions.clear();
            }
        }
    }
}

async fn connect_with_backoff(opts: &Options) -> Result<Client, ServeError> {
    let start = Instant::now();
    let deadline = start + opts.connect_timeout;
    let mut delay = BACKOFF_START;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match Client::connect(&opts.socket).await {
            Ok(c) => return Ok(c),
            Err(e) if e.is_fatal() => {
                log::error!("{e}");
                GLOBAL.inc(Metric::IpcHandshakesRefused);
                return Err(ServeError::Fatal(e));
            }
            Err(e) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(ServeError::Unreachable {
                        socket: opts.socket.clone(),
                        waited: now - start,
                        last: e.to_string(),
                    });
                }
                if attempts == 1 {
                    log::info!(
                        "waiting for the data plane at {} ({e})",
                        opts.socket.display()
                    );
                } else {
                    log::debug!("attempt {attempts}: {e}");
                }
                tokio::time::sleep(delay.min(deadline - now)).await;
                delay = (delay * 2).min(BACKOFF_MAX);
            }
        }
    }
}

async fn connected(
    mut client: Client,
    opts: &Options,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    sessions: &mut BTreeSet<u64>,
) -> Ended {
    let mut tick = tokio::time::interval(opts.stats_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut request_id = 0u32;
    let mut snapshots = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.as_mut() => {
                stop_sessions(&mut client, sessions).await;
                return Ended::Shutdown;
            }
            _ = tick.tick() => {
                request_id = request_id.wrapping_add(1);
                if let Err(e) = send(&mut client, &Message::StatsRequest(StatsRequest { request_id })).await {
                    return Ended::Lost(e.to_string());
                }
            }
            r = client.recv_raw() => {
                let msg = match r {
                    Err(e) => return Ended::Lost(e.to_string()),
                    Ok(Err(e)) => {
                        GLOBAL.inc(Metric::IpcDecodeErrors);
                        log::warn!("undecodable message from the data plane: {e}");
                        continue;
                    }
                    Ok(Ok(d)) => d.message,
                };
                GLOBAL.inc(Metric::IpcMessagesReceived);
                if let Some(lost) = handle(msg, sessions, &mut snapshots) {
                    return lost;
                }
            }
        }
    }
}

fn handle(msg: Message, sessions: &mut BTreeSet<u64>, snapshots: &mut u64) -> Option<Ended> {
    match msg {
        Message::StatsSnapshot(s) => {
            let unknown = DATAPLANE_METRICS.absorb(&s.counters);
            *snapshots += 1;
            if *snapshots == 1 {
                log::info!(
                    "first stats snapshot from the data plane: {} series ({unknown} unknown to this build), uptime {} ms",
                    s.counters.len(),
                    s.uptime_ms
                );
            } else {
                log::debug!(
                    "stats snapshot {}: {} series",
                    s.request_id,
                    s.counters.len()
                );
            }
        }
        Message::Event(Event::SessionStarted { id }) => {
            sessions.insert(id);
            log::info!("data plane started session {id}");
        }
        Message::Event(Event::SessionUpdated { id }) => {
            log::debug!("data plane updated session {id}")
        }
        Message::Event(Event::SessionEnded { id, reason }) => {
            sessions.remove(&id);
            log::info!("data plane ended session {id} ({reason:?})");
        }
        Message::Event(Event::TransportChosen {
            id,
            transport,
            detail,
        }) => {
            log::info!(
                "data plane transport{}: {} ({detail})",
                scope(id),
                transport.name()
            );
        }
        Message::Event(Event::SessionError { id, detail }) => {
            log::warn!("data plane: session {id}: {detail}")
        }
        Message::Event(Event::Unknown { tag }) => {
            log::debug!("ignoring event tag {tag} from a newer data plane")
        }
        Message::Error(e) => {
            log::warn!(
                "data plane reported {:?} about kind {}: {}",
                e.code,
                e.in_reply_to,
                e.detail
            )
        }
        Message::Refuse(r) => {
            return Some(Ended::Lost(format!(
                "refused after the handshake: {}",
                r.reason
            )));
        }
        other => log::warn!("unexpected {:?} from the data plane", other.kind()),
    }
    None
}

fn scope(id: u64) -> String {
    if id == 0 {
        String::new()
    } else {
        format!(" for session {id}")
    }
}

async fn send(client: &mut Client, m: &Message) -> Result<(), ClientError> {
    client.send(m).await?;
    GLOBAL.inc(Metric::IpcMessagesSent);
    Ok(())
}

/// Stops our sessions and waits (bounded) for the data plane to confirm.
async fn stop_sessions(client: &mut Client, sessions: &mut BTreeSet<u64>) {
    if sessions.is_empty() {
        log::info!("shutting down: no sessions to stop; the data plane keeps running");
        return;
    }
    let n = sessions.len();
    for id in sessions.iter().copied().collect::<Vec<_>>() {
        if let Err(e) = send(
            client,
            &Message::SessionStop(SessionStop {
                id,
                reason: StopReason::ControlShutdown,
            }),
        )
        .await
        {
            log::warn!("could not stop session {id}: {e}");
            return;
        }
    }
    let wait = async {
        let mut snapshots = 0;
        while !sessions.is_empty() {
            match client.recv().await {
                Ok(d) => {
                    handle(d.message, sessions, &mut snapshots);
                }
                Err(_) => break,
            }
        }
    };
    if tokio::time::timeout(STOP_CONFIRM_TIMEOUT, wait)
        .await
        .is_err()
    {
        log::warn!(
            "{} session stop(s) not confirmed within {STOP_CONFIRM_TIMEOUT:?}",
            sessions.len()
        );
    }
    log::info!("shutting down: stopped {n} session(s); the data plane keeps running");
}
