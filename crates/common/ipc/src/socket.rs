//! `SOCK_SEQPACKET` Unix socket wrapper (no `unsafe`: everything goes through `rustix`).
//!
//! The data plane owns a [`SeqPacketListener`]; binding removes a *stale* socket file (nobody
//! accepting on it) but refuses to steal a live one, and sets the file mode to 0660 so the
//! control plane's group can connect. Sockets are created close-on-exec; the listener is
//! non-blocking (callers `poll` it together with their signal pipe). A connected [`SeqPacket`]
//! starts blocking; use [`SeqPacket::set_nonblocking`] for readiness-driven callers (tokio's
//! `AsyncFd` on the control side) or the timeouts for blocking ones.
//!
//! A zero-length read means the peer closed the connection. (A zero-length *datagram* reads the
//! same; our protocol never sends one, and a peer that does is treated as gone.)

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType, sockopt,
};

use crate::{DecodeError, Decoded, EncodeError, MAX_MESSAGE_LEN, Message};

/// File mode of the listening socket: owner and group may connect.
pub const SOCKET_MODE: u32 = 0o660;
/// Mode of a socket directory we create ourselves (group may traverse).
pub const DIR_MODE: u32 = 0o750;
/// Pending connections the kernel queues; one control plane plus a refused extra is plenty.
const LISTEN_BACKLOG: i32 = 4;

/// Checks that `dir` is private enough to hold the IPC socket: owned by root or by this process's
/// effective user, and not writable by others. Used for socket directories under shared,
/// world-writable parents (the `/tmp/strahl-$UID` fallback), where another local user could
/// pre-create the directory and impersonate either side (the control plane sends session keys).
pub fn check_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.file_type().is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is not a directory", dir.display()),
        ));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is owned by uid {}, not by us (uid {me}) or root",
                dir.display(),
                meta.uid()
            ),
        ));
    }
    if meta.mode() & 0o002 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is writable by others (mode {:o})",
                dir.display(),
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// Listening socket bound to a filesystem path; the file is removed on drop.
#[derive(Debug)]
pub struct SeqPacketListener {
    fd: OwnedFd,
    path: PathBuf,
}

impl SeqPacketListener {
    /// Binds `path`, creating its parent directory (mode 0750) if missing. A leftover socket file
    /// nobody listens on is removed first; a live one yields `AddrInUse`; a non-socket file at the
    /// path is never deleted (`AlreadyExists`).
    pub fn bind(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if SeqPacket::connect(path).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("{} is in use by a running process", path.display()),
                    ));
                }
                std::fs::remove_file(path)?;
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a socket; refusing to remove it",
                        path.display()
                    ),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?;
        rustix::net::bind(&fd, &SocketAddrUnix::new(path)?)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))?;
        rustix::net::listen(&fd, LISTEN_BACKLOG)?;
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts one pending connection (`WouldBlock` if none). The accepted socket is blocking.
    pub fn accept(&self) -> io::Result<SeqPacket> {
        let fd = rustix::net::accept_with(&self.fd, SocketFlags::CLOEXEC)?;
        Ok(SeqPacket { fd })
    }
}

impl Drop for SeqPacketListener {
    fn drop(&mut self) {
        // Best effort: a missing file is fine (someone cleaned up), nothing else to do on error.
        let _ = std::fs::remove_file(&self.path);
    }
}

impl AsFd for SeqPacketListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// What one receive produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recv {
    /// A datagram of this many bytes is in the buffer.
    Datagram(usize),
    /// A datagram longer than the buffer arrived (its real length); it was discarded.
    Truncated(usize),
    /// The peer closed the connection.
    Closed,
}

/// Error of the message-level helpers.
#[derive(Debug)]
pub enum MsgError {
    Io(io::Error),
    Decode(DecodeError),
    Encode(EncodeError),
    /// The peer sent a datagram over [`MAX_MESSAGE_LEN`].
    Oversized(usize),
    Closed,
}

impl std::fmt::Display for MsgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "ipc i/o: {e}"),
            Self::Decode(e) => write!(f, "ipc decode: {e}"),
            Self::Encode(e) => write!(f, "ipc encode: {e}"),
            Self::Oversized(n) => write!(f, "ipc datagram of {n} bytes exceeds {MAX_MESSAGE_LEN}"),
            Self::Closed => write!(f, "ipc peer closed the connection"),
        }
    }
}

impl std::error::Error for MsgError {}

impl From<io::Error> for MsgError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// A connected `SOCK_SEQPACKET` socket.
#[derive(Debug)]
pub struct SeqPacket {
    fd: OwnedFd,
}

impl SeqPacket {
    /// Connects to a listening socket (blocking mode).
    pub fn connect(path: &Path) -> io::Result<Self> {
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        rustix::net::connect(&fd, &SocketAddrUnix::new(path)?)?;
        Ok(Self { fd })
    }

    /// A connected pair, for tests.
    pub fn pair() -> io::Result<(Self, Self)> {
        let (a, b) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        Ok((Self { fd: a }, Self { fd: b }))
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        Ok(rustix::io::ioctl_fionbio(&self.fd, on)?)
    }

