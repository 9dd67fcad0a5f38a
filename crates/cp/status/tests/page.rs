//! The status page in headless Chromium, driven over the DevTools protocol (a websocket to the
//! page target): the page loads without console errors or exceptions, the first-start password
//! form logs in, the fake running session appears, a PIN typed into the form (real key events)
//! reaches the backend, arming native pairing shows its PIN, the charts draw. A screenshot is
//! saved to `target/status-page.png`. Chromium missing → the test fails with a clear message.
mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::Harness;
use serde_json::{Value, json};
use strahl_status::StatusConfig;
use strahl_status::testing::{FAKE_CLIENT, FAKE_SESSION_ID};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// Chromium start-up (profile creation on a loaded 2-core machine takes seconds).
const BROWSER_START_TIMEOUT: Duration = Duration::from_secs(60);
/// Any single DevTools command or page condition.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "page-test-password";
const PIN: &str = "4711";

fn chromium() -> PathBuf {
    let cands = [
        std::env::var("CHROMIUM").ok(),
        Some("/usr/bin/chromium".into()),
        Some("/usr/bin/chromium-browser".into()),
    ];
    for c in cands.into_iter().flatten() {
        if std::path::Path::new(&c).exists() {
            return c.into();
        }
    }
    panic!(
        "chromium is not installed: run scripts/setup.sh (Debian package `chromium`) or set CHROMIUM=/path"
    );
}

/// Kills the browser (our own child) even when the test panics.
struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    port: u16,
    /// Path of the browser-level DevTools websocket (second line of DevToolsActivePort).
    ws_path: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn launch() -> Browser {
    let profile = tempfile::tempdir().unwrap();
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
            "--window-size=1280,900",
            "--remote-debugging-port=0",
            "--remote-allow-origins=*",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn chromium");
    let mut b = Browser {
        child,
        _profile: profile,
        port: 0,
        ws_path: String::new(),
    };
    // Chromium writes the chosen port to <profile>/DevToolsActivePort once it listens.
    let port_file = b._profile.path().join("DevToolsActivePort");
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

/// A DevTools session on one page target; events are kept for the console-error check.
struct Cdp {
    ws: WebSocket<MaybeTlsStream<std::net::TcpStream>>,
    next_id: u64,
    session: Option<String>,
    events: Vec<Value>,
}

impl Cdp {
    /// Connects to the browser endpoint, opens a page target and attaches to it (flat mode:
    /// page commands carry the `sessionId`).
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
        let msg = msg.to_string();
        self.ws.send(Message::Text(msg)).unwrap();
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

    /// Polls `expr` in the page until it is `true`.
    fn wait_for(&mut self, what: &str, expr: &str) {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            if self.eval(expr) == Value::Bool(true) {
                return;
            }
            if Instant::now() >= deadline {
                let body = self.eval("document.body.innerText");
                panic!("page never showed {what} (`{expr}`); page text:\n{body}");
            }
            std::thread::sleep(Duration::from_millis(100));
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
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../target/status-page.png"
    ))
}

