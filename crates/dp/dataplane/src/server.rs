//! Sans-IO IPC handler of the data plane: datagrams in, replies out, plus the session table.
//!
//! Connection life cycle: `on_connect` → the first datagram must be a `Hello` from the control
//! role with our protocol major; anything else is answered with `Refuse` and the connection is
//! closed. After the handshake every message is answered (events for session commands, a
//! snapshot for stats requests, `Error` for anything unusable). `on_disconnect` stops every
//! session: without a control plane nobody could stop them or hear about failures.
//!
//! Media goes through a [`MediaHost`] (the real one, [`crate::media::Media`], spawns per-session
//! workers; the default [`NoMedia`] sends nothing, for these unit tests). The handler stays
//! sans-IO: it only calls the host. Failures of running media (no ping, bind or encoder error)
//! come back through [`Server::poll_media`] as `SessionError` then `SessionEnded`; a choice the
//! media changed since start (`[audio] source = "auto"` finding PipeWire, or losing it, as a
//! session is built) comes back as a `Detected` event, which is forwarded and replaces that
//! subsystem's entry sent after every later handshake.

use std::collections::BTreeMap;
use std::time::Duration;

use strahl_ipc::{
    DecodeError, Detected, ErrorCode, ErrorMsg, Event, Hello, MAJOR, MINOR, Message, Refuse, Role,
    SessionStart, StatsSnapshot, StopReason, Transport, VideoCaps,
};
use strahl_metrics::{Metric, Registry};

use crate::media::{MediaHost, NoMedia};

/// Undecodable datagrams in a row after which the peer is considered broken and dropped. Large
/// enough that a newer minor sending a few unknown kinds keeps its connection, small enough that
/// a garbage flood cannot keep the handler busy forever.
pub const MAX_CONSECUTIVE_ERRORS: u32 = 64;

/// What the caller must do after handling an input.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub replies: Vec<Message>,
    /// Close the connection after sending the replies.
    pub close: bool,
    /// Exit the process after sending the replies.
    pub shutdown: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    AwaitHello,
    Ready { control_pid: u32 },
}

/// A running session (parameters only, for now).
#[derive(Debug, Clone)]
pub struct Session {
    pub start: SessionStart,
    pub bitrate_kbps: u32,
    pub fec_percent: u8,
    pub keyframes_requested: u64,
}

/// `text` cut to `max` bytes at a character boundary, ending in "..." when cut (the encoder
/// refuses longer text, which would drop the connection).
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut at = max - 3;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
        text.push_str("...");
    }
    text
}

/// `d` with each text cut to its IPC limit.
fn cut_detected(d: Detected) -> Detected {
    Detected {
        subsystem: d.subsystem,
        choice: cut(d.choice, strahl_ipc::MAX_NAME_LEN),
        reason: cut(d.reason, strahl_ipc::MAX_TEXT_LEN),
    }
}

pub struct Server<'r> {
    metrics: &'r Registry,
    media: Box<dyn MediaHost + 'r>,
    pid: u32,
    build: String,
    state: State,
    sessions: BTreeMap<u64, Session>,
    consecutive_errors: u32,
    /// The start-up self-test result, sent after every handshake.
    transport: Transport,
    transport_detail: String,
    /// What the encoder makes, sent after every handshake (`None`: nothing to report, as in
    /// the IPC unit tests without media).
    video_caps: Option<VideoCaps>,
    /// The choices for capture, encode and audio (start-up's, then the media's latest), sent
    /// after every handshake.
    detected: Vec<Detected>,
}

impl<'r> Server<'r> {
    pub fn new(metrics: &'r Registry, pid: u32, build: impl Into<String>) -> Self {
        Self {
            metrics,
            media: Box::new(NoMedia),
            pid,
            build: build.into(),
            state: State::Idle,
            sessions: BTreeMap::new(),
            consecutive_errors: 0,
            transport: Transport::None,
            transport_detail: "transport self-test not run".to_owned(),
            video_caps: None,
            detected: Vec::new(),
        }
    }

