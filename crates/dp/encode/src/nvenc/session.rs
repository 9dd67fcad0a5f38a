//! The NVENC encode session behind the [`Encoder`] seam, generic over the API table
//! ([`NvencApi`]) and CUDA ([`CudaApi`]) so the same code runs on the `dlopen`ed driver and
//! on the test fake.
//!
//! Life of a session:
//! - open: CUDA primary context on the configured device → `nvEncOpenEncodeSessionEx` →
//!   capability queries for every codec the driver lists ([`NvencEncoder::capabilities`]) →
//!   checks of the request against them (and the seam's [`Capability`] report from them) → `nvEncInitializeEncoder` (low-latency preset,
//!   infinite GOP, CBR at the session bitrate, one-frame VBV) → one bitstream buffer.
//! - per frame: the input is a registered CUDA buffer — our staging buffer for CPU frames
//!   (uploaded, then registered once), or a dmabuf imported into CUDA without a CPU copy and
//!   registered once per capture buffer (cached by the capture's buffer id) — then
//!   map → encode → lock → copy out → unlock → unmap. A successful map is always unmapped and
//!   a successful lock always unlocked, whatever fails in between.
//! - IDR on request (`FORCEIDR | OUTPUT_SPSPPS`, and the first picture), reference-frame
//!   invalidation on request (input timestamps are the source's frame numbers; an IDR when the
//!   GPU cannot invalidate or the range is too old), bitrate changes by reconfigure (no reset,
//!   no IDR).
//! - a device error from any call marks the session lost: that call and every later one
//!   returns [`EncodeError::DeviceLost`] without touching the driver again, so the caller can
//!   swap in the software encoder ([`super::fallback`]).
//! - drop (and every failed open): imports unregistered and released, the staging buffer
//!   unregistered and freed, the bitstream buffer destroyed, the session destroyed, the
//!   context released — in that order (NVENC before the CUDA memory it references).
//!
//! An AU above the cap is refused (counted, next AU an IDR): NVENC is not asked to re-encode;
//! the one-frame VBV keeps AUs near the frame budget.

use std::os::fd::BorrowedFd;

use strahl_capture::{Frame, PixelFormat};

use super::api::{
    Bitstream, BufferFormat, Cap, Codec, CodecCaps, CudaApi, CudaContext, DevicePtr,
    ExternalMemory, NvError, NvencApi, Picture, Registered, Resource, Session, SessionParams,
    fourcc,
};
use crate::{Capability, EncodeError, EncodedInfo, Encoder, EncoderStats};

/// Capture buffers kept imported at once (a scan-out flips between 2–3 buffers).
pub const MAX_IMPORTS: usize = 8;
/// The widest frame range an invalidation request may name before an IDR is cheaper (and
/// NVENC's reference list no longer holds the frames before it).
pub const MAX_INVALIDATE_SPAN: u32 = 8;

/// What to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NvencConfig {
    pub codec: Codec,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_bps: u32,
    /// Layout of the frames handed to [`Encoder::encode`] (CPU frames): `Iyuv` or `Nv12`.
    pub format: BufferFormat,
    pub ten_bit: bool,
    /// CUDA device ordinal.
    pub device: i32,
}

impl NvencConfig {
    /// H.264, 8-bit, I420 CPU frames, device 0.
    pub fn h264(width: u32, height: u32, fps: u32, bitrate_bps: u32) -> Self {
        Self {
            codec: Codec::H264,
            width,
            height,
            fps,
            bitrate_bps,
            format: BufferFormat::Iyuv,
            ten_bit: false,
            device: 0,
        }
    }
}

/// One captured scan-out buffer as the capture side exports it (GETFB2 + PRIME).
#[derive(Clone, Copy, Debug)]
pub struct DmabufFrame<'a> {
    pub fd: BorrowedFd<'a>,
    /// Stable id of the capture buffer (its framebuffer id): imports are cached by it.
    pub buffer_id: u64,
    /// Size of the dmabuf in bytes.
    pub size: u64,
    pub width: u32,
    pub height: u32,
    /// DRM fourcc and modifier, passed through to the import and the registration.
    pub fourcc: u32,
    pub modifier: u64,
    /// Offset and pitch of the first plane.
    pub offset: u32,
    pub pitch: u32,
    /// Offset of the chroma plane (two-plane formats); NVENC needs it right after luma.
    pub chroma_offset: Option<u32>,
    pub frame_number: u32,
    pub pts_us: u64,
}

