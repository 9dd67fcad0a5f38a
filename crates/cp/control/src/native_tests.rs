//! Unit tests of `native.rs` (the seam to the data plane).

use super::*;
use crate::native_pace::{FIRST_CUT_MULTIPLE, SUSTAIN};
use strahl_native::host::SessionPlan;
use strahl_native::msg::{Mode, Welcome};

fn native_session(id: u64, codec: u64) -> NativeSession {
    let mut s = sample();
    s.plan.welcome.session_id = id;
    s.plan.welcome.codec = codec;
    s
}

fn sample() -> NativeSession {
    NativeSession {
        plan: SessionPlan {
            welcome: Welcome {
                mode: Mode {
                    width: 1280,
                    height: 720,
                    fps: 120,
                },
                codec: codec::H264,
                bitrate_kbps: 1_000_000,
                fec_percent: 20,
                shard_len: 1408,
                key_context: [0; 16],
                session_id: 9,
                epoch: 0,
            },
            media_port: 40_000,
            client_fp: [1; 32],
        },
        client: "192.0.2.7:40000".parse().unwrap(),
        h2c: [5; 32],
        c2h: [6; 32],
    }
}

#[test]
fn a_native_session_becomes_a_native_ipc_start_with_only_the_h2c_secret() {
    let s = sample();
    let m = session_start(&s, 47_998);
    assert_eq!(m.protocol, strahl_ipc::Protocol::Native);
    assert_eq!(
        m.keys,
        strahl_ipc::KeyMaterial::Native {
            secret: strahl_ipc::Secret([5; 32])
        }
    );
    assert_eq!((m.ports.video_src, m.ports.video_dst), (47_998, 40_000));
    assert_eq!((m.video.packet_size, m.video.fec_percent), (1408, 20));
    assert_eq!(m.stream.flags, 0, "H.264: the configured source");
    // It encodes as a valid IPC message.
    let mut b = vec![0u8; strahl_ipc::MAX_MESSAGE_LEN];
    strahl_ipc::encode(&strahl_ipc::Message::SessionStart(Box::new(m)), &mut b).unwrap();
    // The passthrough codec asks for the pattern source's checkable frames.
    let m = session_start(&native_session(9, codec::PASSTHROUGH), 47_998);
    assert!(m.stream.has(strahl_ipc::StreamOptions::CHECKABLE));
}

fn sessions(capacity: usize) -> (NativeSessions, crate::shared::OutboxReceiver) {
    let reg: &'static strahl_metrics::Registry =
        Box::leak(Box::new(strahl_metrics::Registry::new()));
    let (tx, rx) = crate::shared::outbox(capacity, reg);
    (NativeSessions::new(tx, 47_998, (5, 50)), rx)
}

fn loss(ppm: u32, lost: u64) -> LossReport {
    LossReport {
        epoch: 0,
        frames_received: 100,
        frames_recovered: 0,
        frames_lost: lost,
        shard_loss_ppm: ppm,
    }
}

