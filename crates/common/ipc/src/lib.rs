//! `strahl-ipc`: the versioned contract between `strahl-control` and `strahl-dataplane`.
//!
//! # Transport
//! One Unix-domain `SOCK_SEQPACKET` connection; **one message per datagram** (the kernel keeps
//! the boundaries, so there is no stream framing). The data plane listens, the control plane
//! connects. See [`socket`].
//!
//! # Header (14 bytes, all integers little-endian)
//! ```text
//! offset size field
//!      0    4 magic   b"STRL"
//!      4    2 major   u16  incompatible changes; a peer with another major is refused
//!      6    2 minor   u16  compatible additions; any minor of the same major is accepted
//!      8    2 kind    u16  message kind (see `Kind`)
//!     10    4 length  u32  body length in bytes; must equal datagram length − 14
//!     14    … body
//! ```
//! The whole datagram is at most [`MAX_MESSAGE_LEN`] bytes.
//!
//! # Compatibility rules
//! - **Major mismatch** is refused on both sides. To make the refusal itself readable across
//!   majors, the header and the bodies of the three handshake kinds (Hello = 1, HelloAck = 2,
//!   Refuse = 3) are frozen forever: [`decode`] accepts them whatever the major, and rejects every
//!   other kind from a foreign major with [`DecodeError::MajorMismatch`].
//! - **Minor differences** are tolerated: a body may carry trailing bytes after the fields this
//!   version knows (a newer minor appended fields) and they are ignored. An unknown kind decodes to
//!   [`DecodeError::UnknownKind`]; the receiver answers with an [`Message::Error`], it does not
//!   drop the connection. Enumerations that are expected to grow (stop reasons, transports,
//!   events, error codes) keep unknown values instead of failing.
//!
//! # Body encoding
//! Fixed-width little-endian integers; `bool` is one byte 0/1; strings are a u16 byte length and
//! UTF-8 bytes, each with a documented maximum; lists are a u16 count; `Option<T>` is a presence
//! byte followed by `T` when present. Everything decoded is hostile input: every failure is a typed
//! [`DecodeError`], never a panic, and memory use is bounded by [`MAX_MESSAGE_LEN`].
#![forbid(unsafe_code)]

mod codec;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod message;
mod native;
pub mod socket;
mod wire;

pub use codec::{Decoded, Header, decode, decode_header, encode, encode_versioned};
pub use message::*;
pub use wire::{DecodeError, EncodeError};

/// The four magic bytes that open every message.
pub const MAGIC: [u8; 4] = *b"STRL";
/// Protocol major version spoken by this build.
pub const MAJOR: u16 = 1;
/// Protocol minor version spoken by this build. 1: SessionStart carries `StreamOptions`.
/// 2: the `VideoCaps` event (the data plane's encoder capabilities, after every handshake).
/// 3: native sessions stream; `StreamOptions::CHECKABLE` asks for the pattern source.
/// 4: the `Detected` event (the data plane's start-up choices for capture, encode and audio).
/// 5: native epochs and pacing — `SessionReconfigure` (answered by the `Reconfigured` event
/// with the epoch's first frame) and `SessionPace`. A data plane before minor 5 answers both
/// with an `UnknownKind` error: the control plane's wait for the first frame times out.
pub const MINOR: u16 = 5;
/// Header length in bytes.
pub const HEADER_LEN: usize = 14;
/// Largest datagram either side sends or accepts (header included). 64 KiB holds a stats
/// snapshot of ~800 named series with room to spare and stays far below the default Unix socket
/// send buffer (~208 KiB), so one `send` never blocks on size alone.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;
/// Longest free-text field (reasons, error details) in bytes.
pub const MAX_TEXT_LEN: usize = 1024;
/// Longest short identifier (build strings, metric series names) in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Most (name, value) pairs in one stats snapshot.
pub const MAX_STATS_ENTRIES: usize = 1024;
