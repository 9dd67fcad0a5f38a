//! IPv6 setup pieces against the real kernel in a namespace pair: source-address selection from
//! if_inet6 and the netlink IPv6 neighbour lookup (resolution triggered by one ordinary datagram).
//! Skips (with a message) where namespaces cannot be created.

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};
use strahl_net::testbed::{self, VethPair, in_netns};
use strahl_net::xdp::neigh::interface_mac;
use strahl_net::xdp::neigh6::{interface_ipv6, lookup_neighbour};

const A6: &str = "fd00:5a::1";
const B6: &str = "fd00:5a::2";

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?}");
}

#[test]
fn ipv6_source_and_neighbour_resolve_over_netlink() {
    let pair = match VethPair::create("n6") {
        Ok(p) => p,
        Err(reason) => return testbed::skip("ipv6_source_and_neighbour", &reason),
    };
    ip(&[
        "-n",
        &pair.ns_a,
        "addr",
        "add",
        &format!("{A6}/64"),
        "dev",
        &pair.if_a,
        "nodad",
    ]);
    ip(&[
        "-n",
        &pair.ns_b,
        "addr",
        "add",
        &format!("{B6}/64"),
        "dev",
        &pair.if_b,
        "nodad",
    ]);
    let a: Ipv6Addr = A6.parse().unwrap();
    let b: Ipv6Addr = B6.parse().unwrap();
    let ifa = pair.if_a.clone();
    let ifb = pair.if_b.clone();
    let mac_b = in_netns(&pair.ns_b, || interface_mac(&ifb))
        .unwrap()
        .unwrap();
    let (src, before, after) = in_netns(&pair.ns_a, || {
        let src = interface_ipv6(&ifa, b).unwrap();
        let before = lookup_neighbour(&ifa, b).unwrap();
        // Trigger NDP with one ordinary datagram, then poll (bounded: 2 s).
        let s = UdpSocket::bind(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0)).unwrap();
        let _ = s.send_to(&[], SocketAddrV6::new(b, 9, 0, 0));
        let start = Instant::now();
        let mut after = None;
        while start.elapsed() < Duration::from_secs(2) {
            after = lookup_neighbour(&ifa, b).unwrap();
            if after.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (src, before, after)
    })
    .unwrap();
    assert_eq!(src, Some(a));
    assert_eq!(before, None, "fresh namespace has no neighbour entry");
    let got = after.expect("neighbour resolved within 2 s");
    assert_eq!(got, mac_b, "MAC is the peer veth's");
}
