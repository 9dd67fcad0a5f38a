//! The status page of the real `strahl-control serve` (started by `scripts/run.sh` through the
//! e2e harness) in headless Chromium, driven over the DevTools protocol, with the real
//! Moonlight core (driver/moonlight_e2e.py) as the client:
//!
//! 1. the page loads; the first-start form sets the admin password and logs in;
//! 2. a Moonlight client starts pairing with a PIN chosen here; the page lists it as waiting;
//!    the PIN is typed into the page's form (real input events, Enter) and the client pairs;
//!    the paired client appears in the page's client table;
//! 3. the client starts a stream; the page shows the running session;
//! 4. no console errors or uncaught exceptions at any point; a screenshot of the page with the
//!    session is saved to `target/status-page-live.png`.
//!
//! Chromium flags are the issue's (`--headless --no-sandbox --disable-gpu --no-first-run
//! --disable-background-networking`) plus a private profile and a DevTools port. Every wait is
//! bounded; Chromium or the Moonlight interpreter missing fails loudly.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use strahl_e2e::{Driver, Options, PIN_WAIT, PIN_WAITING_LINE, Strahl};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// Chromium start-up (profile creation on a loaded 2-core machine takes seconds).
const BROWSER_START_TIMEOUT: Duration = Duration::from_secs(60);
/// Any single DevTools command or page condition (the page polls every second or two).
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// A real Moonlight pairing (Python start, RSA key generation, four round trips).
const PAIR_TIMEOUT: Duration = Duration::from_secs(120);
/// From the session on the page to its live figures: two data-plane statistics polls (5 s
/// apart by default) for a send rate, with margin for a loaded machine.
const LIVE_FIGURES_TIMEOUT: Duration = Duration::from_secs(30);
/// From the stream client's start to the session on the page (RTSP, ENet, first frames).
const SESSION_TIMEOUT: Duration = Duration::from_secs(90);
const PASSWORD: &str = "page-live-password";

fn chromium() -> PathBuf {
    for c in [
        std::env::var("CHROMIUM").ok(),
        Some("/usr/bin/chromium".into()),
        Some("/usr/bin/chromium-browser".into()),
    ]
    .into_iter()
    .flatten()
    {
        if std::path::Path::new(&c).exists() {
            return c.into();
        }
    }
    panic!("chromium is not installed: run scripts/setup.sh (Debian `chromium`) or set CHROMIUM");
}

