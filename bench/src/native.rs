//! `strahl-bench native`: native `strahl/1` sessions from strahl in a host network namespace to
//! the real `strahl-client` in a client namespace, once per transport in one run (issue 10
//! item 7). Reuses the GameStream bench's test bed (`gamestream::netbed`: one veth, default
//! routes, IPv6 off, the client's receive processing steered off the tx tile's core) and host
//! (`gamestream::host`: `scripts/run.sh` with a generated config, bounded teardown).
//!
//! What is measured, per transport (`[dataplane] transport` forced; a refused transport fails
//! the bench with the host's log):
//! - **Goodput sweep**: the passthrough codec (the data plane's checkable pattern frames) at
//!   1280×720@120 and each offered rate, 20 % FEC (min = default = max, so loss reports cannot
//!   move it). Verified goodput is the client's frame bytes over its receive window, and counts
//!   only when every frame verified byte for byte (`verify_failures` 0; else reported as 0).
//!   Frames lost are the client's count (default 100 ms frame timeout: a real-time client's),
//!   frames the host's clock skipped come from its `/metrics`. Host CPU = data plane + control
//!   plane (`/proc/PID/stat` over the client's life, so the tile's pacing spin counts); client
//!   CPU from its own `/proc/PID/stat`, sampled every 20 ms until it exits. Both per Gbit of
//!   verified payload.
//! - **Latency** at 720p120: capture → reassembled. The data plane's media clock is the host's
//!   CLOCK_MONOTONIC (`pts_us` = the frame slot's capture time), network namespaces share that
//!   clock, and `strahl-client` reads it after each frame is rebuilt (FEC included) and verified
//!   (`capture_latency` in its summary). For the passthrough source the capture time is the
//!   frame clock's slot, so this bounds frame-ready → reassembled from above (it adds the tile's
//!   wake-up lateness and the pattern fill); for synthetic + openh264 it includes capture and
//!   encode. Runs: passthrough clean, passthrough with 5 % random loss (the XDP loss program on
//!   the client's veth, media packets only), synthetic + openh264 clean.
//!
//! Every wait is bounded (the host's start, each client by `--seconds` + a margin).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strahl_net::bpf::{LossConfig, LossProgram};
use strahl_net::testbed::{self, ADDR_A, ADDR_B, VethPair};

use crate::gamestream::TRANSPORTS;
use crate::gamestream::host::{Host, HostConfig, NetPlace, Paths, client_cpu_list};
use crate::gamestream::netbed::{Scratch, configure, steer_client_receive};
use crate::report::Plot;

const USAGE: &str = "usage: strahl-bench native [--rates 1000,2000,3000,4000] [--seconds S]
                          [--transports af_xdp,io_uring,sendmmsg] [--latency-mbps N]
                          [--h264-mbps N] [--mtu N] [--realtime N] [--out DIR] [--bin-dir DIR]
                          [--quick]
  --rates        offered payload Mbit/s of the passthrough sweep (default 1000,2000,3000,4000)
  --seconds      each client run (default 5)
  --latency-mbps passthrough rate of the latency runs (default 100: 104 kB frames at 120 fps)
  --h264-mbps    openh264 rate of the latency run (default 20)
  --mtu          the veth's MTU, the data plane's and the client's (default 1500; 9000 is a
                 jumbo-frame LAN: shards of 8928 B instead of 1428)
  --realtime     SCHED_FIFO priority of the host's media threads ([dataplane] realtime_priority)
                 and the client's receive thread (--realtime); default 10, as the appliance
                 takes with a core for its tx tile; 0: normal priority on both sides
  --out          writes native.json, native.svg and native-cost.svg there
  --bin-dir      strahl-dataplane / strahl-control / strahl-client (default: next to this binary)
  --quick        smoke run: 200 Mbit/s, 2 s, sendmmsg only";

