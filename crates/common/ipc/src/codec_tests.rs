//! Unit tests of [`super`] (encode/decode of every kind, refusals).

use super::*;

fn hello() -> Message {
    Message::Hello(Hello {
        major: MAJOR,
        minor: MINOR,
        role: Role::Control,
        pid: 42,
        build: "t".into(),
    })
}

#[test]
fn header_layout_is_as_documented() {
    let mut buf = [0u8; 64];
    let n = encode(
        &Message::StatsRequest(StatsRequest {
            request_id: 0x0403_0201,
        }),
        &mut buf,
    )
    .unwrap();
    assert_eq!(n, HEADER_LEN + 4);
    assert_eq!(&buf[0..4], b"STRL");
    assert_eq!(u16::from_le_bytes([buf[4], buf[5]]), MAJOR);
    assert_eq!(u16::from_le_bytes([buf[6], buf[7]]), MINOR);
    assert_eq!(
        u16::from_le_bytes([buf[8], buf[9]]),
        Kind::StatsRequest as u16
    );
    assert_eq!(u32::from_le_bytes([buf[10], buf[11], buf[12], buf[13]]), 4);
    assert_eq!(&buf[14..18], &[1, 2, 3, 4]);
}

#[test]
fn short_buffer_reports_needed_size() {
    let mut buf = [0u8; 10];
    assert_eq!(
        encode(&hello(), &mut buf),
        Err(EncodeError::BufferTooSmall {
            need: 14 + 4 + 1 + 4 + 3,
            have: 10
        })
    );
}

#[test]
fn over_long_string_is_refused_not_truncated() {
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    let m = Message::Refuse(Refuse {
        major: 1,
        minor: 0,
        reason: "x".repeat(MAX_TEXT_LEN + 1),
    });
    assert!(matches!(
        encode(&m, &mut buf),
        Err(EncodeError::FieldTooLong {
            field: "reason",
            ..
        })
    ));
}

#[test]
fn trailing_bytes_from_a_newer_minor_are_ignored() {
    let mut buf = [0u8; 128];
    let n = encode_versioned(
        &Message::SessionStop(SessionStop {
            id: 7,
            reason: StopReason::ClientQuit,
        }),
        MAJOR,
        MINOR + 3,
        &mut buf,
    )
    .unwrap();
    // Append three bytes a future minor might add, and fix up the length.
    buf[n..n + 3].copy_from_slice(&[9, 9, 9]);
    let body = (n + 3 - HEADER_LEN) as u32;
    buf[10..14].copy_from_slice(&body.to_le_bytes());
    let d = decode(&buf[..n + 3]).unwrap();
    assert_eq!(d.header.minor, MINOR + 3);
    assert_eq!(
        d.message,
        Message::SessionStop(SessionStop {
            id: 7,
            reason: StopReason::ClientQuit
        })
    );
}

#[test]
fn foreign_major_decodes_only_the_handshake() {
    let mut buf = [0u8; 128];
    let n = encode_versioned(&hello(), MAJOR + 1, 0, &mut buf).unwrap();
    let d = decode(&buf[..n]).unwrap();
    assert_eq!(d.header.major, MAJOR + 1);
    let Message::Hello(h) = d.message else {
        panic!("not a hello")
    };
    assert_eq!(h.major, MAJOR + 1);

    let n = encode_versioned(&Message::Shutdown, MAJOR + 1, 0, &mut buf).unwrap();
    assert_eq!(
        decode(&buf[..n]),
        Err(DecodeError::MajorMismatch {
            ours: MAJOR,
            theirs: MAJOR + 1,
            kind: Kind::Shutdown as u16
        })
    );
}

#[test]
fn unknown_kind_is_typed() {
    let mut buf = [0u8; 64];
    let n = encode(&Message::Shutdown, &mut buf).unwrap();
    buf[8..10].copy_from_slice(&999u16.to_le_bytes());
    assert_eq!(
        decode(&buf[..n]),
        Err(DecodeError::UnknownKind {
            kind: 999,
            minor: MINOR
        })
    );
}

#[test]
fn hello_body_version_must_match_header() {
    let mut buf = [0u8; 64];
    let n = encode(&hello(), &mut buf).unwrap();
    buf[14] ^= 1; // body major
    assert!(matches!(
        decode(&buf[..n]),
        Err(DecodeError::BadValue { .. })
    ));
}

#[test]
fn framing_errors() {
    assert_eq!(decode(b"STRL"), Err(DecodeError::TooShort { len: 4 }));
    let mut buf = [0u8; 64];
    let n = encode(&Message::Shutdown, &mut buf).unwrap();
    buf[0] = b'X';
    assert!(matches!(
        decode(&buf[..n]),
        Err(DecodeError::BadMagic { .. })
    ));
    buf[0] = b'S';
    assert_eq!(
        decode(&buf[..n + 1]),
        Err(DecodeError::LengthMismatch {
            declared: 0,
            actual: 1
        })
    );
    let big = vec![0u8; MAX_MESSAGE_LEN + 1];
    assert_eq!(
        decode(&big),
        Err(DecodeError::TooLong {
            len: MAX_MESSAGE_LEN + 1
        })
    );
}

#[test]
fn stats_count_is_bounded_before_allocation() {
    let mut buf = [0u8; 64];
    let m = Message::StatsSnapshot(StatsSnapshot {
        request_id: 1,
        uptime_ms: 2,
        counters: vec![],
    });
    let n = encode(&m, &mut buf).unwrap();
    // count field sits after request_id (4) and uptime (8)
    buf[HEADER_LEN + 12..HEADER_LEN + 14].copy_from_slice(&u16::MAX.to_le_bytes());
    assert!(matches!(
        decode(&buf[..n]),
        Err(DecodeError::TooLarge {
            field: "counters",
            ..
        })
    ));
    buf[HEADER_LEN + 12..HEADER_LEN + 14].copy_from_slice(&3u16.to_le_bytes());
    assert!(matches!(
        decode(&buf[..n]),
        Err(DecodeError::Truncated {
            field: "counter name",
            ..
        })
    ));
}

#[test]
fn secrets_are_not_printed() {
    let k = KeyMaterial::GameStream {
        rikey: Secret([0xAB; 16]),
        rikeyid: 5,
    };
    let s = format!("{k:?}");
    assert!(
        !s.contains("171") && !s.to_lowercase().contains("ab, "),
        "{s}"
    );
    assert!(s.contains("redacted"));
}
