//! The `strahl/1` control messages: typed values, their type numbers ([`REGISTRY`]), and the
//! codec over [`crate::wire`] (normative table: `docs/strahl1-wire.md` §Control messages).
//!
//! Contract:
//! - Every message type number is in [`REGISTRY`] once (tested), with its name and direction.
//! - [`decode`] turns one frame (`type ‖ len ‖ body`, exactly) into a [`Message`]; a type number
//!   we do not know is [`Message::Unknown`] (a newer peer's message: the session ignores it);
//!   field tags we do not know are skipped (optional by definition: a field a peer *must*
//!   understand comes with a new version). Known fields are range-checked here, so a decoded
//!   message is always valid; a repeated known field is refused.
//! - Decoding never panics and never allocates more than the body it was given (bounded by
//!   `wire::MAX_BODY`); `decode(encode(m)) == m` for every message (tested).

use crate::wire::{BodyWriter, Fields, WireError, field_uint, frame_header, once, required};

/// Protocol major version: ALPN `strahl/1`. A different major never gets past the handshake.
pub const VERSION_MAJOR: u64 = 1;
/// Protocol minor version: additions only (new optional fields, new message types).
pub const VERSION_MINOR: u64 = 0;
/// The ALPN protocol id of the control connection.
pub const ALPN: &[u8] = b"strahl/1";

/// Longest client name (bytes of UTF-8).
pub const MAX_NAME: usize = 64;
/// SPAKE2 (Ed25519 group) messages: one side byte and a 32-byte point.
pub const SPAKE_MSG_LEN: usize = 33;
/// Key-confirmation MAC length (HMAC-SHA256).
pub const CONFIRM_LEN: usize = 32;
/// Exporter context length the host picks per session (see [`Welcome::key_context`]).
pub const KEY_CONTEXT_LEN: usize = 16;

/// Message type numbers. One constant each; [`REGISTRY`] lists them all.
pub mod types {
    pub const HELLO: u64 = 0x01;
    pub const WELCOME: u64 = 0x02;
    pub const START: u64 = 0x03;
    pub const REFUSED: u64 = 0x04;
    pub const PAIR_REQUEST: u64 = 0x10;
    pub const PAIR_CHALLENGE: u64 = 0x11;
    pub const PAIR_PROOF: u64 = 0x12;
    pub const PAIR_OK: u64 = 0x13;
    pub const LOSS_REPORT: u64 = 0x20;
    pub const KEYFRAME_REQUEST: u64 = 0x21;
    pub const RECONFIGURE: u64 = 0x22;
    pub const RECONFIGURED: u64 = 0x23;
    pub const STOP: u64 = 0x24;
}

/// Who sends a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    ClientToHost,
    HostToClient,
    Both,
}

/// Every type number, its name and who sends it.
pub const REGISTRY: &[(u64, &str, Dir)] = &[
    (types::HELLO, "hello", Dir::ClientToHost),
    (types::WELCOME, "welcome", Dir::HostToClient),
    (types::START, "start", Dir::ClientToHost),
    (types::REFUSED, "refused", Dir::HostToClient),
    (types::PAIR_REQUEST, "pair-request", Dir::ClientToHost),
    (types::PAIR_CHALLENGE, "pair-challenge", Dir::HostToClient),
    (types::PAIR_PROOF, "pair-proof", Dir::ClientToHost),
    (types::PAIR_OK, "pair-ok", Dir::HostToClient),
    (types::LOSS_REPORT, "loss-report", Dir::ClientToHost),
    (
        types::KEYFRAME_REQUEST,
        "keyframe-request",
        Dir::ClientToHost,
    ),
    (types::RECONFIGURE, "reconfigure", Dir::ClientToHost),
    (types::RECONFIGURED, "reconfigured", Dir::HostToClient),
    (types::STOP, "stop", Dir::Both),
];