    /// Record what the encoder makes (sent as a `VideoCaps` event on each handshake).
    pub fn set_video_caps(&mut self, caps: VideoCaps) {
        self.video_caps = Some(caps);
    }

    /// Record the start-up choices (sent as `Detected` events on each handshake). Each text is
    /// cut to its IPC limit at a character boundary, as the transport's detail is.
    pub fn set_detected(&mut self, detected: Vec<Detected>) {
        self.detected = detected.into_iter().map(cut_detected).collect();
    }

    /// A choice changed since start: it replaces its subsystem's entry (or is added); the cut
    /// entry is returned for the control plane.
    fn redetected(&mut self, d: Detected) -> Detected {
        let d = cut_detected(d);
        match self
            .detected
            .iter_mut()
            .find(|x| x.subsystem == d.subsystem)
        {
            Some(x) => *x = d.clone(),
            None => self.detected.push(d.clone()),
        }
        d
    }

    /// Record the start-up transport choice (sent as a `TransportChosen` event on each handshake).
    /// The detail is cut to the IPC text limit at a character boundary (the encoder refuses
    /// longer text, which would drop the connection).
    pub fn set_transport(&mut self, transport: Transport, detail: impl Into<String>) {
        self.transport = transport;
        self.transport_detail = cut(detail.into(), strahl_ipc::MAX_TEXT_LEN);
    }

    /// Use `media` for every session from now on.
    pub fn set_media(&mut self, media: Box<dyn MediaHost + 'r>) {
        self.media = media;
    }

    /// Sessions whose media failed: each is ended, and `SessionError` + `SessionEnded` are
    /// returned for the control plane. Call it every loop iteration.
    pub fn poll_media(&mut self) -> Vec<Message> {
        let mut out: Vec<Message> = Vec::new();
        for e in self.media.poll_events() {
            let e = match e {
                Event::Detected(d) => Event::Detected(self.redetected(d)),
                e => e,
            };
            out.push(Message::Event(e));
        }
        for (id, detail, reason) in self.media.poll_failures() {
            log::warn!("session {id}: media failed: {detail}");
            out.push(Message::Event(Event::SessionError { id, detail }));
            if let Some(m) = self.stop(id, reason) {
                out.push(m);
            }
        }
        out
    }

    pub fn sessions(&self) -> &BTreeMap<u64, Session> {
        &self.sessions
    }

    pub fn is_connected(&self) -> bool {
        self.state != State::Idle
    }

    /// The control plane's pid once the handshake is done.
    pub fn control_pid(&self) -> Option<u32> {
        match self.state {
            State::Ready { control_pid } => Some(control_pid),
            _ => None,
        }
    }

    pub fn on_connect(&mut self) {
        self.state = State::AwaitHello;
        self.consecutive_errors = 0;
    }

    /// The connection is gone: stop every session.
    pub fn on_disconnect(&mut self) {
        if self.state != State::Idle {
            log::info!(
                "control plane disconnected; stopping {} session(s) and waiting for it again",
                self.sessions.len()
            );
        }
        self.stop_all(StopReason::ControlDisconnected);
        self.state = State::Idle;
        self.metrics.set(Metric::DataplaneConnected, 0);
    }

    /// Stops every session; returns the events to send if a control plane is still listening.
    pub fn stop_all(&mut self, reason: StopReason) -> Vec<Message> {
        let ids: Vec<u64> = self.sessions.keys().copied().collect();
        ids.into_iter()
            .filter_map(|id| self.stop(id, reason))
            .collect()
    }

    fn stop(&mut self, id: u64, reason: StopReason) -> Option<Message> {
        let s = self.sessions.remove(&id)?;
        self.media.stop(id);
        self.metrics.sub(Metric::SessionsActive, 1);
        self.metrics.inc(Metric::SessionsStopped);
        log::info!(
            "session {id} stopped ({reason:?}); {} keyframe request(s) were received",
            s.keyframes_requested
        );
        Some(Message::Event(Event::SessionEnded { id, reason }))
    }

