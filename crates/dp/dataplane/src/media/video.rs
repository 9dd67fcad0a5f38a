//! The video encode tile of one session: frame clock → capture → encode (AU capped to the FEC
//! capacity) → the stream's unit ring. Packetizing, FEC, sealing, pacing and sending happen on
//! the tx tile ([`super::tile`]); this thread never touches a socket.
//!
//! - It starts when the tx tile has learned the client's video destination from its ping
//!   (`Shared::ready`), so the first frame is an IDR the client can decode.
//! - Frame clock ([`super::clock`]): slot k is due at k · 10^9 / fps ns after that (integer
//!   arithmetic, no drift). A late encoder skips the missed slots instead of bursting them;
//!   they are counted (`strahl_video_frames_skipped_total`, on the status page) and said in a
//!   rate-limited warning with the delivered frame rate and the mean encode time. Frame numbers
//!   stay dense (the pixels count frames encoded, not slots), the capture time is the slot's,
//!   on the host's CLOCK_MONOTONIC (the media clock's origin is its zero).
//! - No free unit slot (the tx tile is a full ring behind) → the slot is skipped before capture,
//!   so the encoder never references a frame the client will not get (counted as skipped).
//! - The AU cap is `max_access_unit_bytes(packet_size)`: what 4 FEC blocks carry at the lowest
//!   parity percentage; an AU above it is refused by the encoder (counted, next AU an IDR).
//! - Bitrate and keyframe requests arrive through [`Shared`]'s atomics.
//! - A native epoch ([`super::native_stream::EpochSwitch`]) is taken before a frame: the
//!   pipeline is re-made at the epoch's size, rate and bitrate (the pattern source continues
//!   its sequence), the frame clock restarts at the new rate from now, and the first unit made
//!   is marked as the epoch's start before it is published. A pipeline that cannot be re-made
//!   fails the session (its client is told), it does not go on in a configuration nobody asked
//!   for.
//! - KMS capture into an encoder that imports dmabufs (NVENC) is zero-copy ([`zero_copy`]): the
//!   picture's dmabuf goes to the GPU unmapped; an import refused or a GPU lost continues the
//!   session on the CPU copy (the same picture, the same frame number), said once and counted.
//!   Which path a session starts on is said when it starts.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use strahl_capture::format::{Chroma, CodecKind};
use strahl_capture::kms_video::KmsVideoSource;
use strahl_capture::synthetic::{SyntheticConfig, SyntheticSource};
use strahl_capture::{CaptureError, Frame, PixelFormat, VideoSource};
use strahl_encode::openh264_enc::OpenH264Config;
use strahl_encode::passthrough::PassthroughEncoder;
use strahl_encode::select::Selection;
use strahl_encode::{Capability, EncodeError, Encoder};
use strahl_ipc::{
    Codec, HdrMetadata, SessionStart, StopReason, StreamOptions, VideoCaps, VideoFormat,
};
use strahl_metrics::{Metric, Registry};

use super::clock::{FrameClock, LateWarning, Tick};
use super::native_stream::NewEpoch;
use super::ring::{Producer, Slot, UnitMeta};
use super::{MediaError, MediaSettings, Shared, VideoSourceKind, WORKER_TICK};

mod zero_copy;
use zero_copy::{Input, ZeroCopy};

/// Geometry of the dummy frame handed to the passthrough and pattern encoders (they ignore the
/// pixels).
const PASSTHROUGH_FRAME: u32 = 16;

/// Threads (and slices) of a session's software encoder: the cores the plan gives encode
/// threads, or every core this process may run on when the plan leaves them unpinned (on 2
/// cores: the encoder needs both, the tx tile shares), at most OpenH264's limit. A 1080p
/// picture took 14.0 ms p50 on one thread and 10.9–12.6 ms on two on the loaded 2-core VM
/// (docs/measurements.md §openh264 threads).
pub fn encoder_threads(worker_cores: &[usize]) -> u16 {
    let n = if worker_cores.is_empty() {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        worker_cores.len()
    };
    u16::try_from(n)
        .unwrap_or(u16::MAX)
        .clamp(1, strahl_encode::openh264_enc::MAX_THREADS)
}

