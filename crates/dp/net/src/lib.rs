//! `strahl-net`: the data-plane transports behind one seam.
//!
//! # The seam
//! [`TxQueue`] is how every sender (the native packetizer, GameStream video/audio, probes) hands
//! datagrams to the kernel or NIC; [`RxQueue`] is how a receiver (the reference client, AF_XDP RX,
//! loss reports) takes them in. Implementations: [`mmsg`] (`sendmmsg`/`recvmmsg`, optional UDP GSO
//! trains), [`uring`] (io_uring, registered buffers, `SendZc` where the kernel has it) and — with the
//! `xdp` feature — AF_XDP. Which one runs is decided once at start-up by a self-test, never silently.
//!
//! ## Contract of [`TxQueue`]
//! - **Frames belong to the queue.** The queue owns one fixed arena of equal-size frame slots,
//!   allocated at construction (UMEM for AF_XDP, registered buffers for io_uring, a plain arena for
//!   sendmmsg). [`TxQueue::alloc`] hands out a [`TxFrame`] token: owning the token is the right to
//!   write that slot's payload area through [`TxQueue::payload_mut`] / [`TxQueue::payloads_mut`]
//!   (the latter gives many disjoint slices at once, e.g. FEC data + parity). The packetizer writes
//!   the UDP payload in place: there is no copy between packetize and the transport except the one
//!   the kernel makes (sendmmsg/`Send`: into the skb; AF_XDP copy mode: UMEM frame into an skb;
//!   AF_XDP zero-copy and `SendZc` on a NIC that supports them: none).
//! - **Submit, then flush.** [`TxQueue::submit`] consumes the token with the datagram length and
//!   destination; nothing leaves until [`TxQueue::flush`], which sends everything pending in
//!   batches (64 messages per syscall, or GSO trains of equal-size segments to one destination).
//!   Order of submission is order on the wire per destination.
//! - **Completions.** A frame is reusable only after the transport reports it complete (the kernel
//!   copied it, or a zero-copy notification arrived). [`TxQueue::reclaim`] moves completed frames
//!   back to the free pool and says how many; `alloc` returns `None` when none is free (that is
//!   back-pressure, not an error: flush and reclaim, or drop per the pacer's policy).
//! - **Errors vs counters.** Steady-state anomalies are counters in [`TxCounters`], not errors: a
//!   full socket buffer (`EAGAIN`/`ENOBUFS`) leaves frames pending and sets
//!   [`FlushReport::stalled`]; a per-datagram refusal (`EMSGSIZE`, unreachable, firewall) drops
//!   that datagram, frees its frame and counts it with the errno. [`NetError`] is returned only for
//!   what the caller must act on: a broken socket/ring (`EBADF`, `EFAULT`), or setup failures.
//!   Caller mistakes at submit (oversize length, foreign token) are a typed [`SubmitError`].
//! - **No allocation per packet.** Every queue, batch array and header buffer is sized at
//!   construction; `tests/alloc.rs` proves the steady state with a counting allocator.
//!
//! ## Contract of [`RxQueue`]
//! The caller owns an [`RxBatch`] (slots of fixed size, allocated once); [`RxQueue::recv`] fills
//! up to its capacity in one call, waiting at most the given timeout, and records each datagram's
//! length and source. Datagrams longer than a slot are truncated and counted, never an error.
//!
//! # Choosing a transport
//! [`selftest::self_test`] tries AF_XDP → io_uring → sendmmsg on the configured interface, keeps
//! the first whose probe is seen leaving (interface TX counter), and returns typed refusals for
//! the others plus a one-line summary for the log and the status endpoint.
//!
//! # Features and build requirements
//! `xdp` (default): AF_XDP (`xsk-rs` 0.11, which pins libbpf-sys 1.5.1, hence libbpf-rs /
//! libbpf-cargo 0.25) and the XDP programs in `<repo>/bpf/`, compiled by `build.rs`. Build needs
//! clang, m4, make, libelf-dev, zlib1g-dev, pkg-config and **libpcap-dev** (libxdp's configure
//! refuses to run without `pcap/dlt.h`); the result links libelf and zlib only. Without the
//! feature the crate builds with no C toolchain and the self-test reports AF_XDP as not built.
//!
//! # Safety
//! This is the only crate with socket `unsafe`. `unsafe` is denied crate-wide and allowed only in
//! the syscall modules ([`frame`] raw arena, [`sys`], [`mmsg`], [`netlink`], [`uring`], [`testbed`], and with
//! `xdp` the `bpf` skeleton storage and the `xdp` UMEM/ring code); every block carries a
//! `// SAFETY:` note naming the invariant it relies on.
#![deny(unsafe_code)]

#[cfg(feature = "xdp")]
pub mod bpf;
pub mod frame;
pub mod mmsg;
pub mod netlink;
pub mod rx;
pub mod selftest;
mod staging;
pub mod sys;
pub mod testbed;
pub mod tx;
pub mod uring;
#[cfg(feature = "xdp")]
pub mod xdp;

pub use frame::TxFrame;
pub use rx::{RxBatch, RxCounters, RxQueue};
pub use tx::{FlushReport, SubmitError, TransportKind, TxCounters, TxQueue};

use std::fmt;

/// Failures the caller must act on (see the module contract: steady-state anomalies are counters).
#[derive(Debug)]
pub enum NetError {
    /// A setup step (socket, bind, ring, UMEM, BPF) failed; `what` names the step.
    Setup {
        what: &'static str,
        source: std::io::Error,
    },
    /// The socket or ring is unusable (`EBADF`, `EFAULT`, `ENOTSOCK`, ...): rebuild the transport.
    Broken {
        what: &'static str,
        source: std::io::Error,
    },
    /// The configuration asks for something this transport cannot do.
    Config(&'static str),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Setup { what, source } => write!(f, "setup failed at {what}: {source}"),
            NetError::Broken { what, source } => write!(f, "transport broken in {what}: {source}"),
            NetError::Config(why) => write!(f, "invalid transport configuration: {why}"),
        }
    }
}

impl std::error::Error for NetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetError::Setup { source, .. } | NetError::Broken { source, .. } => Some(source),
            NetError::Config(_) => None,
        }
    }
}

impl NetError {
    pub(crate) fn setup(what: &'static str, source: std::io::Error) -> Self {
        NetError::Setup { what, source }
    }
}
