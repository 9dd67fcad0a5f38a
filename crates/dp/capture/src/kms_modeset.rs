//! The helper's half of the session's display mode ([`crate::kms_mode`] has the choice and the
//! messages): in the capture helper, which holds CAP_SYS_ADMIN but is not DRM master.
//!
//! Contract:
//! - "strahl owns the display" = nobody else is DRM master when the request comes: the helper
//!   can take master (SET_MASTER). Refused with EBUSY → [`ModeReply::HeldByOther`] and nothing
//!   is touched. Master is held only across one modeset (or one restore) and dropped right
//!   after, so a game the session launches can become master itself.
//! - The mode: [`choose`] over the connector's list (the connector driving the captured CRTC).
//!   Committed atomically with ALLOW_MODESET (connector → CRTC, the mode as a blob, the primary
//!   plane); legacy SETCRTC only where the driver has no atomic. Framebuffer: the one shown now
//!   when it covers the mode (cropped to it), else a new dumb buffer of the mode's size (black).
//!   Already showing that mode → `Applied` with no commit.
//! - The first modeset of a peer remembers the previous mode, framebuffer and plane geometry;
//!   when the peer leaves ([`KmsGrabber::end_session_mode`]) they are put back if master can
//!   still be taken; if someone else is master by then, the display is theirs and is left alone.
//! - Failures are [`ModeReply::Failed`] with the kernel's reason; the capture goes on.
//! - At open the helper gives up the master role the kernel hands the first opener of a card
//!   with no master ([`drop_implicit_master`]), for the same reason.

use drm::Device as _;
use drm::buffer::DrmFourcc;
use drm::control::atomic::AtomicModeReq;
use drm::control::dumbbuffer::DumbBuffer;
use drm::control::{
    AtomicCommitFlags, Device as ControlDevice, Mode, ModeFlags, ModeTypeFlags, ResourceHandle,
    connector, framebuffer, property,
};

use crate::kms::Card;
use crate::kms_grab::KmsGrabber;
use crate::kms_mode::{DisplayMode, ModeReply, ModeRequest, OfferedMode, choose, refresh_mhz};

/// What the first modeset of a peer replaced, and what it made.
pub(crate) struct Saved {
    connector: connector::Handle,
    mode: Option<Mode>,
    fb: Option<framebuffer::Handle>,
    /// The primary plane's SRC_X/Y/W/H and CRTC_X/Y/W/H before the modeset.
    geometry: Option<[u64; 8]>,
    /// A dumb buffer made because the shown one was too small (freed at the restore).
    made: Option<(DumbBuffer, framebuffer::Handle)>,
}

/// The plane properties of [`Saved::geometry`], in that order.
const GEOMETRY: [&[u8]; 8] = [
    b"SRC_X", b"SRC_Y", b"SRC_W", b"SRC_H", b"CRTC_X", b"CRTC_Y", b"CRTC_W", b"CRTC_H",
];

/// Gives up the master role a fresh open may have brought (no master on the card then): the
/// helper needs only CAP_SYS_ADMIN to capture, and a master helper would keep a game from
/// becoming one. Not master: the kernel refuses, which is fine.
pub(crate) fn drop_implicit_master(card: &Card) {
    let _ = card.release_master_lock();
}

/// SET_MASTER: EBUSY (another master) is [`ModeReply::HeldByOther`].
fn take_master(card: &Card) -> Result<(), ModeReply> {
    match card.acquire_master_lock() {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {
            Err(ModeReply::HeldByOther)
        }
        Err(e) => Err(ModeReply::Failed(format!(
            "SET_MASTER: {e} (the capture helper needs CAP_SYS_ADMIN to set modes)"
        ))),
    }
}

fn drop_master(card: &Card) {
    if let Err(e) = card.release_master_lock() {
        log::warn!("kms display: DROP_MASTER: {e}");
    }
}

fn offered(m: &Mode) -> OfferedMode {
    let interlaced = m
        .flags()
        .intersects(ModeFlags::INTERLACE | ModeFlags::DBLSCAN);
    let (w, h) = m.size();
    OfferedMode {
        width: u32::from(w),
        height: u32::from(h),
        refresh_mhz: refresh_mhz(m.clock(), m.hsync().2, m.vsync().2, interlaced),
        interlaced,
        preferred: m.mode_type().contains(ModeTypeFlags::PREFERRED),
    }
}

/// The handle of `obj`'s property `name`, with its current value.
fn prop(card: &Card, obj: impl ResourceHandle, name: &[u8]) -> Option<(property::Handle, u64)> {
    let props = card.get_properties(obj).ok()?;
    props.iter().find_map(|(&h, &v)| {
        card.get_property(h)
            .ok()
            .filter(|i| i.name().to_bytes() == name)
            .map(|_| (h, v))
    })
}

/// [`prop`]'s handle, or why the commit cannot be built.
fn need(card: &Card, obj: impl ResourceHandle, name: &[u8]) -> Result<property::Handle, String> {
    prop(card, obj, name)
        .map(|p| p.0)
        .ok_or_else(|| format!("no {} property", String::from_utf8_lossy(name)))
}