struct Staging {
    ptr: DevicePtr,
    registered: Registered,
}

struct Import {
    buffer_id: u64,
    key: (u32, u32, u32, u64, u32, u32),
    mem: ExternalMemory,
    ptr: DevicePtr,
    registered: Option<Registered>,
}

/// The NVENC encoder.
pub struct NvencEncoder<N: NvencApi, C: CudaApi> {
    nv: N,
    cuda: C,
    ctx: CudaContext,
    session: Option<Session>,
    bitstream: Option<Bitstream>,
    cfg: NvencConfig,
    params: SessionParams,
    caps: Vec<CodecCaps>,
    staging: Option<Staging>,
    imports: Vec<Import>,
    want_idr: bool,
    lost: Option<String>,
    cap: Option<usize>,
    last_timestamp: Option<u64>,
    invalidations: u64,
    stats: EncoderStats,
}

fn to_encode_error(e: NvError) -> EncodeError {
    match e {
        NvError::DriverMissing(_) | NvError::Unsupported(_) => {
            EncodeError::NotAvailable(e.to_string())
        }
        NvError::DeviceLost { .. } => EncodeError::DeviceLost(e.to_string()),
        NvError::Call { .. } => EncodeError::Backend(e.to_string()),
    }
}

impl<N: NvencApi, C: CudaApi> NvencEncoder<N, C> {
    /// Opens a session. On any failure everything acquired so far is released.
    pub fn open(nv: N, mut cuda: C, cfg: NvencConfig) -> Result<Self, EncodeError> {
        if cfg.width == 0 || cfg.height == 0 || cfg.fps == 0 || cfg.bitrate_bps == 0 {
            return Err(EncodeError::Config(format!(
                "nvenc: {}x{}@{} at {} bit/s",
                cfg.width, cfg.height, cfg.fps, cfg.bitrate_bps
            )));
        }
        let ctx = cuda.open_context(cfg.device).map_err(to_encode_error)?;
        let params = SessionParams {
            codec: cfg.codec,
            width: cfg.width,
            height: cfg.height,
            fps: cfg.fps,
            bitrate_bps: cfg.bitrate_bps,
            vbv_bits: (cfg.bitrate_bps / cfg.fps).max(1),
            format: cfg.format,
            ten_bit: cfg.ten_bit,
        };
        // From here on Drop releases whatever has been acquired.
        let mut enc = Self {
            nv,
            cuda,
            ctx,
            session: None,
            bitstream: None,
            cfg,
            params,
            caps: Vec::new(),
            staging: None,
            imports: Vec::new(),
            want_idr: true,
            lost: None,
            cap: None,
            last_timestamp: None,
            invalidations: 0,
            stats: EncoderStats::default(),
        };
        let r = enc.nv.open_session(ctx);
        let s = enc.check(r)?;
        enc.session = Some(s);
        enc.query_caps(s)?;
        enc.check_request()?;
        let r = enc.nv.initialize(s, &enc.params);
        enc.check(r)?;
        let r = enc.nv.create_bitstream(s);
        enc.bitstream = Some(enc.check(r)?);
        Ok(enc)
    }

    /// What the GPU reported, one entry per codec the driver lists.
    pub fn capabilities(&self) -> &[CodecCaps] {
        &self.caps
    }

    /// The capability report of the encoder seam, from what the GPU reported at open.
    pub fn capability(&self) -> Capability {
        Capability {
            encoder: "nvenc".into(),
            formats: super::output_formats(&self.caps),
            mastering: None,
        }
    }

    /// Reference-frame invalidations sent to the driver so far.
    pub fn invalidations(&self) -> u64 {
        self.invalidations
    }

    /// Why the session is unusable, once a device error was seen.
    pub fn lost(&self) -> Option<&str> {
        self.lost.as_deref()
    }

    /// Marks the session lost on a device error; maps errors to the seam's types.
    fn check<T>(&mut self, r: Result<T, NvError>) -> Result<T, EncodeError> {
        r.map_err(|e| {
            if matches!(e, NvError::DeviceLost { .. }) && self.lost.is_none() {
                self.lost = Some(e.to_string());
            }
            to_encode_error(e)
        })
    }

