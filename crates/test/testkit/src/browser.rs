//! Headless Chromium driven over the DevTools protocol, for the status-page tests (feature
//! `browser`).
//!
//! [`Browser::launch`] starts Debian's `chromium` with the flags the status-page issue names
//! (`--headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking`), host
//! name resolution off (nothing leaves the machine, not even DNS), a private profile and a
//! DevTools port of its choosing; the browser is killed and its profile
//! removed on drop, also when the test panics. [`Cdp`] is one flat-mode session on a fresh page
//! target: commands wait for their reply (bounded), and every event seen meanwhile is kept so
//! [`Cdp::errors`] can report console errors and uncaught exceptions. Chromium missing fails
//! with a message naming the package.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// Chromium start-up (profile creation on a loaded 2-core machine takes seconds).
pub const BROWSER_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often [`Cdp::wait_for`] re-evaluates its condition.
const WAIT_POLL: Duration = Duration::from_millis(100);

/// The Chromium binary: `$CHROMIUM`, else Debian's or Ubuntu's path.
pub fn chromium() -> PathBuf {
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
    panic!(
        "chromium is not installed: run scripts/setup.sh (Debian package `chromium`) or set CHROMIUM=/path"
    );
}

/// The browser process (our own child) and its private profile.
pub struct Browser {
    child: Child,
    profile: PathBuf,
    port: u16,
    /// Path of the browser-level DevTools websocket (second line of DevToolsActivePort).
    ws_path: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    /// Starts headless Chromium with a `width`×`height` window on `about:blank`; returns once
    /// its DevTools endpoint listens (bounded by [`BROWSER_START_TIMEOUT`]).
    pub fn launch(width: u32, height: u32) -> Browser {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let profile =
            std::env::temp_dir().join(format!("strahl-chromium-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&profile).expect("browser profile directory");
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
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
                // Even with background networking off, Chromium resolves Google service names
                // (autofill, accounts, update): every name is "not found" except the loopback
                // address the tests use, so nothing leaves this machine, not even DNS.
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
                "--disable-extensions",
                "--disable-default-apps",
                "--disable-domain-reliability",
                "--disable-client-side-phishing-detection",
                "--no-pings",
            ])
            .arg(format!("--window-size={width},{height}"))
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
}

/// A DevTools session on one page target (flat mode: page commands carry the `sessionId`).
pub struct Cdp {
    ws: WebSocket<MaybeTlsStream<std::net::TcpStream>>,
    next_id: u64,
    session: Option<String>,
    events: Vec<Value>,
    /// Bound on each command's reply.
    step: Duration,
}

impl Cdp {
    /// Connects to the browser endpoint, opens a page target and attaches to it; each later
    /// command must be answered within `step`.
    pub fn connect(browser: &Browser, step: Duration) -> Cdp {
        let url = format!("ws://127.0.0.1:{}{}", browser.port, browser.ws_path);
        let (ws, _) = tungstenite::connect(url.as_str()).expect("devtools websocket");
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(step))
                .expect("websocket read timeout");
        }
        let mut cdp = Cdp {
            ws,
            next_id: 1,
            session: None,
            events: Vec::new(),
            step,
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

    /// Sends `method` and returns its `result`; a DevTools error or no reply fails the test.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::Text(msg.to_string()))
            .unwrap_or_else(|e| panic!("{method}: websocket: {e}"));
        let deadline = Instant::now() + self.step;
        loop {
            assert!(
                Instant::now() < deadline,
                "{method}: no reply within {:?}",
                self.step
            );
            let m = match self
                .ws
                .read()
                .unwrap_or_else(|e| panic!("{method}: websocket: {e}"))
            {
                Message::Text(t) => t,
                _ => continue,
            };
            let v: Value = serde_json::from_str(&m).expect("DevTools sends JSON");
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method} failed: {v}");
                return v["result"].clone();
            }
            if v.get("method").is_some() {
                self.events.push(v);
            }
        }
    }

    /// Evaluates `expr` in the page (promises awaited) and returns its value; a throw fails.
    pub fn eval(&mut self, expr: &str) -> Value {
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

    /// Polls `expr` until it is `true`, at most `timeout`; the failure shows the page's text.
    /// A throw counts as "not yet" (an element may be re-rendered between polls).
    pub fn wait_for(&mut self, what: &str, expr: &str, timeout: Duration) {
        let guarded = format!(
            "(() => {{ try {{ return ({expr}) === true; }} catch (e) {{ return false; }} }})()"
        );
        let deadline = Instant::now() + timeout;
        loop {
            if self.eval(&guarded) == Value::Bool(true) {
                return;
            }
            if Instant::now() >= deadline {
                let body = self.eval("document.body.innerText");
                panic!("page never showed {what} (`{expr}`); page text:\n{body}");
            }
            std::thread::sleep(WAIT_POLL);
        }
    }

    /// Focuses the element and types `text` into it (real input events).
    pub fn type_text(&mut self, element_id: &str, text: &str) {
        self.eval(&format!("document.getElementById('{element_id}').focus()"));
        self.call("Input.insertText", json!({ "text": text }));
    }

    /// Presses and releases Enter in the focused element.
    pub fn press_enter(&mut self) {
        for t in ["rawKeyDown", "char", "keyUp"] {
            let mut p =
                json!({ "type": t, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13 });
            if t == "char" {
                p["text"] = json!("\r");
            }
            self.call("Input.dispatchKeyEvent", p);
        }
    }

    /// A PNG of the page as it is now.
    pub fn screenshot_png(&mut self) -> Vec<u8> {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot is base64");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "screenshot is a PNG");
        png
    }

    /// Console errors, uncaught exceptions and error log entries seen so far.
    pub fn errors(&self) -> Vec<&Value> {
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
