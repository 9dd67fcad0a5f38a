//! Test helpers shared across the workspace (dev-dependency only; never in a shipped binary).
//!
//! [`CountingAlloc`] is the counting global allocator behind every "the steady state does not
//! allocate" test. A test binary installs it once:
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: strahl_testkit::CountingAlloc = strahl_testkit::CountingAlloc;
//! ```
//!
//! and then measures a closure with [`counted`] / [`allocs_during`] (allocations made *on the
//! calling thread*, so tests running in parallel on other threads don't disturb the count) or
//! reads [`global_allocs`] (every thread; for code that allocates on threads it spawns).
//! Allocations and reallocations both count; frees don't. C code that calls `malloc` directly
//! (aws-lc, openh264, libopus) is invisible to it.
//!
//! With the `browser` feature, [`browser`] drives headless Chromium over DevTools (the
//! status-page tests). [`python`] finds the interpreter that runs the Moonlight core and the other
//! Python test peers. [`pipewire`] runs a private PipeWire (D-Bus, pipewire, WirePlumber and a
//! null sink) for the audio-capture tests.
#![deny(unsafe_code)]

#[cfg(feature = "browser")]
pub mod browser;
pub mod pipewire;
pub mod python;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

thread_local! {
    static THREAD_ALLOCS: Cell<u64> = const { Cell::new(0) };
}
static GLOBAL_ALLOCS: AtomicU64 = AtomicU64::new(0);

fn bump() {
    GLOBAL_ALLOCS.fetch_add(1, Ordering::Relaxed);
    // `try_with`: the allocator also runs while thread-locals are being torn down.
    let _ = THREAD_ALLOCS.try_with(|c| c.set(c.get() + 1));
}

/// A global allocator that forwards to [`System`] and counts allocations.
pub struct CountingAlloc;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the only extra
// work is bumping an atomic and a const-initialised thread-local counter, neither of which allocates.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, i.e. by `System`, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: forwarded unchanged; `ptr` came from this allocator (i.e. `System`).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Run `f` and return its result with the number of allocations it made on this thread.
pub fn counted<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = THREAD_ALLOCS.with(|c| c.get());
    let r = f();
    (r, THREAD_ALLOCS.with(|c| c.get()) - before)
}

/// The number of allocations `f` made on this thread.
pub fn allocs_during(f: impl FnOnce()) -> u64 {
    counted(f).1
}

/// Allocations so far on every thread (only meaningful with [`CountingAlloc`] installed).
pub fn global_allocs() -> u64 {
    GLOBAL_ALLOCS.load(Ordering::Relaxed)
}
