//! The media plane: every session's encode tiles feeding one tx tile that sends all of their
//! packets, paced, through the transport each destination routes to.
//!
//! ```text
//!   per session                          one per data plane
//!   strahl-v<id>: capture → encode ─ring─┐
//!   strahl-a<id>: PCM → Opus ───────ring─┼─► strahl-tx: packetize + FEC + seal into transport
//!   ...                                  ┘   frames → pace (per stream, link cap) → AF_XDP /
//!                                            io_uring / sendmmsg per destination
//! ```
//!
//! Contract:
//! - The video source and the encoder are decided once at start
//!   ([`MediaSettings::from_config`]: `[video] encoder` through `strahl_encode::select`, NVENC
//!   when detected under `auto`, an error under `nvenc` without it); every session's encoder
//!   is built from that choice, and what it makes is what the control plane advertises.
//!   [`MediaSettings::detected`] says what was chosen for capture, encode and audio, and why.
//!   Audio with `[audio] source = "auto"` is decided again as each GameStream session is built
//!   ([`audio::AutoProbe`], on the thread calling [`Media::start`]); a change is logged once
//!   and its new `Detected` entry comes out of [`MediaHost::poll_events`].
//! - [`MediaHost`] is the seam the sans-IO [`crate::server::Server`] drives. [`Media::start`]
//!   validates the session, builds its source, encoders and packetizers and opens the stream
//!   ports' kernel sockets on this thread (a bad file, an encoder error or a busy port refuses
//!   the session synchronously with a typed [`MediaError`]), hands the streams to the tx tile
//!   and spawns the session's encode threads. `update` passes bitrate and keyframe requests to
//!   the encoders (atomics) and FEC changes to the tile (a command); `stop` stops the encode
//!   threads within [`STOP_BOUND`] and removes the streams from the tile.
//! - Every session shares the stream ports (GameStream video 47998, audio 48000 by default):
//!   the tile tells their pings apart by each session's ping payload ([`ping`]).
//! - Both protocols take this one path. A GameStream session streams video (nanors FEC,
//!   optional SS_ENC_VIDEO) and audio to the addresses its pings teach the tile. A native
//!   `strahl/1` session streams video only ([`native_stream`]: one GF(2¹⁶) block per frame,
//!   AES-GCM with the IPC's host→client secret) from the video port to the client's media
//!   address in the SessionStart (`peer`'s address, `ports.video_dst`), paced at the link rate
//!   ([`native_stream::native_pacer`]: a native frame is not spread over its interval); its
//!   source is the configured one (H.264), or the pattern source's checkable frames when the
//!   session asks for them (`StreamOptions::CHECKABLE`, [`pattern`]).
//! - A session that fails (no ping within the timeout, encoder error) records why in its
//!   [`Shared`]; [`MediaHost::poll_failures`] reports it once and the server ends the session.
//!   Transport decisions come back through [`MediaHost::poll_events`] as `TransportChosen`.
//! - Session policy (bitrate, FEC %) is the control plane's: the data plane applies what the IPC
//!   says and guards only its own invariants (no frame without FEC, the AU cap that bounds
//!   memory, packets that fit a transport frame).
//! - [`ring`] links the tiles; [`stream`] is the protocol seam the tx tile packetizes through
//!   ([`native_stream`] its `strahl/1` implementation);
//!   [`paths`] holds the transports and the per-destination routing; [`tile`] is the tx tile;
//!   [`settings`] is what was decided at start, [`pacing`] the pacing tunables, [`admit`] what
//!   a SessionStart must satisfy.

pub mod admit;
pub mod audio;
pub mod clock;
pub mod knob;
pub mod native_stream;
pub mod pacing;
pub mod paths;
pub mod pattern;
pub mod ping;
pub mod realtime;
pub mod ring;
pub mod settings;
pub mod stream;
pub mod tile;
pub mod video;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use strahl_ipc::{Event, SessionStart, StopReason, StreamOptions};
use strahl_metrics::{Metric, Registry};
use strahl_net::TransportKind;
use strahl_packetize::gamestream::{GsVideoConfig, GsVideoPacketizer, max_access_unit_bytes};
use strahl_seal::gamestream::VideoCipher;
use stream::StreamPacketizer;

