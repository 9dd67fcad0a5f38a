//! The XDP programs from `<repo>/bpf/`, loaded through libbpf-rs skeletons.
//!
//! Contract:
//! - [`RedirectProgram`]: steers inbound IPv4 UDP for configured destination ports into the AF_XDP
//!   socket of the receiving queue (`register_xsk`), passes everything else (see
//!   `bpf/redirect.bpf.c`).
//! - [`LossProgram`]: test-only loss injection by probability and by burst pattern, configured at
//!   run time through a map (see `bpf/loss.bpf.c`); there is no netem on the target kernels.
//! - Both can be exercised without a network device through `BPF_PROG_TEST_RUN`
//!   ([`RedirectProgram::test_run`]), and attached with a **bpf_link** ([`attach`]): the program
//!   detaches when the value is dropped or the process dies, and the link is bound to the device
//!   itself, so dropping it from a thread in another network namespace is still correct.
//! - Loading needs CAP_BPF + CAP_NET_ADMIN (or root); failures are `NetError::Setup`.
//!
//! [`attach`]: RedirectProgram::attach
#![allow(unsafe_code)] // generated skeleton code, and the self-referential skeleton storage

use crate::NetError;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, OpenObject};
use std::mem::{ManuallyDrop, MaybeUninit};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::ptr::NonNull;

#[allow(
    clippy::all,
    clippy::pedantic,
    unsafe_op_in_unsafe_fn,
    dead_code,
    missing_docs
)]
mod redirect_skel {
    include!(concat!(env!("OUT_DIR"), "/redirect.skel.rs"));
}
#[allow(
    clippy::all,
    clippy::pedantic,
    unsafe_op_in_unsafe_fn,
    dead_code,
    missing_docs
)]
mod loss_skel {
    include!(concat!(env!("OUT_DIR"), "/loss.skel.rs"));
}

use loss_skel::{LossSkel, LossSkelBuilder};
use redirect_skel::{RedirectSkel, RedirectSkelBuilder};

/// XDP return codes (uapi linux/bpf.h `enum xdp_action`).
pub mod action {
    pub const ABORTED: u32 = 0;
    pub const DROP: u32 = 1;
    pub const PASS: u32 = 2;
    pub const TX: u32 = 3;
    pub const REDIRECT: u32 = 4;
}

/// Mirrors `bpf/strahl_xdp.h`.
const MAX_QUEUES: u32 = 64;
const REDIRECT_STAT_COUNT: u32 = 3;
const LOSS_STAT_COUNT: u32 = 4;
/// Attempts of a repeated test run interrupted by signals (each attempt makes progress).
pub const TEST_RUN_RETRIES: usize = 20;

fn bpf_err(what: &'static str) -> impl FnOnce(libbpf_rs::Error) -> NetError {
    move |e| NetError::setup(what, std::io::Error::other(e.to_string()))
}

/// Heap slot for the skeleton's `OpenObject`, which the loaded skeleton borrows for its life.
struct ObjectSlot(NonNull<MaybeUninit<OpenObject>>);

impl ObjectSlot {
    fn new() -> Self {
        let b = Box::new(MaybeUninit::<OpenObject>::uninit());
        // SAFETY: Box::into_raw never returns null.
        Self(unsafe { NonNull::new_unchecked(Box::into_raw(b)) })
    }

    /// # Safety
    /// The returned reference must not outlive `self`, and `free` must run only after every user
    /// of it is gone. The owning structs below guarantee both by dropping the skeleton first.
    unsafe fn get(&self) -> &'static mut MaybeUninit<OpenObject> {
        // SAFETY: pointer from Box::into_raw, unique; lifetime discipline per the fn contract.
        unsafe { &mut *self.0.as_ptr() }
    }

    /// # Safety
    /// Call once, after the skeleton that borrowed the object was dropped.
    unsafe fn free(&mut self) {
        // SAFETY: pointer from Box::into_raw, freed exactly once (fn contract).
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// Sum a per-CPU u64 array entry.
fn percpu_sum(map: &dyn MapCore, idx: u32) -> Result<u64, NetError> {
    let v = map
        .lookup_percpu(&idx.to_ne_bytes(), MapFlags::ANY)
        .map_err(bpf_err("read per-CPU stats"))?;
    Ok(v.map(|cpus| {
        cpus.iter()
            .filter_map(|b| {
                b.get(..8)
                    .and_then(|s| s.try_into().ok())
                    .map(u64::from_ne_bytes)
            })
            .sum()
    })
    .unwrap_or(0))
}

fn run_xdp(prog: &libbpf_rs::ProgramMut<'_>, frame: &[u8], rx_queue: u32) -> Result<u32, NetError> {
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex.
    // The kernel wants data_meta 0, data = metadata length (0) and data_end = the frame length;
    // ingress_ifindex 0 (no device) allows rx_queue_index 0 only.
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
    ctx[16..20].copy_from_slice(&rx_queue.to_ne_bytes());
    let mut out = vec![0u8; frame.len() + 256];
    let input = libbpf_rs::ProgramInput {
        data_in: Some(frame),
        data_out: Some(&mut out),
        context_in: Some(&mut ctx),
        ..Default::default()
    };
    let r = prog.test_run(input).map_err(bpf_err("BPF_PROG_TEST_RUN"))?;
    Ok(r.return_value)
}

/// Decisions of the redirect program since load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedirectStats {
    pub redirected: u64,
    pub passed: u64,
    pub malformed: u64,
}

