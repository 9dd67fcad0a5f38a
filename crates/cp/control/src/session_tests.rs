//! Deterministic tests of the session manager: simulated time, a client-role `RtspCipher`, the
//! §B10 request sequence with the Appendix A SDP captured from the real client.

use super::*;
use strahl_gamestream::launch::LaunchParams;

const SDP: &[u8] = include_bytes!("../../rtsp/fuzz_corpus/sdp/moonlight_h264_720p60_20M.sdp");
const KEY: [u8; 16] = [0x42; 16];
const PEER: &str = "10.0.0.7:50123";

fn cfg() -> ManagerConfig {
    ManagerConfig {
        video_port: 40998,
        audio_port: 41000,
        control_port: 40999,
        fec_percent: 20,
        max_bitrate_kbps: 1_000_000,
    }
}

fn req(app_id: u32, corever: u32) -> LaunchRequest {
    LaunchRequest {
        params: LaunchParams {
            app_id,
            rikey: KEY,
            rikeyid: (-556_323_120i32) as u32,
            mode: None,
            sops: true,
            local_audio_play_mode: false,
            surround_audio_info: 196_610,
            gcmap: 0,
            hdr_mode: false,
            corever,
        },
        client_cert_der: vec![],
        client_ip: "10.0.0.7".parse().unwrap(),
        local_ip: "10.0.0.1".parse().unwrap(),
    }
}

const RAND: LaunchRandom = LaunchRandom {
    ping_payload: 0x0123_4567_89AB_CDEF,
    connect_data: 0x8BAD_F00D,
};

