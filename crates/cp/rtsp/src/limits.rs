//! Size limits applied to everything parsed from the network.
//!
//! Contract: a request that fits inside these limits is parsed; anything larger is rejected with a
//! typed error as soon as the excess is visible, so a peer can never make the parser buffer more
//! than `MAX_HEAD_BYTES + MAX_BODY_BYTES` bytes or scan more than that many bytes per call.
//!
//! The numbers are sized from the largest message a real client sends (gamestream-host.md §B10 and
//! Appendix A: the biggest request is the ANNOUNCE with a 1493-byte SDP and ~150 bytes of head;
//! the longest request line is `OPTIONS rtsp://<ip>:48010 RTSP/1.0`, under 80 bytes with an
//! IPv6 literal). Each limit leaves roughly 10x headroom over that so future attributes or a
//! longer host name never trip it, while keeping a hostile peer's cost trivially small.

/// Longest accepted request line (method, target, version), excluding the line end.
/// Observed: ≤ 80 bytes. RFC 2326 suggests no limit; 1 KiB is ample.
pub const MAX_REQUEST_LINE: usize = 1024;

/// Longest accepted single header line, excluding the line end. Observed: ≤ 60 bytes
/// (`Transport: unicast;X-GS-ClientPort=50000-50001`).
pub const MAX_HEADER_LINE: usize = 1024;

/// Most header lines accepted in one request. Observed: ≤ 6 (CSeq, X-GS-ClientVersion, Host,
/// Session, Content-type, Content-length).
pub const MAX_HEADERS: usize = 32;

/// Largest accepted head: request line + headers + the blank line, line ends included.
/// Observed: ≤ 250 bytes.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Largest accepted body (`Content-length`). Observed: the 1493-byte ANNOUNCE SDP of Appendix A
/// (about 2 KiB with surround and HDR attributes). 16 KiB is ~10x that.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Most `a=`/`m=`/other lines accepted in one ANNOUNCE SDP. Observed: 39 lines in Appendix A.
pub const MAX_SDP_LINES: usize = 512;

/// Largest buffer the parser ever needs to hold for one request.
pub const MAX_REQUEST_BYTES: usize = MAX_HEAD_BYTES + MAX_BODY_BYTES;
