//! Native `strahl/1` media end to end on loopback, in process: the media plane starts a native
//! session (no pings: the destination is the client's media address from the SessionStart), the
//! test receives with `strahl_packetize::native::Reassembler` and the host→client `RxOpener`,
//! and checks what `strahl-client stream` will: every frame arrives in order and opens; the
//! pattern source's checkable frames verify byte for byte with sequence = frame id; a FEC change
//! mid-stream changes the parity of the following frames and loses nothing; a keyframe request
//! is answered; with the drop knob discarding 3 % of packets FEC restores every frame; H.264
//! from the synthetic source decodes with the frame numbers in order; a GameStream session and
//! a native one share the tile and the video port. Sessions the data plane cannot carry are
//! refused with a reason.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use openh264::formats::YUVSource;
use strahl_capture::synthetic::read_frame_number_strided;
use strahl_dataplane::media::{DEFAULT_LINK_BPS, Media, MediaHost, MediaSettings, Transports};
use strahl_ipc::{KeyMaterial, Protocol, Secret, SessionStart, StreamOptions};
use strahl_metrics::{Metric, Registry};
use strahl_net::TransportKind;
use strahl_packetize::native::{
    Anomaly, OVERHEAD, Reassembler, ReassemblerConfig, verify_checkable,
};
use strahl_seal::aead::Backend;
use strahl_seal::native::{Direction, RxOpener};

mod common;
use common::free_port;

const SECRET: [u8; 32] = [0x6b; 32];
const SHARD: usize = 1408;
/// The reassembler's expanded ids start 2³² above the wire's frame 0.
const ID_BASE: u64 = 1 << 32;

fn registry() -> &'static Registry {
    Box::leak(Box::new(Registry::new()))
}

fn media(settings: MediaSettings, reg: &'static Registry, kernel: TransportKind) -> Media {
    Media::new(
        settings,
        Transports {
            xdp: None,
            kernel,
            core: None,
            worker_cores: Vec::new(),
            link_rate_bps: DEFAULT_LINK_BPS,
        },
        reg,
    )
    .expect("media plane starts")
}

/// A native session to `client` from a free host port: 640×360@60, `bitrate_kbps`, 1408-byte
/// shards, 20 % FEC; checkable frames when `checkable`.
fn native(id: u64, client: SocketAddr, bitrate_kbps: u32, checkable: bool) -> SessionStart {
    let mut s = common::session(id, client, None, (free_port(), 0));
    s.protocol = Protocol::Native;
    s.keys = KeyMaterial::Native {
        secret: Secret(SECRET),
    };
    s.video.bitrate_kbps = bitrate_kbps;
    s.video.packet_size = SHARD as u16;
    s.ports.video_dst = client.port();
    s.stream = StreamOptions {
        ping_payload: None,
        flags: if checkable {
            StreamOptions::CHECKABLE
        } else {
            0
        },
        min_fec_packets: 0,
    };
    s
}

/// The test's client: one socket, every datagram with its arrival time.
struct Client {
    sock: UdpSocket,
    t0: Instant,
    got: Vec<(Duration, Vec<u8>)>,
    buf: Vec<u8>,
}

impl Client {
    fn new() -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        // A few frames' worth: the test shares two cores with the encoder and the tile, and a
        // receiver that is not scheduled for a while must not lose what loopback delivered.
        let _ = strahl_net::sys::set_buffer(&sock, false, 8 << 20);
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        Self {
            sock,
            t0: Instant::now(),
            got: Vec::new(),
            buf: vec![0u8; 65_536],
        }
    }

    fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    fn pump(&mut self, dur: Duration) {
        let end = Instant::now() + dur;
        while Instant::now() < end {
            if let Ok(n) = self.sock.recv(&mut self.buf) {
                self.got.push((self.t0.elapsed(), self.buf[..n].to_vec()));
            }
        }
    }
}

/// A delivered frame: id from 0, keyframe flag, bytes.
struct Got {
    id: u64,
    keyframe: bool,
    recovered: bool,
    data: Vec<u8>,
}

/// Every datagram through the reassembler at its arrival time; the frames delivered in order.
fn reassemble(got: &[(Duration, Vec<u8>)]) -> (Vec<Got>, Reassembler) {
    let mut rx = Reassembler::new(
        ReassemblerConfig::default(),
        RxOpener::new(&SECRET, Direction::HostToClient, Backend::DEFAULT),
    )
    .unwrap();
    let mut out = Vec::new();
    for (at, d) in got {
        let mut d = d.clone();
        match rx.push(&mut d, *at) {
            // Parity of a frame already delivered: expected once the data shards completed it.
            Ok(_) | Err(Anomaly::Late) => {}
            Err(e) => panic!("datagram at {at:?}: {e:?}"),
        }
        while let Some(f) = rx.poll(*at) {
            out.push(Got {
                id: f.id - ID_BASE,
                keyframe: f.keyframe,
                recovered: f.recovered,
                data: f.data.to_vec(),
            });
        }
    }
    (out, rx)
}

