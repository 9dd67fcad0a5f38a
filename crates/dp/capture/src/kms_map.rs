//! The CPU path for a captured dmabuf (no NVENC): map it read-only, bracket the reads with
//! `DMA_BUF_IOCTL_SYNC` (so the exporter flushes caches / finishes pending writes), convert the
//! visible area to I420 into a caller-owned [`Frame`], unmap.
//!
//! Contract:
//! - Only packed 32-bit RGB (`XR24`, `AR24`, `XB24`, `AB24`; alpha ignored) with a linear
//!   layout (modifier 0, or none reported) is converted; anything else is
//!   [`CaptureError::Config`] naming the fourcc/modifier (a tiled or compressed buffer needs
//!   the GPU to detile — the NVENC import path).
//! - `DMA_BUF_IOCTL_SYNC` failing is an error, except `ENOTTY` (the fd is not a dmabuf, e.g. a
//!   memfd: nothing to synchronise).
//! - The buffer's real size (`lseek(SEEK_END)`) must hold `offset + pitch × height` before it is
//!   mapped, so a lying peer cannot make us read past the object.
//! - Conversion: BT.601 limited range (what openh264 and the Moonlight decoders assume), chroma
//!   averaged over each 2×2 block. An odd width/height loses its last column/row (I420 needs
//!   even sizes): [`frame_size`].
#![allow(unsafe_code)]

use std::os::fd::BorrowedFd;

use crate::kms_wire::{FrameMeta, object_len};
use crate::{CaptureError, Frame, PixelFormat};

/// `DRM_FORMAT_MOD_LINEAR`.
pub const MOD_LINEAR: u64 = 0;
/// `DRM_FORMAT_MOD_INVALID`: the framebuffer was created without a modifier (implicitly linear
/// for dumb buffers and every driver the CPU path meets).
pub const MOD_NONE: u64 = 0x00ff_ffff_ffff_ffff;

/// Byte order of one 32-bit pixel in memory: the byte index of R, G and B.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Order {
    r: usize,
    g: usize,
    b: usize,
}

fn fourcc(s: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*s)
}

/// The fourcc as text (`XR24`), for logs.
pub fn fourcc_name(f: u32) -> String {
    f.to_le_bytes()
        .iter()
        .map(|&c| if c.is_ascii_graphic() { c as char } else { '?' })
        .collect()
}

fn order(f: u32) -> Option<Order> {
    // DRM fourccs name the components of a little-endian word from the most significant
    // byte: XRGB8888 is B, G, R, X in memory.
    if f == fourcc(b"XR24") || f == fourcc(b"AR24") {
        Some(Order { r: 2, g: 1, b: 0 })
    } else if f == fourcc(b"XB24") || f == fourcc(b"AB24") {
        Some(Order { r: 0, g: 1, b: 2 })
    } else {
        None
    }
}

/// Whether the CPU path can convert this format/modifier.
pub fn cpu_convertible(meta: &FrameMeta) -> Result<(), CaptureError> {
    if order(meta.fourcc).is_none() {
        return Err(CaptureError::Config(format!(
            "format {} is not a packed 32-bit RGB format the CPU path converts",
            fourcc_name(meta.fourcc)
        )));
    }
    if meta.modifier != MOD_LINEAR && meta.modifier != MOD_NONE {
        return Err(CaptureError::Config(format!(
            "modifier {:#x} is not linear: the CPU cannot read this layout",
            meta.modifier
        )));
    }
    if u64::from(meta.pitch) < u64::from(meta.width) * 4 {
        return Err(CaptureError::Config(format!(
            "pitch {} is narrower than {} pixels of 4 bytes",
            meta.pitch, meta.width
        )));
    }
    Ok(())
}

/// The I420 frame size for a captured area (even, cropped).
pub fn frame_size(meta: &FrameMeta) -> (u32, u32) {
    (meta.width & !1, meta.height & !1)
}

