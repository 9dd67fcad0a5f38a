//! Deterministic tests of the session manager: simulated time, a client-role `RtspCipher`, the
//! §B10 request sequence with the Appendix A SDP captured from the real client.

use super::*;
use strahl_gamestream::launch::LaunchParams;
use strahl_ipc::SessionUpdate;

const SDP: &[u8] = include_bytes!("../../rtsp/fuzz_corpus/sdp/moonlight_h264_720p60_20M.sdp");
const KEY: [u8; 16] = [0x42; 16];
const PEER: &str = "10.0.0.7:50123";

fn cfg() -> ManagerConfig {
    ManagerConfig {
        video_port: 40998,
        audio_port: 41000,
        control_port: 40999,
        fec_percent: 20,
        fec_percent_min: 5,
        fec_percent_max: 50,
        max_bitrate_kbps: 1_000_000,
        max_sessions: 2,
    }
}

/// The certificates (DER stand-ins) of the test clients.
const CERT_A: &[u8] = b"client A certificate";
const CERT_B: &[u8] = b"client B certificate";
const CERT_C: &[u8] = b"client C certificate";

fn key(cert: &[u8]) -> ClientKey {
    ClientKey::of_cert(cert)
}

fn ka() -> ClientKey {
    key(CERT_A)
}

fn req(app_id: u32, corever: u32) -> LaunchRequest {
    req_from(CERT_A, KEY, "10.0.0.7", app_id, corever)
}

