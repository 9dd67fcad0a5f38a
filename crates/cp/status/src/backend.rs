//! The seam between the status server and the control plane.
//!
//! Contract: the control plane implements [`StatusBackend`]; the server calls `snapshot` and
//! `metrics` on every read (they must be cheap and non-blocking) and the mutation methods from a
//! blocking-pool thread (they may touch the state dir). The snapshot types serialise to the
//! `/api/v1/status` JSON as they are, so a field added here shows up in the API.

use serde::Serialize;

/// Host-wide facts shown at the top of the page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostInfo {
    pub name: String,
    pub version: String,
    pub uptime_s: u64,
    /// Encoder in use, e.g. "nvenc h264" or "openh264".
    pub encoder: String,
    /// Capture source, e.g. "kms card0" or "synthetic".
    pub capture: String,
}

/// The transport chosen by the data plane's start-up self-test, and why. Host-wide: each
/// session reports the transport its own media leaves through ([`SessionInfo::transport`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransportInfo {
    pub name: String,
    pub reason: String,
}

/// What was chosen at start for one subsystem ("capture", "encode", "audio" — the data plane's
/// — and "input" — the control plane's), and why; `doctor` says how to enable what is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DetectedInfo {
    pub subsystem: String,
    /// e.g. "synthetic", "nvenc", "openh264", "pipewire", "tone", "uinput", "record".
    pub choice: String,
    pub reason: String,
}

/// One streaming session (GameStream or native). Several may run at once; every figure here is
/// this session's own, except the data plane's send figures, which it measures host-wide: they
/// are `Some` only while this is the only session (then they are exactly its figures) and
/// `None` with several — the totals are in [`StatusSnapshot::media`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionInfo {
    pub id: u64,
    /// The client's address.
    pub client: String,
    /// The paired client's display name, when the backend knows whose session it is (several
    /// clients may stream from one address).
    pub client_name: Option<String>,
    /// "gamestream" or "native".
    pub protocol: String,
    /// e.g. "1920x1080@60 h264".
    pub mode: String,
    /// Codec, bit depth, HDR and whether the video is encrypted, as negotiated; `None` when the
    /// backend does not know the session's negotiation.
    pub video: Option<VideoInfo>,
    /// The encoder bitrate this session asked for.
    pub bitrate_kbps: u64,
    /// This session's FEC percentage (its adaptive controller's current value).
    pub fec_percent: u32,
    /// This session's FEC status reports: blocks the client rebuilt / could not rebuild.
    pub fec_recovered: u64,
    pub fec_failed: u64,
    /// Measured send rate (UDP payload) over the last statistics interval (host-wide figure).
    pub send_kbps: Option<u64>,
    /// Rate the pacer releases the latest frame at (above `send_kbps`: frames are spread over
    /// part of the frame interval, not all of it) (host-wide figure).
    pub pacing_rate_kbps: Option<u64>,
    /// (host-wide figure)
    pub packets_per_s: Option<u64>,
    /// (host-wide figure)
    pub packets_sent: Option<u64>,
    /// Frames refused as too large to protect with FEC (host-wide figure).
    pub drops: Option<u64>,
    /// Round-trip time to this session's client as measured by the protocol; `None` when
    /// unknown.
    pub latency_us: Option<u64>,
    /// The transport this session's media leaves through ("af_xdp", "io_uring", "sendmmsg"),
    /// as the data plane reported it for this session; `None` until it has.
    pub transport: Option<String>,
    /// The data plane's words on that choice (e.g. why it fell back).
    pub transport_detail: Option<String>,
}

/// What a session's video is, as its client and the host negotiated it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VideoInfo {
    /// "H.264", "HEVC", "AV1".
    pub codec: String,
    pub bit_depth: u8,
    pub hdr: bool,
    /// SS_ENC_VIDEO: the video shards are AES-GCM sealed on the wire.
    pub encrypted: bool,
}

