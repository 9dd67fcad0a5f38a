//! Fuzz entry points, shared by the cargo-fuzz targets and the corpus-replay test.
//!
//! Contract: each function accepts any bytes, never panics on its own account, and asserts the
//! crate's invariants (limits respected, every refusal still answered with a well-formed
//! response, the session and the standalone SDP parser agreeing). An assertion failure here is
//! a bug found, which is what the fuzzer reports.

use crate::announce::{EncryptionFlags, HostCodecs, MAX_DIMENSION, MAX_FPS, StreamConfig};
use crate::limits::{MAX_BODY_BYTES, MAX_HEADERS, MAX_REQUEST_BYTES};
use crate::media::choose_audio;
use crate::request::{Parsed, parse_request};
use crate::response::Response;
use crate::session::{Event, LaunchContext, Outcome, PingPayload, RtspSession};

/// Most messages replayed from one input (an input is a concatenation of requests, so the
/// fuzzer can walk the state machine through its orderings).
pub const MAX_FUZZ_MESSAGES: usize = 16;

fn context() -> LaunchContext {
    let mut ctx = LaunchContext::new(PingPayload::from_u64(0x0011_2233_4455_6677), 0x1234_5678);
    ctx.codecs.hevc = true;
    ctx
}

fn check_response(resp: &Response) {
    let bytes = resp.to_bytes();
    let prefix = format!("RTSP/1.0 {} ", resp.status.0);
    assert!(bytes.starts_with(prefix.as_bytes()));
    // The first header is always CSeq (common-c rejects a headerless response).
    let head_end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response has a blank line");
    let head = std::str::from_utf8(&bytes[..head_end]).expect("response head is text");
    let mut lines = head.split("\r\n");
    let _status = lines.next();
    assert!(lines.next().is_some_and(|l| l.starts_with("CSeq: ")));
    for line in lines {
        let (name, _value) = line.split_once(": ").expect("Name: value");
        assert!(!name.is_empty() && !name.contains(' '));
    }
}

fn check_outcome(out: &Outcome) {
    check_response(&out.response);
    match &out.error {
        Some(e) => {
            assert_eq!(out.response.status, e.status());
            assert!(out.event.is_none());
        }
        None => assert_eq!(out.response.status.0, 200),
    }
}

/// Parse `data` as a sequence of requests and feed them to one session.
pub fn fuzz_request(data: &[u8]) {
    let mut session = RtspSession::new(context());
    let mut rest = data;
    for _ in 0..MAX_FUZZ_MESSAGES {
        match parse_request(rest) {
            Ok(Parsed::Complete { request, len }) => {
                assert!(len > 0 && len <= rest.len() && len <= MAX_REQUEST_BYTES);
                assert!(request.body.len() <= MAX_BODY_BYTES);
                assert!(request.headers.len() <= MAX_HEADERS);
                let out = session.handle(&request);
                check_outcome(&out);
                rest = &rest[len..];
            }
            Ok(Parsed::NeedMore) => {
                assert!(rest.len() < MAX_REQUEST_BYTES);
                // At EOF a plain connection treats this as a truncated message.
                check_outcome(&session.handle_message(rest));
                return;
            }
            Err(e) => {
                check_outcome(&RtspSession::malformed(&e));
                return;
            }
        }
    }
}

/// Parse `data` as an ANNOUNCE body, standalone and through a session, and check they agree.
pub fn fuzz_sdp(data: &[u8]) {
    let parsed = StreamConfig::parse(data);
    if let Ok(config) = &parsed {
        assert!((1..=MAX_DIMENSION).contains(&config.width));
        assert!((1..=MAX_DIMENSION).contains(&config.height));
        assert!((1..=MAX_FPS).contains(&config.max_fps));
        assert!(matches!(config.audio.channels, 2 | 6 | 8));
        for host in [None, Some("0.0.0.0"), Some("10.0.0.2")] {
            let layout = choose_audio(config, host).expect("a layout for 2/6/8 channels");
            assert_eq!(layout.channels, config.audio.channels);
        }
        for fec in [0, 20, 80, 81, 255] {
            let kbps = config.encoder_bitrate_kbps(fec);
            if config.configured_bitrate_kbps != 0 {
                assert!(kbps <= config.configured_bitrate_kbps);
            }
        }
        let all = HostCodecs {
            h264: true,
            hevc: true,
            hevc_main10: true,
            av1: true,
            av1_main10: true,
            yuv444: true,
        };
        let _ = config.check_host(all, EncryptionFlags(0));
        let _ = config.check_host(HostCodecs::default(), EncryptionFlags(7));
    }

    if data.len() > MAX_BODY_BYTES {
        return;
    }
    let mut session = RtspSession::new(context());
    for target in [
        "streamid=audio/0/0",
        "streamid=video/0/0",
        "streamid=control/13/0",
    ] {
        let msg = format!("SETUP {target} RTSP/1.0\r\nCSeq: 1\r\n\r\n");
        check_outcome(&session.handle_message(msg.as_bytes()));
    }
    let mut msg = format!(
        "ANNOUNCE streamid=control/13/0 RTSP/1.0\r\nCSeq: 6\r\nHost: 0.0.0.0\r\nContent-length: {}\r\n\r\n",
        data.len()
    )
    .into_bytes();
    msg.extend_from_slice(data);
    let out = session.handle_message(&msg);
    check_outcome(&out);
    let ctx = context();
    let expected = parsed.and_then(|c| c.check_host(ctx.codecs, ctx.encryption_required));
    match (&out.event, expected) {
        (Some(Event::Configured(_)), Ok(())) => {}
        (None, Err(e)) => assert_eq!(out.error, Some(crate::session::SessionError::Announce(e))),
        (event, expected) => panic!("session {event:?} disagrees with parser {expected:?}"),
    }
}
