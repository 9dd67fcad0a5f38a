//! The NVENC session driven through the public [`Encoder`] seam against the recording fake:
//! call order, parameters passed through, requests honoured, every buffer released on every
//! path (the fake flags any release of an unknown handle, any use of a released one, and any
//! destroy with buffers still live), device loss and a missing driver surfaced typed.

use std::fs::File;
use std::os::fd::AsFd;

use strahl_capture::synthetic::{SyntheticConfig, SyntheticSource};
use strahl_capture::{Frame, PixelFormat, VideoSource};

use super::api::{BufferFormat, Cap, Codec, NvError, Resource, SessionParams, fourcc};
use super::fake::{Call, FakeCuda, FakeGpu, FakeNvenc, Offer};
use super::fallback::FallbackEncoder;
use super::session::{DmabufFrame, MAX_INVALIDATE_SPAN, NvencConfig, NvencEncoder};
use crate::openh264_enc::{OpenH264Config, OpenH264Encoder};
use crate::{EncodeError, Encoder};

type Enc = NvencEncoder<FakeNvenc, FakeCuda>;

const W: u32 = 320;
const H: u32 = 240;
const FPS: u32 = 60;
const BPS: u32 = 4_800_000;

fn open(gpu: &FakeGpu) -> Enc {
    NvencEncoder::open(gpu.nvenc(), gpu.cuda(), NvencConfig::h264(W, H, FPS, BPS)).unwrap()
}

fn frame(n: u32) -> Frame {
    let mut f = Frame::new(W, H, PixelFormat::I420).unwrap();
    f.frame_number = n;
    f.pts_us = u64::from(n) * 16_667;
    f
}

/// NAL unit types of an Annex-B AU in order.
fn nal_types(au: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    let mut i = 0;
    while i + 4 <= au.len() {
        if au[i..i + 4] == [0, 0, 0, 1] {
            v.push(au[i + 4] & 0x1f);
            i += 4;
        } else {
            i += 1;
        }
    }
    v
}

/// Drops the encoder and checks the fake saw a clean life: nothing live, no violation.
fn assert_released(gpu: &FakeGpu, enc: Enc) {
    drop(enc);
    assert_eq!(gpu.live(), Vec::<String>::new(), "still live after drop");
    assert_eq!(gpu.violations(), Vec::<String>::new());
}

fn pictures(gpu: &FakeGpu) -> Vec<super::api::Picture> {
    gpu.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Encode(p) => Some(p),
            _ => None,
        })
        .collect()
}

#[test]
fn open_queries_caps_then_initializes_low_latency_cbr() {
    let gpu = FakeGpu::new(Offer {
        codecs: vec![Codec::H264, Codec::Hevc],
        max: (4096, 2304),
        ten_bit: true,
        rfi: true,
    });
    let enc = open(&gpu);
    let names = gpu.names();
    assert_eq!(&names[..3], ["open_context", "open_session", "codecs"]);
    assert_eq!(names.iter().filter(|n| **n == "cap").count(), 2 * 4);
    assert_eq!(
        &names[names.len() - 2..],
        ["initialize", "create_bitstream"]
    );
    assert!(gpu.calls().contains(&Call::OpenContext(0)));
    assert!(gpu.calls().contains(&Call::Cap(Codec::Hevc, Cap::TenBit)));
    let init = gpu.calls().into_iter().find_map(|c| match c {
        Call::Initialize(p) => Some(p),
        _ => None,
    });
    assert_eq!(
        init,
        Some(SessionParams {
            codec: Codec::H264,
            width: W,
            height: H,
            fps: FPS,
            bitrate_bps: BPS,
            vbv_bits: BPS / FPS,
            format: BufferFormat::Iyuv,
            ten_bit: false,
        })
    );
    let caps = enc.capabilities();
    assert_eq!(caps.len(), 2);
    assert_eq!(
        (caps[0].codec, caps[0].max_width, caps[0].max_height),
        (Codec::H264, 4096, 2304)
    );
    assert!(!caps[0].ten_bit && caps[1].ten_bit && caps[1].ref_pic_invalidation);
    gpu.clear_calls();
    assert_released(&gpu, enc);
    assert_eq!(
        gpu.names(),
        ["destroy_bitstream", "destroy", "close_context"],
        "NVENC released before the CUDA context"
    );
}

