//! The privileged half of KMS capture: runs in the capture helper (`strahl-kms-helper`), the
//! only strahl process that may hold CAP_SYS_ADMIN (or be DRM master).
//!
//! Per display refresh it reads which framebuffer the CRTC's primary plane scans out; when
//! that changed (a page flip) — or the cursor plane moved or changed — it asks GETFB2 for the
//! buffer's handle, format, modifier, pitch and offset, exports the buffer as a dmabuf
//! (PRIME, read-only) and closes the GEM handle again. The fd and a [`FrameMeta`] go to the
//! data plane over [`crate::kms_wire`].
//!
//! Contract:
//! - CRTC: the one driving the connector the config names (`HDMI-A-1`, `Virtual-1`, …), else
//!   the first CRTC with an active mode and a framebuffer. Re-read every tick, so a mode change
//!   (new size, new refresh) is followed without a restart: the next frame simply carries the
//!   new geometry.
//! - Pacing: `DRM_IOCTL_WAIT_VBLANK` on that CRTC. Drivers without vblank interrupts
//!   (virtio-gpu and bochs on kernels before the vblank timer) refuse it: then one log line and
//!   a clock at the mode's own refresh (from its pixel clock and totals), re-derived at each mode
//!   change. A refusal after vblank worked (the CRTC off during a modeset) waits one refresh.
//! - Privilege: without DRM master or CAP_SYS_ADMIN the kernel answers GETFB2 with no handle;
//!   that is [`CaptureError::NotAvailable`] naming what is missing (`doctor` repeats it).
//! - Cursor: the cursor plane on the CRTC (found with universal planes + atomic +
//!   cursor-hotspot client caps, so virtualised drivers expose it) goes as metadata (position,
//!   size) and its image as a second dmabuf; the consumer composites or forwards it.
//! - Bounded: [`serve`] stops at its frame/time limits or a stop flag, and when the peer leaves
//!   (checked every tick, so a static screen does not hide it). Each new peer first gets the
//!   picture on screen now.
//! - The peer's one input: fixed-size mode requests ([`crate::kms_mode`]), read each tick,
//!   answered between frames; every frame says the helper answers them ([`FLAG_MODES`]). The
//!   modeset and its restore when the run ends are [`crate::kms_modeset`]'s.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use drm::control::{Device as ControlDevice, crtc, framebuffer, plane, property};
use drm::{ClientCapability, Device as _, VblankWaitFlags, VblankWaitTarget};

use crate::CaptureError;
use crate::kms::Card;
use crate::kms_map::MOD_NONE;
use crate::kms_wire::{
    FLAG_CURSOR_ONLY, FLAG_CURSOR_VISIBLE, FLAG_MODES, FrameMeta, ModeReply, PeerInput, WireError,
    poll_peer, send_frame, send_reply,
};

/// Refresh assumed when a mode reports none.
const FALLBACK_REFRESH_MHZ: u32 = 60_000;

/// One plane of the CRTC and the property handles read each tick.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PlaneRef {
    pub(crate) handle: plane::Handle,
    crtc_x: Option<property::Handle>,
    crtc_y: Option<property::Handle>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pacing {
    Vblank { ok_once: bool },
    Refresh,
}

/// What the last message carried, to send only changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Shown {
    fb: u32,
    mode: (u32, u32),
    cursor: Option<(u32, i32, i32)>,
}

/// One exported framebuffer.
#[derive(Debug)]
pub struct Grab {
    pub meta: FrameMeta,
    pub frame: OwnedFd,
    pub cursor: Option<OwnedFd>,
}

/// An open card with its CRTC found.
pub struct KmsGrabber {
    pub(crate) card: Card,
    device: PathBuf,
    driver: String,
    pub(crate) crtc: crtc::Handle,
    /// The CRTC's index (vblank "pipe").
    pipe: u32,
    pub(crate) primary: Option<PlaneRef>,
    /// The driver took the atomic client capability (modesets are atomic commits).
    pub(crate) atomic: bool,
    /// What the peer's session mode replaced ([`crate::kms_modeset`]).
    pub(crate) session: Option<crate::kms_modeset::Saved>,
    cursor: Option<PlaneRef>,
    pacing: Pacing,
    next_tick: Instant,
    refresh_mhz: u32,
    shown: Option<Shown>,
    seq: u64,
}

