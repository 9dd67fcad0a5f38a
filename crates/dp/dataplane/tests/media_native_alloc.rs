//! The native media path does not allocate in its steady state: two native `strahl/1`
//! sessions stream at once on loopback — the pattern source's checkable frames at 50 Mbit/s and
//! synthetic → openh264 — through the unit rings and the tx tile (one GF(2¹⁶) block per frame,
//! AES-GCM sealing into io_uring frames, the drop knob on) to the kernel, and a counting global
//! allocator sees no allocation on any thread for a window of streaming after warm-up. The
//! window must carry traffic. One test per binary: no other test allocates meanwhile (the
//! GameStream path has its own, `media_alloc.rs`).

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strahl_dataplane::media::{DEFAULT_LINK_BPS, Media, MediaHost, Transports};
use strahl_ipc::{KeyMaterial, Protocol, Secret, SessionStart, StreamOptions};
use strahl_metrics::{Metric, Registry};
use strahl_net::TransportKind;
use strahl_testkit::{CountingAlloc, global_allocs};

mod common;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const WARM_UP: Duration = Duration::from_millis(1500);
const WINDOW: Duration = Duration::from_millis(1500);

/// A native session to `client`: 320×240@60, 1408-byte shards, 20 % FEC.
fn native(id: u64, client: std::net::SocketAddr, bitrate_kbps: u32, flags: u32) -> SessionStart {
    let mut s = common::session(id, client, None, (common::free_port(), 0));
    s.protocol = Protocol::Native;
    s.keys = KeyMaterial::Native {
        secret: Secret([id as u8; 32]),
    };
    s.video.width = 320;
    s.video.height = 240;
    s.video.bitrate_kbps = bitrate_kbps;
    s.video.packet_size = 1408;
    s.ports.video_dst = client.port();
    s.stream = StreamOptions {
        ping_payload: None,
        flags,
        min_fec_packets: 0,
    };
    s
}

/// Both clients on one thread, counting datagrams into buffers made before the loop.
fn clients(socks: Vec<UdpSocket>, stop: &AtomicBool, received: &AtomicU64) {
    let mut buf = [0u8; 2048];
    let end = Instant::now() + Duration::from_secs(30);
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        for s in &socks {
            while s.recv(&mut buf).is_ok() {
                received.fetch_add(1, Ordering::Relaxed);
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

#[test]
fn the_native_media_path_does_not_allocate() {
    let before = global_allocs();
    drop(std::hint::black_box(vec![1u8; 64]));
    assert!(global_allocs() > before, "the counter counts");

    let reg: &'static Registry = Box::leak(Box::new(Registry::new()));
    // The knob on: its bounded drops and the FEC it leaves to the receiver allocate nothing.
    let settings = common::settings(0.02, Duration::from_secs(5));
    let mut media = Media::new(
        settings,
        Transports {
            xdp: None,
            kernel: TransportKind::IoUring,
            core: None,
            worker_cores: Vec::new(),
            link_rate_bps: DEFAULT_LINK_BPS,
        },
        reg,
    )
    .expect("media plane");
    let socks: Vec<UdpSocket> = (0..2)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            let _ = strahl_net::sys::set_buffer(&s, false, 8 << 20);
            s
        })
        .collect();
    let addrs: Vec<_> = socks.iter().map(|s| s.local_addr().unwrap()).collect();
    media
        .start(&native(1, addrs[0], 50_000, StreamOptions::CHECKABLE))
        .unwrap();
    media.start(&native(2, addrs[1], 2_000, 0)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let client = {
        let (stop, received) = (stop.clone(), received.clone());
        std::thread::spawn(move || clients(socks, &stop, &received))
    };
    std::thread::sleep(WARM_UP);
    let (allocs0, rx0, frames0) = (
        global_allocs(),
        received.load(Ordering::Relaxed),
        reg.get(Metric::VideoFramesSent),
    );
    std::thread::sleep(WINDOW);
    let (allocs1, rx1, frames1) = (
        global_allocs(),
        received.load(Ordering::Relaxed),
        reg.get(Metric::VideoFramesSent),
    );
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    media.stop(1);
    media.stop(2);
    assert!(media.poll_failures().is_empty());
    let (pkts, frames) = (rx1 - rx0, frames1 - frames0);
    // Two 60 fps streams for 1.5 s; the pattern's frames are ~80 datagrams each.
    assert!(
        frames >= 100 && pkts >= 3_000,
        "the window carried traffic: {frames} frames, {pkts} datagrams"
    );
    assert!(reg.get(Metric::VideoKnobDrops) > 0, "the knob dropped");
    assert_eq!(
        allocs1 - allocs0,
        0,
        "allocations while {frames} frames and {pkts} datagrams flowed"
    );
}
