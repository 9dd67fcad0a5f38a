//! End-to-end checks of the software encoder: synthetic frames → OpenH264 encode → OpenH264
//! decode → frame number read back from the decoded pixels, plus the bitstream properties the
//! GameStream path relies on (IDR = SPS, PPS first; one reference; VUI restrictions), IDR on
//! request, the AU cap, bitrate changes and the passthrough round trip.

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use strahl_capture::annexb::{is_idr_au, nal_type, nal_units};
use strahl_capture::passthrough::PassthroughSource;
use strahl_capture::synthetic::{SyntheticConfig, SyntheticSource, read_frame_number_strided};
use strahl_capture::{Frame, PixelFormat, VideoSource};
use strahl_encode::openh264_enc::{OpenH264Config, OpenH264Encoder};
use strahl_encode::passthrough::PassthroughEncoder;
use strahl_encode::sps::parse_sps;
use strahl_encode::{EncodeError, Encoder};

struct Rig {
    src: SyntheticSource,
    frame: Frame,
    enc: OpenH264Encoder,
    au: Vec<u8>,
}

impl Rig {
    fn new(w: u32, h: u32, format: PixelFormat, first: u32, bps: u32) -> Self {
        let src = SyntheticSource::new(SyntheticConfig {
            width: w,
            height: h,
            fps: 60,
            format,
            first_frame_number: first,
        })
        .unwrap();
        Self {
            src,
            frame: Frame::new(w, h, format).unwrap(),
            enc: OpenH264Encoder::new(OpenH264Config::new(w, h, 60, bps)).unwrap(),
            au: Vec::new(),
        }
    }

    fn step(&mut self) -> Result<strahl_encode::EncodedInfo, EncodeError> {
        self.src.next_frame(&mut self.frame).unwrap();
        self.enc.encode(&self.frame, &mut self.au)
    }
}

fn nal_kinds(au: &[u8]) -> Vec<u8> {
    nal_units(au).map(|n| n.kind()).collect()
}

/// Decodes one AU and reads the frame number from the picture.
fn decode_number(dec: &mut Decoder, au: &[u8], w: u32, h: u32) -> Option<u32> {
    let pic = dec.decode(au).expect("decode").expect("a picture per AU");
    let (pw, ph) = pic.dimensions();
    assert_eq!((pw as u32, ph as u32), (w, h));
    read_frame_number_strided(pic.y(), pic.strides().0, w, h)
}

fn roundtrip(w: u32, h: u32, format: PixelFormat, first: u32, bps: u32, frames: u32) {
    let mut rig = Rig::new(w, h, format, first, bps);
    let mut dec = Decoder::new().unwrap();
    for i in 0..frames {
        let info = rig.step().unwrap();
        assert_eq!(info.frame_number, first.wrapping_add(i));
        assert_eq!(info.len, rig.au.len());
        if i == 0 {
            assert!(info.idr, "first AU must be an IDR");
            let kinds = nal_kinds(&rig.au);
            assert_eq!(
                kinds[..2],
                [nal_type::SPS, nal_type::PPS],
                "IDR AU: {kinds:?}"
            );
            assert!(kinds[2..].iter().all(|&k| k == nal_type::IDR), "{kinds:?}");
            let sps = parse_sps(nal_units(&rig.au).next().unwrap().bytes).expect("SPS parses");
            assert_eq!(sps.profile_idc, 66, "baseline");
            // What the encoder reports is what it writes: its one capability is this SPS's
            // codec, profile, bit depth and chroma.
            let f = strahl_capture::annexb::sps_format(nal_units(&rig.au).next().unwrap().bytes)
                .expect("SPS format");
            let cap = strahl_encode::openh264_enc::capability();
            assert_eq!(cap.formats.len(), 1);
            let c = cap.formats[0];
            assert_eq!(
                (c.codec, c.profile, c.bit_depth, c.chroma),
                (f.codec, f.profile, f.bit_depth, f.chroma)
            );
            assert_eq!((f.width, f.height), (w, h), "cropped size");
            assert_ne!(
                sps.constraints & 0x40,
                0,
                "constraint_set1 (constrained baseline)"
            );
            assert_eq!(sps.max_num_ref_frames, 1);
            assert_eq!(
                sps.bitstream_restriction,
                Some((0, 1)),
                "max_dec_frame_buffering = 1"
            );
            assert_eq!(
                (sps.width_mbs, sps.height_map_units),
                (w.div_ceil(16), h.div_ceil(16))
            );
        } else {
            assert!(!info.idr, "frame {i}: no spontaneous IDRs");
            assert!(!nal_kinds(&rig.au).contains(&nal_type::SPS));
        }
        let got = decode_number(&mut dec, &rig.au, w, h);
        assert_eq!(
            got,
            Some(info.frame_number),
            "frame {i} at {w}x{h}, {} bytes",
            info.len
        );
    }
    let stats = rig.enc.stats();
    assert_eq!((stats.frames, stats.idr_frames), (u64::from(frames), 1));
}

