//! The tx tile: a thread (pinned when asked) that drains frames at the pacer's release times.
//!
//! Contract:
//! - The tile owns one [`TxQueue`] and asks a [`Source`] for packets. Each turn it asks the pacer
//!   for the next release, waits for it as [`crate::sched::wait_plan`] says (spin for short
//!   gaps, sleep then spin for long ones), writes up to `release.packets` payloads straight into
//!   transport frames ([`Source::fill`], no copy, no allocation), submits them and kicks the
//!   queue when [`crate::sched::should_kick`] says the next release is not close.
//! - [`Source::on_release`] gets (scheduled, actual) times of every release, for error
//!   statistics (the pacing bench) or nothing.
//! - It stops when the shared shutdown flag is set, when the source says it is finished and
//!   everything was flushed, or at the optional deadline; every loop is bounded.
//! - Counters are tile-local integers, published into [`Shared`] every [`HOUSEKEEPING_NS`]
//!   (and at exit) with relaxed atomics: readers see a recent, not an exact, value.
//! - Transport errors that need action ([`NetError`]) end the run and are returned; back-pressure
//!   (no free frame) is a counter.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strahl_net::{NetError, TxQueue};
use strahl_pacer::{Backlog, Pacer, PacerConfig};

use crate::sched::{Wait, should_kick, wait_plan};

/// Tile-local counters are published this often: a 10 ms cadence keeps the published values
/// fresh for a 1 s status poll while costing one clock compare per turn.
pub const HOUSEKEEPING_NS: u64 = 10_000_000;

/// With nothing queued the tile sleeps this long before looking again (the source is fed by
/// another thread); 200 µs is short against a 16.7 ms frame interval.
pub const IDLE_SLEEP: Duration = Duration::from_micros(200);

/// Flush + reclaim attempts when no frame is free before the release is cut short.
const ALLOC_RETRIES: u32 = 64;

/// Upper bound on iterations of the final drain (pending frames at exit).
const DRAIN_ROUNDS: u32 = 10_000;

/// A monotonic nanosecond clock anchored at construction (`CLOCK_MONOTONIC` through `Instant`,
/// which spins with p99 error 0.38 µs on the dev VM, docs/measurements.md §pacing).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Busy-wait until `until_ns` (bounded: the target is at most one spin threshold ahead).
    pub fn spin_until(&self, until_ns: u64) -> u64 {
        loop {
            let now = self.now_ns();
            if now >= until_ns {
                return now;
            }
            std::hint::spin_loop();
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// What the tile sends.
pub trait Source {
    /// What is queued now (packets and bytes) — the pacer's input.
    fn backlog(&self) -> Backlog;
    /// Write the next packet's UDP payload into `buf`; its length and destination. `None`: the
    /// backlog was empty after all.
    fn fill(&mut self, buf: &mut [u8]) -> Option<(usize, SocketAddr)>;
    /// A release scheduled at `scheduled_ns` went at `actual_ns` with `packets` packets.
    fn on_release(&mut self, _scheduled_ns: u64, _actual_ns: u64, _packets: u32) {}
    /// Nothing more will ever be queued: the tile stops once the backlog is sent.
    fn finished(&self) -> bool;
}

/// Tile configuration.
#[derive(Debug, Clone)]
pub struct TileConfig {
    /// Core to pin the thread to (`None`: no pinning).
    pub core: Option<usize>,
    pub pacer: PacerConfig,
    /// Stop at this age of the run at the latest (`None`: only on shutdown or a finished source).
    pub max_run: Option<Duration>,
}

/// Tile-local counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TileCounters {
    pub releases: u64,
    pub packets: u64,
    pub bytes: u64,
    pub kicks: u64,
    pub spins: u64,
    pub sleeps: u64,
    /// Releases cut short because no frame was free.
    pub alloc_stalls: u64,
    pub submit_errors: u64,
    /// Largest (actual − scheduled) of a release, ns.
    pub max_late_ns: u64,
}

/// State shared with other threads: the shutdown flag and the published counters.
#[derive(Debug, Default)]
pub struct Shared {
    shutdown: AtomicBool,
    packets: AtomicU64,
    bytes: AtomicU64,
    kicks: AtomicU64,
    alloc_stalls: AtomicU64,
}

impl Shared {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    pub fn request_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
    }
    pub fn shutdown_requested(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }
    /// Published (packets, bytes, kicks, alloc stalls).
    pub fn published(&self) -> (u64, u64, u64, u64) {
        (
            self.packets.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.kicks.load(Ordering::Relaxed),
            self.alloc_stalls.load(Ordering::Relaxed),
        )
    }
    fn publish(&self, c: &TileCounters) {
        self.packets.store(c.packets, Ordering::Relaxed);
        self.bytes.store(c.bytes, Ordering::Relaxed);
        self.kicks.store(c.kicks, Ordering::Relaxed);
        self.alloc_stalls.store(c.alloc_stalls, Ordering::Relaxed);
    }
}