    /// Bounds blocking receives (`WouldBlock`/`TimedOut` on expiry); `None` blocks forever.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        Ok(sockopt::set_socket_timeout(
            &self.fd,
            sockopt::Timeout::Recv,
            t,
        )?)
    }

    /// Bounds blocking sends; `None` blocks forever.
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        Ok(sockopt::set_socket_timeout(
            &self.fd,
            sockopt::Timeout::Send,
            t,
        )?)
    }

    /// Process id of the peer as the kernel saw it at connect time (`SO_PEERCRED`).
    pub fn peer_pid(&self) -> io::Result<u32> {
        let cred = sockopt::socket_peercred(&self.fd)?;
        Ok(cred.pid.as_raw_nonzero().get() as u32)
    }

    /// Sends one datagram. `MSG_NOSIGNAL`: a vanished peer is an `EPIPE` error, not a signal.
    pub fn send(&self, datagram: &[u8]) -> io::Result<()> {
        let n = rustix::net::send(&self.fd, datagram, SendFlags::NOSIGNAL)?;
        if n != datagram.len() {
            // SEQPACKET sends are atomic; a short count would mean a kernel contract change.
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short seqpacket send",
            ));
        }
        Ok(())
    }

    /// Receives one datagram into `buf`. `MSG_TRUNC` makes the kernel report the real length,
    /// so an over-long datagram is detected instead of being silently cut.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Recv> {
        let (_, len) = rustix::net::recv(&self.fd, &mut *buf, RecvFlags::TRUNC)?;
        Ok(if len == 0 {
            Recv::Closed
        } else if len > buf.len() {
            Recv::Truncated(len)
        } else {
            Recv::Datagram(len)
        })
    }

    /// Encodes `msg` into `scratch` and sends it.
    pub fn send_message(&self, msg: &Message, scratch: &mut [u8]) -> Result<(), MsgError> {
        let n = crate::encode(msg, scratch).map_err(MsgError::Encode)?;
        self.send(&scratch[..n])?;
        Ok(())
    }

    /// Receives and decodes one message; `scratch` should be [`MAX_MESSAGE_LEN`] bytes.
    pub fn recv_message(&self, scratch: &mut [u8]) -> Result<Decoded, MsgError> {
        match self.recv(scratch)? {
            Recv::Closed => Err(MsgError::Closed),
            Recv::Truncated(n) => Err(MsgError::Oversized(n)),
            Recv::Datagram(n) => crate::decode(&scratch[..n]).map_err(MsgError::Decode),
        }
    }
}

impl AsFd for SeqPacket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for SeqPacket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StatsRequest;

    #[test]
    fn pair_round_trip_and_close() {
        let (a, b) = SeqPacket::pair().unwrap();
        let mut s = vec![0u8; MAX_MESSAGE_LEN];
        a.send_message(
            &Message::StatsRequest(StatsRequest { request_id: 9 }),
            &mut s,
        )
        .unwrap();
        let d = b.recv_message(&mut s).unwrap();
        assert_eq!(
            d.message,
            Message::StatsRequest(StatsRequest { request_id: 9 })
        );
        drop(a);
        assert!(matches!(b.recv_message(&mut s), Err(MsgError::Closed)));
    }

    #[test]
    fn oversized_datagram_is_detected() {
        let (a, b) = SeqPacket::pair().unwrap();
        a.send(&[7u8; 300]).unwrap();
        let mut small = [0u8; 100];
        assert_eq!(b.recv(&mut small).unwrap(), Recv::Truncated(300));
    }

    #[test]
    fn read_timeout_bounds_a_blocking_recv() {
        let (_a, b) = SeqPacket::pair().unwrap();
        b.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let t = std::time::Instant::now();
        let e = b.recv(&mut [0u8; 16]).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "{e}"
        );
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn private_dir_check() {
        let dir = std::env::temp_dir().join(format!("strahl-ipc-priv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        check_private_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_private_dir(&dir).unwrap_err();
        assert!(e.to_string().contains("writable by others"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        let file = std::env::temp_dir().join(format!("strahl-ipc-privf-{}", std::process::id()));
        std::fs::write(&file, b"x").unwrap();
        assert!(check_private_dir(&file).is_err());
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn bind_removes_stale_socket_but_not_live_one_or_regular_file() {
        let dir = std::env::temp_dir().join(format!("strahl-ipc-test-{}", std::process::id()));
        let path = dir.join("sub").join("dp.sock");
        let l = SeqPacketListener::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, SOCKET_MODE);
        // Live: a second bind must fail and leave the first intact.
        let e = SeqPacketListener::bind(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        let c = SeqPacket::connect(&path).unwrap();
        let srv = l.accept().unwrap();
        assert_eq!(srv.peer_pid().unwrap(), std::process::id());
        drop((c, srv, l));
        assert!(!path.exists(), "listener drop removes its file");
        // Stale: a socket file whose owner died without cleaning up (bound, then closed).
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let l2 = SeqPacketListener::bind(&path).expect("stale socket must be replaced");
        drop(l2);
        assert!(!path.exists(), "listener drop removes its file");
        std::fs::write(&path, b"not a socket").unwrap();
        let e = SeqPacketListener::bind(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