/// Parity counts of the frames, read from datagram lengths alone (no loss, one frame size that
/// is not a multiple of the shard): every datagram is S + 44 bytes but each frame's last data
/// shard, so between two short datagrams lie the earlier frame's m parity shards and the next
/// frame's k − 1 full data shards.
fn parity_counts(got: &[(Duration, Vec<u8>)], k: usize) -> Vec<usize> {
    let short: Vec<usize> = got
        .iter()
        .enumerate()
        .filter(|(_, (_, d))| d.len() != SHARD + OVERHEAD)
        .map(|(i, _)| i)
        .collect();
    short
        .windows(2)
        .map(|w| w[1] - w[0] - 1 - (k - 1))
        .collect()
}

#[test]
fn checkable_frames_arrive_verified_and_a_fec_change_and_a_keyframe_request_lose_nothing() {
    let _streaming = common::stream_lock();
    let reg = registry();
    let mut media = media(
        common::settings(0.0, Duration::from_secs(5)),
        reg,
        TransportKind::SendMmsg,
    );
    let mut client = Client::new();
    // 50 Mbit/s at 60 fps: 104 166 B a frame = 74 shards (the last one short), 15 parity at
    // 20 %, 37 at 50 %.
    let s = native(21, client.addr(), 50_000, true);
    media.start(&s).unwrap();
    client.pump(Duration::from_millis(1000));
    let switch = client.got.len();
    media.update(21, None, Some(50), true);
    client.pump(Duration::from_millis(1000));
    let t = Instant::now();
    media.stop(21);
    assert!(t.elapsed() < Duration::from_secs(1), "stop is prompt");
    client.pump(Duration::from_millis(100));
    let after = client.got.len();
    client.pump(Duration::from_millis(200));
    assert_eq!(client.got.len(), after, "nothing is sent after stop");
    assert!(media.poll_failures().is_empty());

    let (frames, rx) = reassemble(&client.got);
    assert!(
        frames.len() >= 100,
        "{} frames in 2 s at 60 fps",
        frames.len()
    );
    for (n, f) in frames.iter().enumerate() {
        assert_eq!(f.id, n as u64, "frames in order, none missing");
        assert_eq!(f.data.len(), 104_166);
        assert_eq!(verify_checkable(&f.data), Ok(f.id), "frame {n} verifies");
        assert!(!f.recovered, "loopback loses nothing: no FEC needed");
    }
    let st = rx.stats();
    assert_eq!(
        (st.frames_skipped, st.frames_abandoned_superseded),
        (0, 0),
        "no frame lost"
    );
    // Keyframes: the first, and one answering the request.
    let keys: Vec<u64> = frames.iter().filter(|f| f.keyframe).map(|f| f.id).collect();
    assert_eq!(keys.first(), Some(&0));
    assert!(keys.len() >= 2, "the request made a keyframe: {keys:?}");
    // Parity: 15 per frame until the change, 37 after it, never anything else.
    let m = parity_counts(&client.got, 74);
    let first_new = m
        .iter()
        .position(|&x| x == 37)
        .expect("the FEC change applied");
    assert!(m[..first_new].iter().all(|&x| x == 15), "{m:?}");
    assert!(m[first_new..].iter().all(|&x| x == 37), "{m:?}");
    assert!(first_new > 0 && switch > 0);
    assert_eq!(reg.get(Metric::VideoFecPercent), 50);
    eprintln!(
        "native: {} frames verified, {} datagrams, keyframes {keys:?}, parity 15 → 37 at frame {}",
        frames.len(),
        client.got.len(),
        first_new + 1
    );
}

#[test]
fn fec_restores_every_frame_the_drop_knob_cuts() {
    let _streaming = common::stream_lock();
    let reg = registry();
    let mut media = media(
        common::settings(0.03, Duration::from_secs(5)),
        reg,
        TransportKind::IoUring,
    );
    let mut client = Client::new();
    media
        .start(&native(22, client.addr(), 30_000, true))
        .unwrap();
    client.pump(Duration::from_millis(1500));
    media.stop(22);
    client.pump(Duration::from_millis(100));
    let (frames, rx) = reassemble(&client.got);
    assert!(frames.len() >= 60, "{} frames", frames.len());
    for (n, f) in frames.iter().enumerate() {
        assert_eq!(f.id, n as u64, "none missing: {:?}", rx.stats());
        assert_eq!(verify_checkable(&f.data), Ok(f.id));
    }
    assert!(reg.get(Metric::VideoKnobDrops) > 0, "the knob dropped");
    assert!(
        rx.stats().frames_recovered > 0,
        "FEC rebuilt frames: {:?}",
        rx.stats()
    );
    assert_eq!(rx.stats().frames_skipped, 0);
}