/// The native QUIC port (`[network] native_port` default; a fresh namespace has it free).
const NATIVE_PORT: u16 = 47_900;
const FEC_PERCENT: u8 = 20;
/// `--realtime` default: the appliance's `auto` priority (a tx tile with a core of its own);
/// this 2-core VM shares cores, where `auto` is off, so the bench asks for it explicitly.
const BENCH_REALTIME: u8 = 10;
const MODE: &str = "1280x720@120";
/// The client's media port in the loss run (the XDP program drops only packets to it).
const LOSSY_MEDIA_PORT: u16 = 45_000;
/// What a client may take beyond `--seconds` (QUIC handshake, stop, summary).
const CLIENT_MARGIN: Duration = Duration::from_secs(20);

struct Args {
    rates: Vec<u32>,
    seconds: f64,
    transports: Vec<String>,
    latency_mbps: u32,
    h264_mbps: u32,
    mtu: u16,
    /// SCHED_FIFO priority of the host's media threads and the client's receive thread.
    realtime: u8,
    out: Option<PathBuf>,
    bin_dir: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        rates: vec![1000, 2000, 3000, 4000],
        seconds: 5.0,
        transports: TRANSPORTS.iter().map(|t| (*t).to_string()).collect(),
        latency_mbps: 100,
        h264_mbps: 20,
        mtu: 1500,
        realtime: BENCH_REALTIME,
        out: None,
        bin_dir: None,
    };
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{k} needs a value\n{USAGE}"))
        };
        let num = |v: String| {
            v.parse::<u32>()
                .ok()
                .filter(|n| (1..=20_000).contains(n))
                .ok_or_else(|| format!("{k}: 1..=20000 Mbit/s, not {v:?}"))
        };
        match k.as_str() {
            "--rates" => {
                a.rates = val()?
                    .split(',')
                    .map(|r| num(r.to_string()))
                    .collect::<Result<_, _>>()?;
            }
            "--seconds" => {
                a.seconds = val()?
                    .parse::<f64>()
                    .ok()
                    .filter(|s| (1.0..=600.0).contains(s))
                    .ok_or("--seconds: 1..=600")?;
            }
            "--transports" => {
                a.transports = val()?.split(',').map(str::to_string).collect();
                if let Some(t) = a
                    .transports
                    .iter()
                    .find(|t| !TRANSPORTS.contains(&t.as_str()))
                {
                    return Err(format!("unknown transport {t:?}; one of {TRANSPORTS:?}"));
                }
            }
            "--latency-mbps" => a.latency_mbps = num(val()?)?,
            "--h264-mbps" => a.h264_mbps = num(val()?)?,
            "--mtu" => {
                a.mtu = val()?
                    .parse::<u16>()
                    .ok()
                    .filter(|m| (1280..=9000).contains(m))
                    .ok_or("--mtu: 1280..=9000")?;
            }
            "--realtime" => {
                a.realtime = val()?
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= 99)
                    .ok_or("--realtime: 0..=99")?;
            }
            "--out" => a.out = Some(val()?.into()),
            "--bin-dir" => a.bin_dir = Some(val()?.into()),
            "--quick" => {
                a.rates = vec![200];
                a.seconds = 2.0;
                a.transports = vec!["sendmmsg".into()];
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(a)
}

/// utime + stime of `pid` in seconds (`/proc/PID/stat`, every thread), `None` once it is gone.
fn cpu_s(pid: u32, tck: f64) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / tck)
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Sum of every series of metric `name` (any labels) on the host's `/metrics`.
fn metric(host: &Host, name: &str) -> Option<f64> {
    let m = host.metrics().ok()?;
    Some(
        m.iter()
            .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
            .map(|(_, v)| v)
            .sum(),
    )
}

/// `strahl-client` in the client namespace, off the tx tile's core.
fn client_cmd(paths: &Paths, place: &NetPlace, state: &Path) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &place.client_ns]);
    if let Some(cpus) = client_cpu_list() {
        c.args(["taskset", "-c", &cpus]);
    }
    c.arg(paths.bin_dir.join("strahl-client"))
        .arg("--state-dir")
        .arg(state);
    c
}

