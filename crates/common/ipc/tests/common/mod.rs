//! One sample of every message kind, shared by the corpus and round-trip tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use strahl_ipc::*;

pub fn session_start() -> SessionStart {
    SessionStart {
        id: 1,
        protocol: Protocol::GameStream,
        peer: "192.168.1.50:50000".parse::<SocketAddr>().unwrap(),
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
            rikey: Secret([0x11; 16]),
            rikeyid: 7,
        },
        ports: Ports {
            video_src: 47998,
            audio_src: 48000,
            video_dst: 50000,
            audio_dst: 50002,
        },
        stream: StreamOptions {
            ping_payload: Some(*b"0123456789ABCDEF"),
            flags: StreamOptions::ENCRYPT_AUDIO | StreamOptions::FEC_STATUS,
            min_fec_packets: 2,
        },
    }
}

/// (file-name stem, message) for every kind.
pub fn samples() -> Vec<(&'static str, Message)> {
    let hello = Hello {
        major: MAJOR,
        minor: MINOR,
        role: Role::Control,
        pid: 1234,
        build: "strahl 0.1.0".into(),
    };
    let mut native = session_start();
    native.id = 2;
    native.protocol = Protocol::Native;
    native.peer = "[fe80::1%3]:47901".parse().unwrap();
    native.keys = KeyMaterial::Native {
        secret: Secret([0x22; 32]),
    };
    vec![
        ("hello", Message::Hello(hello.clone())),
        (
            "hello_ack",
            Message::HelloAck(Hello {
                role: Role::Dataplane,
                ..hello
            }),
        ),
        (
            "refuse",
            Message::Refuse(Refuse {
                major: MAJOR,
                minor: MINOR,
                reason: "major mismatch".into(),
            }),
        ),
        (
            "session_start_gamestream",
            Message::SessionStart(Box::new(session_start())),
        ),
        (
            "session_start_native",
            Message::SessionStart(Box::new(native)),
        ),
        (
            "session_update",
            Message::SessionUpdate(SessionUpdate {
                id: 1,
                bitrate_kbps: Some(15_000),
                fec_percent: None,
                request_keyframe: true,
            }),
        ),
        (
            "session_reconfigure",
            Message::SessionReconfigure(SessionReconfigure {
                id: 2,
                epoch: 1,
                width: 1920,
                height: 1080,
                fps: 60,
                bitrate_kbps: 100_000,
                fec_percent: 35,
                shard_len: 1428,
            }),
        ),
        (
            "session_pace",
            Message::SessionPace(SessionPace {
                id: 2,
                rate_kbps: 2_400_000,
            }),
        ),
        (
            "session_stop",
            Message::SessionStop(SessionStop {
                id: 1,
                reason: StopReason::ClientQuit,
            }),
        ),
        (
            "stats_request",
            Message::StatsRequest(StatsRequest { request_id: 3 }),
        ),
        (
            "stats_snapshot",
            Message::StatsSnapshot(StatsSnapshot {
                request_id: 3,
                uptime_ms: 12_345,
                counters: vec![
                    ("strahl_ipc_messages_received_total".into(), 10),
                    ("strahl_sessions_active".into(), 1),
                ],
            }),
        ),
        ("shutdown", Message::Shutdown),
        (
            "event_transport",
            Message::Event(Event::TransportChosen {
                id: 0,
                transport: Transport::Sendmmsg,
                detail: "self-test".into(),
            }),
        ),
        (
            "event_ended",
            Message::Event(Event::SessionEnded {
                id: 1,
                reason: StopReason::ControlDisconnected,
            }),
        ),
        (
            "event_video_caps",
            Message::Event(Event::VideoCaps(VideoCaps {
                encoder: "passthrough: hdr10.hevc".into(),
                formats: vec![VideoFormat {
                    codec: Codec::Hevc,
                    profile: 2,
                    bit_depth: 10,
                    yuv444: false,
                }],
                hdr: Some(HdrMetadata {
                    primaries: [(34000, 16000), (13250, 34500), (7500, 3000)],
                    white_point: (15635, 16450),
                    max_luminance: 1000,
                    min_luminance: 1,
                    max_cll: 1000,
                    max_fall: 400,
                }),
            })),
        ),
        (
            "event_detected",
            Message::Event(Event::Detected(Detected {
                subsystem: Subsystem::Encode,
                choice: "openh264".into(),
                reason: "libnvidia-encode.so.1 not found".into(),
            })),
        ),
        (
            "event_reconfigured",
            Message::Event(Event::Reconfigured {
                id: 2,
                epoch: 1,
                first_frame: 241,
            }),
        ),
        (
            "error",
            Message::Error(ErrorMsg {
                code: ErrorCode::UnknownKind,
                in_reply_to: 999,
                detail: "unknown kind 999".into(),
            }),
        ),
    ]
}

pub fn encode_vec(m: &Message) -> Vec<u8> {
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    let n = encode(m, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// Deliberately broken datagrams: (stem, bytes). None of them may decode.
pub fn broken() -> Vec<(&'static str, Vec<u8>)> {
    let stop = encode_vec(&Message::SessionStop(SessionStop {
        id: 1,
        reason: StopReason::ClientQuit,
    }));
    let start = encode_vec(&Message::SessionStart(Box::new(session_start())));
    let mut bad_magic = stop.clone();
    bad_magic[0] = b'X';
    let mut bad_len = stop.clone();
    bad_len[10] = 0xFF;
    let mut truncated = start.clone();
    truncated.truncate(start.len() - 5);
    let body = (truncated.len() - HEADER_LEN) as u32;
    truncated[10..14].copy_from_slice(&body.to_le_bytes());
    let mut unknown_kind = stop.clone();
    unknown_kind[8..10].copy_from_slice(&0x7777u16.to_le_bytes());
    let mut bad_protocol = start.clone();
    bad_protocol[HEADER_LEN + 8] = 9;
    let mut major2 = encode_vec(&Message::Shutdown);
    major2[4..6].copy_from_slice(&(MAJOR + 1).to_le_bytes());
    vec![
        ("broken_short", b"STRL\x01".to_vec()),
        ("broken_magic", bad_magic),
        ("broken_length", bad_len),
        ("broken_truncated_start", truncated),
        ("broken_unknown_kind", unknown_kind),
        ("broken_protocol", bad_protocol),
        ("broken_major_plus_one", major2),
    ]
}
