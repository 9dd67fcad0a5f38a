//! Sans-IO pairing tests: a minimal *client-side* implementation of §A5/§B4 drives the host
//! state machine with simulated time, producing a full transcript; wrong PINs, out-of-order
//! calls, PIN time-outs and the lockout are checked against the named constants.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use strahl_gamestream::HostIdentity;
use strahl_gamestream::crypto::{
    CertInfo, PairingHash, aes_ecb_decrypt, aes_ecb_encrypt, pairing_key,
};
use strahl_gamestream::pairing::{
    FAILURE_WINDOW, LOCKOUT, MAX_FAILED_ATTEMPTS, PIN_WAIT, PairReply, PairStep, Pairing, PinError,
    PinPoll, SESSION_IDLE_TIMEOUT,
};
use strahl_gamestream::query::{Query, decode_hex, encode_hex};

struct Client {
    cert_pem: String,
    cert: CertInfo,
    key: RsaKeyPair,
}

fn new_client() -> Client {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "NVIDIA GameStream Client");
    let cert = params.self_signed(&kp).unwrap();
    Client {
        cert_pem: cert.pem(),
        cert: CertInfo::from_der(cert.der()).unwrap(),
        key: RsaKeyPair::from_pkcs8(&kp.serialize_der()).unwrap(),
    }
}

fn counter_entropy() -> strahl_gamestream::pairing::Entropy {
    let mut n = 0u8;
    Box::new(move |buf: &mut [u8]| {
        for b in buf {
            n = n.wrapping_add(37);
            *b = n;
        }
    })
}

fn q(s: &str) -> Query {
    Query::parse(&format!(
        "uniqueid=0123456789ABCDEF&uuid=00&devicename=roth&updateState=1&{s}"
    ))
    .unwrap()
}

fn reply(step: PairStep) -> PairReply {
    match step {
        PairStep::Reply(r) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn failed_status(r: &PairReply) -> Option<u16> {
    match r {
        PairReply::Failed { status, .. } => Some(*status),
        _ => None,
    }
}

/// Outcome of one client run.
#[derive(Debug, PartialEq)]
enum ClientResult {
    Paired,
    /// The client noticed the wrong PIN after stage 3 (what Moonlight does); `host_reply`
    /// is the host's answer when the test sends stage 4 anyway.
    WrongPin {
        host_reply: PairReply,
    },
}

/// Runs stages 1–5 as a Moonlight client would. `host_pin` is what the operator types.
fn run_client(
    host: &mut Pairing,
    identity: &HostIdentity,
    client: &Client,
    hash: PairingHash,
    client_pin: &str,
    host_pin: &str,
    now: Instant,
) -> ClientResult {
    let salt: [u8; 16] = core::array::from_fn(|i| 0xa0 ^ i as u8);
    let key = pairing_key(hash, &salt, client_pin);
    // Stage 1.
    let step = host.handle(
        &q(&format!(
            "phrase=getservercert&salt={}&clientcert={}",
            encode_hex(&salt),
            encode_hex(client.cert_pem.as_bytes())
        )),
        false,
        now,
    );
    let PairStep::WaitForPin { session, deadline } = step else {
        panic!("stage 1 must wait: {step:?}")
    };
    assert_eq!(deadline, now + PIN_WAIT);
    assert!(matches!(
        host.poll_pin(session, now),
        PinPoll::Waiting { .. }
    ));
    assert_eq!(host.pending_pins(now).len(), 1);
    assert_eq!(
        host.submit_pin(host_pin, now).as_deref(),
        Ok("0123456789ABCDEF")
    );
    let PinPoll::Ready(PairReply::ServerCert { plaincert_hex }) = host.poll_pin(session, now)
    else {
        panic!("stage 1 not ready after the PIN")
    };
    let server_pem = String::from_utf8(decode_hex(&plaincert_hex).unwrap()).unwrap();
    assert_eq!(
        server_pem,
        identity.cert_pem(),
        "plaincert is the host cert"
    );
    let server = CertInfo::from_pem(server_pem.as_bytes()).unwrap();
    // Stage 2.
    let cc = [0x11u8; 16];
    let e1 = aes_ecb_encrypt(&key, &cc).unwrap();
    let PairReply::ChallengeResponse(cr) = reply(host.handle(
        &q(&format!("clientchallenge={}", encode_hex(&e1))),
        false,
        now,
    )) else {
        panic!("stage 2")
    };
    assert_eq!(cr.len(), 48);
    let cr = aes_ecb_decrypt(&key, &cr).unwrap();
    let server_response = &cr[..hash.digest_len()];
    let sc = &cr[hash.digest_len()..hash.digest_len() + 16];
    // Stage 3.
    let cs = [0x22u8; 16];
    let mut h = hash.digest(&[sc, &client.cert.signature, &cs]);
    h.resize(32, 0);
    let e2 = aes_ecb_encrypt(&key, &h).unwrap();
    let PairReply::PairingSecret(ps) = reply(host.handle(
        &q(&format!("serverchallengeresp={}", encode_hex(&e2))),
        false,
        now,
    )) else {
        panic!("stage 3")
    };
    assert_eq!(ps.len(), 16 + 256);
    let (ss, ss_sig) = ps.split_at(16);
    assert!(
        server.verify_rsa_sha256(ss, ss_sig),
        "host signs its secret with the cert key (MITM check)"
    );
    let pin_ok = hash.digest(&[&cc, &server.signature, ss]) == server_response;
    // Stage 4.
    let mut sig = vec![0u8; client.key.public_modulus_len()];
    client
        .key
        .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), &cs, &mut sig)
        .unwrap();
    let mut secret = cs.to_vec();
    secret.extend_from_slice(&sig);
    let r4 = reply(host.handle(
        &q(&format!("clientpairingsecret={}", encode_hex(&secret))),
        false,
        now,
    ));
    if !pin_ok {
        return ClientResult::WrongPin { host_reply: r4 };
    }
    let PairReply::Paired(Some(newc)) = r4 else {
        panic!("stage 4: {r4:?}")
    };
    assert_eq!(newc.cert_der, client.cert.der);
    assert_eq!(newc.cert_pem, client.cert_pem);
    assert_eq!(newc.device_name, "roth");
    // Stage 5 over HTTPS with the (now paired) cert.
    assert_eq!(
        reply(host.handle(&q("phrase=pairchallenge"), true, now)),
        PairReply::Paired(None)
    );
    ClientResult::Paired
}

