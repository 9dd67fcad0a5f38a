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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use strahl_gamestream::{RecordingSessionHost, ServerConfig};

    /// The admin socket against an in-process nvhttp server: mode 0600, answers for a PIN with
    /// nobody waiting, bad JSON, an unknown command; the blocking client reads the replies.
    #[test]
    fn admin_socket_answers_one_json_line() {
        let dir = std::env::temp_dir().join(format!("strahl-admin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("run").join(SOCKET_NAME);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let server = strahl_gamestream::start(
                ServerConfig::loopback_ephemeral(dir.join("state")),
                Arc::new(RecordingSessionHost::new()),
            )
            .await
            .unwrap();
            let server = Arc::new(server);
            let listener = bind(&path).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            assert!(bind(&path).is_err(), "a live socket is not replaced");
            let (stop, rx) = watch::channel(false);
            let task = tokio::spawn(serve(listener, path.clone(), server.clone(), rx));
            let p = path.clone();
            let replies = tokio::task::spawn_blocking(move || {
                let pin = call(
                    &p,
                    &Request {
                        cmd: "pin".into(),
                        pin: Some("1234".into()),
                        client: None,
                    },
                );
                let bad_pin = call(
                    &p,
                    &Request {
                        cmd: "pin".into(),
                        pin: Some("12345".into()),
                        client: None,
                    },
                );
                let unknown = call(
                    &p,
                    &Request {
                        cmd: "reboot".into(),
                        pin: None,
                        client: None,
                    },
                );
                let mut raw = StdUnixStream::connect(&p).unwrap();
                raw.write_all(b"not json\n").unwrap();
                let mut line = String::new();
                BufReader::new(&raw).read_line(&mut line).unwrap();
                (pin, bad_pin, unknown, line)
            })
            .await
            .unwrap();
            let (pin, bad_pin, unknown, raw) = replies;
            let pin = pin.unwrap();
            assert!(!pin.ok);
            assert_eq!(pin.error.as_deref(), Some("no client is waiting for a PIN"));
            assert_eq!(
                bad_pin.unwrap().error.as_deref(),
                Some("a PIN is exactly 4 decimal digits")
            );
            assert!(unknown.unwrap().error.unwrap().contains("unknown command"));
            assert!(
                raw.contains("\"ok\":false") && raw.contains("bad request"),
                "{raw}"
            );
            stop.send(true).unwrap();
            task.await.unwrap();
            assert!(!path.exists(), "socket removed on shutdown");
            Arc::try_unwrap(server).ok().unwrap().shutdown().await;
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
