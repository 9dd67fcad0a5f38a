//! Fault test (issue 5, part 4): the control plane killed mid-stream — the data plane stops
//! emitting within a second.
//!
//! [`control_kill9_stops_the_data_plane_stream_within_a_second`]: a data plane with a session
//! started by a control plane in another process (this test binary re-executed as
//! [`fake_control_child`]) and a fake client that sends GameStream pings; SIGKILL the control
//! process → the data plane stops the session within 1 s, and no UDP reaches the client later
//! than 1 s after the kill (sniffed on the client's socket); a new control plane is accepted.
//!
//! Every wait is bounded; ports are free non-default ones on loopback; state is in a scratch dir.

mod faults_support;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strahl_ipc::socket::SeqPacket;
use strahl_ipc::{MAX_MESSAGE_LEN, Message};

use faults_support::*;

// ---------------------------------------------------------------------------------------------
// Control plane killed mid-stream: the data plane stops emitting within a second.

const ENV_SOCKET: &str = "STRAHL_FAULTS_CHILD_SOCKET";
const ENV_CLIENT: &str = "STRAHL_FAULTS_CHILD_CLIENT";
const ENV_VIDEO_SRC: &str = "STRAHL_FAULTS_CHILD_VIDEO_SRC";
const PING_PAYLOAD: [u8; 16] = *b"FAULTSPINGPAYLD1";

fn session_start(client: std::net::SocketAddr, video_src: u16) -> Message {
    Message::SessionStart(Box::new(strahl_ipc::SessionStart {
        id: 7,
        protocol: strahl_ipc::Protocol::GameStream,
        peer: client,
        video: strahl_ipc::VideoParams {
            width: 640,
            height: 360,
            fps: 60,
            bitrate_kbps: 5_000,
            packet_size: 1024,
            fec_percent: 20,
            codec: strahl_ipc::Codec::H264,
        },
        audio: strahl_ipc::AudioParams {
            channels: 2,
            sample_rate_hz: 48_000,
            packet_duration_ms: 5,
            bitrate_kbps: 96,
        },
        keys: strahl_ipc::KeyMaterial::GameStream {
            rikey: strahl_ipc::Secret([7; 16]),
            rikeyid: 1,
        },
        ports: strahl_ipc::Ports {
            video_src,
            audio_src: video_src + 1,
            video_dst: client.port(),
            audio_dst: client.port(),
        },
        stream: strahl_ipc::StreamOptions {
            ping_payload: Some(PING_PAYLOAD),
            flags: 0,
            min_fec_packets: 0,
        },
    }))
}

fn hello() -> Message {
    Message::Hello(strahl_ipc::Hello {
        major: strahl_ipc::MAJOR,
        minor: strahl_ipc::MINOR,
        role: strahl_ipc::Role::Control,
        pid: std::process::id(),
        build: "faults test control".into(),
    })
}

