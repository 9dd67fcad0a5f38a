//! The local admin socket of the running control plane (`control.sock`, next to the data-plane
//! socket), used by `strahl-control pin`.
//!
//! Protocol: a Unix stream connection carries one JSON line each way.
//! - request `{"cmd":"pin","pin":"1234"}` (optionally `"client":"<uniqueid>"`);
//! - reply `{"ok":true,"client":"<uniqueid>"}` or `{"ok":false,"error":"<message>"}`.
//!
//! The socket is created mode 0600 (only the service user may pair clients). Requests are
//! bounded: [`MAX_REQUEST`] bytes, [`REQUEST_TIMEOUT`]. [`submit_pin`] is the in-process function
//! the status page calls too.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strahl_gamestream::PinError;
use strahl_gamestream::ServerHandle;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

/// File name of the admin socket, in the data-plane socket's directory.
pub const SOCKET_NAME: &str = "control.sock";
/// Largest request line accepted.
pub const MAX_REQUEST: u64 = 4096;
/// Time a peer has to send its request (and the CLI to get an answer).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The default admin socket for a data-plane socket path.
pub fn default_path(dataplane_socket: &Path) -> PathBuf {
    dataplane_socket
        .parent()
        .unwrap_or(Path::new("/"))
        .join(SOCKET_NAME)
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Request {
    pub cmd: String,
    #[serde(default)]
    pub pin: Option<String>,
    #[serde(default)]
    pub client: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// True for exactly four ASCII digits (the only PIN Moonlight shows).
pub fn valid_pin(pin: &str) -> bool {
    pin.len() == 4 && pin.bytes().all(|b| b.is_ascii_digit())
}

/// Hands the operator's PIN to the waiting pairing request (to `client` when several wait).
/// Returns the uniqueid of the client that received it.
pub fn submit_pin(
    server: &ServerHandle,
    pin: &str,
    client: Option<&str>,
) -> Result<String, PinError> {
    match client {
        Some(c) => server.submit_pin_for(c, pin),
        None => server.submit_pin(pin),
    }
}

fn answer(server: &ServerHandle, req: Request) -> Reply {
    let fail = |e: String| Reply {
        ok: false,
        client: None,
        error: Some(e),
    };
    match req.cmd.as_str() {
        "pin" => {
            let Some(pin) = req.pin else {
                return fail("missing \"pin\"".into());
            };
            match submit_pin(server, &pin, req.client.as_deref()) {
                Ok(client) => {
                    log::info!("PIN delivered to client {client}");
                    Reply {
                        ok: true,
                        client: Some(client),
                        error: None,
                    }
                }
                Err(e) => {
                    log::info!("PIN refused: {e}");
                    fail(e.to_string())
                }
            }
        }
        other => fail(format!("unknown command {other:?}")),
    }
}

/// Binds the admin socket (mode 0600). A live socket at `path` (another control plane) is an
/// error; a stale file is replaced.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        if StdUnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!(
                    "{} is served by another running control plane",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        // Private like the data plane's socket directory (it may not exist yet).
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Serves admin requests until `shutdown` changes; removes the socket file on return.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    server: std::sync::Arc<ServerHandle>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let conn = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => break,
        };
        let (stream, _) = match conn {
            Ok(c) => c,
            Err(e) => {
                log::warn!("admin socket accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Handled inline: requests are tiny and rare, and the timeout bounds a slow peer.
        if tokio::time::timeout(REQUEST_TIMEOUT, handle(stream, &server))
            .await
            .is_err()
        {
            log::info!("admin request timed out");
        }
    }
    let _ = std::fs::remove_file(&path);
}

async fn handle(stream: UnixStream, server: &ServerHandle) {
    let (rd, mut wr) = stream.into_split();
    let mut line = String::new();
    let mut rd = tokio::io::BufReader::new(rd.take(MAX_REQUEST));
    let reply = match rd.read_line(&mut line).await {
        Err(e) => Reply {
            ok: false,
            client: None,
            error: Some(format!("read: {e}")),
        },
        Ok(_) => match serde_json::from_str::<Request>(line.trim()) {
            Ok(req) => answer(server, req),
            Err(e) => Reply {
                ok: false,
                client: None,
                error: Some(format!("bad request: {e}")),
            },
        },
    };
    let mut out = serde_json::to_string(&reply).unwrap_or_else(|_| "{\"ok\":false}".into());
    out.push('\n');
    let _ = wr.write_all(out.as_bytes()).await;
    let _ = wr.shutdown().await;
}

/// Client side (the `pin` subcommand, blocking): sends one request, returns the reply.
pub fn call(path: &Path, req: &Request) -> Result<Reply, String> {
    let mut s = StdUnixStream::connect(path).map_err(|e| {
        format!(
            "cannot reach the control plane at {} ({e}); is `strahl-control serve` running?",
            path.display()
        )
    })?;
    s.set_read_timeout(Some(REQUEST_TIMEOUT))
        .and_then(|()| s.set_write_timeout(Some(REQUEST_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let mut line = serde_json::to_string(req).map_err(|e| e.to_string())?;
    line.push('\n');
    s.write_all(line.as_bytes())
        .map_err(|e| format!("send to {}: {e}", path.display()))?;
    let mut answer = String::new();
    BufReader::new(std::io::Read::take(&s, MAX_REQUEST))
        .read_line(&mut answer)
        .map_err(|e| format!("no answer from {}: {e}", path.display()))?;
    serde_json::from_str(answer.trim()).map_err(|e| format!("bad answer {answer:?}: {e}"))
}
