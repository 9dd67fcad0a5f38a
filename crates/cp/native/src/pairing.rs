//! The SPAKE2 pairing ceremony, sans-IO: typed messages and `now` in, messages and results out.
//!
//! Contract (normative description: `docs/strahl1-wire.md` §Pairing):
//! - SPAKE2 over Ed25519 (`spake2` crate), client = side A, host = side B. The identities are
//!   the SHA-256 fingerprints of the client's and the host's TLS certificates (as each side saw
//!   them on this connection), so a machine in the middle that shows each side a different
//!   certificate cannot make the two derive one key. The password is the 4-digit PIN.
//! - The host takes the armed PIN ([`ArmWindow::take`]) *before* it computes or sends anything:
//!   every pairing request spends the window's one online guess, whatever happens after.
//! - Key confirmation in both directions: `confirm_x = HMAC-SHA256(k_x, T)` with
//!   `k_host`, `k_client` expanded by HKDF-SHA256 from the SPAKE2 key, and the transcript hash
//!   `T = SHA-256("strahl/1 pair" ‖ spake_a ‖ spake_b ‖ fp_client ‖ fp_host ‖ binding)`, where
//!   `binding` is a TLS exporter value of this very connection. The host proves first (in its
//!   challenge); the client checks it before proving, and proves only then. A transcript replayed
//!   on another connection carries the wrong binding and fails confirmation.
//! - The host accepts the client's proof once, before [`PROOF_TIMEOUT`]; after a good proof the
//!   caller stores the client fingerprint (the store writes atomically). A wrong PIN is
//!   indistinguishable from a certificate mismatch (both fail confirmation): [`Reason::WrongPin`].
//! - MACs are compared in constant time.

use std::time::{Duration, Instant};

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use spake2::{Ed25519Group, Identity, Password, Spake2};
use subtle::ConstantTimeEq;

use crate::arm::{ArmError, ArmWindow};
use crate::msg::{CONFIRM_LEN, PairChallenge, PairProof, PairRequest, Reason, SPAKE_MSG_LEN};

/// SHA-256 of a certificate's DER bytes.
pub type Fingerprint = [u8; 32];

/// How long the host waits for the client's proof after its challenge.
pub const PROOF_TIMEOUT: Duration = Duration::from_secs(30);

/// TLS exporter label of the channel binding (32 bytes, empty context).
pub const BINDING_LABEL: &[u8] = b"EXPORTER-strahl/1 pair";

/// SHA-256 fingerprint of a DER certificate.
pub fn fingerprint(cert_der: &[u8]) -> Fingerprint {
    Sha256::digest(cert_der).into()
}

/// Lower-case hex of a fingerprint (how it is stored and shown).
pub fn hex(fp: &Fingerprint) -> String {
    fp.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses [`hex`]'s output.
pub fn parse_hex(s: &str) -> Option<Fingerprint> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// What both sides bind into the ceremony, as each saw it on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub client_fp: Fingerprint,
    pub host_fp: Fingerprint,
    /// TLS exporter ([`BINDING_LABEL`]) of the connection.
    pub channel: [u8; 32],
}

fn password(pin: &str) -> Password {
    Password::new(format!("strahl/1 pin {pin}"))
}

struct Keys {
    host: [u8; 32],
    client: [u8; 32],
    transcript: [u8; 32],
}

fn keys(spake_key: &[u8], a: &[u8], b: &[u8], bind: &Binding) -> Keys {
    let hk = Hkdf::<Sha256>::new(Some(b"strahl/1 pair v1"), spake_key);
    let mut host = [0u8; 32];
    let mut client = [0u8; 32];
    // 32 bytes are far below HKDF-SHA256's limit: expand cannot fail.
    hk.expand(b"host confirm", &mut host).expect("HKDF length");
    hk.expand(b"client confirm", &mut client)
        .expect("HKDF length");
    let mut t = Sha256::new();
    for part in [
        &b"strahl/1 pair"[..],
        a,
        b,
        &bind.client_fp,
        &bind.host_fp,
        &bind.channel,
    ] {
        t.update(part);
    }
    Keys {
        host,
        client,
        transcript: t.finalize().into(),
    }
}

fn mac(key: &[u8; 32], t: &[u8; 32]) -> [u8; CONFIRM_LEN] {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(t);
    m.finalize().into_bytes().into()
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

/// The host's side, waiting for the client's proof.
pub struct HostPairing {
    client_confirm: [u8; CONFIRM_LEN],
    client_fp: Fingerprint,
    name: String,
    deadline: Instant,
}

/// A client the host may now store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paired {
    pub fingerprint: Fingerprint,
    pub name: String,
}

