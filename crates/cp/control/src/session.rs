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
//!     sessions apart by the ping payload, §A11), and a per-launch [`RtspSession`].
//!   - `/launch` from a client whose app runs → [`HostError::Busy`] (400 "An app is already
//!     running", today's answer): Moonlight takes `/resume` for its own running app and
//!     `/cancel` + `/launch` for another one (§B5), so a launch means a confused client.
//!   - `/launch` from a client without an app while `max_sessions` apps run →
//!     [`HostError::Full`] (400).
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

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use strahl_enet::{ControlEvent, DisconnectReason};
use strahl_gamestream::handlers::canonical_ip;
use strahl_gamestream::{HostError, HostState, LaunchRequest};
use strahl_ipc::{
    AudioParams, Codec, KeyMaterial, Message, Ports, Protocol, Secret, SessionStart, SessionStop,
    SessionUpdate, StopReason, StreamOptions, VideoParams,
};
use strahl_metrics::{GLOBAL, Metric, Registry};

use crate::fec_adapt::{FecBounds, FecController, ReportClass};
use strahl_rtsp::{
    Event, LaunchContext, NegotiatedStream, Parsed, PingPayload, RtspSession, VideoCodec,
    parse_request,
};
use strahl_seal::gamestream::{Role, RtspCipher, RtspRead};

/// How long a launch waits for its RTSP handshake (Sunshine's ping_timeout, §A7).
pub const PENDING_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest plain RTSP request buffered (head + body limits of the parser).
pub const MAX_PLAIN_REQUEST: usize = strahl_rtsp::limits::MAX_REQUEST_BYTES;
/// Largest `rtspenc` frame buffered.
pub const MAX_ENCRYPTED_FRAME: usize = RtspCipher::HEADER_LEN + RtspCipher::MAX_MESSAGE_LEN;
/// The top bit of an `rtspenc` frame's first byte (its length word's flag, §A8).
const RTSPENC_FLAG: u8 = 0x80;

/// Static settings from the configuration.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// UDP ports announced in the SETUP replies (and the data plane's source ports).
    pub video_port: u16,
    pub audio_port: u16,
    pub control_port: u16,
    /// FEC percentage for the §A18 bitrate formula and the data plane's start
    /// (`[video] fec_percent_default`).
    pub fec_percent: u8,
    /// Bounds of the adaptive FEC controller (`[video] fec_percent_min/max`).
    pub fec_percent_min: u8,
    pub fec_percent_max: u8,
    /// Highest encoder bitrate handed to the data plane (kbit/s).
    pub max_bitrate_kbps: u32,
    /// Clients with a running app at once (`[gamestream] max_sessions`; 0 is taken as 1).
    pub max_sessions: u8,
}

/// The random values a launch needs, drawn by the caller.
#[derive(Debug, Clone, Copy)]
pub struct LaunchRandom {
    pub ping_payload: u64,
    pub connect_data: u32,
}

/// The GameStream termination HRESULT for a host-ended stream (§A12, /cancel).
pub const TERMINATION_GRACEFUL: u32 = strahl_enet::message::TERMINATION_GRACEFUL;

/// A paired client: SHA-256 of its certificate (DER). Not secret (the certificate is public),
/// only an index.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientKey([u8; 32]);

impl ClientKey {
    pub fn of_cert(der: &[u8]) -> Self {
        use sha2::Digest;
        ClientKey(sha2::Sha256::digest(der).into())
    }
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "client ")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// What the caller does on the ENet control server (executed before the step's IPC messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlAction {
    /// Expect a CONNECT carrying `connect_data`; the session's control traffic uses `rikey`.
    Register {
        session: u64,
        connect_data: u32,
        rikey: [u8; 16],
    },
    /// Send the termination message with `hresult`, then disconnect (or forget a session that
    /// never connected).
    Terminate { session: u64, hresult: u32 },
}

/// The effects of one manager step: control-server actions first, then data-plane messages.
#[derive(Debug, Default)]
pub struct Actions {
    pub control: Vec<ControlAction>,
    pub ipc: Vec<Message>,
}

impl Actions {
    pub fn is_empty(&self) -> bool {
        self.control.is_empty() && self.ipc.is_empty()
    }

    fn extend(&mut self, other: Actions) {
        self.control.extend(other.control);
        self.ipc.extend(other.ipc);
    }
}