/// The browser, killed (our own child) even when the test panics.
struct Browser {
    child: Child,
    profile: PathBuf,
    port: u16,
    ws_path: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn launch() -> Browser {
    let profile = std::env::temp_dir().join(format!(
        "strahl-page-live-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    ));
    std::fs::create_dir_all(&profile).unwrap();
    let child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chromium");
    let mut b = Browser {
        child,
        profile,
        port: 0,
        ws_path: String::new(),
    };
    // Chromium writes its DevTools port and browser websocket path once it listens.
    let port_file = b.profile.join("DevToolsActivePort");
    let deadline = Instant::now() + BROWSER_START_TIMEOUT;
    loop {
        if let Ok(s) = std::fs::read_to_string(&port_file)
            && let Some(p) = s.lines().next().and_then(|l| l.trim().parse().ok())
            && let Some(path) = s.lines().nth(1).filter(|l| l.starts_with("/devtools/"))
        {
            b.port = p;
            b.ws_path = path.trim().to_string();
            return b;
        }
        if let Ok(Some(st)) = b.child.try_wait() {
            panic!("chromium exited during start: {st}");
        }
        assert!(
            Instant::now() < deadline,
            "chromium did not open DevTools within {BROWSER_START_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A DevTools session on one page target (flat mode); events are kept for the console check.
struct Cdp {
    ws: WebSocket<MaybeTlsStream<std::net::TcpStream>>,
    next_id: u64,
    session: Option<String>,
    events: Vec<Value>,
}

impl Cdp {
    fn connect(browser: &Browser) -> Cdp {
        let url = format!("ws://127.0.0.1:{}{}", browser.port, browser.ws_path);
        let (ws, _) = tungstenite::connect(url.as_str()).expect("devtools websocket");
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(STEP_TIMEOUT)).unwrap();
        }
        let mut cdp = Cdp {
            ws,
            next_id: 1,
            session: None,
            events: Vec::new(),
        };
        let t = cdp.call("Target.createTarget", json!({ "url": "about:blank" }));
        let target = t["targetId"].as_str().expect("targetId").to_string();
        let a = cdp.call(
            "Target.attachToTarget",
            json!({ "targetId": target, "flatten": true }),
        );
        cdp.session = Some(a["sessionId"].as_str().expect("sessionId").to_string());
        cdp
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::Text(msg.to_string())).unwrap();
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            assert!(
                Instant::now() < deadline,
                "{method}: no reply within {STEP_TIMEOUT:?}"
            );
            let m = match self
                .ws
                .read()
                .unwrap_or_else(|e| panic!("{method}: websocket: {e}"))
            {
                Message::Text(t) => t,
                _ => continue,
            };
            let v: Value = serde_json::from_str(&m).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method} failed: {v}");
                return v["result"].clone();
            }
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
    }

    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        );
        assert!(
            r.get("exceptionDetails").is_none(),
            "evaluate `{expr}` threw: {r}"
        );
        r["result"]["value"].clone()
    }

    /// Polls `expr` in the page until it is `true` (bounded by `timeout`).
    fn wait_for(&mut self, what: &str, expr: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.eval(expr) == Value::Bool(true) {
                return;
            }
            if Instant::now() >= deadline {
                let body = self.eval("document.body.innerText");
                panic!("page never showed {what} (`{expr}`); page text:\n{body}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn type_text(&mut self, element_id: &str, text: &str) {
        self.eval(&format!("document.getElementById('{element_id}').focus()"));
        self.call("Input.insertText", json!({ "text": text }));
    }

    fn press_enter(&mut self) {
        for t in ["rawKeyDown", "char", "keyUp"] {
            let mut p =
                json!({ "type": t, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13 });
            if t == "char" {
                p["text"] = json!("\r");
            }
            self.call("Input.dispatchKeyEvent", p);
        }
    }

    /// Console errors, uncaught exceptions and error log entries seen so far.
    fn errors(&self) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| match e["method"].as_str() {
                Some("Runtime.exceptionThrown") => true,
                Some("Runtime.consoleAPICalled") => {
                    matches!(e["params"]["type"].as_str(), Some("error" | "assert"))
                }
                Some("Log.entryAdded") => e["params"]["entry"]["level"] == "error",
                _ => false,
            })
            .collect()
    }
}

fn screenshot_path() -> PathBuf {
    strahl_e2e::repo_root().join("target/status-page-live.png")
}

