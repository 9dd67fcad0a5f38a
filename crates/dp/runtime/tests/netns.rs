//! The tx tile emits N sequence-numbered packets through real transports across a veth pair
//! between two namespaces (strahl-net's test bed) at a configured rate; the receiver checks
//! that all arrived, in order, and that the send took about as long as the rate says.
//! Needs root; prints `SKIPPED: ...` otherwise.

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use strahl_net::mmsg::{MmsgConfig, MmsgRx, MmsgTx};
use strahl_net::testbed::{self, ADDR_A, ADDR_B, VethPair, in_netns};
use strahl_net::uring::{UringConfig, UringTx};
use strahl_net::{RxBatch, RxQueue, TxQueue};
use strahl_pacer::{Backlog, PacerConfig};
use strahl_runtime::tile::{self, Shared, Source, TileConfig};

const PORT: u16 = 47_990;
const N: u64 = 4000;
const PAYLOAD: usize = 1200;
/// 40k pkt/s of 1200 B payload (counted as payload bits by this test).
const RATE_PPS: u64 = 40_000;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Seq {
    next: u64,
    dest: SocketAddr,
}

impl Source for Seq {
    fn backlog(&self) -> Backlog {
        let left = N - self.next;
        Backlog {
            packets: left,
            bytes: left * PAYLOAD as u64,
        }
    }
    fn fill(&mut self, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        if self.next >= N {
            return None;
        }
        buf[..8].copy_from_slice(&self.next.to_be_bytes());
        buf[8..PAYLOAD].fill(0xa5);
        self.next += 1;
        Some((PAYLOAD, self.dest))
    }
    fn finished(&self) -> bool {
        true
    }
}

fn emit_and_check(name: &str, pair: &VethPair, q: Box<dyn TxQueue + Send>) {
    // One emitter at a time: parallel spinning tiles on 2 shared cores would starve receivers.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let sock = in_netns(&pair.ns_b, || UdpSocket::bind((ADDR_B, PORT)))
        .unwrap()
        .unwrap();
    // 64 MiB receive buffer: the receiver thread may be descheduled while the tile spins.
    let mut rx = MmsgRx::new(sock, 64, 64 << 20).unwrap();
    let receiver = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(N as usize);
        let mut batch = RxBatch::new(64, 2048);
        let mut quiet = 0;
        // Bounded: stops after 500 ms without a datagram, or once all N arrived.
        while got.len() < N as usize && quiet < 25 {
            let n = rx.recv(&mut batch, Duration::from_millis(20)).unwrap();
            if n == 0 {
                quiet += 1;
                continue;
            }
            quiet = 0;
            for (d, _) in batch.iter() {
                assert_eq!(d.len(), PAYLOAD, "datagram length");
                got.push(u64::from_be_bytes(d[..8].try_into().unwrap()));
            }
        }
        got
    });
    let mut pacer = PacerConfig::new(RATE_PPS * PAYLOAD as u64 * 8);
    pacer.burst_ns = 50_000;
    let cfg = TileConfig {
        core: None,
        pacer,
        max_run: Some(Duration::from_secs(10)),
    };
    let shared = Shared::new();
    let start = Instant::now();
    let src = Seq {
        next: 0,
        dest: SocketAddr::V4(SocketAddrV4::new(ADDR_B, PORT)),
    };
    let h = tile::spawn(q, src, cfg, shared.clone()).unwrap();
    let (r, _q, src) = h.join().unwrap();
    let elapsed = start.elapsed();
    let c = r.unwrap();
    let got = receiver.join().unwrap();
    assert_eq!(src.next, N, "{name}: source drained");
    assert_eq!(c.packets, N, "{name}: tile counted every packet");
    assert_eq!(shared.published().0, N, "{name}: counters published");
    assert_eq!(got.len() as u64, N, "{name}: all arrived");
    assert!(
        got.iter().enumerate().all(|(i, &s)| s == i as u64),
        "{name}: in order"
    );
    let nominal = Duration::from_secs_f64(N as f64 / RATE_PPS as f64);
    // The bucket's first 50 µs go at once; otherwise the rate holds. Upper bound generous: the
    // machine is shared.
    assert!(
        elapsed >= nominal.mul_f64(0.9) && elapsed < nominal * 5 + Duration::from_millis(500),
        "{name}: {N} packets at {RATE_PPS}/s took {elapsed:?} (nominal {nominal:?})"
    );
    eprintln!(
        "{name}: {N} packets in {elapsed:?} (nominal {nominal:?}), {} kicks, {} spins, {} sleeps, max late {} ns",
        c.kicks, c.spins, c.sleeps, c.max_late_ns
    );
}

fn kernel_sock(pair: &VethPair) -> UdpSocket {
    in_netns(&pair.ns_a, || UdpSocket::bind((ADDR_A, 0)))
        .unwrap()
        .unwrap()
}

#[test]
fn tile_emits_in_order_at_rate_over_sendmmsg() {
    let pair = match VethPair::create("rt1") {
        Ok(p) => p,
        Err(r) => return testbed::skip("tile_emits_in_order_at_rate_over_sendmmsg", &r),
    };
    let q = MmsgTx::new(kernel_sock(&pair), MmsgConfig::default()).unwrap();
    emit_and_check("sendmmsg", &pair, Box::new(q));
}

#[test]
fn tile_emits_in_order_at_rate_over_io_uring() {
    let pair = match VethPair::create("rt2") {
        Ok(p) => p,
        Err(r) => return testbed::skip("tile_emits_in_order_at_rate_over_io_uring", &r),
    };
    let cfg = UringConfig {
        zero_copy: false,
        ..Default::default()
    };
    let q = match UringTx::new(kernel_sock(&pair), cfg) {
        Ok(q) => q,
        Err(e) if testbed::is_unavailable(&e) => {
            return testbed::skip("tile_emits_in_order_at_rate_over_io_uring", &e);
        }
        Err(e) => panic!("io_uring: {e}"),
    };
    emit_and_check("io_uring", &pair, Box::new(q));
}

#[test]
fn tile_emits_in_order_at_rate_over_af_xdp() {
    let pair = match VethPair::create("rt3") {
        Ok(p) => p,
        Err(r) => return testbed::skip("tile_emits_in_order_at_rate_over_af_xdp", &r),
    };
    let ifa = pair.if_a.clone();
    let q = in_netns(&pair.ns_a, move || {
        let plan = strahl_net::xdp::XdpPlan::new(&ifa, 0, 4096, 1472, 40_000);
        let mut tx = strahl_net::xdp::XdpTx::new(plan)?;
        tx.add_destination(SocketAddrV4::new(ADDR_B, PORT))
            .map_err(|e| strahl_net::NetError::Config(Box::leak(e.to_string().into_boxed_str())))?;
        Ok::<_, strahl_net::NetError>(tx)
    })
    .unwrap();
    match q {
        Ok(q) => emit_and_check("af_xdp", &pair, Box::new(q)),
        Err(e) if testbed::is_unavailable(&e) => {
            testbed::skip("tile_emits_in_order_at_rate_over_af_xdp", &e)
        }
        Err(e) => panic!("AF_XDP: {e}"),
    }
}