#[test]
fn roundtrip_720p_frame_numbers_exact() {
    // 4 Mbit/s at 720p60 is a modest rate (Moonlight's defaults are 10–20 Mbit/s).
    roundtrip(1280, 720, PixelFormat::I420, 1000, 4_000_000, 64);
}

#[test]
fn roundtrip_small_nv12_across_u32_wrap() {
    // Start just below u32::MAX so the high bits and the wrap are exercised.
    roundtrip(320, 240, PixelFormat::Nv12, u32::MAX - 30, 400_000, 64);
}

#[test]
fn request_idr_makes_next_au_an_idr_with_parameter_sets() {
    let mut rig = Rig::new(320, 240, PixelFormat::I420, 0, 500_000);
    let mut dec = Decoder::new().unwrap();
    for _ in 0..10 {
        let info = rig.step().unwrap();
        decode_number(&mut dec, &rig.au, 320, 240);
        let _ = info;
    }
    rig.enc.request_idr();
    let info = rig.step().unwrap();
    assert!(info.idr);
    assert!(is_idr_au(&rig.au));
    assert_eq!(nal_kinds(&rig.au)[..2], [nal_type::SPS, nal_type::PPS]);
    // A fresh decoder can start here.
    let mut fresh = Decoder::new().unwrap();
    assert_eq!(decode_number(&mut fresh, &rig.au, 320, 240), Some(10));
    let info = rig.step().unwrap();
    assert!(!info.idr);
    assert_eq!(decode_number(&mut fresh, &rig.au, 320, 240), Some(11));
    assert_eq!(rig.enc.stats().idr_frames, 2);
}

#[test]
fn au_cap_reencodes_smaller_or_refuses() {
    let (w, h) = (1280, 720);
    let mut rig = Rig::new(w, h, PixelFormat::I420, 0, 20_000_000);
    let first = rig.step().unwrap();
    assert!(first.idr);
    let idr_len = first.len;
    // A cap of a third of the uncapped IDR: the next IDR must be re-encoded under it.
    let cap = idr_len / 3;
    rig.enc.set_max_access_unit_bytes(Some(cap));
    rig.enc.request_idr();
    let info = rig.step().unwrap();
    assert!(info.idr, "capped re-encode is an IDR");
    assert!(
        info.reencodes >= 1,
        "uncapped {idr_len} B, cap {cap} B, got {} B",
        info.len
    );
    assert!(info.len <= cap);
    assert!(rig.enc.qp_floor() > 0);
    let stats = rig.enc.stats();
    assert_eq!(
        (stats.over_cap, stats.capped_ok, stats.capped_dropped),
        (1, 1, 0)
    );
    // The capped picture still carries a readable frame number, and decoding continues.
    let mut dec = Decoder::new().unwrap();
    assert_eq!(decode_number(&mut dec, &rig.au, w, h), Some(1));
    let info = rig.step().unwrap();
    assert!(info.len <= cap);
    assert_eq!(decode_number(&mut dec, &rig.au, w, h), Some(2));

    // A cap nothing can meet: typed refusal, counted, and the next AU is an IDR.
    rig.enc.set_max_access_unit_bytes(Some(64));
    match rig.step() {
        Err(EncodeError::AccessUnitTooLarge { len, cap }) => assert!(len > cap && cap == 64),
        other => panic!("expected AccessUnitTooLarge, got {other:?}"),
    }
    assert_eq!(rig.enc.stats().capped_dropped, 1);
    rig.enc.set_max_access_unit_bytes(None);
    let info = rig.step().unwrap();
    assert!(info.idr, "after a dropped AU the stream restarts on an IDR");
    let mut fresh = Decoder::new().unwrap();
    assert_eq!(decode_number(&mut fresh, &rig.au, w, h), Some(4));
}

