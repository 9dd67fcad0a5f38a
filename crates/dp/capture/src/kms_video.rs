//! KMS capture as a [`VideoSource`] for the data plane's encode tile: the session's size and
//! frame rate are fixed (the client asked for them); the display's mode is whatever the box
//! shows.
//!
//! Contract:
//! - Each [`VideoSource::next_frame`] takes the newest captured picture without waiting
//!   ([`KmsSource::next`] with a zero wait: the helper paces capture by the display; the encode
//!   tile's clock decides when a frame is encoded, so a picture waits at most one frame
//!   interval). Nothing new since the last call → the last picture again (a static desktop
//!   still streams). Before the first capture the frame is dark grey, never black (Moonlight's
//!   start-up gate waits for non-black pixels).
//! - The session's mode: with the first picture, a helper that sets modes
//!   ([`KmsSource::helper_sets_modes`]) is asked for the stream's W×H at its frame rate
//!   ([`crate::kms_mode`]; the helper sets it when strahl owns the display, and puts the old
//!   one back when this source is dropped: the socket closes). One `kms display:` line says
//!   what came of it — set, held by another DRM master, not offered, failed, or a helper that
//!   sets no modes — and, when the display stays at another size, that the encoder scales.
//!   While the answer is awaited (bounded: [`REPLY_WAIT_SECONDS`] of frames) pictures keep
//!   streaming, scaled, and the per-size line below waits for it.
//! - The display's size differs from the stream's → nearest-neighbour scaling in software,
//!   and one log line per display size says which happened (`no scaling` / `scaling`), so a mode
//!   change on the connector is followed without a restart and the encoder keeps its size.
//! - Frame numbers count frames produced (dense), `pts_us` = number × 10^6 / fps.
//! - Zero-copy (an encoder that imports dmabufs, NVENC): [`KmsVideoSource::next_dmabuf`] takes
//!   the newest picture the same way but only holds its dmabuf ([`KmsSource::next_dmabuf`]:
//!   nothing is mapped); [`KmsVideoSource::cpu_frame`] is the CPU path for the frame just
//!   stamped (before the first capture, a display size other than the stream's, or an import
//!   the GPU refused). The same numbering serves both, so a frame keeps its number whichever
//!   path encodes it.

use std::os::fd::BorrowedFd;
use std::path::Path;
use std::time::Duration;

use crate::kms_map::frame_size;
use crate::kms_source::{KmsSource, Next};
use crate::kms_wire::{DisplayMode, FrameMeta, ModeReply, ModeRequest};
use crate::{CaptureError, Frame, PixelFormat, VideoSource};

/// Where the capture helper listens on the appliance.
pub const DEFAULT_SOCKET: &str = "/run/strahl/kms.sock";
/// Luma/chroma of the frame shown before the first capture.
const WAITING_LUMA: u8 = 40;
/// How long (in the session's frames: this many seconds' worth) a mode request may go
/// unanswered before the session stops waiting for it; a modeset under emulation takes a few
/// hundred milliseconds.
pub const REPLY_WAIT_SECONDS: u64 = 20;

/// Where the session's display mode stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisplayState {
    /// No picture from the helper yet (nothing asked).
    Waiting,
    /// Asked at frame `at`; no answer yet.
    Asked { at: u64 },
    /// The helper's answer (or `Failed` when none came in time).
    Answered(ModeReply),
    /// The helper does not set modes (it predates the request).
    NotSupported,
}

/// A per-size scaling line held back while the mode request is unanswered.
type Deferred = (u32, u32, &'static str, &'static str);

/// The data plane's KMS source at the session's geometry.
pub struct KmsVideoSource {
    src: KmsSource,
    width: u32,
    height: u32,
    fps: u32,
    produced: u64,
    /// The display size the last scaling decision was logged for.
    logged: Option<(u32, u32)>,
    display: DisplayState,
    deferred: Option<Deferred>,
}

impl KmsVideoSource {
    /// Connects to the helper at `socket`; frames will be `width` × `height` (even) I420.
    pub fn connect(socket: &Path, width: u32, height: u32, fps: u32) -> Result<Self, CaptureError> {
        Self::new(KmsSource::connect(socket)?, width, height, fps)
    }

