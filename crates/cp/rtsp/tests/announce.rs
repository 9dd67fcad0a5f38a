//! ANNOUNCE SDP: required keys, Sunshine's defaults, value checks and host policy (§A9, §A10).

mod common;

use common::*;
use strahl_rtsp::announce::{defaults, keys};
use strahl_rtsp::{
    AnnounceError, ChromaSampling, ColorSpace, DynamicRange, EncryptionFlags, HostCodecs,
    StatusCode, StreamConfig, VideoCodec,
};

#[test]
fn appendix_a_parses_to_its_values() {
    assert_eq!(
        StreamConfig::parse(&appendix_a_sdp()),
        Ok(appendix_a_config())
    );
}

#[test]
fn every_required_key_missing_is_a_400_naming_it() {
    for key in keys::REQUIRED {
        let sdp = appendix_a_without(key);
        assert!(sdp.len() < appendix_a_sdp().len(), "{key} is in Appendix A");
        let err = StreamConfig::parse(&sdp).unwrap_err();
        assert_eq!(err, AnnounceError::MissingKey(key));
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }
    // The §A9 list, spelled out, so the constant cannot silently shrink.
    assert_eq!(keys::REQUIRED.len(), 10);
    for k in [
        "x-nv-audio.surround.numChannels",
        "x-nv-audio.surround.channelMask",
        "x-nv-audio.surround.AudioQuality",
        "x-nv-video[0].packetSize",
        "x-nv-video[0].clientViewportWd",
        "x-nv-video[0].clientViewportHt",
        "x-nv-video[0].maxFPS",
        "x-nv-vqos[0].bw.maximumBitrateKbps",
        "x-nv-video[0].videoEncoderSlicesPerFrame",
        "x-nv-video[0].maxNumReferenceFrames",
    ] {
        assert!(keys::REQUIRED.contains(&k), "{k}");
    }
}

#[test]
fn empty_body_names_the_first_required_key() {
    assert_eq!(
        StreamConfig::parse(b""),
        Err(AnnounceError::MissingKey(keys::WIDTH))
    );
}

/// Only the required keys: every optional value must come out as Sunshine's default.
#[test]
fn sunshine_defaults_for_absent_optional_keys() {
    let required_lines: Vec<&str> = APPENDIX_A_LINES
        .iter()
        .copied()
        .filter(|l| {
            keys::REQUIRED
                .iter()
                .any(|k| l.starts_with(&format!("a={k}:")))
        })
        .collect();
    assert_eq!(required_lines.len(), keys::REQUIRED.len());
    let c = StreamConfig::parse(&sdp_from_lines(required_lines)).unwrap();

    assert_eq!(c.csc.color_space, ColorSpace::Rec601);
    assert!(!c.csc.full_range);
    assert_eq!(defaults::CSC_MODE, 0);
    assert_eq!(c.codec, VideoCodec::H264);
    assert_eq!(c.dynamic_range, DynamicRange::Sdr);
    assert_eq!(
        u32::from(c.audio.packet_duration_ms),
        defaults::PACKET_DURATION_MS
    );
    assert_eq!(c.audio.packet_duration_ms, 5);
    assert_eq!(c.use_reliable_udp, 1);
    assert_eq!(c.min_required_fec_packets, 0);
    assert_eq!(c.nv_feature_flags, 135);
    assert_eq!(c.ml_feature_flags, 0);
    assert_eq!((c.video_qos_traffic_type, c.audio_qos_traffic_type), (5, 4));
    assert_eq!(c.configured_bitrate_kbps, 0);
    assert_eq!(c.encryption_enabled, EncryptionFlags(0));
    assert_eq!(c.chroma, ChromaSampling::Yuv420);
    assert!(!c.intra_refresh);
    assert_eq!(c.client_refresh_rate_x100, 0);
    assert_eq!(c.video_port, None);
    assert_eq!(c.minimum_bitrate_kbps, None);
    assert_eq!(c.client_supports_hevc, None);
    // nv featureFlags 135 = 0x87 has no 0x20: audio encryption off under the defaults.
    assert_eq!(c.effective_encryption(), EncryptionFlags(0));
    // Without configuredBitrateKbps the encoder falls back to maximumBitrateKbps as is.
    assert_eq!(c.encoder_bitrate_kbps(20), 16_000);
    // The required values themselves are kept.
    assert_eq!(
        (c.width, c.height, c.max_fps, c.packet_size),
        (1280, 720, 60, 1392)
    );
}