/// `struct dma_buf_sync` flags (linux/dma-buf.h).
const SYNC_READ: u64 = 1;
const SYNC_START: u64 = 0;
const SYNC_END: u64 = 4;
/// `DMA_BUF_IOCTL_SYNC = _IOW('b', 0, struct dma_buf_sync)`.
const DMA_BUF_IOCTL_SYNC: rustix::ioctl::Opcode = rustix::ioctl::opcode::write::<u64>(b'b', 0);

fn dmabuf_sync(fd: BorrowedFd<'_>, flags: u64) -> Result<(), CaptureError> {
    // SAFETY: DMA_BUF_IOCTL_SYNC takes a pointer to `struct dma_buf_sync { __u64 flags; }`,
    // which is exactly the `u64` the Setter passes by pointer; the kernel only reads it.
    unsafe {
        rustix::ioctl::ioctl(
            fd,
            rustix::ioctl::Setter::<DMA_BUF_IOCTL_SYNC, u64>::new(flags),
        )
    }
    .or_else(|e| match e {
        // Not a dmabuf (a memfd standing in for one in tests): no caches to sync.
        rustix::io::Errno::NOTTY => Ok(()),
        e => Err(CaptureError::Io(std::io::Error::other(format!(
            "DMA_BUF_IOCTL_SYNC: {e}"
        )))),
    })
}