    /// Wraps an already connected [`KmsSource`].
    pub fn new(src: KmsSource, width: u32, height: u32, fps: u32) -> Result<Self, CaptureError> {
        if fps == 0 || width == 0 || height == 0 || width % 2 == 1 || height % 2 == 1 {
            return Err(CaptureError::Config(format!(
                "{width}x{height}@{fps}: sizes must be even and non-zero, fps > 0"
            )));
        }
        Ok(Self {
            src,
            width,
            height,
            fps,
            produced: 0,
            logged: None,
            display: DisplayState::Waiting,
            deferred: None,
        })
    }

    /// Where the session's display mode stands (module header).
    pub fn display_state(&self) -> &DisplayState {
        &self.display
    }

    /// After each receive: asks for the mode with the first picture, takes the answer and
    /// says what came of it (module header).
    fn mode_step(&mut self) -> Result<(), CaptureError> {
        let shown = frame_size(self.src.meta());
        if self.display == DisplayState::Waiting {
            if shown.0 == 0 {
                return Ok(());
            }
            if !self.src.helper_sets_modes() {
                log::info!(
                    "kms display: the capture helper sets no modes (it predates the request); {}",
                    self.scaling_words(shown)
                );
                self.display = DisplayState::NotSupported;
                return Ok(());
            }
            self.src.request_mode(&ModeRequest {
                mode: DisplayMode {
                    width: self.width,
                    height: self.height,
                    refresh_mhz: self.fps.saturating_mul(1000),
                },
            })?;
            self.display = DisplayState::Asked { at: self.produced };
        }
        let DisplayState::Asked { at } = self.display else {
            return Ok(());
        };
        let reply = match self.src.take_mode_reply() {
            Some(r) => r,
            None if self.produced - at > REPLY_WAIT_SECONDS * u64::from(self.fps) => {
                ModeReply::Failed(format!(
                    "no answer from the helper in {REPLY_WAIT_SECONDS} s"
                ))
            }
            None => return Ok(()),
        };
        let (w, h) = (self.width, self.height);
        match &reply {
            ModeReply::Applied(m) => {
                log::info!("kms display: set {m} for the session (strahl owns the display)")
            }
            ModeReply::HeldByOther => log::info!(
                "kms display: held by another DRM master; {}",
                self.scaling_words(shown)
            ),
            ModeReply::NotOffered(what) => log::info!(
                "kms display: the connector does not offer {w}x{h} ({what}); {}",
                self.scaling_words(shown)
            ),
            ModeReply::Failed(why) => log::warn!(
                "kms display: no modeset ({why}); {}",
                self.scaling_words(shown)
            ),
        }
        // The per-size line held back: said now, unless a modeset is about to replace that
        // size (the new one is said when it arrives).
        if let Some((dw, dh, same, other)) = self.deferred.take() {
            let replaced =
                matches!(&reply, ModeReply::Applied(m) if (m.width, m.height) != (dw, dh));
            self.display = DisplayState::Answered(reply);
            if !replaced {
                self.note_display(dw, dh, same, other);
            }
        } else {
            self.display = DisplayState::Answered(reply);
        }
        Ok(())
    }

    /// `the encoder scales 1024x768 → 1280x720`, or that no scaling is needed.
    fn scaling_words(&self, (dw, dh): (u32, u32)) -> String {
        if (dw, dh) == (self.width, self.height) {
            format!("the display shows {dw}x{dh}, the stream's size")
        } else {
            format!(
                "the encoder scales {dw}x{dh} → {}x{}",
                self.width, self.height
            )
        }
    }

    /// The display's size when it differs from the stream's (software scaling), else `None`.
    pub fn scaling_from(&self) -> Option<(u32, u32)> {
        let f = self.src.frame()?;
        let d = (f.width(), f.height());
        (d != (self.width, self.height)).then_some(d)
    }

    /// The underlying source (its metadata: cursor, format, dropped count).
    pub fn source(&self) -> &KmsSource {
        &self.src
    }
}

/// The frame [`KmsVideoSource::next_dmabuf`] stamped, and the held picture if any.
pub struct Held<'a> {
    /// The newest picture's metadata and dmabuf (`None` before the first capture).
    pub picture: Option<(&'a FrameMeta, BorrowedFd<'a>)>,
    pub frame_number: u32,
    pub pts_us: u64,
}

