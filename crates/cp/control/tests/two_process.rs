//! Two-process integration tests: the real `strahl-dataplane` and `strahl-control` binaries (and
//! fake peers) over a real SOCK_SEQPACKET socket in a scratch directory. Every wait is bounded.

mod support;

use std::time::Duration;

use strahl_control::ipc::Client;
use strahl_ipc::socket::{MsgError, SeqPacketListener};
use strahl_ipc::*;
use support::*;

/// Clean-exit bound after SIGTERM. Both processes wake at least every 0.5 s; 5 s leaves room
/// for a loaded machine.
const EXIT_BOUND: Duration = Duration::from_secs(5);

fn session_start(id: u64) -> Message {
    Message::SessionStart(Box::new(SessionStart {
        id,
        protocol: Protocol::GameStream,
        peer: "127.0.0.1:50000".parse().unwrap(),
        video: VideoParams {
            width: 1920,
            height: 1080,
            fps: 60,
            bitrate_kbps: 20_000,
            packet_size: 1024,
            fec_percent: 20,
            codec: Codec::H264,
        },
        audio: AudioParams {
            channels: 2,
            sample_rate_hz: 48_000,
            packet_duration_ms: 5,
            bitrate_kbps: 96,
        },
        keys: KeyMaterial::GameStream {
            rikey: Secret([7; 16]),
            rikeyid: 3,
        },
        ports: Ports {
            video_src: 47998,
            audio_src: 48000,
            video_dst: 50000,
            audio_dst: 50002,
        },
        stream: StreamOptions::default(),
    }))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Receives with the client until `pred` matches (bounded), returning the match.
async fn recv_until(c: &mut Client, what: &str, pred: impl Fn(&Message) -> bool) -> Message {
    let fut = async {
        loop {
            let m = c.recv().await.expect("recv").message;
            if pred(&m) {
                return m;
            }
        }
    };
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("no {what} within {STEP:?}"))
}

#[test]
fn control_and_dataplane_talk_and_sigterm_stops_both_cleanly() {
    let dir = Scratch::new("talk");
    let sock = dir.socket();
    let s = sock.to_str().unwrap();
    let mut dp = start_dataplane(&sock);
    let mut cp = Proc::spawn(
        "control",
        &control_bin(),
        &dir.serve_args(&["--socket", s, "--stats-interval-ms", "200"]),
    );

    cp.wait_for(&format!(
        "connected to dataplane v{MAJOR}.{MINOR} (pid {}",
        dp.pid()
    ));
    dp.wait_for(&format!(
        "control plane connected: v{MAJOR}.{MINOR} (pid {}",
        cp.pid()
    ));
    cp.wait_for("data plane transport");
    cp.wait_for("first stats snapshot from the data plane");
    // Periodic polling: the data plane answers several requests.
    std::thread::sleep(Duration::from_millis(700));

    cp.signal("TERM");
    let (st, took) = cp.wait_exit(EXIT_BOUND);
    assert_eq!(st.code(), Some(0), "control exit; log:\n{}", cp.log());
    eprintln!("control exited {took:?} after SIGTERM");
    assert!(cp.log().contains("the data plane keeps running"));
    dp.wait_for("control plane disconnected");

    // The data plane survived the control plane and serves the next one: a full session round
    // trip with the control plane's own IPC client.
    rt().block_on(async {
        let mut c = Client::connect(&sock)
            .await
            .expect("second control connection");
        assert_eq!(c.peer.pid, dp.pid());
        c.send(&session_start(42)).await.unwrap();
        recv_until(&mut c, "SessionStarted", |m| {
            matches!(m, Message::Event(Event::SessionStarted { id: 42 }))
        })
        .await;
        let upd = SessionUpdate {
            id: 42,
            bitrate_kbps: Some(10_000),
            fec_percent: Some(30),
            request_keyframe: true,
        };
        c.send(&Message::SessionUpdate(upd)).await.unwrap();
        recv_until(&mut c, "SessionUpdated", |m| {
            matches!(m, Message::Event(Event::SessionUpdated { id: 42 }))
        })
        .await;
        c.send(&Message::StatsRequest(StatsRequest { request_id: 77 }))
            .await
            .unwrap();
        let snap = recv_until(&mut c, "StatsSnapshot", |m| {
            matches!(m, Message::StatsSnapshot(_))
        })
        .await;
        let Message::StatsSnapshot(snap) = snap else {
            unreachable!()
        };
        assert_eq!(snap.request_id, 77);
        let get = |k: &str| snap.counters.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        assert_eq!(get("strahl_sessions_active"), Some(1));
        assert_eq!(get("strahl_sessions_started_total"), Some(1));
        assert!(get("strahl_ipc_messages_received_total").unwrap() >= 5);
        c.send(&Message::SessionStop(SessionStop {
            id: 42,
            reason: StopReason::ClientQuit,
        }))
        .await
        .unwrap();
        let ended = recv_until(&mut c, "SessionEnded", |m| {
            matches!(m, Message::Event(Event::SessionEnded { .. }))
        })
        .await;
        assert_eq!(
            ended,
            Message::Event(Event::SessionEnded {
                id: 42,
                reason: StopReason::ClientQuit
            })
        );
        // A session left running when the control plane disconnects is stopped by the data plane.
        c.send(&session_start(43)).await.unwrap();
        recv_until(&mut c, "SessionStarted", |m| {
            matches!(m, Message::Event(Event::SessionStarted { id: 43 }))
        })
        .await;
    });
    dp.wait_for("session 42 started");
    dp.wait_for("nothing will be sent");
    dp.wait_for("session 43 stopped (ControlDisconnected)");

    dp.signal("TERM");
    let (st, took) = dp.wait_exit(EXIT_BOUND);
    assert_eq!(st.code(), Some(0), "dataplane exit; log:\n{}", dp.log());
    eprintln!("dataplane exited {took:?} after SIGTERM");
    assert!(!sock.exists(), "socket file removed on exit");
}

