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
//! - Zero-copy ([`KmsSource::next_dmabuf`], for an encoder that imports dmabufs): the newest
//!   picture is *held* — its metadata and fd, never mapped — until a newer one replaces it (the
//!   old fd is closed then: one dmabuf fd held at a time, so nothing accumulates per frame).
//!   [`KmsSource::convert_held`] is the CPU path for that held picture when the import is
//!   refused; it converts a held picture at most once.
//! - The session's mode: [`KmsSource::request_mode`] sends the helper one request (only a
//!   helper whose frames carry [`FLAG_MODES`]: [`KmsSource::helper_sets_modes`]); its reply
//!   arrives between frames and waits in [`KmsSource::take_mode_reply`].

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use crate::kms_map::{frame_size, read_into};
use crate::kms_wire::{
    FLAG_CURSOR_ONLY, FLAG_CURSOR_VISIBLE, FLAG_MODES, FrameMeta, Message, ModeReply, ModeRequest,
    Received, WireError, connect, recv_message, send_request,
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
    /// The newest picture of the zero-copy path, not mapped ([`KmsSource::next_dmabuf`]).
    held: Option<Received>,
    /// `held` was converted into `frame` already.
    held_converted: bool,
    /// The helper's answer to a mode request, not taken yet.
    reply: Option<ModeReply>,
    /// Flags of the newest message from the helper (0 before the first).
    helper_flags: u32,
}

/// What one receive produced, before any conversion.
enum Got {
    Idle,
    Cursor,
    Picture(Received),
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
            held: None,
            held_converted: false,
            reply: None,
            helper_flags: 0,
        }
    }

    /// Whether the helper answers mode requests (known from its first frame; `false` before).
    pub fn helper_sets_modes(&self) -> bool {
        self.helper_flags & FLAG_MODES != 0
    }

    /// Asks the helper for the session's mode; the answer comes with a later receive
    /// ([`KmsSource::take_mode_reply`]).
    pub fn request_mode(&self, req: &ModeRequest) -> Result<(), CaptureError> {
        send_request(self.sock.as_fd(), req)
            .map_err(|e| CaptureError::Io(std::io::Error::other(e.to_string())))
    }

    /// The helper's answer to the mode request, once (`None` until it came).
    pub fn take_mode_reply(&mut self) -> Option<ModeReply> {
        self.reply.take()
    }

    /// Waits up to `wait` for the helper, then converts the newest queued frame.
    pub fn next(&mut self, wait: Duration) -> Result<Next, CaptureError> {
        let p = match self.receive(wait)? {
            Got::Idle => return Ok(Next::Idle),
            Got::Cursor => return Ok(Next::Cursor),
            Got::Picture(p) => p,
        };
        let resized = self.convert(p.frame.as_fd(), &p.meta)?;
        Ok(self.next_of(resized))
    }

    /// Zero-copy: waits up to `wait`, then holds the newest queued picture without mapping it
    /// (the previously held one's fd is closed). [`Next::Resized`] when its size differs from
    /// the last picture's.
    pub fn next_dmabuf(&mut self, wait: Duration) -> Result<Next, CaptureError> {
        let p = match self.receive(wait)? {
            Got::Idle => return Ok(Next::Idle),
            Got::Cursor => return Ok(Next::Cursor),
            Got::Picture(p) => p,
        };
        let resized = self.held.is_none() || frame_size(&p.meta) != frame_size(&self.meta);
        self.meta = p.meta;
        self.apply_cursor();
        self.held = Some(p);
        self.held_converted = false;
        Ok(self.next_of(resized))
    }

    /// The held picture's metadata and dmabuf (zero-copy path), if one arrived yet.
    pub fn held(&self) -> Option<(&FrameMeta, BorrowedFd<'_>)> {
        self.held.as_ref().map(|r| (&r.meta, r.frame.as_fd()))
    }

    /// The CPU path for the held picture (its import was refused): maps and converts it into
    /// [`KmsSource::frame`], once per picture. Nothing held: nothing to do.
    pub fn convert_held(&mut self) -> Result<(), CaptureError> {
        if self.held_converted {
            return Ok(());
        }
        let Some(p) = self.held.take() else {
            return Ok(());
        };
        let r = self.convert(p.frame.as_fd(), &p.meta);
        self.held = Some(p);
        r?;
        self.held_converted = true;
        Ok(())
    }

    fn next_of(&self, resized: bool) -> Next {
        if resized {
            let (width, height) = frame_size(&self.meta);
            Next::Resized { width, height }
        } else {
            Next::Frame
        }
    }

    /// Waits up to `wait`, then drains the queue: the newest picture (older ones dropped
    /// unread and closed), the newest cursor state applied, a mode reply kept.
    fn receive(&mut self, wait: Duration) -> Result<Got, CaptureError> {
        let link = |e: WireError| CaptureError::Io(std::io::Error::other(e.to_string()));
        let mut picture: Option<Received> = None;
        let mut cursor = false;
        let mut wait = wait;
        while let Some(msg) = recv_message(self.sock.as_fd(), wait).map_err(link)? {
            wait = Duration::ZERO;
            let newest = match msg {
                Message::Mode(r) => {
                    self.reply = Some(r);
                    continue;
                }
                Message::Frame(f) => f,
            };
            // The newest message of either kind has the newest cursor.
            self.cursor = newest.meta;
            self.helper_flags = newest.meta.flags;
            if newest.meta.flags & FLAG_CURSOR_ONLY == 0 {
                if picture.is_some() {
                    self.dropped += 1;
                }
                picture = Some(newest);
            } else {
                cursor = true;
            }
        }
        match picture {
            Some(p) => Ok(Got::Picture(p)),
            None if cursor => {
                self.apply_cursor();
                Ok(Got::Cursor)
            }
            None => Ok(Got::Idle),
        }
    }

    /// Maps and converts one picture into `frame` (reallocated at a new size); whether the
    /// size changed.
    fn convert(&mut self, fd: BorrowedFd<'_>, meta: &FrameMeta) -> Result<bool, CaptureError> {
        let (w, h) = frame_size(meta);
        let resized = self
            .frame
            .as_ref()
            .is_none_or(|f| (f.width(), f.height()) != (w, h));
        if resized {
            self.frame = Some(Frame::new(w, h, PixelFormat::I420)?);
        }
        let frame = self.frame.as_mut().expect("allocated above");
        read_into(fd, meta, frame)?;
        self.meta = *meta;
        self.apply_cursor();
        Ok(resized)
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