/// Why the host refuses a connection, a pairing or a request. Sent in [`Refused`]; the client
/// prints [`Reason::text`]. Unknown codes from a newer host are kept as `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    VersionMismatch,
    /// The client's certificate fingerprint is not paired.
    NotPaired,
    /// No pairing window is armed.
    NotArmed,
    /// The pairing window's time ran out.
    WindowExpired,
    /// The PIN (or the certificates seen by the two sides) did not match.
    WrongPin,
    /// A message arrived out of order or a second time.
    UnexpectedMessage,
    /// A message did not decode.
    Malformed,
    /// A step took too long.
    Timeout,
    /// The host is at its session limit.
    Busy,
    /// The host failed internally (state not writable, data plane away).
    Internal,
    Other(u16),
}

impl Reason {
    pub fn code(self) -> u16 {
        match self {
            Reason::VersionMismatch => 1,
            Reason::NotPaired => 2,
            Reason::NotArmed => 3,
            Reason::WindowExpired => 4,
            Reason::WrongPin => 5,
            Reason::UnexpectedMessage => 6,
            Reason::Malformed => 7,
            Reason::Timeout => 8,
            Reason::Busy => 9,
            Reason::Internal => 10,
            Reason::Other(c) => c,
        }
    }

    pub fn from_code(c: u16) -> Reason {
        match c {
            1 => Reason::VersionMismatch,
            2 => Reason::NotPaired,
            3 => Reason::NotArmed,
            4 => Reason::WindowExpired,
            5 => Reason::WrongPin,
            6 => Reason::UnexpectedMessage,
            7 => Reason::Malformed,
            8 => Reason::Timeout,
            9 => Reason::Busy,
            10 => Reason::Internal,
            c => Reason::Other(c),
        }
    }

    /// What a person should read (the client prints it).
    pub fn text(self) -> &'static str {
        match self {
            Reason::VersionMismatch => "protocol version mismatch: update the client and the host",
            Reason::NotPaired => "this client is not paired: run `strahl-client pair HOST PIN`",
            Reason::NotArmed => "no pairing window is open: run `strahl-control pair` on the host",
            Reason::WindowExpired => {
                "the pairing window has expired: arm a new one with `strahl-control pair`"
            }
            Reason::WrongPin => {
                "wrong PIN (or a machine in the middle): arm a new window and try again"
            }
            Reason::UnexpectedMessage => "unexpected or replayed message",
            Reason::Malformed => "malformed message",
            Reason::Timeout => "timed out",
            Reason::Busy => "the host is busy (session limit reached)",
            Reason::Internal => "the host failed internally (see its log)",
            Reason::Other(_) => "refused (reason unknown to this client)",
        }
    }
}

/// Why a session ends ([`Stop`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    ClientQuit,
    HostShutdown,
    Timeout,
    Unpaired,
    Error,
    Other(u16),
}

impl StopReason {
    pub fn code(self) -> u16 {
        match self {
            StopReason::ClientQuit => 1,
            StopReason::HostShutdown => 2,
            StopReason::Timeout => 3,
            StopReason::Unpaired => 4,
            StopReason::Error => 5,
            StopReason::Other(c) => c,
        }
    }

    pub fn from_code(c: u16) -> StopReason {
        match c {
            1 => StopReason::ClientQuit,
            2 => StopReason::HostShutdown,
            3 => StopReason::Timeout,
            4 => StopReason::Unpaired,
            5 => StopReason::Error,
            c => StopReason::Other(c),
        }
    }
}

/// Video mode. Width and height 1..=16384, fps 1..=1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// Codec bits ([`Hello::codecs`] is a set, [`Welcome::codec`] one of them).
pub mod codec {
    pub const H264: u64 = 1 << 0;
    pub const HEVC: u64 = 1 << 1;
    pub const AV1: u64 = 1 << 2;
    /// Verifiable frames of the passthrough source (tests, benches).
    pub const PASSTHROUGH: u64 = 1 << 3;
}

/// Client → host, first message of a streaming connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub version_major: u64,
    pub version_minor: u64,
    pub mode: Mode,
    /// Set of [`codec`] bits the client decodes (non-empty).
    pub codecs: u64,
    pub bitrate_kbps: u64,
    /// Largest shard the client's path carries (even, 64..=65534).
    pub max_shard_payload: u16,
    /// UDP port the client receives media on (non-zero).
    pub media_port: u16,
    /// Capability bits (none defined in 1.0; unknown bits are ignored).
    pub capabilities: u64,
}

