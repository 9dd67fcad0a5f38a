//! The per-session RTSP state machine, sans-IO (gamestream-host.md §A9, §A11, §B10).
//!
//! Contract:
//! - One [`RtspSession`] per pending launch. [`RtspSession::handle`] takes one parsed request
//!   and returns an [`Outcome`]: the response to send (always, even for errors), an optional
//!   [`Event`] for the session manager, and the typed [`SessionError`] when the request was
//!   refused. No I/O, no clock: the caller owns the sockets, the one-request-per-connection
//!   rule (§A8) and the 10 s pending-launch timeout.
//! - Plaintext in, plaintext out: the `rtspenc` framing (AES-GCM, strahl-seal's `RtspCipher`)
//!   wraps [`RtspSession::handle_message`] on both sides and never reaches this module.
//! - Order (§A9): OPTIONS any time; DESCRIBE and the three SETUPs (any order, repeats allowed)
//!   until ANNOUNCE; ANNOUNCE once, only after audio, video and control are set up; PLAY once,
//!   only after a successful ANNOUNCE; TEARDOWN ends the session. Anything else out of order is
//!   455 with a reason naming what is missing. A `Session` header, when present, must carry our
//!   token (454 otherwise). A refused request never changes the state.

use crate::announce::{AnnounceError, EncryptionFlags, HostCodecs, StreamConfig};
use crate::describe::{DescribeParams, SurroundParams, describe_body};
use crate::media::{OpusLayout, choose_audio};
use crate::request::{Method, Request, RequestError, parse_message};
use crate::response::{Response, StatusCode};
use strahl_ipc::DEFAULT_FEC_PERCENT;

/// Default UDP ports (§A1), announced in each SETUP's `Transport: server_port=`.
pub const DEFAULT_VIDEO_PORT: u16 = 47998;
pub const DEFAULT_CONTROL_PORT: u16 = 47999;
pub const DEFAULT_AUDIO_PORT: u16 = 48000;
/// The session token and timeout Sunshine sends; the client only echoes the token (§A9).
pub const DEFAULT_SESSION_TOKEN: &str = "DEADBEEFCAFE";
pub const DEFAULT_SESSION_TIMEOUT_S: u32 = 90;
/// Longest accepted session token; the client stores what precedes the `;`.
pub const MAX_SESSION_TOKEN: usize = 64;

