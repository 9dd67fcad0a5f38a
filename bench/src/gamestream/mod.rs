//! `gamestream`: a high-rate H.264 stream (`--codec hevc|av1`: HEVC or AV1, [`ffclip`]) through
//! strahl to the real Moonlight core on loopback.
//!
//! Per rate R (Mbit/s): a pre-encoded stream ([`stream`]: OpenH264, fixed QP, fresh noise per
//! frame, mean AU = R / 8 / fps, an IDR every 60 AUs) is replayed by the data plane's
//! passthrough source at fps; strahl runs as the README starts it ([`host`]: `scripts/run.sh`
//! with a temp config — passthrough, FEC fixed at [`FEC_PERCENT`] %); the Moonlight core
//! (`crates/test/moonlight/driver.py`) pairs through `strahl-control pin`, launches at WxH@fps with
//! R as the bitrate (packet size 1392), pulls frames without decoding and counts them over a
//! measurement window after a warm-up.
//!
//! Reported per rate (each figure the median over `--runs`, every run kept in the JSON):
//! frames sent (frame-number span the client saw in the window, and the data plane's own
//! counters over the session), received, lost; AUs that needed more than 4 blocks (predicted
//! from the file with the packetizer's planner) and what the data plane did with them (its
//! parity-lowered / refused counters, from the status server's `/metrics`); FEC-recovered
//! packets (client `LiGetRTPVideoStats`); achieved Mbit/s (AU bytes received / window) and on
//! the wire (client-counted packets × 1408 B); data-plane CPU seconds per Gbit
//! (/proc/PID/stat over the window) with the client's CPU, machine-wide CPU and load average
//! next to it (the machine is shared: read the numbers with the load).
//!
//! fps: 60 up to [`MAX_60FPS_MBPS`], 120 above: at 60 fps a 1 Gbit/s frame (≈ 2.08 MB) cannot
//! fit GameStream's 4 × 255 shards at packet size 1392 (at most 4 × 252 data shards × 1376 B ≈
//! 1.39 MB with any FEC) — the JSON says so.
//!
//! `--netns` ([`netbed`]): the same across a veth between two network namespaces the bench
//! creates (strahl in the host namespace, whose default route leads over the veth, so the data
//! plane's `interface = "auto"` is the veth; the Moonlight core in the client namespace), **for
//! each transport** of `--transports` (default af_xdp, io_uring, sendmmsg: strahl restarted
//! with `[dataplane] transport` set, one pairing shared through one state directory), at each
//! rate. Reported per (transport, rate), besides the figures above: frames sent without FEC
//! (measured at the receiver: complete frames without a parity packet; the data plane has no
//! path that sends one — its `strahl_fec_parity_lowered_total` and `strahl_frames_refused_total`
//! say what it did instead), and the **inter-packet gap error at the receiver**:
//! - the host's video packets are captured in the client namespace on its veth with kernel
//!   receive timestamps (AF_PACKET + SO_TIMESTAMPNS, [`rxstamp`]) over the measurement window;
//! - per complete frame, the ideal arrival of packet k (k-th in RTP sequence order) is
//!   `t_first + k × wire_bits / rate`, with `rate` the pacer's own spread rate for that frame
//!   (strahl-pacer, spread mode, `DEFAULT_SPREAD_PERMILLE` = 500: frame wire bits / (0.5 ×
//!   frame interval), capped at `--link-mbps`), `wire_bits` = (IPv4 datagram + 14-byte
//!   Ethernet header) × 8 and `t_first` the arrival of packet 0;
//! - `ipg_error_us` = p50/p99/p99.9 (and max) of |actual − ideal| over every packet k ≥ 1 of
//!   every complete frame; `offset_removed` the same after subtracting each frame's median
//!   signed error. The precise rules (what "complete" means, what is counted) are in [`ipg`].
//!
//! `--quick` (the test suite's smoke run): 8 Mbit/s, 640×360 at 30 fps, 1 s warm-up, 3 s
//! window, one run per rate.

