//! What the media tests share: a GameStream `SessionStart` and `MediaSettings` with the tests'
//! defaults (each test changes what it is about), and a free UDP port.
// Each test binary uses a different subset.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use strahl_dataplane::media::{MediaSettings, VideoSourceKind};
use strahl_ipc::{
    AudioParams, Codec, KeyMaterial, Ports, Protocol, Secret, SessionStart, StreamOptions,
    VideoParams,
};

pub const RIKEY: [u8; 16] = [0x5a; 16];
pub const RIKEYID: u32 = 0x0102_0304;

/// 640×360@60 H.264 at 3 Mbit/s, packet size 1392, 20 % FEC, stereo Opus in 5 ms packets,
/// clear video and audio, pinging with `payload` from `peer`'s address.
pub fn session(
    id: u64,
    peer: SocketAddr,
    payload: Option<[u8; 16]>,
    (video_src, audio_src): (u16, u16),
) -> SessionStart {
    SessionStart {
        id,
        protocol: Protocol::GameStream,
        peer,
        video: VideoParams {
            width: 640,
            height: 360,
            fps: 60,
            bitrate_kbps: 3_000,
            packet_size: 1392,
            fec_percent: 20,
            codec: Codec::H264,
        },
        audio: AudioParams {
            channels: 2,
            sample_rate_hz: 48_000,
            packet_duration_ms: 5,
            bitrate_kbps: 96,
        },
        keys: KeyMaterial::GameStream {
            rikey: Secret(RIKEY),
            rikeyid: RIKEYID,
        },
        ports: Ports {
            video_src,
            audio_src,
            video_dst: 0,
            audio_dst: 0,
        },
        stream: StreamOptions {
            ping_payload: payload,
            flags: 0,
            min_fec_packets: 2,
        },
    }
}

/// The synthetic pattern and the test tone; `drop` of video packets discarded by the knob.
pub fn settings(drop: f64, ping_timeout: Duration) -> MediaSettings {
    MediaSettings {
        video_source: VideoSourceKind::Synthetic,
        video_source_why: "the tests' synthetic pattern".into(),
        encoder: strahl_encode::select::Selection::openh264("the tests' software encoder"),
        audio: strahl_dataplane::media::audio::AudioChoice::Tone { fallback: None },
        audio_recheck: None,
        drop_fraction: drop,
        drop_seed: 1,
        ping_timeout,
        max_payload: 1472,
        realtime_priority: 0,
    }
}

pub fn free_port() -> u16 {
    UdpSocket::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

static STREAM_LOCK: Mutex<()> = Mutex::new(());

/// Held by every test of a binary that streams real-time video and asserts on gaps or rates:
/// two such tests at once on a 2-core machine (each with an encoder thread, the tx tile spinning
/// and a receiver) turn CPU starvation into "loss" (seen: media_loopback failing only with
/// its tests in parallel on a loaded machine).
pub fn stream_lock() -> MutexGuard<'static, ()> {
    STREAM_LOCK.lock().unwrap_or_else(|p| p.into_inner())
}
