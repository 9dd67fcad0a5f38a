//! AF_XDP across two namespaces: our TX (headers from templates) into a kernel UDP socket (the
//! kernel verifies every checksum and length), AF_XDP TX into AF_XDP RX through the redirect
//! program, and a kernel sender into AF_XDP RX. Needs root; otherwise prints `SKIPPED: ...`.
#![cfg(feature = "xdp")]

mod common;

use common::{drain_completions, transfer, transfer_windowed};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use strahl_net::TxQueue;
use strahl_net::bpf::RedirectProgram;
use strahl_net::mmsg::{MmsgConfig, MmsgRx, MmsgTx};
use strahl_net::testbed::{self, ADDR_A, ADDR_B, VethPair, in_netns};
use strahl_net::xdp::{BindMode, XdpPlan, XdpRx, XdpTx};

const N: u32 = 10_000;
const PORT: u16 = 47_998;
const FRAMES: u32 = 1024;
/// AF_XDP RX drops when its ring (2048) overflows: on a shared 2-core VM the receiver thread can
/// fall far behind a 500k pps sender, so these tests keep the sender at most this far ahead.
const WINDOW: u32 = 1024;

fn pair(test: &str) -> Option<VethPair> {
    match VethPair::create(&test[..3]) {
        Ok(p) => Some(p),
        Err(reason) => {
            testbed::skip(test, &reason);
            None
        }
    }
}

fn xdp_tx(pair: &VethPair) -> XdpTx {
    let ifa = pair.if_a.clone();
    in_netns(&pair.ns_a, move || {
        let plan = XdpPlan::new(&ifa, 0, FRAMES, 1472, 40_000);
        let mut tx = XdpTx::new(plan).expect("AF_XDP TX socket");
        // Resolving needs the receiver side up (it is: addresses are configured) — ARP happens
        // through one ordinary datagram.
        tx.add_destination(SocketAddrV4::new(ADDR_B, PORT))
            .expect("resolve destination");
        tx
    })
    .expect("netns A")
}

/// AF_XDP RX on side B with the redirect program steering PORT into it.
fn xdp_rx(pair: &VethPair) -> (XdpRx, RedirectProgram) {
    let ifb = pair.if_b.clone();
    in_netns(&pair.ns_b, move || {
        let mut prog = RedirectProgram::load().expect("load redirect program");
        prog.add_port(PORT).unwrap();
        prog.attach(testbed::ifindex(&ifb).unwrap())
            .expect("attach XDP");
        let rx = XdpRx::new(&ifb, 0, 4096, 2048).expect("AF_XDP RX socket");
        prog.register_xsk(0, rx.fd()).unwrap();
        (rx, prog)
    })
    .expect("netns B")
}

fn assert_all(name: &str, out: &common::Outcome) {
    eprintln!("{name}: {out:?}");
    assert_eq!(
        out.corrupt + out.duplicates + out.out_of_range,
        0,
        "{name}: {out:?}"
    );
    assert_eq!(out.intact, N, "{name}: every datagram must arrive intact");
}

#[test]
fn af_xdp_tx_delivers_to_kernel_socket() {
    let test = "af_xdp_tx_delivers_to_kernel_socket";
    let Some(pair) = pair(test) else { return };
    let rx_sock = in_netns(&pair.ns_b, || UdpSocket::bind((ADDR_B, PORT)))
        .unwrap()
        .unwrap();
    let rx = MmsgRx::new(rx_sock, 64, 64 << 20).unwrap();
    let mut tx = xdp_tx(&pair);
    // veth has no zero-copy: the attempt is refused with EOPNOTSUPP and copy mode is used.
    assert_eq!(
        tx.bind_mode(),
        BindMode::Copy {
            zero_copy_errno: libc::EOPNOTSUPP
        }
    );
    // The kernel says the same (XDP_OPTIONS has no zero-copy flag).
    assert!(!tx.kernel_zero_copy().unwrap());
    let out = transfer(&mut tx, rx, SocketAddr::from((ADDR_B, PORT)), N);
    eprintln!(
        "{test}: counters {:?} mode {:?}",
        tx.counters(),
        tx.bind_mode()
    );
    assert_all(test, &out);
    drain_completions(&mut tx, FRAMES as usize);
    assert_eq!(tx.counters().completed, N as u64);
}

