//! DRM/KMS capture: detection here, the capture itself in three parts split by privilege.
//!
//! [`probe`] walks `/dev/dri/card*` (sorted), opens each node and asks KMS for a CRTC with an
//! active mode and an attached framebuffer. The first hit is returned as a [`KmsTarget`];
//! otherwise a typed [`CaptureError::NotAvailable`] says why for every node tried. The
//! directory is a parameter ([`probe_dir`]) so the detection seam is testable.
//!
//! Capture design (privilege split). GETFB2 returns buffer handles only to the DRM master or a
//! CAP_SYS_ADMIN process, and no strahl process that parses network input may hold
//! CAP_SYS_ADMIN. So:
//! - the **capture helper** (`strahl-kms-helper`, [`crate::kms_grab`]) is the only process with
//!   CAP_SYS_ADMIN; it parses nothing from the network (its one input is a local socket peer it
//!   only writes to). Per display refresh it reads the CRTC's primary plane, and on each page
//!   flip exports the framebuffer as a read-only dmabuf (GETFB2 → PRIME) with its fourcc,
//!   modifier, pitch and offset, plus the cursor plane's position and image;
//! - the fd crosses a Unix `SOCK_SEQPACKET` socket with `SCM_RIGHTS` ([`crate::kms_wire`]);
//!   a dmabuf fd grants access to that one buffer and nothing else on the card;
//! - the **data plane** (no CAP_SYS_ADMIN) maps it, brackets the read with
//!   `DMA_BUF_IOCTL_SYNC` and converts it to I420 for openh264 ([`crate::kms_map`]); an NVENC
//!   encoder would import the dmabuf instead.
//!
//! Modes ([`crate::kms_mode`], [`crate::kms_modeset`]): at session start the data plane asks
//! the helper for the stream's W×H at its frame rate; when nobody else is DRM master the helper
//! takes master, commits that mode if the connector offers it (atomic, ALLOW_MODESET), drops
//! master again, and restores the previous mode at session end; otherwise the data plane scales
//! in software, and one `kms display:` log line says which.
//!
//! Proven in the VM lab on a real KMS driver (virtio-gpu, Debian 6.12): `tests/kms_lab.rs`
//! (the modeset and its restore: `tests/kms_lab/mode.rs`).
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use drm::control::Device as ControlDevice;

use crate::CaptureError;

/// Default DRM device directory.
pub const DRI_DIR: &str = "/dev/dri";
/// Bound on the device nodes examined (a machine has a handful of cards).
const MAX_NODES: usize = 16;

/// A CRTC that is scanning out a framebuffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsTarget {
    pub device: PathBuf,
    pub driver: String,
    pub crtc: u32,
    pub framebuffer: u32,
    /// Active mode size (width, height).
    pub mode: (u16, u16),
}

/// An open DRM node (the `drm` crate's device traits on a plain file).
pub(crate) struct Card(pub(crate) File);

impl AsFd for Card {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl drm::Device for Card {}
impl ControlDevice for Card {}

/// Probes [`DRI_DIR`].
pub fn probe() -> Result<KmsTarget, CaptureError> {
    probe_dir(Path::new(DRI_DIR))
}

/// Probes the `card*` nodes of `dir`.
pub fn probe_dir(dir: &Path) -> Result<KmsTarget, CaptureError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        CaptureError::NotAvailable(format!("{}: {e} (no DRM devices)", dir.display()))
    })?;
    let mut cards: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("card"))
        .map(|e| e.path())
        .collect();
    cards.sort();
    cards.truncate(MAX_NODES);
    if cards.is_empty() {
        return Err(CaptureError::NotAvailable(format!(
            "no card* device nodes in {}",
            dir.display()
        )));
    }
    let mut reasons = Vec::new();
    for path in cards {
        match probe_card(&path) {
            Ok(t) => return Ok(t),
            Err(why) => reasons.push(format!("{}: {why}", path.display())),
        }
    }
    Err(CaptureError::NotAvailable(reasons.join("; ")))
}

fn probe_card(path: &Path) -> Result<KmsTarget, String> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("open: {e}"))?;
    let card = Card(file);
    let driver = drm::Device::get_driver(&card)
        .map_err(|e| format!("not a DRM device ({e})"))?
        .name()
        .to_string_lossy()
        .into_owned();
    let res = card
        .resource_handles()
        .map_err(|e| format!("{driver}: no KMS resources ({e})"))?;
    for &crtc in res.crtcs() {
        let Ok(info) = card.get_crtc(crtc) else {
            continue;
        };
        if let (Some(fb), Some(mode)) = (info.framebuffer(), info.mode()) {
            return Ok(KmsTarget {
                device: path.to_path_buf(),
                driver,
                crtc: u32::from(crtc),
                framebuffer: u32::from(fb),
                mode: mode.size(),
            });
        }
    }
    Err(format!(
        "{driver}: none of {} CRTCs is scanning out a framebuffer",
        res.crtcs().len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("strahl-kms-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn missing_dir_is_not_available() {
        let err = probe_dir(Path::new("/nonexistent/dri")).unwrap_err();
        assert!(matches!(err, CaptureError::NotAvailable(ref m) if m.contains("/nonexistent/dri")));
    }

    #[test]
    fn dir_without_cards_is_not_available() {
        let d = temp_dir("empty");
        std::fs::write(d.join("renderD128-not-a-card"), b"").unwrap();
        let err = probe_dir(&d).unwrap_err();
        assert!(matches!(err, CaptureError::NotAvailable(ref m) if m.contains("no card*")));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn regular_file_named_card_is_not_a_drm_device() {
        let d = temp_dir("fake");
        std::fs::write(d.join("card0"), b"not a device").unwrap();
        let err = probe_dir(&d).unwrap_err();
        assert!(
            matches!(err, CaptureError::NotAvailable(ref m) if m.contains("card0") && m.contains("not a DRM device")),
            "{err}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn this_machine_reports_a_reason() {
        // On a machine with a display this may succeed; either way it must not panic and an
        // error must carry a reason.
        match probe() {
            Ok(t) => assert!(t.mode.0 > 0),
            Err(CaptureError::NotAvailable(m)) => assert!(!m.is_empty()),
            Err(e) => panic!("unexpected error kind: {e}"),
        }
    }
}
