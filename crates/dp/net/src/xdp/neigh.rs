//! Next-hop MAC resolution for AF_XDP transmit: IPv4 route + neighbour (ARP) table of the calling
//! thread's network namespace, and the interface's own MAC/IPv4 address.
//!
//! Contract: runs at session setup, never per packet. Reads `/proc/thread-self/net/{route,arp}`
//! (the *thread's* namespace, so it is right after `setns` on one thread). A missing neighbour is
//! resolved by sending one ordinary UDP datagram (to the discard port 9 of the destination) so the
//! kernel runs ARP, then polling the table, bounded by a timeout. Parsing is pure and unit-tested.
#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

/// Why a destination cannot be reached through an interface.
#[derive(Debug)]
pub enum NeighError {
    /// No IPv4 route through the interface covers the destination.
    NoRoute { dest: Ipv4Addr, ifname: String },
    /// The neighbour did not answer ARP within the timeout.
    Unresolved {
        next_hop: Ipv4Addr,
        waited: Duration,
    },
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
            NeighError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for NeighError {}

/// Next hop for `dest` through `ifname` from `/proc/net/route` text: the gateway of the longest
/// matching prefix, or `dest` itself for an on-link route.
pub fn parse_route(text: &str, ifname: &str, dest: Ipv4Addr) -> Option<Ipv4Addr> {
    let d = u32::from_be_bytes(dest.octets());
    let mut best: Option<(u32, Ipv4Addr)> = None;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || f[0] != ifname {
            continue;
        }
        // Fields are the raw network-order u32 printed as a host integer (%08X).
        let hex = |s: &str| {
            u32::from_str_radix(s, 16)
                .ok()
                .map(|v| u32::from_be_bytes(v.to_ne_bytes()))
        };
        let (Some(rdest), Some(gw), Some(mask)) = (hex(f[1]), hex(f[2]), hex(f[7])) else {
            continue;
        };
        let flags = u32::from_str_radix(f[3], 16).unwrap_or(0);
        if flags & 1 == 0 || d & mask != rdest & mask {
            continue; // RTF_UP missing, or prefix does not match
        }
        let hop = if gw == 0 { dest } else { Ipv4Addr::from(gw) };
        if best.is_none_or(|(m, _)| mask.count_ones() > m.count_ones()) {
            best = Some((mask, hop));
        }
    }
    best.map(|(_, hop)| hop)
}

/// Complete ARP entry for `ip` on `ifname` from `/proc/net/arp` text.
pub fn parse_arp(text: &str, ifname: &str, ip: Ipv4Addr) -> Option<[u8; 6]> {
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[5] != ifname || f[0].parse::<Ipv4Addr>().ok() != Some(ip) {
            continue;
        }
        let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).unwrap_or(0);
        if flags & 0x2 == 0 {
            continue; // ATF_COM not set: incomplete
        }
        return parse_mac(f[3]);
    }
    None
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    if parts.next().is_some() {
        None
    } else {
        Some(mac)
    }
}

/// Resolve the next-hop MAC for `dest` through `ifname`, triggering ARP if needed.
pub fn resolve(ifname: &str, dest: Ipv4Addr, timeout: Duration) -> Result<[u8; 6], NeighError> {
    let route = std::fs::read_to_string("/proc/thread-self/net/route")
        .map_err(|e| NeighError::Io("read route table", e))?;
    let hop = parse_route(&route, ifname, dest).ok_or_else(|| NeighError::NoRoute {
        dest,
        ifname: ifname.to_string(),
    })?;
    let start = Instant::now();
    let mut poked = false;
    // Bounded by `timeout` (polled every 5 ms).
    loop {
        let arp = std::fs::read_to_string("/proc/thread-self/net/arp")
            .map_err(|e| NeighError::Io("read neighbour table", e))?;
        if let Some(mac) = parse_arp(&arp, ifname, hop) {
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
            let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
                .map_err(|e| NeighError::Io("bind ARP probe socket", e))?;
            let _ = s.send_to(&[], SocketAddrV4::new(dest, 9));
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

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
veth1\t0000C90A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

    #[test]
    fn route_picks_longest_prefix_on_the_interface() {
        // Host byte order here is little-endian: 0101A8C0 is 192.168.1.1.
        if cfg!(target_endian = "little") {
            let on_link = Ipv4Addr::new(192, 168, 1, 77);
            assert_eq!(parse_route(ROUTE, "eth0", on_link), Some(on_link));
            let far = Ipv4Addr::new(8, 8, 8, 8);
            assert_eq!(
                parse_route(ROUTE, "eth0", far),
                Some(Ipv4Addr::new(192, 168, 1, 1))
            );
            assert_eq!(
                parse_route(ROUTE, "veth1", far),
                None,
                "no default route on veth1"
            );
            let v = Ipv4Addr::new(10, 201, 0, 2);
            assert_eq!(parse_route(ROUTE, "veth1", v), Some(v));
        }
    }

    #[test]
    fn arp_needs_complete_entries() {
        let arp = "IP address       HW type     Flags       HW address            Mask     Device\n\
10.201.0.2       0x1         0x2         aa:bb:cc:dd:ee:0f     *        veth1\n\
10.201.0.3       0x1         0x0         00:00:00:00:00:00     *        veth1\n";
        let ip2 = Ipv4Addr::new(10, 201, 0, 2);
        assert_eq!(
            parse_arp(arp, "veth1", ip2),
            Some([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x0f])
        );
        assert_eq!(
            parse_arp(arp, "veth1", Ipv4Addr::new(10, 201, 0, 3)),
            None,
            "incomplete"
        );
        assert_eq!(parse_arp(arp, "eth0", ip2), None, "other interface");
        assert_eq!(parse_mac("aa:bb:cc:dd:ee"), None);
        assert_eq!(parse_mac("aa:bb:cc:dd:ee:ff:00"), None);
    }
}