/// The steering program (`bpf/redirect.bpf.c`).
pub struct RedirectProgram {
    link: Option<Link>,
    skel: ManuallyDrop<RedirectSkel<'static>>,
    obj: ObjectSlot,
}

// SAFETY: the skeleton's raw pointers refer to libbpf objects owned by this value alone; libbpf
// objects are not tied to a thread, and all access goes through `&self`/`&mut self` of this one
// owner (map updates are individual bpf() syscalls, safe to issue from any thread).
unsafe impl Send for RedirectProgram {}

impl RedirectProgram {
    /// Load (verify) the program; not attached anywhere yet.
    pub fn load() -> Result<Self, NetError> {
        let obj = ObjectSlot::new();
        // SAFETY: the skeleton borrowing the object is stored next to it and dropped before it.
        let open = RedirectSkelBuilder::default()
            .open(unsafe { obj.get() })
            .map_err(bpf_err("open redirect skeleton"))?;
        let skel = open.load().map_err(bpf_err("load redirect program"))?;
        Ok(Self {
            link: None,
            skel: ManuallyDrop::new(skel),
            obj,
        })
    }

    /// Attach to `ifindex` (of the calling thread's namespace) with a bpf_link; the kernel picks
    /// native mode where the driver has it (veth does), generic otherwise.
    pub fn attach(&mut self, ifindex: u32) -> Result<(), NetError> {
        let link = self
            .skel
            .progs
            .strahl_redirect
            .attach_xdp(ifindex as i32)
            .map_err(bpf_err("attach XDP redirect"))?;
        self.link = Some(link);
        Ok(())
    }

    /// Steer UDP datagrams to `port` into AF_XDP.
    pub fn add_port(&self, port: u16) -> Result<(), NetError> {
        self.skel
            .maps
            .ports
            .update(&port.to_ne_bytes(), &[1u8], MapFlags::ANY)
            .map_err(bpf_err("add port"))
    }

    pub fn remove_port(&self, port: u16) -> Result<(), NetError> {
        self.skel
            .maps
            .ports
            .delete(&port.to_ne_bytes())
            .map_err(bpf_err("remove port"))
    }

    /// Register the AF_XDP socket `fd` for receive queue `queue`.
    pub fn register_xsk(&self, queue: u32, fd: RawFd) -> Result<(), NetError> {
        if queue >= MAX_QUEUES {
            return Err(NetError::Config("queue index beyond the XSKMAP size"));
        }
        self.skel
            .maps
            .xsks
            .update(&queue.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(bpf_err("register AF_XDP socket"))
    }

    pub fn stats(&self) -> Result<RedirectStats, NetError> {
        let m = &self.skel.maps.stats;
        debug_assert_eq!(REDIRECT_STAT_COUNT, 3);
        Ok(RedirectStats {
            redirected: percpu_sum(m, 0)?,
            passed: percpu_sum(m, 1)?,
            malformed: percpu_sum(m, 2)?,
        })
    }

    /// Run the program once on `frame` (an Ethernet frame) with BPF_PROG_TEST_RUN; returns the
    /// XDP action ([`action`]).
    pub fn test_run(&self, frame: &[u8], rx_queue: u32) -> Result<u32, NetError> {
        run_xdp(&self.skel.progs.strahl_redirect, frame, rx_queue)
    }

    pub fn prog_fd(&self) -> RawFd {
        self.skel.progs.strahl_redirect.as_fd().as_raw_fd()
    }
}

impl Drop for RedirectProgram {
    fn drop(&mut self) {
        self.link.take(); // detach first
        // SAFETY: the skeleton is dropped exactly once, here, before the object it borrows.
        unsafe {
            ManuallyDrop::drop(&mut self.skel);
            self.obj.free();
        }
    }
}

/// Loss pattern for [`LossProgram`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossConfig {
    /// Drop probability in [0, 1].
    pub probability: f64,
    /// Burst pattern: drop `burst_len` packets starting at `burst_offset` in every
    /// `burst_period` matching packets (0: off).
    pub burst_period: u32,
    pub burst_offset: u32,
    pub burst_len: u32,
    /// Only UDP to this destination port (0: any UDP).
    pub udp_port: u16,
}

/// Counters of the loss program since the last `configure`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossStats {
    pub passed: u64,
    pub dropped_random: u64,
    pub dropped_burst: u64,
    pub ignored: u64,
}

/// Test-only loss injection program (`bpf/loss.bpf.c`).
pub struct LossProgram {
    link: Option<Link>,
    skel: ManuallyDrop<LossSkel<'static>>,
    obj: ObjectSlot,
}

