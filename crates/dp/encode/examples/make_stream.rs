//! Writes a pre-encoded Annex-B H.264 test stream (synthetic pattern, OpenH264) for the
//! passthrough source and client harnesses.
//!
//! `cargo run -p strahl-encode --example make_stream -- OUT.h264 [WxH] [fps] [frames] [kbps] [idr_every]`
//! Defaults: 1280x720, 60 fps, 600 frames, 10000 kbit/s, an IDR every 120 frames.

use std::io::Write;

use strahl_capture::synthetic::{SyntheticConfig, SyntheticSource};
use strahl_capture::{Frame, PixelFormat, VideoSource};
use strahl_encode::Encoder;
use strahl_encode::openh264_enc::{OpenH264Config, OpenH264Encoder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = args
        .first()
        .ok_or("usage: make_stream OUT.h264 [WxH] [fps] [frames] [kbps] [idr_every]")?;
    let (w, h) = match args.get(1) {
        Some(s) => {
            let (a, b) = s.split_once('x').ok_or("size must be WxH")?;
            (a.parse()?, b.parse()?)
        }
        None => (1280, 720),
    };
    let num = |i: usize, default: u32| -> Result<u32, std::num::ParseIntError> {
        args.get(i).map_or(Ok(default), |s| s.parse())
    };
    let fps = num(2, 60)?;
    let frames = num(3, 600)?;
    let kbps = num(4, 10_000)?;
    let idr_every = num(5, 120)?.max(1);

    let mut src = SyntheticSource::new(SyntheticConfig {
        width: w,
        height: h,
        fps,
        format: PixelFormat::I420,
        first_frame_number: 0,
    })?;
    let mut enc = OpenH264Encoder::new(OpenH264Config::new(w, h, fps, kbps * 1000))?;
    let mut frame = Frame::new(w, h, PixelFormat::I420)?;
    let mut au = Vec::new();
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    let mut total = 0usize;
    for n in 0..frames {
        if n > 0 && n % idr_every == 0 {
            enc.request_idr();
        }
        src.next_frame(&mut frame)?;
        total += enc.encode(&frame, &mut au)?.len;
        file.write_all(&au)?;
    }
    file.flush()?;
    let s = enc.stats();
    println!(
        "{out}: {frames} frames {w}x{h}@{fps}, {} IDRs, {total} bytes ({:.1} kbit/s)",
        s.idr_frames,
        total as f64 * 8.0 * f64::from(fps) / f64::from(frames.max(1)) / 1000.0
    );
    Ok(())
}
