//! Bounded single-producer single-consumer hand-over of reusable unit buffers between two tiles
//! (an encoder thread and the tx tile).
//!
//! Contract — who owns which slot when:
//! - A ring is `N` slots ([`Slot`]: a byte buffer of fixed capacity plus the unit's
//!   [`UnitMeta`]), allocated once by [`ring`]. A slot is always in exactly one place: the free
//!   channel, the producer's hand, the full channel, or the consumer's hand. Whoever holds the
//!   `Box<Slot>` owns it — there is no shared memory, so no `unsafe` and no locks.
//! - The producer takes a free slot ([`Producer::acquire`]), fills it, and hands it over
//!   ([`Producer::publish`]); the consumer takes it ([`Consumer::take`]), uses it (the tile
//!   packetizes straight from it into transport frames) and gives it back
//!   ([`Consumer::release`]) once the unit's last packet is written.
//! - Both channels hold `N`, so neither side ever blocks: `acquire` returning `None` means the
//!   consumer is `N` units behind — the producer skips that unit instead of waiting (a real-time
//!   stream drops at the source, never queues unboundedly).
//! - `std::sync::mpsc::sync_channel` with a capacity is a preallocated array queue: moving a
//!   `Box` through it does not allocate (the no-allocation test covers the assembled path).
//! - [`Producer::publish`] unparks the consumer's thread (the tile parks when idle), so a new
//!   unit is seen at once rather than at the next housekeeping tick.
//! - If one side goes away the other sees an empty ring; nothing panics.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::Thread;

/// What a unit is, beyond its bytes (video frame or audio packet; the native stream too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnitMeta {
    /// Bytes of `Slot::bytes` that belong to the unit.
    pub len: usize,
    /// An IDR / keyframe.
    pub keyframe: bool,
    /// Capture time, ns: video on the host's CLOCK_MONOTONIC (RTP timestamps and native pts
    /// derive from it), audio since its stream's start.
    pub capture_ns: u64,
    /// Host processing latency in 0.1 ms (GameStream frame header).
    pub host_latency_tenth_ms: u16,
}

/// One reusable unit buffer.
#[derive(Debug)]
pub struct Slot {
    pub bytes: Vec<u8>,
    pub meta: UnitMeta,
}

impl Slot {
    /// The unit's bytes.
    pub fn unit(&self) -> &[u8] {
        &self.bytes[..self.meta.len.min(self.bytes.len())]
    }
}

/// The producing end.
pub struct Producer {
    free: Receiver<Box<Slot>>,
    full: SyncSender<Box<Slot>>,
    wake: Option<Thread>,
}

/// The consuming end.
pub struct Consumer {
    full: Receiver<Box<Slot>>,
    free: SyncSender<Box<Slot>>,
}

/// A ring of `slots` buffers, each with `capacity` bytes reserved; `wake` is unparked on publish.
pub fn ring(slots: usize, capacity: usize, wake: Option<Thread>) -> (Producer, Consumer) {
    let n = slots.max(1);
    let (free_tx, free_rx) = sync_channel(n);
    let (full_tx, full_rx) = sync_channel(n);
    for _ in 0..n {
        // Cannot fail: the channel holds n and its receiver is alive.
        let _ = free_tx.try_send(Box::new(Slot {
            bytes: Vec::with_capacity(capacity),
            meta: UnitMeta::default(),
        }));
    }
    (
        Producer {
            free: free_rx,
            full: full_tx,
            wake,
        },
        Consumer {
            full: full_rx,
            free: free_tx,
        },
    )
}

impl Producer {
    /// A free slot, or `None` when the consumer holds every slot (skip this unit).
    pub fn acquire(&mut self) -> Option<Box<Slot>> {
        self.free.try_recv().ok()
    }

    /// Hand a filled slot to the consumer. `false` when the consumer is gone (the slot is
    /// dropped with it).
    pub fn publish(&mut self, slot: Box<Slot>) -> bool {
        let ok = self.full.try_send(slot).is_ok();
        if let Some(t) = &self.wake {
            t.unpark();
        }
        ok
    }
}

impl Consumer {
    /// The oldest published unit, if any.
    pub fn take(&mut self) -> Option<Box<Slot>> {
        self.full.try_recv().ok()
    }

    /// Return a used slot to the producer (dropped if the producer is gone).
    pub fn release(&mut self, slot: Box<Slot>) {
        let _ = self.free.try_send(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_circulate_and_a_full_ring_refuses_instead_of_blocking() {
        let (mut p, mut c) = ring(2, 16, None);
        let mut a = p.acquire().unwrap();
        a.bytes.extend_from_slice(b"one");
        a.meta.len = 3;
        assert!(p.publish(a));
        let b = p.acquire().unwrap();
        assert!(
            p.acquire().is_none(),
            "both slots taken: the producer skips"
        );
        assert!(p.publish(b));
        let got = c.take().unwrap();
        assert_eq!(got.unit(), b"one");
        assert!(p.acquire().is_none(), "not released yet");
        c.release(got);
        assert!(p.acquire().is_some(), "released slot is free again");
        assert!(c.take().is_some());
        assert!(c.take().is_none());
    }

    #[test]
    fn a_vanished_side_reads_as_empty() {
        let (mut p, c) = ring(1, 4, None);
        drop(c);
        let s = p.acquire().unwrap();
        assert!(!p.publish(s), "consumer gone");
        let (p, mut c) = ring(1, 4, None);
        drop(p);
        assert!(c.take().is_none());
    }
}
