//! The real `strahl-dataplane` and `strahl-control serve` binaries against the real Moonlight
//! core (PyPI `moonlight-python` 0.3.0, GPL, a test tool only; driven by
//! `crates/test/moonlight/driver.py`, one client process per step). Loopback, a free non-default base
//! port, a scratch state directory. Every wait is bounded; a missing interpreter fails loudly.
//!
//! Interpreter: `$STRAHL_MOONLIGHT_PYTHON`, else `<repo>/.venv/bin/python`, else
//! `/tmp/mlvenv/bin/python`.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// Upper bound for one client process: Python start-up, RSA key generation, requests, and for
/// `stream` the 11 start stages, 4 s of frame pulling and up to 8 s waiting for the termination.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the client's stage-1 request may take to reach the host.
const PIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(45);
/// The rikeyid the driver sends (a negative signed int32, §B5).
const RIKEYID: i32 = -556_323_120;

fn python() -> PathBuf {
    strahl_testkit::python::moonlight_python().unwrap_or_else(|e| panic!("{e}"))
}

/// One Moonlight client process.
struct MlClient {
    mode: &'static str,
    child: Child,
}

impl MlClient {
    fn spawn(mode: &'static str, port: u16, config: &Path, pin: &str) -> MlClient {
        Self::spawn_with(mode, port, config, pin, &[])
    }

    fn spawn_with(
        mode: &'static str,
        port: u16,
        config: &Path,
        pin: &str,
        extra: &[&str],
    ) -> MlClient {
        let script = strahl_testkit::python::moonlight_driver();
        std::fs::create_dir_all(config).unwrap();
        let child = Command::new(python())
            .arg(script)
            .arg(mode)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--pin", pin])
            .arg("--config")
            .arg(config)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the Moonlight driver");
        MlClient { mode, child }
    }

    /// Waits (bounded) and returns the JSON lines.
    fn finish(mut self) -> Vec<Value> {
        let start = Instant::now();
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break st;
            }
            if start.elapsed() > CLIENT_TIMEOUT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "moonlight client `{}` did not finish within {CLIENT_TIMEOUT:?}",
                    self.mode
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(
            status.success(),
            "client `{}` failed ({status}):\n{stdout}\n{stderr}",
            self.mode
        );
        stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
            .collect()
    }
}

impl Drop for MlClient {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn step<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    lines
        .iter()
        .find(|v| v["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {lines:#?}"))
}

