use super::*;
use crate::SealError;
use crate::aead::Backend;
use proptest::prelude::*;

const KEY: [u8; 16] = *b"0123456789abcdef";

#[test]
fn rtsp_counts_from_one_and_round_trips() {
    let mut host = RtspCipher::new(&KEY, Role::Host);
    let mut client = RtspCipher::new(&KEY, Role::Client);
    let (mut wire, mut pt) = (Vec::new(), Vec::new());
    for i in 1..=5u32 {
        let req = format!("OPTIONS rtsp://h RTSP/1.0\r\nCSeq: {i}\r\n\r\n");
        assert_eq!(client.seal(req.as_bytes(), &mut wire).unwrap(), i);
        assert_eq!(
            host.open(&wire, &mut pt).unwrap(),
            RtspRead::Message {
                consumed: wire.len(),
                seq: i
            }
        );
        assert_eq!(pt, req.as_bytes());
        let reply = format!("RTSP/1.0 200 OK\r\nCSeq: {i}\r\n\r\n");
        assert_eq!(host.seal(reply.as_bytes(), &mut wire).unwrap(), i);
        assert_eq!(
            client.open(&wire, &mut pt).unwrap(),
            RtspRead::Message {
                consumed: wire.len(),
                seq: i
            }
        );
        assert_eq!(pt, reply.as_bytes());
    }
}

#[test]
fn rtsp_every_prefix_needs_more_and_trailing_bytes_are_left() {
    let mut client = RtspCipher::new(&KEY, Role::Client);
    let host = RtspCipher::new(&KEY, Role::Host);
    let mut wire = Vec::new();
    client
        .seal(b"DESCRIBE rtsp://h RTSP/1.0\r\nCSeq: 2\r\n\r\n", &mut wire)
        .unwrap();
    let mut pt = Vec::new();
    for cut in 0..wire.len() {
        let needed = if cut < 4 {
            RtspCipher::HEADER_LEN
        } else {
            wire.len()
        };
        assert_eq!(
            host.open(&wire[..cut], &mut pt).unwrap(),
            RtspRead::NeedMore { needed },
            "cut {cut}"
        );
    }
    let full = wire.len();
    wire.extend_from_slice(b"trailing");
    assert_eq!(
        host.open(&wire, &mut pt).unwrap(),
        RtspRead::Message {
            consumed: full,
            seq: 1
        }
    );
}

#[test]
fn rtsp_rejects_plaintext_oversize_and_tampering() {
    let host = RtspCipher::new(&KEY, Role::Host);
    let mut pt = Vec::new();
    assert!(matches!(
        host.open(b"OPTIONS rtsp://x RTSP/1.0\r\n", &mut pt),
        Err(SealError::Malformed(_))
    ));
    let huge = (0x8000_0000u32 | (RtspCipher::MAX_MESSAGE_LEN as u32 + 1)).to_be_bytes();
    assert!(matches!(
        host.open(&huge, &mut pt),
        Err(SealError::Malformed(_))
    ));
    let mut client = RtspCipher::new(&KEY, Role::Client);
    assert!(matches!(
        client.seal(&vec![0; RtspCipher::MAX_MESSAGE_LEN + 1], &mut pt),
        Err(SealError::Malformed(_))
    ));
    let mut wire = Vec::new();
    client
        .seal(b"PLAY / RTSP/1.0\r\nCSeq: 7\r\n\r\n", &mut wire)
        .unwrap();
    // Every byte after the length word is authenticated (seq via the IV, tag, ciphertext).
    for i in 4..wire.len() {
        let mut bad = wire.clone();
        bad[i] ^= 0x01;
        assert_eq!(host.open(&bad, &mut pt), Err(SealError::Forged), "byte {i}");
        assert!(pt.is_empty(), "no unauthenticated plaintext is left behind");
    }
}

#[test]
fn rtsp_counter_does_not_wrap() {
    let mut c = RtspCipher::new(&KEY, Role::Host);
    c.set_next_seq(u32::MAX);
    let mut w = Vec::new();
    assert_eq!(c.seal(b"x", &mut w).unwrap(), u32::MAX);
    assert_eq!(c.next_seq(), None);
    assert_eq!(c.seal(b"x", &mut w), Err(SealError::KeyExhausted));
}

