//! The full request sequence of gamestream-host.md §B10 (OPTIONS, DESCRIBE, SETUP×3, ANNOUNCE
//! with the Appendix A SDP, PLAY) through one session: exact response bytes, what the client
//! would extract from them, and the events.

mod common;

use common::*;
use strahl_rtsp::media::STEREO_HQ;
use strahl_rtsp::{
    Event, LaunchContext, NegotiatedStream, Parsed, PingPayload, RtspSession, StreamConfig,
    StreamKind, parse_request,
};

const PING: &str = "0123456789ABCDEF";
const CONNECT_DATA: u32 = 3_735_928_559;

fn context() -> LaunchContext {
    LaunchContext::new(PingPayload::new(PING).unwrap(), CONNECT_DATA)
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn appendix_a_body_matches_the_documented_format() {
    let sdp = appendix_a_sdp();
    // Every a= line ends " \r\n"; nothing else does.
    for line in text(&sdp).split_terminator("\r\n") {
        assert_eq!(line.starts_with("a="), line.ends_with(' '), "{line:?}");
    }
    // §B10 says the captured body was 1493 bytes; Appendix A as printed renders to 1458. The
    // 35 bytes are `a=x-nv-audio.surround.enable:0 ` (33 + CRLF), which the appendix leaves out,
    // and the client's two-space `m=video` suffix: see fuzz_corpus/sdp/appendix_a_wire.sdp,
    // byte-identical (but for the port) to what the real common-c sent (tests/captured.rs).
    assert_eq!(sdp.len(), 1458);
}

#[test]
fn b10_sequence_produces_the_expected_responses_and_events() {
    let mut session = RtspSession::new(context());
    let requests = b10_requests(&appendix_a_sdp());
    let mut outcomes = Vec::new();
    for req in &requests {
        // Plain-TCP path: the incremental parser sees the whole request at once here.
        let Ok(Parsed::Complete { request, len }) = parse_request(req) else {
            panic!("request did not parse: {}", text(req));
        };
        assert_eq!(len, req.len());
        outcomes.push(session.handle(&request));
    }
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o.error, None, "request {} refused", i + 1);
    }
    let bytes: Vec<Vec<u8>> = outcomes.iter().map(|o| o.response.to_bytes()).collect();

    assert_eq!(text(&bytes[0]), "RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n");

    let describe_body = "a=x-ss-general.featureFlags:0\n\
                         a=x-ss-general.encryptionSupported:5\n\
                         a=x-ss-general.encryptionRequested:1\n\
                         a=fmtp:97 surround-params=21101\n\
                         a=fmtp:97 surround-params=642012453\n\
                         a=fmtp:97 surround-params=660012345\n\
                         a=fmtp:97 surround-params=85301245673\n\
                         a=fmtp:97 surround-params=88001234567\n";
    assert_eq!(
        text(&bytes[1]),
        format!(
            "RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-length: {}\r\n\r\n{describe_body}",
            describe_body.len()
        )
    );
    assert_eq!(
        text(&bytes[2]),
        "RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: DEADBEEFCAFE;timeout = 90\r\n\
         Transport: server_port=48000\r\nX-SS-Ping-Payload: 0123456789ABCDEF\r\n\r\n"
    );
    assert_eq!(
        text(&bytes[3]),
        "RTSP/1.0 200 OK\r\nCSeq: 4\r\nSession: DEADBEEFCAFE;timeout = 90\r\n\
         Transport: server_port=47998\r\nX-SS-Ping-Payload: 0123456789ABCDEF\r\n\r\n"
    );
    assert_eq!(
        text(&bytes[4]),
        "RTSP/1.0 200 OK\r\nCSeq: 5\r\nSession: DEADBEEFCAFE;timeout = 90\r\n\
         Transport: server_port=47999\r\nX-SS-Connect-Data: 3735928559\r\n\r\n"
    );
    assert_eq!(text(&bytes[5]), "RTSP/1.0 200 OK\r\nCSeq: 6\r\n\r\n");
    assert_eq!(text(&bytes[6]), "RTSP/1.0 200 OK\r\nCSeq: 7\r\n\r\n");

    let events: Vec<Option<Event>> = outcomes.into_iter().map(|o| o.event).collect();
    assert_eq!(
        events,
        vec![
            None,
            None,
            Some(Event::Setup(StreamKind::Audio)),
            Some(Event::Setup(StreamKind::Video)),
            Some(Event::Setup(StreamKind::Control)),
            Some(Event::Configured(Box::new(NegotiatedStream {
                config: appendix_a_config(),
                // Host header 127.0.0.1 (not 0.0.0.0) → HQ stereo, §A17.
                audio: STEREO_HQ,
                // §A18: 20000 kbps at the default F = 20, AudioQuality 0 stereo.
                encoder_bitrate_kbps: 15_308,
            }))),
            Some(Event::Play),
        ]
    );
    assert!(session.is_playing());
}

