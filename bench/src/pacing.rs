//! `pacing`: how close to its schedule each release goes at 100 k pkt/s (1400-byte payloads),
//! our tx tile (`strahl-runtime`: pacer + spin/sleep plan, one sendmmsg kick per release) vs a
//! sleep-based pacer as the peers do it (16-packet bursts, `thread::sleep` until the next burst).
//!
//! Error of a release = |time the tile handed it to the transport − its scheduled time|:
//! - tile: the pacer's release time (`Release::at_ns`);
//! - sleep pacer: packet i is scheduled at t0 + i × 10 µs; all 16 of a burst go when the thread
//!   wakes.
//!
//! The JSON also has the gaps between consecutive packets (p1/p50/p99): the burst pacer's
//! in-burst gaps are near 0 by design; the tile's stay near the 10 µs period.
//!
//! Both pinned to core 1, same transport (sendmmsg on loopback to a bound, undrained socket, so
//! no root is needed). Full: [`PACKETS`] packets (2 s) × [`RUNS`] runs; medians of the per-run
//! percentiles.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use serde_json::{Value, json};
use strahl_net::TxQueue;
use strahl_net::mmsg::{MmsgConfig, MmsgTx};
use strahl_pacer::{Backlog, PacerConfig};
use strahl_runtime::tile::{self, Clock, Shared, Source, TileConfig};

use crate::Options;
use crate::report::Plot;

const RATE_PPS: u64 = 100_000;
const PAYLOAD: usize = 1400;
const PACKETS: u64 = 200_000;
const QUICK_PACKETS: u64 = 20_000;
const RUNS: usize = 3;
const BURST: u64 = 16;
const CORE: usize = 1;
const PERIOD_NS: u64 = 1_000_000_000 / RATE_PPS;

struct Recorder {
    next: u64,
    total: u64,
    dest: SocketAddr,
    errors_ns: Vec<u64>,
    sent_at_ns: Vec<u64>,
}

impl Source for Recorder {
    fn backlog(&self) -> Backlog {
        let left = self.total - self.next;
        Backlog {
            packets: left,
            bytes: left * PAYLOAD as u64,
        }
    }
    fn fill(&mut self, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        if self.next >= self.total {
            return None;
        }
        buf[..8].copy_from_slice(&self.next.to_be_bytes());
        self.next += 1;
        Some((PAYLOAD, self.dest))
    }
    fn on_release(&mut self, scheduled_ns: u64, actual_ns: u64, packets: u32) {
        let e = actual_ns.abs_diff(scheduled_ns);
        for _ in 0..packets {
            if self.errors_ns.len() < self.errors_ns.capacity() {
                self.errors_ns.push(e);
                self.sent_at_ns.push(actual_ns);
            }
        }
    }
    fn finished(&self) -> bool {
        true
    }
}

fn sockets() -> Result<(UdpSocket, UdpSocket), String> {
    let rx = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let tx = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok((tx, rx))
}

fn queue(sock: UdpSocket) -> Result<MmsgTx, String> {
    let c = MmsgConfig {
        frame_payload: PAYLOAD,
        ..Default::default()
    };
    MmsgTx::new(sock, c).map_err(|e| e.to_string())
}

/// Per packet: |release − schedule| and the time it was handed to the transport (ns).
type Trace = (Vec<u64>, Vec<u64>);

fn run_tile(n: u64) -> Result<Trace, String> {
    let (tx, rx) = sockets()?;
    let dest = rx.local_addr().map_err(|e| e.to_string())?;
    let q = queue(tx)?;
    let mut pacer = PacerConfig::new(RATE_PPS * PAYLOAD as u64 * 8);
    // One packet of bucket depth (the floor is MIN_BURST_BYTES): release one by one.
    pacer.burst_ns = PERIOD_NS;
    let cfg = TileConfig {
        core: Some(CORE),
        pacer,
        max_run: Some(Duration::from_secs(30)),
    };
    let src = Recorder {
        next: 0,
        total: n,
        dest,
        errors_ns: Vec::with_capacity(n as usize),
        sent_at_ns: Vec::with_capacity(n as usize),
    };
    let h = tile::spawn(Box::new(q), src, cfg, Shared::new()).map_err(|e| e.to_string())?;
    let (r, _q, src) = h.join().map_err(|_| "tile panicked".to_string())?;
    r.map_err(|e| e.to_string())?;
    drop(rx);
    Ok((src.errors_ns, src.sent_at_ns))
}

