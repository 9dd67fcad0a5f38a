//! The status server inside a live `strahl-control serve` (the real binary, loopback, scratch
//! state directory, the port from the test configuration): authorisation of every mutation,
//! `/healthz` following the data plane, `/metrics` carrying both processes' registries and
//! parsing with the reference Prometheus parser, and `/api/v1/status` reflecting a session that
//! a real Moonlight client (PyPI `moonlight-python`, a GPL test tool) starts after pairing with
//! a PIN given through the API. Every wait is bounded.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strahl_control::commands::{Target, http};
use support::*;

/// Bound for one Moonlight driver process (see tests/moonlight_host.rs).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

fn status_addr(dir: &Scratch) -> SocketAddr {
    let (_, base) = dir.config();
    SocketAddr::from(([127, 0, 0, 1], base + 1))
}

fn target(dir: &Scratch, with_token: bool) -> Target {
    let state_dir = dir.0.join("state");
    let token = with_token.then(|| {
        std::fs::read_to_string(state_dir.join(strahl_status::auth::TOKEN_FILE))
            .unwrap()
            .trim()
            .to_string()
    });
    Target {
        addr: status_addr(dir),
        state_dir,
        token,
    }
}

fn req(t: &Target, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let (code, text) = http(t, method, path, body.as_ref()).unwrap_or_else(|e| panic!("{}", e.msg));
    (
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Starts serve (no data plane yet) and waits for its status page.
fn start_serve(dir: &Scratch, extra: &[&str]) -> Proc {
    // Build the data plane first: a cold build takes minutes, longer than serve waits for it.
    let _ = dataplane_bin();
    let sock = dir.socket();
    let mut args = vec![
        "--socket",
        sock.to_str().unwrap(),
        "--connect-timeout-ms",
        "120000",
    ];
    args.extend_from_slice(extra);
    let cp = Proc::spawn("control", &control_bin(), &dir.serve_args(&args));
    cp.wait_for(&format!("status page: http://{}/", status_addr(dir)));
    cp
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !f() {
        assert!(Instant::now() < deadline, "not within {STEP:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_mutation_needs_auth_and_health_follows_the_dataplane() {
    let dir = Scratch::new("status-auth");
    let mut cp = start_serve(&dir, &["--stats-interval-ms", "200"]);
    let anon = target(&dir, false);
    let admin = target(&dir, true);

    // Mutations without credentials: 401, and nothing happens.
    let mutations: &[(&str, &str, Value)] = &[
        ("POST", "/api/v1/pin", json!({ "pin": "1234" })),
        ("POST", "/api/v1/pair/arm", json!({})),
        ("POST", "/api/v1/clients/unpair", json!({ "id": "00" })),
        (
            "POST",
            "/api/v1/clients/rename",
            json!({ "id": "00", "name": "x" }),
        ),
        ("POST", "/api/v1/sessions/1/stop", json!({})),
        ("DELETE", "/api/v1/sessions/1", json!({})),
        ("POST", "/api/v1/sessions/1/keyframe", json!({})),
        ("POST", "/api/v1/logout", json!({})),
    ];
    for (m, p, b) in mutations {
        let (code, body) = req(&anon, m, p, Some(b.clone()));
        assert_eq!(code, 401, "{m} {p} without auth: {body}");
    }
    // Once a password is set (here with the token), changing it needs auth too.
    let (code, body) = req(
        &admin,
        "POST",
        "/api/v1/passwd",
        Some(json!({ "password": "first password" })),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = req(
        &anon,
        "POST",
        "/api/v1/passwd",
        Some(json!({ "password": "hijacked!!" })),
    );
    assert_eq!(code, 401, "{body}");
    // A wrong token is no better than none.
    let wrong = Target {
        token: Some("0".repeat(64)),
        ..anon.clone()
    };
    assert_eq!(
        req(&wrong, "POST", "/api/v1/pair/arm", Some(json!({}))).0,
        401
    );
    // Nothing was armed by the refused requests.
    let (_, st) = req(&admin, "GET", "/api/v1/status", None);
    assert!(st["pairing"]["native_window"].is_null(), "{st}");

    // With the token: the backend answers (no client waiting, no such session).
    let (code, body) = req(
        &admin,
        "POST",
        "/api/v1/pin",
        Some(json!({ "pin": "1234" })),
    );
    assert_eq!(code, 409, "{body}");
    assert!(body.to_string().contains("no client is waiting"), "{body}");
    assert_eq!(
        req(&admin, "POST", "/api/v1/sessions/7/stop", Some(json!({}))).0,
        404
    );
    assert_eq!(
        req(
            &admin,
            "POST",
            "/api/v1/clients/unpair",
            Some(json!({ "id": "00" }))
        )
        .0,
        404
    );
    let (code, armed) = req(&admin, "POST", "/api/v1/pair/arm", Some(json!({})));
    assert_eq!(code, 200);
    let pin = armed["pin"].as_str().unwrap().to_string();
    assert!(
        pin.len() == 4 && pin.bytes().all(|b| b.is_ascii_digit()),
        "{armed}"
    );
    // The native PIN is shown to the token holder, never to anonymous readers (open_reads on).
    let (_, st) = req(&admin, "GET", "/api/v1/status", None);
    assert_eq!(st["pairing"]["native_window"]["pin"], pin.as_str());
    let (code, st) = req(&anon, "GET", "/api/v1/status", None);
    assert_eq!(code, 200, "open_reads = true in the appliance default");
    assert!(st["pairing"]["native_window"]["pin"].is_null(), "{st}");

    // No data plane: unhealthy, and the status says so.
    let (code, h) = req(&anon, "GET", "/healthz", None);
    assert_eq!(code, 503, "{h}");
    assert_eq!(st["dataplane_connected"], false);
    assert_eq!(st["host"]["version"], env!("CARGO_PKG_VERSION"));
    // Before the data plane: only our own start-up choice (input) is known.
    let subsystems = |st: &Value| -> Vec<String> {
        st["detected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["subsystem"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(subsystems(&st), ["input"], "{st}");

    // The data plane arrives: healthy, transport known (its self-test's TransportChosen).
    let dp = start_dataplane(&dir.socket());
    cp.wait_for("connected to dataplane");
    wait_until("healthz 200", || {
        req(&anon, "GET", "/healthz", None).0 == 200
    });
    wait_until("transport in status", || {
        !req(&anon, "GET", "/api/v1/status", None).1["transport"].is_null()
    });
    let (_, st) = req(&anon, "GET", "/api/v1/status", None);
    assert_eq!(st["dataplane_connected"], true);
    let tr = &st["transport"];
    assert!(
        ["af_xdp", "io_uring", "sendmmsg"].contains(&tr["name"].as_str().unwrap()),
        "{tr}"
    );
    assert!(!tr["reason"].as_str().unwrap().is_empty());
    assert!(st["dataplane_metrics"].is_array(), "{st}");
    // ...and what it chose for capture, encode and audio, each with why (IPC `Detected`).
    wait_until("start-up choices in status", || {
        subsystems(&req(&anon, "GET", "/api/v1/status", None).1).len() == 4
    });
    let (_, st) = req(&anon, "GET", "/api/v1/status", None);
    assert_eq!(
        subsystems(&st),
        ["capture", "encode", "audio", "input"],
        "{st}"
    );
    for d in st["detected"].as_array().unwrap() {
        assert!(!d["reason"].as_str().unwrap().is_empty(), "{d}");
    }
    assert_eq!(st["detected"][0]["choice"], "synthetic", "{st}");
    if nvenc_library_absent() {
        // No GPU here: the data plane picked openh264 and said why; the host line shows it.
        assert_eq!(st["detected"][1]["choice"], "openh264", "{st}");
        assert!(
            st["detected"][1]["reason"]
                .as_str()
                .unwrap()
                .contains("libnvidia-encode.so.1"),
            "{st}"
        );
        assert_eq!(st["host"]["encoder"], "openh264", "{st}");
    }

    // The data plane goes away: unhealthy again, transport forgotten.
    drop(dp);
    wait_until("healthz 503 after the data plane died", || {
        req(&anon, "GET", "/healthz", None).0 == 503
    });
    let (_, st) = req(&anon, "GET", "/api/v1/status", None);
    assert!(st["transport"].is_null(), "{st}");
    assert_eq!(subsystems(&st), ["input"], "its choices went with it: {st}");
    cp.signal("TERM");
    let (status, _) = cp.wait_exit(STEP);
    assert!(status.success(), "{}", cp.log());
}

/// Parses Prometheus text with Python's `prometheus_client`; one line per sample.
const PARSE_PY: &str = r##"
import sys, json
from prometheus_client.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        print(f"{s.name}\t{json.dumps(s.labels, sort_keys=True)}\t{s.value}")
"##;

/// Whether this machine lacks the NVIDIA encode library (the data plane then picks openh264).
fn nvenc_library_absent() -> bool {
    !["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"]
        .iter()
        .any(|d| Path::new(d).join("libnvidia-encode.so.1").exists())
}

fn python_with(module: &str) -> PathBuf {
    strahl_testkit::python::python_with(module).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn metrics_carry_both_processes_and_parse() {
    let dir = Scratch::new("status-metrics");
    let cp = start_serve(&dir, &["--stats-interval-ms", "200"]);
    let _dp = start_dataplane(&dir.socket());
    cp.wait_for("first stats snapshot from the data plane");
    let anon = target(&dir, false);
    let (code, text) = http(&anon, "GET", "/metrics", None).unwrap_or_else(|e| panic!("{}", e.msg));
    assert_eq!(code, 200, "{text}");
    let mut child = Command::new(python_with("prometheus_client.parser"))
        .args(["-c", PARSE_PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "parser rejected /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<(String, Value, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                f[0].to_string(),
                serde_json::from_str(f[1]).unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect();
    let value = |name: &str, process: &str| {
        samples
            .iter()
            .find(|(n, l, _)| n == name && l["process"] == process)
            .map(|s| s.2)
    };
    // The control plane counts the data plane as connected; the data plane reports its own
    // IPC traffic (it received at least the handshake and the stats requests).
    assert_eq!(value("strahl_dataplane_connected", "control"), Some(1.0));
    assert!(value("strahl_ipc_messages_received_total", "dataplane").unwrap() >= 1.0);
    assert!(value("strahl_ipc_messages_received_total", "control").unwrap() >= 1.0);
    // Exactly one chosen transport on the data plane's side.
    let chosen: f64 = samples
        .iter()
        .filter(|(n, l, _)| n == "strahl_transport_chosen" && l["process"] == "dataplane")
        .map(|s| s.2)
        .sum();
    assert_eq!(chosen, 1.0, "{text}");
    // Every series appears once per process.
    let n = samples.len();
    assert_eq!(n, 2 * strahl_metrics::SERIES, "{text}");
}

struct MlClient(std::process::Child);

impl MlClient {
    fn spawn(mode: &str, port: u16, config: &Path, pin: &str) -> MlClient {
        let script = strahl_testkit::python::moonlight_driver();
        std::fs::create_dir_all(config).unwrap();
        let py = match std::env::var_os("STRAHL_MOONLIGHT_PYTHON") {
            Some(p) => PathBuf::from(p),
            None => python_with("moonlight_python"),
        };
        MlClient(
            Command::new(py)
                .arg(script)
                .arg(mode)
                .args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--pin",
                    pin,
                ])
                .arg("--config")
                .arg(config)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn the Moonlight driver"),
        )
    }

    fn finish(mut self) -> Vec<Value> {
        let start = Instant::now();
        let st = loop {
            if let Some(st) = self.0.try_wait().unwrap() {
                break st;
            }
            assert!(
                start.elapsed() < CLIENT_TIMEOUT,
                "moonlight client timed out"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut out = String::new();
        let mut err = String::new();
        self.0
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        self.0
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(st.success(), "moonlight client failed:\n{out}\n{err}");
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for MlClient {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn moonlight_pairs_through_the_api_pin_and_its_session_shows_in_status() {
    let dir = Scratch::new("status-ml");
    let (cfg_path, base) = dir.config();
    // Recording input sink whatever this machine has.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&cfg_path)
        .unwrap();
    writeln!(
        f,
        "[input]\nsink = \"record\"\nrecord_path = \"{}\"",
        dir.0.join("state/input.jsonl").display()
    )
    .unwrap();
    drop(f);
    let mut cp = start_serve(&dir, &["--stats-interval-ms", "300"]);
    let _dp = start_dataplane(&dir.socket());
    cp.wait_for("connected to dataplane");
    let admin = target(&dir, true);
    let client_dir = dir.0.join("ml");

    // Pair: the client waits for its PIN; the status shows it; the PIN goes in through the API.
    let pairing = MlClient::spawn("pair", base, &client_dir, "4321");
    wait_until("a Moonlight client waiting for its PIN", || {
        let (_, st) = req(&admin, "GET", "/api/v1/status", None);
        st["pairing"]["moonlight_pending"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    let (code, body) = req(
        &admin,
        "POST",
        "/api/v1/pin",
        Some(json!({ "pin": "4321" })),
    );
    assert_eq!(code, 200, "{body}");
    let lines = pairing.finish();
    assert!(
        lines.iter().any(|l| l["step"] == "pair" && l["ok"] == true),
        "{lines:#?}"
    );
    let (_, clients) = req(&admin, "GET", "/api/v1/clients", None);
    let list = clients["clients"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1, "{clients}");
    let id = list[0]["id"].as_str().unwrap().to_string();

    // Permissions: the first client paired has every one. The operator takes its keyboard and
    // mouse away (it keeps view, list, launch), so the stream below sends input that must be
    // dropped and counted, never reaching the recording sink.
    assert_eq!(
        list[0]["permissions"],
        json!([
            "view",
            "list",
            "launch",
            "keyboard",
            "mouse",
            "controller",
            "touch",
            "pen",
            "clipboard-read",
            "clipboard-set"
        ]),
        "{clients}"
    );
    let perms = |p: &str| {
        req(
            &admin,
            "POST",
            "/api/v1/clients/permissions",
            Some(json!({ "id": id, "permissions": p })),
        )
    };
    let (code, body) = perms("view,root");
    assert!((400..500).contains(&code), "{code} {body}");
    let (code, body) = perms("view,list,launch");
    assert_eq!(code, 200, "{body}");
    let (_, clients) = req(&admin, "GET", "/api/v1/clients", None);
    assert_eq!(
        clients["clients"][0]["permissions"],
        json!(["view", "list", "launch"])
    );

    // Stream: while Moonlight pulls frames, the session is in the status.
    let streaming = MlClient::spawn("session", base, &client_dir, "4321");
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    let session = loop {
        let (_, st) = req(&admin, "GET", "/api/v1/status", None);
        if let Some(s) = st["sessions"].as_array().and_then(|a| a.first()) {
            break s.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no session in status; log:\n{}",
            cp.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(session["protocol"], "gamestream", "{session}");
    assert_eq!(session["client"], "127.0.0.1");
    // Whose session it is: the paired client, found through its certificate.
    assert_eq!(session["client_name"], list[0]["name"], "{session}");
    assert_eq!(session["mode"], "1280x720@60 h264");
    assert!(session["bitrate_kbps"].as_u64().unwrap() > 0, "{session}");
    // Its own transport: present from the start, null until the data plane reports it for this
    // session, then one of the three; the host-wide transport is only the start-up choice.
    for k in ["transport", "transport_detail"] {
        assert!(session.get(k).is_some(), "{k} missing: {session}");
    }
    if let Some(t) = session["transport"].as_str() {
        assert!(["af_xdp", "io_uring", "sendmmsg"].contains(&t), "{session}");
    }
    // Alone, the session carries the data plane's host-wide figures; the totals are there too.
    assert!(session["send_kbps"].is_u64(), "{session}");
    let (_, st) = req(&admin, "GET", "/api/v1/status", None);
    assert!(st["media"]["send_kbps"].is_u64(), "{st}");
    // The data plane's skipped frame slots (a late encoder) are on the page's totals.
    assert!(st["media"]["frames_skipped"].is_u64(), "{st}");
    cp.wait_for(&format!("SessionStart {}", session["id"]));
    let lines = streaming.finish();
    assert!(lines.iter().any(|l| l["step"] == "cancel"), "{lines:#?}");
    // After /cancel the data plane ends it and the status drops it.
    wait_until("session gone after cancel", || {
        req(&admin, "GET", "/api/v1/status", None).1["sessions"]
            .as_array()
            .is_some_and(Vec::is_empty)
    });

    // The session's keyboard and mouse input (the driver's LiSend* calls) was dropped and
    // counted; none of it reached the recording sink.
    let (_, text) = http(&admin, "GET", "/metrics", None).unwrap_or_else(|e| panic!("{}", e.msg));
    let dropped = |kind: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with("strahl_input_dropped_total{"))
            .filter(|l| l.contains(&format!("kind=\"{kind}\"")) && l.contains("\"control\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(
        dropped("keyboard") >= 2.0,
        "key down and up not counted:\n{text}"
    );
    assert!(dropped("mouse") >= 1.0, "mouse input not counted:\n{text}");
    let recorded = std::fs::read_to_string(dir.0.join("state/input.jsonl")).unwrap_or_default();
    assert!(
        recorded.trim().is_empty(),
        "input of a client without keyboard/mouse permission reached the sink:\n{recorded}"
    );

    // Rename (overlay) then unpair through the API.
    let (code, _) = req(
        &admin,
        "POST",
        "/api/v1/clients/rename",
        Some(json!({ "id": id, "name": "living room" })),
    );
    assert_eq!(code, 200);
    let (_, clients) = req(&admin, "GET", "/api/v1/clients", None);
    assert_eq!(clients["clients"][0]["name"], "living room");
    let (code, _) = req(
        &admin,
        "POST",
        "/api/v1/clients/unpair",
        Some(json!({ "id": id })),
    );
    assert_eq!(code, 200);
    let (_, clients) = req(&admin, "GET", "/api/v1/clients", None);
    assert_eq!(
        clients["clients"].as_array().map(Vec::len),
        Some(0),
        "{clients}"
    );
    cp.signal("TERM");
    let (status, _) = cp.wait_exit(STEP);
    assert!(status.success(), "{}", cp.log());
}
