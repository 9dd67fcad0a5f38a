//! The session path's encoder seam: sessions get their encoders from the selection made at
//! start (`MediaSettings::encoder`), driven here against the recording NVENC/CUDA fake through
//! `VideoPipeline::build` and a running `VideoProducer` — IDR on request, bitrate change,
//! every GPU buffer released, a GPU lost mid-stream continued in software — and, on a machine
//! without the NVIDIA driver (this one), the data plane's own choice: openh264, saying why.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use strahl_encode::nvenc::fake::{Call, FakeGpu};
use strahl_encode::select::Backend;
use strahl_ipc::{
    AudioParams, Codec, KeyMaterial, Ports, Protocol, Secret, SessionStart, StreamOptions,
    Subsystem, VideoParams,
};
use strahl_metrics::Registry;

use super::super::ring::{self, Consumer, Slot};
use super::super::{MediaSettings, Shared, VIDEO, describe_detected};
use super::*;

static METRICS: Registry = Registry::new();

pub(super) fn session(codec: Codec, flags: u32) -> SessionStart {
    SessionStart {
        id: 7,
        protocol: Protocol::GameStream,
        peer: "127.0.0.1:40000".parse().unwrap(),
        video: VideoParams {
            width: 320,
            height: 240,
            fps: 60,
            bitrate_kbps: 2_000,
            packet_size: 1024,
            fec_percent: 20,
            codec,
        },
        audio: AudioParams {
            channels: 2,
            sample_rate_hz: 48_000,
            packet_duration_ms: 5,
            bitrate_kbps: 96,
        },
        keys: KeyMaterial::GameStream {
            rikey: Secret([1; 16]),
            rikeyid: 1,
        },
        ports: Ports {
            video_src: 0,
            audio_src: 0,
            video_dst: 0,
            audio_dst: 0,
        },
        stream: StreamOptions {
            flags,
            ..StreamOptions::default()
        },
    }
}

/// The appliance's defaults (`[video] encoder = "auto"`, synthetic source) with NVENC as `gpu`.
pub(super) fn settings(gpu: &FakeGpu) -> MediaSettings {
    MediaSettings::from_config_with(&strahl_config::Config::default(), Arc::new(gpu.clone()))
        .unwrap()
}

/// The next unit the producer publishes (within 10 s), returned to the ring after `check`.
pub(super) fn next_unit<T>(units: &mut Consumer, check: impl FnOnce(&Slot) -> T) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(slot) = units.take() {
            let t = check(&slot);
            units.release(slot);
            return t;
        }
        assert!(Instant::now() < deadline, "no unit from the encode tile");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether an Annex-B AU's first NAL is an SPS (what an IDR starts with, §A14).
pub(super) fn starts_with_sps(au: &[u8]) -> bool {
    au.starts_with(&[0, 0, 0, 1]) && au.get(4).is_some_and(|b| b & 0x1f == 7)
}

#[test]
fn a_gpu_found_at_start_encodes_the_sessions_and_its_formats_are_advertised() {
    let gpu = FakeGpu::default();
    let settings = settings(&gpu);
    assert_eq!(settings.encoder.choice.backend, Backend::Nvenc);
    // What the control plane is told it may advertise: the GPU's formats.
    let caps = capability(&settings.video_source, &settings.encoder);
    assert_eq!(caps.encoder, "nvenc");
    let ipc = ipc_caps(&caps);
    for (codec, depth) in [(Codec::H264, 8), (Codec::Hevc, 10), (Codec::Av1, 10)] {
        assert!(
            ipc.formats
                .iter()
                .any(|f| f.codec == codec && f.bit_depth == depth),
            "{ipc:?}"
        );
    }
    let hevc10 = session(Codec::Hevc, StreamOptions::TEN_BIT);
    check_format(&hevc10, &caps).unwrap();
    // The start-up line and the status page say so.
    let detected = settings.detected(&caps);
    let encode = detected
        .iter()
        .find(|d| d.subsystem == Subsystem::Encode)
        .unwrap();
    assert_eq!(encode.choice, "nvenc");
    assert!(encode.reason.contains("12.2"), "{}", encode.reason);
    assert!(
        describe_detected(&detected).contains("encoder nvenc (driver API 12.2 detected)"),
        "{}",
        describe_detected(&detected)
    );

    // An HEVC 10-bit session opens an HEVC 10-bit NVENC session.
    gpu.clear_calls();
    let p = VideoPipeline::build(&hevc10, &settings, 2_000, 1 << 20, 1).unwrap();
    assert_eq!(p.enc.name(), "nvenc");
    let init = gpu.calls().into_iter().find_map(|c| match c {
        Call::Initialize(p) => Some(p),
        _ => None,
    });
    let init = init.expect("initialize");
    assert_eq!(
        (init.codec, init.ten_bit, init.width, init.height),
        (strahl_encode::nvenc::api::Codec::Hevc, true, 320, 240)
    );
    drop(p);
    assert_eq!(gpu.live(), Vec::<String>::new());
    assert_eq!(gpu.violations(), Vec::<String>::new());
}

