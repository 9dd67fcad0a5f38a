//! Request parser for the Moonlight RTSP dialect (gamestream-host.md §A8, §A9).
//!
//! Contract:
//! - [`parse_request`] takes the bytes received so far and returns either a complete [`Request`]
//!   borrowing from them (plus how many bytes it used), [`Parsed::NeedMore`], or a typed
//!   [`RequestError`]. It keeps no state between calls: call it again with the longer buffer.
//!   Every prefix of a valid request yields `NeedMore`, never an error.
//! - Bounded: it never looks past [`MAX_REQUEST_BYTES`](crate::limits::MAX_REQUEST_BYTES) and
//!   returns an error as soon as a line, the head or the declared body exceeds its limit. It never
//!   panics on any input.
//! - The dialect is narrower than RFC 2326 in one way and wider in another: the request target is
//!   taken verbatim (Moonlight sends relative targets such as `streamid=video/0/0`, which generic
//!   RTSP parsers reject, ecosystem.md §2.5), and bare `\n` line ends are accepted next to `\r\n`.
//! - [`parse_message`] is the variant for the encrypted `rtspenc` framing, where one decrypted
//!   frame holds exactly one whole message: a short message is an error, not `NeedMore`.

use crate::limits::{
    MAX_BODY_BYTES, MAX_HEAD_BYTES, MAX_HEADER_LINE, MAX_HEADERS, MAX_REQUEST_LINE,
};
use crate::response::StatusCode;

/// The RTSP methods the GameStream dialect uses; anything else is kept as [`Method::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method<'a> {
    Options,
    Describe,
    Setup,
    Announce,
    Play,
    Teardown,
    /// A syntactically valid method this dialect does not use (answered 501 by the session).
    Other(&'a str),
}

impl<'a> Method<'a> {
    fn from_token(token: &'a str) -> Self {
        // Methods are case-sensitive (RFC 2326 §6.1).
        match token {
            "OPTIONS" => Method::Options,
            "DESCRIBE" => Method::Describe,
            "SETUP" => Method::Setup,
            "ANNOUNCE" => Method::Announce,
            "PLAY" => Method::Play,
            "TEARDOWN" => Method::Teardown,
            other => Method::Other(other),
        }
    }

    /// The method as it appears on the wire.
    pub fn as_str(&self) -> &'a str {
        match self {
            Method::Options => "OPTIONS",
            Method::Describe => "DESCRIBE",
            Method::Setup => "SETUP",
            Method::Announce => "ANNOUNCE",
            Method::Play => "PLAY",
            Method::Teardown => "TEARDOWN",
            Method::Other(s) => s,
        }
    }
}

/// One header line, name and value as received (value trimmed of surrounding blanks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// A complete, syntactically valid request borrowing from the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: Method<'a>,
    /// The request target verbatim: `rtsp://10.0.0.2:48010`, `streamid=audio/0/0`, `/`, …
    pub target: &'a str,
    /// Header lines in arrival order (at most [`MAX_HEADERS`]).
    pub headers: Vec<Header<'a>>,
    /// The `CSeq` header, parsed. `None` when absent (the session answers 400).
    pub cseq: Option<u32>,
    /// Exactly `Content-length` bytes (empty when the header is absent).
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// First header with this name, compared ASCII-case-insensitively.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The session token of the `Session` header (the part before any `;`), if present.
    pub fn session(&self) -> Option<&'a str> {
        self.header("Session")
            .map(|v| v.split(';').next().unwrap_or("").trim())
    }
}

/// Outcome of feeding the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A whole request; `len` bytes of the buffer belong to it (head + body).
    Complete { request: Request<'a>, len: usize },
    /// The bytes so far are a valid prefix; read more and call again.
    NeedMore,
}

