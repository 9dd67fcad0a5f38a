//! The GameStream session manager, sans-IO (gamestream-host.md §A7, §A8, §A9, §A11).
//!
//! Contract:
//! - One app at a time. `/launch` marks the app running and arms a *pending launch*: the keys
//!   (rikey, rikeyid), a 16-character ping payload, random connect data and a per-launch
//!   [`RtspSession`]. The pending launch is valid for [`PENDING_TIMEOUT`] (Sunshine's
//!   ping_timeout); RTSP is served only while one is pending ([`SessionManager::rtsp_mode`]).
//! - RTSP input (bytes of one TCP connection so far) goes through
//!   [`SessionManager::rtsp_input`]: `rtspenc` framing via `RtspCipher` when the launch had
//!   corever ≥ 1 (one host counter across the connections of a launch), plain otherwise. The
//!   result is the bytes to send back and the IPC messages for the data plane.
//! - ANNOUNCE stores the negotiated stream; PLAY turns it into a `SessionStart` (protocol
//!   GameStream, the ANNOUNCE geometry and packet size, the encoder bitrate, the keys, the
//!   client's IP) and retires the pending launch. The client's UDP ports are not known yet:
//!   the data plane learns them from the pings (§A11), so `peer` carries port 0 and
//!   `video_dst`/`audio_dst` are 0.
//! - `/cancel` stops the streaming session (`SessionStop`) and frees everything; `/resume`
//!   re-arms a pending launch with new keys for the running app (replacing a running stream).
//! - ENet control (§A12) is driven through [`ControlAction`]s the caller executes against the
//!   control server, always *before* the IPC messages of the same step: PLAY registers the new
//!   session (the launch's connect data + rikey); `/cancel` and a `/resume` that replaces a
//!   stream terminate the old registration (termination message 0x80030023, then the
//!   `SessionStop`). Registrations are keyed by the SessionStart id.
//! - Control events ([`SessionManager::on_control`]) for the streaming session: IDR request and
//!   reference-frame invalidation → `SessionUpdate { request_keyframe }`; SS_FRAME_FEC_STATUS →
//!   the adaptive FEC controller ([`crate::fec_adapt`]) → `SessionUpdate { fec_percent }` on a
//!   change ([`SessionManager::tick`] drives its decay); an ENet disconnect or timeout ends the
//!   stream (`SessionStop` ClientQuit / ClientTimeout) but keeps the app running, so `/resume`
//!   works. Events for any other session id are stale and ignored. Input is not handled here
//!   (the I/O shell routes it to the input sink).
//! - No sockets, no clock, no randomness inside: the caller passes `now` and the random values.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use strahl_enet::{ControlEvent, DisconnectReason};
use strahl_gamestream::{HostError, LaunchRequest};
use strahl_ipc::{
    AudioParams, Codec, KeyMaterial, Message, Ports, Protocol, Secret, SessionStart, SessionStop,
    SessionUpdate, StopReason, StreamOptions, VideoParams,
};
use strahl_metrics::{GLOBAL, Metric, Registry};

use crate::fec_adapt::{FecBounds, FecController};
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
}

/// The random values a launch needs, drawn by the caller.
#[derive(Debug, Clone, Copy)]
pub struct LaunchRandom {
    pub ping_payload: u64,
    pub connect_data: u32,
}

/// The GameStream termination HRESULT for a host-ended stream (§A12, /cancel).
pub const TERMINATION_GRACEFUL: u32 = strahl_enet::message::TERMINATION_GRACEFUL;

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

/// How the RTSP connections of the pending launch are framed.
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
    /// Close without answering (no pending launch, undecryptable or oversized input).
    Close { why: String },
}

struct Pending {
    ping_payload: PingPayload,
    connect_data: u32,
    rikey: [u8; 16],
    rikeyid: u32,
    armed_at: Instant,
    rtsp: RtspSession,
    /// Host side of `rtspenc` (corever ≥ 1).
    cipher: Option<RtspCipher>,
    negotiated: Option<NegotiatedStream>,
}

/// A session the data plane was asked to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streaming {
    pub id: u64,
}

/// See the module contract.
pub struct SessionManager {
    cfg: ManagerConfig,
    app: Option<u32>,
    pending: Option<Pending>,
    streaming: Option<Streaming>,
    /// The streaming session's adaptive FEC (present exactly while `streaming` is).
    fec: Option<FecController>,
    next_id: u64,
}

impl SessionManager {
    pub fn new(cfg: ManagerConfig) -> Self {
        SessionManager {
            cfg,
            app: None,
            pending: None,
            streaming: None,
            fec: None,
            next_id: 1,
        }
    }

