//! Session manager tests with one client: encrypted and plain launches through the §B10
//! sequence to PLAY and the SessionStart, pending-launch expiry, hostile RTSP input refused
//! without a state change, and the key fingerprint used in logs.
//!
//! Contract: uses the shared helpers of `session/tests.rs` (`use super::*`) and nothing else of
//! this crate's files.

use super::*;
use std::time::Duration;
use strahl_gamestream::HostError;
use strahl_gamestream::Permissions;
use strahl_ipc::{Codec, KeyMaterial, Protocol, Secret, SessionStop, StopReason};
use strahl_seal::gamestream::Role;

#[test]
fn encrypted_launch_reaches_play_and_sends_the_session_start() {
    let t0 = Instant::now();
    let mut m = SessionManager::new(cfg());
    assert_eq!(
        m.pending_mode(&ka(), t0),
        None,
        "RTSP closed before a launch"
    );
    m.launch(&req(1, 1), RAND, t0).unwrap();
    assert_eq!(m.app_of(&ka()), Some(1));
    assert_eq!(m.pending_mode(&ka(), t0), Some(RtspMode::Encrypted));
    let mut client = RtspCipher::new(&KEY, Role::Client);
    let (replies, control, ipc) = run_all(&mut m, Some(&mut client), t0 + Duration::from_secs(1));
    for r in &replies {
        assert!(r.starts_with("RTSP/1.0 200"), "{r}");
    }
    assert!(replies[2].contains("X-SS-Ping-Payload: 0123456789ABCDEF"));
    assert!(replies[2].contains("server_port=41000"));
    assert!(replies[3].contains("server_port=40998"));
    assert!(replies[4].contains(&format!("X-SS-Connect-Data: {}", 0x8BAD_F00Du32)));
    assert!(replies[4].contains("server_port=40999"));
    let [Message::SessionStart(s)] = ipc.as_slice() else {
        panic!("one SessionStart expected: {ipc:?}")
    };
    assert_eq!(s.protocol, Protocol::GameStream);
    assert_eq!(s.peer, "10.0.0.7:0".parse().unwrap());
    assert_eq!(
        (s.video.width, s.video.height, s.video.fps),
        (1280, 720, 60)
    );
    assert_eq!(s.video.packet_size, 1392);
    assert_eq!(s.video.codec, Codec::H264);
    assert_eq!(s.video.fec_percent, 20);
    assert!(s.video.bitrate_kbps > 0 && s.video.bitrate_kbps < 20_000);
    assert_eq!(s.audio.channels, 2);
    assert_eq!(s.audio.sample_rate_hz, 48_000);
    assert_eq!(
        s.keys,
        KeyMaterial::GameStream {
            rikey: Secret(KEY),
            rikeyid: (-556_323_120i32) as u32
        }
    );
    assert_eq!((s.ports.video_src, s.ports.audio_src), (40998, 41000));
    assert_eq!(m.streaming_of(&ka()), Some(Streaming { id: s.id }));
    // The control stream is registered under the SessionStart id with the launch's values.
    assert_eq!(
        control,
        [ControlAction::Register {
            session: s.id,
            connect_data: 0x8BAD_F00D,
            rikey: KEY,
            permissions: Permissions::ALL
        }]
    );
    assert_eq!(m.fec_percent(s.id), Some(20));
    // RTSP closes after PLAY; the app keeps running until /cancel.
    assert_eq!(m.pending_mode(&ka(), t0 + Duration::from_secs(2)), None);
    assert_eq!(m.launch(&req(1, 1), RAND, t0), Err(HostError::Busy));
    // /cancel: the termination message first, then the SessionStop.
    let a = m.cancel(&ka());
    assert_eq!(
        a.control,
        [ControlAction::Terminate {
            session: s.id,
            hresult: 0x8003_0023
        }]
    );
    assert_eq!(
        a.ipc,
        vec![Message::SessionStop(SessionStop {
            id: s.id,
            reason: StopReason::ClientQuit
        })]
    );
    assert_eq!(m.fec_percent(s.id), None);
    assert_eq!((m.app_of(&ka()), m.streaming_of(&ka())), (None, None));
    assert!(m.cancel(&ka()).is_empty(), "cancel is idempotent");
}

