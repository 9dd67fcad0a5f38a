//! `sendmmsg` / `recvmmsg` transport (the portable fallback), with optional UDP GSO trains.
//!
//! Contract (in addition to the crate's seam contract):
//! - [`MmsgTx::flush`] sends pending datagrams with `sendmmsg(MSG_DONTWAIT)`, at most
//!   [`MMSG_BATCH`] messages per call. With GSO on, consecutive datagrams to one destination with
//!   one length (the last may be shorter) go as one message with `UDP_SEGMENT` (a *train*), bounded
//!   by the configured segment count and 64 KiB. Never blocks: back-pressure is a stall.
//! - The kernel copies the payload during the syscall, so frames complete as soon as it returns;
//!   `reclaim` reports them.
//! - All `mmsghdr`/`iovec`/address/cmsg scratch is allocated at construction.
//! - [`MmsgRx::enable_gro`] turns on UDP GRO: the kernel may hand one message holding several
//!   datagrams of one size from one source; the segment size comes in a `UDP_GRO` cmsg and is
//!   recorded per slot ([`RxBatch::segment_size`]). The caller's slots must then hold 64 KiB, or
//!   coalesced messages are truncated (and counted).
#![allow(unsafe_code)]

use crate::NetError;
use crate::frame::{FrameArena, TxFrame};
use crate::rx::{RxBatch, RxCounters, RxQueue};
use crate::staging::{self, Staging, staged_tx_glue};
use crate::sys::{self, ErrClass, GSO_CMSG_SPACE};
use crate::tx::{FlushReport, SubmitError, TransportKind, TxCounters, TxQueue, train_len};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Messages per `sendmmsg`/`recvmmsg` call. 64 measured 308k pps on veth; 256 gave no gain (251k):
/// docs/measurements.md §batching.
pub const MMSG_BATCH: usize = 64;

/// Default socket buffers: 64 MiB was the size used for every veth measurement (§3 setup).
pub const DEFAULT_SOCKET_BUFFER: usize = 64 << 20;

/// Shape of a [`MmsgTx`].
#[derive(Debug, Clone, Copy)]
pub struct MmsgConfig {
    /// Frame slots (the most datagrams submitted but not yet flushed).
    pub frames: u32,
    /// Payload bytes per frame.
    pub frame_payload: usize,
    /// Segments per GSO train; 0 or 1 disables GSO. Clamped to 64 and to 64 KiB per train. 50
    /// segments of 1200 B measured 1.28 M pps on veth (docs/measurements.md §batching).
    pub gso_segments: usize,
    /// Send buffer to request (best effort).
    pub socket_buffer: usize,
}

impl Default for MmsgConfig {
    fn default() -> Self {
        Self {
            frames: 4096,
            frame_payload: 1472,
            gso_segments: 0,
            socket_buffer: DEFAULT_SOCKET_BUFFER,
        }
    }
}

/// Raw-pointer scratch for one `sendmmsg`/`recvmmsg` call; rebuilt before every call.
struct Scratch {
    hdrs: Box<[libc::mmsghdr]>,
    iovs: Box<[libc::iovec]>,
    addrs: Box<[libc::sockaddr_storage]>,
    cmsgs: Box<[[u64; GSO_CMSG_SPACE / 8]]>,
    /// Datagrams (segments) carried by each message of the current call.
    segs: Box<[usize]>,
}

// SAFETY: the raw pointers inside `hdrs`/`iovs` are rewritten before every syscall to point into
// memory owned by the same transport value; they are never dereferenced outside that call, so
// moving the transport between threads cannot create a dangling or shared access.
unsafe impl Send for Scratch {}

impl Scratch {
    fn new(msgs: usize, iovs: usize) -> Self {
        // SAFETY: mmsghdr and iovec are plain C structs for which all-zero is valid (null pointers,
        // zero lengths).
        let zero_hdr: libc::mmsghdr = unsafe { std::mem::zeroed() };
        let zero_iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        Self {
            hdrs: vec![zero_hdr; msgs].into_boxed_slice(),
            iovs: vec![zero_iov; iovs].into_boxed_slice(),
            addrs: vec![sys::zeroed_storage(); msgs].into_boxed_slice(),
            cmsgs: vec![[0u64; GSO_CMSG_SPACE / 8]; msgs].into_boxed_slice(),
            segs: vec![0; msgs].into_boxed_slice(),
        }
    }
}

/// `sendmmsg` transmit queue over one UDP socket.
pub struct MmsgTx {
    sock: UdpSocket,
    stage: Staging,
    scratch: Scratch,
    max_train: usize,
    unreclaimed: usize,
    counters: TxCounters,
}

