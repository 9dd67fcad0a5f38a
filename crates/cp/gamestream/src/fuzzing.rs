//! Fuzz entry points (called by cargo-fuzz targets and by the corpus replay test).
//!
//! Contract: each function accepts arbitrary bytes and must never panic or allocate
//! without bound; they assert the parser's own invariants.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::crypto::PairingHash;
use crate::identity::HostIdentity;
use crate::launch::LaunchParams;
use crate::pairing::{PairReply, PairStep, Pairing, PinPoll};
use crate::query::{MAX_PAIRS, Query};

/// Most requests one `fuzz_pair` input may feed (bounds the work per input).
const MAX_PAIR_REQUESTS: usize = 16;

fn fuzz_identity() -> Arc<HostIdentity> {
    static ID: OnceLock<Arc<HostIdentity>> = OnceLock::new();
    ID.get_or_init(|| Arc::new(HostIdentity::ephemeral().expect("identity generation")))
        .clone()
}

/// Feeds a sequence of `/pair` queries (one per line) into one pairing engine. A line
/// starting with `!` submits the rest as a PIN; `+` advances simulated time by 20 s; `#`
/// marks the next request as coming over authorised HTTPS. Asserts the reply invariants:
/// failures are 200 (stage 4 only), 400 or 503, and nothing panics.
pub fn fuzz_pair(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let t0 = Instant::now();
    let mut now = t0;
    let mut pairing = Pairing::new(
        fuzz_identity(),
        PairingHash::Sha256,
        Box::new(|b: &mut [u8]| b.fill(7)),
    );
    let mut waiting = Vec::new();
    for line in s.split('\n').take(MAX_PAIR_REQUESTS) {
        if let Some(pin) = line.strip_prefix('!') {
            let _ = pairing.submit_pin(pin, now);
            continue;
        }
        if line == "+" {
            now += Duration::from_secs(20);
            continue;
        }
        let (https, line) = match line.strip_prefix('#') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let Ok(q) = Query::parse(line) else { continue };
        let reply = match pairing.handle(&q, https, now) {
            PairStep::Reply(r) => r,
            PairStep::WaitForPin { session, deadline } => {
                assert!(deadline > now);
                waiting.push(session);
                continue;
            }
        };
        if let PairReply::Failed { status, .. } = reply {
            assert!(matches!(status, 200 | 400 | 503), "status {status}");
        }
    }
    for id in waiting {
        if let PinPoll::Ready(PairReply::Failed { status, .. }) = pairing.poll_pin(id, now) {
            assert!(matches!(status, 400 | 503), "status {status}");
        }
    }
}

/// Parses arbitrary bytes as an nvhttp query and, when that succeeds, runs every typed
/// accessor the handlers use (hex, integers, the signed `rikeyid`, launch validation).
pub fn fuzz_query(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(q) = Query::parse(s) else { return };
    assert!(q.len() <= MAX_PAIRS);
    for key in [
        "salt",
        "clientcert",
        "clientchallenge",
        "rikey",
        "serverchallengeresp",
    ] {
        let _ = q.hex(key, None);
        let _ = q.hex(key, Some(16));
    }
    for key in ["appid", "corever", "surroundaudioinfo"] {
        let _ = q.opt_u32(key);
    }
    if let Ok(bits) = q.i32_bits("rikeyid") {
        // The bit pattern round-trips through the signed spelling.
        let back =
            Query::parse(&format!("rikeyid={}", bits as i32)).expect("canonical form parses");
        assert_eq!(back.i32_bits("rikeyid"), Ok(bits));
    }
    let _ = LaunchParams::from_query(&q, true);
    let _ = LaunchParams::from_query(&q, false);
}

/// One datagram into the mDNS responder's core (as if from the mDNS port, then from a legacy
/// port): parsing and answering never panic, and a reply exists only for a well-formed query
/// that names us, carrying a response header.
pub fn fuzz_mdns(data: &[u8]) {
    use crate::mdns::core::{Link, MDNS_PORT, Responder, parse_query};
    let link = Link {
        if_indexes: vec![2],
        addrs: vec![
            std::net::IpAddr::from([192, 168, 1, 20]),
            "fe80::1".parse().expect("literal"),
        ],
    };
    let mut r = Responder::new("strahl", 47989, MDNS_PORT);
    for port in [MDNS_PORT, 40000] {
        let src = std::net::SocketAddr::from(([192, 168, 1, 50], port));
        if let Some(reply) = r.handle(data, src, &link, Instant::now()) {
            let q = parse_query(data).expect("answered a malformed packet");
            assert!(!q.questions.is_empty());
            assert!(reply.bytes.len() >= 12 && reply.bytes[2] & 0x80 != 0);
        }
    }
}
