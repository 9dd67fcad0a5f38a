//! The `strahl/1` control-message framing: QUIC varints, `type ‖ len ‖ body` frames, bodies made
//! of `tag ‖ len ‖ value` fields (normative text: `docs/strahl1-wire.md` §Control messages).
//!
//! Contract:
//! - Varints are QUIC's (RFC 9000 §16): 1, 2, 4 or 8 bytes, the top two bits of the first byte
//!   giving the length; values < 2^62. A decoder accepts non-minimal encodings (as QUIC does)
//!   and the encoder always writes the minimal one.
//! - A frame is `type varint ‖ len varint ‖ body[len]`; `len` ≤ [`MAX_BODY`] or the frame is
//!   refused before any byte of the body is looked at (a peer cannot make us buffer more).
//! - A body is a sequence of fields `tag varint ‖ len varint ‖ value[len]`. Integer fields hold
//!   one varint filling the value exactly. [`Fields`] walks a body; it never panics on any input
//!   and reports the first malformation as a [`WireError`].
//! - Nothing here allocates per field; decoding borrows from the input.

use std::fmt;

/// Largest body of any control message. Pairing messages carry 33-byte SPAKE2 elements and
/// 32-byte MACs, the hello a name of ≤ 64 bytes: 16 KiB leaves room for growth and bounds what
/// one peer can make us hold.
pub const MAX_BODY: usize = 16 * 1024;
/// Largest varint value (2^62 − 1).
pub const VARINT_MAX: u64 = (1 << 62) - 1;

/// Why bytes could not be read as a frame or field. All are the peer's doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The input ended inside a varint, a length or a value.
    Truncated,
    /// A frame's announced body is longer than [`MAX_BODY`].
    TooLong(u64),
    /// An integer field's value is not exactly one varint.
    BadInteger { tag: u64 },
    /// A field's value is out of its range or not valid (e.g. not UTF-8).
    BadValue { tag: u64, why: &'static str },
    /// A required field is absent.
    Missing { tag: u64 },
    /// The same field appears twice (ambiguous: refused, never "last wins").
    Duplicate { tag: u64 },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => write!(f, "truncated"),
            WireError::TooLong(n) => write!(f, "body of {n} bytes exceeds {MAX_BODY}"),
            WireError::BadInteger { tag } => write!(f, "field {tag}: not one varint"),
            WireError::BadValue { tag, why } => write!(f, "field {tag}: {why}"),
            WireError::Missing { tag } => write!(f, "required field {tag} missing"),
            WireError::Duplicate { tag } => write!(f, "field {tag} repeated"),
        }
    }
}

impl std::error::Error for WireError {}

/// Reads one varint from the front of `b`; returns it and the bytes it used.
pub fn get_varint(b: &[u8]) -> Result<(u64, usize), WireError> {
    let first = *b.first().ok_or(WireError::Truncated)?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(..len).ok_or(WireError::Truncated)?;
    let mut v = u64::from(first & 0x3f);
    for &x in &bytes[1..] {
        v = (v << 8) | u64::from(x);
    }
    Ok((v, len))
}

/// Appends `v` as a minimal varint. Values above [`VARINT_MAX`] are clamped to it (callers only
/// encode counters and sizes far below; clamping keeps encoding infallible and still decodable).
pub fn put_varint(out: &mut Vec<u8>, v: u64) {
    let v = v.min(VARINT_MAX);
    if v < 1 << 6 {
        out.push(v as u8);
    } else if v < 1 << 14 {
        out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes());
    } else if v < 1 << 30 {
        out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes());
    } else {
        out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes());
    }
}

/// A frame's header, read from the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub msg_type: u64,
    pub body_len: usize,
    /// Bytes the header itself used.
    pub header_len: usize,
}

/// Reads a frame header; `Ok(None)` when `b` does not hold a whole header yet (a stream reader
/// waits for more), an error when the body would be too long.
pub fn frame_header(b: &[u8]) -> Result<Option<FrameHeader>, WireError> {
    let (msg_type, n1) = match get_varint(b) {
        Ok(x) => x,
        Err(WireError::Truncated) => return Ok(None),
        Err(e) => return Err(e),
    };
    let (len, n2) = match get_varint(&b[n1..]) {
        Ok(x) => x,
        Err(WireError::Truncated) => return Ok(None),
        Err(e) => return Err(e),
    };
    if len > MAX_BODY as u64 {
        return Err(WireError::TooLong(len));
    }
    Ok(Some(FrameHeader {
        msg_type,
        body_len: len as usize,
        header_len: n1 + n2,
    }))
}

/// Builds one field-encoded body.
#[derive(Debug, Default)]
pub struct BodyWriter {
    buf: Vec<u8>,
}

impl BodyWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn uint(&mut self, tag: u64, v: u64) -> &mut Self {
        let mut tmp = Vec::with_capacity(8);
        put_varint(&mut tmp, v);
        self.bytes(tag, &tmp)
    }

    pub fn opt_uint(&mut self, tag: u64, v: Option<u64>) -> &mut Self {
        if let Some(v) = v {
            self.uint(tag, v);
        }
        self
    }

    pub fn bytes(&mut self, tag: u64, v: &[u8]) -> &mut Self {
        put_varint(&mut self.buf, tag);
        put_varint(&mut self.buf, v.len() as u64);
        self.buf.extend_from_slice(v);
        self
    }

    /// The whole frame: `type ‖ len ‖ body`.
    pub fn frame(&self, msg_type: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buf.len() + 16);
        put_varint(&mut out, msg_type);
        put_varint(&mut out, self.buf.len() as u64);
        out.extend_from_slice(&self.buf);
        out
    }
}

