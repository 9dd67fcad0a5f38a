//! Transmit staging shared by the arena-backed transports (sendmmsg, io_uring, AF_XDP).
//!
//! Every transport holds its frames the same way before `flush`: a [`FrameArena`] (the free
//! pool and the payload memory) and a queue of submitted-but-unflushed datagrams. This module
//! is the one place that
//! - checks a submit ([`Staging::redeem`]: the token belongs to this arena, `0 < len <=
//!   capacity`) and, on refusal, puts the slot back in the free pool and counts it in
//!   [`TxCounters::submit_errors`] (a [`SubmitError::ForeignFrame`] frees nothing: the slot is
//!   someone else's);
//! - queues an accepted datagram and counts it ([`Staging::enqueue`]);
//! - implements the `TxQueue` methods that are pure arena/queue access
//!   ([`staged_tx_glue!`]), so the transports only write what differs:
//!   `kind`, `submit` (kernel sockets: [`Staging::submit`]; AF_XDP adds its headers between
//!   `redeem` and `enqueue`), `flush`, `reclaim`, `counters`.
//!
//! Nothing here allocates after construction: the queue's capacity is the arena's slot count,
//! and a slot is queued at most once (it is owned by the transport between redeem and release).

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};

use crate::NetError;
use crate::frame::{FrameArena, TxFrame};
use crate::sys;
use crate::tx::{GSO_MAX_SEGMENTS, Pending, SubmitError, TxCounters};

/// Largest UDP payload a kernel-socket frame may be configured for (IPv4: 65535 − 20 − 8).
pub(crate) const MAX_FRAME_PAYLOAD: usize = 65_507;

/// Refuses a frame shape no transport can use: no frames, or an empty or over-long payload.
pub(crate) fn check_frame_shape(frames: u32, frame_payload: usize) -> Result<(), NetError> {
    if frames == 0 || frame_payload == 0 || frame_payload > MAX_FRAME_PAYLOAD {
        return Err(NetError::Config(
            "frames > 0 and 0 < frame_payload <= 65507 required",
        ));
    }
    Ok(())
}

/// Segments per GSO train for a kernel socket: `requested` clamped to the kernel's cap, or 1
/// (GSO off) when fewer than 2 were asked for or the kernel refuses `UDP_SEGMENT` here.
pub(crate) fn gso_train_segments(sock: &UdpSocket, requested: usize) -> usize {
    if requested > 1 && sys::probe_udp_segment(sock) {
        requested.min(GSO_MAX_SEGMENTS)
    } else {
        1
    }
}

/// The arena and the pending queue of one transmit queue.
pub(crate) struct Staging {
    pub arena: FrameArena,
    /// Submitted datagrams in submit order, waiting for `flush`.
    pub pending: VecDeque<Pending>,
}

impl Staging {
    /// Wraps `arena`; the queue gets room for every slot up front.
    pub fn new(arena: FrameArena) -> Self {
        let pending = VecDeque::with_capacity(arena.slots() as usize);
        Self { arena, pending }
    }

    /// Validates a submit and takes the slot over from the token. On `Err` the slot is back in
    /// the free pool (unless the token was foreign) and the refusal is counted.
    pub fn redeem(
        &mut self,
        frame: TxFrame,
        len: usize,
        counters: &mut TxCounters,
    ) -> Result<u32, SubmitError> {
        let Ok(slot) = self.arena.redeem(frame) else {
            counters.submit_errors += 1;
            return Err(SubmitError::ForeignFrame);
        };
        let capacity = self.arena.payload_capacity();
        if len == 0 {
            return Err(self.refuse(slot, counters, SubmitError::Empty));
        }
        if len > capacity {
            return Err(self.refuse(slot, counters, SubmitError::TooLong { len, capacity }));
        }
        Ok(slot)
    }

    /// Refuses a redeemed slot for a transport-specific reason: back to the pool, counted.
    pub fn refuse(&mut self, slot: u32, counters: &mut TxCounters, e: SubmitError) -> SubmitError {
        self.arena.release(slot);
        counters.submit_errors += 1;
        e
    }

    /// Queues a redeemed slot holding `len` (already validated) payload bytes for `dest`.
    pub fn enqueue(&mut self, slot: u32, len: usize, dest: SocketAddr, counters: &mut TxCounters) {
        self.pending.push_back(Pending {
            slot,
            len: len as u32,
            dest,
        });
        counters.submitted += 1;
    }