/// The session's life as the data plane sees it: start, FEC raised by loss reports (bounded),
/// a keyframe request, a reconfigure, the stop — one IPC message each, in order, and nothing
/// for a session that is not running.
#[test]
fn a_session_start_loss_keyframe_reconfigure_and_stop_reach_the_data_plane() {
    let (ns, mut rx) = sessions(16);
    ns.start(&native_session(7, codec::PASSTHROUGH)).unwrap();
    let Ok(Message::SessionStart(m)) = rx.try_recv() else {
        panic!("a SessionStart")
    };
    assert_eq!(
        (m.id, m.ports.video_src, m.video.fec_percent),
        (7, 47_998, 20)
    );
    assert_eq!(ns.running().len(), 1);
    // Clean: nothing. 15 % shard loss: 36 %. 40 %: the policy's 50 % cap.
    ns.loss(7, &loss(0, 0));
    ns.loss(7, &loss(150_000, 0));
    ns.loss(7, &loss(400_000, 0));
    ns.loss(7, &loss(400_000, 0));
    let fec: Vec<Option<u8>> = std::iter::from_fn(|| rx.try_recv().ok())
        .map(|m| match m {
            Message::SessionUpdate(u) => {
                assert_eq!((u.id, u.bitrate_kbps, u.request_keyframe), (7, None, false));
                u.fec_percent
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(fec, [Some(36), Some(50)]);
    assert_eq!(ns.fec_percent(7), Some(50));
    ns.keyframe(7);
    let Ok(Message::SessionUpdate(u)) = rx.try_recv() else {
        panic!("an update")
    };
    assert!(u.request_keyframe && u.fec_percent.is_none());
    let e = EpochChange {
        session_id: 7,
        epoch: 1,
        bitrate_kbps: 5_000_000,
        fec_percent: 10,
        mode: Mode {
            width: 640,
            height: 360,
            fps: 30,
        },
        shard_len: 1408,
    };
    let mut first = ns.reconfigure(&e).unwrap();
    let Ok(Message::SessionReconfigure(r)) = rx.try_recv() else {
        panic!("a SessionReconfigure")
    };
    assert_eq!(
        r,
        SessionReconfigure {
            id: 7,
            epoch: 1,
            width: 640,
            height: 360,
            fps: 30,
            bitrate_kbps: 5_000_000,
            fec_percent: 10,
            shard_len: 1408,
        },
        "the whole configuration, the mode included"
    );
    assert_eq!(ns.fec_percent(7), Some(10), "the controller follows");
    assert!(
        first.try_recv().is_err(),
        "no first frame before the data plane's"
    );
    // Answers for another epoch or session complete nothing; the right one does, once.
    assert!(!ns.reconfigured(7, 2, 99));
    assert!(!ns.reconfigured(8, 1, 99));
    assert!(ns.reconfigured(7, 1, 241));
    assert!(!ns.reconfigured(7, 1, 241));
    assert_eq!(first.try_recv(), Ok(241));
    assert_eq!(ns.running()[0].plan.welcome.mode.fps, 30);
    // A newer epoch replaces an unanswered one, whose waiter fails.
    let mut stale = ns
        .reconfigure(&EpochChange {
            epoch: 2,
            ..e.clone()
        })
        .unwrap();
    let mut newer = ns
        .reconfigure(&EpochChange {
            epoch: 3,
            ..e.clone()
        })
        .unwrap();
    assert!(matches!(
        stale.try_recv(),
        Err(tokio::sync::oneshot::error::TryRecvError::Closed)
    ));
    assert!(ns.reconfigured(7, 3, 500));
    assert_eq!(newer.try_recv(), Ok(500));
    while rx.try_recv().is_ok() {}
    assert_eq!(
        ns.reconfigure(&EpochChange {
            session_id: 8,
            ..e.clone()
        })
        .err(),
        Some(Reason::Internal),
        "not a running session"
    );
    // Another session's reports and requests send nothing.
    ns.loss(8, &loss(400_000, 3));
    ns.keyframe(8);
    ns.stop(8, StopReason::ClientQuit);
    assert!(rx.try_recv().is_err());
    // A vanished client: stopped as a time-out, once.
    ns.stop(7, StopReason::Timeout);
    ns.stop(7, StopReason::Timeout);
    let Ok(Message::SessionStop(st)) = rx.try_recv() else {
        panic!("a SessionStop")
    };
    assert_eq!(
        (st.id, st.reason),
        (7, strahl_ipc::StopReason::ClientTimeout)
    );
    assert!(rx.try_recv().is_err());
    assert!(ns.running().is_empty());
}

#[test]
fn a_full_outbox_refuses_the_session_busy_and_the_data_plane_can_end_one() {
    let (ns, mut rx) = sessions(1);
    ns.start(&native_session(1, codec::H264)).unwrap();
    assert_eq!(ns.start(&native_session(2, codec::H264)), Err(Reason::Busy));
    assert_eq!(ns.running().len(), 1);
    assert!(matches!(rx.try_recv(), Ok(Message::SessionStart(_))));
    assert!(ns.ended(1), "ours");
    assert!(!ns.ended(1) && !ns.ended(99), "GameStream ids are not");
    drop(rx);
    assert_eq!(
        ns.start(&native_session(3, codec::H264)),
        Err(Reason::Internal)
    );
}

#[test]
fn shards_fit_the_data_planes_mtu() {
    // 1500: 1472 B of UDP payload less 44 B of overhead.
    assert_eq!(max_shard_len_for_mtu(1500), 1428);
    assert_eq!(max_shard_len_for_mtu(9000), 8908);
    assert_eq!(
        max_shard_len_for_mtu(9216),
        8908,
        "capped at a jumbo frame's"
    );
    assert_eq!(max_shard_len_for_mtu(577), 504, "even");
    assert_eq!(max_shard_len_for_mtu(0), 64);
    let o = NativeOptions::new("127.0.0.1:47900".parse().unwrap(), (5, 20, 50), 1000, 1500);
    assert_eq!(o.policy.max_shard_len, 1428);
}

#[test]
fn stop_reasons_map_to_the_ipc_ones() {
    use strahl_ipc::StopReason as Ipc;
    let cases = [
        (StopReason::ClientQuit, Ipc::ClientQuit),
        (StopReason::Timeout, Ipc::ClientTimeout),
        (StopReason::HostShutdown, Ipc::ControlShutdown),
        (StopReason::Unpaired, Ipc::ControlShutdown),
        (StopReason::Error, Ipc::Error),
        (StopReason::Other(77), Ipc::Error),
    ];
    for (n, i) in cases {
        assert_eq!(ipc_stop_reason(n), i, "{n:?}");
    }
}

/// Reports with lost frames for longer than SUSTAIN send one `SessionPace` with the first
/// ceiling (8× the session's wire rate), and the session remembers it; a session that is not
/// running sends nothing.
#[test]
fn sustained_lost_frames_send_one_pace_update() {
    let reg: &'static strahl_metrics::Registry =
        Box::leak(Box::new(strahl_metrics::Registry::new()));
    let (tx, mut rx) = crate::shared::outbox(64, reg);
    let ns = NativeSessions::new(tx, 47_998, (5, 50));
    let mut s = native_session(3, codec::PASSTHROUGH);
    s.plan.welcome.bitrate_kbps = 100_000;
    ns.start(&s).unwrap();
    assert!(matches!(rx.try_recv(), Ok(Message::SessionStart(_))));
    let lost = LossReport {
        epoch: 0,
        frames_received: 20,
        frames_recovered: 0,
        frames_lost: 2,
        shard_loss_ppm: 90_000,
    };
    // Real time: reports 50 ms apart until the run is SUSTAIN long.
    let t0 = Instant::now();
    while t0.elapsed() < SUSTAIN + std::time::Duration::from_millis(100) {
        ns.loss(3, &lost);
        ns.loss(4, &lost);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let paces: Vec<u32> = std::iter::from_fn(|| rx.try_recv().ok())
        .filter_map(|m| match m {
            Message::SessionPace(p) => {
                assert_eq!(p.id, 3);
                Some(p.rate_kbps)
            }
            Message::SessionUpdate(u) => {
                assert_eq!(u.id, 3);
                None
            }
            other => panic!("{other:?}"),
        })
        .collect();
    // FEC went to its 50 % cap at the first report: the wire rate counts that parity.
    let wire = crate::native_pace::wire_kbps(100_000, 50, 1408);
    assert_eq!(paces, [u32::try_from(FIRST_CUT_MULTIPLE * wire).unwrap()]);
    assert_eq!(ns.pace_kbps(3), Some(Some(FIRST_CUT_MULTIPLE * wire)));
    assert_eq!(ns.pace_kbps(4), None);
}