/// Runs `strahl-control pin` (the real CLI); returns (exit code, stdout + stderr).
fn pin_cli(dir: &Scratch, pin: &str) -> (i32, String) {
    let out = Command::new(control_bin())
        .args(["pin", "--socket"])
        .arg(dir.socket())
        .arg(pin)
        .stdin(Stdio::null())
        .output()
        .expect("run strahl-control pin");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// RTSP is closed while no launch is pending: a connection is refused or closed unanswered.
fn assert_rtsp_closed(port: u16) {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    s.set_read_timeout(Some(STEP)).unwrap();
    let _ = std::io::Write::write_all(
        &mut s,
        b"OPTIONS rtsp://127.0.0.1 RTSP/1.0\r\nCSeq: 1\r\n\r\n",
    );
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!(
            "RTSP answered without a pending launch: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
    }
}

#[test]
fn moonlight_pairs_streams_and_is_terminated_by_cancel() {
    let dir = Scratch::new("moonlight");
    let (cfg_path, base) = dir.config();
    // The recording input sink, whatever this machine has (auto would pick uinput where it opens).
    let record = dir.0.join("state/input-events.jsonl");
    record_input(&cfg_path, &record);
    let (http, https, rtsp) = (base, base - 5, base + 21);
    let sock = dir.socket();
    let s = sock.to_str().unwrap();
    let mut dp = start_dataplane(&sock);
    let mut cp = Proc::spawn(
        "control",
        &control_bin(),
        &dir.serve_args(&["--socket", s, "--stats-interval-ms", "500"]),
    );
    cp.wait_for("connected to dataplane");
    // The start-up lines say where the host listens and how to pair.
    cp.wait_for(&format!(
        "HTTP 127.0.0.1:{http}, HTTPS 127.0.0.1:{https}, RTSP 127.0.0.1:{rtsp}"
    ));
    cp.wait_for("run: strahl-control pin <PIN> when Moonlight shows it");
    cp.wait_for(&format!(
        "ENet control on UDP 127.0.0.1:{}; input sink: recording to {}",
        base + 10,
        record.display()
    ));
    assert_rtsp_closed(rtsp);

    // PIN CLI: nobody waiting, and a malformed PIN.
    let (code, text) = pin_cli(&dir, "1234");
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("no client is waiting for a PIN"), "{text}");
    let (code, text) = pin_cli(&dir, "12a4");
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("exactly 4 decimal digits"), "{text}");

    // (a) An unpaired client gets 401 on /applist.
    let lines = MlClient::spawn("applist", http, &dir.0.join("ml-unpaired"), "0000").finish();
    assert_eq!(step(&lines, "serverinfo")["https_port"], https);
    let a = step(&lines, "applist");
    assert_eq!(a["ok"], false, "{lines:#?}");
    assert_eq!(a["code"], 401, "{lines:#?}");

    // (a) A wrong PIN does not pair.
    let wrong = MlClient::spawn("pair", http, &dir.0.join("ml-wrong"), "1111");
    cp.wait_for_n("pairing: waiting for the PIN", 1, PIN_REQUEST_TIMEOUT);
    let (code, text) = pin_cli(&dir, "2222");
    assert_eq!(code, 0, "the PIN is delivered even if it is wrong: {text}");
    let lines = wrong.finish();
    let p = step(&lines, "pair");
    assert_eq!(p["ok"], false, "{lines:#?}");
    eprintln!("wrong PIN: {p}");

    // (a) The right PIN through the real CLI pairs; (b) /applist shows Desktop.
    let pin = format!("{:04}", std::process::id() % 10_000);
    let client_dir = dir.0.join("ml-paired");
    let good = MlClient::spawn("pair", http, &client_dir, &pin);
    cp.wait_for_n("pairing: waiting for the PIN", 2, PIN_REQUEST_TIMEOUT);
    let (code, text) = pin_cli(&dir, &pin);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("PIN delivered to client"), "{text}");
    let lines = good.finish();
    assert_eq!(step(&lines, "pair")["ok"], true, "{lines:#?}");
    assert_eq!(step(&lines, "pair")["paired"], true, "{lines:#?}");
    assert_eq!(
        step(&lines, "apps")["names"],
        serde_json::json!(["Desktop"])
    );

    // (c) launch, RTSP up to PLAY, the ENet control stream, all 11 stages; (d) /cancel sends the
    // termination message and frees the host.
    let lines = MlClient::spawn_with("session", http, &client_dir, &pin, &["--touch-pen"]).finish();
    assert_eq!(step(&lines, "applist")["ok"], true, "{lines:#?}");
    let keys = step(&lines, "keys");
    assert_eq!(keys["rikeyid"], RIKEYID);
    assert_eq!(keys["packet_size"], 1392);
    let rikey_hex = keys["rikey"].as_str().unwrap();
    let rikey: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&rikey_hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    assert_eq!(
        step(&lines, "launch")["url"],
        format!("rtspenc://127.0.0.1:{rtsp}"),
        "{lines:#?}"
    );
    let busy = step(&lines, "serverinfo_busy");
    assert_eq!(busy["state"], "SUNSHINE_SERVER_BUSY");
    assert_eq!(busy["current_game"], 1);
    let stream = step(&lines, "stream_start");
    eprintln!("client stream result: {stream}");
    assert_eq!(
        stream["ok"],
        true,
        "the client must pass all start stages (ENet control included): {lines:#?}\ncontrol log:\n{}",
        cp.log()
    );
    // The client's control stream bound to the launch's session (connect data + rikey).
    cp.wait_for("control stream: session 1 connected from 127.0.0.1:");
    // Its IDR request reached the data plane as a keyframe request.
    dp.wait_for("session 1 updated: ");
    assert!(
        dp.log()
            .lines()
            .any(|l| l.contains("session 1 updated: ") && l.contains("keyframe requested: true")),
        "{}",
        dp.log()
    );
    // Input through the real client's LiSend* reached the recording sink, in order.
    let input = step(&lines, "input");
    for (name, rc) in input["rcs"].as_object().unwrap() {
        assert_eq!(rc, 0, "LiSend {name}: {input}");
    }
    let events = strahl_input::read_json_lines(&record).unwrap();
    use strahl_input::{InputEvent, MouseButton};
    let key = |down| InputEvent::Key {
        down,
        key_code: 0x41,
        modifiers: 0,
        flags: 0,
    };
    let button = |down| InputEvent::MouseButton {
        down,
        button: MouseButton::Left,
    };
    let expected = [
        key(true),
        key(false),
        button(true),
        button(false),
        InputEvent::MouseMove { dx: 17, dy: -9 },
    ];
    // Moonlight may add its own input (none expected, but only ours is asserted): our five
    // events appear as a subsequence, in order.
    let mut want = expected.iter().peekable();
    for e in &events {
        if want.peek() == Some(&e) {
            want.next();
        }
    }
    assert!(
        want.peek().is_none(),
        "recorded input {events:?} lacks {expected:?} in order"
    );
    // Touch and pen (--touch-pen): the first paired client may use both, so the host
    // advertised pen/touch (featureFlags 0x01) and the real core sent them (their rcs are 0
    // above); they arrive decoded, with the values the client passed.
    // (event type, pointer id, tool, buttons, x, y, pressure, rotation, tilt).
    type TouchPen = (u8, u32, u8, u8, f32, f32, f32, u16, u8);
    let touch_pen: Vec<TouchPen> = events
        .iter()
        .filter_map(|e| match *e {
            InputEvent::Touch {
                event_type,
                pointer_id,
                x,
                y,
                pressure,
                ..
            } => Some((event_type, pointer_id, 0, 0, x, y, pressure, 0, 0)),
            InputEvent::Pen {
                event_type,
                tool,
                buttons,
                x,
                y,
                pressure,
                rotation,
                tilt,
                ..
            } => Some((event_type, 0, tool, buttons, x, y, pressure, rotation, tilt)),
            _ => None,
        })
        .collect();
    assert_eq!(
        &touch_pen[..touch_pen.len().min(4)],
        [
            (1, 7, 0, 0, 0.25, 0.5, 0.5, 0, 0),
            (2, 7, 0, 0, 0.25, 0.5, 0.0, 0, 0),
            (1, 0, 1, 1, 0.75, 0.25, 0.5, 90, 30),
            (2, 0, 1, 0, 0.75, 0.25, 0.0, 90, 30),
        ],
        "{events:?}"
    );
    // After the pen's up it still hovers in range; once the session's disconnect is processed
    // the host releases it (a hover-leave), and nothing else.
    assert!(
        touch_pen[4..]
            .iter()
            .all(|e| *e == (6, 0, 0, 0, 0.0, 0.0, 0.0, 0xFFFF, 0xFF)),
        "{touch_pen:?}"
    );
    // Frames: the data plane's media pipeline streams to the address learned from the pings;
    // the client reassembles and hands over consecutive frames while connected.
    let frames = step(&lines, "frames");
    eprintln!("frames while connected: {frames}");
    let count = frames["count"].as_u64().unwrap();
    // 4 s at 60 fps is 240; a debug-build data plane on a loaded 2-core VM delivered 127.
    // 10 proves the stream started and keeps going, without making the test a benchmark.
    assert!(count >= 10, "too few frames: {frames}");
    assert_eq!(frames["gaps"], 0, "{frames}");
    assert_eq!(frames["terminated_early"], false, "{lines:#?}");
    // /cancel: our termination (0x80030023) reached the client, which reports it as graceful
    // (0) because it saw frames (without frames it would be -102).
    let term = step(&lines, "ended");
    assert_eq!(term["terminated"], true, "{lines:#?}");
    assert_eq!(term["error"], 0, "{lines:#?}");
    cp.wait_for("control stream: terminating session 1 (0x80030023)");
    let free = step(&lines, "serverinfo_free");
    assert_eq!(free["state"], "SUNSHINE_SERVER_FREE", "{lines:#?}");
    assert_eq!(free["current_game"], 0);

    // Every RTSP request was answered 200, over rtspenc, in the §B10 order.
    for (i, req) in [
        "\"OPTIONS ",
        "\"DESCRIBE ",
        "\"SETUP streamid=audio/0/0",
        "\"SETUP streamid=video/0/0",
        "\"SETUP streamid=control/13/0",
        "\"ANNOUNCE streamid=control/13/0",
        "\"PLAY / RTSP/1.0\" → 200",
    ]
    .iter()
    .enumerate()
    {
        assert!(
            cp.log().lines().any(|l| l.contains(req)),
            "request {i} {req} missing; control log:\n{}",
            cp.log()
        );
    }
    assert!(
        !cp.log().contains("→ 4"),
        "a refused RTSP request:\n{}",
        cp.log()
    );

    // The data plane received the SessionStart with the client's parameters...
    dp.wait_for("session 1 started: GameStream peer 127.0.0.1:0 video 1280x720@60 H264");
    let started = dp.log();
    let line = started
        .lines()
        .find(|l| l.contains("session 1 started"))
        .unwrap();
    // 1392 asked; SS_ENC_VIDEO (on by default, [gamestream] encryption = "preferred") takes
    // 32 B of each packet for its header and tag.
    assert!(line.contains("packet 1360 B"), "{line}");
    assert!(line.contains("audio 2 ch @ 48000 Hz"), "{line}");
    // ...with the client's key (the control plane logs a fingerprint, never the key).
    cp.wait_for(&format!(
        "rikeyid {RIKEYID}, key {}",
        strahl_control::session::key_fingerprint(&rikey)
    ));
    // /cancel stopped it.
    cp.wait_for("SessionStop 1 (ClientQuit) to the data plane");
    dp.wait_for("session 1 stopped (ClientQuit)");
    assert_rtsp_closed(rtsp);

    cp.signal("TERM");
    let (st, _) = cp.wait_exit(Duration::from_secs(10));
    assert_eq!(st.code(), Some(0), "{}", cp.log());
    assert!(!dir.admin_socket().exists(), "admin socket removed on exit");
    dp.signal("TERM");
    assert_eq!(dp.wait_exit(Duration::from_secs(10)).0.code(), Some(0));
}