/// A read-only shared mapping of a whole dmabuf, unmapped on drop.
struct Mapping {
    ptr: *mut core::ffi::c_void,
    len: usize,
}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize) -> Result<Self, CaptureError> {
        // SAFETY: a fresh mapping chosen by the kernel (null hint) never aliases Rust memory;
        // `len` is the object's own size, so every byte of the mapping is backed by it.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ,
                rustix::mm::MapFlags::SHARED,
                fd,
                0,
            )
        }
        .map_err(|e| CaptureError::Io(std::io::Error::other(format!("mmap dmabuf: {e}"))))?;
        Ok(Self { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` is a live PROT_READ mapping owned by `self` (unmapped only in
        // drop). Another process (the game, the GPU) may write the pages meanwhile; we read
        // them as plain bytes, where a torn value is a wrong pixel, never undefined layout.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned, and no borrow of `bytes()`
        // outlives `self`.
        let _ = unsafe { rustix::mm::munmap(self.ptr, self.len) };
    }
}

/// Maps the dmabuf `fd` described by `meta` and converts its visible area into `frame`
/// (I420, [`frame_size`]). `frame.frame_number`/`pts_us` are left to the caller.
pub fn read_into(
    fd: BorrowedFd<'_>,
    meta: &FrameMeta,
    frame: &mut Frame,
) -> Result<(), CaptureError> {
    cpu_convertible(meta)?;
    let (w, h) = frame_size(meta);
    frame.check(w, h, PixelFormat::I420)?;
    let len = object_len(fd).map_err(|e| CaptureError::Io(std::io::Error::other(e.to_string())))?;
    if len < meta.needed_len() {
        return Err(CaptureError::Config(format!(
            "dmabuf of {len} B cannot hold {}x{} at pitch {} + offset {}",
            meta.width, meta.height, meta.pitch, meta.offset
        )));
    }
    let len =
        usize::try_from(len).map_err(|_| CaptureError::Config(format!("dmabuf of {len} B")))?;
    let map = Mapping::new(fd, len)?;
    dmabuf_sync(fd, SYNC_START | SYNC_READ)?;
    let src = &map.bytes()[meta.offset as usize..];
    let res = convert(src, meta.pitch as usize, meta.fourcc, frame);
    dmabuf_sync(fd, SYNC_END | SYNC_READ)?;
    res
}

/// Converts packed 32-bit RGB rows (`pitch` bytes apart) into the I420 `frame` (its size).
pub fn convert(
    src: &[u8],
    pitch: usize,
    fourcc: u32,
    frame: &mut Frame,
) -> Result<(), CaptureError> {
    let o = order(fourcc).ok_or_else(|| {
        CaptureError::Config(format!("format {} not convertible", fourcc_name(fourcc)))
    })?;
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    if frame.format() != PixelFormat::I420 {
        return Err(CaptureError::Config(
            "the CPU path writes I420 frames".into(),
        ));
    }
    if pitch < w * 4 || src.len() < pitch * (h - 1) + w * 4 {
        return Err(CaptureError::Config(format!(
            "{} B at pitch {pitch} cannot hold {w}x{h}",
            src.len()
        )));
    }
    let (y_plane, chroma) = frame.planes_mut();
    let (u_plane, v_plane) = chroma.split_at_mut(w / 2 * (h / 2));
    let cw = w / 2;
    let luma = |r: i32, g: i32, b: i32| (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8;
    // One pass over each pair of rows (each source byte read once: mappings of VRAM are slow
    // to read): four lumas and the 2×2 block's mean colour for its chroma.
    for cy in 0..h / 2 {
        let top = &src[2 * cy * pitch..2 * cy * pitch + w * 4];
        let bottom = &src[(2 * cy + 1) * pitch..(2 * cy + 1) * pitch + w * 4];
        let (y_top, y_bottom) = y_plane[2 * cy * w..(2 * cy + 2) * w].split_at_mut(w);
        for cx in 0..cw {
            let (mut r, mut g, mut b) = (0i32, 0i32, 0i32);
            for (line, out) in [(top, &mut *y_top), (bottom, &mut *y_bottom)] {
                for (k, px) in line[cx * 8..cx * 8 + 8].chunks_exact(4).enumerate() {
                    let (pr, pg, pb) = (i32::from(px[o.r]), i32::from(px[o.g]), i32::from(px[o.b]));
                    out[2 * cx + k] = luma(pr, pg, pb);
                    r += pr;
                    g += pg;
                    b += pb;
                }
            }
            // Means of the 2×2 block, rounded.
            let (r, g, b) = ((r + 2) >> 2, (g + 2) >> 2, (b + 2) >> 2);
            u_plane[cy * cw + cx] = (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128) as u8;
            v_plane[cy * cw + cx] = (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128) as u8;
        }
    }
    Ok(())
}

/// The inverse (BT.601 limited → packed `XR24`): what a test "game" draws so that a captured
/// and converted picture reads back the same luma (±2). `dst` rows are `pitch` bytes apart.
pub fn i420_to_xrgb(frame: &Frame, dst: &mut [u8], pitch: usize) {
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let (y_plane, u_plane, v_plane) = (frame.y(), frame.u_or_uv(), frame.v());
    for row in 0..h {
        for col in 0..w {
            let c = 298 * (i32::from(y_plane[row * w + col]) - 16);
            let ci = (row / 2) * (w / 2) + col / 2;
            let d = i32::from(u_plane[ci]) - 128;
            let e = i32::from(v_plane[ci]) - 128;
            let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
            let px = &mut dst[row * pitch + col * 4..row * pitch + col * 4 + 4];
            px[0] = clamp(c + 516 * d);
            px[1] = clamp(c - 100 * d - 208 * e);
            px[2] = clamp(c + 409 * e);
            px[3] = 0xff;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{SyntheticConfig, SyntheticSource, read_frame_number};

    fn meta(fourcc: &[u8; 4], modifier: u64) -> FrameMeta {
        FrameMeta {
            width: 640,
            height: 480,
            pitch: 2560,
            fourcc: u32::from_le_bytes(*fourcc),
            modifier,
            ..FrameMeta::default()
        }
    }

    #[test]
    fn formats_and_modifiers_the_cpu_path_takes() {
        assert!(cpu_convertible(&meta(b"XR24", MOD_LINEAR)).is_ok());
        assert!(cpu_convertible(&meta(b"AB24", MOD_NONE)).is_ok());
        let e = cpu_convertible(&meta(b"NV12", 0)).unwrap_err().to_string();
        assert!(e.contains("NV12"), "{e}");
        // An NVIDIA block-linear modifier: only the GPU can read it.
        let e = cpu_convertible(&meta(b"XR24", 0x0300_0000_0060_6014))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not linear"), "{e}");
        let m = FrameMeta {
            pitch: 2556,
            ..meta(b"XR24", 0)
        };
        assert!(cpu_convertible(&m).is_err());
        assert_eq!(
            frame_size(&FrameMeta {
                width: 641,
                height: 479,
                ..m
            }),
            (640, 478)
        );
    }

    #[test]
    fn primaries_convert_to_bt601_limited() {
        let mut f = Frame::new(2, 2, PixelFormat::I420).unwrap();
        // XR24 little-endian: B, G, R, X.
        for (bgr, yuv) in [
            ([0, 0, 0], (16, 128, 128)),
            ([255, 255, 255], (235, 128, 128)),
            ([0, 0, 255], (82, 90, 240)),
            ([0, 255, 0], (144, 54, 34)),
            ([255, 0, 0], (41, 240, 110)),
        ] {
            let px = [bgr[0], bgr[1], bgr[2], 0];
            let src: Vec<u8> = px.iter().copied().cycle().take(16).collect();
            convert(&src, 8, u32::from_le_bytes(*b"XR24"), &mut f).unwrap();
            assert_eq!((f.y()[0], f.u_or_uv()[0], f.v()[0]), yuv, "{bgr:?}");
            // XB24 swaps R and B in memory.
            let swapped: Vec<u8> = [bgr[2], bgr[1], bgr[0], 0]
                .iter()
                .copied()
                .cycle()
                .take(16)
                .collect();
            convert(&swapped, 8, u32::from_le_bytes(*b"XB24"), &mut f).unwrap();
            assert_eq!((f.y()[0], f.u_or_uv()[0], f.v()[0]), yuv, "XB24 {bgr:?}");
        }
    }

    #[test]
    fn a_drawn_synthetic_picture_survives_rgb_and_back_with_padding() {
        let (w, h) = (640u32, 480u32);
        let src = SyntheticSource::new(SyntheticConfig {
            width: w,
            height: h,
            fps: 30,
            format: PixelFormat::I420,
            first_frame_number: 0,
        })
        .unwrap();
        let mut drawn = Frame::new(w, h, PixelFormat::I420).unwrap();
        let mut back = Frame::new(w, h, PixelFormat::I420).unwrap();
        let pitch = 2560 + 64; // a padded pitch, as drivers align rows
        let mut rgb = vec![0u8; pitch * h as usize];
        for n in [0u32, 1, 0xdead_beef, u32::MAX] {
            src.draw(n, &mut drawn).unwrap();
            i420_to_xrgb(&drawn, &mut rgb, pitch);
            convert(&rgb, pitch, u32::from_le_bytes(*b"XR24"), &mut back).unwrap();
            assert_eq!(read_frame_number(back.y(), w, h), Some(n));
            // The grey number band round-trips within rounding; below it, colours outside
            // the RGB gamut clip (the bouncing square), so only the mean error is bounded.
            let band = (src.layout().band_height() * w) as usize;
            let diff = |a: &[u8], b: &[u8]| {
                a.iter()
                    .zip(b)
                    .map(|(x, y)| u64::from(x.abs_diff(*y)))
                    .collect::<Vec<_>>()
            };
            let d = diff(&drawn.y()[..band], &back.y()[..band]);
            assert!(
                d.iter().all(|&e| e <= 2),
                "band luma off by {:?}",
                d.iter().max()
            );
            let d = diff(drawn.y(), back.y());
            let mean = d.iter().sum::<u64>() as f64 / d.len() as f64;
            assert!(mean < 3.0, "mean luma error {mean}");
        }
        assert!(
            convert(
                &rgb[..pitch * 100],
                pitch,
                u32::from_le_bytes(*b"XR24"),
                &mut back
            )
            .is_err()
        );
    }
}