/// Host → client: what the host will send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub mode: Mode,
    /// One [`codec`] bit.
    pub codec: u64,
    pub bitrate_kbps: u64,
    /// 0..=100.
    pub fec_percent: u8,
    /// Even, 64..=65534.
    pub shard_len: u16,
    /// Context of the two TLS-exporter secrets of this session (one per direction).
    pub key_context: [u8; KEY_CONTEXT_LEN],
    pub session_id: u64,
    /// Configuration epoch of the first frame (0).
    pub epoch: u32,
}

/// Client → host: keys derived, socket open, send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub session_id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub reason: Reason,
    /// Free text for logs (≤ 256 bytes); the client prints [`Reason::text`] first.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRequest {
    pub name: String,
    pub spake: [u8; SPAKE_MSG_LEN],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairChallenge {
    pub spake: [u8; SPAKE_MSG_LEN],
    pub host_confirm: [u8; CONFIRM_LEN],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairProof {
    pub client_confirm: [u8; CONFIRM_LEN],
}

/// Client → host, per interval: what the receiver saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossReport {
    pub epoch: u32,
    pub frames_received: u64,
    pub frames_recovered: u64,
    pub frames_lost: u64,
    /// Shards lost per million over the interval (0..=1_000_000).
    pub shard_loss_ppm: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyframeRequest {
    pub epoch: u32,
    /// Last frame the client could decode (None: none yet).
    pub last_good_frame: Option<u64>,
}

/// Client → host: asks for a change; any subset of the three.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconfigure {
    pub bitrate_kbps: Option<u64>,
    pub fec_percent: Option<u8>,
    pub mode: Option<Mode>,
}

/// Host → client: from frame `first_frame` on, the stream is in configuration `epoch`. Frames
/// below it belong to earlier epochs; the new epoch starts with a keyframe, so the client never
/// decodes a frame of one configuration with the state of another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconfigured {
    pub epoch: u32,
    pub first_frame: u64,
    pub bitrate_kbps: u64,
    pub fec_percent: u8,
    pub mode: Mode,
    pub shard_len: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    pub reason: StopReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Hello(Hello),
    Welcome(Welcome),
    Start(Start),
    Refused(Refused),
    PairRequest(PairRequest),
    PairChallenge(PairChallenge),
    PairProof(PairProof),
    PairOk,
    LossReport(LossReport),
    KeyframeRequest(KeyframeRequest),
    Reconfigure(Reconfigure),
    Reconfigured(Reconfigured),
    Stop(Stop),
    /// A type number this build does not know (from a newer peer).
    Unknown(u64),
}

impl Message {
    pub fn msg_type(&self) -> u64 {
        use types::*;
        match self {
            Message::Hello(_) => HELLO,
            Message::Welcome(_) => WELCOME,
            Message::Start(_) => START,
            Message::Refused(_) => REFUSED,
            Message::PairRequest(_) => PAIR_REQUEST,
            Message::PairChallenge(_) => PAIR_CHALLENGE,
            Message::PairProof(_) => PAIR_PROOF,
            Message::PairOk => PAIR_OK,
            Message::LossReport(_) => LOSS_REPORT,
            Message::KeyframeRequest(_) => KEYFRAME_REQUEST,
            Message::Reconfigure(_) => RECONFIGURE,
            Message::Reconfigured(_) => RECONFIGURED,
            Message::Stop(_) => STOP,
            Message::Unknown(t) => *t,
        }
    }

    /// The registry name (for logs).
    pub fn name(&self) -> &'static str {
        let t = self.msg_type();
        REGISTRY
            .iter()
            .find(|r| r.0 == t)
            .map_or("unknown", |r| r.1)
    }
}

