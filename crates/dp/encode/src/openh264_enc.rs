//! Software H.264 through OpenH264 (bundled source, nasm asm): constrained baseline, one
//! reference frame, no B-frames, IDR only on request, SPS/PPS before every IDR slice.
//!
//! OpenH264 facts this relies on (checked by the tests in `tests/openh264.rs`):
//! - every IDR is emitted as SPS, PPS, IDR slice(s) with a constant SPS/PPS id;
//! - its SPS always carries VUI bitstream restrictions with `max_dec_frame_buffering` =
//!   `max_num_ref_frames` (1 with one temporal layer, no LTR, camera usage) — what Sunshine has
//!   to inject for other encoders (§A14);
//! - `EncodeFrame` of a freshly created encoder yields an IDR.
//!
//! Frame skipping is off (every captured frame must yield an AU). OpenH264 then logs that it
//! "can't control" the bitrate strictly; in practice its QP control holds the average: the
//! `make_stream` example measured 501.5 kbit/s for a 500 kbit/s target (320×240) and
//! 3993.7 kbit/s for 4000 (1280×720) over 120 frames of the synthetic pattern.
//!
//! Threads: OpenH264 threads per slice, so `threads` > 1 means as many fixed slices per picture
//! (each slice one thread; the deblocking filter stops at slice edges, a little less
//! compression). The openh264 crate always configures one slice, so a fresh encoder is primed:
//! it encodes one blank picture (that initialises it), then its parameters are switched to
//! `threads` slices, which re-initialises it; the first real picture is an IDR as always. At
//! most [`MAX_THREADS`] (OpenH264's own limit).
//!
//! AU cap: when an AU exceeds the cap, the frame is re-encoded by a fresh encoder instance (so
//! the result is an IDR that depends on nothing the client lacks) with a raised minimum QP,
//! trying [`CAP_QP_FLOORS`] in order. The raised floor stays until the next `request_idr`, which
//! rebuilds at the configured floor (an IDR is produced then anyway). If the highest floor still
//! does not fit, the AU is refused and the next AU is forced to be an IDR.

use openh264::Timestamp;
use openh264::encoder::{
    BitRate, Complexity, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile, QpRange,
    RateControlMode, SpsPpsStrategy, UsageType, VuiConfig,
};
use openh264::formats::YUVSlices;
use strahl_capture::annexb::is_idr_au;
use strahl_capture::{Frame, PixelFormat};

use crate::{Capability, EncodeError, EncodedInfo, Encoder, EncoderStats, OutputFormat};

/// `profile_idc` of what OpenH264 writes here: constrained baseline (66 with constraint_set1).
pub const PROFILE_IDC: u8 = 66;

/// What OpenH264 produces: H.264 constrained baseline, 8-bit 4:2:0, and nothing else (the
/// encode tests check the SPS of its output against this).
pub fn capability() -> Capability {
    Capability {
        encoder: "openh264".into(),
        formats: vec![OutputFormat {
            codec: strahl_capture::format::CodecKind::H264,
            profile: PROFILE_IDC,
            bit_depth: 8,
            chroma: strahl_capture::format::Chroma::Yuv420,
        }],
        mastering: None,
    }
}

/// Minimum-QP floors tried, in order, when an AU exceeds the cap. 51 is H.264's maximum; the
/// steps are coarse because each try costs a full encode (~3 ms at 720p on one core).
pub const CAP_QP_FLOORS: [u8; 4] = [30, 38, 45, 51];
/// OpenH264's `MAX_THREADS_NUM` (encoder/core/inc/wels_const.h): more threads are clamped.
pub const MAX_THREADS: u16 = 4;
/// Default QP range when uncapped (OpenH264's own default range).
const BASE_QP_MIN: u8 = 0;
const QP_MAX: u8 = 51;

/// Configuration of the software encoder.
#[derive(Clone, Copy, Debug)]
pub struct OpenH264Config {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_bps: u32,
    /// Threads (and slices per picture, see the module header): the cores the plan gives the
    /// encode tile (`dataplane::media::video::encoder_threads`); 1 by default.
    pub threads: u16,
    pub max_access_unit_bytes: Option<usize>,
}

impl OpenH264Config {
    pub fn new(width: u32, height: u32, fps: u32, bitrate_bps: u32) -> Self {
        Self {
            width,
            height,
            fps,
            bitrate_bps,
            threads: 1,
            max_access_unit_bytes: None,
        }
    }
}