mod args;
mod ffclip;
pub(crate) mod host;
mod ipg;
pub(crate) mod netbed;
mod rxstamp;
mod stream;

pub use args::TRANSPORTS;
use args::{Args, fps_for, parse};

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use strahl_packetize::gamestream::plan;

use crate::report::Plot;
use host::{Host, HostConfig, Paths, run_driver, step};
use stream::Recipe;

/// The FEC percentage the issue asks for (fixed: min = default = max in the temp config).
pub const FEC_PERCENT: u8 = 20;
/// What Moonlight announces on a LAN (§A14).
pub const PACKET_SIZE: usize = 1392;
/// Datagram bytes per shard at [`PACKET_SIZE`]: P + 16.
const DATAGRAM_BYTES: f64 = (PACKET_SIZE + 16) as f64;
/// Above this the mean AU at 60 fps no longer fits 4 blocks at 20 % FEC (4 × 212 × 1376 B ×
/// 8 × 60 ≈ 560 Mbit/s, §A18), so the stream runs at 120 fps.
pub const MAX_60FPS_MBPS: u32 = 560;
/// AUs per stream file: two IDR periods (the file loops on its first IDR).
const STREAM_FRAMES: usize = 2 * stream::IDR_INTERVAL;
/// The control plane polls the data plane's stats every 5 s (its default): waiting this long
/// after the stream ends makes the scraped counters include the whole session.
const STATS_SETTLE: Duration = Duration::from_secs(6);
/// Pairing: RSA key generation in Python plus the five stages.
const PAIR_TIMEOUT: Duration = Duration::from_secs(120);
/// FFmpeg decoding a 120-AU 1080p stream in Python (≈ 5 s here, loaded).
const CHECK_TIMEOUT: Duration = Duration::from_secs(120);
/// Stream start-up beyond warm-up + window: launch, RTSP, ENet, first IDR, teardown.
const STREAM_OVERHEAD: Duration = Duration::from_secs(90);

/// Median of the finite values (None when there are none).
fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Splits a Prometheus series key `name{a="x",b="y"}` into the name and its label pairs.
fn split_key(key: &str) -> (&str, Vec<(&str, &str)>) {
    let Some((name, rest)) = key.split_once('{') else {
        return (key, Vec::new());
    };
    let labels = rest
        .trim_end_matches('}')
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim(), v.trim().trim_matches('"')))
        })
        .collect();
    (name, labels)
}

/// Sum of the data plane's series of `want` (`name` or `name{label="v"}`) in a scrape: every
/// series with that name carrying the wanted labels, and either no `process` label or
/// `process="dataplane"` (the status server merges both processes' registries, told apart by
/// that label). None when no series matches.
fn metric_sum(m: &std::collections::BTreeMap<String, f64>, want: &str) -> Option<f64> {
    let (name, wanted) = split_key(want);
    let vals: Vec<f64> = m
        .iter()
        .filter(|(k, _)| {
            let (n, labels) = split_key(k);
            n == name
                && wanted.iter().all(|w| labels.contains(w))
                && labels
                    .iter()
                    .all(|(lk, lv)| *lk != "process" || *lv == "dataplane")
        })
        .map(|(_, v)| *v)
        .collect();
    (!vals.is_empty()).then(|| vals.iter().sum())
}

