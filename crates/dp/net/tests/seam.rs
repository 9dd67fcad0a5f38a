//! Seam contract checks that need no privileges (loopback): caller mistakes are typed errors that
//! return the frame, back-pressure is a stall counter (not an error), and completions return
//! every frame.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV6, UdpSocket};
use strahl_net::mmsg::{MmsgConfig, MmsgTx};
use strahl_net::uring::{UringConfig, UringTx};
use strahl_net::{SubmitError, TxQueue, testbed};

fn loopback() -> (UdpSocket, UdpSocket, SocketAddr) {
    let rx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let dest = rx.local_addr().unwrap();
    (UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap(), rx, dest)
}

fn submit_errors_return_the_frame(tx: &mut dyn TxQueue, other: &mut dyn TxQueue, dest: SocketAddr) {
    let free = tx.free_frames();
    let cap = tx.payload_capacity();
    let f = tx.alloc().unwrap();
    assert_eq!(
        tx.submit(f, cap + 1, dest),
        Err(SubmitError::TooLong {
            len: cap + 1,
            capacity: cap
        })
    );
    let f = tx.alloc().unwrap();
    assert_eq!(tx.submit(f, 0, dest), Err(SubmitError::Empty));
    assert_eq!(tx.free_frames(), free, "refused frames go back to the pool");
    // A token from another queue is refused and frees nothing in either queue.
    let foreign = other.alloc().unwrap();
    let other_free = other.free_frames();
    assert_eq!(tx.submit(foreign, 10, dest), Err(SubmitError::ForeignFrame));
    assert_eq!(tx.free_frames(), free);
    assert_eq!(other.free_frames(), other_free);
    assert_eq!(tx.counters().submit_errors, 3);
    assert_eq!(tx.counters().submitted, 0);
    assert_eq!(tx.pending(), 0);
    let f = tx.alloc().unwrap();
    tx.abandon(f);
    assert_eq!(tx.free_frames(), free);
}

#[test]
fn sendmmsg_submit_errors_are_typed() {
    let (s1, _rx, dest) = loopback();
    let (s2, _rx2, _) = loopback();
    let mut a = MmsgTx::new(
        s1,
        MmsgConfig {
            frames: 8,
            ..Default::default()
        },
    )
    .unwrap();
    let mut b = MmsgTx::new(
        s2,
        MmsgConfig {
            frames: 8,
            ..Default::default()
        },
    )
    .unwrap();
    submit_errors_return_the_frame(&mut a, &mut b, dest);
}

#[test]
fn sendmmsg_unreachable_family_is_a_counted_drop_not_an_error() {
    // An IPv4 socket cannot send to an IPv6 destination: the kernel refuses that datagram
    // (EAFNOSUPPORT/EINVAL); the queue must drop it, count it, free the frame, and carry on.
    let (s, rx, dest) = loopback();
    let mut tx = MmsgTx::new(
        s,
        MmsgConfig {
            frames: 8,
            ..Default::default()
        },
    )
    .unwrap();
    let v6 = SocketAddr::V6(SocketAddrV6::new(std::net::Ipv6Addr::LOCALHOST, 9, 0, 0));
    for d in [v6, dest] {
        let f = tx.alloc().unwrap();
        tx.payload_mut(&f)[..4].copy_from_slice(b"ping");
        tx.submit(f, 4, d).unwrap();
    }
    let r = tx.flush().expect("per-datagram refusal is not an error");
    assert_eq!((r.sent, r.dropped), (1, 1), "{r:?}");
    let c = tx.counters();
    assert_eq!((c.sent_packets, c.dropped), (1, 1));
    assert_ne!(c.last_errno, 0);
    assert_eq!(tx.free_frames(), 8);
    let mut buf = [0u8; 16];
    rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    assert_eq!(
        rx.recv(&mut buf).unwrap(),
        4,
        "the good datagram still went out"
    );
}

#[test]
fn io_uring_back_pressure_is_a_stall_and_every_frame_completes() {
    let (s1, _rx, dest) = loopback();
    let (s2, _rx2, _) = loopback();
    let cfg = UringConfig {
        frames: 16,
        in_flight: 2,
        zero_copy: false,
        ..Default::default()
    };
    let (mut tx, mut other) = match (UringTx::new(s1, cfg), UringTx::new(s2, cfg)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            assert!(testbed::is_unavailable(&e), "io_uring setup failed: {e}");
            return testbed::skip(
                "io_uring_back_pressure_is_a_stall",
                &format!("io_uring: {e}"),
            );
        }
    };
    submit_errors_return_the_frame(&mut tx, &mut other, dest);
    for _ in 0..10 {
        let f = tx.alloc().unwrap();
        tx.submit(f, 100, dest).unwrap();
    }
    // Only two requests may be in flight: the flush stops there and says so.
    let r = tx.flush().unwrap();
    assert_eq!(r.sent, 2);
    assert!(r.stalled);
    assert_eq!(tx.pending(), 8);
    assert_eq!(tx.counters().stalls, 1);
    let start = std::time::Instant::now();
    while tx.pending() > 0 || tx.in_flight() > 0 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "io_uring never completed"
        );
        tx.reclaim().unwrap();
        tx.flush().unwrap();
    }
    tx.reclaim().unwrap();
    assert_eq!(tx.free_frames(), 16);
    assert_eq!(tx.counters().sent_packets, 10);
    assert_eq!(tx.counters().completed, 10);
}

