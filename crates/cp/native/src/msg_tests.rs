//! The codec's contract: unique type numbers, round trips, unknown fields skipped, every
//! malformation an error (never a panic).

use super::*;
use crate::wire::{BodyWriter, WireError, put_varint};

pub(crate) fn samples() -> Vec<Message> {
    let mode = Mode {
        width: 1280,
        height: 720,
        fps: 120,
    };
    vec![
        Message::Hello(Hello {
            version_major: VERSION_MAJOR,
            version_minor: VERSION_MINOR,
            mode,
            codecs: codec::H264 | codec::PASSTHROUGH,
            bitrate_kbps: 1_000_000,
            max_shard_payload: 1428,
            media_port: 50_000,
            capabilities: 0,
        }),
        Message::Welcome(Welcome {
            mode,
            codec: codec::H264,
            bitrate_kbps: 900_000,
            fec_percent: 20,
            shard_len: 1408,
            key_context: [7; KEY_CONTEXT_LEN],
            session_id: 42,
            epoch: 0,
        }),
        Message::Start(Start { session_id: 42 }),
        Message::Refused(Refused {
            reason: Reason::WrongPin,
            detail: "key confirmation failed".into(),
        }),
        Message::PairRequest(PairRequest {
            name: "steam deck".into(),
            spake: [0x41; SPAKE_MSG_LEN],
        }),
        Message::PairChallenge(PairChallenge {
            spake: [0x42; SPAKE_MSG_LEN],
            host_confirm: [9; CONFIRM_LEN],
        }),
        Message::PairProof(PairProof {
            client_confirm: [8; CONFIRM_LEN],
        }),
        Message::PairOk,
        Message::LossReport(LossReport {
            epoch: 3,
            frames_received: 1200,
            frames_recovered: 17,
            frames_lost: 1,
            shard_loss_ppm: 50_000,
        }),
        Message::KeyframeRequest(KeyframeRequest {
            epoch: 3,
            last_good_frame: Some(1199),
        }),
        Message::KeyframeRequest(KeyframeRequest {
            epoch: 0,
            last_good_frame: None,
        }),
        Message::Reconfigure(Reconfigure {
            bitrate_kbps: Some(2_000_000),
            fec_percent: Some(30),
            mode: Some(Mode {
                width: 1920,
                height: 1080,
                fps: 60,
            }),
        }),
        Message::Reconfigure(Reconfigure {
            bitrate_kbps: None,
            fec_percent: Some(10),
            mode: None,
        }),
        Message::Reconfigured(Reconfigured {
            epoch: 4,
            first_frame: 1300,
            bitrate_kbps: 2_000_000,
            fec_percent: 30,
            mode,
            shard_len: 8908,
        }),
        Message::Stop(Stop {
            reason: StopReason::ClientQuit,
        }),
    ]
}

#[test]
fn no_type_number_repeats_and_every_message_is_registered() {
    let mut seen = std::collections::BTreeSet::new();
    let mut names = std::collections::BTreeSet::new();
    for (t, name, _) in REGISTRY {
        assert!(seen.insert(*t), "type {t:#x} registered twice");
        assert!(names.insert(*name), "name {name} registered twice");
        // Type numbers fit one varint byte today; none may be 0 (reserved).
        assert!(*t != 0 && *t < 64, "{t:#x}");
    }
    for m in samples() {
        assert!(
            REGISTRY.iter().any(|r| r.0 == m.msg_type()),
            "{m:?} not in the registry"
        );
        assert_ne!(m.name(), "unknown");
    }
    // Every registered number decodes as a known message (none falls through to Unknown).
    for (t, name, _) in REGISTRY {
        let r = decode_body(*t, &[]);
        assert!(!matches!(r, Ok(Message::Unknown(_))), "{name}: {r:?}");
    }
}

#[test]
fn every_message_round_trips() {
    for m in samples() {
        let f = encode(&m);
        assert_eq!(decode(&f).unwrap(), m, "{f:02x?}");
    }
}

