//! The HTTP (default 47989) and HTTPS (default 47984) listeners (reference §A1, §A3).
//!
//! Contract: `start` loads (or creates) the host identity and the paired set from the state
//! directory, binds both ports, and serves until `ServerHandle::shutdown`. One request per
//! connection (`Connection: close`), every wait bounded (header read, TLS handshake,
//! pairing stage 1), at most `MAX_CONNECTIONS` connections in flight. The handle exposes PIN
//! submission for the control binary / status page.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::crypto::PairingHash;
use crate::handlers::{
    APP_VERSION_MAJOR, App, DEFAULT_GPU_TYPE, HostInfo, Reply, RequestCtx, SCM_H264, Shared,
    Transport, default_display_modes,
};
use crate::identity::{HostIdentity, IdentityError};
use crate::launch::DisplayMode;
use crate::launch::SessionHost;
use crate::mdns::{MdnsConfig, MdnsResponder};
use crate::paired::{PairedClient, PairedStore, PairedStoreError};
use crate::pairing::{Entropy, PairingStats, PendingPin, PinError, system_entropy};

/// Default HTTP port (§A1).
pub const DEFAULT_HTTP_PORT: u16 = 47989;
/// Default HTTPS port: HTTP − 5 (§A1).
pub const DEFAULT_HTTPS_PORT: u16 = 47984;
/// Default RTSP port: HTTP + 21 (§A1).
pub const DEFAULT_RTSP_PORT: u16 = 48010;
/// Connections served at once. Each holds a few KiB; stage-1 requests may be held up to
/// `PIN_WAIT`, so a handful of slow peers must not exhaust it.
pub const MAX_CONNECTIONS: usize = 64;
/// Time to receive the request head. Moonlight sends it at once; this only evicts idle peers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to finish the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for a whole connection (stage 1 may wait `PIN_WAIT` = 60 s).
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(90);

/// Configuration for `start`.
pub struct ServerConfig {
    /// Where the host identity and paired clients live.
    pub state_dir: PathBuf,
    pub hostname: String,
    pub http_addr: SocketAddr,
    pub https_addr: SocketAddr,
    /// Port put into `sessionUrl0`.
    pub rtsp_port: u16,
    pub apps: Vec<App>,
    /// MAC reported over HTTPS.
    pub mac: String,
    /// ServerCodecModeSupport; must be non-zero (H.264 only for now: `SCM_H264`).
    pub codec_mode_support: u32,
    /// Randomness for pairing; `None` = the OS RNG.
    pub entropy: Option<Entropy>,
    /// Answer mDNS queries for `_nvstream._tcp` (on by default, off in `loopback_ephemeral`).
    /// The responder never announces: it sends only replies to queries naming us.
    pub mdns: bool,
    /// `gputype` in /serverinfo.
    pub gpu_type: String,
    /// `SupportedDisplayMode` in /serverinfo.
    pub display_modes: Vec<DisplayMode>,
}

