//! Async IPC client of the data plane.
//!
//! The socket is `strahl-ipc`'s `SOCK_SEQPACKET` wrapper in non-blocking mode, driven by tokio's
//! `AsyncFd` (readiness only; no `unsafe` here). [`Client::connect`] performs the handshake:
//! send `Hello`, expect `HelloAck` within [`HANDSHAKE_TIMEOUT`]. A data plane of another major
//! version is refused from our side too (we send `Refuse` naming both versions) and reported as
//! [`ClientError::VersionMismatch`]; a refusal from the data plane is [`ClientError::Refused`].

use std::fmt;
use std::io;
use std::path::Path;
use std::time::Duration;

use strahl_ipc::socket::{Recv, SeqPacket};
use strahl_ipc::{
    DecodeError, Decoded, Hello, MAJOR, MAX_MESSAGE_LEN, MINOR, Message, Refuse, Role,
};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// The data plane must answer Hello within this time (it answers immediately when healthy).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub enum ClientError {
    /// Connecting or I/O failed (ENOENT / ECONNREFUSED while the data plane is not up yet).
    Io(io::Error),
    /// The data plane refused the handshake.
    Refused {
        major: u16,
        minor: u16,
        reason: String,
    },
    /// The data plane speaks another major version; we refused it.
    VersionMismatch {
        theirs_major: u16,
        theirs_minor: u16,
    },
    /// A datagram could not be decoded.
    Decode(DecodeError),
    /// The data plane sent something that breaks the protocol (e.g. not HelloAck first).
    Protocol(String),
    /// The data plane closed the connection.
    Closed,
    /// The handshake did not complete in time.
    Timeout,
}

impl ClientError {
    /// Errors that retrying cannot fix (a version skew needs an upgrade, not a retry).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::VersionMismatch { .. })
            || matches!(self, Self::Refused { major, .. } if *major != MAJOR)
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "{e}"),
            Self::Refused {
                major,
                minor,
                reason,
            } => write!(
                f,
                "data plane v{major}.{minor} refused this control plane (v{MAJOR}.{MINOR}): {reason}"
            ),
            Self::VersionMismatch {
                theirs_major,
                theirs_minor,
            } => write!(
                f,
                "protocol major version mismatch: data plane speaks v{theirs_major}.{theirs_minor}, \
                 this control plane speaks v{MAJOR}.{MINOR}; refused"
            ),
            Self::Decode(e) => write!(f, "undecodable message from the data plane: {e}"),
            Self::Protocol(s) => write!(f, "protocol violation by the data plane: {s}"),
            Self::Closed => write!(f, "the data plane closed the connection"),
            Self::Timeout => write!(
                f,
                "the data plane did not answer Hello within {HANDSHAKE_TIMEOUT:?}"
            ),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// A connected, handshaken client.
pub struct Client {
    fd: AsyncFd<SeqPacket>,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// The data plane's HelloAck (version, pid, build).
    pub peer: Hello,
}