// Field tags, per message. Shared numbers for the same meaning keep the table readable.
const T_VMAJ: u64 = 1;
const T_VMIN: u64 = 2;
const T_W: u64 = 3;
const T_H: u64 = 4;
const T_FPS: u64 = 5;
const T_CODECS: u64 = 6;
const T_BITRATE: u64 = 7;
const T_SHARD: u64 = 8;
const T_PORT: u64 = 9;
const T_CAPS: u64 = 10;
const T_FEC: u64 = 11;
const T_KEYCTX: u64 = 12;
const T_SESSION: u64 = 13;
const T_EPOCH: u64 = 14;
const T_REASON: u64 = 15;
const T_DETAIL: u64 = 16;
const T_NAME: u64 = 17;
const T_SPAKE: u64 = 18;
const T_CONFIRM: u64 = 19;
const T_RECEIVED: u64 = 20;
const T_RECOVERED: u64 = 21;
const T_LOST: u64 = 22;
const T_PPM: u64 = 23;
const T_FRAME: u64 = 24;

const MAX_DETAIL: usize = 256;

fn put_mode(w: &mut BodyWriter, m: &Mode) {
    w.uint(T_W, m.width.into())
        .uint(T_H, m.height.into())
        .uint(T_FPS, m.fps.into());
}

/// Encodes one message as a whole frame.
pub fn encode(m: &Message) -> Vec<u8> {
    let mut w = BodyWriter::new();
    match m {
        Message::Hello(h) => {
            w.uint(T_VMAJ, h.version_major)
                .uint(T_VMIN, h.version_minor);
            put_mode(&mut w, &h.mode);
            w.uint(T_CODECS, h.codecs)
                .uint(T_BITRATE, h.bitrate_kbps)
                .uint(T_SHARD, h.max_shard_payload.into())
                .uint(T_PORT, h.media_port.into())
                .uint(T_CAPS, h.capabilities);
        }
        Message::Welcome(x) => {
            put_mode(&mut w, &x.mode);
            w.uint(T_CODECS, x.codec)
                .uint(T_BITRATE, x.bitrate_kbps)
                .uint(T_FEC, x.fec_percent.into())
                .uint(T_SHARD, x.shard_len.into())
                .bytes(T_KEYCTX, &x.key_context)
                .uint(T_SESSION, x.session_id)
                .uint(T_EPOCH, x.epoch.into());
        }
        Message::Start(s) => {
            w.uint(T_SESSION, s.session_id);
        }
        Message::Refused(r) => {
            w.uint(T_REASON, r.reason.code().into());
            let d = truncate_utf8(&r.detail, MAX_DETAIL);
            if !d.is_empty() {
                w.bytes(T_DETAIL, d.as_bytes());
            }
        }
        Message::PairRequest(p) => {
            w.bytes(T_NAME, truncate_utf8(&p.name, MAX_NAME).as_bytes())
                .bytes(T_SPAKE, &p.spake);
        }
        Message::PairChallenge(p) => {
            w.bytes(T_SPAKE, &p.spake).bytes(T_CONFIRM, &p.host_confirm);
        }
        Message::PairProof(p) => {
            w.bytes(T_CONFIRM, &p.client_confirm);
        }
        Message::PairOk | Message::Unknown(_) => {}
        Message::LossReport(l) => {
            w.uint(T_EPOCH, l.epoch.into())
                .uint(T_RECEIVED, l.frames_received)
                .uint(T_RECOVERED, l.frames_recovered)
                .uint(T_LOST, l.frames_lost)
                .uint(T_PPM, l.shard_loss_ppm.into());
        }
        Message::KeyframeRequest(k) => {
            w.uint(T_EPOCH, k.epoch.into())
                .opt_uint(T_FRAME, k.last_good_frame);
        }
        Message::Reconfigure(r) => {
            w.opt_uint(T_BITRATE, r.bitrate_kbps)
                .opt_uint(T_FEC, r.fec_percent.map(u64::from));
            if let Some(m) = &r.mode {
                put_mode(&mut w, m);
            }
        }
        Message::Reconfigured(r) => {
            w.uint(T_EPOCH, r.epoch.into()).uint(T_FRAME, r.first_frame);
            w.uint(T_BITRATE, r.bitrate_kbps)
                .uint(T_FEC, r.fec_percent.into())
                .uint(T_SHARD, r.shard_len.into());
            put_mode(&mut w, &r.mode);
        }
        Message::Stop(s) => {
            w.uint(T_REASON, s.reason.code().into());
        }
    }
    w.frame(m.msg_type())
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Every known field a body may hold, collected once each; unknown tags are skipped.
#[derive(Default)]
struct Seen<'a> {
    u: [Option<u64>; 25],
    b: [Option<&'a [u8]>; 25],
}

const BYTE_TAGS: &[u64] = &[T_KEYCTX, T_DETAIL, T_NAME, T_SPAKE, T_CONFIRM];

fn collect(body: &[u8]) -> Result<Seen<'_>, WireError> {
    let mut s = Seen::default();
    for f in Fields::new(body) {
        let (tag, v) = f?;
        let Ok(i) = usize::try_from(tag) else {
            continue;
        };
        if i == 0 || i >= s.u.len() {
            continue; // unknown: optional by definition
        }
        if BYTE_TAGS.contains(&tag) {
            once(&mut s.b[i], tag, v)?;
        } else {
            once(&mut s.u[i], tag, field_uint(tag, v)?)?;
        }
    }
    Ok(s)
}