use paths::{Paths, open_port};
use ping::PingMatcher;
use tile::{Command, SessionSetup, StreamKind, StreamSetup, TileEvent, TxTile};

pub use admit::{SessionKeys, check_session};
pub use pacing::*;
pub use settings::{MediaSettings, VideoSourceKind, describe_detected, max_payload_for_mtu};

/// How long the tile waits for a stream's first ping (Sunshine's ping_timeout, §A11).
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest sleep inside an encode thread: the stop flag is seen at least this often.
pub const WORKER_TICK: Duration = Duration::from_millis(20);
/// `stop` waits at most this long for a session's encode threads (the brief's "≤ 1 s").
pub const STOP_BOUND: Duration = Duration::from_millis(900);
/// Timer slack of the tx tile thread (see `strahl_net::sys::set_timer_slack_ns`).
const TILE_TIMER_SLACK_NS: u64 = 1;
/// Timer slack of a session's video encode thread. Its frame clock sleeps until each frame slot
/// and the slot is the frame's capture time (the native pts), so a sleep ending up to 50 µs late
/// (the default slack) adds that to every frame's latency (docs/measurements.md §media path,
/// "Native video pacing": ~250 µs of a native frame's p50 is such wake-ups).
const FRAME_CLOCK_TIMER_SLACK_NS: u64 = 1;
/// Unit slots between a session's video encoder and the tile: the frame being sent, the next
/// one ready, and one being encoded.
const VIDEO_SLOTS: usize = 3;
/// Unit buffer reserved per slot for encoded video: the encoder's AU cap can be far larger (a
/// native frame carries up to 32768 shards), and a buffer grows once to the largest AU it held.
const ENCODED_SLOT_BYTES: usize = 4 << 20;
/// How long a session waits for its stream port when the previous session's close of it is
/// still with the tile: the tile drains commands within a housekeeping round (a few ms), far
/// less on a quiet machine; a second covers a loaded one.
const PORT_REOPEN_WAIT: Duration = Duration::from_secs(1);
/// Audio: 8 packets = 40 ms at 5 ms.
const AUDIO_SLOTS: usize = 8;
/// The first stream index of [`Shared::ready`].
pub const VIDEO: usize = 0;
pub const AUDIO: usize = 1;

/// Why a media session could not start or stopped, by origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaError {
    /// The SessionStart asks for something this data plane cannot stream.
    Session(String),
    /// The video or audio source (passthrough file, synthetic pattern).
    Source(String),
    /// An encoder refused (openh264, Opus).
    Encoder(String),
    /// The host environment: a stream port is busy, a thread could not start.
    Environment(String),
}

impl std::fmt::Display for MediaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaError::Session(s) => write!(f, "session: {s}"),
            MediaError::Source(s) => write!(f, "source: {s}"),
            MediaError::Encoder(s) => write!(f, "encoder: {s}"),
            MediaError::Environment(s) => write!(f, "environment: {s}"),
        }
    }
}

impl std::error::Error for MediaError {}

/// What the server needs from a media implementation.
pub trait MediaHost {
    /// Validate and start a session's media.
    fn start(&mut self, s: &SessionStart) -> Result<(), MediaError>;
    fn update(
        &mut self,
        id: u64,
        bitrate_kbps: Option<u32>,
        fec_percent: Option<u8>,
        keyframe: bool,
    );
    fn stop(&mut self, id: u64);
    /// Sessions whose media failed since the last call: (id, detail, reason to end with).
    fn poll_failures(&mut self) -> Vec<(u64, String, StopReason)>;
    /// Notices for the control plane since the last call (a session's transport).
    fn poll_events(&mut self) -> Vec<Event> {
        Vec::new()
    }
    /// A native session's next epoch ([`native_stream`]'s contract); answered later by an
    /// `Event::Reconfigured` from [`Self::poll_events`]. `Err` says why it cannot be applied.
    fn reconfigure(&mut self, r: &strahl_ipc::SessionReconfigure) -> Result<(), String> {
        Err(format!("session {}: no native media here", r.id))
    }
    /// A native session's pacing ceiling (IPC `SessionPace`; 0: the link rate).
    fn pace(&mut self, _id: u64, _rate_kbps: u32) {}
}

