//! The capture helper ↔ data plane link: one framebuffer per message over a Unix
//! `SOCK_SEQPACKET` socket, its dmabuf passed as an fd (`SCM_RIGHTS`).
//!
//! Why a socket: GETFB2 hands out buffer handles only to the DRM master or a CAP_SYS_ADMIN
//! process, and the data plane parses network input, so it must never hold CAP_SYS_ADMIN. The
//! privileged helper ([`crate::kms_grab`]) exports each new scan-out buffer as a dmabuf and
//! sends it here; a dmabuf fd grants access to that one buffer only.
//!
//! Contract:
//! - A message is [`WIRE_LEN`] bytes, little-endian, versioned ([`WIRE_VERSION`]); anything
//!   else (wrong length, magic, version, a zero or oversized geometry, a plane that does not fit
//!   its pitch) is refused as [`WireError::Bad`] before the fd is used. SEQPACKET keeps message
//!   boundaries, so a message and its fds arrive together or not at all.
//! - fds: the frame's dmabuf first, then the cursor image's when [`FLAG_CURSOR_IMAGE`] is set.
//!   Received fds are owned ([`OwnedFd`]) and close on drop; surplus fds are closed.
//! - Both ends block; the receiver bounds its wait with a poll timeout.
//! - The session's display mode ([`crate::kms_mode`]): the data plane may send one
//!   [`ModeRequest`] ([`send_request`]) to a helper whose frames carry [`FLAG_MODES`]; the
//!   helper answers with a [`ModeReply`] ([`send_reply`], no fds) between its frames, so the
//!   data plane reads both with [`recv_message`]. Each kind is told apart by its magic and has
//!   its own version.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

pub use crate::kms_mode::{DisplayMode, ModeReply, ModeRequest};
use crate::kms_mode::{REPLY_MAGIC, REPLY_MAX, REQUEST_LEN};
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

/// Bytes of one message.
pub const WIRE_LEN: usize = 80;
/// Bumped on any layout change.
pub const WIRE_VERSION: u16 = 1;
const MAGIC: u32 = u32::from_le_bytes(*b"SKMS");
/// Largest width/height accepted (DRM's own limit on today's hardware is 16384).
pub const MAX_DIM: u32 = 16384;

/// The cursor plane is visible; its position and size are valid.
pub const FLAG_CURSOR_VISIBLE: u32 = 1;
/// A second fd carries the cursor image (same format rules as the frame).
pub const FLAG_CURSOR_IMAGE: u32 = 2;
/// The primary framebuffer and size are the previous message's: only the cursor changed.
pub const FLAG_CURSOR_ONLY: u32 = 4;
/// The helper answers [`ModeRequest`]s (older helpers never set it, older data planes ignore
/// it: see [`crate::kms_mode`]'s compatibility note).
pub const FLAG_MODES: u32 = 8;

/// What the helper knows about one captured framebuffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameMeta {
    /// Helper's capture counter (dense: gaps are flips the helper did not see).
    pub seq: u64,
    /// CLOCK_MONOTONIC time of the vblank (or refresh tick) the framebuffer was read at.
    pub time_ns: u64,
    pub fb_id: u32,
    /// The visible area (the CRTC's mode), at `offset` into the buffer.
    pub width: u32,
    pub height: u32,
    /// DRM fourcc (e.g. `XR24`).
    pub fourcc: u32,
    /// DRM format modifier (0 = linear; `DRM_FORMAT_MOD_INVALID` = none reported, treated as
    /// linear: [`crate::kms_map::MOD_NONE`]).
    pub modifier: u64,
    pub pitch: u32,
    /// Byte offset of the visible area's first pixel in the buffer.
    pub offset: u32,
    /// Refresh of the active mode in millihertz.
    pub refresh_mhz: u32,
    pub flags: u32,
    pub cursor_x: i32,
    pub cursor_y: i32,
    pub cursor_w: u32,
    pub cursor_h: u32,
}