/// The IPC messages only. For callers without the control server at hand; prefer
/// `control_link::dispatch`, which also executes the control actions.
impl IntoIterator for Actions {
    type Item = Message;
    type IntoIter = std::vec::IntoIter<Message>;
    fn into_iter(self) -> Self::IntoIter {
        self.ipc.into_iter()
    }
}

/// How the RTSP connections of a pending launch are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtspMode {
    Plain,
    Encrypted,
}

/// Result of feeding the bytes of one RTSP connection.
#[derive(Debug)]
pub enum RtspStep {
    /// Not a whole message yet: read more (at most the stated total).
    NeedMore { limit: usize },
    /// Send `bytes`, then shut the connection. `control` goes to the ENet server, then `ipc`
    /// to the data plane.
    Reply {
        bytes: Vec<u8>,
        control: Vec<ControlAction>,
        ipc: Vec<Message>,
        summary: String,
    },
    /// Close without answering (no matching pending launch, undecryptable or oversized input).
    Close { why: String },
}

struct Pending {
    ping_payload: PingPayload,
    connect_data: u32,
    rikey: [u8; 16],
    rikeyid: u32,
    /// Where the /launch (or /resume) came from: plain RTSP is matched by it.
    client_ip: IpAddr,
    armed_at: Instant,
    /// Tie-break for launches armed at the same `now` (arm order).
    armed_seq: u64,
    rtsp: RtspSession,
    /// Host side of `rtspenc` (corever ≥ 1).
    cipher: Option<RtspCipher>,
    negotiated: Option<NegotiatedStream>,
}

impl Pending {
    fn age_key(&self) -> (Instant, u64) {
        (self.armed_at, self.armed_seq)
    }
}

/// A streaming session's control-plane state.
struct Stream {
    id: u64,
    fec: FecController,
    /// ENet's latest round-trip estimate for this session's control stream.
    rtt: Option<Duration>,
    fec_recovered: u64,
    fec_lost: u64,
}

/// One client with a running app.
struct ClientSlot {
    app: u32,
    pending: Option<Pending>,
    stream: Option<Stream>,
}

/// A session the data plane was asked to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streaming {
    pub id: u64,
}

/// A streaming session as the status page sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamView {
    pub id: u64,
    pub client: ClientKey,
    pub app: u32,
    /// The adaptive FEC percentage now.
    pub fec_percent: u8,
    pub rtt: Option<Duration>,
    /// FEC status reports of this session: blocks rebuilt from parity / blocks lost.
    pub fec_recovered: u64,
    pub fec_lost: u64,
}

/// See the module contract.
pub struct SessionManager {
    cfg: ManagerConfig,
    clients: BTreeMap<ClientKey, ClientSlot>,
    next_id: u64,
    next_arm_seq: u64,
}

impl SessionManager {
    pub fn new(cfg: ManagerConfig) -> Self {
        SessionManager {
            cfg,
            clients: BTreeMap::new(),
            next_id: 1,
            next_arm_seq: 0,
        }
    }

    pub fn config(&self) -> &ManagerConfig {
        &self.cfg
    }

    fn max_sessions(&self) -> usize {
        usize::from(self.cfg.max_sessions.max(1))
    }

    /// Clients with a running app.
    pub fn running_apps(&self) -> usize {
        self.clients.len()
    }

    /// The app running for `client`, if any.
    pub fn app_of(&self, client: &ClientKey) -> Option<u32> {
        self.clients.get(client).map(|c| c.app)
    }

    /// /serverinfo `state` and `currentgame` for the asking client (`None`: anonymous).
    pub fn state_for(&self, client: Option<&ClientKey>) -> HostState {
        match client.and_then(|c| self.clients.get(c)) {
            Some(slot) => HostState::Running { app_id: slot.app },
            None if self.clients.len() >= self.max_sessions() => HostState::Full,
            None => HostState::Free,
        }
    }

    /// The session `client` streams, if any.
    pub fn streaming_of(&self, client: &ClientKey) -> Option<Streaming> {
        self.clients
            .get(client)?
            .stream
            .as_ref()
            .map(|s| Streaming { id: s.id })
    }