/// What the configured source and encoder produce (read once at start: the passthrough clip is
/// parsed; a raw-frame source makes what the encoder chosen at start makes — OpenH264 H.264
/// only, NVENC what the GPU reported). A passthrough file that cannot be read makes nothing —
/// the control plane then refuses every stream with that reason in its log.
pub fn capability(source: &VideoSourceKind, encoder: &Selection) -> Capability {
    match source {
        VideoSourceKind::Synthetic | VideoSourceKind::Kms(_) => encoder.capability.clone(),
        VideoSourceKind::Passthrough(path) => {
            match strahl_capture::passthrough::PassthroughSource::open(path) {
                Ok(src) => {
                    strahl_encode::passthrough::capability(&src, &path.display().to_string())
                }
                Err(e) => Capability {
                    encoder: format!("passthrough: {}: {e}", path.display()),
                    formats: Vec::new(),
                    mastering: None,
                },
            }
        }
    }
}

/// The capability as the IPC carries it. Formats GameStream cannot express (4:2:2, monochrome,
/// 12-bit) are left out.
pub fn ipc_caps(c: &Capability) -> VideoCaps {
    let mut encoder = c.encoder.clone();
    if encoder.len() > strahl_ipc::MAX_NAME_LEN {
        let mut cut = strahl_ipc::MAX_NAME_LEN;
        while !encoder.is_char_boundary(cut) {
            cut -= 1;
        }
        encoder.truncate(cut);
    }
    VideoCaps {
        encoder,
        formats: c
            .formats
            .iter()
            .filter(|f| matches!(f.chroma, Chroma::Yuv420 | Chroma::Yuv444))
            .filter(|f| matches!(f.bit_depth, 8 | 10))
            .map(|f| VideoFormat {
                codec: ipc_codec(f.codec),
                profile: f.profile,
                bit_depth: f.bit_depth,
                yuv444: f.chroma == Chroma::Yuv444,
            })
            .take(strahl_ipc::MAX_VIDEO_FORMATS)
            .collect(),
        hdr: c.mastering.map(|m| HdrMetadata {
            primaries: m.primaries,
            white_point: m.white_point,
            max_luminance: m.max_luminance,
            min_luminance: m.min_luminance,
            max_cll: m.max_cll,
            max_fall: m.max_fall,
        }),
    }
}

fn ipc_codec(c: CodecKind) -> Codec {
    match c {
        CodecKind::H264 => Codec::H264,
        CodecKind::Hevc => Codec::Hevc,
        CodecKind::Av1 => Codec::Av1,
    }
}

fn codec_kind(c: Codec) -> CodecKind {
    match c {
        Codec::H264 => CodecKind::H264,
        Codec::Hevc => CodecKind::Hevc,
        Codec::Av1 => CodecKind::Av1,
    }
}

/// A session may ask only for a format the encoder makes (the control plane advertised exactly
/// those; this guards against a control plane of another build or a changed clip).
pub fn check_format(s: &SessionStart, caps: &Capability) -> Result<(), MediaError> {
    let codec = codec_kind(s.video.codec);
    let depth = if s.stream.has(StreamOptions::TEN_BIT) {
        10
    } else {
        8
    };
    let yuv444 = s.stream.has(StreamOptions::YUV444);
    if caps.supports(codec, depth, yuv444) {
        return Ok(());
    }
    Err(MediaError::Session(format!(
        "{} {depth}-bit{} requested, the encoder makes {}",
        codec.name(),
        if yuv444 { " 4:4:4" } else { "" },
        caps.describe()
    )))
}

