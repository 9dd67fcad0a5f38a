//! io_uring transmit transport: batched sends, registered buffers with `SendZc` where the kernel
//! has it, UDP GSO trains through `SendMsg` (copying; see [`UringTx::flush`] notes).
//!
//! Contract (in addition to the crate's seam contract):
//! - [`UringTx::flush`] turns pending datagrams into SQEs (one per datagram, or one per GSO train)
//!   and submits them with one `io_uring_enter` per [`URING_SUBMIT_BATCH`] entries. It never
//!   waits; when all [`UringConfig::in_flight`] request slots are busy it stops and reports a stall.
//! - Frames stay owned by the kernel until their completion: the CQE for copying sends, the
//!   zero-copy *notification* CQE for `SendZc` (the first CQE only reports the result). Only then
//!   does [`UringTx::reclaim`] return them to the free pool.
//! - The frame arena is registered as one fixed buffer at start; `SendZc` uses it (`buf_index 0`)
//!   so the kernel skips per-send page pinning. If registration or `SendZc` is unavailable
//!   (probe), the queue uses plain `Send` and says so in [`UringTx::mode`].
//! - Zero-copy is judged after [`ZC_PROBE_NOTIFS`] notifications: if the kernel reports that it
//!   copied at least [`ZC_COPIED_FALLBACK_PERCENT`] % of them, the queue switches to plain `Send`
//!   and says so in [`UringMode::zero_copy_abandoned`] (never silently).
//! - GSO trains are sent with copying `SendMsg` even in zero-copy mode: a zero-copy skb holds at
//!   most 17 pages, which a train over separate frames exceeds (`EMSGSIZE`).
//! - A socket created blocking is expected: io_uring then waits for socket space internally
//!   (poll-arm) instead of failing with `EAGAIN`; back-pressure shows as requests in flight.
#![allow(unsafe_code)]

use crate::NetError;
use crate::frame::{FrameArena, TxFrame};
use crate::staging::{self, Staging, staged_tx_glue};
use crate::sys::{self, ErrClass, GSO_CMSG_SPACE};
use crate::tx::{FlushReport, Pending, SubmitError, TransportKind, TxCounters, TxQueue, train_len};
use io_uring::{IoUring, Probe, cqueue, opcode, squeue, types};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// SQEs per `io_uring_enter`: 64 measured 300k pps on veth, 256 gave 288k (docs/measurements.md §batching).
pub const URING_SUBMIT_BATCH: usize = 64;
/// `IORING_SEND_ZC_REPORT_USAGE` (uapi io_uring.h): the notification says whether data was copied.
const SEND_ZC_REPORT_USAGE: u16 = 1 << 3;
/// `IORING_NOTIF_USAGE_ZC_COPIED` (uapi io_uring.h), set in the notification's `res`.
const NOTIF_USAGE_ZC_COPIED: i32 = 1 << 31;
/// Zero-copy notifications to see before judging whether zero-copy pays off.
pub const ZC_PROBE_NOTIFS: u64 = 256;
/// Share of copied zero-copy sends (in %) at which the queue falls back to plain `Send`: when the
/// kernel copies anyway (veth into another namespace copies 100 %: `zc_copied` = 10000/10000 in
/// tests/netns.rs), SendZc only adds the notification round trip — measured 210k pps vs 329k for
/// plain Send on veth (tests/pps.rs).
pub const ZC_COPIED_FALLBACK_PERCENT: u64 = 90;
/// How long dropping the queue waits for in-flight requests before closing the ring.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);

/// Shape of a [`UringTx`].
#[derive(Debug, Clone, Copy)]
pub struct UringConfig {
    pub frames: u32,
    pub frame_payload: usize,
    /// Requests (datagrams or trains) in flight at most; the CQ is sized for two CQEs each (and
    /// never below the SQ size, which the kernel requires).
    pub in_flight: u32,
    /// Segments per GSO train; 0/1 off. Clamped like [`crate::mmsg::MmsgConfig::gso_segments`].
    pub gso_segments: usize,
    /// Use `SendZc` when the kernel supports it.
    pub zero_copy: bool,
    /// Fall back to `Send` when the kernel copies anyway (see [`ZC_COPIED_FALLBACK_PERCENT`]).
    pub zero_copy_fallback: bool,
    pub socket_buffer: usize,
}