impl ServerConfig {
    /// Defaults: all interfaces, standard ports, "Desktop" app, H.264.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            state_dir: state_dir.into(),
            hostname: "strahl".into(),
            http_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_HTTP_PORT),
            https_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_HTTPS_PORT),
            rtsp_port: DEFAULT_RTSP_PORT,
            apps: App::default_list(),
            mac: "00:00:00:00:00:00".into(),
            codec_mode_support: SCM_H264,
            entropy: None,
            mdns: true,
            gpu_type: DEFAULT_GPU_TYPE.into(),
            display_modes: default_display_modes(),
        }
    }

    /// Loopback with ephemeral ports (tests run in parallel).
    pub fn loopback_ephemeral(state_dir: impl Into<PathBuf>) -> Self {
        let mut c = Self::new(state_dir);
        c.http_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        c.https_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        c.mdns = false;
        c
    }
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    Identity(IdentityError),
    PairedStore(PairedStoreError),
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    Tls(rustls::Error),
    Config(&'static str),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Identity(e) => write!(f, "{e}"),
            StartError::PairedStore(e) => write!(f, "{e}"),
            StartError::Bind { addr, source } => write!(f, "cannot bind {addr}: {source}"),
            StartError::Tls(e) => write!(f, "TLS setup failed: {e}"),
            StartError::Config(m) => write!(f, "invalid configuration: {m}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A running server.
pub struct ServerHandle {
    shared: Arc<Shared>,
    http_addr: SocketAddr,
    https_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    mdns: Option<MdnsResponder>,
}

/// Starts both listeners on the current tokio runtime.
pub async fn start(
    cfg: ServerConfig,
    host: Arc<dyn SessionHost>,
) -> Result<ServerHandle, StartError> {
    if cfg.codec_mode_support == 0 {
        return Err(StartError::Config(
            "codec_mode_support must be non-zero (clients reject 0)",
        ));
    }
    if cfg.apps.iter().any(|a| a.id == 0) {
        return Err(StartError::Config("app ids must be positive"));
    }
    let identity =
        Arc::new(HostIdentity::load_or_create(&cfg.state_dir).map_err(StartError::Identity)?);
    let paired = PairedStore::load(&cfg.state_dir).map_err(StartError::PairedStore)?;
    let tls = TlsAcceptor::from(Arc::new(
        crate::tls::server_config(&identity).map_err(StartError::Tls)?,
    ));
    let bind = |addr| async move {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let local = l
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        Ok::<_, StartError>((l, local))
    };
    let (http_l, http_addr) = bind(cfg.http_addr).await?;
    let (https_l, https_addr) = bind(cfg.https_addr).await?;
    // Not fatal: discovery is a convenience (clients add the host by address), and 5353 may be
    // held by a responder that does not share it.
    let mdns = if cfg.mdns {
        match MdnsResponder::start(MdnsConfig::new(&cfg.hostname, http_addr.port())).await {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::error!(
                    "{e}; Moonlight will not list this host by itself (add it by address)"
                );
                None
            }
        }
    } else {
        None
    };
    let pairing = crate::pairing::Pairing::new(
        identity.clone(),
        PairingHash::for_app_version_major(APP_VERSION_MAJOR),
        cfg.entropy.unwrap_or_else(system_entropy),
    );
    let shared = Arc::new(Shared {
        info: HostInfo {
            hostname: cfg.hostname,
            mac: cfg.mac,
            codec_mode_support: cfg.codec_mode_support,
            apps: cfg.apps,
            http_port: http_addr.port(),
            https_port: https_addr.port(),
            rtsp_port: cfg.rtsp_port,
            gpu_type: cfg.gpu_type,
            display_modes: cfg.display_modes,
        },
        unique_id: identity.unique_id(),
        identity,
        pairing: Mutex::new(pairing),
        paired: RwLock::new(paired),
        host,
        pin_submitted: watch::channel(0).0,
        pin_requested: watch::channel(0).0,
        last_seen: Mutex::new(std::collections::HashMap::new()),
        clipboard: Arc::new(crate::clipboard::Clipboard::new()),
    });
    let (shutdown, _) = watch::channel(false);
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let tasks = vec![
        tokio::spawn(accept_loop(
            http_l,
            None,
            shared.clone(),
            limit.clone(),
            shutdown.subscribe(),
        )),
        tokio::spawn(accept_loop(
            https_l,
            Some(tls),
            shared.clone(),
            limit,
            shutdown.subscribe(),
        )),
    ];
    tracing::info!(%http_addr, %https_addr, "gamestream: listening");
    Ok(ServerHandle {
        shared,
        http_addr,
        https_addr,
        shutdown,
        tasks,
        mdns,
    })
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!("gamestream accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let shared = shared.clone();
        let tls = tls.clone();
        let mut conn_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                r = tokio::time::timeout(CONNECTION_TIMEOUT, serve_connection(stream, peer, tls, shared)) => {
                    if r.is_err() { tracing::debug!(%peer, "connection timed out"); }
                }
                _ = conn_shutdown.changed() => {}
            }
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
) {
    let local_ip = match stream.local_addr() {
        Ok(a) => a.ip(),
        Err(_) => return,
    };
    let _ = stream.set_nodelay(true);
    match tls {
        None => {
            let ctx = RequestCtx {
                transport: Transport::Http,
                local_ip,
                peer_ip: peer.ip(),
            };
            serve_http1(TokioIo::new(stream), ctx, shared).await;
        }
        Some(acceptor) => {
            let tls_stream =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => return,
                };
            let Some(cert) = tls_stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec())
            else {
                return; // unreachable: the verifier makes client certs mandatory
            };
            let ctx = RequestCtx {
                transport: Transport::Https { client_cert: cert },
                local_ip,
                peer_ip: peer.ip(),
            };
            serve_http1(TokioIo::new(tls_stream), ctx, shared).await;
        }
    }
}

