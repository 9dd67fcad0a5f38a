//! One connection's state machine driven with simulated time and both ceremony sides in-process.

use super::*;
use crate::msg::{PairProof, Start, Stop, VERSION_MINOR, codec};
use crate::pairing::ClientPairing;

fn policy() -> HostPolicy {
    HostPolicy {
        codecs: codec::H264 | codec::PASSTHROUGH,
        max_bitrate_kbps: 2_000_000,
        max_shard_len: 1408,
        fec_percent: 20,
        fec_range: (5, 50),
    }
}

fn bind() -> Binding {
    Binding {
        client_fp: [1; 32],
        host_fp: [2; 32],
        channel: [3; 32],
    }
}

fn hello(major: u64) -> Message {
    Message::Hello(Hello {
        version_major: major,
        version_minor: VERSION_MINOR,
        mode: Mode {
            width: 1280,
            height: 720,
            fps: 120,
        },
        codecs: codec::HEVC | codec::PASSTHROUGH,
        bitrate_kbps: 5_000_000,
        max_shard_payload: 8908,
        media_port: 40_000,
        capabilities: 0,
    })
}

fn closed_with(out: &[Action]) -> Option<Reason> {
    match out.last() {
        Some(Action::Close(r, _)) => Some(*r),
        _ => None,
    }
}

#[test]
fn pairing_over_the_connection_then_nothing_more() {
    let t0 = Instant::now();
    let mut arm = ArmWindow::default();
    arm.arm("5555".into(), t0, Duration::from_secs(60));
    let mut c = HostConn::new(bind(), false, policy(), t0);
    let (client, req) = ClientPairing::start("5555", "deck", bind());
    let out = c.on_message(Message::PairRequest(req.clone()), &mut arm, t0, [0; 16], 1);
    let [Action::Send(Message::PairChallenge(ch))] = out.as_slice() else {
        panic!("{out:?}")
    };
    let proof = client.on_challenge(ch).unwrap();
    let out = c.on_message(Message::PairProof(proof.clone()), &mut arm, t0, [0; 16], 1);
    assert_eq!(
        out,
        vec![Action::Paired(Paired {
            fingerprint: [1; 32],
            name: "deck".into()
        })]
    );
    // The proof replayed on the same connection: nothing is waiting for it.
    let out = c.on_message(Message::PairProof(proof), &mut arm, t0, [0; 16], 1);
    assert_eq!(closed_with(&out), Some(Reason::UnexpectedMessage));
    assert!(c.is_closed());
}

#[test]
fn a_second_pair_request_on_one_connection_is_unexpected() {
    let t0 = Instant::now();
    let mut arm = ArmWindow::default();
    arm.arm("5555".into(), t0, Duration::from_secs(60));
    let mut c = HostConn::new(bind(), false, policy(), t0);
    let (_client, req) = ClientPairing::start("1234", "deck", bind());
    c.on_message(Message::PairRequest(req.clone()), &mut arm, t0, [0; 16], 1);
    let out = c.on_message(Message::PairRequest(req), &mut arm, t0, [0; 16], 1);
    assert_eq!(closed_with(&out), Some(Reason::UnexpectedMessage));
}

#[test]
fn wrong_proof_is_refused_as_wrong_pin() {
    let t0 = Instant::now();
    let mut arm = ArmWindow::default();
    arm.arm("5555".into(), t0, Duration::from_secs(60));
    let mut c = HostConn::new(bind(), false, policy(), t0);
    let (_client, req) = ClientPairing::start("5556", "deck", bind());
    c.on_message(Message::PairRequest(req), &mut arm, t0, [0; 16], 1);
    let out = c.on_message(
        Message::PairProof(PairProof {
            client_confirm: [0; 32],
        }),
        &mut arm,
        t0,
        [0; 16],
        1,
    );
    assert_eq!(closed_with(&out), Some(Reason::WrongPin));
}

#[test]
fn hello_from_an_unpaired_fingerprint_or_another_major_is_refused() {
    let t0 = Instant::now();
    let mut arm = ArmWindow::default();
    let mut c = HostConn::new(bind(), false, policy(), t0);
    let out = c.on_message(hello(1), &mut arm, t0, [0; 16], 1);
    assert_eq!(closed_with(&out), Some(Reason::NotPaired));
    let mut c = HostConn::new(bind(), true, policy(), t0);
    let out = c.on_message(hello(2), &mut arm, t0, [0; 16], 1);
    assert_eq!(closed_with(&out), Some(Reason::VersionMismatch));
}

