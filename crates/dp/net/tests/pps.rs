//! Quick packets-per-second run of every transport over a veth pair (not a benchmark: the proper
//! bench comes later). Ignored by default; run as root with
//! `cargo test -p strahl-net --test pps -- --ignored --nocapture`.
//! Each case sends 1200 B payloads as fast as it can for RUN_TIME into a draining receiver in the
//! other namespace, RUNS times; prints the median send rate and what arrived.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use strahl_net::mmsg::{MmsgConfig, MmsgRx, MmsgTx};
use strahl_net::testbed::{self, ADDR_A, ADDR_B, VethPair, in_netns};
use strahl_net::uring::{UringConfig, UringTx};
use strahl_net::{RxBatch, RxQueue, TxQueue};

const RUN_TIME: Duration = Duration::from_secs(2);
const RUNS: usize = 3;
const PORT: u16 = 47_998;
const PAYLOAD: usize = 1200;

fn blast(tx: &mut dyn TxQueue, dest: SocketAddr) -> (u64, Duration) {
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < RUN_TIME {
        for _ in 0..64 {
            let Some(f) = tx.alloc() else { break };
            let p = tx.payload_mut(&f);
            p[..8].copy_from_slice(&sent.to_le_bytes());
            tx.submit(f, PAYLOAD, dest).expect("submit");
            sent += 1;
        }
        tx.flush().expect("flush");
        tx.reclaim().expect("reclaim");
    }
    let elapsed = start.elapsed();
    // Drain what is still queued so the counters are final.
    for _ in 0..10_000 {
        if tx.pending() == 0 {
            break;
        }
        tx.flush().expect("flush");
        tx.reclaim().expect("reclaim");
    }
    (tx.counters().sent_packets, elapsed)
}

/// What receives on side B.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// A kernel UDP socket drained with recvmmsg.
    Kernel,
    /// The loss program with probability 1: XDP_DROP, so only TX cost is measured.
    #[cfg(feature = "xdp")]
    XdpDrop,
    /// The redirect program into an AF_XDP socket.
    #[cfg(feature = "xdp")]
    XdpRx,
}

type Drain = (
    Arc<AtomicBool>,
    Arc<AtomicU64>,
    std::thread::JoinHandle<()>,
    Box<dyn std::any::Any>,
);

