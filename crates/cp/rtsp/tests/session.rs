//! The per-session state machine: ordering, refusals and their statuses, DESCRIBE contents,
//! configurable context, and the audio/bitrate choices carried by the Configured event.

mod common;

use common::*;
use strahl_rtsp::announce::keys;
use strahl_rtsp::media::{STEREO, SURROUND_51_HQ, SURROUND_71};
use strahl_rtsp::{
    AnnounceError, Event, LaunchContext, Outcome, PingPayload, RequestErrorKind, RtspSession,
    SessionError, SessionToken, StatusCode, StreamKind, SurroundParams, VideoCodec,
    VideoEncryption,
};

fn ctx() -> LaunchContext {
    LaunchContext::new(PingPayload::from_u64(0xfeed_f00d_0000_0001), 42)
}

fn req(method_target: &str, cseq: u32) -> Vec<u8> {
    client_request(method_target, cseq, "127.0.0.1", &[], b"")
}

fn announce(sdp: &[u8], host: &str) -> Vec<u8> {
    client_request("ANNOUNCE streamid=control/13/0", 6, host, &[], sdp)
}

fn setup_all(s: &mut RtspSession) {
    for (i, t) in ["audio/0/0", "video/0/0", "control/13/0"]
        .iter()
        .enumerate()
    {
        let o = s.handle_message(&req(&format!("SETUP streamid={t}"), 3 + i as u32));
        assert_eq!(o.response.status, StatusCode::OK);
    }
}

fn refused(o: &Outcome) -> (u16, SessionError) {
    assert!(o.event.is_none(), "a refusal carries no event");
    (o.response.status.0, o.error.expect("refused"))
}

fn configured(o: &Outcome) -> &strahl_rtsp::NegotiatedStream {
    match &o.event {
        Some(Event::Configured(n)) => n,
        other => panic!("expected Configured, got {other:?} / {:?}", o.error),
    }
}

#[test]
fn announce_before_each_missing_setup_is_455_naming_it() {
    for (missing, name) in [
        (StreamKind::Audio, "audio"),
        (StreamKind::Video, "video"),
        (StreamKind::Control, "control"),
    ] {
        let mut s = RtspSession::new(ctx());
        for (kind, t) in [
            (StreamKind::Audio, "audio/0/0"),
            (StreamKind::Video, "video/0/0"),
            (StreamKind::Control, "control/13/0"),
        ] {
            if kind != missing {
                s.handle_message(&req(&format!("SETUP streamid={t}"), 3));
            }
        }
        let o = s.handle_message(&announce(&appendix_a_sdp(), "127.0.0.1"));
        let (code, err) = refused(&o);
        assert_eq!(code, 455);
        let SessionError::OutOfOrder(why) = err else {
            panic!("{err:?}")
        };
        assert!(why.contains(name), "{why}");
        // Nothing changed: completing the SETUPs makes the same ANNOUNCE succeed.
        setup_all(&mut s);
        let o = s.handle_message(&announce(&appendix_a_sdp(), "127.0.0.1"));
        configured(&o);
    }
}

#[test]
fn play_and_repeats_out_of_order_are_455() {
    let mut s = RtspSession::new(ctx());
    let (code, err) = refused(&s.handle_message(&req("PLAY /", 1)));
    assert_eq!(
        (code, err),
        (455, SessionError::OutOfOrder("PLAY before ANNOUNCE"))
    );
    setup_all(&mut s);
    // Repeated SETUPs before ANNOUNCE are fine (a client retry).
    let o = s.handle_message(&req("SETUP streamid=video/0/0", 4));
    assert_eq!(o.event, Some(Event::Setup(StreamKind::Video)));
    configured(&s.handle_message(&announce(&appendix_a_sdp(), "127.0.0.1")));

    assert_eq!(
        refused(&s.handle_message(&announce(&appendix_a_sdp(), "x"))).0,
        455
    );
    assert_eq!(
        refused(&s.handle_message(&req("SETUP streamid=audio/0/0", 8))).0,
        455
    );
    assert_eq!(
        refused(&s.handle_message(&req("DESCRIBE rtsp://h:48010", 9))).0,
        455
    );
    assert!(!s.is_playing());
    assert_eq!(
        s.handle_message(&req("PLAY /", 10)).event,
        Some(Event::Play)
    );
    assert!(s.is_playing());
    let (code, err) = refused(&s.handle_message(&req("PLAY /", 11)));
    assert_eq!((code, err), (455, SessionError::OutOfOrder("second PLAY")));
    // OPTIONS is always fine.
    assert_eq!(
        s.handle_message(&req("OPTIONS *", 12)).response.status,
        StatusCode::OK
    );
}

#[test]
fn teardown_ends_the_session() {
    let mut s = RtspSession::new(ctx());
    setup_all(&mut s);
    let o = s.handle_message(&req("TEARDOWN /", 6));
    assert_eq!(
        (o.response.status, o.event),
        (StatusCode::OK, Some(Event::Teardown))
    );
    assert_eq!(
        refused(&s.handle_message(&announce(&appendix_a_sdp(), "h"))).0,
        455
    );
    assert_eq!(refused(&s.handle_message(&req("PLAY /", 8))).0, 455);
}