/// No media (unit tests of the IPC handler).
#[derive(Debug, Default)]
pub struct NoMedia;

impl MediaHost for NoMedia {
    fn start(&mut self, _: &SessionStart) -> Result<(), MediaError> {
        Ok(())
    }
    fn update(&mut self, _: u64, _: Option<u32>, _: Option<u8>, _: bool) {}
    fn stop(&mut self, _: u64) {}
    fn poll_failures(&mut self) -> Vec<(u64, String, StopReason)> {
        Vec::new()
    }
}

/// State shared between the server thread, one session's encode threads and the tx tile.
#[derive(Debug)]
pub struct Shared {
    pub stop: AtomicBool,
    pub bitrate_kbps: AtomicU32,
    pub keyframe: AtomicBool,
    /// Per stream ([`VIDEO`], [`AUDIO`]): the tile learned the destination from a ping.
    pub ready: [AtomicBool; 2],
    /// A native session's epoch switch ([`native_stream::EpochSwitch`]).
    pub epoch: native_stream::EpochSwitch,
    failure: Mutex<Option<(String, StopReason)>>,
}

impl Shared {
    fn new(bitrate_kbps: u32) -> Self {
        Self {
            stop: AtomicBool::new(false),
            bitrate_kbps: AtomicU32::new(bitrate_kbps),
            keyframe: AtomicBool::new(false),
            ready: [AtomicBool::new(false), AtomicBool::new(false)],
            epoch: native_stream::EpochSwitch::default(),
            failure: Mutex::new(None),
        }
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Record the first failure (later ones are consequences).
    pub fn fail(&self, detail: String, reason: StopReason) {
        if let Ok(mut f) = self.failure.lock()
            && f.is_none()
        {
            *f = Some((detail, reason));
        }
    }

    fn take_failure(&self) -> Option<(String, StopReason)> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }

    /// Waits (in [`WORKER_TICK`] steps) until the tile learned stream `i`'s destination; `false`
    /// on stop (the tile reports a ping time-out as a failure, which stops the session).
    pub fn wait_ready(&self, i: usize) -> bool {
        loop {
            if self.stopped() {
                return false;
            }
            if self.ready[i].load(Ordering::Acquire) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5).min(WORKER_TICK));
        }
    }
}

/// The transports the media plane may use, from start-up (opened before capabilities drop).
pub struct Transports {
    /// The AF_XDP socket, when start-up bound one.
    pub xdp: Option<paths::XdpPath>,
    /// io_uring or sendmmsg for stream ports' kernel sockets.
    pub kernel: TransportKind,
    /// Pin the tx tile to this core.
    pub core: Option<usize>,
    /// Cores the encode threads may run on (empty: anywhere). With a dedicated tx core and at
    /// least two others this is those others, so an encoder never competes with the tile.
    pub worker_cores: Vec<usize>,
    /// Cap on the sum of every stream's pacing rate (the bottleneck link).
    pub link_rate_bps: u64,
}

struct Running {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    ports: [u16; 2],
    /// A native `strahl/1` session (epochs and pacing ceilings apply to these only).
    native: bool,
}

/// Restrict an encode thread to the plan's worker cores (nothing to do when the list is empty).
fn keep_off_tx_core(cores: &[usize]) {
    if !cores.is_empty()
        && let Err(e) = strahl_net::sys::set_affinity_current(cores)
    {
        log::warn!("encode thread: could not keep it on cores {cores:?}: {e}");
    }
}

