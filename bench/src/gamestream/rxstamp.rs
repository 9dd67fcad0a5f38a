//! Kernel receive timestamps of the host's GameStream video packets, captured in the client's
//! network namespace (for `gamestream --netns`, scored by [`super::ipg`]).
//!
//! Contract:
//! - [`Capture::start`] opens an AF_PACKET socket (`SOCK_DGRAM`, IPv4 only) *inside* the client
//!   namespace, bound to the client's veth, with `SO_TIMESTAMPNS` (the kernel's receive time,
//!   CLOCK_REALTIME, stamped when the packet enters the veth's receive path), a 64 MiB receive
//!   buffer (`SO_RCVBUFFORCE`, root) and `SO_RXQ_OVFL` (the socket's drop counter); a thread
//!   then reads it with `recvmmsg` (64 per call, the first 96 bytes of each packet: IPv4 + UDP +
//!   the 32-byte GameStream shard header) and keeps, for every UDP datagram from the host's
//!   address and video port, its time, `frameIndex`, RTP sequence number, FEC block, shard
//!   index, data-shard count and wire length.
//! - [`Capture::finish`] stops the thread and returns the packets in arrival order with the
//!   socket's drop count (packets the capture itself lost: they make frames incomplete, which
//!   the scoring skips and counts). The thread is bounded: it also stops after
//!   [`MAX_PACKETS`] packets or the duration given to `start`.
//! - The socket observes; it takes nothing from the client (AF_PACKET receives a copy).
//!
//! The only `unsafe` of the bench: `socket`/`setsockopt`/`bind`/`recvmmsg` through libc
//! (socket2 offers neither SO_TIMESTAMPNS nor recvmmsg); control messages are parsed as bytes.
#![allow(unsafe_code)]

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::ipg::VideoPacket;

/// Bound on packets kept per capture (24 B each, ≤ 480 MB): a run of a few minutes at
/// 1 Gbit/s (≈ 90 k packets/s) stays far below; this only stops a runaway.
pub const MAX_PACKETS: usize = 20_000_000;
/// Messages per `recvmmsg`.
const BATCH: usize = 64;
/// Bytes kept per packet: IPv4 (≤ 60) + UDP (8) + the 32-byte shard header, rounded up.
const SNAP: usize = 128;
/// Control-message space per packet (a timespec and a u32, each with its header).
const CMSG_SPACE: usize = 128;
/// Receive timeout: how often the thread looks at its stop flag.
const RCV_TIMEOUT: Duration = Duration::from_millis(100);
/// Socket receive buffer: the kernel charges each queued packet's full buffer (~2 KiB on
/// veth), so 64 MiB holds ~0.3 s of 1 Gbit/s while the capture thread waits for a core.
const RCVBUF: i32 = 64 << 20;
const ETH_HEADER: u16 = 14;

/// What a finished capture holds.
pub struct Captured {
    pub packets: Vec<VideoPacket>,
    /// The kernel's drop counter of the capture socket (SO_RXQ_OVFL) at the end.
    pub socket_drops: u32,
    /// Why the thread ended early, if it did.
    pub note: Option<String>,
}

/// A running capture.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Captured>>,
}

fn cvt(rc: libc::c_int, what: &str) -> io::Result<libc::c_int> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(rc)
    }
}

fn set_int(fd: &OwnedFd, opt: libc::c_int, val: libc::c_int, what: &str) -> io::Result<()> {
    // SAFETY: `val` outlives the call and the length is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&val as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    cvt(rc, what).map(|_| ())
}

/// The socket, opened in the calling thread's namespace.
fn open(ifname: &str) -> io::Result<OwnedFd> {
    let proto = (libc::ETH_P_IP as u16).to_be();
    // SAFETY: plain syscall; the result is checked before it is wrapped.
    let raw = cvt(
        unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::c_int::from(proto),
            )
        },
        "socket(AF_PACKET)",
    )?;
    // SAFETY: `raw` is a fresh descriptor owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    if set_int(&fd, libc::SO_RCVBUFFORCE, RCVBUF, "SO_RCVBUFFORCE").is_err() {
        set_int(&fd, libc::SO_RCVBUF, RCVBUF, "SO_RCVBUF")?;
    }
    set_int(&fd, libc::SO_TIMESTAMPNS, 1, "SO_TIMESTAMPNS")?;
    set_int(&fd, libc::SO_RXQ_OVFL, 1, "SO_RXQ_OVFL")?;
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: RCV_TIMEOUT.as_micros() as libc::suseconds_t,
    };
    // SAFETY: `tv` outlives the call and the length is its size.
    cvt(
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        },
        "SO_RCVTIMEO",
    )?;
    let index = strahl_net::testbed::ifindex(ifname)?;
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = index as libc::c_int;
    // SAFETY: `sll` is a valid sockaddr_ll of the given length for the call's duration.
    cvt(
        unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        },
        "bind(AF_PACKET)",
    )?;
    Ok(fd)
}