impl Seen<'_> {
    fn opt(&self, tag: u64, max: u64) -> Result<Option<u64>, WireError> {
        match self.u[tag as usize] {
            Some(x) if x > max => Err(WireError::BadValue {
                tag,
                why: "out of range",
            }),
            x => Ok(x),
        }
    }
    fn req(&self, tag: u64, max: u64) -> Result<u64, WireError> {
        required(self.opt(tag, max)?, tag)
    }
    fn range(&self, tag: u64, min: u64, max: u64) -> Result<u64, WireError> {
        let x = self.req(tag, max)?;
        if x < min {
            return Err(WireError::BadValue {
                tag,
                why: "out of range",
            });
        }
        Ok(x)
    }
    fn shard(&self, tag: u64) -> Result<u16, WireError> {
        let x = self.range(tag, 64, 65534)?;
        if x % 2 != 0 {
            return Err(WireError::BadValue { tag, why: "odd" });
        }
        Ok(x as u16)
    }
    fn mode(&self) -> Result<Mode, WireError> {
        Ok(Mode {
            width: self.range(T_W, 1, 16384)? as u32,
            height: self.range(T_H, 1, 16384)? as u32,
            fps: self.range(T_FPS, 1, 1000)? as u32,
        })
    }
    fn opt_mode(&self) -> Result<Option<Mode>, WireError> {
        let any = [T_W, T_H, T_FPS]
            .iter()
            .any(|&t| self.u[t as usize].is_some());
        if any { self.mode().map(Some) } else { Ok(None) }
    }
    fn fixed<const N: usize>(&self, tag: u64) -> Result<[u8; N], WireError> {
        let v = required(self.b[tag as usize], tag)?;
        v.try_into().map_err(|_| WireError::BadValue {
            tag,
            why: "wrong length",
        })
    }
    fn text(&self, tag: u64, max: usize) -> Result<String, WireError> {
        let v = self.b[tag as usize].unwrap_or_default();
        if v.len() > max {
            return Err(WireError::BadValue {
                tag,
                why: "too long",
            });
        }
        std::str::from_utf8(v)
            .map(str::to_owned)
            .map_err(|_| WireError::BadValue {
                tag,
                why: "not UTF-8",
            })
    }
}

const U32: u64 = u32::MAX as u64;

/// Decodes exactly one frame (see the module contract).
pub fn decode(frame: &[u8]) -> Result<Message, WireError> {
    let h = frame_header(frame)?.ok_or(WireError::Truncated)?;
    let body = &frame[h.header_len..];
    if body.len() != h.body_len {
        return Err(WireError::Truncated);
    }
    decode_body(h.msg_type, body)
}

