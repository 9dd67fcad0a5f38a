//! Timing of the Opus encoder (ignored by default; run with
//! `cargo test -p strahl-audio --test speed -- --ignored --nocapture`). Prints the median.

use std::time::Instant;

use strahl_audio::encoder::{MAX_PACKET_BYTES, OpusEncoder};
use strahl_audio::layout::{FrameDuration, Layout, OpusParams, Quality};
use strahl_audio::tone::ToneSource;

fn median_us(layout: Layout, quality: Quality) -> f64 {
    const PACKETS: usize = 2000;
    let params = OpusParams::new(layout, quality);
    let mut enc = OpusEncoder::new(params, FrameDuration::Ms5).unwrap();
    let mut tone = ToneSource::new(params.channels);
    let mut pcm = vec![0i16; enc.samples_per_packet()];
    let mut out = [0u8; MAX_PACKET_BYTES];
    let mut times = Vec::with_capacity(PACKETS);
    for _ in 0..PACKETS {
        tone.fill(&mut pcm);
        let t = Instant::now();
        enc.encode(&pcm, &mut out).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    times[PACKETS / 2]
}

#[test]
#[ignore = "timing, run explicitly"]
fn opus_us_per_packet() {
    for (layout, quality) in [
        (Layout::Stereo, Quality::Normal),
        (Layout::Stereo, Quality::High),
        (Layout::Surround71, Quality::High),
    ] {
        println!(
            "opus {layout:?}/{quality:?} 5 ms CBR: median {:.1} µs/packet",
            median_us(layout, quality)
        );
    }
}