/// The data plane's send figures over all sessions (it does not measure them per session).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MediaTotals {
    pub send_kbps: u64,
    /// The pacer's rate for the latest frame of any session.
    pub pacing_rate_kbps: u64,
    pub packets_per_s: u64,
    pub packets_sent: u64,
    pub drops: u64,
    /// Frame slots the video encoders skipped because they were late (or the tx tile a full
    /// ring behind): what sessions miss of the fps they asked for.
    pub frames_skipped: u64,
    /// Where the data plane's audio comes from ("pipewire", "tone" or "none"; the reason is in
    /// its start-up line); `None` until its first statistics arrived.
    pub audio_source: Option<String>,
}

/// A paired client (either protocol).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedClientInfo {
    /// Stable id the control plane understands in `unpair`/`rename` (e.g. a cert fingerprint).
    pub id: String,
    pub name: String,
    pub protocol: String,
    /// A GameStream client's permission names (`view`, `list`, `launch`, `keyboard`, …);
    /// `None` for native clients, which have none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
}

/// A Moonlight client waiting for its PIN.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingPinInfo {
    pub client: String,
    pub waiting_s: u64,
}

/// An armed native pairing window. The PIN is a secret: the server strips it from snapshots
/// served to unauthenticated readers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NativeWindow {
    pub pin: Option<String>,
    pub expires_in_s: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PairingState {
    pub moonlight_pending: Vec<PendingPinInfo>,
    pub native_window: Option<NativeWindow>,
}

/// Everything `/api/v1/status` and the page show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusSnapshot {
    pub host: HostInfo,
    pub dataplane_connected: bool,
    /// The start-up choice (host-wide).
    pub transport: Option<TransportInfo>,
    /// The start-up choices for capture, encode, audio (reported by the data plane once
    /// connected) and input, in that order.
    pub detected: Vec<DetectedInfo>,
    pub sessions: Vec<SessionInfo>,
    /// Host-wide send figures (all sessions together).
    pub media: MediaTotals,
    pub paired_clients: Vec<PairedClientInfo>,
    pub pairing: PairingState,
}

/// Why a backend refused a mutation; mapped to an HTTP status by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendError {
    /// No such client/session (404).
    NotFound(String),
    /// The request is well-formed but not acceptable now, e.g. no pairing pending (409).
    Rejected(String),
    /// The backend cannot act now, e.g. the data plane is disconnected (503).
    Unavailable(String),
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendError::NotFound(m) => write!(f, "not found: {m}"),
            BackendError::Rejected(m) => write!(f, "rejected: {m}"),
            BackendError::Unavailable(m) => write!(f, "unavailable: {m}"),
        }
    }
}

impl std::error::Error for BackendError {}

/// Implemented by the control plane (and by [`crate::testing::FakeBackend`]).
pub trait StatusBackend: Send + Sync + 'static {
    /// Current state; called on every status read.
    fn snapshot(&self) -> StatusSnapshot;
    /// The process's metrics registry (usually `&strahl_metrics::GLOBAL`).
    fn metrics(&self) -> &strahl_metrics::Registry;
    /// The data plane's registry as of its last stats snapshot, when this process mirrors one
    /// (the control plane does). When `Some`, `/metrics` exports both registries, each series
    /// labelled `process="control"` / `process="dataplane"` (see [`crate::render_merged`]), and
    /// `/api/v1/status` carries it as `dataplane_metrics`.
    fn dataplane_metrics(&self) -> Option<&strahl_metrics::Registry> {
        None
    }
    /// Hands a Moonlight PIN to the waiting GameStream pairing.
    fn submit_pin(&self, pin: &str) -> Result<(), BackendError>;
    /// Opens a native pairing window; returns the PIN to show.
    fn arm_native_pairing(&self) -> Result<String, BackendError>;
    fn unpair(&self, id: &str) -> Result<(), BackendError>;
    fn rename(&self, id: &str, name: &str) -> Result<(), BackendError>;
    /// Sets a GameStream client's permissions from the operator's names (`view,list,…`,
    /// `all`, `none`); an unknown name is `Rejected`.
    fn set_permissions(&self, id: &str, permissions: &str) -> Result<(), BackendError> {
        let _ = (id, permissions);
        Err(BackendError::Rejected(
            "this host has no client permissions".into(),
        ))
    }
    fn stop_session(&self, id: u64) -> Result<(), BackendError>;
    fn request_keyframe(&self, id: u64) -> Result<(), BackendError>;
}