#[test]
fn capability_report_follows_what_the_gpu_reported() {
    use strahl_capture::format::{Chroma, CodecKind};
    // H.264 + HEVC with 10-bit: H.264 High 8-bit, HEVC Main and Main 10.
    let gpu = FakeGpu::new(Offer {
        codecs: vec![Codec::H264, Codec::Hevc],
        ..Offer::default()
    });
    let enc = open(&gpu);
    let cap = enc.capability();
    assert_eq!(cap.encoder, "nvenc");
    let got: Vec<(CodecKind, u8, u8)> = cap
        .formats
        .iter()
        .map(|f| (f.codec, f.profile, f.bit_depth))
        .collect();
    assert_eq!(
        got,
        [
            (CodecKind::H264, 100, 8),
            (CodecKind::Hevc, 1, 8),
            (CodecKind::Hevc, 2, 10)
        ]
    );
    assert!(cap.formats.iter().all(|f| f.chroma == Chroma::Yuv420));
    assert!(cap.supports(CodecKind::Hevc, 10, false));
    assert!(!cap.supports(CodecKind::Av1, 8, false));
    assert_released(&gpu, enc);
    // A GPU without 10-bit, with AV1: 8-bit only, AV1 included.
    let gpu = FakeGpu::new(Offer {
        ten_bit: false,
        ..Offer::default()
    });
    let enc = open(&gpu);
    let cap = enc.capability();
    assert!(cap.supports(CodecKind::Av1, 8, false));
    assert!(!cap.formats.iter().any(|f| f.bit_depth == 10));
    assert_released(&gpu, enc);
}

#[test]
fn cpu_frames_go_map_encode_lock_unlock_unmap() {
    let gpu = FakeGpu::default();
    let mut enc = open(&gpu);
    gpu.clear_calls();
    let mut out = Vec::new();
    for n in 0..3 {
        let info = enc.encode(&frame(10 + n), &mut out).unwrap();
        assert_eq!(info.frame_number, 10 + n);
        assert_eq!(info.len, out.len());
        // The AU carries the timestamp it was encoded with: the frame number.
        let ts = u64::from(10 + n).to_le_bytes();
        assert!(out.windows(8).any(|w| w == ts));
        if n == 0 {
            assert!(info.idr);
            assert_eq!(nal_types(&out), [7, 8, 5], "IDR = SPS, PPS, slice");
        } else {
            assert!(!info.idr);
            assert_eq!(nal_types(&out), [1]);
        }
    }
    let names = gpu.names();
    // Staging buffer allocated and registered once, then per frame the fixed sequence.
    assert_eq!(&names[..2], ["alloc", "register"]);
    for chunk in names[2..].chunks(6) {
        assert_eq!(
            chunk,
            ["upload", "map", "encode", "lock", "unlock", "unmap"]
        );
    }
    assert_eq!(names.len(), 2 + 3 * 6);
    assert!(gpu.calls().contains(&Call::Alloc((W * H * 3 / 2) as usize)));
    let reg = gpu.registered();
    assert_eq!(reg.len(), 1);
    assert_eq!(
        (reg[0].format, reg[0].pitch, reg[0].modifier),
        (BufferFormat::Iyuv, W, fourcc::MOD_LINEAR)
    );
    let pics = pictures(&gpu);
    assert_eq!(
        pics.iter().map(|p| p.timestamp).collect::<Vec<_>>(),
        [10, 11, 12]
    );
    assert_eq!(
        pics.iter().map(|p| p.force_idr).collect::<Vec<_>>(),
        [true, false, false]
    );
    assert_eq!(enc.stats().frames, 3);
    assert_eq!(enc.stats().idr_frames, 1);
    // A frame of the wrong format is refused before anything reaches the GPU.
    let before = gpu.calls().len();
    let nv12 = Frame::new(W, H, PixelFormat::Nv12).unwrap();
    assert!(matches!(
        enc.encode(&nv12, &mut out),
        Err(EncodeError::Frame(_))
    ));
    assert_eq!(gpu.calls().len(), before);
    assert_released(&gpu, enc);
}

