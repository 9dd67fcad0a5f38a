//! The media pipeline of a GameStream session: per-session worker threads that learn each
//! stream's destination from the client's pings, then produce and send video and audio.
//!
//! Contract:
//! - [`MediaHost`] is the seam the sans-IO [`crate::server::Server`] drives: `start` validates
//!   the session and spawns its workers (sockets are bound inside the workers, so a busy port or
//!   a missing ping never fails the IPC answer; it arrives later through `poll_failures`),
//!   `update` hands bitrate / FEC / keyframe changes to the workers through atomics, `stop`
//!   raises the stop flag and joins each worker within [`STOP_BOUND`] (a worker that does not
//!   finish in time is detached and logged, never waited for).
//! - Workers are named std threads (`strahl-v<id>` video, `strahl-a<id>` audio), no async. Every
//!   wait inside them is at most [`WORKER_TICK`], so the stop flag is seen within that time.
//! - A worker that fails (no ping within the timeout, socket or encoder error) records why and
//!   exits; `poll_failures` reports it once and the server ends the session.
//! - Sending: each stream's socket is bound to `0.0.0.0:<port>` and the packets leave through
//!   the strahl-net `sendmmsg` queue ([`strahl_net::mmsg::MmsgTx`]) on that socket, paced by
//!   [`strahl_pacer`] (video) or the audio packet clock.
//! - [`video`] and [`audio`] hold the worker loops; [`ping`] and [`knob`] are sans-IO helpers.

pub mod audio;
pub mod knob;
pub mod ping;
pub mod video;

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use strahl_ipc::{Codec, KeyMaterial, Protocol, SessionStart, StopReason};
use strahl_metrics::{Metric, Registry};

use ping::{PingMatcher, PingOutcome};

/// How media sessions send today, for the operator (put before the transport verdict the status
/// page shows): the self-test's transport is held for the tx tile, but the pipeline still sends
/// from its per-session workers through sendmmsg on each stream's socket.
pub const MEDIA_SEND_PATH: &str = "media sessions send with sendmmsg from per-session workers";

/// How long the workers wait for a stream's first ping (Sunshine's ping_timeout, §A11).
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest sleep inside a worker: the stop flag is seen at least this often.
pub const WORKER_TICK: Duration = Duration::from_millis(20);
/// `stop` waits at most this long for a session's workers (the brief's "≤ 1 s").
pub const STOP_BOUND: Duration = Duration::from_millis(900);
/// Datagrams read per ping poll, so a flood on a media port cannot starve the frame clock.
const PINGS_PER_POLL: usize = 64;

/// Where video comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoSourceKind {
    /// Test pattern with the frame-number band, encoded with openh264.
    Synthetic,
    /// Replay of a pre-encoded Annex-B file at the session fps.
    Passthrough(PathBuf),
}

/// Process-wide media settings (from the config).
#[derive(Debug, Clone)]
pub struct MediaSettings {
    pub video_source: VideoSourceKind,
    pub fec_percent_min: u8,
    pub fec_percent_max: u8,
    pub max_bitrate_kbps: u32,
    pub audio_tone: bool,
    pub drop_fraction: f64,
    pub drop_seed: u64,
    pub ping_timeout: Duration,
}

impl MediaSettings {
    pub fn from_config(cfg: &strahl_config::Config) -> Self {
        let v = &cfg.video;
        Self {
            video_source: match v.source {
                strahl_config::VideoSource::Passthrough => {
                    VideoSourceKind::Passthrough(PathBuf::from(&v.passthrough_file))
                }
                // KMS capture is detection-only: the synthetic pattern stands in.
                _ => VideoSourceKind::Synthetic,
            },
            fec_percent_min: v.fec_percent_min.0.max(1),
            fec_percent_max: v.fec_percent_max.0.max(1),
            max_bitrate_kbps: v.max_bitrate_kbps,
            audio_tone: cfg.audio.source == strahl_config::AudioSource::Tone,
            drop_fraction: cfg.testing.video_drop_fraction.0,
            drop_seed: cfg.testing.video_drop_seed,
            ping_timeout: PING_TIMEOUT,
        }
    }

    /// FEC % within the configured bounds (never 0: every frame carries parity).
    pub fn clamp_fec(&self, pct: u8) -> u8 {
        pct.clamp(
            self.fec_percent_min,
            self.fec_percent_max.max(self.fec_percent_min),
        )
    }

    pub fn clamp_bitrate(&self, kbps: u32) -> u32 {
        kbps.clamp(1, self.max_bitrate_kbps.max(1))
    }
}

/// What the server needs from a media implementation.
pub trait MediaHost {
    /// Validate and start a session's workers; `Err` is the SessionError text.
    fn start(&mut self, s: &SessionStart) -> Result<(), String>;
    fn update(
        &mut self,
        id: u64,
        bitrate_kbps: Option<u32>,
        fec_percent: Option<u8>,
        keyframe: bool,
    );
    fn stop(&mut self, id: u64);
    /// Sessions whose workers failed since the last call: (id, detail, reason to end with).
    fn poll_failures(&mut self) -> Vec<(u64, String, StopReason)>;
}

/// No media (unit tests of the IPC handler).
#[derive(Debug, Default)]
pub struct NoMedia;

impl MediaHost for NoMedia {
    fn start(&mut self, _: &SessionStart) -> Result<(), String> {
        Ok(())
    }
    fn update(&mut self, _: u64, _: Option<u32>, _: Option<u8>, _: bool) {}
    fn stop(&mut self, _: u64) {}
    fn poll_failures(&mut self) -> Vec<(u64, String, StopReason)> {
        Vec::new()
    }
}