    /// Every streaming session, by id.
    pub fn streams(&self) -> Vec<StreamView> {
        let mut v: Vec<StreamView> = self
            .clients
            .iter()
            .filter_map(|(k, c)| {
                let s = c.stream.as_ref()?;
                Some(StreamView {
                    id: s.id,
                    client: *k,
                    app: c.app,
                    fec_percent: s.fec.current(),
                    rtt: s.rtt,
                    fec_recovered: s.fec_recovered,
                    fec_lost: s.fec_lost,
                })
            })
            .collect();
        v.sort_by_key(|s| s.id);
        v
    }

    /// Session `id`'s current FEC percentage (adaptive), if it streams.
    pub fn fec_percent(&self, id: u64) -> Option<u8> {
        self.streams()
            .into_iter()
            .find(|s| s.id == id)
            .map(|s| s.fec_percent)
    }

    /// `/launch` for `req`'s client (see the module contract for busy and full).
    pub fn launch(
        &mut self,
        req: &LaunchRequest,
        rand: LaunchRandom,
        now: Instant,
    ) -> Result<(), HostError> {
        let client = ClientKey::of_cert(&req.client_cert_der);
        if self.clients.contains_key(&client) {
            return Err(HostError::Busy);
        }
        if self.clients.len() >= self.max_sessions() {
            return Err(HostError::Full {
                max: self.cfg.max_sessions.max(1),
            });
        }
        let pending = self.arm(req, rand, now);
        self.clients.insert(
            client,
            ClientSlot {
                app: req.params.app_id,
                pending: Some(pending),
                stream: None,
            },
        );
        Ok(())
    }

    /// `/resume`: new keys for the client's running app; its running stream (and ENet
    /// registration) is replaced.
    pub fn resume(
        &mut self,
        req: &LaunchRequest,
        rand: LaunchRandom,
        now: Instant,
    ) -> Result<Actions, HostError> {
        let client = ClientKey::of_cert(&req.client_cert_der);
        if !self.clients.contains_key(&client) {
            return Err(HostError::NoRunningApp);
        }
        let pending = self.arm(req, rand, now);
        let slot = self
            .clients
            .get_mut(&client)
            .ok_or(HostError::NoRunningApp)?;
        let actions = stop_stream(slot, StopReason::Replaced, true);
        slot.pending = Some(pending);
        Ok(actions)
    }

    /// `/cancel` from `client`: terminate its control stream, stop its stream, free its slot.
    /// Idempotent; other clients are not touched.
    pub fn cancel(&mut self, client: &ClientKey) -> Actions {
        match self.clients.remove(client) {
            Some(mut slot) => stop_stream(&mut slot, StopReason::ClientQuit, true),
            None => Actions::default(),
        }
    }

    /// The operator stops session `id` (status page): its client's app is cancelled. `None`
    /// when no client streams under `id`.
    pub fn cancel_session(&mut self, id: u64) -> Option<Actions> {
        let client = self.owner_of(id)?;
        Some(self.cancel(&client))
    }

    fn owner_of(&self, id: u64) -> Option<ClientKey> {
        self.clients
            .iter()
            .find(|(_, c)| c.stream.as_ref().is_some_and(|s| s.id == id))
            .map(|(k, _)| *k)
    }

    /// The data plane ended session `id` (or went away: `None`, every session). The client's
    /// control stream is terminated: without media it would otherwise sit in a stream that never
    /// resumes. Its app stays running, so the client can `/resume` once the data plane is back.
    pub fn session_ended(&mut self, id: Option<u64>) -> Actions {
        let mut a = Actions::default();
        for slot in self.clients.values_mut() {
            if let Some(s) = &slot.stream
                && (id.is_none() || Some(s.id) == id)
            {
                a.control.push(ControlAction::Terminate {
                    session: s.id,
                    hresult: TERMINATION_GRACEFUL,
                });
                slot.stream = None;
            }
        }
        a
    }

    /// A control-stream event for `session` (the SessionStart id it was registered under).
    pub fn on_control(&mut self, session: u64, ev: &ControlEvent, now: Instant) -> Actions {
        self.on_control_in(session, ev, now, &GLOBAL)
    }