fn dmabuf<'a>(file: &'a File, id: u64, fourcc: u32, modifier: u64, n: u32) -> DmabufFrame<'a> {
    let bpp = if fourcc == fourcc::NV12 { 1 } else { 4 };
    let pitch = W * bpp;
    DmabufFrame {
        fd: file.as_fd(),
        buffer_id: id,
        size: 1 << 20,
        width: W,
        height: H,
        fourcc,
        modifier,
        offset: 256,
        pitch,
        chroma_offset: (fourcc == fourcc::NV12).then_some(256 + pitch * H),
        frame_number: n,
        pts_us: 0,
    }
}

#[test]
fn dmabuf_format_and_modifier_pass_through() {
    const NV_BLOCK_LINEAR: u64 = 0x0300_0000_0060_6014;
    let file = File::open("/dev/null").unwrap();
    let gpu = FakeGpu::default();
    let mut enc = open(&gpu);
    gpu.clear_calls();
    let mut out = Vec::new();
    let f = dmabuf(&file, 7, fourcc::XRGB8888, fourcc::MOD_LINEAR, 1);
    assert!(enc.encode_dmabuf(&f, &mut out).unwrap().idr);
    let calls = gpu.calls();
    assert_eq!(
        calls[0],
        Call::Import {
            size: 1 << 20,
            modifier: fourcc::MOD_LINEAR
        }
    );
    let Call::Register(r) = calls[1] else {
        panic!("{calls:?}")
    };
    assert_eq!(
        (r.format, r.pitch, r.modifier, r.width),
        (BufferFormat::Argb, W * 4, 0, W)
    );
    assert_eq!(
        r.ptr.0 % 0x1000,
        256,
        "the plane offset is applied to the imported base"
    );
    let pics = pictures(&gpu);
    assert_eq!((pics[0].format, pics[0].pitch), (BufferFormat::Argb, W * 4));

    // The same capture buffer again: no new import or registration.
    gpu.clear_calls();
    let f = dmabuf(&file, 7, fourcc::XRGB8888, fourcc::MOD_LINEAR, 2);
    enc.encode_dmabuf(&f, &mut out).unwrap();
    assert_eq!(gpu.names(), ["map", "encode", "lock", "unlock", "unmap"]);

    // Another buffer, NV12 with NVIDIA's block-linear modifier: handed to the import as is.
    gpu.clear_calls();
    let f = dmabuf(&file, 8, fourcc::NV12, NV_BLOCK_LINEAR, 3);
    enc.encode_dmabuf(&f, &mut out).unwrap();
    let calls = gpu.calls();
    assert_eq!(
        calls[0],
        Call::Import {
            size: 1 << 20,
            modifier: NV_BLOCK_LINEAR
        }
    );
    assert!(matches!(
        calls[1],
        Call::Register(Resource {
            format: BufferFormat::Nv12,
            modifier: NV_BLOCK_LINEAR,
            ..
        })
    ));
    assert_eq!(gpu.registered().len(), 2);

    // Buffer 7 reallocated with another layout: the old import is released first.
    gpu.clear_calls();
    let f = dmabuf(&file, 7, fourcc::XBGR8888, fourcc::MOD_LINEAR, 4);
    enc.encode_dmabuf(&f, &mut out).unwrap();
    assert_eq!(
        &gpu.names()[..4],
        ["unregister", "release_import", "import", "register"]
    );
    assert_eq!(pictures(&gpu)[0].format, BufferFormat::Abgr);

    // Formats NVENC cannot take, and a chroma plane not where NVENC expects it, are refused
    // before any import.
    gpu.clear_calls();
    let yuyv = u32::from_le_bytes(*b"YUYV");
    let err = enc
        .encode_dmabuf(&dmabuf(&file, 9, yuyv, 0, 5), &mut out)
        .unwrap_err();
    assert!(
        matches!(err, EncodeError::Config(ref m) if m.contains("0x56595559")),
        "{err}"
    );
    let mut f = dmabuf(&file, 9, fourcc::NV12, 0, 5);
    f.chroma_offset = Some(1 << 19);
    assert!(matches!(
        enc.encode_dmabuf(&f, &mut out),
        Err(EncodeError::Config(_))
    ));
    assert!(gpu.calls().is_empty());
    assert_released(&gpu, enc);
}

