//! `strahl-control serve`: run the GameStream host and keep a connection to the data plane.
//!
//! - Start the host first ([`start_host`]): nvhttp HTTP/HTTPS (strahl-gamestream) with the
//!   session manager as its `SessionHost`, the RTSP listener, the admin socket (`pin`). A bind
//!   failure is fatal (exit 1).
//! - Messages the session manager produces (SessionStart at PLAY, SessionStop at /cancel) are
//!   queued on the outbox and sent while connected; `SessionEnded` from the data plane and the
//!   loss of the data plane are reported back to the manager. Messages produced while the data
//!   plane is away wait in the bounded (human-rate) outbox and are sent after reconnecting; one
//!   that does not fit is refused and logged (`shared.rs`).
//! - Connect with exponential back-off (50 ms doubling to 2 s) until the socket answers, for at
//!   most `connect_timeout` — at start and again after losing the data plane. A version
//!   mismatch is not retried (it needs an upgrade, not patience).
//! - Poll statistics every `stats_interval` and keep the latest snapshot in the host's
//!   [`Live`] (owned here, shared with the status backend, which exports it).
//! - No process-wide state of our own: the host's state ([`Host`]) is created by
//!   [`start_host`] and passed to whoever needs it; our counters go to the registry it holds
//!   (the process registry `strahl_metrics::GLOBAL`).
//! - Track the sessions the data plane reports for us (several may run, one per client); when
//!   the data plane goes away they are gone too (it stops them on disconnect). Its
//!   `TransportChosen` events go to the status: id 0 is the start-up choice, any other id that
//!   session's own transport.
//! - On shutdown (SIGTERM/SIGINT in the binary) stop our own sessions with `SessionStop`, wait
//!   for their `SessionEnded` (bounded), and return. The data plane is left running.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strahl_gamestream::{ServerConfig, ServerHandle, SessionHost};
use strahl_ipc::{Event, Message, SessionStop, StatsRequest, StopReason};
use strahl_metrics::{GLOBAL, Metric, Registry};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::host::ManagerHost;
use crate::ipc::{Client, ClientError};
use crate::live::Live;
use crate::session::{ManagerConfig, SessionManager};
use crate::shared::{OUTBOX_CAPACITY, OutboxReceiver, SharedManager, lock, outbox};

/// First reconnect delay; short so a data plane starting alongside us is found quickly.
const BACKOFF_START: Duration = Duration::from_millis(50);
/// Longest delay between attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long shutdown waits for the data plane to confirm our SessionStops.
const STOP_CONFIRM_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Options {
    pub socket: PathBuf,
    pub stats_interval: Duration,
    pub connect_timeout: Duration,
    pub host: HostOptions,
}

/// The GameStream host's settings (from the configuration and the command line).
pub struct HostOptions {
    pub gamestream: ServerConfig,
    pub rtsp_addr: SocketAddr,
    pub manager: ManagerConfig,
    pub admin_socket: PathBuf,
    /// Where client input goes (`[input]`).
    pub input: crate::input_sink::InputOptions,
    /// The status server (`[network] status_port`); `None` runs without it.
    pub status: Option<StatusOptions>,
    /// The native `strahl/1` endpoint (`[network] native_port`).
    pub native: crate::native::NativeOptions,
}

/// Where and how the status server runs.
pub struct StatusOptions {
    pub addr: SocketAddr,
    pub config: strahl_status::StatusConfig,
    pub facts: crate::status_backend::HostFacts,
}

