//! `emit`: packets/s, Gbit/s and sender CPU per packet of every transport, 1400-byte payloads,
//! over a veth pair between two namespaces (created and removed here, one run per case).
//!
//! Method: one sender thread pinned to core 1 sends as fast as it can for [`RUN`] (quick:
//! [`QUICK_RUN`]) into the other namespace, where an XDP program drops the datagrams
//! (`strahl-net`'s loss program at probability 1): that measures the **sender's** cost, as with
//! a real NIC whose receiver is another machine (on veth without XDP the receive stack would run
//! on the sender's core, docs/measurements.md §batching). CPU is the sender thread's own time from
//! `/proc/thread-self/schedstat` (ns), so CPU/packet includes the syscalls and the kernel TX
//! path. Each case runs [`RUNS`] times; the JSON has the median and every run.
//! Not root: prints JSON saying the bench was skipped and why (exit 0).

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strahl_net::mmsg::{MmsgConfig, MmsgTx};
use strahl_net::testbed::{self, ADDR_A, ADDR_B, VethPair, in_netns};
use strahl_net::uring::{UringConfig, UringTx};
use strahl_net::{NetError, TxQueue};

use crate::Options;
use crate::report::Plot;

const PAYLOAD: usize = 1400;
const PORT: u16 = 47_996;
const RUN: Duration = Duration::from_millis(1000);
const QUICK_RUN: Duration = Duration::from_millis(150);
const RUNS: usize = 3;
/// Segments per GSO train: 46 × 1400 B stays under the 64 KiB datagram limit (§3).
const GSO_SEGMENTS: usize = 46;
const SENDER_CORE: usize = 1;

/// Sender CPU time of the calling thread, ns (`/proc/thread-self/schedstat`, first field).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

struct Sample {
    packets: u64,
    secs: f64,
    cpu_ns: u64,
}

enum Sender {
    Queue(Box<dyn TxQueue + Send>),
    Plain(UdpSocket),
}