    /// Answer to a second control plane while one is connected.
    pub fn busy_refusal(&self) -> Message {
        self.metrics.inc(Metric::IpcHandshakesRefused);
        let reason = match self.control_pid() {
            Some(pid) => format!("another control plane (pid {pid}) is connected"),
            None => "another control plane is connecting".to_owned(),
        };
        log::warn!("refusing an extra control-plane connection: {reason}");
        Message::Refuse(Refuse {
            major: MAJOR,
            minor: MINOR,
            reason,
        })
    }

    /// A datagram longer than the IPC maximum arrived (already discarded by the kernel).
    pub fn on_oversized(&mut self, len: usize) -> Outcome {
        self.metrics.inc(Metric::IpcMessagesReceived);
        self.bad_input(
            0,
            ErrorCode::Malformed,
            format!("datagram of {len} bytes exceeds the IPC maximum"),
        )
    }

    /// Handles one datagram. `uptime` is the process age (for stats).
    pub fn on_datagram(&mut self, bytes: &[u8], uptime: Duration) -> Outcome {
        self.metrics.inc(Metric::IpcMessagesReceived);
        let decoded = strahl_ipc::decode(bytes);
        if self.state == State::AwaitHello {
            return self.handshake(decoded);
        }
        let d = match decoded {
            Ok(d) => d,
            Err(e) => {
                let kind = strahl_ipc::decode_header(bytes)
                    .map(|h| h.kind)
                    .unwrap_or(0);
                let code = match e {
                    DecodeError::UnknownKind { .. } => ErrorCode::UnknownKind,
                    _ => ErrorCode::Malformed,
                };
                return self.bad_input(kind, code, e.to_string());
            }
        };
        self.consecutive_errors = 0;
        let mut out = Outcome::default();
        match d.message {
            Message::SessionStart(s) => out.replies.push(self.start(*s)),
            Message::SessionUpdate(u) => {
                let reply = match self.sessions.get_mut(&u.id) {
                    None => unknown_session(u.id),
                    Some(s) => {
                        if let Some(b) = u.bitrate_kbps {
                            s.bitrate_kbps = b;
                        }
                        if let Some(f) = u.fec_percent {
                            s.fec_percent = f;
                        }
                        if u.request_keyframe {
                            s.keyframes_requested += 1;
                        }
                        self.media
                            .update(u.id, u.bitrate_kbps, u.fec_percent, u.request_keyframe);
                        log::info!(
                            "session {} updated: bitrate {} kbit/s, fec {} %, keyframe requested: {}",
                            u.id,
                            s.bitrate_kbps,
                            s.fec_percent,
                            u.request_keyframe
                        );
                        Message::Event(Event::SessionUpdated { id: u.id })
                    }
                };
                out.replies.push(reply);
            }
            Message::SessionStop(s) => out.replies.push(
                self.stop(s.id, s.reason)
                    .unwrap_or_else(|| unknown_session(s.id)),
            ),
            // Native epochs and pacing (minor 5): the epoch's first frame follows as an event
            // from `poll_media` once the tile has sent it.
            Message::SessionReconfigure(r) => {
                let reply = match self.sessions.get_mut(&r.id) {
                    None => unknown_session(r.id),
                    Some(s) => match self.media.reconfigure(&r) {
                        Ok(()) => {
                            s.bitrate_kbps = r.bitrate_kbps;
                            s.fec_percent = r.fec_percent;
                            Message::Event(Event::SessionUpdated { id: r.id })
                        }
                        // The session goes on in its epoch; the control plane's wait for the
                        // first frame fails and ends it (a SessionError would end it here and
                        // there without the control plane's stop).
                        Err(detail) => {
                            log::warn!("{detail}");
                            Message::Error(ErrorMsg {
                                code: ErrorCode::Malformed,
                                in_reply_to: strahl_ipc::Kind::SessionReconfigure as u16,
                                detail,
                            })
                        }
                    },
                };
                out.replies.push(reply);
            }
            Message::SessionPace(p) => {
                let reply = if self.sessions.contains_key(&p.id) {
                    self.media.pace(p.id, p.rate_kbps);
                    Message::Event(Event::SessionUpdated { id: p.id })
                } else {
                    unknown_session(p.id)
                };
                out.replies.push(reply);
            }
            Message::StatsRequest(r) => {
                log::debug!("stats snapshot requested ({})", r.request_id);
                out.replies.push(Message::StatsSnapshot(StatsSnapshot {
                    request_id: r.request_id,
                    uptime_ms: u64::try_from(uptime.as_millis()).unwrap_or(u64::MAX),
                    counters: self.metrics.snapshot(),
                }));
            }
            Message::Shutdown => {
                log::info!("shutdown requested by the control plane");
                out.replies = self.stop_all(StopReason::ControlShutdown);
                out.shutdown = true;
            }
            other => {
                let kind = other.kind();
                log::warn!("unexpected {kind:?} from the control plane after the handshake");
                out.replies.push(Message::Error(ErrorMsg {
                    code: ErrorCode::UnexpectedMessage,
                    in_reply_to: kind as u16,
                    detail: format!("{kind:?} is not expected by the data plane here"),
                }));
            }
        }
        out
    }