/// The running host: nvhttp servers, RTSP listener, admin socket.
pub struct Host {
    pub server: Arc<ServerHandle>,
    pub manager: SharedManager,
    pub rtsp_addr: SocketAddr,
    /// The ENet control server (UDP `control_port`).
    pub control: Arc<crate::control_link::ControlLink>,
    /// What the IPC loop learns from the data plane; shared with the status backend.
    pub live: Arc<Live>,
    /// Where our counters go: the process registry (the one `/metrics` exports).
    metrics: &'static Registry,
    outbox_rx: OutboxReceiver,
    /// The status server, when configured.
    pub status: Option<strahl_status::StatusServer>,
    /// The native `strahl/1` host (pairing window, paired native clients, endpoint).
    pub native: crate::native::NativeHost,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Binds everything; nothing is left running on error.
pub async fn start_host(opts: HostOptions) -> Result<Host, ServeError> {
    // The process registry: the one `/metrics` exports, shared with the code that counts into
    // `GLOBAL` directly; handed down from here rather than named in each file.
    let metrics: &'static Registry = &GLOBAL;
    // First: a later failure drops the link, which stops its thread.
    let (control, control_events, input) = start_control(&opts, metrics)?;
    let manager: SharedManager = Arc::new(Mutex::new(SessionManager::new(opts.manager)));
    let (outbox, outbox_rx) = outbox(OUTBOX_CAPACITY, metrics);
    let live = Arc::new(Live::new());
    // The input sink's description names the sink first ("uinput (…)", "recording to …").
    let input_choice = if input.starts_with("uinput") {
        "uinput"
    } else {
        "record"
    };
    live.input_chosen(input_choice, &input);
    let rtsp = tokio::net::TcpListener::bind(opts.rtsp_addr)
        .await
        .map_err(|e| ServeError::Host(format!("cannot bind RTSP {}: {e}", opts.rtsp_addr)))?;
    let rtsp_addr = rtsp
        .local_addr()
        .map_err(|e| ServeError::Host(e.to_string()))?;
    let admin = crate::admin::bind(&opts.admin_socket).map_err(|e| {
        ServeError::Host(format!(
            "cannot bind the admin socket {}: {e}",
            opts.admin_socket.display()
        ))
    })?;
    let state_dir = opts.gamestream.state_dir.clone();
    let hostname = opts.gamestream.hostname.clone();
    let session_host: Arc<dyn SessionHost> = Arc::new(ManagerHost {
        manager: manager.clone(),
        outbox: outbox.clone(),
        control: control.clone(),
    });
    let server = match strahl_gamestream::start(opts.gamestream, session_host).await {
        Ok(s) => Arc::new(s),
        Err(e) => {
            let _ = std::fs::remove_file(&opts.admin_socket);
            control.shutdown();
            return Err(ServeError::Host(format!("GameStream host: {e}")));
        }
    };
    // The control stream's set-clipboard writes the clipboard `/actions/clipboard` serves.
    control.attach_clipboard(server.clipboard());
    let video_port = lock(&manager).config().video_port;
    let native = match crate::native::NativeHost::start(
        &opts.native,
        &state_dir,
        outbox.clone(),
        video_port,
    ) {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&opts.admin_socket);
            control.shutdown();
            return Err(ServeError::Host(format!("native host: {e}")));
        }
    };
    let status = match opts.status {
        None => None,
        Some(st) => {
            let backend = Arc::new(crate::status_backend::ControlBackend::new(
                st.facts,
                &server,
                &control,
                manager.clone(),
                outbox.clone(),
                live.clone(),
                metrics,
                native.shared.clone(),
            ));
            match strahl_status::StatusServer::bind(st.addr, st.config, backend, &state_dir).await {
                Ok(s) => {
                    // A wildcard address is no URL to type: name this machine's addresses.
                    let reachable = if s.local_addr().ip().is_unspecified() {
                        let urls = strahl_status::console::status_urls(
                            s.local_addr(),
                            &strahl_status::console::local_addrs(),
                        );
                        format!("reachable at {}; ", urls.join(" "))
                    } else {
                        String::new()
                    };
                    log::info!(
                        "status page: http://{}/ ({reachable}admin token in {})",
                        s.local_addr(),
                        s.token_path().display()
                    );
                    Some(s)
                }
                // Not fatal: streaming works without the page, and the operator sees why here
                // (and `strahl-control doctor` names the program holding the port).
                Err(e) => {
                    log::error!("status page unavailable: {e}");
                    None
                }
            }
        }
    };
    let (stop, _) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(crate::host::rtsp_listener(
            rtsp,
            manager.clone(),
            outbox.clone(),
            control.clone(),
            stop.subscribe(),
        )),
        tokio::spawn(crate::control_link::run_events(
            control_events,
            manager.clone(),
            control.clone(),
            outbox,
            metrics,
            stop.subscribe(),
        )),
        tokio::spawn(crate::admin::serve(
            admin,
            opts.admin_socket.clone(),
            server.clone(),
            stop.subscribe(),
        )),
    ];
    let media = lock(&manager).config().clone();
    log::info!(
        "GameStream host \"{}\" listening: HTTP {}, HTTPS {}, RTSP {} (served only while a launch \
         is pending); UDP video {}, control {}, audio {}; state {} ({} paired client(s)); \
         admin socket {}",
        hostname,
        server.http_addr(),
        server.https_addr(),
        rtsp_addr,
        media.video_port,
        media.control_port,
        media.audio_port,
        state_dir.display(),
        server.paired_clients().len(),
        opts.admin_socket.display()
    );
    log::info!(
        "to pair: add this host in Moonlight (port {}), then run: strahl-control pin <PIN> when \
         Moonlight shows it",
        server.http_addr().port()
    );
    Ok(Host {
        server,
        manager,
        rtsp_addr,
        control,
        live,
        metrics,
        outbox_rx,
        status,
        native,
        stop,
        tasks,
    })
}