    fn alive(&self) -> Result<Session, EncodeError> {
        match (&self.lost, self.session) {
            (Some(why), _) => Err(EncodeError::DeviceLost(why.clone())),
            (None, Some(s)) => Ok(s),
            (None, None) => Err(EncodeError::Backend("nvenc: no session".into())),
        }
    }

    fn query_caps(&mut self, s: Session) -> Result<(), EncodeError> {
        let r = self.nv.codecs(s);
        let codecs = self.check(r)?;
        for codec in codecs {
            let mut q = |cap| {
                let r = self.nv.cap(s, codec, cap);
                self.check(r)
            };
            let max_width = u32::try_from(q(Cap::WidthMax)?).unwrap_or(0);
            let max_height = u32::try_from(q(Cap::HeightMax)?).unwrap_or(0);
            let ten_bit = q(Cap::TenBit)? != 0;
            let ref_pic_invalidation = q(Cap::RefPicInvalidation)? != 0;
            self.caps.push(CodecCaps {
                codec,
                max_width,
                max_height,
                ten_bit,
                ref_pic_invalidation,
            });
        }
        Ok(())
    }

    fn codec_caps(&self) -> Option<&CodecCaps> {
        self.caps.iter().find(|c| c.codec == self.cfg.codec)
    }

    fn check_request(&self) -> Result<(), EncodeError> {
        let cfg = &self.cfg;
        let Some(c) = self.codec_caps() else {
            return Err(EncodeError::NotAvailable(format!(
                "nvenc: this GPU does not encode {} (it offers {:?})",
                cfg.codec.name(),
                self.caps.iter().map(|c| c.codec.name()).collect::<Vec<_>>()
            )));
        };
        if cfg.width > c.max_width || cfg.height > c.max_height {
            return Err(EncodeError::Config(format!(
                "nvenc: {}x{} exceeds the GPU's {} maximum of {}x{}",
                cfg.width,
                cfg.height,
                cfg.codec.name(),
                c.max_width,
                c.max_height
            )));
        }
        if cfg.ten_bit && (!c.ten_bit || cfg.codec == Codec::H264) {
            return Err(EncodeError::NotAvailable(format!(
                "nvenc: no 10-bit {} encode on this GPU",
                cfg.codec.name()
            )));
        }
        if !matches!(cfg.format, BufferFormat::Iyuv | BufferFormat::Nv12) {
            return Err(EncodeError::Config(format!(
                "nvenc: CPU frames must be I420 or NV12, not {:?}",
                cfg.format
            )));
        }
        Ok(())
    }

    /// Encodes a dmabuf exported by the capture side, without a CPU copy.
    pub fn encode_dmabuf(
        &mut self,
        frame: &DmabufFrame<'_>,
        out: &mut Vec<u8>,
    ) -> Result<EncodedInfo, EncodeError> {
        let s = self.alive()?;
        if (frame.width, frame.height) != (self.cfg.width, self.cfg.height) {
            return Err(EncodeError::Config(format!(
                "nvenc: dmabuf is {}x{}, session is {}x{} (scaling is not done here)",
                frame.width, frame.height, self.cfg.width, self.cfg.height
            )));
        }
        let format = BufferFormat::from_drm_fourcc(frame.fourcc).ok_or_else(|| {
            EncodeError::Config(format!(
                "nvenc: DRM format {:#010x} is not an NVENC input format",
                frame.fourcc
            ))
        })?;
        if matches!(format, BufferFormat::Nv12 | BufferFormat::P010)
            && frame.chroma_offset != Some(frame.offset + frame.pitch * frame.height)
        {
            return Err(EncodeError::Config(format!(
                "nvenc: chroma plane at {:?}, NVENC needs it right after luma ({})",
                frame.chroma_offset,
                frame.offset + frame.pitch * frame.height
            )));
        }
        let registered = self.import(s, frame, format)?;
        let pitch = frame.pitch;
        self.encode_registered(
            s,
            registered,
            pitch,
            format,
            frame.frame_number,
            frame.pts_us,
            out,
        )
    }