#[test]
fn af_xdp_tx_delivers_to_af_xdp_rx() {
    let test = "af_xdp_tx_delivers_to_af_xdp_rx";
    let Some(pair) = pair(test) else { return };
    let (rx, prog) = xdp_rx(&pair);
    let mut tx = xdp_tx(&pair);
    let out = transfer_windowed(
        &mut tx,
        rx,
        SocketAddr::from((ADDR_B, PORT)),
        N,
        Some(WINDOW),
    );
    eprintln!(
        "{test}: counters {:?} redirect stats {:?}",
        tx.counters(),
        prog.stats()
    );
    assert_all(test, &out);
    assert!(prog.stats().unwrap().redirected >= N as u64);
}

#[test]
fn sendmmsg_delivers_to_af_xdp_rx() {
    let test = "sendmmsg_delivers_to_af_xdp_rx";
    let Some(pair) = pair(test) else { return };
    let (mut rx, prog) = xdp_rx(&pair);
    // Kernel senders on veth leave CHECKSUM_PARTIAL checksums (see set_verify_udp_checksum).
    rx.set_verify_udp_checksum(false);
    let sock = in_netns(&pair.ns_a, || UdpSocket::bind((ADDR_A, 0)))
        .unwrap()
        .unwrap();
    let mut tx = MmsgTx::new(
        sock,
        MmsgConfig {
            frames: 512,
            ..Default::default()
        },
    )
    .unwrap();
    let out = transfer_windowed(
        &mut tx,
        rx,
        SocketAddr::from((ADDR_B, PORT)),
        N,
        Some(WINDOW),
    );
    eprintln!("{test}: redirect stats {:?}", prog.stats());
    assert_all(test, &out);
}

#[test]
fn loss_program_drops_the_configured_burst_pattern_on_a_live_link() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::time::{Duration, Instant};
    use strahl_net::bpf::{LossConfig, LossProgram};
    let test = "loss_program_drops_the_configured_burst_pattern_on_a_live_link";
    let Some(pair) = pair(test) else { return };
    const SENT: u32 = 2000;
    let cfg = LossConfig {
        burst_period: 50,
        burst_offset: 10,
        burst_len: 5,
        udp_port: PORT,
        ..Default::default()
    };
    let ifb = pair.if_b.clone();
    let loss = in_netns(&pair.ns_b, move || {
        let mut l = LossProgram::load().expect("load loss program");
        l.configure(&cfg).unwrap();
        l.attach(testbed::ifindex(&ifb).unwrap()).expect("attach");
        l
    })
    .unwrap();
    let rx_sock = in_netns(&pair.ns_b, || UdpSocket::bind((ADDR_B, PORT)))
        .unwrap()
        .unwrap();
    let rx = MmsgRx::new(rx_sock, 64, 64 << 20).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let handle = common::spawn_receiver(rx, SENT, done.clone(), Arc::new(AtomicU32::new(0)));
    let sock = in_netns(&pair.ns_a, || UdpSocket::bind((ADDR_A, 0)))
        .unwrap()
        .unwrap();
    let mut tx = MmsgTx::new(
        sock,
        MmsgConfig {
            frames: 256,
            ..Default::default()
        },
    )
    .unwrap();
    let dest = SocketAddr::from((ADDR_B, PORT));
    let start = Instant::now();
    // Paced in bursts of 32: veth with an XDP program receives through a small NAPI ring, and
    // only the program may drop here.
    for seq in 0..SENT {
        let f = tx.alloc().expect("frames are reclaimed every burst");
        let len = common::fill(tx.payload_mut(&f), seq);
        tx.submit(f, len, dest).unwrap();
        if seq % 32 == 31 || seq == SENT - 1 {
            while tx.pending() > 0 {
                assert!(start.elapsed() < common::TRANSFER_DEADLINE);
                tx.flush().unwrap();
            }
            tx.reclaim().unwrap();
            std::thread::sleep(Duration::from_micros(300));
        }
    }
    done.store(true, Ordering::Release);
    let r = handle.join().unwrap();
    let dropped = |s: u32| (10..15).contains(&(s % 50));
    let wrong: Vec<u32> = (0..SENT)
        .filter(|&s| r.seen[s as usize] == dropped(s))
        .collect();
    let stats = loss.stats().unwrap();
    eprintln!(
        "{test}: loss stats {stats:?}, mismatches {:?}",
        &wrong[..wrong.len().min(20)]
    );
    assert!(
        wrong.is_empty(),
        "exactly the burst pattern must be missing"
    );
    assert_eq!(r.corrupt + r.duplicates, 0);
    assert_eq!(stats.dropped_burst, (SENT / 50 * 5) as u64);
    assert_eq!(stats.passed, (SENT - SENT / 50 * 5) as u64);
}

