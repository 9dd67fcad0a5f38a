//! Transmit frame arena and frame tokens.
//!
//! Contract:
//! - A [`FrameArena`] is one fixed region of `slots` equal slots of `stride` bytes, allocated (or
//!   adopted, for AF_XDP UMEM) once. Each slot is `headroom` bytes reserved for the transport
//!   (L2/L3/L4 headers on AF_XDP; zero for kernel sockets) followed by the payload area.
//! - The free pool hands out [`TxFrame`] tokens. A token is neither `Clone` nor `Copy`, and a slot
//!   is in the free pool or owned by exactly one token or in flight inside the transport: owning a
//!   token is therefore proof of exclusive access to that slot's payload. This is the invariant the
//!   `unsafe` in this module rests on.
//! - Tokens carry the arena's `owner` id, so a token from another queue is refused
//!   ([`ForeignFrame`]) instead of aliasing someone else's slot.
//! - Nothing here allocates after construction: the free pool is a ring with capacity `slots`.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// The right to fill one transmit frame. Obtained from `TxQueue::alloc`, consumed by
/// `TxQueue::submit` / `TxQueue::abandon`. Dropping it leaks the slot until the queue is dropped
/// (there is no way back without the queue), so always hand it back.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a TxFrame must be submitted or abandoned, or its slot is lost"]
pub struct TxFrame {
    slot: u32,
    owner: u32,
}

impl TxFrame {
    /// Slot index inside its queue (diagnostics, tests).
    pub fn slot(&self) -> u32 {
        self.slot
    }
}

/// A token from a different queue was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForeignFrame;

static NEXT_OWNER: AtomicU32 = AtomicU32::new(1);

enum Storage {
    /// Memory from `Box<[u8]>::into_raw`, freed on drop.
    Owned,
    /// Memory owned by someone else (UMEM), kept alive by the transport for the arena's life.
    External,
}

/// Fixed region of equal frame slots plus the free pool of slot indices.
pub struct FrameArena {
    base: NonNull<u8>,
    len: usize,
    stride: usize,
    headroom: usize,
    slots: u32,
    owner: u32,
    storage: Storage,
    free: VecDeque<u32>,
}

// SAFETY: the arena exclusively owns (or, for `External`, has been given exclusive user-space use of)
// its memory; moving it to another thread moves that ownership. No thread-local state is kept.
unsafe impl Send for FrameArena {}

impl FrameArena {
    /// Allocate `slots` slots of `stride` bytes (each starting with `headroom` reserved bytes),
    /// pre-faulted so that the first packets do not pay for page faults.
    pub fn new(slots: u32, stride: usize, headroom: usize) -> Self {
        assert!(
            slots > 0 && stride > headroom,
            "arena shape: slots > 0, stride > headroom"
        );
        let len = (slots as usize)
            .checked_mul(stride)
            .expect("arena size overflows usize");
        let mut mem = vec![0u8; len].into_boxed_slice();
        // Touch every page once: calloc'd memory is faulted lazily (2 GiB first touch took 3.4 s
        // here, docs/measurements.md §memory), and a fault in the send path is a latency spike.
        for b in mem.iter_mut().step_by(4096) {
            *b = 0xA5;
        }
        let raw = Box::into_raw(mem) as *mut u8;
        // SAFETY: Box::into_raw never returns null.
        let base = unsafe { NonNull::new_unchecked(raw) };
        Self::with_base(base, len, slots, stride, headroom, Storage::Owned)
    }

    /// Adopt memory owned elsewhere (AF_XDP UMEM).
    ///
    /// # Safety
    /// `base..base+len` must stay valid for reads and writes for the whole life of the arena, and
    /// user space must not touch it except through this arena.
    #[allow(dead_code)] // used by the AF_XDP transport
    pub(crate) unsafe fn adopt(
        base: NonNull<u8>,
        len: usize,
        slots: u32,
        stride: usize,
        headroom: usize,
    ) -> Self {
        assert!(
            (slots as usize) * stride <= len,
            "adopted region smaller than the slots"
        );
        Self::with_base(base, len, slots, stride, headroom, Storage::External)
    }

    fn with_base(
        base: NonNull<u8>,
        len: usize,
        slots: u32,
        stride: usize,
        headroom: usize,
        storage: Storage,
    ) -> Self {
        let mut free = VecDeque::with_capacity(slots as usize);
        free.extend(0..slots);
        Self {
            base,
            len,
            stride,
            headroom,
            slots,
            owner: NEXT_OWNER.fetch_add(1, Ordering::Relaxed),
            storage,
            free,
        }
    }

    pub fn slots(&self) -> u32 {
        self.slots
    }

    pub fn stride(&self) -> usize {
        self.stride
    }

    pub fn headroom(&self) -> usize {
        self.headroom
    }

    /// Bytes of payload a slot can hold.
    pub fn payload_capacity(&self) -> usize {
        self.stride - self.headroom
    }

    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Whole region (for io_uring buffer registration).
    pub fn region(&self) -> (*mut u8, usize) {
        (self.base.as_ptr(), self.len)
    }

    pub fn alloc(&mut self) -> Option<TxFrame> {
        let slot = self.free.pop_front()?;
        Some(TxFrame {
            slot,
            owner: self.owner,
        })
    }

    /// Take a token back, returning its slot index (now owned by the transport).
    pub fn redeem(&self, f: TxFrame) -> Result<u32, ForeignFrame> {
        if f.owner != self.owner || f.slot >= self.slots {
            return Err(ForeignFrame);
        }
        Ok(f.slot)
    }

