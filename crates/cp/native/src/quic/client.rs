//! The client's quinn shell: `pair` and opening a streaming session, with errors a person can
//! act on.
//!
//! Contract:
//! - Every wait is bounded: the handshake by [`CONNECT_TIMEOUT`], each answer by
//!   [`ANSWER_TIMEOUT`].
//! - Errors say what went wrong in the user's terms ([`ClientError`]): no answer (unreachable),
//!   a version mismatch (ALPN refused, or the host's `refused version-mismatch`), a changed
//!   host certificate, a refusal with the host's reason code, a failed key confirmation.
//! - Pairing pins nothing by itself: [`pair`] returns the host fingerprint the ceremony bound,
//!   and the caller stores it (`store::KnownHosts`).

use std::net::SocketAddr;
use std::time::Duration;

use quinn::{ConnectionError, Endpoint, RecvStream, SendStream, TransportErrorCode};

use crate::msg::{ALPN, Hello, Message, Reason, Start, Welcome};
use crate::pairing::{Binding, ClientPairError, ClientPairing, Fingerprint};
use crate::quic::tls::{HOST_CHANGED, client_config, peer_fingerprint};
use crate::quic::{StreamError, channel_binding, media_secrets, read_msg, send_msg};
use crate::store::ClientIdentity;
use crate::wire::FrameReader;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// TLS alert `no_application_protocol` (120) as a QUIC crypto error.
const NO_APPLICATION_PROTOCOL: u8 = 120;

