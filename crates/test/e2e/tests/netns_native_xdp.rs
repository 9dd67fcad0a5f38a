//! `strahl-client stream --xdp IFACE` across network namespaces (issue 10 item 4): strahl in a
//! host namespace as `netns_native.rs` starts it, the real client in a client namespace behind a
//! veth, receiving its media with AF_XDP through strahl's XDP redirect program.
//!
//! - [`stream_with_af_xdp_across_namespaces`]: every frame arrives and verifies byte for byte,
//!   none lost; the summary names `af_xdp`, the program redirected every datagram the client
//!   took in and passed the rest to the kernel — the QUIC control connection on the same veth
//!   kept working: a mid-stream `--reconfigure` was answered (epoch 1) and the session ended on
//!   time. Afterwards no XDP program is left on the veth.
//! - [`af_xdp_without_privilege_across_namespaces`]: the same client without any capability:
//!   `--xdp` alone is refused (exit 5) naming the missing capabilities, before any packet;
//!   `--rx auto` says so in one line and streams with recvmmsg, every frame verified.
//!
//! Needs root (namespaces, veth, BPF, AF_XDP); without it a case prints `SKIPPED` and counts as
//! ignored ([`strahl_e2e::harness`]). Every wait is bounded (the client's own timeouts).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use serde_json::Value;
use strahl_e2e::harness::{self, Case, Outcome};
use strahl_e2e::netns::{self, Endpoint, TestNet};
use strahl_e2e::{Options, Strahl};

fn ok<T>(r: strahl_e2e::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `cmd` to the end: exit code and stdout + stderr.
fn run(mut cmd: Command) -> (i32, String) {
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

/// strahl in `net`'s host namespace, its native host listening, and a `strahl-client` in
/// `client`'s namespace paired with it: the instance, the client's HOST and its state directory.
fn start_paired(net: &TestNet, client: &Endpoint) -> (Strahl, String, PathBuf) {
    let s = ok(Strahl::start(
        Options::default().in_netns(net.host_placement()),
    ));
    ok(s.wait_log(
        "native strahl/1 host listening on UDP",
        std::time::Duration::from_secs(10),
    ));
    let host = format!("{}:{}", net.host.addr, s.ports.native);
    let status = format!("{}:{}", net.host.addr, s.ports.status);
    let mut arm = s.host_command(s.bin_dir.join("strahl-control"));
    arm.args(["pair", "--config"])
        .arg(&s.config)
        .args(["--url", &status]);
    let (code, text) = run(arm);
    assert_eq!(code, 0, "strahl-control pair: {text}");
    let at = text.find("enter PIN ").expect("a PIN line") + "enter PIN ".len();
    let pin = text[at..at + 4].to_string();
    let state = s.dir.join("client-xdp");
    let (code, text) = run(client_command(
        &s,
        client,
        &state,
        None,
        &["pair", &host, &pin, "--name", "netns-xdp"],
    ));
    assert_eq!(code, 0, "{text}\n{}", s.log());
    (s, host, state)
}

/// `strahl-client --state-dir STATE ARGS` in `client`'s namespace, through `wrap` (a command
/// and its arguments put in front, e.g. `setpriv …`) when given.
fn client_command(
    s: &Strahl,
    client: &Endpoint,
    state: &Path,
    wrap: Option<&[&str]>,
    args: &[&str],
) -> Command {
    let bin = s.bin_dir.join("strahl-client");
    let mut cmd = match wrap {
        Some([w, rest @ ..]) => {
            let mut c = client.ns.command(w);
            c.args(rest).arg(bin);
            c
        }
        _ => client.ns.command(bin),
    };
    cmd.arg("--state-dir").arg(state).args(args);
    cmd
}

/// Streams passthrough for `seconds` at 50 Mbit/s 720p60 with `args`; exit code, summary (the
/// `--json` file, printed for the record) and the client's output.
fn stream(
    s: &Strahl,
    client: &Endpoint,
    state: &Path,
    host: &str,
    wrap: Option<&[&str]>,
    args: &[&str],
) -> (i32, Value, String) {
    let json = s.dir.join("stream-xdp.json");
    let _ = std::fs::remove_file(&json);
    let json_arg = json.to_string_lossy().into_owned();
    let mut argv = vec![
        "stream",
        host,
        "--codec",
        "passthrough",
        "--bitrate",
        "50000",
        "--mode",
        "1280x720@60",
        // A frame counts as lost only after a second without shards: on a loaded two-core
        // machine the host's tile can be off its core that long (see netns_native.rs).
        "--frame-timeout",
        "1000",
        "--json",
        &json_arg,
    ];
    argv.extend_from_slice(args);
    let (code, text) = run(client_command(s, client, state, wrap, &argv));
    let summary = std::fs::read_to_string(&json).unwrap_or_default();
    eprintln!("strahl-client {}: {summary}\n{text}", args.join(" "));
    let v = if summary.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&summary).unwrap_or_else(|e| panic!("{e}: {summary}\n{text}"))
    };
    (code, v, text)
}