impl MmsgTx {
    /// Wrap a bound UDP socket. GSO is enabled only if asked for *and* the kernel accepts
    /// `UDP_SEGMENT` on this socket; [`MmsgTx::gso_segments`] says what is active.
    pub fn new(sock: UdpSocket, cfg: MmsgConfig) -> Result<Self, NetError> {
        staging::check_frame_shape(cfg.frames, cfg.frame_payload)?;
        sys::set_buffer(&sock, true, cfg.socket_buffer)
            .map_err(|e| NetError::setup("SO_SNDBUF", e))?;
        let max_train = staging::gso_train_segments(&sock, cfg.gso_segments);
        Ok(Self {
            sock,
            stage: Staging::new(FrameArena::new(cfg.frames, cfg.frame_payload, 0)),
            scratch: Scratch::new(MMSG_BATCH, MMSG_BATCH * max_train),
            max_train,
            unreclaimed: 0,
            counters: TxCounters::default(),
        })
    }

    /// Segments per GSO train in effect (1: GSO off).
    pub fn gso_segments(&self) -> usize {
        self.max_train
    }

    pub fn socket(&self) -> &UdpSocket {
        &self.sock
    }

    /// Build up to MMSG_BATCH messages from the pending queue; returns the message count.
    fn build(&mut self) -> usize {
        let s = &mut self.scratch;
        let mut m = 0;
        let mut idx = 0;
        let mut iov_used = 0;
        while m < MMSG_BATCH && idx < self.stage.pending.len() {
            let n = if self.max_train > 1 {
                train_len(self.stage.pending.range(idx..), self.max_train)
            } else {
                1
            };
            for k in 0..n {
                let p = self.stage.pending[idx + k];
                s.iovs[iov_used + k] = libc::iovec {
                    iov_base: self.stage.arena.payload_ptr(p.slot) as *mut libc::c_void,
                    iov_len: p.len as usize,
                };
            }
            let first = self.stage.pending[idx];
            let namelen = sys::write_sockaddr(&first.dest, &mut s.addrs[m]);
            let hdr = &mut s.hdrs[m].msg_hdr;
            hdr.msg_name = &mut s.addrs[m] as *mut _ as *mut libc::c_void;
            hdr.msg_namelen = namelen;
            hdr.msg_iov = &mut s.iovs[iov_used];
            hdr.msg_iovlen = n;
            if n > 1 {
                let len = sys::write_gso_cmsg(&mut s.cmsgs[m], first.len as u16);
                hdr.msg_control = s.cmsgs[m].as_mut_ptr() as *mut libc::c_void;
                hdr.msg_controllen = len;
            } else {
                hdr.msg_control = std::ptr::null_mut();
                hdr.msg_controllen = 0;
            }
            hdr.msg_flags = 0;
            s.hdrs[m].msg_len = 0;
            s.segs[m] = n;
            m += 1;
            idx += n;
            iov_used += n;
        }
        m
    }

    /// Pop `n` datagrams off the pending queue and free their frames.
    fn retire(&mut self, n: usize, sent: bool) {
        for _ in 0..n {
            let Some(p) = self.stage.pending.pop_front() else {
                return;
            };
            if sent {
                self.counters.sent_packets += 1;
                self.counters.sent_bytes += p.len as u64;
            } else {
                self.counters.dropped += 1;
            }
            self.counters.completed += 1;
            self.unreclaimed += 1;
            self.stage.arena.release(p.slot);
        }
    }
}

impl TxQueue for MmsgTx {
    fn kind(&self) -> TransportKind {
        TransportKind::SendMmsg
    }

    staged_tx_glue!(stage);

    fn submit(&mut self, frame: TxFrame, len: usize, dest: SocketAddr) -> Result<(), SubmitError> {
        self.stage.submit(frame, len, dest, &mut self.counters)
    }

    fn flush(&mut self) -> Result<FlushReport, NetError> {
        let mut report = FlushReport::default();
        // Bound: every iteration either retires at least one datagram or stops.
        let max_iterations = self.stage.pending.len() + 1;
        for _ in 0..max_iterations {
            if self.stage.pending.is_empty() {
                break;
            }
            let m = self.build();
            // SAFETY: hdrs[..m] were just built to point at live scratch (addresses, iovecs,
            // cmsgs) and at payload areas of slots owned by the transport (pending); nothing else
            // touches them during the call.
            let rc = unsafe {
                libc::sendmmsg(
                    self.sock.as_raw_fd(),
                    self.scratch.hdrs.as_mut_ptr(),
                    m as u32,
                    libc::MSG_DONTWAIT,
                )
            };
            report.syscalls += 1;
            self.counters.syscalls += 1;
            if rc < 0 {
                let e = sys::errno();
                match sys::classify(e) {
                    ErrClass::Retry => {
                        self.counters.stalls += 1;
                        self.counters.last_errno = e;
                        report.stalled = true;
                        break;
                    }
                    ErrClass::DropOne => {
                        let n = self.scratch.segs[0];
                        self.counters.last_errno = e;
                        self.retire(n, false);
                        report.dropped += n;
                    }
                    ErrClass::Fatal => {
                        return Err(NetError::Broken {
                            what: "sendmmsg",
                            source: std::io::Error::from_raw_os_error(e),
                        });
                    }
                }
                continue;
            }
            for i in 0..rc as usize {
                let n = self.scratch.segs[i];
                if n > 1 {
                    self.counters.gso_trains += 1;
                }
                self.retire(n, true);
                report.sent += n;
            }
        }
        Ok(report)
    }