/// The real media host: one tx tile, encode threads per session.
pub struct Media {
    settings: MediaSettings,
    /// What the source and encoder produce (read at start).
    caps: strahl_encode::Capability,
    metrics: &'static Registry,
    kernel: TransportKind,
    worker_cores: Vec<usize>,
    /// The bottleneck link's rate: each native session's pacing rate.
    link_rate_bps: u64,
    sessions: BTreeMap<u64, Running>,
    /// Open stream ports and how many sessions use each.
    ports: BTreeMap<u16, usize>,
    /// Ports whose close was sent to the tile (see [`Self::use_port`]).
    closing: std::collections::BTreeSet<u16>,
    commands: Sender<Command>,
    events: Receiver<TileEvent>,
    tile: Option<JoinHandle<()>>,
    tile_thread: std::thread::Thread,
    shutdown: Arc<AtomicBool>,
    /// Events for the control plane not yet polled (a changed audio choice).
    pending: Vec<Event>,
}

impl Media {
    /// Start the tx tile over `transports`.
    pub fn new(
        settings: MediaSettings,
        transports: Transports,
        metrics: &'static Registry,
    ) -> Result<Self, MediaError> {
        let (cmd_tx, cmd_rx) = channel();
        let (ev_tx, ev_rx) = channel();
        let shutdown = Arc::new(AtomicBool::new(false));
        let tile = TxTile::new(
            Paths::new(transports.xdp),
            transports.link_rate_bps,
            cmd_rx,
            ev_tx,
            metrics,
            shutdown.clone(),
        );
        if let Some(i) = Registry::label_index(Metric::AudioSource, settings.audio.label()) {
            metrics.set_info(Metric::AudioSource, i);
        }
        log::info!(
            "media: the software encoder (openh264) runs {} threads a session (slices a picture)",
            video::encoder_threads(&transports.worker_cores)
        );
        let core = transports.core;
        let worker_cores = transports.worker_cores;
        let rt = settings.realtime_priority;
        let handle = std::thread::Builder::new()
            .name("strahl-tx".into())
            .spawn(move || {
                if let Some(c) = core
                    && !strahl_runtime::tile::pin_current(c)
                {
                    log::warn!("tx tile: could not pin to core {c}; running unpinned");
                }
                realtime::enter(rt, "tx tile");
                // The tile parks until shortly before a release: the park must end on time.
                if let Err(e) = strahl_net::sys::set_timer_slack_ns(TILE_TIMER_SLACK_NS) {
                    log::warn!("tx tile: timer slack stays at the default: {e}");
                }
                tile.run();
            })
            .map_err(|e| MediaError::Environment(format!("cannot start the tx tile: {e}")))?;
        Ok(Self {
            caps: video::capability(&settings.video_source, &settings.encoder),
            settings,
            metrics,
            kernel: transports.kernel,
            worker_cores,
            link_rate_bps: transports.link_rate_bps,
            sessions: BTreeMap::new(),
            ports: BTreeMap::new(),
            closing: std::collections::BTreeSet::new(),
            commands: cmd_tx,
            events: ev_rx,
            tile_thread: handle.thread().clone(),
            tile: Some(handle),
            shutdown,
            pending: Vec::new(),
        })
    }

    pub fn settings(&self) -> &MediaSettings {
        &self.settings
    }

    /// What the source and encoder produce.
    pub fn capability(&self) -> &strahl_encode::Capability {
        &self.caps
    }

    fn command(&self, c: Command) {
        let _ = self.commands.send(c);
        self.tile_thread.unpark();
    }

