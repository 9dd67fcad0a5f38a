//! Tone → Opus (CBR) → libopus decode: the decoded channels carry the right tones and every
//! packet of a stream has the same length (the audio FEC's equal-payload requirement).

use opus::MSDecoder;
use strahl_audio::encoder::{MAX_PACKET_BYTES, OpusEncoder};
use strahl_audio::layout::{FrameDuration, Layout, OpusParams, Quality};
use strahl_audio::tone::{CHANNEL_FREQS_HZ, ToneSource};

/// Goertzel power of `freq` in `x`.
fn goertzel(x: &[f64], freq: f64, rate: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / rate;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s0 = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// Frequency (10 Hz grid, 50–2000 Hz) with the most power.
fn dominant(x: &[f64]) -> f64 {
    (5..=200)
        .map(|k| f64::from(k) * 10.0)
        .map(|f| (f, goertzel(x, f, 48_000.0)))
        .fold(
            (0.0, f64::MIN),
            |best, cur| if cur.1 > best.1 { cur } else { best },
        )
        .0
}

fn run(layout: Layout, quality: Quality, duration: FrameDuration) {
    let params = OpusParams::new(layout, quality);
    let mut enc = OpusEncoder::new(params, duration).unwrap();
    let mut dec = MSDecoder::new(48_000, params.streams, params.coupled, params.mapping()).unwrap();
    let mut tone = ToneSource::new(params.channels);
    let ch = usize::from(params.channels);
    let mut pcm = vec![0i16; enc.samples_per_packet()];
    let mut packet = [0u8; MAX_PACKET_BYTES];
    let mut decoded = vec![0i16; enc.samples_per_packet()];
    let mut channels: Vec<Vec<f64>> = vec![Vec::new(); ch];
    let packets = 1000 / duration.millis() as usize; // 1 s
    let mut sizes = Vec::with_capacity(packets);
    for _ in 0..packets {
        tone.fill(&mut pcm);
        let n = enc.encode(&pcm, &mut packet).unwrap();
        sizes.push(n);
        let got = dec.decode(&packet[..n], &mut decoded, false).unwrap();
        assert_eq!(got, duration.samples());
        for frame in decoded.chunks_exact(ch) {
            for (c, &s) in frame.iter().enumerate() {
                channels[c].push(f64::from(s));
            }
        }
    }
    let expected = params.cbr_packet_bytes(duration);
    assert!(
        sizes.iter().all(|&s| s == expected),
        "{layout:?}/{quality:?}: CBR packet sizes vary or differ from {expected}: {:?}",
        &sizes[..10]
    );
    assert_eq!(enc.packets(), packets as u64);
    // Skip the first 50 ms (codec start-up), analyse the rest.
    for (c, samples) in channels.iter().enumerate() {
        let tail = &samples[2400..];
        let f = dominant(tail);
        assert!(
            (f - CHANNEL_FREQS_HZ[c]).abs() <= 10.0,
            "{layout:?}/{quality:?} channel {c}: dominant {f} Hz, expected {}",
            CHANNEL_FREQS_HZ[c]
        );
    }
}

#[test]
fn stereo_normal_5ms() {
    run(Layout::Stereo, Quality::Normal, FrameDuration::Ms5);
}

#[test]
fn stereo_hq_10ms() {
    run(Layout::Stereo, Quality::High, FrameDuration::Ms10);
}

#[test]
fn surround51_normal_and_hq() {
    run(Layout::Surround51, Quality::Normal, FrameDuration::Ms5);
    run(Layout::Surround51, Quality::High, FrameDuration::Ms5);
}

#[test]
fn surround71_normal_and_hq() {
    run(Layout::Surround71, Quality::Normal, FrameDuration::Ms5);
    run(Layout::Surround71, Quality::High, FrameDuration::Ms5);
}

#[test]
fn wrong_buffer_size_is_a_config_error() {
    let mut enc = OpusEncoder::new(
        OpusParams::new(Layout::Stereo, Quality::Normal),
        FrameDuration::Ms5,
    )
    .unwrap();
    let mut out = [0u8; MAX_PACKET_BYTES];
    assert!(matches!(
        enc.encode(&[0i16; 100], &mut out),
        Err(strahl_audio::AudioError::Config(_))
    ));
}
