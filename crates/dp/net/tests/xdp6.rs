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

/// AF_XDP TX of N sequence-numbered IPv6/UDP datagrams to an ordinary kernel UDP socket in the
/// other namespace. The kernel drops IPv6/UDP with a bad or zero checksum, so every delivered
/// datagram proves the Ethernet/IPv6/UDP headers and the pseudo-header checksum.
#[test]
fn xdp_tx_ipv6_reaches_a_kernel_udp_socket() {
    use strahl_net::TxQueue;
    use strahl_net::xdp::{XdpPlan, XdpTx};
    const N: u32 = 500;
    const PORT: u16 = 47_998;
    let pair = match VethPair::create("x6") {
        Ok(p) => p,
        Err(reason) => return testbed::skip("xdp_tx_ipv6", &reason),
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
    let b: Ipv6Addr = B6.parse().unwrap();
    let dest = SocketAddrV6::new(b, PORT, 0, 0);
    let sock = in_netns(&pair.ns_b, || UdpSocket::bind(dest).expect("bind B")).expect("netns B");
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let ifa = pair.if_a.clone();
    let tx = in_netns(&pair.ns_a, move || {
        let mut plan = XdpPlan::new(&ifa, 0, 256, 1200, 40_000);
        plan.ipv6 = true;
        let mut tx = match XdpTx::new(plan) {
            Ok(t) => t,
            Err(e) if testbed::is_unavailable(&e) => return Err(e.to_string()),
            Err(e) => panic!("AF_XDP TX socket: {e}"),
        };
        tx.add_destination6(dest).expect("resolve IPv6 destination");
        Ok(tx)
    })
    .expect("netns A");
    let mut tx = match tx {
        Ok(t) => t,
        Err(reason) => return testbed::skip("xdp_tx_ipv6", &reason),
    };
    let mut seen = vec![false; N as usize];
    let mut buf = [0u8; 2048];
    let mut next = 0u32;
    // Windows of 32 so the receiver's socket buffer never overflows (bounded: N/32 rounds).
    while next < N {
        let end = (next + 32).min(N);
        for seq in next..end {
            let mut f = None;
            for _ in 0..1000 {
                tx.reclaim().unwrap();
                f = tx.alloc();
                if f.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            let f = f.expect("free frame");
            let len = 100 + (seq as usize % 900);
            let p = tx.payload_mut(&f);
            p[..4].copy_from_slice(&seq.to_be_bytes());
            for (i, x) in p[4..len].iter_mut().enumerate() {
                *x = (i as u32 ^ seq) as u8;
            }
            tx.submit(f, len, std::net::SocketAddr::V6(dest)).unwrap();
        }
        tx.flush().unwrap();
        for _ in next..end {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                break;
            };
            let seq = u32::from_be_bytes(buf[..4].try_into().unwrap());
            assert_eq!(n, 100 + (seq as usize % 900), "length of {seq}");
            assert!(
                buf[4..n]
                    .iter()
                    .enumerate()
                    .all(|(i, x)| *x == (i as u32 ^ seq) as u8)
            );
            assert_eq!(
                from,
                std::net::SocketAddr::from((A6.parse::<Ipv6Addr>().unwrap(), 40_000))
            );
            seen[seq as usize] = true;
        }
        next = end;
    }
    let got = seen.iter().filter(|s| **s).count();
    assert_eq!(got, N as usize, "every datagram delivered by the kernel");
}