#[test]
fn hello_welcome_start_then_epochs_and_stop() {
    let t0 = Instant::now();
    let mut arm = ArmWindow::default();
    let mut c = HostConn::new(bind(), true, policy(), t0);
    let out = c.on_message(hello(1), &mut arm, t0, [9; 16], 77);
    let [Action::Send(Message::Welcome(w))] = out.as_slice() else {
        panic!("{out:?}")
    };
    // Resolved: the only common codec, the host's bitrate cap and shard size, its FEC.
    assert_eq!(w.codec, codec::PASSTHROUGH);
    assert_eq!(
        (w.bitrate_kbps, w.shard_len, w.fec_percent),
        (2_000_000, 1408, 20)
    );
    assert_eq!((w.key_context, w.session_id, w.epoch), ([9; 16], 77, 0));
    // A start for another session id is out of order.
    let mut c2 = HostConn::new(bind(), true, policy(), t0);
    c2.on_message(hello(1), &mut arm, t0, [9; 16], 77);
    let out = c2.on_message(
        Message::Start(Start { session_id: 78 }),
        &mut arm,
        t0,
        [0; 16],
        0,
    );
    assert_eq!(closed_with(&out), Some(Reason::UnexpectedMessage));

    let out = c.on_message(
        Message::Start(Start { session_id: 77 }),
        &mut arm,
        t0,
        [0; 16],
        0,
    );
    let [Action::StartSession(plan)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!((plan.media_port, plan.client_fp), (40_000, [1; 32]));
    assert_eq!(
        c.deadline(),
        None,
        "a streaming session has no step deadline"
    );

    let rc = |b, f| {
        Message::Reconfigure(Reconfigure {
            bitrate_kbps: b,
            fec_percent: f,
            mode: None,
        })
    };
    let out = c.on_message(rc(Some(500_000), Some(90)), &mut arm, t0, [0; 16], 0);
    let [Action::Reconfigure(e)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!((e.epoch, e.bitrate_kbps, e.fec_percent), (1, 500_000, 50));
    let out = c.on_message(rc(None, Some(1)), &mut arm, t0, [0; 16], 0);
    let [Action::Reconfigure(e)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!((e.epoch, e.bitrate_kbps, e.fec_percent), (2, 500_000, 5));

    let out = c.on_message(
        Message::Stop(Stop {
            reason: StopReason::ClientQuit,
        }),
        &mut arm,
        t0,
        [0; 16],
        0,
    );
    assert_eq!(out, vec![Action::Stop(77, StopReason::ClientQuit)]);
    assert!(c.is_closed());
}

#[test]
fn silence_past_each_step_deadline_closes_with_timeout() {
    let t0 = Instant::now();
    let mut arm = ArmWindow::default();
    let mut c = HostConn::new(bind(), true, policy(), t0);
    assert!(
        c.on_timeout(t0 + STEP_TIMEOUT - Duration::from_millis(1))
            .is_empty()
    );
    let out = c.on_timeout(t0 + STEP_TIMEOUT);
    assert_eq!(closed_with(&out), Some(Reason::Timeout));

    let mut c = HostConn::new(bind(), true, policy(), t0);
    let t1 = t0 + Duration::from_secs(3);
    c.on_message(hello(1), &mut arm, t1, [0; 16], 1);
    assert_eq!(c.deadline(), Some(t1 + STEP_TIMEOUT));
    assert!(c.on_timeout(t0 + STEP_TIMEOUT).is_empty());
    assert_eq!(
        closed_with(&c.on_timeout(t1 + STEP_TIMEOUT)),
        Some(Reason::Timeout)
    );
}

#[test]
fn unknown_messages_are_ignored_in_every_state() {
    let t0 = Instant::now();
    let mut arm = ArmWindow::default();
    let mut c = HostConn::new(bind(), true, policy(), t0);
    assert!(
        c.on_message(Message::Unknown(0x3e), &mut arm, t0, [0; 16], 1)
            .is_empty()
    );
    assert!(!c.is_closed());
    assert!(matches!(
        c.on_message(hello(1), &mut arm, t0, [0; 16], 1).as_slice(),
        [Action::Send(Message::Welcome(_))]
    ));
}

#[test]
fn a_64_bit_session_id_is_cut_to_what_start_can_carry() {
    let t0 = Instant::now();
    let mut arm = ArmWindow::default();
    let mut c = HostConn::new(bind(), true, policy(), t0);
    let out = c.on_message(hello(1), &mut arm, t0, [0; 16], u64::MAX);
    let [Action::Send(m @ Message::Welcome(_))] = out.as_slice() else {
        panic!("{out:?}")
    };
    let Message::Welcome(w) = crate::msg::decode(&crate::msg::encode(m)).unwrap() else {
        unreachable!()
    };
    let out = c.on_message(
        Message::Start(Start {
            session_id: w.session_id,
        }),
        &mut arm,
        t0,
        [0; 16],
        0,
    );
    assert!(
        matches!(out.as_slice(), [Action::StartSession(_)]),
        "{out:?}"
    );
}
