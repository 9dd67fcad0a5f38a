//! The GameStream PIN pairing state machine, sans-IO (reference §A5, §B4).
//!
//! Contract:
//! - Input: one parsed `/pair` query plus whether it came over authorised HTTPS, and `now`.
//!   Output: a `PairStep` — a reply to render, or "hold this stage-1 request until a PIN
//!   arrives" (the async layer then calls `poll_pin`). No sockets, clocks or threads here;
//!   randomness comes from an injected `Entropy` so tests are deterministic.
//! - One session per `uniqueid`, stages 1→2→3→4 in order (stage 5 is a stateless HTTPS
//!   check). Any out-of-order call deletes the session and answers 400 `paired=0`.
//! - The PIN arrives out of band (`submit_pin`); only exactly four ASCII digits are valid,
//!   and it goes to exactly one waiting request. Stage 1 waits at most `PIN_WAIT`.
//! - Known protocol limits (not fixable host-side): whoever holds a stage-1..3 transcript
//!   can brute-force the PIN offline, so the operator must only type a PIN their own
//!   client shows; and a peer can trigger the lockout on purpose (a pairing DoS, bounded
//!   by `LOCKOUT`).
//! - A wrong PIN is detected at stage 4 (the host cannot see it earlier: the client proves
//!   knowledge of the key only with `clientpairingsecret`). A stock client that notices the
//!   wrong PIN itself after stage 3 just stops; that abandoned session is counted as a failed
//!   attempt when it expires or is replaced. `MAX_FAILED_ATTEMPTS` failures within
//!   `FAILURE_WINDOW` lock pairing for `LOCKOUT`.
//! - Success at stage 4 yields the client's certificate for the caller to persist.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::crypto::{CertInfo, PairingHash, aes_ecb_decrypt, aes_ecb_encrypt, ct_eq, pairing_key};
use crate::identity::HostIdentity;
use crate::query::{Query, decode_hex, encode_hex};

/// How long stage 1 is held open waiting for the operator's PIN. Moonlight's request
/// timeout for pairing calls is 90 s (§B2); answering before it gives up lets the client
/// show our "timed out" message instead of a socket error.
pub const PIN_WAIT: Duration = Duration::from_secs(60);
/// A session that does not advance to its next stage within this time is dropped. Stages
/// 2–4 follow each other within milliseconds in every client; 30 s absorbs slow links.
pub const SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Concurrent pairing sessions (distinct uniqueids). Stock Moonlight always sends the same
/// uniqueid, so more than a handful is a misbehaving peer.
pub const MAX_PAIRING_SESSIONS: usize = 4;
/// Failed attempts (wrong PIN or abandoned after the PIN was used) within `FAILURE_WINDOW`
/// that lock pairing. A 4-digit PIN has 10^4 values; 3 tries per 5 minutes makes online
/// guessing take weeks on average.
pub const MAX_FAILED_ATTEMPTS: usize = 3;
/// Window in which failures are counted.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// How long pairing stays locked after `MAX_FAILED_ATTEMPTS`.
pub const LOCKOUT: Duration = Duration::from_secs(5 * 60);
/// Salt length in bytes (§A5 stage 1).
pub const SALT_LEN: usize = 16;
/// Largest accepted client certificate PEM (RSA-4096 certs are ≈ 2 KiB).
pub const MAX_CLIENT_CERT_PEM: usize = 8 * 1024;
/// Largest accepted RSA signature in `clientpairingsecret` (RSA-8192).
const MAX_SIGNATURE_LEN: usize = 1024;

/// Source of random bytes (server secret, server challenge).
pub type Entropy = Box<dyn FnMut(&mut [u8]) + Send>;

/// Operating-system randomness (aws-lc-rs).
pub fn system_entropy() -> Entropy {
    Box::new(|buf| aws_lc_rs::rand::fill(buf).expect("system RNG failure is unrecoverable"))
}

/// A client that completed stage 4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPairedClient {
    pub uniqueid: String,
    pub device_name: String,
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
}