    /// Open `port`'s kernel socket and queue (first session on it) or count one more user.
    fn use_port(&mut self, port: u16) -> Result<(), MediaError> {
        if let Some(n) = self.ports.get_mut(&port) {
            *n += 1;
            return Ok(());
        }
        // The last session's close of this port is the tile's to carry out (it drops the socket
        // when it drains its commands): a session started right after one stopped may find the
        // port still bound, so it retries for a bounded while (seen in CI: `two_process`'s
        // SessionStart after a SessionStop got EADDRINUSE on a loaded machine).
        let deadline = Instant::now() + PORT_REOPEN_WAIT;
        let path = loop {
            match open_port(port, self.kernel, self.settings.max_payload) {
                Ok(p) => break p,
                Err(_) if self.closing.contains(&port) && Instant::now() < deadline => {
                    self.tile_thread.unpark();
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(e),
            }
        };
        self.closing.remove(&port);
        self.command(Command::OpenPort(Box::new(path)));
        self.ports.insert(port, 1);
        Ok(())
    }

    fn release_port(&mut self, port: u16) {
        if let Some(n) = self.ports.get_mut(&port) {
            *n -= 1;
            if *n == 0 {
                self.ports.remove(&port);
                self.closing.insert(port);
                self.command(Command::ClosePort(port));
            }
        }
    }

    fn build(&mut self, s: &SessionStart, shared: &Arc<Shared>) -> Result<Built, MediaError> {
        match check_session(s)? {
            SessionKeys::GameStream { rikey, rikeyid } => {
                self.build_gamestream(s, shared, rikey, rikeyid)
            }
            SessionKeys::Native { secret } => self.build_native(s, shared, secret),
        }
    }

    /// A native `strahl/1` session: video only, to the client's media address (see the module
    /// contract).
    fn build_native(
        &mut self,
        s: &SessionStart,
        shared: &Arc<Shared>,
        secret: &[u8; 32],
    ) -> Result<Built, MediaError> {
        let checkable = s.stream.has(StreamOptions::CHECKABLE);
        if !checkable {
            video::check_format(s, &self.caps)?;
        }
        let fec = s.video.fec_percent;
        let bitrate_kbps = s.video.bitrate_kbps.max(1);
        self.metrics.set(Metric::VideoFecPercent, u64::from(fec));
        let vpk =
            native_stream::NativeVideoStream::new(secret, usize::from(s.video.packet_size), fec)?;
        if vpk.max_packet_len() > self.settings.max_payload {
            return Err(MediaError::Session(format!(
                "strahl/1 shards of {} B make {} B datagrams, over the {} B one carries at this MTU",
                s.video.packet_size,
                vpk.max_packet_len(),
                self.settings.max_payload
            )));
        }
        let au_cap = vpk.max_unit_bytes();
        let (pipeline, slot_bytes) = if checkable {
            let bytes = pattern::frame_bytes(bitrate_kbps, s.video.fps);
            if bytes > au_cap {
                return Err(MediaError::Session(format!(
                    "checkable frames of {bytes} B ({bitrate_kbps} kbit/s at {} fps) exceed the \
                     {au_cap} B one strahl/1 frame carries in {} B shards",
                    s.video.fps, s.video.packet_size
                )));
            }
            (
                video::VideoPipeline::pattern(bitrate_kbps, s.video.fps, au_cap)?,
                bytes,
            )
        } else {
            let threads = video::encoder_threads(&self.worker_cores);
            (
                video::VideoPipeline::build(s, &self.settings, bitrate_kbps, au_cap, threads)?,
                au_cap.min(ENCODED_SLOT_BYTES),
            )
        };
        let mut dest: SocketAddr = s.peer;
        dest.set_port(s.ports.video_dst);
        log::info!(
            "session {}: native strahl/1 video → {dest} from port {}: {}x{}@{}, {} B shards, \
             FEC {fec} %, {}",
            s.id,
            s.ports.video_src,
            s.video.width,
            s.video.height,
            s.video.fps,
            s.video.packet_size,
            if checkable {
                format!(
                    "checkable frames of {} B ({bitrate_kbps} kbit/s)",
                    pattern::frame_bytes(bitrate_kbps, s.video.fps)
                )
            } else {
                format!("H.264 at {bitrate_kbps} kbit/s")
            }
        );
        let (vprod, vcons) = ring::ring(VIDEO_SLOTS, slot_bytes, Some(self.tile_thread.clone()));
        let streams = vec![StreamSetup {
            kind: StreamKind::Video,
            port: s.ports.video_src,
            packetizer: Box::new(vpk.follow_epochs(shared.clone())),
            units: vcons,
            pacer: native_stream::native_pacer(self.link_rate_bps),
            unit_interval_ns: 1_000_000_000 / u64::from(s.video.fps.max(1)),
            knob: knob::DropKnob::new(self.settings.drop_fraction, self.settings.drop_seed),
            matcher: PingMatcher::fixed(dest),
        }];
        let video = video::VideoProducer::new(
            s.id,
            u32::from(s.video.fps),
            pipeline,
            vprod,
            shared.clone(),
            self.metrics,
        );
        Ok(Built {
            setup: SessionSetup {
                id: s.id,
                shared: shared.clone(),
                streams,
                ping_timeout: self.settings.ping_timeout,
            },
            video,
            audio: None,
        })
    }

    /// A GameStream session: video and audio, each to the address its pings teach the tile.
    fn build_gamestream(
        &mut self,
        s: &SessionStart,
        shared: &Arc<Shared>,
        rikey: &[u8; 16],
        rikeyid: u32,
    ) -> Result<Built, MediaError> {
        video::check_format(s, &self.caps)?;
        // Policy (FEC bounds, the bitrate cap) is the control plane's; the packetizer refuses
        // 0 % itself (no frame without FEC) and the AU cap bounds memory.
        let fec = s.video.fec_percent;
        let bitrate_kbps = s.video.bitrate_kbps.max(1);
        self.metrics.set(Metric::VideoFecPercent, u64::from(fec));
        let cfg = GsVideoConfig {
            packet_size: usize::from(s.video.packet_size),
            fec_percent: fec,
            // Our rule: ≥ 2 parity per block even when a client asks for fewer (2 is also the
            // most the packetizer can represent for 1-shard blocks).
            min_required_fec_packets: 2,
        };
        let vcipher = s
            .stream
            .has(StreamOptions::ENCRYPT_VIDEO)
            .then(|| VideoCipher::new(rikey));
        let vpk = GsVideoPacketizer::new(cfg, vcipher)
            .map_err(|e| MediaError::Session(format!("video packetizer: {e}")))?;
        if vpk.packet_len() > self.settings.max_payload {
            return Err(MediaError::Session(format!(
                "video packets of {} B exceed the {} B a datagram carries at this MTU",
                vpk.packet_len(),
                self.settings.max_payload
            )));
        }
        let au_cap = max_access_unit_bytes(vpk.config().packet_size);
        let threads = video::encoder_threads(&self.worker_cores);
        let pipeline =
            video::VideoPipeline::build(s, &self.settings, bitrate_kbps, au_cap, threads)?;
        let interval_ns = 1_000_000_000 / u64::from(s.video.fps.max(1));
        let vpace = video_pacer(bitrate_kbps);
        let (vprod, vcons) = ring::ring(
            VIDEO_SLOTS,
            au_cap.min(ENCODED_SLOT_BYTES),
            Some(self.tile_thread.clone()),
        );
        let mut streams = vec![StreamSetup {
            kind: StreamKind::Video,
            port: s.ports.video_src,
            packetizer: Box::new(stream::GsVideoStream::new(vpk)),
            units: vcons,
            pacer: vpace,
            unit_interval_ns: interval_ns,
            knob: knob::DropKnob::new(self.settings.drop_fraction, self.settings.drop_seed),
            matcher: PingMatcher::new(s.stream.ping_payload, s.peer.ip()),
        }];
        let video = video::VideoProducer::new(
            s.id,
            u32::from(s.video.fps),
            pipeline,
            vprod,
            shared.clone(),
            self.metrics,
        );
        self.recheck_audio(s.id);
        let audio = audio::build_stream(
            s,
            &self.settings.audio,
            (rikey, rikeyid),
            &self.tile_thread,
            shared,
            self.metrics,
        )?
        .map(|(setup, producer)| {
            streams.push(setup);
            producer
        });
        Ok(Built {
            setup: SessionSetup {
                id: s.id,
                shared: shared.clone(),
                streams,
                ping_timeout: self.settings.ping_timeout,
            },
            video,
            audio,
        })
    }
}

impl Media {
    /// `auto`: looks for PipeWire again before session `id` is built (see the module
    /// contract); a changed choice is logged once, shown by the metric and queued for the
    /// status page.
    fn recheck_audio(&mut self, id: u64) {
        let Some(probe) = &self.settings.audio_recheck else {
            return;
        };
        let r = probe.recheck(&self.settings.audio);
        if !r.changed {
            return;
        }
        log::info!(
            "session {id}: audio from now on: {} (before: {})",
            r.choice.describe(),
            self.settings.audio.label()
        );
        if let Some(i) = Registry::label_index(Metric::AudioSource, r.choice.label()) {
            self.metrics.set_info(Metric::AudioSource, i);
        }
        self.pending.push(Event::Detected(r.choice.detected()));
        self.settings.audio = r.choice;
    }
}

/// A session's parts, built before anything starts.
struct Built {
    setup: SessionSetup,
    video: video::VideoProducer,
    audio: Option<audio::AudioProducer>,
}

impl MediaHost for Media {
    fn start(&mut self, s: &SessionStart) -> Result<(), MediaError> {
        let shared = Arc::new(Shared::new(s.video.bitrate_kbps.max(1)));
        let built = self.build(s, &shared)?;
        let mut ports = [s.ports.video_src, 0];
        self.use_port(s.ports.video_src)?;
        if built.audio.is_some() {
            if let Err(e) = self.use_port(s.ports.audio_src) {
                self.release_port(s.ports.video_src);
                return Err(e);
            }
            ports[1] = s.ports.audio_src;
        }
        self.command(Command::AddSession(Box::new(built.setup)));
        let mut workers = Vec::new();
        let v = built.video;
        let cores = self.worker_cores.clone();
        let rt = self.settings.realtime_priority;
        let spawned = std::thread::Builder::new()
            .name(format!("strahl-v{}", s.id))
            .spawn(move || {
                keep_off_tx_core(&cores);
                // Real time only for light work per frame (module realtime's contract).
                if v.light_per_frame() {
                    realtime::enter(rt, "video encode thread");
                }
                if let Err(e) = strahl_net::sys::set_timer_slack_ns(FRAME_CLOCK_TIMER_SLACK_NS) {
                    log::warn!("video encode thread: timer slack stays at the default: {e}");
                }
                v.run()
            });
        let mut failed = spawned
            .map(|h| workers.push(h))
            .map_err(|e| format!("video encoder thread: {e}"))
            .err();
        if failed.is_none()
            && let Some(a) = built.audio
        {
            let cores = self.worker_cores.clone();
            match std::thread::Builder::new()
                .name(format!("strahl-a{}", s.id))
                .spawn(move || {
                    keep_off_tx_core(&cores);
                    realtime::enter(rt, "audio thread");
                    a.run()
                }) {
                Ok(h) => workers.push(h),
                Err(e) => failed = Some(format!("audio encoder thread: {e}")),
            }
        }
        self.sessions.insert(
            s.id,
            Running {
                shared,
                workers,
                ports,
                native: s.protocol == strahl_ipc::Protocol::Native,
            },
        );
        if let Some(why) = failed {
            self.stop(s.id);
            return Err(MediaError::Environment(why));
        }
        Ok(())
    }