fn setup() -> (tempfile::TempDir, Arc<HostIdentity>, Client) {
    let dir = tempfile::tempdir().unwrap();
    let id = Arc::new(HostIdentity::load_or_create(dir.path()).unwrap());
    (dir, id, new_client())
}

#[test]
fn full_transcript_sha256_and_sha1() {
    let (_d, id, client) = setup();
    for hash in [PairingHash::Sha256, PairingHash::Sha1] {
        let mut host = Pairing::new(id.clone(), hash, counter_entropy());
        let now = Instant::now();
        assert_eq!(
            run_client(&mut host, &id, &client, hash, "0427", "0427", now),
            ClientResult::Paired
        );
        assert_eq!(host.stats().paired, 1);
        assert_eq!(host.stats().failed_attempts, 0);
        // The session is gone after stage 4: a repeated stage 4 is out of order.
        let r = reply(host.handle(&q("clientpairingsecret=00"), false, now));
        assert_eq!(failed_status(&r), Some(400));
    }
}

#[test]
fn wrong_pin_fails_at_stage_4_and_is_counted() {
    let (_d, id, client) = setup();
    let mut host = Pairing::new(id.clone(), PairingHash::Sha256, counter_entropy());
    let r = run_client(
        &mut host,
        &id,
        &client,
        PairingHash::Sha256,
        "1111",
        "2222",
        Instant::now(),
    );
    let ClientResult::WrongPin { host_reply } = r else {
        panic!("wrong PIN must not pair")
    };
    assert_eq!(
        failed_status(&host_reply),
        Some(200),
        "paired=0 with status 200 (§A5)"
    );
    assert_eq!(host.stats().failed_attempts, 1);
    assert_eq!(host.stats().paired, 0);
}

#[test]
fn out_of_order_calls_delete_the_session() {
    let (_d, id, client) = setup();
    let mut host = Pairing::new(id.clone(), PairingHash::Sha256, counter_entropy());
    let now = Instant::now();
    // Stage 2 with no session.
    let r = reply(host.handle(
        &q(&format!("clientchallenge={}", "00".repeat(16))),
        false,
        now,
    ));
    assert!(
        matches!(&r, PairReply::Failed { status: 400, message } if message.contains("Out of order")),
        "{r:?}"
    );
    // Stage 1, PIN, then stage 3 (skipping 2) → 400 and the session is gone.
    let stage1 = q(&format!(
        "phrase=getservercert&salt={}&clientcert={}",
        "ab".repeat(16),
        encode_hex(client.cert_pem.as_bytes())
    ));
    assert!(matches!(
        host.handle(&stage1, false, now),
        PairStep::WaitForPin { .. }
    ));
    host.submit_pin("1234", now).unwrap();
    let r = reply(host.handle(
        &q(&format!("serverchallengeresp={}", "00".repeat(32))),
        false,
        now,
    ));
    assert_eq!(failed_status(&r), Some(400));
    let r = reply(host.handle(
        &q(&format!("clientchallenge={}", "00".repeat(16))),
        false,
        now,
    ));
    assert_eq!(failed_status(&r), Some(400), "session was deleted");
    assert_eq!(host.stats().out_of_order, 3);
    // Stage 5 over plain HTTP is refused.
    assert_eq!(
        failed_status(&reply(host.handle(&q("phrase=pairchallenge"), false, now))),
        Some(400)
    );
}