#[test]
fn idr_on_request() {
    let gpu = FakeGpu::default();
    let mut enc = open(&gpu);
    let mut out = Vec::new();
    let mut idr = Vec::new();
    for n in 0..5 {
        if n == 3 {
            enc.request_idr();
        }
        let info = enc.encode(&frame(n), &mut out).unwrap();
        idr.push(info.idr);
        if info.idr {
            assert_eq!(nal_types(&out)[..2], [7, 8], "IDR starts with SPS, PPS");
        }
    }
    assert_eq!(idr, [true, false, false, true, false]);
    let forced: Vec<bool> = pictures(&gpu).iter().map(|p| p.force_idr).collect();
    assert_eq!(forced, [true, false, false, true, false]);
    assert_released(&gpu, enc);
}

#[test]
fn reference_invalidation_on_request() {
    let gpu = FakeGpu::default();
    let mut enc = open(&gpu);
    let mut out = Vec::new();
    for n in 0..6 {
        enc.encode(&frame(n), &mut out).unwrap();
    }
    gpu.clear_calls();
    enc.invalidate_frames(3, 4);
    assert_eq!(gpu.calls(), [Call::Invalidate(3), Call::Invalidate(4)]);
    assert_eq!(enc.invalidations(), 2);
    assert!(
        !enc.encode(&frame(6), &mut out).unwrap().idr,
        "RFI instead of an IDR"
    );

    // A range wider than NVENC's references, or frames not encoded yet: an IDR.
    gpu.clear_calls();
    enc.invalidate_frames(0, MAX_INVALIDATE_SPAN + 1);
    enc.invalidate_frames(5, 9);
    assert!(!gpu.names().contains(&"invalidate"));
    assert!(enc.encode(&frame(7), &mut out).unwrap().idr);

    // The driver refusing the invalidation: an IDR.
    gpu.fail_once(
        "invalidate",
        0,
        NvError::Call {
            call: "invalidate",
            status: 8,
            detail: String::new(),
        },
    );
    enc.invalidate_frames(7, 7);
    assert!(enc.encode(&frame(8), &mut out).unwrap().idr);
    assert_released(&gpu, enc);

    // A GPU without reference invalidation: the default of the seam, an IDR.
    let gpu = FakeGpu::new(Offer {
        rfi: false,
        ..Offer::default()
    });
    let mut enc = open(&gpu);
    enc.encode(&frame(0), &mut out).unwrap();
    enc.encode(&frame(1), &mut out).unwrap();
    enc.invalidate_frames(1, 1);
    assert!(!gpu.names().contains(&"invalidate"));
    assert!(enc.encode(&frame(2), &mut out).unwrap().idr);
    assert_released(&gpu, enc);
}

#[test]
fn bitrate_change_reconfigures_mid_stream() {
    let gpu = FakeGpu::default();
    let mut enc = open(&gpu);
    let mut out = Vec::new();
    enc.encode(&frame(0), &mut out).unwrap();
    let small = enc.encode(&frame(1), &mut out).unwrap().len;
    gpu.clear_calls();
    enc.set_bitrate(4 * BPS).unwrap();
    let Call::Reconfigure(p) = gpu.calls()[0] else {
        panic!("{:?}", gpu.calls())
    };
    assert_eq!(
        (p.bitrate_bps, p.vbv_bits, p.width),
        (4 * BPS, 4 * BPS / FPS, W)
    );
    let info = enc.encode(&frame(2), &mut out).unwrap();
    assert!(!info.idr, "a bitrate change does not restart the stream");
    assert!(info.len > 3 * small, "{} vs {small}", info.len);
    // Invalid, or refused by the driver: an error, and the old rate stays.
    assert!(matches!(enc.set_bitrate(0), Err(EncodeError::Config(_))));
    gpu.fail_once("reconfigure", 0, NvError::Unsupported("rate".into()));
    assert!(matches!(
        enc.set_bitrate(BPS),
        Err(EncodeError::NotAvailable(_))
    ));
    gpu.clear_calls();
    enc.set_bitrate(2 * BPS).unwrap();
    let Call::Reconfigure(p) = gpu.calls()[0] else {
        panic!()
    };
    assert_eq!(p.bitrate_bps, 2 * BPS);
    assert_released(&gpu, enc);
}

