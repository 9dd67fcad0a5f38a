//! The ceremony driven with simulated time: both sides in one process, messages passed by hand.

use super::*;

fn bind(client: u8, host: u8, channel: u8) -> Binding {
    Binding {
        client_fp: [client; 32],
        host_fp: [host; 32],
        channel: [channel; 32],
    }
}

fn armed(pin: &str, t0: Instant) -> ArmWindow {
    let mut w = ArmWindow::default();
    w.arm(pin.into(), t0, Duration::from_secs(120));
    w
}

#[test]
fn right_pin_pairs_and_names_the_client_fingerprint() {
    let t0 = Instant::now();
    let mut arm = armed("4711", t0);
    let b = bind(1, 2, 3);
    let (client, req) = ClientPairing::start("4711", "deck", b);
    let (host, ch) = HostPairing::on_request(&req, &mut arm, &b, t0).unwrap();
    let proof = client.on_challenge(&ch).unwrap();
    let p = host.on_proof(&proof, t0 + Duration::from_secs(1)).unwrap();
    assert_eq!(p.fingerprint, [1; 32]);
    assert_eq!(p.name, "deck");
    // The one guess is spent even though it succeeded.
    assert!(arm.peek(t0).is_none());
}

#[test]
fn wrong_pin_fails_confirmation_on_the_client_and_spends_the_guess() {
    let t0 = Instant::now();
    let mut arm = armed("4711", t0);
    let b = bind(1, 2, 3);
    let (client, req) = ClientPairing::start("4712", "deck", b);
    let (host, ch) = HostPairing::on_request(&req, &mut arm, &b, t0).unwrap();
    assert_eq!(
        client.on_challenge(&ch).unwrap_err(),
        ClientPairError::WrongPinOrMitm
    );
    // A client that lies about having verified still cannot produce the host's expected proof.
    let forged = PairProof {
        client_confirm: ch.host_confirm,
    };
    assert_eq!(
        host.on_proof(&forged, t0).unwrap_err().reason,
        Reason::WrongPin
    );
    // Second guess with the right PIN on the same arm: refused before any SPAKE2 work.
    let (_c2, req2) = ClientPairing::start("4711", "deck", b);
    let r = HostPairing::on_request(&req2, &mut arm, &b, t0)
        .err()
        .unwrap();
    assert_eq!(r.reason, Reason::NotArmed);
}

#[test]
fn different_certificates_on_the_two_legs_fail_like_a_wrong_pin() {
    let t0 = Instant::now();
    let mut arm = armed("0000", t0);
    // The client saw host certificate 9 (a middle-box's), the host saw its own (2).
    let (client, req) = ClientPairing::start("0000", "deck", bind(1, 9, 3));
    let (host, ch) = HostPairing::on_request(&req, &mut arm, &bind(1, 2, 3), t0).unwrap();
    assert_eq!(
        client.on_challenge(&ch).unwrap_err(),
        ClientPairError::WrongPinOrMitm
    );
    let bogus = PairProof {
        client_confirm: [0; 32],
    };
    assert_eq!(
        host.on_proof(&bogus, t0).unwrap_err().reason,
        Reason::WrongPin
    );
}

#[test]
fn a_transcript_replayed_on_another_connection_fails_confirmation() {
    let t0 = Instant::now();
    let b = bind(1, 2, 3);
    let (client, req) = ClientPairing::start("1111", "deck", b);
    let mut arm = armed("1111", t0);
    let (host, ch) = HostPairing::on_request(&req, &mut arm, &b, t0).unwrap();
    let proof = client.on_challenge(&ch).unwrap();
    host.on_proof(&proof, t0).unwrap();
    // The same request and proof replayed on a new connection (new channel binding) after the
    // operator re-armed with the same PIN: the host's expected proof differs.
    let mut arm2 = armed("1111", t0);
    let (host2, _) = HostPairing::on_request(&req, &mut arm2, &bind(1, 2, 4), t0).unwrap();
    assert_eq!(
        host2.on_proof(&proof, t0).unwrap_err().reason,
        Reason::WrongPin
    );
}

#[test]
fn expired_window_and_late_proof_are_refused() {
    let t0 = Instant::now();
    let b = bind(1, 2, 3);
    let mut arm = armed("2222", t0);
    let (_, req) = ClientPairing::start("2222", "deck", b);
    let r = HostPairing::on_request(&req, &mut arm, &b, t0 + Duration::from_secs(121))
        .err()
        .unwrap();
    assert_eq!(r.reason, Reason::WindowExpired);

    let mut arm = armed("2222", t0);
    let (client, req) = ClientPairing::start("2222", "deck", b);
    let (host, ch) = HostPairing::on_request(&req, &mut arm, &b, t0).unwrap();
    let proof = client.on_challenge(&ch).unwrap();
    assert_eq!(host.deadline(), t0 + PROOF_TIMEOUT);
    let r = host.on_proof(&proof, t0 + PROOF_TIMEOUT).unwrap_err();
    assert_eq!(r.reason, Reason::Timeout);
}

#[test]
fn a_garbage_spake_element_is_malformed_not_a_panic() {
    let t0 = Instant::now();
    let b = bind(1, 2, 3);
    let mut arm = armed("3333", t0);
    let req = PairRequest {
        name: "x".into(),
        spake: [0x42; SPAKE_MSG_LEN], // side byte 'B' where 'A' is required
    };
    let r = HostPairing::on_request(&req, &mut arm, &b, t0)
        .err()
        .unwrap();
    assert_eq!(r.reason, Reason::Malformed);
    assert!(
        arm.peek(t0).is_none(),
        "even a malformed request spends the guess"
    );
}

#[test]
fn fingerprints_round_trip_through_hex() {
    let fp = fingerprint(b"some der");
    assert_eq!(parse_hex(&hex(&fp)), Some(fp));
    assert_eq!(parse_hex("zz"), None);
    assert_eq!(parse_hex(&"g".repeat(64)), None);
}
