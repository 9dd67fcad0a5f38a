//! Checks `netns_media.rs` runs on a streaming instance: the operator's grant for clients paired
//! after the first (the real CLI), and video encryption as a sniffer on the client's veth saw it
//! (`driver/sniff.py --video-port`). Every wait is bounded.

use std::time::{Duration, Instant};

use serde_json::Value;
use strahl_e2e::{Driver, Strahl};

fn ok<T>(r: strahl_e2e::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A client paired after the first may view and list only (issue 13 item 5): the operator
/// grants every later client everything with the real CLI (`clients perm ID all`).
pub fn grant_launch_to_later_clients(s: &Strahl) {
    // The status server listens on the instance's address, not on the CLI's default 127.0.0.1.
    let url = format!("{}:{}", s.addr(), s.ports.status);
    let (code, text) = ok(s.control_cli(&["clients", "--json", "--url", &url]));
    assert_eq!(code, 0, "{text}");
    let list: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    let mut granted = 0;
    for c in list["clients"].as_array().into_iter().flatten() {
        let may_launch = c["permissions"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x == "launch"));
        if c["protocol"] == "gamestream" && !may_launch {
            let id = c["id"].as_str().unwrap_or_default();
            let (code, out) = ok(s.control_cli(&["clients", "--url", &url, "perm", id, "all"]));
            assert_eq!(code, 0, "{out}");
            assert!(out.contains("launch"), "{out}");
            granted += 1;
        }
    }
    assert_eq!(
        granted, 1,
        "the second client should have needed the grant: {list}"
    );
}

/// The sniffer's latest video counts (see the module header): ≥ `frames` video datagrams; with
/// clear video a clear NAL start in at least half as many, else in none; the host's ANNOUNCE
/// line says which it negotiated.
pub fn check_video_on_the_wire(sniffer: &Driver, s: &Strahl, clear_video: bool, frames: u64) {
    // The sniffer prints its counts every second; the stream has ended, so wait for a print
    // made after it (bounded).
    let t0 = Instant::now();
    let seen = |d: &Driver| {
        d.lines_so_far()
            .into_iter()
            .filter(|l| l["step"] == "video")
            .count()
    };
    let before = seen(sniffer);
    while seen(sniffer) < before + 2 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let last = sniffer
        .lines_so_far()
        .into_iter()
        .rev()
        .find(|l| l["step"] == "video")
        .unwrap_or_else(|| {
            panic!(
                "the sniffer reported no video counts: {:?}",
                sniffer.lines_so_far()
            )
        });
    let packets = last["packets"].as_u64().unwrap_or(0);
    let clear = last["clear_nal"].as_u64().unwrap_or(u64::MAX);
    let log = tail(&s.log(), 60);
    assert!(
        packets >= frames,
        "the sniffer saw {packets} video datagrams: {last}\n{log}"
    );
    if clear_video {
        assert!(
            clear >= frames / 2,
            "encryption off, yet only {clear} of {packets} video datagrams show a clear H.264 NAL \
             start: the detector is broken\n{log}"
        );
        assert!(s.log_count("video in clear") >= 1, "{log}");
    } else {
        assert_eq!(
            clear, 0,
            "{clear} of {packets} video datagrams carry a clear H.264 NAL start under \
             encryption \"preferred\": {last}\n{log}"
        );
        assert!(s.log_count("video encrypted") >= 1, "{log}");
    }
}