/// OpenH264 behind the [`Encoder`] trait.
pub struct OpenH264Encoder {
    cfg: OpenH264Config,
    enc: openh264::encoder::Encoder,
    /// The wrapped encoder initialises lazily on its first frame.
    initialized: bool,
    qp_floor: u8,
    force_idr: bool,
    /// Deinterleaved chroma for NV12 input (allocated once).
    chroma_scratch: Vec<u8>,
    /// The blank I420 picture a multi-threaded encoder is primed with (empty with one thread).
    blank: Vec<u8>,
    stats: EncoderStats,
}

impl std::fmt::Debug for OpenH264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenH264Encoder")
            .field("cfg", &self.cfg)
            .field("qp_floor", &self.qp_floor)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn build(cfg: &OpenH264Config, qp_floor: u8) -> Result<openh264::encoder::Encoder, EncodeError> {
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(cfg.bitrate_bps))
        .max_frame_rate(FrameRate::from_hz(cfg.fps as f32))
        .rate_control_mode(RateControlMode::Bitrate)
        // Every captured frame must produce an AU (the packetizer numbers frames densely).
        .skip_frames(false)
        // Camera usage keeps one reference frame; screen-content mode uses several.
        .usage_type(UsageType::CameraVideoRealTime)
        .profile(Profile::Baseline)
        .sps_pps_strategy(SpsPpsStrategy::ConstantId)
        .intra_frame_period(IntraFramePeriod::from_num_frames(0))
        .complexity(Complexity::Low)
        .num_threads(cfg.threads)
        .qp(QpRange::new(qp_floor, QP_MAX))
        // No spontaneous IDRs: the host decides when (client request, cap).
        .scene_change_detect(false)
        .background_detection(false)
        .long_term_reference(false)
        .vui(VuiConfig::bt709());
    openh264::encoder::Encoder::with_api_config(openh264::OpenH264API::from_source(), config)
        .map_err(|e| EncodeError::Backend(e.to_string()))
}

impl OpenH264Encoder {
    pub fn new(cfg: OpenH264Config) -> Result<Self, EncodeError> {
        if cfg.width == 0
            || cfg.height == 0
            || !cfg.width.is_multiple_of(2)
            || !cfg.height.is_multiple_of(2)
        {
            return Err(EncodeError::Config(format!(
                "{}x{}: dimensions must be even and non-zero",
                cfg.width, cfg.height
            )));
        }
        if cfg.width.max(cfg.height) > 3840 || cfg.width.min(cfg.height) > 2160 {
            return Err(EncodeError::Config(
                "OpenH264 supports at most 3840x2160".into(),
            ));
        }
        if cfg.fps == 0 || cfg.bitrate_bps == 0 {
            return Err(EncodeError::Config("fps and bitrate must be > 0".into()));
        }
        let mut cfg = cfg;
        cfg.threads = cfg.threads.clamp(1, MAX_THREADS);
        let enc = build(&cfg, BASE_QP_MIN)?;
        let mut me = Self {
            cfg,
            enc,
            initialized: false,
            qp_floor: BASE_QP_MIN,
            force_idr: false,
            chroma_scratch: vec![0; (cfg.width * cfg.height / 2) as usize],
            blank: if cfg.threads > 1 {
                vec![0; (cfg.width * cfg.height * 3 / 2) as usize]
            } else {
                Vec::new()
            },
            stats: EncoderStats::default(),
        };
        me.prime()?;
        Ok(me)
    }

    /// Threads (= slices per picture) in use.
    pub fn threads(&self) -> u16 {
        self.cfg.threads
    }

    /// A fresh multi-threaded encoder: one blank picture initialises it, then it is switched to
    /// `threads` slices (which re-initialises it: the next picture is an IDR). Nothing to do
    /// with one thread.
    fn prime(&mut self) -> Result<(), EncodeError> {
        if self.cfg.threads <= 1 {
            return Ok(());
        }
        let (w, h) = (self.cfg.width as usize, self.cfg.height as usize);
        let (y, uv) = self.blank.split_at(w * h);
        let (u, v) = uv.split_at(w * h / 4);
        let yuv = YUVSlices::new((y, u, v), (w, h), (w, w / 2, w / 2));
        self.enc
            .encode_at(&yuv, Timestamp::from_millis(0))
            .map_err(|e| EncodeError::Backend(format!("priming: {e}")))?;
        crate::sys::openh264_use_slices(&mut self.enc, self.cfg.threads)
            .map_err(EncodeError::Backend)?;
        self.initialized = true;
        self.force_idr = true;
        Ok(())
    }

    /// Current minimum QP (raised by the AU cap until the next IDR request).
    pub fn qp_floor(&self) -> u8 {
        self.qp_floor
    }