    /// The registration for a capture buffer: cached, or imported and registered now.
    fn import(
        &mut self,
        s: Session,
        frame: &DmabufFrame<'_>,
        format: BufferFormat,
    ) -> Result<Registered, EncodeError> {
        let key = (
            frame.width,
            frame.height,
            frame.fourcc,
            frame.modifier,
            frame.offset,
            frame.pitch,
        );
        if let Some(i) = self
            .imports
            .iter()
            .position(|i| i.buffer_id == frame.buffer_id)
        {
            if self.imports[i].key == key
                && let Some(r) = self.imports[i].registered
            {
                return Ok(r);
            }
            // Same framebuffer id with another layout: the capture side reallocated it.
            let old = self.imports.remove(i);
            self.release_import(s, old);
        }
        if self.imports.len() >= MAX_IMPORTS {
            let old = self.imports.remove(0);
            self.release_import(s, old);
        }
        let r = self
            .cuda
            .import_dmabuf(self.ctx, frame.fd, frame.size, frame.modifier);
        let (mem, base) = self.check(r)?;
        let mut import = Import {
            buffer_id: frame.buffer_id,
            key,
            mem,
            ptr: base,
            registered: None,
        };
        let r = self.nv.register(
            s,
            &Resource {
                ptr: DevicePtr(base.0 + u64::from(frame.offset)),
                width: frame.width,
                height: frame.height,
                pitch: frame.pitch,
                format,
                modifier: frame.modifier,
            },
        );
        match self.check(r) {
            Ok(reg) => {
                import.registered = Some(reg);
                self.imports.push(import);
                Ok(reg)
            }
            Err(e) => {
                self.release_import(s, import);
                Err(e)
            }
        }
    }

    fn release_import(&mut self, s: Session, i: Import) {
        if let Some(r) = i.registered {
            self.nv.unregister(s, r);
        }
        self.cuda.release_import(i.mem, i.ptr);
    }

    /// The staging buffer for CPU frames: allocated and registered on first use.
    fn staging(
        &mut self,
        s: Session,
        bytes: usize,
    ) -> Result<(Registered, DevicePtr), EncodeError> {
        if let Some(st) = &self.staging {
            return Ok((st.registered, st.ptr));
        }
        let r = self.cuda.alloc(self.ctx, bytes);
        let ptr = self.check(r)?;
        let r = self.nv.register(
            s,
            &Resource {
                ptr,
                width: self.cfg.width,
                height: self.cfg.height,
                pitch: self.cfg.width,
                format: self.cfg.format,
                modifier: fourcc::MOD_LINEAR,
            },
        );
        match self.check(r) {
            Ok(registered) => {
                self.staging = Some(Staging { ptr, registered });
                Ok((registered, ptr))
            }
            Err(e) => {
                self.cuda.free(ptr);
                Err(e)
            }
        }
    }

    /// map → encode → lock → copy → unlock → unmap, then the cap and the counters.
    #[allow(clippy::too_many_arguments)]
    fn encode_registered(
        &mut self,
        s: Session,
        registered: Registered,
        pitch: u32,
        format: BufferFormat,
        frame_number: u32,
        pts_us: u64,
        out: &mut Vec<u8>,
    ) -> Result<EncodedInfo, EncodeError> {
        out.clear();
        let b = self
            .bitstream
            .ok_or_else(|| EncodeError::Backend("nvenc: no bitstream buffer".into()))?;
        let r = self.nv.map(s, registered);
        let mapped = self.check(r)?;
        let pic = Picture {
            input: mapped,
            output: b,
            width: self.cfg.width,
            height: self.cfg.height,
            pitch,
            format,
            timestamp: u64::from(frame_number),
            force_idr: self.want_idr,
        };
        let r = self.nv.encode(s, &pic);
        let encoded = self.check(r).and_then(|()| {
            let r = self.nv.lock_bitstream(s, b, out);
            let locked = self.check(r);
            if locked.is_ok() {
                self.nv.unlock_bitstream(s, b);
            }
            locked
        });
        self.nv.unmap(s, mapped);
        let locked = match encoded {
            Ok(l) => l,
            Err(e) => {
                out.clear();
                return Err(e);
            }
        };
        self.want_idr = false;
        self.last_timestamp = Some(locked.timestamp);
        if let Some(cap) = self.cap
            && out.len() > cap
        {
            self.stats.over_cap += 1;
            self.stats.capped_dropped += 1;
            self.want_idr = true;
            let len = out.len();
            out.clear();
            return Err(EncodeError::AccessUnitTooLarge { len, cap });
        }
        self.stats.frames += 1;
        self.stats.idr_frames += u64::from(locked.idr);
        self.stats.bytes += out.len() as u64;
        Ok(EncodedInfo {
            idr: locked.idr,
            len: out.len(),
            frame_number,
            pts_us,
            reencodes: 0,
        })
    }
}