/// Data-plane counters that answer the bench's questions, by the names the metrics table
/// declares (first present wins; a renamed metric shows up as null, never as a wrong figure).
const HOST_COUNTERS: &[(&str, &[&str])] = &[
    ("frames_sent", &["strahl_video_frames_sent_total"]),
    ("frames_encoded", &["strahl_video_frames_encoded_total"]),
    ("frames_captured", &["strahl_video_frames_captured_total"]),
    // Frame slots the video worker skipped because it was late (CPU-bound): never sent.
    ("frames_skipped", &["strahl_video_frames_skipped_total"]),
    ("keyframes", &["strahl_video_keyframes_total"]),
    ("parity_lowered", &["strahl_fec_parity_lowered_total"]),
    ("frames_refused", &["strahl_frames_refused_total"]),
    (
        "video_packets_sent",
        &["strahl_packets_sent_total{stream=\"video\"}"],
    ),
    (
        "video_bytes_sent",
        &["strahl_bytes_sent_total{stream=\"video\"}"],
    ),
    ("knob_drops", &["strahl_video_knob_drops_total"]),
    // Time the tx tile busy-waited for pacing releases: timing cost, equal for every transport.
    ("tile_spin_ns", &["strahl_tx_tile_spin_nanoseconds_total"]),
    // Which transport carried the media (the tx tile's per-transport counter).
    (
        "media_packets_af_xdp",
        &["strahl_media_packets_sent_total{transport=\"af_xdp\"}"],
    ),
    (
        "media_packets_io_uring",
        &["strahl_media_packets_sent_total{transport=\"io_uring\"}"],
    ),
    (
        "media_packets_sendmmsg",
        &["strahl_media_packets_sent_total{transport=\"sendmmsg\"}"],
    ),
];