fn kick(q: &mut dyn TxQueue, c: &mut TileCounters) -> Result<(), NetError> {
    q.flush()?;
    q.reclaim()?;
    c.kicks += 1;
    Ok(())
}

/// Run the tile loop on the calling thread until shutdown, a finished source or the deadline.
pub fn run<S: Source + ?Sized>(
    q: &mut dyn TxQueue,
    src: &mut S,
    cfg: &TileConfig,
    shared: &Shared,
    clock: &Clock,
) -> Result<TileCounters, NetError> {
    let mut c = TileCounters::default();
    let start = clock.now_ns();
    let deadline = cfg.max_run.map_or(u64::MAX, |d| {
        start.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    });
    let mut pacer = Pacer::new(cfg.pacer, start);
    let mut next_hk = start + HOUSEKEEPING_NS;
    let mut held = 0usize;
    loop {
        let now = clock.now_ns();
        if shared.shutdown_requested() || now >= deadline {
            break;
        }
        if now >= next_hk {
            q.reclaim()?;
            shared.publish(&c);
            next_hk = now + HOUSEKEEPING_NS;
        }
        let Some(rel) = pacer.next_release(now, src.backlog()) else {
            if held > 0 {
                kick(q, &mut c)?;
                held = 0;
            }
            if src.finished() {
                break;
            }
            std::thread::sleep(IDLE_SLEEP);
            continue;
        };
        let actual = match wait_plan(now, rel.at_ns) {
            Wait::Now => now,
            Wait::Spin { until_ns } => {
                c.spins += 1;
                clock.spin_until(until_ns)
            }
            Wait::Sleep { for_ns } => {
                c.sleeps += 1;
                if held > 0 {
                    kick(q, &mut c)?; // never hold frames across a sleep
                    held = 0;
                }
                std::thread::sleep(Duration::from_nanos(for_ns));
                continue;
            }
        };
        let mut sent = 0u32;
        let mut bytes = 0u64;
        for _ in 0..rel.packets {
            let mut frame = q.alloc();
            let mut tries = 0;
            while frame.is_none() && tries < ALLOC_RETRIES {
                kick(q, &mut c)?;
                held = 0;
                frame = q.alloc();
                tries += 1;
            }
            let Some(f) = frame else {
                c.alloc_stalls += 1;
                break;
            };
            let Some((len, dest)) = src.fill(q.payload_mut(&f)) else {
                q.abandon(f);
                break;
            };
            match q.submit(f, len, dest) {
                Ok(()) => {
                    sent += 1;
                    bytes += len as u64;
                    held += 1;
                }
                Err(_) => c.submit_errors += 1,
            }
        }
        pacer.on_sent(actual, sent, bytes);
        src.on_release(rel.at_ns, actual, sent);
        c.releases += 1;
        c.packets += u64::from(sent);
        c.bytes += bytes;
        c.max_late_ns = c.max_late_ns.max(actual.saturating_sub(rel.at_ns));
        let next = pacer.next_release(actual, src.backlog()).map(|r| r.at_ns);
        if should_kick(actual, held, next) {
            kick(q, &mut c)?;
            held = 0;
        }
    }
    for _ in 0..DRAIN_ROUNDS {
        if q.pending() == 0 {
            break;
        }
        kick(q, &mut c)?;
    }
    q.reclaim()?;
    shared.publish(&c);
    Ok(c)
}

/// Pin the calling thread to `core`; returns whether the kernel accepted it.
pub fn pin_current(core: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: core })
}

/// Spawn the tile on its own thread (pinned to `cfg.core` if set). The join handle returns the
/// counters, the queue and the source, so the caller can read their final state.
pub fn spawn<S: Source + Send + 'static>(
    mut q: Box<dyn TxQueue + Send>,
    mut src: S,
    cfg: TileConfig,
    shared: Arc<Shared>,
) -> std::io::Result<std::thread::JoinHandle<TileResult<S>>> {
    std::thread::Builder::new()
        .name("strahl-tx".into())
        .spawn(move || {
            if let Some(core) = cfg.core
                && !pin_current(core)
            {
                log::warn!("tx tile: could not pin to core {core}; running unpinned");
            }
            let clock = Clock::new();
            let r = run(q.as_mut(), &mut src, &cfg, &shared, &clock);
            (r, q, src)
        })
}

/// What a spawned tile returns.
pub type TileResult<S> = (Result<TileCounters, NetError>, Box<dyn TxQueue + Send>, S);