fn drain(pair: &VethPair, peer: Peer) -> Drain {
    let keep: Box<dyn std::any::Any>;
    let mut rx: Box<dyn RxQueue + Send> = match peer {
        Peer::Kernel => {
            keep = Box::new(());
            let sock = in_netns(&pair.ns_b, || UdpSocket::bind((ADDR_B, PORT)))
                .unwrap()
                .unwrap();
            Box::new(MmsgRx::new(sock, 64, 64 << 20).unwrap())
        }
        #[cfg(feature = "xdp")]
        Peer::XdpDrop => {
            let ifb = pair.if_b.clone();
            keep = Box::new(
                in_netns(&pair.ns_b, move || {
                    let mut l = strahl_net::bpf::LossProgram::load().unwrap();
                    let cfg = strahl_net::bpf::LossConfig {
                        probability: 1.0,
                        udp_port: PORT,
                        ..Default::default()
                    };
                    l.configure(&cfg).unwrap();
                    l.attach(testbed::ifindex(&ifb).unwrap()).unwrap();
                    l
                })
                .unwrap(),
            );
            let sock = in_netns(&pair.ns_b, || UdpSocket::bind((ADDR_B, PORT)))
                .unwrap()
                .unwrap();
            Box::new(MmsgRx::new(sock, 64, 64 << 20).unwrap())
        }
        #[cfg(feature = "xdp")]
        Peer::XdpRx => {
            let ifb = pair.if_b.clone();
            let (rx, prog) = in_netns(&pair.ns_b, move || {
                let mut prog = strahl_net::bpf::RedirectProgram::load().unwrap();
                prog.add_port(PORT).unwrap();
                prog.attach(testbed::ifindex(&ifb).unwrap()).unwrap();
                let mut rx = strahl_net::xdp::XdpRx::new(&ifb, 0, 4096, 2048).unwrap();
                // Kernel senders on veth leave CHECKSUM_PARTIAL (see set_verify_udp_checksum).
                rx.set_verify_udp_checksum(false);
                prog.register_xsk(0, rx.fd()).unwrap();
                (rx, prog)
            })
            .unwrap();
            keep = Box::new(prog);
            Box::new(rx)
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let (s, c) = (stop.clone(), count.clone());
    let h = std::thread::spawn(move || {
        let mut batch = RxBatch::new(64, 2048);
        let deadline = Instant::now() + RUN_TIME * 3;
        while !s.load(Ordering::Acquire) && Instant::now() < deadline {
            let n = rx.recv(&mut batch, Duration::from_millis(20)).unwrap();
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
    });
    (stop, count, h, keep)
}

type Make = fn(&VethPair) -> Box<dyn TxQueue>;

fn kernel_sock(pair: &VethPair) -> UdpSocket {
    in_netns(&pair.ns_a, || UdpSocket::bind((ADDR_A, 0)))
        .unwrap()
        .unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[test]
#[ignore = "quick throughput run; needs root; run explicitly"]
fn quick_pps() {
    if let Err(reason) = testbed::check_privileges() {
        return testbed::skip("quick_pps", &reason);
    }
    #[allow(unused_mut)] // pushed to only with the `xdp` feature
    let mut cases: Vec<(&str, Make, Peer)> = vec![
        (
            "sendmmsg (64/call)",
            |p| Box::new(MmsgTx::new(kernel_sock(p), MmsgConfig::default()).unwrap()),
            Peer::Kernel,
        ),
        (
            "sendmmsg + GSO (50 seg)",
            |p| {
                let c = MmsgConfig {
                    gso_segments: 50,
                    ..Default::default()
                };
                Box::new(MmsgTx::new(kernel_sock(p), c).unwrap())
            },
            Peer::Kernel,
        ),
        (
            "io_uring Send",
            |p| {
                let c = UringConfig {
                    zero_copy: false,
                    ..Default::default()
                };
                Box::new(UringTx::new(kernel_sock(p), c).unwrap())
            },
            Peer::Kernel,
        ),
        (
            "io_uring SendZc, auto fallback",
            |p| Box::new(UringTx::new(kernel_sock(p), UringConfig::default()).unwrap()),
            Peer::Kernel,
        ),
        (
            "io_uring + GSO (50 seg)",
            |p| {
                let c = UringConfig {
                    zero_copy: false,
                    gso_segments: 50,
                    ..Default::default()
                };
                Box::new(UringTx::new(kernel_sock(p), c).unwrap())
            },
            Peer::Kernel,
        ),
    ];
    #[cfg(feature = "xdp")]
    {
        fn xdp_with(p: &VethPair, udp_checksum: bool) -> Box<dyn TxQueue> {
            let ifa = p.if_a.clone();
            let tx = in_netns(&p.ns_a, move || {
                let mut plan = strahl_net::xdp::XdpPlan::new(&ifa, 0, 4096, 1472, 40_000);
                plan.udp_checksum = udp_checksum;
                let mut tx = strahl_net::xdp::XdpTx::new(plan).unwrap();
                tx.add_destination(std::net::SocketAddrV4::new(ADDR_B, PORT))
                    .unwrap();
                tx
            })
            .unwrap();
            Box::new(tx)
        }
        fn xdp(p: &VethPair) -> Box<dyn TxQueue> {
            xdp_with(p, true)
        }
        fn xdp_nocsum(p: &VethPair) -> Box<dyn TxQueue> {
            xdp_with(p, false)
        }
        cases.push(("AF_XDP copy -> kernel socket", xdp, Peer::Kernel));
        cases.push(("AF_XDP copy -> XDP_DROP peer", xdp, Peer::XdpDrop));
        cases.push((
            "AF_XDP copy, UDP csum 0 -> XDP_DROP",
            xdp_nocsum,
            Peer::XdpDrop,
        ));
        cases.push(("AF_XDP copy -> AF_XDP RX", xdp, Peer::XdpRx));
        cases.push((
            "sendmmsg -> AF_XDP RX",
            |p| Box::new(MmsgTx::new(kernel_sock(p), MmsgConfig::default()).unwrap()),
            Peer::XdpRx,
        ));
    }
    for (name, make, peer) in cases {
        let mut rates = Vec::new();
        let mut arrived = Vec::new();
        for _ in 0..RUNS {
            let pair = VethPair::create("pps").unwrap();
            let (stop, count, h, _keep) = drain(&pair, peer);
            let mut tx = make(&pair);
            let (sent, elapsed) = blast(tx.as_mut(), SocketAddr::from((ADDR_B, PORT)));
            std::thread::sleep(Duration::from_millis(200));
            stop.store(true, Ordering::Release);
            h.join().unwrap();
            rates.push(sent as f64 / elapsed.as_secs_f64());
            arrived.push(count.load(Ordering::Relaxed) as f64 / sent.max(1) as f64);
        }
        let m = median(rates.clone());
        eprintln!(
            "PPS {name:32} median {:>9.0} pps ({:.2} Gbit/s payload)  runs {:?}  arrived {:?}",
            m,
            m * PAYLOAD as f64 * 8.0 / 1e9,
            rates.iter().map(|r| r.round() as u64).collect::<Vec<_>>(),
            arrived
                .iter()
                .map(|a| format!("{:.1}%", a * 100.0))
                .collect::<Vec<_>>(),
        );
    }
}

/// Cost of the UDP checksum AF_XDP computes per datagram (single core, no I/O).
#[cfg(feature = "xdp")]
#[test]
#[ignore = "timing; run explicitly"]
fn checksum_cost() {
    use std::hint::black_box;
    use strahl_net::xdp::headers::{fold, sum16};
    let data: Vec<u8> = (0..PAYLOAD).map(|i| (i * 7) as u8).collect();
    let mut per = Vec::new();
    for _ in 0..5 {
        let n = 200_000;
        let start = Instant::now();
        let mut acc = 0u16;
        for _ in 0..n {
            acc ^= fold(sum16(black_box(&data)));
        }
        black_box(acc);
        per.push(start.elapsed().as_nanos() as f64 / n as f64);
    }
    let m = median(per.clone());
    eprintln!(
        "CSUM sum16 over {PAYLOAD} B: median {m:.1} ns ({:.1} GB/s), runs {:?}",
        PAYLOAD as f64 / m,
        per.iter().map(|p| format!("{p:.1}")).collect::<Vec<_>>()
    );
}
