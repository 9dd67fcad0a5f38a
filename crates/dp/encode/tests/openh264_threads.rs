//! The software encoder on several cores: with `threads` > 1 every picture is that many slices
//! (OpenH264 threads per slice), the stream still starts with SPS, PPS and an IDR, has no IDR
//! but on request and after the AU cap, decodes (OpenH264's decoder) to the frame numbers that
//! were encoded, and the thread count is clamped to OpenH264's limit.

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use strahl_capture::annexb::{nal_type, nal_units};
use strahl_capture::synthetic::{SyntheticConfig, SyntheticSource, read_frame_number_strided};
use strahl_capture::{Frame, PixelFormat, VideoSource};
use strahl_encode::Encoder;
use strahl_encode::openh264_enc::{MAX_THREADS, OpenH264Config, OpenH264Encoder};

const W: u32 = 640;
const H: u32 = 480;

fn slices(au: &[u8]) -> usize {
    nal_units(au)
        .filter(|n| n.kind() == nal_type::IDR || n.kind() == 1)
        .count()
}

fn run(threads: u16, frames: u32) {
    let mut src = SyntheticSource::new(SyntheticConfig {
        width: W,
        height: H,
        fps: 60,
        format: PixelFormat::I420,
        first_frame_number: 0,
    })
    .unwrap();
    let mut frame = Frame::new(W, H, PixelFormat::I420).unwrap();
    let mut cfg = OpenH264Config::new(W, H, 60, 2_000_000);
    cfg.threads = threads;
    let mut enc = OpenH264Encoder::new(cfg).unwrap();
    assert_eq!(enc.threads(), threads.clamp(1, MAX_THREADS));
    let mut dec = Decoder::new().unwrap();
    let mut au = Vec::new();
    for i in 0..frames {
        if i == frames / 2 {
            enc.request_idr();
        }
        src.next_frame(&mut frame).unwrap();
        let info = enc.encode(&frame, &mut au).unwrap();
        let kinds: Vec<u8> = nal_units(&au).map(|n| n.kind()).collect();
        let idr_expected = i == 0 || i == frames / 2;
        assert_eq!(info.idr, idr_expected, "frame {i}: {kinds:?}");
        if idr_expected {
            assert_eq!(&kinds[..2], &[nal_type::SPS, nal_type::PPS], "frame {i}");
        }
        assert_eq!(
            slices(&au),
            usize::from(enc.threads()),
            "frame {i}: {kinds:?}"
        );
        let pic = dec.decode(&au).expect("decode").expect("a picture per AU");
        assert_eq!(
            read_frame_number_strided(pic.y(), pic.strides().0, W, H),
            Some(i),
            "frame {i}"
        );
    }
    assert_eq!(enc.stats().idr_frames, 2);
}

#[test]
fn two_threads_make_two_slices_a_picture_and_decode_in_order() {
    run(2, 20);
}

#[test]
fn one_thread_stays_one_slice() {
    run(1, 6);
}

#[test]
fn more_threads_than_openh264_allows_are_clamped() {
    run(16, 4);
}

#[test]
fn the_au_cap_reencode_keeps_the_slices_and_decodes() {
    let mut src = SyntheticSource::new(SyntheticConfig {
        width: W,
        height: H,
        fps: 60,
        format: PixelFormat::I420,
        first_frame_number: 0,
    })
    .unwrap();
    let mut frame = Frame::new(W, H, PixelFormat::I420).unwrap();
    let mut cfg = OpenH264Config::new(W, H, 60, 20_000_000);
    cfg.threads = 2;
    let mut enc = OpenH264Encoder::new(cfg).unwrap();
    let mut dec = Decoder::new().unwrap();
    let mut au = Vec::new();
    // Measure the first IDR uncapped, then cap a fresh encoder below it: re-encoded smaller.
    src.next_frame(&mut frame).unwrap();
    let full = enc.encode(&frame, &mut au).unwrap().len;
    let cap = full * 2 / 3;
    let mut enc = OpenH264Encoder::new(cfg).unwrap();
    enc.set_max_access_unit_bytes(Some(cap));
    let info = enc.encode(&frame, &mut au).unwrap();
    assert!(
        info.idr && info.reencodes > 0 && au.len() <= cap,
        "{info:?} cap {cap}"
    );
    assert_eq!(slices(&au), 2);
    let pic = dec.decode(&au).expect("decode").expect("a picture");
    assert_eq!(
        read_frame_number_strided(pic.y(), pic.strides().0, W, H),
        Some(0)
    );
    // The next pictures predict from it: P slices, two a picture, decoding in order.
    for i in 1..4 {
        src.next_frame(&mut frame).unwrap();
        let info = enc.encode(&frame, &mut au).unwrap();
        assert!(!info.idr, "frame {i}");
        assert_eq!(slices(&au), 2);
        let pic = dec.decode(&au).expect("decode").expect("a picture");
        assert_eq!(
            read_frame_number_strided(pic.y(), pic.strides().0, W, H),
            Some(i)
        );
    }
}