    fn rebuild(&mut self, qp_floor: u8) -> Result<(), EncodeError> {
        self.enc = build(&self.cfg, qp_floor)?;
        self.qp_floor = qp_floor;
        self.initialized = false;
        self.prime()
    }

    /// One encode of `frame` into `out`; returns whether it was an IDR.
    fn encode_once(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<bool, EncodeError> {
        let (w, h) = (self.cfg.width as usize, self.cfg.height as usize);
        if self.force_idr && self.initialized {
            self.enc.force_intra_frame();
        }
        let ts = Timestamp::from_millis(frame.pts_us / 1000);
        let bs = match frame.format() {
            PixelFormat::I420 => {
                let yuv = YUVSlices::new(
                    (frame.y(), frame.u_or_uv(), frame.v()),
                    (w, h),
                    (w, w / 2, w / 2),
                );
                self.enc.encode_at(&yuv, ts)
            }
            PixelFormat::Nv12 => {
                let (u, v) = self.chroma_scratch.split_at_mut(w * h / 4);
                for (i, pair) in frame.u_or_uv().chunks_exact(2).enumerate() {
                    u[i] = pair[0];
                    v[i] = pair[1];
                }
                let yuv = YUVSlices::new((frame.y(), &*u, &*v), (w, h), (w, w / 2, w / 2));
                self.enc.encode_at(&yuv, ts)
            }
        }
        .map_err(|e| EncodeError::Backend(e.to_string()))?;
        self.initialized = true;
        let kind = bs.frame_type();
        out.clear();
        bs.write_vec(out);
        match kind {
            FrameType::IDR => {
                if !is_idr_au(out) {
                    return Err(EncodeError::Backend(
                        "OpenH264 IDR does not start with SPS".into(),
                    ));
                }
                self.force_idr = false;
                Ok(true)
            }
            FrameType::Skip | FrameType::Invalid => Err(EncodeError::Backend(format!(
                "OpenH264 produced no AU ({kind:?})"
            ))),
            _ => Ok(false),
        }
    }
}

impl Encoder for OpenH264Encoder {
    fn name(&self) -> &'static str {
        "openh264"
    }

    fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<EncodedInfo, EncodeError> {
        frame.check(self.cfg.width, self.cfg.height, frame.format())?;
        let mut idr = self.encode_once(frame, out)?;
        let mut reencodes = 0;
        if let Some(cap) = self.cfg.max_access_unit_bytes
            && out.len() > cap
        {
            self.stats.over_cap += 1;
            let start = self.qp_floor;
            let floors = CAP_QP_FLOORS.iter().copied().filter(|&f| f > start);
            let mut fitted = false;
            for floor in floors {
                self.rebuild(floor)?;
                idr = self.encode_once(frame, out)?;
                reencodes += 1;
                if out.len() <= cap {
                    fitted = true;
                    break;
                }
            }
            if !fitted {
                self.stats.capped_dropped += 1;
                // The encoder's reference now holds a picture the client never gets.
                self.force_idr = true;
                return Err(EncodeError::AccessUnitTooLarge {
                    len: out.len(),
                    cap,
                });
            }
            self.stats.capped_ok += 1;
        }
        self.stats.frames += 1;
        self.stats.idr_frames += u64::from(idr);
        self.stats.bytes += out.len() as u64;
        Ok(EncodedInfo {
            idr,
            len: out.len(),
            frame_number: frame.frame_number,
            pts_us: frame.pts_us,
            reencodes,
        })
    }

    fn request_idr(&mut self) {
        if self.qp_floor != BASE_QP_MIN {
            // An IDR is coming anyway: drop the cap's QP floor with it. A failed rebuild keeps
            // the old encoder, which still honours the IDR request below.
            let _ = self.rebuild(BASE_QP_MIN);
        }
        self.force_idr = true;
    }

    fn set_bitrate(&mut self, bps: u32) -> Result<(), EncodeError> {
        if bps == 0 {
            return Err(EncodeError::Config("bitrate must be > 0".into()));
        }
        let old = self.cfg.bitrate_bps;
        self.cfg.bitrate_bps = bps;
        if self.initialized {
            crate::sys::openh264_set_bitrate(&mut self.enc, old, bps)
                .map_err(EncodeError::Backend)?;
        }
        // Not initialized: the next (lazy) initialisation reads cfg. Rebuild so it does.
        else {
            self.enc = build(&self.cfg, self.qp_floor)?;
        }
        Ok(())
    }

    fn set_max_access_unit_bytes(&mut self, cap: Option<usize>) {
        self.cfg.max_access_unit_bytes = cap;
    }

    fn stats(&self) -> EncoderStats {
        self.stats
    }
}