/// Why a message could not be sent or received.
#[derive(Debug)]
pub enum WireError {
    /// The socket failed (peer gone: `Io` with `BrokenPipe`/`ConnectionReset`).
    Io(std::io::Error),
    /// The peer sent something that is not a valid message.
    Bad(String),
    /// The peer closed the connection.
    Closed,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "capture link: {e}"),
            Self::Bad(m) => write!(f, "capture link: bad message: {m}"),
            Self::Closed => write!(f, "capture link: peer closed"),
        }
    }
}

impl std::error::Error for WireError {}

impl From<rustix::io::Errno> for WireError {
    fn from(e: rustix::io::Errno) -> Self {
        Self::Io(e.into())
    }
}

impl FrameMeta {
    /// Bytes the frame needs in its buffer: offset + pitch × height.
    pub fn needed_len(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.pitch) * u64::from(self.height)
    }

    /// Encodes into one message.
    pub fn encode(&self) -> [u8; WIRE_LEN] {
        let mut b = [0u8; WIRE_LEN];
        let mut w = Writer(&mut b, 0);
        w.put(&MAGIC.to_le_bytes());
        w.put(&WIRE_VERSION.to_le_bytes());
        w.put(&0u16.to_le_bytes());
        w.put(&self.seq.to_le_bytes());
        w.put(&self.time_ns.to_le_bytes());
        for v in [self.fb_id, self.width, self.height, self.fourcc] {
            w.put(&v.to_le_bytes());
        }
        w.put(&self.modifier.to_le_bytes());
        for v in [self.pitch, self.offset, self.refresh_mhz, self.flags] {
            w.put(&v.to_le_bytes());
        }
        w.put(&self.cursor_x.to_le_bytes());
        w.put(&self.cursor_y.to_le_bytes());
        w.put(&self.cursor_w.to_le_bytes());
        w.put(&self.cursor_h.to_le_bytes());
        b
    }

    /// Decodes and validates one message.
    pub fn decode(b: &[u8]) -> Result<Self, WireError> {
        if b.len() != WIRE_LEN {
            return Err(WireError::Bad(format!(
                "{} bytes, want {WIRE_LEN}",
                b.len()
            )));
        }
        let mut r = Reader(b, 0);
        if r.u32() != MAGIC {
            return Err(WireError::Bad("magic".into()));
        }
        let version = r.u16();
        if version != WIRE_VERSION {
            return Err(WireError::Bad(format!(
                "version {version}, want {WIRE_VERSION}"
            )));
        }
        let _reserved = r.u16();
        let m = FrameMeta {
            seq: r.u64(),
            time_ns: r.u64(),
            fb_id: r.u32(),
            width: r.u32(),
            height: r.u32(),
            fourcc: r.u32(),
            modifier: r.u64(),
            pitch: r.u32(),
            offset: r.u32(),
            refresh_mhz: r.u32(),
            flags: r.u32(),
            cursor_x: r.u32() as i32,
            cursor_y: r.u32() as i32,
            cursor_w: r.u32(),
            cursor_h: r.u32(),
        };
        if m.width == 0 || m.height == 0 || m.width > MAX_DIM || m.height > MAX_DIM {
            return Err(WireError::Bad(format!("size {}x{}", m.width, m.height)));
        }
        // A packed format has ≥ 1 byte per pixel; a pitch narrower than the width cannot hold
        // a row.
        if m.pitch < m.width {
            return Err(WireError::Bad(format!(
                "pitch {} < width {}",
                m.pitch, m.width
            )));
        }
        if m.cursor_w > MAX_DIM || m.cursor_h > MAX_DIM {
            return Err(WireError::Bad("cursor size".into()));
        }
        Ok(m)
    }
}

struct Writer<'a>(&'a mut [u8; WIRE_LEN], usize);

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.0[self.1..self.1 + bytes.len()].copy_from_slice(bytes);
        self.1 += bytes.len();
    }
}

struct Reader<'a>(&'a [u8], usize);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.0[self.1..self.1 + N]);
        self.1 += N;
        a
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
}