    /// [`Self::on_control`] counting into `metrics` (tests pass their own registry).
    pub fn on_control_in(
        &mut self,
        session: u64,
        ev: &ControlEvent,
        now: Instant,
        metrics: &Registry,
    ) -> Actions {
        let mut a = Actions::default();
        let Some(slot) = self
            .clients
            .values_mut()
            .find(|c| c.stream.as_ref().is_some_and(|s| s.id == session))
        else {
            // A replaced or stopped session's late events (its disconnect included).
            return a;
        };
        let keyframe = |cause: &str| {
            if let Some(i) = Registry::label_index(Metric::ControlKeyframeRequests, cause) {
                metrics.add_at(Metric::ControlKeyframeRequests, i, 1);
            }
            Message::SessionUpdate(SessionUpdate {
                id: session,
                bitrate_kbps: None,
                fec_percent: None,
                request_keyframe: true,
            })
        };
        match ev {
            ControlEvent::IdrRequested => a.ipc.push(keyframe("idr")),
            ControlEvent::RefInvalidated { .. } => a.ipc.push(keyframe("rfi")),
            ControlEvent::FecStatus(r) => {
                let Some(stream) = slot.stream.as_mut() else {
                    return a;
                };
                let (class, changed) = stream.fec.on_report(r, now);
                match class {
                    ReportClass::Recovered => stream.fec_recovered += 1,
                    ReportClass::Lost => stream.fec_lost += 1,
                    ReportClass::Clean => {}
                }
                if let Some(i) = Registry::label_index(Metric::ControlFecReports, class.label()) {
                    metrics.add_at(Metric::ControlFecReports, i, 1);
                }
                if let Some(p) = changed {
                    a.ipc.push(fec_update(session, p, metrics));
                }
            }
            ControlEvent::RoundTrip { rtt } => {
                if let Some(stream) = slot.stream.as_mut() {
                    stream.rtt = Some(*rtt);
                }
            }
            ControlEvent::Disconnected { reason } => {
                let stop = match reason {
                    DisconnectReason::PeerDisconnected => Some(StopReason::ClientQuit),
                    DisconnectReason::Timeout => Some(StopReason::ClientTimeout),
                    DisconnectReason::DecryptFailed => Some(StopReason::Error),
                    // Terminated: we ended it ourselves and already sent the SessionStop.
                    // HostShutdown: serve stops its sessions on the way out.
                    DisconnectReason::Terminated(_) | DisconnectReason::HostShutdown => None,
                };
                if let Some(reason) = stop {
                    // The app keeps running: the client may /resume.
                    a = stop_stream(slot, reason, false);
                }
            }
            ControlEvent::Connected { .. }
            | ControlEvent::StartB
            | ControlEvent::LtrAck { .. }
            | ControlEvent::Input(_) => {}
        }
        a
    }

    /// Time passes: every session's adaptive FEC may decay. Call every few hundred ms.
    pub fn tick(&mut self, now: Instant) -> Actions {
        self.tick_in(now, &GLOBAL)
    }

    pub fn tick_in(&mut self, now: Instant, metrics: &Registry) -> Actions {
        let mut a = Actions::default();
        for slot in self.clients.values_mut() {
            if let Some(s) = slot.stream.as_mut()
                && let Some(p) = s.fec.tick(now)
            {
                a.ipc.push(fec_update(s.id, p, metrics));
            }
        }
        a
    }

    fn arm(&mut self, req: &LaunchRequest, rand: LaunchRandom, now: Instant) -> Pending {
        let mut ctx =
            LaunchContext::new(PingPayload::from_u64(rand.ping_payload), rand.connect_data);
        ctx.video_port = self.cfg.video_port;
        ctx.audio_port = self.cfg.audio_port;
        ctx.control_port = self.cfg.control_port;
        ctx.fec_percent = u32::from(self.cfg.fec_percent);
        let p = &req.params;
        let armed_seq = self.next_arm_seq;
        self.next_arm_seq += 1;
        Pending {
            ping_payload: PingPayload::from_u64(rand.ping_payload),
            connect_data: rand.connect_data,
            rikey: p.rikey,
            rikeyid: p.rikeyid,
            client_ip: canonical_ip(req.client_ip),
            armed_at: now,
            armed_seq,
            rtsp: RtspSession::new(ctx),
            cipher: (p.corever >= 1).then(|| RtspCipher::new(&p.rikey, Role::Host)),
            negotiated: None,
        }
    }

    fn expire(&mut self, now: Instant) {
        for (client, slot) in &mut self.clients {
            if slot
                .pending
                .as_ref()
                .is_some_and(|p| now.saturating_duration_since(p.armed_at) >= PENDING_TIMEOUT)
            {
                log::info!(
                    "pending launch of {client:?} expired: no RTSP PLAY within {PENDING_TIMEOUT:?}"
                );
                slot.pending = None;
            }
        }
    }

