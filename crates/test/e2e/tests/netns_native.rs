//! Native `strahl/1` pairing across network namespaces: strahl started the README's way
//! (`scripts/run.sh --config FILE`) in a host namespace, the real `strahl-client` in a client
//! namespace behind a veth — the QUIC control plane crosses a real link instead of loopback.
//! Test bed: [`strahl_e2e::netns`].
//!
//! - [`pairing_across_namespaces`]: the operator arms with `strahl-control pair` (in the host
//!   namespace, through the status API); a wrong PIN fails, and a second guess with the right
//!   PIN on the same arm fails too; a fresh arm and the right PIN pair; the client then
//!   connects with pinned mutual TLS (`check`: hello → welcome → stop).
//! - [`stream_across_namespaces`]: a paired client runs `strahl-client stream` for a few
//!   seconds with the passthrough codec: the data plane's pattern source sends checkable
//!   `strahl/1` frames across the veth, sealed with the QUIC exporter's secret; every frame
//!   arrives complete and verified byte for byte, none lost, no packet refused by the seal.
//! - [`stream_at_one_gigabit_across_namespaces`]: 10 s at 1 Gbit/s (720p120), complete.
//! - [`stream_recovers_dropped_shards_across_namespaces`]: the same with the data plane's drop
//!   knob losing 5 % of the packets (within each block's parity): FEC rebuilds them on the
//!   client, no frame is lost.
//! - [`stream_reconfigured_mid_stream_across_namespaces`]: `reconfigure` mid-stream (bitrate
//!   and FEC): epoch 1 opens, the frames follow the new bitrate, none is lost.
//! - [`stream_h264_across_namespaces`]: the H.264 codec (openh264): every access unit starts
//!   with an Annex-B start code, none lost.
//! - [`stream_through_random_loss_across_namespaces`]: the XDP loss program drops 5 % of the
//!   media packets on the client's veth: FEC rebuilds every frame.
//! - [`stream_recovers_from_burst_loss_across_namespaces`]: bursts past the parity lose frames;
//!   the client reports them, asks for a keyframe, gets one, and goes on.
//!
//! Needs root (namespaces, veth); without it the case prints `SKIPPED` and counts as ignored
//! (this file runs under [`strahl_e2e::harness`]). Every wait is bounded (each command by the
//! client's own connect/answer timeouts, strahl's start by the harness).

use std::process::ExitCode;

use strahl_e2e::harness::{self, Case, Outcome};
use strahl_e2e::netns::{self, TestNet};
use strahl_e2e::{Options, Strahl};
use strahl_net::bpf::{LossConfig, LossProgram, LossStats};
use strahl_net::testbed;

