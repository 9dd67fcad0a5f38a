//! The steady-state send and receive paths must not allocate: a counting global allocator counts
//! allocations made by this test's thread while datagrams flow over loopback (no privileges
//! needed). One test per binary so no other test thread allocates concurrently.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;
use strahl_net::frame::recycle;
use strahl_net::mmsg::{MmsgConfig, MmsgRx, MmsgTx};
use strahl_net::uring::{UringConfig, UringTx};
use strahl_net::{RxBatch, RxQueue, TxQueue, testbed};

use strahl_testkit::{CountingAlloc, counted};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

struct Scratch {
    frames: Vec<strahl_net::TxFrame>,
    store: Vec<&'static mut [u8]>,
}

const ROUNDS: u32 = 200;
const PER_ROUND: u32 = 32;

/// Send ROUNDS × PER_ROUND datagrams and receive them, all on this thread.
/// `scratch` holds the caller's reusable vectors (allocated once, outside the counted region).
fn pump(
    tx: &mut dyn TxQueue,
    rx: &mut dyn RxQueue,
    batch: &mut RxBatch,
    dest: SocketAddr,
    scratch: &mut Scratch,
) -> u64 {
    let mut received = 0u64;
    let Scratch { frames, store } = scratch;
    for round in 0..ROUNDS {
        for _ in 0..PER_ROUND {
            frames.push(tx.alloc().expect("free frame"));
        }
        // Many frames filled at once (the FEC parity shape), through the reusable slice vector.
        let mut slices = recycle(std::mem::take(store));
        tx.payloads_mut(frames, &mut slices);
        let mut lens = [0usize; PER_ROUND as usize];
        for (i, s) in slices.iter_mut().enumerate() {
            lens[i] = common::fill(s, round * PER_ROUND + i as u32);
        }
        *store = recycle(slices);
        for (i, f) in frames.drain(..).enumerate() {
            tx.submit(f, lens[i], dest).expect("submit");
        }
        let mut spins = 0;
        while tx.pending() > 0 && spins < 1000 {
            tx.flush().expect("flush");
            spins += 1;
        }
        let mut want = PER_ROUND as u64;
        for _ in 0..100 {
            if want == 0 {
                break;
            }
            let got = rx.recv(batch, Duration::from_millis(20)).expect("recv") as u64;
            for (d, _) in batch.iter() {
                assert!(common::verify(d).is_some(), "loopback datagram corrupt");
            }
            want = want.saturating_sub(got);
            received += got;
        }
        for _ in 0..1000 {
            tx.reclaim().expect("reclaim");
            if tx.free_frames() >= PER_ROUND as usize {
                break;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    received
}

fn loopback_pair() -> (UdpSocket, MmsgRx, SocketAddr) {
    let rx_sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let dest = rx_sock.local_addr().unwrap();
    let rx = MmsgRx::new(rx_sock, 64, 8 << 20).unwrap();
    (UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap(), rx, dest)
}

#[test]
fn steady_state_paths_do_not_allocate() {
    let mut batch = RxBatch::new(64, 2048);
    let mut sc = Scratch {
        frames: Vec::with_capacity(PER_ROUND as usize),
        store: Vec::with_capacity(PER_ROUND as usize),
    };

    for gso in [0usize, 16] {
        let (sock, mut rx, dest) = loopback_pair();
        let cfg = MmsgConfig {
            frames: 256,
            gso_segments: gso,
            ..Default::default()
        };
        let mut tx = MmsgTx::new(sock, cfg).unwrap();
        pump(&mut tx, &mut rx, &mut batch, dest, &mut sc); // warm-up (first-use paths)
        let (got, allocs) = counted(|| pump(&mut tx, &mut rx, &mut batch, dest, &mut sc));
        assert_eq!(
            got,
            (ROUNDS * PER_ROUND) as u64,
            "sendmmsg gso={gso}: loopback delivery"
        );
        assert_eq!(
            allocs, 0,
            "sendmmsg gso={gso}: steady state allocated {allocs} times"
        );
        if gso > 1 {
            assert!(tx.counters().gso_trains > 0);
        }
    }

    for (zc, gso) in [(false, 0usize), (true, 0), (false, 16)] {
        let (sock, mut rx, dest) = loopback_pair();
        let cfg = UringConfig {
            frames: 256,
            in_flight: 64,
            zero_copy: zc,
            // Keep SendZc on so its path is the one counted (loopback copies, which would
            // otherwise switch the queue to Send during warm-up).
            zero_copy_fallback: false,
            gso_segments: gso,
            ..Default::default()
        };
        let mut tx = match UringTx::new(sock, cfg) {
            Ok(t) => t,
            Err(e) => {
                assert!(testbed::is_unavailable(&e), "io_uring setup failed: {e}");
                testbed::skip("steady_state_paths_do_not_allocate (io_uring part)", &e);
                continue;
            }
        };
        pump(&mut tx, &mut rx, &mut batch, dest, &mut sc);
        let (got, allocs) = counted(|| pump(&mut tx, &mut rx, &mut batch, dest, &mut sc));
        assert_eq!(
            got,
            (ROUNDS * PER_ROUND) as u64,
            "io_uring zc={zc} gso={gso}: delivery"
        );
        assert_eq!(
            allocs, 0,
            "io_uring zc={zc} gso={gso}: steady state allocated {allocs} times"
        );
        if zc && tx.mode().zero_copy {
            assert!(tx.counters().zc_copied > 0, "SendZc path was exercised");
        }
    }

    #[cfg(feature = "xdp")]
    af_xdp_part(&mut batch, &mut sc);
}

/// AF_XDP TX → redirect program → AF_XDP RX across a veth pair (root only).
#[cfg(feature = "xdp")]
fn af_xdp_part(batch: &mut RxBatch, sc: &mut Scratch) {
    use std::net::SocketAddrV4;
    use strahl_net::bpf::RedirectProgram;
    use strahl_net::testbed::{ADDR_B, VethPair, in_netns};
    use strahl_net::xdp::{XdpPlan, XdpRx, XdpTx};
    const PORT: u16 = 47_998;
    let pair = match VethPair::create("alc") {
        Ok(p) => p,
        Err(reason) => {
            return testbed::skip("steady_state_paths_do_not_allocate (AF_XDP part)", &reason);
        }
    };
    let ifb = pair.if_b.clone();
    let (mut rx, _prog) = in_netns(&pair.ns_b, move || {
        let mut prog = RedirectProgram::load().unwrap();
        prog.add_port(PORT).unwrap();
        prog.attach(testbed::ifindex(&ifb).unwrap()).unwrap();
        let rx = XdpRx::new(&ifb, 0, 1024, 512).unwrap();
        prog.register_xsk(0, rx.fd()).unwrap();
        (rx, prog)
    })
    .unwrap();
    let ifa = pair.if_a.clone();
    let mut tx = in_netns(&pair.ns_a, move || {
        let mut tx = XdpTx::new(XdpPlan::new(&ifa, 0, 256, 1472, 40_000)).unwrap();
        tx.add_destination(SocketAddrV4::new(ADDR_B, PORT)).unwrap();
        tx
    })
    .unwrap();
    let dest = SocketAddr::from((ADDR_B, PORT));
    pump(&mut tx, &mut rx, batch, dest, sc);
    let (got, allocs) = counted(|| pump(&mut tx, &mut rx, batch, dest, sc));
    assert_eq!(got, (ROUNDS * PER_ROUND) as u64, "AF_XDP: delivery");
    assert_eq!(allocs, 0, "AF_XDP: steady state allocated {allocs} times");
}