/// (receive time ns, drop counter) from one packet's control messages (parsed as bytes:
/// `cmsghdr` = len: usize, level: i32, type: i32, then the data at pointer alignment).
fn parse_cmsgs(buf: &[u8]) -> (Option<i64>, Option<u32>) {
    let hdr = std::mem::size_of::<libc::cmsghdr>();
    let align = |n: usize| n.div_ceil(std::mem::size_of::<usize>()) * std::mem::size_of::<usize>();
    let (mut t, mut drops) = (None, None);
    let mut off = 0;
    while off + hdr <= buf.len() {
        let word = std::mem::size_of::<usize>();
        let len = usize::from_ne_bytes(buf[off..off + word].try_into().unwrap_or_default());
        let level =
            i32::from_ne_bytes(buf[off + word..off + word + 4].try_into().unwrap_or([0; 4]));
        let kind = i32::from_ne_bytes(
            buf[off + word + 4..off + word + 8]
                .try_into()
                .unwrap_or([0; 4]),
        );
        if len < hdr || off + len > buf.len() {
            break;
        }
        let data = &buf[off + hdr..off + len];
        if level == libc::SOL_SOCKET && kind == libc::SCM_TIMESTAMPNS && data.len() >= 16 {
            let sec = i64::from_ne_bytes(data[0..8].try_into().unwrap_or([0; 8]));
            let nsec = i64::from_ne_bytes(data[8..16].try_into().unwrap_or([0; 8]));
            t = Some(sec * 1_000_000_000 + nsec);
        } else if level == libc::SOL_SOCKET && kind == libc::SO_RXQ_OVFL && data.len() >= 4 {
            drops = Some(u32::from_ne_bytes(data[0..4].try_into().unwrap_or([0; 4])));
        }
        off += align(len);
    }
    (t, drops)
}

