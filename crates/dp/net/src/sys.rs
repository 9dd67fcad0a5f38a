//! Thin socket helpers over `libc` shared by the kernel-socket transports.
//!
//! Contract: every function here is a single syscall (or a fixed small number) with no allocation;
//! addresses are converted through caller-provided `sockaddr_storage` so the send paths never
//! allocate. errno classification ([`classify`]) is the single place that decides "counter vs
//! error" for the send paths.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// How a send-path errno is handled (see the crate contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrClass {
    /// Back-pressure: keep the datagram pending, count a stall, retry on the next flush.
    Retry,
    /// This datagram is refused: drop it, free its frame, count it.
    DropOne,
    /// The socket is unusable: surface `NetError::Broken`.
    Fatal,
}

pub fn classify(errno: i32) -> ErrClass {
    match errno {
        libc::EAGAIN | libc::ENOBUFS | libc::EINTR | libc::ENOMEM => ErrClass::Retry,
        libc::EBADF | libc::ENOTSOCK | libc::EFAULT | libc::EOPNOTSUPP | libc::EPIPE => {
            ErrClass::Fatal
        }
        // EMSGSIZE, EINVAL (bad GSO shape), ENETUNREACH, EHOSTUNREACH, EPERM/EACCES (firewall),
        // ECONNREFUSED (ICMP error queued on the socket), EADDRNOTAVAIL, EAFNOSUPPORT, ...
        _ => ErrClass::DropOne,
    }
}

