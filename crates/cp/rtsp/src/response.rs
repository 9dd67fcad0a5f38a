//! Response writer (gamestream-host.md §A8, "parser quirks in common-c the host must satisfy").
//!
//! Contract: [`Response::write_to`] emits `RTSP/1.0 <code> <text>\r\n`, then every header as
//! `Name: value\r\n` with exactly one space after the colon, then `\r\n`, then the body.
//! A response always carries at least one header because every constructor takes the CSeq
//! (common-c reads a headerless response as malformed). Header values are sanitised: CR, LF and
//! other control bytes are replaced by spaces so no value can inject a header or end the head.
//! `Content-length` is added when the body is non-empty: common-c does not need it (it takes
//! everything after the blank line) but standard RTSP tooling does.

/// An RTSP status code with its reason phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusCode(pub u16);

impl StatusCode {
    pub const OK: StatusCode = StatusCode(200);
    pub const BAD_REQUEST: StatusCode = StatusCode(400);
    pub const FORBIDDEN: StatusCode = StatusCode(403);
    pub const NOT_FOUND: StatusCode = StatusCode(404);
    pub const REQUEST_ENTITY_TOO_LARGE: StatusCode = StatusCode(413);
    pub const REQUEST_URI_TOO_LONG: StatusCode = StatusCode(414);
    pub const SESSION_NOT_FOUND: StatusCode = StatusCode(454);
    pub const METHOD_NOT_VALID_IN_THIS_STATE: StatusCode = StatusCode(455);
    pub const NOT_IMPLEMENTED: StatusCode = StatusCode(501);
    pub const VERSION_NOT_SUPPORTED: StatusCode = StatusCode(505);

    /// Reason phrase from RFC 2326 §7.1.1.
    pub fn reason(self) -> &'static str {
        match self.0 {
            200 => "OK",
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            413 => "Request Entity Too Large",
            414 => "Request-URI Too Long",
            454 => "Session Not Found",
            455 => "Method Not Valid in This State",
            501 => "Not Implemented",
            505 => "RTSP Version not supported",
            _ => "Unknown",
        }
    }
}

/// A response under construction. Control-plane only (a handful per session), so it owns its
/// strings; the per-packet paths never see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: StatusCode,
    /// Header lines in emission order; `CSeq` is always first.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response echoing `cseq`. When the request's CSeq is unknown (it was missing or the
    /// request was unparsable) pass 0: the header must still be present.
    pub fn new(status: StatusCode, cseq: u32) -> Self {
        Response {
            status,
            headers: vec![("CSeq", cseq.to_string())],
            body: Vec::new(),
        }
    }

    /// Append a header; control bytes in `value` become spaces.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        let mut value: String = value.into();
        if value.bytes().any(|b| b.is_ascii_control()) {
            value = value
                .chars()
                .map(|c| if c.is_ascii_control() { ' ' } else { c })
                .collect();
        }
        self.headers.push((name, value));
        self
    }

    pub fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// First header with this name (ASCII-case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Serialise into `out` (appended). The caller reuses `out` across responses.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        // Writing into a Vec cannot fail.
        let _ = write!(
            out,
            "RTSP/1.0 {} {}\r\n",
            self.status.0,
            self.status.reason()
        );
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !self.body.is_empty() && self.header("Content-length").is_none() {
            let _ = write!(out, "Content-length: {}\r\n", self.body.len());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }

    /// Serialise into a fresh buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.body.len());
        self.write_to(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_status_headers_blank_line_body() {
        let r = Response::new(StatusCode::OK, 3)
            .with_header("Session", "DEADBEEFCAFE;timeout = 90")
            .with_header("Transport", "server_port=48000");
        assert_eq!(
            r.to_bytes(),
            b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: DEADBEEFCAFE;timeout = 90\r\nTransport: server_port=48000\r\n\r\n"
        );
        let r = Response::new(StatusCode::NOT_FOUND, 0).with_body(b"v=0\n".to_vec());
        assert_eq!(
            r.to_bytes(),
            b"RTSP/1.0 404 Not Found\r\nCSeq: 0\r\nContent-length: 4\r\n\r\nv=0\n"
        );
    }

    #[test]
    fn header_values_cannot_inject_lines() {
        let r = Response::new(StatusCode::OK, 1).with_header("X", "a\r\nEvil: 1\r\n\r\nb");
        let bytes = r.to_bytes();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert_eq!(text.matches("\r\n").count(), 4, "{text:?}");
        assert_eq!(r.header("x"), Some("a  Evil: 1    b"));
    }
}