    /// Return a slot the transport finished with to the free pool.
    pub fn release(&mut self, slot: u32) {
        debug_assert!(slot < self.slots);
        debug_assert!(self.free.len() < self.slots as usize, "double release");
        self.free.push_back(slot);
    }

    fn check(&self, f: &TxFrame) {
        assert!(
            f.owner == self.owner && f.slot < self.slots,
            "TxFrame from another queue used with this queue (programming error)"
        );
    }

    /// Start of a slot (headroom included).
    pub fn slot_ptr(&self, slot: u32) -> *mut u8 {
        debug_assert!(slot < self.slots);
        // SAFETY: slot < slots and slots*stride <= len, so the offset stays inside the region.
        unsafe { self.base.as_ptr().add(slot as usize * self.stride) }
    }

    /// Start of a slot's payload area.
    pub fn payload_ptr(&self, slot: u32) -> *mut u8 {
        // SAFETY: headroom < stride, so the payload start stays inside the slot.
        unsafe { self.slot_ptr(slot).add(self.headroom) }
    }

    /// Payload area of the frame the caller owns.
    pub fn payload_mut(&mut self, f: &TxFrame) -> &mut [u8] {
        self.check(f);
        // SAFETY: the token proves exclusive ownership of the slot (module invariant); the range is
        // inside the region; `&mut self` ties the slice to the arena borrow.
        unsafe { std::slice::from_raw_parts_mut(self.payload_ptr(f.slot), self.payload_capacity()) }
    }

    /// Payload areas of many owned frames at once, in the order given (for FEC data + parity).
    /// `out` is cleared first; reuse it across calls so it does not allocate in steady state.
    pub fn payloads_mut<'a>(&'a mut self, frames: &[TxFrame], out: &mut Vec<&'a mut [u8]>) {
        out.clear();
        let cap = self.payload_capacity();
        for f in frames {
            self.check(f);
            // SAFETY: every element of `frames` is a distinct owned token (tokens are not Clone
            // and the pool mints each slot once until it is released), so the slices are disjoint;
            // they live as long as the `&'a mut self` borrow, which excludes any other access.
            out.push(unsafe { std::slice::from_raw_parts_mut(self.payload_ptr(f.slot), cap) });
        }
    }

    /// Whole slot (headroom + payload) of a slot the transport owns (in flight or being framed).
    #[allow(dead_code)] // used by the AF_XDP transport
    pub(crate) fn slot_mut(&mut self, slot: u32) -> &mut [u8] {
        assert!(slot < self.slots);
        // SAFETY: the transport owns slots between redeem and release; `&mut self` excludes
        // token-based access to the arena for the borrow's duration.
        unsafe { std::slice::from_raw_parts_mut(self.slot_ptr(slot), self.stride) }
    }
}

impl Drop for FrameArena {
    fn drop(&mut self) {
        if let Storage::Owned = self.storage {
            let slice = std::ptr::slice_from_raw_parts_mut(self.base.as_ptr(), self.len);
            // SAFETY: `base`/`len` came from Box::into_raw of a boxed slice of exactly `len` bytes
            // in `new`, and are released exactly once here.
            drop(unsafe { Box::from_raw(slice) });
        }
    }
}

/// Reuse the allocation of an (emptied) vector of payload slices for a new borrow.
///
/// [`FrameArena::payloads_mut`] fills a caller vector whose element lifetime is tied to the queue
/// borrow, so the same vector cannot be kept across loop iterations directly. Keep a
/// `Vec<&'static mut [u8]>` as storage and pass it through `recycle` before and after each use:
/// no allocation, and the borrow checker still bounds every slice by its queue borrow.
pub fn recycle<'b>(v: Vec<&'_ mut [u8]>) -> Vec<&'b mut [u8]> {
    let mut v = std::mem::ManuallyDrop::new(v);
    v.clear();
    let (ptr, cap) = (v.as_mut_ptr(), v.capacity());
    // SAFETY: the vector is empty (no element of the old lifetime survives); `&'a mut [u8]` and
    // `&'b mut [u8]` have identical layout, so the allocation (ptr, cap) is valid for the new type
    // and is owned exactly once, by the returned vector (the old one is never dropped).
    unsafe { Vec::from_raw_parts(ptr.cast::<&'b mut [u8]>(), 0, cap) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_recycled() {
        let mut a = FrameArena::new(4, 256, 16);
        assert_eq!(a.payload_capacity(), 240);
        let fs: Vec<TxFrame> = (0..4).map(|_| a.alloc().unwrap()).collect();
        assert!(a.alloc().is_none(), "pool must run dry after 4 allocations");
        let mut slots: Vec<u32> = fs.iter().map(|f| f.slot()).collect();
        slots.sort();
        assert_eq!(slots, vec![0, 1, 2, 3]);
        let mut out = Vec::new();
        a.payloads_mut(&fs, &mut out);
        for (i, p) in out.iter_mut().enumerate() {
            p.fill(i as u8 + 1);
        }
        for (i, f) in fs.iter().enumerate() {
            assert!(
                a.payload_mut(f).iter().all(|&b| b == i as u8 + 1),
                "slices must be disjoint"
            );
        }
        for f in fs {
            let s = a.redeem(f).unwrap();
            a.release(s);
        }
        assert_eq!(a.free_count(), 4);
    }

    #[test]
    fn foreign_tokens_are_refused() {
        let mut a = FrameArena::new(2, 128, 0);
        let b = FrameArena::new(2, 128, 0);
        let f = a.alloc().unwrap();
        assert_eq!(b.redeem(f), Err(ForeignFrame));
    }
}