/// What to answer on `/pair`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PairReply {
    /// Stage 1: `paired=1`, `plaincert=<hex of host PEM>`.
    ServerCert { plaincert_hex: String },
    /// Stage 2: `paired=1`, `challengeresponse=<hex>`.
    ChallengeResponse(Vec<u8>),
    /// Stage 3: `paired=1`, `pairingsecret=<hex>`.
    PairingSecret(Vec<u8>),
    /// Stage 4 success (with the client to persist) or stage 5 (`None`): `paired=1`.
    Paired(Option<NewPairedClient>),
    /// `paired=0` with this XML status code and message.
    Failed { status: u16, message: String },
}

impl PairReply {
    fn fail(status: u16, message: impl Into<String>) -> Self {
        PairReply::Failed {
            status,
            message: message.into(),
        }
    }
}

/// Result of feeding one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PairStep {
    Reply(PairReply),
    /// Stage 1 accepted; hold the request and call `poll_pin(session)` when a PIN is
    /// submitted or at `deadline`.
    WaitForPin {
        session: u64,
        deadline: Instant,
    },
}

/// Outcome of `poll_pin`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinPoll {
    Ready(PairReply),
    Waiting { deadline: Instant },
}

/// Why a submitted PIN was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinError {
    /// Not exactly four ASCII digits.
    Format,
    /// No stage-1 request is waiting for a PIN.
    NoPendingRequest,
    /// Several requests are waiting; name one (`submit_pin_for`).
    Ambiguous(usize),
}

impl std::fmt::Display for PinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PinError::Format => f.write_str("a PIN is exactly 4 decimal digits"),
            PinError::NoPendingRequest => f.write_str("no client is waiting for a PIN"),
            PinError::Ambiguous(n) => write!(f, "{n} clients are waiting for a PIN; choose one"),
        }
    }
}

impl std::error::Error for PinError {}

/// A stage-1 request waiting for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingPin {
    pub uniqueid: String,
    pub device_name: String,
}

enum Stage {
    AwaitingPin {
        salt: [u8; SALT_LEN],
    },
    CertSent {
        key: [u8; 16],
    },
    ChallengeSent {
        key: [u8; 16],
        sc: [u8; 16],
        ss: [u8; 16],
    },
    SecretSent {
        sc: [u8; 16],
        client_hash: Vec<u8>,
    },
}

struct Session {
    id: u64,
    uniqueid: String,
    device_name: String,
    client: CertInfo,
    client_pem: String,
    stage: Stage,
    deadline: Instant,
}

impl Session {
    fn pin_used(&self) -> bool {
        !matches!(self.stage, Stage::AwaitingPin { .. })
    }
}

/// Counters for status pages and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PairingStats {
    pub paired: u64,
    pub failed_attempts: u64,
    pub out_of_order: u64,
    pub pin_timeouts: u64,
    pub rejected_while_locked: u64,
}

/// The pairing engine. One per host.
pub struct Pairing {
    identity: Arc<HostIdentity>,
    hash: PairingHash,
    entropy: Entropy,
    sessions: Vec<Session>,
    next_id: u64,
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
    stats: PairingStats,
}

fn is_valid_pin(pin: &str) -> bool {
    pin.len() == 4 && pin.bytes().all(|b| b.is_ascii_digit())
}

impl Pairing {
    /// `hash` must match the appversion advertised in /serverinfo (major ≥ 7 → SHA-256).
    pub fn new(identity: Arc<HostIdentity>, hash: PairingHash, entropy: Entropy) -> Self {
        Pairing {
            identity,
            hash,
            entropy,
            sessions: Vec::new(),
            next_id: 1,
            failures: VecDeque::new(),
            locked_until: None,
            stats: PairingStats::default(),
        }
    }

    pub fn stats(&self) -> PairingStats {
        self.stats
    }