/// Pairs a fresh client config dir through the PIN CLI (the `n`-th client to wait for a PIN).
fn pair_client(dir: &Scratch, cp: &Proc, http: u16, name: &str, pin: &str, n: usize) -> PathBuf {
    let client_dir = dir.0.join(name);
    let c = MlClient::spawn("pair", http, &client_dir, pin);
    cp.wait_for_n("pairing: waiting for the PIN", n, PIN_REQUEST_TIMEOUT);
    let (code, text) = pin_cli(dir, pin);
    assert_eq!(code, 0, "{text}");
    let lines = c.finish();
    assert_eq!(step(&lines, "pair")["ok"], true, "{lines:#?}");
    client_dir
}

/// A later-paired client may only view and list until the operator grants more (issue 13):
/// grants it everything with the real CLI (`clients perm ID all`), checking it needed it.
fn grant_launch_to_the_second_client(cfg: &std::path::Path) {
    let cli = |args: &[&str]| {
        let out = Command::new(control_bin())
            .args(["clients", "--config"])
            .arg(cfg)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run strahl-control clients");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let list: Value = serde_json::from_str(cli(&["--json"]).trim()).unwrap();
    let later: Vec<&str> = list["clients"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["protocol"] == "gamestream"
                && !c["permissions"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|x| x == "launch"))
        })
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(
        later.len(),
        1,
        "the second client should need the grant: {list}"
    );
    let out = cli(&["perm", later[0], "all"]);
    assert!(out.contains("launch"), "{out}");
}