async fn serve_http1<I>(io: I, ctx: RequestCtx, shared: Arc<Shared>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let ctx = Arc::new(ctx);
    let svc = service_fn(move |req: Request<Incoming>| {
        let shared = shared.clone();
        let ctx = ctx.clone();
        async move {
            let path = req.uri().path().to_owned();
            let query = req.uri().query().unwrap_or("").to_owned();
            let post = req.method() == hyper::Method::POST;
            // Only a POST carries a body we read, bounded one byte past the clipboard's
            // limit so an over-long text is refused by size rather than cut.
            let body = if post {
                let limited = http_body_util::Limited::new(
                    req.into_body(),
                    crate::clipboard::MAX_CLIPBOARD_BYTES + 1,
                );
                match http_body_util::BodyExt::collect(limited).await {
                    Ok(c) => Some(c.to_bytes().to_vec()),
                    Err(_) => {
                        let x = crate::xml::XmlReply::error(413, "Request body too large");
                        return Ok(render(Reply::Xml(x)));
                    }
                }
            } else {
                None
            };
            let reply = shared.route(&ctx, &path, &query, body.as_deref()).await;
            tracing::debug!(path, status = ?match &reply { Reply::Xml(x) => x.status(), _ => 200 }, "nvhttp");
            Ok::<_, std::convert::Infallible>(render(reply))
        }
    });
    let r = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(64 * 1024)
        .serve_connection(io, svc)
        .await;
    if let Err(e) = r {
        tracing::debug!("nvhttp connection error: {e}");
    }
}

fn render(reply: Reply) -> Response<Full<Bytes>> {
    let (ctype, body) = match reply {
        Reply::Xml(x) => ("application/xml", Bytes::from(x.render())),
        Reply::Png(p) => ("image/png", Bytes::from_static(p)),
        Reply::Text(t) => ("text/plain; charset=utf-8", Bytes::from(t)),
    };
    let mut resp = Response::new(Full::new(body));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}

impl ServerHandle {
    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The bound HTTPS address.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// The host's /serverinfo `uniqueid`.
    pub fn unique_id(&self) -> &str {
        &self.shared.unique_id
    }

    /// The host certificate PEM (what clients pin).
    pub fn cert_pem(&self) -> &str {
        self.shared.identity.cert_pem()
    }

    /// Gives the operator's PIN to the one waiting stage-1 request; returns its uniqueid.
    pub fn submit_pin(&self, pin: &str) -> Result<String, PinError> {
        let r = self.pairing().submit_pin(pin, Instant::now());
        if r.is_ok() {
            self.shared.pin_submitted.send_modify(|n| *n += 1);
        }
        r
    }

    /// Gives the PIN to the stage-1 request of `uniqueid` (when several are waiting).
    pub fn submit_pin_for(&self, uniqueid: &str, pin: &str) -> Result<String, PinError> {
        let r = self.pairing().submit_pin_for(uniqueid, pin, Instant::now());
        if r.is_ok() {
            self.shared.pin_submitted.send_modify(|n| *n += 1);
        }
        r
    }

    fn pairing(&self) -> std::sync::MutexGuard<'_, crate::pairing::Pairing> {
        self.shared
            .pairing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Stage-1 requests currently waiting for a PIN.
    pub fn pending_pins(&self) -> Vec<PendingPin> {
        self.pairing().pending_pins(Instant::now())
    }

    /// Waits (at most `timeout`) until some client waits for a PIN.
    pub async fn wait_pin_request(&self, timeout: Duration) -> Option<PendingPin> {
        let mut rx = self.shared.pin_requested.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(p) = self.pending_pins().into_iter().next() {
                return Some(p);
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return None },
                () = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }

    /// Pairing counters.
    pub fn pairing_stats(&self) -> PairingStats {
        self.shared
            .pairing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stats()
    }

    /// The paired clients.
    pub fn paired_clients(&self) -> Vec<PairedClient> {
        self.shared
            .paired
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clients()
            .to_vec()
    }

    /// The host clipboard (the control stream's set-clipboard message writes it too).
    pub fn clipboard(&self) -> Arc<crate::clipboard::Clipboard> {
        self.shared.clipboard.clone()
    }

    /// Sets the permissions of the paired client with this certificate PEM; `Ok(false)` when
    /// it is not paired. Applies to its requests at once and to its input from its next
    /// launch or resume.
    pub fn set_permissions(
        &self,
        cert_pem: &str,
        perms: crate::perms::Permissions,
    ) -> Result<bool, PairedStoreError> {
        let r = self
            .shared
            .paired
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .set_permissions(cert_pem, perms);
        if let Ok(true) = r {
            tracing::info!(%perms, "permissions of a paired client changed by the operator");
        }
        r
    }

    /// Unpairs a client by certificate PEM; returns how many entries were removed.
    pub fn unpair(&self, cert_pem: &str) -> Result<usize, PairedStoreError> {
        self.shared
            .paired
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(cert_pem)
    }

    /// Stops accepting and closes in-flight connections.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if let Some(m) = self.mdns {
            m.stop().await;
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