#[test]
fn oversized_access_unit_is_refused_and_the_next_is_an_idr() {
    let gpu = FakeGpu::default();
    let mut enc = open(&gpu);
    let mut out = Vec::new();
    enc.encode(&frame(0), &mut out).unwrap();
    enc.set_max_access_unit_bytes(Some(100));
    let err = enc.encode(&frame(1), &mut out).unwrap_err();
    assert!(
        matches!(err, EncodeError::AccessUnitTooLarge { cap: 100, .. }),
        "{err}"
    );
    assert!(out.is_empty());
    enc.set_max_access_unit_bytes(None);
    assert!(enc.encode(&frame(2), &mut out).unwrap().idr);
    let s = enc.stats();
    assert_eq!((s.over_cap, s.capped_dropped, s.frames), (1, 1, 2));
    assert_released(&gpu, enc);
}

fn call_err(call: &'static str) -> NvError {
    NvError::Call {
        call,
        status: 20,
        detail: "fake".into(),
    }
}

#[test]
fn every_buffer_is_released_on_error_paths() {
    let mut out = Vec::new();
    // encode fails: the mapping is released, nothing locked; the next frame works.
    let gpu = FakeGpu::default();
    let mut enc = open(&gpu);
    gpu.fail_once("encode", 1, call_err("encode"));
    enc.encode(&frame(0), &mut out).unwrap();
    gpu.clear_calls();
    assert!(matches!(
        enc.encode(&frame(1), &mut out),
        Err(EncodeError::Backend(_))
    ));
    assert_eq!(gpu.names(), ["upload", "map", "encode", "unmap"]);
    assert!(out.is_empty());
    enc.encode(&frame(2), &mut out).unwrap();
    assert_released(&gpu, enc);

    // lock fails: unmapped, and no unlock of a buffer that was not locked.
    let gpu = FakeGpu::default();
    let mut enc = open(&gpu);
    gpu.fail_once("lock", 0, call_err("lock"));
    assert!(enc.encode(&frame(0), &mut out).is_err());
    assert_eq!(&gpu.names()[gpu.names().len() - 2..], ["lock", "unmap"]);
    assert_released(&gpu, enc);

    // The staging registration fails: its allocation is freed at once.
    let gpu = FakeGpu::default();
    let mut enc = open(&gpu);
    gpu.fail_once("register", 0, call_err("register"));
    assert!(enc.encode(&frame(0), &mut out).is_err());
    assert_eq!(gpu.live(), ["1 contexts", "1 sessions", "1 bitstreams"]);
    assert_released(&gpu, enc);

    // A dmabuf registration fails: the import is released at once.
    let file = File::open("/dev/null").unwrap();
    let gpu = FakeGpu::default();
    let mut enc = open(&gpu);
    gpu.fail_once("register", 0, call_err("register"));
    let f = dmabuf(&file, 1, fourcc::XRGB8888, 0, 0);
    assert!(enc.encode_dmabuf(&f, &mut out).is_err());
    let n = gpu.names();
    assert_eq!(&n[n.len() - 3..], ["import", "register", "release_import"]);
    assert_released(&gpu, enc);

    // Each step of open failing: whatever was acquired is released.
    for (step, nth) in [
        ("open_session", 0),
        ("codecs", 0),
        ("cap", 3),
        ("initialize", 0),
        ("create_bitstream", 0),
    ] {
        let gpu = FakeGpu::default();
        gpu.fail_once(step, nth, call_err(step));
        let r = NvencEncoder::open(gpu.nvenc(), gpu.cuda(), NvencConfig::h264(W, H, FPS, BPS));
        assert!(r.is_err(), "{step}");
        drop(r);
        assert_eq!(gpu.live(), Vec::<String>::new(), "{step}");
        assert_eq!(gpu.violations(), Vec::<String>::new(), "{step}");
        assert_eq!(gpu.names().last(), Some(&"close_context"), "{step}");
    }
}