#[test]
fn a_session_on_the_gpu_idr_bitrate_release_and_device_loss_through_the_encode_tile() {
    let gpu = FakeGpu::default();
    let settings = settings(&gpu);
    let s = session(Codec::H264, 0);
    gpu.clear_calls();
    let pipeline = VideoPipeline::build(&s, &settings, 2_000, 1 << 20, 1).unwrap();
    assert_eq!(pipeline.enc.name(), "nvenc");
    let shared = Arc::new(Shared::new(2_000));
    shared.ready[VIDEO].store(true, Ordering::Release);
    let (producer, mut units) = ring::ring(3, 1 << 20, None);
    let tile = VideoProducer::new(7, 60, pipeline, producer, shared.clone(), &METRICS);
    let worker = std::thread::spawn(move || tile.run());

    // The first AU is an IDR, from the GPU (the fake's payload is the frame number).
    assert!(next_unit(&mut units, |u| u.meta.keyframe && starts_with_sps(u.unit())));
    for _ in 0..3 {
        assert!(!next_unit(&mut units, |u| u.meta.keyframe));
    }
    let forced = |gpu: &FakeGpu| {
        gpu.calls()
            .iter()
            .filter(|c| matches!(c, Call::Encode(p) if p.force_idr))
            .count()
    };
    assert_eq!(forced(&gpu), 1);

    // A keyframe request (the client's IDR request) forces the next picture to an IDR.
    shared.keyframe.store(true, Ordering::Relaxed);
    let mut idr = false;
    for _ in 0..10 {
        if next_unit(&mut units, |u| u.meta.keyframe && starts_with_sps(u.unit())) {
            idr = true;
            break;
        }
    }
    assert!(idr, "no IDR after the request");
    assert_eq!(forced(&gpu), 2);

    // A bitrate change reconfigures the session (no new session, no IDR).
    shared.bitrate_kbps.store(3_000, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    let reconfigured = loop {
        let _ = next_unit(&mut units, |u| u.meta.keyframe);
        let r = gpu.calls().into_iter().find_map(|c| match c {
            Call::Reconfigure(p) => Some(p),
            _ => None,
        });
        if let Some(r) = r {
            break r;
        }
        assert!(Instant::now() < deadline, "no reconfigure");
    };
    assert_eq!(reconfigured.bitrate_bps, 3_000_000);
    assert_eq!(reconfigured.vbv_bits, 3_000_000 / 60);
    assert_eq!(forced(&gpu), 2);
    let sessions = |gpu: &FakeGpu| {
        gpu.calls()
            .iter()
            .filter(|c| matches!(c, Call::OpenSession))
            .count()
    };
    assert_eq!(sessions(&gpu), 1);

    // The GPU falls off the bus: the same frame is encoded again by openh264, as an IDR, and
    // the stream goes on; the GPU's buffers are all released.
    gpu.lose_device_at("upload", 0);
    let mut switched = false;
    for _ in 0..10 {
        let (key, sps, au) = next_unit(&mut units, |u| {
            (
                u.meta.keyframe,
                starts_with_sps(u.unit()),
                u.unit().to_vec(),
            )
        });
        // The fake's AUs carry 0xa5 padding; openh264's do not end in a run of it.
        if key && sps && !au.ends_with(&[0xa5; 16]) {
            switched = true;
            break;
        }
    }
    assert!(switched, "no openh264 IDR after the GPU was lost");
    for _ in 0..3 {
        assert!(!next_unit(&mut units, |u| u.unit().ends_with(&[0xa5; 16])));
    }
    assert_eq!(gpu.live(), Vec::<String>::new());
    assert_eq!(gpu.violations(), Vec::<String>::new());
    assert_eq!(shared.take_failure(), None, "the session went on");

    shared.stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
}

#[test]
fn on_a_machine_without_nvenc_the_data_plane_picks_openh264_and_says_why() {
    if strahl_encode::nvenc::detect().is_ok() {
        return; // a machine with the driver: the selftest covers it
    }
    let cfg = strahl_config::Config::default();
    let settings = MediaSettings::from_config(&cfg).unwrap();
    assert_eq!(settings.encoder.choice.backend, Backend::OpenH264);
    let caps = capability(&settings.video_source, &settings.encoder);
    assert_eq!(caps, strahl_encode::openh264_enc::capability());
    let line = describe_detected(&settings.detected(&caps));
    assert!(
        line.contains("video source: synthetic (")
            && line.contains("encoder openh264 (")
            && line.contains(strahl_encode::nvenc::LIBRARY)
            && line.contains("audio test tone"),
        "{line}"
    );
    let p = VideoPipeline::build(&session(Codec::H264, 0), &settings, 2_000, 1 << 20, 1).unwrap();
    assert_eq!(p.enc.name(), "openh264");

    // `[video] encoder = "nvenc"` without NVENC refuses to start, saying what to do.
    let cfg = strahl_config::Config::parse("[video]\nencoder = \"nvenc\"\n", "test").unwrap();
    let err = MediaSettings::from_config(&cfg).unwrap_err().to_string();
    assert!(
        err.contains(strahl_encode::nvenc::LIBRARY) && err.contains("encoder = \"auto\""),
        "{err}"
    );
}

#[test]
fn the_start_up_line_says_how_kms_frames_reach_the_encoder() {
    let gpu = FakeGpu::default();
    let mut settings = settings(&gpu);
    settings.video_source =
        super::super::VideoSourceKind::Kms(std::path::PathBuf::from("/run/strahl/kms.sock"));
    let caps = capability(&settings.video_source, &settings.encoder);
    let line = describe_detected(&settings.detected(&caps));
    assert!(line.contains("video source: kms ("), "{line}");
    assert!(
        line.contains("encoder nvenc (") && line.contains("KMS frames zero-copy: dmabuf → NVENC"),
        "{line}"
    );
    let mut soft = strahl_config::Config::default();
    soft.video.encoder = strahl_config::EncoderPref::Openh264;
    let mut settings = MediaSettings::from_config_with(&soft, Arc::new(gpu.clone())).unwrap();
    settings.video_source =
        super::super::VideoSourceKind::Kms(std::path::PathBuf::from("/run/strahl/kms.sock"));
    let line = describe_detected(&settings.detected(&caps));
    assert!(
        line.contains("encoder openh264 (")
            && line.contains("KMS frames by CPU copy: mapped and converted")
            && !line.contains("zero-copy"),
        "{line}"
    );
}
