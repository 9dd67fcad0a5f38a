//! Unit tests of [`super`] (the IPC server: handshakes, events, session messages, stats).

use super::*;
use strahl_ipc::{Kind, SessionStop, SessionUpdate, StatsRequest, encode, encode_versioned};

fn bytes(m: &Message) -> Vec<u8> {
    let mut b = vec![0u8; strahl_ipc::MAX_MESSAGE_LEN];
    let n = encode(m, &mut b).unwrap();
    b.truncate(n);
    b
}

fn hello(major: u16) -> Vec<u8> {
    let h = Hello {
        major,
        minor: 0,
        role: Role::Control,
        pid: 77,
        build: "test".into(),
    };
    let mut b = vec![0u8; 256];
    let n = encode_versioned(&Message::Hello(h), major, 0, &mut b).unwrap();
    b.truncate(n);
    b
}

fn start_msg(id: u64) -> Message {
    Message::SessionStart(Box::new(SessionStart {
        id,
        protocol: strahl_ipc::Protocol::Native,
        peer: "10.0.0.2:5000".parse().unwrap(),
        video: strahl_ipc::VideoParams {
            width: 1280,
            height: 720,
            fps: 60,
            bitrate_kbps: 10_000,
            packet_size: 1400,
            fec_percent: 10,
            codec: strahl_ipc::Codec::Hevc,
        },
        audio: strahl_ipc::AudioParams {
            channels: 2,
            sample_rate_hz: 48_000,
            packet_duration_ms: 5,
            bitrate_kbps: 96,
        },
        keys: strahl_ipc::KeyMaterial::Native {
            secret: strahl_ipc::Secret([1; 32]),
        },
        ports: strahl_ipc::Ports {
            video_src: 1,
            audio_src: 2,
            video_dst: 3,
            audio_dst: 4,
        },
        stream: strahl_ipc::StreamOptions::default(),
    }))
}

fn ready(reg: &Registry) -> Server<'_> {
    let mut s = Server::new(reg, 1, "dp");
    s.on_connect();
    let o = s.on_datagram(&hello(MAJOR), Duration::ZERO);
    assert!(
        matches!(o.replies[0], Message::HelloAck(ref h) if h.role == Role::Dataplane && h.pid == 1)
    );
    assert!(matches!(
        o.replies[1],
        Message::Event(Event::TransportChosen {
            transport: Transport::None,
            ..
        })
    ));
    assert!(!o.close);
    s
}

#[test]
fn transport_event_carries_the_self_test_line_within_the_text_limit() {
    let reg = Registry::new();
    let mut s = Server::new(&reg, 1, "dp");
    s.set_transport(Transport::IoUring, "ü".repeat(2000));
    s.on_connect();
    let o = s.on_datagram(&hello(MAJOR), Duration::ZERO);
    let Message::Event(Event::TransportChosen {
        id,
        transport,
        detail,
    }) = &o.replies[1]
    else {
        panic!("{:?}", o.replies)
    };
    assert_eq!((*id, *transport), (0, Transport::IoUring));
    assert!(detail.len() <= strahl_ipc::MAX_TEXT_LEN && detail.ends_with("..."));
    let mut buf = vec![0u8; strahl_ipc::MAX_MESSAGE_LEN];
    assert!(strahl_ipc::encode(&o.replies[1], &mut buf).is_ok());
    assert_eq!(o.replies.len(), 2, "no capabilities set: none sent");
}

#[test]
fn video_caps_follow_every_handshake() {
    let reg = Registry::new();
    let mut s = Server::new(&reg, 1, "dp");
    let caps = crate::media::video::ipc_caps(&strahl_encode::openh264_enc::capability());
    assert_eq!(caps.formats.len(), 1);
    assert_eq!(
        (caps.formats[0].codec, caps.formats[0].bit_depth),
        (strahl_ipc::Codec::H264, 8)
    );
    s.set_video_caps(caps.clone());
    // The start-up choices follow, cut to what the IPC carries (a long reason must not
    // drop the connection).
    let choice = |subsystem, reason: String| Detected {
        subsystem,
        choice: "x".repeat(300),
        reason,
    };
    s.set_detected(vec![
        choice(strahl_ipc::Subsystem::Capture, "synthetic".into()),
        choice(strahl_ipc::Subsystem::Encode, "ü".repeat(2000)),
    ]);
    let mut buf = vec![0u8; strahl_ipc::MAX_MESSAGE_LEN];
    for _ in 0..2 {
        s.on_connect();
        let o = s.on_datagram(&hello(MAJOR), Duration::ZERO);
        assert_eq!(o.replies[2], Message::Event(Event::VideoCaps(caps.clone())));
        assert_eq!(o.replies.len(), 5);
        for r in &o.replies[3..] {
            let Message::Event(Event::Detected(d)) = r else {
                panic!("{r:?}")
            };
            assert!(d.choice.len() <= strahl_ipc::MAX_NAME_LEN);
            assert!(strahl_ipc::encode(r, &mut buf).is_ok());
        }
        s.on_disconnect();
    }
}