/// Why a request was rejected. Every variant is peer misbehaviour (or a peer we do not serve).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestErrorKind {
    /// The request line exceeds [`MAX_REQUEST_LINE`].
    RequestLineTooLong,
    /// A header line exceeds [`MAX_HEADER_LINE`].
    HeaderLineTooLong,
    /// More than [`MAX_HEADERS`] header lines.
    TooManyHeaders,
    /// Request line + headers exceed [`MAX_HEAD_BYTES`].
    HeadTooLarge,
    /// `Content-length` exceeds [`MAX_BODY_BYTES`] (value saturated at `u64::MAX`).
    BodyTooLarge { declared: u64 },
    /// Not `METHOD SP target SP version`, or a method/target with forbidden bytes.
    MalformedRequestLine,
    /// A version other than `RTSP/1.0`.
    UnsupportedVersion,
    /// A header line without `:`, with an empty or invalid name, or a folded continuation line.
    MalformedHeader,
    /// A control byte or invalid UTF-8 in the head.
    InvalidByte,
    /// `Content-length` is not a plain decimal number.
    BadContentLength,
    /// Two `Content-length` headers with different values.
    ConflictingContentLength,
    /// `CSeq` is not a plain decimal u32, or two differing `CSeq` headers.
    BadCSeq,
    /// A framed (`rtspenc`) message ended before the head or declared body did.
    Truncated,
}

/// A rejected request: what went wrong, and the CSeq if it was read before the error so the
/// error response can echo it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestError {
    pub kind: RequestErrorKind,
    pub cseq: Option<u32>,
}

impl RequestError {
    fn new(kind: RequestErrorKind, cseq: Option<u32>) -> Self {
        RequestError { kind, cseq }
    }

    /// The RTSP status the caller should answer with.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            RequestErrorKind::RequestLineTooLong => StatusCode::REQUEST_URI_TOO_LONG,
            RequestErrorKind::BodyTooLarge { .. } => StatusCode::REQUEST_ENTITY_TOO_LARGE,
            RequestErrorKind::UnsupportedVersion => StatusCode::VERSION_NOT_SUPPORTED,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed RTSP request: {:?}", self.kind)
    }
}

impl std::error::Error for RequestError {}

/// Parse the bytes received so far on a plain (`rtsp://`) connection. See the module contract.
pub fn parse_request(buf: &[u8]) -> Result<Parsed<'_>, RequestError> {
    let mut cseq: Option<u32> = None;
    let err = |kind, cseq| Err(RequestError::new(kind, cseq));

    // Request line.
    let (line, mut pos) = match next_line(buf, 0, MAX_REQUEST_LINE) {
        Line::Complete(line, next) => (line, next),
        Line::Partial => return Ok(Parsed::NeedMore),
        Line::TooLong => return err(RequestErrorKind::RequestLineTooLong, None),
        Line::Invalid => return err(RequestErrorKind::InvalidByte, None),
    };
    let (method, target) = parse_request_line(line)?;

    let mut headers: Vec<Header<'_>> = Vec::new();
    let mut content_length: Option<u64> = None;
    loop {
        let line = match next_line(buf, pos, MAX_HEADER_LINE) {
            Line::Complete(line, next) => {
                if next > MAX_HEAD_BYTES {
                    return err(RequestErrorKind::HeadTooLarge, cseq);
                }
                pos = next;
                line
            }
            Line::Partial => {
                // The unfinished line ends at or beyond buf.len(); if that is already past the
                // head limit, more bytes cannot help.
                if buf.len() >= MAX_HEAD_BYTES {
                    return err(RequestErrorKind::HeadTooLarge, cseq);
                }
                return Ok(Parsed::NeedMore);
            }
            Line::TooLong => return err(RequestErrorKind::HeaderLineTooLong, cseq),
            Line::Invalid => return err(RequestErrorKind::InvalidByte, cseq),
        };
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return err(RequestErrorKind::TooManyHeaders, cseq);
        }
        let header = parse_header_line(line).map_err(|k| RequestError::new(k, cseq))?;
        if header.name.eq_ignore_ascii_case("CSeq") {
            let v = parse_decimal(header.value)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or(RequestError::new(RequestErrorKind::BadCSeq, cseq))?;
            if cseq.is_some_and(|old| old != v) {
                return err(RequestErrorKind::BadCSeq, cseq);
            }
            cseq = Some(v);
        } else if header.name.eq_ignore_ascii_case("Content-length") {
            let v = parse_decimal(header.value)
                .ok_or(RequestError::new(RequestErrorKind::BadContentLength, cseq))?;
            if content_length.is_some_and(|old| old != v) {
                return err(RequestErrorKind::ConflictingContentLength, cseq);
            }
            if v > MAX_BODY_BYTES as u64 {
                return err(RequestErrorKind::BodyTooLarge { declared: v }, cseq);
            }
            content_length = Some(v);
        }
        headers.push(header);
    }

    // Bounded by MAX_BODY_BYTES above, so the cast cannot truncate.
    let body_len = content_length.unwrap_or(0) as usize;
    let available = buf.len() - pos;
    if available < body_len {
        return Ok(Parsed::NeedMore);
    }
    let body = &buf[pos..pos + body_len];
    Ok(Parsed::Complete {
        request: Request {
            method,
            target,
            headers,
            cseq,
            body,
        },
        len: pos + body_len,
    })
}