impl Default for UringConfig {
    fn default() -> Self {
        Self {
            frames: 4096,
            frame_payload: 1472,
            in_flight: 256,
            gso_segments: 0,
            zero_copy: true,
            zero_copy_fallback: true,
            socket_buffer: crate::mmsg::DEFAULT_SOCKET_BUFFER,
        }
    }
}

/// What the probe left switched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UringMode {
    pub zero_copy: bool,
    pub registered_buffers: bool,
    pub gso_segments: usize,
    /// Zero-copy was switched off after [`ZC_PROBE_NOTIFS`] notifications showed the kernel
    /// copying anyway (see [`UringTx::reclaim`]).
    pub zero_copy_abandoned: bool,
}

/// Per-request storage the kernel may read until the request completes.
struct Request {
    addr: libc::sockaddr_storage,
    msg: libc::msghdr,
    iovs: Box<[libc::iovec]>,
    cmsg: [u64; GSO_CMSG_SPACE / 8],
    slots: Box<[u32]>,
    n: usize,
    bytes: u64,
}

/// io_uring transmit queue over one UDP socket.
pub struct UringTx {
    // Field order matters: the ring is dropped (closed) before the memory its requests point at.
    ring: IoUring,
    reqs: Box<[Request]>,
    free_reqs: Vec<u32>,
    /// Frame memory and pending datagrams (after `ring`: see above).
    stage: Staging,
    sock: UdpSocket,
    mode: UringMode,
    max_train: usize,
    in_flight: usize,
    unreclaimed: usize,
    zc_notifs: u64,
    zc_fallback: bool,
    counters: TxCounters,
}

// SAFETY: the raw pointers in `reqs` point into the transport's own heap storage (requests, arena)
// and are only handed to this transport's ring; moving the value between threads moves all of it.
unsafe impl Send for UringTx {}

