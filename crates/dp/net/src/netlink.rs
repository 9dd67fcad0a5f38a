//! The kernel's routing and neighbour tables over rtnetlink, for per-destination transport choice.
//!
//! Contract:
//! - [`route_get`] asks the kernel which way it would send a datagram to `dest` (RTM_GETROUTE
//!   with RTA_DST, exactly what `ip route get` does): output interface, gateway, preferred source
//!   and route type. It is the kernel's own decision (longest prefix, policy rules, local
//!   addresses routed through `lo`), so the data plane never second-guesses routing.
//! - [`neighbour`] looks an IPv4 or IPv6 next hop up in the neighbour table (RTM_GETNEIGH dump of
//!   one family) and returns its link-layer address when the entry is usable (REACHABLE, STALE,
//!   DELAY, PROBE, NOARP, PERMANENT). `Ok(None)` means "not resolved yet": the caller lets an
//!   ordinary datagram trigger resolution and asks again later; nothing here sends a packet.
//! - Both read the calling thread's network namespace, allocate one receive buffer per call and
//!   run at session set-up or on the housekeeping cadence, never per packet.
//! - The parsers ([`parse_route_reply`], [`parse_neigh_dump`]) are pure and bounds-checked: the
//!   bytes come from the kernel, but a malformed message ends the scan instead of panicking
//!   (property-tested with random bytes).
#![allow(unsafe_code)]

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NLMSG_HDR: usize = 16;
const RTMSG_LEN: usize = 12;
const NDMSG_LEN: usize = 12;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PREFSRC: u16 = 7;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
/// NUD states whose link-layer address is valid: REACHABLE, STALE, DELAY, PROBE, NOARP, PERMANENT.
const NUD_VALID: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80;
/// Receive bound: at most this many datagrams per request (bounded loop).
const MAX_READS: usize = 1024;
/// One netlink datagram; the kernel sizes dump parts to the page size, 32 KiB holds any.
const RECV_BUF: usize = 32 * 1024;

/// What the kernel's route type says about a destination (rtm_type, linux/rtnetlink.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// RTN_UNICAST: sent out of `ifindex` (to `gateway` or directly).
    Unicast,
    /// RTN_LOCAL: one of this host's own addresses (delivered through `lo`).
    Local,
    /// Anything else (broadcast, multicast, blackhole, unreachable, prohibit…), with its code.
    Other(u8),
}

/// The kernel's answer to "how would you send to this address".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub kind: RouteKind,
    /// Output interface index (0 when the kernel gave none).
    pub ifindex: u32,
    /// Next-hop router, when the destination is not on-link.
    pub gateway: Option<IpAddr>,
    /// Source address the kernel would use.
    pub prefsrc: Option<IpAddr>,
}

impl Route {
    /// The address whose link-layer address frames must carry: the gateway, else `dest` itself.
    pub fn next_hop(&self, dest: IpAddr) -> IpAddr {
        self.gateway.unwrap_or(dest)
    }
}

/// Why a route lookup gave no route.
#[derive(Debug)]
pub enum RouteError {
    /// The kernel answered with an error (ENETUNREACH, EHOSTUNREACH, …).
    Kernel(io::Error),
    /// The socket could not be opened or the request not sent/received.
    Io(io::Error),
    /// The reply had no route message (malformed or empty).
    NoReply,
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteError::Kernel(e) => write!(f, "no route: {e}"),
            RouteError::Io(e) => write!(f, "netlink: {e}"),
            RouteError::NoReply => f.write_str("netlink: no route in the kernel's reply"),
        }
    }
}

impl std::error::Error for RouteError {}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn addr_of(v: &[u8]) -> Option<IpAddr> {
    match v.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(v).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(v).ok()?)),
        _ => None,
    }
}

/// Walk the route attributes (`rtattr`: len u16, type u16, value, padded to 4).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = usize::from(u16_at(b, 0));
        let ty = u16_at(b, 2) & 0x3fff; // drop NLA_F_NESTED / NLA_F_NET_BYTEORDER
        if len < 4 || len > b.len() {
            return None;
        }
        let v = &b[4..len];
        b = &b[((len + 3) & !3).min(b.len())..];
        Some((ty, v))
    })
}

/// Messages of one netlink datagram: (type, body after the 16-byte header).
fn messages(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < NLMSG_HDR {
            return None;
        }
        let len = u32_at(b, 0) as usize;
        if len < NLMSG_HDR || len > b.len() {
            return None;
        }
        let ty = u16_at(b, 4);
        let body = &b[NLMSG_HDR..len];
        b = &b[((len + 3) & !3).min(b.len())..];
        Some((ty, body))
    })
}

