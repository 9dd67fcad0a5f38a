//! The listener: binds TCP (47990 in production), serves HTTP/1.1 with hyper, bounds
//! connections and their lifetime, and hands each request to [`crate::routes`].
//!
//! Contract: `StatusServer::bind` returns once the socket listens (so `local_addr` is usable);
//! `shutdown` stops accepting and aborts live connections. Every connection is bounded in time
//! ([`CONNECTION_TIMEOUT`], [`HEADER_READ_TIMEOUT`]) and count ([`MAX_CONNECTIONS`]). At first
//! start (no password) `bind` logs the setup code with the status URLs once, at warn level;
//! the accept loop keeps the console snippet current ([`crate::console::CONSOLE_REFRESH`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::auth::{AuthError, AuthState};
use crate::backend::StatusBackend;
use crate::console::{CONSOLE_REFRESH, Console, local_addrs, status_urls};
use crate::shared::{Shared, StatusConfig};

/// Simultaneous connections; the page uses one or two per browser, scripts one each.
pub const MAX_CONNECTIONS: usize = 64;
/// A keep-alive connection is closed after this long; browsers reconnect transparently.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);
/// Time allowed to send the request head (slowloris bound).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// hyper's read buffer (headers must fit; hyper's minimum is 8 KiB).
pub const MAX_HEADER_BUF: usize = 16 * 1024;
/// Pause after a failed `accept` (e.g. EMFILE) so the loop does not spin.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub enum StatusError {
    Auth(AuthError),
    Bind(SocketAddr, std::io::Error),
}

impl std::fmt::Display for StatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusError::Auth(e) => write!(f, "status auth state: {e}"),
            StatusError::Bind(a, e) => write!(f, "status server bind {a}: {e}"),
        }
    }
}

impl std::error::Error for StatusError {}

/// A running status server.
pub struct StatusServer {
    local_addr: SocketAddr,
    token_path: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl StatusServer {
    /// Opens the auth state in `state_dir` (creating the admin token, and the setup code while
    /// no password is set), binds `addr`, writes the console snippet when configured and starts
    /// serving on the current tokio runtime.
    pub async fn bind(
        addr: SocketAddr,
        config: StatusConfig,
        backend: Arc<dyn StatusBackend>,
        state_dir: &Path,
    ) -> Result<StatusServer, StatusError> {
        let auth = AuthState::open(state_dir).map_err(StatusError::Auth)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| StatusError::Bind(addr, e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| StatusError::Bind(addr, e))?;
        let console = config
            .console_issue
            .clone()
            .map(|p| Mutex::new(Console::new(p, local_addr)));
        if let Some(code) = auth.setup_code() {
            let urls = status_urls(local_addr, &local_addrs());
            let urls = if urls.is_empty() {
                format!("http://<this machine's address>:{}/", local_addr.port())
            } else {
                urls.join(" ")
            };
            let shown = if console.is_some() {
                "one use; also on the console"
            } else {
                "one use"
            };
            tracing::warn!(
                "status: no admin password yet: setup code {code} ({shown}): open {urls} and \
                 enter it to set the password"
            );
        }
        let shared = Arc::new(Shared {
            config,
            backend,
            auth: Mutex::new(auth),
            console,
        });
        shared.update_console(&shared.auth.lock().unwrap_or_else(|p| p.into_inner()));
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, shared, rx));
        tracing::info!(%local_addr, "status: serving");
        Ok(StatusServer {
            local_addr,
            token_path: state_dir.join(crate::auth::TOKEN_FILE),
            shutdown: Some(tx),
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the admin bearer token lives (for the operator's scripts).
    pub fn token_path(&self) -> &Path {
        &self.token_path
    }

    /// Stops accepting, aborts live connections and waits for the accept task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    let mut refresh = tokio::time::interval(CONSOLE_REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        while conns.try_join_next().is_some() {}
        tokio::select! {
            _ = &mut stop => break,
            _ = refresh.tick(), if shared.console.is_some() => {
                shared.update_console(&shared.auth.lock().unwrap_or_else(|p| p.into_inner()));
            }
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, "status: connection limit reached, closing");
                        continue;
                    };
                    let shared = shared.clone();
                    conns.spawn(async move {
                        let _permit = permit;
                        let _ = tokio::time::timeout(CONNECTION_TIMEOUT, serve(stream, peer, shared)).await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "status: accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            }
        }
    }
    conns.abort_all();
}

async fn serve(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let svc = service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(crate::routes::handle(req, peer, &shared).await) }
    });
    let r = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BUF)
        .serve_connection(TokioIo::new(stream), svc)
        .await;
    if let Err(e) = r {
        tracing::debug!(%peer, error = %e, "status: connection ended with error");
    }
}