fn connect(socket: &Path) -> SeqPacket {
    let deadline = Instant::now() + STEP;
    loop {
        match SeqPacket::connect(socket) {
            Ok(s) => {
                s.set_read_timeout(Some(STEP)).unwrap();
                s.set_write_timeout(Some(STEP)).unwrap();
                return s;
            }
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "connect {}: {e}",
                    socket.display()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Receives until `pred` matches (bounded by the socket's read timeout per message).
fn recv_until(s: &SeqPacket, what: &str, pred: impl Fn(&Message) -> bool) -> Message {
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    for _ in 0..100 {
        let m = s
            .recv_message(&mut buf)
            .unwrap_or_else(|e| panic!("waiting for {what}: {e:?}"))
            .message;
        if pred(&m) {
            return m;
        }
    }
    panic!("no {what} in 100 messages");
}

/// The control plane in its own process (so it can be SIGKILLed): handshake, SessionStart,
/// wait for SessionStarted, say so, then idle until killed.
#[test]
#[ignore = "child process of control_kill9_stops_the_data_plane_stream_within_a_second"]
fn fake_control_child() {
    let Some(socket) = std::env::var_os(ENV_SOCKET).map(PathBuf::from) else {
        return;
    };
    let client: std::net::SocketAddr = std::env::var(ENV_CLIENT).unwrap().parse().unwrap();
    let video_src: u16 = std::env::var(ENV_VIDEO_SRC).unwrap().parse().unwrap();
    let s = connect(&socket);
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    s.send_message(&hello(), &mut buf).unwrap();
    recv_until(&s, "HelloAck", |m| matches!(m, Message::HelloAck(_)));
    s.send_message(&session_start(client, video_src), &mut buf)
        .unwrap();
    recv_until(&s, "SessionStarted", |m| {
        matches!(
            m,
            Message::Event(strahl_ipc::Event::SessionStarted { id: 7 })
        )
    });
    println!("session started");
    // Keep the connection (and the session) until killed; bounded.
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn control_kill9_stops_the_data_plane_stream_within_a_second() {
    let dir = Scratch::new("cpkill");
    let socket = dir.socket();
    let mut dp_cmd = Command::new(bin("strahl-dataplane"));
    dp_cmd
        .arg("--socket")
        .arg(&socket)
        .args(["--interface", "lo"])
        .env("RUST_LOG", "info")
        .env("XDG_RUNTIME_DIR", dir.runtime_dir());
    let dp = Proc::spawn("dataplane", dp_cmd);
    dp.wait_for_n("listening for the control plane", 1, STEP);

    // The fake client: receives whatever the data plane sends and pings its video port.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let client_addr = client.local_addr().unwrap();
    let video_src = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let arrivals = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sniffer = {
        let (arrivals, stop, client) =
            (arrivals.clone(), stop.clone(), client.try_clone().unwrap());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            let mut last_ping = Instant::now() - Duration::from_secs(1);
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                if last_ping.elapsed() >= Duration::from_millis(100) {
                    // GameStream ping: the payload from RTSP, then a sequence number.
                    let mut ping = PING_PAYLOAD.to_vec();
                    ping.extend_from_slice(&1u32.to_be_bytes());
                    let _ = client.send_to(&ping, ("127.0.0.1", video_src));
                    last_ping = Instant::now();
                }
                if client.recv_from(&mut buf).is_ok() {
                    arrivals.lock().unwrap().push(Instant::now());
                }
            }
        })
    };

    let mut child_cmd = Command::new(std::env::current_exe().unwrap());
    child_cmd
        .args([
            "fake_control_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_SOCKET, &socket)
        .env(ENV_CLIENT, client_addr.to_string())
        .env(ENV_VIDEO_SRC, video_src.to_string());
    let mut ctl = Proc::spawn("fake control", child_cmd);
    ctl.wait_for_n("session started", 1, STEP);
    // Let the stream run (when the data plane has a media pipeline) before the kill.
    std::thread::sleep(Duration::from_millis(1500));
    let before = arrivals.lock().unwrap().len();

    let t0 = Instant::now();
    signal(ctl.child.id(), "KILL");
    ctl.wait_exit(STEP);
    let (stopped_at, line) = dp.wait_for_n("control plane disconnected; stopping", 1, STEP);
    let stopped = stopped_at.saturating_duration_since(t0);
    assert!(line.contains("stopping 1 session"), "{line}");
    assert!(
        stopped <= STOP_BOUND,
        "data plane stopped the session after {stopped:?}"
    );
    // Sniff for 2 s more: nothing may arrive later than STOP_BOUND after the kill.
    std::thread::sleep(STOP_BOUND * 2 + Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sniffer.join().unwrap();
    let arrivals = arrivals.lock().unwrap();
    let after_kill: Vec<Duration> = arrivals
        .iter()
        .filter(|t| **t >= t0)
        .map(|t| t.duration_since(t0))
        .collect();
    let last = after_kill.last().copied();
    assert!(
        last.is_none_or(|l| l <= STOP_BOUND),
        "the data plane kept emitting {last:?} after the control plane died ({} packets after \
         the kill)",
        after_kill.len()
    );

    // The data plane waits for a new control plane and accepts it.
    let s = connect(&socket);
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    s.send_message(&hello(), &mut buf).unwrap();
    recv_until(&s, "HelloAck", |m| matches!(m, Message::HelloAck(_)));
    assert!(alive(dp.child.id()));
    eprintln!(
        "faults: control kill -9 mid-stream → data plane stopped the session after {stopped:?}; \
         {before} UDP packets reached the client before the kill, {} after it, last at {last:?} \
         (bound {STOP_BOUND:?}){}",
        after_kill.len(),
        if before == 0 {
            "; the data plane emitted no media in this build (no media pipeline yet), so the \
             emission bound held vacuously and the session stop is what was measured"
        } else {
            ""
        }
    );
}