/// Why the host refuses a pairing step (sent as [`Reason`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: Reason,
    pub detail: &'static str,
}

impl From<ArmError> for Refusal {
    fn from(e: ArmError) -> Self {
        Refusal {
            reason: e.reason(),
            detail: e.detail(),
        }
    }
}

impl HostPairing {
    /// Handles a pairing request: spends the armed guess, then answers with the challenge.
    pub fn on_request(
        req: &PairRequest,
        arm: &mut ArmWindow,
        bind: &Binding,
        now: Instant,
    ) -> Result<(HostPairing, PairChallenge), Refusal> {
        // The guess is spent here, before anything is computed or sent.
        let pin = arm.take(now)?;
        let (state, spake_b) = Spake2::<Ed25519Group>::start_b(
            &password(&pin),
            &Identity::new(&bind.client_fp),
            &Identity::new(&bind.host_fp),
        );
        let key = state.finish(&req.spake).map_err(|_| Refusal {
            reason: Reason::Malformed,
            detail: "not a SPAKE2 side-A message",
        })?;
        let spake: [u8; SPAKE_MSG_LEN] = spake_b.as_slice().try_into().map_err(|_| Refusal {
            reason: Reason::Internal,
            detail: "SPAKE2 message length",
        })?;
        let k = keys(&key, &req.spake, &spake, bind);
        Ok((
            HostPairing {
                client_confirm: mac(&k.client, &k.transcript),
                client_fp: bind.client_fp,
                name: req.name.clone(),
                deadline: now + PROOF_TIMEOUT,
            },
            PairChallenge {
                spake,
                host_confirm: mac(&k.host, &k.transcript),
            },
        ))
    }

    /// When the shell stops waiting for the proof.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Checks the client's proof (consumes the state: a second proof has nowhere to go).
    pub fn on_proof(self, proof: &PairProof, now: Instant) -> Result<Paired, Refusal> {
        if now >= self.deadline {
            return Err(Refusal {
                reason: Reason::Timeout,
                detail: "proof after the deadline",
            });
        }
        if !ct_eq(&proof.client_confirm, &self.client_confirm) {
            return Err(Refusal {
                reason: Reason::WrongPin,
                detail: "key confirmation failed",
            });
        }
        Ok(Paired {
            fingerprint: self.client_fp,
            name: self.name,
        })
    }
}

/// The client's side, waiting for the host's challenge.
pub struct ClientPairing {
    state: Spake2<Ed25519Group>,
    spake_a: [u8; SPAKE_MSG_LEN],
    bind: Binding,
}

/// Why the client gives up (printed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientPairError {
    /// The host's confirmation did not verify: wrong PIN, or different certificates on the two
    /// sides (a machine in the middle).
    WrongPinOrMitm,
    /// The host's SPAKE2 message is not a valid side-B element.
    Malformed,
}

impl std::fmt::Display for ClientPairError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientPairError::WrongPinOrMitm => f.write_str(
                "the host's key confirmation failed: wrong PIN, or someone between you and the host",
            ),
            ClientPairError::Malformed => f.write_str("the host sent a malformed SPAKE2 message"),
        }
    }
}

impl std::error::Error for ClientPairError {}

impl ClientPairing {
    pub fn start(pin: &str, name: &str, bind: Binding) -> (ClientPairing, PairRequest) {
        let (state, msg) = Spake2::<Ed25519Group>::start_a(
            &password(pin),
            &Identity::new(&bind.client_fp),
            &Identity::new(&bind.host_fp),
        );
        let mut spake_a = [0u8; SPAKE_MSG_LEN];
        // spake2's Ed25519 messages are always 1 + 32 bytes.
        spake_a.copy_from_slice(&msg[..SPAKE_MSG_LEN]);
        (
            ClientPairing {
                state,
                spake_a,
                bind,
            },
            PairRequest {
                name: name.to_owned(),
                spake: spake_a,
            },
        )
    }

    /// Verifies the host's confirmation and returns the client's proof.
    pub fn on_challenge(self, ch: &PairChallenge) -> Result<PairProof, ClientPairError> {
        let key = self
            .state
            .finish(&ch.spake)
            .map_err(|_| ClientPairError::Malformed)?;
        let k = keys(&key, &self.spake_a, &ch.spake, &self.bind);
        if !ct_eq(&ch.host_confirm, &mac(&k.host, &k.transcript)) {
            return Err(ClientPairError::WrongPinOrMitm);
        }
        Ok(PairProof {
            client_confirm: mac(&k.client, &k.transcript),
        })
    }
}

#[cfg(test)]
#[path = "pairing_tests.rs"]
mod tests;