/// Where a session's pictures come from.
enum Source {
    /// Passthrough and pattern: the encoder makes its AUs itself (the frame is a dummy).
    None,
    /// A raw-frame source read by the CPU: synthetic, or KMS into an encoder that reads CPU
    /// frames only (map + convert).
    Frames(Box<dyn VideoSource + Send>),
    /// KMS into an encoder that imports dmabufs ([`zero_copy`]).
    Dmabuf(Box<ZeroCopy>),
}

/// Capture source + encoder of one session.
pub struct VideoPipeline {
    source: Source,
    frame: Frame,
    enc: Box<dyn Encoder + Send>,
    bitrate_kbps: u32,
    remake: Remake,
}

/// How a pipeline is made again for a new epoch.
enum Remake {
    Pattern {
        au_cap: usize,
    },
    Built {
        start: Box<SessionStart>,
        settings: Box<MediaSettings>,
        au_cap: usize,
        threads: u16,
    },
}

impl VideoPipeline {
    /// Build the source and encoder (on the server thread: a bad passthrough file or encoder
    /// failure refuses the session before any thread starts). `threads`: the software
    /// encoder's ([`encoder_threads`]).
    pub fn build(
        s: &SessionStart,
        settings: &MediaSettings,
        bitrate_kbps: u32,
        au_cap: usize,
        threads: u16,
    ) -> Result<Self, MediaError> {
        let (w, h, fps) = (
            u32::from(s.video.width),
            u32::from(s.video.height),
            u32::from(s.video.fps),
        );
        let (codec, ten_bit) = (
            codec_kind(s.video.codec),
            s.stream.has(StreamOptions::TEN_BIT),
        );
        // Raw frames go to the encoder chosen at start (NVENC with its software fallback, or
        // OpenH264); a session NVENC refuses is said here, once.
        let raw = || -> Result<(Frame, Box<dyn Encoder + Send>), MediaError> {
            let frame = Frame::new(w, h, PixelFormat::I420)
                .map_err(|e| MediaError::Source(format!("frame: {e}")))?;
            let cfg = OpenH264Config {
                threads,
                ..OpenH264Config::new(w, h, fps, bitrate_kbps.saturating_mul(1000))
            };
            let (enc, choice) = settings.encoder.build(cfg, codec, ten_bit).map_err(|e| {
                MediaError::Encoder(format!("{}: {e}", settings.encoder.choice.backend.name()))
            })?;
            if choice != settings.encoder.choice {
                log::warn!("session {}: video encoder {}", s.id, choice.reason);
            }
            Ok((frame, enc))
        };
        let (source, frame, mut enc): (_, _, Box<dyn Encoder + Send>) =
            match &settings.video_source {
                VideoSourceKind::Synthetic => {
                    let synthetic = SyntheticSource::new(SyntheticConfig {
                        width: w,
                        height: h,
                        fps,
                        format: PixelFormat::I420,
                        first_frame_number: 0,
                    })
                    .map_err(|e| MediaError::Source(format!("synthetic source: {e}")))?;
                    let (frame, enc) = raw()?;
                    (Source::Frames(Box::new(synthetic)), frame, enc)
                }
                VideoSourceKind::Kms(socket) => {
                    let kms = KmsVideoSource::connect(socket, w, h, fps)
                        .map_err(|e| MediaError::Source(format!("kms capture: {e}")))?;
                    let (frame, enc) = raw()?;
                    // The path is fixed here, for the session (zero_copy's header): a later
                    // switch to the CPU copy is said by the worker.
                    let source = if enc.takes_dmabuf() {
                        log::info!(
                            "session {}: kms capture: zero-copy (dmabuf → {})",
                            s.id,
                            enc.name()
                        );
                        Source::Dmabuf(Box::new(ZeroCopy::new(kms, s.id)))
                    } else {
                        log::info!(
                            "session {}: kms capture: CPU copy (map + convert) into {}",
                            s.id,
                            enc.name()
                        );
                        Source::Frames(Box::new(kms))
                    };
                    (source, frame, enc)
                }
                VideoSourceKind::Passthrough(path) => {
                    let src = strahl_capture::passthrough::PassthroughSource::open(path).map_err(
                        |e| MediaError::Source(format!("passthrough file {}: {e}", path.display())),
                    )?;
                    let frame = Frame::new(PASSTHROUGH_FRAME, PASSTHROUGH_FRAME, PixelFormat::I420)
                        .map_err(|e| MediaError::Source(format!("frame: {e}")))?;
                    (Source::None, frame, Box::new(PassthroughEncoder::new(src)))
                }
            };
        enc.set_max_access_unit_bytes(Some(au_cap));
        Ok(Self {
            source,
            frame,
            enc,
            bitrate_kbps,
            remake: Remake::Built {
                start: Box::new(s.clone()),
                settings: Box::new(settings.clone()),
                au_cap,
                threads,
            },
        })
    }