// SAFETY: as for `RedirectProgram`.
unsafe impl Send for LossProgram {}

impl LossProgram {
    pub fn load() -> Result<Self, NetError> {
        let obj = ObjectSlot::new();
        // SAFETY: the skeleton borrowing the object is stored next to it and dropped before it.
        let open = LossSkelBuilder::default()
            .open(unsafe { obj.get() })
            .map_err(bpf_err("open loss skeleton"))?;
        let skel = open.load().map_err(bpf_err("load loss program"))?;
        let p = Self {
            link: None,
            skel: ManuallyDrop::new(skel),
            obj,
        };
        p.configure(&LossConfig::default())?;
        Ok(p)
    }

    pub fn attach(&mut self, ifindex: u32) -> Result<(), NetError> {
        let link = self
            .skel
            .progs
            .strahl_loss
            .attach_xdp(ifindex as i32)
            .map_err(bpf_err("attach XDP loss"))?;
        self.link = Some(link);
        Ok(())
    }

    /// Write the pattern and restart the packet index and the counters.
    pub fn configure(&self, c: &LossConfig) -> Result<(), NetError> {
        if !(0.0..=1.0).contains(&c.probability) {
            return Err(NetError::Config("loss probability outside [0, 1]"));
        }
        let scaled = (c.probability * 4_294_967_296.0).min(u32::MAX as f64) as u32;
        // struct strahl_loss_cfg (bpf/strahl_xdp.h): 4 x u32, u16 port, u16 pad.
        let mut v = [0u8; 20];
        v[0..4].copy_from_slice(&scaled.to_ne_bytes());
        v[4..8].copy_from_slice(&c.burst_period.to_ne_bytes());
        v[8..12].copy_from_slice(&c.burst_offset.to_ne_bytes());
        v[12..16].copy_from_slice(&c.burst_len.to_ne_bytes());
        v[16..18].copy_from_slice(&c.udp_port.to_ne_bytes());
        let zero = 0u32.to_ne_bytes();
        let maps = &self.skel.maps;
        maps.cfg
            .update(&zero, &v, MapFlags::ANY)
            .map_err(bpf_err("write loss config"))?;
        maps.state
            .update(&zero, &[0u8; 8], MapFlags::ANY)
            .map_err(bpf_err("reset loss state"))?;
        let ncpu = libbpf_rs::num_possible_cpus().map_err(bpf_err("count CPUs"))?;
        let zeros = vec![vec![0u8; 8]; ncpu];
        for i in 0..LOSS_STAT_COUNT {
            maps.stats
                .update_percpu(&i.to_ne_bytes(), &zeros, MapFlags::ANY)
                .map_err(bpf_err("reset loss stats"))?;
        }
        Ok(())
    }

    pub fn stats(&self) -> Result<LossStats, NetError> {
        let m = &self.skel.maps.stats;
        Ok(LossStats {
            passed: percpu_sum(m, 0)?,
            dropped_random: percpu_sum(m, 1)?,
            dropped_burst: percpu_sum(m, 2)?,
            ignored: percpu_sum(m, 3)?,
        })
    }

    pub fn test_run(&self, frame: &[u8]) -> Result<u32, NetError> {
        run_xdp(&self.skel.progs.strahl_loss, frame, 0)
    }

    /// Run the program `repeat` times on `frame` in one syscall (statistics tests).
    /// Run the program `repeat` times on `frame` in one syscall (statistics tests).
    ///
    /// The kernel stops a repeated run with EINTR when a signal is pending (e.g. SIGCHLD from a
    /// child process of another thread) after running part of the repetitions; this retries up to
    /// [`TEST_RUN_RETRIES`] times, so the counters can include the partial runs: read the totals
    /// from [`LossProgram::stats`] rather than assuming exactly `repeat`.
    pub fn test_run_repeat(&self, frame: &[u8], repeat: u32) -> Result<u32, NetError> {
        let mut out = vec![0u8; frame.len() + 256];
        let mut last = None;
        for _ in 0..TEST_RUN_RETRIES {
            let input = libbpf_rs::ProgramInput {
                data_in: Some(frame),
                data_out: Some(&mut out),
                repeat,
                ..Default::default()
            };
            match self.skel.progs.strahl_loss.test_run(input) {
                Ok(r) => return Ok(r.return_value),
                Err(e) if e.kind() == libbpf_rs::ErrorKind::Interrupted => last = Some(e),
                Err(e) => return Err(bpf_err("BPF_PROG_TEST_RUN")(e)),
            }
        }
        Err(bpf_err("BPF_PROG_TEST_RUN (interrupted every time)")(
            last.expect("at least one attempt"),
        ))
    }
}

impl Drop for LossProgram {
    fn drop(&mut self) {
        self.link.take();
        // SAFETY: the skeleton is dropped exactly once, here, before the object it borrows.
        unsafe {
            ManuallyDrop::drop(&mut self.skel);
            self.obj.free();
        }
    }
}
