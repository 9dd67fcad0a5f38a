//! Property tests: hostile bytes never panic and respect the limits; generated valid requests
//! and SDP bodies round-trip; the limits hold exactly at their boundaries.

mod common;

use common::*;
use proptest::prelude::*;
use strahl_rtsp::fuzzing::{fuzz_request, fuzz_sdp};
use strahl_rtsp::limits::{
    MAX_BODY_BYTES, MAX_HEAD_BYTES, MAX_HEADER_LINE, MAX_HEADERS, MAX_REQUEST_BYTES,
};
use strahl_rtsp::{
    AudioRequest, ChromaSampling, ColorSpace, DynamicRange, EncoderCsc, EncryptionFlags, Method,
    Parsed, RequestErrorKind, StreamConfig, VideoCodec, parse_request,
};

/// The invariants every parse result must satisfy, whatever the input.
fn check_parse_invariants(buf: &[u8]) {
    match parse_request(buf) {
        Ok(Parsed::Complete { request, len }) => {
            assert!(len <= buf.len());
            assert!(len <= MAX_REQUEST_BYTES);
            assert!(len - request.body.len() <= MAX_HEAD_BYTES);
            assert!(request.body.len() <= MAX_BODY_BYTES);
            assert!(request.headers.len() <= MAX_HEADERS);
            // Determinism and prefix-independence: the consumed bytes alone parse the same.
            match parse_request(&buf[..len]) {
                Ok(Parsed::Complete {
                    request: again,
                    len: l2,
                }) => {
                    assert_eq!((again, l2), (request, len));
                }
                other => panic!("consumed prefix parsed differently: {other:?}"),
            }
        }
        Ok(Parsed::NeedMore) => assert!(buf.len() < MAX_REQUEST_BYTES),
        Err(e) => {
            // The error maps to an RTSP error status.
            assert!(e.status().0 >= 400);
        }
    }
}

