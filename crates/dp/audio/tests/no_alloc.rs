//! Steady-state Opus encoding does not allocate on the Rust side (libopus allocates its state
//! once at creation). Counted by a wrapping global allocator, per thread.
#![allow(unsafe_code)] // a GlobalAlloc impl is unsafe by definition; it only forwards to System

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the only extra
// work is bumping a const-initialised thread-local counter, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged; `ptr` came from this allocator (i.e. System).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs_during(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(|c| c.get());
    f();
    ALLOCS.with(|c| c.get()) - before
}

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