/// Sends one frame: its metadata, its dmabuf and, optionally, the cursor image's.
pub fn send_frame(
    sock: BorrowedFd<'_>,
    meta: &FrameMeta,
    frame: BorrowedFd<'_>,
    cursor: Option<BorrowedFd<'_>>,
) -> Result<(), WireError> {
    let mut meta = *meta;
    let fds_vec: [BorrowedFd<'_>; 2];
    let fds: &[BorrowedFd<'_>] = match cursor {
        Some(c) => {
            meta.flags |= FLAG_CURSOR_IMAGE;
            fds_vec = [frame, c];
            &fds_vec
        }
        None => {
            meta.flags &= !FLAG_CURSOR_IMAGE;
            std::slice::from_ref(&frame)
        }
    };
    let bytes = meta.encode();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(WireError::Bad("control buffer too small".into()));
    }
    let n = rustix::net::sendmsg(
        sock,
        &[IoSlice::new(&bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    if n != WIRE_LEN {
        return Err(WireError::Bad(format!("short send {n}")));
    }
    Ok(())
}

/// One received frame.
#[derive(Debug)]
pub struct Received {
    pub meta: FrameMeta,
    pub frame: OwnedFd,
    pub cursor: Option<OwnedFd>,
}

/// The most fds one message may carry (a frame and a cursor image need 2; room to see more
/// and refuse them).
const MAX_FDS: usize = 4;

/// One message from the helper.
#[derive(Debug)]
pub enum Message {
    Frame(Received),
    Mode(ModeReply),
}

/// Receives one frame, waiting at most `timeout`; `Ok(None)` when none came in time. A mode
/// reply here is a peer error (only [`recv_message`] expects one).
pub fn recv_frame(sock: BorrowedFd<'_>, timeout: Duration) -> Result<Option<Received>, WireError> {
    match recv_message(sock, timeout)? {
        None => Ok(None),
        Some(Message::Frame(r)) => Ok(Some(r)),
        Some(Message::Mode(r)) => Err(WireError::Bad(format!("unasked mode reply {r:?}"))),
    }
}

/// Receives one message (a frame or a mode reply), waiting at most `timeout`; `Ok(None)` when
/// none came in time.
pub fn recv_message(sock: BorrowedFd<'_>, timeout: Duration) -> Result<Option<Message>, WireError> {
    if !wait_readable(sock, timeout)? {
        return Ok(None);
    }
    // Room for the longest message and one byte more (a longer one is refused, not cut).
    let mut bytes = [0u8; BUF_LEN];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        sock,
        &mut [IoSliceMut::new(&mut bytes)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    // Take ownership of every fd first, so none leaks whatever the message turns out to be.
    // A fixed array (the control buffer holds at most MAX_FDS): nothing is allocated per
    // picture, on the zero-copy path either.
    let mut fds: [Option<OwnedFd>; MAX_FDS] = Default::default();
    let mut n = 0;
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(it) = msg {
            for fd in it {
                // More than fit cannot arrive (CTRUNC below); closed if they did.
                if let Some(slot) = fds.get_mut(n) {
                    *slot = Some(fd);
                }
                n += 1;
            }
        }
    }
    if got.bytes == 0 && n == 0 {
        return Err(WireError::Closed);
    }
    if got.flags.contains(rustix::net::ReturnFlags::CTRUNC) {
        return Err(WireError::Bad("fds truncated".into()));
    }
    let body = &bytes[..got.bytes.min(bytes.len())];
    if body.starts_with(&REPLY_MAGIC.to_le_bytes()) {
        if n != 0 {
            return Err(WireError::Bad(format!("{n} fds with a mode reply")));
        }
        return ModeReply::decode(body).map(|r| Some(Message::Mode(r)));
    }
    let meta = FrameMeta::decode(body)?;
    let want = if meta.flags & FLAG_CURSOR_IMAGE != 0 {
        2
    } else {
        1
    };
    if n != want {
        return Err(WireError::Bad(format!("{n} fds, want {want}")));
    }
    let frame = fds[0]
        .take()
        .ok_or_else(|| WireError::Bad("no fd".into()))?;
    Ok(Some(Message::Frame(Received {
        meta,
        frame,
        cursor: fds[1].take(),
    })))
}

const BUF_LEN: usize = if REPLY_MAX > WIRE_LEN {
    REPLY_MAX + 1
} else {
    WIRE_LEN + 1
};

/// Waits at most `timeout` for `sock` to be readable (or hung up).
fn wait_readable(sock: BorrowedFd<'_>, timeout: Duration) -> Result<bool, WireError> {
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let mut pfd = [rustix::event::PollFd::new(
        &sock,
        rustix::event::PollFlags::IN,
    )];
    let ts = rustix::event::Timespec {
        tv_sec: i64::from(ms / 1000),
        tv_nsec: i64::from(ms % 1000) * 1_000_000,
    };
    Ok(rustix::event::poll(&mut pfd, Some(&ts))? > 0)
}

/// The data plane asks the helper for the session's mode (only a helper that sets
/// [`FLAG_MODES`]).
pub fn send_request(sock: BorrowedFd<'_>, req: &ModeRequest) -> Result<(), WireError> {
    let n = rustix::net::send(sock, &req.encode(), SendFlags::NOSIGNAL)?;
    if n != REQUEST_LEN {
        return Err(WireError::Bad(format!("short send {n}")));
    }
    Ok(())
}

/// The helper answers a request.
pub fn send_reply(sock: BorrowedFd<'_>, reply: &ModeReply) -> Result<(), WireError> {
    let b = reply.encode();
    let n = rustix::net::send(sock, &b, SendFlags::NOSIGNAL)?;
    if n != b.len() {
        return Err(WireError::Bad(format!("short send {n}")));
    }
    Ok(())
}

/// What the helper finds from its peer without waiting.
#[derive(Debug, PartialEq, Eq)]
pub enum PeerInput {
    Nothing,
    /// Hung up (or the socket failed).
    Gone,
    Request(ModeRequest),
    /// Something that is no valid request (why; answered as a failure, never acted on).
    Bad(String),
}

/// The helper's non-blocking read of its peer: a request, a hang-up, or nothing.
pub fn poll_peer(sock: BorrowedFd<'_>) -> PeerInput {
    match wait_readable(sock, Duration::ZERO) {
        Ok(false) => return PeerInput::Nothing,
        Ok(true) => {}
        Err(_) => return PeerInput::Gone,
    }
    let mut b = [0u8; REQUEST_LEN + 1];
    match rustix::net::recv(sock, &mut b, RecvFlags::DONTWAIT) {
        Ok((0, _)) => PeerInput::Gone,
        Ok((n, _)) => match ModeRequest::decode(&b[..n.min(b.len())]) {
            Ok(r) => PeerInput::Request(r),
            Err(e) => PeerInput::Bad(e.to_string()),
        },
        Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => PeerInput::Nothing,
        Err(_) => PeerInput::Gone,
    }
}

/// A SEQPACKET listener at `path` (an existing socket file is replaced), mode 0660 and the
/// group of its directory (on the appliance `/run/strahl`, group `strahl`): the data plane's
/// group connects, though the helper runs as root (a helper that may not change the group
/// says so once and keeps its own).
pub fn listen(path: &Path) -> Result<OwnedFd, WireError> {
    let _ = std::fs::remove_file(path);
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let addr = SocketAddrUnix::new(path)?;
    rustix::net::bind(&fd, &addr)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(WireError::Io)?;
    if let (Some(dir), Ok(sock)) = (
        path.parent().and_then(|d| std::fs::metadata(d).ok()),
        std::fs::metadata(path),
    ) {
        use std::os::unix::fs::MetadataExt;
        if sock.gid() != dir.gid()
            && let Err(e) = std::os::unix::fs::chown(path, None, Some(dir.gid()))
        {
            // Not root (a test, a helper run by hand): the socket keeps this user's group.
            log::warn!(
                "{}: keeps group {} ({e}); only that group's members can connect",
                path.display(),
                sock.gid()
            );
        }
    }
    rustix::net::listen(&fd, 1)?;
    Ok(fd)
}

/// Accepts one peer, waiting at most `timeout`.
pub fn accept(listener: BorrowedFd<'_>, timeout: Duration) -> Result<Option<OwnedFd>, WireError> {
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    let mut pfd = [rustix::event::PollFd::new(
        &listener,
        rustix::event::PollFlags::IN,
    )];
    let ts = rustix::event::Timespec {
        tv_sec: i64::from(ms / 1000),
        tv_nsec: i64::from(ms % 1000) * 1_000_000,
    };
    if rustix::event::poll(&mut pfd, Some(&ts))? == 0 {
        return Ok(None);
    }
    Ok(Some(rustix::net::accept_with(
        listener,
        SocketFlags::CLOEXEC,
    )?))
}

/// Connects to the helper's socket.
pub fn connect(path: &Path) -> Result<OwnedFd, WireError> {
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::connect(&fd, &SocketAddrUnix::new(path)?)?;
    Ok(fd)
}

/// A connected pair (tests, and a helper run as a child of the data plane).
pub fn pair() -> Result<(OwnedFd, OwnedFd), WireError> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// The size of the object behind `fd` (dmabufs report it through `lseek(SEEK_END)`).
pub fn object_len(fd: impl AsFd) -> Result<u64, WireError> {
    let len = rustix::fs::seek(&fd, rustix::fs::SeekFrom::End(0))?;
    rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(0))?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> FrameMeta {
        FrameMeta {
            seq: 7,
            time_ns: 123_456_789,
            fb_id: 42,
            width: 640,
            height: 480,
            fourcc: u32::from_le_bytes(*b"XR24"),
            modifier: 0,
            pitch: 2560,
            offset: 0,
            refresh_mhz: 60_000,
            flags: FLAG_CURSOR_VISIBLE,
            cursor_x: -3,
            cursor_y: 17,
            cursor_w: 64,
            cursor_h: 64,
        }
    }

    fn memfd(len: u64, tag: u8) -> OwnedFd {
        let fd =
            rustix::fs::memfd_create("kms-wire-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, len).unwrap();
        rustix::io::write(&fd, &[tag]).unwrap();
        fd
    }

    #[test]
    fn encode_decode_roundtrip_and_refusals() {
        let m = meta();
        assert_eq!(FrameMeta::decode(&m.encode()).unwrap(), m);
        let mut b = m.encode();
        b[0] ^= 1;
        assert!(matches!(FrameMeta::decode(&b), Err(WireError::Bad(ref s)) if s == "magic"));
        let mut b = m.encode();
        b[4] = 9;
        assert!(
            matches!(FrameMeta::decode(&b), Err(WireError::Bad(ref s)) if s.contains("version"))
        );
        assert!(FrameMeta::decode(&m.encode()[..WIRE_LEN - 1]).is_err());
        for bad in [
            FrameMeta { width: 0, ..m },
            FrameMeta {
                height: MAX_DIM + 1,
                ..m
            },
            FrameMeta { pitch: 639, ..m },
        ] {
            assert!(FrameMeta::decode(&bad.encode()).is_err(), "{bad:?}");
        }
        assert_eq!(m.needed_len(), 2560 * 480);
    }

    #[test]
    fn frames_and_fds_cross_a_socket_pair() {
        let (a, b) = pair().unwrap();
        let frame = memfd(4096, 0xA5);
        let cursor = memfd(64 * 64 * 4, 0x5A);
        send_frame(a.as_fd(), &meta(), frame.as_fd(), Some(cursor.as_fd())).unwrap();
        send_frame(
            a.as_fd(),
            &FrameMeta { seq: 8, ..meta() },
            frame.as_fd(),
            None,
        )
        .unwrap();
        let r = recv_frame(b.as_fd(), Duration::from_secs(5))
            .unwrap()
            .unwrap();
        assert_eq!(r.meta.seq, 7);
        assert_ne!(r.meta.flags & FLAG_CURSOR_IMAGE, 0);
        // The received fds are new descriptors of the same objects.
        assert_eq!(object_len(&r.frame).unwrap(), 4096);
        assert_eq!(object_len(r.cursor.as_ref().unwrap()).unwrap(), 64 * 64 * 4);
        let mut one = [0u8; 1];
        rustix::io::read(r.cursor.as_ref().unwrap(), &mut one).unwrap();
        assert_eq!(one[0], 0x5A);
        let r = recv_frame(b.as_fd(), Duration::from_secs(5))
            .unwrap()
            .unwrap();
        assert_eq!((r.meta.seq, r.cursor.is_none()), (8, true));
        // Nothing more: bounded wait, then None.
        assert!(
            recv_frame(b.as_fd(), Duration::from_millis(20))
                .unwrap()
                .is_none()
        );
        drop(a);
        assert!(matches!(
            recv_frame(b.as_fd(), Duration::from_secs(5)),
            Err(WireError::Closed)
        ));
    }

    #[test]
    fn a_message_without_its_fd_is_refused() {
        let (a, b) = pair().unwrap();
        rustix::net::send(&a, &meta().encode(), SendFlags::empty()).unwrap();
        assert!(matches!(
            recv_frame(b.as_fd(), Duration::from_secs(5)),
            Err(WireError::Bad(ref s)) if s.contains("fds")
        ));
    }

    #[test]
    fn requests_and_replies_cross_between_frames() {
        let (helper, dp) = pair().unwrap();
        assert_eq!(poll_peer(helper.as_fd()), PeerInput::Nothing);
        let req = ModeRequest {
            mode: DisplayMode {
                width: 800,
                height: 600,
                refresh_mhz: 60_000,
            },
        };
        send_request(dp.as_fd(), &req).unwrap();
        assert_eq!(poll_peer(helper.as_fd()), PeerInput::Request(req));
        assert_eq!(poll_peer(helper.as_fd()), PeerInput::Nothing);
        // Garbage is named, never acted on.
        rustix::net::send(&dp, b"hello", SendFlags::empty()).unwrap();
        assert!(
            matches!(poll_peer(helper.as_fd()), PeerInput::Bad(ref w) if w.contains("5 bytes"))
        );
        // The reply arrives between frames, without an fd.
        let f = memfd(4096, 1);
        send_frame(helper.as_fd(), &meta(), f.as_fd(), None).unwrap();
        send_reply(helper.as_fd(), &ModeReply::HeldByOther).unwrap();
        send_frame(helper.as_fd(), &meta(), f.as_fd(), None).unwrap();
        let kinds: Vec<bool> = (0..3)
            .map(|_| {
                matches!(
                    recv_message(dp.as_fd(), Duration::from_secs(5))
                        .unwrap()
                        .unwrap(),
                    Message::Mode(ModeReply::HeldByOther)
                )
            })
            .collect();
        assert_eq!(kinds, [false, true, false]);
        // A reply where only frames are expected is the peer's error.
        send_reply(helper.as_fd(), &ModeReply::HeldByOther).unwrap();
        assert!(matches!(
            recv_frame(dp.as_fd(), Duration::from_secs(5)),
            Err(WireError::Bad(ref s)) if s.contains("unasked")
        ));
        drop(dp);
        assert_eq!(poll_peer(helper.as_fd()), PeerInput::Gone);
    }

    #[test]
    fn listener_and_connect() {
        let dir = std::env::temp_dir().join(format!("strahl-kms-wire-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("capture.sock");
        // A directory of another group (as on the appliance); only root may set that up.
        let other_group = std::os::unix::fs::chown(&dir, None, Some(65534)).is_ok();
        let l = listen(&path).unwrap();
        {
            use std::os::unix::fs::MetadataExt;
            let (sock, dir_meta) = (
                std::fs::metadata(&path).unwrap(),
                std::fs::metadata(&dir).unwrap(),
            );
            assert_eq!(sock.mode() & 0o777, 0o660);
            assert_eq!(sock.gid(), dir_meta.gid());
            if other_group {
                assert_eq!(sock.gid(), 65534);
            }
        }
        assert!(
            accept(l.as_fd(), Duration::from_millis(10))
                .unwrap()
                .is_none()
        );
        let c = connect(&path).unwrap();
        let s = accept(l.as_fd(), Duration::from_secs(5)).unwrap().unwrap();
        let f = memfd(100, 1);
        send_frame(s.as_fd(), &meta(), f.as_fd(), None).unwrap();
        assert!(
            recv_frame(c.as_fd(), Duration::from_secs(5))
                .unwrap()
                .is_some()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