#[test]
fn values_lose_their_trailing_space_and_bare_lf_works() {
    // The client's " \r\n" form is covered by Appendix A; here: several spaces, bare LF.
    let text = String::from_utf8(appendix_a_sdp())
        .unwrap()
        .replace(" \r\n", "   \n");
    assert_eq!(
        StreamConfig::parse(text.as_bytes()),
        Ok(appendix_a_config())
    );
}

#[test]
fn last_occurrence_of_a_key_wins() {
    let sdp = appendix_a_plus(&["a=x-nv-video[0].maxFPS:120"]);
    assert_eq!(StreamConfig::parse(&sdp).unwrap().max_fps, 120);
}

#[test]
fn non_numeric_and_out_of_range_values_are_400() {
    let cases: &[(&str, &str, AnnounceError)] = &[
        (keys::WIDTH, "wide", AnnounceError::BadValue(keys::WIDTH)),
        (keys::WIDTH, "-1", AnnounceError::BadValue(keys::WIDTH)),
        (
            keys::WIDTH,
            "4294967296",
            AnnounceError::BadValue(keys::WIDTH),
        ),
        (keys::WIDTH, "", AnnounceError::BadValue(keys::WIDTH)),
        (
            keys::WIDTH,
            "0",
            AnnounceError::UnsupportedValue {
                key: keys::WIDTH,
                value: 0,
            },
        ),
        (
            keys::HEIGHT,
            "16385",
            AnnounceError::UnsupportedValue {
                key: keys::HEIGHT,
                value: 16385,
            },
        ),
        (
            keys::MAX_FPS,
            "0",
            AnnounceError::UnsupportedValue {
                key: keys::MAX_FPS,
                value: 0,
            },
        ),
        (
            keys::PACKET_SIZE,
            "199",
            AnnounceError::UnsupportedValue {
                key: keys::PACKET_SIZE,
                value: 199,
            },
        ),
        (
            keys::PACKET_SIZE,
            "65504",
            AnnounceError::UnsupportedValue {
                key: keys::PACKET_SIZE,
                value: 65504,
            },
        ),
        (
            keys::BITSTREAM_FORMAT,
            "3",
            AnnounceError::UnsupportedValue {
                key: keys::BITSTREAM_FORMAT,
                value: 3,
            },
        ),
        (
            keys::DYNAMIC_RANGE,
            "2",
            AnnounceError::UnsupportedValue {
                key: keys::DYNAMIC_RANGE,
                value: 2,
            },
        ),
        (
            keys::CHROMA,
            "2",
            AnnounceError::UnsupportedValue {
                key: keys::CHROMA,
                value: 2,
            },
        ),
        (
            keys::CSC_MODE,
            "6",
            AnnounceError::UnsupportedValue {
                key: keys::CSC_MODE,
                value: 6,
            },
        ),
        (
            keys::NUM_CHANNELS,
            "4",
            AnnounceError::UnsupportedValue {
                key: keys::NUM_CHANNELS,
                value: 4,
            },
        ),
        (
            keys::AUDIO_QUALITY,
            "2",
            AnnounceError::UnsupportedValue {
                key: keys::AUDIO_QUALITY,
                value: 2,
            },
        ),
        (
            keys::PACKET_DURATION,
            "7",
            AnnounceError::UnsupportedValue {
                key: keys::PACKET_DURATION,
                value: 7,
            },
        ),
    ];
    for (key, value, expected) in cases {
        let sdp = appendix_a_with(key, value);
        assert_eq!(StreamConfig::parse(&sdp), Err(*expected), "{key}={value:?}");
        assert_eq!(expected.status(), StatusCode::BAD_REQUEST);
    }
    // Bad m=video port.
    for port in ["0", "65536", "x", ""] {
        let text = String::from_utf8(appendix_a_sdp())
            .unwrap()
            .replace("m=video 47998", &format!("m=video {port}"));
        assert_eq!(
            StreamConfig::parse(text.as_bytes()),
            Err(AnnounceError::BadVideoPort),
            "{port:?}"
        );
    }
    assert_eq!(
        StreamConfig::parse(b"a=x-nv-video[0].clientViewportWd:\xff\r\n"),
        Err(AnnounceError::NotText)
    );
}