impl UringTx {
    pub fn new(sock: UdpSocket, cfg: UringConfig) -> Result<Self, NetError> {
        staging::check_frame_shape(cfg.frames, cfg.frame_payload)?;
        if cfg.in_flight == 0 || cfg.in_flight > 16_384 {
            return Err(NetError::Config("0 < in_flight <= 16384 required"));
        }
        sys::set_buffer(&sock, true, cfg.socket_buffer)
            .map_err(|e| NetError::setup("SO_SNDBUF", e))?;
        let ring = IoUring::builder()
            .setup_cqsize((cfg.in_flight * 2).max(2 * URING_SUBMIT_BATCH as u32))
            .build(URING_SUBMIT_BATCH as u32)
            .map_err(|e| NetError::setup("io_uring_setup", e))?;
        let mut probe = Probe::new();
        let probed = ring.submitter().register_probe(&mut probe).is_ok();
        let has_zc = probed && probe.is_supported(opcode::SendZc::CODE);
        let max_train = staging::gso_train_segments(&sock, cfg.gso_segments);
        let arena = FrameArena::new(cfg.frames, cfg.frame_payload, 0);
        let mut registered = false;
        if cfg.zero_copy && has_zc {
            let (base, len) = arena.region();
            let iov = [libc::iovec {
                iov_base: base as *mut libc::c_void,
                iov_len: len,
            }];
            // SAFETY: the iovec covers the arena, which lives in this struct until after the ring
            // is closed (field order), so the registered buffer never outlives its memory.
            registered = unsafe { ring.submitter().register_buffers(&iov) }.is_ok();
        }
        let reqs = (0..cfg.in_flight)
            .map(|_| Request {
                addr: sys::zeroed_storage(),
                // SAFETY: msghdr is a plain C struct; all-zero is valid.
                msg: unsafe { std::mem::zeroed() },
                iovs: vec![
                    libc::iovec {
                        iov_base: std::ptr::null_mut(),
                        iov_len: 0
                    };
                    max_train
                ]
                .into_boxed_slice(),
                cmsg: [0; GSO_CMSG_SPACE / 8],
                slots: vec![0; max_train].into_boxed_slice(),
                n: 0,
                bytes: 0,
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        Ok(Self {
            ring,
            reqs,
            free_reqs: (0..cfg.in_flight).rev().collect(),
            stage: Staging::new(arena),
            sock,
            mode: UringMode {
                zero_copy: cfg.zero_copy && has_zc,
                registered_buffers: registered,
                gso_segments: max_train,
                zero_copy_abandoned: false,
            },
            max_train,
            in_flight: 0,
            unreclaimed: 0,
            zc_notifs: 0,
            zc_fallback: cfg.zero_copy_fallback,
            counters: TxCounters::default(),
        })
    }

    /// What the probe switched on.
    pub fn mode(&self) -> UringMode {
        self.mode
    }

    /// Requests the kernel has not completed yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn finish(&mut self, id: usize) {
        let n = self.reqs[id].n;
        for k in 0..n {
            let slot = self.reqs[id].slots[k];
            self.stage.arena.release(slot);
        }
        self.counters.completed += n as u64;
        self.unreclaimed += n;
        self.reqs[id].n = 0;
        self.free_reqs.push(id as u32);
        self.in_flight -= 1;
    }

    /// Build the SQE for request `id` (slots/lengths already stored in it).
    fn entry(&mut self, id: usize, dest: &SocketAddr, first_len: u32) -> squeue::Entry {
        let fd = types::Fd(self.sock.as_raw_fd());
        let zc = self.mode.zero_copy;
        let fixed = self.mode.registered_buffers;
        let r = &mut self.reqs[id];
        let alen = sys::write_sockaddr(dest, &mut r.addr);
        let aptr = &r.addr as *const libc::sockaddr_storage as *const libc::sockaddr;
        if r.n == 1 {
            let ptr = r.iovs[0].iov_base as *const u8;
            let len = r.iovs[0].iov_len as u32;
            if zc {
                let mut op = opcode::SendZc::new(fd, ptr, len)
                    .dest_addr(aptr)
                    .dest_addr_len(alen)
                    .zc_flags(SEND_ZC_REPORT_USAGE);
                if fixed {
                    op = op.buf_index(Some(0));
                }
                op.build()
            } else {
                opcode::Send::new(fd, ptr, len)
                    .dest_addr(aptr)
                    .dest_addr_len(alen)
                    .build()
            }
        } else {
            let clen = sys::write_gso_cmsg(&mut r.cmsg, first_len as u16);
            r.msg.msg_name = &mut r.addr as *mut _ as *mut libc::c_void;
            r.msg.msg_namelen = alen;
            r.msg.msg_iov = r.iovs.as_mut_ptr();
            r.msg.msg_iovlen = r.n;
            r.msg.msg_control = r.cmsg.as_mut_ptr() as *mut libc::c_void;
            r.msg.msg_controllen = clen;
            r.msg.msg_flags = 0;
            // Trains always copy: a zero-copy skb holds at most MAX_SKB_FRAGS (17) pages, and a
            // train over separate frames spans more, which the kernel refuses with EMSGSIZE
            // (measured: 16 x 1200 B trains with SendMsgZc lost 72 % to errno 90).
            opcode::SendMsg::new(fd, &r.msg).build()
        }
    }

    fn submit_ring(&mut self, report: &mut FlushReport) -> Result<(), NetError> {
        if self.ring.submission().is_empty() {
            return Ok(());
        }
        report.syscalls += 1;
        self.counters.syscalls += 1;
        match self.ring.submit() {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EAGAIN | libc::EBUSY | libc::EINTR)
                ) =>
            {
                // CQ overflow pressure: entries stay in the SQ and go with the next submit.
                self.counters.stalls += 1;
                report.stalled = true;
                Ok(())
            }
            Err(e) => Err(NetError::Broken {
                what: "io_uring_enter",
                source: e,
            }),
        }
    }
}

impl TxQueue for UringTx {
    fn kind(&self) -> TransportKind {
        TransportKind::IoUring
    }

    staged_tx_glue!(stage);

    fn submit(&mut self, frame: TxFrame, len: usize, dest: SocketAddr) -> Result<(), SubmitError> {
        self.stage.submit(frame, len, dest, &mut self.counters)
    }

