//! Session manager tests of control-stream events (ENet, §A12) for a streaming session:
//! keyframe requests, adaptive FEC up and down, disconnects that keep the app for `/resume`, our
//! own termination, resume replacing a registration, and the data plane ending a stream.
//!
//! Contract: uses the shared helpers of `session/tests.rs` (`use super::*`) and nothing else of
//! this crate's files.

use super::*;
use std::time::Duration;
use strahl_enet::DisconnectReason;
use strahl_gamestream::Permissions;
use strahl_ipc::{SessionStop, StopReason};
use strahl_metrics::{Metric, Registry};

fn streaming_manager(t0: Instant) -> (SessionManager, u64) {
    let mut m = SessionManager::new(cfg());
    m.launch(&req(1, 0), RAND, t0).unwrap();
    let (_, ipc) = run(&mut m, None, t0);
    let [Message::SessionStart(s)] = ipc.as_slice() else {
        panic!("{ipc:?}")
    };
    (m, s.id)
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
                rikey: KEY,
                permissions: Permissions::ALL
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