#[test]
fn unknown_stream_is_404_and_does_not_count_as_setup() {
    let mut s = RtspSession::new(ctx());
    for target in ["streamid=mic/0/0", "/", "streamid="] {
        let o = s.handle_message(&req(&format!("SETUP {target}"), 3));
        assert_eq!(refused(&o), (404, SessionError::UnknownStream));
        assert_eq!(o.response.header("CSeq"), Some("3"));
    }
}

#[test]
fn bad_requests_get_the_right_status_and_echo_cseq() {
    let mut s = RtspSession::new(ctx());
    // No CSeq: 400 with CSeq 0 (a response needs a header).
    let o = s.handle_message(b"OPTIONS * RTSP/1.0\r\n\r\n");
    assert_eq!(refused(&o), (400, SessionError::MissingCSeq));
    assert_eq!(
        o.response.to_bytes(),
        b"RTSP/1.0 400 Bad Request\r\nCSeq: 0\r\n\r\n"
    );
    // Malformed header after CSeq: echoed.
    let o = s.handle_message(b"OPTIONS * RTSP/1.0\r\nCSeq: 5\r\nno colon\r\n\r\n");
    let (code, err) = refused(&o);
    assert_eq!(code, 400);
    assert!(
        matches!(err, SessionError::Malformed(e) if e.kind == RequestErrorKind::MalformedHeader)
    );
    assert_eq!(o.response.header("CSeq"), Some("5"));
    // Truncated framed message.
    let o = s.handle_message(b"OPTIONS * RTSP/1.0\r\nCSeq: 6\r\n");
    assert!(
        matches!(refused(&o).1, SessionError::Malformed(e) if e.kind == RequestErrorKind::Truncated)
    );
    assert_eq!(o.response.header("CSeq"), Some("6"));
    // Version, oversize body, unknown method, wrong session.
    assert_eq!(
        s.handle_message(b"OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n")
            .response
            .status
            .0,
        505
    );
    assert_eq!(
        s.handle_message(b"ANNOUNCE x RTSP/1.0\r\nCSeq: 1\r\nContent-length: 999999\r\n\r\n")
            .response
            .status
            .0,
        413
    );
    let o = s.handle_message(&req("GET_PARAMETER /", 2));
    assert_eq!(refused(&o), (501, SessionError::NotImplemented));
    let o = s.handle_message(&client_request(
        "SETUP streamid=video/0/0",
        4,
        "h",
        &[("Session", "OTHERTOKEN;timeout = 90")],
        b"",
    ));
    assert_eq!(refused(&o), (454, SessionError::WrongSession));
    // None of these moved the state machine: a clean handshake still works.
    setup_all(&mut s);
    configured(&s.handle_message(&announce(&appendix_a_sdp(), "h")));
}

#[test]
fn refused_announce_leaves_the_handshake_open() {
    let mut s = RtspSession::new(ctx());
    setup_all(&mut s);
    let o = s.handle_message(&announce(&appendix_a_without(keys::MAX_FPS), "h"));
    assert_eq!(
        refused(&o),
        (
            400,
            SessionError::Announce(AnnounceError::MissingKey(keys::MAX_FPS))
        )
    );
    let hevc = appendix_a_with(keys::BITSTREAM_FORMAT, "1");
    let o = s.handle_message(&announce(&hevc, "h"));
    assert_eq!(
        refused(&o),
        (
            400,
            SessionError::Announce(AnnounceError::CodecDisabled(VideoCodec::Hevc))
        )
    );
    assert_eq!(refused(&s.handle_message(&req("PLAY /", 7))).0, 455);
    configured(&s.handle_message(&announce(&appendix_a_sdp(), "h")));
}

#[test]
fn mandatory_encryption_is_enforced_with_403() {
    let mut c = ctx();
    c.set_video_encryption(VideoEncryption::Required);
    assert_eq!(c.encryption_supported.0, 7);
    let mut s = RtspSession::new(c);
    let d = s.handle_message(&req("DESCRIBE rtsp://h:48010", 2));
    let body = String::from_utf8(d.response.body).unwrap();
    assert!(body.contains("a=x-ss-general.encryptionRequested:7\n"));
    setup_all(&mut s);
    let (code, err) = refused(&s.handle_message(&announce(&appendix_a_sdp(), "h")));
    assert_eq!(code, 403);
    assert!(matches!(
        err,
        SessionError::Announce(AnnounceError::EncryptionRequired { .. })
    ));
    let sdp = appendix_a_with(keys::ENCRYPTION_ENABLED, "7");
    configured(&s.handle_message(&announce(&sdp, "h")));
}