fn count(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

/// Every frame verified byte for byte, none lost, nothing refused by the seal.
fn assert_clean(code: i32, v: &Value, s: &Strahl, min_frames: u64) {
    assert_eq!(code, 0, "{v}\n{}", s.log());
    assert!(count(v, "frames") >= min_frames, "{v}\n{}", s.log());
    for k in [
        "verify_failures",
        "lost",
        "bad_tag",
        "replayed",
        "old_epoch",
        "seq_out_of_order",
    ] {
        assert_eq!(count(v, k), 0, "{k}: {v}");
    }
}

/// What `ip link show DEV` says in `ns` (an attached XDP program shows as `xdp`/`prog/xdp`).
fn link_show(ep: &Endpoint) -> String {
    let mut c = ep.ns.command("ip");
    c.args(["-d", "link", "show", "dev", &ep.ifname]);
    let (code, text) = run(c);
    assert_eq!(code, 0, "{text}");
    text
}

fn stream_with_af_xdp_across_namespaces() -> Outcome {
    if let Some(why) = netns::root_or_skip_reason() {
        return Outcome::Skipped(why);
    }
    let net = ok(TestNet::pair());
    let client = net.client();
    let (s, host, state) = start_paired(&net, client);
    let (code, v, _) = stream(
        &s,
        client,
        &state,
        &host,
        None,
        &[
            "--seconds",
            "4",
            "--xdp",
            &client.ifname,
            "--reconfigure",
            "2,,35",
        ],
    );
    assert_clean(code, &v, &s, 60);
    assert_eq!(v["rx"], "af_xdp", "{v}");
    assert_eq!(v["gro"], false, "{v}");
    let x = &v["xdp"];
    assert_eq!(x["iface"], client.ifname.as_str(), "{v}");
    assert_eq!(x["queues"], 1, "{v}");
    // Every datagram the receiver took in came through the sockets, which took only what the
    // program redirected, all of it well-formed.
    let datagrams = count(&v, "datagrams");
    assert!(datagrams > 1000, "{v}");
    assert_eq!(count(x, "received"), datagrams, "{v}");
    assert!(count(x, "redirected") >= datagrams, "{v}");
    assert_eq!(count(x, "malformed"), 0, "{v}");
    // The QUIC control connection's datagrams passed to the kernel, and it worked all along:
    // the host answered the mid-stream reconfigure, and the session ran its full time.
    assert!(count(x, "passed") > 0, "{v}");
    assert_eq!(v["reconfigured"][0]["epoch"], 1, "{v}");
    assert_eq!(v["reconfigured"][0]["fec_percent"], 35, "{v}");
    assert_eq!(v["end"], "4 s done", "{v}");
    // The bpf_link went with the client: the veth carries no XDP program any more.
    let link = link_show(client);
    assert!(!link.contains("xdp"), "an XDP program left behind:\n{link}");
    Outcome::Passed
}

fn af_xdp_without_privilege_across_namespaces() -> Outcome {
    if let Some(why) = netns::root_or_skip_reason() {
        return Outcome::Skipped(why);
    }
    let net = ok(TestNet::pair());
    let client = net.client();
    let (s, host, state) = start_paired(&net, client);
    // Root without a single capability: the bounding set empties what execve would grant.
    let unprivileged: &[&str] = &[
        "setpriv",
        "--bounding-set=-all",
        "--inh-caps=-all",
        "--ambient-caps=-all",
    ];
    let (code, v, text) = stream(
        &s,
        client,
        &state,
        &host,
        Some(unprivileged),
        &["--seconds", "2", "--xdp", &client.ifname],
    );
    assert_eq!(code, 5, "{text}");
    assert!(
        text.contains("lacks CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF"),
        "{text}"
    );
    // Refused before the session: no summary, no program.
    assert_eq!(v, Value::Null, "{text}");
    assert!(!link_show(client).contains("xdp"));

    let (code, v, text) = stream(
        &s,
        client,
        &state,
        &host,
        Some(unprivileged),
        // 10 Mbit/s: without CAP_NET_ADMIN the socket buffer stays at `rmem_max`.
        &[
            "--seconds",
            "3",
            "--bitrate",
            "10000",
            "--xdp",
            &client.ifname,
            "--rx",
            "auto",
        ],
    );
    assert_clean(code, &v, &s, 60);
    assert_eq!(v["rx"], "recvmmsg", "{v}");
    assert_eq!(v["xdp"], Value::Null, "{v}");
    let said: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("receiving with recvmmsg (--rx auto)"))
        .collect();
    assert_eq!(said.len(), 1, "one line saying why:\n{text}");
    assert!(said[0].contains("lacks CAP_NET_ADMIN"), "{text}");
    Outcome::Passed
}

fn main() -> ExitCode {
    harness::run(&[
        Case {
            name: "stream_with_af_xdp_across_namespaces",
            run: stream_with_af_xdp_across_namespaces,
        },
        Case {
            name: "af_xdp_without_privilege_across_namespaces",
            run: af_xdp_without_privilege_across_namespaces,
        },
    ])
}