impl KmsGrabber {
    /// Opens `device` and finds the CRTC (of `connector` when named).
    pub fn open(device: &Path, connector: Option<&str>) -> Result<Self, CaptureError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(device)
            .map_err(|e| CaptureError::NotAvailable(format!("{}: {e}", device.display())))?;
        let card = Card(file);
        let driver = card
            .get_driver()
            .map_err(|e| {
                CaptureError::NotAvailable(format!("{}: not a DRM device ({e})", device.display()))
            })?
            .name()
            .to_string_lossy()
            .into_owned();
        // Universal planes to see primary and cursor planes; atomic + hotspot so that
        // virtualised drivers (virtio-gpu, vmwgfx, qxl) do not hide the cursor plane. Each is
        // optional: without them the CRTC's own framebuffer is read and no cursor is reported.
        let _ = card.set_client_capability(ClientCapability::UniversalPlanes, true);
        let atomic = card
            .set_client_capability(ClientCapability::Atomic, true)
            .is_ok();
        let _ = card.set_client_capability(ClientCapability::CursorPlaneHotspot, true);
        let res = card
            .resource_handles()
            .map_err(|e| CaptureError::NotAvailable(format!("{driver}: no KMS resources ({e})")))?;
        let crtc = match connector {
            Some(name) => crtc_of_connector(&card, &res, name)
                .map_err(|why| CaptureError::NotAvailable(format!("{driver}: {why}")))?,
            None => res
                .crtcs()
                .iter()
                .copied()
                .find(|&c| {
                    card.get_crtc(c)
                        .is_ok_and(|i| i.mode().is_some() && i.framebuffer().is_some())
                })
                .ok_or_else(|| {
                    CaptureError::NotAvailable(format!(
                        "{driver}: none of {} CRTCs is scanning out a framebuffer",
                        res.crtcs().len()
                    ))
                })?,
        };
        let pipe = res.crtcs().iter().position(|&c| c == crtc).unwrap_or(0) as u32;
        let (primary, cursor) = planes_of(&card, crtc);
        crate::kms_modeset::drop_implicit_master(&card);
        Ok(Self {
            card,
            device: device.to_path_buf(),
            driver,
            crtc,
            pipe,
            primary,
            atomic,
            session: None,
            cursor,
            pacing: Pacing::Vblank { ok_once: false },
            next_tick: Instant::now(),
            refresh_mhz: FALLBACK_REFRESH_MHZ,
            shown: None,
            seq: 0,
        })
    }

    /// `driver card0 crtc N (primary plane P, cursor plane C)`, for the start-up line.
    pub fn describe(&self) -> String {
        format!(
            "{} {} crtc {} (primary plane {}, cursor plane {}, paced by {})",
            self.driver,
            self.device.display(),
            u32::from(self.crtc),
            self.primary
                .map_or("-".into(), |p| u32::from(p.handle).to_string()),
            self.cursor
                .map_or("-".into(), |p| u32::from(p.handle).to_string()),
            match self.pacing {
                Pacing::Vblank { .. } => "vblank",
                Pacing::Refresh => "the mode's refresh clock",
            }
        )
    }

    pub fn driver(&self) -> &str {
        &self.driver
    }

    /// True while pacing falls back to the refresh clock (no vblank interrupts).
    pub fn paced_by_clock(&self) -> bool {
        self.pacing == Pacing::Refresh
    }

    /// Waits for the next vblank of the CRTC (or the next refresh tick, see the header).
    pub fn wait(&mut self) -> Result<(), CaptureError> {
        if let Pacing::Vblank { ok_once } = self.pacing {
            match self.card.wait_vblank(
                VblankWaitTarget::Relative(1),
                VblankWaitFlags::empty(),
                self.pipe,
                0,
            ) {
                Ok(_) => {
                    self.pacing = Pacing::Vblank { ok_once: true };
                    return Ok(());
                }
                Err(e) if !ok_once => {
                    log::info!(
                        "kms capture: {} gives no vblank events ({e}): pacing by the mode's \
                         refresh ({:.3} Hz)",
                        self.driver,
                        f64::from(self.refresh_mhz) / 1000.0
                    );
                    self.pacing = Pacing::Refresh;
                    self.next_tick = Instant::now();
                }
                // Vblank worked before: the CRTC is off for a moment (modeset). One refresh.
                Err(_) => {}
            }
        }
        let period = Duration::from_nanos(1_000_000_000_000 / u64::from(self.refresh_mhz.max(1)));
        self.next_tick += period;
        let now = Instant::now();
        if self.next_tick > now {
            std::thread::sleep(self.next_tick - now);
        } else if now - self.next_tick > period {
            // Far behind (the consumer blocked us): resynchronise instead of bursting.
            self.next_tick = now;
        }
        Ok(())
    }

    /// Exports the scan-out buffer if it changed since the last grab; `Ok(None)` when nothing
    /// changed or the CRTC shows nothing right now (off, mid-modeset).
    pub fn grab(&mut self) -> Result<Option<Grab>, CaptureError> {
        let info = self
            .card
            .get_crtc(self.crtc)
            .map_err(|e| CaptureError::Io(std::io::Error::other(format!("GETCRTC: {e}"))))?;
        let Some(mode) = info.mode() else {
            return Ok(None);
        };
        let fb = match self.primary {
            Some(p) => self
                .card
                .get_plane(p.handle)
                .ok()
                .and_then(|i| i.framebuffer()),
            None => None,
        }
        .or(info.framebuffer());
        let Some(fb) = fb else {
            return Ok(None);
        };
        // The mode (GETCRTC) and the plane's framebuffer (GETPLANE) come from two ioctls: a
        // modeset between them pairs the new buffer with the old mode, and that picture would
        // be reported at the old size and again at the new one (seen in the VM lab at
        // 640x480 -> 800x600). The mode read again: changed means this tick saw a modeset, so
        // it is skipped; the next tick reads a consistent pair.
        let again = self
            .card
            .get_crtc(self.crtc)
            .map_err(|e| CaptureError::Io(std::io::Error::other(format!("GETCRTC: {e}"))))?;
        if again.mode() != Some(mode) {
            return Ok(None);
        }
        let (mw, mh) = (u32::from(mode.size().0), u32::from(mode.size().1));
        let (_, _, htotal) = mode.hsync();
        let (_, _, vtotal) = mode.vsync();
        let denom = u64::from(htotal) * u64::from(vtotal);
        self.refresh_mhz = (u64::from(mode.clock()) * 1_000_000)
            .checked_div(denom)
            .and_then(|r| u32::try_from(r).ok())
            .filter(|&r| r > 0)
            .unwrap_or(FALLBACK_REFRESH_MHZ);
        let cursor = self.cursor_state();
        let shown = Shown {
            fb: u32::from(fb),
            mode: (mw, mh),
            cursor: cursor.map(|(cfb, x, y)| (u32::from(cfb), x, y)),
        };
        if self.shown == Some(shown) {
            return Ok(None);
        }
        let cursor_only = self
            .shown
            .is_some_and(|s| (s.fb, s.mode) == (shown.fb, shown.mode));
        let Some((frame, mut meta)) = self.export(fb)? else {
            return Ok(None);
        };
        // The visible area: the mode's size at the CRTC's position in the buffer.
        let (x, y) = info.position();
        let cpp = 4; // the packed formats the CPU path takes; others carry the plane's offset
        if x < meta.width && y < meta.height {
            meta.offset += y * meta.pitch + x * cpp;
            meta.width = mw.min(meta.width - x);
            meta.height = mh.min(meta.height - y);
        }
        meta.refresh_mhz = self.refresh_mhz;
        if cursor_only {
            meta.flags |= FLAG_CURSOR_ONLY;
        }
        let mut cursor_fd = None;
        if let Some((cfb, cx, cy)) = cursor
            && let Some((fd, cm)) = self.export(cfb)?
        {
            meta.flags |= FLAG_CURSOR_VISIBLE;
            (meta.cursor_x, meta.cursor_y) = (cx, cy);
            (meta.cursor_w, meta.cursor_h) = (cm.width, cm.height);
            cursor_fd = Some(fd);
        }
        self.seq += 1;
        meta.seq = self.seq;
        meta.time_ns = monotonic_ns();
        self.shown = Some(shown);
        Ok(Some(Grab {
            meta,
            frame,
            cursor: cursor_fd,
        }))
    }

    /// The cursor plane's framebuffer and position when it shows something.
    fn cursor_state(&self) -> Option<(framebuffer::Handle, i32, i32)> {
        let c = self.cursor?;
        let fb = self.card.get_plane(c.handle).ok()?.framebuffer()?;
        let props = self.card.get_properties(c.handle).ok()?;
        let value = |h: Option<property::Handle>| -> i32 {
            h.and_then(|h| {
                props
                    .iter()
                    .find(|(p, _)| **p == h)
                    .map(|(_, v)| *v as i64 as i32)
            })
            .unwrap_or(0)
        };
        Some((fb, value(c.crtc_x), value(c.crtc_y)))
    }

    /// GETFB2 + PRIME export of `fb`; `Ok(None)` if the framebuffer vanished meanwhile.
    fn export(
        &self,
        fb: framebuffer::Handle,
    ) -> Result<Option<(OwnedFd, FrameMeta)>, CaptureError> {
        let info = match self.card.get_planar_framebuffer(fb) {
            Ok(i) => i,
            // Removed between GETCRTC and GETFB2 (the game freed it): nothing to show.
            Err(drm::control::GetPlanarFramebufferError::Io(e))
                if e.raw_os_error() == Some(rustix::io::Errno::NOENT.raw_os_error()) =>
            {
                return Ok(None);
            }
            Err(drm::control::GetPlanarFramebufferError::Io(e))
                if matches!(e.kind(), std::io::ErrorKind::PermissionDenied) =>
            {
                return Err(CaptureError::NotAvailable(format!(
                    "GETFB2 on {}: {e}: the capture helper needs CAP_SYS_ADMIN (or to be DRM \
                     master)",
                    self.device.display()
                )));
            }
            Err(e) => {
                return Err(CaptureError::Io(std::io::Error::other(format!(
                    "GETFB2 of framebuffer {}: {e}",
                    u32::from(fb)
                ))));
            }
        };
        let handles = info.buffers();
        let Some(handle) = handles[0] else {
            return Err(CaptureError::NotAvailable(format!(
                "GETFB2 on {} returned no buffer handle: the capture helper needs \
                 CAP_SYS_ADMIN (or to be DRM master)",
                self.device.display()
            )));
        };
        let exported = self.card.buffer_to_prime_fd(handle, drm::CLOEXEC);
        // Close every distinct GEM handle GETFB2 opened for us, whatever the export did.
        let mut closed = Vec::with_capacity(4);
        for h in handles.into_iter().flatten() {
            if !closed.contains(&h) {
                let _ = self.card.close_buffer(h);
                closed.push(h);
            }
        }
        let fd = exported
            .map_err(|e| CaptureError::Io(std::io::Error::other(format!("PRIME export: {e}"))))?;
        let (w, h) = info.size();
        let meta = FrameMeta {
            fb_id: u32::from(fb),
            width: w,
            height: h,
            fourcc: info.pixel_format() as u32,
            modifier: info.modifier().map_or(MOD_NONE, u64::from),
            pitch: info.pitches()[0],
            offset: info.offsets()[0],
            ..FrameMeta::default()
        };
        Ok(Some((fd, meta)))
    }
}