    /// The pipeline of epoch `e` (see the module header); `frames` made so far.
    fn remade(&self, e: &NewEpoch, frames: u32) -> Result<Self, MediaError> {
        match &self.remake {
            Remake::Pattern { au_cap } => {
                let enc = super::pattern::PatternEncoder::new(e.bitrate_kbps, e.fps)
                    .continuing_at(u64::from(frames));
                Self::pattern_with(enc, e.bitrate_kbps, *au_cap)
            }
            Remake::Built {
                start,
                settings,
                au_cap,
                threads,
            } => {
                let mut s = (**start).clone();
                (s.video.width, s.video.height, s.video.fps) = (e.width, e.height, e.fps);
                s.video.bitrate_kbps = e.bitrate_kbps;
                Self::build(&s, settings, e.bitrate_kbps, *au_cap, *threads)
            }
        }
    }
}

impl VideoPipeline {
    /// The pattern source of a native passthrough session ([`super::pattern`]): checkable
    /// frames of `bitrate_kbps / 8 / fps` bytes, no capture, no encoder.
    pub fn pattern(bitrate_kbps: u32, fps: u16, au_cap: usize) -> Result<Self, MediaError> {
        let enc = super::pattern::PatternEncoder::new(bitrate_kbps, fps);
        Self::pattern_with(enc, bitrate_kbps, au_cap)
    }

    fn pattern_with(
        enc: super::pattern::PatternEncoder,
        bitrate_kbps: u32,
        au_cap: usize,
    ) -> Result<Self, MediaError> {
        if enc.frame_bytes() > au_cap {
            return Err(MediaError::Session(format!(
                "checkable frames of {} B exceed the {au_cap} B one frame carries",
                enc.frame_bytes()
            )));
        }
        let frame = Frame::new(PASSTHROUGH_FRAME, PASSTHROUGH_FRAME, PixelFormat::I420)
            .map_err(|e| MediaError::Source(format!("frame: {e}")))?;
        let mut enc: Box<dyn Encoder + Send> = Box::new(enc);
        enc.set_max_access_unit_bytes(Some(au_cap));
        Ok(Self {
            source: Source::None,
            frame,
            enc,
            bitrate_kbps,
            remake: Remake::Pattern { au_cap },
        })
    }
}

/// The host's CLOCK_MONOTONIC now, ns.
fn mono_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

/// The thread body of one session's video encode tile.
pub struct VideoProducer {
    id: u64,
    fps: u32,
    pipeline: VideoPipeline,
    units: Producer,
    /// A slot taken but not published (the encoder refused the frame): used for the next one.
    spare: Option<Box<Slot>>,
    shared: Arc<Shared>,
    metrics: &'static Registry,
    /// The encoder's switch to software (a GPU lost mid-stream) was logged.
    said_fallback: bool,
}