/// The RTSP session token: 1..=64 ASCII letters and digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    pub fn new(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= MAX_SESSION_TOKEN
            && s.bytes().all(|b| b.is_ascii_alphanumeric());
        ok.then(|| SessionToken(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for SessionToken {
    fn default() -> Self {
        SessionToken(DEFAULT_SESSION_TOKEN.to_owned())
    }
}

/// `X-SS-Ping-Payload`: exactly 16 printable ASCII characters (any other length makes the client
/// fall back to "PING", §A9). The same payload starts every audio and video ping (§A11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingPayload([u8; 16]);

impl PingPayload {
    /// Exactly 16 bytes, each printable ASCII without space.
    pub fn new(s: &str) -> Option<Self> {
        let bytes: [u8; 16] = s.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(|b| b.is_ascii_graphic())
            .then_some(PingPayload(bytes))
    }

    /// Sunshine's form: 16 upper-case hex digits of a random u64.
    pub fn from_u64(v: u64) -> Self {
        let mut out = [0u8; 16];
        for (i, b) in out.iter_mut().enumerate() {
            let nibble = (v >> (60 - 4 * i)) & 0xf;
            *b = b"0123456789ABCDEF"[nibble as usize];
        }
        PingPayload(out)
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // Constructed only from ASCII.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// What the pending launch session (§A7) hands the RTSP handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchContext {
    pub session_token: SessionToken,
    pub session_timeout_s: u32,
    pub audio_port: u16,
    pub video_port: u16,
    pub control_port: u16,
    pub ping_payload: PingPayload,
    /// `X-SS-Connect-Data`: the ENet CONNECT `data` that identifies this session (§A11).
    pub connect_data: u32,
    pub codecs: HostCodecs,
    pub encryption_supported: EncryptionFlags,
    /// What DESCRIBE requests: the client turns on what the host requests and it supports.
    pub encryption_requested: EncryptionFlags,
    /// The VIDEO|AUDIO bits a client must enable, or be refused at ANNOUNCE (403); non-zero
    /// only in "required" mode ([`LaunchContext::set_video_encryption`]).
    pub encryption_required: EncryptionFlags,
    /// `a=x-ss-general.featureFlags` (pen/touch, controller touch).
    pub host_feature_flags: u32,
    pub rfi_supported: bool,
    pub launch_surround_params: Option<SurroundParams>,
    /// F in the §A18 encoder-bitrate formula.
    pub fec_percent: u32,
}

impl LaunchContext {
    /// A context with the default ports, token and Sunshine's LAN encryption policy
    /// (supports CONTROL_V2|AUDIO, requests CONTROL_V2), H.264 only.
    pub fn new(ping_payload: PingPayload, connect_data: u32) -> Self {
        LaunchContext {
            session_token: SessionToken::default(),
            session_timeout_s: DEFAULT_SESSION_TIMEOUT_S,
            audio_port: DEFAULT_AUDIO_PORT,
            video_port: DEFAULT_VIDEO_PORT,
            control_port: DEFAULT_CONTROL_PORT,
            ping_payload,
            connect_data,
            codecs: HostCodecs::default(),
            encryption_supported: EncryptionFlags(
                EncryptionFlags::CONTROL_V2 | EncryptionFlags::AUDIO,
            ),
            encryption_requested: EncryptionFlags(EncryptionFlags::CONTROL_V2),
            encryption_required: EncryptionFlags(0),
            host_feature_flags: 0,
            rfi_supported: false,
            launch_surround_params: None,
            fec_percent: u32::from(DEFAULT_FEC_PERCENT),
        }
    }

    /// Applies the host's video-encryption policy to what DESCRIBE advertises and requests and
    /// what ANNOUNCE enforces. CONTROL_V2 and AUDIO are supported and requested in every mode.
    pub fn set_video_encryption(&mut self, policy: VideoEncryption) {
        const CONTROL: u32 = EncryptionFlags::CONTROL_V2;
        const AV: u32 = EncryptionFlags::VIDEO | EncryptionFlags::AUDIO;
        let (supported, requested, required) = match policy {
            VideoEncryption::Off => (CONTROL | EncryptionFlags::AUDIO, CONTROL, 0),
            VideoEncryption::Preferred => (CONTROL | AV, CONTROL | AV, 0),
            VideoEncryption::Required => (CONTROL | AV, CONTROL | AV, AV),
        };
        self.encryption_supported = EncryptionFlags(supported);
        self.encryption_requested = EncryptionFlags(requested);
        self.encryption_required = EncryptionFlags(required);
    }

    fn describe_params(&self) -> DescribeParams {
        DescribeParams {
            host_feature_flags: self.host_feature_flags,
            encryption_supported: self.encryption_supported,
            encryption_requested: self.encryption_requested,
            codecs: self.codecs,
            rfi_supported: self.rfi_supported,
            launch_surround_params: self.launch_surround_params.clone(),
        }
    }
}

/// The host's video-encryption policy (`[gamestream] encryption`, SS_ENC_VIDEO §A16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoEncryption {
    /// Neither advertised nor requested: clear video (Sunshine's LAN "never").
    Off,
    /// Advertised and requested, so every client that can encrypts; one that does not (a
    /// client predating SS_ENC) still streams.
    Preferred,
    /// Advertised and requested; a client that does not enable VIDEO and AUDIO is refused
    /// at ANNOUNCE with 403.
    Required,
}

/// The three streams a client sets up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Audio,
    Video,
    Control,
}

impl StreamKind {
    const ALL: [StreamKind; 3] = [StreamKind::Audio, StreamKind::Video, StreamKind::Control];

    fn index(self) -> usize {
        self as usize
    }

    /// From a SETUP target: `streamid=<kind>/…`, relative or after an absolute URL prefix.
    pub fn from_target(target: &str) -> Option<Self> {
        let (_, id) = target.split_once("streamid=")?;
        match id.split('/').next()? {
            "audio" => Some(StreamKind::Audio),
            "video" => Some(StreamKind::Video),
            "control" => Some(StreamKind::Control),
            _ => None,
        }
    }
}

/// What the ANNOUNCE negotiated: the client's parameters plus the host's derived choices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedStream {
    pub config: StreamConfig,
    /// §A17: from the channel count, AudioQuality and the ANNOUNCE Host header.
    pub audio: OpusLayout,
    /// §A18 with the context's FEC percentage.
    pub encoder_bitrate_kbps: u32,
}