#[test]
fn bitrate_change_takes_effect_without_idr() {
    let mut rig = Rig::new(640, 480, PixelFormat::I420, 0, 8_000_000);
    let mut dec = Decoder::new().unwrap();
    let mut high = 0usize;
    let mut low = 0usize;
    for i in 0..60 {
        if i == 30 {
            rig.enc.set_bitrate(250_000).unwrap();
        }
        let info = rig.step().unwrap();
        assert_eq!(info.idr, i == 0);
        assert_eq!(decode_number(&mut dec, &rig.au, 640, 480), Some(i));
        // Skip the IDR and the rate controller's settling frames.
        if (10..30).contains(&i) {
            high += info.len;
        } else if i >= 40 {
            low += info.len;
        }
    }
    // 8 Mbit/s at 60 fps ≈ 16.7 kB/frame budget, 250 kbit/s ≈ 0.5 kB.
    assert!(
        low * 2 < high,
        "high-rate 20 frames {high} B, low-rate 20 frames {low} B"
    );
}

#[test]
fn passthrough_source_splits_encoder_output_into_the_same_aus() {
    let mut rig = Rig::new(320, 240, PixelFormat::I420, 0, 500_000);
    let mut aus = Vec::new();
    for i in 0..40 {
        if i == 20 {
            rig.enc.request_idr();
        }
        rig.step().unwrap();
        aus.push(rig.au.clone());
    }
    let path = std::env::temp_dir().join(format!("strahl-passthrough-{}.h264", std::process::id()));
    std::fs::write(&path, aus.concat()).unwrap();
    let mut src = PassthroughSource::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let cap = strahl_encode::passthrough::capability(&src, "clip.h264");
    assert_eq!(
        cap.formats,
        strahl_encode::openh264_enc::capability().formats,
        "a replay of OpenH264's output makes what OpenH264 makes"
    );
    assert!(cap.mastering.is_none());
    assert_eq!(src.len(), aus.len());
    for (i, expected) in aus.iter().enumerate() {
        let au = src.next_au();
        assert_eq!(au.index, i);
        assert_eq!(au.data, &expected[..], "AU {i}");
        assert_eq!(au.idr, i == 0 || i == 20);
    }
    assert_eq!(src.next_au().index, 0, "loops to the first IDR");

    // The passthrough encoder replays them and honours IDR requests by skipping ahead.
    let mut enc = PassthroughEncoder::new(src);
    let frame = Frame::new(320, 240, PixelFormat::I420).unwrap();
    let mut out = Vec::new();
    let info = enc.encode(&frame, &mut out).unwrap();
    assert_eq!((info.idr, &out[..]), (false, &aus[1][..]));
    enc.request_idr();
    let info = enc.encode(&frame, &mut out).unwrap();
    assert_eq!((info.idr, &out[..]), (true, &aus[20][..]));
    assert!(matches!(
        enc.set_bitrate(1),
        Err(EncodeError::Unsupported(_))
    ));
    enc.set_max_access_unit_bytes(Some(8));
    assert!(matches!(
        enc.encode(&frame, &mut out),
        Err(EncodeError::AccessUnitTooLarge { cap: 8, .. })
    ));
}
