//! `strahl-client`'s AF_XDP receive ([`XdpMedia`]) on a veth between two namespaces: it takes the
//! media port's datagrams — whole, in order, from a kernel sender whose UDP checksums veth leaves
//! partial — and nothing else (a datagram to another port still reaches its kernel socket), and
//! its steady-state receive allocates nothing (counting allocator, this thread only). Needs
//! root; prints `SKIPPED` otherwise.
#![cfg(feature = "xdp")]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use strahl_client::xdp_rx::XdpMedia;
use strahl_net::testbed::{self, ADDR_A, ADDR_B, VethPair};
use strahl_testkit::{CountingAlloc, counted};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const MEDIA: u16 = 47_700;
const OTHER: u16 = 47_701;
const ROUNDS: u32 = 50;
const PER_ROUND: u32 = 32;
const LEN: usize = 1200;

/// Datagram `i`: its index, then `i as u8` repeated.
fn fill(buf: &mut [u8; LEN], i: u32) {
    buf[..4].copy_from_slice(&i.to_le_bytes());
    buf[4..].fill(i as u8);
}

/// Sends datagrams `from..from + PER_ROUND` and receives them; marks each intact one in `seen`.
fn round(
    tx: &UdpSocket,
    to: SocketAddr,
    rx: &mut XdpMedia,
    batch: &mut strahl_net::RxBatch,
    from: u32,
    seen: &mut [bool],
) -> u32 {
    let mut buf = [0u8; LEN];
    for i in from..from + PER_ROUND {
        fill(&mut buf, i);
        tx.send_to(&buf, to).unwrap();
    }
    let mut got = 0;
    let t = Instant::now();
    while got < PER_ROUND && t.elapsed() < Duration::from_secs(5) {
        rx.recv(batch, Duration::from_millis(20), &mut |d: &mut [u8]| {
            let i = u32::from_le_bytes(d[..4].try_into().unwrap());
            let intact = d.len() == LEN && d[4..].iter().all(|&b| b == i as u8);
            if intact && (i as usize) < seen.len() {
                seen[i as usize] = true;
            }
            got += 1;
        })
        .unwrap();
    }
    got
}

#[test]
fn af_xdp_takes_the_media_port_only_and_receives_without_allocating() {
    let pair = match VethPair::create("xrx") {
        Ok(p) => p,
        Err(e) => {
            testbed::skip("af_xdp_takes_the_media_port_only", &e);
            return;
        }
    };
    let if_b = pair.if_b.clone();
    // As `stream` does: the kernel socket stays bound on the media port beside AF_XDP.
    let (mut rx, _reserved, other) = testbed::in_netns(&pair.ns_b, move || {
        let reserved = UdpSocket::bind((ADDR_B, MEDIA)).unwrap();
        let other = UdpSocket::bind((ADDR_B, OTHER)).unwrap();
        let rx = XdpMedia::open(&if_b, 1, MEDIA).unwrap_or_else(|e| panic!("{e}"));
        (rx, reserved, other)
    })
    .unwrap();
    let tx = testbed::in_netns(&pair.ns_a, || UdpSocket::bind((ADDR_A, 0)).unwrap()).unwrap();
    let to = SocketAddr::from((ADDR_B, MEDIA));
    let mut batch = XdpMedia::batch();
    let total = (ROUNDS + 1) * PER_ROUND;
    let mut seen = vec![false; total as usize];
    // Warm-up (ARP, first wake-ups) outside the count.
    assert_eq!(round(&tx, to, &mut rx, &mut batch, 0, &mut seen), PER_ROUND);
    let (got, allocs) = counted(|| {
        (1..=ROUNDS)
            .map(|r| round(&tx, to, &mut rx, &mut batch, r * PER_ROUND, &mut seen))
            .sum::<u32>()
    });
    assert_eq!(got, ROUNDS * PER_ROUND);
    assert!(seen.iter().all(|&s| s), "every datagram intact");
    assert_eq!(allocs, 0, "the steady-state AF_XDP receive allocated");

    // Another port passes to the kernel, untouched by AF_XDP.
    other
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; LEN];
    for i in 0..3u32 {
        fill(&mut buf, i);
        tx.send_to(&buf, (ADDR_B, OTHER)).unwrap();
        let mut r = [0u8; 2048];
        let n = other
            .recv(&mut r)
            .expect("the other port's datagram reached the kernel");
        assert_eq!(&r[..n], &buf[..]);
    }
    let rep = rx.report();
    assert_eq!(rep.received, u64::from(total), "{rep:?}");
    assert!(rep.redirected >= u64::from(total), "{rep:?}");
    assert!(rep.passed >= 3, "{rep:?}");
    assert_eq!(rep.malformed, 0, "{rep:?}");
}