/// Something the session manager must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A SETUP succeeded. After the audio one the client starts pinging the audio port (§A11).
    Setup(StreamKind),
    /// ANNOUNCE accepted: create the stream session and wait for ENet and the pings.
    Configured(Box<NegotiatedStream>),
    /// PLAY accepted.
    Play,
    /// TEARDOWN accepted (stock clients end through ENet instead).
    Teardown,
}

/// Why a request was refused. All variants are peer behaviour; each maps to the status sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// The bytes were not a valid request.
    Malformed(RequestError),
    /// No `CSeq` header.
    MissingCSeq,
    /// SETUP for a stream other than audio, video, control.
    UnknownStream,
    /// A `Session` header with another token.
    WrongSession,
    /// A method at the wrong point of the handshake; the reason names what was expected.
    OutOfOrder(&'static str),
    /// The ANNOUNCE body was refused.
    Announce(AnnounceError),
    /// A method this dialect does not use.
    NotImplemented,
}

impl SessionError {
    pub fn status(&self) -> StatusCode {
        match self {
            SessionError::Malformed(e) => e.status(),
            SessionError::MissingCSeq => StatusCode::BAD_REQUEST,
            SessionError::UnknownStream => StatusCode::NOT_FOUND,
            SessionError::WrongSession => StatusCode::SESSION_NOT_FOUND,
            SessionError::OutOfOrder(_) => StatusCode::METHOD_NOT_VALID_IN_THIS_STATE,
            SessionError::Announce(e) => e.status(),
            SessionError::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::OutOfOrder(why) => write!(f, "RTSP request out of order: {why}"),
            SessionError::Announce(e @ AnnounceError::EncryptionRequired { .. }) => {
                write!(f, "RTSP request refused: {e}")
            }
            other => write!(f, "RTSP request refused: {other:?}"),
        }
    }
}

impl std::error::Error for SessionError {}

/// The result of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub response: Response,
    pub event: Option<Event>,
    pub error: Option<SessionError>,
}

impl Outcome {
    fn ok(response: Response, event: Option<Event>) -> Self {
        Outcome {
            response,
            event,
            error: None,
        }
    }

