//! ANNOUNCE bodies captured from the real moonlight-common-c (moonlight-python 0.3.0 wheel)
//! talking to `examples/loopback_rtsp_host.rs` through the Moonlight driver's `rtsp` subcommand
//! (`crates/test/moonlight/driver.py`, see `interop/README.md`), one per interop case. The host's video port in those runs was 48098.

mod common;

use common::appendix_a_config;
use strahl_rtsp::media::{STEREO, STEREO_HQ, SURROUND_51_HQ};
use strahl_rtsp::{StreamConfig, VideoCodec, choose_audio};

const H264: &[u8] = include_bytes!("../fuzz_corpus/sdp/moonlight_h264_720p60_20M.sdp");
const HEVC: &[u8] = include_bytes!("../fuzz_corpus/sdp/moonlight_hevc_1080p120_10M.sdp");
const AV1: &[u8] = include_bytes!("../fuzz_corpus/sdp/moonlight_av1_2160p60_80M_51hq.sdp");

#[test]
fn h264_capture_is_appendix_a_plus_surround_enable() {
    // Same parameters as Appendix A (1280x720@60, 20000 kbps, H.264, stereo): 1493 bytes as in
    // §B10, and the same values but for the port and the surround.enable line.
    assert_eq!(H264.len(), 1493);
    let mut expected = appendix_a_config();
    expected.video_port = Some(48098);
    expected.audio.surround_enable = Some(false);
    let c = StreamConfig::parse(H264).unwrap();
    assert_eq!(c, expected);
    // That run sent Host: 127.0.0.1 (≥ 15000 kbps) → HQ stereo.
    assert_eq!(choose_audio(&c, Some("127.0.0.1")), Some(STEREO_HQ));
}

#[test]
fn hevc_capture() {
    let c = StreamConfig::parse(HEVC).unwrap();
    assert_eq!((c.width, c.height, c.max_fps), (1920, 1080, 120));
    assert_eq!(c.codec, VideoCodec::Hevc);
    assert_eq!(c.client_supports_hevc, Some(true));
    // 0.8 × 10000 for the legacy fields; the configured value is the user's.
    assert_eq!(
        (c.configured_bitrate_kbps, c.maximum_bitrate_kbps),
        (10_000, 8_000)
    );
    // 10000·0.8 = 8000; −192 = 7808; −500 = 7308.
    assert_eq!(c.encoder_bitrate_kbps(20), 7_308);
    // That run sent Host: 0.0.0.0 (< 15000 kbps) → normal stereo.
    assert_eq!(choose_audio(&c, Some("0.0.0.0")), Some(STEREO));
}

#[test]
fn av1_surround_capture() {
    let c = StreamConfig::parse(AV1).unwrap();
    assert_eq!((c.width, c.height, c.max_fps), (3840, 2160, 60));
    assert_eq!(c.codec, VideoCodec::Av1);
    assert_eq!(c.audio.channels, 6);
    assert_eq!(c.audio.channel_mask, 63);
    assert!(c.audio.surround_high_quality);
    assert_eq!(c.audio.surround_enable, Some(true));
    assert_eq!(choose_audio(&c, Some("127.0.0.1")), Some(SURROUND_51_HQ));
    // 80000·0.8 = 64000; −min(6·256, 12800) = 62464; −500 = 61964.
    assert_eq!(c.encoder_bitrate_kbps(20), 61_964);
}

/// The seven requests the real client sent in the h264_hq run, replayed through a fresh session:
/// the same acceptance and the same negotiated stream the live run reported.
#[test]
fn captured_request_sequence_replays() {
    use strahl_rtsp::{Event, LaunchContext, PingPayload, RtspSession};
    let requests: [&[u8]; 7] = [
        include_bytes!("../fuzz_corpus/request/moonlight_h264_hq_01_options.bin"),
        include_bytes!("../fuzz_corpus/request/moonlight_h264_hq_02_describe.bin"),
        include_bytes!("../fuzz_corpus/request/moonlight_h264_hq_03_setup.bin"),
        include_bytes!("../fuzz_corpus/request/moonlight_h264_hq_04_setup.bin"),
        include_bytes!("../fuzz_corpus/request/moonlight_h264_hq_05_setup.bin"),
        include_bytes!("../fuzz_corpus/request/moonlight_h264_hq_06_announce.bin"),
        include_bytes!("../fuzz_corpus/request/moonlight_h264_hq_07_play.bin"),
    ];
    let mut session = RtspSession::new(LaunchContext::new(PingPayload::from_u64(7), 7));
    let mut configured = None;
    for (i, r) in requests.iter().enumerate() {
        let out = session.handle_message(r);
        assert_eq!(out.error, None, "request {}", i + 1);
        assert_eq!(
            out.response.header("CSeq"),
            Some((i + 1).to_string().as_str())
        );
        if let Some(Event::Configured(n)) = out.event {
            configured = Some(n);
        }
    }
    let n = configured.expect("ANNOUNCE produced a StreamConfig");
    assert_eq!(n.config, StreamConfig::parse(H264).unwrap());
    assert_eq!(n.audio, STEREO_HQ);
    assert_eq!(n.encoder_bitrate_kbps, 15_308);
    assert!(session.is_playing());
}