    /// `TxQueue::submit` for transports that hand the payload to the kernel as it is.
    pub fn submit(
        &mut self,
        frame: TxFrame,
        len: usize,
        dest: SocketAddr,
        counters: &mut TxCounters,
    ) -> Result<(), SubmitError> {
        let slot = self.redeem(frame, len, counters)?;
        self.enqueue(slot, len, dest, counters);
        Ok(())
    }

    /// `TxQueue::abandon`: an unused frame goes back to the pool; a foreign one is ignored.
    pub fn abandon(&mut self, frame: TxFrame) {
        if let Ok(slot) = self.arena.redeem(frame) {
            self.arena.release(slot);
        }
    }
}

/// The `TxQueue` methods that only touch the [`Staging`] in field `$stage`; expands inside an
/// `impl TxQueue for …` block.
macro_rules! staged_tx_glue {
    ($stage:ident) => {
        fn payload_capacity(&self) -> usize {
            self.$stage.arena.payload_capacity()
        }

        fn free_frames(&self) -> usize {
            self.$stage.arena.free_count()
        }

        fn pending(&self) -> usize {
            self.$stage.pending.len()
        }

        fn alloc(&mut self) -> Option<$crate::frame::TxFrame> {
            self.$stage.arena.alloc()
        }

        fn payload_mut(&mut self, frame: &$crate::frame::TxFrame) -> &mut [u8] {
            self.$stage.arena.payload_mut(frame)
        }

        fn payloads_mut<'a>(
            &'a mut self,
            frames: &[$crate::frame::TxFrame],
            out: &mut Vec<&'a mut [u8]>,
        ) {
            self.$stage.arena.payloads_mut(frames, out)
        }

        fn abandon(&mut self, frame: $crate::frame::TxFrame) {
            self.$stage.abandon(frame)
        }
    };
}
pub(crate) use staged_tx_glue;

#[cfg(test)]
mod tests {
    use super::*;

    fn dest() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    #[test]
    fn refusals_return_the_slot_and_count() {
        let mut s = Staging::new(FrameArena::new(2, 100, 0));
        let mut c = TxCounters::default();
        let f = s.arena.alloc().unwrap();
        assert_eq!(s.redeem(f, 0, &mut c), Err(SubmitError::Empty));
        let f = s.arena.alloc().unwrap();
        assert_eq!(
            s.redeem(f, 101, &mut c),
            Err(SubmitError::TooLong {
                len: 101,
                capacity: 100
            })
        );
        assert_eq!(c.submit_errors, 2);
        assert_eq!(
            s.arena.free_count(),
            2,
            "refused slots are back in the pool"
        );
        assert!(s.pending.is_empty());
    }

    #[test]
    fn foreign_tokens_free_nothing() {
        let mut s = Staging::new(FrameArena::new(2, 100, 0));
        let mut other = FrameArena::new(2, 100, 0);
        let mut c = TxCounters::default();
        let f = other.alloc().unwrap();
        assert_eq!(
            s.submit(f, 10, dest(), &mut c),
            Err(SubmitError::ForeignFrame)
        );
        assert_eq!(c.submit_errors, 1);
        assert_eq!(s.arena.free_count(), 2);
        assert_eq!(
            other.free_count(),
            1,
            "the other arena's slot stays lost to it"
        );
    }

    #[test]
    fn accepted_submits_queue_in_order() {
        let mut s = Staging::new(FrameArena::new(3, 100, 0));
        let mut c = TxCounters::default();
        let a = s.arena.alloc().unwrap();
        let b = s.arena.alloc().unwrap();
        let (sa, sb) = (a.slot(), b.slot());
        s.submit(a, 100, dest(), &mut c).unwrap();
        s.submit(b, 1, dest(), &mut c).unwrap();
        assert_eq!(c.submitted, 2);
        assert_eq!(c.submit_errors, 0);
        let q: Vec<(u32, u32)> = s.pending.iter().map(|p| (p.slot, p.len)).collect();
        assert_eq!(q, vec![(sa, 100), (sb, 1)]);
        let f = s.arena.alloc().unwrap();
        s.abandon(f);
        assert_eq!(s.arena.free_count(), 1, "abandoned frame is free again");
        assert!(check_frame_shape(1, MAX_FRAME_PAYLOAD).is_ok());
        assert!(check_frame_shape(0, 1).is_err());
        assert!(check_frame_shape(1, 0).is_err());
        assert!(check_frame_shape(1, MAX_FRAME_PAYLOAD + 1).is_err());
    }
}