#[test]
fn every_documented_value_of_the_enums_decodes() {
    let parse = |key, value| StreamConfig::parse(&appendix_a_with(key, value)).unwrap();
    assert_eq!(parse(keys::BITSTREAM_FORMAT, "1").codec, VideoCodec::Hevc);
    assert_eq!(parse(keys::BITSTREAM_FORMAT, "2").codec, VideoCodec::Av1);
    assert_eq!(
        parse(keys::DYNAMIC_RANGE, "1").dynamic_range,
        DynamicRange::Hdr
    );
    assert_eq!(parse(keys::CHROMA, "1").chroma, ChromaSampling::Yuv444);
    for (raw, space, full) in [
        ("1", ColorSpace::Rec601, true),
        ("2", ColorSpace::Rec709, false),
        ("3", ColorSpace::Rec709, true),
        ("4", ColorSpace::Rec2020, false),
        ("5", ColorSpace::Rec2020, true),
    ] {
        let c = parse(keys::CSC_MODE, raw).csc;
        assert_eq!((c.color_space, c.full_range), (space, full), "csc {raw}");
    }
    assert_eq!(
        parse(keys::PACKET_DURATION, "10").audio.packet_duration_ms,
        10
    );
    assert!(parse(keys::AUDIO_QUALITY, "1").audio.surround_high_quality);
    let c = parse(keys::NUM_CHANNELS, "6");
    assert_eq!(c.audio.channels, 6);
    assert_eq!(parse(keys::NUM_CHANNELS, "8").audio.channels, 8);
}

#[test]
fn feature_flag_helpers() {
    let c = appendix_a_config();
    // ml featureFlags 3: FEC status and session id v1.
    assert!(c.session_id_v1());
    assert!(c.fec_status_reports());
    let c0 = StreamConfig::parse(&appendix_a_with(keys::ML_FEATURE_FLAGS, "0")).unwrap();
    assert!(!c0.session_id_v1() && !c0.fec_status_reports());
    // Legacy nv 0x20 (167 = 0xA7) folds into AUDIO even with encryptionEnabled 0.
    let legacy = StreamConfig::parse(&appendix_a_with(keys::ENCRYPTION_ENABLED, "0")).unwrap();
    assert_eq!(
        legacy.effective_encryption(),
        EncryptionFlags(EncryptionFlags::AUDIO)
    );
}

#[test]
fn refresh_rate_kept_only_within_one_percent_of_fps() {
    let with = |r: &str| StreamConfig::parse(&appendix_a_with(keys::REFRESH_X100, r)).unwrap();
    assert_eq!(with("0").refresh_rate_x100(), None);
    assert_eq!(with("6000").refresh_rate_x100(), Some(6000));
    assert_eq!(with("5994").refresh_rate_x100(), Some(5994));
    assert_eq!(with("5940").refresh_rate_x100(), Some(5940)); // exactly 1 %
    assert_eq!(with("5939").refresh_rate_x100(), None);
    assert_eq!(with("6060").refresh_rate_x100(), Some(6060));
    assert_eq!(with("6061").refresh_rate_x100(), None);
    assert_eq!(with("14400").refresh_rate_x100(), None);
}