impl KmsGrabber {
    /// The connector driving this grabber's CRTC.
    fn connector(&self) -> Option<connector::Handle> {
        let res = self.card.resource_handles().ok()?;
        res.connectors().iter().copied().find(|&c| {
            self.card
                .get_connector(c, false)
                .ok()
                .and_then(|i| i.current_encoder())
                .and_then(|e| self.card.get_encoder(e).ok())
                .and_then(|e| e.crtc())
                == Some(self.crtc)
        })
    }

    /// Handles one [`ModeRequest`] (see the module contract).
    pub fn set_session_mode(&mut self, req: &ModeRequest) -> ModeReply {
        if let Err(reply) = take_master(&self.card) {
            return reply;
        }
        // Every path out of here drops master again (the function returns, never panics).
        let reply = self.set_mode_as_master(req.mode);
        drop_master(&self.card);
        reply
    }

    fn set_mode_as_master(&mut self, want: DisplayMode) -> ModeReply {
        let Some(conn) = self
            .session
            .as_ref()
            .map(|s| s.connector)
            .or_else(|| self.connector())
        else {
            return ModeReply::Failed(format!("no connector drives crtc {}", u32::from(self.crtc)));
        };
        // Master now: the kernel probes the connector afresh.
        let modes = match self.card.get_connector(conn, true) {
            Ok(i) => i.modes().to_vec(),
            Err(e) => return ModeReply::Failed(format!("GETCONNECTOR: {e}")),
        };
        let list: Vec<OfferedMode> = modes.iter().map(offered).collect();
        let i = match choose(&list, want) {
            Ok(i) => i,
            Err(summary) => return ModeReply::NotOffered(summary),
        };
        let (mode, chosen) = (modes[i], list[i].display());
        let info = match self.card.get_crtc(self.crtc) {
            Ok(i) => i,
            Err(e) => return ModeReply::Failed(format!("GETCRTC: {e}")),
        };
        let fb_now = self
            .primary
            .and_then(|p| self.card.get_plane(p.handle).ok())
            .and_then(|p| p.framebuffer())
            .or(info.framebuffer());
        if info.mode() == Some(mode) && fb_now.is_some() {
            return ModeReply::Applied(chosen);
        }
        if self.session.is_none() {
            let geometry = self.primary.and_then(|p| {
                let mut g = [0u64; 8];
                for (slot, name) in g.iter_mut().zip(GEOMETRY) {
                    *slot = prop(&self.card, p.handle, name)?.1;
                }
                Some(g)
            });
            self.session = Some(Saved {
                connector: conn,
                mode: info.mode(),
                fb: fb_now,
                geometry,
                made: None,
            });
        }
        let (w, h) = (chosen.width, chosen.height);
        let covers = fb_now
            .and_then(|fb| self.card.get_framebuffer(fb).ok())
            .is_some_and(|i| i.size().0 >= w && i.size().1 >= h);
        let (fb, made) = match fb_now {
            Some(fb) if covers => (fb, None),
            _ => match self.black_buffer(w, h) {
                Ok((db, fb)) => (fb, Some((db, fb))),
                Err(e) => return ModeReply::Failed(e),
            },
        };
        let geometry = [
            0,
            0,
            u64::from(w) << 16,
            u64::from(h) << 16,
            0,
            0,
            w.into(),
            h.into(),
        ];
        if let Err(e) = self.commit(conn, Some(mode), Some(fb), Some(geometry)) {
            if let Some((db, fb)) = made {
                self.free(db, fb);
            }
            return ModeReply::Failed(e);
        }
        // A buffer made by an earlier request of this peer is freed once no longer shown.
        let session = self.session.as_mut().expect("saved above");
        let still_shown = made.is_none() && session.made.as_ref().is_some_and(|m| m.1 == fb);
        if !still_shown && let Some((db, old)) = std::mem::replace(&mut session.made, made) {
            self.free(db, old);
        }
        match self.card.get_crtc(self.crtc).ok().and_then(|i| i.mode()) {
            Some(m) if m == mode => ModeReply::Applied(chosen),
            other => ModeReply::Failed(format!(
                "committed {chosen}, but the CRTC shows {:?}",
                other.map(|m| m.size())
            )),
        }
    }