pub fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Write `addr` into `storage`, returning the length to pass to the kernel.
pub fn write_sockaddr(addr: &SocketAddr, storage: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in; all
            // fields written are plain integers.
            let sin = unsafe { &mut *(storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            sin.sin_zero = [0; 8];
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above for sockaddr_in6.
            let sin6 = unsafe { &mut *(storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Read a source address written by the kernel. `None` for families other than IPv4/IPv6.
pub fn read_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match storage.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: family says the storage holds a sockaddr_in, which it is large enough for.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above for sockaddr_in6.
            let s = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(s.sin6_addr.s6_addr);
            let port = u16::from_be(s.sin6_port);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                port,
                s.sin6_flowinfo,
                s.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

pub fn zeroed_storage() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid (AF_UNSPEC) value.
    unsafe { zeroed() }
}

fn setsockopt_int(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: passes a pointer to a live i32 and its exact size; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const i32 as *const libc::c_void,
            size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn getsockopt_int(fd: RawFd, level: i32, name: i32) -> io::Result<i32> {
    let mut value: i32 = 0;
    let mut len = size_of::<i32>() as libc::socklen_t;
    // SAFETY: value/len point to live locals of the sizes the kernel is told.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            &mut value as *mut i32 as *mut libc::c_void,
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the kernel runs AF_XDP socket `fd` in zero-copy mode: `getsockopt(SOL_XDP,
/// XDP_OPTIONS)` and `XDP_OPTIONS_ZEROCOPY` — the kernel's own report of the bound mode, not what
/// bind asked for.
pub fn xdp_zero_copy(fd: RawFd) -> io::Result<bool> {
    // struct xdp_options is one __u32 of flags: the size of the int read here.
    let flags = getsockopt_int(fd, libc::SOL_XDP, libc::XDP_OPTIONS)? as u32;
    Ok(flags & libc::XDP_OPTIONS_ZEROCOPY != 0)
}

/// Socket buffer size: tries the privileged `*BUFFORCE` (past `net.core.[rw]mem_max`) first, then
/// the plain option. Returns the size the kernel reports afterwards.
pub fn set_buffer(sock: &UdpSocket, send: bool, bytes: usize) -> io::Result<usize> {
    let fd = sock.as_raw_fd();
    let bytes = bytes.min(i32::MAX as usize) as i32;
    let (force, plain) = if send {
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF)
    } else {
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF)
    };
    if setsockopt_int(fd, libc::SOL_SOCKET, force, bytes).is_err() {
        setsockopt_int(fd, libc::SOL_SOCKET, plain, bytes)?;
    }
    Ok(getsockopt_int(fd, libc::SOL_SOCKET, plain)? as usize)
}

/// Whether the kernel accepts `UDP_SEGMENT` on this socket (leaves the socket default unchanged).
pub fn probe_udp_segment(sock: &UdpSocket) -> bool {
    let fd = sock.as_raw_fd();
    setsockopt_int(fd, libc::SOL_UDP, libc::UDP_SEGMENT, 1200).is_ok()
        && setsockopt_int(fd, libc::SOL_UDP, libc::UDP_SEGMENT, 0).is_ok()
}

/// Turns UDP GRO (`UDP_GRO`, Linux ≥ 5.0) on or off for a socket.
pub fn set_udp_gro(sock: &UdpSocket, on: bool) -> io::Result<()> {
    setsockopt_int(sock.as_raw_fd(), libc::SOL_UDP, libc::UDP_GRO, on as i32)
}

/// Set the calling thread's timer slack (`PR_SET_TIMERSLACK`). The default 50 µs lets the kernel
/// wake a timed sleep up to 50 µs late to batch wake-ups; a pacing thread wants its sleeps to
/// end on time (1 ns slack cut the sleep error p99 from ~63 to ~32 µs in bursts on the dev VM,
/// docs/measurements.md §pacing).
pub fn set_timer_slack_ns(ns: u64) -> io::Result<()> {
    // SAFETY: PR_SET_TIMERSLACK takes its value as the second argument and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Real-time scheduling of the calling thread: `priority` 1..=99 is SCHED_FIFO at that
/// priority with SCHED_RESET_ON_FORK (threads it creates — an encoder library's workers —
/// start at normal priority, so no unbounded work inherits it); 0 is SCHED_OTHER again. The
/// kernel allows it with CAP_SYS_NICE or RLIMIT_RTPRIO ≥ `priority` ([`allow_realtime`]).
/// Measured: capture → reassembled p99 of 104 kB native frames on the loaded 2-core VM
/// 3.0–5.8 ms at normal priority, 0.56–0.86 ms with host and client media threads at FIFO 10
/// (docs/measurements.md §media path, "Real-time media threads").
pub fn set_realtime_current(priority: u8) -> io::Result<()> {
    let (policy, prio) = if priority == 0 {
        (libc::SCHED_OTHER, 0)
    } else {
        (
            libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK,
            libc::c_int::from(priority),
        )
    };
    let param = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: pid 0 names the calling thread; the kernel only reads `param`, a valid
    // sched_param that outlives the call.
    let rc = unsafe { libc::sched_setscheduler(0, policy, &param) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The calling thread's scheduling policy (SCHED_RESET_ON_FORK masked off) and priority.
pub fn current_scheduler() -> io::Result<(libc::c_int, libc::c_int)> {
    // SAFETY: sched_getscheduler(0) reads the calling thread's policy and touches no memory.
    let policy = unsafe { libc::sched_getscheduler(0) };
    if policy < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: the kernel writes one sched_param into `param`, which is valid for writes.
    if unsafe { libc::sched_getparam(0, &mut param) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((policy & !libc::SCHED_RESET_ON_FORK, param.sched_priority))
}

/// Raises this process's RLIMIT_RTPRIO to at least `priority`, so its threads may take
/// SCHED_FIFO at that priority after capabilities are dropped. Raising the hard limit needs
/// CAP_SYS_RESOURCE (the appliance's unit sets `LimitRTPRIO=` instead); a limit already high
/// enough is left alone.
pub fn allow_realtime(priority: u8) -> io::Result<()> {
    let want = libc::rlim_t::from(priority);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into `lim`, which is valid for writes.
    if unsafe { libc::getrlimit(libc::RLIMIT_RTPRIO, &mut lim) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur >= want {
        return Ok(());
    }
    let raised = libc::rlimit {
        rlim_cur: want,
        rlim_max: lim.rlim_max.max(want),
    };
    // SAFETY: setrlimit reads one valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_RTPRIO, &raised) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Restrict the calling thread to `cores` (`sched_setaffinity`): the data plane keeps its encode
/// threads off the tx tile's core. Cores past `CPU_SETSIZE` are an error, not ignored.
pub fn set_affinity_current(cores: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cores {
        if c >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("core {c} is past CPU_SETSIZE"),
            ));
        }
        // SAFETY: c < CPU_SETSIZE, checked above, so the bit lies inside `set`.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Receive one datagram without waiting (`MSG_DONTWAIT`), whatever the socket's blocking mode:
/// a socket shared with an io_uring queue must stay blocking (io_uring then waits for socket
/// space itself; on an `O_NONBLOCK` socket its sends complete with EAGAIN and are lost), yet the
/// same socket's incoming pings are polled. `WouldBlock` when nothing is queued.
pub fn recv_from_nowait(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    use std::os::fd::AsRawFd;
    let mut storage = zeroed_storage();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `buf` is writable for its length; `storage`/`len` describe a live sockaddr_storage
    // the kernel fills with the source address.
    let n = unsafe {
        libc::recvfrom(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let src = read_sockaddr(&storage)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "source address family"))?;
    Ok((n as usize, src))
}

/// Wait until `fd` is readable or `timeout` passes. Returns whether it is readable.
pub fn poll_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one live pollfd, count 1.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    match rc {
        0 => Ok(false),
        n if n > 0 => Ok(true),
        _ => {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

/// Most descriptors [`poll_readable_any`] waits on (the redirect program's XSKMAP size).
pub const POLL_ANY_MAX: usize = 64;

/// Wait until any of `fds` is readable or `timeout` passes; marks `ready[i]` for each readable
/// `fds[i]` and returns how many are. At most [`POLL_ANY_MAX`] descriptors (the pollfd array
/// lives on the stack: a receive loop over several AF_XDP sockets calls this per wake-up and
/// must not allocate). An invalid descriptor is reported by the kernel (`POLLNVAL`), counted as
/// readable so the caller's own receive call surfaces the error.
pub fn poll_readable_any(
    fds: &[RawFd],
    ready: &mut [bool],
    timeout: Duration,
) -> io::Result<usize> {
    let n = fds.len();
    if n > POLL_ANY_MAX || ready.len() < n {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut pfds = [libc::pollfd {
        fd: -1,
        events: 0,
        revents: 0,
    }; POLL_ANY_MAX];
    for (p, &fd) in pfds.iter_mut().zip(fds) {
        p.fd = fd;
        p.events = libc::POLLIN;
    }
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: `pfds` is a live array of POLL_ANY_MAX pollfds and we pass n ≤ POLL_ANY_MAX.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), n as libc::nfds_t, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::EINTR) {
            ready[..n].fill(false);
            Ok(0)
        } else {
            Err(e)
        };
    }
    let mut count = 0;
    for (r, p) in ready.iter_mut().zip(&pfds[..n]) {
        *r = p.revents != 0;
        count += usize::from(*r);
    }
    Ok(count)
}

/// Space for one `UDP_SEGMENT` control message (a u16 payload).
pub const GSO_CMSG_SPACE: usize = 24; // CMSG_SPACE(sizeof(u16)) on 64-bit Linux: 16 + 8

/// Fill `buf` with a `SOL_UDP/UDP_SEGMENT` cmsg carrying `seg`; returns the control length.
pub fn write_gso_cmsg(buf: &mut [u64; GSO_CMSG_SPACE / 8], seg: u16) -> usize {
    // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic.
    let (space, len) = unsafe {
        (
            libc::CMSG_SPACE(size_of::<u16>() as u32),
            libc::CMSG_LEN(size_of::<u16>() as u32),
        )
    };
    debug_assert_eq!(space as usize, GSO_CMSG_SPACE);
    *buf = [0; GSO_CMSG_SPACE / 8];
    let hdr = buf.as_mut_ptr() as *mut libc::cmsghdr;
    // SAFETY: buf is 8-byte aligned and GSO_CMSG_SPACE bytes long, enough for the header and the
    // u16 payload at CMSG_DATA (header is 16 bytes).
    unsafe {
        (*hdr).cmsg_level = libc::SOL_UDP;
        (*hdr).cmsg_type = libc::UDP_SEGMENT;
        (*hdr).cmsg_len = len as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(hdr) as *mut u16, seg);
    }
    space as usize
}

/// The segment size of a `SOL_UDP/UDP_GRO` cmsg in a message `recvmsg` filled, if it has one.
pub fn read_gro_cmsg(hdr: &libc::msghdr) -> Option<usize> {
    // SAFETY: `hdr` was filled by the kernel: msg_control/msg_controllen describe a live buffer
    // the caller still owns, and CMSG_FIRSTHDR/CMSG_NXTHDR stay within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP
                && (*c).cmsg_type == libc::UDP_GRO
                && (*c).cmsg_len as usize >= libc::CMSG_LEN(size_of::<i32>() as u32) as usize
            {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const i32);
                return usize::try_from(v).ok();
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_readable_any_marks_only_the_readable_sockets() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let fds = [a.as_raw_fd(), b.as_raw_fd()];
        let mut ready = [true; 2];
        let n = poll_readable_any(&fds, &mut ready, Duration::from_millis(1)).unwrap();
        assert_eq!((n, ready), (0, [false, false]));
        a.send_to(b"x", b.local_addr().unwrap()).unwrap();
        let n = poll_readable_any(&fds, &mut ready, Duration::from_secs(5)).unwrap();
        assert_eq!((n, ready), (1, [false, true]));
        let too_many = [a.as_raw_fd(); POLL_ANY_MAX + 1];
        let mut r = [false; POLL_ANY_MAX + 1];
        assert!(poll_readable_any(&too_many, &mut r, Duration::ZERO).is_err());
    }
}