    fn reclaim(&mut self) -> Result<usize, NetError> {
        Ok(std::mem::take(&mut self.unreclaimed))
    }

    fn counters(&self) -> &TxCounters {
        &self.counters
    }
}

/// `recvmmsg` receive queue over one UDP socket.
pub struct MmsgRx {
    sock: UdpSocket,
    scratch: Scratch,
    gro: bool,
    counters: RxCounters,
}

impl MmsgRx {
    /// Wrap a bound UDP socket; `max_batch` bounds the datagrams per call (the batch's capacity
    /// is further clamped to it). The receive buffer is raised to `socket_buffer` (best effort).
    pub fn new(sock: UdpSocket, max_batch: usize, socket_buffer: usize) -> Result<Self, NetError> {
        if max_batch == 0 {
            return Err(NetError::Config("max_batch > 0 required"));
        }
        sys::set_buffer(&sock, false, socket_buffer)
            .map_err(|e| NetError::setup("SO_RCVBUF", e))?;
        Ok(Self {
            sock,
            scratch: Scratch::new(max_batch, max_batch),
            gro: false,
            counters: RxCounters::default(),
        })
    }

    pub fn socket(&self) -> &UdpSocket {
        &self.sock
    }

    /// Asks the kernel for UDP GRO (see the module contract). An error (a kernel without
    /// `UDP_GRO`) leaves the queue receiving one datagram per slot, as before.
    pub fn enable_gro(&mut self) -> std::io::Result<()> {
        sys::set_udp_gro(&self.sock, true)?;
        self.gro = true;
        Ok(())
    }

    /// Whether [`Self::enable_gro`] succeeded.
    pub fn gro(&self) -> bool {
        self.gro
    }
}

impl RxQueue for MmsgRx {
    fn recv(&mut self, batch: &mut RxBatch, timeout: Duration) -> Result<usize, NetError> {
        batch.set_filled(0);
        let fd = self.sock.as_raw_fd();
        let ready = sys::poll_readable(fd, timeout).map_err(|e| NetError::Broken {
            what: "poll",
            source: e,
        })?;
        if !ready {
            self.counters.empty_polls += 1;
            return Ok(0);
        }
        let n = batch.capacity().min(self.scratch.hdrs.len());
        let (buf, slot, lens, srcs, truncated) = batch.parts_mut();
        let s = &mut self.scratch;
        for i in 0..n {
            s.iovs[i] = libc::iovec {
                iov_base: buf[i * slot..].as_mut_ptr() as *mut libc::c_void,
                iov_len: slot,
            };
            let hdr = &mut s.hdrs[i].msg_hdr;
            hdr.msg_name = &mut s.addrs[i] as *mut _ as *mut libc::c_void;
            hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_iov = &mut s.iovs[i];
            hdr.msg_iovlen = 1;
            if self.gro {
                hdr.msg_control = s.cmsgs[i].as_mut_ptr() as *mut libc::c_void;
                hdr.msg_controllen = GSO_CMSG_SPACE as _;
            } else {
                hdr.msg_control = std::ptr::null_mut();
                hdr.msg_controllen = 0;
            }
            hdr.msg_flags = 0;
        }
        // SAFETY: hdrs[..n] point at live scratch addresses, at n disjoint slots of the
        // caller's batch buffer (each `slot` bytes, inside `buf`), borrowed mutably for the call,
        // and (GRO) at n live cmsg buffers of GSO_CMSG_SPACE bytes each.
        let rc = unsafe {
            libc::recvmmsg(
                fd,
                s.hdrs.as_mut_ptr(),
                n as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        self.counters.syscalls += 1;
        if rc < 0 {
            let e = sys::errno();
            return match sys::classify(e) {
                ErrClass::Fatal => Err(NetError::Broken {
                    what: "recvmmsg",
                    source: std::io::Error::from_raw_os_error(e),
                }),
                _ => {
                    if e != libc::EAGAIN {
                        self.counters.transient_errors += 1;
                        self.counters.last_errno = e;
                    }
                    Ok(0)
                }
            };
        }
        let got = rc as usize;
        for i in 0..got {
            let len = s.hdrs[i].msg_len as usize;
            lens[i] = len;
            truncated[i] = s.hdrs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
            if truncated[i] {
                self.counters.truncated += 1;
            }
            srcs[i] = sys::read_sockaddr(&s.addrs[i]).unwrap_or(srcs[i]);
            self.counters.received_bytes += len as u64;
        }
        let mut datagrams = got;
        if self.gro {
            for i in 0..got {
                let seg = sys::read_gro_cmsg(&s.hdrs[i].msg_hdr).unwrap_or(0);
                let len = s.hdrs[i].msg_len as usize;
                if seg > 0 && seg < len {
                    batch.set_segment(i, seg);
                    datagrams += len.div_ceil(seg) - 1;
                }
            }
        }
        self.counters.received_packets += datagrams as u64;
        batch.set_filled(got);
        Ok(got)
    }

    fn counters(&self) -> &RxCounters {
        &self.counters
    }
}
