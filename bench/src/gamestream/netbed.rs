//! `gamestream --netns`: the stream across a veth between two network namespaces, once per
//! transport (see the module header of `gamestream` for what is measured and how).
//!
//! Test bed: strahl-net's [`VethPair`] (two namespaces, one veth with one queue per side,
//! 10.201.0.1 host / 10.201.0.2 client, removed on drop even on error), plus what a LAN gives
//! an appliance: a default route on each side via the other (the data plane's `interface =
//! "auto"` then picks the veth) and IPv6 off on both veths (no router solicitations in the
//! capture). Nothing is reachable outside the two namespaces.
//!
//! Order: every stream is made first; then for each transport, for each rate: strahl starts in
//! the host namespace with `[dataplane] transport` set and that rate's stream, the client (paired
//! once, on the first host: the state directory is shared) runs `--runs` measured runs with the
//! receive-side capture, strahl stops. A transport the data plane refuses (a named transport is
//! fatal when refused) fails the bench with the host's log: the JSON never silently reports
//! another transport's figures.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use strahl_net::testbed::{self, ADDR_A, ADDR_B, VethPair};

use super::host::{Host, HostConfig, NetPlace, Paths};
use super::{
    Args, FEC_PERCENT, PACKET_SIZE, capacity_notes, medians, one_run, pair, prepare, transport_log,
};
use crate::report::Plot;

/// Scratch directory (shared state, client identity) removed on drop.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The client veth's receive processing (`rps_cpus`) on every CPU but the last, where the data
/// plane pins its tx tile (`strahl_config::Plan`: the last core when there are two or more). A
/// veth hands each packet to its peer inside the sender's system call, so without this the
/// client's whole receive stack (IP, UDP, the capture's AF_PACKET tap, waking the client) ran on
/// the tx core inside the tile's send call, counted as data-plane CPU and delaying the next
/// release; on a LAN that work happens on another machine. Receive timestamps are unchanged:
/// the kernel stamps a packet before it queues it to another CPU (`netdev_tstamp_prequeue`).
/// On one CPU there is nowhere else to go and nothing is written.
pub(crate) fn steer_client_receive(bed: &VethPair) -> Result<Option<String>, String> {
    let cpus = super::host::client_cpus();
    if cpus.is_empty() {
        return Ok(None);
    }
    let online = cpus.len() + 1;
    // rps_cpus is a hex mask in 32-bit groups separated by commas, most significant first.
    let mut words = vec![0u32; online.div_ceil(32)];
    for c in &cpus {
        words[c / 32] |= 1 << (c % 32);
    }
    let mask = words
        .iter()
        .rev()
        .map(|w| format!("{w:08x}"))
        .collect::<Vec<_>>()
        .join(",");
    ip(&[
        "netns",
        "exec",
        &bed.ns_b,
        "sh",
        "-c",
        "printf %s \"$2\" > \"/sys/class/net/$1/queues/rx-0/rps_cpus\"",
        "sh",
        &bed.if_b,
        &mask,
    ])?;
    Ok(Some(format!(
        "client veth receive processing steered to CPUs {cpus:?} (rps_cpus {mask}), off the tx tile's core {}",
        online - 1
    )))
}

/// Default routes both ways and IPv6 off on both veths.
pub(crate) fn configure(bed: &VethPair) -> Result<(), String> {
    for (ns, ifname) in [(&bed.ns_a, &bed.if_a), (&bed.ns_b, &bed.if_b)] {
        ip(&[
            "netns",
            "exec",
            ns,
            "sh",
            "-c",
            "printf 1 > \"/proc/sys/net/ipv6/conf/$1/disable_ipv6\"",
            "sh",
            ifname,
        ])?;
    }
    ip(&[
        "-n",
        &bed.ns_a,
        "route",
        "add",
        "default",
        "via",
        &ADDR_B.to_string(),
        "dev",
        &bed.if_a,
    ])?;
    ip(&[
        "-n",
        &bed.ns_b,
        "route",
        "add",
        "default",
        "via",
        &ADDR_A.to_string(),
        "dev",
        &bed.if_b,
    ])
}

