//! Shared fixtures: the Appendix A SDP and the §B10 request sequence.
#![allow(dead_code)]

use strahl_rtsp::{
    AudioRequest, ChromaSampling, ColorSpace, DynamicRange, EncoderCsc, EncryptionFlags,
    StreamConfig, VideoCodec,
};

/// gamestream-host.md Appendix A, line by line as printed. On the wire each `a=` line ends with
/// a single space before CRLF; [`appendix_a_sdp`] adds it.
pub const APPENDIX_A_LINES: [&str; 41] = [
    "v=0",
    "o=android 0 14 IN IPv4 127.0.0.1",
    "s=NVIDIA Streaming Client",
    "a=x-ml-general.featureFlags:3",
    "a=x-ss-general.encryptionEnabled:5",
    "a=x-ss-video[0].chromaSamplingType:0",
    "a=x-nv-video[0].clientViewportWd:1280",
    "a=x-nv-video[0].clientViewportHt:720",
    "a=x-nv-video[0].maxFPS:60",
    "a=x-nv-video[0].packetSize:1392",
    "a=x-nv-video[0].rateControlMode:4",
    "a=x-nv-video[0].timeoutLengthMs:7000",
    "a=x-nv-video[0].framesWithInvalidRefThreshold:0",
    "a=x-nv-video[0].initialBitrateKbps:16000",
    "a=x-nv-video[0].initialPeakBitrateKbps:16000",
    "a=x-nv-vqos[0].bw.minimumBitrateKbps:16000",
    "a=x-nv-vqos[0].bw.maximumBitrateKbps:16000",
    "a=x-ml-video.configuredBitrateKbps:20000",
    "a=x-nv-vqos[0].fec.enable:1",
    "a=x-nv-vqos[0].videoQualityScoreUpdateTime:5000",
    "a=x-nv-vqos[0].qosTrafficType:5",
    "a=x-nv-aqos.qosTrafficType:4",
    "a=x-nv-general.featureFlags:167",
    "a=x-nv-general.useReliableUdp:13",
    "a=x-nv-vqos[0].fec.minRequiredFecPackets:2",
    "a=x-nv-vqos[0].bllFec.enable:0",
    "a=x-nv-vqos[0].drc.enable:0",
    "a=x-nv-general.enableRecoveryMode:0",
    "a=x-nv-video[0].videoEncoderSlicesPerFrame:1",
    "a=x-nv-clientSupportHevc:0",
    "a=x-nv-vqos[0].bitStreamFormat:0",
    "a=x-nv-video[0].dynamicRangeMode:0",
    "a=x-nv-video[0].maxNumReferenceFrames:1",
    "a=x-nv-video[0].clientRefreshRateX100:0",
    "a=x-nv-audio.surround.numChannels:2",
    "a=x-nv-audio.surround.channelMask:3",
    "a=x-nv-audio.surround.AudioQuality:0",
    "a=x-nv-aqos.packetDuration:5",
    "a=x-nv-video[0].encoderCscMode:0",
    "t=0 0",
    "m=video 47998",
];

/// The Appendix A SDP with the client's line format: `a=` lines get the trailing space, every
/// line ends in CRLF.
pub fn appendix_a_sdp() -> Vec<u8> {
    sdp_from_lines(APPENDIX_A_LINES.iter().copied())
}