fn crtc_of_connector(
    card: &Card,
    res: &drm::control::ResourceHandles,
    name: &str,
) -> Result<crtc::Handle, String> {
    let mut seen = Vec::new();
    for &c in res.connectors() {
        let Ok(info) = card.get_connector(c, false) else {
            continue;
        };
        let this = format!("{}-{}", info.interface().as_str(), info.interface_id());
        if this == name {
            let enc = info
                .current_encoder()
                .ok_or_else(|| format!("connector {name} drives no encoder (display off?)"))?;
            return card
                .get_encoder(enc)
                .ok()
                .and_then(|e| e.crtc())
                .ok_or_else(|| format!("connector {name} has no CRTC"));
        }
        seen.push(this);
    }
    Err(format!("no connector {name} (have: {})", seen.join(", ")))
}

/// The primary and cursor planes bound to `crtc` (plane `type` property: 1 primary, 2 cursor).
fn planes_of(card: &Card, crtc: crtc::Handle) -> (Option<PlaneRef>, Option<PlaneRef>) {
    let (mut primary, mut cursor) = (None, None);
    let Ok(planes) = card.plane_handles() else {
        return (None, None);
    };
    let res = card.resource_handles().ok();
    for p in planes {
        let Ok(info) = card.get_plane(p) else {
            continue;
        };
        let possible = res
            .as_ref()
            .is_some_and(|r| r.filter_crtcs(info.possible_crtcs()).contains(&crtc));
        if info.crtc() != Some(crtc) && !possible {
            continue;
        }
        let Ok(props) = card.get_properties(p) else {
            continue;
        };
        let (mut kind, mut x, mut y) = (None, None, None);
        for (&h, &v) in props.iter() {
            let Ok(pi) = card.get_property(h) else {
                continue;
            };
            match pi.name().to_bytes() {
                b"type" => kind = Some(v),
                b"CRTC_X" => x = Some(h),
                b"CRTC_Y" => y = Some(h),
                _ => {}
            }
        }
        let r = PlaneRef {
            handle: p,
            crtc_x: x,
            crtc_y: y,
        };
        match kind {
            Some(1) if primary.is_none() || info.crtc() == Some(crtc) => primary = Some(r),
            Some(2) if cursor.is_none() || info.crtc() == Some(crtc) => cursor = Some(r),
            _ => {}
        }
    }
    (primary, cursor)
}

fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64).saturating_mul(1_000_000_000) + t.tv_nsec as u64
}

/// Bounds of one [`serve`] run.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServeLimits {
    pub max_frames: Option<u64>,
    pub max_time: Option<Duration>,
}

/// What one [`serve`] run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServeStats {
    pub ticks: u64,
    pub frames: u64,
    /// Mode requests answered.
    pub mode_requests: u64,
    /// The peer left (`false`: a limit or the stop flag ended the run).
    pub peer_left: bool,
}

/// Sends every changed framebuffer to `peer` until a limit, `stop`, or the peer leaves; answers
/// the peer's mode requests; whatever ends the run, the display mode the peer's session set is
/// put back ([`crate::kms_modeset`]).
pub fn serve(
    g: &mut KmsGrabber,
    peer: impl AsFd,
    limits: ServeLimits,
    stop: &AtomicBool,
) -> Result<ServeStats, CaptureError> {
    let r = serve_frames(g, peer.as_fd(), limits, stop);
    g.end_session_mode();
    r
}

/// Whether a send failed because the peer is gone.
fn gone(e: &WireError) -> bool {
    matches!(e, WireError::Io(e) if matches!(
        e.kind(),
        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
    ))
}

fn serve_frames(
    g: &mut KmsGrabber,
    peer: BorrowedFd<'_>,
    limits: ServeLimits,
    stop: &AtomicBool,
) -> Result<ServeStats, CaptureError> {
    let t0 = Instant::now();
    let mut st = ServeStats::default();
    // A new peer gets the current picture at once, even on a static screen.
    g.shown = None;
    while !stop.load(Ordering::Relaxed)
        && limits.max_frames.is_none_or(|m| st.frames < m)
        && limits.max_time.is_none_or(|m| t0.elapsed() < m)
    {
        g.wait()?;
        st.ticks += 1;
        // Read each tick, not only at the next send: on a static screen nothing is sent, and a
        // gone peer (the data plane's start-up probe) must not hold up the next one.
        let reply = match poll_peer(peer) {
            PeerInput::Nothing => None,
            PeerInput::Gone => {
                st.peer_left = true;
                break;
            }
            PeerInput::Request(req) => {
                let reply = g.set_session_mode(&req);
                log::info!("kms display: the peer asked for {}: {reply:?}", req.mode);
                Some(reply)
            }
            PeerInput::Bad(why) => {
                log::warn!("kms display: refused a request: {why}");
                Some(ModeReply::Failed(why))
            }
        };
        if let Some(reply) = reply {
            match send_reply(peer, &reply) {
                Ok(()) => st.mode_requests += 1,
                Err(e) if gone(&e) => {
                    st.peer_left = true;
                    break;
                }
                Err(e) => return Err(CaptureError::Io(std::io::Error::other(e.to_string()))),
            }
        }
        let Some(mut grab) = g.grab()? else { continue };
        grab.meta.flags |= FLAG_MODES;
        match send_frame(
            peer,
            &grab.meta,
            grab.frame.as_fd(),
            grab.cursor.as_ref().map(|c| c.as_fd()),
        ) {
            Ok(()) => st.frames += 1,
            Err(e) if gone(&e) => {
                st.peer_left = true;
                break;
            }
            Err(e) => return Err(CaptureError::Io(std::io::Error::other(e.to_string()))),
        }
    }
    Ok(st)
}