    fn flush(&mut self) -> Result<FlushReport, NetError> {
        let mut report = FlushReport::default();
        // Bound: each iteration moves at least one datagram into a request, or stops.
        let max_iterations = self.stage.pending.len();
        for _ in 0..max_iterations {
            if self.stage.pending.is_empty() {
                break;
            }
            let Some(id) = self.free_reqs.pop() else {
                self.counters.stalls += 1;
                report.stalled = true;
                break;
            };
            let id = id as usize;
            let n = if self.max_train > 1 {
                train_len(self.stage.pending.iter(), self.max_train)
            } else {
                1
            };
            let first = self.stage.pending[0];
            let mut bytes = 0u64;
            for k in 0..n {
                let Some(p) = self.stage.pending.pop_front() else {
                    break;
                };
                let r = &mut self.reqs[id];
                r.slots[k] = p.slot;
                r.iovs[k] = libc::iovec {
                    iov_base: self.stage.arena.payload_ptr(p.slot) as *mut libc::c_void,
                    iov_len: p.len as usize,
                };
                bytes += p.len as u64;
            }
            self.reqs[id].n = n;
            self.reqs[id].bytes = bytes;
            let entry = self.entry(id, &first.dest, first.len).user_data(id as u64);
            if self.ring.submission().is_full() {
                self.submit_ring(&mut report)?;
            }
            // SAFETY: the entry points at request `id`'s storage (address, msghdr, iovecs, cmsg)
            // and at the payload of slots now owned by the request; both stay untouched and alive
            // until the request's final CQE is reaped in `reclaim` (or the ring is closed first,
            // by field order). If the SQ is still full the entry is not queued and we undo below.
            let pushed = unsafe { self.ring.submission().push(&entry) }.is_ok();
            if !pushed {
                // Put the datagrams back in order and stop; they go on the next flush.
                for k in (0..n).rev() {
                    let slot = self.reqs[id].slots[k];
                    let len = self.reqs[id].iovs[k].iov_len as u32;
                    self.stage.pending.push_front(Pending {
                        slot,
                        len,
                        dest: first.dest,
                    });
                }
                self.reqs[id].n = 0;
                self.free_reqs.push(id as u32);
                self.counters.stalls += 1;
                report.stalled = true;
                break;
            }
            self.in_flight += 1;
            report.sent += n;
            if n > 1 {
                self.counters.gso_trains += 1;
            }
            if self.ring.submission().len() >= URING_SUBMIT_BATCH {
                self.submit_ring(&mut report)?;
            }
        }
        self.submit_ring(&mut report)?;
        Ok(report)
    }

    fn reclaim(&mut self) -> Result<usize, NetError> {
        // Bound: at most the CQ's capacity per call.
        let cap = self.reqs.len() * 2;
        let mut fatal = None;
        for _ in 0..cap {
            let Some(cqe) = self.ring.completion().next() else {
                break;
            };
            let id = cqe.user_data() as usize;
            if id >= self.reqs.len() || self.reqs[id].n == 0 {
                continue; // not ours (cannot happen: every SQE carries a live request id)
            }
            let flags = cqe.flags();
            let res = cqe.result();
            if cqueue::notif(flags) {
                if res & NOTIF_USAGE_ZC_COPIED != 0 {
                    self.counters.zc_copied += self.reqs[id].n as u64;
                }
                self.zc_notifs += 1;
                if self.zc_fallback
                    && self.zc_notifs == ZC_PROBE_NOTIFS
                    && self.counters.zc_copied * 100 >= ZC_COPIED_FALLBACK_PERCENT * ZC_PROBE_NOTIFS
                {
                    // Requests already in flight finish as zero-copy; new ones use Send.
                    self.mode.zero_copy = false;
                    self.mode.zero_copy_abandoned = true;
                }
                self.finish(id);
                continue;
            }
            let n = self.reqs[id].n as u64;
            if res < 0 {
                let e = -res;
                self.counters.last_errno = e;
                self.counters.dropped += n;
                if sys::classify(e) == ErrClass::Fatal {
                    fatal = Some(e);
                }
            } else {
                self.counters.sent_packets += n;
                self.counters.sent_bytes += self.reqs[id].bytes;
            }
            if !cqueue::more(flags) {
                self.finish(id);
            }
        }
        if let Some(e) = fatal {
            return Err(NetError::Broken {
                what: "io_uring send",
                source: std::io::Error::from_raw_os_error(e),
            });
        }
        Ok(std::mem::take(&mut self.unreclaimed))
    }

    fn counters(&self) -> &TxCounters {
        &self.counters
    }
}

impl Drop for UringTx {
    fn drop(&mut self) {
        // Let in-flight sends finish so the kernel never reads frames after they are freed.
        let start = Instant::now();
        while self.in_flight > 0 && start.elapsed() < DRAIN_TIMEOUT {
            let _ = self.ring.submit_and_wait(0);
            if self.reclaim().is_err() {
                break;
            }
            if self.in_flight > 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
}