#[test]
fn the_client_reads_what_it_needs_from_each_response() {
    let mut session = RtspSession::new(context());
    let views: Vec<ClientView> = b10_requests(&appendix_a_sdp())
        .iter()
        .map(|r| ClientView::parse(&session.handle_message(r).response.to_bytes()))
        .collect();
    assert!(views.iter().all(|v| v.status == 200));
    // DESCRIBE: non-empty; an H.264-only host carries neither codec marker (§A10).
    let describe = text(&views[1].payload);
    assert!(!describe.is_empty());
    assert!(!describe.contains("sprop-parameter-sets=AAAAAU"));
    assert!(!describe.contains("AV1/90000"));
    assert!(describe.contains("a=x-ss-general.encryptionSupported:5\n"));
    for (view, port) in views[2..5].iter().zip([48000, 47998, 47999]) {
        // The token the client keeps is what precedes ';'.
        let session_hdr = view.header("Session").unwrap();
        assert_eq!(session_hdr.split(';').next(), Some("DEADBEEFCAFE"));
        let transport = view.header("Transport").unwrap();
        let p: u16 = transport
            .strip_prefix("server_port=")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(p, port);
    }
    for v in &views[2..4] {
        assert_eq!(v.header("X-SS-Ping-Payload").map(str::len), Some(16));
    }
    let cd: u32 = views[4]
        .header("X-SS-Connect-Data")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(cd, CONNECT_DATA);
}

#[test]
fn incremental_parsing_split_at_every_byte_matches_whole_parse() {
    for req in b10_requests(&appendix_a_sdp()) {
        let Ok(Parsed::Complete {
            request: whole,
            len,
        }) = parse_request(&req)
        else {
            panic!("whole request did not parse");
        };
        for split in 0..req.len() {
            // The first `split` bytes arrived: always a valid prefix.
            assert_eq!(
                parse_request(&req[..split]),
                Ok(Parsed::NeedMore),
                "split at {split} of {}",
                text(&req)
            );
            // Then the rest arrives into the same receive buffer: the same request as whole.
            let mut buf = req[..split].to_vec();
            buf.extend_from_slice(&req[split..]);
            let Ok(Parsed::Complete { request, len: l }) = parse_request(&buf) else {
                panic!("after the rest arrived");
            };
            assert_eq!((request, l), (whole.clone(), len));
        }
    }
}

#[test]
fn wire_variant_parses_to_the_same_values() {
    // The 1493-byte on-the-wire form: the same values plus x-nv-audio.surround.enable:0.
    let wire = include_bytes!("../fuzz_corpus/sdp/appendix_a_wire.sdp");
    assert_eq!(wire.len(), 1493);
    let mut expected = appendix_a_config();
    expected.audio.surround_enable = Some(false);
    assert_eq!(StreamConfig::parse(wire), Ok(expected));
}

#[test]
fn encrypted_advertising_variant() {
    // Appendix A "Variant": with SS_ENC_VIDEO advertised, encryptionEnabled 7 and P = 1360.
    let mut ctx = context();
    ctx.encryption_supported.0 = 7;
    let sdp = appendix_a_with("x-ss-general.encryptionEnabled", "7");
    let sdp = String::from_utf8(sdp)
        .unwrap()
        .replace("packetSize:1392", "packetSize:1360");
    let mut session = RtspSession::new(ctx);
    let outs: Vec<_> = b10_requests(sdp.as_bytes())
        .iter()
        .map(|r| session.handle_message(r))
        .collect();
    let Some(Event::Configured(n)) = &outs[5].event else {
        panic!("ANNOUNCE refused: {:?}", outs[5].error);
    };
    assert_eq!(n.config.packet_size, 1360);
    assert_eq!(n.config.effective_encryption().0, 7);
    assert!(text(&outs[1].response.body).contains("a=x-ss-general.encryptionSupported:7\n"));
}
