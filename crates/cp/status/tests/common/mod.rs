//! Test harness: the status server with a FakeBackend on a loopback port, driven by a minimal
//! blocking HTTP/1.1 client (one request per connection, every read bounded by a timeout).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use strahl_status::testing::FakeBackend;
use strahl_status::{StatusConfig, StatusServer};

pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Harness {
    pub addr: SocketAddr,
    pub backend: Arc<FakeBackend>,
    pub dir: tempfile::TempDir,
    pub server: Option<StatusServer>,
    pub rt: tokio::runtime::Runtime,
}

impl Harness {
    pub fn start(config: StatusConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(config, dir)
    }

    pub fn start_in(config: StatusConfig, dir: tempfile::TempDir) -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let backend = Arc::new(FakeBackend::new());
        let server = rt
            .block_on(StatusServer::bind(
                "127.0.0.1:0".parse().unwrap(),
                config,
                backend.clone(),
                dir.path(),
            ))
            .unwrap();
        Harness {
            addr: server.local_addr(),
            backend,
            dir,
            server: Some(server),
            rt,
        }
    }

    /// Stops the server and returns the state dir (to restart on it).
    pub fn stop(mut self) -> tempfile::TempDir {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.shutdown());
        }
        self.dir
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(strahl_status::auth::TOKEN_FILE))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn req(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Resp {
        request(self.addr, method, path, headers, body)
    }

    /// The first-start setup code as stored in the state dir (what the console shows).
    pub fn setup_code(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(strahl_status::setup::SETUP_CODE_FILE))
            .expect("a setup code while no password is set")
            .trim()
            .to_string()
    }

    /// Sets the web password through the first-start API with the setup code, as the page does;
    /// returns (cookie, csrf).
    pub fn set_password(&self, pw: &str) -> (String, String) {
        let body = serde_json::json!({ "password": pw, "setup_code": self.setup_code() });
        let r = self.req(
            "POST",
            "/api/v1/passwd",
            &[("Content-Type", "application/json")],
            Some(&body.to_string()),
        );
        assert_eq!(r.status, 200, "passwd: {}", r.body);
        (
            r.cookie().expect("session cookie"),
            r.json()["csrf"].as_str().unwrap().to_string(),
        )
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Retry-After` seconds of a 429, checked to be within one limiter window.
    pub fn retry_after_s(&self) -> u64 {
        let retry: u64 = self
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .unwrap();
        let window = strahl_status::auth::LOGIN_WINDOW.as_secs();
        assert!((1..=window).contains(&retry), "retry-after {retry}");
        retry
    }

    /// `name=value` of the session cookie set by this response.
    pub fn cookie(&self) -> Option<String> {
        let v = self.header("set-cookie")?;
        Some(v.split(';').next()?.to_string())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("response head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}