    /// Puts the display back as the peer found it (module contract); a log line says what
    /// happened. Nothing was changed: nothing to do.
    pub fn end_session_mode(&mut self) {
        let Some(saved) = self.session.take() else {
            return;
        };
        match take_master(&self.card) {
            Ok(()) => {}
            Err(ModeReply::HeldByOther) => {
                log::info!(
                    "kms display: another DRM master holds the display now; it stays theirs \
                     (not restored)"
                );
                // A buffer of ours still on screen stays allocated (freeing it would turn the
                // display off under its new owner); the kernel frees it with the helper's fd.
                if let Some((db, fb)) = saved.made
                    && !self.shows(fb)
                {
                    self.free(db, fb);
                }
                return;
            }
            Err(other) => {
                log::warn!("kms display: not restored: {other:?}");
                return;
            }
        }
        let what = match (saved.mode, saved.fb) {
            (Some(m), Some(_)) => format!("{}x{}", m.size().0, m.size().1),
            _ => "off".to_string(),
        };
        let geometry = saved.geometry.or_else(|| {
            saved.mode.map(|m| {
                let (w, h) = (u64::from(m.size().0), u64::from(m.size().1));
                [0, 0, w << 16, h << 16, 0, 0, w, h]
            })
        });
        let on = saved.mode.is_some() && saved.fb.is_some();
        match self.commit(
            saved.connector,
            saved.mode.filter(|_| on),
            saved.fb.filter(|_| on),
            geometry.filter(|_| on),
        ) {
            Ok(()) => log::info!("kms display: restored {what} (the session is over)"),
            Err(e) => log::warn!("kms display: restoring {what}: {e}"),
        }
        if let Some((db, fb)) = saved.made {
            self.free(db, fb);
        }
        drop_master(&self.card);
    }

    /// Whether the primary plane (or the CRTC) scans out `fb` now.
    fn shows(&self, fb: framebuffer::Handle) -> bool {
        let plane = self
            .primary
            .and_then(|p| self.card.get_plane(p.handle).ok())
            .and_then(|p| p.framebuffer());
        let crtc = self
            .card
            .get_crtc(self.crtc)
            .ok()
            .and_then(|i| i.framebuffer());
        plane == Some(fb) || crtc == Some(fb)
    }

    fn black_buffer(&self, w: u32, h: u32) -> Result<(DumbBuffer, framebuffer::Handle), String> {
        let db = self
            .card
            .create_dumb_buffer((w, h), DrmFourcc::Xrgb8888, 32)
            .map_err(|e| format!("dumb buffer {w}x{h}: {e}"))?;
        // Dumb buffers come zeroed (black in XRGB).
        match self.card.add_framebuffer(&db, 24, 32) {
            Ok(fb) => Ok((db, fb)),
            Err(e) => {
                let _ = self.card.destroy_dumb_buffer(db);
                Err(format!("ADDFB {w}x{h}: {e}"))
            }
        }
    }

    fn free(&self, db: DumbBuffer, fb: framebuffer::Handle) {
        let _ = self.card.destroy_framebuffer(fb);
        let _ = self.card.destroy_dumb_buffer(db);
    }

    /// Shows `mode` with `fb` on the connector (all `None`: the CRTC off): atomic when the
    /// driver has it, else legacy SETCRTC.
    fn commit(
        &self,
        conn: connector::Handle,
        mode: Option<Mode>,
        fb: Option<framebuffer::Handle>,
        geometry: Option<[u64; 8]>,
    ) -> Result<(), String> {
        let atomic = self.atomic
            && prop(&self.card, self.crtc, b"MODE_ID").is_some()
            && self.primary.is_some();
        if !atomic {
            return self
                .card
                .set_crtc(self.crtc, fb, (0, 0), &[conn], mode)
                .map_err(|e| format!("SETCRTC: {e}"));
        }
        let plane = self.primary.expect("checked above").handle;
        let raw_crtc = u64::from(u32::from(self.crtc));
        let on = mode.is_some() && fb.is_some();
        // Every property first: a driver missing one fails here, before the blob exists.
        let mut props: Vec<(drm::control::RawResourceHandle, property::Handle, u64)> = vec![
            (
                conn.into(),
                need(&self.card, conn, b"CRTC_ID")?,
                if on { raw_crtc } else { 0 },
            ),
            (
                self.crtc.into(),
                need(&self.card, self.crtc, b"ACTIVE")?,
                u64::from(on),
            ),
            (
                plane.into(),
                need(&self.card, plane, b"FB_ID")?,
                fb.map_or(0, |f| u64::from(u32::from(f))),
            ),
            (
                plane.into(),
                need(&self.card, plane, b"CRTC_ID")?,
                if on { raw_crtc } else { 0 },
            ),
        ];
        if let Some(g) = geometry.filter(|_| on) {
            for (name, v) in GEOMETRY.iter().zip(g) {
                props.push((plane.into(), need(&self.card, plane, name)?, v));
            }
        }
        let mode_id = need(&self.card, self.crtc, b"MODE_ID")?;
        let blob_id = match mode {
            Some(m) => match self.card.create_property_blob(&m) {
                Ok(property::Value::Blob(id)) => id,
                Ok(other) => return Err(format!("mode blob: {other:?}")),
                Err(e) => return Err(format!("mode blob: {e}")),
            },
            None => 0,
        };
        props.push((self.crtc.into(), mode_id, blob_id));
        let mut req = AtomicModeReq::new();
        for (obj, p, v) in props {
            req.add_raw_property(obj, p, v);
        }
        let r = self
            .card
            .atomic_commit(AtomicCommitFlags::ALLOW_MODESET, req)
            .map_err(|e| format!("atomic commit: {e}"));
        // The CRTC's state holds its own reference to the blob.
        if blob_id != 0 {
            let _ = self.card.destroy_property_blob(blob_id);
        }
        r
    }
}