#[test]
fn pin_validation_and_timeout() {
    let (_d, id, client) = setup();
    let mut host = Pairing::new(id.clone(), PairingHash::Sha256, counter_entropy());
    let now = Instant::now();
    assert_eq!(
        host.submit_pin("1234", now),
        Err(PinError::NoPendingRequest)
    );
    let stage1 = q(&format!(
        "phrase=getservercert&salt={}&clientcert={}",
        "ab".repeat(16),
        encode_hex(client.cert_pem.as_bytes())
    ));
    let PairStep::WaitForPin { session, .. } = host.handle(&stage1, false, now) else {
        panic!()
    };
    for bad in ["123", "12345", "12a4", "", "１２３４", " 123"] {
        assert_eq!(host.submit_pin(bad, now), Err(PinError::Format), "{bad:?}");
    }
    assert!(matches!(
        host.poll_pin(session, now + PIN_WAIT - Duration::from_millis(1)),
        PinPoll::Waiting { .. }
    ));
    let PinPoll::Ready(r) = host.poll_pin(session, now + PIN_WAIT) else {
        panic!("must expire")
    };
    assert_eq!(failed_status(&r), Some(400));
    assert_eq!(host.stats().pin_timeouts, 1);
    assert_eq!(
        host.stats().failed_attempts,
        0,
        "no PIN was used, nothing to count"
    );
    assert_eq!(
        host.submit_pin("1234", now + PIN_WAIT),
        Err(PinError::NoPendingRequest)
    );
}

#[test]
fn hostile_stage1_inputs_are_rejected() {
    let (_d, id, client) = setup();
    let mut host = Pairing::new(id, PairingHash::Sha256, counter_entropy());
    let now = Instant::now();
    let cert = encode_hex(client.cert_pem.as_bytes());
    for (s, why) in [
        (
            format!(
                "phrase=getservercert&salt={}&clientcert={cert}",
                "ab".repeat(8)
            ),
            "short salt",
        ),
        (
            format!(
                "phrase=getservercert&salt={}&clientcert={cert}",
                "zz".repeat(16)
            ),
            "bad salt hex",
        ),
        (
            format!(
                "phrase=getservercert&salt={}&clientcert=00ff",
                "ab".repeat(16)
            ),
            "bad cert",
        ),
        (
            format!("phrase=getservercert&salt={}", "ab".repeat(16)),
            "no cert",
        ),
        ("phrase=bogus".to_string(), "unknown phrase"),
    ] {
        let r = reply(host.handle(&q(&s), false, now));
        assert_eq!(failed_status(&r), Some(400), "{why}");
    }
    let r = reply(host.handle(&Query::parse("phrase=getservercert").unwrap(), false, now));
    assert!(
        matches!(r, PairReply::Failed { status: 400, ref message } if message == "Invalid uniqueid")
    );
}

#[test]
fn repeated_failures_lock_pairing_then_unlock() {
    let (_d, id, client) = setup();
    let mut host = Pairing::new(id.clone(), PairingHash::Sha256, counter_entropy());
    let t0 = Instant::now();
    for i in 0..MAX_FAILED_ATTEMPTS {
        let now = t0 + Duration::from_secs(i as u64);
        assert!(!host.locked(now));
        let r = run_client(
            &mut host,
            &id,
            &client,
            PairingHash::Sha256,
            "1111",
            "2222",
            now,
        );
        assert!(matches!(r, ClientResult::WrongPin { .. }));
    }
    let now = t0 + Duration::from_secs(MAX_FAILED_ATTEMPTS as u64);
    assert!(host.locked(now));
    let stage1 = q(&format!(
        "phrase=getservercert&salt={}&clientcert={}",
        "ab".repeat(16),
        encode_hex(client.cert_pem.as_bytes())
    ));
    let r = reply(host.handle(&stage1, false, now));
    assert_eq!(failed_status(&r), Some(503));
    assert_eq!(host.stats().rejected_while_locked, 1);
    // Even the right PIN cannot pair while locked; after LOCKOUT it can.
    let later =
        t0 + Duration::from_secs(MAX_FAILED_ATTEMPTS as u64 - 1) + LOCKOUT + Duration::from_secs(1);
    assert!(!host.locked(later));
    assert_eq!(
        run_client(
            &mut host,
            &id,
            &client,
            PairingHash::Sha256,
            "5555",
            "5555",
            later
        ),
        ClientResult::Paired
    );
}

