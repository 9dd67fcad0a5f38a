//! The host's side of one `strahl/1` control connection, sans-IO: decoded messages and `now` in,
//! [`Action`]s out. The quinn shell (`quic.rs`) reads frames, calls [`HostConn::on_message`],
//! and carries the actions out.
//!
//! Contract:
//! - The first message decides the connection's purpose: a pair request (any client
//!   certificate) or a hello (paired fingerprints only, else [`Reason::NotPaired`]). Anything
//!   else, or any message out of order or repeated (a second pair request, a second proof, a
//!   hello after pairing), closes the connection with [`Reason::UnexpectedMessage`].
//! - Pairing: see `pairing.rs`. On a good proof the action is [`Action::Paired`]: the shell
//!   stores the fingerprint (atomically) and only then sends `pair-ok` (or `refused internal`
//!   when it cannot store).
//! - Hello: a different major version is [`Reason::VersionMismatch`]; the host resolves codec
//!   (lowest common bit), bitrate (≤ the host cap), shard size (≤ both limits, even) and FEC %
//!   and answers `welcome` with a fresh key context and session id. `start` for that session id
//!   yields [`Action::StartSession`]; the shell derives the two media secrets from the TLS
//!   exporter with the key context and hands the session to the data plane.
//! - Streaming: loss reports and keyframe requests pass through; a reconfigure opens the next
//!   epoch (FEC bounded to the policy's range, bitrate to its cap); `stop` ends the session.
//! - Every state has a deadline ([`HostConn::deadline`]); past it, [`HostConn::on_timeout`]
//!   closes with [`Reason::Timeout`] (streaming sessions have none here: QUIC's idle timeout
//!   notices a vanished client).

use std::time::{Duration, Instant};

use crate::arm::ArmWindow;
use crate::msg::{
    Hello, KEY_CONTEXT_LEN, KeyframeRequest, LossReport, Message, Mode, Reason, Reconfigure,
    Refused, StopReason, VERSION_MAJOR, Welcome,
};
use crate::pairing::{Binding, HostPairing, Paired, Refusal};

/// How long a new connection may take to say what it wants, and a client to send `start`.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// What this host offers.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    /// Codec bits the host can send.
    pub codecs: u64,
    pub max_bitrate_kbps: u64,
    /// Largest shard the host's path carries (even).
    pub max_shard_len: u16,
    /// FEC % of a new session.
    pub fec_percent: u8,
    /// Bounds of FEC % a client may ask for.
    pub fec_range: (u8, u8),
}

/// A session the shell should start (after deriving the media secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPlan {
    pub welcome: Welcome,
    /// The client's media port (its address is the connection's).
    pub media_port: u16,
    pub client_fp: [u8; 32],
}

/// A change of configuration the shell hands to the data plane; it answers `reconfigured`
/// with the first frame of the new epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochChange {
    pub session_id: u64,
    pub epoch: u32,
    pub bitrate_kbps: u64,
    pub fec_percent: u8,
    pub mode: Mode,
    pub shard_len: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(Message),
    /// Store this client, then send `pair-ok` (or refuse with `Internal`), then close.
    Paired(Paired),
    StartSession(SessionPlan),
    Loss(u64, LossReport),
    Keyframe(u64, KeyframeRequest),
    Reconfigure(EpochChange),
    /// The session ends (client's stop); the shell stops it in the data plane and closes.
    Stop(u64, StopReason),
    /// Send `refused` with this reason and close the connection.
    Close(Reason, String),
}

enum State {
    New,
    Pairing(HostPairing),
    /// Pairing done; nothing more is expected on this connection.
    PairDone,
    AwaitStart(SessionPlan),
    Streaming(SessionPlan),
    Closed,
}

/// See the module contract.
pub struct HostConn {
    state: State,
    bind: Binding,
    paired: bool,
    policy: HostPolicy,
    deadline: Option<Instant>,
}

fn close(r: Refusal) -> Vec<Action> {
    vec![Action::Close(r.reason, r.detail.to_owned())]
}

fn unexpected(what: &str) -> Vec<Action> {
    vec![Action::Close(
        Reason::UnexpectedMessage,
        format!("{what} not expected now"),
    )]
}

impl HostConn {
    /// `paired`: the client's certificate fingerprint is in the paired store.
    pub fn new(bind: Binding, paired: bool, policy: HostPolicy, now: Instant) -> Self {
        HostConn {
            state: State::New,
            bind,
            paired,
            policy,
            deadline: Some(now + STEP_TIMEOUT),
        }
    }