fn ok<T>(r: strahl_e2e::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn run(mut cmd: std::process::Command) -> (i32, String) {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `strahl-control pair` in the host namespace → the PIN it printed.
fn arm(s: &Strahl, status: &str) -> String {
    let mut cmd = s.host_command(s.bin_dir.join("strahl-control"));
    cmd.args(["pair", "--config"])
        .arg(&s.config)
        .args(["--url", status]);
    let (code, text) = run(cmd);
    assert_eq!(code, 0, "strahl-control pair: {text}");
    let at = text.find("enter PIN ").expect("a PIN line") + "enter PIN ".len();
    text[at..at + 4].to_string()
}

fn pairing_across_namespaces() -> Outcome {
    if let Some(why) = netns::root_or_skip_reason() {
        return Outcome::Skipped(why);
    }
    let net = ok(TestNet::pair());
    let s = ok(Strahl::start(
        Options::default().in_netns(net.host_placement()),
    ));
    ok(s.wait_log(
        "native strahl/1 host listening on UDP",
        std::time::Duration::from_secs(10),
    ));
    let host = format!("{}:{}", net.host.addr, s.ports.native);
    let status = format!("{}:{}", net.host.addr, s.ports.status);
    let state = s.dir.join("client");
    let client = |args: &[&str]| {
        let mut cmd = net.client().ns.command(s.bin_dir.join("strahl-client"));
        cmd.arg("--state-dir").arg(&state).args(args);
        run(cmd)
    };

    let pin = arm(&s, &status);
    let wrong = format!("{:04}", (pin.parse::<u32>().unwrap() + 1) % 10_000);
    let (code, text) = client(&["pair", &host, &wrong]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("wrong PIN"), "{text}");
    let (code, text) = client(&["pair", &host, &pin]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("no pairing window"), "{text}");

    let pin = arm(&s, &status);
    let (code, text) = client(&["pair", &host, &pin, "--name", "netns-client"]);
    assert_eq!(code, 0, "{text}\n{}", s.log());
    let (code, text) = client(&["check", &host]);
    assert_eq!(code, 0, "{text}\n{}", s.log());
    assert!(text.contains("pinned TLS"), "{text}");
    // The host stored the client (strahl-native's `store::PAIRED_FILE`).
    let stored = std::fs::read_to_string(s.state_dir().join("native-clients.json"))
        .unwrap_or_else(|e| panic!("paired native clients file: {e}"));
    assert!(stored.contains("netns-client"), "{stored}");
    Outcome::Passed
}

/// Starts strahl in a host namespace (with `toml` appended), pairs a client in a client
/// namespace, runs `strahl-client stream HOST --codec passthrough … ARGS` there and
/// returns its exit code and summary; the summary is printed for the record.
fn stream_across(toml: &str, args: &[&str]) -> (i32, serde_json::Value, Strahl) {
    let (code, v, s, _) = stream_with_loss(toml, args, None);
    (code, v, s)
}

/// [`stream_across`], with `loss` (when given) applied by the XDP loss program on the client's
/// veth to UDP port [`LOSSY_MEDIA_PORT`] (the client's media port then); returns its counters.
fn stream_with_loss(
    toml: &str,
    args: &[&str],
    loss: Option<LossConfig>,
) -> (i32, serde_json::Value, Strahl, Option<LossStats>) {
    let net = ok(TestNet::pair());
    let s = ok(Strahl::start(
        Options::default().toml(toml).in_netns(net.host_placement()),
    ));
    // Kept until the stream has ended: dropping it detaches the program.
    let program = loss.map(|cfg| {
        let ifname = net.client().ifname.clone();
        testbed::in_netns(net.client().ns.name(), move || {
            let mut p = LossProgram::load().unwrap_or_else(|e| panic!("load loss program: {e}"));
            p.configure(&cfg).unwrap();
            let ifindex = testbed::ifindex(&ifname).unwrap();
            p.attach(ifindex)
                .unwrap_or_else(|e| panic!("attach the loss program to {ifname}: {e}"));
            p
        })
        .unwrap_or_else(|e| panic!("enter the client namespace: {e}"))
    });
    ok(s.wait_log(
        "native strahl/1 host listening on UDP",
        std::time::Duration::from_secs(10),
    ));
    let host = format!("{}:{}", net.host.addr, s.ports.native);
    let status = format!("{}:{}", net.host.addr, s.ports.status);
    let state = s.dir.join("client");
    let client = |args: &[&str]| {
        let mut cmd = net.client().ns.command(s.bin_dir.join("strahl-client"));
        cmd.arg("--state-dir").arg(&state).args(args);
        run(cmd)
    };
    let pin = arm(&s, &status);
    let (code, text) = client(&["pair", &host, &pin, "--name", "netns-stream"]);
    assert_eq!(code, 0, "{text}\n{}", s.log());

    let json = s.dir.join("stream.json");
    let json_arg = json.to_string_lossy().into_owned();
    // A frame counts as lost when its shards stop coming for a second, not after the default
    // 100 ms: on a loaded two-core machine the host's tile can be off its core that long
    // mid-frame, and this test is about every frame arriving intact, not about latency.
    let mut argv = vec![
        "stream",
        &host,
        "--codec",
        "passthrough",
        "--frame-timeout",
        "1000",
        "--json",
        &json_arg,
    ];
    let port = LOSSY_MEDIA_PORT.to_string();
    if program.is_some() {
        argv.extend_from_slice(&["--media-port", &port]);
    }
    argv.extend_from_slice(args);
    let (code, text) = client(&argv);
    let summary = std::fs::read_to_string(&json).unwrap_or_default();
    eprintln!("strahl-client {}: {summary}", args.join(" "));
    let v: serde_json::Value = serde_json::from_str(&summary)
        .unwrap_or_else(|e| panic!("{e}: {summary}\n{text}\n{}", s.log()));
    // `--codec` in `args` comes later on the command line and wins.
    let codec = if args.contains(&"h264") {
        "h264"
    } else {
        "passthrough"
    };
    assert_eq!(v["codec"], codec, "{v}");
    assert_eq!(v["frame_timeout_ms"], 1000, "{v}");
    if code != 0 {
        eprintln!("{text}");
    }
    let stats = program.map(|p| p.stats().unwrap());
    if let Some(st) = &stats {
        eprintln!("XDP loss program: {st:?}");
    }
    (code, v, s, stats)
}

/// The client's media port when the XDP loss program picks the media packets out.
const LOSSY_MEDIA_PORT: u16 = 45_000;

fn count(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

/// What every stream must show: frames verified byte for byte, nothing refused by the seal.
fn assert_clean(code: i32, v: &serde_json::Value, s: &Strahl, min_frames: u64) {
    assert_eq!(code, 0, "{v}\n{}", s.log());
    assert!(count(v, "frames") >= min_frames, "{v}\n{}", s.log());
    assert_eq!(count(v, "verify_failures"), 0, "{v}");
    assert_eq!(count(v, "seq_out_of_order"), 0, "{v}");
    assert_eq!(count(v, "lost"), 0, "{v}\n{}", s.log());
    assert_eq!(
        (
            count(v, "bad_tag"),
            count(v, "replayed"),
            count(v, "old_epoch")
        ),
        (0, 0, 0),
        "{v}"
    );
}

fn stream_across_namespaces() -> Outcome {
    if let Some(why) = netns::root_or_skip_reason() {
        return Outcome::Skipped(why);
    }
    // 3 s of 720p60 at 100 Mbit/s: frames of ~208 kB, ~150 shards each.
    let (code, v, s) = stream_across(
        "",
        &[
            "--seconds",
            "3",
            "--bitrate",
            "100000",
            "--mode",
            "1280x720@60",
        ],
    );
    // 3 s at 60 fps: 180 frames on an idle machine; a loaded one makes fewer (the source's
    // clock skips what the host had no time for), never none.
    assert_clean(code, &v, &s, 60);
    assert!(count(&v, "bytes") >= count(&v, "frames") * 200_000, "{v}");
    Outcome::Passed
}

/// The data plane's drop knob loses 5 % of the video packets, never more of a block than its
/// parity (20 % FEC): FEC rebuilds every frame on the client, none is lost.
fn stream_recovers_dropped_shards_across_namespaces() -> Outcome {
    if let Some(why) = netns::root_or_skip_reason() {
        return Outcome::Skipped(why);
    }
    let (code, v, s) = stream_across(
        "[testing]\nvideo_drop_fraction = 0.05\n",
        &[
            "--seconds",
            "3",
            "--bitrate",
            "50000",
            "--mode",
            "1280x720@60",
        ],
    );
    assert_clean(code, &v, &s, 60);
    // Frames of ~73 data + 15 parity shards: nearly every one loses some at 5 %.
    assert!(
        count(&v, "recovered") >= count(&v, "frames") / 2,
        "most frames needed FEC: {v}"
    );
    assert!(
        count(&v, "shards_recovered") >= count(&v, "recovered"),
        "{v}"
    );
    Outcome::Passed
}

/// 1 Gbit/s of 720p120 checkable frames (~1 MB each, ~730 shards) for 10 s (issue 10 item 6):
/// every frame arrives complete and verified. The goodput is printed, not asserted: host, data
/// plane and client share this machine's cores (on the two-core dev VM: 0.998 Gbit/s verified,
/// 1190 of 1200 frames, when it was otherwise quiet; 0.34–0.90 with other tests beside it; never
/// a frame lost).
fn stream_at_one_gigabit_across_namespaces() -> Outcome {
    if let Some(why) = netns::root_or_skip_reason() {
        return Outcome::Skipped(why);
    }
    let (code, v, s) = stream_across(
        "",
        &[
            "--seconds",
            "10",
            "--bitrate",
            "1000000",
            "--mode",
            "1280x720@120",
        ],
    );
    assert_clean(code, &v, &s, 120);
    Outcome::Passed
}

/// 5 % of the media packets dropped at random by the XDP loss program on the client's veth,
/// 20 % FEC (issue 10 item 6): every frame is rebuilt, none lost.
fn stream_through_random_loss_across_namespaces() -> Outcome {
    if let Some(why) = netns::root_or_skip_reason() {
        return Outcome::Skipped(why);
    }
    let loss = LossConfig {
        probability: 0.05,
        udp_port: LOSSY_MEDIA_PORT,
        ..LossConfig::default()
    };
    let (code, v, s, st) = stream_with_loss(
        "",
        &[
            "--seconds",
            "3",
            "--bitrate",
            "50000",
            "--mode",
            "1280x720@60",
        ],
        Some(loss),
    );
    let st = st.expect("loss counters");
    assert!(st.dropped_random > 100, "{st:?}");
    assert_clean(code, &v, &s, 60);
    assert!(count(&v, "recovered") >= count(&v, "frames") / 2, "{v}");
    Outcome::Passed
}

/// Bursts of 100 media packets dropped every 3000 (a frame here is ~88 packets with 15 parity):
/// each burst loses a frame past its parity. The client reports it, asks for a keyframe, the
/// host answers with one, and the stream goes on verified (issue 10 item 6).
fn stream_recovers_from_burst_loss_across_namespaces() -> Outcome {
    if let Some(why) = netns::root_or_skip_reason() {
        return Outcome::Skipped(why);
    }
    let loss = LossConfig {
        burst_period: 3000,
        burst_offset: 1000,
        burst_len: 100,
        udp_port: LOSSY_MEDIA_PORT,
        ..LossConfig::default()
    };
    let (code, v, s, st) = stream_with_loss(
        "",
        &[
            "--seconds",
            "4",
            "--bitrate",
            "50000",
            "--mode",
            "1280x720@60",
        ],
        Some(loss),
    );
    let st = st.expect("loss counters");
    assert!(st.dropped_burst >= 100, "{st:?}");
    assert_eq!(code, 0, "{v}\n{}", s.log());
    assert_eq!(count(&v, "verify_failures"), 0, "{v}");
    assert!(
        count(&v, "lost") >= 1,
        "a burst past the parity loses a frame: {v}"
    );
    assert!(count(&v, "keyframe_requests") >= 1, "{v}");
    // The first frame is a keyframe; a second one is the host's answer to the request.
    assert!(
        count(&v, "keyframes") >= 2,
        "the host answered no request: {v}\n{}",
        s.log()
    );
    // Frames kept arriving after the loss (the first burst starts at packet 1000 of ~12 000).
    assert!(count(&v, "frames") >= 60, "{v}");
    Outcome::Passed
}

/// The H.264 codec: the host's configured source through openh264, each access unit checked
/// for its Annex-B start code, none lost.
fn stream_h264_across_namespaces() -> Outcome {
    if let Some(why) = netns::root_or_skip_reason() {
        return Outcome::Skipped(why);
    }
    let (code, v, s) = stream_across(
        "",
        &[
            "--seconds",
            "3",
            "--bitrate",
            "10000",
            "--mode",
            "1280x720@30",
            "--codec",
            "h264",
        ],
    );
    assert_clean(code, &v, &s, 30);
    Outcome::Passed
}

/// A reconfigure 2 s into the stream doubles the bitrate and raises FEC to 35 % (issue 10
/// item 6): the host opens epoch 1, the frames grow with the bitrate, none is lost.
fn stream_reconfigured_mid_stream_across_namespaces() -> Outcome {
    if let Some(why) = netns::root_or_skip_reason() {
        return Outcome::Skipped(why);
    }
    let (code, v, s) = stream_across(
        "",
        &[
            "--seconds",
            "4",
            "--bitrate",
            "50000",
            "--mode",
            "1280x720@60",
            "--reconfigure",
            "2,100000,35",
        ],
    );
    assert_clean(code, &v, &s, 60);
    let r = &v["reconfigured"][0];
    assert_eq!(r["epoch"], 1, "{v}");
    assert_eq!(r["bitrate_kbps"], 100_000, "{v}");
    assert_eq!(r["fec_percent"], 35, "{v}");
    // Frames of 104 kB before, 208 kB after: the average lies between.
    let per_frame = count(&v, "bytes") / count(&v, "frames");
    assert!(
        per_frame > 110_000 && per_frame < 208_334,
        "{per_frame} B a frame: {v}"
    );
    Outcome::Passed
}

fn main() -> ExitCode {
    harness::run(&[
        Case {
            name: "pairing_across_namespaces",
            run: pairing_across_namespaces,
        },
        Case {
            name: "stream_across_namespaces",
            run: stream_across_namespaces,
        },
        Case {
            name: "stream_at_one_gigabit_across_namespaces",
            run: stream_at_one_gigabit_across_namespaces,
        },
        Case {
            name: "stream_recovers_dropped_shards_across_namespaces",
            run: stream_recovers_dropped_shards_across_namespaces,
        },
        Case {
            name: "stream_reconfigured_mid_stream_across_namespaces",
            run: stream_reconfigured_mid_stream_across_namespaces,
        },
        Case {
            name: "stream_h264_across_namespaces",
            run: stream_h264_across_namespaces,
        },
        Case {
            name: "stream_through_random_loss_across_namespaces",
            run: stream_through_random_loss_across_namespaces,
        },
        Case {
            name: "stream_recovers_from_burst_loss_across_namespaces",
            run: stream_recovers_from_burst_loss_across_namespaces,
        },
    ])
}