/// State shared between the server thread and one session's workers.
#[derive(Debug)]
pub struct Shared {
    pub stop: AtomicBool,
    pub bitrate_kbps: AtomicU32,
    pub fec_percent: AtomicU8,
    pub keyframe: AtomicBool,
    failure: Mutex<Option<(String, StopReason)>>,
}

impl Shared {
    fn new(bitrate_kbps: u32, fec: u8) -> Self {
        Self {
            stop: AtomicBool::new(false),
            bitrate_kbps: AtomicU32::new(bitrate_kbps),
            fec_percent: AtomicU8::new(fec),
            keyframe: AtomicBool::new(false),
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
}

/// One stream's socket and destination learning.
pub struct StreamSocket {
    pub sock: UdpSocket,
    pub matcher: PingMatcher,
    buf: [u8; 64],
}

impl StreamSocket {
    /// Binds `0.0.0.0:port`, non-blocking.
    pub fn bind(port: u16, s: &SessionStart) -> std::io::Result<Self> {
        let sock = UdpSocket::bind(("0.0.0.0", port))?;
        sock.set_nonblocking(true)?;
        Ok(Self {
            sock,
            matcher: PingMatcher::new(s.stream.ping_payload, s.peer.ip()),
            buf: [0; 64],
        })
    }

    /// Reads pending datagrams (bounded); returns the destination if it changed.
    pub fn poll(&mut self) -> Option<SocketAddr> {
        let mut learned = None;
        for _ in 0..PINGS_PER_POLL {
            match self.sock.recv_from(&mut self.buf) {
                Ok((n, src)) => {
                    if let PingOutcome::Learned(a) = self.matcher.on_datagram(src, &self.buf[..n]) {
                        learned = Some(a);
                    }
                }
                Err(_) => break,
            }
        }
        learned
    }

    /// Waits (in [`WORKER_TICK`] steps) for the first ping; `None` on stop or timeout.
    pub fn wait_first(&mut self, shared: &Shared, timeout: Duration) -> Option<SocketAddr> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(a) = self.poll() {
                return Some(a);
            }
            if shared.stopped() || Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5).min(WORKER_TICK));
        }
    }
}

struct Running {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

/// The real media host: spawns worker threads per session.
pub struct Media {
    settings: MediaSettings,
    metrics: &'static Registry,
    sessions: BTreeMap<u64, Running>,
}

impl Media {
    pub fn new(settings: MediaSettings, metrics: &'static Registry) -> Self {
        Self {
            settings,
            metrics,
            sessions: BTreeMap::new(),
        }
    }

    pub fn settings(&self) -> &MediaSettings {
        &self.settings
    }
}

/// Why a session cannot be streamed (checked before any thread starts).
pub fn check_session(s: &SessionStart) -> Result<(&[u8; 16], u32), String> {
    if s.protocol != Protocol::GameStream {
        return Err(format!(
            "{:?} sessions have no media pipeline yet (GameStream only)",
            s.protocol
        ));
    }
    if s.video.codec != Codec::H264 {
        return Err(format!(
            "video codec {:?} is not implemented (H.264 only)",
            s.video.codec
        ));
    }
    let KeyMaterial::GameStream { rikey, rikeyid } = &s.keys else {
        return Err("GameStream session without GameStream keys".into());
    };
    if s.video.fps == 0 || s.video.width == 0 || s.video.height == 0 {
        return Err("video geometry or fps is zero".into());
    }
    Ok((&rikey.0, *rikeyid))
}

impl MediaHost for Media {
    fn start(&mut self, s: &SessionStart) -> Result<(), String> {
        check_session(s)?;
        let fec = self.settings.clamp_fec(s.video.fec_percent);
        let shared = Arc::new(Shared::new(
            self.settings.clamp_bitrate(s.video.bitrate_kbps),
            fec,
        ));
        self.metrics.set(Metric::VideoFecPercent, u64::from(fec));
        let mut workers = Vec::new();
        let v = video::VideoWorker::new(
            s.clone(),
            self.settings.clone(),
            shared.clone(),
            self.metrics,
        );
        let spawned = std::thread::Builder::new()
            .name(format!("strahl-v{}", s.id))
            .spawn(move || v.run());
        match spawned {
            Ok(h) => workers.push(h),
            Err(e) => return Err(format!("cannot start the video worker: {e}")),
        }
        if self.settings.audio_tone {
            let a = audio::AudioWorker::new(
                s.clone(),
                self.settings.clone(),
                shared.clone(),
                self.metrics,
            );
            match std::thread::Builder::new()
                .name(format!("strahl-a{}", s.id))
                .spawn(move || a.run())
            {
                Ok(h) => workers.push(h),
                Err(e) => {
                    shared.stop.store(true, Ordering::Relaxed);
                    join_bounded(s.id, workers);
                    return Err(format!("cannot start the audio worker: {e}"));
                }
            }
        }
        self.sessions.insert(s.id, Running { shared, workers });
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
            r.shared
                .bitrate_kbps
                .store(self.settings.clamp_bitrate(b), Ordering::Relaxed);
        }
        if let Some(f) = fec_percent {
            let f = self.settings.clamp_fec(f);
            r.shared.fec_percent.store(f, Ordering::Relaxed);
        }
        if keyframe {
            r.shared.keyframe.store(true, Ordering::Relaxed);
        }
    }

    fn stop(&mut self, id: u64) {
        if let Some(r) = self.sessions.remove(&id) {
            r.shared.stop.store(true, Ordering::Relaxed);
            join_bounded(id, r.workers);
            if self.sessions.is_empty() {
                // Nothing is paced any more; a stale rate would read as a live stream.
                self.metrics.set(Metric::VideoPacingKbps, 0);
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
}

impl Drop for Media {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.sessions.keys().copied().collect();
        for id in ids {
            self.stop(id);
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