#[derive(Debug)]
pub enum ClientError {
    /// Nothing answered, or the connection broke.
    Unreachable(String),
    /// The host speaks another major version of `strahl/1`.
    VersionMismatch(String),
    /// The host's certificate is not the one paired with.
    HostChanged,
    /// The host refused, with its reason.
    Refused { reason: Reason, detail: String },
    /// Key confirmation failed on our side.
    Pairing(ClientPairError),
    /// The host sent something the protocol does not allow.
    Protocol(String),
    /// Our own setup failed (socket, certificate).
    Local(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Unreachable(e) => write!(f, "host unreachable: {e}"),
            ClientError::VersionMismatch(e) => write!(
                f,
                "protocol version mismatch ({e}): update the client and the host"
            ),
            ClientError::HostChanged => f.write_str(
                "the host's certificate is not the one this client paired with: pair again",
            ),
            ClientError::Refused { reason, detail } => {
                write!(
                    f,
                    "refused by the host (code {}): {}",
                    reason.code(),
                    reason.text()
                )?;
                if !detail.is_empty() {
                    write!(f, " [{detail}]")?;
                }
                Ok(())
            }
            ClientError::Pairing(e) => write!(f, "pairing failed: {e}"),
            ClientError::Protocol(e) => write!(f, "protocol error: {e}"),
            ClientError::Local(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl ClientError {
    /// The host's reason code, when the host refused.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            ClientError::Refused { reason, .. } => Some(*reason),
            ClientError::VersionMismatch(_) => Some(Reason::VersionMismatch),
            _ => None,
        }
    }
}

fn conn_error(e: ConnectionError) -> ClientError {
    match &e {
        ConnectionError::TimedOut => ClientError::Unreachable("no answer (timed out)".into()),
        ConnectionError::ConnectionClosed(c)
            if c.error_code == TransportErrorCode::crypto(NO_APPLICATION_PROTOCOL) =>
        {
            ClientError::VersionMismatch("the host does not speak this client's ALPN".into())
        }
        ConnectionError::TransportError(t) if t.reason.contains(HOST_CHANGED) => {
            ClientError::HostChanged
        }
        _ => ClientError::Unreachable(e.to_string()),
    }
}

fn stream_error(e: StreamError) -> ClientError {
    match e {
        StreamError::Wire(w) => ClientError::Protocol(format!("malformed message: {w}")),
        StreamError::Read(quinn::ReadError::ConnectionLost(c))
        | StreamError::Write(quinn::WriteError::ConnectionLost(c)) => conn_error(c),
        other => ClientError::Unreachable(other.to_string()),
    }
}

/// One open control connection.
pub struct Control {
    endpoint: Endpoint,
    pub conn: quinn::Connection,
    send: SendStream,
    recv: RecvStream,
    reader: FrameReader,
}

impl Control {
    /// Connects (ALPN `alpn`; [`ALPN`] outside tests) and opens the control stream.
    pub async fn connect(
        addr: SocketAddr,
        id: &ClientIdentity,
        pinned: Option<Fingerprint>,
        alpn: &[u8],
    ) -> Result<Control, ClientError> {
        let bind: SocketAddr = if addr.is_ipv6() {
            "[::]:0".parse().expect("literal")
        } else {
            "0.0.0.0:0".parse().expect("literal")
        };
        let endpoint = Endpoint::client(bind).map_err(|e| ClientError::Local(e.to_string()))?;
        let cfg =
            client_config(&id.cert_der, &id.key_der, pinned, alpn).map_err(ClientError::Local)?;
        let connecting = endpoint
            .connect_with(cfg, addr, "strahl")
            .map_err(|e| ClientError::Local(e.to_string()))?;
        let conn = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Err(_) => {
                return Err(ClientError::Unreachable(format!(
                    "no answer from {addr} within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
            Ok(r) => r.map_err(conn_error)?,
        };
        let (send, recv) = conn.open_bi().await.map_err(conn_error)?;
        Ok(Control {
            endpoint,
            conn,
            send,
            recv,
            reader: FrameReader::new(),
        })
    }

    pub async fn send(&mut self, m: &Message) -> Result<(), ClientError> {
        send_msg(&mut self.send, m).await.map_err(stream_error)
    }

    /// The next message, within [`ANSWER_TIMEOUT`]; a `refused` becomes the error.
    pub async fn next(&mut self) -> Result<Message, ClientError> {
        let r = tokio::time::timeout(ANSWER_TIMEOUT, read_msg(&mut self.recv, &mut self.reader))
            .await
            .map_err(|_| ClientError::Unreachable("the host stopped answering".into()))?;
        match r.map_err(stream_error)? {
            Some(Message::Refused(r)) => Err(ClientError::Refused {
                reason: r.reason,
                detail: r.detail,
            }),
            Some(m) => Ok(m),
            None => Err(ClientError::Protocol(
                "the host ended the control stream".into(),
            )),
        }
    }

    /// Finishes the control stream, waits (bounded) until the host has it all — a close frame
    /// sent at once could discard a last message still in flight — then closes the connection.
    pub async fn close(mut self) {
        // Already finished or reset: nothing more to flush.
        let _ = self.send.finish();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.send.stopped()).await;
        self.conn.close(0u32.into(), b"done");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

/// Pairs with the host at `addr` using the operator's `pin`; returns the host fingerprint to
/// pin from now on.
pub async fn pair(
    addr: SocketAddr,
    pin: &str,
    name: &str,
    id: &ClientIdentity,
) -> Result<Fingerprint, ClientError> {
    let mut c = Control::connect(addr, id, None, ALPN).await?;
    let r = pair_on(&mut c, pin, name, id).await;
    c.close().await;
    r
}

async fn pair_on(
    c: &mut Control,
    pin: &str,
    name: &str,
    id: &ClientIdentity,
) -> Result<Fingerprint, ClientError> {
    let host_fp = peer_fingerprint(&c.conn)
        .ok_or_else(|| ClientError::Protocol("the host showed no certificate".into()))?;
    let channel =
        channel_binding(&c.conn).ok_or_else(|| ClientError::Local("no TLS exporter".into()))?;
    let bind = Binding {
        client_fp: id.fingerprint(),
        host_fp,
        channel,
    };
    let (state, req) = ClientPairing::start(pin, name, bind);
    c.send(&Message::PairRequest(req)).await?;
    let ch = match c.next().await? {
        Message::PairChallenge(ch) => ch,
        m => {
            return Err(ClientError::Protocol(format!(
                "{} instead of a challenge",
                m.name()
            )));
        }
    };
    let proof = state.on_challenge(&ch).map_err(ClientError::Pairing)?;
    c.send(&Message::PairProof(proof)).await?;
    match c.next().await? {
        Message::PairOk => Ok(host_fp),
        m => Err(ClientError::Protocol(format!(
            "{} instead of pair-ok",
            m.name()
        ))),
    }
}

/// A started session: the control connection and the media secrets.
pub struct Session {
    pub control: Control,
    pub welcome: Welcome,
    pub h2c: [u8; 32],
    pub c2h: [u8; 32],
}

/// Connects to a paired host (pinned), says hello, and starts the session.
pub async fn open_session(
    addr: SocketAddr,
    id: &ClientIdentity,
    host_fp: Fingerprint,
    hello: &Hello,
) -> Result<Session, ClientError> {
    let mut control = Control::connect(addr, id, Some(host_fp), ALPN).await?;
    control.send(&Message::Hello(hello.clone())).await?;
    let welcome = match control.next().await? {
        Message::Welcome(w) => w,
        m => {
            return Err(ClientError::Protocol(format!(
                "{} instead of welcome",
                m.name()
            )));
        }
    };
    let (h2c, c2h) = media_secrets(&control.conn, &welcome.key_context)
        .ok_or_else(|| ClientError::Local("no TLS exporter".into()))?;
    control
        .send(&Message::Start(Start {
            session_id: welcome.session_id,
        }))
        .await?;
    Ok(Session {
        control,
        welcome,
        h2c,
        c2h,
    })
}