    fn refuse(cseq: u32, error: SessionError) -> Self {
        let mut response = Response::new(error.status(), cseq);
        if let SessionError::Announce(e @ AnnounceError::EncryptionRequired { .. }) = &error {
            // The client only shows the status; the reason is for whoever reads the wire.
            response = response.with_body(format!("{e}\r\n").into_bytes());
        }
        Outcome {
            response,
            event: None,
            error: Some(error),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before ANNOUNCE: DESCRIBE and SETUPs.
    Handshake,
    /// ANNOUNCE accepted, PLAY not yet.
    Announced,
    Playing,
    TornDown,
}

/// One client's RTSP handshake. See the module contract.
#[derive(Debug, Clone)]
pub struct RtspSession {
    ctx: LaunchContext,
    set_up: [bool; 3],
    phase: Phase,
}

impl RtspSession {
    pub fn new(ctx: LaunchContext) -> Self {
        RtspSession {
            ctx,
            set_up: [false; 3],
            phase: Phase::Handshake,
        }
    }

    pub fn context(&self) -> &LaunchContext {
        &self.ctx
    }

    /// True once PLAY was accepted.
    pub fn is_playing(&self) -> bool {
        self.phase == Phase::Playing
    }

    /// Parse one whole plaintext message (an `rtspenc` frame's content, or a plain connection's
    /// bytes at EOF) and handle it. Malformed bytes yield an error response, never a panic.
    pub fn handle_message(&mut self, msg: &[u8]) -> Outcome {
        match parse_message(msg) {
            Ok(req) => self.handle(&req),
            Err(e) => Self::malformed(&e),
        }
    }

    /// The response for bytes that did not parse (echoing their CSeq when it was read).
    pub fn malformed(err: &RequestError) -> Outcome {
        Outcome::refuse(err.cseq.unwrap_or(0), SessionError::Malformed(*err))
    }

    /// Handle one parsed request. See the module contract.
    pub fn handle(&mut self, req: &Request<'_>) -> Outcome {
        let Some(cseq) = req.cseq else {
            return Outcome::refuse(0, SessionError::MissingCSeq);
        };
        if let Some(token) = req.session()
            && token != self.ctx.session_token.as_str()
        {
            return Outcome::refuse(cseq, SessionError::WrongSession);
        }
        if self.phase == Phase::TornDown && req.method != Method::Options {
            return Outcome::refuse(cseq, SessionError::OutOfOrder("session was torn down"));
        }
        match req.method {
            Method::Options => Outcome::ok(Response::new(StatusCode::OK, cseq), None),
            Method::Describe => self.describe(cseq),
            Method::Setup => self.setup(cseq, req.target),
            Method::Announce => self.announce(cseq, req),
            Method::Play => self.play(cseq),
            Method::Teardown => {
                self.phase = Phase::TornDown;
                Outcome::ok(Response::new(StatusCode::OK, cseq), Some(Event::Teardown))
            }
            Method::Other(_) => Outcome::refuse(cseq, SessionError::NotImplemented),
        }
    }

    fn describe(&self, cseq: u32) -> Outcome {
        if self.phase != Phase::Handshake {
            return Outcome::refuse(cseq, SessionError::OutOfOrder("DESCRIBE after ANNOUNCE"));
        }
        let body = describe_body(&self.ctx.describe_params());
        Outcome::ok(Response::new(StatusCode::OK, cseq).with_body(body), None)
    }

    fn setup(&mut self, cseq: u32, target: &str) -> Outcome {
        if self.phase != Phase::Handshake {
            return Outcome::refuse(cseq, SessionError::OutOfOrder("SETUP after ANNOUNCE"));
        }
        let Some(kind) = StreamKind::from_target(target) else {
            return Outcome::refuse(cseq, SessionError::UnknownStream);
        };
        let port = match kind {
            StreamKind::Audio => self.ctx.audio_port,
            StreamKind::Video => self.ctx.video_port,
            StreamKind::Control => self.ctx.control_port,
        };
        let mut resp = Response::new(StatusCode::OK, cseq)
            .with_header(
                "Session",
                format!(
                    "{};timeout = {}",
                    self.ctx.session_token.as_str(),
                    self.ctx.session_timeout_s
                ),
            )
            .with_header("Transport", format!("server_port={port}"));
        resp = match kind {
            StreamKind::Audio | StreamKind::Video => {
                resp.with_header("X-SS-Ping-Payload", self.ctx.ping_payload.as_str())
            }
            StreamKind::Control => {
                resp.with_header("X-SS-Connect-Data", self.ctx.connect_data.to_string())
            }
        };
        self.set_up[kind.index()] = true;
        Outcome::ok(resp, Some(Event::Setup(kind)))
    }

    fn announce(&mut self, cseq: u32, req: &Request<'_>) -> Outcome {
        if self.phase != Phase::Handshake {
            return Outcome::refuse(cseq, SessionError::OutOfOrder("second ANNOUNCE"));
        }
        if let Some(missing) = StreamKind::ALL.iter().find(|k| !self.set_up[k.index()]) {
            let why = match missing {
                StreamKind::Audio => "ANNOUNCE before SETUP of the audio stream",
                StreamKind::Video => "ANNOUNCE before SETUP of the video stream",
                StreamKind::Control => "ANNOUNCE before SETUP of the control stream",
            };
            return Outcome::refuse(cseq, SessionError::OutOfOrder(why));
        }
        let config = match StreamConfig::parse(req.body).and_then(|c| {
            c.check_host(self.ctx.codecs, self.ctx.encryption_required)
                .map(|()| c)
        }) {
            Ok(c) => c,
            Err(e) => return Outcome::refuse(cseq, SessionError::Announce(e)),
        };
        let Some(audio) = choose_audio(&config, req.header("Host")) else {
            // The parser admits only 2, 6 and 8 channels, for which a layout always exists.
            let e = AnnounceError::UnsupportedValue {
                key: crate::announce::keys::NUM_CHANNELS,
                value: u32::from(config.audio.channels),
            };
            return Outcome::refuse(cseq, SessionError::Announce(e));
        };
        let encoder_bitrate_kbps = config.encoder_bitrate_kbps(self.ctx.fec_percent);
        self.phase = Phase::Announced;
        Outcome::ok(
            Response::new(StatusCode::OK, cseq),
            Some(Event::Configured(Box::new(NegotiatedStream {
                config,
                audio,
                encoder_bitrate_kbps,
            }))),
        )
    }

    fn play(&mut self, cseq: u32) -> Outcome {
        match self.phase {
            Phase::Announced => {
                self.phase = Phase::Playing;
                Outcome::ok(Response::new(StatusCode::OK, cseq), Some(Event::Play))
            }
            Phase::Handshake => {
                Outcome::refuse(cseq, SessionError::OutOfOrder("PLAY before ANNOUNCE"))
            }
            Phase::Playing | Phase::TornDown => {
                Outcome::refuse(cseq, SessionError::OutOfOrder("second PLAY"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_payload_forms() {
        assert_eq!(
            PingPayload::from_u64(0x0123_4567_89AB_CDEF).as_str(),
            "0123456789ABCDEF"
        );
        assert!(PingPayload::new("0123456789ABCDEF").is_some());
        assert!(PingPayload::new("0123456789ABCDE").is_none());
        assert!(PingPayload::new("0123456789ABCDEF0").is_none());
        assert!(PingPayload::new("0123456789ABCDE ").is_none());
        assert!(PingPayload::new("0123456789ABCDE\n").is_none());
    }

    #[test]
    fn session_token_validation() {
        assert_eq!(SessionToken::default().as_str(), "DEADBEEFCAFE");
        assert!(SessionToken::new("abc123").is_some());
        assert!(SessionToken::new("").is_none());
        assert!(SessionToken::new("a;b").is_none());
        assert!(SessionToken::new(&"a".repeat(MAX_SESSION_TOKEN + 1)).is_none());
    }

    #[test]
    fn stream_kind_from_targets() {
        assert_eq!(
            StreamKind::from_target("streamid=audio/0/0"),
            Some(StreamKind::Audio)
        );
        assert_eq!(
            StreamKind::from_target("streamid=video/0/0"),
            Some(StreamKind::Video)
        );
        assert_eq!(
            StreamKind::from_target("rtsp://10.0.0.2:48010/streamid=control/13/0"),
            Some(StreamKind::Control)
        );
        assert_eq!(
            StreamKind::from_target("streamid=audio"),
            Some(StreamKind::Audio)
        );
        assert_eq!(StreamKind::from_target("streamid=mic/0/0"), None);
        assert_eq!(StreamKind::from_target("streamid=audiox/0/0"), None);
        assert_eq!(StreamKind::from_target("/"), None);
    }
}
