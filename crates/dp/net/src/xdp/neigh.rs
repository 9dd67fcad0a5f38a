//! Next-hop resolution and interface addresses for AF_XDP transmit, one path for IPv4 and IPv6.
//!
//! Contract: runs at session setup, never per packet, in the calling thread's network namespace
//! (right after `setns` on one thread).
//! - [`resolve`] asks the kernel how it would route the destination ([`crate::netlink::route_get`],
//!   RTM_GETROUTE): only a unicast route out of the AF_XDP interface is usable ([`next_hop_via`],
//!   pure), its next hop being the gateway or the destination itself. The next hop's MAC comes
//!   from the kernel's neighbour table ([`crate::netlink::neighbour`], RTM_GETNEIGH, either
//!   family); a missing entry is resolved by sending one ordinary UDP datagram (to the discard
//!   port 9 of the destination) so the kernel runs ARP / NDP, then polling, bounded by a timeout.
//! - The interface's own MAC and IPv4 address come from ioctls; an IPv6 source is picked per
//!   destination from `/proc/thread-self/net/if_inet6` by [`pick_source`] (pure, unit-tested).
#![allow(unsafe_code)]

use crate::netlink::{self, Route, RouteError, RouteKind};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Why a destination cannot be reached through an interface.
#[derive(Debug)]
pub enum NeighError {
    /// The kernel routes the destination elsewhere (another interface, a local address) or not
    /// at all.
    NoRoute { dest: IpAddr, ifname: String },
    /// The neighbour did not answer ARP / NDP within the timeout.
    Unresolved { next_hop: IpAddr, waited: Duration },
    /// The interface has no usable (global or ULA) IPv6 address to send from.
    NoSource { dest: IpAddr, ifname: String },
    /// The destination's address family is not the one the socket carries.
    OtherFamily { dest: IpAddr },
    /// Reading the tables or the interface failed.
    Io(&'static str, io::Error),
}

impl fmt::Display for NeighError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NeighError::NoRoute { dest, ifname } => write!(f, "no route to {dest} via {ifname}"),
            NeighError::Unresolved { next_hop, waited } => {
                write!(f, "neighbour {next_hop} unresolved after {waited:?}")
            }
            NeighError::NoSource { dest, ifname } => {
                write!(f, "no global IPv6 address on {ifname} to reach {dest}")
            }
            NeighError::OtherFamily { dest } => {
                write!(f, "{dest} is not of the address family this socket carries")
            }
            NeighError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for NeighError {}

/// The next hop for `dest` if the kernel's `route` sends it out of interface `ifindex` as
/// unicast: the gateway, or `dest` itself on-link. `None` for a local address, another
/// interface, or a non-unicast route.
pub fn next_hop_via(route: &Route, ifindex: u32, dest: IpAddr) -> Option<IpAddr> {
    (route.kind == RouteKind::Unicast && route.ifindex == ifindex).then(|| route.next_hop(dest))
}

/// The usable neighbour entry of `ip` on `ifname`, if the kernel has one (netlink, either
/// family). `Ok(None)`: not resolved yet (the caller triggers resolution and retries).
pub fn lookup_neighbour(ifname: &str, ip: IpAddr) -> io::Result<Option<[u8; 6]>> {
    netlink::neighbour(netlink::ifindex(ifname)?, ip)
}

/// Resolve the next-hop MAC for `dest` through `ifname`, triggering ARP / NDP if needed.
pub fn resolve(ifname: &str, dest: IpAddr, timeout: Duration) -> Result<[u8; 6], NeighError> {
    let ifindex = netlink::ifindex(ifname).map_err(|e| NeighError::Io("interface index", e))?;
    let no_route = || NeighError::NoRoute {
        dest,
        ifname: ifname.to_string(),
    };
    let route = match netlink::route_get(dest) {
        Ok(r) => r,
        Err(RouteError::Kernel(_)) => return Err(no_route()),
        Err(RouteError::Io(e)) => return Err(NeighError::Io("netlink route", e)),
        Err(RouteError::NoReply) => {
            return Err(NeighError::Io(
                "netlink route",
                io::Error::other("no route in the kernel's reply"),
            ));
        }
    };
    let hop = next_hop_via(&route, ifindex, dest).ok_or_else(no_route)?;
    let start = Instant::now();
    let mut poked = false;
    // Bounded by `timeout` (polled every 5 ms).
    loop {
        if let Some(mac) = netlink::neighbour(ifindex, hop)
            .map_err(|e| NeighError::Io("netlink neighbour dump", e))?
        {
            return Ok(mac);
        }
        if start.elapsed() >= timeout {
            return Err(NeighError::Unresolved {
                next_hop: hop,
                waited: start.elapsed(),
            });
        }
        if !poked {
            // One ordinary datagram makes the kernel resolve the next hop for us.
            let any: IpAddr = match dest {
                IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
                IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
            };
            let s = UdpSocket::bind(SocketAddr::new(any, 0))
                .map_err(|e| NeighError::Io("bind neighbour probe socket", e))?;
            let _ = s.send_to(&[], SocketAddr::new(dest, 9));
            poked = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn ifreq_for(ifname: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = ifname.as_bytes();
    if name.is_empty() || name.len() >= req.ifr_name.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name length",
        ));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    Ok(req)
}

fn ioctl_ifreq(ifname: &str, request: libc::Ioctl) -> io::Result<libc::ifreq> {
    let mut req = ifreq_for(ifname)?;
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    use std::os::fd::AsRawFd;
    // SAFETY: SIOCGIF* ioctls read the name from and write one union member of a live ifreq.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), request, &mut req) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(req)
    }
}

/// MAC address of `ifname` in the calling thread's namespace.
pub fn interface_mac(ifname: &str) -> Result<[u8; 6], NeighError> {
    let req =
        ioctl_ifreq(ifname, libc::SIOCGIFHWADDR).map_err(|e| NeighError::Io("SIOCGIFHWADDR", e))?;
    // SAFETY: SIOCGIFHWADDR filled the ifru_hwaddr member.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(mac)
}

/// Primary IPv4 address of `ifname` in the calling thread's namespace.
pub fn interface_ipv4(ifname: &str) -> Result<Ipv4Addr, NeighError> {
    let req =
        ioctl_ifreq(ifname, libc::SIOCGIFADDR).map_err(|e| NeighError::Io("SIOCGIFADDR", e))?;
    // SAFETY: SIOCGIFADDR filled ifru_addr with a sockaddr_in (AF_INET query socket).
    let sin =
        unsafe { *(&req.ifr_ifru.ifru_addr as *const libc::sockaddr as *const libc::sockaddr_in) };
    Ok(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
}

/// IFA_F_TENTATIVE | IFA_F_DEPRECATED | IFA_F_DADFAILED (linux/if_addr.h): not usable as source.
const UNUSABLE_FLAGS: u32 = 0x40 | 0x20 | 0x08;
/// RT_SCOPE_UNIVERSE as printed in if_inet6 (global unicast and ULA both have it).
const SCOPE_GLOBAL: u32 = 0x00;

/// Best IPv6 source address on `ifname` for `dest` from `/proc/net/if_inet6` text: the
/// global-scope address (global unicast or ULA) sharing the longest prefix with `dest`, skipping
/// link-local and tentative/deprecated addresses.
/// Line format: `addr(32 hex) ifindex prefixlen scope flags ifname`.
pub fn pick_source(text: &str, ifname: &str, dest: Ipv6Addr) -> Option<Ipv6Addr> {
    let d = u128::from(dest);
    let mut best: Option<(u32, Ipv6Addr)> = None;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[5] != ifname || f[0].len() != 32 {
            continue;
        }
        let (Ok(a), Ok(scope), Ok(flags)) = (
            u128::from_str_radix(f[0], 16),
            u32::from_str_radix(f[3], 16),
            u32::from_str_radix(f[4], 16),
        ) else {
            continue;
        };
        if scope != SCOPE_GLOBAL || flags & UNUSABLE_FLAGS != 0 {
            continue;
        }
        let common = (a ^ d).leading_zeros();
        if best.is_none_or(|(c, _)| common > c) {
            best = Some((common, Ipv6Addr::from(a)));
        }
    }
    best.map(|(_, a)| a)
}

/// Global/ULA IPv6 source address of `ifname` for `dest` in the calling thread's namespace.
pub fn interface_ipv6(ifname: &str, dest: Ipv6Addr) -> io::Result<Option<Ipv6Addr>> {
    let text = std::fs::read_to_string("/proc/thread-self/net/if_inet6")?;
    Ok(pick_source(&text, ifname, dest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_unicast_route_out_of_the_interface_gives_a_next_hop() {
        for (dest, gw) in [
            (
                IpAddr::from([192, 168, 1, 77]),
                IpAddr::from([192, 168, 1, 1]),
            ),
            ("2001:db8::7".parse().unwrap(), "fe80::1".parse().unwrap()),
        ] {
            let on_link = Route {
                kind: RouteKind::Unicast,
                ifindex: 3,
                gateway: None,
                prefsrc: None,
            };
            assert_eq!(next_hop_via(&on_link, 3, dest), Some(dest), "on-link");
            let via = Route {
                gateway: Some(gw),
                ..on_link
            };
            assert_eq!(next_hop_via(&via, 3, dest), Some(gw), "through the gateway");
            assert_eq!(next_hop_via(&via, 4, dest), None, "other interface");
            let local = Route {
                kind: RouteKind::Local,
                ifindex: 1,
                ..on_link
            };
            assert_eq!(next_hop_via(&local, 1, dest), None, "own address");
            let blackhole = Route {
                kind: RouteKind::Other(6),
                ..on_link
            };
            assert_eq!(next_hop_via(&blackhole, 3, dest), None, "not unicast");
        }
    }

    const IF_INET6: &str = "\
fe80000000000000a8bbccfffedd0001 03 40 20 80    veth1
fd00005a000000000000000000000001 03 40 00 80    veth1
20010db8000000000000000000000001 03 40 00 80    veth1
fd00005b000000000000000000000009 03 40 00 c0    veth1
fd00005a000000000000000000000001 02 40 00 80     eth0
00000000000000000000000000000001 01 80 10 80       lo
";

    #[test]
    fn picks_longest_matching_global_address_on_the_interface() {
        let ula: Ipv6Addr = "fd00:5a::1".parse().unwrap();
        let gua: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d: Ipv6Addr = "fd00:5a::2".parse().unwrap();
        assert_eq!(pick_source(IF_INET6, "veth1", d), Some(ula));
        let d: Ipv6Addr = "2001:db8:1::7".parse().unwrap();
        assert_eq!(pick_source(IF_INET6, "veth1", d), Some(gua));
        // fd00:5b::9 is tentative (0x40) and must not be chosen even on an exact prefix match.
        let d: Ipv6Addr = "fd00:5b::2".parse().unwrap();
        assert_eq!(pick_source(IF_INET6, "veth1", d), Some(ula));
        assert_eq!(pick_source(IF_INET6, "lo", d), None, "host scope only");
        assert_eq!(pick_source(IF_INET6, "veth9", d), None);
        assert_eq!(pick_source("garbage\nxx yy", "veth1", d), None);
    }
}