#[test]
fn control_reconnects_when_the_dataplane_restarts_and_gives_up_when_bounded() {
    let dir = Scratch::new("reconnect");
    let sock = dir.socket();
    let s = sock.to_str().unwrap();
    // The control plane starts first and waits (back-off) for the data plane to appear.
    let mut cp = Proc::spawn(
        "control",
        &control_bin(),
        &dir.serve_args(&["--socket", s, "--stats-interval-ms", "200"]),
    );
    cp.wait_for("waiting for the data plane");
    let mut dp1 = start_dataplane(&sock);
    cp.wait_for(&format!("(pid {}", dp1.pid()));
    dp1.signal("TERM");
    assert_eq!(dp1.wait_exit(EXIT_BOUND).0.code(), Some(0));
    cp.wait_for("lost the data plane");
    let mut dp2 = start_dataplane(&sock);
    cp.wait_for(&format!(
        "connected to dataplane v{MAJOR}.{MINOR} (pid {}",
        dp2.pid()
    ));
    assert_eq!(cp.count("connected to dataplane"), 2);
    cp.signal("INT");
    assert_eq!(cp.wait_exit(EXIT_BOUND).0.code(), Some(0), "{}", cp.log());
    dp2.signal("INT");
    assert_eq!(dp2.wait_exit(EXIT_BOUND).0.code(), Some(0), "{}", dp2.log());

    // No data plane at all: the bounded connect gives up with exit code 1 and says why.
    let mut lonely = Proc::spawn(
        "control",
        &control_bin(),
        &dir.serve_args(&["--socket", s, "--connect-timeout-ms", "400"]),
    );
    let (st, _) = lonely.wait_exit(EXIT_BOUND);
    assert_eq!(st.code(), Some(1));
    assert!(
        lonely.log().contains("data plane not reachable at"),
        "{}",
        lonely.log()
    );
}

#[test]
fn dataplane_refuses_a_control_plane_of_the_next_major_version() {
    let dir = Scratch::new("major-dp");
    let sock = dir.socket();
    let mut dp = start_dataplane(&sock);
    let peer = raw_connect(&sock);
    let hello = Hello {
        major: MAJOR + 1,
        minor: 0,
        role: Role::Control,
        pid: 4242,
        build: "future".into(),
    };
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    let n = encode_versioned(&Message::Hello(hello), MAJOR + 1, 0, &mut buf).unwrap();
    send_raw(&peer, &buf[..n]);
    let d = recv(&peer).expect("a Refuse");
    let Message::Refuse(r) = d.message else {
        panic!("expected Refuse, got {:?}", d.message)
    };
    let want = format!(
        "control plane speaks v{}.0, this data plane speaks v{MAJOR}.{MINOR}",
        MAJOR + 1
    );
    assert!(r.reason.contains(&want), "{}", r.reason);
    assert_eq!((r.major, r.minor), (MAJOR, MINOR));
    assert!(
        matches!(recv(&peer), Err(MsgError::Closed)),
        "connection closed after the refusal"
    );
    dp.wait_for(&format!("refusing control plane (pid 4242, build \"future\"): protocol major version mismatch: {want}"));

    // Still healthy, and a newer *minor* of the same major is accepted.
    let ok = raw_connect(&sock);
    let newer = Hello {
        major: MAJOR,
        minor: MINOR + 5,
        role: Role::Control,
        pid: 1,
        build: "newer minor".into(),
    };
    let n = encode_versioned(&Message::Hello(newer), MAJOR, MINOR + 5, &mut buf).unwrap();
    send_raw(&ok, &buf[..n]);
    let d = recv(&ok).expect("HelloAck");
    assert!(
        matches!(d.message, Message::HelloAck(ref h) if h.major == MAJOR && h.pid == dp.pid()),
        "{:?}",
        d.message
    );
    dp.wait_for("minor difference tolerated");
    dp.signal("TERM");
    assert_eq!(dp.wait_exit(EXIT_BOUND).0.code(), Some(0));
}