#[test]
fn requests_the_gpu_cannot_do_are_refused_at_open() {
    let cases: [(Offer, NvencConfig, &str); 3] = [
        (
            Offer {
                codecs: vec![Codec::H264],
                ..Offer::default()
            },
            NvencConfig {
                codec: Codec::Av1,
                ..NvencConfig::h264(W, H, FPS, BPS)
            },
            "av1",
        ),
        (
            Offer {
                max: (1920, 1080),
                ..Offer::default()
            },
            NvencConfig::h264(3840, 2160, FPS, BPS),
            "1920x1080",
        ),
        (
            Offer {
                ten_bit: false,
                ..Offer::default()
            },
            NvencConfig {
                codec: Codec::Hevc,
                ten_bit: true,
                ..NvencConfig::h264(W, H, FPS, BPS)
            },
            "10-bit",
        ),
    ];
    for (offer, cfg, what) in cases {
        let gpu = FakeGpu::new(offer);
        let err = NvencEncoder::open(gpu.nvenc(), gpu.cuda(), cfg)
            .err()
            .expect(what);
        assert!(err.to_string().contains(what), "{err}");
        assert_eq!(gpu.live(), Vec::<String>::new(), "{what}");
        assert!(!gpu.names().contains(&"initialize"), "{what}");
    }
    // 10-bit HEVC where the GPU has it.
    let gpu = FakeGpu::default();
    let cfg = NvencConfig {
        codec: Codec::Hevc,
        ten_bit: true,
        ..NvencConfig::h264(W, H, FPS, BPS)
    };
    let enc = NvencEncoder::open(gpu.nvenc(), gpu.cuda(), cfg).unwrap();
    assert!(
        gpu.calls()
            .iter()
            .any(|c| matches!(c, Call::Initialize(p) if p.ten_bit && p.codec == Codec::Hevc))
    );
    assert_released(&gpu, enc);
}

#[test]
fn device_lost_mid_stream_is_typed_and_sticky() {
    let gpu = FakeGpu::default();
    let mut enc = open(&gpu);
    let mut out = Vec::new();
    enc.encode(&frame(0), &mut out).unwrap();
    enc.encode(&frame(1), &mut out).unwrap();
    gpu.lose_device_at("encode", 0);
    let err = enc.encode(&frame(2), &mut out).unwrap_err();
    assert!(
        matches!(err, EncodeError::DeviceLost(ref m) if m.contains("encode")),
        "{err}"
    );
    assert!(enc.lost().is_some());
    // Later calls fail the same way without touching the driver again.
    let before = gpu.calls().len();
    assert!(matches!(
        enc.encode(&frame(3), &mut out),
        Err(EncodeError::DeviceLost(_))
    ));
    assert!(matches!(
        enc.set_bitrate(BPS),
        Err(EncodeError::DeviceLost(_))
    ));
    enc.invalidate_frames(1, 1);
    assert_eq!(gpu.calls().len(), before);
    // The mapping of the failed frame was released, and drop releases the rest.
    let n = gpu.names();
    assert_eq!(&n[n.len() - 2..], ["encode", "unmap"]);
    assert_released(&gpu, enc);

    // Lost in CUDA (the upload) rather than NVENC: the same typed error.
    let gpu = FakeGpu::default();
    let mut enc = open(&gpu);
    gpu.lose_device_at("upload", 0);
    assert!(matches!(
        enc.encode(&frame(0), &mut out),
        Err(EncodeError::DeviceLost(_))
    ));
    assert_released(&gpu, enc);
}

#[test]
fn device_lost_falls_back_to_openh264() {
    let gpu = FakeGpu::default();
    let nvenc = open(&gpu);
    let mut enc = FallbackEncoder::new(Box::new(nvenc), || {
        Ok(
            Box::new(OpenH264Encoder::new(OpenH264Config::new(W, H, FPS, BPS))?)
                as Box<dyn Encoder + Send>,
        )
    });
    let mut src = SyntheticSource::new(SyntheticConfig {
        width: W,
        height: H,
        fps: FPS,
        format: PixelFormat::I420,
        first_frame_number: 0,
    })
    .unwrap();
    let mut f = Frame::new(W, H, PixelFormat::I420).unwrap();
    let mut out = Vec::new();
    enc.set_bitrate(2 * BPS).unwrap();
    gpu.lose_device_at("encode", 2);
    let mut log = Vec::new();
    for _ in 0..5 {
        src.next_frame(&mut f).unwrap();
        let info = enc.encode(&f, &mut out).unwrap();
        log.push((enc.name(), info.idr, info.frame_number));
        if log.len() == 3 {
            // The GPU's buffers went with the switch, not at the end.
            assert_eq!(gpu.live(), Vec::<String>::new());
            assert_eq!(gpu.violations(), Vec::<String>::new());
            assert_eq!(
                nal_types(&out)[..2],
                [7, 8],
                "openh264's first AU: SPS, PPS"
            );
        }
    }
    assert_eq!(
        log,
        [
            ("nvenc", true, 0),
            ("nvenc", false, 1),
            ("openh264", true, 2),
            ("openh264", false, 3),
            ("openh264", false, 4),
        ]
    );
    let why = enc.fell_back().unwrap();
    assert!(
        why.starts_with("nvenc → openh264") && why.contains("lost"),
        "{why}"
    );
    assert_eq!(enc.stats().frames, 5);
    assert_eq!(enc.stats().idr_frames, 2);
}