/// The input sink and the ENet control server on UDP `control_port` (same address as RTSP);
/// with the sink's description (which sink, and why).
fn start_control(
    opts: &HostOptions,
    metrics: &'static Registry,
) -> Result<
    (
        Arc<crate::control_link::ControlLink>,
        crate::control_link::ControlEvents,
        String,
    ),
    ServeError,
> {
    let (sink, what) = crate::input_sink::open(&opts.input).map_err(ServeError::Host)?;
    let bind = SocketAddr::new(opts.rtsp_addr.ip(), opts.manager.control_port);
    let (link, events) = crate::control_link::ControlLink::start(
        bind,
        crate::input_sink::CountedSink::with_registry(sink, metrics),
    )
    .map_err(|e| ServeError::Host(format!("cannot bind ENet control UDP {bind}: {e}")))?;
    log::info!(
        "ENet control on UDP {}; input sink: {what}",
        link.local_addr()
    );
    Ok((Arc::new(link), events, what))
}

impl Host {
    /// Stops the listeners (bounded by the servers' own shutdown).
    pub async fn stop(self) {
        if let Some(s) = self.status {
            s.shutdown().await;
        }
        self.native.shutdown();
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        // Waits for the service thread's last turn (≤ its 1 ms poll interval).
        self.control.shutdown();
        match Arc::try_unwrap(self.server) {
            Ok(s) => s.shutdown().await,
            Err(_) => log::warn!("GameStream server still referenced at shutdown"),
        }
    }
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
    /// The GameStream host could not start (bind, state directory).
    Host(String),
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
            Self::Host(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ServeError {}

enum Ended {
    Shutdown,
    Lost(String),
}

/// Runs until `shutdown` completes (→ `Ok`) or the data plane is unreachable / incompatible.
pub async fn serve(opts: Options, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    let Options {
        socket,
        stats_interval,
        connect_timeout,
        host,
    } = opts;
    let opts = Conn {
        socket,
        stats_interval,
        connect_timeout,
    };
    let mut host = start_host(host).await?;
    let r = run_ipc(&opts, shutdown, &mut host).await;
    host.stop().await;
    r
}

struct Conn {
    socket: PathBuf,
    stats_interval: Duration,
    connect_timeout: Duration,
}

async fn run_ipc(
    opts: &Conn,
    shutdown: impl Future<Output = ()>,
    host: &mut Host,
) -> Result<(), ServeError> {
    tokio::pin!(shutdown);
    let mut sessions = BTreeSet::new();
    loop {
        let client = tokio::select! {
            _ = &mut shutdown => {
                log::info!("shutdown while waiting for the data plane");
                return Ok(());
            }
            r = connect_with_backoff(opts, host.metrics) => r?,
        };
        log::info!(
            "connected to dataplane v{}.{} (pid {}, {})",
            client.peer.major,
            client.peer.minor,
            client.peer.pid,
            client.peer.build
        );
        host.metrics.set(Metric::DataplaneConnected, 1);
        let ended = connected(client, opts, &mut shutdown, &mut sessions, host).await;
        host.metrics.set(Metric::DataplaneConnected, 0);
        host.live.dataplane_lost();
        let ended_actions = lock(&host.manager).session_ended(None);
        host.control.execute(&ended_actions.control);
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

async fn connect_with_backoff(opts: &Conn, metrics: &Registry) -> Result<Client, ServeError> {
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
                metrics.inc(Metric::IpcHandshakesRefused);
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
    opts: &Conn,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    sessions: &mut BTreeSet<u64>,
    host: &mut Host,
) -> Ended {
    let mut tick = tokio::time::interval(opts.stats_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut request_id = 0u32;
    let mut snapshots = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.as_mut() => {
                stop_sessions(&mut client, sessions, &host.live, host.metrics).await;
                return Ended::Shutdown;
            }
            Some(m) = host.outbox_rx.recv() => {
                log_outgoing(&m, &host.live);
                if let Err(e) = send(&mut client, &m, host.metrics).await {
                    return Ended::Lost(e.to_string());
                }
            }
            _ = tick.tick() => {
                request_id = request_id.wrapping_add(1);
                if let Err(e) = send(&mut client, &Message::StatsRequest(StatsRequest { request_id }), host.metrics).await {
                    return Ended::Lost(e.to_string());
                }
            }
            r = client.recv_raw() => {
                let msg = match r {
                    Err(e) => return Ended::Lost(e.to_string()),
                    Ok(Err(e)) => {
                        host.metrics.inc(Metric::IpcDecodeErrors);
                        log::warn!("undecodable message from the data plane: {e}");
                        continue;
                    }
                    Ok(Ok(d)) => d.message,
                };
                host.metrics.inc(Metric::IpcMessagesReceived);
                if let Message::Event(Event::SessionEnded { id, .. }) = &msg
                    && !host.native.ended(*id)
                {
                    let a = lock(&host.manager).session_ended(Some(*id));
                    host.control.execute(&a.control);
                }
                // A native session the data plane refused or lost: its client is told.
                if let Message::Event(Event::SessionError { id, .. }) = &msg {
                    host.native.ended(*id);
                }
                if let Message::Event(Event::VideoCaps(caps)) = &msg {
                    lock(&host.manager).set_video_caps(caps);
                }
                // A native epoch's first frame: the waiting reconfigure is answered.
                if let Message::Event(Event::Reconfigured { id, epoch, first_frame }) = &msg {
                    host.native.sessions.reconfigured(*id, *epoch, *first_frame);
                }
                if let Some(lost) = handle(msg, sessions, &mut snapshots, &host.live) {
                    return lost;
                }
            }
        }
    }
}

fn handle(
    msg: Message,
    sessions: &mut BTreeSet<u64>,
    snapshots: &mut u64,
    live: &Live,
) -> Option<Ended> {
    match msg {
        Message::StatsSnapshot(s) => {
            let unknown = live.absorb_snapshot(&s.counters, std::time::Instant::now());
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
            live.session_ended(id);
            log::info!("data plane ended session {id} ({reason:?})");
        }
        // id 0: the start-up self-test's choice (host-wide); otherwise the transport session
        // `id`'s media leaves through, sent when the data plane decides and again on a fallback.
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
            if id == 0 {
                live.transport_chosen(transport.name(), &detail);
            } else if !live.session_transport(id, transport.name(), &detail) {
                log::debug!("transport for session {id}, which is not ours (any more)");
            }
        }
        Message::Event(Event::SessionError { id, detail }) => {
            log::warn!("data plane: session {id}: {detail}")
        }
        // Applied to the session manager by the receive loop (it holds the manager).
        Message::Event(Event::VideoCaps(_)) => {}
        // The data plane's start-up choice for capture, encode or audio: the status page.
        Message::Event(Event::Detected(d)) => {
            log::info!(
                "data plane {}: {} ({})",
                d.subsystem.name(),
                d.choice,
                d.reason
            );
            live.detected(d.subsystem.name(), &d.choice, &d.reason);
        }
        // Handled by the receive loop (the native host's reconfigure waits for it).
        Message::Event(Event::Reconfigured { .. }) => {}
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

fn log_outgoing(m: &Message, live: &Live) {
    match m {
        Message::SessionStart(s) => {
            live.session_start(s);
            let key = match &s.keys {
                strahl_ipc::KeyMaterial::GameStream { rikey, rikeyid } => format!(
                    "rikeyid {}, key {}",
                    *rikeyid as i32,
                    crate::session::key_fingerprint(&rikey.0)
                ),
                strahl_ipc::KeyMaterial::Native { secret } => {
                    format!("key {}", crate::session::key_fingerprint(&secret.0))
                }
            };
            log::info!(
                "SessionStart {} to the data plane: {:?} peer {} video {}x{}@{} {:?} {} kbit/s packet {} B fec {} %, audio {} ch {} ms {} kbit/s, {key}",
                s.id,
                s.protocol,
                s.peer.ip(),
                s.video.width,
                s.video.height,
                s.video.fps,
                s.video.codec,
                s.video.bitrate_kbps,
                s.video.packet_size,
                s.video.fec_percent,
                s.audio.channels,
                s.audio.packet_duration_ms,
                s.audio.bitrate_kbps
            );
        }
        Message::SessionStop(s) => {
            log::info!("SessionStop {} ({:?}) to the data plane", s.id, s.reason)
        }
        other => log::debug!("{:?} to the data plane", other.kind()),
    }
}

fn scope(id: u64) -> String {
    if id == 0 {
        String::new()
    } else {
        format!(" for session {id}")
    }
}

async fn send(client: &mut Client, m: &Message, metrics: &Registry) -> Result<(), ClientError> {
    client.send(m).await?;
    metrics.inc(Metric::IpcMessagesSent);
    Ok(())
}

/// Stops our sessions and waits (bounded) for the data plane to confirm.
async fn stop_sessions(
    client: &mut Client,
    sessions: &mut BTreeSet<u64>,
    live: &Live,
    metrics: &Registry,
) {
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
            metrics,
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
                    handle(d.message, sessions, &mut snapshots, live);
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