    /// Whether any launch is pending (RTSP is served only then).
    pub fn rtsp_open(&mut self, now: Instant) -> bool {
        self.expire(now);
        self.clients.values().any(|c| c.pending.is_some())
    }

    /// The framing of `client`'s pending launch, or `None` when it has none.
    pub fn pending_mode(&mut self, client: &ClientKey, now: Instant) -> Option<RtspMode> {
        self.expire(now);
        self.clients.get(client)?.pending.as_ref().map(|p| {
            if p.cipher.is_some() {
                RtspMode::Encrypted
            } else {
                RtspMode::Plain
            }
        })
    }

    /// Pending launches framed as `mode`, oldest first (plain ones only from `peer_ip`).
    fn candidates(&self, mode: RtspMode, peer_ip: IpAddr) -> Vec<ClientKey> {
        let mut v: Vec<(&ClientKey, &Pending)> = self
            .clients
            .iter()
            .filter_map(|(k, c)| c.pending.as_ref().map(|p| (k, p)))
            .filter(|(_, p)| match mode {
                RtspMode::Encrypted => p.cipher.is_some(),
                RtspMode::Plain => p.cipher.is_none() && p.client_ip == peer_ip,
            })
            .collect();
        v.sort_by_key(|(_, p)| p.age_key());
        v.into_iter().map(|(k, _)| *k).collect()
    }

