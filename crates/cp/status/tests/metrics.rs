//! `/metrics` must parse with the reference Prometheus parser (Python `prometheus_client`,
//! installed into the repo `.venv` by scripts/setup.sh). A missing parser fails the test with
//! a clear message: it never passes silently.
mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Harness;
use strahl_status::StatusConfig;

const PARSER_TIMEOUT: Duration = Duration::from_secs(60);

/// Parses the text on stdin; prints one line per sample: name<TAB>labels-json<TAB>value.
const PARSE_PY: &str = r##"
import sys, json
from prometheus_client.parser import text_string_to_metric_families
text = sys.stdin.read()
n = 0
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        print(f"{fam.type}\t{s.name}\t{json.dumps(s.labels, sort_keys=True)}\t{s.value}")
        n += 1
print(f"#samples\t{n}")
"##;

fn python() -> String {
    // The reference Prometheus parser; this test refuses to pass without it.
    strahl_testkit::python::python_with("prometheus_client.parser")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn parse(py: &str, text: &str) -> Vec<(String, String, String, f64)> {
    let mut child = Command::new(py)
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
    let deadline = Instant::now() + PARSER_TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "parser did not finish in {PARSER_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected /metrics:\n{}\n--- text ---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut rows = Vec::new();
    let mut count = None;
    for line in stdout.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f[0] == "#samples" {
            count = Some(f[1].parse::<usize>().unwrap());
            continue;
        }
        rows.push((
            f[0].to_string(),
            f[1].to_string(),
            f[2].to_string(),
            f[3].parse().unwrap(),
        ));
    }
    assert_eq!(count, Some(rows.len()));
    rows
}

#[test]
fn metrics_parse_with_prometheus_client_and_counters_move() {
    let py = python();
    let h = Harness::start(StatusConfig::default());
    let r1 = h.req("GET", "/metrics", &[], None);
    assert_eq!(r1.status, 200);
    assert!(
        r1.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let a = parse(&py, &r1.body);
    // Every declared series is exported once.
    assert_eq!(a.len(), strahl_metrics::SERIES, "{}", r1.body);
    let video = |rows: &[(String, String, String, f64)]| {
        rows.iter()
            .find(|(t, n, l, _)| {
                t == "counter" && n == "strahl_packets_sent_total" && l == r#"{"stream": "video"}"#
            })
            .map(|r| r.3)
            .unwrap_or_else(|| panic!("no video packets counter in {rows:?}"))
    };
    let chosen: Vec<_> = a
        .iter()
        .filter(|r| r.1 == "strahl_transport_chosen" && r.3 == 1.0)
        .collect();
    assert_eq!(chosen.len(), 1, "{chosen:?}");
    assert!(chosen[0].2.contains("sendmmsg"));
    std::thread::sleep(Duration::from_millis(200));
    let b = parse(&py, &h.req("GET", "/metrics", &[], None).body);
    assert!(
        video(&b) > video(&a),
        "the fake session's counter moves: {} -> {}",
        video(&a),
        video(&b)
    );
    // The same table feeds the status JSON.
    let bearer = format!("Bearer {}", h.token());
    let s = h
        .req("GET", "/api/v1/status", &[("Authorization", &bearer)], None)
        .json();
    let names: Vec<&str> = s["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    for d in strahl_metrics::TABLE {
        assert!(names.contains(&d.name), "{} missing from the JSON", d.name);
    }
}