#[test]
fn live_page_pairs_moonlight_with_a_typed_pin_and_shows_its_stream() {
    let strahl = Strahl::start(Options::default()).unwrap_or_else(|e| panic!("{e}"));
    let status = strahl.ports.status;
    let browser = launch();
    let mut cdp = Cdp::connect(&browser);
    for d in ["Runtime.enable", "Log.enable", "Page.enable"] {
        cdp.call(d, json!({}));
    }
    cdp.call(
        "Page.navigate",
        json!({ "url": format!("http://127.0.0.1:{status}/") }),
    );
    cdp.wait_for(
        "the loaded page",
        "document.readyState === 'complete' && typeof state === 'object'",
        STEP_TIMEOUT,
    );

    // 1. First start: set the admin password through the page; it logs in.
    cdp.wait_for(
        "the first-start password form",
        "!document.getElementById('login-section').classList.contains('hidden') && \
         document.getElementById('login-title').textContent.includes('Set the admin password')",
        STEP_TIMEOUT,
    );
    cdp.type_text("password", PASSWORD);
    cdp.eval("document.getElementById('login-button').click()");
    cdp.wait_for(
        "the logged-in state",
        "document.getElementById('login-section').classList.contains('hidden')",
        STEP_TIMEOUT,
    );

    // 2. A real Moonlight client waits for its PIN; the operator types it into the page.
    let pin = format!("{:04}", (std::process::id() ^ status as u32) % 10_000);
    let client_dir = strahl.dir.join("moonlight-client");
    std::fs::create_dir_all(&client_dir).unwrap();
    let mut args = vec!["pair".to_string()];
    args.extend(strahl.client_args());
    args.extend([
        "--config".into(),
        client_dir.display().to_string(),
        "--pin".into(),
        pin.clone(),
    ]);
    let pairing = Driver::spawn(&args).unwrap_or_else(|e| panic!("{e}"));
    strahl
        .wait_log(PIN_WAITING_LINE, PIN_WAIT)
        .unwrap_or_else(|e| panic!("{e}"));
    cdp.wait_for(
        "the client waiting for a PIN",
        "document.getElementById('pending').textContent.startsWith('Waiting for a PIN')",
        STEP_TIMEOUT,
    );
    cdp.type_text("pin", &pin);
    cdp.press_enter();
    cdp.wait_for(
        "the PIN confirmation",
        "document.getElementById('pin-result').textContent === 'PIN sent.'",
        STEP_TIMEOUT,
    );
    let out = pairing
        .finish(PAIR_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n--- strahl log ---\n{}", strahl.log()));
    assert!(
        out.step("pair").is_some_and(|p| p["ok"] == true),
        "Moonlight did not pair with the PIN typed into the page: {out}"
    );
    cdp.wait_for(
        "the paired client in the table",
        "document.getElementById('clients').rows.length >= 1",
        STEP_TIMEOUT,
    );

    // 3. The paired client streams; the page shows the running session.
    let mut args = vec!["stream".to_string()];
    args.extend(strahl.client_args());
    args.extend(
        [
            "--config",
            &client_dir.display().to_string(),
            "--width",
            "1280",
            "--height",
            "720",
            "--frames",
            "1800",
            "--no-decode",
            "--timeout",
            "80",
        ]
        .map(String::from),
    );
    let stream = Driver::spawn(&args).unwrap_or_else(|e| panic!("{e}"));
    cdp.wait_for(
        "the running session",
        "document.querySelector('#sessions tr[data-session]') !== null",
        SESSION_TIMEOUT,
    );
    // The live figures: the measured send rate and the pacer's rate (from the data plane's
    // statistics, polled every few seconds) and the ENet round-trip time (reported every
    // second). Cells: client, protocol, mode, target, sending, FEC, recovered/failed, pacing,
    // packets/s, drops, RTT. The waits also give the charts a line for the screenshot.
    let cell = |i: usize| {
        format!("document.querySelector('#sessions tr[data-session]').cells[{i}].textContent")
    };
    cdp.wait_for(
        "a measured send rate, pacing rate and RTT in the session row",
        &format!(
            "parseFloat({}) > 0 && parseFloat({}) > 0 && / ms$/.test({})",
            cell(4),
            cell(7),
            cell(10)
        ),
        LIVE_FIGURES_TIMEOUT,
    );
    let row = cdp.eval("document.querySelector('#sessions tr[data-session]').innerText");
    let row = row.as_str().unwrap_or_default().to_string();
    assert!(row.contains("1280x720"), "session row: {row}");
    let shot = cdp.call("Page.captureScreenshot", json!({ "format": "png" }));
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let path = screenshot_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &png).unwrap();
    eprintln!(
        "page_live: screenshot {} ({} bytes); session row: {row}",
        path.display(),
        png.len()
    );
    drop(stream); // killed: the session ends with the client

    // 4. No console errors at any point (one more round trip drains late events).
    cdp.eval("1");
    let errors = cdp.errors();
    assert!(
        errors.is_empty(),
        "console errors/exceptions on the live page: {errors:#?}"
    );
}
