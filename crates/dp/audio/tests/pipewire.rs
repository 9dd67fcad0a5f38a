//! PipeWire capture for real: a private PipeWire (D-Bus, pipewire, WirePlumber, a null sink as
//! the default sink) plays a known stereo tone (1 kHz left, 1.5 kHz right); strahl's capture
//! (`pw-record` behind the supervisor, detected like the data plane detects it) feeds the Opus
//! encoder; libopus decodes; each channel's dominant frequency must be its tone's.
//! The full path through the data plane and the real Moonlight core is
//! `crates/test/e2e/tests/pipewire_audio.rs`.

use std::time::{Duration, Instant};

use opus::MSDecoder;
use strahl_audio::encoder::{MAX_PACKET_BYTES, OpusEncoder};
use strahl_audio::jitter::Popped;
use strahl_audio::layout::{FrameDuration, Layout, OpusParams, Quality};
use strahl_audio::pipewire::{CaptureConfig, Env, Supervisor, detect};
use strahl_testkit::pipewire::{PipeWire, dominant_hz, write_tone_wav};

const LEFT_HZ: f64 = 1000.0;
const RIGHT_HZ: f64 = 1500.0;
/// Decoded audio the check needs (after the capture primed).
const WANT_SECONDS: f64 = 1.0;
/// Bound on the whole capture loop (tone start, priming, one second of audio) on a loaded VM.
const LOOP_BOUND: Duration = Duration::from_secs(8);

#[test]
fn default_sink_monitor_to_opus_carries_the_played_tone() {
    let dir = std::env::temp_dir().join(format!("strahl-audio-pw-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pw = PipeWire::start(&dir).unwrap_or_else(|e| panic!("{e}"));
    let wav = dir.join("tone.wav");
    write_tone_wav(&wav, &[LEFT_HZ, RIGHT_HZ], 6.0, 8000).unwrap();

    // Detection as the data plane does it, with this instance's environment.
    let found = detect(
        None,
        &Env {
            pipewire_runtime_dir: Some(dir.clone().into()),
            path: std::env::var_os("PATH"),
            ..Env::default()
        },
    )
    .unwrap_or_else(|e| panic!("detect: {e}\n{}", pw.logs()));
    assert_eq!(found.socket, dir.join("pipewire-0"));
    // The capture connects to the socket the probe found.
    let cfg = CaptureConfig::new(2, &found);

    let params = OpusParams::new(Layout::Stereo, Quality::Normal);
    let duration = FrameDuration::Ms5;
    let mut enc = OpusEncoder::new(params, duration).unwrap();
    let mut dec = MSDecoder::new(48_000, params.streams, params.coupled, params.mapping()).unwrap();
    let mut pcm = vec![0i16; enc.samples_per_packet()];
    let mut packet = [0u8; MAX_PACKET_BYTES];
    let mut decoded = vec![0i16; enc.samples_per_packet()];
    let (mut left, mut right) = (Vec::new(), Vec::new());

    let t0 = Instant::now();
    let mut sup = Supervisor::new(cfg, t0);
    let mut player = pw.play(&wav).unwrap();
    let mut packets = 0u32;
    let mut audio_packets = 0u32;
    let period = Duration::from_millis(u64::from(duration.millis()));
    while (left.len() as f64) < WANT_SECONDS * 48_000.0 && t0.elapsed() < LOOP_BOUND {
        let due = t0 + period * packets;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        packets += 1;
        let state = sup.fill(&mut pcm, Instant::now());
        let n = enc.encode(&pcm, &mut packet).unwrap();
        assert_eq!(n, params.cbr_packet_bytes(duration), "CBR");
        dec.decode(&packet[..n], &mut decoded, false).unwrap();
        // Count from the first packet that carries sound (the tone starts a little after the
        // capture: PipeWire links both streams first).
        let loud = decoded.iter().any(|&s| s.unsigned_abs() > 1000);
        if state == Popped::Audio && (loud || !left.is_empty()) {
            audio_packets += 1;
            for f in decoded.chunks_exact(2) {
                left.push(f64::from(f[0]));
                right.push(f64::from(f[1]));
            }
        }
    }
    let _ = player.kill();
    let _ = player.wait();
    let stats = sup.stats();
    let ctx = || {
        format!(
            "{audio_packets} audio packets of {packets}, {stats:?}, running {}\n{}",
            sup.running(),
            pw.logs()
        )
    };
    assert!(
        left.len() as f64 >= WANT_SECONDS * 48_000.0,
        "too little captured audio: {}",
        ctx()
    );
    let (l, r) = (dominant_hz(&left, 48_000.0), dominant_hz(&right, 48_000.0));
    eprintln!(
        "left {l} Hz, right {r} Hz; {}",
        ctx().lines().next().unwrap_or("")
    );
    // Within 1 %: an underrun on a loaded machine puts a gap of silence into the tone, which
    // moves the spectrum's peak by a hertz or two (seen: 999 Hz with 2 underruns).
    assert!(
        (l - LEFT_HZ).abs() <= LEFT_HZ / 100.0,
        "left {l} Hz: {}",
        ctx()
    );
    assert!(
        (r - RIGHT_HZ).abs() <= RIGHT_HZ / 100.0,
        "right {r} Hz: {}",
        ctx()
    );
    assert_eq!(stats.restarts, 0, "{}", ctx());
    drop(sup);
    drop(pw);
    let _ = std::fs::remove_dir_all(&dir);
}