fn pixel_format_of(f: BufferFormat) -> Option<PixelFormat> {
    match f {
        BufferFormat::Iyuv => Some(PixelFormat::I420),
        BufferFormat::Nv12 => Some(PixelFormat::Nv12),
        _ => None,
    }
}

impl<N: NvencApi, C: CudaApi> Encoder for NvencEncoder<N, C> {
    fn name(&self) -> &'static str {
        "nvenc"
    }

    fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<EncodedInfo, EncodeError> {
        let s = self.alive()?;
        let pf = pixel_format_of(self.cfg.format)
            .ok_or_else(|| EncodeError::Config("nvenc: session takes no CPU frames".into()))?;
        frame.check(self.cfg.width, self.cfg.height, pf)?;
        let (registered, ptr) = self.staging(s, frame.as_bytes().len())?;
        let r = self.cuda.upload(ptr, frame.as_bytes());
        self.check(r)?;
        let (pitch, format) = (self.cfg.width, self.cfg.format);
        self.encode_registered(
            s,
            registered,
            pitch,
            format,
            frame.frame_number,
            frame.pts_us,
            out,
        )
    }

    fn request_idr(&mut self) {
        self.want_idr = true;
    }

    fn invalidate_frames(&mut self, first: u32, last: u32) {
        let Ok(s) = self.alive() else { return };
        let rfi = self.codec_caps().is_some_and(|c| c.ref_pic_invalidation);
        let usable = rfi
            && first <= last
            && last - first < MAX_INVALIDATE_SPAN
            && self.last_timestamp.is_some_and(|t| u64::from(last) <= t);
        if !usable {
            self.want_idr = true;
            return;
        }
        for n in first..=last {
            let r = self.nv.invalidate_ref_frame(s, u64::from(n));
            if self.check(r).is_err() {
                self.want_idr = true;
                return;
            }
            self.invalidations += 1;
        }
    }

    fn set_bitrate(&mut self, bps: u32) -> Result<(), EncodeError> {
        let s = self.alive()?;
        if bps == 0 {
            return Err(EncodeError::Config("nvenc: bitrate 0".into()));
        }
        let mut p = self.params;
        p.bitrate_bps = bps;
        p.vbv_bits = (bps / p.fps).max(1);
        let r = self.nv.reconfigure(s, &p);
        self.check(r)?;
        self.params = p;
        Ok(())
    }

    fn set_max_access_unit_bytes(&mut self, cap: Option<usize>) {
        self.cap = cap;
    }

    fn stats(&self) -> EncoderStats {
        self.stats
    }

    fn takes_dmabuf(&self) -> bool {
        self.lost.is_none()
    }

    fn encode_dmabuf(
        &mut self,
        frame: &DmabufFrame<'_>,
        out: &mut Vec<u8>,
    ) -> Result<EncodedInfo, EncodeError> {
        // The inherent method (the import, registration cache and encode above).
        NvencEncoder::encode_dmabuf(self, frame, out)
    }
}

impl<N: NvencApi, C: CudaApi> Drop for NvencEncoder<N, C> {
    fn drop(&mut self) {
        if let Some(s) = self.session {
            for i in std::mem::take(&mut self.imports) {
                self.release_import(s, i);
            }
            if let Some(st) = self.staging.take() {
                self.nv.unregister(s, st.registered);
                self.cuda.free(st.ptr);
            }
            if let Some(b) = self.bitstream.take() {
                self.nv.destroy_bitstream(s, b);
            }
            self.nv.destroy(s);
        }
        self.cuda.close_context(self.ctx);
    }
}