#[test]
fn dmabufs_through_the_seam_and_a_device_lost_there_hands_the_picture_back_as_a_cpu_frame() {
    let gpu = FakeGpu::default();
    let mut enc = FallbackEncoder::new(Box::new(open(&gpu)), || {
        Ok(
            Box::new(OpenH264Encoder::new(OpenH264Config::new(W, H, FPS, BPS))?)
                as Box<dyn Encoder + Send>,
        )
    });
    let file = File::open("/dev/null").unwrap();
    let mut out = Vec::new();
    assert!(enc.takes_dmabuf());
    let tiled = 0x0300_0000_0060_6014;
    let info = enc
        .encode_dmabuf(&dmabuf(&file, 1, fourcc::XRGB8888, tiled, 0), &mut out)
        .unwrap();
    assert!(info.idr && nal_types(&out)[..2] == [7, 8]);
    // Through the trait object the same import: modifier and format as given, no upload.
    assert!(gpu.calls().contains(&Call::Import {
        size: 1 << 20,
        modifier: tiled
    }));
    assert!(!gpu.names().contains(&"upload"));

    gpu.lose_device_at("map", 0);
    let err = enc
        .encode_dmabuf(&dmabuf(&file, 1, fourcc::XRGB8888, tiled, 1), &mut out)
        .unwrap_err();
    assert!(matches!(err, EncodeError::DeviceLost(_)), "{err}");
    // Switched: the GPU's buffers are gone, dmabufs are refused, the CPU frame is encoded.
    assert!(!enc.takes_dmabuf());
    assert_eq!(gpu.live(), Vec::<String>::new());
    assert_eq!(gpu.violations(), Vec::<String>::new());
    assert!(matches!(
        enc.encode_dmabuf(&dmabuf(&file, 1, fourcc::XRGB8888, tiled, 1), &mut out),
        Err(EncodeError::Unsupported(_))
    ));
    let info = enc.encode(&frame(1), &mut out).unwrap();
    assert_eq!(
        (enc.name(), info.idr, info.frame_number),
        ("openh264", true, 1)
    );
    // OpenH264 alone never takes a dmabuf.
    let soft = OpenH264Encoder::new(OpenH264Config::new(W, H, FPS, BPS)).unwrap();
    assert!(!soft.takes_dmabuf());
}

#[test]
fn driver_missing_is_typed_with_the_library_named() {
    let Err(NvError::DriverMissing(m)) =
        super::ffi::RealNvenc::load_from("libstrahl-no-nvenc.so.1")
    else {
        panic!("a missing library must be DriverMissing");
    };
    assert!(m.contains("libstrahl-no-nvenc.so.1 not found"), "{m}");
    // A library without NVENC's entry points.
    let Err(NvError::DriverMissing(m)) = super::ffi::RealNvenc::load_from("libc.so.6") else {
        panic!("libc has no NVENC");
    };
    assert!(m.contains("NvEncodeAPIGetMaxSupportedVersion"), "{m}");
    let Err(NvError::DriverMissing(m)) =
        super::cuda::RealCuda::load_from(&["libstrahl-no-cuda.so.1"])
    else {
        panic!("a missing CUDA must be DriverMissing");
    };
    assert!(
        m.contains("CUDA driver library not found") && m.contains("libstrahl-no-cuda.so.1"),
        "{m}"
    );
    // This machine: without the driver, the typed "not available" naming the library.
    match super::open(NvencConfig::h264(W, H, FPS, BPS)) {
        Ok(enc) => assert_eq!(enc.name(), "nvenc"),
        // Without the driver the message names the library; with it (e.g. a GPU without an
        // NVENC engine) it says what the driver refused.
        Err(EncodeError::NotAvailable(m)) if super::detect().is_err() => {
            assert!(m.contains("libnvidia-encode.so.1"), "{m}")
        }
        Err(EncodeError::NotAvailable(m)) => assert!(!m.is_empty()),
        Err(e) => panic!("unexpected error kind: {e}"),
    }
}