fn run_sleep(n: u64) -> Result<Trace, String> {
    let (tx, rx) = sockets()?;
    let dest = rx.local_addr().map_err(|e| e.to_string())?;
    let mut q = queue(tx)?;
    let errors = std::thread::scope(|s| {
        s.spawn(|| {
            let _ = core_affinity::set_for_current(core_affinity::CoreId { id: CORE });
            let clock = Clock::new();
            let mut errors = Vec::with_capacity(n as usize);
            let mut sent_at = Vec::with_capacity(n as usize);
            let t0 = clock.now_ns();
            let mut i = 0u64;
            while i < n {
                let due = t0 + i * PERIOD_NS;
                let now = clock.now_ns();
                if due > now {
                    std::thread::sleep(Duration::from_nanos(due - now));
                }
                let actual = clock.now_ns();
                let burst = BURST.min(n - i);
                for k in 0..burst {
                    let Some(f) = q.alloc() else { break };
                    q.payload_mut(&f)[..8].copy_from_slice(&(i + k).to_be_bytes());
                    let _ = q.submit(f, PAYLOAD, dest);
                    errors.push(actual.abs_diff(t0 + (i + k) * PERIOD_NS));
                    sent_at.push(actual);
                }
                let _ = q.flush();
                let _ = q.reclaim();
                i += burst;
            }
            (errors, sent_at)
        })
        .join()
    })
    .map_err(|_| "sleep pacer panicked".to_string())?;
    drop(rx);
    Ok(errors)
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run(opts: &Options) -> Result<Value, String> {
    let (n, runs) = if opts.quick {
        (QUICK_PACKETS, 1)
    } else {
        (PACKETS, RUNS)
    };
    let mut plot = Plot::new(
        "Release error at 100k pkt/s (CDF)",
        "|release - schedule| (µs)",
        "fraction of packets",
    );
    let mut out = serde_json::Map::new();
    let mut p99s = Vec::new();
    for (name, f) in [
        ("tx_tile", run_tile as fn(u64) -> Result<Trace, String>),
        ("sleep_16_burst", run_sleep),
    ] {
        let mut per_run = Vec::new();
        let mut last = Vec::new();
        let mut gap_runs = Vec::new();
        for _ in 0..runs {
            let (mut e, at) = f(n)?;
            e.sort_unstable();
            let mut gaps: Vec<u64> = at.windows(2).map(|w| w[1].saturating_sub(w[0])).collect();
            gaps.sort_unstable();
            per_run.push([pct(&e, 0.5), pct(&e, 0.99), pct(&e, 0.999), pct(&e, 1.0)]);
            gap_runs.push([pct(&gaps, 0.01), pct(&gaps, 0.5), pct(&gaps, 0.99)]);
            last = e;
        }
        let col = |k: usize| median(per_run.iter().map(|r| r[k]).collect());
        p99s.push(col(1));
        let gap_cols: Vec<f64> = (0..3)
            .map(|k| median(gap_runs.iter().map(|r: &[f64; 3]| r[k]).collect()))
            .collect();
        let steps = 200;
        let pts = (0..=steps)
            .map(|s| {
                let frac = s as f64 / steps as f64;
                (pct(&last, frac), frac)
            })
            .collect();
        plot.series(name, pts);
        out.insert(
            name.into(),
            json!({
                "packets": last.len(),
                "p50_us": col(0), "p99_us": col(1), "p99_9_us": col(2), "max_us": col(3),
                "runs_p50_p99_p999_max_us": per_run,
                "gap_p1_p50_p99_us": gap_cols,
            }),
        );
    }
    if let Some(path) = &opts.plot {
        plot.write(path)?;
    }
    out.insert("bench".into(), json!("pacing"));
    out.insert("rate_pps".into(), json!(RATE_PPS));
    out.insert("runs".into(), json!(runs));
    out.insert("packets_per_run".into(), json!(n));
    out.insert(
        "sleep_over_tile_p99".into(),
        json!(p99s[1] / p99s[0].max(1e-3)),
    );
    out.insert(
        "note".into(),
        json!("shared, noisy 2-core VM, no isolcpus: medians of per-run percentiles"),
    );
    Ok(Value::Object(out))
}