/// Media whose audio choice changed once since start (what `Media` queues when `auto`
/// finds PipeWire as a session is built).
struct Rechose(Option<Detected>);

impl MediaHost for Rechose {
    fn start(&mut self, _: &SessionStart) -> Result<(), crate::media::MediaError> {
        Ok(())
    }
    fn update(&mut self, _: u64, _: Option<u32>, _: Option<u8>, _: bool) {}
    fn stop(&mut self, _: u64) {}
    fn poll_failures(&mut self) -> Vec<(u64, String, StopReason)> {
        Vec::new()
    }
    fn poll_events(&mut self) -> Vec<Event> {
        self.0.take().map(Event::Detected).into_iter().collect()
    }
}

#[test]
fn a_changed_choice_is_sent_and_replaces_its_entry_for_later_handshakes() {
    let reg = Registry::new();
    let mut s = Server::new(&reg, 1, "dp");
    let entry = |subsystem, choice: &str, reason: &str| Detected {
        subsystem,
        choice: choice.into(),
        reason: reason.into(),
    };
    use strahl_ipc::Subsystem::{Audio, Capture};
    s.set_detected(vec![
        entry(Capture, "synthetic", "the pattern"),
        entry(Audio, "tone", "auto: no PipeWire"),
    ]);
    let long = format!("auto: reachable; {}", "ü".repeat(2000));
    s.set_media(Box::new(Rechose(Some(entry(Audio, "pipewire", &long)))));
    s.on_connect();
    s.on_datagram(&hello(MAJOR), Duration::ZERO);
    let out = s.poll_media();
    let [Message::Event(Event::Detected(d))] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!((d.subsystem, d.choice.as_str()), (Audio, "pipewire"));
    assert!(d.reason.starts_with("auto: reachable; ü") && d.reason.ends_with("..."));
    let mut buf = vec![0u8; strahl_ipc::MAX_MESSAGE_LEN];
    assert!(strahl_ipc::encode(&out[0], &mut buf).is_ok());
    assert!(s.poll_media().is_empty(), "sent once");
    // A control plane connecting later hears the new choice in place of the old one.
    s.on_disconnect();
    s.on_connect();
    let o = s.on_datagram(&hello(MAJOR), Duration::ZERO);
    let sent: Vec<(strahl_ipc::Subsystem, String)> = o
        .replies
        .iter()
        .filter_map(|r| match r {
            Message::Event(Event::Detected(d)) => Some((d.subsystem, d.choice.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        sent,
        vec![
            (Capture, "synthetic".to_owned()),
            (Audio, "pipewire".to_owned())
        ]
    );
}

#[test]
fn session_round_trip_and_stats() {
    let reg = Registry::new();
    let mut s = ready(&reg);
    assert_eq!(reg.get(Metric::DataplaneConnected), 1);
    let o = s.on_datagram(&bytes(&start_msg(5)), Duration::ZERO);
    assert_eq!(
        o.replies,
        vec![Message::Event(Event::SessionStarted { id: 5 })]
    );
    let o = s.on_datagram(&bytes(&start_msg(5)), Duration::ZERO);
    assert!(matches!(
        o.replies[0],
        Message::Event(Event::SessionError { id: 5, .. })
    ));
    let upd = SessionUpdate {
        id: 5,
        bitrate_kbps: Some(3000),
        fec_percent: None,
        request_keyframe: true,
    };
    let o = s.on_datagram(&bytes(&Message::SessionUpdate(upd)), Duration::ZERO);
    assert_eq!(
        o.replies,
        vec![Message::Event(Event::SessionUpdated { id: 5 })]
    );
    assert_eq!(s.sessions()[&5].bitrate_kbps, 3000);
    assert_eq!(s.sessions()[&5].fec_percent, 10);
    assert_eq!(reg.get(Metric::SessionsActive), 1);
    let o = s.on_datagram(
        &bytes(&Message::StatsRequest(StatsRequest { request_id: 9 })),
        Duration::from_millis(1500),
    );
    let Message::StatsSnapshot(snap) = &o.replies[0] else {
        panic!("{o:?}")
    };
    assert_eq!((snap.request_id, snap.uptime_ms), (9, 1500));
    assert!(
        snap.counters
            .contains(&("strahl_sessions_active".to_owned(), 1))
    );
    let stop = SessionStop {
        id: 5,
        reason: StopReason::ClientQuit,
    };
    let o = s.on_datagram(&bytes(&Message::SessionStop(stop.clone())), Duration::ZERO);
    assert_eq!(
        o.replies,
        vec![Message::Event(Event::SessionEnded {
            id: 5,
            reason: StopReason::ClientQuit
        })]
    );
    let o = s.on_datagram(&bytes(&Message::SessionStop(stop)), Duration::ZERO);
    assert!(matches!(
        o.replies[0],
        Message::Event(Event::SessionError { id: 5, .. })
    ));
    assert_eq!(reg.get(Metric::SessionsActive), 0);
}

#[test]
fn major_mismatch_is_refused_naming_both_versions() {
    let reg = Registry::new();
    let mut s = Server::new(&reg, 1, "dp");
    s.on_connect();
    let o = s.on_datagram(&hello(MAJOR + 1), Duration::ZERO);
    assert!(o.close);
    let Message::Refuse(r) = &o.replies[0] else {
        panic!("{o:?}")
    };
    assert!(
        r.reason.contains(&format!("v{}.0", MAJOR + 1))
            && r.reason.contains(&format!("v{MAJOR}.{MINOR}")),
        "{}",
        r.reason
    );
    assert_eq!(reg.get(Metric::IpcHandshakesRefused), 1);
    assert!(!s.is_connected());
}

#[test]
fn first_message_must_be_hello() {
    let reg = Registry::new();
    let mut s = Server::new(&reg, 1, "dp");
    s.on_connect();
    let o = s.on_datagram(&bytes(&Message::Shutdown), Duration::ZERO);
    assert!(o.close && !o.shutdown);
    assert!(matches!(o.replies[0], Message::Refuse(_)));
    s.on_connect();
    let o = s.on_datagram(b"garbage", Duration::ZERO);
    assert!(o.close);
    assert!(matches!(o.replies[0], Message::Refuse(_)));
}

#[test]
fn garbage_and_unknown_kinds_get_errors_then_the_connection_is_dropped() {
    let reg = Registry::new();
    let mut s = ready(&reg);
    let mut unknown = bytes(&Message::Shutdown);
    unknown[8..10].copy_from_slice(&500u16.to_le_bytes());
    let o = s.on_datagram(&unknown, Duration::ZERO);
    assert!(matches!(
        o.replies[0],
        Message::Error(ErrorMsg {
            code: ErrorCode::UnknownKind,
            in_reply_to: 500,
            ..
        })
    ));
    assert!(!o.close && !o.shutdown);
    for i in 1..MAX_CONSECUTIVE_ERRORS {
        let o = s.on_datagram(b"\xff\xfe not ipc", Duration::ZERO);
        assert!(matches!(
            o.replies[0],
            Message::Error(ErrorMsg {
                code: ErrorCode::Malformed,
                ..
            })
        ));
        assert_eq!(o.close, i + 1 >= MAX_CONSECUTIVE_ERRORS, "at {i}");
    }
    assert_eq!(
        reg.get(Metric::IpcDecodeErrors),
        u64::from(MAX_CONSECUTIVE_ERRORS)
    );
}

#[test]
fn disconnect_and_shutdown_stop_sessions() {
    let reg = Registry::new();
    let mut s = ready(&reg);
    s.on_datagram(&bytes(&start_msg(1)), Duration::ZERO);
    s.on_datagram(&bytes(&start_msg(2)), Duration::ZERO);
    s.on_disconnect();
    assert!(s.sessions().is_empty());
    assert_eq!(reg.get(Metric::SessionsActive), 0);
    assert_eq!(reg.get(Metric::DataplaneConnected), 0);
    let mut s = ready(&reg);
    s.on_datagram(&bytes(&start_msg(3)), Duration::ZERO);
    let o = s.on_datagram(&bytes(&Message::Shutdown), Duration::ZERO);
    assert!(o.shutdown);
    assert_eq!(
        o.replies,
        vec![Message::Event(Event::SessionEnded {
            id: 3,
            reason: StopReason::ControlShutdown
        })]
    );
}

#[test]
fn control_only_kinds_are_unexpected() {
    let reg = Registry::new();
    let mut s = ready(&reg);
    let o = s.on_datagram(
        &bytes(&Message::Event(Event::SessionStarted { id: 1 })),
        Duration::ZERO,
    );
    assert!(
        matches!(o.replies[0], Message::Error(ErrorMsg { code: ErrorCode::UnexpectedMessage, in_reply_to, .. }) if in_reply_to == Kind::Event as u16)
    );
}

/// Media that records native epochs and pacing ceilings (refusing epoch 9).
struct Epochs(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl MediaHost for Epochs {
    fn start(&mut self, _: &SessionStart) -> Result<(), crate::media::MediaError> {
        Ok(())
    }
    fn update(&mut self, _: u64, _: Option<u32>, _: Option<u8>, _: bool) {}
    fn stop(&mut self, _: u64) {}
    fn poll_failures(&mut self) -> Vec<(u64, String, StopReason)> {
        Vec::new()
    }
    fn reconfigure(&mut self, r: &strahl_ipc::SessionReconfigure) -> Result<(), String> {
        if r.epoch == 9 {
            return Err("epoch 9: no".into());
        }
        let mut l = self.0.lock().unwrap();
        l.push(format!("epoch {} {} {}@{}", r.id, r.epoch, r.width, r.fps));
        Ok(())
    }
    fn pace(&mut self, id: u64, rate_kbps: u32) {
        self.0
            .lock()
            .unwrap()
            .push(format!("pace {id} {rate_kbps}"));
    }
}

/// Minor 5: a native epoch and a pacing ceiling reach the media plane for a running session
/// (answered `SessionUpdated`; the epoch's first frame comes later as an event), an epoch the
/// media plane refuses is an `Error` naming the kind (the session goes on), and both are a
/// `SessionError` for an id that is not running (as every session message is).
#[test]
fn native_epochs_and_pacing_reach_the_media_plane() {
    let reg = Registry::new();
    let mut s = ready(&reg);
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    s.set_media(Box::new(Epochs(log.clone())));
    s.on_datagram(&bytes(&start_msg(5)), Duration::ZERO);
    let mut r = strahl_ipc::SessionReconfigure {
        id: 5,
        epoch: 1,
        width: 640,
        height: 360,
        fps: 30,
        bitrate_kbps: 20_000,
        fec_percent: 30,
        shard_len: 1400,
    };
    let o = s.on_datagram(
        &bytes(&Message::SessionReconfigure(r.clone())),
        Duration::ZERO,
    );
    assert_eq!(o.replies, [Message::Event(Event::SessionUpdated { id: 5 })]);
    assert_eq!(
        (s.sessions()[&5].bitrate_kbps, s.sessions()[&5].fec_percent),
        (20_000, 30)
    );
    let pace = strahl_ipc::SessionPace {
        id: 5,
        rate_kbps: 240_000,
    };
    let o = s.on_datagram(&bytes(&Message::SessionPace(pace.clone())), Duration::ZERO);
    assert_eq!(o.replies, [Message::Event(Event::SessionUpdated { id: 5 })]);
    r.epoch = 9;
    let o = s.on_datagram(
        &bytes(&Message::SessionReconfigure(r.clone())),
        Duration::ZERO,
    );
    assert!(
        matches!(&o.replies[..], [Message::Error(e)]
            if e.in_reply_to == Kind::SessionReconfigure as u16 && e.detail.contains("epoch 9")),
        "{o:?}"
    );
    assert!(s.sessions().contains_key(&5), "the session goes on");
    r.id = 6;
    let o = s.on_datagram(&bytes(&Message::SessionReconfigure(r)), Duration::ZERO);
    assert!(matches!(
        &o.replies[..],
        [Message::Event(Event::SessionError { id: 6, .. })]
    ));
    let o = s.on_datagram(
        &bytes(&Message::SessionPace(strahl_ipc::SessionPace {
            id: 6,
            ..pace
        })),
        Duration::ZERO,
    );
    assert!(matches!(
        &o.replies[..],
        [Message::Event(Event::SessionError { id: 6, .. })]
    ));
    assert_eq!(*log.lock().unwrap(), ["epoch 5 1 640@30", "pace 5 240000"]);
}
