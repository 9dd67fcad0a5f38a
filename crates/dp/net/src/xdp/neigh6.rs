//! IPv6 source-address selection for AF_XDP transmit (session setup, never per packet).
//!
//! Contract: [`pick_source`] is pure: from `/proc/net/if_inet6` text it picks, for `ifname`, the
//! global-scope address (global unicast or ULA) sharing the longest prefix with the destination,
//! skipping link-local and tentative/deprecated addresses. [`interface_ipv6`] reads the calling
//! thread's namespace (`/proc/thread-self/net/if_inet6`, right after `setns`).
//! [`lookup_neighbour`] reads the kernel's IPv6 neighbour table over netlink
//! ([`crate::netlink`], shared with IPv4).

use std::net::Ipv6Addr;

/// Look up `ip` on `ifname` in the calling thread's namespace's IPv6 neighbour table (netlink,
/// through [`crate::netlink::neighbour`], which serves both address families).
/// `Ok(None)`: no usable entry (the caller triggers resolution with one datagram and retries).
pub fn lookup_neighbour(ifname: &str, ip: Ipv6Addr) -> std::io::Result<Option<[u8; 6]>> {
    let ifindex = crate::netlink::ifindex(ifname)?;
    crate::netlink::neighbour(ifindex, ip.into())
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