/// The median over `runs` of the number at `path` (keys into nested objects).
fn med_at(runs: &[Value], path: &[&str]) -> Value {
    let mut v: Vec<f64> = runs
        .iter()
        // Indexing a JSON value never fails (a missing key is null, which as_f64 skips).
        .filter_map(|r| path.iter().fold(r, |x, k| &x[*k]).as_f64())
        .collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => Value::Null,
        n if n % 2 == 1 => json!(v[n / 2]),
        n => json!((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

pub(super) fn run(a: &Args) -> Result<Value, String> {
    if let Err(why) = testbed::check_privileges() {
        // Reported, not failed: the loopback bench needs no root, this one does.
        return Ok(json!({
            "bench": "gamestream",
            "netns": true,
            "skipped": format!("--netns {why}"),
        }));
    }
    let paths = Paths::discover(a.bin_dir.clone())?;
    let prepared = prepare(&paths, a)?;
    let bed = VethPair::create("gsb").map_err(|e| format!("namespace test bed: {e}"))?;
    configure(&bed)?;
    let steering = steer_client_receive(&bed)?;
    let place = NetPlace {
        host_ns: bed.ns_a.clone(),
        host_addr: ADDR_A,
        client_ns: bed.ns_b.clone(),
        client_if: bed.if_b.clone(),
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let scratch = Scratch(
        std::env::temp_dir().join(format!("strahl-bench-netns-{}-{nanos}", std::process::id())),
    );
    let state = scratch.0.join("state");
    let client_dir = scratch.0.join("client");
    std::fs::create_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;
    let mut paired = false;
    let mut results = Vec::new();
    for transport in &a.transports {
        for p in &prepared {
            let host = Host::start(
                &paths,
                &HostConfig {
                    stream_file: Some(&p.file),
                    max_bitrate_kbps: None,
                    mtu: None,
                    realtime_priority: a.realtime,
                    fec_percent: FEC_PERCENT,
                    extra_toml: "",
                    transport: Some(transport),
                    state_dir: Some(&state),
                    net: Some(&place),
                },
            )
            .map_err(|e| format!("strahl with transport {transport}: {e}"))?;
            if !paired {
                pair(&paths, &host, &client_dir, Some(&place.client_ns))?;
                paired = true;
            }
            let mut runs = Vec::new();
            for k in 0..a.runs {
                let r = one_run(&paths, &host, &client_dir, a, p.rate, p.fps, Some(&place))?;
                eprintln!(
                    "gamestream --netns: {transport} {} Mbit/s run {}: {} frames received, {} lost, \
                     {:.1} Mbit/s, gap error p99 {} µs",
                    p.rate,
                    k + 1,
                    r["frames_received"],
                    r["frames_lost"],
                    r["achieved_mbps"].as_f64().unwrap_or(0.0),
                    r["receiver"]["pacing"]["ipg_error_us"]["p99_us"]
                );
                runs.push(r);
            }
            let log = transport_log(&host);
            drop(host);
            let mut r = p.json(a);
            r["transport"] = json!(transport);
            r["transport_log"] = json!(log);
            let mut m = medians(&runs);
            let pacing = |q: &str| med_at(&runs, &["receiver", "pacing", "ipg_error_us", q]);
            let centred = |q: &str| med_at(&runs, &["receiver", "pacing", "offset_removed", q]);
            m["ipg_error_us"] = json!({
                "p50": pacing("p50_us"), "p99": pacing("p99_us"), "p999": pacing("p999_us"),
                "max": pacing("max_us"),
            });
            m["ipg_error_offset_removed_us"] = json!({
                "p50": centred("p50_us"), "p99": centred("p99_us"), "p999": centred("p999_us"),
            });
            m["frames_without_fec_received"] =
                med_at(&runs, &["receiver", "pacing", "frames_without_fec"]);
            m["frames_scored"] = med_at(&runs, &["receiver", "pacing", "frames_scored"]);
            m["capture_socket_drops"] = med_at(&runs, &["receiver", "capture_socket_drops"]);
            for t in super::TRANSPORTS {
                let key = format!("media_packets_{t}");
                m[&key] = med_at(&runs, &["host_counters_session", &key]);
            }
            r["median"] = m;
            r["runs"] = Value::Array(runs);
            results.push(r);
        }
    }
    drop(bed);
    let doc = json!({
        "bench": "gamestream",
        "client": "moonlight-python 0.3.0 (moonlight-common-c), pull without decoding",
        "loopback": false,
        "netns": {
            "topology": "host and client network namespaces joined by one veth (one queue per side); \
                         default routes both ways; strahl in the host namespace with interface \"auto\"",
            "host": ADDR_A.to_string(),
            "client": ADDR_B.to_string(),
            "client_receive_steering": steering,
        },
        "transports": a.transports,
        "pacing_schedule": {
            "spread_permille": strahl_pacer::DEFAULT_SPREAD_PERMILLE,
            "link_mbps": a.link_mbps,
            "realtime_priority": a.realtime,
            "definition": "per complete frame: |arrival of packet k - (arrival of packet 0 + k * wire bits / \
                           the pacer's spread rate)|, k >= 1; kernel receive timestamps on the client's veth \
                           (bench/src/gamestream/ipg.rs)",
        },
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "fec_percent": FEC_PERCENT,
        "packet_size": PACKET_SIZE,
        "notes": capacity_notes(a),
        "results": results,
    });
    if let Some(dir) = &a.out {
        write_outputs(dir, &doc, a)?;
    }
    Ok(doc)
}

fn write_outputs(dir: &std::path::Path, doc: &Value, a: &Args) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let json_path = dir.join("gamestream-netns.json");
    let text = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())?;
    std::fs::write(&json_path, text).map_err(|e| format!("{}: {e}", json_path.display()))?;
    let res = doc["results"].as_array().cloned().unwrap_or_default();
    // One series per transport of `f(result)` against the target rate.
    let per_transport = |plot: &mut Plot, label: &str, f: &dyn Fn(&Value) -> Option<f64>| {
        for t in &a.transports {
            let pts: Vec<(f64, f64)> = res
                .iter()
                .filter(|r| r["transport"] == t.as_str())
                .filter_map(|r| Some((r["rate_mbps"].as_f64()?, f(r)?)))
                .collect();
            plot.series(&format!("{t} {label}"), pts);
        }
    };
    let mut rate = Plot::new(
        "strahl → Moonlight core across a veth (GameStream, 20 % FEC, P = 1392)",
        "target Mbit/s",
        "video Mbit/s received (median)",
    );
    rate.series(
        "target",
        a.rates
            .iter()
            .map(|&r| (f64::from(r), f64::from(r)))
            .collect(),
    );
    per_transport(&mut rate, "received", &|r| {
        r["median"]["achieved_mbps"].as_f64()
    });
    rate.write(&dir.join("gamestream-netns.svg"))?;
    let mut gap = Plot::new(
        "Inter-packet gap error at the receiver vs the pacer's schedule (medians of runs)",
        "target Mbit/s",
        "|actual − ideal| µs",
    );
    per_transport(&mut gap, "p99", &|r| {
        r["median"]["ipg_error_us"]["p99"].as_f64()
    });
    per_transport(&mut gap, "p50", &|r| {
        r["median"]["ipg_error_us"]["p50"].as_f64()
    });
    gap.write(&dir.join("gamestream-netns-pacing.svg"))?;
    let mut cost = Plot::new(
        "Data-plane CPU per Gbit of video, per transport (medians)",
        "target Mbit/s",
        "CPU s per Gbit",
    );
    per_transport(&mut cost, "CPU s/Gbit", &|r| {
        r["median"]["dataplane_cpu_s_per_gbit"].as_f64()
    });
    cost.write(&dir.join("gamestream-netns-cost.svg"))
}