#[test]
fn page_in_headless_chromium_logs_in_shows_the_session_and_submits_a_pin() {
    let browser = launch();
    let h = Harness::start(StatusConfig::default());
    let mut cdp = Cdp::connect(&browser);
    for d in ["Runtime.enable", "Log.enable", "Page.enable"] {
        cdp.call(d, json!({}));
    }
    cdp.call(
        "Page.navigate",
        json!({ "url": format!("http://{}/", h.addr) }),
    );
    cdp.wait_for(
        "the loaded page",
        "document.readyState === 'complete' && typeof state === 'object'",
    );

    // First start: the page offers to set the password; reads are closed until then.
    cdp.wait_for(
        "the first-start password form",
        "!document.getElementById('login-section').classList.contains('hidden') && \
         document.getElementById('login-title').textContent.includes('Set the admin password')",
    );
    assert_eq!(
        cdp.eval("document.getElementById('sessions').rows.length"),
        json!(0),
        "no data before login"
    );
    cdp.type_text("password", PASSWORD);
    cdp.eval("document.getElementById('login-button').click()");
    cdp.wait_for(
        "the logged-in state",
        "document.getElementById('login-section').classList.contains('hidden')",
    );
    assert!(
        h.dir
            .path()
            .join(strahl_status::auth::PASSWORD_FILE)
            .exists()
    );

    // The fake running session, with its numbers.
    cdp.wait_for(
        "the fake session row",
        &format!("document.querySelector('#sessions tr[data-session=\"{FAKE_SESSION_ID}\"]')?.innerText.includes('{FAKE_CLIENT}') === true"),
    );
    let row = cdp.eval(&format!(
        "document.querySelector('#sessions tr[data-session=\"{FAKE_SESSION_ID}\"]').innerText"
    ));
    let row = row.as_str().unwrap().to_string();
    for needle in ["gamestream", "1920x1080@60", "Mbit/s", "20 %", "ms"] {
        assert!(row.contains(needle), "session row lacks {needle:?}: {row}");
    }
    let host = cdp.eval("document.getElementById('host').innerText");
    assert!(
        host.as_str().unwrap().contains("sendmmsg"),
        "transport shown: {host}"
    );
    cdp.wait_for(
        "Steam Deck waiting for a PIN",
        "document.getElementById('pending').innerText.includes('Steam Deck')",
    );

    // Type the PIN with real input events and press Enter in the form.
    cdp.type_text("pin", PIN);
    cdp.press_enter();
    let deadline = Instant::now() + STEP_TIMEOUT;
    while h.backend.recorded().pins.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the PIN never reached the backend"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(h.backend.recorded().pins, vec![PIN.to_string()]);
    cdp.wait_for(
        "the PIN confirmation",
        "document.getElementById('pin-result').textContent === 'PIN sent.'",
    );

    // Arm native pairing from the page; its PIN is shown.
    cdp.eval("document.getElementById('arm').click()");
    cdp.wait_for(
        "the native pairing PIN",
        "/^\\d{4}/.test(document.getElementById('native-pin').textContent)",
    );
    assert_eq!(h.backend.recorded().armed, 1);

    // Charts fill as the page polls (live polling works); a few seconds of points so the
    // screenshot shows a line, not a dot.
    cdp.wait_for(
        "six chart points",
        "state.bitrate.length >= 6 && state.pps.length >= 6",
    );

    let shot = cdp.call("Page.captureScreenshot", json!({ "format": "png" }));
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let path = screenshot_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot: {}", path.display());

    // Drain late events with one more round trip, then check the console.
    cdp.eval("1");
    let errors = cdp.errors();
    assert!(
        errors.is_empty(),
        "console errors/exceptions on the page: {errors:#?}"
    );
    drop(browser);
}

#[test]
fn page_with_open_reads_shows_status_anonymously_without_console_errors() {
    let browser = launch();
    let h = Harness::start(StatusConfig {
        open_reads: true,
        ..StatusConfig::default()
    });
    h.set_password(PASSWORD);
    // Arm a native window: its PIN must not reach an anonymous page.
    let bearer = format!("Bearer {}", h.token());
    let pin = h
        .req(
            "POST",
            "/api/v1/pair/arm",
            &[("Authorization", &bearer)],
            None,
        )
        .json()["pin"]
        .as_str()
        .unwrap()
        .to_string();
    let mut cdp = Cdp::connect(&browser);
    for d in ["Runtime.enable", "Log.enable", "Page.enable"] {
        cdp.call(d, json!({}));
    }
    cdp.call(
        "Page.navigate",
        json!({ "url": format!("http://{}/", h.addr) }),
    );
    cdp.wait_for(
        "the loaded page",
        "document.readyState === 'complete' && typeof state === 'object'",
    );
    cdp.wait_for(
        "the fake session without login",
        &format!("document.getElementById('sessions').innerText.includes('{FAKE_CLIENT}')"),
    );
    cdp.wait_for(
        "the login form",
        "!document.getElementById('login-section').classList.contains('hidden')",
    );
    assert_eq!(
        cdp.eval("document.getElementById('pin-button').disabled"),
        json!(true)
    );
    assert_eq!(
        cdp.eval("document.getElementById('arm').disabled"),
        json!(true)
    );
    cdp.wait_for(
        "the masked native PIN",
        "document.getElementById('native-pin').textContent === '••••'",
    );
    let text = cdp.eval("document.body.innerText");
    assert!(
        !text.as_str().unwrap().contains(&pin),
        "native PIN leaked to an anonymous page"
    );
    cdp.eval("1");
    let errors = cdp.errors();
    assert!(
        errors.is_empty(),
        "console errors/exceptions on the page: {errors:#?}"
    );
}