    /// Whether pairing is locked at `now` (after repeated failures).
    pub fn locked(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|t| now < t)
    }

    /// Stage-1 requests currently waiting for a PIN.
    pub fn pending_pins(&mut self, now: Instant) -> Vec<PendingPin> {
        self.expire(now);
        self.sessions
            .iter()
            .filter(|s| matches!(s.stage, Stage::AwaitingPin { .. }))
            .map(|s| PendingPin {
                uniqueid: s.uniqueid.clone(),
                device_name: s.device_name.clone(),
            })
            .collect()
    }

    fn record_failure(&mut self, now: Instant) {
        self.stats.failed_attempts += 1;
        self.failures.push_back(now);
        while self
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > FAILURE_WINDOW)
        {
            self.failures.pop_front();
        }
        if self.failures.len() >= MAX_FAILED_ATTEMPTS {
            self.locked_until = Some(now + LOCKOUT);
            self.failures.clear();
            tracing::warn!(
                "pairing locked for {LOCKOUT:?} after {MAX_FAILED_ATTEMPTS} failed attempts"
            );
        }
    }

    /// Removes session `idx`, counting a failure when its PIN had been used.
    fn drop_session(&mut self, idx: usize, now: Instant) {
        let s = self.sessions.swap_remove(idx);
        if s.pin_used() {
            self.record_failure(now);
        }
    }

    fn expire(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.sessions.len() {
            if now >= self.sessions[i].deadline {
                if !self.sessions[i].pin_used() {
                    self.stats.pin_timeouts += 1;
                }
                self.drop_session(i, now);
            } else {
                i += 1;
            }
        }
    }

    fn find(&self, uniqueid: &str) -> Option<usize> {
        self.sessions.iter().position(|s| s.uniqueid == uniqueid)
    }

    /// Handles one `/pair` request. `https_authorised` is true only for HTTPS requests whose
    /// client certificate is in the paired set (the server checks that before routing).
    pub fn handle(&mut self, q: &Query, https_authorised: bool, now: Instant) -> PairStep {
        self.expire(now);
        let reply = |r| PairStep::Reply(r);
        let Some(uniqueid) = q.get("uniqueid").filter(|u| !u.is_empty() && u.len() <= 64) else {
            return reply(PairReply::fail(400, "Invalid uniqueid"));
        };
        let uniqueid = uniqueid.to_owned();
        let phrase = q.get("phrase");
        if phrase == Some("getservercert") {
            return self.stage1(q, uniqueid, now);
        }
        if phrase == Some("pairchallenge") {
            // Stage 5: the TLS layer and the route check proved the cert is paired.
            return reply(if https_authorised {
                PairReply::Paired(None)
            } else {
                PairReply::fail(
                    400,
                    "pairchallenge requires HTTPS with a paired certificate",
                )
            });
        }
        let (name, stage_no) = if q.has("clientchallenge") {
            ("clientchallenge", 2)
        } else if q.has("serverchallengeresp") {
            ("serverchallengeresp", 3)
        } else if q.has("clientpairingsecret") {
            ("clientpairingsecret", 4)
        } else {
            return reply(PairReply::fail(400, "Unknown pairing phase"));
        };
        let Some(idx) = self.find(&uniqueid) else {
            self.stats.out_of_order += 1;
            return reply(PairReply::fail(400, format!("Out of order call to {name}")));
        };
        let in_order = matches!(
            (&self.sessions[idx].stage, stage_no),
            (Stage::CertSent { .. }, 2)
                | (Stage::ChallengeSent { .. }, 3)
                | (Stage::SecretSent { .. }, 4)
        );
        if !in_order {
            self.stats.out_of_order += 1;
            self.drop_session(idx, now);
            return reply(PairReply::fail(400, format!("Out of order call to {name}")));
        }
        let Some(arg) = q.get(name).and_then(decode_hex) else {
            self.drop_session(idx, now);
            return reply(PairReply::fail(400, format!("Malformed {name}")));
        };
        let r = match stage_no {
            2 => self.stage2(idx, &arg, now),
            3 => self.stage3(idx, &arg, now),
            _ => self.stage4(idx, &arg, now),
        };
        reply(r)
    }

    fn stage1(&mut self, q: &Query, uniqueid: String, now: Instant) -> PairStep {
        let fail = |s, m: &str| PairStep::Reply(PairReply::fail(s, m));
        if self.locked(now) {
            self.stats.rejected_while_locked += 1;
            return fail(
                503,
                "Pairing is temporarily locked after repeated failed attempts",
            );
        }
        let salt: [u8; SALT_LEN] = match q.get("salt").and_then(decode_hex) {
            Some(s) if s.len() == SALT_LEN => s.try_into().expect("length checked"),
            Some(_) => return fail(400, "Salt too short"),
            None => return fail(400, "Missing or malformed salt"),
        };
        let Some(pem) = q
            .get("clientcert")
            .filter(|c| c.len() <= 2 * MAX_CLIENT_CERT_PEM)
            .and_then(decode_hex)
        else {
            return fail(400, "Missing or malformed clientcert");
        };
        let Ok(client_pem) = String::from_utf8(pem) else {
            return fail(400, "clientcert is not PEM text");
        };
        let client = match CertInfo::from_pem(client_pem.as_bytes()) {
            Ok(c) => c,
            Err(e) => return fail(400, &format!("Invalid clientcert: {e}")),
        };
        if let Some(idx) = self.find(&uniqueid) {
            self.drop_session(idx, now); // a restart replaces the old attempt
            if self.locked(now) {
                return fail(
                    503,
                    "Pairing is temporarily locked after repeated failed attempts",
                );
            }
        }
        if self.sessions.len() >= MAX_PAIRING_SESSIONS {
            return fail(503, "Too many concurrent pairing attempts");
        }
        let id = self.next_id;
        self.next_id += 1;
        let deadline = now + PIN_WAIT;
        self.sessions.push(Session {
            id,
            uniqueid,
            device_name: q.get("devicename").unwrap_or("").chars().take(64).collect(),
            client,
            client_pem,
            stage: Stage::AwaitingPin { salt },
            deadline,
        });
        PairStep::WaitForPin {
            session: id,
            deadline,
        }
    }

    /// `/unpair` from `uniqueid` (a client abandoning a failed attempt): its pairing session,
    /// if any, is dropped (a session whose PIN was used counts as a failure, as on a timeout).
    /// Returns whether one was.
    pub fn abort(&mut self, uniqueid: &str, now: Instant) -> bool {
        self.expire(now);
        match self.find(uniqueid) {
            Some(idx) => {
                self.drop_session(idx, now);
                true
            }
            None => false,
        }
    }

    /// Gives the operator's PIN to the one stage-1 request waiting for it.
    ///
    /// With several waiting requests (distinct uniqueids) the PIN is refused as ambiguous:
    /// handing it to all of them would let a concurrent LAN peer learn a PIN-derived key
    /// and brute-force the 10^4 PINs offline from its own transcript. Use
    /// `submit_pin_for` to pick one. Returns the uniqueid that received the PIN.
    pub fn submit_pin(&mut self, pin: &str, now: Instant) -> Result<String, PinError> {
        self.deliver_pin(pin, None, now)
    }

    /// Gives the PIN to the stage-1 request of `uniqueid`.
    pub fn submit_pin_for(
        &mut self,
        uniqueid: &str,
        pin: &str,
        now: Instant,
    ) -> Result<String, PinError> {
        self.deliver_pin(pin, Some(uniqueid), now)
    }

    fn deliver_pin(
        &mut self,
        pin: &str,
        target: Option<&str>,
        now: Instant,
    ) -> Result<String, PinError> {
        if !is_valid_pin(pin) {
            return Err(PinError::Format);
        }
        self.expire(now);
        let waiting: Vec<usize> = (0..self.sessions.len())
            .filter(|&i| matches!(self.sessions[i].stage, Stage::AwaitingPin { .. }))
            .filter(|&i| target.is_none_or(|u| self.sessions[i].uniqueid == u))
            .collect();
        let idx = match waiting.as_slice() {
            [] => return Err(PinError::NoPendingRequest),
            [i] => *i,
            many => return Err(PinError::Ambiguous(many.len())),
        };
        let s = &mut self.sessions[idx];
        let Stage::AwaitingPin { salt } = s.stage else {
            unreachable!("filtered above")
        };
        s.stage = Stage::CertSent {
            key: pairing_key(self.hash, &salt, pin),
        };
        s.deadline = now + SESSION_IDLE_TIMEOUT;
        Ok(s.uniqueid.clone())
    }

    /// Polls a held stage-1 request.
    pub fn poll_pin(&mut self, session: u64, now: Instant) -> PinPoll {
        self.expire(now);
        match self.sessions.iter().find(|s| s.id == session) {
            None => PinPoll::Ready(PairReply::fail(
                400,
                "Pairing timed out waiting for the PIN or was replaced",
            )),
            Some(s) => match s.stage {
                Stage::AwaitingPin { .. } => PinPoll::Waiting {
                    deadline: s.deadline,
                },
                Stage::CertSent { .. } => PinPoll::Ready(PairReply::ServerCert {
                    plaincert_hex: encode_hex(self.identity.cert_pem().as_bytes()),
                }),
                _ => PinPoll::Ready(PairReply::fail(400, "Out of order call to getservercert")),
            },
        }
    }

    fn stage2(&mut self, idx: usize, e1: &[u8], now: Instant) -> PairReply {
        let Stage::CertSent { key } = self.sessions[idx].stage else {
            unreachable!("order checked")
        };
        let Some(cc) = (e1.len() == 16)
            .then(|| aes_ecb_decrypt(&key, e1))
            .flatten()
        else {
            self.drop_session(idx, now);
            return PairReply::fail(400, "clientchallenge must be 16 bytes");
        };
        let mut ss = [0u8; 16];
        let mut sc = [0u8; 16];
        (self.entropy)(&mut ss);
        (self.entropy)(&mut sc);
        let h = self
            .hash
            .digest(&[&cc, self.identity.cert_signature(), &ss]);
        let mut plain = h;
        plain.extend_from_slice(&sc);
        plain.resize(plain.len().div_ceil(16) * 16, 0); // SHA-1: 36 → 48 bytes
        let resp = aes_ecb_encrypt(&key, &plain).expect("padded to the block size");
        let s = &mut self.sessions[idx];
        s.stage = Stage::ChallengeSent { key, sc, ss };
        s.deadline = now + SESSION_IDLE_TIMEOUT;
        PairReply::ChallengeResponse(resp)
    }

    fn stage3(&mut self, idx: usize, e2: &[u8], now: Instant) -> PairReply {
        let Stage::ChallengeSent { key, sc, ss } = self.sessions[idx].stage else {
            unreachable!("order checked")
        };
        let Some(client_hash) = (e2.len() == 32)
            .then(|| aes_ecb_decrypt(&key, e2))
            .flatten()
        else {
            self.drop_session(idx, now);
            return PairReply::fail(400, "serverchallengeresp must be 32 bytes");
        };
        let mut secret = ss.to_vec();
        secret.extend_from_slice(&self.identity.sign_rsa_sha256(&ss));
        let s = &mut self.sessions[idx];
        s.stage = Stage::SecretSent { sc, client_hash };
        s.deadline = now + SESSION_IDLE_TIMEOUT;
        PairReply::PairingSecret(secret)
    }

    fn stage4(&mut self, idx: usize, secret: &[u8], now: Instant) -> PairReply {
        let s = self.sessions.swap_remove(idx); // dropped either way (§A5)
        let Stage::SecretSent { sc, client_hash } = &s.stage else {
            unreachable!("order checked")
        };
        if secret.len() <= 16 || secret.len() > 16 + MAX_SIGNATURE_LEN {
            self.record_failure(now);
            return PairReply::fail(400, "Malformed clientpairingsecret");
        }
        let (cs, sig) = secret.split_at(16);
        let mut expect = self.hash.digest(&[sc, &s.client.signature, cs]);
        expect.resize(32, 0); // SHA-1 hashes are zero-padded to 32 bytes by the client
        let pin_ok = ct_eq(&expect, client_hash);
        let sig_ok = s.client.verify_rsa_sha256(cs, sig);
        if !(pin_ok && sig_ok) {
            self.record_failure(now);
            tracing::warn!(uniqueid = %s.uniqueid, pin_ok, sig_ok, "pairing failed at stage 4");
            return PairReply::fail(
                200,
                if pin_ok {
                    "Client signature invalid"
                } else {
                    "Incorrect PIN"
                },
            );
        }
        self.stats.paired += 1;
        PairReply::Paired(Some(NewPairedClient {
            uniqueid: s.uniqueid,
            device_name: s.device_name,
            cert_pem: s.client_pem,
            cert_der: s.client.der,
        }))
    }
}