    pub fn config(&self) -> &ManagerConfig {
        &self.cfg
    }

    /// The running app (/serverinfo `currentgame`).
    pub fn current_app(&self) -> Option<u32> {
        self.app
    }

    /// The session handed to the data plane, if any.
    pub fn streaming(&self) -> Option<Streaming> {
        self.streaming
    }

    /// `/launch`: busy while an app runs.
    pub fn launch(
        &mut self,
        req: &LaunchRequest,
        rand: LaunchRandom,
        now: Instant,
    ) -> Result<(), HostError> {
        if self.app.is_some() {
            return Err(HostError::Busy);
        }
        self.app = Some(req.params.app_id);
        self.arm(req, rand, now);
        Ok(())
    }

    /// The streaming session's current FEC percentage (adaptive), if a session streams.
    pub fn fec_percent(&self) -> Option<u8> {
        self.fec.as_ref().map(FecController::current)
    }

    /// `/resume`: new keys for the running app; a running stream (and its ENet registration)
    /// is replaced.
    pub fn resume(
        &mut self,
        req: &LaunchRequest,
        rand: LaunchRandom,
        now: Instant,
    ) -> Result<Actions, HostError> {
        if self.app.is_none() {
            return Err(HostError::NoRunningApp);
        }
        let actions = self.stop_streaming(StopReason::Replaced, true);
        self.arm(req, rand, now);
        Ok(actions)
    }

    /// `/cancel`: terminate the control stream, stop the stream and free the host. Idempotent.
    pub fn cancel(&mut self) -> Actions {
        let actions = self.stop_streaming(StopReason::ClientQuit, true);
        self.pending = None;
        self.app = None;
        actions
    }

    /// The data plane ended session `id` (or went away: `None`). The client's control stream
    /// is terminated: without media it would otherwise sit in a stream that never resumes. The
    /// app stays running, so the client can `/resume` once the data plane is back.
    pub fn session_ended(&mut self, id: Option<u64>) -> Actions {
        let mut a = Actions::default();
        if let Some(s) = self.streaming
            && (id.is_none() || Some(s.id) == id)
        {
            self.streaming = None;
            self.fec = None;
            a.control.push(ControlAction::Terminate {
                session: s.id,
                hresult: TERMINATION_GRACEFUL,
            });
        }
        a
    }