/// A launch (or resume: `app_id` 0) of the client with `cert` from `ip`, keyed `rikey`.
fn req_from(cert: &[u8], rikey: [u8; 16], ip: &str, app_id: u32, corever: u32) -> LaunchRequest {
    LaunchRequest {
        params: LaunchParams {
            app_id,
            rikey,
            rikeyid: (-556_323_120i32) as u32,
            mode: None,
            sops: true,
            local_audio_play_mode: false,
            surround_audio_info: 196_610,
            gcmap: 0,
            hdr_mode: false,
            corever,
        },
        client_cert_der: cert.to_vec(),
        client_ip: ip.parse().unwrap(),
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
    let (bytes, control, ipc) = reply_all(step);
    assert!(control.is_empty(), "{control:?}");
    (bytes, ipc)
}

fn reply_all(step: RtspStep) -> (Vec<u8>, Vec<ControlAction>, Vec<Message>) {
    match step {
        RtspStep::Reply {
            bytes,
            control,
            ipc,
            ..
        } => (bytes, control, ipc),
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// Runs the §B10 sequence (encrypted when `client` is given), each request fed in two pieces to
/// exercise NeedMore. Returns the plaintext replies and all IPC messages.
fn run(
    m: &mut SessionManager,
    client: Option<&mut RtspCipher>,
    now: Instant,
) -> (Vec<String>, Vec<Message>) {
    let (replies, control, ipc) = run_all(m, client, now);
    assert!(
        matches!(control.as_slice(), [ControlAction::Register { .. }]),
        "PLAY registers the control stream: {control:?}"
    );
    (replies, ipc)
}

/// [`run`], also returning the control actions.
fn run_all(
    m: &mut SessionManager,
    mut client: Option<&mut RtspCipher>,
    now: Instant,
) -> (Vec<String>, Vec<ControlAction>, Vec<Message>) {
    let peer: SocketAddr = PEER.parse().unwrap();
    let mut replies = Vec::new();
    let mut ipc = Vec::new();
    let mut control = Vec::new();
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
        let (bytes, ctl, msgs) = reply_all(m.rtsp_input(&wire, false, peer, now));
        control.extend(ctl);
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
    (replies, control, ipc)
}

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
            rikey: KEY
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

// ---- Control stream events (ENet, §A12) ----

fn streaming_manager(t0: Instant) -> (SessionManager, u64) {
    let mut m = SessionManager::new(cfg());
    m.launch(&req(1, 0), RAND, t0).unwrap();
    let (_, ipc) = run(&mut m, None, t0);
    let [Message::SessionStart(s)] = ipc.as_slice() else {
        panic!("{ipc:?}")
    };
    (m, s.id)
}

fn fec_report(total_data: u16, recv_data: u16) -> ControlEvent {
    ControlEvent::FecStatus(strahl_enet::FecStatus {
        frame_index: 9,
        highest_recv_seq: 0,
        next_contiguous_seq: 0,
        missing_before_highest: 0,
        total_data,
        total_parity: total_data / 5,
        recv_data,
        recv_parity: total_data / 5,
        fec_pct: 20,
        block_index: 0,
        block_count: 1,
    })
}

fn update(id: u64, fec: Option<u8>, keyframe: bool) -> Message {
    Message::SessionUpdate(SessionUpdate {
        id,
        bitrate_kbps: None,
        fec_percent: fec,
        request_keyframe: keyframe,
    })
}

#[test]
fn idr_and_rfi_request_a_keyframe_of_the_streaming_session_only() {
    // This test's own registry: counts from other tests never mix in.
    let reg = Registry::new();
    let t0 = Instant::now();
    let (mut m, id) = streaming_manager(t0);
    let a = m.on_control_in(id, &ControlEvent::IdrRequested, t0, &reg);
    assert!(a.control.is_empty());
    assert_eq!(a.ipc, [update(id, None, true)]);
    let rfi = ControlEvent::RefInvalidated {
        first_frame: 10,
        last_frame: 12,
    };
    assert_eq!(
        m.on_control_in(id, &rfi, t0, &reg).ipc,
        [update(id, None, true)]
    );
    let at = |c| Registry::label_index(Metric::ControlKeyframeRequests, c).unwrap();
    assert_eq!(reg.get_at(Metric::ControlKeyframeRequests, at("idr")), 1);
    assert_eq!(reg.get_at(Metric::ControlKeyframeRequests, at("rfi")), 1);
    // A stale session id (a replaced stream's late packet) changes nothing.
    assert!(
        m.on_control_in(id + 1, &ControlEvent::IdrRequested, t0, &reg)
            .is_empty()
    );
    // Start B, LTR acks, connects and input are not the manager's business.
    for ev in [
        ControlEvent::StartB,
        ControlEvent::LtrAck { frame_index: 3 },
        ControlEvent::Connected {
            peer: PEER.parse().unwrap(),
        },
    ] {
        assert!(m.on_control_in(id, &ev, t0, &reg).is_empty(), "{ev:?}");
    }
}

#[test]
fn fec_status_raises_fec_and_clean_time_decays_it() {
    // This test's own registry: counts from other tests never mix in.
    let reg = Registry::new();
    let t0 = Instant::now();
    let (mut m, id) = streaming_manager(t0);
    assert_eq!(m.fec_percent(id), Some(20));
    // A clean report: counted, no update.
    assert!(
        m.on_control_in(id, &fec_report(100, 100), t0, &reg)
            .is_empty()
    );
    // 12 of 120 packets lost, rebuilt: 12/108 · 2 → 23 %.
    let a = m.on_control_in(id, &fec_report(100, 88), t0, &reg);
    assert_eq!(a.ipc, [update(id, Some(23), false)]);
    assert_eq!(reg.get(Metric::ControlFecPercent), 23);
    // An unrecoverable block (99 of 100 needed packets): 21 lost of 120 → 21/99 · 2 → 43 %.
    let a = m.on_control_in(id, &fec_report(100, 79), t0, &reg);
    assert_eq!(a.ipc, [update(id, Some(43), false)]);
    let at = |c| Registry::label_index(Metric::ControlFecReports, c).unwrap();
    assert_eq!(
        ["clean", "recovered", "lost"].map(|c| reg.get_at(Metric::ControlFecReports, at(c))),
        [1, 1, 1]
    );
    // Simulated clean minute in 250 ms ticks: one update per step, down to the minimum.
    let mut updates = Vec::new();
    for i in 1..=240u32 {
        updates.extend(m.tick_in(t0 + Duration::from_millis(250) * i, &reg).ipc);
    }
    assert_eq!(updates.len(), 38, "43 → 5 one point at a time");
    assert_eq!(updates.first(), Some(&update(id, Some(42), false)));
    assert_eq!(updates.last(), Some(&update(id, Some(5), false)));
    assert_eq!(m.fec_percent(id), Some(5));
    assert_eq!(reg.get(Metric::ControlFecPercent), 5);
}

#[test]
fn control_disconnect_ends_the_stream_but_keeps_the_app_for_resume() {
    let t0 = Instant::now();
    for (reason, stop) in [
        (DisconnectReason::PeerDisconnected, StopReason::ClientQuit),
        (DisconnectReason::Timeout, StopReason::ClientTimeout),
        (DisconnectReason::DecryptFailed, StopReason::Error),
    ] {
        let (mut m, id) = streaming_manager(t0);
        let a = m.on_control(id, &ControlEvent::Disconnected { reason }, t0);
        assert!(
            a.control.is_empty(),
            "the client is gone: nothing to terminate"
        );
        assert_eq!(
            a.ipc,
            [Message::SessionStop(SessionStop { id, reason: stop })],
            "{reason:?}"
        );
        assert_eq!((m.streaming_of(&ka()), m.app_of(&ka())), (None, Some(1)));
        assert_eq!(m.fec_percent(id), None);
        // No more updates for the ended session; the tick has nothing to do.
        assert!(m.on_control(id, &ControlEvent::IdrRequested, t0).is_empty());
        assert!(m.tick(t0 + Duration::from_secs(60)).is_empty());
        // /resume: nothing to replace, a new registration at PLAY with the new connect data.
        let r2 = LaunchRandom {
            ping_payload: 7,
            connect_data: 0x1234_5678,
        };
        assert!(m.resume(&req(0, 0), r2, t0).unwrap().is_empty());
        let (_, control, ipc) = run_all(&mut m, None, t0);
        let [Message::SessionStart(s)] = ipc.as_slice() else {
            panic!("{ipc:?}")
        };
        assert!(s.id > id);
        assert_eq!(
            control,
            [ControlAction::Register {
                session: s.id,
                connect_data: 0x1234_5678,
                rikey: KEY
            }]
        );
    }
}

#[test]
fn our_own_termination_and_host_shutdown_do_not_stop_twice() {
    let t0 = Instant::now();
    let (mut m, id) = streaming_manager(t0);
    for reason in [
        DisconnectReason::Terminated(TERMINATION_GRACEFUL),
        DisconnectReason::HostShutdown,
    ] {
        assert!(
            m.on_control(id, &ControlEvent::Disconnected { reason }, t0)
                .is_empty()
        );
    }
    assert!(m.streaming_of(&ka()).is_some());
    // After /cancel the terminated session's disconnect is stale.
    let a = m.cancel(&ka());
    assert_eq!(a.control.len(), 1);
    let late = ControlEvent::Disconnected {
        reason: DisconnectReason::Terminated(TERMINATION_GRACEFUL),
    };
    assert!(m.on_control(id, &late, t0).is_empty());
}

#[test]
fn resume_while_streaming_terminates_the_old_registration() {
    let t0 = Instant::now();
    let (mut m, id) = streaming_manager(t0);
    let a = m.resume(&req(0, 0), RAND, t0).unwrap();
    assert_eq!(
        a.control,
        [ControlAction::Terminate {
            session: id,
            hresult: TERMINATION_GRACEFUL
        }]
    );
    // Events of the replaced session are ignored from now on.
    let ev = ControlEvent::Disconnected {
        reason: DisconnectReason::Timeout,
    };
    assert!(m.on_control(id, &ev, t0).is_empty());
}

#[test]
fn dataplane_ending_the_stream_terminates_the_clients_control_stream_once() {
    let t0 = Instant::now();
    // Another session's end is not ours.
    let (mut m, id) = streaming_manager(t0);
    assert!(m.session_ended(Some(id + 1)).is_empty());
    assert!(m.streaming_of(&ka()).is_some());
    // The data plane ended ours (ping timeout, error): tell the client, keep the app.
    let a = m.session_ended(Some(id));
    assert!(
        matches!(a.control.as_slice(), [ControlAction::Terminate { session, hresult }]
            if *session == id && *hresult == TERMINATION_GRACEFUL),
        "{a:?}"
    );
    assert!(a.ipc.is_empty(), "the data plane already stopped it");
    assert_eq!(m.streaming_of(&ka()), None);
    assert_eq!(m.app_of(&ka()), Some(1));
    assert!(m.session_ended(None).is_empty(), "terminated once only");
    // The data plane going away (None) ends a running stream the same way.
    let (mut m, id) = streaming_manager(t0);
    let a = m.session_ended(None);
    assert!(
        matches!(a.control.as_slice(), [ControlAction::Terminate { session, .. }] if *session == id)
    );
}

// ---- Several clients at once ----

const KEY_B: [u8; 16] = [0x17; 16];
const KEY_C: [u8; 16] = [0x99; 16];
const RAND_B: LaunchRandom = LaunchRandom {
    ping_payload: 0xFEDC_BA98_7654_3210,
    connect_data: 0x0B0B_0B0B,
};
const RAND_C: LaunchRandom = LaunchRandom {
    ping_payload: 0x1111_2222_3333_4444,
    connect_data: 0x0C0C_0C0C,
};

/// One request of the §B10 sequence from `peer`, sealed with `client` when given; the
/// plaintext reply and the step's actions.
fn exchange(
    m: &mut SessionManager,
    client: Option<&mut RtspCipher>,
    request: &[u8],
    peer: &str,
    now: Instant,
) -> (String, Vec<ControlAction>, Vec<Message>) {
    let peer: SocketAddr = peer.parse().unwrap();
    match client {
        Some(c) => {
            let mut wire = Vec::new();
            c.seal(request, &mut wire).unwrap();
            let (bytes, control, ipc) = reply_all(m.rtsp_input(&wire, false, peer, now));
            let mut plain = Vec::new();
            assert!(matches!(
                c.open(&bytes, &mut plain).unwrap(),
                RtspRead::Message { .. }
            ));
            (String::from_utf8(plain).unwrap(), control, ipc)
        }
        None => {
            let (bytes, control, ipc) = reply_all(m.rtsp_input(request, false, peer, now));
            (String::from_utf8(bytes).unwrap(), control, ipc)
        }
    }
}

fn the_start(ipc: &[Message]) -> &SessionStart {
    match ipc {
        [Message::SessionStart(s)] => s,
        other => panic!("one SessionStart expected: {other:?}"),
    }
}

#[test]
fn two_clients_interleave_launch_rtsp_play_control_and_cancel() {
    // This test's own registry: counts from other tests never mix in.
    let reg = Registry::new();
    let t0 = Instant::now();
    let (ka, kb, kc) = (key(CERT_A), key(CERT_B), key(CERT_C));
    let mut m = SessionManager::new(cfg());
    // Both encrypted, from the same address: only the keys tell them apart.
    m.launch(&req_from(CERT_A, KEY, "10.0.0.7", 1, 1), RAND, t0)
        .unwrap();
    m.launch(&req_from(CERT_B, KEY_B, "10.0.0.7", 1, 1), RAND_B, t0)
        .unwrap();
    assert_eq!(m.running_apps(), 2);
    // A third client is refused while two run; the asking client's view decides /serverinfo.
    assert_eq!(
        m.launch(&req_from(CERT_C, KEY_C, "10.0.0.9", 1, 1), RAND_C, t0),
        Err(HostError::Full { max: 2 })
    );
    assert_eq!(m.state_for(Some(&ka)), HostState::Running { app_id: 1 });
    assert_eq!(m.state_for(Some(&kc)), HostState::Full);
    assert_eq!(m.state_for(None), HostState::Full);
    // A second launch by A itself is today's busy (it resumes with /resume).
    assert_eq!(
        m.launch(&req_from(CERT_A, KEY, "10.0.0.7", 1, 1), RAND, t0),
        Err(HostError::Busy)
    );

    // Interleaved handshakes: B goes first at every step.
    let mut ca = RtspCipher::new(&KEY, Role::Client);
    let mut cb = RtspCipher::new(&KEY_B, Role::Client);
    let (mut start_a, mut start_b) = (None, None);
    let (mut reg_a, mut reg_b) = (Vec::new(), Vec::new());
    for (i, r) in requests().iter().enumerate() {
        let (rb, ctl_b, ipc_b) = exchange(&mut m, Some(&mut cb), r, PEER, t0);
        let (ra, ctl_a, ipc_a) = exchange(&mut m, Some(&mut ca), r, PEER, t0);
        assert!(ra.starts_with("RTSP/1.0 200"), "A step {i}: {ra}");
        assert!(rb.starts_with("RTSP/1.0 200"), "B step {i}: {rb}");
        if i == 2 {
            // Each launch's own ping payload and connect data.
            assert!(ra.contains("X-SS-Ping-Payload: 0123456789ABCDEF"), "{ra}");
            assert!(rb.contains("X-SS-Ping-Payload: FEDCBA9876543210"), "{rb}");
        }
        if i == 4 {
            assert!(ra.contains(&format!("X-SS-Connect-Data: {}", RAND.connect_data)));
            assert!(rb.contains(&format!("X-SS-Connect-Data: {}", RAND_B.connect_data)));
        }
        if !ipc_a.is_empty() {
            start_a = Some(the_start(&ipc_a).clone());
            reg_a = ctl_a;
        }
        if !ipc_b.is_empty() {
            start_b = Some(the_start(&ipc_b).clone());
            reg_b = ctl_b;
        }
    }
    let (sa, sb) = (start_a.unwrap(), start_b.unwrap());
    assert_ne!(sa.id, sb.id);
    assert_eq!(
        sa.stream.ping_payload,
        Some(*b"0123456789ABCDEF"),
        "A's pings carry A's payload"
    );
    assert_eq!(sb.stream.ping_payload, Some(*b"FEDCBA9876543210"));
    assert_eq!(
        sb.keys,
        KeyMaterial::GameStream {
            rikey: Secret(KEY_B),
            rikeyid: (-556_323_120i32) as u32
        }
    );
    // Same host ports for both: the data plane tells them apart by the ping payload.
    assert_eq!(
        (sa.ports.video_src, sa.ports.audio_src),
        (sb.ports.video_src, sb.ports.audio_src)
    );
    assert_eq!(
        reg_a,
        [ControlAction::Register {
            session: sa.id,
            connect_data: RAND.connect_data,
            rikey: KEY
        }]
    );
    assert_eq!(
        reg_b,
        [ControlAction::Register {
            session: sb.id,
            connect_data: RAND_B.connect_data,
            rikey: KEY_B
        }]
    );
    assert!(!m.rtsp_open(t0), "both handshakes are over");

    // Control events reach their own session only.
    assert_eq!(
        m.on_control_in(sa.id, &ControlEvent::IdrRequested, t0, &reg)
            .ipc,
        [update(sa.id, None, true)]
    );
    let raise = m.on_control_in(sb.id, &fec_report(100, 88), t0, &reg);
    assert_eq!(raise.ipc, [update(sb.id, Some(23), false)]);
    assert_eq!(
        (m.fec_percent(sa.id), m.fec_percent(sb.id)),
        (Some(20), Some(23)),
        "adaptive FEC is per session"
    );
    m.on_control_in(
        sa.id,
        &ControlEvent::RoundTrip {
            rtt: Duration::from_micros(1500),
        },
        t0,
        &reg,
    );
    let views = m.streams();
    assert_eq!(views.len(), 2);
    let view = |id| *views.iter().find(|v| v.id == id).unwrap();
    assert_eq!(view(sa.id).rtt, Some(Duration::from_micros(1500)));
    assert_eq!(view(sb.id).rtt, None);
    assert_eq!(
        (view(sb.id).fec_recovered, view(sa.id).fec_recovered),
        (1, 0)
    );
    assert_eq!((view(sa.id).client, view(sb.id).client), (ka, kb));

    // A cancels: its stream only; B streams on and still answers to its events.
    let stop = m.cancel(&ka);
    assert_eq!(
        stop.control,
        [ControlAction::Terminate {
            session: sa.id,
            hresult: TERMINATION_GRACEFUL
        }]
    );
    assert_eq!(
        stop.ipc,
        [Message::SessionStop(SessionStop {
            id: sa.id,
            reason: StopReason::ClientQuit
        })]
    );
    assert_eq!(m.streaming_of(&kb), Some(Streaming { id: sb.id }));
    assert_eq!(m.fec_percent(sb.id), Some(23));
    assert!(
        m.on_control_in(sa.id, &ControlEvent::IdrRequested, t0, &reg)
            .is_empty(),
        "A's late events are stale"
    );
    assert_eq!(
        m.on_control_in(sb.id, &ControlEvent::IdrRequested, t0, &reg)
            .ipc,
        [update(sb.id, None, true)]
    );
    // B's decay goes on alone; A's cancel is idempotent and touches nothing.
    let ticks: Vec<Message> = (1..=20u32)
        .flat_map(|i| m.tick_in(t0 + Duration::from_millis(250) * i, &reg).ipc)
        .collect();
    assert!(!ticks.is_empty());
    assert!(
        ticks
            .iter()
            .all(|u| matches!(u, Message::SessionUpdate(x) if x.id == sb.id))
    );
    assert!(m.cancel(&ka).is_empty());
    assert_eq!(m.streaming_of(&kb), Some(Streaming { id: sb.id }));
    // Room again: C sees the host free and launches.
    assert_eq!(m.state_for(Some(&kc)), HostState::Free);
    assert_eq!(m.state_for(None), HostState::Free);
    m.launch(&req_from(CERT_C, KEY_C, "10.0.0.9", 1, 1), RAND_C, t0)
        .unwrap();
    assert_eq!(m.state_for(Some(&ka)), HostState::Full);
}

#[test]
fn plain_rtsp_goes_to_the_oldest_pending_launch_from_the_source_address() {
    let t0 = Instant::now();
    let mut cfg3 = cfg();
    cfg3.max_sessions = 3;
    let mut m = SessionManager::new(cfg3);
    m.launch(&req_from(CERT_A, KEY, "10.0.0.7", 1, 0), RAND, t0)
        .unwrap();
    m.launch(&req_from(CERT_B, KEY_B, "10.0.0.8", 1, 0), RAND_B, t0)
        .unwrap();
    // C shares A's address and launched later.
    m.launch(
        &req_from(CERT_C, KEY_C, "10.0.0.7", 1, 0),
        RAND_C,
        t0 + Duration::from_millis(5),
    )
    .unwrap();
    let run_plain = |m: &mut SessionManager, peer: &str| -> SessionStart {
        let mut start = None;
        for r in requests() {
            let (reply, _, ipc) = exchange(m, None, &r, peer, t0 + Duration::from_millis(10));
            assert!(reply.starts_with("RTSP/1.0 200"), "{reply}");
            if !ipc.is_empty() {
                start = Some(the_start(&ipc).clone());
            }
        }
        start.expect("PLAY starts a session")
    };
    // From B's address: B's launch.
    let sb = run_plain(&mut m, "10.0.0.8:40000");
    assert!(matches!(sb.keys, KeyMaterial::GameStream { rikey: Secret(k), .. } if k == KEY_B));
    assert_eq!(m.streaming_of(&key(CERT_B)), Some(Streaming { id: sb.id }));
    // From the shared address: A first (older), then C once A reached PLAY.
    let sa = run_plain(&mut m, "10.0.0.7:40001");
    assert!(matches!(sa.keys, KeyMaterial::GameStream { rikey: Secret(k), .. } if k == KEY));
    let sc = run_plain(&mut m, "[::ffff:10.0.0.7]:40002");
    assert!(matches!(sc.keys, KeyMaterial::GameStream { rikey: Secret(k), .. } if k == KEY_C));
    assert_eq!(m.streams().len(), 3);
    // Nothing pending any more: every address is refused.
    assert!(matches!(
        m.rtsp_input(
            b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            false,
            "10.0.0.7:1".parse().unwrap(),
            t0
        ),
        RtspStep::Close { .. }
    ));
}

#[test]
fn rtsp_from_an_unknown_address_or_key_is_closed_and_changes_nothing() {
    let t0 = Instant::now();
    let mut m = SessionManager::new(cfg());
    m.launch(&req_from(CERT_A, KEY, "10.0.0.7", 1, 0), RAND, t0)
        .unwrap();
    m.launch(&req_from(CERT_B, KEY_B, "10.0.0.8", 1, 1), RAND_B, t0)
        .unwrap();
    let options = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n";
    // Plain from an address no plain launch came from (B's address: B is encrypted).
    for peer in ["10.0.0.9:5", "10.0.0.8:5"] {
        let step = m.rtsp_input(options, false, peer.parse().unwrap(), t0);
        assert!(matches!(step, RtspStep::Close { .. }), "{peer}: {step:?}");
    }
    // A frame no pending key opens.
    let mut frame = Vec::new();
    RtspCipher::new(&KEY_C, Role::Client)
        .seal(options, &mut frame)
        .unwrap();
    let step = m.rtsp_input(&frame, false, "10.0.0.8:5".parse().unwrap(), t0);
    assert!(
        matches!(step, RtspStep::Close { ref why } if why.contains("no pending launch's key")),
        "{step:?}"
    );
    // A partial header waits for the rest; an empty connection waits for its first byte.
    assert!(matches!(
        m.rtsp_input(&frame[..2], false, "10.0.0.8:5".parse().unwrap(), t0),
        RtspStep::NeedMore { .. }
    ));
    assert!(matches!(
        m.rtsp_input(&[], false, "10.0.0.8:5".parse().unwrap(), t0),
        RtspStep::NeedMore { .. }
    ));
    // Both launches are untouched: their first requests are still answered 200, each with
    // its own framing, and B's reply counter starts at the first seq.
    let (ra, _, _) = exchange(&mut m, None, options, "10.0.0.7:6", t0);
    assert!(ra.starts_with("RTSP/1.0 200"), "{ra}");
    let mut cb = RtspCipher::new(&KEY_B, Role::Client);
    let (rb, _, _) = exchange(&mut m, Some(&mut cb), options, "10.0.0.99:6", t0);
    assert!(rb.starts_with("RTSP/1.0 200"), "{rb}");
}

#[test]
fn pending_launches_expire_per_client() {
    let t0 = Instant::now();
    let (ka, kb) = (key(CERT_A), key(CERT_B));
    let mut m = SessionManager::new(cfg());
    m.launch(&req_from(CERT_A, KEY, "10.0.0.7", 1, 1), RAND, t0)
        .unwrap();
    let tb = t0 + Duration::from_secs(6);
    m.launch(&req_from(CERT_B, KEY_B, "10.0.0.8", 1, 0), RAND_B, tb)
        .unwrap();
    let at_a_expiry = t0 + PENDING_TIMEOUT;
    assert_eq!(
        m.pending_mode(&ka, at_a_expiry - Duration::from_millis(1)),
        Some(RtspMode::Encrypted)
    );
    assert_eq!(m.pending_mode(&ka, at_a_expiry), None, "A's 10 s are up");
    assert_eq!(m.pending_mode(&kb, at_a_expiry), Some(RtspMode::Plain));
    assert!(m.rtsp_open(at_a_expiry));
    // A's RTSP is refused now, B's still served.
    let mut ca = RtspCipher::new(&KEY, Role::Client);
    let mut frame = Vec::new();
    ca.seal(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n", &mut frame)
        .unwrap();
    assert!(matches!(
        m.rtsp_input(&frame, false, PEER.parse().unwrap(), at_a_expiry),
        RtspStep::Close { .. }
    ));
    let (rb, _, _) = exchange(
        &mut m,
        None,
        b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n",
        "10.0.0.8:9",
        at_a_expiry,
    );
    assert!(rb.starts_with("RTSP/1.0 200"), "{rb}");
    let at_b_expiry = tb + PENDING_TIMEOUT;
    assert!(!m.rtsp_open(at_b_expiry));
    // Both apps still run (resume works); a resume re-arms only the resuming client.
    assert_eq!((m.app_of(&ka), m.app_of(&kb)), (Some(1), Some(1)));
    assert!(
        m.resume(&req_from(CERT_A, KEY, "10.0.0.7", 0, 1), RAND, at_b_expiry)
            .unwrap()
            .is_empty()
    );
    assert_eq!(m.pending_mode(&ka, at_b_expiry), Some(RtspMode::Encrypted));
    assert_eq!(m.pending_mode(&kb, at_b_expiry), None);
}

#[test]
fn dataplane_loss_ends_every_stream_and_the_page_stops_one() {
    let t0 = Instant::now();
    let mut m = SessionManager::new(cfg());
    let mut ids = Vec::new();
    for (cert, k, rand, ip) in [
        (CERT_A, KEY, RAND, "10.0.0.7"),
        (CERT_B, KEY_B, RAND_B, "10.0.0.8"),
    ] {
        m.launch(&req_from(cert, k, ip, 1, 0), rand, t0).unwrap();
        let mut start = None;
        for r in requests() {
            let (_, _, ipc) = exchange(&mut m, None, &r, &format!("{ip}:1"), t0);
            if !ipc.is_empty() {
                start = Some(the_start(&ipc).id);
            }
        }
        ids.push(start.unwrap());
    }
    // The status page stops B's session: B's app is cancelled, A's stream goes on.
    let stop = m.cancel_session(ids[1]).expect("B streams");
    assert!(matches!(stop.ipc.as_slice(), [Message::SessionStop(s)] if s.id == ids[1]));
    assert_eq!(m.app_of(&key(CERT_B)), None);
    assert!(m.cancel_session(ids[1]).is_none());
    assert_eq!(m.streams().len(), 1);
    // B launches again and streams; the data plane goes away: both are told, apps stay.
    m.launch(&req_from(CERT_B, KEY_B, "10.0.0.8", 1, 0), RAND_B, t0)
        .unwrap();
    for r in requests() {
        exchange(&mut m, None, &r, "10.0.0.8:1", t0);
    }
    let lost = m.session_ended(None);
    assert_eq!(lost.control.len(), 2, "{lost:?}");
    assert!(m.streams().is_empty());
    assert_eq!(m.running_apps(), 2);
}
