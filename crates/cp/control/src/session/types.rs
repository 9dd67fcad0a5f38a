//! The session manager's vocabulary: configuration, client identity, the effects a step returns
//! (control-server actions, then IPC messages), the RTSP step results and the per-client state.
//!
//! Contract: plain data and small pure helpers only (no manager logic); the state structs
//! ([`Pending`], [`Stream`], [`ClientSlot`]) are visible to the session module alone, whose
//! [`super::manager`] and [`super::rtsp`] halves drive them. Imports no sibling file.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use strahl_ipc::Message;
use strahl_rtsp::{NegotiatedStream, PingPayload, RtspSession};
use strahl_seal::gamestream::RtspCipher;

use crate::fec_adapt::FecController;

/// How long a launch waits for its RTSP handshake (Sunshine's ping_timeout, §A7).
pub const PENDING_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest plain RTSP request buffered (head + body limits of the parser).
pub const MAX_PLAIN_REQUEST: usize = strahl_rtsp::limits::MAX_REQUEST_BYTES;
/// Largest `rtspenc` frame buffered.
pub const MAX_ENCRYPTED_FRAME: usize = RtspCipher::HEADER_LEN + RtspCipher::MAX_MESSAGE_LEN;
/// The top bit of an `rtspenc` frame's first byte (its length word's flag, §A8).
pub(super) const RTSPENC_FLAG: u8 = 0x80;

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
    /// `[gamestream] encryption`: what DESCRIBE advertises and requests, what ANNOUNCE enforces.
    pub video_encryption: strahl_rtsp::VideoEncryption,
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
        /// What the client's input may reach (the input sink drops and counts the rest).
        permissions: strahl_gamestream::Permissions,
    },
    /// Send the termination message with `hresult`, then disconnect (or forget a session that
    /// never connected).
    Terminate { session: u64, hresult: u32 },
    /// Send the HDR mode message (0x010e): HDR on, with the source's mastering metadata
    /// (zeros when the source has none).
    HdrMode {
        session: u64,
        metadata: strahl_ipc::HdrMetadata,
    },
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

    pub(super) fn extend(&mut self, other: Actions) {
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

pub(super) struct Pending {
    pub(super) ping_payload: PingPayload,
    pub(super) connect_data: u32,
    pub(super) rikey: [u8; 16],
    pub(super) rikeyid: u32,
    /// Where the /launch (or /resume) came from: plain RTSP is matched by it.
    pub(super) client_ip: IpAddr,
    pub(super) armed_at: Instant,
    /// Tie-break for launches armed at the same `now` (arm order).
    pub(super) armed_seq: u64,
    pub(super) rtsp: RtspSession,
    /// Host side of `rtspenc` (corever ≥ 1).
    pub(super) cipher: Option<RtspCipher>,
    pub(super) negotiated: Option<NegotiatedStream>,
    /// The client's permissions at /launch or /resume (its stream's input is filtered by them).
    pub(super) permissions: strahl_gamestream::Permissions,
}

impl Pending {
    pub(super) fn age_key(&self) -> (Instant, u64) {
        (self.armed_at, self.armed_seq)
    }
}

/// A streaming session's control-plane state.
pub(super) struct Stream {
    pub(super) id: u64,
    pub(super) format: StreamFormat,
    pub(super) fec: FecController,
    /// ENet's latest round-trip estimate for this session's control stream.
    pub(super) rtt: Option<Duration>,
    pub(super) fec_recovered: u64,
    pub(super) fec_lost: u64,
}

/// What a stream carries, as ANNOUNCE negotiated it (for the status page and the HDR message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFormat {
    pub codec: strahl_ipc::Codec,
    pub bit_depth: u8,
    /// `dynamicRangeMode` 1: the HDR message is sent when the control stream connects.
    pub hdr: bool,
    /// SS_ENC_VIDEO is on: the video shards are AES-GCM sealed.
    pub encrypted_video: bool,
}

impl StreamFormat {
    /// "H.264", "HEVC", "AV1".
    pub fn codec_name(&self) -> &'static str {
        match self.codec {
            strahl_ipc::Codec::H264 => "H.264",
            strahl_ipc::Codec::Hevc => "HEVC",
            strahl_ipc::Codec::Av1 => "AV1",
        }
    }
}

/// One client with a running app.
pub(super) struct ClientSlot {
    pub(super) app: u32,
    pub(super) pending: Option<Pending>,
    pub(super) stream: Option<Stream>,
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
    /// Codec, bit depth, HDR and video encryption as negotiated.
    pub format: StreamFormat,
    /// The adaptive FEC percentage now.
    pub fec_percent: u8,
    pub rtt: Option<Duration>,
    /// FEC status reports of this session: blocks rebuilt from parity / blocks lost.
    pub fec_recovered: u64,
    pub fec_lost: u64,
}

/// A short, non-reversible fingerprint of a key for logs (first 4 bytes of SHA-256, hex), so a
/// log reader can match keys without the log leaking them.
pub fn key_fingerprint(key: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(key);
    d[..4].iter().map(|b| format!("{b:02x}")).collect()
}
