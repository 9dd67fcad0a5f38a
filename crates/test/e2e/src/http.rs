//! The instance's status server as a test reads it: plain GETs (inside its namespace when it
//! has one), `/api/v1/status`, the Prometheus `/metrics` and sums over their series.
//!
//! Contract: every request is bounded by `HTTP_TIMEOUT` and `HTTP_MAX_BYTES`; a status other
//! than 200 is an error; [`Strahl::wait_metric`] polls, bounded by its timeout. Imports
//! [`crate::instance`] and [`crate::error`].

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::instance::Strahl;

/// One HTTP request to the status server.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest HTTP body the harness reads.
const HTTP_MAX_BYTES: u64 = 16 << 20;

impl Strahl {
    /// The address clients and the harness reach this instance at.
    pub fn addr(&self) -> Ipv4Addr {
        self.netns.as_ref().map_or(Ipv4Addr::LOCALHOST, |n| n.addr)
    }

    /// GET `path` from the status server (from inside the instance's namespace); the body when
    /// the status is 200.
    pub fn http_get(&self, path: &str) -> Result<String> {
        match &self.netns {
            None => http_get(self.ports.status, path),
            Some(n) => http_get_in_netns(&n.ns, n.addr, self.ports.status, path),
        }
    }

    /// `/api/v1/status` as JSON (reads are open in the harness's configs and the default).
    pub fn status(&self) -> Result<serde_json::Value> {
        let body = self.http_get("/api/v1/status")?;
        serde_json::from_str(&body)
            .map_err(|e| Error::Setup(format!("/api/v1/status is not JSON ({e}): {body}")))
    }

    /// The status server's Prometheus `/metrics` (data-plane series merged in by the control
    /// plane's stats poll): series key (`name` or `name{labels}` as printed) → value.
    pub fn metrics(&self) -> Result<BTreeMap<String, f64>> {
        let text = self.http_get("/metrics")?;
        Ok(parse_prometheus(&text))
    }

    /// Sum of the series of `name` whose labels include every `k="v"` in `labels` (the status
    /// server adds a `process` label to each series; this sums over what is not asked for).
    /// `None` when no series matches.
    pub fn metric_sum(m: &BTreeMap<String, f64>, name: &str, labels: &[&str]) -> Option<f64> {
        let mut sum = None;
        for (key, v) in m {
            let (n, l) = match key.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (key.as_str(), ""),
            };
            let have: Vec<&str> = l.split(',').map(str::trim).collect();
            if n == name && labels.iter().all(|want| have.contains(want)) {
                sum = Some(sum.unwrap_or(0.0) + v);
            }
        }
        sum
    }

    /// Polls `/metrics` (bounded) until [`metric_sum`](Self::metric_sum)`(name, labels)`
    /// satisfies `pred`; returns its last value (`None` when it never appeared).
    pub fn wait_metric(
        &self,
        name: &str,
        labels: &[&str],
        pred: impl Fn(f64) -> bool,
        timeout: Duration,
    ) -> Option<f64> {
        let t0 = Instant::now();
        let mut last = None;
        loop {
            if let Ok(m) = self.metrics() {
                last = Strahl::metric_sum(&m, name, labels).or(last);
                if last.is_some_and(&pred) {
                    return last;
                }
            }
            if t0.elapsed() > timeout {
                return last;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Prometheus text → series key (`name` or `name{labels}` as printed) → value.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some((key, val)) = line.rsplit_once(' ')
            && let Ok(v) = val.trim().parse::<f64>()
        {
            out.insert(key.trim().to_string(), v);
        }
    }
    out
}

/// GET `http://addr:port/path` from inside namespace `ns` (`ip netns exec … curl`: sockets of
/// the harness's own namespace cannot reach it); the body when the status is 200.
fn http_get_in_netns(ns: &str, addr: Ipv4Addr, port: u16, path: &str) -> Result<String> {
    let url = format!("http://{addr}:{port}{path}");
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-sS", "--max-time"])
        .arg(HTTP_TIMEOUT.as_secs().to_string())
        .args(["--max-filesize", &HTTP_MAX_BYTES.to_string()])
        // The status code on a line of its own after the body.
        .args(["-w", "\n%{http_code}", &url])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Error::Setup(format!(
                "run curl in {ns} (scripts/setup.sh installs it): {e}"
            ))
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    if !out.status.success() || code.trim() != "200" {
        return Err(Error::Setup(format!(
            "GET {url} in {ns}: HTTP {} ({}) {}",
            code.trim(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(body.to_string())
}

/// A minimal HTTP/1.0 GET on loopback; the body when the status is 200.
fn http_get(port: u16, path: &str) -> Result<String> {
    let err = |e: std::io::Error| Error::Setup(format!("GET 127.0.0.1:{port}{path}: {e}"));
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), HTTP_TIMEOUT).map_err(err)?;
    s.set_read_timeout(Some(HTTP_TIMEOUT)).map_err(err)?;
    s.set_write_timeout(Some(HTTP_TIMEOUT)).map_err(err)?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(err)?;
    let mut raw = Vec::new();
    // Bounded by the read timeout and by the server closing (HTTP/1.0).
    s.take(HTTP_MAX_BYTES).read_to_end(&mut raw).map_err(err)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.lines().next().is_some_and(|l| l.contains(" 200")) {
        return Err(Error::Setup(format!(
            "GET {path}: {}",
            head.lines().next().unwrap_or("no status line")
        )));
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sum_matches_name_and_every_asked_label() {
        let m: BTreeMap<String, f64> = [
            (r#"a_total{process="control",result="lost"}"#, 1.0),
            (r#"a_total{process="dataplane",result="lost"}"#, 2.0),
            (r#"a_total{process="control",result="recovered"}"#, 4.0),
            (r#"a_total_other{result="lost"}"#, 8.0),
            ("b", 16.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(Strahl::metric_sum(&m, "a_total", &[]), Some(7.0));
        assert_eq!(
            Strahl::metric_sum(&m, "a_total", &[r#"result="lost""#]),
            Some(3.0)
        );
        assert_eq!(
            Strahl::metric_sum(&m, "a_total", &[r#"result="lost""#, r#"process="control""#]),
            Some(1.0)
        );
        assert_eq!(Strahl::metric_sum(&m, "b", &[]), Some(16.0));
        assert_eq!(Strahl::metric_sum(&m, "c", &[]), None);
        assert_eq!(Strahl::metric_sum(&m, "b", &[r#"x="y""#]), None);
    }
}
