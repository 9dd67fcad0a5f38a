//! Session manager tests with several clients at once: interleaved launch, RTSP, PLAY, control
//! and cancel; plain RTSP routed to the oldest pending launch from the source address; unknown
//! addresses and keys closed without a state change; per-client expiry; data-plane loss and the
//! status page stopping one session.
//!
//! Contract: uses the shared helpers of `session/tests.rs` (`use super::*`) and nothing else of
//! this crate's files.

use super::*;
use std::time::Duration;
use strahl_gamestream::Permissions;
use strahl_gamestream::{HostError, HostState};
use strahl_ipc::{KeyMaterial, Secret, SessionStart, SessionStop, StopReason};
use strahl_metrics::Registry;
use strahl_seal::gamestream::Role;

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
            rikey: KEY,
            permissions: Permissions::ALL
        }]
    );
    assert_eq!(
        reg_b,
        [ControlAction::Register {
            session: sb.id,
            connect_data: RAND_B.connect_data,
            rikey: KEY_B,
            permissions: Permissions::ALL
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
