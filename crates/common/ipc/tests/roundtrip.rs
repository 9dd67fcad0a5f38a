//! Property tests: every message encodes and decodes back to itself; arbitrary and mutated bytes
//! never panic the decoder.
mod common;

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};

use proptest::prelude::*;
use strahl_ipc::*;

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..40).prop_map(move |cs| {
        let mut s = String::new();
        for c in cs {
            if s.len() + c.len_utf8() > max {
                break;
            }
            s.push(c);
        }
        s
    })
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::new(IpAddr::from(ip), p)),
        (any::<[u8; 16]>(), any::<u16>(), any::<u32>())
            .prop_map(|(ip, p, s)| SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), p, 0, s))),
    ]
}

fn hello() -> impl Strategy<Value = Hello> {
    (
        prop_oneof![Just(Role::Control), Just(Role::Dataplane)],
        any::<u32>(),
        text(MAX_NAME_LEN),
    )
        .prop_map(|(role, pid, build)| Hello {
            major: MAJOR,
            minor: MINOR,
            role,
            pid,
            build,
        })
}

fn session_start() -> impl Strategy<Value = SessionStart> {
    let video = (any::<(u16, u16, u16, u32, u16, u8)>(), 1u8..=3).prop_map(
        |((w, h, fps, br, ps, fec), c)| VideoParams {
            width: w,
            height: h,
            fps,
            bitrate_kbps: br,
            packet_size: ps,
            fec_percent: fec,
            codec: [Codec::H264, Codec::Hevc, Codec::Av1][usize::from(c - 1)],
        },
    );
    let audio = any::<(u8, u32, u8, u32)>().prop_map(|(ch, sr, d, b)| AudioParams {
        channels: ch,
        sample_rate_hz: sr,
        packet_duration_ms: d,
        bitrate_kbps: b,
    });
    let keys = prop_oneof![
        (any::<[u8; 16]>(), any::<u32>()).prop_map(|(k, id)| KeyMaterial::GameStream {
            rikey: Secret(k),
            rikeyid: id
        }),
        any::<[u8; 32]>().prop_map(|k| KeyMaterial::Native { secret: Secret(k) }),
    ];
    (
        any::<u64>(),
        any::<bool>(),
        addr(),
        video,
        audio,
        keys,
        any::<[u16; 4]>(),
        (
            proptest::option::of(any::<[u8; 16]>()),
            any::<u32>(),
            any::<u8>(),
        ),
    )
        .prop_map(|(id, gs, peer, video, audio, keys, p, o)| SessionStart {
            id,
            protocol: if gs {
                Protocol::GameStream
            } else {
                Protocol::Native
            },
            peer,
            video,
            audio,
            keys,
            ports: Ports {
                video_src: p[0],
                audio_src: p[1],
                video_dst: p[2],
                audio_dst: p[3],
            },
            stream: StreamOptions {
                ping_payload: o.0,
                flags: o.1,
                min_fec_packets: o.2,
            },
        })
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        any::<u64>().prop_map(|id| Event::SessionStarted { id }),
        any::<u64>().prop_map(|id| Event::SessionUpdated { id }),
        (any::<u64>(), any::<u8>()).prop_map(|(id, r)| Event::SessionEnded {
            id,
            reason: StopReason::from_code(r)
        }),
        (any::<u64>(), any::<u8>(), text(MAX_TEXT_LEN)).prop_map(|(id, t, detail)| {
            Event::TransportChosen {
                id,
                transport: Transport::from_code(t),
                detail,
            }
        }),
        (any::<u64>(), text(MAX_TEXT_LEN))
            .prop_map(|(id, detail)| Event::SessionError { id, detail }),
        (
            text(MAX_NAME_LEN),
            proptest::collection::vec(
                (1u8..=3, any::<u8>(), any::<u8>(), any::<bool>()),
                0..MAX_VIDEO_FORMATS
            ),
            proptest::option::of(any::<[u16; 12]>()),
        )
            .prop_map(|(encoder, formats, hdr)| Event::VideoCaps(VideoCaps {
                encoder,
                formats: formats
                    .into_iter()
                    .map(|(c, profile, bit_depth, yuv444)| VideoFormat {
                        codec: [Codec::H264, Codec::Hevc, Codec::Av1][usize::from(c - 1)],
                        profile,
                        bit_depth,
                        yuv444,
                    })
                    .collect(),
                hdr: hdr.map(|v| HdrMetadata {
                    primaries: [(v[0], v[1]), (v[2], v[3]), (v[4], v[5])],
                    white_point: (v[6], v[7]),
                    max_luminance: v[8],
                    min_luminance: v[9],
                    max_cll: v[10],
                    max_fall: v[11],
                }),
            })),
        (any::<u8>(), text(MAX_NAME_LEN), text(MAX_TEXT_LEN)).prop_map(|(c, choice, reason)| {
            Event::Detected(Detected {
                subsystem: Subsystem::from_code(c),
                choice,
                reason,
            })
        }),
        (any::<u64>(), any::<u32>(), any::<u64>()).prop_map(|(id, epoch, first_frame)| {
            Event::Reconfigured {
                id,
                epoch,
                first_frame,
            }
        }),
        (9u8..=255).prop_map(|tag| Event::Unknown { tag }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        hello().prop_map(Message::Hello),
        hello().prop_map(Message::HelloAck),
        text(MAX_TEXT_LEN).prop_map(|reason| Message::Refuse(Refuse {
            major: MAJOR,
            minor: MINOR,
            reason
        })),
        session_start().prop_map(|s| Message::SessionStart(Box::new(s))),
        (
            any::<u64>(),
            any::<Option<u32>>(),
            any::<Option<u8>>(),
            any::<bool>()
        )
            .prop_map(|(id, b, f, k)| {
                Message::SessionUpdate(SessionUpdate {
                    id,
                    bitrate_kbps: b,
                    fec_percent: f,
                    request_keyframe: k,
                })
            }),
        (any::<(u64, u32, u16, u16, u16)>(), any::<(u32, u8, u16)>()).prop_map(
            |((id, epoch, width, height, fps), (bitrate_kbps, fec_percent, shard_len))| {
                Message::SessionReconfigure(SessionReconfigure {
                    id,
                    epoch,
                    width,
                    height,
                    fps,
                    bitrate_kbps,
                    fec_percent,
                    shard_len,
                })
            }
        ),
        (any::<u64>(), any::<u32>())
            .prop_map(|(id, rate_kbps)| Message::SessionPace(SessionPace { id, rate_kbps })),
        (any::<u64>(), any::<u8>()).prop_map(|(id, r)| Message::SessionStop(SessionStop {
            id,
            reason: StopReason::from_code(r)
        })),
        any::<u32>().prop_map(|request_id| Message::StatsRequest(StatsRequest { request_id })),
        (
            any::<u32>(),
            any::<u64>(),
            proptest::collection::vec((text(MAX_NAME_LEN), any::<u64>()), 0..50)
        )
            .prop_map(|(request_id, uptime_ms, counters)| Message::StatsSnapshot(
                StatsSnapshot {
                    request_id,
                    uptime_ms,
                    counters
                }
            )),
        Just(Message::Shutdown),
        event().prop_map(Message::Event),
        (any::<u16>(), any::<u16>(), text(MAX_TEXT_LEN)).prop_map(|(c, k, detail)| Message::Error(
            ErrorMsg {
                code: ErrorCode::from_code(c),
                in_reply_to: k,
                detail
            }
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn encode_decode_round_trips(m in message()) {
        let mut buf = vec![0u8; MAX_MESSAGE_LEN];
        let n = encode(&m, &mut buf).unwrap();
        let d = decode(&buf[..n]).unwrap();
        prop_assert_eq!(d.header.major, MAJOR);
        prop_assert_eq!(d.header.kind, m.kind() as u16);
        prop_assert_eq!(d.message, m);
        // Every strict prefix with a fixed-up length is rejected or decodes (never panics).
        for cut in HEADER_LEN..n {
            let mut p = buf[..cut].to_vec();
            p[10..14].copy_from_slice(&((cut - HEADER_LEN) as u32).to_le_bytes());
            strahl_ipc::fuzzing::fuzz_decode(&p);
        }
    }

    #[test]
    fn exact_buffer_suffices_and_one_less_fails(m in message()) {
        let mut big = vec![0u8; MAX_MESSAGE_LEN];
        let n = encode(&m, &mut big).unwrap();
        let mut exact = vec![0u8; n];
        prop_assert_eq!(encode(&m, &mut exact), Ok(n));
        let mut short = vec![0u8; n - 1];
        prop_assert_eq!(encode(&m, &mut short), Err(EncodeError::BufferTooSmall { need: n, have: n - 1 }));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        strahl_ipc::fuzzing::fuzz_decode(&data);
    }

    #[test]
    fn mutated_valid_messages_never_panic(i in 0usize..32, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let samples = common::samples();
        let mut bytes = common::encode_vec(&samples[i % samples.len()].1);
        for (pos, val) in flips {
            let p = pos % bytes.len();
            bytes[p] = val;
        }
        strahl_ipc::fuzzing::fuzz_decode(&bytes);
    }
}

#[test]
fn samples_round_trip() {
    for (stem, m) in common::samples() {
        let bytes = common::encode_vec(&m);
        assert_eq!(decode(&bytes).unwrap().message, m, "{stem}");
    }
}

/// A minor-0 control plane's SessionStart (no stream options) still decodes, with defaults,
/// and a minor-0 body is written without them.
#[test]
fn minor_zero_session_start_decodes_with_default_stream_options() {
    let mut s = common::session_start();
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    let n0 = encode_versioned(
        &Message::SessionStart(Box::new(s.clone())),
        MAJOR,
        0,
        &mut buf,
    )
    .unwrap();
    let d = decode(&buf[..n0]).unwrap();
    s.stream = StreamOptions::default();
    assert_eq!(d.message, Message::SessionStart(Box::new(s.clone())));
    let n1 = encode(
        &Message::SessionStart(Box::new(common::session_start())),
        &mut buf,
    )
    .unwrap();
    assert_eq!(
        n1,
        n0 + 1 + 16 + 4 + 1,
        "minor 1 appends the stream options"
    );
}

/// Minor 3: a native session asking for checkable frames keeps its flag through the wire, next
/// to the other stream options.
#[test]
fn a_checkable_native_session_start_round_trips() {
    let mut s = common::session_start();
    s.protocol = Protocol::Native;
    s.keys = KeyMaterial::Native {
        secret: Secret([0x33; 32]),
    };
    s.stream.flags = StreamOptions::CHECKABLE;
    let m = Message::SessionStart(Box::new(s));
    let bytes = common::encode_vec(&m);
    let d = decode(&bytes).unwrap();
    assert!(d.header.minor >= 3);
    let Message::SessionStart(back) = &d.message else {
        panic!("{:?}", d.message)
    };
    assert!(back.stream.has(StreamOptions::CHECKABLE));
    assert!(!back.stream.has(StreamOptions::ENCRYPT_VIDEO));
    assert_eq!(d.message, m);
}

/// Minor 4: the data plane's start-up choices travel as `Detected` events, one per subsystem;
/// a subsystem code from a newer build is kept, and a body cut short is refused.
#[test]
fn detected_events_round_trip() {
    for (code, subsystem) in [
        (1, Subsystem::Capture),
        (2, Subsystem::Encode),
        (3, Subsystem::Audio),
        (4, Subsystem::Input),
        (9, Subsystem::Other(9)),
    ] {
        assert_eq!(Subsystem::from_code(code), subsystem);
        assert_eq!(subsystem.code(), code);
        let m = Message::Event(Event::Detected(Detected {
            subsystem,
            choice: "openh264".into(),
            reason: "libnvidia-encode.so.1 not found — ü".into(),
        }));
        let bytes = common::encode_vec(&m);
        let d = decode(&bytes).unwrap();
        assert_eq!(d.header.minor, MINOR);
        assert_eq!(d.message, m);
        let mut cut = bytes[..bytes.len() - 1].to_vec();
        let body = u32::try_from(cut.len() - HEADER_LEN).unwrap();
        cut[10..14].copy_from_slice(&body.to_le_bytes());
        assert!(decode(&cut).is_err());
    }
}

/// Minor 5: a native epoch (the whole configuration), its answer with the first frame, and a
/// pacing ceiling round-trip field for field at their documented sizes; a body cut short is
/// refused, and a minor-4 peer reads the event as one it does not know (its tag is kept).
#[test]
fn native_epochs_and_pacing_round_trip() {
    assert_eq!(MINOR, 5);
    let cases = [
        (
            Message::SessionReconfigure(SessionReconfigure {
                id: u64::MAX,
                epoch: 7,
                width: 3840,
                height: 2160,
                fps: 120,
                bitrate_kbps: 2_000_000,
                fec_percent: 20,
                shard_len: 8908,
            }),
            8 + 4 + 2 + 2 + 2 + 4 + 1 + 2,
        ),
        (
            Message::SessionPace(SessionPace {
                id: 3,
                rate_kbps: SessionPace::LINK,
            }),
            8 + 4,
        ),
        (
            Message::Event(Event::Reconfigured {
                id: 3,
                epoch: 2,
                first_frame: 1 << 40,
            }),
            1 + 8 + 4 + 8,
        ),
    ];
    for (m, body) in cases {
        let bytes = common::encode_vec(&m);
        assert_eq!(bytes.len(), HEADER_LEN + body, "{m:?}");
        let d = decode(&bytes).unwrap();
        assert_eq!((d.header.minor, &d.message), (5, &m));
        let mut cut = bytes[..bytes.len() - 1].to_vec();
        let len = u32::try_from(cut.len() - HEADER_LEN).unwrap();
        cut[10..14].copy_from_slice(&len.to_le_bytes());
        assert!(decode(&cut).is_err(), "{m:?} cut short");
    }
    // The event's tag is 8: what a minor-4 decoder (which knows tags up to 7) keeps as Unknown.
    let ev = common::encode_vec(&Message::Event(Event::Reconfigured {
        id: 1,
        epoch: 1,
        first_frame: 1,
    }));
    assert_eq!(ev[HEADER_LEN], 8);
    assert_eq!(
        (Kind::SessionReconfigure as u16, Kind::SessionPace as u16),
        (19, 20)
    );
}
