//! Delivery across two network namespaces joined by a veth pair (created and removed by each test).
//! Each transport sends N sequence-numbered datagrams from side A; a `recvmmsg` receiver in side B
//! must get every one exactly once and intact. Without root these tests print `SKIPPED: ...`.

mod common;

use common::{drain_completions, transfer};
use std::net::{SocketAddr, UdpSocket};
use strahl_net::TxQueue;
use strahl_net::mmsg::{MmsgConfig, MmsgRx, MmsgTx};
use strahl_net::testbed::{self, ADDR_A, ADDR_B, VethPair, in_netns};
use strahl_net::uring::{UringConfig, UringTx};

const N: u32 = 10_000;
const PORT: u16 = 47_998;
const RCVBUF: usize = 64 << 20;

/// Namespaces + a bound receiver in B + a bound sender socket in A, or `None` after printing why.
fn setup(test: &str) -> Option<(VethPair, UdpSocket, MmsgRx)> {
    let pair = match VethPair::create(&test[..3]) {
        Ok(p) => p,
        Err(reason) => {
            testbed::skip(test, &reason);
            return None;
        }
    };
    let rx_sock = in_netns(&pair.ns_b, || UdpSocket::bind((ADDR_B, PORT)))
        .expect("enter netns B")
        .expect("bind receiver");
    let rx = MmsgRx::new(rx_sock, 64, RCVBUF).expect("receiver");
    let tx_sock = in_netns(&pair.ns_a, || UdpSocket::bind((ADDR_A, 0)))
        .expect("enter netns A")
        .expect("bind sender");
    Some((pair, tx_sock, rx))
}

fn dest() -> SocketAddr {
    SocketAddr::from((ADDR_B, PORT))
}

fn check(name: &str, tx: &mut dyn TxQueue, rx: MmsgRx) {
    let out = transfer(tx, rx, dest(), N);
    let c = *tx.counters();
    eprintln!("{name}: {out:?} counters {c:?}");
    assert_eq!(out.corrupt, 0, "{name}: corrupt datagrams");
    assert_eq!(out.duplicates, 0, "{name}: duplicates");
    assert_eq!(out.out_of_range, 0, "{name}: unknown sequence numbers");
    assert_eq!(out.intact, N, "{name}: every datagram must arrive intact");
    assert_eq!(c.submitted, N as u64);
    assert_eq!(
        c.dropped, 0,
        "{name}: no per-datagram refusals expected (errno {})",
        c.last_errno
    );
}