    /// When [`HostConn::on_timeout`] must be called (None: no deadline now).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Ends the connection from the shell's side (e.g. the data plane refused the session).
    pub fn close(&mut self) {
        self.state = State::Closed;
        self.deadline = None;
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    pub fn on_timeout(&mut self, now: Instant) -> Vec<Action> {
        match self.deadline {
            Some(d) if now >= d => {
                self.state = State::Closed;
                self.deadline = None;
                vec![Action::Close(Reason::Timeout, "step timed out".into())]
            }
            _ => Vec::new(),
        }
    }

    /// Handles one message. `key_context` and `session_id` are fresh random values the shell
    /// draws for every message (used only when a hello is answered).
    pub fn on_message(
        &mut self,
        m: Message,
        arm: &mut ArmWindow,
        now: Instant,
        key_context: [u8; KEY_CONTEXT_LEN],
        session_id: u64,
    ) -> Vec<Action> {
        if let Message::Unknown(_) = m {
            return Vec::new(); // a newer peer's message: ignored
        }
        let state = std::mem::replace(&mut self.state, State::Closed);
        let (next, out) = match (state, m) {
            (State::New, Message::PairRequest(req)) => {
                match HostPairing::on_request(&req, arm, &self.bind, now) {
                    Ok((p, ch)) => {
                        self.deadline = Some(p.deadline());
                        (
                            State::Pairing(p),
                            vec![Action::Send(Message::PairChallenge(ch))],
                        )
                    }
                    Err(r) => (State::Closed, close(r)),
                }
            }
            (State::Pairing(p), Message::PairProof(proof)) => match p.on_proof(&proof, now) {
                Ok(paired) => {
                    self.deadline = Some(now + STEP_TIMEOUT);
                    (State::PairDone, vec![Action::Paired(paired)])
                }
                Err(r) => (State::Closed, close(r)),
            },
            (State::New, Message::Hello(h)) => self.hello(&h, now, key_context, session_id),
            (State::AwaitStart(plan), Message::Start(s))
                if s.session_id == plan.welcome.session_id =>
            {
                self.deadline = None;
                (
                    State::Streaming(plan.clone()),
                    vec![Action::StartSession(plan)],
                )
            }
            (State::Streaming(mut plan), m) => {
                let out = self.streaming(&mut plan, m);
                let done = matches!(out.last(), Some(Action::Stop(..) | Action::Close(..)));
                let next = if done {
                    State::Closed
                } else {
                    State::Streaming(plan)
                };
                (next, out)
            }
            (_, m) => (State::Closed, unexpected(m.name())),
        };
        self.state = next;
        if matches!(self.state, State::Closed) {
            self.deadline = None;
        }
        out
    }

    fn hello(
        &mut self,
        h: &Hello,
        now: Instant,
        key_context: [u8; KEY_CONTEXT_LEN],
        session_id: u64,
    ) -> (State, Vec<Action>) {
        let refuse =
            |reason, detail: &str| (State::Closed, vec![Action::Close(reason, detail.into())]);
        if h.version_major != VERSION_MAJOR {
            return refuse(Reason::VersionMismatch, "major version differs");
        }
        if !self.paired {
            return refuse(Reason::NotPaired, "certificate fingerprint not paired");
        }
        let common = h.codecs & self.policy.codecs;
        if common == 0 {
            return refuse(Reason::Malformed, "no codec in common");
        }
        let codec = 1u64 << common.trailing_zeros();
        let shard_len = h.max_shard_payload.min(self.policy.max_shard_len) & !1;
        let welcome = Welcome {
            mode: h.mode,
            codec,
            bitrate_kbps: h.bitrate_kbps.min(self.policy.max_bitrate_kbps).max(1),
            fec_percent: self.policy.fec_percent,
            shard_len: shard_len.max(64),
            key_context,
            // Varints carry 62 bits: an id drawn from 64 random bits is cut to what the wire
            // carries, so the id in `start` compares equal.
            session_id: session_id & crate::wire::VARINT_MAX,
            epoch: 0,
        };
        self.deadline = Some(now + STEP_TIMEOUT);
        let plan = SessionPlan {
            welcome: welcome.clone(),
            media_port: h.media_port,
            client_fp: self.bind.client_fp,
        };
        (
            State::AwaitStart(plan),
            vec![Action::Send(Message::Welcome(welcome))],
        )
    }

    fn streaming(&self, plan: &mut SessionPlan, m: Message) -> Vec<Action> {
        let id = plan.welcome.session_id;
        match m {
            Message::LossReport(l) => vec![Action::Loss(id, l)],
            Message::KeyframeRequest(k) => vec![Action::Keyframe(id, k)],
            Message::Reconfigure(r) => vec![Action::Reconfigure(self.next_epoch(plan, &r))],
            Message::Stop(s) => vec![Action::Stop(id, s.reason)],
            other => unexpected(other.name()),
        }
    }

    /// Opens the next epoch: the session's current configuration (kept in `plan.welcome`)
    /// with the requested changes, bounded by the policy.
    fn next_epoch(&self, plan: &mut SessionPlan, r: &Reconfigure) -> EpochChange {
        let w = &mut plan.welcome;
        let (lo, hi) = self.policy.fec_range;
        w.epoch = w.epoch.wrapping_add(1);
        w.bitrate_kbps = r
            .bitrate_kbps
            .unwrap_or(w.bitrate_kbps)
            .clamp(1, self.policy.max_bitrate_kbps);
        w.fec_percent = r.fec_percent.unwrap_or(w.fec_percent).clamp(lo, hi);
        w.mode = r.mode.unwrap_or(w.mode);
        EpochChange {
            session_id: w.session_id,
            epoch: w.epoch,
            bitrate_kbps: w.bitrate_kbps,
            fec_percent: w.fec_percent,
            mode: w.mode,
            shard_len: w.shard_len,
        }
    }
}

/// The `refused` message a [`Action::Close`] sends.
pub fn refused(reason: Reason, detail: &str) -> Message {
    Message::Refused(Refused {
        reason,
        detail: detail.to_owned(),
    })
}

#[cfg(test)]
#[path = "host_tests.rs"]
mod tests;
