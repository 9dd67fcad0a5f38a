//! Native `strahl/1` epochs and pacing ceilings through the real media plane on loopback, in
//! process (the test receives with the `strahl/1` reassembler and the host→client opener):
//!
//! - a mid-stream epoch (IPC `SessionReconfigure`) that changes the mode's frame rate, the
//!   bitrate and the FEC % opens at one frame F, reported as `Event::Reconfigured`: every
//!   frame below F has the old size, every frame from F on the new one, F is a keyframe, the
//!   pattern's sequence runs on (= frame id) and no frame is lost;
//! - a pacing ceiling (IPC `SessionPace`) spreads each frame's datagrams over the window its
//!   rate needs (the data plane applies it to that session's pacer), pinned without a clock
//!   too;
//! - an epoch the data plane cannot make (or one for a GameStream session) is refused with why,
//!   and the session goes on.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use strahl_dataplane::media::native_stream::{native_pacer, pace_rate_bps};
use strahl_dataplane::media::{DEFAULT_LINK_BPS, Media, MediaHost, Transports};
use strahl_ipc::{Event, KeyMaterial, Protocol, Secret, SessionReconfigure, StreamOptions};
use strahl_metrics::Registry;
use strahl_net::TransportKind;
use strahl_pacer::{Backlog, Pacer};
use strahl_packetize::native::wire::{PREFIX_LEN, ShardHeader};
use strahl_packetize::native::{Anomaly, Reassembler, ReassemblerConfig, verify_checkable};
use strahl_seal::aead::Backend;
use strahl_seal::native::{Direction, RxOpener};

mod common;
use common::free_port;

const SECRET: [u8; 32] = [0x5e; 32];
const SHARD: u16 = 1408;
/// The reassembler's expanded ids start 2³² above the wire's frame 0.
const ID_BASE: u64 = 1 << 32;

fn media() -> Media {
    let reg: &'static Registry = Box::leak(Box::new(Registry::new()));
    Media::new(
        common::settings(0.0, Duration::from_secs(5)),
        Transports {
            xdp: None,
            kernel: TransportKind::SendMmsg,
            core: None,
            worker_cores: Vec::new(),
            link_rate_bps: DEFAULT_LINK_BPS,
        },
        reg,
    )
    .expect("media plane starts")
}

/// A checkable native session to `client`: 640×360@`fps`, `kbps`, 1408 B shards, 20 % FEC.
fn native(id: u64, client: SocketAddr, kbps: u32, fps: u16) -> strahl_ipc::SessionStart {
    let mut s = common::session(id, client, None, (free_port(), 0));
    s.protocol = Protocol::Native;
    s.keys = KeyMaterial::Native {
        secret: Secret(SECRET),
    };
    (s.video.width, s.video.height, s.video.fps) = (640, 360, fps);
    s.video.bitrate_kbps = kbps;
    s.video.packet_size = SHARD;
    s.ports.video_dst = client.port();
    s.stream = StreamOptions {
        ping_payload: None,
        flags: StreamOptions::CHECKABLE,
        min_fec_packets: 0,
    };
    s
}

/// Every datagram with its arrival time.
struct Client {
    sock: UdpSocket,
    t0: Instant,
    got: Vec<(Duration, Vec<u8>)>,
}

impl Client {
    fn new() -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let _ = strahl_net::sys::set_buffer(&sock, false, 8 << 20);
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        Self {
            sock,
            t0: Instant::now(),
            got: Vec::new(),
        }
    }

    fn pump(&mut self, dur: Duration) {
        let mut buf = vec![0u8; 65_536];
        let end = Instant::now() + dur;
        while Instant::now() < end {
            if let Ok(n) = self.sock.recv(&mut buf) {
                self.got.push((self.t0.elapsed(), buf[..n].to_vec()));
            }
        }
    }
}

/// A delivered frame, and when its first and last datagram arrived.
struct Got {
    id: u64,
    keyframe: bool,
    data: Vec<u8>,
    span: (Duration, Duration),
}

