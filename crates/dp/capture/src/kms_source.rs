//! The data plane's end of KMS capture (no CAP_SYS_ADMIN): connected to the capture helper's
//! socket, it turns the newest dmabuf into an I420 [`Frame`] for openh264.
//!
//! Contract:
//! - Latest wins: [`KmsSource::next`] waits (bounded) for a message, then drains every message
//!   already queued and converts only the newest; older ones are dropped unread (counted in
//!   [`KmsSource::dropped`]). A game recycles its few buffers, so a stale message may already
//!   point at newer pixels; reading only the newest keeps frames in order.
//! - Cursor-only updates (same framebuffer and size: [`FLAG_CURSOR_ONLY`]) refresh the cursor
//!   state without a new picture.
//! - A new size (mode change) reallocates the frame and reports [`Next::Resized`], so the
//!   caller re-creates its encoder for the new geometry; no restart.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use crate::kms_map::{frame_size, read_into};
use crate::kms_wire::{
    FLAG_CURSOR_ONLY, FLAG_CURSOR_VISIBLE, FrameMeta, Received, WireError, connect, recv_frame,
};
use crate::{CaptureError, Frame, PixelFormat};

/// What [`KmsSource::next`] produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Nothing arrived within the wait.
    Idle,
    /// A new picture, same size as the last.
    Frame,
    /// A new picture at a new size (first frame included): re-create the encoder.
    Resized { width: u32, height: u32 },
    /// Only the cursor changed ([`KmsSource::meta`] has its position).
    Cursor,
}

/// Frames from the capture helper.
pub struct KmsSource {
    sock: OwnedFd,
    frame: Option<Frame>,
    meta: FrameMeta,
    /// The newest message's cursor fields.
    cursor: FrameMeta,
    dropped: u64,
}

impl KmsSource {
    /// Connects to the helper listening at `path`.
    pub fn connect(path: &Path) -> Result<Self, CaptureError> {
        let sock = connect(path).map_err(|e| {
            CaptureError::NotAvailable(format!("capture helper at {}: {e}", path.display()))
        })?;
        Ok(Self::from_socket(sock))
    }

    /// Uses an already connected socket (a socket pair with a helper child).
    pub fn from_socket(sock: OwnedFd) -> Self {
        Self {
            sock,
            frame: None,
            meta: FrameMeta::default(),
            cursor: FrameMeta::default(),
            dropped: 0,
        }
    }

    /// Waits up to `wait` for the helper, then converts the newest queued frame.
    pub fn next(&mut self, wait: Duration) -> Result<Next, CaptureError> {
        let link = |e: WireError| CaptureError::Io(std::io::Error::other(e.to_string()));
        let Some(mut newest) = recv_frame(self.sock.as_fd(), wait).map_err(link)? else {
            return Ok(Next::Idle);
        };
        let mut picture: Option<Received> = None;
        loop {
            // The newest message of either kind has the newest cursor.
            self.cursor = newest.meta;
            if newest.meta.flags & FLAG_CURSOR_ONLY == 0 {
                if picture.is_some() {
                    self.dropped += 1;
                }
                picture = Some(newest);
            }
            match recv_frame(self.sock.as_fd(), Duration::ZERO).map_err(link)? {
                Some(r) => newest = r,
                None => break,
            }
        }
        let Some(p) = picture else {
            self.apply_cursor();
            return Ok(Next::Cursor);
        };
        let (w, h) = frame_size(&p.meta);
        let resized = self
            .frame
            .as_ref()
            .is_none_or(|f| (f.width(), f.height()) != (w, h));
        if resized {
            self.frame = Some(Frame::new(w, h, PixelFormat::I420)?);
        }
        let frame = self.frame.as_mut().expect("allocated above");
        read_into(p.frame.as_fd(), &p.meta, frame)?;
        self.meta = p.meta;
        self.apply_cursor();
        Ok(if resized {
            Next::Resized {
                width: w,
                height: h,
            }
        } else {
            Next::Frame
        })
    }

    fn apply_cursor(&mut self) {
        let c = &self.cursor;
        self.meta.flags =
            (self.meta.flags & !FLAG_CURSOR_VISIBLE) | (c.flags & FLAG_CURSOR_VISIBLE);
        (self.meta.cursor_x, self.meta.cursor_y) = (c.cursor_x, c.cursor_y);
        (self.meta.cursor_w, self.meta.cursor_h) = (c.cursor_w, c.cursor_h);
    }

    /// The last converted picture.
    pub fn frame(&self) -> Option<&Frame> {
        self.frame.as_ref()
    }

    /// The last picture's metadata (with the newest cursor state).
    pub fn meta(&self) -> &FrameMeta {
        &self.meta
    }

    /// Pictures dropped unread because a newer one was queued behind them.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}