#[test]
fn control_round_trip_replay_and_framing() {
    let mut host = ControlCipher::new(&KEY, Role::Host);
    let mut client = ControlCipher::with_backend(&KEY, Role::Client, Backend::RustCrypto);
    let (mut wire, mut pt) = (Vec::new(), Vec::new());
    // Host side counts from 0.
    assert_eq!(
        host.seal_message(0x0109, &0x8003_0023u32.to_be_bytes(), &mut wire)
            .unwrap(),
        0
    );
    assert_eq!(wire.len(), ControlCipher::OVERHEAD + 4 + 4);
    assert_eq!(
        u16::from_le_bytes([wire[2], wire[3]]) as usize,
        wire.len() - 4
    );
    assert_eq!(client.open(&wire, &mut pt).unwrap(), 0);
    assert_eq!(
        ControlCipher::parse_v2(&pt).unwrap(),
        (0x0109, &0x8003_0023u32.to_be_bytes()[..])
    );
    assert_eq!(
        client.open(&wire, &mut pt),
        Err(SealError::Replayed { packet_number: 0 })
    );

    // Out-of-order delivery inside the window is fine, duplicates are not.
    let pkts: Vec<Vec<u8>> = (0..10u16)
        .map(|i| {
            let mut w = Vec::new();
            client
                .seal_message(0x0200, &i.to_le_bytes(), &mut w)
                .unwrap();
            w
        })
        .collect();
    for i in [3usize, 1, 2, 0, 9, 4, 8, 5, 7, 6] {
        assert_eq!(host.open(&pkts[i], &mut pt).unwrap(), i as u32);
        assert_eq!(
            ControlCipher::parse_v2(&pt).unwrap().1,
            (i as u16).to_le_bytes()
        );
    }
    assert_eq!(
        host.open(&pkts[4], &mut pt),
        Err(SealError::Replayed { packet_number: 4 })
    );

    // Framing errors are typed, not panics.
    let mut w = pkts[0].clone();
    assert_eq!(
        host.open(&w[..10], &mut pt),
        Err(SealError::TooShort {
            needed: 24,
            got: 10
        })
    );
    w[0] = 2;
    assert!(matches!(
        host.open(&w, &mut pt),
        Err(SealError::Malformed(_))
    ));
    let mut w = pkts[0].clone();
    w.push(0);
    assert!(matches!(
        host.open(&w, &mut pt),
        Err(SealError::Malformed(_))
    ));
    assert!(matches!(
        ControlCipher::parse_v2(&[1, 0, 5, 0, 1]),
        Err(SealError::Malformed(_))
    ));
    assert!(matches!(
        ControlCipher::parse_v2(&[1, 0]),
        Err(SealError::TooShort { .. })
    ));
}

#[test]
fn control_tampering_is_forged_and_does_not_advance() {
    let mut client = ControlCipher::new(&KEY, Role::Client);
    let mut host = ControlCipher::new(&KEY, Role::Host);
    let mut wire = Vec::new();
    client.seal_message(0x0302, &[0, 0], &mut wire).unwrap();
    let mut pt = Vec::new();
    for i in 4..wire.len() {
        let mut bad = wire.clone();
        bad[i] ^= 0x80;
        assert_eq!(host.open(&bad, &mut pt), Err(SealError::Forged), "byte {i}");
    }
    assert_eq!(host.open(&wire, &mut pt).unwrap(), 0);
}

#[test]
fn video_round_trip_counter_and_tamper() {
    for backend in Backend::ALL {
        let mut c = VideoCipher::with_backend(&KEY, backend);
        let shard: Vec<u8> = (0..1376u32).map(|i| (i * 7) as u8).collect();
        let mut packets = Vec::new();
        for i in 0..4u64 {
            let mut p = [0u8; 1408];
            p[32..].copy_from_slice(&shard);
            c.seal_shard(42, &mut p).unwrap();
            assert_eq!(u64::from_le_bytes(p[..8].try_into().unwrap()), i);
            assert_eq!(&p[8..12], &[0, 0, 0, b'V']);
            assert_eq!(VideoCipher::frame_number(&p), Some(42));
            packets.push(p);
        }
        // Same shard, different counters → different ciphertexts.
        assert_ne!(packets[0][32..], packets[1][32..]);
        let mut p = packets[2];
        c.open_shard(&mut p).unwrap();
        assert_eq!(&p[32..], shard.as_slice());
        for i in [0usize, 11, 16, 31, 32, 700, 1407] {
            let mut bad = packets[3];
            bad[i] ^= 4;
            assert_eq!(c.open_shard(&mut bad), Err(SealError::Forged), "byte {i}");
        }
        let mut short = [0u8; 31];
        assert_eq!(
            c.seal_shard(1, &mut short),
            Err(SealError::TooShort {
                needed: 32,
                got: 31
            })
        );
        assert_eq!(
            c.open_shard(&mut short),
            Err(SealError::TooShort {
                needed: 32,
                got: 31
            })
        );
        c.set_counter(u64::MAX);
        let mut p = [0u8; 64];
        assert_eq!(c.seal_shard(1, &mut p), Err(SealError::KeyExhausted));
    }
}