    fn update(
        &mut self,
        id: u64,
        bitrate_kbps: Option<u32>,
        fec_percent: Option<u8>,
        keyframe: bool,
    ) {
        let Some(r) = self.sessions.get(&id) else {
            return;
        };
        if let Some(b) = bitrate_kbps {
            r.shared.bitrate_kbps.store(b.max(1), Ordering::Relaxed);
        }
        if keyframe {
            r.shared.keyframe.store(true, Ordering::Relaxed);
        }
        if let Some(f) = fec_percent {
            // 0 is ignored by the packetizer: frames never go without FEC.
            let percent = f;
            self.metrics
                .set(Metric::VideoFecPercent, u64::from(percent));
            self.command(Command::SetFec { id, percent });
        }
    }

    fn stop(&mut self, id: u64) {
        if let Some(r) = self.sessions.remove(&id) {
            r.shared.stop.store(true, Ordering::Relaxed);
            self.command(Command::RemoveSession(id));
            join_bounded(id, r.workers);
            for p in r.ports.into_iter().filter(|p| *p != 0) {
                self.release_port(p);
            }
        }
    }

    fn poll_failures(&mut self) -> Vec<(u64, String, StopReason)> {
        let failed: Vec<(u64, String, StopReason)> = self
            .sessions
            .iter()
            .filter_map(|(id, r)| r.shared.take_failure().map(|(d, why)| (*id, d, why)))
            .collect();
        for (id, _, _) in &failed {
            self.stop(*id);
        }
        failed
    }