fn reassemble(got: &[(Duration, Vec<u8>)]) -> (Vec<Got>, Reassembler) {
    let mut rx = Reassembler::new(
        ReassemblerConfig::default(),
        RxOpener::new(&SECRET, Direction::HostToClient, Backend::DEFAULT),
    )
    .unwrap();
    let mut spans: std::collections::BTreeMap<u32, (Duration, Duration)> = Default::default();
    let mut out = Vec::new();
    for (at, d) in got {
        let mut d = d.clone();
        match rx.push(&mut d, *at) {
            Ok(_) | Err(Anomaly::Late) => {}
            Err(e) => panic!("datagram at {at:?}: {e:?}"),
        }
        // Opened in place: the header is plaintext now.
        let h = ShardHeader::decode(&d[PREFIX_LEN..]).unwrap();
        let e = spans.entry(h.frame_id).or_insert((*at, *at));
        e.1 = *at;
        while let Some(f) = rx.poll(*at) {
            let id = f.id - ID_BASE;
            out.push(Got {
                id,
                keyframe: f.keyframe,
                data: f.data.to_vec(),
                span: spans.get(&(id as u32)).copied().unwrap_or_default(),
            });
        }
    }
    // Spans end with the frame's last datagram (its parity), after its delivery.
    for f in &mut out {
        f.span = spans[&(f.id as u32)];
    }
    (out, rx)
}

/// Waits (pumping the client) for the media plane's `Reconfigured` event of session `id`.
fn wait_reconfigured(media: &mut Media, client: &mut Client, id: u64) -> (u32, u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        for e in media.poll_events() {
            if let Event::Reconfigured {
                id: i,
                epoch,
                first_frame,
            } = e
                && i == id
            {
                return (epoch, first_frame);
            }
        }
        assert!(Instant::now() < deadline, "no Reconfigured event");
        client.pump(Duration::from_millis(20));
    }
}

#[test]
fn an_epoch_changes_the_mode_at_one_frame_and_loses_nothing() {
    let _streaming = common::stream_lock();
    let mut media = media();
    let mut client = Client::new();
    let addr = client.sock.local_addr().unwrap();
    // 24 Mbit/s at 60 fps: 50 000 B frames; epoch 1 at 30 fps and 36 Mbit/s: 150 000 B.
    media.start(&native(31, addr, 24_000, 60)).unwrap();
    client.pump(Duration::from_millis(700));
    let asked = Instant::now();
    media
        .reconfigure(&SessionReconfigure {
            id: 31,
            epoch: 1,
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_kbps: 36_000,
            fec_percent: 50,
            shard_len: SHARD,
        })
        .unwrap();
    let (epoch, first) = wait_reconfigured(&mut media, &mut client, 31);
    let answered = asked.elapsed();
    client.pump(Duration::from_millis(700));
    media.stop(31);
    client.pump(Duration::from_millis(100));
    assert!(media.poll_failures().is_empty());

    let (frames, rx) = reassemble(&client.got);
    assert_eq!(epoch, 1);
    assert!(first >= 10, "the boundary is a real frame id: {first}");
    assert!(
        frames.len() as u64 >= first + 10,
        "{} frames, epoch from {first}",
        frames.len()
    );
    for (n, f) in frames.iter().enumerate() {
        assert_eq!(f.id, n as u64, "in order, none missing: {:?}", rx.stats());
        assert_eq!(verify_checkable(&f.data), Ok(f.id), "sequence = frame id");
        let want = if f.id < first { 50_000 } else { 150_000 };
        assert_eq!(f.data.len(), want, "frame {} (epoch from {first})", f.id);
    }
    assert!(
        frames[first as usize].keyframe,
        "the epoch opens on a keyframe"
    );
    let st = rx.stats();
    assert_eq!((st.frames_skipped, st.frames_abandoned_superseded), (0, 0));
    eprintln!(
        "epoch 1 from frame {first} ({answered:?} after the ask), {} frames",
        frames.len()
    );
}

#[test]
fn an_epoch_the_data_plane_cannot_make_is_refused_and_the_session_goes_on() {
    let _streaming = common::stream_lock();
    let mut media = media();
    let client = Client::new();
    let addr = client.sock.local_addr().unwrap();
    media.start(&native(32, addr, 8_000, 60)).unwrap();
    let mut r = SessionReconfigure {
        id: 32,
        epoch: 1,
        width: 640,
        height: 360,
        fps: 0,
        bitrate_kbps: 8_000,
        fec_percent: 20,
        shard_len: SHARD,
    };
    assert!(media.reconfigure(&r).unwrap_err().contains("zero"));
    r.fps = 60;
    r.shard_len = 9000;
    assert!(media.reconfigure(&r).unwrap_err().contains("datagram"));
    r.id = 99;
    assert!(media.reconfigure(&r).is_err(), "not a session");
    // A GameStream session has no epochs (its client would not follow a new mode).
    media
        .start(&common::session(34, addr, None, (free_port(), free_port())))
        .unwrap();
    r.id = 34;
    assert!(media.reconfigure(&r).unwrap_err().contains("no native"));
    media.stop(34);
    std::thread::sleep(Duration::from_millis(200));
    assert!(media.poll_failures().is_empty(), "the session goes on");
    assert!(
        !media
            .poll_events()
            .iter()
            .any(|e| matches!(e, Event::Reconfigured { .. }))
    );
    media.stop(32);
}

