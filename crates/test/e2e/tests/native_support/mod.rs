//! Helpers shared by the native `strahl/1` namespace tests (`netns_native.rs`,
//! `netns_native_reconfigure.rs`): strahl started in a host namespace with a `strahl-client`
//! paired from a client namespace, `strahl-client stream` runs and their JSON summaries, and
//! the checks every stream must pass.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use strahl_e2e::netns::{Endpoint, TestNet};
use strahl_e2e::{Options, Strahl};
use strahl_net::bpf::{LossConfig, LossProgram, LossStats};
use strahl_net::testbed;

pub fn ok<T>(r: strahl_e2e::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

pub fn run(mut cmd: std::process::Command) -> (i32, String) {
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
pub fn arm(s: &Strahl, status: &str) -> String {
    let mut cmd = s.host_command(s.bin_dir.join("strahl-control"));
    cmd.args(["pair", "--config"])
        .arg(&s.config)
        .args(["--url", status]);
    let (code, text) = run(cmd);
    assert_eq!(code, 0, "strahl-control pair: {text}");
    let at = text.find("enter PIN ").expect("a PIN line") + "enter PIN ".len();
    text[at..at + 4].to_string()
}

/// Starts strahl in a host namespace (with `toml` appended), pairs a client in a client
/// namespace, runs `strahl-client stream HOST --codec passthrough … ARGS` there and
/// returns its exit code and summary; the summary is printed for the record.
pub fn stream_across(toml: &str, args: &[&str]) -> (i32, serde_json::Value, Strahl) {
    let (code, v, s, _) = stream_with_loss(toml, args, None);
    (code, v, s)
}

/// strahl (with `toml` appended) started in `net`'s host namespace, its native host listening,
/// and a `strahl-client` in `client`'s namespace paired with it as `name`: the instance, the
/// client's HOST argument and its state directory.
pub fn start_paired(
    net: &TestNet,
    client: &Endpoint,
    toml: &str,
    name: &str,
) -> (Strahl, String, PathBuf) {
    let s = ok(Strahl::start(
        Options::default().toml(toml).in_netns(net.host_placement()),
    ));
    ok(s.wait_log(
        "native strahl/1 host listening on UDP",
        std::time::Duration::from_secs(10),
    ));
    let host = format!("{}:{}", net.host.addr, s.ports.native);
    let status = format!("{}:{}", net.host.addr, s.ports.status);
    let state = s.dir.join(format!("client-{name}"));
    let pin = arm(&s, &status);
    let (code, text) = run(client_command(
        &s,
        client,
        &state,
        &["pair", &host, &pin, "--name", name],
    ));
    assert_eq!(code, 0, "{text}\n{}", s.log());
    (s, host, state)
}

/// `strahl-client --state-dir STATE ARGS` in `client`'s namespace.
pub fn client_command(s: &Strahl, client: &Endpoint, state: &Path, args: &[&str]) -> Command {
    let mut cmd = client.ns.command(s.bin_dir.join("strahl-client"));
    cmd.arg("--state-dir").arg(state).args(args);
    cmd
}

/// The `strahl-client stream` arguments every case shares: passthrough, a summary in `json`,
/// and a frame lost only when its shards stop coming for a second, not after the default
/// 100 ms: on a loaded two-core machine the host's tile can be off its core that long
/// mid-frame, and these cases are about every frame arriving intact, not about latency.
pub fn stream_argv<'a>(host: &'a str, json: &'a str) -> Vec<&'a str> {
    vec![
        "stream",
        host,
        "--codec",
        "passthrough",
        "--frame-timeout",
        "1000",
        "--json",
        json,
    ]
}

/// The summary `strahl-client stream` wrote to `json` (printed for the record), checked for
/// the codec (`h264` when `args` asks for it, else passthrough) and the frame timeout.
pub fn read_summary(json: &Path, args: &[&str], text: &str, s: &Strahl) -> serde_json::Value {
    let summary = std::fs::read_to_string(json).unwrap_or_default();
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
    v
}

/// Runs `strahl-client stream HOST --codec passthrough … ARGS` in `client`'s namespace (media
/// on [`LOSSY_MEDIA_PORT`] with `lossy`): its exit code and summary.
pub fn stream_once(
    s: &Strahl,
    client: &Endpoint,
    state: &Path,
    host: &str,
    args: &[&str],
    lossy: bool,
) -> (i32, serde_json::Value) {
    let json = s.dir.join("stream.json");
    let _ = std::fs::remove_file(&json);
    let json_arg = json.to_string_lossy().into_owned();
    let mut argv = stream_argv(host, &json_arg);
    let port = LOSSY_MEDIA_PORT.to_string();
    if lossy {
        argv.extend_from_slice(&["--media-port", &port]);
    }
    argv.extend_from_slice(args);
    let (code, text) = run(client_command(s, client, state, &argv));
    let v = read_summary(&json, args, &text, s);
    if code != 0 {
        eprintln!("{text}");
    }
    (code, v)
}

/// [`stream_across`], with `loss` (when given) applied by the XDP loss program on the client's
/// veth to UDP port [`LOSSY_MEDIA_PORT`] (the client's media port then); returns its counters.
pub fn stream_with_loss(
    toml: &str,
    args: &[&str],
    loss: Option<LossConfig>,
) -> (i32, serde_json::Value, Strahl, Option<LossStats>) {
    let net = ok(TestNet::pair());
    let (s, host, state) = start_paired(&net, net.client(), toml, "netns-stream");
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
    let (code, v) = stream_once(&s, net.client(), &state, &host, args, program.is_some());
    let stats = program.map(|p| p.stats().unwrap());
    if let Some(st) = &stats {
        eprintln!("XDP loss program: {st:?}");
    }
    (code, v, s, stats)
}

/// The client's media port when the XDP loss program picks the media packets out.
pub const LOSSY_MEDIA_PORT: u16 = 45_000;

pub fn count(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

/// What every stream must show: frames verified byte for byte, nothing refused by the seal.
pub fn assert_clean(code: i32, v: &serde_json::Value, s: &Strahl, min_frames: u64) {
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
