//! Timing of the software encoder (ignored by default; run with
//! `cargo test -p strahl-encode --test speed -- --ignored --nocapture`). Prints the median.

use std::time::Instant;

use strahl_capture::synthetic::{SyntheticConfig, SyntheticSource};
use strahl_capture::{Frame, PixelFormat, VideoSource};
use strahl_encode::Encoder;
use strahl_encode::openh264_enc::{OpenH264Config, OpenH264Encoder};

#[test]
#[ignore = "timing, run explicitly"]
fn openh264_720p_ms_per_frame() {
    const FRAMES: usize = 240;
    let (w, h) = (1280, 720);
    let mut src = SyntheticSource::new(SyntheticConfig {
        width: w,
        height: h,
        fps: 60,
        format: PixelFormat::I420,
        first_frame_number: 0,
    })
    .unwrap();
    let mut enc = OpenH264Encoder::new(OpenH264Config::new(w, h, 60, 10_000_000)).unwrap();
    let mut frame = Frame::new(w, h, PixelFormat::I420).unwrap();
    let mut au = Vec::new();
    let mut times = Vec::with_capacity(FRAMES);
    let mut bytes = 0;
    for _ in 0..FRAMES {
        src.next_frame(&mut frame).unwrap();
        let t = Instant::now();
        let info = enc.encode(&frame, &mut au).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        bytes += info.len;
    }
    let t = Instant::now();
    for n in 0..FRAMES as u32 {
        src.draw(n, &mut frame).unwrap();
    }
    let draw_ms = t.elapsed().as_secs_f64() * 1e3 / FRAMES as f64;
    times.sort_by(f64::total_cmp);
    println!(
        "openh264 1280x720 10 Mbit/s, 1 thread: median {:.2} ms/frame, p90 {:.2}, min {:.2}; \
         mean AU {} B; pattern draw {:.2} ms/frame",
        times[FRAMES / 2],
        times[FRAMES * 9 / 10],
        times[0],
        bytes / FRAMES,
        draw_ms
    );
}

#[test]
#[ignore = "measurement, run explicitly"]
fn idr_sizes() {
    for bps in [20_000_000, 100_000_000] {
        let (w, h) = (1280, 720);
        let src = SyntheticSource::new(SyntheticConfig {
            width: w,
            height: h,
            fps: 60,
            format: PixelFormat::I420,
            first_frame_number: 0,
        })
        .unwrap();
        let mut enc = OpenH264Encoder::new(OpenH264Config::new(w, h, 60, bps)).unwrap();
        let mut frame = Frame::new(w, h, PixelFormat::I420).unwrap();
        let mut au = Vec::new();
        let mut sizes = Vec::new();
        for n in 0..20 {
            if n % 5 == 0 {
                enc.request_idr();
            }
            src.draw(n, &mut frame).unwrap();
            sizes.push(enc.encode(&frame, &mut au).unwrap().len);
        }
        println!("{bps}: {sizes:?}");
    }
}
