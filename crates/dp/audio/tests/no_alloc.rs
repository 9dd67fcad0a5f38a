//! Steady-state Opus encoding does not allocate on the Rust side (libopus allocates its state
//! once at creation). Counted by a wrapping global allocator, per thread.

use strahl_testkit::{CountingAlloc, allocs_during};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

use strahl_audio::encoder::{MAX_PACKET_BYTES, OpusEncoder};
use strahl_audio::layout::{FrameDuration, Layout as Speakers, OpusParams, Quality};
use strahl_audio::tone::ToneSource;

#[test]
fn steady_state_encode_does_not_allocate() {
    assert_eq!(
        allocs_during(|| drop(std::hint::black_box(vec![1u8; 100]))),
        1
    );
    let params = OpusParams::new(Speakers::Surround51, Quality::Normal);
    let mut enc = OpusEncoder::new(params, FrameDuration::Ms5).unwrap();
    let mut tone = ToneSource::new(params.channels);
    let mut pcm = vec![0i16; enc.samples_per_packet()];
    let mut out = [0u8; MAX_PACKET_BYTES];
    let n = allocs_during(|| {
        for _ in 0..100 {
            tone.fill(&mut pcm);
            enc.encode(&pcm, &mut out).unwrap();
        }
    });
    assert_eq!(n, 0, "tone + opus encode allocated {n} times");
}