/// Decodes a body of type `msg_type` (the stream reader has already framed it).
pub fn decode_body(msg_type: u64, body: &[u8]) -> Result<Message, WireError> {
    use types::*;
    let s = collect(body)?;
    Ok(match msg_type {
        HELLO => Message::Hello(Hello {
            version_major: s.req(T_VMAJ, U32)?,
            version_minor: s.req(T_VMIN, U32)?,
            mode: s.mode()?,
            codecs: s.range(T_CODECS, 1, u64::MAX)?,
            bitrate_kbps: s.range(T_BITRATE, 1, 100_000_000)?,
            max_shard_payload: s.shard(T_SHARD)?,
            media_port: s.range(T_PORT, 1, 65535)? as u16,
            capabilities: s.opt(T_CAPS, u64::MAX)?.unwrap_or(0),
        }),
        WELCOME => {
            let codec = s.req(T_CODECS, u64::MAX)?;
            if codec.count_ones() != 1 {
                return Err(WireError::BadValue {
                    tag: T_CODECS,
                    why: "not one codec",
                });
            }
            Message::Welcome(Welcome {
                mode: s.mode()?,
                codec,
                bitrate_kbps: s.range(T_BITRATE, 1, 100_000_000)?,
                fec_percent: s.req(T_FEC, 100)? as u8,
                shard_len: s.shard(T_SHARD)?,
                key_context: s.fixed(T_KEYCTX)?,
                session_id: s.req(T_SESSION, u64::MAX)?,
                epoch: s.req(T_EPOCH, U32)? as u32,
            })
        }
        START => Message::Start(Start {
            session_id: s.req(T_SESSION, u64::MAX)?,
        }),
        REFUSED => Message::Refused(Refused {
            reason: Reason::from_code(s.req(T_REASON, 0xffff)? as u16),
            detail: s.text(T_DETAIL, MAX_DETAIL)?,
        }),
        PAIR_REQUEST => Message::PairRequest(PairRequest {
            name: s.text(T_NAME, MAX_NAME)?,
            spake: s.fixed(T_SPAKE)?,
        }),
        PAIR_CHALLENGE => Message::PairChallenge(PairChallenge {
            spake: s.fixed(T_SPAKE)?,
            host_confirm: s.fixed(T_CONFIRM)?,
        }),
        PAIR_PROOF => Message::PairProof(PairProof {
            client_confirm: s.fixed(T_CONFIRM)?,
        }),
        PAIR_OK => Message::PairOk,
        LOSS_REPORT => Message::LossReport(LossReport {
            epoch: s.req(T_EPOCH, U32)? as u32,
            frames_received: s.req(T_RECEIVED, u64::MAX)?,
            frames_recovered: s.req(T_RECOVERED, u64::MAX)?,
            frames_lost: s.req(T_LOST, u64::MAX)?,
            shard_loss_ppm: s.req(T_PPM, 1_000_000)? as u32,
        }),
        KEYFRAME_REQUEST => Message::KeyframeRequest(KeyframeRequest {
            epoch: s.req(T_EPOCH, U32)? as u32,
            last_good_frame: s.opt(T_FRAME, u64::MAX)?,
        }),
        RECONFIGURE => Message::Reconfigure(Reconfigure {
            bitrate_kbps: match s.opt(T_BITRATE, 100_000_000)? {
                Some(0) => {
                    return Err(WireError::BadValue {
                        tag: T_BITRATE,
                        why: "zero",
                    });
                }
                x => x,
            },
            fec_percent: s.opt(T_FEC, 100)?.map(|x| x as u8),
            mode: s.opt_mode()?,
        }),
        RECONFIGURED => Message::Reconfigured(Reconfigured {
            epoch: s.req(T_EPOCH, U32)? as u32,
            first_frame: s.req(T_FRAME, u64::MAX)?,
            bitrate_kbps: s.range(T_BITRATE, 1, 100_000_000)?,
            fec_percent: s.req(T_FEC, 100)? as u8,
            mode: s.mode()?,
            shard_len: s.shard(T_SHARD)?,
        }),
        STOP => Message::Stop(Stop {
            reason: StopReason::from_code(s.req(T_REASON, 0xffff)? as u16),
        }),
        other => Message::Unknown(other),
    })
}

#[cfg(test)]
#[path = "msg_tests.rs"]
mod tests;
