//! The host's video-encryption policy in DESCRIBE and ANNOUNCE (`[gamestream] encryption`,
//! gamestream-host.md §A9, §A16), and ANNOUNCE's `x-ss-video[0].intraRefresh` (accepted and
//! reported; the host decides what to do with it).

mod common;

use common::*;
use strahl_rtsp::announce::keys;
use strahl_rtsp::{
    AnnounceError, Event, LaunchContext, PingPayload, RtspSession, SessionError, StatusCode,
    VideoEncryption,
};

fn session(policy: VideoEncryption) -> RtspSession {
    let mut c = LaunchContext::new(PingPayload::from_u64(7), 42);
    c.set_video_encryption(policy);
    RtspSession::new(c)
}

/// (encryptionSupported, encryptionRequested) as DESCRIBE states them.
fn describe(s: &mut RtspSession) -> (u32, u32) {
    let o = s.handle_message(&client_request("DESCRIBE rtsp://h:48010", 2, "h", &[], b""));
    assert_eq!(o.response.status, StatusCode::OK);
    let body = String::from_utf8(o.response.body).unwrap();
    let value = |key: &str| -> u32 {
        let line = body
            .lines()
            .find_map(|l| l.strip_prefix(&format!("a=x-ss-general.{key}:")))
            .unwrap_or_else(|| panic!("{key} in {body}"));
        line.trim().parse().unwrap()
    };
    (value("encryptionSupported"), value("encryptionRequested"))
}

fn setup_all(s: &mut RtspSession) {
    for (i, t) in ["audio/0/0", "video/0/0", "control/13/0"]
        .iter()
        .enumerate()
    {
        let r = client_request(&format!("SETUP streamid={t}"), 3 + i as u32, "h", &[], b"");
        assert_eq!(s.handle_message(&r).response.status, StatusCode::OK);
    }
}

fn announce(s: &mut RtspSession, sdp: &[u8]) -> strahl_rtsp::Outcome {
    s.handle_message(&client_request(
        "ANNOUNCE streamid=control/13/0",
        6,
        "h",
        &[],
        sdp,
    ))
}

#[test]
fn preferred_advertises_and_requests_video_but_refuses_nobody() {
    let mut s = session(VideoEncryption::Preferred);
    // CONTROL_V2 | VIDEO | AUDIO, both supported and requested.
    assert_eq!(describe(&mut s), (7, 7));
    setup_all(&mut s);
    // A client that enables only CONTROL_V2|AUDIO (Appendix A: encryptionEnabled 5) streams.
    let o = announce(&mut s, &appendix_a_sdp());
    assert!(
        matches!(o.event, Some(Event::Configured(_))),
        "{:?}",
        o.error
    );
    // And one that enables video gets it.
    let mut s = session(VideoEncryption::Preferred);
    setup_all(&mut s);
    let o = announce(&mut s, &appendix_a_with(keys::ENCRYPTION_ENABLED, "7"));
    match o.event {
        Some(Event::Configured(n)) => assert_eq!(n.config.encryption_enabled.0, 7),
        other => panic!("{other:?} {:?}", o.error),
    }
}

#[test]
fn required_refuses_a_client_without_video_encryption_with_403_and_a_reason() {
    let mut s = session(VideoEncryption::Required);
    assert_eq!(describe(&mut s), (7, 7));
    setup_all(&mut s);
    for enabled in ["5", "1", "0"] {
        let o = announce(&mut s, &appendix_a_with(keys::ENCRYPTION_ENABLED, enabled));
        assert_eq!(o.response.status.0, 403, "encryptionEnabled {enabled}");
        assert!(o.event.is_none());
        assert!(matches!(
            o.error,
            Some(SessionError::Announce(
                AnnounceError::EncryptionRequired { .. }
            ))
        ));
        let reason = String::from_utf8(o.response.body.clone()).unwrap();
        assert!(reason.contains("requires encrypted video"), "{reason}");
        assert!(
            o.error
                .unwrap()
                .to_string()
                .contains("requires encrypted video")
        );
    }
    // A refusal changes nothing: the same session accepts an encrypting client.
    let o = announce(&mut s, &appendix_a_with(keys::ENCRYPTION_ENABLED, "7"));
    assert!(
        matches!(o.event, Some(Event::Configured(_))),
        "{:?}",
        o.error
    );
}

#[test]
fn off_neither_advertises_nor_requests_video() {
    let mut s = session(VideoEncryption::Off);
    // CONTROL_V2 | AUDIO supported, CONTROL_V2 requested (Sunshine's LAN default).
    assert_eq!(describe(&mut s), (5, 1));
    setup_all(&mut s);
    let o = announce(&mut s, &appendix_a_sdp());
    assert!(
        matches!(o.event, Some(Event::Configured(_))),
        "{:?}",
        o.error
    );
}

#[test]
fn intra_refresh_is_accepted_and_reported() {
    for (value, want) in [(Some("1"), true), (Some("0"), false), (None, false)] {
        let mut s = session(VideoEncryption::Preferred);
        setup_all(&mut s);
        let sdp = match value {
            Some(v) => appendix_a_plus(&[&format!("a=x-ss-video[0].intraRefresh:{v} ")]),
            None => appendix_a_sdp(),
        };
        let o = announce(&mut s, &sdp);
        match o.event {
            Some(Event::Configured(n)) => assert_eq!(n.config.intra_refresh, want, "{value:?}"),
            other => panic!("{value:?}: {other:?} {:?}", o.error),
        }
    }
}