fn blast(sender: &mut Sender, dest: SocketAddr, run: Duration) -> Result<Sample, String> {
    let _ = core_affinity::set_for_current(core_affinity::CoreId { id: SENDER_CORE });
    let cpu0 = thread_cpu_ns();
    let start = Instant::now();
    let mut seq = 0u64;
    let mut buf = [0x5au8; PAYLOAD];
    match sender {
        Sender::Plain(sock) => {
            while start.elapsed() < run {
                for _ in 0..64 {
                    buf[..8].copy_from_slice(&seq.to_be_bytes());
                    if sock.send_to(&buf, dest).is_ok() {
                        seq += 1;
                    }
                }
            }
        }
        Sender::Queue(q) => {
            let err = |e: NetError| e.to_string();
            while start.elapsed() < run {
                for _ in 0..64 {
                    let Some(f) = q.alloc() else { break };
                    let p = q.payload_mut(&f);
                    p[..8].copy_from_slice(&seq.to_be_bytes());
                    q.submit(f, PAYLOAD, dest).map_err(|e| e.to_string())?;
                    seq += 1;
                }
                q.flush().map_err(err)?;
                q.reclaim().map_err(err)?;
            }
            for _ in 0..10_000 {
                if q.pending() == 0 {
                    break;
                }
                q.flush().map_err(err)?;
                q.reclaim().map_err(err)?;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu_ns = thread_cpu_ns().saturating_sub(cpu0);
    let packets = match sender {
        Sender::Plain(_) => seq,
        Sender::Queue(q) => q.counters().sent_packets,
    };
    Ok(Sample {
        packets,
        secs,
        cpu_ns,
    })
}

type Make = fn(&VethPair) -> Result<(Sender, String), String>;

fn kernel_sock(pair: &VethPair) -> Result<UdpSocket, String> {
    in_netns(&pair.ns_a, || UdpSocket::bind((ADDR_A, 0)))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

fn mmsg(pair: &VethPair, gso: usize) -> Result<(Sender, String), String> {
    let c = MmsgConfig {
        gso_segments: gso,
        frame_payload: PAYLOAD,
        ..Default::default()
    };
    let q = MmsgTx::new(kernel_sock(pair)?, c).map_err(|e| e.to_string())?;
    let mode = format!("batch 64, gso {}", q.gso_segments());
    Ok((Sender::Queue(Box::new(q)), mode))
}

fn uring(pair: &VethPair, gso: usize) -> Result<(Sender, String), String> {
    let c = UringConfig {
        zero_copy: false,
        gso_segments: gso,
        frame_payload: PAYLOAD,
        ..Default::default()
    };
    let q = UringTx::new(kernel_sock(pair)?, c).map_err(|e| e.to_string())?;
    let m = q.mode();
    let mode = format!(
        "Send{}, gso {}",
        if m.registered_buffers {
            " + registered buffers"
        } else {
            ""
        },
        m.gso_segments
    );
    Ok((Sender::Queue(Box::new(q)), mode))
}

fn xdp(pair: &VethPair, zero_copy: bool) -> Result<(Sender, String), String> {
    let ifa = pair.if_a.clone();
    let q = in_netns(&pair.ns_a, move || {
        let mut plan = strahl_net::xdp::XdpPlan::new(&ifa, 0, 4096, PAYLOAD, 40_000);
        plan.zero_copy = zero_copy;
        let mut tx = strahl_net::xdp::XdpTx::new(plan).map_err(|e| e.to_string())?;
        tx.add_destination(SocketAddrV4::new(ADDR_B, PORT))
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(tx)
    })
    .map_err(|e| e.to_string())??;
    let mode = match q.bind_mode() {
        strahl_net::xdp::BindMode::ZeroCopy => "zero-copy".to_string(),
        strahl_net::xdp::BindMode::Copy { zero_copy_errno: 0 } => "copy".to_string(),
        strahl_net::xdp::BindMode::Copy { zero_copy_errno: e } => format!(
            "copy (zero-copy refused: {})",
            std::io::Error::from_raw_os_error(e)
        ),
    };
    if zero_copy && !matches!(q.bind_mode(), strahl_net::xdp::BindMode::ZeroCopy) {
        return Err(format!("zero-copy mode does not work here: {mode}"));
    }
    Ok((Sender::Queue(Box::new(q)), mode))
}

const CASES: [(&str, Make); 7] = [
    ("af_xdp zero-copy", |p| xdp(p, true)),
    ("af_xdp copy", |p| xdp(p, false)),
    ("io_uring", |p| uring(p, 0)),
    ("io_uring+gso", |p| uring(p, GSO_SEGMENTS)),
    ("sendmmsg", |p| mmsg(p, 0)),
    ("sendmmsg+gso", |p| mmsg(p, GSO_SEGMENTS)),
    ("send", |p| {
        kernel_sock(p).map(|s| (Sender::Plain(s), "send_to per packet".into()))
    }),
];

/// Attach the drop program on side B; the value keeps it attached.
fn drop_peer(pair: &VethPair) -> Result<strahl_net::bpf::LossProgram, String> {
    let ifb = pair.if_b.clone();
    in_netns(&pair.ns_b, move || {
        let mut l = strahl_net::bpf::LossProgram::load().map_err(|e| e.to_string())?;
        let cfg = strahl_net::bpf::LossConfig {
            probability: 1.0,
            udp_port: PORT,
            ..Default::default()
        };
        l.configure(&cfg).map_err(|e| e.to_string())?;
        l.attach(testbed::ifindex(&ifb).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        Ok(l)
    })
    .map_err(|e| e.to_string())?
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub fn run(opts: &Options) -> Result<Value, String> {
    if let Err(why) = testbed::check_privileges() {
        return Ok(json!({
            "bench": "emit",
            "skipped": format!("needs namespaces and veth: {why}"),
            "results": [],
        }));
    }
    let (run, runs) = if opts.quick {
        (QUICK_RUN, 1)
    } else {
        (RUN, RUNS)
    };
    let dest = SocketAddr::V4(SocketAddrV4::new(ADDR_B, PORT));
    let mut results = Vec::new();
    let mut refused = Vec::new();
    let mut plot = Plot::new(
        "Sender cost per transport (1400 B over veth, XDP_DROP peer)",
        "case",
        "packets/s (millions)",
    );
    let mut pts = Vec::new();
    for (i, (name, make)) in CASES.iter().enumerate() {
        let mut pps = Vec::new();
        let mut cpu = Vec::new();
        let mut mode = String::new();
        let mut failure = None;
        for _ in 0..runs {
            let pair = VethPair::create("emt").map_err(|e| e.to_string())?;
            let _drop = drop_peer(&pair)?;
            let (mut s, m) = match make(&pair) {
                Ok(x) => x,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            mode = m;
            let r = std::thread::scope(|sc| sc.spawn(|| blast(&mut s, dest, run)).join())
                .map_err(|_| "sender panicked".to_string())??;
            pps.push(r.packets as f64 / r.secs);
            cpu.push(r.cpu_ns as f64 / r.packets.max(1) as f64);
        }
        if let Some(why) = failure {
            refused.push(json!({"case": name, "why": why}));
            continue;
        }
        let p = median(pps.clone());
        pts.push((i as f64, p / 1e6));
        results.push(json!({
            "case": name,
            "mode": mode,
            "pps_median": p.round(),
            "gbit_s_payload": p * PAYLOAD as f64 * 8.0 / 1e9,
            "cpu_ns_per_packet_median": median(cpu.clone()).round(),
            "pps_runs": pps.iter().map(|x| x.round()).collect::<Vec<_>>(),
            "cpu_ns_per_packet_runs": cpu.iter().map(|x| x.round()).collect::<Vec<_>>(),
        }));
    }
    let get = |n: &str| {
        results
            .iter()
            .find(|r| r["case"] == n)
            .and_then(|r| r["pps_median"].as_f64())
    };
    let ratio = match (
        get("af_xdp copy").or(get("af_xdp zero-copy")),
        get("sendmmsg"),
    ) {
        (Some(x), Some(m)) if m > 0.0 => Some(x / m),
        _ => None,
    };
    plot.series("median packets/s", pts);
    if let Some(path) = &opts.plot {
        plot.write(path)?;
    }
    Ok(json!({
        "bench": "emit",
        "payload_bytes": PAYLOAD,
        "run_s": run.as_secs_f64(),
        "runs": runs,
        "peer": "XDP_DROP on the veth peer (sender cost only)",
        "sender_core": SENDER_CORE,
        "results": results,
        "refused": refused,
        "af_xdp_over_sendmmsg": ratio,
        "note": "shared, noisy 2-core VM: medians of the runs; compare ratios, not absolutes",
    }))
}