    fn reconfigure(&mut self, r: &strahl_ipc::SessionReconfigure) -> Result<(), String> {
        let Some(s) = self.sessions.get(&r.id).filter(|s| s.native) else {
            return Err(format!("session {}: no native session running", r.id));
        };
        native_stream::ask_epoch(&s.shared, r, self.settings.max_payload)?;
        self.metrics
            .set(Metric::VideoFecPercent, u64::from(r.fec_percent));
        Ok(())
    }

    fn pace(&mut self, id: u64, rate_kbps: u32) {
        if self.sessions.get(&id).is_some_and(|s| s.native) {
            let rate_bps = native_stream::pace_rate_bps(rate_kbps, self.link_rate_bps);
            log::info!("session {id}: video paced at {rate_bps} bit/s");
            self.command(Command::SetPace { id, rate_bps });
        }
    }

    fn poll_events(&mut self) -> Vec<Event> {
        let mut out = std::mem::take(&mut self.pending);
        for (id, r) in &self.sessions {
            for (epoch, first_frame) in r.shared.epoch.take_reported() {
                log::info!("session {id}: epoch {epoch} from frame {first_frame}");
                out.push(Event::Reconfigured {
                    id: *id,
                    epoch,
                    first_frame,
                });
            }
        }
        while let Ok(TileEvent::Transport {
            id,
            transport,
            detail,
        }) = self.events.try_recv()
        {
            if self.sessions.contains_key(&id) {
                out.push(Event::TransportChosen {
                    id,
                    transport: crate::transport::ipc_transport(Some(transport)),
                    detail,
                });
            }
        }
        out
    }
}

impl Drop for Media {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.sessions.keys().copied().collect();
        for id in ids {
            self.stop(id);
        }
        self.shutdown.store(true, Ordering::Release);
        self.tile_thread.unpark();
        if let Some(h) = self.tile.take() {
            let deadline = Instant::now() + STOP_BOUND;
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            if h.is_finished() {
                let _ = h.join();
            } else {
                log::error!("tx tile did not stop within {STOP_BOUND:?}; detached");
            }
        }
    }
}

/// Joins the workers, waiting at most [`STOP_BOUND`] in total; stragglers are detached.
fn join_bounded(id: u64, workers: Vec<JoinHandle<()>>) {
    let deadline = Instant::now() + STOP_BOUND;
    for h in workers {
        while !h.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        if h.is_finished() {
            let name = h.thread().name().unwrap_or("?").to_owned();
            if h.join().is_err() {
                log::error!("session {id}: worker {name} panicked");
            }
        } else {
            log::error!(
                "session {id}: worker {:?} did not stop within {STOP_BOUND:?}; detached",
                h.thread().name()
            );
        }
    }
}