/// Parse one whole message taken from an `rtspenc` frame (or any transport that delimits
/// messages). A message that ends early is [`RequestErrorKind::Truncated`]. Bytes after the
/// declared body are ignored, as a plain-TCP peer's trailing bytes would be.
pub fn parse_message(msg: &[u8]) -> Result<Request<'_>, RequestError> {
    match parse_request(msg)? {
        Parsed::Complete { request, .. } => Ok(request),
        Parsed::NeedMore => Err(RequestError::new(
            RequestErrorKind::Truncated,
            best_effort_cseq(msg),
        )),
    }
}

/// Scan a truncated head for a CSeq so the error response can still echo it.
fn best_effort_cseq(msg: &[u8]) -> Option<u32> {
    msg.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let line = std::str::from_utf8(line).ok()?;
        let (name, value) = line.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("CSeq") {
            return None;
        }
        parse_decimal(value.trim()).and_then(|v| u32::try_from(v).ok())
    })
}

enum Line<'a> {
    /// The line without its line end, and the offset just past the line end.
    Complete(&'a str, usize),
    Partial,
    TooLong,
    /// A complete line holding a control byte or invalid UTF-8.
    Invalid,
}

/// Find the line starting at `start`, at most `max` bytes long without its `\r\n` or `\n`.
fn next_line(buf: &[u8], start: usize, max: usize) -> Line<'_> {
    let rest = buf.get(start..).unwrap_or(&[]);
    // A valid line is at most max bytes + "\r\n".
    let window = &rest[..rest.len().min(max + 2)];
    match window.iter().position(|&b| b == b'\n') {
        Some(nl) => {
            let raw = &window[..nl];
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.len() > max {
                return Line::TooLong;
            }
            match check_bytes(raw) {
                Some(s) => Line::Complete(s, start + nl + 1),
                None => Line::Invalid,
            }
        }
        None if window.len() == max + 2 => Line::TooLong,
        None => Line::Partial,
    }
}

/// The line as text, if it is UTF-8 without control bytes (horizontal tab allowed).
fn check_bytes(raw: &[u8]) -> Option<&str> {
    if raw.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return None;
    }
    std::str::from_utf8(raw).ok()
}

fn parse_request_line(line: &str) -> Result<(Method<'_>, &str), RequestError> {
    let malformed = RequestError::new(RequestErrorKind::MalformedRequestLine, None);
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed);
    };
    if !method.bytes().all(is_token_byte) {
        return Err(malformed);
    }
    if !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(malformed);
    }
    if version != "RTSP/1.0" {
        let kind = if version.starts_with("RTSP/") {
            RequestErrorKind::UnsupportedVersion
        } else {
            RequestErrorKind::MalformedRequestLine
        };
        return Err(RequestError::new(kind, None));
    }
    Ok((Method::from_token(method), target))
}

fn parse_header_line(line: &str) -> Result<Header<'_>, RequestErrorKind> {
    // A leading blank is an obsolete folded continuation line: rejected, not merged.
    if line.starts_with([' ', '\t']) {
        return Err(RequestErrorKind::MalformedHeader);
    }
    let (name, value) = line
        .split_once(':')
        .ok_or(RequestErrorKind::MalformedHeader)?;
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(RequestErrorKind::MalformedHeader);
    }
    Ok(Header {
        name,
        value: value.trim_matches([' ', '\t']),
    })
}

