//! AF_XDP transmit of IPv6/UDP against the real kernel in a namespace pair (the IPv4 twin is in
//! tests/xdp.rs; route and neighbour resolution of both families in tests/neigh.rs).
//! Skips (with a message) where namespaces cannot be created.
#![cfg(feature = "xdp")]

mod common;

use common::{A6, B6, add_ipv6};
use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::time::Duration;
use strahl_net::testbed::{self, VethPair, in_netns};

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
    add_ipv6(&pair);
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
        tx.add_destination(dest).expect("resolve IPv6 destination");
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
