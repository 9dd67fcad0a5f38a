//! Measures OpenH264 encode time per picture with 1..N threads (= slices) on the synthetic
//! pattern, runs interleaved (1, 2, …, 1, 2, …) so machine noise hits each alike; prints one
//! JSON line per thread count: median and p90 wall ms a picture, and process CPU ms a picture.
//! The figures behind `dataplane::media::video::encoder_threads` (docs/measurements.md
//! §openh264 threads).
//!
//! `cargo run --release -p strahl-encode --example threads_probe -- [WxH] [frames] [max_threads] [rounds]`
//! Defaults: 1920x1080, 60 frames, 2 threads, 3 rounds; 20 Mbit/s at 60 fps.

use std::time::Instant;

use strahl_capture::synthetic::{SyntheticConfig, SyntheticSource};
use strahl_capture::{Frame, PixelFormat, VideoSource};
use strahl_encode::Encoder;
use strahl_encode::openh264_enc::{OpenH264Config, OpenH264Encoder};

/// Process CPU time (user + system) in ms, from /proc/self/stat (clock ticks of 10 ms).
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the command: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
    // cmajflt utime stime (proc(5) fields 3..15).
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    (tick(11) + tick(12)) as f64 * 10.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (w, h): (u32, u32) = match args.first() {
        Some(s) => {
            let (a, b) = s.split_once('x').ok_or("size must be WxH")?;
            (a.parse()?, b.parse()?)
        }
        None => (1920, 1080),
    };
    let num = |i: usize, d: u32| args.get(i).map_or(Ok(d), |s| s.parse::<u32>());
    let frames = num(1, 60)?;
    let max_threads = num(2, 2)? as u16;
    let rounds = num(3, 3)?;
    let mut wall: Vec<Vec<f64>> = vec![Vec::new(); usize::from(max_threads)];
    let mut cpu: Vec<f64> = vec![0.0; usize::from(max_threads)];
    for _ in 0..rounds {
        for t in 1..=max_threads {
            let mut src = SyntheticSource::new(SyntheticConfig {
                width: w,
                height: h,
                fps: 60,
                format: PixelFormat::I420,
                first_frame_number: 0,
            })?;
            let mut frame = Frame::new(w, h, PixelFormat::I420)?;
            let mut cfg = OpenH264Config::new(w, h, 60, 20_000_000);
            cfg.threads = t;
            let mut enc = OpenH264Encoder::new(cfg)?;
            let mut au = Vec::new();
            let c0 = cpu_ms();
            for _ in 0..frames {
                src.next_frame(&mut frame)?;
                let t0 = Instant::now();
                enc.encode(&frame, &mut au)?;
                wall[usize::from(t - 1)].push(t0.elapsed().as_secs_f64() * 1e3);
            }
            cpu[usize::from(t - 1)] += cpu_ms() - c0;
        }
    }
    for (i, v) in wall.iter_mut().enumerate() {
        v.sort_by(f64::total_cmp);
        println!(
            "{{\"size\":\"{w}x{h}\",\"threads\":{},\"pictures\":{},\"wall_ms_p50\":{:.2},\"wall_ms_p90\":{:.2},\"cpu_ms_per_picture\":{:.2}}}",
            i + 1,
            v.len(),
            v[v.len() / 2],
            v[v.len() * 9 / 10],
            cpu[i] / v.len() as f64
        );
    }
    Ok(())
}