/// One measured run against a paired host; with `net`, the client runs in its namespace and
/// the video packets are captured there and scored against the pacer's schedule.
fn one_run(
    paths: &Paths,
    host: &Host,
    client_dir: &std::path::Path,
    a: &Args,
    rate: u32,
    fps: u32,
    net: Option<&host::NetPlace>,
) -> Result<Value, String> {
    let before = host.metrics();
    let mut args = driver_target(host, client_dir);
    args.extend([
        "--width".into(),
        a.width.to_string(),
        "--height".into(),
        a.height.to_string(),
        "--fps".into(),
        fps.to_string(),
        "--bitrate".into(),
        (rate * 1000).to_string(),
        "--codec".into(),
        a.codec.name().into(),
        "--warmup".into(),
        a.warmup.to_string(),
        "--seconds".into(),
        a.seconds.to_string(),
        "--dp-pid".into(),
        host.dataplane_pid.to_string(),
    ]);
    let timeout = Duration::from_secs_f64(a.warmup + a.seconds) + STREAM_OVERHEAD;
    let capture = match net {
        Some(n) => Some(rxstamp::Capture::start(
            &n.client_ns,
            &n.client_if,
            host.addr,
            host.video_port,
            timeout + STATS_SETTLE,
        )?),
        None => None,
    };
    let client_ns = net.map(|n| n.client_ns.as_str());
    let lines = run_driver(paths, client_ns, "bench", &args, timeout)?;
    let captured = capture.map(rxstamp::Capture::finish);
    if let Some(f) = step(&lines, "fatal") {
        return Err(format!(
            "driver: {} {}\n{}\nhost log:\n{}",
            f["error"],
            f["message"],
            f["trace"].as_str().unwrap_or(""),
            host.log_tail(30)
        ));
    }
    if let Some(f) = step(&lines, "stream_start").filter(|s| s["ok"] == false) {
        // Reported, not fatal: the JSON says how far the client got (stage 8 = ENet control,
        // 9/10 = video/audio start), so a host without media shows up as exactly that.
        return Ok(json!({
            "start_error": { "stage": f["stage"], "code": f["error_code"] },
            "frames_received": 0,
            "host_log_tail": host.log_tail(15),
        }));
    }
    let w = step(&lines, "window")
        .ok_or_else(|| format!("driver printed no window: {lines:?}"))?
        .clone();
    std::thread::sleep(STATS_SETTLE);
    let after = host.metrics();
    let mut counters = serde_json::Map::new();
    let metrics_note = match (&before, &after) {
        (Ok(b), Ok(af)) => {
            for (key, names) in HOST_COUNTERS {
                let v = names
                    .iter()
                    .find_map(|n| Some(metric_sum(af, n)? - metric_sum(b, n).unwrap_or(0.0)));
                counters.insert((*key).into(), json!(v));
            }
            // Every data-plane counter that moved, for whoever reads the JSON later.
            let moved: serde_json::Map<String, Value> = af
                .iter()
                .filter_map(|(k, v)| {
                    let d = v - b.get(k).copied().unwrap_or(0.0);
                    (d != 0.0 && !k.starts_with("strahl_ipc")).then(|| (k.clone(), json!(d)))
                })
                .collect();
            counters.insert("all_moved".into(), Value::Object(moved));
            Value::Null
        }
        (Err(e), _) | (_, Err(e)) => json!(format!(
            "data-plane metrics unavailable from the status server (/metrics on port {}): {e}",
            host.status_port
        )),
    };
    let secs = w["seconds"].as_f64().unwrap_or(0.0);
    let au_bytes = w["au_bytes"].as_f64().unwrap_or(0.0);
    let pkts = w["rtp"]["packetCountVideo"].as_f64().unwrap_or(0.0);
    let achieved = if secs > 0.0 {
        au_bytes * 8.0 / secs / 1e6
    } else {
        0.0
    };
    let wire = if secs > 0.0 {
        pkts * DATAGRAM_BYTES * 8.0 / secs / 1e6
    } else {
        0.0
    };
    let dp_cpu = w["dp_cpu_s"].as_f64();
    let per_gbit_of = |cpu: Option<f64>, mbps: f64| {
        cpu.filter(|_| mbps > 0.0)
            .map(|c| c / (mbps * secs / 1000.0))
    };
    let per_gbit = |mbps: f64| per_gbit_of(dp_cpu, mbps);
    // The tile's pacing busy-wait, taken out: what the transport and the packet work cost.
    let spin_s = counters
        .get("tile_spin_ns")
        .and_then(Value::as_f64)
        .map(|ns| ns / 1e9);
    let dp_work = dp_cpu.zip(spin_s).map(|(c, s)| (c - s).max(0.0));
    let receiver = match captured {
        None => Value::Null,
        Some(c) => {
            let wall = |k: &str| w[k].as_f64().map(|t| (t * 1e9) as i64);
            let (Some(from), Some(to)) = (wall("t0_wall"), wall("t1_wall")) else {
                return Err(format!("driver window without wall-clock bounds: {w}"));
            };
            let schedule = ipg::Schedule {
                frame_interval_ns: 1_000_000_000 / u64::from(fps),
                spread_permille: strahl_pacer::DEFAULT_SPREAD_PERMILLE,
                link_bps: a.link_mbps * 1_000_000,
            };
            let in_window = c
                .packets
                .iter()
                .filter(|p| p.t_ns >= from && p.t_ns <= to)
                .count();
            json!({
                "packets_captured": c.packets.len(),
                "packets_in_window": in_window,
                "capture_socket_drops": c.socket_drops,
                "capture_note": c.note,
                "pacing": ipg::score(&c.packets, from, to, &schedule),
            })
        }
    };
    Ok(json!({
        "window_s": secs,
        // What the frame clock would give in the window; the difference to frames_in_window
        // is frames the data plane skipped because it was late (host_counters.frames_skipped).
        "frames_expected_in_window": secs * fps as f64,
        "frames_in_window": w["frames_in_span"],
        "frames_received": w["frames_received"],
        "frames_lost": w["frames_lost"],
        "idr_received": w["idr_frames"],
        "fec_recovered_packets": w["rtp"]["packetCountFecRecovered"],
        "fec_failed_packets": w["rtp"]["packetCountFecFailed"],
        "client_rtp": w["rtp"],
        // Machine-wide (other processes' UDP too): receive-buffer drops during the window.
        "udp_rcvbuf_errors": w["udp_rcvbuf_errors"],
        "udp_in_errors": w["udp_in_errors"],
        "achieved_mbps": achieved,
        "wire_mbps": wire,
        "dataplane_cpu_s": dp_cpu,
        "dataplane_cpu_s_per_gbit": per_gbit(achieved),
        "dataplane_cpu_s_per_gbit_wire": per_gbit(wire),
        "tile_spin_s": spin_s,
        "dataplane_work_cpu_s_per_gbit": per_gbit_of(dp_work, achieved),
        "client_cpu_s": w["client_cpu_s"],
        "machine_busy_frac": w["machine_busy_frac"],
        "loadavg_start": w["loadavg_start"],
        "loadavg_end": w["loadavg_end"],
        "terminated": w["terminated"],
        "termination_code": w["termination_code"],
        "host_counters_session": Value::Object(counters),
        "host_metrics_note": metrics_note,
        "receiver": receiver,
    }))
}