/// Frames of 104 166 B at 60 fps: 74 + 15 datagrams, ~131 kB on the wire. Capped at 125 Mbit/s
/// (about the floor the control plane allows: the frame in half its interval) each frame takes
/// ≥ 8 ms; at the link rate (10 Gbit/s) ~0.1 ms.
#[test]
fn a_pacing_ceiling_spreads_each_frame_over_its_window() {
    let _streaming = common::stream_lock();
    let mut media = media();
    let mut client = Client::new();
    let addr = client.sock.local_addr().unwrap();
    media.start(&native(33, addr, 50_000, 60)).unwrap();
    client.pump(Duration::from_millis(600));
    let before = client.got.len();
    media.pace(33, 125_000);
    client.pump(Duration::from_millis(900));
    media.pace(33, 0);
    media.stop(33);
    client.pump(Duration::from_millis(100));
    let (frames, _) = reassemble(&client.got);
    let at_link = client.got[before].0;
    let mut paced: Vec<Duration> = frames
        .iter()
        .filter(|f| f.span.0 > at_link + Duration::from_millis(100))
        .map(|f| f.span.1 - f.span.0)
        .collect();
    let mut unpaced: Vec<Duration> = frames
        .iter()
        .filter(|f| f.span.1 < at_link)
        .map(|f| f.span.1 - f.span.0)
        .collect();
    assert!(
        paced.len() >= 20 && unpaced.len() >= 10,
        "{} / {}",
        paced.len(),
        unpaced.len()
    );
    paced.sort();
    unpaced.sort();
    let (p50, u50) = (paced[paced.len() / 2], unpaced[unpaced.len() / 2]);
    eprintln!("frame spread p50: {u50:?} at the link rate, {p50:?} capped at 125 Mbit/s");
    // The pacer cannot send faster than its rate: 131 kB at 125 Mbit/s is 8.4 ms. A receiver
    // that was off its core reads a backlog at once, which only shortens what it measures, so
    // the bound is loose; the median frame is well above it.
    assert!(p50 >= Duration::from_millis(5), "{p50:?}");
    assert!(p50 > u50 * 4, "{p50:?} vs {u50:?}");
}

/// The same without a clock: the native pacer with the ceiling applied (as the tile applies
/// `SessionPace`) releases one frame's backlog over bits / rate; lifting the ceiling restores
/// the link rate.
#[test]
fn a_lowered_rate_stretches_a_frames_release_window_in_simulated_time() {
    let bytes = 131_000u64;
    let window = |rate_kbps: u32| {
        let mut pacer = Pacer::new(native_pacer(DEFAULT_LINK_BPS), 0);
        pacer.set_link_rate(1, pace_rate_bps(rate_kbps, DEFAULT_LINK_BPS));
        let t0 = 50_000_000;
        let mut left = Backlog { packets: 89, bytes };
        pacer.frame_queued(t0, left, 16_666_666);
        let mut now = t0;
        while let Some(r) = pacer.next_release(now, left) {
            now = now.max(r.at_ns);
            let n = u64::from(r.packets).min(left.packets);
            let b = left.bytes / left.packets * n;
            pacer.on_sent(now, r.packets, b);
            left.packets -= n;
            left.bytes -= b;
        }
        now - t0
    };
    let capped = window(125_000);
    let ideal = bytes * 8 * 1_000_000_000 / 125_000_000;
    // The last release starts its batch (two datagrams at this rate) before the window ends.
    assert!(
        capped >= ideal * 9 / 10 && capped <= ideal,
        "{capped} ns vs {ideal}"
    );
    assert!(window(0) < 200_000, "the link rate: {} ns", window(0));
}