#[test]
fn ipv6_destinations_and_sources_round_trip() {
    use std::net::Ipv6Addr;
    use std::time::Duration;
    use strahl_net::mmsg::MmsgRx;
    use strahl_net::{RxBatch, RxQueue};
    let Ok(rx_sock) = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)) else {
        return testbed::skip(
            "ipv6_destinations_and_sources_round_trip",
            &"no IPv6 loopback",
        );
    };
    let dest = rx_sock.local_addr().unwrap();
    let tx_sock = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
    let src = tx_sock.local_addr().unwrap();
    let mut rx = MmsgRx::new(rx_sock, 8, 1 << 20).unwrap();
    let mut tx = MmsgTx::new(
        tx_sock,
        MmsgConfig {
            frames: 8,
            ..Default::default()
        },
    )
    .unwrap();
    for i in 0..4u8 {
        let f = tx.alloc().unwrap();
        tx.payload_mut(&f)[..3].copy_from_slice(&[i, i, i]);
        tx.submit(f, 3, dest).unwrap();
    }
    assert_eq!(tx.flush().unwrap().sent, 4);
    let mut batch = RxBatch::new(8, 64);
    let mut got = Vec::new();
    for _ in 0..50 {
        rx.recv(&mut batch, Duration::from_millis(20)).unwrap();
        got.extend(batch.iter().map(|(d, s)| (d.to_vec(), s)));
        if got.len() == 4 {
            break;
        }
    }
    let want: Vec<(Vec<u8>, SocketAddr)> = (0..4u8).map(|i| (vec![i, i, i], src)).collect();
    assert_eq!(got, want, "payloads in order, IPv6 source reported");
}

/// UDP GRO on the receive queue: a GSO train on loopback reaches a GRO socket as coalesced
/// slots, which `datagrams_mut` splits back into the datagrams sent, in order and intact; a
/// queue without GRO gets the same datagrams one per slot.
#[test]
fn gro_receive_splits_coalesced_slots_back_into_datagrams() {
    use std::time::Duration;
    use strahl_net::mmsg::MmsgRx;
    use strahl_net::{RxBatch, RxQueue};
    for gro in [true, false] {
        let (s, rx_sock, dest) = loopback();
        let mut rx = MmsgRx::new(rx_sock, 16, 1 << 20).unwrap();
        if gro && rx.enable_gro().is_err() {
            return testbed::skip("gro_receive_splits", &"the kernel refuses UDP_GRO");
        }
        let mut tx = MmsgTx::new(
            s,
            MmsgConfig {
                frames: 64,
                gso_segments: 16,
                ..Default::default()
            },
        )
        .unwrap();
        // 20 datagrams: 19 of 1000 B and a shorter last one, each filled with its index.
        for i in 0..20u8 {
            let f = tx.alloc().unwrap();
            let len = if i == 19 { 300 } else { 1000 };
            tx.payload_mut(&f)[..len].fill(i);
            tx.submit(f, len, dest).unwrap();
        }
        tx.flush().unwrap();
        let mut batch = RxBatch::new(16, 65_536);
        let mut seen: Vec<(u8, usize)> = Vec::new();
        let mut coalesced = 0;
        let start = std::time::Instant::now();
        while seen.len() < 20 && start.elapsed() < Duration::from_secs(5) {
            let n = rx.recv(&mut batch, Duration::from_millis(100)).unwrap();
            for i in 0..n {
                coalesced += batch.segment_size(i).is_some() as usize;
                for d in batch.datagrams_mut(i) {
                    assert!(d.iter().all(|&b| b == d[0]), "a datagram split wrongly");
                    seen.push((d[0], d.len()));
                }
            }
        }
        let want: Vec<(u8, usize)> = (0..20u8)
            .map(|i| (i, if i == 19 { 300 } else { 1000 }))
            .collect();
        assert_eq!(seen, want, "gro {gro}");
        assert_eq!(rx.counters().received_packets, 20, "gro {gro}");
        if gro {
            assert!(
                coalesced > 0,
                "loopback keeps GSO trains whole for a GRO socket"
            );
        } else {
            assert_eq!(coalesced, 0);
        }
    }
}