#[test]
fn af_xdp_duplex_socket_sends_and_receives_on_one_queue() {
    use std::time::{Duration, Instant};
    use strahl_net::{RxBatch, RxQueue};
    let test = "af_xdp_duplex_socket_sends_and_receives_on_one_queue";
    let Some(pair) = pair(test) else { return };
    const A_PORT: u16 = 47_999;
    const M: u32 = 2048; // a multiple of the 32-datagram burst
    let ifa = pair.if_a.clone();
    let (mut tx, _prog) = in_netns(&pair.ns_a, move || {
        let mut prog = RedirectProgram::load().expect("load");
        prog.add_port(A_PORT).unwrap();
        prog.attach(testbed::ifindex(&ifa).unwrap())
            .expect("attach");
        let mut plan = XdpPlan::new(&ifa, 0, FRAMES, 1472, A_PORT);
        plan.rx_frames = 1024;
        plan.rx_ring = 1024;
        let mut tx = XdpTx::new(plan).expect("duplex AF_XDP socket");
        prog.register_xsk(0, tx.fd()).unwrap();
        tx.add_destination(SocketAddrV4::new(ADDR_B, PORT)).unwrap();
        (tx, prog)
    })
    .expect("netns A");
    // A -> B through the TX side.
    let rx_sock = in_netns(&pair.ns_b, || UdpSocket::bind((ADDR_B, PORT)))
        .unwrap()
        .unwrap();
    let out = transfer(
        &mut tx,
        MmsgRx::new(rx_sock, 64, 64 << 20).unwrap(),
        SocketAddr::from((ADDR_B, PORT)),
        M,
    );
    assert_eq!(out.intact, M, "A -> B: {out:?}");
    // B -> A into the RX side of the same socket, in bursts the RX ring always holds.
    let b_sock = in_netns(&pair.ns_b, || UdpSocket::bind((ADDR_B, 0)))
        .unwrap()
        .unwrap();
    let mut b_tx = MmsgTx::new(
        b_sock,
        MmsgConfig {
            frames: 64,
            ..Default::default()
        },
    )
    .unwrap();
    let to_a = SocketAddr::from((ADDR_A, A_PORT));
    let mut rx = tx.receiver().expect("plan has RX frames");
    rx.set_verify_udp_checksum(false); // kernel sender on veth: CHECKSUM_PARTIAL
    let mut batch = RxBatch::new(64, 2048);
    let mut seen = vec![false; M as usize];
    let start = Instant::now();
    for burst in 0..(M / 32) {
        for k in 0..32 {
            let seq = burst * 32 + k;
            let f = b_tx.alloc().unwrap();
            let len = common::fill(b_tx.payload_mut(&f), seq);
            b_tx.submit(f, len, to_a).unwrap();
        }
        while b_tx.pending() > 0 {
            assert!(start.elapsed() < common::TRANSFER_DEADLINE);
            b_tx.flush().unwrap();
        }
        b_tx.reclaim().unwrap();
        let want = (burst + 1) * 32;
        while (seen.iter().filter(|&&s| s).count() as u32) < want {
            assert!(
                start.elapsed() < common::TRANSFER_DEADLINE,
                "B -> A stalled at {want}"
            );
            rx.recv(&mut batch, Duration::from_millis(20)).unwrap();
            for (d, src) in batch.iter() {
                let seq = common::verify(d).expect("intact datagram");
                assert_eq!(src.ip(), std::net::IpAddr::V4(ADDR_B));
                assert!(
                    !std::mem::replace(&mut seen[seq as usize], true),
                    "duplicate {seq}"
                );
            }
        }
    }
    let c = *rx.counters();
    assert_eq!(c.received_packets, M as u64);
    assert_eq!(c.malformed, 0);
}
