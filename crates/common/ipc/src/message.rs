//! The typed messages. Field order here is the wire order (see `codec.rs`).

use std::fmt;
use std::net::SocketAddr;

/// Message kinds on the wire. 1–3 are the frozen handshake (decodable across majors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Kind {
    Hello = 1,
    HelloAck = 2,
    Refuse = 3,
    SessionStart = 16,
    SessionUpdate = 17,
    SessionStop = 18,
    /// Minor 5: a native session's next epoch ([`SessionReconfigure`]).
    SessionReconfigure = 19,
    /// Minor 5: a native session's pacing ceiling ([`SessionPace`]).
    SessionPace = 20,
    StatsRequest = 32,
    StatsSnapshot = 33,
    Shutdown = 48,
    Event = 64,
    Error = 65,
}

impl Kind {
    /// Every kind this version knows, in wire-code order.
    pub const ALL: [Kind; 13] = [
        Kind::Hello,
        Kind::HelloAck,
        Kind::Refuse,
        Kind::SessionStart,
        Kind::SessionUpdate,
        Kind::SessionStop,
        Kind::SessionReconfigure,
        Kind::SessionPace,
        Kind::StatsRequest,
        Kind::StatsSnapshot,
        Kind::Shutdown,
        Kind::Event,
        Kind::Error,
    ];

    pub fn from_code(code: u16) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| *k as u16 == code)
    }

    /// Kinds whose layout never changes, so a peer of any major can read them.
    pub fn is_frozen_handshake(self) -> bool {
        matches!(self, Kind::Hello | Kind::HelloAck | Kind::Refuse)
    }
}

/// Which process is speaking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    Control = 1,
    Dataplane = 2,
}

/// First message on a connection (control → data plane), and the body of the acknowledgement
/// (data plane → control). Frozen layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Must equal the header's major (checked by the decoder).
    pub major: u16,
    /// Must equal the header's minor (checked by the decoder).
    pub minor: u16,
    pub role: Role,
    pub pid: u32,
    /// Free-form build identification (crate version, git describe), ≤ `MAX_NAME_LEN` bytes.
    pub build: String,
}

/// Handshake refusal (either direction), then the sender closes the connection. Frozen layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refuse {
    /// The refusing side's version, so the log line on the other side can name both.
    pub major: u16,
    pub minor: u16,
    /// Human-readable reason, ≤ `MAX_TEXT_LEN` bytes.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Protocol {
    GameStream = 1,
    Native = 2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    H264 = 1,
    Hevc = 2,
    Av1 = 3,
}

/// One format an encoder can produce (GameStream's ServerCodecModeSupport bits and the
/// DESCRIBE/ANNOUNCE codec checks are derived from a list of these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFormat {
    pub codec: Codec,
    /// The codec's profile number (H.264 `profile_idc`, HEVC `general_profile_idc`, AV1
    /// `seq_profile`); informational.
    pub profile: u8,
    pub bit_depth: u8,
    /// 4:4:4 chroma (else 4:2:0).
    pub yuv444: bool,
}

/// HDR10 static metadata as the GameStream HDR message (0x010e) carries it: chromaticities in
/// 0.00002 steps, R, G, B order; max luminance in cd/m², min in 0.0001 cd/m²; MaxCLL, MaxFALL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HdrMetadata {
    pub primaries: [(u16, u16); 3],
    pub white_point: (u16, u16),
    pub max_luminance: u16,
    pub min_luminance: u16,
    pub max_cll: u16,
    pub max_fall: u16,
}

/// What the data plane's active encoder can produce (sent after every handshake, since minor 2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VideoCaps {
    /// The encoder's name and a short reason ("openh264", "passthrough: clip.hevc").
    pub encoder: String,
    /// At most [`MAX_VIDEO_FORMATS`].
    pub formats: Vec<VideoFormat>,
    /// The source's mastering metadata, when it has HDR content.
    pub hdr: Option<HdrMetadata>,
}

/// Most formats one [`VideoCaps`] lists.
pub const MAX_VIDEO_FORMATS: usize = 32;