#[test]
fn h264_from_the_synthetic_source_decodes_in_order() {
    let _streaming = common::stream_lock();
    let reg = registry();
    let mut media = media(
        common::settings(0.0, Duration::from_secs(5)),
        reg,
        TransportKind::SendMmsg,
    );
    let mut client = Client::new();
    media
        .start(&native(23, client.addr(), 3_000, false))
        .unwrap();
    client.pump(Duration::from_millis(1500));
    media.stop(23);
    client.pump(Duration::from_millis(100));
    let (frames, _) = reassemble(&client.got);
    assert!(frames.len() >= 45, "{} frames", frames.len());
    assert!(frames[0].keyframe, "the first frame is an IDR");
    assert_eq!(frames[0].data[..5], [0, 0, 0, 1, 0x67], "SPS first");
    let mut dec = openh264::decoder::Decoder::new().unwrap();
    let mut numbers = Vec::new();
    for (n, f) in frames.iter().enumerate() {
        assert_eq!(f.id, n as u64);
        let pic = dec.decode(&f.data).expect("decodes").expect("a picture");
        numbers
            .push(read_frame_number_strided(pic.y(), pic.strides().0, 640, 360).expect("readable"));
    }
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "frame numbers without gaps: {numbers:?}"
    );
}

#[test]
fn native_sessions_the_data_plane_cannot_carry_are_refused_with_a_reason() {
    let _streaming = common::stream_lock();
    let mut media = media(
        common::settings(0.0, Duration::from_secs(1)),
        registry(),
        TransportKind::SendMmsg,
    );
    let client: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let why = |media: &mut Media, s: &SessionStart| media.start(s).unwrap_err().to_string();
    // Shards a 1500-byte MTU cannot carry.
    let mut s = native(31, client, 3_000, true);
    s.video.packet_size = 8908;
    assert!(
        why(&mut media, &s).contains("over the 1472 B"),
        "{}",
        why(&mut media, &s)
    );
    // No client media port.
    let mut s = native(32, client, 3_000, true);
    s.ports.video_dst = 0;
    assert!(why(&mut media, &s).contains("client media port"));
    // Checkable frames larger than one frame carries (32768 shards of 1408 B).
    let mut s = native(33, client, 3_000, true);
    s.video.bitrate_kbps = u32::MAX;
    s.video.fps = 1;
    assert!(why(&mut media, &s).contains("exceed the"));
    // GameStream keys on a native session.
    let mut s = native(34, client, 3_000, true);
    s.keys = KeyMaterial::GameStream {
        rikey: Secret([0; 16]),
        rikeyid: 0,
    };
    assert!(why(&mut media, &s).contains("another protocol's keys"));
}

/// A GameStream session (pinging its own client) and a native one stream through the one tile
/// at once, each to its own client, and stopping one leaves the other streaming.
#[test]
fn a_gamestream_and_a_native_session_share_the_tile() {
    let _streaming = common::stream_lock();
    let reg = registry();
    let mut media = media(
        common::settings(0.0, Duration::from_secs(5)),
        reg,
        TransportKind::SendMmsg,
    );
    let payload = *b"GSNATIVE01234567";
    let gs_video = UdpSocket::bind("127.0.0.1:0").unwrap();
    gs_video.set_nonblocking(true).unwrap();
    let gs_audio = UdpSocket::bind("127.0.0.1:0").unwrap();
    gs_audio.set_nonblocking(true).unwrap();
    let (vport, aport) = (free_port(), free_port());
    let gs = common::session(
        41,
        gs_video.local_addr().unwrap(),
        Some(payload),
        (vport, aport),
    );
    media.start(&gs).unwrap();
    let mut client = Client::new();
    let mut s = native(42, client.addr(), 20_000, true);
    // The native session sends from the GameStream video port: the port is shared.
    s.ports.video_src = vport;
    media.start(&s).unwrap();
    let mut gs_pkts = 0usize;
    let mut buf = [0u8; 2048];
    let mut ping = payload.to_vec();
    ping.extend_from_slice(&1u32.to_be_bytes());
    let end = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < end {
        let _ = gs_video.send_to(&ping, ("127.0.0.1", vport));
        let _ = gs_audio.send_to(&ping, ("127.0.0.1", aport));
        client.pump(Duration::from_millis(20));
        while gs_video.recv(&mut buf).is_ok() {
            gs_pkts += 1;
        }
        while gs_audio.recv(&mut buf).is_ok() {}
    }
    media.stop(41);
    let before = client.got.len();
    client.pump(Duration::from_millis(500));
    assert!(
        client.got.len() > before + 100,
        "the native session streams on after the GameStream one stopped"
    );
    media.stop(42);
    assert!(media.poll_failures().is_empty());
    let (frames, _) = reassemble(&client.got);
    assert!(frames.len() >= 80, "{} native frames", frames.len());
    for (n, f) in frames.iter().enumerate() {
        assert_eq!(f.id, n as u64);
        assert_eq!(verify_checkable(&f.data), Ok(f.id));
    }
    assert!(gs_pkts >= 60, "{gs_pkts} GameStream video datagrams");
}