/// Median over runs of a numeric field.
fn med(runs: &[Value], key: &str) -> Value {
    json!(median(
        runs.iter().filter_map(|r| r[key].as_f64()).collect()
    ))
}

fn med_host(runs: &[Value], key: &str) -> Value {
    json!(median(
        runs.iter()
            .filter_map(|r| r["host_counters_session"][key].as_f64())
            .collect()
    ))
}

/// One rate's stream: made (or taken from the cache), analysed, checked by FFmpeg.
struct Prepared {
    rate: u32,
    fps: u32,
    file: PathBuf,
    analysis: stream::Analysis,
    check: Value,
}

impl Prepared {
    fn json(&self, a: &Args) -> Value {
        json!({
            "rate_mbps": self.rate,
            "fps": self.fps,
            "width": a.width,
            "height": a.height,
            "packet_size": PACKET_SIZE,
            "fec_percent": FEC_PERCENT,
            "stream": {
                "file": self.file.display().to_string(),
                "source": "pre-encoded: OpenH264 baseline, fixed QP, fresh noise per frame, IDR every 60 AUs",
                "analysis": self.analysis,
                "ffmpeg_check": self.check,
            },
        })
    }
}

/// Makes and checks every rate's stream before any host runs (the encoder's CPU must not
/// overlap a measurement).
fn prepare(paths: &Paths, a: &Args) -> Result<Vec<Prepared>, String> {
    let mut out = Vec::new();
    for &rate in &a.rates {
        let fps = fps_for(a, rate);
        let recipe = Recipe {
            width: a.width,
            height: a.height,
            fps,
            au_bytes: rate as usize * 1_000_000 / 8 / fps as usize,
            frames: STREAM_FRAMES,
        };
        let (file, analysis) = if a.codec == ffclip::Codec::H264 {
            let file = stream::ensure(&recipe, &a.cache)?;
            let analysis = stream::analyze(&file, PACKET_SIZE, FEC_PERCENT)?;
            (file, analysis)
        } else {
            let file = ffclip::ensure(a.codec, &recipe, &a.cache)?;
            let analysis = ffclip::analyze(&file, PACKET_SIZE, FEC_PERCENT)?;
            (file, analysis)
        };
        // Independent validity check: FFmpeg's decoder must take every AU.
        let check = run_driver(
            paths,
            None,
            "check",
            &[
                "--file".to_string(),
                file.display().to_string(),
                "--decoder".to_string(),
                a.codec.decoder().to_string(),
            ],
            CHECK_TIMEOUT,
        )?;
        let check = step(&check, "check").cloned().unwrap_or(Value::Null);
        if check["frames"].as_u64() != Some(analysis.access_units as u64)
            || check["errors"].as_u64() != Some(0)
        {
            return Err(format!(
                "{}: FFmpeg does not decode every AU ({check}); delete it to regenerate",
                file.display()
            ));
        }
        eprintln!(
            "gamestream: {rate} Mbit/s at {fps} fps: {} (mean AU {} B, largest {} B)",
            file.display(),
            analysis.mean_au_bytes,
            analysis.max_au_bytes
        );
        if analysis.over_capacity > 0 {
            // The data plane refuses such AUs (a key AU refused stalls a passthrough stream):
            // say so before the run, not only as frames missing after it.
            eprintln!(
                "gamestream: WARNING {} of {} AUs exceed GameStream's {} B per frame: the data \
                 plane will refuse them",
                analysis.over_capacity, analysis.access_units, analysis.max_au_capacity_bytes
            );
        }
        out.push(Prepared {
            rate,
            fps,
            file,
            analysis,
            check,
        });
    }
    Ok(out)
}