/// Iterates over the fields of a body: `(tag, value)`.
pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        Fields { rest: body }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, &'a [u8]), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let r = (|| {
            let (tag, n1) = get_varint(self.rest)?;
            let (len, n2) = get_varint(&self.rest[n1..])?;
            let start = n1 + n2;
            let end = usize::try_from(len)
                .ok()
                .and_then(|l| start.checked_add(l))
                .filter(|&e| e <= self.rest.len())
                .ok_or(WireError::Truncated)?;
            let v = &self.rest[start..end];
            self.rest = &self.rest[end..];
            Ok((tag, v))
        })();
        if r.is_err() {
            // One error ends the walk: nothing after a malformed field can be framed.
            self.rest = &[];
        }
        Some(r)
    }
}

/// An integer field's value: exactly one varint.
pub fn field_uint(tag: u64, v: &[u8]) -> Result<u64, WireError> {
    match get_varint(v) {
        Ok((x, n)) if n == v.len() => Ok(x),
        _ => Err(WireError::BadInteger { tag }),
    }
}

/// An integer field that must fit `max`.
pub fn field_bounded(tag: u64, v: &[u8], max: u64) -> Result<u64, WireError> {
    let x = field_uint(tag, v)?;
    if x > max {
        return Err(WireError::BadValue {
            tag,
            why: "out of range",
        });
    }
    Ok(x)
}

/// Records that a field was seen; a second sighting is [`WireError::Duplicate`].
pub fn once<T>(slot: &mut Option<T>, tag: u64, v: T) -> Result<(), WireError> {
    if slot.is_some() {
        return Err(WireError::Duplicate { tag });
    }
    *slot = Some(v);
    Ok(())
}

/// A required field's value.
pub fn required<T>(slot: Option<T>, tag: u64) -> Result<T, WireError> {
    slot.ok_or(WireError::Missing { tag })
}

/// Reassembles frames from a byte stream (a QUIC stream delivers arbitrary chunks).
///
/// Holds at most one frame's worth of bytes beyond what it has handed out: a header announcing
/// more than [`MAX_BODY`] is an error at once, so a peer cannot make it grow without bound.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame (`type`, body), or `Ok(None)` until more bytes arrive.
    pub fn next_frame(&mut self) -> Result<Option<(u64, Vec<u8>)>, WireError> {
        let Some(h) = frame_header(&self.buf)? else {
            return Ok(None);
        };
        let end = h.header_len + h.body_len;
        if self.buf.len() < end {
            return Ok(None);
        }
        let body = self.buf[h.header_len..end].to_vec();
        self.buf.drain(..end);
        Ok(Some((h.msg_type, body)))
    }

    /// Bytes held that do not yet form a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_every_length_boundary() {
        for v in [0, 63, 64, 16383, 16384, (1 << 30) - 1, 1 << 30, VARINT_MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let (x, n) = get_varint(&b).unwrap();
            assert_eq!((x, n), (v, b.len()), "{v}");
        }
        // RFC 9000 §A.1 examples.
        assert_eq!(
            get_varint(&[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c]).unwrap(),
            (151_288_809_941_952_652, 8)
        );
        assert_eq!(
            get_varint(&[0x9d, 0x7f, 0x3e, 0x7d]).unwrap(),
            (494_878_333, 4)
        );
        assert_eq!(get_varint(&[0x7b, 0xbd]).unwrap(), (15_293, 2));
        assert_eq!(get_varint(&[0x40, 0x25]).unwrap(), (37, 2));
        assert_eq!(get_varint(&[0x80]), Err(WireError::Truncated));
    }

    #[test]
    fn frame_header_waits_for_bytes_and_bounds_the_body() {
        let f = BodyWriter::new().uint(1, 5).frame(7);
        assert_eq!(frame_header(&f[..1]).unwrap(), None);
        let h = frame_header(&f).unwrap().unwrap();
        assert_eq!((h.msg_type, h.body_len, h.header_len), (7, f.len() - 2, 2));
        let mut big = Vec::new();
        put_varint(&mut big, 1);
        put_varint(&mut big, MAX_BODY as u64 + 1);
        assert_eq!(
            frame_header(&big),
            Err(WireError::TooLong(MAX_BODY as u64 + 1))
        );
    }

    #[test]
    fn fields_walk_stops_at_the_first_malformation() {
        let mut body = BodyWriter::new();
        body.uint(1, 300).bytes(2, b"abc");
        let f = body.frame(1);
        let b = &f[frame_header(&f).unwrap().unwrap().header_len..];
        let all: Vec<_> = Fields::new(b).collect::<Result<_, _>>().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(field_uint(1, all[0].1).unwrap(), 300);
        assert_eq!(all[1], (2, &b"abc"[..]));
        // A length past the end.
        let mut bad = b.to_vec();
        bad.truncate(b.len() - 1);
        let r: Vec<_> = Fields::new(&bad).collect();
        assert_eq!(r.last().unwrap(), &Err(WireError::Truncated));
        assert_eq!(r.len(), 2);
        // An integer field with a trailing byte.
        assert_eq!(
            field_uint(9, &[1, 2]),
            Err(WireError::BadInteger { tag: 9 })
        );
    }

    #[test]
    fn frame_reader_reassembles_byte_by_byte() {
        let a = BodyWriter::new().uint(1, 70000).frame(3);
        let b = BodyWriter::new().bytes(2, &[5; 300]).frame(4);
        let stream: Vec<u8> = a.iter().chain(&b).copied().collect();
        let mut r = FrameReader::new();
        let mut got = Vec::new();
        for byte in &stream {
            r.push(std::slice::from_ref(byte));
            while let Some(f) = r.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, 3);
        assert_eq!(got[1], (4, b[3..].to_vec()));
        assert_eq!(r.pending(), 0);
    }
}