fn b10_seeds() -> Vec<Vec<u8>> {
    b10_requests(&appendix_a_sdp())
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 0usize..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

fn apply(buf: &mut Vec<u8>, m: &Mutation) {
    if buf.is_empty() {
        return;
    }
    let n = buf.len();
    match *m {
        Mutation::Flip(i, b) => buf[i % n] ^= b | 1,
        Mutation::Insert(i, b) => buf.insert(i % (n + 1), b),
        Mutation::Delete(i) => {
            buf.remove(i % n);
        }
        Mutation::Truncate(i) => buf.truncate(i % n),
        Mutation::Duplicate(i, len) => {
            let start = i % n;
            let seg: Vec<u8> = buf[start..(start + len).min(n)].to_vec();
            let at = start.min(buf.len());
            buf.splice(at..at, seg);
        }
    }
}

/// Header names a generator may use: tokens that are not CSeq/Content-length/Session, so the
/// expected request is easy to state.
fn header_name() -> impl Strategy<Value = String> {
    "X-[A-Za-z0-9-]{1,20}"
}

/// Header values: visible ASCII and inner spaces, no leading/trailing blanks.
fn header_value() -> impl Strategy<Value = String> {
    "[!-~]([ !-~]{0,40}[!-~])?"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        check_parse_invariants(&data);
        fuzz_request(&data);
        fuzz_sdp(&data);
    }

    #[test]
    fn random_headers_after_a_valid_request_line_never_panic(
        tail in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b':'), Just(b' '), any::<u8>()],
            0..2048,
        )
    ) {
        let mut buf = b"SETUP streamid=audio/0/0 RTSP/1.0\r\nCSeq: 1\r\n".to_vec();
        buf.extend_from_slice(&tail);
        check_parse_invariants(&buf);
        fuzz_request(&buf);
    }

    #[test]
    fn mutated_valid_requests_never_panic(
        seed in 0usize..7,
        whole_session in any::<bool>(),
        muts in proptest::collection::vec(mutation(), 1..8),
    ) {
        let seeds = b10_seeds();
        let mut buf = if whole_session { seeds.concat() } else { seeds[seed].clone() };
        for m in &muts {
            apply(&mut buf, m);
        }
        check_parse_invariants(&buf);
        fuzz_request(&buf);
    }

    #[test]
    fn mutated_appendix_sdp_never_panics(
        muts in proptest::collection::vec(mutation(), 1..8),
    ) {
        let mut sdp = appendix_a_sdp();
        for m in &muts {
            apply(&mut sdp, m);
        }
        fuzz_sdp(&sdp);
    }

    /// A generated valid request parses back to exactly its parts, and every strict prefix is
    /// NeedMore.
    #[test]
    fn generated_requests_round_trip(
        method in prop_oneof![
            Just("OPTIONS"), Just("DESCRIBE"), Just("SETUP"), Just("ANNOUNCE"), Just("PLAY"),
        ],
        target in "[!-~]{1,60}",
        cseq in any::<u32>(),
        headers in proptest::collection::vec((header_name(), header_value()), 0..12),
        body in proptest::collection::vec(any::<u8>(), 0..300),
        crlf in any::<bool>(),
        junk in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut head = format!("{method} {target} RTSP/1.0{eol}CSeq: {cseq}{eol}");
        for (n, v) in &headers {
            head.push_str(&format!("{n}:  {v}\t{eol}"));
        }
        if !body.is_empty() {
            head.push_str(&format!("content-length: {}{eol}", body.len()));
        }
        head.push_str(eol);
        let mut msg = head.into_bytes();
        msg.extend_from_slice(&body);
        let total = msg.len();
        msg.extend_from_slice(&junk); // bytes after the message are not consumed

        let Ok(Parsed::Complete { request, len }) = parse_request(&msg) else {
            panic!("valid request did not parse");
        };
        prop_assert_eq!(len, total);
        prop_assert_eq!(request.method.as_str(), method);
        prop_assert!(!matches!(request.method, Method::Other(_)));
        prop_assert_eq!(request.target, target.as_str());
        prop_assert_eq!(request.cseq, Some(cseq));
        prop_assert_eq!(request.body, &body[..]);
        for (n, v) in &headers {
            // First occurrence wins for repeated names.
            let first = headers.iter().find(|(m, _)| m.eq_ignore_ascii_case(n)).unwrap();
            prop_assert_eq!(request.header(n), Some(first.1.as_str()));
            let _ = v;
        }
        for split in 0..total {
            prop_assert_eq!(parse_request(&msg[..split]), Ok(Parsed::NeedMore));
        }
    }

    /// Head limits: n headers of a given line length parse iff they fit every limit, and
    /// otherwise fail with the limit that was hit first.
    #[test]
    fn head_limits_hold_exactly(
        n in 0usize..(MAX_HEADERS + 4),
        line_len in 4usize..(MAX_HEADER_LINE + 4),
    ) {
        let request_line = "OPTIONS * RTSP/1.0\r\n";
        let value = "v".repeat(line_len - 3);
        let header_line = format!("X: {value}\r\n");
        let mut msg = request_line.as_bytes().to_vec();
        for _ in 0..n {
            msg.extend_from_slice(header_line.as_bytes());
        }
        msg.extend_from_slice(b"\r\n");
        let result = parse_request(&msg);
        // Walk the lines the way the limits apply: the first violation decides.
        let mut expected = Ok(());
        let mut end = request_line.len();
        // The parser stops at the (MAX_HEADERS+1)-th line: lines after it are never read, so
        // only that many can trip the size limits.
        for _ in 0..n.min(MAX_HEADERS + 1) {
            if line_len > MAX_HEADER_LINE {
                expected = Err(RequestErrorKind::HeaderLineTooLong);
                break;
            }
            end += line_len + 2;
            if end > MAX_HEAD_BYTES {
                expected = Err(RequestErrorKind::HeadTooLarge);
                break;
            }
        }
        if expected.is_ok() {
            if n > MAX_HEADERS {
                // The (MAX_HEADERS+1)-th line is read (and size-checked) before it is counted.
                expected = Err(RequestErrorKind::TooManyHeaders);
            } else if end + 2 > MAX_HEAD_BYTES {
                expected = Err(RequestErrorKind::HeadTooLarge);
            }
        }
        match (result, expected) {
            (Ok(Parsed::Complete { request, len }), Ok(())) => {
                prop_assert_eq!(len, msg.len());
                prop_assert_eq!(request.headers.len(), n);
            }
            (Err(e), Err(kind)) => prop_assert_eq!(e.kind, kind),
            (got, want) => panic!("n={n} line_len={line_len}: got {got:?}, want {want:?}"),
        }
    }

    /// Any in-range StreamConfig rendered as the client would send it parses back equal, with
    /// unknown attributes and legacy keys interleaved.
    #[test]
    fn sdp_round_trip(
        width in 1u32..=16_384, height in 1u32..=16_384, fps in 1u32..=1000,
        refresh in any::<u32>(), packet in 200u32..=65_488,
        configured in any::<u32>(), maximum in any::<u32>(),
        min_fec in any::<u32>(), codec in 0u32..3, hdr in 0u32..2, chroma in 0u32..2,
        csc in 0u32..6, refs in any::<u32>(), slices in any::<u32>(),
        channels in prop_oneof![Just(2u8), Just(6u8), Just(8u8)], mask in any::<u32>(),
        aq in 0u32..2, duration in prop_oneof![Just(5u8), Just(10u8)],
        enc in any::<u32>(), ml in any::<u32>(), nv in any::<u32>(), rudp in any::<u32>(),
        vqos in any::<u32>(), aqos in any::<u32>(), port in 1u16..,
        noise in proptest::collection::vec("a=x-unknown[0-9]{1,3}\\.attr:[ -~]{0,20}", 0..5),
    ) {
        let expected = StreamConfig {
            width, height, max_fps: fps, client_refresh_rate_x100: refresh,
            packet_size: packet, configured_bitrate_kbps: configured,
            maximum_bitrate_kbps: maximum, minimum_bitrate_kbps: None,
            initial_bitrate_kbps: None, initial_peak_bitrate_kbps: None,
            min_required_fec_packets: min_fec,
            codec: [VideoCodec::H264, VideoCodec::Hevc, VideoCodec::Av1][codec as usize],
            client_supports_hevc: None,
            dynamic_range: [DynamicRange::Sdr, DynamicRange::Hdr][hdr as usize],
            chroma: [ChromaSampling::Yuv420, ChromaSampling::Yuv444][chroma as usize],
            csc: EncoderCsc {
                color_space: [ColorSpace::Rec601, ColorSpace::Rec709, ColorSpace::Rec2020]
                    [(csc >> 1) as usize],
                full_range: csc & 1 == 1,
            },
            max_num_reference_frames: refs, slices_per_frame: slices, intra_refresh: false,
            audio: AudioRequest {
                channels, channel_mask: mask, surround_high_quality: aq == 1,
                packet_duration_ms: duration, surround_enable: None,
            },
            encryption_enabled: EncryptionFlags(enc), ml_feature_flags: ml,
            nv_feature_flags: nv, use_reliable_udp: rudp,
            video_qos_traffic_type: vqos, audio_qos_traffic_type: aqos,
            video_port: Some(port),
        };
        let mut lines = vec![
            "v=0".to_owned(),
            "o=android 0 14 IN IPv4 127.0.0.1".to_owned(),
            "s=NVIDIA Streaming Client".to_owned(),
            format!("a=x-ml-general.featureFlags:{ml}"),
            format!("a=x-ss-general.encryptionEnabled:{enc}"),
            format!("a=x-ss-video[0].chromaSamplingType:{chroma}"),
            format!("a=x-nv-video[0].clientViewportWd:{width}"),
            format!("a=x-nv-video[0].clientViewportHt:{height}"),
            format!("a=x-nv-video[0].maxFPS:{fps}"),
            format!("a=x-nv-video[0].packetSize:{packet}"),
            "a=x-nv-video[0].rateControlMode:4".to_owned(),
            format!("a=x-nv-vqos[0].bw.maximumBitrateKbps:{maximum}"),
            format!("a=x-ml-video.configuredBitrateKbps:{configured}"),
            format!("a=x-nv-vqos[0].qosTrafficType:{vqos}"),
            format!("a=x-nv-aqos.qosTrafficType:{aqos}"),
            format!("a=x-nv-general.featureFlags:{nv}"),
            format!("a=x-nv-general.useReliableUdp:{rudp}"),
            format!("a=x-nv-vqos[0].fec.minRequiredFecPackets:{min_fec}"),
            format!("a=x-nv-video[0].videoEncoderSlicesPerFrame:{slices}"),
            format!("a=x-nv-vqos[0].bitStreamFormat:{codec}"),
            format!("a=x-nv-video[0].dynamicRangeMode:{hdr}"),
            format!("a=x-nv-video[0].maxNumReferenceFrames:{refs}"),
            format!("a=x-nv-video[0].clientRefreshRateX100:{refresh}"),
            format!("a=x-nv-audio.surround.numChannels:{channels}"),
            format!("a=x-nv-audio.surround.channelMask:{mask}"),
            format!("a=x-nv-audio.surround.AudioQuality:{aq}"),
            format!("a=x-nv-aqos.packetDuration:{duration}"),
            format!("a=x-nv-video[0].encoderCscMode:{csc}"),
        ];
        // Interleave the noise at deterministic spots after the header lines.
        for (i, n) in noise.iter().enumerate() {
            let at = 3 + (i * 7) % (lines.len() - 3);
            lines.insert(at, n.clone());
        }
        lines.push("t=0 0".to_owned());
        lines.push(format!("m=video {port}  "));
        let sdp = sdp_from_lines(lines.iter().map(String::as_str));
        prop_assert_eq!(StreamConfig::parse(&sdp), Ok(expected));
        fuzz_sdp(&sdp);
    }
}