/// Pairs the client whose identity lives in `client_dir` with `host` (PIN through
/// `strahl-control pin`, run where the host runs).
fn pair(
    paths: &Paths,
    host: &Host,
    client_dir: &std::path::Path,
    client_ns: Option<&str>,
) -> Result<(), String> {
    let mut pair_args = driver_target(host, client_dir);
    pair_args.extend([
        "--pin".into(),
        "4711".into(),
        "--pin-cmd".into(),
        json!(host.pin_cmd()).to_string(),
    ]);
    let paired = run_driver(paths, client_ns, "pair", &pair_args, PAIR_TIMEOUT)?;
    if step(&paired, "pair").and_then(|p| p["ok"].as_bool()) != Some(true) {
        return Err(format!(
            "pairing failed: {paired:?}\nhost log:\n{}",
            host.log_tail(30)
        ));
    }
    Ok(())
}

/// The driver arguments that name the host and the client's identity directory.
fn driver_target(host: &host::Host, client_dir: &std::path::Path) -> Vec<String> {
    vec![
        "--host".into(),
        host.addr.to_string(),
        "--port".into(),
        host.base_port.to_string(),
        "--config".into(),
        client_dir.display().to_string(),
    ]
}

/// The medians every result reports.
fn medians(runs: &[Value]) -> Value {
    json!({
        "frames_expected_in_window": med(runs, "frames_expected_in_window"),
        "frames_in_window": med(runs, "frames_in_window"),
        "frames_received": med(runs, "frames_received"),
        "frames_lost": med(runs, "frames_lost"),
        "fec_recovered_packets": med(runs, "fec_recovered_packets"),
        "fec_failed_packets": med(runs, "fec_failed_packets"),
        "udp_rcvbuf_errors": med(runs, "udp_rcvbuf_errors"),
        "achieved_mbps": med(runs, "achieved_mbps"),
        "wire_mbps": med(runs, "wire_mbps"),
        "dataplane_cpu_s_per_gbit": med(runs, "dataplane_cpu_s_per_gbit"),
        "dataplane_cpu_s_per_gbit_wire": med(runs, "dataplane_cpu_s_per_gbit_wire"),
        "dataplane_work_cpu_s_per_gbit": med(runs, "dataplane_work_cpu_s_per_gbit"),
        "machine_busy_frac": med(runs, "machine_busy_frac"),
        "host_frames_sent_session": med_host(runs, "frames_sent"),
        "host_parity_lowered_session": med_host(runs, "parity_lowered"),
        "host_frames_refused_session": med_host(runs, "frames_refused"),
        "host_frames_skipped_session": med_host(runs, "frames_skipped"),
    })
}

fn capacity_notes(a: &Args) -> Vec<String> {
    let cap_any = plan::max_access_unit_bytes(PACKET_SIZE);
    let cap_20 = plan::unlowered_capacity_bytes(PACKET_SIZE, FEC_PERCENT);
    a.rates
        .iter()
        .filter(|&&rate| rate as usize * 1_000_000 / 8 / 60 > cap_any && fps_for(a, rate) != 60)
        .map(|&rate| {
            format!(
                "{rate} Mbit/s at 60 fps is {} B per frame: more than GameStream's 4 × 255 \
                 shards can carry at packet size {PACKET_SIZE} ({cap_any} B with any FEC, {cap_20} B \
                 at {FEC_PERCENT} % FEC) — so it runs at 120 fps",
                rate as usize * 1_000_000 / 8 / 60
            )
        })
        .collect()
}

