//! Bounded little-endian reader/writer and the typed errors of the codec.
//!
//! The writer never panics on a short buffer: it keeps counting so the error can say how many
//! bytes were needed. The reader never reads past its slice and names the field that was missing.

use std::fmt;

/// Why a datagram could not be decoded. Every variant is peer misbehaviour or a version skew,
/// never a bug on our side; the receiver logs it and answers or drops, it never panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the 14-byte header.
    TooShort { len: usize },
    /// Longer than [`crate::MAX_MESSAGE_LEN`].
    TooLong { len: usize },
    /// The first four bytes are not `b"STRL"`.
    BadMagic { found: [u8; 4] },
    /// The header's body length disagrees with the datagram.
    LengthMismatch { declared: u32, actual: usize },
    /// Another major version sent a kind that is not part of the frozen handshake.
    MajorMismatch { ours: u16, theirs: u16, kind: u16 },
    /// A kind this version does not know (a newer minor, or garbage).
    UnknownKind { kind: u16, minor: u16 },
    /// The body ended before `field`.
    Truncated { kind: u16, field: &'static str },
    /// `field` holds a value outside its domain.
    BadValue {
        kind: u16,
        field: &'static str,
        value: u64,
    },
    /// `field` is longer than its documented maximum.
    TooLarge {
        kind: u16,
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// `field` is not valid UTF-8.
    BadUtf8 { kind: u16, field: &'static str },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => {
                write!(f, "datagram of {len} bytes is shorter than the header")
            }
            Self::TooLong { len } => write!(f, "datagram of {len} bytes exceeds the maximum"),
            Self::BadMagic { found } => write!(f, "bad magic {found:02x?} (expected \"STRL\")"),
            Self::LengthMismatch { declared, actual } => {
                write!(
                    f,
                    "header declares a {declared}-byte body but {actual} bytes follow"
                )
            }
            Self::MajorMismatch { ours, theirs, kind } => write!(
                f,
                "protocol major version mismatch: peer speaks v{theirs}, we speak v{ours} (kind {kind})"
            ),
            Self::UnknownKind { kind, minor } => {
                write!(f, "unknown message kind {kind} (peer minor {minor})")
            }
            Self::Truncated { kind, field } => write!(f, "kind {kind}: body ends before {field}"),
            Self::BadValue { kind, field, value } => {
                write!(f, "kind {kind}: invalid {field} value {value}")
            }
            Self::TooLarge {
                kind,
                field,
                len,
                max,
            } => {
                write!(f, "kind {kind}: {field} has {len} entries/bytes, max {max}")
            }
            Self::BadUtf8 { kind, field } => write!(f, "kind {kind}: {field} is not UTF-8"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a message could not be encoded. These are caller errors (a too-small buffer, an
/// over-long string), reported instead of truncating silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The caller's buffer holds `have` bytes; the message needs `need`.
    BufferTooSmall { need: usize, have: usize },
    /// A field exceeds its documented maximum.
    FieldTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// The encoded message would exceed [`crate::MAX_MESSAGE_LEN`].
    TooLarge { len: usize },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall { need, have } => {
                write!(f, "buffer of {have} bytes too small, need {need}")
            }
            Self::FieldTooLong { field, len, max } => {
                write!(f, "{field} is {len} long, max {max}")
            }
            Self::TooLarge { len } => write!(f, "message of {len} bytes exceeds the maximum"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Writes into a caller-owned buffer; on overflow it keeps counting so the error can report the
/// size needed.
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
    err: Option<EncodeError>,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8], start: usize) -> Self {
        Self {
            buf,
            pos: start,
            err: None,
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) {
        let end = self.pos + b.len();
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(b);
        }
        self.pos = end;
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.bytes(&[v]);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    pub(crate) fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }

    /// A u16-length-prefixed UTF-8 string of at most `max` bytes.
    pub(crate) fn str(&mut self, field: &'static str, s: &str, max: usize) {
        if s.len() > max {
            self.fail(EncodeError::FieldTooLong {
                field,
                len: s.len(),
                max,
            });
            return;
        }
        // max ≤ MAX_TEXT_LEN < u16::MAX, checked above.
        self.u16(s.len() as u16);
        self.bytes(s.as_bytes());
    }

    /// A u16 count prefix for a list of `len` entries (at most `max`).
    pub(crate) fn count(&mut self, field: &'static str, len: usize, max: usize) -> bool {
        if len > max {
            self.fail(EncodeError::FieldTooLong { field, len, max });
            return false;
        }
        self.u16(len as u16);
        true
    }

    pub(crate) fn fail(&mut self, e: EncodeError) {
        if self.err.is_none() {
            self.err = Some(e);
        }
    }

    /// Ends writing: the total length, or the first error.
    pub(crate) fn finish(self) -> Result<usize, EncodeError> {
        if let Some(e) = self.err {
            return Err(e);
        }
        if self.pos > crate::MAX_MESSAGE_LEN {
            return Err(EncodeError::TooLarge { len: self.pos });
        }
        if self.pos > self.buf.len() {
            return Err(EncodeError::BufferTooSmall {
                need: self.pos,
                have: self.buf.len(),
            });
        }
        Ok(self.pos)
    }

    /// Writes `v` at `at` (already reserved), used to patch the header's length field.
    pub(crate) fn patch_u32(&mut self, at: usize, v: u32) {
        if let Some(dst) = self.buf.get_mut(at..at + 4) {
            dst.copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// Reads a message body; every accessor names its field so a short body reports where it ended.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    kind: u16,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], kind: u16) -> Self {
        Self { buf, kind }
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated {
                kind: self.kind,
                field,
            });
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let b = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.bad(field, u64::from(v))),
        }
    }

    pub(crate) fn str(&mut self, field: &'static str, max: usize) -> Result<String, DecodeError> {
        let len = usize::from(self.u16(field)?);
        if len > max {
            return Err(DecodeError::TooLarge {
                kind: self.kind,
                field,
                len,
                max,
            });
        }
        let b = self.take(len, field)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(DecodeError::BadUtf8 {
                kind: self.kind,
                field,
            }),
        }
    }

    /// A u16 count prefix, checked against `max` before anything is allocated.
    pub(crate) fn count(&mut self, field: &'static str, max: usize) -> Result<usize, DecodeError> {
        let n = usize::from(self.u16(field)?);
        if n > max {
            return Err(DecodeError::TooLarge {
                kind: self.kind,
                field,
                len: n,
                max,
            });
        }
        Ok(n)
    }

    pub(crate) fn bad(&self, field: &'static str, value: u64) -> DecodeError {
        DecodeError::BadValue {
            kind: self.kind,
            field,
            value,
        }
    }
}