impl VideoProducer {
    pub fn new(
        id: u64,
        fps: u32,
        pipeline: VideoPipeline,
        units: Producer,
        shared: Arc<Shared>,
        metrics: &'static Registry,
    ) -> Self {
        Self {
            id,
            fps,
            pipeline,
            units,
            spare: None,
            shared,
            metrics,
            said_fallback: false,
        }
    }

    /// Whether the work per frame is small and bounded (NVENC, the passthrough clip, the
    /// pattern): such a thread may run at real-time priority; the software encoder's may not.
    pub fn light_per_frame(&self) -> bool {
        self.pipeline.enc.name() != strahl_encode::select::Backend::OpenH264.name()
    }

    pub fn run(mut self) {
        let id = self.id;
        match self.stream() {
            Ok(()) => log::info!("session {id}: video encoder stopped"),
            Err(e) => {
                log::warn!("session {id}: video: {e}");
                self.shared.fail(e.to_string(), StopReason::Error);
            }
        }
    }

    fn stream(&mut self) -> Result<(), MediaError> {
        if !self.shared.wait_ready(super::VIDEO) {
            return Ok(());
        }
        let mut clock = FrameClock::new(self.fps);
        let mut late = LateWarning::default();
        // The media clock's origin is the host's CLOCK_MONOTONIC zero (`Instant` reads the same
        // clock): capture times, and so native `pts_us`, are comparable with any process on
        // this machine — across network namespaces too — which is how `strahl-bench native`
        // times capture → reassembled without a clock of its own on the wire.
        let origin_ns = mono_ns();
        let t0 = Instant::now();
        let elapsed = || u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut frames: u32 = 0;
        // The current clock's zero, since `t0` (a new epoch's clock starts when it is taken).
        let mut clock_zero_ns = 0u64;
        // An epoch taken whose first unit is not published yet.
        let mut opening: Option<NewEpoch> = None;
        while !self.shared.stopped() {
            if let Some(e) = self.switch_epoch(frames)? {
                clock = FrameClock::new(u32::from(e.fps));
                clock_zero_ns = elapsed();
                opening = Some(e);
            }
            self.apply_updates();
            let (capture_ns, skipped) = match clock.tick(elapsed().saturating_sub(clock_zero_ns)) {
                Tick::Wait(ns) => {
                    std::thread::sleep(Duration::from_nanos(ns).min(WORKER_TICK));
                    continue;
                }
                Tick::Frame {
                    capture_ns,
                    skipped,
                } => (clock_zero_ns + capture_ns, skipped),
            };
            self.metrics.add(Metric::VideoFramesSkipped, skipped);
            let Some(mut slot) = self.spare.take().or_else(|| self.units.acquire()) else {
                // The tx tile holds every slot: skip before capture (see the module header).
                self.metrics.inc(Metric::VideoFramesSkipped);
                self.warn_late(&mut late, elapsed(), skipped + 1, None, &clock);
                continue;
            };
            let p = &mut self.pipeline;
            let capture = |e: CaptureError| MediaError::Source(format!("capture: {e}"));
            let input = match &mut p.source {
                Source::Frames(src) => {
                    src.next_frame(&mut p.frame).map_err(capture)?;
                    Input::Frame
                }
                Source::Dmabuf(z) => z
                    .capture(p.enc.as_ref(), &mut p.frame, self.metrics)
                    .map_err(capture)?,
                Source::None => {
                    p.frame.frame_number = frames;
                    p.frame.pts_us = (origin_ns + capture_ns) / 1000;
                    Input::Frame
                }
            };
            self.metrics.inc(Metric::VideoFramesCaptured);
            let started = Instant::now();
            let encoded = match (&mut p.source, input) {
                (Source::Dmabuf(z), Input::Dmabuf) => z
                    .encode(p.enc.as_mut(), &mut p.frame, &mut slot.bytes, self.metrics)
                    .map_err(capture)?,
                _ => p.enc.encode(&p.frame, &mut slot.bytes),
            };
            if !self.said_fallback
                && let Some(why) = p.enc.fell_back()
            {
                // The same frame was encoded again in software, as an IDR: the stream goes on.
                log::warn!("session {}: video encoder switched: {why}", self.id);
                self.said_fallback = true;
                // Software encoding is not light work: no real time for it.
                super::realtime::leave("video encode thread");
            }
            let info = match encoded {
                Ok(i) => i,
                Err(EncodeError::AccessUnitTooLarge { len, cap }) => {
                    // The encoder already made the next AU an IDR; the slot is reused.
                    self.metrics.inc(Metric::FramesRefused);
                    log::warn!(
                        "session {}: AU of {len} B over the FEC cap {cap} B: frame dropped",
                        self.id
                    );
                    self.spare = Some(slot);
                    continue;
                }
                Err(e) => return Err(MediaError::Encoder(format!("encoder: {e}"))),
            };
            let took = started.elapsed();
            self.metrics.add(
                Metric::VideoEncodeMicros,
                u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            );
            let took_ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
            self.warn_late(&mut late, elapsed(), skipped, Some(took_ns), &clock);
            self.metrics.inc(Metric::VideoFramesEncoded);
            frames = frames.wrapping_add(1);
            slot.meta = UnitMeta {
                len: info.len.min(slot.bytes.len()),
                keyframe: info.idr,
                capture_ns: origin_ns + capture_ns,
                host_latency_tenth_ms: u16::try_from(took.as_micros() / 100).unwrap_or(u16::MAX),
            };
            if let Some(e) = opening.take() {
                // Before publishing: the tile must see the mark when it begins this unit.
                self.shared.epoch.mark(e, slot.meta.capture_ns);
            }
            if !self.units.publish(slot) {
                return Ok(()); // the tile dropped the session
            }
        }
        Ok(())
    }