impl KmsVideoSource {
    /// Zero-copy: takes the newest picture without mapping it and stamps the next frame
    /// number (see the module header).
    pub fn next_dmabuf(&mut self) -> Result<Held<'_>, CaptureError> {
        let next = self.src.next_dmabuf(Duration::ZERO)?;
        self.mode_step()?;
        if let Next::Resized { width, height } = next {
            // Scaling stays on the CPU (one scaler for both paths; NVENC could scale, not done).
            self.note_display(
                width,
                height,
                "zero-copy",
                "CPU copy scaled in software, not zero-copy",
            );
        }
        let (frame_number, pts_us) = self.stamp();
        Ok(Held {
            picture: self.src.held(),
            frame_number,
            pts_us,
        })
    }

    /// The CPU path for the frame [`KmsVideoSource::next_dmabuf`] just stamped: the held
    /// picture mapped, converted and scaled into `frame` (dark grey before the first capture).
    pub fn cpu_frame(
        &mut self,
        frame: &mut Frame,
        frame_number: u32,
        pts_us: u64,
    ) -> Result<(), CaptureError> {
        frame.check(self.width, self.height, PixelFormat::I420)?;
        self.src.convert_held()?;
        self.fill(frame);
        frame.frame_number = frame_number;
        frame.pts_us = pts_us;
        Ok(())
    }

    /// The next dense frame number and its pts.
    fn stamp(&mut self) -> (u32, u64) {
        let n = self.produced;
        self.produced += 1;
        (n as u32, n * 1_000_000 / u64::from(self.fps))
    }

    /// The newest converted picture, scaled into `frame`; dark grey before the first.
    fn fill(&self, frame: &mut Frame) {
        match self.src.frame() {
            Some(pic) => scale_i420(pic, frame),
            None => {
                let (y, c) = frame.planes_mut();
                y.fill(WAITING_LUMA);
                c.fill(128);
            }
        }
    }

    /// Says once per display size whether it matches the stream's (`same`) or not (`other`).
    fn note_display(&mut self, width: u32, height: u32, same: &'static str, other: &'static str) {
        if matches!(self.display, DisplayState::Asked { .. }) {
            self.deferred = Some((width, height, same, other));
            return;
        }
        if self.logged == Some((width, height)) {
            return;
        }
        self.logged = Some((width, height));
        if (width, height) == (self.width, self.height) {
            log::info!("kms capture: display {width}x{height} = the stream's size, {same}");
        } else {
            log::info!(
                "kms capture: display {width}x{height}, stream {}x{}: {other} (the connector \
                 does not show the client's mode)",
                self.width,
                self.height
            );
        }
    }
}