#[test]
fn failures_outside_the_window_do_not_lock() {
    let (_d, id, client) = setup();
    let mut host = Pairing::new(id.clone(), PairingHash::Sha256, counter_entropy());
    let t0 = Instant::now();
    for i in 0..(MAX_FAILED_ATTEMPTS * 2) {
        let now = t0 + (FAILURE_WINDOW + Duration::from_secs(1)) * i as u32;
        let r = run_client(
            &mut host,
            &id,
            &client,
            PairingHash::Sha256,
            "1111",
            "2222",
            now,
        );
        assert!(matches!(r, ClientResult::WrongPin { .. }));
        assert!(!host.locked(now), "attempt {i}");
    }
}

#[test]
fn session_abandoned_after_the_pin_counts_as_a_failure() {
    // What a stock client does on a wrong PIN: it stops after stage 3 (it saw the mismatch).
    let (_d, id, client) = setup();
    let mut host = Pairing::new(id.clone(), PairingHash::Sha256, counter_entropy());
    let now = Instant::now();
    let stage1 = q(&format!(
        "phrase=getservercert&salt={}&clientcert={}",
        "ab".repeat(16),
        encode_hex(client.cert_pem.as_bytes())
    ));
    let PairStep::WaitForPin { session, .. } = host.handle(&stage1, false, now) else {
        panic!()
    };
    host.submit_pin("1234", now).unwrap();
    assert!(matches!(
        host.poll_pin(session, now),
        PinPoll::Ready(PairReply::ServerCert { .. })
    ));
    assert_eq!(host.stats().failed_attempts, 0);
    assert!(host.pending_pins(now + SESSION_IDLE_TIMEOUT).is_empty());
    assert_eq!(host.stats().failed_attempts, 1);
}

#[test]
fn pin_goes_to_exactly_one_waiting_request() {
    let (_d, id, client) = setup();
    let mut host = Pairing::new(id.clone(), PairingHash::Sha256, counter_entropy());
    let now = Instant::now();
    let stage1 = |uid: &str| {
        Query::parse(&format!(
            "uniqueid={uid}&devicename=d{uid}&phrase=getservercert&salt={}&clientcert={}",
            "ab".repeat(16),
            encode_hex(client.cert_pem.as_bytes())
        ))
        .unwrap()
    };
    let PairStep::WaitForPin { session: a, .. } = host.handle(&stage1("AAAA"), false, now) else {
        panic!()
    };
    let PairStep::WaitForPin { session: b, .. } = host.handle(&stage1("BBBB"), false, now) else {
        panic!()
    };
    assert_eq!(host.pending_pins(now).len(), 2);
    assert_eq!(host.submit_pin("1234", now), Err(PinError::Ambiguous(2)));
    assert_eq!(
        host.submit_pin_for("CCCC", "1234", now),
        Err(PinError::NoPendingRequest)
    );
    assert_eq!(
        host.submit_pin_for("BBBB", "1234", now).as_deref(),
        Ok("BBBB")
    );
    assert!(matches!(
        host.poll_pin(b, now),
        PinPoll::Ready(PairReply::ServerCert { .. })
    ));
    assert!(
        matches!(host.poll_pin(a, now), PinPoll::Waiting { .. }),
        "A did not get B's PIN"
    );
    // Now only A waits: the plain form works again.
    assert_eq!(host.submit_pin("9999", now).as_deref(), Ok("AAAA"));
    // A new stage 1 for the same uniqueid replaces the old session.
    let PairStep::WaitForPin { session: a2, .. } = host.handle(&stage1("AAAA"), false, now) else {
        panic!()
    };
    let PinPoll::Ready(r) = host.poll_pin(a, now) else {
        panic!("replaced session answers")
    };
    assert_eq!(failed_status(&r), Some(400));
    assert!(matches!(host.poll_pin(a2, now), PinPoll::Waiting { .. }));
}