#[test]
fn sendmmsg_delivers_across_namespaces() {
    let Some((_pair, sock, rx)) = setup("sendmmsg_delivers_across_namespaces") else {
        return;
    };
    let mut tx = MmsgTx::new(
        sock,
        MmsgConfig {
            frames: 512,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(tx.gso_segments(), 1);
    check("sendmmsg", &mut tx, rx);
    assert_eq!(tx.counters().sent_packets, N as u64);
    assert!(tx.counters().syscalls < N as u64 / 8, "sendmmsg must batch");
    drain_completions(&mut tx, 512);
}

#[test]
fn sendmmsg_gso_trains_deliver_across_namespaces() {
    let Some((_pair, sock, rx)) = setup("gso_sendmmsg_delivers") else {
        return;
    };
    let cfg = MmsgConfig {
        frames: 512,
        gso_segments: 32,
        ..Default::default()
    };
    let mut tx = MmsgTx::new(sock, cfg).unwrap();
    assert_eq!(tx.gso_segments(), 32, "kernel 4.18+ supports UDP_SEGMENT");
    check("sendmmsg+gso", &mut tx, rx);
    assert!(tx.counters().gso_trains > 0, "trains must have been used");
    drain_completions(&mut tx, 512);
}

fn uring(test: &str, zero_copy: bool, gso: usize) {
    let Some((_pair, sock, rx)) = setup(test) else {
        return;
    };
    let cfg = UringConfig {
        frames: 512,
        in_flight: 128,
        zero_copy,
        gso_segments: gso,
        ..Default::default()
    };
    let mut tx = match UringTx::new(sock, cfg) {
        Ok(t) => t,
        Err(e) => {
            assert!(testbed::is_unavailable(&e), "io_uring setup failed: {e}");
            testbed::skip(test, &format!("io_uring unavailable: {e}"));
            return;
        }
    };
    eprintln!("{test}: mode {:?}", tx.mode());
    check(test, &mut tx, rx);
    drain_completions(&mut tx, 512);
    assert_eq!(tx.in_flight(), 0);
    let c = tx.counters();
    assert_eq!(c.sent_packets, N as u64);
    assert_eq!(c.completed, N as u64);
    if gso > 1 {
        assert!(c.gso_trains > 0);
    }
    if zero_copy && gso <= 1 && tx.mode().registered_buffers {
        // Across namespaces the kernel copies every zero-copy send; the queue must notice.
        assert!(c.zc_copied > 0);
        assert!(tx.mode().zero_copy_abandoned, "{:?}", tx.mode());
        assert!(!tx.mode().zero_copy);
    }
}

#[test]
fn io_uring_send_delivers_across_namespaces() {
    uring("io_uring_send", false, 0);
}

#[test]
fn io_uring_send_zc_delivers_across_namespaces() {
    uring("io_uring_send_zc", true, 0);
}

#[test]
fn io_uring_gso_delivers_across_namespaces() {
    uring("io_uring_gso", false, 16);
}

#[test]
fn io_uring_gso_zc_delivers_across_namespaces() {
    uring("io_uring_gso_zc", true, 16);
}

#[test]
fn self_test_picks_a_transport_whose_probe_leaves() {
    use strahl_net::TransportKind;
    use strahl_net::selftest::{Refusal, SelfTestConfig, self_test};
    let test = "self_test_picks_a_transport_whose_probe_leaves";
    let pair = match VethPair::create("sft") {
        Ok(p) => p,
        Err(reason) => return testbed::skip(test, &reason),
    };
    let ifa = pair.if_a.clone();
    let (ok, bogus) = in_netns(&pair.ns_a, move || {
        let mut cfg = SelfTestConfig::new(
            &ifa,
            SocketAddr::from((ADDR_A, 0)),
            std::net::SocketAddrV4::new(ADDR_B, 9),
        );
        cfg.frames = 256;
        let ok = self_test(&cfg).map(|o| (o.chosen, o.refused, o.summary));
        // Probes routed through another interface are never counted on this one: all refused.
        let mut wrong = cfg.clone();
        wrong.ifname = "lo".into();
        wrong.candidates = vec![TransportKind::IoUring, TransportKind::SendMmsg];
        let bogus = self_test(&wrong).err();
        (ok, bogus)
    })
    .expect("netns A");
    let (chosen, refused, summary) = ok.expect("a transport must work on veth");
    eprintln!("{summary}");
    assert!(summary.contains(&chosen.to_string()));
    if cfg!(feature = "xdp") {
        assert_eq!(
            chosen,
            TransportKind::AfXdp,
            "root on veth: AF_XDP copy mode works ({summary})"
        );
        assert!(refused.is_empty());
    }
    let bogus = bogus.expect("probes via lo must not count on a veth... and vice versa");
    eprintln!("{}", bogus.summary);
    assert_eq!(bogus.refused.len(), 2);
    assert!(
        bogus
            .refused
            .iter()
            .all(|r| matches!(r.reason, Refusal::ProbeNotSeen(_))),
        "{bogus:?}"
    );
}

#[test]
fn self_test_without_privileges_refuses_af_xdp() {
    use std::net::Ipv4Addr;
    use strahl_net::TransportKind;
    use strahl_net::selftest::{Refusal, SelfTestConfig, self_test};
    // Runs everywhere on loopback; the AF_XDP expectation depends on privilege.
    let mut cfg = SelfTestConfig::new(
        "lo",
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9),
    );
    cfg.frames = 64;
    let root = testbed::check_privileges().is_ok();
    match self_test(&cfg) {
        Ok(o) => {
            eprintln!("{}", o.summary);
            if !root && cfg!(feature = "xdp") {
                assert_ne!(o.chosen, TransportKind::AfXdp);
                let r = &o.refused[0];
                assert_eq!(r.transport, TransportKind::AfXdp);
                assert!(
                    matches!(r.reason, Refusal::NoPrivilege(_)),
                    "{:?}",
                    r.reason
                );
            }
        }
        Err(e) => panic!(
            "loopback must have a working kernel transport: {}",
            e.summary
        ),
    }
}

#[test]
fn veth_pair_is_removed_even_when_the_test_panics() {
    let test = "veth_pair_is_removed_even_when_the_test_panics";
    if let Err(reason) = testbed::check_privileges() {
        return testbed::skip(test, &reason);
    }
    let names = std::sync::Mutex::new(None);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let pair = VethPair::create("pan").expect("create");
        *names.lock().unwrap() = Some((pair.ns_a.clone(), pair.ns_b.clone()));
        assert!(std::path::Path::new(&format!("/var/run/netns/{}", pair.ns_a)).exists());
        panic!("deliberate failure inside a namespace test");
    }));
    assert!(r.is_err());
    let (a, b) = names.lock().unwrap().clone().expect("pair was created");
    for ns in [a, b] {
        assert!(
            !std::path::Path::new(&format!("/var/run/netns/{ns}")).exists(),
            "{ns} leaked"
        );
    }
}
