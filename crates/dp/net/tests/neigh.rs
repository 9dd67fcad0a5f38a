//! Next-hop resolution for AF_XDP against the real kernel in a namespace pair, both families:
//! the kernel's route decides the next hop (longest prefix, gateway or on-link, only out of the
//! AF_XDP interface), the netlink neighbour table gives its MAC (resolution triggered by one
//! ordinary datagram), and if_inet6 gives the IPv6 source. Needs root; otherwise prints
//! `SKIPPED: ...`.
#![cfg(feature = "xdp")]

mod common;

use common::{A6, B6, add_ipv6, ip};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6, UdpSocket};
use std::time::{Duration, Instant};
use strahl_net::testbed::{self, ADDR_A, ADDR_B, VethPair, in_netns};
use strahl_net::xdp::neigh::{
    NeighError, interface_ipv6, interface_mac, lookup_neighbour, resolve,
};

#[test]
fn ipv6_source_and_neighbour_resolve_over_netlink() {
    let pair = match VethPair::create("n6") {
        Ok(p) => p,
        Err(reason) => return testbed::skip("ipv6_source_and_neighbour", &reason),
    };
    add_ipv6(&pair);
    let a: Ipv6Addr = A6.parse().unwrap();
    let b: Ipv6Addr = B6.parse().unwrap();
    let ifa = pair.if_a.clone();
    let ifb = pair.if_b.clone();
    let mac_b = in_netns(&pair.ns_b, || interface_mac(&ifb))
        .unwrap()
        .unwrap();
    let (src, before, after) = in_netns(&pair.ns_a, || {
        let src = interface_ipv6(&ifa, b).unwrap();
        let before = lookup_neighbour(&ifa, b.into()).unwrap();
        // Trigger NDP with one ordinary datagram, then poll (bounded: 2 s).
        let s = UdpSocket::bind(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0)).unwrap();
        let _ = s.send_to(&[], SocketAddrV6::new(b, 9, 0, 0));
        let start = Instant::now();
        let mut after = None;
        while start.elapsed() < Duration::from_secs(2) {
            after = lookup_neighbour(&ifa, b.into()).unwrap();
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
    // The one resolution path of both families gives the same answer.
    let ifa = pair.if_a.clone();
    let resolved = in_netns(&pair.ns_a, || {
        resolve(&ifa, b.into(), Duration::from_secs(2))
    });
    assert_eq!(resolved.unwrap().unwrap(), mac_b);
}

/// What the IPv4 route table through the AF_XDP interface says, as the kernel decides it:
/// the longest prefix wins (a /24 on-link inside a /16 through the peer), the gateway is the next
/// hop for the /16, the destination itself for an on-link one, and anything the kernel would not
/// send out of the interface (no route, a local address, another interface) has no next hop.
#[test]
fn resolve_follows_the_kernels_longest_prefix_route_out_of_the_interface() {
    let pair = match VethPair::create("rt4") {
        Ok(p) => p,
        Err(reason) => return testbed::skip("resolve_follows_the_kernels_route", &reason),
    };
    let (ns, ifa) = (pair.ns_a.clone(), pair.if_a.clone());
    let gw = ADDR_B.to_string();
    ip(&[
        "-n",
        &ns,
        "route",
        "add",
        "10.99.0.0/16",
        "via",
        &gw,
        "dev",
        &ifa,
    ]);
    ip(&["-n", &ns, "route", "add", "10.99.7.0/24", "dev", &ifa]);
    let ifb = pair.if_b.clone();
    let mac_b = in_netns(&pair.ns_b, || interface_mac(&ifb))
        .unwrap()
        .unwrap();
    let short = Duration::from_millis(200);
    let results = in_netns(&ns, || {
        let r = |ifname: &str, d: [u8; 4]| resolve(ifname, IpAddr::from(d), short);
        [
            r(&ifa, [10, 99, 1, 1]),  // the /16 through the peer
            r(&ifa, [10, 201, 0, 2]), // on-link
            r(&ifa, [10, 99, 7, 5]),  // the longer on-link /24 wins over the /16
            r(&ifa, [8, 8, 8, 8]),    // no default route in the namespace
            r(&ifa, ADDR_A.octets()), // our own address goes through lo
            r("lo", ADDR_B.octets()), // routed out of another interface
        ]
    })
    .unwrap();
    let [far, on_link, longest, none, local, other] = results;
    assert_eq!(far.unwrap(), mac_b, "gateway's MAC for the /16");
    assert_eq!(on_link.unwrap(), mac_b);
    match longest {
        Err(NeighError::Unresolved { next_hop, .. }) => {
            assert_eq!(
                next_hop,
                IpAddr::from(Ipv4Addr::new(10, 99, 7, 5)),
                "on-link /24"
            );
        }
        other => panic!("nobody answers ARP for 10.99.7.5: {other:?}"),
    }
    for (what, r) in [
        ("no route", none),
        ("local", local),
        ("other interface", other),
    ] {
        assert!(
            matches!(r, Err(NeighError::NoRoute { .. })),
            "{what}: {r:?}"
        );
    }
}
