//! The assembled media path does not allocate in its steady state: three sessions stream at
//! once on loopback — synthetic source → openh264 → unit ring → tx tile (GameStream FEC +
//! SS_ENC_VIDEO sealing into io_uring frames, audio Opus + 4+2 FEC + AES-CBC) → the kernel — and
//! a counting global allocator sees no allocation on any thread (encode threads, the tile, the
//! client below) for a window of streaming after warm-up. The window must carry traffic, so the
//! test cannot pass by sending nothing. One test per binary: no other test allocates meanwhile.
//! openh264's and libopus's own C `malloc`s are invisible to the counter; both allocate at
//! initialisation only (their crates' own no-allocation tests).

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strahl_dataplane::media::{DEFAULT_LINK_BPS, Media, MediaHost, Transports};
use strahl_ipc::{SessionStart, StreamOptions};
use strahl_metrics::{Metric, Registry};
use strahl_net::TransportKind;
use strahl_testkit::{CountingAlloc, global_allocs};

mod common;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const SESSIONS: usize = 3;
const WARM_UP: Duration = Duration::from_millis(1500);
const WINDOW: Duration = Duration::from_millis(1500);

fn payload(i: usize) -> [u8; 16] {
    let mut p = *b"ALLOCTEST0000000";
    p[15] = b'0' + i as u8;
    p
}

/// Session `i`: 320×240, SS_ENC_VIDEO + encrypted audio, 2·(i+1) Mbit/s, its own payload.
fn session(id: u64, vport: u16, aport: u16, i: usize) -> SessionStart {
    let mut s = common::session(
        id,
        "127.0.0.1:40000".parse().unwrap(),
        Some(payload(i)),
        (vport, aport),
    );
    s.video.width = 320;
    s.video.height = 240;
    s.video.bitrate_kbps = 2_000 * (i as u32 + 1);
    s.video.packet_size = 1392 - 32;
    s.stream.flags = StreamOptions::ENCRYPT_VIDEO | StreamOptions::ENCRYPT_AUDIO;
    s
}

/// Every session's client on one thread: pings every 100 ms and counts datagrams, with
/// buffers made before the loop (it must not allocate either).
fn clients(ports: (u16, u16), stop: &AtomicBool, received: &AtomicU64) {
    let mut socks = Vec::with_capacity(SESSIONS * 2);
    for _ in 0..SESSIONS * 2 {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = strahl_net::sys::set_buffer(&s, false, 4 << 20);
        socks.push(s);
    }
    let mut buf = [0u8; 2048];
    let mut ping = [0u8; 20];
    let (video, audio) = (
        SocketAddr::from(([127, 0, 0, 1], ports.0)),
        SocketAddr::from(([127, 0, 0, 1], ports.1)),
    );
    let mut last = Instant::now() - Duration::from_secs(1);
    let mut counter = 0u32;
    let end = Instant::now() + Duration::from_secs(30);
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        if last.elapsed() >= Duration::from_millis(100) {
            counter += 1;
            for i in 0..SESSIONS {
                ping[..16].copy_from_slice(&payload(i));
                ping[16..].copy_from_slice(&counter.to_be_bytes());
                let _ = socks[2 * i].send_to(&ping, video);
                let _ = socks[2 * i + 1].send_to(&ping, audio);
            }
            last = Instant::now();
        }
        for s in &socks {
            while s.recv(&mut buf).is_ok() {
                received.fetch_add(1, Ordering::Relaxed);
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

#[test]
fn the_assembled_media_path_does_not_allocate_with_three_sessions() {
    // The counter works (else the assertion below would pass vacuously).
    let before = global_allocs();
    drop(std::hint::black_box(vec![1u8; 64]));
    assert!(global_allocs() > before);

    let reg: &'static Registry = Box::leak(Box::new(Registry::new()));
    let (vport, aport) = (common::free_port(), common::free_port());
    let settings = common::settings(0.0, Duration::from_secs(5));
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
    for i in 0..SESSIONS {
        media
            .start(&session(i as u64 + 1, vport, aport, i))
            .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let client = {
        let (stop, received) = (stop.clone(), received.clone());
        std::thread::spawn(move || clients((vport, aport), &stop, &received))
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
    for i in 0..SESSIONS {
        media.stop(i as u64 + 1);
    }
    assert!(media.poll_failures().is_empty());
    let (pkts, frames) = (rx1 - rx0, frames1 - frames0);
    // Three 60 fps streams for 1.5 s: well over 100 frames, and each frame is several packets.
    assert!(
        frames >= 100 && pkts >= 500,
        "the window carried traffic: {frames} frames, {pkts} datagrams"
    );
    assert_eq!(
        allocs1 - allocs0,
        0,
        "allocations while {frames} frames and {pkts} datagrams flowed"
    );
}