#[test]
fn control_refuses_a_dataplane_of_the_next_major_version() {
    let dir = Scratch::new("major-cp");
    let sock = dir.socket();
    let listener = SeqPacketListener::bind(&sock).unwrap();
    let mut cp = Proc::spawn(
        "control",
        &control_bin(),
        &dir.serve_args(&["--socket", sock.to_str().unwrap()]),
    );
    // Fake data plane: accept (bounded), read Hello, answer with a HelloAck of major + 1.
    let deadline = std::time::Instant::now() + STEP;
    let conn = loop {
        match listener.accept() {
            Ok(c) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "control never connected:\n{}",
                    cp.log()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    conn.set_read_timeout(Some(STEP)).unwrap();
    let hello = recv(&conn).expect("Hello");
    assert!(
        matches!(hello.message, Message::Hello(ref h) if h.role == Role::Control && h.major == MAJOR)
    );
    let ack = Hello {
        major: MAJOR + 1,
        minor: 2,
        role: Role::Dataplane,
        pid: 999,
        build: "future dp".into(),
    };
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    let n = encode_versioned(&Message::HelloAck(ack), MAJOR + 1, 2, &mut buf).unwrap();
    conn.send(&buf[..n]).unwrap();
    let want = format!(
        "data plane speaks v{}.2, this control plane speaks v{MAJOR}.{MINOR}",
        MAJOR + 1
    );
    let d = recv(&conn).expect("control's Refuse");
    let Message::Refuse(r) = d.message else {
        panic!("expected Refuse, got {:?}", d.message)
    };
    assert!(r.reason.contains(&want), "{}", r.reason);
    let (st, _) = cp.wait_exit(EXIT_BOUND);
    assert_eq!(
        st.code(),
        Some(1),
        "a version mismatch is fatal, not retried:\n{}",
        cp.log()
    );
    assert!(
        cp.log()
            .contains(&format!("protocol major version mismatch: {want}")),
        "{}",
        cp.log()
    );
    assert_eq!(cp.count("connected to dataplane"), 0);
}

/// Deterministic byte noise (xorshift) so failures reproduce.
fn noise(seed: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed as u8
        })
        .collect()
}

