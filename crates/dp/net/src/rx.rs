//! The receive seam: [`RxQueue`] fills a caller-owned [`RxBatch`].
//!
//! Contract: the batch is allocated once by the caller (`slots` × `slot_size` bytes plus metadata);
//! a receive call overwrites it with up to `slots` datagrams, never allocates, and waits at most the
//! timeout it is given. Truncation (datagram longer than a slot) is counted, not an error.

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

    pub(crate) fn set_filled(&mut self, n: usize) {
        debug_assert!(n <= self.capacity());
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