    /// Feeds the bytes of one RTSP connection so far (`eof`: the peer finished sending).
    pub fn rtsp_input(
        &mut self,
        input: &[u8],
        eof: bool,
        peer: SocketAddr,
        now: Instant,
    ) -> RtspStep {
        self.expire(now);
        if !self.clients.values().any(|c| c.pending.is_some()) {
            return RtspStep::Close {
                why: "no launch is pending".into(),
            };
        }
        let Some(&first) = input.first() else {
            if eof {
                return RtspStep::Close {
                    why: "empty connection".into(),
                };
            }
            // Which framing is not known before the first byte; both limits fit the buffer.
            return RtspStep::NeedMore {
                limit: MAX_PLAIN_REQUEST.max(MAX_ENCRYPTED_FRAME),
            };
        };
        let peer_ip = canonical_ip(peer.ip());
        let mut plain = Vec::new();
        let (client, encrypted) = if first & RTSPENC_FLAG != 0 {
            let candidates = self.candidates(RtspMode::Encrypted, peer_ip);
            if candidates.is_empty() {
                return RtspStep::Close {
                    why: "an rtspenc frame, but no pending launch uses rtspenc".into(),
                };
            }
            let mut owner = None;
            let mut last_err = String::new();
            for k in candidates {
                let Some(cipher) = self
                    .clients
                    .get(&k)
                    .and_then(|c| c.pending.as_ref())
                    .and_then(|p| p.cipher.as_ref())
                else {
                    continue;
                };
                match cipher.open(input, &mut plain) {
                    // The frame length is in the clear: every key needs the same bytes.
                    Ok(RtspRead::NeedMore { needed }) if !eof => {
                        return RtspStep::NeedMore {
                            limit: needed.min(MAX_ENCRYPTED_FRAME),
                        };
                    }
                    Ok(RtspRead::NeedMore { .. }) => {
                        return RtspStep::Close {
                            why: "rtspenc frame truncated".into(),
                        };
                    }
                    Ok(RtspRead::Message { .. }) => {
                        owner = Some(k);
                        break;
                    }
                    Err(e) => last_err = format!("{e:?}"),
                }
            }
            match owner {
                Some(k) => (k, true),
                None => {
                    return RtspStep::Close {
                        why: format!(
                            "rtspenc: no pending launch's key opens the frame ({last_err})"
                        ),
                    };
                }
            }
        } else {
            match self.candidates(RtspMode::Plain, peer_ip).first() {
                Some(k) => (*k, false),
                None => {
                    return RtspStep::Close {
                        why: format!("no plain-RTSP launch is pending from {peer_ip}"),
                    };
                }
            }
        };
        let Some(p) = self
            .clients
            .get_mut(&client)
            .and_then(|c| c.pending.as_mut())
        else {
            return RtspStep::Close {
                why: "pending launch vanished".into(),
            };
        };
        let outcome = if encrypted {
            p.rtsp.handle_message(&plain)
        } else {
            match parse_request(input) {
                Ok(Parsed::Complete { request, .. }) => p.rtsp.handle(&request),
                Ok(Parsed::NeedMore) if !eof => {
                    return RtspStep::NeedMore {
                        limit: MAX_PLAIN_REQUEST,
                    };
                }
                Ok(Parsed::NeedMore) => p.rtsp.handle_message(input),
                Err(e) => RtspSession::malformed(&e),
            }
        };
        let request_line = {
            let text: &[u8] = if encrypted { &plain } else { input };
            let line = text
                .split(|&b| b == b'\r' || b == b'\n')
                .next()
                .unwrap_or(&[]);
            String::from_utf8_lossy(&line[..line.len().min(120)]).into_owned()
        };
        let plain_reply = outcome.response.to_bytes();
        let bytes = match p.cipher.as_mut() {
            Some(c) => {
                let mut out = Vec::with_capacity(plain_reply.len() + RtspCipher::HEADER_LEN);
                if let Err(e) = c.seal(&plain_reply, &mut out) {
                    return RtspStep::Close {
                        why: format!("rtspenc seal: {e:?}"),
                    };
                }
                out
            }
            None => plain_reply,
        };
        let mut summary = format!(
            "{client:?}: {request_line:?} → {}",
            outcome.response.status.0
        );
        if let Some(e) = &outcome.error {
            summary.push_str(&format!(" ({e})"));
        }
        let mut a = Actions::default();
        match outcome.event {
            Some(Event::Configured(n)) => {
                summary.push_str(&format!(
                    ": {}x{}@{} {:?} packet {} B, encoder {} kbit/s",
                    n.config.width,
                    n.config.height,
                    n.config.max_fps,
                    n.config.codec,
                    n.config.packet_size,
                    n.encoder_bitrate_kbps
                ));
                p.negotiated = Some(*n);
            }
            Some(Event::Play) => {
                if let Some((s, connect_data, rikey)) = self.session_start(&client, peer.ip()) {
                    summary.push_str(&format!(
                        ": SessionStart {} sent to the data plane, control stream expected",
                        s.id
                    ));
                    a.control.push(ControlAction::Register {
                        session: s.id,
                        connect_data,
                        rikey,
                    });
                    let bounds = FecBounds {
                        min: self.cfg.fec_percent_min,
                        default: self.cfg.fec_percent,
                        max: self.cfg.fec_percent_max,
                    };
                    let fec = FecController::new(bounds, now);
                    GLOBAL.set(Metric::ControlFecPercent, u64::from(fec.current()));
                    if let Some(slot) = self.clients.get_mut(&client) {
                        // Resume stopped any earlier stream; this only guards the bookkeeping.
                        a.extend(stop_stream(slot, StopReason::Replaced, true));
                        slot.stream = Some(Stream {
                            id: s.id,
                            fec,
                            rtt: None,
                            fec_recovered: 0,
                            fec_lost: 0,
                        });
                    }
                    a.ipc.push(Message::SessionStart(Box::new(s)));
                }
                // This launch's RTSP phase is over: its RTSP closes until its next launch.
                if let Some(slot) = self.clients.get_mut(&client) {
                    slot.pending = None;
                }
            }
            Some(Event::Teardown) => {
                if let Some(slot) = self.clients.get_mut(&client) {
                    a.extend(stop_stream(slot, StopReason::ClientQuit, true));
                    slot.pending = None;
                }
            }
            Some(Event::Setup(_)) | None => {}
        }
        RtspStep::Reply {
            bytes,
            control: a.control,
            ipc: a.ipc,
            summary,
        }
    }

