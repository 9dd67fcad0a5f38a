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

/// Two namespaces joined by a veth with two queues a side (the multi-queue path: one socket per
/// queue, one poll over both); removed on drop.
struct TwoQueueVeth {
    ns: [String; 2],
    ifs: [String; 2],
}

impl TwoQueueVeth {
    fn create() -> Result<Self, String> {
        testbed::check_privileges().map_err(|e| e.0)?;
        let base = format!("x{:x}", std::process::id());
        let v = TwoQueueVeth {
            ns: [format!("strahl-{base}a"), format!("strahl-{base}b")],
            ifs: [format!("{base}a"), format!("{base}b")],
        };
        let [na, nb] = &v.ns;
        let [ia, ib] = &v.ifs;
        let q = ["numtxqueues", "2", "numrxqueues", "2"];
        let mut link = vec!["link", "add", ia, "netns", na];
        link.extend(q);
        link.extend(["type", "veth", "peer", "name", ib, "netns", nb]);
        link.extend(q);
        for args in [
            vec!["netns", "add", na],
            vec!["netns", "add", nb],
            link,
            vec!["-n", na, "addr", "add", "10.202.0.1/24", "dev", ia],
            vec!["-n", nb, "addr", "add", "10.202.0.2/24", "dev", ib],
            vec!["-n", na, "link", "set", ia, "up"],
            vec!["-n", nb, "link", "set", ib, "up"],
        ] {
            let st = std::process::Command::new("ip").args(&args).status();
            if !st.is_ok_and(|s| s.success()) {
                return Err(format!("ip {}", args.join(" ")));
            }
        }
        Ok(v)
    }
}

impl Drop for TwoQueueVeth {
    fn drop(&mut self) {
        for ns in &self.ns {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .status();
        }
    }
}

#[test]
fn af_xdp_receives_on_every_queue_of_a_multi_queue_interface() {
    let v = match TwoQueueVeth::create() {
        Ok(v) => v,
        Err(e) => {
            testbed::skip("af_xdp_receives_on_every_queue", &e);
            return;
        }
    };
    let (a, b) = (
        std::net::Ipv4Addr::new(10, 202, 0, 1),
        std::net::Ipv4Addr::new(10, 202, 0, 2),
    );
    let if_b = v.ifs[1].clone();
    let mut rx = testbed::in_netns(&v.ns[1], move || {
        XdpMedia::open(&if_b, 2, MEDIA).unwrap_or_else(|e| panic!("{e}"))
    })
    .unwrap();
    // Many source ports: the sender's veth spreads the flows over its two queues, which are the
    // receiver's two queues.
    let senders: Vec<UdpSocket> = (0..16)
        .map(|_| testbed::in_netns(&v.ns[0], move || UdpSocket::bind((a, 0)).unwrap()).unwrap())
        .collect();
    let mut batch = XdpMedia::batch();
    let total = 16 * PER_ROUND;
    let mut seen = vec![false; total as usize];
    let mut got = 0;
    for (k, tx) in senders.iter().enumerate() {
        got += round(
            tx,
            SocketAddr::from((b, MEDIA)),
            &mut rx,
            &mut batch,
            k as u32 * PER_ROUND,
            &mut seen,
        );
    }
    assert_eq!(got, total);
    assert!(seen.iter().all(|&s| s), "every datagram intact");
    let rep = rx.report();
    assert_eq!((rep.queues, rep.received), (2, u64::from(total)), "{rep:?}");
    // Both queues took part (veth counts its XDP redirects per queue).
    let stats = std::process::Command::new("ip")
        .args(["netns", "exec", &v.ns[1], "ethtool", "-S", &v.ifs[1]])
        .output();
    match stats {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            for q in 0..2 {
                let key = format!("rx_queue_{q}_xdp_redirect:");
                let n: u64 = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix(&key))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or_else(|| panic!("no {key} in\n{text}"));
                assert!(n > 0, "queue {q} redirected nothing:\n{text}");
            }
        }
        _ => eprintln!("ethtool not available: which queues took part is not checked"),
    }
}