/// RFC 7230 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A plain run of ASCII digits (no sign, no blanks), saturating at `u64::MAX`.
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETUP: &[u8] = b"SETUP streamid=video/0/0 RTSP/1.0\r\nCSeq: 4\r\nX-GS-ClientVersion: 14\r\nHost: 10.0.0.2\r\nSession: DEADBEEFCAFE\r\nTransport: unicast;X-GS-ClientPort=50000-50001\r\nIf-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n";

    fn complete(buf: &[u8]) -> (Request<'_>, usize) {
        match parse_request(buf) {
            Ok(Parsed::Complete { request, len }) => (request, len),
            other => panic!("expected a complete request, got {other:?}"),
        }
    }

    #[test]
    fn parses_relative_target_and_headers() {
        let (req, len) = complete(SETUP);
        assert_eq!(len, SETUP.len());
        assert_eq!(req.method, Method::Setup);
        assert_eq!(req.target, "streamid=video/0/0");
        assert_eq!(req.cseq, Some(4));
        assert_eq!(req.header("x-gs-clientversion"), Some("14"));
        assert_eq!(
            req.header("TRANSPORT"),
            Some("unicast;X-GS-ClientPort=50000-50001")
        );
        assert_eq!(req.session(), Some("DEADBEEFCAFE"));
        assert_eq!(req.headers.len(), 6);
        assert!(req.body.is_empty());
    }

    #[test]
    fn body_follows_content_length_and_extra_bytes_are_left() {
        let msg = b"ANNOUNCE streamid=control/13/0 RTSP/1.0\r\nCSeq: 6\r\ncontent-LENGTH: 5\r\n\r\nhelloEXTRA";
        let (req, len) = complete(msg);
        assert_eq!(req.body, b"hello");
        assert_eq!(len, msg.len() - 5);
        assert_eq!(req.method, Method::Announce);
    }

    #[test]
    fn bare_lf_line_ends_are_accepted() {
        let (req, _) = complete(b"PLAY / RTSP/1.0\nCSeq: 7\n\n");
        assert_eq!(req.method, Method::Play);
        assert_eq!(req.target, "/");
        assert_eq!(req.cseq, Some(7));
    }

    #[test]
    fn every_prefix_needs_more() {
        for i in 0..SETUP.len() {
            assert_eq!(
                parse_request(&SETUP[..i]),
                Ok(Parsed::NeedMore),
                "prefix {i}"
            );
        }
    }

    fn kind(buf: &[u8]) -> RequestErrorKind {
        match parse_request(buf) {
            Err(e) => e.kind,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn malformed_inputs_are_typed_errors() {
        use RequestErrorKind::*;
        assert_eq!(kind(b"OPTIONS\r\n\r\n"), MalformedRequestLine);
        assert_eq!(kind(b"OPTIONS / RTSP/1.0 x\r\n\r\n"), MalformedRequestLine);
        assert_eq!(kind(b"OPTIONS / HTTP/1.1\r\n\r\n"), MalformedRequestLine);
        assert_eq!(kind(b"OPTIONS / RTSP/2.0\r\n\r\n"), UnsupportedVersion);
        assert_eq!(kind(b"OPT(ONS / RTSP/1.0\r\n\r\n"), MalformedRequestLine);
        assert_eq!(
            kind(b"OPTIONS / RTSP/1.0\r\nCSeq 1\r\n\r\n"),
            MalformedHeader
        );
        assert_eq!(kind(b"OPTIONS / RTSP/1.0\r\n: 1\r\n\r\n"), MalformedHeader);
        assert_eq!(
            kind(b"OPTIONS / RTSP/1.0\r\nA: 1\r\n folded\r\n\r\n"),
            MalformedHeader
        );
        assert_eq!(kind(b"OPTIONS / RTSP/1.0\r\nCSeq: -1\r\n\r\n"), BadCSeq);
        assert_eq!(kind(b"OPTIONS / RTSP/1.0\r\nCSeq: +1\r\n\r\n"), BadCSeq);
        assert_eq!(
            kind(b"OPTIONS / RTSP/1.0\r\nCSeq: 4294967296\r\n\r\n"),
            BadCSeq
        );
        assert_eq!(
            kind(b"OPTIONS / RTSP/1.0\r\nCSeq: 1\r\nCSeq: 2\r\n\r\n"),
            BadCSeq
        );
        assert_eq!(
            kind(b"OPTIONS / RTSP/1.0\r\nContent-length: x\r\n\r\n"),
            BadContentLength
        );
        assert_eq!(
            kind(b"OPTIONS / RTSP/1.0\r\nContent-length: 1\r\nContent-Length: 2\r\n\r\n"),
            ConflictingContentLength
        );
        assert_eq!(
            kind(b"OPTIONS / RTSP/1.0\r\nContent-length: 99999999999999999999999\r\n\r\n"),
            BodyTooLarge { declared: u64::MAX }
        );
        assert_eq!(kind(b"OPTIONS / RTSP/1.0\r\nA: \x01\r\n\r\n"), InvalidByte);
        assert_eq!(kind(b"OPTIONS / RTSP/1.0\r\nA: \xff\r\n\r\n"), InvalidByte);
        assert_eq!(kind(b"OPTIONS / RTSP/1.0\r\nA: b\rc\r\n\r\n"), InvalidByte);
    }

    #[test]
    fn cseq_read_before_an_error_is_kept() {
        let e = parse_request(b"OPTIONS / RTSP/1.0\r\nCSeq: 9\r\nbad\r\n\r\n").unwrap_err();
        assert_eq!(e.cseq, Some(9));
        assert_eq!(e.kind, RequestErrorKind::MalformedHeader);
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn limits_are_enforced_at_the_boundary() {
        // Request line of exactly MAX_REQUEST_LINE bytes is fine; one more is not.
        let make_line = |n: usize| {
            let mut v = b"OPTIONS /".to_vec();
            v.resize(n - b" RTSP/1.0".len(), b'a');
            v.extend_from_slice(b" RTSP/1.0");
            assert_eq!(v.len(), n);
            v
        };
        let mut ok = make_line(MAX_REQUEST_LINE);
        ok.extend_from_slice(b"\r\nCSeq: 1\r\n\r\n");
        assert!(matches!(parse_request(&ok), Ok(Parsed::Complete { .. })));
        let mut long = make_line(MAX_REQUEST_LINE + 1);
        long.extend_from_slice(b"\r\n\r\n");
        assert_eq!(kind(&long), RequestErrorKind::RequestLineTooLong);
        // Without any line end, the error comes as soon as the line cannot fit.
        let unterminated = vec![b'A'; MAX_REQUEST_LINE + 2];
        assert_eq!(kind(&unterminated), RequestErrorKind::RequestLineTooLong);
        assert_eq!(
            parse_request(&unterminated[..MAX_REQUEST_LINE + 1]),
            Ok(Parsed::NeedMore)
        );

        let mut many = b"OPTIONS / RTSP/1.0\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(kind(&many), RequestErrorKind::TooManyHeaders);

        let mut big_head = b"OPTIONS / RTSP/1.0\r\n".to_vec();
        let header = format!("X: {}\r\n", "v".repeat(MAX_HEADER_LINE - 3));
        while big_head.len() < MAX_HEAD_BYTES {
            big_head.extend_from_slice(header.as_bytes());
        }
        assert_eq!(kind(&big_head), RequestErrorKind::HeadTooLarge);

        let body_limit = format!(
            "ANNOUNCE x RTSP/1.0\r\nContent-length: {}\r\n\r\n",
            MAX_BODY_BYTES + 1
        );
        assert_eq!(
            kind(body_limit.as_bytes()),
            RequestErrorKind::BodyTooLarge {
                declared: MAX_BODY_BYTES as u64 + 1
            }
        );
    }

    #[test]
    fn framed_message_must_be_whole() {
        let e = parse_message(&SETUP[..SETUP.len() - 2]).unwrap_err();
        assert_eq!(e.kind, RequestErrorKind::Truncated);
        assert_eq!(e.cseq, Some(4));
        assert_eq!(parse_message(SETUP).unwrap().cseq, Some(4));
    }

    #[test]
    fn unknown_methods_are_kept() {
        let (req, _) = complete(b"GET_PARAMETER / RTSP/1.0\r\nCSeq: 1\r\n\r\n");
        assert_eq!(req.method, Method::Other("GET_PARAMETER"));
        assert_eq!(req.method.as_str(), "GET_PARAMETER");
    }
}
