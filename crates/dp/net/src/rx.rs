//! The receive seam: [`RxQueue`] fills a caller-owned [`RxBatch`].
//!
//! Contract: the batch is allocated once by the caller (`slots` × `slot_size` bytes plus metadata);
//! a receive call overwrites it with up to `slots` datagrams, never allocates, and waits at most the
//! timeout it is given. Truncation (datagram longer than a slot) is counted, not an error.
//! A queue that coalesces (UDP GRO, [`crate::mmsg::MmsgRx::enable_gro`]) may fill one slot with
//! several datagrams of one size back to back (the last may be shorter); [`RxBatch::segment_size`]
//! says so, and [`RxBatch::datagrams_mut`] splits a slot back into its datagrams.

use crate::NetError;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Caller-owned receive buffers: `slots` fixed-size slots and per-datagram metadata.
pub struct RxBatch {
    buf: Box<[u8]>,
    slot_size: usize,
    lens: Box<[usize]>,
    srcs: Box<[SocketAddr]>,
    truncated: Box<[bool]>,
    /// Per slot: the size of each coalesced datagram, 0 when the slot holds one datagram.
    segs: Box<[usize]>,
    filled: usize,
}

impl RxBatch {
    pub fn new(slots: usize, slot_size: usize) -> Self {
        assert!(slots > 0 && slot_size > 0);
        let unspecified = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        Self {
            buf: vec![0u8; slots * slot_size].into_boxed_slice(),
            slot_size,
            lens: vec![0; slots].into_boxed_slice(),
            srcs: vec![unspecified; slots].into_boxed_slice(),
            truncated: vec![false; slots].into_boxed_slice(),
            segs: vec![0; slots].into_boxed_slice(),
            filled: 0,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Datagrams received by the last call.
    pub fn len(&self) -> usize {
        self.filled
    }

    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// Datagram `i` of the last receive: payload (clipped to the slot) and source.
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.filled {
            return None;
        }
        let start = i * self.slot_size;
        let len = self.lens[i].min(self.slot_size);
        Some((&self.buf[start..start + len], self.srcs[i]))
    }

    /// Slot `i` of the last receive, writable (a receiver that decrypts in place), and its source.
    pub fn get_mut(&mut self, i: usize) -> Option<(&mut [u8], SocketAddr)> {
        if i >= self.filled {
            return None;
        }
        let start = i * self.slot_size;
        let len = self.lens[i].min(self.slot_size);
        Some((&mut self.buf[start..start + len], self.srcs[i]))
    }

    /// Size of each datagram coalesced into slot `i` (UDP GRO), or `None` when the slot holds a
    /// single datagram.
    pub fn segment_size(&self, i: usize) -> Option<usize> {
        (i < self.filled && self.segs[i] > 0).then(|| self.segs[i])
    }

    /// The datagrams of slot `i`, writable: one, or the coalesced ones split at
    /// [`Self::segment_size`] (the last may be shorter). Empty past the last receive.
    pub fn datagrams_mut(&mut self, i: usize) -> std::slice::ChunksMut<'_, u8> {
        let seg = self.segment_size(i);
        let slot = self.get_mut(i).map_or(&mut [][..], |(b, _)| b);
        let n = seg.unwrap_or(slot.len()).max(1);
        slot.chunks_mut(n)
    }

    /// Whether datagram `i` was longer than a slot.
    pub fn truncated(&self, i: usize) -> bool {
        i < self.filled && self.truncated[i]
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        (0..self.filled).filter_map(|i| self.get(i))
    }

    /// Raw parts for transports: whole buffer, slot size, metadata arrays.
    pub(crate) fn parts_mut(
        &mut self,
    ) -> (
        &mut [u8],
        usize,
        &mut [usize],
        &mut [SocketAddr],
        &mut [bool],
    ) {
        (
            &mut self.buf,
            self.slot_size,
            &mut self.lens,
            &mut self.srcs,
            &mut self.truncated,
        )
    }

    /// Records that slot `i` holds datagrams of `size` bytes coalesced (0: one datagram).
    pub(crate) fn set_segment(&mut self, i: usize, size: usize) {
        self.segs[i] = size;
    }

    pub(crate) fn set_filled(&mut self, n: usize) {
        debug_assert!(n <= self.capacity());
        if n == 0 {
            // Every transport starts a receive with 0: a slot never keeps an earlier
            // receive's segment size.
            self.segs.fill(0);
        }
        self.filled = n;
    }
}

/// Tile-local receive counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxCounters {
    pub received_packets: u64,
    pub received_bytes: u64,
    pub syscalls: u64,
    /// Datagrams longer than the slot (payload clipped).
    pub truncated: u64,
    /// Calls that found nothing before the timeout.
    pub empty_polls: u64,
    /// Transient receive errors (errno in `last_errno`), e.g. ICMP errors surfaced on the socket.
    pub transient_errors: u64,
    pub last_errno: i32,
    /// AF_XDP: frames that were not well-formed IPv4/UDP with valid checksums (dropped).
    pub malformed: u64,
}

/// One receive queue. See the module contract.
pub trait RxQueue {
    /// Receive up to `batch.capacity()` datagrams, waiting at most `timeout` for the first one.
    /// Returns how many were received (0 on timeout).
    fn recv(&mut self, batch: &mut RxBatch, timeout: Duration) -> Result<usize, NetError>;

    fn counters(&self) -> &RxCounters;
}
