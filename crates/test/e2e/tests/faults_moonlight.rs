//! Fault test (issue 5, part 4) with a real Moonlight stream.
//!
//! [`kill9_mid_moonlight_stream`]: strahl as the README starts it (e2e harness), a real
//! Moonlight client paired and streaming; the host's media packets are timed on loopback with
//! an AF_PACKET sniffer (root). SIGKILL the control plane → no media later than 1 s after the
//! kill, the restarted control plane reconnects; SIGKILL the data plane mid-stream →
//! `/healthz` 503 within 1 s, the session leaves `/api/v1/status`, the data plane is restarted
//! and reconnected, `/healthz` 200. What the client sees afterwards (is it told the stream
//! ended? may it launch again?) is measured and printed, not asserted (control-plane policy).
//!
//! Every wait is bounded; ports are free non-default ones on loopback; state is in a scratch dir.

mod faults_support;

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faults_support::*;

// ---------------------------------------------------------------------------------------------
// A real Moonlight stream (the e2e harness and driver), each process SIGKILLed mid-stream.

/// Records when a UDP packet *from* one of `src_ports` on 127.0.0.1 crosses loopback: an
/// AF_PACKET socket (IPv4, cooked) sees every packet of every process, so the host's media to
/// the Moonlight client is timed without touching the client. Needs CAP_NET_RAW (root).
struct Sniffer {
    arrivals: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sniffer {
    fn start(src_ports: Vec<u16>) -> Sniffer {
        const ETH_P_IP: u16 = 0x0800;
        let sock = socket2::Socket::new(
            socket2::Domain::PACKET,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::from(i32::from(ETH_P_IP.to_be()))),
        )
        .expect(
            "AF_PACKET socket (the fault tests sniff loopback and need CAP_NET_RAW: run as root)",
        );
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (arrivals, stop) = (arrivals.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                let deadline = Instant::now() + Duration::from_secs(300);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline
                {
                    let Ok(n) = (&sock).read(&mut buf) else {
                        continue;
                    };
                    let p = &buf[..n];
                    if n < 28 || p[0] >> 4 != 4 || p[9] != 17 || p[12..16] != [127, 0, 0, 1] {
                        continue;
                    }
                    let ihl = usize::from(p[0] & 0x0f) * 4;
                    if n < ihl + 8 {
                        continue;
                    }
                    let src = u16::from_be_bytes([p[ihl], p[ihl + 1]]);
                    if src_ports.contains(&src) {
                        arrivals.lock().unwrap().push(Instant::now());
                    }
                }
            })
        };
        Sniffer {
            arrivals,
            stop,
            thread: Some(thread),
        }
    }
    fn count(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }
    /// Packets seen at or after `t0`, as offsets from it.
    fn after(&self, t0: Instant) -> Vec<Duration> {
        let a = self.arrivals.lock().unwrap();
        a.iter()
            .filter(|t| **t >= t0)
            .map(|t| t.duration_since(t0))
            .collect()
    }
    /// Waits until `n` packets were seen; false after `timeout`.
    fn reach(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.count() < n {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }
    fn wait_packets(&self, n: usize, timeout: Duration, what: &str) {
        assert!(
            self.reach(n, timeout),
            "{what}: fewer than {n} media packets in {timeout:?}"
        );
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a Moonlight stream client (no decode: the test watches packets, not pictures).
fn stream_client(s: &strahl_e2e::Strahl, client_dir: &Path) -> strahl_e2e::Driver {
    let mut args = vec!["stream".to_string()];
    args.extend(s.client_args());
    args.extend(
        [
            "--config",
            &client_dir.display().to_string(),
            "--frames",
            "3600",
            "--no-decode",
            "--timeout",
            "60",
        ]
        .map(String::from),
    );
    strahl_e2e::Driver::spawn(&args).unwrap_or_else(|e| panic!("{e}"))
}

/// `/api/v1/status` `sessions` length (reads are open by default), `None` when unreachable.
fn status_sessions(port: u16) -> Option<usize> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let json = body.split_once("\r\n\r\n")?.1;
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["sessions"].as_array().map(Vec::len)
}

/// How long the test leaves the Moonlight client alone after the data plane's death.
const CLIENT_END_WAIT: Duration = Duration::from_secs(20);

#[test]
fn kill9_mid_moonlight_stream() {
    let opts = strahl_e2e::Options {
        env: vec![("STRAHL_BACKOFF_START_MS".into(), BACKOFF_MS.to_string())],
        ..Default::default()
    };
    let s = strahl_e2e::Strahl::start(opts).unwrap_or_else(|e| panic!("{e}"));
    let status = s.ports.status;
    let client_dir = s.dir.join("moonlight-client");
    s.pair(&client_dir).unwrap_or_else(|e| panic!("{e}"));
    let sniff = Sniffer::start(vec![s.ports.video, s.ports.audio]);

    // 1. The control plane dies mid-stream: the data plane stops emitting within 1 s.
    let stream = stream_client(&s, &client_dir);
    sniff.wait_packets(500, Duration::from_secs(60), "first stream");
    let (_, cp) = s.pids().unwrap();
    let before = sniff.count();
    let t0 = Instant::now();
    signal(cp, "KILL");
    std::thread::sleep(STOP_BOUND * 2 + Duration::from_millis(500));
    let after = sniff.after(t0);
    let last = after.last().copied();
    assert!(
        last.is_none_or(|l| l <= STOP_BOUND),
        "media kept flowing {last:?} after the control plane was killed ({} packets after)",
        after.len()
    );
    drop(stream);
    s.wait_log_n("connected to dataplane", 2, STEP)
        .unwrap_or_else(|e| panic!("{e}"));
    let cp_down = wait_healthz(status, 200, STEP).expect("status server of the restarted control");

    // 2. The data plane dies mid-stream: control reports it (/healthz 503, no sessions), the
    //    supervisor restarts it, control reconnects, and a new stream runs.
    let stream = stream_client(&s, &client_dir);
    let n = sniff.count();
    sniff.wait_packets(n + 500, Duration::from_secs(60), "second stream");
    wait_for_sessions(status, |k| k == 1, "one running session");
    let (dp, _) = s.pids().unwrap();
    let t1 = Instant::now();
    signal(dp, "KILL");
    let unhealthy = wait_healthz(status, 503, STOP_BOUND).expect("status server");
    wait_for_sessions(status, |k| k == 0, "the session ended with the data plane");
    let ended = t1.elapsed();
    s.wait_log("session(s) ended with it", STEP)
        .unwrap_or_else(|e| panic!("{e}"));
    s.wait_log_n("connected to dataplane", 3, STEP)
        .unwrap_or_else(|e| panic!("{e}"));
    let back = t1.elapsed();
    wait_healthz(status, 200, STEP).expect("status server");
    // The Moonlight client is left alone: does the host end its stream (the client exits)?
    let client_ended = stream.finish(CLIENT_END_WAIT).is_ok().then(|| t1.elapsed());
    // A new launch by the same client: reported, not asserted — GameStream keeps the app
    // "running" after its stream ends (a client resumes it or quits it with /cancel), so a
    // plain /launch may be refused as busy; what the control plane does here is its owner's call.
    let n = sniff.count();
    let relaunch = stream_client(&s, &client_dir);
    let relaunched = sniff.reach(n + 500, Duration::from_secs(30));
    let relaunch_out = if relaunched {
        "a new stream flows".to_string()
    } else {
        let out = format!("{:?}", relaunch.finish(STEP));
        if out.contains("already running") {
            "/launch refused: an app is already running (busy)".to_string()
        } else {
            format!("no stream: {out}")
        }
    };
    eprintln!(
        "faults: real Moonlight stream: control kill -9 → {before} media packets before, {} \
         after, last {last:?} after the kill (bound {STOP_BOUND:?}); /healthz 200 again \
         {cp_down:?} after reconnecting; data plane kill -9 → /healthz 503 after {unhealthy:?}, \
         session gone from /api/v1/status after {ended:?}, reconnected after {back:?}; the \
         Moonlight client's stream ended by itself after {client_ended:?} (None = still running \
         {CLIENT_END_WAIT:?} later); relaunch: {relaunch_out}",
        after.len()
    );
}

fn wait_for_sessions(port: u16, ok: impl Fn(usize) -> bool, what: &str) {
    let deadline = Instant::now() + STEP;
    loop {
        if status_sessions(port).is_some_and(&ok) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/api/v1/status never showed {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