/// Parse the reply to an RTM_GETROUTE request.
pub fn parse_route_reply(buf: &[u8]) -> Result<Route, RouteError> {
    for (ty, body) in messages(buf) {
        match ty {
            NLMSG_ERROR if body.len() >= 4 => {
                let code = i32::from_ne_bytes([body[0], body[1], body[2], body[3]]);
                if code != 0 {
                    return Err(RouteError::Kernel(io::Error::from_raw_os_error(
                        code.saturating_neg(),
                    )));
                }
            }
            RTM_NEWROUTE if body.len() >= RTMSG_LEN => {
                let kind = match body[7] {
                    1 => RouteKind::Unicast,
                    2 => RouteKind::Local,
                    k => RouteKind::Other(k),
                };
                let mut r = Route {
                    kind,
                    ifindex: 0,
                    gateway: None,
                    prefsrc: None,
                };
                for (aty, v) in attrs(&body[RTMSG_LEN..]) {
                    match aty {
                        RTA_OIF if v.len() == 4 => r.ifindex = u32_at(v, 0),
                        RTA_GATEWAY => r.gateway = addr_of(v),
                        RTA_PREFSRC => r.prefsrc = addr_of(v),
                        _ => {}
                    }
                }
                return Ok(r);
            }
            _ => {}
        }
    }
    Err(RouteError::NoReply)
}

/// Outcome of scanning one datagram of a neighbour dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpScan {
    Found([u8; 6]),
    /// The dump ended (NLMSG_DONE/ERROR) without a usable entry.
    Done,
    /// Read the next datagram.
    More,
}

/// Scan one datagram of an RTM_GETNEIGH dump for a usable entry of `ip` on `ifindex`.
pub fn parse_neigh_dump(buf: &[u8], ifindex: u32, ip: IpAddr) -> DumpScan {
    let family = if ip.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    for (ty, body) in messages(buf) {
        match ty {
            NLMSG_DONE | NLMSG_ERROR => return DumpScan::Done,
            RTM_NEWNEIGH if body.len() >= NDMSG_LEN => {
                let idx = u32_at(body, 4);
                let state = u16_at(body, 8);
                if i32::from(body[0]) != family || idx != ifindex || state & NUD_VALID == 0 {
                    continue;
                }
                let (mut dst, mut mac) = (None, None);
                for (aty, v) in attrs(&body[NDMSG_LEN..]) {
                    match aty {
                        NDA_DST => dst = addr_of(v),
                        NDA_LLADDR if v.len() == 6 => mac = <[u8; 6]>::try_from(v).ok(),
                        _ => {}
                    }
                }
                if let (Some(d), Some(m)) = (dst, mac)
                    && d == ip
                {
                    return DumpScan::Found(m);
                }
            }
            _ => {}
        }
    }
    DumpScan::More
}