pub fn run(raw: &[String]) -> Result<Value, String> {
    let a = parse(raw)?;
    if a.netns {
        return netbed::run(&a);
    }
    let paths = Paths::discover(a.bin_dir.clone())?;
    let mut results = Vec::new();
    let notes = capacity_notes(&a);
    let cap_any = plan::max_access_unit_bytes(PACKET_SIZE);
    let cap_20 = plan::unlowered_capacity_bytes(PACKET_SIZE, FEC_PERCENT);
    for p in prepare(&paths, &a)? {
        let (rate, fps) = (p.rate, p.fps);
        let host = Host::start(
            &paths,
            &HostConfig {
                stream_file: Some(&p.file),
                max_bitrate_kbps: None,
                mtu: None,
                realtime_priority: a.realtime,
                fec_percent: FEC_PERCENT,
                extra_toml: "",
                transport: None,
                state_dir: None,
                net: None,
            },
        )?;
        let client_dir = host.dir.join("client");
        pair(&paths, &host, &client_dir, None)?;
        let mut runs = Vec::new();
        for k in 0..a.runs {
            let r = one_run(&paths, &host, &client_dir, &a, rate, fps, None)?;
            eprintln!(
                "gamestream: {rate} Mbit/s run {}: {} frames received, {} lost, {:.1} Mbit/s",
                k + 1,
                r["frames_received"],
                r["frames_lost"],
                r["achieved_mbps"].as_f64().unwrap_or(0.0)
            );
            runs.push(r);
        }
        let transport = transport_log(&host);
        drop(host);
        let mut r = p.json(&a);
        r["transport_log"] = json!(transport);
        r["median"] = medians(&runs);
        r["runs"] = Value::Array(runs);
        results.push(r);
    }
    let doc = json!({
        "bench": "gamestream",
        "codec": a.codec.name(),
        "client": "moonlight-python 0.3.0 (moonlight-common-c), pull without decoding",
        "loopback": true,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "capacity": {
            "max_au_bytes_any_fec": cap_any,
            "max_au_bytes_at_fec_percent": cap_20,
            "fec_percent": FEC_PERCENT,
            "packet_size": PACKET_SIZE,
        },
        "notes": notes,
        "results": results,
    });
    if let Some(dir) = &a.out {
        write_outputs(dir, &doc)?;
    }
    Ok(doc)
}

/// The data plane's log line naming its transport.
fn transport_log(host: &Host) -> Option<String> {
    host.log_grep("transport")
        .into_iter()
        .find(|l| l.contains("chosen") || l.contains("data plane transport"))
}