    fn refuse(&mut self, reason: String) -> Outcome {
        self.metrics.inc(Metric::IpcHandshakesRefused);
        self.state = State::Idle;
        Outcome {
            replies: vec![Message::Refuse(Refuse {
                major: MAJOR,
                minor: MINOR,
                reason,
            })],
            close: true,
            shutdown: false,
        }
    }

    fn handshake(&mut self, decoded: Result<strahl_ipc::Decoded, DecodeError>) -> Outcome {
        let refuse = |me: &mut Self, reason: String| me.refuse(reason);
        let hello = match decoded {
            Ok(strahl_ipc::Decoded {
                message: Message::Hello(h),
                ..
            }) => h,
            Ok(d) => {
                let reason = format!(
                    "expected Hello as the first message, got {:?}",
                    d.message.kind()
                );
                log::warn!("refusing control-plane connection: {reason}");
                return refuse(self, reason);
            }
            Err(DecodeError::MajorMismatch { theirs, .. }) => {
                let reason = mismatch_text(theirs, None);
                log::error!("refusing control-plane connection: {reason}");
                return refuse(self, reason);
            }
            Err(e) => {
                let reason = format!("undecodable first message: {e}");
                log::warn!("refusing control-plane connection: {reason}");
                return refuse(self, reason);
            }
        };
        if hello.major != MAJOR {
            let reason = mismatch_text(hello.major, Some(hello.minor));
            log::error!(
                "refusing control plane (pid {}, build {:?}): {reason}",
                hello.pid,
                hello.build
            );
            return refuse(self, reason);
        }
        if hello.role != Role::Control {
            let reason = format!("peer says it is {:?}, expected Control", hello.role);
            log::warn!("refusing connection (pid {}): {reason}", hello.pid);
            return refuse(self, reason);
        }
        if hello.minor != MINOR {
            log::info!(
                "control plane speaks v{}.{}, data plane v{MAJOR}.{MINOR}: minor difference tolerated",
                hello.major,
                hello.minor
            );
        }
        log::info!(
            "control plane connected: v{}.{} (pid {}, build {})",
            hello.major,
            hello.minor,
            hello.pid,
            hello.build
        );
        self.state = State::Ready {
            control_pid: hello.pid,
        };
        self.metrics.set(Metric::DataplaneConnected, 1);
        let ack = Hello {
            major: MAJOR,
            minor: MINOR,
            role: Role::Dataplane,
            pid: self.pid,
            build: self.build.clone(),
        };
        // The start-up self-test's verdict (process-wide: id 0), including the refusals.
        let transport = Event::TransportChosen {
            id: 0,
            transport: self.transport,
            detail: self.transport_detail.clone(),
        };
        let mut replies = vec![Message::HelloAck(ack), Message::Event(transport)];
        // The encoder's formats: the control plane advertises exactly these.
        if let Some(c) = &self.video_caps {
            replies.push(Message::Event(Event::VideoCaps(c.clone())));
        }
        // What was chosen at start for capture, encode and audio, and why (the status page).
        for d in &self.detected {
            replies.push(Message::Event(Event::Detected(d.clone())));
        }
        Outcome {
            replies,
            close: false,
            shutdown: false,
        }
    }