/// The FEC percentage a session starts with unless configured otherwise: Sunshine's default, the
/// F of the GameStream bitrate formula (`gamestream-host.md` §A14 step 2, §A18), used for native
/// sessions too. Session policy, owned by the control plane: it picks each session's percentage
/// (`[video] fec_percent_default`, which defaults to this) and sends it in
/// [`VideoParams::fec_percent`]; the data plane packetizes with what it is sent. This is the one
/// declaration of the fact; strahl-config, strahl-rtsp and strahl-packetize use it.
pub const DEFAULT_FEC_PERCENT: u8 = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoParams {
    pub width: u16,
    pub height: u16,
    pub fps: u16,
    pub bitrate_kbps: u32,
    /// Payload bytes per shard (GameStream "packetSize", native shard size).
    pub packet_size: u16,
    /// Parity as a percentage of data shards (0–255 on the wire; the data plane caps it).
    pub fec_percent: u8,
    pub codec: Codec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioParams {
    pub channels: u8,
    pub sample_rate_hz: u32,
    pub packet_duration_ms: u8,
    pub bitrate_kbps: u32,
}

/// Fixed-size key bytes whose `Debug` never prints the contents (logs must not leak keys).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<const N: usize>(pub [u8; N]);

impl<const N: usize> fmt::Debug for Secret<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret<{N}>(redacted)")
    }
}

/// Session keys handed to the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    /// GameStream `rikey` (AES-128) and `rikeyid` from /launch.
    GameStream { rikey: Secret<16>, rikeyid: u32 },
    /// Native: the host→client media secret exported from the QUIC TLS session.
    Native { secret: Secret<32> },
}

/// UDP ports of the media streams: the host's source ports and the client's destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports {
    pub video_src: u16,
    pub audio_src: u16,
    pub video_dst: u16,
    pub audio_dst: u16,
}

/// How the client finds its streams and which streams are encrypted (GameStream §A10/§A11).
/// Added in minor 1; a minor-0 SessionStart decodes with [`StreamOptions::default`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamOptions {
    /// The 16 ASCII characters of `X-SS-Ping-Payload` the client puts at the front of its UDP
    /// pings; `None` for legacy clients (match the pings by the peer's IP and accept "PING").
    pub ping_payload: Option<[u8; 16]>,
    /// `STREAM_*` bits below.
    pub flags: u32,
    /// The client's minimum parity shards per FEC block (`x-nv-vqos[0].fec.minRequiredFecPackets`).
    pub min_fec_packets: u8,
}

impl StreamOptions {
    /// Video shards are AES-GCM sealed (SS_ENC_VIDEO, §A16).
    pub const ENCRYPT_VIDEO: u32 = 0x01;
    /// Audio packets are AES-CBC encrypted (SS_ENC_AUDIO or legacy featureFlags 0x20, §A15).
    pub const ENCRYPT_AUDIO: u32 = 0x02;
    /// The client sends SS_FRAME_FEC_STATUS (ML_FF_FEC_STATUS): FEC may adapt.
    pub const FEC_STATUS: u32 = 0x04;
    /// The client asked for 10-bit video (HEVC Main10, AV1 Main 10-bit: `dynamicRangeMode` 1).
    pub const TEN_BIT: u32 = 0x08;
    /// The client asked for HDR (`dynamicRangeMode` 1); the control plane sends the HDR
    /// metadata on the control stream, the data plane only checks the format.
    pub const HDR: u32 = 0x10;
    /// The client asked for 4:4:4 chroma (`chromaSamplingType` 1).
    pub const YUV444: u32 = 0x20;
    /// Minor 3: the video units are checkable frames (`strahl_packetize::native::check`), made
    /// by the data plane's pattern source at the session's bitrate and fps instead of by the
    /// configured source and encoder — a native session whose client chose the passthrough
    /// codec (`strahl/1` codec bit 8), for pushing the network path at any rate. Only native
    /// sessions set it; a data plane before minor 3 refuses native sessions altogether, so it
    /// never streams something else in its place.
    pub const CHECKABLE: u32 = 0x40;