pub fn sdp_from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        out.extend_from_slice(line.as_bytes());
        if line.starts_with("a=") {
            out.push(b' ');
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Appendix A without the lines whose attribute name is `key`.
pub fn appendix_a_without(key: &str) -> Vec<u8> {
    let prefix = format!("a={key}:");
    sdp_from_lines(
        APPENDIX_A_LINES
            .iter()
            .copied()
            .filter(|l| !l.starts_with(&prefix)),
    )
}

/// Appendix A with the value of `key` replaced (the key must be present).
pub fn appendix_a_with(key: &str, value: &str) -> Vec<u8> {
    let prefix = format!("a={key}:");
    let replaced: Vec<String> = APPENDIX_A_LINES
        .iter()
        .map(|l| {
            if l.starts_with(&prefix) {
                format!("{prefix}{value}")
            } else {
                (*l).to_owned()
            }
        })
        .collect();
    assert!(
        replaced.iter().any(|l| l == &format!("{prefix}{value}")),
        "{key} not in Appendix A"
    );
    sdp_from_lines(replaced.iter().map(String::as_str))
}

/// Appendix A plus extra `a=` lines before `t=0 0`.
pub fn appendix_a_plus(extra: &[&str]) -> Vec<u8> {
    let mut lines: Vec<&str> = APPENDIX_A_LINES.to_vec();
    let t = lines.iter().position(|l| *l == "t=0 0").expect("t= line");
    for (i, e) in extra.iter().enumerate() {
        lines.insert(t + i, e);
    }
    sdp_from_lines(lines)
}

/// The typed values Appendix A carries (1280x720@60, 20000 kbps, H.264, stereo).
pub fn appendix_a_config() -> StreamConfig {
    StreamConfig {
        width: 1280,
        height: 720,
        max_fps: 60,
        client_refresh_rate_x100: 0,
        packet_size: 1392,
        configured_bitrate_kbps: 20_000,
        maximum_bitrate_kbps: 16_000,
        minimum_bitrate_kbps: Some(16_000),
        initial_bitrate_kbps: Some(16_000),
        initial_peak_bitrate_kbps: Some(16_000),
        min_required_fec_packets: 2,
        codec: VideoCodec::H264,
        client_supports_hevc: Some(false),
        dynamic_range: DynamicRange::Sdr,
        chroma: ChromaSampling::Yuv420,
        csc: EncoderCsc {
            color_space: ColorSpace::Rec601,
            full_range: false,
        },
        max_num_reference_frames: 1,
        slices_per_frame: 1,
        intra_refresh: false,
        audio: AudioRequest {
            channels: 2,
            channel_mask: 3,
            surround_high_quality: false,
            packet_duration_ms: 5,
            surround_enable: None,
        },
        encryption_enabled: EncryptionFlags(5),
        ml_feature_flags: 3,
        nv_feature_flags: 167,
        use_reliable_udp: 13,
        video_qos_traffic_type: 5,
        audio_qos_traffic_type: 4,
        video_port: Some(47998),
    }
}

/// One request as the client writes it (§B10): request line, CSeq, X-GS-ClientVersion: 14,
/// Host, then `extra` headers, then the body with its Content-type/Content-length.
pub fn client_request(
    method_target: &str,
    cseq: u32,
    host: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut s = format!(
        "{method_target} RTSP/1.0\r\nCSeq: {cseq}\r\nX-GS-ClientVersion: 14\r\nHost: {host}\r\n"
    );
    for (n, v) in extra {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() {
        s.push_str(&format!(
            "Content-type: application/sdp\r\nContent-length: {}\r\n",
            body.len()
        ));
    }
    s.push_str("\r\n");
    let mut out = s.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The seven requests of §B10, in order, against host 127.0.0.1.
pub fn b10_requests(sdp: &[u8]) -> Vec<Vec<u8>> {
    let host = "127.0.0.1";
    let transport = ("Transport", "unicast;X-GS-ClientPort=50000-50001");
    let ims = ("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT");
    let session = ("Session", "DEADBEEFCAFE");
    vec![
        client_request("OPTIONS rtsp://127.0.0.1:48010", 1, host, &[], b""),
        client_request(
            "DESCRIBE rtsp://127.0.0.1:48010",
            2,
            host,
            &[("Accept", "application/sdp"), ims],
            b"",
        ),
        client_request("SETUP streamid=audio/0/0", 3, host, &[transport, ims], b""),
        client_request(
            "SETUP streamid=video/0/0",
            4,
            host,
            &[session, transport, ims],
            b"",
        ),
        client_request(
            "SETUP streamid=control/13/0",
            5,
            host,
            &[session, transport, ims],
            b"",
        ),
        client_request("ANNOUNCE streamid=control/13/0", 6, host, &[session], sdp),
        client_request("PLAY /", 7, host, &[session], b""),
    ]
}

/// What common-c extracts from a response (§A8): status code, headers split at ": ", and
/// everything after the blank line as the payload. Panics if it would call it malformed.
pub struct ClientView {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl ClientView {
    pub fn parse(bytes: &[u8]) -> ClientView {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("blank line");
        let head = std::str::from_utf8(&bytes[..end]).expect("text head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("RTSP/1.0"));
        let status: u16 = parts.next().expect("code").parse().expect("numeric code");
        assert!(!parts.next().expect("reason").is_empty());
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(": ").expect("Name: value");
                (n.to_owned(), v.to_owned())
            })
            .collect();
        assert!(
            !headers.is_empty(),
            "common-c rejects a headerless response"
        );
        ClientView {
            status,
            headers,
            payload: bytes[end + 4..].to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