    /// Accounts a tick for the rate-limited "encoder late" warning and logs it when due.
    fn warn_late(
        &self,
        late: &mut LateWarning,
        now_ns: u64,
        skipped: u64,
        encode_ns: Option<u64>,
        clock: &FrameClock,
    ) {
        if let Some(line) = late.note(now_ns, skipped, encode_ns, clock.interval_ns()) {
            log::warn!("session {}: {line}", self.id);
        }
    }

    /// Takes a new epoch, if one was asked for (see the module header).
    fn switch_epoch(&mut self, frames: u32) -> Result<Option<NewEpoch>, MediaError> {
        let Some(e) = self.shared.epoch.take_wanted() else {
            return Ok(None);
        };
        self.pipeline = self.pipeline.remade(&e, frames).map_err(|err| {
            MediaError::Session(format!("epoch {} could not be made: {err}", e.epoch))
        })?;
        self.fps = u32::from(e.fps);
        self.shared
            .bitrate_kbps
            .store(e.bitrate_kbps, Ordering::Relaxed);
        log::info!(
            "session {}: epoch {}: {}x{}@{}, {} kbit/s from the next frame",
            self.id,
            e.epoch,
            e.width,
            e.height,
            e.fps,
            e.bitrate_kbps
        );
        Ok(Some(e))
    }

    fn apply_updates(&mut self) {
        let p = &mut self.pipeline;
        let b = self.shared.bitrate_kbps.load(Ordering::Relaxed);
        if b != p.bitrate_kbps {
            match p.enc.set_bitrate_kbps(b) {
                Ok(()) => log::info!("session {}: bitrate now {b} kbit/s", self.id),
                Err(e) => log::info!("session {}: bitrate {b} kbit/s not applied: {e}", self.id),
            }
            p.bitrate_kbps = b;
        }
        if self.shared.keyframe.swap(false, Ordering::Relaxed) {
            p.enc.request_idr();
        }
    }
}

#[cfg(test)]
#[path = "video_tests.rs"]
mod tests;
#[cfg(test)]
#[path = "video_zero_copy_tests.rs"]
mod zero_copy_tests;