/// The GameStream video packet in an IPv4 datagram from `src:src_port`, if it is one.
fn parse_packet(p: &[u8], src: Ipv4Addr, src_port: u16, t_ns: i64) -> Option<VideoPacket> {
    if p.len() < 20 || p[0] >> 4 != 4 || p[9] != 17 || p[12..16] != src.octets() {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total = u16::from_be_bytes([p[2], p[3]]);
    let udp = p.get(ihl..)?;
    if udp.len() < 8 + 32 || u16::from_be_bytes([udp[0], udp[1]]) != src_port {
        return None;
    }
    let g = &udp[8..];
    // RTP byte 0 of a GameStream video shard (gamestream-host.md §A14).
    if g[0] != 0x90 {
        return None;
    }
    let fec_info = u32::from_le_bytes([g[28], g[29], g[30], g[31]]);
    Some(VideoPacket {
        t_ns,
        frame: u32::from_le_bytes([g[20], g[21], g[22], g[23]]),
        seq: u16::from_be_bytes([g[2], g[3]]),
        block: (g[27] >> 4) & 0x3,
        shard: ((fec_info >> 12) & 0x3ff) as u16,
        data_shards: ((fec_info >> 22) & 0x3ff) as u16,
        wire_len: total.saturating_add(ETH_HEADER),
    })
}

impl Capture {
    /// Starts capturing, in namespace `ns` on `ifname`, the video packets from
    /// `src:src_port`; stops by itself after `max` at the latest.
    pub fn start(
        ns: &str,
        ifname: &str,
        src: Ipv4Addr,
        src_port: u16,
        max: Duration,
    ) -> Result<Capture, String> {
        let name = ifname.to_owned();
        let fd = strahl_net::testbed::in_netns(ns, move || open(&name))
            .map_err(|e| format!("enter {ns}: {e}"))?
            .map_err(|e| format!("capture socket in {ns} on {ifname}: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || run(&fd, &flag, src, src_port, max));
        Ok(Capture {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the capture and returns what it saw.
    pub fn finish(mut self) -> Captured {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or(Captured {
                packets: Vec::new(),
                socket_drops: 0,
                note: Some("capture thread panicked".into()),
            })
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(fd: &OwnedFd, stop: &AtomicBool, src: Ipv4Addr, src_port: u16, max: Duration) -> Captured {
    let t0 = Instant::now();
    let mut out = Captured {
        packets: Vec::with_capacity(1 << 20),
        socket_drops: 0,
        note: None,
    };
    let mut bufs = vec![[0u8; SNAP]; BATCH];
    // u64 storage: control buffers must be aligned for cmsghdr.
    let mut cbufs = vec![[0u64; CMSG_SPACE / 8]; BATCH];
    // SAFETY (all-zero mmsghdr/iovec): plain data; every pointer is set below before use.
    let mut iovs: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; BATCH];
    let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
    while !stop.load(Ordering::Relaxed) {
        if t0.elapsed() > max {
            out.note = Some(format!("stopped after its bound of {max:?}"));
            break;
        }
        if out.packets.len() >= MAX_PACKETS {
            out.note = Some(format!("stopped at {MAX_PACKETS} packets"));
            break;
        }
        for i in 0..BATCH {
            iovs[i] = libc::iovec {
                iov_base: bufs[i].as_mut_ptr().cast(),
                iov_len: SNAP,
            };
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = std::ptr::null_mut();
            h.msg_namelen = 0;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = cbufs[i].as_mut_ptr().cast();
            h.msg_controllen = CMSG_SPACE as _;
            h.msg_flags = 0;
            hdrs[i].msg_len = 0;
        }
        // SAFETY: every header points at buffers that live (unmoved) for the call; the count
        // is the vector's length.
        let n = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => continue,
                _ => {
                    out.note = Some(format!("recvmmsg: {e}"));
                    break;
                }
            }
        }
        for i in 0..n as usize {
            let h = &hdrs[i];
            let clen = (h.msg_hdr.msg_controllen as usize).min(CMSG_SPACE);
            // SAFETY: the u64 array is CMSG_SPACE bytes; viewing it as bytes is always valid.
            let cbytes: &[u8] =
                unsafe { std::slice::from_raw_parts(cbufs[i].as_ptr().cast::<u8>(), clen) };
            let (t, drops) = parse_cmsgs(cbytes);
            if let Some(d) = drops {
                out.socket_drops = d;
            }
            let len = (h.msg_len as usize).min(SNAP);
            if let Some(t) = t
                && let Some(v) = parse_packet(&bufs[i][..len], src, src_port, t)
            {
                out.packets.push(v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(src: [u8; 4], sport: u16, frame: u32, seq: u16, fec_info: u32) -> Vec<u8> {
        let mut p = vec![0u8; 20 + 8 + 32];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&1436u16.to_be_bytes());
        p[9] = 17;
        p[12..16].copy_from_slice(&src);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        let g = &mut p[28..];
        g[0] = 0x90;
        g[2..4].copy_from_slice(&seq.to_be_bytes());
        g[20..24].copy_from_slice(&frame.to_le_bytes());
        g[27] = 2 << 4;
        g[28..32].copy_from_slice(&fec_info.to_le_bytes());
        p
    }

    #[test]
    fn parses_the_shard_header_and_filters_by_source() {
        let host = Ipv4Addr::new(10, 201, 0, 1);
        let fec_info = (7 << 12) | (100 << 22) | (20 << 4);
        let p = datagram(host.octets(), 47998, 42, 0xfffe, fec_info);
        let v = parse_packet(&p, host, 47998, 5).unwrap();
        assert_eq!(
            (v.frame, v.seq, v.block, v.shard, v.data_shards, v.wire_len),
            (42, 0xfffe, 2, 7, 100, 1450)
        );
        assert!(parse_packet(&p, host, 48000, 5).is_none(), "audio port");
        assert!(parse_packet(&p, Ipv4Addr::new(10, 201, 0, 2), 47998, 5).is_none());
        assert!(parse_packet(&p[..40], host, 47998, 5).is_none(), "short");
    }

    #[test]
    fn control_messages_give_time_and_drops() {
        let hdr = std::mem::size_of::<libc::cmsghdr>();
        let word = std::mem::size_of::<usize>();
        let mut b = Vec::new();
        let mut push = |kind: i32, data: &[u8]| {
            let len = hdr + data.len();
            b.extend_from_slice(&len.to_ne_bytes());
            b.extend_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
            b.extend_from_slice(&kind.to_ne_bytes());
            b.resize(b.len() + (hdr - word - 8), 0);
            b.extend_from_slice(data);
            b.resize(b.len().div_ceil(word) * word, 0);
        };
        let mut ts = 3i64.to_ne_bytes().to_vec();
        ts.extend_from_slice(&7i64.to_ne_bytes());
        push(libc::SCM_TIMESTAMPNS, &ts);
        push(libc::SO_RXQ_OVFL, &9u32.to_ne_bytes());
        assert_eq!(parse_cmsgs(&b), (Some(3_000_000_007), Some(9)));
        assert_eq!(parse_cmsgs(&b[..4]), (None, None));
    }
}