#[test]
fn garbage_datagrams_do_not_crash_the_dataplane() {
    let dir = Scratch::new("garbage");
    let sock = dir.socket();
    let mut dp = start_dataplane(&sock);
    let mut seed = 0x5eed_u64;

    // Garbage instead of Hello: refused and closed.
    let p = raw_connect(&sock);
    send_raw(&p, &noise(&mut seed, 40));
    assert!(matches!(recv(&p).unwrap().message, Message::Refuse(_)));
    assert!(matches!(recv(&p), Err(MsgError::Closed)));

    // After a proper handshake every bad datagram gets an Error and the connection survives.
    let p = raw_connect(&sock);
    send(
        &p,
        &Message::Hello(Hello {
            major: MAJOR,
            minor: MINOR,
            role: Role::Control,
            pid: 1,
            build: "t".into(),
        }),
    );
    assert!(matches!(recv(&p).unwrap().message, Message::HelloAck(_)));
    assert!(matches!(
        recv(&p).unwrap().message,
        Message::Event(Event::TransportChosen { .. })
    ));
    // ...and what its encoder makes (IPC minor 2), after every handshake.
    assert!(matches!(
        recv(&p).unwrap().message,
        Message::Event(Event::VideoCaps(_))
    ));
    // ...and what it chose at start for capture, encode and audio, and why (IPC minor 4).
    for subsystem in [Subsystem::Capture, Subsystem::Encode, Subsystem::Audio] {
        let Message::Event(Event::Detected(d)) = recv(&p).unwrap().message else {
            panic!("Detected({subsystem:?}) expected")
        };
        assert_eq!(d.subsystem, subsystem);
        assert!(!d.choice.is_empty() && !d.reason.is_empty(), "{d:?}");
    }

    // A second control plane meanwhile is refused as busy.
    let extra = raw_connect(&sock);
    let Message::Refuse(r) = recv(&extra).unwrap().message else {
        panic!("busy refusal expected")
    };
    assert!(r.reason.contains("another control plane"), "{}", r.reason);

    let mut bad: Vec<Vec<u8>> = (0..40).map(|i| noise(&mut seed, 1 + i * 25)).collect();
    let mut valid = vec![0u8; 256];
    let n = encode(&session_start(1), &mut valid).unwrap();
    let mut truncated = valid[..n - 7].to_vec();
    let body = (truncated.len() - HEADER_LEN) as u32;
    truncated[10..14].copy_from_slice(&body.to_le_bytes());
    bad.push(truncated);
    let mut unknown = valid[..HEADER_LEN].to_vec();
    unknown[8..10].copy_from_slice(&0x4444u16.to_le_bytes());
    unknown[10..14].copy_from_slice(&0u32.to_le_bytes());
    bad.push(unknown);
    bad.push(vec![0xAB; MAX_MESSAGE_LEN + 4096]); // oversized: discarded by the kernel-truncating recv
    for (i, b) in bad.iter().enumerate() {
        send_raw(&p, b);
        let d = recv(&p).unwrap_or_else(|e| panic!("datagram {i}: {e}\n{}", dp.log()));
        let Message::Error(e) = d.message else {
            panic!("datagram {i}: expected Error, got {:?}", d.message)
        };
        if i == bad.len() - 2 {
            assert_eq!((e.code, e.in_reply_to), (ErrorCode::UnknownKind, 0x4444));
        }
    }
    send(&p, &Message::StatsRequest(StatsRequest { request_id: 5 }));
    let Message::StatsSnapshot(s) = recv(&p).unwrap().message else {
        panic!("snapshot expected")
    };
    let errors = s
        .counters
        .iter()
        .find(|(n, _)| n == "strahl_ipc_decode_errors_total")
        .unwrap()
        .1;
    assert!(errors >= bad.len() as u64, "{errors}");

    // A flood of garbage beyond the limit drops the connection, not the process.
    let mut closed = false;
    for _ in 0..200 {
        if p.send(&noise(&mut seed, 30)).is_err() {
            closed = true;
            break;
        }
        match recv(&p) {
            Ok(_) => {}
            // The data plane closed with our datagrams still queued: the kernel reports a reset.
            Err(MsgError::Closed) => {
                closed = true;
                break;
            }
            Err(MsgError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                closed = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(closed, "garbage flood should end the connection");
    dp.wait_for("undecodable datagrams in a row");

    // The data plane is alive and serves a new control plane; then stops cleanly.
    rt().block_on(async {
        let c = Client::connect(&sock)
            .await
            .expect("reconnect after garbage");
        assert_eq!(c.peer.pid, dp.pid());
    });
    dp.signal("TERM");
    assert_eq!(dp.wait_exit(EXIT_BOUND).0.code(), Some(0), "{}", dp.log());
}

#[test]
fn silent_and_extra_control_planes_are_dropped_or_refused() {
    let dir = Scratch::new("silent");
    let sock = dir.socket();
    let mut dp = start_dataplane(&sock);

    // A peer that never says Hello is dropped after the handshake timeout (5 s).
    let silent = raw_connect(&sock);
    let t = std::time::Instant::now();
    assert!(
        matches!(recv(&silent), Err(MsgError::Closed)),
        "silent peer must be dropped"
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(9),
        "dropped after {took:?}"
    );
    dp.wait_for("no Hello within");

    // While one control plane is connected, a second `strahl-control serve` is refused as busy,
    // retries with back-off, and gives up at its connect timeout.
    let first = raw_connect(&sock);
    send(
        &first,
        &Message::Hello(Hello {
            major: MAJOR,
            minor: MINOR,
            role: Role::Control,
            pid: 5,
            build: "first".into(),
        }),
    );
    assert!(matches!(
        recv(&first).unwrap().message,
        Message::HelloAck(_)
    ));
    let s = sock.to_str().unwrap();
    let mut second = Proc::spawn(
        "control",
        &control_bin(),
        &dir.serve_args(&["--socket", s, "--connect-timeout-ms", "700"]),
    );
    let (st, _) = second.wait_exit(EXIT_BOUND);
    assert_eq!(st.code(), Some(1), "{}", second.log());
    assert!(
        second
            .log()
            .contains("another control plane (pid 5) is connected"),
        "{}",
        second.log()
    );
    assert!(
        second.log().contains("data plane not reachable"),
        "{}",
        second.log()
    );
    dp.signal("TERM");
    assert_eq!(dp.wait_exit(EXIT_BOUND).0.code(), Some(0), "{}", dp.log());
}