    pub fn has(&self, bit: u32) -> bool {
        self.flags & bit == bit
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStart {
    pub id: u64,
    pub protocol: Protocol,
    pub peer: SocketAddr,
    pub video: VideoParams,
    pub audio: AudioParams,
    pub keys: KeyMaterial,
    pub ports: Ports,
    /// Minor 1.
    pub stream: StreamOptions,
}

/// Changes to a running session; `None` fields stay as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUpdate {
    pub id: u64,
    pub bitrate_kbps: Option<u32>,
    pub fec_percent: Option<u8>,
    pub request_keyframe: bool,
}

/// Minor 5: a native session opens epoch `epoch` with this configuration. The data plane
/// applies it at a frame boundary — every frame from some frame F on is made and sent in the new
/// configuration, none before — and answers [`Event::Reconfigured`] with that F (the
/// `strahl/1` `reconfigured` message's `first frame`). The whole configuration is sent, not a
/// difference, so a lost or repeated message cannot leave the two sides disagreeing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionReconfigure {
    pub id: u64,
    pub epoch: u32,
    pub width: u16,
    pub height: u16,
    pub fps: u16,
    pub bitrate_kbps: u32,
    pub fec_percent: u8,
    /// Payload bytes per shard.
    pub shard_len: u16,
}

/// Minor 5: the most a native session's video may be paced at, kbit/s; [`SessionPace::LINK`]
/// (0) lifts the ceiling (the link rate again). The data plane never paces above its link rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPace {
    pub id: u64,
    pub rate_kbps: u32,
}

impl SessionPace {
    /// `rate_kbps` meaning "no ceiling below the link rate".
    pub const LINK: u32 = 0;
}

/// Why a session ends. Unknown codes from a newer minor are kept as `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    ClientQuit,
    ClientTimeout,
    ControlShutdown,
    Replaced,
    ControlDisconnected,
    Error,
    Other(u8),
}

impl StopReason {
    pub fn code(self) -> u8 {
        match self {
            Self::ClientQuit => 1,
            Self::ClientTimeout => 2,
            Self::ControlShutdown => 3,
            Self::Replaced => 4,
            Self::ControlDisconnected => 5,
            Self::Error => 6,
            Self::Other(c) => c,
        }
    }
    pub fn from_code(c: u8) -> Self {
        match c {
            1 => Self::ClientQuit,
            2 => Self::ClientTimeout,
            3 => Self::ControlShutdown,
            4 => Self::Replaced,
            5 => Self::ControlDisconnected,
            6 => Self::Error,
            c => Self::Other(c),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStop {
    pub id: u64,
    pub reason: StopReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsRequest {
    /// Echoed in the snapshot so the requester can match answers.
    pub request_id: u32,
}

/// The data plane's metric series as (series key, value) pairs. Names rather than a fixed struct
/// so either side can add metrics in a minor version; the receiver ignores names it lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub request_id: u32,
    pub uptime_ms: u64,
    pub counters: Vec<(String, u64)>,
}

/// Packet transport chosen by the data plane. Unknown codes are kept as `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    None,
    AfXdp,
    IoUring,
    Sendmmsg,
    Other(u8),
}

impl Transport {
    pub fn code(self) -> u8 {
        match self {
            Self::None => 0,
            Self::AfXdp => 1,
            Self::IoUring => 2,
            Self::Sendmmsg => 3,
            Self::Other(c) => c,
        }
    }
    pub fn from_code(c: u8) -> Self {
        match c {
            0 => Self::None,
            1 => Self::AfXdp,
            2 => Self::IoUring,
            3 => Self::Sendmmsg,
            c => Self::Other(c),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::AfXdp => "af_xdp",
            Self::IoUring => "io_uring",
            Self::Sendmmsg => "sendmmsg",
            Self::Other(_) => "other",
        }
    }
}

/// The subsystems a start-up choice is about. Unknown codes are kept as `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subsystem {
    Capture,
    Encode,
    Audio,
    Input,
    Other(u8),
}

impl Subsystem {
    pub fn code(self) -> u8 {
        match self {
            Self::Capture => 1,
            Self::Encode => 2,
            Self::Audio => 3,
            Self::Input => 4,
            Self::Other(c) => c,
        }
    }
    pub fn from_code(c: u8) -> Self {
        match c {
            1 => Self::Capture,
            2 => Self::Encode,
            3 => Self::Audio,
            4 => Self::Input,
            c => Self::Other(c),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Capture => "capture",
            Self::Encode => "encode",
            Self::Audio => "audio",
            Self::Input => "input",
            Self::Other(_) => "other",
        }
    }
}

/// One start-up choice: `choice` is short ("openh264", "synthetic", "pipewire"; at most
/// [`crate::MAX_NAME_LEN`] bytes), `reason` says why (at most [`crate::MAX_TEXT_LEN`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub subsystem: Subsystem,
    pub choice: String,
    pub reason: String,
}