fn open() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh descriptor we own exclusively.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // A kernel that never answers must not hang the caller: bound every receive.
    let tv = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: SO_RCVTIMEO reads a timeval of the given size from a live local.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn send(fd: &OwnedFd, req: &[u8]) -> io::Result<()> {
    // SAFETY: sends `req.len()` bytes from a live buffer; the kernel is the default destination.
    let n = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn recv(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: receives into a live buffer of buf.len() bytes.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

fn header(req: &mut [u8], ty: u16, flags: i32) {
    let len = req.len() as u32;
    req[0..4].copy_from_slice(&len.to_ne_bytes());
    req[4..6].copy_from_slice(&ty.to_ne_bytes());
    req[6..8].copy_from_slice(&(flags as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
}

/// How the kernel would route a datagram to `dest` (calling thread's namespace).
pub fn route_get(dest: IpAddr) -> Result<Route, RouteError> {
    let (family, bytes): (i32, Vec<u8>) = match dest {
        IpAddr::V4(a) => (libc::AF_INET, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6, a.octets().to_vec()),
    };
    let alen = 4 + bytes.len();
    let mut req = vec![0u8; NLMSG_HDR + RTMSG_LEN + alen];
    header(&mut req, RTM_GETROUTE, libc::NLM_F_REQUEST);
    req[NLMSG_HDR] = family as u8;
    req[NLMSG_HDR + 1] = (bytes.len() * 8) as u8; // rtm_dst_len: a host route
    let a = NLMSG_HDR + RTMSG_LEN;
    req[a..a + 2].copy_from_slice(&(alen as u16).to_ne_bytes());
    req[a + 2..a + 4].copy_from_slice(&RTA_DST.to_ne_bytes());
    req[a + 4..].copy_from_slice(&bytes);
    let fd = open().map_err(RouteError::Io)?;
    send(&fd, &req).map_err(RouteError::Io)?;
    let mut buf = vec![0u8; RECV_BUF];
    let n = recv(&fd, &mut buf).map_err(RouteError::Io)?;
    parse_route_reply(&buf[..n])
}

/// The usable link-layer address of `ip` on `ifindex`, if the neighbour table has one.
pub fn neighbour(ifindex: u32, ip: IpAddr) -> io::Result<Option<[u8; 6]>> {
    let fd = open()?;
    let mut req = [0u8; NLMSG_HDR + NDMSG_LEN];
    header(
        &mut req,
        RTM_GETNEIGH,
        libc::NLM_F_REQUEST | libc::NLM_F_DUMP,
    );
    req[NLMSG_HDR] = if ip.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    } as u8;
    send(&fd, &req)?;
    let mut buf = vec![0u8; RECV_BUF];
    for _ in 0..MAX_READS {
        let n = recv(&fd, &mut buf)?;
        match parse_neigh_dump(&buf[..n], ifindex, ip) {
            DumpScan::Found(m) => return Ok(Some(m)),
            DumpScan::Done => return Ok(None),
            DumpScan::More if n == 0 => return Ok(None),
            DumpScan::More => {}
        }
    }
    Ok(None)
}

/// Index of interface `name` (calling thread's namespace).
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name"))?;
    // SAFETY: c is a valid NUL-terminated string for the duration of the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn nlmsg(ty: u16, body: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; NLMSG_HDR];
        m[0..4].copy_from_slice(&((NLMSG_HDR + body.len()) as u32).to_ne_bytes());
        m[4..6].copy_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(body);
        while !m.len().is_multiple_of(4) {
            m.push(0);
        }
        m
    }

    fn rta(ty: u16, v: &[u8]) -> Vec<u8> {
        let mut a = ((4 + v.len()) as u16).to_ne_bytes().to_vec();
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(v);
        while !a.len().is_multiple_of(4) {
            a.push(0);
        }
        a
    }

    #[test]
    fn route_reply_gives_interface_gateway_and_kind() {
        let mut body = vec![libc::AF_INET as u8, 32, 0, 0, 254, 0, 0, 1, 0, 0, 0, 0];
        body.extend(rta(RTA_DST, &[10, 77, 0, 2]));
        body.extend(rta(RTA_OIF, &7u32.to_ne_bytes()));
        body.extend(rta(RTA_GATEWAY, &[10, 77, 0, 254]));
        body.extend(rta(RTA_PREFSRC, &[10, 77, 0, 1]));
        let r = parse_route_reply(&nlmsg(RTM_NEWROUTE, &body)).unwrap();
        assert_eq!(r.kind, RouteKind::Unicast);
        assert_eq!(r.ifindex, 7);
        assert_eq!(r.gateway, Some(IpAddr::from([10, 77, 0, 254])));
        assert_eq!(r.prefsrc, Some(IpAddr::from([10, 77, 0, 1])));
        assert_eq!(
            r.next_hop(IpAddr::from([10, 77, 0, 2])),
            IpAddr::from([10, 77, 0, 254])
        );
        body[7] = 2;
        let local = parse_route_reply(&nlmsg(RTM_NEWROUTE, &body)).unwrap();
        assert_eq!(local.kind, RouteKind::Local);
    }

    #[test]
    fn route_error_is_the_kernels_errno() {
        let body = (-libc::ENETUNREACH).to_ne_bytes();
        match parse_route_reply(&nlmsg(NLMSG_ERROR, &body)) {
            Err(RouteError::Kernel(e)) => assert_eq!(e.raw_os_error(), Some(libc::ENETUNREACH)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_route_reply(&[]), Err(RouteError::NoReply)));
    }

    #[test]
    fn neighbour_dump_finds_only_usable_entries_of_the_interface() {
        let entry = |idx: u32, state: u16, ip: [u8; 4], mac: &[u8]| {
            let mut b = vec![libc::AF_INET as u8, 0, 0, 0];
            b.extend(idx.to_ne_bytes());
            b.extend(state.to_ne_bytes());
            b.extend([0, 0]);
            b.extend(rta(NDA_DST, &ip));
            b.extend(rta(NDA_LLADDR, mac));
            nlmsg(RTM_NEWNEIGH, &b)
        };
        let ip = IpAddr::from([10, 0, 0, 2]);
        let mut dump = entry(3, 0x02, [10, 0, 0, 2], &[1; 6]); // other interface
        dump.extend(entry(4, 0x20, [10, 0, 0, 2], &[2; 6])); // FAILED: unusable
        dump.extend(entry(4, 0x01, [10, 0, 0, 2], &[4; 6])); // INCOMPLETE: unusable
        assert_eq!(parse_neigh_dump(&dump, 4, ip), DumpScan::More);
        // A link-layer address that is not 6 bytes is not a MAC.
        for len in [5, 7] {
            let odd = entry(4, 0x02, [10, 0, 0, 2], &vec![5; len]);
            assert_eq!(
                parse_neigh_dump(&odd, 4, ip),
                DumpScan::More,
                "{len}-byte address"
            );
        }
        dump.extend(entry(4, 0x04, [10, 0, 0, 2], &[3; 6])); // STALE: usable
        assert_eq!(parse_neigh_dump(&dump, 4, ip), DumpScan::Found([3; 6]));
        assert_eq!(
            parse_neigh_dump(&nlmsg(NLMSG_DONE, &[0; 4]), 4, ip),
            DumpScan::Done
        );
    }

    #[test]
    fn the_kernel_routes_loopback_through_lo() {
        // Live: the calling namespace always has lo with 127.0.0.1.
        let r = route_get(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        assert_eq!(r.kind, RouteKind::Local);
        assert_eq!(r.ifindex, ifindex("lo").unwrap());
    }

    proptest! {
        #[test]
        fn hostile_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_route_reply(&b);
            let _ = parse_neigh_dump(&b, 1, IpAddr::from([1, 2, 3, 4]));
        }
    }
}