    /// Ends the streaming session; `terminate`: also end its control stream (the client is
    /// still connected and must be told).
    fn stop_streaming(&mut self, reason: StopReason, terminate: bool) -> Actions {
        self.fec = None;
        let mut a = Actions::default();
        if let Some(s) = self.streaming.take() {
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
        if self.streaming.map(|s| s.id) != Some(session) {
            // A replaced or stopped session's late events (its disconnect included).
            return a;
        }
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
                let Some(fec) = self.fec.as_mut() else {
                    return a;
                };
                let (class, changed) = fec.on_report(r, now);
                if let Some(i) = Registry::label_index(Metric::ControlFecReports, class.label()) {
                    metrics.add_at(Metric::ControlFecReports, i, 1);
                }
                if let Some(p) = changed {
                    a.ipc.push(self.fec_update(session, p, metrics));
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
                    a = self.stop_streaming(reason, false);
                }
            }
            ControlEvent::Connected { .. }
            | ControlEvent::StartB
            | ControlEvent::LtrAck { .. }
            | ControlEvent::RoundTrip { .. }
            | ControlEvent::Input(_) => {}
        }
        a
    }

    /// Time passes: the adaptive FEC may decay. Call every few hundred milliseconds.
    pub fn tick(&mut self, now: Instant) -> Actions {
        self.tick_in(now, &GLOBAL)
    }

    pub fn tick_in(&mut self, now: Instant, metrics: &Registry) -> Actions {
        let mut a = Actions::default();
        if let (Some(s), Some(fec)) = (self.streaming, self.fec.as_mut())
            && let Some(p) = fec.tick(now)
        {
            a.ipc.push(self.fec_update(s.id, p, metrics));
        }
        a
    }

    fn fec_update(&self, session: u64, percent: u8, metrics: &Registry) -> Message {
        metrics.set(Metric::ControlFecPercent, u64::from(percent));
        Message::SessionUpdate(SessionUpdate {
            id: session,
            bitrate_kbps: None,
            fec_percent: Some(percent),
            request_keyframe: false,
        })
    }

    fn arm(&mut self, req: &LaunchRequest, rand: LaunchRandom, now: Instant) {
        let mut ctx =
            LaunchContext::new(PingPayload::from_u64(rand.ping_payload), rand.connect_data);
        ctx.video_port = self.cfg.video_port;
        ctx.audio_port = self.cfg.audio_port;
        ctx.control_port = self.cfg.control_port;
        ctx.fec_percent = u32::from(self.cfg.fec_percent);
        let p = &req.params;
        self.pending = Some(Pending {
            ping_payload: PingPayload::from_u64(rand.ping_payload),
            connect_data: rand.connect_data,
            rikey: p.rikey,
            rikeyid: p.rikeyid,
            armed_at: now,
            rtsp: RtspSession::new(ctx),
            cipher: (p.corever >= 1).then(|| RtspCipher::new(&p.rikey, Role::Host)),
            negotiated: None,
        });
    }

    fn expire(&mut self, now: Instant) {
        if self
            .pending
            .as_ref()
            .is_some_and(|p| now.saturating_duration_since(p.armed_at) >= PENDING_TIMEOUT)
        {
            log::info!(
                "pending launch expired: no RTSP PLAY within {PENDING_TIMEOUT:?}; RTSP closed"
            );
            self.pending = None;
        }
    }

    /// The framing of the pending launch's RTSP, or `None` when RTSP is closed.
    pub fn rtsp_mode(&mut self, now: Instant) -> Option<RtspMode> {
        self.expire(now);
        self.pending.as_ref().map(|p| {
            if p.cipher.is_some() {
                RtspMode::Encrypted
            } else {
                RtspMode::Plain
            }
        })
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
        let Some(p) = self.pending.as_mut() else {
            return RtspStep::Close {
                why: "no launch is pending".into(),
            };
        };
        let mut plain = Vec::new();
        let outcome = match &p.cipher {
            Some(cipher) => match cipher.open(input, &mut plain) {
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
                Err(e) => {
                    return RtspStep::Close {
                        why: format!("rtspenc: {e:?}"),
                    };
                }
                Ok(RtspRead::Message { .. }) => p.rtsp.handle_message(&plain),
            },
            None => match parse_request(input) {
                Ok(Parsed::Complete { request, .. }) => p.rtsp.handle(&request),
                Ok(Parsed::NeedMore) if !eof => {
                    return RtspStep::NeedMore {
                        limit: MAX_PLAIN_REQUEST,
                    };
                }
                Ok(Parsed::NeedMore) => p.rtsp.handle_message(input),
                Err(e) => RtspSession::malformed(&e),
            },
        };
        let request_line = {
            let text: &[u8] = if p.cipher.is_some() { &plain } else { input };
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
        let mut summary = format!("{request_line:?} → {}", outcome.response.status.0);
        if let Some(e) = &outcome.error {
            summary.push_str(&format!(" ({e})"));
        }
        let mut ipc = Vec::new();
        let mut control = Vec::new();
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
                let start = self.session_start(peer.ip());
                if let (Some(s), Some(p)) = (start, self.pending.as_ref()) {
                    summary.push_str(&format!(
                        ": SessionStart {} sent to the data plane, control stream expected",
                        s.id
                    ));
                    control.push(ControlAction::Register {
                        session: s.id,
                        connect_data: p.connect_data,
                        rikey: p.rikey,
                    });
                    self.streaming = Some(Streaming { id: s.id });
                    let bounds = FecBounds {
                        min: self.cfg.fec_percent_min,
                        default: self.cfg.fec_percent,
                        max: self.cfg.fec_percent_max,
                    };
                    let fec = FecController::new(bounds, now);
                    GLOBAL.set(Metric::ControlFecPercent, u64::from(fec.current()));
                    self.fec = Some(fec);
                    ipc.push(Message::SessionStart(Box::new(s)));
                }
                // The RTSP phase is over: close RTSP until the next launch.
                self.pending = None;
            }
            Some(Event::Teardown) => {
                let a = self.stop_streaming(StopReason::ClientQuit, true);
                control.extend(a.control);
                ipc.extend(a.ipc);
                self.pending = None;
            }
            Some(Event::Setup(_)) | None => {}
        }
        RtspStep::Reply {
            bytes,
            control,
            ipc,
            summary,
        }
    }

    /// The SessionStart for the pending launch (PLAY is accepted only after ANNOUNCE, so the
    /// negotiated stream is always there; `None` would be a state-machine bug, not peer input).
    fn session_start(&mut self, client_ip: IpAddr) -> Option<SessionStart> {
        let p = self.pending.as_ref()?;
        let n = p.negotiated.as_ref()?;
        let c = &n.config;
        let id = self.next_id;
        self.next_id += 1;
        // ANNOUNCE bounds geometry (≤ 16384), fps (≤ 1000) and packet size (≤ 65488): the u16
        // conversions cannot saturate for accepted values.
        let u16_of = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        Some(SessionStart {
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
        })
    }
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