#[test]
fn unknown_fields_are_skipped_and_unknown_types_reported() {
    let Message::Start(s) = &samples()[2] else {
        unreachable!()
    };
    let mut w = BodyWriter::new();
    w.uint(13, s.session_id)
        .bytes(99, b"a field from a newer minor version")
        .uint(1000, 5)
        .bytes(0, b"tag zero is skipped too");
    assert_eq!(
        decode(&w.frame(types::START)).unwrap(),
        Message::Start(s.clone())
    );
    assert_eq!(decode(&w.frame(0x3f)).unwrap(), Message::Unknown(0x3f));
}

#[test]
fn repeated_missing_and_out_of_range_fields_are_refused() {
    let mut w = BodyWriter::new();
    w.uint(13, 1).uint(13, 2);
    assert_eq!(
        decode(&w.frame(types::START)),
        Err(WireError::Duplicate { tag: 13 })
    );
    assert_eq!(
        decode(&BodyWriter::new().frame(types::START)),
        Err(WireError::Missing { tag: 13 })
    );
    let Message::Welcome(mut wel) = samples()[1].clone() else {
        unreachable!()
    };
    for (fec, shard, codec, ok) in [
        (101, 1408, codec::H264, false),
        (20, 1407, codec::H264, false),
        (20, 62, codec::H264, false),
        (20, 1408, codec::H264 | codec::HEVC, false),
        (100, 65534, codec::AV1, true),
    ] {
        // Encode by hand: the typed encoder would not let the bad values through the u8/u16s.
        let mut b = BodyWriter::new();
        b.uint(3, 1280).uint(4, 720).uint(5, 60).uint(6, codec);
        b.uint(7, 1000).uint(11, fec).uint(8, shard);
        b.bytes(12, &wel.key_context).uint(13, 1).uint(14, 0);
        assert_eq!(
            decode(&b.frame(types::WELCOME)).is_ok(),
            ok,
            "{fec} {shard} {codec}"
        );
    }
    wel.mode.width = 0;
    assert!(decode(&encode(&Message::Welcome(wel))).is_err());
    // A pairing element of the wrong length.
    let mut b = BodyWriter::new();
    b.bytes(18, &[0x41; 32]);
    assert!(matches!(
        decode(&b.frame(types::PAIR_REQUEST)),
        Err(WireError::BadValue { tag: 18, .. })
    ));
    // Names: too long, not UTF-8.
    let mut b = BodyWriter::new();
    b.bytes(17, &[b'x'; MAX_NAME + 1]).bytes(18, &[0x41; 33]);
    assert!(decode(&b.frame(types::PAIR_REQUEST)).is_err());
    let mut b = BodyWriter::new();
    b.bytes(17, &[0xff, 0xfe]).bytes(18, &[0x41; 33]);
    assert!(decode(&b.frame(types::PAIR_REQUEST)).is_err());
}

#[test]
fn every_truncation_and_byte_flip_is_an_error_or_a_valid_message() {
    for m in samples() {
        let f = encode(&m);
        for cut in 0..f.len() {
            assert!(decode(&f[..cut]).is_err(), "{m:?} cut at {cut}");
        }
        for i in 0..f.len() {
            for bit in 0..8 {
                let mut g = f.clone();
                g[i] ^= 1 << bit;
                // Whatever it decodes to must survive its own round trip.
                if let Ok(d) = decode(&g)
                    && !matches!(d, Message::Unknown(_))
                {
                    assert_eq!(decode(&encode(&d)).unwrap(), d);
                }
            }
        }
    }
}

#[test]
fn reasons_keep_unknown_codes_and_have_text() {
    for c in 0..=12u16 {
        let r = Reason::from_code(c);
        assert_eq!(r.code(), c);
        assert!(!r.text().is_empty());
        assert_eq!(StopReason::from_code(c).code(), c);
    }
    let mut b = Vec::new();
    put_varint(&mut b, 0x3fff);
    assert_eq!(Reason::from_code(0x3fff), Reason::Other(0x3fff));
}