#[test]
fn describe_advertises_exactly_what_is_enabled() {
    let body = |c: LaunchContext| {
        let mut s = RtspSession::new(c);
        let o = s.handle_message(&req("DESCRIBE rtsp://h:48010", 2));
        assert_eq!(o.response.status, StatusCode::OK);
        String::from_utf8(o.response.body).unwrap()
    };
    let plain = body(ctx());
    assert!(!plain.contains("sprop-parameter-sets=AAAAAU"));
    assert!(!plain.contains("AV1/90000"));
    assert!(!plain.contains("refPicInvalidation"));

    let mut c = ctx();
    c.codecs.hevc = true;
    let hevc = body(c);
    assert!(hevc.contains("sprop-parameter-sets=AAAAAU"));
    assert!(!hevc.contains("AV1/90000"));

    let mut c = ctx();
    c.codecs.av1 = true;
    c.rfi_supported = true;
    c.host_feature_flags = 3;
    let av1 = body(c);
    assert!(av1.contains("a=rtpmap:98 AV1/90000\n"));
    assert!(!av1.contains("sprop-parameter-sets"));
    assert!(av1.contains("a=x-nv-video[0].refPicInvalidation:1\n"));
    assert!(av1.starts_with("a=x-ss-general.featureFlags:3\n"));

    let mut c = ctx();
    c.launch_surround_params = SurroundParams::new("642012453");
    let launch = body(c);
    let lines: Vec<&str> = launch
        .lines()
        .filter(|l| l.starts_with("a=fmtp:97 surround-params="))
        .collect();
    assert_eq!(
        lines,
        [
            "a=fmtp:97 surround-params=642012453",
            "a=fmtp:97 surround-params=642012453",
            "a=fmtp:97 surround-params=21101",
            "a=fmtp:97 surround-params=642012453",
            "a=fmtp:97 surround-params=660012345",
            "a=fmtp:97 surround-params=85301245673",
            "a=fmtp:97 surround-params=88001234567",
        ]
    );
}

#[test]
fn context_values_reach_the_setup_replies() {
    let mut c = ctx();
    c.session_token = SessionToken::new("abc123").unwrap();
    c.session_timeout_s = 30;
    c.audio_port = 1111;
    c.video_port = 2222;
    c.control_port = 3333;
    c.connect_data = u32::MAX;
    let mut s = RtspSession::new(c);
    let replies: Vec<_> = ["audio/0/0", "video/0/0", "control/13/0"]
        .iter()
        .map(|t| {
            s.handle_message(&req(&format!("SETUP streamid={t}"), 3))
                .response
        })
        .collect();
    for (r, port) in replies.iter().zip([1111, 2222, 3333]) {
        assert_eq!(r.header("Session"), Some("abc123;timeout = 30"));
        assert_eq!(
            r.header("Transport"),
            Some(format!("server_port={port}").as_str())
        );
    }
    assert_eq!(
        replies[0].header("X-SS-Ping-Payload"),
        Some("FEEDF00D00000001")
    );
    assert_eq!(
        replies[1].header("X-SS-Ping-Payload"),
        Some("FEEDF00D00000001")
    );
    assert_eq!(replies[2].header("X-SS-Ping-Payload"), None);
    assert_eq!(replies[2].header("X-SS-Connect-Data"), Some("4294967295"));
    assert_eq!(replies[0].header("X-SS-Connect-Data"), None);
    // The new token is the one accepted afterwards.
    let o = s.handle_message(&client_request(
        "ANNOUNCE streamid=control/13/0",
        6,
        "h",
        &[("Session", "abc123")],
        &appendix_a_sdp(),
    ));
    configured(&o);
}

#[test]
fn audio_choice_follows_host_header_and_audio_quality() {
    let run = |sdp: &[u8], host: &str| {
        let mut s = RtspSession::new(ctx());
        setup_all(&mut s);
        let o = s.handle_message(&announce(sdp, host));
        configured(&o).clone()
    };
    // Below 15000 kbps the client sends Host: 0.0.0.0 → normal-quality stereo (§B6).
    let n = run(&appendix_a_sdp(), "0.0.0.0");
    assert_eq!(n.audio, STEREO);
    assert_eq!(n.audio.bitrate_bps, 96_000);
    assert_eq!(n.encoder_bitrate_kbps, 15_308);

    let six_hq = String::from_utf8(appendix_a_with(keys::NUM_CHANNELS, "6"))
        .unwrap()
        .replace("channelMask:3", "channelMask:63")
        .replace("AudioQuality:0", "AudioQuality:1");
    let n = run(six_hq.as_bytes(), "0.0.0.0");
    assert_eq!(n.audio, SURROUND_51_HQ);
    assert_eq!(n.config.audio.channel_mask, 63);
    // 20000·0.8 = 16000; −min(6·256, 3200) = 14464; −500 = 13964.
    assert_eq!(n.encoder_bitrate_kbps, 13_964);

    let eight = appendix_a_with(keys::NUM_CHANNELS, "8");
    assert_eq!(run(&eight, "10.0.0.2").audio, SURROUND_71);

    // The context's FEC percentage is F.
    let mut c = ctx();
    c.fec_percent = 50;
    let mut s = RtspSession::new(c);
    setup_all(&mut s);
    let o = s.handle_message(&announce(&appendix_a_sdp(), "h"));
    // 20000·0.5 = 10000; −192 = 9808; −500 = 9308.
    assert_eq!(configured(&o).encoder_bitrate_kbps, 9_308);
}