fn requests() -> Vec<Vec<u8>> {
    let h = "X-GS-ClientVersion: 14\r\nHost: 10.0.0.1\r\n";
    let mut v: Vec<Vec<u8>> = [
        format!("OPTIONS rtsp://10.0.0.1:48010 RTSP/1.0\r\nCSeq: 1\r\n{h}\r\n"),
        format!("DESCRIBE rtsp://10.0.0.1:48010 RTSP/1.0\r\nCSeq: 2\r\n{h}Accept: application/sdp\r\n\r\n"),
        format!("SETUP streamid=audio/0/0 RTSP/1.0\r\nCSeq: 3\r\n{h}Transport: unicast;X-GS-ClientPort=50000-50001\r\n\r\n"),
        format!("SETUP streamid=video/0/0 RTSP/1.0\r\nCSeq: 4\r\n{h}Session: DEADBEEFCAFE\r\n\r\n"),
        format!("SETUP streamid=control/13/0 RTSP/1.0\r\nCSeq: 5\r\n{h}Session: DEADBEEFCAFE\r\n\r\n"),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();
    let mut announce = format!(
        "ANNOUNCE streamid=control/13/0 RTSP/1.0\r\nCSeq: 6\r\n{h}Session: DEADBEEFCAFE\r\nContent-type: application/sdp\r\nContent-length: {}\r\n\r\n",
        SDP.len()
    )
    .into_bytes();
    announce.extend_from_slice(SDP);
    v.push(announce);
    v.push(format!("PLAY / RTSP/1.0\r\nCSeq: 7\r\n{h}Session: DEADBEEFCAFE\r\n\r\n").into_bytes());
    v
}

fn reply(step: RtspStep) -> (Vec<u8>, Vec<Message>) {
    match step {
        RtspStep::Reply { bytes, ipc, .. } => (bytes, ipc),
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// Runs the §B10 sequence (encrypted when `client` is given), each request fed in two pieces to
/// exercise NeedMore. Returns the plaintext replies and all IPC messages.
fn run(
    m: &mut SessionManager,
    mut client: Option<&mut RtspCipher>,
    now: Instant,
) -> (Vec<String>, Vec<Message>) {
    let peer: SocketAddr = PEER.parse().unwrap();
    let mut replies = Vec::new();
    let mut ipc = Vec::new();
    for r in requests() {
        let wire = match client.as_deref_mut() {
            Some(c) => {
                let mut out = Vec::new();
                c.seal(&r, &mut out).unwrap();
                out
            }
            None => r,
        };
        let half = wire.len() / 2;
        assert!(matches!(
            m.rtsp_input(&wire[..half], false, peer, now),
            RtspStep::NeedMore { .. }
        ));
        let (bytes, msgs) = reply(m.rtsp_input(&wire, false, peer, now));
        let text = match client.as_deref_mut() {
            Some(c) => {
                let mut plain = Vec::new();
                assert!(matches!(
                    c.open(&bytes, &mut plain).unwrap(),
                    RtspRead::Message { .. }
                ));
                plain
            }
            None => bytes,
        };
        replies.push(String::from_utf8(text).unwrap());
        ipc.extend(msgs);
    }
    (replies, ipc)
}

#[test]
fn encrypted_launch_reaches_play_and_sends_the_session_start() {
    let t0 = Instant::now();
    let mut m = SessionManager::new(cfg());
    assert_eq!(m.rtsp_mode(t0), None, "RTSP closed before a launch");
    m.launch(&req(1, 1), RAND, t0).unwrap();
    assert_eq!(m.current_app(), Some(1));
    assert_eq!(m.rtsp_mode(t0), Some(RtspMode::Encrypted));
    let mut client = RtspCipher::new(&KEY, Role::Client);
    let (replies, ipc) = run(&mut m, Some(&mut client), t0 + Duration::from_secs(1));
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
    assert_eq!(m.streaming(), Some(Streaming { id: s.id }));
    // RTSP closes after PLAY; the app keeps running until /cancel.
    assert_eq!(m.rtsp_mode(t0 + Duration::from_secs(2)), None);
    assert_eq!(m.launch(&req(1, 1), RAND, t0), Err(HostError::Busy));
    assert_eq!(
        m.cancel(),
        vec![Message::SessionStop(SessionStop {
            id: s.id,
            reason: StopReason::ClientQuit
        })]
    );
    assert_eq!((m.current_app(), m.streaming()), (None, None));
    assert!(m.cancel().is_empty(), "cancel is idempotent");
}

#[test]
fn plain_launch_works_and_pending_launch_expires() {
    let t0 = Instant::now();
    let mut m = SessionManager::new(cfg());
    m.launch(&req(1, 0), RAND, t0).unwrap();
    assert_eq!(m.rtsp_mode(t0), Some(RtspMode::Plain));
    let (replies, ipc) = run(&mut m, None, t0);
    assert!(replies.iter().all(|r| r.starts_with("RTSP/1.0 200")));
    assert_eq!(ipc.len(), 1);

    // A resume re-arms with new keys and replaces the running stream.
    let stop = m.resume(&req(0, 0), RAND, t0).unwrap();
    assert!(matches!(
        stop.as_slice(),
        [Message::SessionStop(SessionStop {
            reason: StopReason::Replaced,
            ..
        })]
    ));
    // Nothing arrives within 10 s: RTSP closes, the app still runs.
    let late = t0 + PENDING_TIMEOUT;
    assert_eq!(
        m.rtsp_mode(late - Duration::from_millis(1)),
        Some(RtspMode::Plain)
    );
    assert_eq!(m.rtsp_mode(late), None);
    assert!(matches!(
        m.rtsp_input(
            b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            true,
            PEER.parse().unwrap(),
            late
        ),
        RtspStep::Close { .. }
    ));
    assert_eq!(m.current_app(), Some(1));
}

#[test]
fn hostile_rtsp_input_is_refused_without_state_change() {
    let t0 = Instant::now();
    let peer: SocketAddr = PEER.parse().unwrap();
    let mut m = SessionManager::new(cfg());
    assert_eq!(m.resume(&req(0, 1), RAND, t0), Err(HostError::NoRunningApp));
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
    assert_eq!(m.streaming(), None);
    // The data plane ending the session (or going away) clears it.
    m.session_ended(None);
    assert_eq!(m.current_app(), Some(1));
}

#[test]
fn key_fingerprint_is_short_and_key_dependent() {
    let a = key_fingerprint(&KEY);
    assert_eq!(a.len(), 8);
    assert_ne!(a, key_fingerprint(&[0x43; 16]));
    assert!(!a.contains("4242"), "not the key itself");
}