/// Arms a pairing window on the host (`strahl-control pair`) and pairs the client with its PIN.
fn pair(paths: &Paths, host: &Host, place: &NetPlace, state: &Path) -> Result<(), String> {
    let url = format!("{}:{}", host.addr, host.status_port);
    let out = Command::new("ip")
        .args(["netns", "exec", &place.host_ns])
        .arg(paths.bin_dir.join("strahl-control"))
        .args(["pair", "--config"])
        .arg(&host.config)
        .args(["--url", &url])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("strahl-control pair: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let pin = text
        .find("enter PIN ")
        .and_then(|at| text.get(at + 10..at + 14))
        .ok_or_else(|| format!("strahl-control pair printed no PIN: {text}"))?;
    let hostport = format!("{}:{NATIVE_PORT}", host.addr);
    let out = client_cmd(paths, place, state)
        .args(["pair", &hostport, pin, "--name", "strahl-bench"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("strahl-client pair: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "strahl-client pair failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// One client run.
struct RunSpec<'a> {
    codec: &'a str,
    mbps: u32,
    seconds: f64,
    /// Random loss applied on the client's veth by the XDP loss program.
    loss: Option<f64>,
}

/// Runs the client once; its summary with the bench's own figures added.
fn client_run(
    paths: &Paths,
    host: &Host,
    place: &NetPlace,
    state: &Path,
    spec: &RunSpec<'_>,
    a: &Args,
    tck: f64,
) -> Result<Value, String> {
    let json_path = state.join("stream.json");
    let _ = std::fs::remove_file(&json_path);
    // Kept until the run has ended: dropping it detaches the program.
    let program = match spec.loss {
        Some(p) => {
            let ifname = place.client_if.clone();
            let prog = testbed::in_netns(&place.client_ns, move || {
                let mut prog = LossProgram::load().map_err(|e| format!("load: {e}"))?;
                prog.configure(&LossConfig {
                    probability: p,
                    udp_port: LOSSY_MEDIA_PORT,
                    ..LossConfig::default()
                })
                .map_err(|e| format!("configure: {e}"))?;
                let ifindex = testbed::ifindex(&ifname).map_err(|e| format!("{ifname}: {e}"))?;
                prog.attach(ifindex).map_err(|e| format!("attach: {e}"))?;
                Ok::<_, String>(prog)
            })
            .map_err(|e| format!("enter {}: {e}", place.client_ns))?
            .map_err(|e| format!("XDP loss program: {e}"))?;
            Some(prog)
        }
        None => None,
    };
    let hostport = format!("{}:{NATIVE_PORT}", host.addr);
    let mut cmd = client_cmd(paths, place, state);
    cmd.args(["stream", &hostport, "--codec", spec.codec, "--mode", MODE])
        .args(["--mtu", &a.mtu.to_string()])
        .args(["--realtime", &a.realtime.to_string()])
        .args(["--bitrate", &(u64::from(spec.mbps) * 1000).to_string()])
        .args(["--seconds", &spec.seconds.to_string()])
        .arg("--json")
        .arg(&json_path);
    if spec.loss.is_some() {
        cmd.args(["--media-port", &LOSSY_MEDIA_PORT.to_string()]);
    }
    let host_cpu = |h: &Host| -> Option<f64> {
        Some(cpu_s(h.dataplane_pid, tck)? + cpu_s(h.control_pid, tck)?)
    };
    let skipped0 = metric(host, "strahl_video_frames_skipped_total");
    let host0 = host_cpu(host);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn strahl-client: {e}"))?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let deadline = Duration::from_secs_f64(spec.seconds) + CLIENT_MARGIN;
    let t0 = Instant::now();
    let mut client_cpu = None;
    let status = loop {
        if let Some(c) = cpu_s(child.id(), tck) {
            client_cpu = Some(c);
        }
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if t0.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let host1 = host_cpu(host);
    let skipped1 = metric(host, "strahl_video_frames_skipped_total");
    let err = err_t.join().unwrap_or_default();
    let loss_stats = program.map(|p| p.stats().map(|s| format!("{s:?}")));
    let text = std::fs::read_to_string(&json_path).unwrap_or_default();
    let mut v: Value = serde_json::from_str(&text).map_err(|e| {
        format!(
            "no summary from strahl-client ({status:?}): {e}\n{}\nhost:\n{}",
            err.lines().rev().take(10).collect::<Vec<_>>().join("\n"),
            host.log_tail(20)
        )
    })?;
    let bytes = v["bytes"].as_f64().unwrap_or(0.0);
    let verified = v["verify_failures"].as_u64() == Some(0);
    let gbit = bytes * 8.0 / 1e9;
    let per_gbit = |cpu: Option<f64>| cpu.filter(|_| gbit > 0.0).map(|c| c / gbit);
    let host_cpu_s = host0.zip(host1).map(|(a, b)| b - a);
    v["bench"] = json!({
        "codec": spec.codec,
        "offered_mbps": spec.mbps,
        "random_loss": spec.loss,
        "exit": status.and_then(|s| s.code()),
        "verified_goodput_mbps": if verified { v["goodput_mbps"].as_f64() } else { Some(0.0) },
        "host_cpu_s": host_cpu_s,
        "client_cpu_s": client_cpu,
        "host_cpu_s_per_gbit": per_gbit(host_cpu_s),
        "client_cpu_s_per_gbit": per_gbit(client_cpu),
        "host_frames_skipped": skipped0.zip(skipped1).map(|(a, b)| b - a),
        "xdp_loss": loss_stats.map(|r| r.unwrap_or_else(|e| e.to_string())),
    });
    Ok(v)
}

pub fn run(args: &[String]) -> Result<Value, String> {
    let a = parse(args)?;
    if let Err(why) = testbed::check_privileges() {
        return Ok(json!({ "bench": "native", "skipped": why.to_string() }));
    }
    let paths = Paths::discover_native(a.bin_dir.clone())?;
    let tck = clk_tck();
    let bed = VethPair::create("nvb").map_err(|e| format!("namespace test bed: {e}"))?;
    configure(&bed)?;
    let steering = steer_client_receive(&bed)?;
    for (ns, ifname) in [(&bed.ns_a, &bed.if_a), (&bed.ns_b, &bed.if_b)] {
        let st = Command::new("ip")
            .args([
                "-n",
                ns,
                "link",
                "set",
                "dev",
                ifname,
                "mtu",
                &a.mtu.to_string(),
            ])
            .status()
            .map_err(|e| format!("ip link set mtu: {e}"))?;
        if !st.success() {
            return Err(format!("ip link set {ifname} mtu {} failed", a.mtu));
        }
    }
    let place = NetPlace {
        host_ns: bed.ns_a.clone(),
        host_addr: ADDR_A,
        client_ns: bed.ns_b.clone(),
        client_if: bed.if_b.clone(),
    };
    let scratch = Scratch(std::env::temp_dir().join(format!(
        "strahl-bench-native-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    )));
    let state = scratch.0.join("state");
    let client_state = scratch.0.join("client");
    for d in [&state, &client_state] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let loadavg = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_start = loadavg();
    let mut paired = false;
    let mut results = Vec::new();
    for transport in &a.transports {
        let host = Host::start(
            &paths,
            &HostConfig {
                stream_file: None,
                max_bitrate_kbps: Some(20_000_000),
                mtu: Some(a.mtu),
                realtime_priority: Some(a.realtime),
                fec_percent: FEC_PERCENT,
                extra_toml: "",
                transport: Some(transport),
                state_dir: Some(&state),
                net: Some(&place),
            },
        )
        .map_err(|e| format!("strahl with transport {transport}: {e}"))?;
        let t0 = Instant::now();
        while host
            .log_grep("native strahl/1 host listening on UDP")
            .is_empty()
        {
            if t0.elapsed() > Duration::from_secs(15) {
                return Err(format!("no native listener:\n{}", host.log_tail(30)));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !paired {
            pair(&paths, &host, &place, &client_state)?;
            paired = true;
        }
        let mut specs: Vec<(&str, RunSpec<'_>)> = a
            .rates
            .iter()
            .map(|&mbps| {
                (
                    "goodput",
                    RunSpec {
                        codec: "passthrough",
                        mbps,
                        seconds: a.seconds,
                        loss: None,
                    },
                )
            })
            .collect();
        specs.push((
            "latency_passthrough",
            RunSpec {
                codec: "passthrough",
                mbps: a.latency_mbps,
                seconds: a.seconds,
                loss: None,
            },
        ));
        specs.push((
            "latency_passthrough_loss5",
            RunSpec {
                codec: "passthrough",
                mbps: a.latency_mbps,
                seconds: a.seconds,
                loss: Some(0.05),
            },
        ));
        specs.push((
            "latency_h264",
            RunSpec {
                codec: "h264",
                mbps: a.h264_mbps,
                seconds: a.seconds,
                loss: None,
            },
        ));
        for (kind, spec) in &specs {
            let mut v = client_run(&paths, &host, &place, &client_state, spec, &a, tck)?;
            v["bench"]["kind"] = json!(kind);
            v["bench"]["transport"] = json!(transport);
            eprintln!(
                "native: {transport} {kind} {} {} Mbit/s: {} frames, {} lost, {} verify failures, \
                 {} Mbit/s verified, capture→reassembled p50/p99 {}/{} µs, host/client CPU s/Gbit {}/{}",
                spec.codec,
                spec.mbps,
                v["frames"],
                v["lost"],
                v["verify_failures"],
                v["bench"]["verified_goodput_mbps"],
                v["capture_latency"]["p50_us"],
                v["capture_latency"]["p99_us"],
                v["bench"]["host_cpu_s_per_gbit"],
                v["bench"]["client_cpu_s_per_gbit"],
            );
            results.push(v);
        }
        let log: Vec<String> = host
            .log_grep("transport")
            .into_iter()
            .filter(|l| l.contains("dataplane") || l.contains("AF_XDP") || l.contains("fall"))
            .take(6)
            .collect();
        results.push(
            json!({ "bench": { "kind": "transport_log", "transport": transport }, "log": log }),
        );
        drop(host);
    }
    drop(bed);
    let doc = json!({
        "bench": "native",
        "mode": MODE,
        "mtu": a.mtu,
        "realtime_priority": a.realtime,
        "fec_percent": FEC_PERCENT,
        "seconds": a.seconds,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "loadavg_start": load_start.trim(),
        "loadavg_end": loadavg().trim(),
        "netns": {
            "host": ADDR_A.to_string(),
            "client": ADDR_B.to_string(),
            "client_receive_steering": steering,
        },
        "latency_definition": "capture_latency: the host's pts (frame slot's capture time on \
            CLOCK_MONOTONIC) to the client's CLOCK_MONOTONIC after the frame is rebuilt and \
            verified; an upper bound on frame-ready → reassembled for passthrough, capture + \
            encode included for h264 (bench/src/native.rs)",
        "transports": a.transports,
        "results": results,
    });
    if let Some(dir) = &a.out {
        write_outputs(dir, &doc, &a)?;
    }
    Ok(doc)
}

fn write_outputs(dir: &Path, doc: &Value, a: &Args) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("native.json");
    let text = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    let res = doc["results"].as_array().cloned().unwrap_or_default();
    let series = |plot: &mut Plot, label: &str, f: &dyn Fn(&Value) -> Option<f64>| {
        for t in &a.transports {
            let pts = res
                .iter()
                .filter(|r| {
                    r["bench"]["transport"] == t.as_str() && r["bench"]["kind"] == "goodput"
                })
                .filter_map(|r| Some((r["bench"]["offered_mbps"].as_f64()?, f(r)?)))
                .collect();
            plot.series(&format!("{t} {label}"), pts);
        }
    };
    let mut g = Plot::new(
        "strahl/1 host → strahl-client across a veth: verified goodput (720p120, 20 % FEC)",
        "offered Mbit/s (frame payload)",
        "verified goodput Mbit/s",
    );
    g.series(
        "offered",
        a.rates
            .iter()
            .map(|&r| (f64::from(r), f64::from(r)))
            .collect(),
    );
    series(&mut g, "verified", &|r| {
        r["bench"]["verified_goodput_mbps"].as_f64()
    });
    g.write(&dir.join("native.svg"))?;
    let mut c = Plot::new(
        "CPU per Gbit of verified payload (host = data plane + control plane)",
        "offered Mbit/s (frame payload)",
        "CPU s per Gbit",
    );
    series(&mut c, "host", &|r| {
        r["bench"]["host_cpu_s_per_gbit"].as_f64()
    });
    series(&mut c, "client", &|r| {
        r["bench"]["client_cpu_s_per_gbit"].as_f64()
    });
    c.write(&dir.join("native-cost.svg"))
}
