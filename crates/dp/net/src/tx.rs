//! The transmit seam: [`TxQueue`], its counters and reports (contract in the crate header).

use crate::NetError;
use crate::frame::TxFrame;
use std::fmt;
use std::net::SocketAddr;

/// Which transport is behind a queue (logged and shown on the status endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    AfXdp,
    IoUring,
    SendMmsg,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::AfXdp => "af_xdp",
            TransportKind::IoUring => "io_uring",
            TransportKind::SendMmsg => "sendmmsg",
        })
    }
}

/// A caller mistake at submit time. The frame goes back to the free pool in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// `len` exceeds the frame's payload capacity.
    TooLong { len: usize, capacity: usize },
    /// A zero-length datagram was submitted (nothing to send; refused to keep counters honest).
    Empty,
    /// The token came from another queue; nothing was freed.
    ForeignFrame,
    /// The destination's address family is not supported by this transport (AF_XDP: IPv4 only).
    AddressFamily,
    /// AF_XDP: no header template for this destination (call `add_destination` first).
    UnknownDestination,
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::TooLong { len, capacity } => {
                write!(f, "datagram of {len} B exceeds frame capacity {capacity} B")
            }
            SubmitError::Empty => f.write_str("empty datagram"),
            SubmitError::ForeignFrame => f.write_str("frame token from another queue"),
            SubmitError::AddressFamily => f.write_str("address family not supported"),
            SubmitError::UnknownDestination => f.write_str("destination not resolved"),
        }
    }
}

impl std::error::Error for SubmitError {}

/// What one [`TxQueue::flush`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Datagrams handed to the kernel / NIC ring by this flush.
    pub sent: usize,
    /// Datagrams refused per-datagram (counted in [`TxCounters::dropped`]).
    pub dropped: usize,
    /// Syscalls made.
    pub syscalls: usize,
    /// True when the flush stopped on back-pressure with datagrams still pending.
    pub stalled: bool,
}

/// Tile-local transmit counters (plain integers; the tile flushes them to metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxCounters {
    pub submitted: u64,
    /// Datagrams accepted by the kernel / placed on the NIC ring.
    pub sent_packets: u64,
    pub sent_bytes: u64,
    /// Frames completed and returned to the free pool.
    pub completed: u64,
    pub syscalls: u64,
    /// GSO trains sent (each counts its segments in `sent_packets`).
    pub gso_trains: u64,
    /// Flushes that hit back-pressure (`EAGAIN`, `ENOBUFS`, full ring) and left work pending.
    pub stalls: u64,
    /// Datagrams refused per-datagram and dropped (see `last_errno`).
    pub dropped: u64,
    /// errno of the most recent per-datagram refusal or stall (0: none yet).
    pub last_errno: i32,
    /// Zero-copy sends the kernel had to copy after all (io_uring `SendZc` notification flag).
    pub zc_copied: u64,
    /// Submit calls refused as caller mistakes.
    pub submit_errors: u64,
}

/// One transmit queue. See the crate header for the full contract.
pub trait TxQueue {
    fn kind(&self) -> TransportKind;

    /// Bytes of UDP payload one frame can hold.
    fn payload_capacity(&self) -> usize;

    /// Frames free to allocate right now.
    fn free_frames(&self) -> usize;

    /// Datagrams submitted and not yet flushed.
    fn pending(&self) -> usize;

    /// Take a free frame. `None` is back-pressure: flush + reclaim and try again.
    fn alloc(&mut self) -> Option<TxFrame>;

    /// Payload area (UDP payload) of an owned frame. Panics on a foreign token (programming error).
    fn payload_mut(&mut self, frame: &TxFrame) -> &mut [u8];

    /// Payload areas of several owned frames at once, in order. `out` is cleared first; keep it
    /// across calls so it never reallocates.
    fn payloads_mut<'a>(&'a mut self, frames: &[TxFrame], out: &mut Vec<&'a mut [u8]>);

    /// Queue a filled frame (`len` payload bytes) for `dest`. On error the frame is back in the
    /// free pool (except `ForeignFrame`, which belongs to no one here).
    fn submit(&mut self, frame: TxFrame, len: usize, dest: SocketAddr) -> Result<(), SubmitError>;

    /// Give back an unused frame.
    fn abandon(&mut self, frame: TxFrame);

    /// Send everything pending, in batches. See the contract for error vs counter semantics.
    fn flush(&mut self) -> Result<FlushReport, NetError>;

    /// Return completed frames to the free pool; returns how many were reclaimed.
    fn reclaim(&mut self) -> Result<usize, NetError>;

    fn counters(&self) -> &TxCounters;
}

/// One submitted datagram waiting for flush.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending {
    pub slot: u32,
    pub len: u32,
    pub dest: SocketAddr,
}

/// Upper bound of one UDP datagram's payload (IPv4: 65535 - 20 - 8); a GSO train's total payload
/// must stay below it (64 × 1200 B failed with EMSGSIZE, 54 × 1200 B worked: docs/measurements.md §batching).
pub const GSO_MAX_TRAIN_BYTES: usize = 65_507;
/// Kernel cap on segments per GSO send (UDP_MAX_SEGMENTS, include/linux/udp.h).
pub const GSO_MAX_SEGMENTS: usize = 64;

/// Length of the GSO train starting at `pending[0]`: consecutive datagrams to the same destination
/// with the same length, except that the last one may be shorter; bounded by `max_segments` and by
/// [`GSO_MAX_TRAIN_BYTES`]. Always at least 1 when `pending` is non-empty.
pub(crate) fn train_len<'a>(
    mut pending: impl Iterator<Item = &'a Pending>,
    max_segments: usize,
) -> usize {
    let Some(first) = pending.next() else {
        return 0;
    };
    let seg = first.len as usize;
    let max_by_bytes = (GSO_MAX_TRAIN_BYTES / seg.max(1)).max(1);
    let limit = max_segments.min(max_by_bytes).clamp(1, GSO_MAX_SEGMENTS);
    let mut n = 1;
    for p in pending {
        if n == limit || p.dest != first.dest || p.len as usize > seg {
            break;
        }
        n += 1;
        if (p.len as usize) < seg {
            break; // a short segment ends the train
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn p(len: u32, port: u16) -> Pending {
        Pending {
            slot: 0,
            len,
            dest: SocketAddr::from(([10, 0, 0, 1], port)),
        }
    }

    #[test]
    fn trains_split_on_dest_length_and_bounds() {
        let mut q = VecDeque::new();
        q.extend([p(1200, 1), p(1200, 1), p(1200, 1), p(700, 1), p(1200, 1)]);
        assert_eq!(train_len(q.iter(), 64), 4, "short segment closes the train");
        let mut q = VecDeque::new();
        q.extend([p(1200, 1), p(1200, 2)]);
        assert_eq!(
            train_len(q.iter(), 64),
            1,
            "other destination starts a new train"
        );
        let mut q = VecDeque::new();
        q.extend((0..100).map(|_| p(1200, 1)));
        assert_eq!(train_len(q.iter(), 64), 54, "64 KiB bound: 54 x 1200 B");
        assert_eq!(train_len(q.iter(), 8), 8, "configured bound");
        let mut q = VecDeque::new();
        q.extend([p(100, 1), p(1200, 1)]);
        assert_eq!(train_len(q.iter(), 64), 1, "a longer segment cannot follow");
        assert_eq!(train_len(VecDeque::<Pending>::new().iter(), 64), 0);
    }
}
