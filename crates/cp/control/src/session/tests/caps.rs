//! Session manager tests of the data plane's encoder capabilities (issue 13): before any
//! report the host is H.264-only; a report decides /serverinfo's SCM bits and HDR flag, what
//! DESCRIBE advertises and what ANNOUNCE accepts; an SDR stream gets no HDR message.
//!
//! Contract: uses the shared helpers of `session/tests.rs` (`use super::*`) and nothing else of
//! this crate's files.

use super::*;
use strahl_gamestream::VideoSupport;
use strahl_ipc::{Codec, HdrMetadata, VideoCaps, VideoFormat};

fn caps(formats: &[(Codec, u8)], hdr: bool) -> VideoCaps {
    VideoCaps {
        encoder: "test".into(),
        formats: formats
            .iter()
            .map(|&(codec, bit_depth)| VideoFormat {
                codec,
                profile: 1,
                bit_depth,
                yuv444: false,
            })
            .collect(),
        hdr: hdr.then(|| HdrMetadata {
            max_luminance: 1000,
            ..HdrMetadata::default()
        }),
    }
}

#[test]
fn the_encoders_formats_decide_scm_describe_and_announce() {
    let t0 = Instant::now();
    let mut m = SessionManager::new(cfg());
    let h264_only = VideoSupport {
        codec_mode_support: 0x1,
        hdr: false,
    };
    assert_eq!(
        m.video_support(),
        h264_only,
        "before the data plane reports"
    );

    // A HEVC Main10 clip: only 0x200, HDR; the H.264 client's ANNOUNCE is refused (400).
    m.set_video_caps(&caps(&[(Codec::Hevc, 10)], true));
    assert_eq!(
        m.video_support(),
        VideoSupport {
            codec_mode_support: 0x200,
            hdr: true
        }
    );
    assert!(m.encoder_description().contains("Hevc profile 1 10-bit"));
    m.launch(&req(1, 0), RAND, t0).unwrap();
    let (replies, control, ipc) = run_all(&mut m, None, t0);
    assert!(
        replies[1].contains("sprop-parameter-sets=AAAAAU"),
        "{}",
        replies[1]
    );
    assert!(!replies[1].contains("AV1/90000"));
    assert!(replies[5].starts_with("RTSP/1.0 400"), "{}", replies[5]);
    assert!(control.is_empty() && ipc.is_empty(), "{control:?} {ipc:?}");

    // Back to H.264 (and AV1 8-bit): the same client streams; its SDR stream gets no HDR message.
    let mut m = SessionManager::new(cfg());
    m.set_video_caps(&caps(&[(Codec::H264, 8), (Codec::Av1, 8)], false));
    assert_eq!(m.video_support().codec_mode_support, 0x1 | 0x10000);
    m.launch(&req(1, 0), RAND, t0).unwrap();
    let (replies, _, ipc) = run_all(&mut m, None, t0);
    assert!(replies[1].contains("a=rtpmap:98 AV1/90000"));
    let [Message::SessionStart(s)] = ipc.as_slice() else {
        panic!("{ipc:?}")
    };
    assert_eq!(s.video.codec, Codec::H264);
    assert!(!s.stream.has(strahl_ipc::StreamOptions::HDR));
    let peer = ControlEvent::Connected {
        peer: PEER.parse().unwrap(),
    };
    assert!(m.on_control(s.id, &peer, t0).control.is_empty());
    let view = m.streams();
    assert_eq!(view[0].format.codec_name(), "H.264");
    assert_eq!((view[0].format.bit_depth, view[0].format.hdr), (8, false));
}
