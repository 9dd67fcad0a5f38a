//! The GameStream session manager, sans-IO (gamestream-host.md §A7, §A8, §A9, §A11, §A19).
//!
//! Contract:
//! - **One session per paired client, up to `max_sessions` at once.** A client is its paired
//!   certificate ([`ClientKey`]: SHA-256 of the DER that authenticated the HTTPS request;
//!   Moonlight sends one fixed `uniqueid` from every device, §B2). Each client has at most one
//!   running app, one pending launch and one streaming session.
//!   - `/launch` from a client without a running app while fewer than `max_sessions` apps run:
//!     its app runs and its *pending launch* is armed: the keys (rikey, rikeyid), a 16-character
//!     ping payload and random connect data drawn for this launch alone (the data plane tells
//!     sessions apart by the ping payload, §A11), and a per-launch [`strahl_rtsp::RtspSession`].
//!   - `/launch` from a client whose app runs → [`strahl_gamestream::HostError::Busy`] (400
//!     "An app is already running", today's answer): Moonlight takes `/resume` for its own
//!     running app and `/cancel` + `/launch` for another one (§B5), so a launch means a
//!     confused client.
//!   - `/launch` from a client without an app while `max_sessions` apps run →
//!     [`strahl_gamestream::HostError::Full`] (400).
//!   - `/resume` and `/cancel` act on the calling client's app only: resume re-arms its pending
//!     launch with new keys (replacing its running stream); cancel stops its stream and frees
//!     its slot. Other clients' sessions are never touched.
//!   - /serverinfo ([`SessionManager::state_for`]) answers for the asking client: its own app →
//!     busy with that app as `currentgame`; no app and room → free (it may launch); no app and
//!     no room → busy with `currentgame` 0 (its launch gets the 400 that says why). An
//!     anonymous asker (HTTP) is a client without an app.
//! - A pending launch is valid for [`PENDING_TIMEOUT`] (Sunshine's ping_timeout), per client;
//!   RTSP is served while any is pending ([`SessionManager::rtsp_open`]).
//! - **Which pending launch an RTSP connection belongs to.** Every connection carries one
//!   request (§A8) and is matched on its own, from its first bytes:
//!   - `rtspenc` (corever ≥ 1): a frame starts with its length word, whose top bit is set (a
//!     plain request starts with an ASCII method name). The frame is opened with the key of each
//!     encrypted pending launch, oldest first; the launch whose rikey authenticates the GCM tag
//!     owns it (another key fails the tag, and a failed open changes no state). No key opens
//!     it → closed without a reply. Two clients never collide, whatever their addresses.
//!   - plain RTSP (corever 0): the plain pending launches whose `/launch` came from the
//!     connection's source IP (IPv4-mapped addresses compared as IPv4); the oldest armed if
//!     several (two plain clients behind one address are served in launch order until the
//!     older one reaches PLAY or expires); none → closed without a reply.
//! - The chosen launch's RTSP input goes through its `RtspCipher` (one host counter across the
//!   connections of a launch) or in plain. ANNOUNCE stores the negotiated stream; PLAY turns it
//!   into a `SessionStart` (protocol GameStream, the ANNOUNCE geometry and packet size, the
//!   encoder bitrate, the keys, the client's IP, the launch's ping payload) and retires that
//!   launch. The client's UDP ports are not known yet: the data plane learns them from the pings
//!   (§A11), so `peer` carries port 0 and `video_dst`/`audio_dst` are 0. Every session uses the
//!   same host ports.
//! - ENet control (§A12) is driven through [`ControlAction`]s the caller executes against the
//!   control server, always *before* the IPC messages of the same step: PLAY registers the new
//!   session (the launch's connect data + rikey); `/cancel` and a `/resume` that replaces a
//!   stream terminate the old registration (termination message 0x80030023, then the
//!   `SessionStop`). Registrations are keyed by the SessionStart id, which the control server
//!   reports with every event, so a session's events reach that session only.
//! - Control events ([`SessionManager::on_control`]) for a streaming session: IDR request and
//!   reference-frame invalidation → `SessionUpdate { request_keyframe }` for that session;
//!   SS_FRAME_FEC_STATUS → that session's adaptive FEC controller ([`crate::fec_adapt`]) →
//!   `SessionUpdate { fec_percent }` on a change ([`SessionManager::tick`] drives every
//!   session's decay); ENet's round-trip estimate is kept per session; an ENet disconnect or
//!   timeout ends that stream (`SessionStop` ClientQuit / ClientTimeout) but keeps its app, so
//!   `/resume` works. Events for an id no client streams under are stale and ignored. Input is
//!   not handled here (the I/O shell routes it to the input sink).
//! - No sockets, no clock, no randomness inside: the caller passes `now` and the random values.
//!
//! Files: `session/types.rs` (configuration, keys, actions, per-client state), `manager.rs`
//! (lifecycle, control events, views) and `rtsp.rs` (RTSP connections → SessionStart); tests in
//! `session/tests.rs`. This file only declares them and re-exports the public API: it imports
//! them, so none of them imports it (siblings name each other directly, `super::types::…`); only
//! the tests, which it does not import, use it (`use super::*`).

mod manager;
mod rtsp;
mod types;

pub use manager::SessionManager;
pub use types::{
    Actions, ClientKey, ControlAction, LaunchRandom, MAX_ENCRYPTED_FRAME, MAX_PLAIN_REQUEST,
    ManagerConfig, PENDING_TIMEOUT, RtspMode, RtspStep, StreamFormat, StreamView, Streaming,
    TERMINATION_GRACEFUL, key_fingerprint,
};

#[cfg(test)]
mod tests;