#[test]
fn audio_padding_lengths_and_errors() {
    let c = AudioCipher::new(&KEY, 0xFFFF_FFFF);
    assert_eq!(AudioCipher::padded_len(60), 64);
    assert_eq!(AudioCipher::padded_len(320), 336);
    assert_eq!(AudioCipher::padded_len(0), 16);
    assert_eq!(AudioCipher::padded_len(16), 32);
    let mut out = [0u8; 64];
    assert_eq!(
        c.encrypt(0, &[1; 60], &mut out[..63]),
        Err(SealError::TooShort {
            needed: 64,
            got: 63
        })
    );
    let n = c.encrypt(1, &[1; 60], &mut out).unwrap();
    assert_eq!(n, 64);
    let mut back = [0u8; 64];
    // A different seq is a different IV: the first block decrypts differently; padding may or
    // may not survive, but the plaintext never comes back intact.
    assert_ne!(
        c.decrypt(2, &out[..n], &mut back)
            .ok()
            .map(|m| back[..m].to_vec()),
        Some(vec![1; 60])
    );
    assert!(matches!(
        c.decrypt(1, &out[..63], &mut back),
        Err(SealError::Malformed(_))
    ));
    assert!(matches!(
        c.decrypt(1, &[], &mut back),
        Err(SealError::Malformed(_))
    ));
    assert_eq!(
        c.decrypt(1, &out[..n], &mut back[..32]),
        Err(SealError::TooShort {
            needed: 64,
            got: 32
        })
    );
    // Corrupting the last block breaks the padding (or leaves a wrong length): never panics.
    let mut bad = out;
    bad[n - 1] ^= 0x5a;
    let r = c.decrypt(1, &bad[..n], &mut back);
    assert!(r.is_err() || r.is_ok_and(|m| back[..m] != [1; 60]));
}

proptest! {
    #[test]
    fn audio_round_trip(key in any::<[u8; 16]>(), id in any::<u32>(), seq in any::<u16>(),
                        pt in proptest::collection::vec(any::<u8>(), 0..1400)) {
        let c = AudioCipher::new(&key, id);
        let mut out = [0u8; 1424];
        let n = c.encrypt(seq, &pt, &mut out).unwrap();
        prop_assert_eq!(n, AudioCipher::padded_len(pt.len()));
        let mut back = [0u8; 1424];
        let m = c.decrypt(seq, &out[..n], &mut back).unwrap();
        prop_assert_eq!(&back[..m], pt.as_slice());
    }

    /// Hostile input to every opener: typed errors or NeedMore, never a panic, never success.
    #[test]
    fn hostile_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), seq in any::<u16>()) {
        let rtsp = RtspCipher::new(&KEY, Role::Host);
        let mut out = Vec::new();
        let opened = matches!(rtsp.open(&bytes, &mut out), Ok(RtspRead::Message { .. }));
        prop_assert!(!opened);
        let mut ctl = ControlCipher::new(&KEY, Role::Host);
        prop_assert!(ctl.open(&bytes, &mut out).is_err());
        let _ = ControlCipher::parse_v2(&bytes);
        let video = VideoCipher::new(&KEY);
        let mut b = bytes.clone();
        prop_assert!(video.open_shard(&mut b).is_err());
        let audio = AudioCipher::new(&KEY, 7);
        let mut pt = [0u8; 300];
        let _ = audio.decrypt(seq, &bytes, &mut pt);
    }
}