#[test]
fn codecs_the_host_did_not_enable_are_400() {
    let none = HostCodecs::NONE;
    let hevc_only = HostCodecs {
        hevc: true,
        ..HostCodecs::NONE
    };
    let no_enc = EncryptionFlags(0);
    let with = |key, v| StreamConfig::parse(&appendix_a_with(key, v)).unwrap();

    let hevc = with(keys::BITSTREAM_FORMAT, "1");
    assert_eq!(
        hevc.check_host(none, no_enc),
        Err(AnnounceError::CodecDisabled(VideoCodec::Hevc))
    );
    assert_eq!(hevc.check_host(hevc_only, no_enc), Ok(()));

    let av1 = with(keys::BITSTREAM_FORMAT, "2");
    let err = av1.check_host(hevc_only, no_enc).unwrap_err();
    assert_eq!(err, AnnounceError::CodecDisabled(VideoCodec::Av1));
    assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    let av1_on = HostCodecs {
        av1: true,
        ..HostCodecs::NONE
    };
    assert_eq!(av1.check_host(av1_on, no_enc), Ok(()));

    // HDR needs the 10-bit capability and a codec other than H.264.
    let hdr_h264 = with(keys::DYNAMIC_RANGE, "1");
    let all = HostCodecs {
        h264: true,
        hevc: true,
        hevc_main10: true,
        av1: true,
        av1_main10: true,
        yuv444: true,
    };
    assert_eq!(
        hdr_h264.check_host(all, no_enc),
        Err(AnnounceError::TenBitDisabled)
    );
    let hdr_hevc = StreamConfig {
        codec: VideoCodec::Hevc,
        ..hdr_h264
    };
    assert_eq!(
        hdr_hevc.check_host(hevc_only, no_enc),
        Err(AnnounceError::TenBitDisabled)
    );
    assert_eq!(hdr_hevc.check_host(all, no_enc), Ok(()));

    let yuv444 = with(keys::CHROMA, "1");
    assert_eq!(
        yuv444.check_host(HostCodecs::default(), no_enc),
        Err(AnnounceError::Yuv444Disabled)
    );
    assert_eq!(yuv444.check_host(all, no_enc), Ok(()));

    // A 10-bit-only encoder (a Main10 clip): HDR HEVC is accepted, 8-bit HEVC and H.264 are
    // refused with messages naming what was asked.
    let main10_only = HostCodecs {
        hevc_main10: true,
        ..HostCodecs::NONE
    };
    assert_eq!(hdr_hevc.check_host(main10_only, no_enc), Ok(()));
    let sdr_hevc = StreamConfig {
        dynamic_range: DynamicRange::Sdr,
        ..hdr_hevc
    };
    let err = sdr_hevc.check_host(main10_only, no_enc).unwrap_err();
    assert_eq!(err, AnnounceError::EightBitUnavailable(VideoCodec::Hevc));
    assert!(err.to_string().contains("only at 10 bits"), "{err}");
    let err = appendix_a_config()
        .check_host(main10_only, no_enc)
        .unwrap_err();
    assert_eq!(err, AnnounceError::CodecDisabled(VideoCodec::H264));
    assert!(err.to_string().contains("H264 video"), "{err}");
}

#[test]
fn scm_bits_follow_the_formats() {
    assert_eq!(HostCodecs::default().scm(), 0x1);
    assert_eq!(HostCodecs::NONE.scm(), 0x1, "never 0: clients refuse it");
    let hdr = HostCodecs {
        hevc_main10: true,
        ..HostCodecs::NONE
    };
    assert_eq!(hdr.scm(), 0x200);
    assert!(hdr.any_hevc() && !hdr.any_av1() && hdr.ten_bit());
    let av1 = HostCodecs {
        av1: true,
        av1_main10: true,
        ..HostCodecs::NONE
    };
    assert_eq!(av1.scm(), 0x30000);
    let all444 = HostCodecs {
        h264: true,
        hevc: true,
        yuv444: true,
        ..HostCodecs::NONE
    };
    assert_eq!(all444.scm(), 0x1 | 0x100 | 0x40000 | 0x80000);
}

#[test]
fn mandatory_encryption_missing_is_403() {
    let mandatory = EncryptionFlags(7); // CONTROL_V2 | VIDEO | AUDIO, Sunshine's "mandatory".
    let c = appendix_a_config(); // enabled 5: no VIDEO.
    let err = c.check_host(HostCodecs::default(), mandatory).unwrap_err();
    assert_eq!(
        err,
        AnnounceError::EncryptionRequired {
            required: 6,
            enabled: 5
        }
    );
    assert_eq!(err.status(), StatusCode::FORBIDDEN);
    let c7 = StreamConfig::parse(&appendix_a_with(keys::ENCRYPTION_ENABLED, "7")).unwrap();
    assert_eq!(c7.check_host(HostCodecs::default(), mandatory), Ok(()));
    // Opportunistic (requests CONTROL_V2 only): nothing enforced.
    assert_eq!(
        c.check_host(HostCodecs::default(), EncryptionFlags(1)),
        Ok(())
    );
}

#[test]
fn line_limit_is_enforced() {
    use strahl_rtsp::limits::MAX_SDP_LINES;
    // Appendix A padded with unknown attributes to exactly the limit still parses...
    let filler = MAX_SDP_LINES - APPENDIX_A_LINES.len();
    let pad: Vec<String> = (0..filler).map(|i| format!("a=x-pad.{i}:1")).collect();
    let pad_refs: Vec<&str> = pad.iter().map(String::as_str).collect();
    let at_limit = appendix_a_plus(&pad_refs);
    assert_eq!(
        String::from_utf8_lossy(&at_limit).lines().count(),
        MAX_SDP_LINES
    );
    assert!(StreamConfig::parse(&at_limit).is_ok());
    // ...and one more line does not.
    let mut over = at_limit.clone();
    over.extend_from_slice(b"a=x-pad.last:1\r\n");
    assert_eq!(StreamConfig::parse(&over), Err(AnnounceError::TooManyLines));
}