#[test]
fn pen_and_touch_are_advertised_to_clients_allowed_either() {
    let all = Permissions::ALL.0;
    for (perms, flags) in [
        (all, 1),
        (all & !Permissions::PEN, 1),
        (all & !Permissions::TOUCH, 1),
        (all & !(Permissions::TOUCH | Permissions::PEN), 0),
    ] {
        let t0 = Instant::now();
        let mut m = SessionManager::new(cfg());
        let mut r = req(1, 1);
        r.permissions = Permissions(perms);
        m.launch(&r, RAND, t0).unwrap();
        let mut client = RtspCipher::new(&KEY, Role::Client);
        let (replies, _, _) = run_all(&mut m, Some(&mut client), t0 + Duration::from_secs(1));
        let want = format!("a=x-ss-general.featureFlags:{flags}\n");
        assert!(
            replies[1].contains(&want),
            "permissions {perms:#x}: want {want:?} in DESCRIBE {}",
            replies[1]
        );
    }
}

#[test]
fn plain_launch_works_and_pending_launch_expires() {
    let t0 = Instant::now();
    let mut m = SessionManager::new(cfg());
    m.launch(&req(1, 0), RAND, t0).unwrap();
    assert_eq!(m.pending_mode(&ka(), t0), Some(RtspMode::Plain));
    let (replies, ipc) = run(&mut m, None, t0);
    assert!(replies.iter().all(|r| r.starts_with("RTSP/1.0 200")));
    assert_eq!(ipc.len(), 1);

    // A resume re-arms with new keys and replaces the running stream.
    let stop = m.resume(&req(0, 0), RAND, t0).unwrap();
    assert!(matches!(
        stop.ipc.as_slice(),
        [Message::SessionStop(SessionStop {
            reason: StopReason::Replaced,
            ..
        })]
    ));
    assert!(matches!(
        stop.control.as_slice(),
        [ControlAction::Terminate {
            hresult: TERMINATION_GRACEFUL,
            ..
        }]
    ));
    // Nothing arrives within 10 s: RTSP closes, the app still runs.
    let late = t0 + PENDING_TIMEOUT;
    assert_eq!(
        m.pending_mode(&ka(), late - Duration::from_millis(1)),
        Some(RtspMode::Plain)
    );
    assert_eq!(m.pending_mode(&ka(), late), None);
    assert!(matches!(
        m.rtsp_input(
            b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            true,
            PEER.parse().unwrap(),
            late
        ),
        RtspStep::Close { .. }
    ));
    assert_eq!(m.app_of(&ka()), Some(1));
}

#[test]
fn hostile_rtsp_input_is_refused_without_state_change() {
    let t0 = Instant::now();
    let peer: SocketAddr = PEER.parse().unwrap();
    let mut m = SessionManager::new(cfg());
    assert!(matches!(
        m.resume(&req(0, 1), RAND, t0),
        Err(HostError::NoRunningApp)
    ));
    m.launch(&req(1, 1), RAND, t0).unwrap();
    // Plaintext in encrypted mode, a truncated frame at EOF, a frame under another key.
    assert!(matches!(
        m.rtsp_input(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n", false, peer, t0),
        RtspStep::Close { .. }
    ));
    let mut wrong = RtspCipher::new(&[1; 16], Role::Client);
    let mut frame = Vec::new();
    wrong
        .seal(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n", &mut frame)
        .unwrap();
    assert!(matches!(
        m.rtsp_input(&frame[..frame.len() - 1], true, peer, t0),
        RtspStep::Close { .. }
    ));
    assert!(matches!(
        m.rtsp_input(&frame, false, peer, t0),
        RtspStep::Close { .. }
    ));
    // PLAY before ANNOUNCE is answered 455 and starts nothing.
    let mut client = RtspCipher::new(&KEY, Role::Client);
    client
        .seal(b"PLAY / RTSP/1.0\r\nCSeq: 7\r\n\r\n", &mut frame)
        .unwrap();
    let (bytes, ipc) = reply(m.rtsp_input(&frame, false, peer, t0));
    assert!(ipc.is_empty());
    let mut host_side = Vec::new();
    RtspCipher::new(&KEY, Role::Client)
        .open(&bytes, &mut host_side)
        .unwrap();
    assert!(
        host_side.starts_with(b"RTSP/1.0 455"),
        "{:?}",
        String::from_utf8_lossy(&host_side)
    );
    assert_eq!(m.streaming_of(&ka()), None);
    // The data plane ending the session (or going away) clears it; nothing was streaming,
    // so there is no client to tell.
    assert!(m.session_ended(None).is_empty());
    assert_eq!(m.app_of(&ka()), Some(1));
}

#[test]
fn key_fingerprint_is_short_and_key_dependent() {
    let a = key_fingerprint(&KEY);
    assert_eq!(a.len(), 8);
    assert_ne!(a, key_fingerprint(&[0x43; 16]));
    assert!(!a.contains("4242"), "not the key itself");
}