    /// The SessionStart for `client`'s pending launch, with its connect data and key (PLAY is
    /// accepted only after ANNOUNCE, so the negotiated stream is always there; `None` would be
    /// a state-machine bug, not peer input). A stream the client still had is replaced by the
    /// caller's bookkeeping (resume already stopped it).
    fn session_start(
        &mut self,
        client: &ClientKey,
        client_ip: IpAddr,
    ) -> Option<(SessionStart, u32, [u8; 16])> {
        let id = self.next_id;
        let p = self.clients.get(client)?.pending.as_ref()?;
        let n = p.negotiated.as_ref()?;
        let c = &n.config;
        // ANNOUNCE bounds geometry (≤ 16384), fps (≤ 1000) and packet size (≤ 65488): the u16
        // conversions cannot saturate for accepted values.
        let u16_of = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        let start = SessionStart {
            id,
            protocol: Protocol::GameStream,
            peer: SocketAddr::new(client_ip, 0),
            video: VideoParams {
                width: u16_of(c.width),
                height: u16_of(c.height),
                fps: u16_of(c.max_fps),
                bitrate_kbps: n.encoder_bitrate_kbps.min(self.cfg.max_bitrate_kbps),
                packet_size: u16_of(c.packet_size),
                fec_percent: self.cfg.fec_percent,
                codec: match c.codec {
                    VideoCodec::H264 => Codec::H264,
                    VideoCodec::Hevc => Codec::Hevc,
                    VideoCodec::Av1 => Codec::Av1,
                },
            },
            audio: AudioParams {
                channels: n.audio.channels,
                sample_rate_hz: 48_000,
                packet_duration_ms: c.audio.packet_duration_ms,
                bitrate_kbps: n.audio.bitrate_bps / 1000,
            },
            keys: KeyMaterial::GameStream {
                rikey: Secret(p.rikey),
                rikeyid: p.rikeyid,
            },
            ports: Ports {
                video_src: self.cfg.video_port,
                audio_src: self.cfg.audio_port,
                video_dst: 0,
                audio_dst: 0,
            },
            stream: stream_options(c, p.ping_payload),
        };
        let (connect_data, rikey) = (p.connect_data, p.rikey);
        self.next_id += 1;
        Some((start, connect_data, rikey))
    }
}

/// Ends `slot`'s stream; `terminate`: also end its control stream (the client is still
/// connected and must be told).
fn stop_stream(slot: &mut ClientSlot, reason: StopReason, terminate: bool) -> Actions {
    let mut a = Actions::default();
    if let Some(s) = slot.stream.take() {
        if terminate {
            a.control.push(ControlAction::Terminate {
                session: s.id,
                hresult: TERMINATION_GRACEFUL,
            });
        }
        a.ipc
            .push(Message::SessionStop(SessionStop { id: s.id, reason }));
    }
    a
}

/// A FEC change for `session`. The gauge is host-wide (the metrics table has no per-session
/// series): it shows the latest change of any session; the status page shows each session's.
fn fec_update(session: u64, percent: u8, metrics: &Registry) -> Message {
    metrics.set(Metric::ControlFecPercent, u64::from(percent));
    Message::SessionUpdate(SessionUpdate {
        id: session,
        bitrate_kbps: None,
        fec_percent: Some(percent),
        request_keyframe: false,
    })
}

/// Encryption and ping matching as negotiated in ANNOUNCE (§A10, §A11): the client puts the
/// payload in its pings only with ML_FF_SESSION_ID_V1; audio is encrypted with SS_ENC_AUDIO or
/// the legacy featureFlags bit 0x20.
fn stream_options(c: &strahl_rtsp::StreamConfig, ping: PingPayload) -> StreamOptions {
    use strahl_rtsp::EncryptionFlags;
    use strahl_rtsp::announce::{ML_FF_FEC_STATUS, ML_FF_SESSION_ID_V1, NV_FF_AUDIO_ENCRYPTION};
    let mut flags = 0;
    if c.encryption_enabled.contains(EncryptionFlags::VIDEO) {
        flags |= StreamOptions::ENCRYPT_VIDEO;
    }
    if c.encryption_enabled.contains(EncryptionFlags::AUDIO)
        || c.nv_feature_flags & NV_FF_AUDIO_ENCRYPTION != 0
    {
        flags |= StreamOptions::ENCRYPT_AUDIO;
    }
    if c.ml_feature_flags & ML_FF_FEC_STATUS != 0 {
        flags |= StreamOptions::FEC_STATUS;
    }
    StreamOptions {
        ping_payload: (c.ml_feature_flags & ML_FF_SESSION_ID_V1 != 0).then(|| *ping.as_bytes()),
        flags,
        min_fec_packets: u8::try_from(c.min_required_fec_packets).unwrap_or(u8::MAX),
    }
}

/// A short, non-reversible fingerprint of a key for logs (first 4 bytes of SHA-256, hex), so a
/// log reader can match keys without the log leaking them.
pub fn key_fingerprint(key: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(key);
    d[..4].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