/// Data plane → control notifications. An event tag from a newer minor decodes to `Unknown`
/// (its body skipped) so the receiver can log and ignore it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    SessionStarted {
        id: u64,
    },
    SessionUpdated {
        id: u64,
    },
    SessionEnded {
        id: u64,
        reason: StopReason,
    },
    /// `id` 0 means process-wide (the start-up self-test).
    TransportChosen {
        id: u64,
        transport: Transport,
        detail: String,
    },
    SessionError {
        id: u64,
        detail: String,
    },
    /// Process-wide (since minor 2): what the encoder can produce.
    VideoCaps(VideoCaps),
    /// Process-wide (since minor 4): what the data plane chose at start for one subsystem, and
    /// why. Sent after every handshake, one per subsystem it decides.
    Detected(Detected),
    /// Since minor 5: native session `id` is in epoch `epoch` from frame `first_frame` (its
    /// `strahl/1` frame id) on — the answer to a [`SessionReconfigure`].
    Reconfigured {
        id: u64,
        epoch: u32,
        first_frame: u64,
    },
    Unknown {
        tag: u8,
    },
}

/// Protocol-level error codes. Unknown codes are kept as `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    UnknownKind,
    Malformed,
    UnexpectedMessage,
    UnknownSession,
    Busy,
    Other(u16),
}

impl ErrorCode {
    pub fn code(self) -> u16 {
        match self {
            Self::UnknownKind => 1,
            Self::Malformed => 2,
            Self::UnexpectedMessage => 3,
            Self::UnknownSession => 4,
            Self::Busy => 5,
            Self::Other(c) => c,
        }
    }
    pub fn from_code(c: u16) -> Self {
        match c {
            1 => Self::UnknownKind,
            2 => Self::Malformed,
            3 => Self::UnexpectedMessage,
            4 => Self::UnknownSession,
            5 => Self::Busy,
            c => Self::Other(c),
        }
    }
}

/// Answer to a message the receiver could not use (unknown kind, malformed body, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMsg {
    pub code: ErrorCode,
    /// The kind code that caused the error (0 if unknown).
    pub in_reply_to: u16,
    pub detail: String,
}

/// One IPC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Hello(Hello),
    HelloAck(Hello),
    Refuse(Refuse),
    SessionStart(Box<SessionStart>),
    SessionUpdate(SessionUpdate),
    SessionStop(SessionStop),
    SessionReconfigure(SessionReconfigure),
    SessionPace(SessionPace),
    StatsRequest(StatsRequest),
    StatsSnapshot(StatsSnapshot),
    Shutdown,
    Event(Event),
    Error(ErrorMsg),
}

impl Message {
    pub fn kind(&self) -> Kind {
        match self {
            Message::Hello(_) => Kind::Hello,
            Message::HelloAck(_) => Kind::HelloAck,
            Message::Refuse(_) => Kind::Refuse,
            Message::SessionStart(_) => Kind::SessionStart,
            Message::SessionUpdate(_) => Kind::SessionUpdate,
            Message::SessionStop(_) => Kind::SessionStop,
            Message::SessionReconfigure(_) => Kind::SessionReconfigure,
            Message::SessionPace(_) => Kind::SessionPace,
            Message::StatsRequest(_) => Kind::StatsRequest,
            Message::StatsSnapshot(_) => Kind::StatsSnapshot,
            Message::Shutdown => Kind::Shutdown,
            Message::Event(_) => Kind::Event,
            Message::Error(_) => Kind::Error,
        }
    }
}