/// Two paired Moonlight cores stream at once (default `max_sessions` 2): each gets its own
/// session (own RTSP handshake matched by its key, own ping payload, own ENet registration),
/// frames arrive for both, and the first client's /cancel ends its session only — the second
/// keeps receiving consecutive frames until its own /cancel.
#[test]
fn two_moonlight_clients_stream_at_once_and_cancel_alone() {
    let dir = Scratch::new("moonlight2");
    let (cfg_path, base) = dir.config();
    record_input(&cfg_path, &dir.0.join("state/input-events.jsonl"));
    let http = base;
    let sock = dir.socket();
    let s = sock.to_str().unwrap();
    let mut dp = start_dataplane(&sock);
    let mut cp = Proc::spawn(
        "control",
        &control_bin(),
        &dir.serve_args(&["--socket", s, "--stats-interval-ms", "500"]),
    );
    cp.wait_for("connected to dataplane");
    let a_dir = pair_client(&dir, &cp, http, "ml-a", "4711", 1);
    let b_dir = pair_client(&dir, &cp, http, "ml-b", "4712", 2);
    grant_launch_to_the_second_client(&cfg_path);

    // A pulls frames for 4 s, B for 9 s: A's /cancel lands while B streams.
    let a = MlClient::spawn_with("session", http, &a_dir, "4711", &["--frame-wait", "4"]);
    let b = MlClient::spawn_with("session", http, &b_dir, "4712", &["--frame-wait", "9"]);
    let (la, lb) = (a.finish(), b.finish());
    let log = || format!("control log:\n{}\ndata plane log:\n{}", cp.log(), dp.log());
    for (who, lines) in [("A", &la), ("B", &lb)] {
        assert_eq!(step(lines, "launch")["ok"], true, "{who}: {lines:#?}");
        // Each sees its own app running (it would /resume it, §B5).
        let busy = step(lines, "serverinfo_busy");
        assert_eq!(busy["state"], "SUNSHINE_SERVER_BUSY", "{who}");
        assert_eq!(busy["current_game"], 1, "{who}");
        assert_eq!(
            step(lines, "stream_start")["ok"],
            true,
            "{who} passes all start stages: {lines:#?}\n{}",
            log()
        );
        let frames = step(lines, "frames");
        eprintln!("{who} frames while connected: {frames}");
        assert!(frames["count"].as_u64().unwrap() >= 10, "{who}: {frames}");
        assert_eq!(frames["gaps"], 0, "{who}: {frames}");
        assert_eq!(
            frames["terminated_early"],
            false,
            "{who} was not ended by the other's /cancel: {lines:#?}\n{}",
            log()
        );
        let term = step(lines, "ended");
        assert_eq!(term["terminated"], true, "{who}: {lines:#?}");
        assert_eq!(term["error"], 0, "{who}: {lines:#?}");
    }
    // Two sessions, each with its own control stream and its own stop.
    for id in [1, 2] {
        cp.wait_for(&format!(
            "control stream: session {id} connected from 127.0.0.1:"
        ));
        cp.wait_for(&format!("SessionStop {id} (ClientQuit) to the data plane"));
        dp.wait_for(&format!("session {id} stopped (ClientQuit)"));
    }
    assert!(
        !cp.log().contains("→ 4"),
        "a refused RTSP request:\n{}",
        log()
    );
    cp.signal("TERM");
    let (st, _) = cp.wait_exit(Duration::from_secs(10));
    assert_eq!(st.code(), Some(0), "{}", cp.log());
    dp.signal("TERM");
    assert_eq!(dp.wait_exit(Duration::from_secs(10)).0.code(), Some(0));
}

/// Input goes to the recording sink at `record`, whatever this machine has (auto would pick
/// uinput where it opens), unless the config already names an `[input]` table.
fn record_input(cfg_path: &std::path::Path, record: &std::path::Path) {
    if std::fs::read_to_string(cfg_path)
        .unwrap()
        .contains("[input]")
    {
        return;
    }
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(cfg_path)
        .unwrap();
    std::io::Write::write_all(
        &mut f,
        format!(
            "[input]\nsink = \"record\"\nrecord_path = \"{}\"\n",
            record.display()
        )
        .as_bytes(),
    )
    .unwrap();
}
