//! IPv6 source-address selection for AF_XDP transmit (session setup, never per packet).
//!
//! Contract: [`pick_source`] is pure: from `/proc/net/if_inet6` text it picks, for `ifname`, the
//! global-scope address (global unicast or ULA) sharing the longest prefix with the destination,
//! skipping link-local and tentative/deprecated addresses. [`interface_ipv6`] reads the calling
//! thread's namespace (`/proc/thread-self/net/if_inet6`, right after `setns`).
//! [`lookup_neighbour`] reads the kernel's IPv6 neighbour table over netlink (RTM_GETNEIGH dump,
//! AF_INET6); [`parse_neigh_dump`] is the pure, bounds-checked parser of the dump bytes.
#![allow(unsafe_code)]

use std::net::Ipv6Addr;

const NLMSG_HDR: usize = 16;
const NDMSG_LEN: usize = 12;
const NLMSG_DONE: u16 = 3;
const NLMSG_ERROR: u16 = 2;
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
/// NUD states whose link-layer address is valid: REACHABLE, STALE, DELAY, PROBE, NOARP, PERMANENT.
const NUD_VALID: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x40 | 0x80;
/// Receive bound: at most this many datagrams per dump (bounded loop).
const MAX_DUMP_READS: usize = 1024;

/// Outcome of scanning one dump buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpScan {
    Found([u8; 6]),
    /// The dump ended (NLMSG_DONE/ERROR) without a usable entry.
    Done,
    /// Read the next datagram.
    More,
}

/// Scan one netlink datagram of an RTM_GETNEIGH dump for a valid entry of `ip` on `ifindex`.
/// Hostile-input safe: every length is bounds-checked; malformed messages end the scan.
pub fn parse_neigh_dump(buf: &[u8], ifindex: u32, ip: Ipv6Addr) -> DumpScan {
    let mut off = 0usize;
    while off + NLMSG_HDR <= buf.len() {
        let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
        let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        if len < NLMSG_HDR || off + len > buf.len() {
            return DumpScan::Done;
        }
        match ty {
            NLMSG_DONE | NLMSG_ERROR => return DumpScan::Done,
            RTM_NEWNEIGH if len >= NLMSG_HDR + NDMSG_LEN => {
                let nd = &buf[off + NLMSG_HDR..off + NLMSG_HDR + NDMSG_LEN];
                let family = nd[0] as i32;
                let idx = u32::from_ne_bytes([nd[4], nd[5], nd[6], nd[7]]);
                let state = u16::from_ne_bytes([nd[8], nd[9]]);
                if family == libc::AF_INET6 && idx == ifindex && state & NUD_VALID != 0 {
                    let attrs = &buf[off + NLMSG_HDR + NDMSG_LEN..off + len];
                    let (mut dst, mut mac) = (None, None);
                    let mut a = 0usize;
                    while a + 4 <= attrs.len() {
                        let alen = u16::from_ne_bytes([attrs[a], attrs[a + 1]]) as usize;
                        let aty = u16::from_ne_bytes([attrs[a + 2], attrs[a + 3]]) & 0x3fff;
                        if alen < 4 || a + alen > attrs.len() {
                            break;
                        }
                        let v = &attrs[a + 4..a + alen];
                        match (aty, v.len()) {
                            (NDA_DST, 16) => {
                                let mut o = [0u8; 16];
                                o.copy_from_slice(v);
                                dst = Some(Ipv6Addr::from(o));
                            }
                            (NDA_LLADDR, 6) => {
                                let mut m = [0u8; 6];
                                m.copy_from_slice(v);
                                mac = Some(m);
                            }
                            _ => {}
                        }
                        a += (alen + 3) & !3;
                    }
                    if let (Some(d), Some(m)) = (dst, mac)
                        && d == ip
                    {
                        return DumpScan::Found(m);
                    }
                }
            }
            _ => {}
        }
        off += (len + 3) & !3;
    }
    DumpScan::More
}

/// Look up `ip` on `ifname` in the calling thread's namespace's IPv6 neighbour table (netlink).
/// `Ok(None)`: no usable entry (the caller triggers resolution with one datagram and retries).
pub fn lookup_neighbour(ifname: &str, ip: Ipv6Addr) -> std::io::Result<Option<[u8; 6]>> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let cname = std::ffi::CString::new(ifname)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "interface name"))?;
    // SAFETY: cname is a valid NUL-terminated string for the duration of the call.
    let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if ifindex == 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: raw is a fresh descriptor we own exclusively.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = [0u8; NLMSG_HDR + NDMSG_LEN];
    req[0..4].copy_from_slice(&((NLMSG_HDR + NDMSG_LEN) as u32).to_ne_bytes());
    req[4..6].copy_from_slice(&RTM_GETNEIGH.to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    req[6..8].copy_from_slice(&flags.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[NLMSG_HDR] = libc::AF_INET6 as u8;
    // SAFETY: sends `req.len()` bytes from a live buffer; the kernel is the default destination.
    let n = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 32 * 1024];
    for _ in 0..MAX_DUMP_READS {
        // SAFETY: receives into a live buffer of buf.len() bytes.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        match parse_neigh_dump(&buf[..n as usize], ifindex, ip) {
            DumpScan::Found(m) => return Ok(Some(m)),
            DumpScan::Done => return Ok(None),
            DumpScan::More if n == 0 => return Ok(None),
            DumpScan::More => {}
        }
    }
    Ok(None)
}

/// IFA_F_TENTATIVE | IFA_F_DEPRECATED | IFA_F_DADFAILED (linux/if_addr.h): not usable as source.
const UNUSABLE_FLAGS: u32 = 0x40 | 0x20 | 0x08;
/// RT_SCOPE_UNIVERSE as printed in if_inet6 (global unicast and ULA both have it).
const SCOPE_GLOBAL: u32 = 0x00;

/// Best source address on `ifname` for `dest` from `/proc/net/if_inet6` text.
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
pub fn interface_ipv6(ifname: &str, dest: Ipv6Addr) -> std::io::Result<Option<Ipv6Addr>> {
    let text = std::fs::read_to_string("/proc/thread-self/net/if_inet6")?;
    Ok(pick_source(&text, ifname, dest))
}

#[cfg(test)]
mod tests {
    use super::*;

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