fn write_outputs(dir: &std::path::Path, doc: &Value) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let json_path = dir.join("gamestream.json");
    let text = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())?;
    std::fs::write(&json_path, text).map_err(|e| format!("{}: {e}", json_path.display()))?;
    let res = doc["results"].as_array().cloned().unwrap_or_default();
    let pts = |f: &dyn Fn(&Value) -> Option<f64>| -> Vec<(f64, f64)> {
        res.iter()
            .filter_map(|r| Some((r["rate_mbps"].as_f64()?, f(r)?)))
            .collect()
    };
    let mut rate = Plot::new(
        "strahl → Moonlight core on loopback (GameStream, 20 % FEC, P = 1392)",
        "target Mbit/s",
        "Mbit/s",
    );
    rate.series("target", pts(&|r| r["rate_mbps"].as_f64()));
    rate.series(
        "video received (median)",
        pts(&|r| r["median"]["achieved_mbps"].as_f64()),
    );
    rate.series(
        "on the wire incl. FEC (median)",
        pts(&|r| r["median"]["wire_mbps"].as_f64()),
    );
    rate.write(&dir.join("gamestream.svg"))?;
    let mut cost = Plot::new(
        "Data-plane CPU and frame loss per rate (medians)",
        "target Mbit/s",
        "value",
    );
    cost.series(
        "data-plane CPU s per Gbit video",
        pts(&|r| r["median"]["dataplane_cpu_s_per_gbit"].as_f64()),
    );
    cost.series(
        "frames lost %",
        pts(&|r| {
            let lost = r["median"]["frames_lost"].as_f64()?;
            let span = r["median"]["frames_in_window"].as_f64()?;
            (span > 0.0).then(|| 100.0 * lost / span)
        }),
    );
    cost.series(
        "machine CPU busy %",
        pts(&|r| r["median"]["machine_busy_frac"].as_f64().map(|f| 100.0 * f)),
    );
    cost.write(&dir.join("gamestream-cost.svg"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fps_rule_and_capacity_note() {
        let a = parse(&[]).unwrap();
        assert_eq!(fps_for(&a, 150), 60);
        assert_eq!(fps_for(&a, 500), 60);
        assert_eq!(fps_for(&a, 1000), 120);
        // The reason for 120 fps: a 1 Gbit/s frame at 60 fps exceeds 4 × 252 × 1376 B.
        assert!(1_000_000_000 / 8 / 60 > plan::max_access_unit_bytes(PACKET_SIZE));
        assert!(1_000_000_000 / 8 / 120 < plan::unlowered_capacity_bytes(PACKET_SIZE, 20));
        // And the 60 fps ceiling constant matches the 20 % capacity (≈ 560 Mbit/s).
        let mbps = plan::unlowered_capacity_bytes(PACKET_SIZE, 20) as u64 * 8 * 60 / 1_000_000;
        assert_eq!(mbps, MAX_60FPS_MBPS as u64);
    }

    #[test]
    fn args_are_checked() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let a = parse(&s(&[
            "--rates",
            "10,20",
            "--seconds",
            "2",
            "--size",
            "640x360",
        ]))
        .unwrap();
        assert_eq!(a.rates, vec![10, 20]);
        assert_eq!((a.width, a.height), (640, 360));
        assert!(parse(&s(&["--rates", "0"])).is_err());
        assert!(parse(&s(&["--size", "640"])).is_err());
        assert!(parse(&s(&["--bogus"])).is_err());
    }

    #[test]
    fn quick_netns_and_transport_args() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // An explicit flag wins over --quick's defaults, before or after it.
        let a = parse(&s(&["--rates", "20", "--netns", "--quick"])).unwrap();
        assert!(a.netns && a.quick);
        assert_eq!(a.rates, vec![20]);
        assert_eq!((a.width, a.height, a.fps, a.runs), (640, 360, Some(30), 1));
        assert_eq!(a.transports, TRANSPORTS);
        assert_eq!(a.link_mbps, 10_000);
        let a = parse(&s(&["--transports", "sendmmsg,af_xdp"])).unwrap();
        assert_eq!(a.transports, ["sendmmsg", "af_xdp"]);
        assert!(!a.netns && !a.quick && a.runs == 3);
        assert!(parse(&s(&["--transports", "af_xdp,dpdk"])).is_err());
        assert!(parse(&s(&["--link-mbps", "0"])).is_err());
    }

    #[test]
    fn metric_sum_takes_the_data_plane_series() {
        let m: std::collections::BTreeMap<String, f64> = [
            (
                "strahl_packets_sent_total{process=\"dataplane\",stream=\"video\"}",
                10.0,
            ),
            (
                "strahl_packets_sent_total{process=\"dataplane\",stream=\"audio\"}",
                3.0,
            ),
            (
                "strahl_packets_sent_total{process=\"control\",stream=\"video\"}",
                100.0,
            ),
            ("strahl_fec_parity_lowered_total", 2.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let video = "strahl_packets_sent_total{stream=\"video\"}";
        assert_eq!(metric_sum(&m, video), Some(10.0));
        assert_eq!(metric_sum(&m, "strahl_packets_sent_total"), Some(13.0));
        assert_eq!(metric_sum(&m, "strahl_fec_parity_lowered_total"), Some(2.0));
        assert_eq!(metric_sum(&m, "strahl_nope_total"), None);
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![f64::NAN]), None);
    }
}