impl VideoSource for KmsVideoSource {
    fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn format(&self) -> PixelFormat {
        PixelFormat::I420
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<(), CaptureError> {
        frame.check(self.width, self.height, PixelFormat::I420)?;
        let next = self.src.next(Duration::ZERO)?;
        self.mode_step()?;
        if let Next::Resized { width, height } = next {
            self.note_display(width, height, "no scaling", "scaling in software");
        }
        self.fill(frame);
        let (frame_number, pts_us) = self.stamp();
        frame.frame_number = frame_number;
        frame.pts_us = pts_us;
        Ok(())
    }
}

/// Copies `src` into `dst` (both I420), nearest-neighbour scaled when the sizes differ.
pub fn scale_i420(src: &Frame, dst: &mut Frame) {
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let (dw, dh) = (dst.width() as usize, dst.height() as usize);
    let (dy, dc) = dst.planes_mut();
    if (sw, sh) == (dw, dh) {
        dy.copy_from_slice(src.y());
        let (du, dv) = dc.split_at_mut(dw / 2 * (dh / 2));
        du.copy_from_slice(src.u_or_uv());
        dv.copy_from_slice(src.v());
        return;
    }
    scale_plane(src.y(), sw, sh, dy, dw, dh);
    let (du, dv) = dc.split_at_mut(dw / 2 * (dh / 2));
    scale_plane(src.u_or_uv(), sw / 2, sh / 2, du, dw / 2, dh / 2);
    scale_plane(src.v(), sw / 2, sh / 2, dv, dw / 2, dh / 2);
}

fn scale_plane(src: &[u8], sw: usize, sh: usize, dst: &mut [u8], dw: usize, dh: usize) {
    for y in 0..dh {
        // Sample at the centre of each destination pixel.
        let sy = ((2 * y + 1) * sh / (2 * dh)).min(sh - 1);
        let row = &src[sy * sw..(sy + 1) * sw];
        for (x, out) in dst[y * dw..(y + 1) * dw].iter_mut().enumerate() {
            *out = row[((2 * x + 1) * sw / (2 * dw)).min(sw - 1)];
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::kms_map::i420_to_xrgb;
    use crate::kms_wire::{FrameMeta, pair, send_frame};
    use crate::synthetic::{SyntheticConfig, SyntheticSource, read_frame_number};

    /// A memfd holding synthetic picture `n` as XR24 (stands in for the helper's dmabuf).
    fn picture(w: u32, h: u32, n: u32) -> (std::os::fd::OwnedFd, FrameMeta) {
        let src = SyntheticSource::new(SyntheticConfig {
            width: w,
            height: h,
            fps: 30,
            format: PixelFormat::I420,
            first_frame_number: 0,
        })
        .unwrap();
        let mut f = Frame::new(w, h, PixelFormat::I420).unwrap();
        src.draw(n, &mut f).unwrap();
        let pitch = w as usize * 4;
        let mut rgb = vec![0u8; pitch * h as usize];
        i420_to_xrgb(&f, &mut rgb, pitch);
        let fd =
            rustix::fs::memfd_create("kms-video-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::io::write(&fd, &rgb).unwrap();
        let meta = FrameMeta {
            width: w,
            height: h,
            pitch: pitch as u32,
            fourcc: u32::from_le_bytes(*b"XR24"),
            ..FrameMeta::default()
        };
        (fd, meta)
    }

    #[test]
    fn newest_picture_repeated_scaled_and_followed_across_a_mode_change() {
        let (helper, dp) = pair().unwrap();
        // The stream is 1280x960; the display starts at 640x480 (×2: the band stays readable).
        let mut v = KmsVideoSource::new(KmsSource::from_socket(dp), 1280, 960, 60).unwrap();
        let mut out = Frame::new(1280, 960, PixelFormat::I420).unwrap();
        v.next_frame(&mut out).unwrap();
        // Before the first capture: dark grey, not black.
        assert!(out.y().iter().all(|&p| p == WAITING_LUMA));
        for n in [5u32, 6] {
            let (fd, meta) = picture(640, 480, n);
            send_frame(helper.as_fd(), &meta, fd.as_fd(), None).unwrap();
        }
        v.next_frame(&mut out).unwrap();
        // Two queued: only the newest is converted.
        assert_eq!(read_frame_number(out.y(), 1280, 960), Some(6));
        assert_eq!(
            (v.source().dropped(), v.scaling_from()),
            (1, Some((640, 480)))
        );
        v.next_frame(&mut out).unwrap();
        assert_eq!(read_frame_number(out.y(), 1280, 960), Some(6), "repeated");
        assert_eq!((out.frame_number, out.pts_us), (2, 2 * 1_000_000 / 60));
        // The connector switches to the stream's own size: no scaling, no restart.
        let (fd, meta) = picture(1280, 960, 7);
        send_frame(helper.as_fd(), &meta, fd.as_fd(), None).unwrap();
        v.next_frame(&mut out).unwrap();
        assert_eq!(read_frame_number(out.y(), 1280, 960), Some(7));
        assert_eq!(v.scaling_from(), None);
        assert!(KmsVideoSource::new(KmsSource::from_socket(helper), 641, 480, 60).is_err());
    }

    #[test]
    fn zero_copy_holds_the_newest_dmabuf_unmapped_and_converts_it_only_when_asked() {
        use std::os::unix::fs::MetadataExt;
        let ino = |fd: BorrowedFd<'_>| {
            std::fs::File::from(fd.try_clone_to_owned().unwrap())
                .metadata()
                .unwrap()
                .ino()
        };
        let (helper, dp) = pair().unwrap();
        let mut v = KmsVideoSource::new(KmsSource::from_socket(dp), 640, 480, 60).unwrap();
        // Before the first capture: nothing held, the CPU path gives dark grey.
        let held = v.next_dmabuf().unwrap();
        assert!(held.picture.is_none());
        let (n, pts) = (held.frame_number, held.pts_us);
        let mut out = Frame::new(640, 480, PixelFormat::I420).unwrap();
        v.cpu_frame(&mut out, n, pts).unwrap();
        assert!(out.y().iter().all(|&p| p == WAITING_LUMA));
        let tiled = 0x0300_0000_0060_6014;
        let (a, mut meta_a) = picture(640, 480, 5);
        meta_a.modifier = tiled;
        let (b, meta_b) = picture(640, 480, 6);
        send_frame(helper.as_fd(), &meta_a, a.as_fd(), None).unwrap();
        send_frame(helper.as_fd(), &meta_b, b.as_fd(), None).unwrap();
        // Two queued: the newest is held, as sent (format, modifier, pitch, the same file).
        let held = v.next_dmabuf().unwrap();
        let (meta, fd) = held.picture.unwrap();
        assert_eq!(*meta, meta_b);
        assert_eq!(ino(fd), ino(b.as_fd()));
        assert_eq!((held.frame_number, held.pts_us), (1, 1_000_000 / 60));
        assert_eq!(v.source().dropped(), 1);
        // Nothing was mapped or converted on the way.
        assert!(v.source().frame().is_none());
        // A tiled picture is held as is (only the GPU reads it); the CPU path refuses it.
        send_frame(helper.as_fd(), &meta_a, a.as_fd(), None).unwrap();
        let held = v.next_dmabuf().unwrap();
        assert_eq!(held.picture.unwrap().0.modifier, tiled);
        let n = held.frame_number;
        let e = v.cpu_frame(&mut out, n, 0).unwrap_err().to_string();
        assert!(e.contains("not linear"), "{e}");
        // A linear one converts when asked, with the stamped number; repeats keep it held.
        send_frame(helper.as_fd(), &meta_b, b.as_fd(), None).unwrap();
        let held = v.next_dmabuf().unwrap();
        let n = held.frame_number;
        v.cpu_frame(&mut out, n, 7).unwrap();
        assert_eq!(read_frame_number(out.y(), 640, 480), Some(6));
        assert_eq!((out.frame_number, out.pts_us), (3, 7));
        let again = v.next_dmabuf().unwrap();
        assert_eq!(again.frame_number, 4);
        assert_eq!(ino(again.picture.unwrap().1), ino(b.as_fd()));
    }

    fn flagged(w: u32, h: u32, n: u32) -> (std::os::fd::OwnedFd, FrameMeta) {
        let (fd, mut meta) = picture(w, h, n);
        meta.flags |= crate::kms_wire::FLAG_MODES;
        (fd, meta)
    }

    fn want_800x600() -> ModeRequest {
        ModeRequest {
            mode: DisplayMode {
                width: 800,
                height: 600,
                refresh_mhz: 60_000,
            },
        }
    }

    #[test]
    fn the_mode_is_asked_once_with_the_first_picture_and_a_modeset_followed() {
        use crate::kms_wire::{PeerInput, poll_peer, send_reply};
        let (helper, dp) = pair().unwrap();
        let mut v = KmsVideoSource::new(KmsSource::from_socket(dp), 800, 600, 60).unwrap();
        let mut out = Frame::new(800, 600, PixelFormat::I420).unwrap();
        // Nothing asked before a picture says the helper sets modes.
        v.next_frame(&mut out).unwrap();
        assert_eq!(*v.display_state(), DisplayState::Waiting);
        assert_eq!(poll_peer(helper.as_fd()), PeerInput::Nothing);
        let (fd, meta) = flagged(640, 480, 3);
        send_frame(helper.as_fd(), &meta, fd.as_fd(), None).unwrap();
        v.next_frame(&mut out).unwrap();
        assert_eq!(*v.display_state(), DisplayState::Asked { at: 1 });
        assert_eq!(
            poll_peer(helper.as_fd()),
            PeerInput::Request(want_800x600())
        );
        // Meanwhile the old size streams, scaled.
        assert_eq!(v.scaling_from(), Some((640, 480)));
        let applied = ModeReply::Applied(want_800x600().mode);
        send_reply(helper.as_fd(), &applied).unwrap();
        let (fd, meta) = flagged(800, 600, 4);
        send_frame(helper.as_fd(), &meta, fd.as_fd(), None).unwrap();
        v.next_frame(&mut out).unwrap();
        assert_eq!(*v.display_state(), DisplayState::Answered(applied));
        assert_eq!(
            v.scaling_from(),
            None,
            "the display has the stream's size now"
        );
        assert_eq!(read_frame_number(out.y(), 800, 600), Some(4));
        // Asked once per session.
        let (fd, meta) = flagged(800, 600, 5);
        send_frame(helper.as_fd(), &meta, fd.as_fd(), None).unwrap();
        v.next_frame(&mut out).unwrap();
        assert_eq!(poll_peer(helper.as_fd()), PeerInput::Nothing);
        drop(v);
        assert_eq!(
            poll_peer(helper.as_fd()),
            PeerInput::Gone,
            "session end: the helper sees it"
        );
    }

    #[test]
    fn held_not_offered_and_an_older_helper_leave_the_scaling_in_place() {
        use crate::kms_wire::{PeerInput, poll_peer, send_reply};
        for reply in [
            ModeReply::HeldByOther,
            ModeReply::NotOffered("no 800x600; offers 640x480@60".into()),
        ] {
            let (helper, dp) = pair().unwrap();
            let mut v = KmsVideoSource::new(KmsSource::from_socket(dp), 800, 600, 60).unwrap();
            let mut out = Frame::new(800, 600, PixelFormat::I420).unwrap();
            let (fd, meta) = flagged(640, 480, 3);
            send_frame(helper.as_fd(), &meta, fd.as_fd(), None).unwrap();
            v.next_frame(&mut out).unwrap();
            assert!(matches!(poll_peer(helper.as_fd()), PeerInput::Request(_)));
            send_reply(helper.as_fd(), &reply).unwrap();
            v.next_frame(&mut out).unwrap();
            assert_eq!(*v.display_state(), DisplayState::Answered(reply));
            assert_eq!(v.scaling_from(), Some((640, 480)));
        }
        // A helper whose frames lack FLAG_MODES is never written to.
        let (helper, dp) = pair().unwrap();
        let mut v = KmsVideoSource::new(KmsSource::from_socket(dp), 800, 600, 60).unwrap();
        let mut out = Frame::new(800, 600, PixelFormat::I420).unwrap();
        let (fd, meta) = picture(640, 480, 3);
        send_frame(helper.as_fd(), &meta, fd.as_fd(), None).unwrap();
        v.next_frame(&mut out).unwrap();
        assert_eq!(*v.display_state(), DisplayState::NotSupported);
        assert_eq!(poll_peer(helper.as_fd()), PeerInput::Nothing);
    }

    #[test]
    fn an_unanswered_request_is_given_up_after_its_bound_in_frames() {
        let (helper, dp) = pair().unwrap();
        let fps = 2;
        let mut v = KmsVideoSource::new(KmsSource::from_socket(dp), 800, 600, fps).unwrap();
        let (fd, meta) = flagged(640, 480, 3);
        send_frame(helper.as_fd(), &meta, fd.as_fd(), None).unwrap();
        let held = v.next_dmabuf().unwrap();
        assert_eq!(held.frame_number, 0);
        let bound = REPLY_WAIT_SECONDS * u64::from(fps);
        for _ in 0..bound {
            v.next_dmabuf().unwrap();
            assert_eq!(*v.display_state(), DisplayState::Asked { at: 0 });
        }
        v.next_dmabuf().unwrap();
        assert!(
            matches!(v.display_state(), DisplayState::Answered(ModeReply::Failed(w)) if w.contains("no answer")),
            "{:?}",
            v.display_state()
        );
    }

    #[test]
    fn scaling_maps_corners_and_keeps_flat_areas() {
        let mut a = Frame::new(4, 2, PixelFormat::I420).unwrap();
        let (y, c) = a.planes_mut();
        y.copy_from_slice(&[10, 20, 30, 40, 50, 60, 70, 80]);
        c.copy_from_slice(&[1, 2, 3, 4]);
        let mut b = Frame::new(8, 4, PixelFormat::I420).unwrap();
        scale_i420(&a, &mut b);
        assert_eq!(&b.y()[..8], &[10, 10, 20, 20, 30, 30, 40, 40]);
        assert_eq!(&b.y()[24..], &[50, 50, 60, 60, 70, 70, 80, 80]);
        assert_eq!(
            (b.u_or_uv(), b.v()),
            (&[1, 1, 2, 2, 1, 1, 2, 2][..], &[3, 3, 4, 4, 3, 3, 4, 4][..])
        );
        let mut c2 = Frame::new(4, 2, PixelFormat::I420).unwrap();
        scale_i420(&b, &mut c2);
        assert_eq!(c2.as_bytes(), a.as_bytes());
    }
}