    fn start(&mut self, s: SessionStart) -> Message {
        let id = s.id;
        if self.sessions.contains_key(&id) {
            return Message::Event(Event::SessionError {
                id,
                detail: format!("session {id} is already running"),
            });
        }
        if let Err(e) = self.media.start(&s) {
            log::warn!("session {id} refused: {e}");
            return Message::Event(Event::SessionError {
                id,
                detail: e.to_string(),
            });
        }
        let v = &s.video;
        // A GameStream client's pings name its destinations; a native session's is given.
        let rest = match s.protocol {
            strahl_ipc::Protocol::GameStream => format!(
                "audio {} ch @ {} Hz; until the client's pings arrive nothing will be sent",
                s.audio.channels, s.audio.sample_rate_hz
            ),
            strahl_ipc::Protocol::Native => format!(
                "{}, no audio; sending to port {} of the peer",
                if s.stream.has(strahl_ipc::StreamOptions::CHECKABLE) {
                    "checkable frames"
                } else {
                    "the configured source"
                },
                s.ports.video_dst
            ),
        };
        log::info!(
            "session {id} started: {:?} peer {} video {}x{}@{} {:?} {} kbit/s packet {} B fec {} %, {rest}",
            s.protocol,
            s.peer,
            v.width,
            v.height,
            v.fps,
            v.codec,
            v.bitrate_kbps,
            v.packet_size,
            v.fec_percent,
        );
        self.metrics.add(Metric::SessionsActive, 1);
        self.metrics.inc(Metric::SessionsStarted);
        let session = Session {
            bitrate_kbps: v.bitrate_kbps,
            fec_percent: v.fec_percent,
            keyframes_requested: 0,
            start: s,
        };
        self.sessions.insert(id, session);
        Message::Event(Event::SessionStarted { id })
    }

    fn bad_input(&mut self, kind: u16, code: ErrorCode, detail: String) -> Outcome {
        self.metrics.inc(Metric::IpcDecodeErrors);
        self.consecutive_errors += 1;
        log::warn!("bad IPC datagram from the control plane (kind {kind}): {detail}");
        if self.state == State::AwaitHello {
            return self.refuse(format!("undecodable first message: {detail}"));
        }
        let close = self.consecutive_errors >= MAX_CONSECUTIVE_ERRORS;
        if close {
            log::error!(
                "{} undecodable datagrams in a row: dropping the control connection",
                self.consecutive_errors
            );
        }
        Outcome {
            replies: vec![Message::Error(ErrorMsg {
                code,
                in_reply_to: kind,
                detail,
            })],
            close,
            shutdown: false,
        }
    }
}

fn unknown_session(id: u64) -> Message {
    Message::Event(Event::SessionError {
        id,
        detail: format!("no session {id}"),
    })
}

/// The refusal text: names both versions.
pub fn mismatch_text(theirs_major: u16, theirs_minor: Option<u16>) -> String {
    let theirs = match theirs_minor {
        Some(m) => format!("v{theirs_major}.{m}"),
        None => format!("v{theirs_major}.x"),
    };
    format!(
        "protocol major version mismatch: control plane speaks {theirs}, this data plane speaks v{MAJOR}.{MINOR}"
    )
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