impl Client {
    /// Connects to `path` and performs the handshake.
    pub async fn connect(path: &Path) -> Result<Client, ClientError> {
        // Unix-socket connect completes immediately (or fails) unless the backlog is full.
        let sock = SeqPacket::connect(path)?;
        sock.set_nonblocking(true)?;
        // tokio 1.54 deprecates the safe constructors because a generic `T: AsRawFd` might close
        // its fd while registered; its replacement is `unsafe`, which this crate forbids. Here
        // the AsyncFd owns the SeqPacket (an OwnedFd with no method that closes it), so the fd
        // stays valid until the AsyncFd is dropped: the deprecated constructor is sound for us.
        #[allow(deprecated)]
        let fd = AsyncFd::with_interest(sock, Interest::READABLE | Interest::WRITABLE)?;
        let mut c = Client {
            fd,
            rx: vec![0u8; MAX_MESSAGE_LEN],
            tx: vec![0u8; MAX_MESSAGE_LEN],
            peer: Hello {
                major: 0,
                minor: 0,
                role: Role::Dataplane,
                pid: 0,
                build: String::new(),
            },
        };
        let hello = Hello {
            major: MAJOR,
            minor: MINOR,
            role: Role::Control,
            pid: std::process::id(),
            build: format!("strahl-control {}", env!("CARGO_PKG_VERSION")),
        };
        // A data plane that refuses us outright (busy) may close before reading our Hello: the
        // send then fails, but its Refuse is still queued for us, so read before giving up.
        let sent = c.send(&Message::Hello(hello)).await;
        let reply = match tokio::time::timeout(HANDSHAKE_TIMEOUT, c.recv_after_reset()).await {
            Err(_) => return Err(ClientError::Timeout),
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(sent.err().unwrap_or(e)),
        };
        match reply {
            Ok(Decoded {
                message: Message::HelloAck(h),
                ..
            }) => {
                if h.major != MAJOR {
                    let reason = format!(
                        "protocol major version mismatch: data plane speaks v{}.{}, this control plane speaks v{MAJOR}.{MINOR}",
                        h.major, h.minor
                    );
                    // Best effort: tell the data plane why we hang up.
                    let _ = c
                        .send(&Message::Refuse(Refuse {
                            major: MAJOR,
                            minor: MINOR,
                            reason,
                        }))
                        .await;
                    return Err(ClientError::VersionMismatch {
                        theirs_major: h.major,
                        theirs_minor: h.minor,
                    });
                }
                if h.role != Role::Dataplane {
                    return Err(ClientError::Protocol(format!(
                        "HelloAck from role {:?}",
                        h.role
                    )));
                }
                if h.minor != MINOR {
                    log::info!(
                        "data plane speaks v{}.{}, control plane v{MAJOR}.{MINOR}: minor difference tolerated",
                        h.major,
                        h.minor
                    );
                }
                c.peer = h;
                Ok(c)
            }
            Ok(Decoded {
                message: Message::Refuse(r),
                ..
            }) => Err(ClientError::Refused {
                major: r.major,
                minor: r.minor,
                reason: r.reason,
            }),
            Ok(d) => Err(ClientError::Protocol(format!(
                "expected HelloAck, got {:?}",
                d.message.kind()
            ))),
            Err(DecodeError::MajorMismatch { theirs, .. }) => Err(ClientError::VersionMismatch {
                theirs_major: theirs,
                theirs_minor: 0,
            }),
            Err(e) => Err(ClientError::Decode(e)),
        }
    }

    /// Sends one message (waits for socket buffer space if needed).
    pub async fn send(&mut self, msg: &Message) -> Result<(), ClientError> {
        let n = strahl_ipc::encode(msg, &mut self.tx)
            .map_err(|e| ClientError::Protocol(format!("encode: {e}")))?;
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|s| s.get_ref().send(&self.tx[..n])) {
                Ok(r) => return Ok(r?),
                Err(_would_block) => continue,
            }
        }
    }

    /// Receives one message. Undecodable datagrams come back as `Ok(Err(_))` so the caller can
    /// log them and keep the connection.
    pub async fn recv_raw(&mut self) -> Result<Result<Decoded, DecodeError>, ClientError> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|s| s.get_ref().recv(&mut self.rx)) {
                Ok(Ok(Recv::Datagram(n))) => return Ok(strahl_ipc::decode(&self.rx[..n])),
                Ok(Ok(Recv::Truncated(n))) => return Ok(Err(DecodeError::TooLong { len: n })),
                Ok(Ok(Recv::Closed)) => return Err(ClientError::Closed),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(ClientError::Io(e)),
                Err(_would_block) => continue,
            }
        }
    }

    /// Like [`Client::recv_raw`], but looks past one `ECONNRESET`: a peer that closes while our
    /// datagram is unread makes the kernel report the reset once (that recv consumes the error),
    /// and whatever the peer sent before closing — typically a `Refuse` — is still queued.
    async fn recv_after_reset(&mut self) -> Result<Result<Decoded, DecodeError>, ClientError> {
        match self.recv_raw().await {
            Err(ClientError::Io(e)) if e.kind() == io::ErrorKind::ConnectionReset => {
                self.recv_raw().await
            }
            r => r,
        }
    }

    /// Receives one decodable message (undecodable ones are an error).
    pub async fn recv(&mut self) -> Result<Decoded, ClientError> {
        self.recv_raw().await?.map_err(ClientError::Decode)
    }
}
