//! From the KMS capture link to the NVENC input: a frame received from `strahl-kms-helper`
//! ([`strahl_capture::kms_wire::Received`]) described as a [`DmabufFrame`].
//!
//! The helper exports the scan-out buffer again on every flip, so each message carries a new
//! fd; the import cache must key on the buffer, not the fd. A dma-buf exported twice from the
//! same GEM object is the same file, so the file's inode identifies the buffer: it becomes the
//! frame's `buffer_id` (the framebuffer id is not used — a compositor may destroy a framebuffer
//! and get its id back for another buffer, which would hand NVENC stale pixels).

use std::os::fd::BorrowedFd;
use std::os::unix::fs::MetadataExt;

use strahl_capture::kms_wire::FrameMeta;

use super::api::fourcc;
use super::session::DmabufFrame;
use crate::EncodeError;

/// "No modifier reported": the helper sends `DRM_FORMAT_MOD_INVALID` when GETFB2 gives none
/// (a framebuffer created without modifiers: implicitly linear on every driver that does so,
/// as the CPU path assumes too); `u64::MAX` is accepted as well. Every other modifier is
/// passed through unchanged, for CUDA to accept or refuse.
fn none_reported(modifier: u64) -> bool {
    modifier == strahl_capture::kms_map::MOD_NONE || modifier == u64::MAX
}

impl<'a> DmabufFrame<'a> {
    /// Describes a frame received over the capture link (`fd` is its dma-buf).
    pub fn from_kms(
        meta: &FrameMeta,
        fd: BorrowedFd<'a>,
        frame_number: u32,
        pts_us: u64,
    ) -> Result<Self, EncodeError> {
        let file = std::fs::File::from(
            fd.try_clone_to_owned()
                .map_err(|e| EncodeError::Config(format!("capture fd: {e}")))?,
        );
        let stat = file
            .metadata()
            .map_err(|e| EncodeError::Config(format!("capture fd: {e}")))?;
        let modifier = if none_reported(meta.modifier) {
            fourcc::MOD_LINEAR
        } else {
            meta.modifier
        };
        Ok(Self {
            fd,
            buffer_id: stat.ino(),
            size: stat.size(),
            width: meta.width,
            height: meta.height,
            fourcc: meta.fourcc,
            modifier,
            offset: meta.offset,
            pitch: meta.pitch,
            // The helper sends single-plane (packed RGB) scan-out buffers.
            chroma_offset: None,
            frame_number,
            pts_us,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsFd;

    use super::*;
    use crate::nvenc::fake::FakeGpu;
    use crate::nvenc::session::{NvencConfig, NvencEncoder};

    fn meta(modifier: u64) -> FrameMeta {
        FrameMeta {
            fb_id: 42,
            width: 320,
            height: 240,
            fourcc: fourcc::XRGB8888,
            modifier,
            pitch: 1280,
            offset: 0,
            ..FrameMeta::default()
        }
    }

    fn buffer() -> std::fs::File {
        let mut f = tempfile_in_tmp();
        f.write_all(&vec![0u8; 1280 * 240]).unwrap();
        f
    }

    fn tempfile_in_tmp() -> std::fs::File {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("strahl-nvenc-kms-{}-{n}", std::process::id()));
        let f = std::fs::OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    #[test]
    fn a_received_frame_becomes_a_dmabuf_frame_keyed_by_its_buffer() {
        let a = buffer();
        let f = DmabufFrame::from_kms(&meta(u64::MAX), a.as_fd(), 7, 700).unwrap();
        assert_eq!(f.modifier, fourcc::MOD_LINEAR, "none reported = linear");
        // What the real helper sends for "none" (kms_grab: DRM_FORMAT_MOD_INVALID).
        let none = strahl_capture::kms_map::MOD_NONE;
        let f2 = DmabufFrame::from_kms(&meta(none), a.as_fd(), 7, 700).unwrap();
        assert_eq!(f2.modifier, fourcc::MOD_LINEAR, "MOD_INVALID = linear");
        assert_eq!(
            (f.size, f.pitch, f.fourcc, f.width),
            (1280 * 240, 1280, fourcc::XRGB8888, 320)
        );
        assert_eq!((f.frame_number, f.pts_us, f.chroma_offset), (7, 700, None));
        let tiled = 0x0300_0000_0060_6014;
        assert_eq!(
            DmabufFrame::from_kms(&meta(tiled), a.as_fd(), 7, 0)
                .unwrap()
                .modifier,
            tiled
        );

        // A second export of the same buffer (same file, new fd) is the same buffer; another
        // buffer with the same framebuffer id is not.
        let again = a.try_clone().unwrap();
        let g = DmabufFrame::from_kms(&meta(0), again.as_fd(), 8, 0).unwrap();
        assert_eq!(g.buffer_id, f.buffer_id);
        let b = buffer();
        let h = DmabufFrame::from_kms(&meta(0), b.as_fd(), 9, 0).unwrap();
        assert_ne!(h.buffer_id, f.buffer_id);

        // Through the encoder: one import for the two exports of `a`, a new one for `b`.
        let gpu = FakeGpu::default();
        let mut enc = NvencEncoder::open(
            gpu.nvenc(),
            gpu.cuda(),
            NvencConfig::h264(320, 240, 60, 1_000_000),
        )
        .unwrap();
        let mut out = Vec::new();
        for frame in [&f, &g, &h] {
            enc.encode_dmabuf(frame, &mut out).unwrap();
        }
        assert_eq!(gpu.names().iter().filter(|n| **n == "import").count(), 2);
        drop(enc);
        assert_eq!(gpu.live(), Vec::<String>::new());
        assert_eq!(gpu.violations(), Vec::<String>::new());
    }
}
