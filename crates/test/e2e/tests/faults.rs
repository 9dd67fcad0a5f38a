//! Fault tests (issue 5, part 4): each process is SIGKILLed mid-stream and the other one, and
//! the supervisor behind `make run` (scripts/run.sh), must do what the issue demands.
//!
//! - [`supervisor_restarts_each_process_after_kill9`]: the real `scripts/run.sh` runs the real
//!   binaries; SIGKILL the data plane → the control plane reports the loss within 1 s
//!   (log, and `/healthz` 503 when the status server answers on the configured port), the
//!   supervisor restarts the data plane after its back-off and the control plane reconnects
//!   (`/healthz` 200 again); SIGKILL the control plane → the data plane sees the disconnect,
//!   the supervisor restarts the control plane, it reconnects; repeated crashes → the supervisor
//!   gives up with a clear message and stops the survivor.
//! - [`sigterm_to_the_supervisor_stops_both_cleanly`]: SIGTERM → both exit cleanly, script 0;
//!   [`ctrl_c_to_the_process_group_stops_both_without_restarts`]: SIGINT to the whole group (a
//!   terminal's Ctrl-C) → the same, and nothing is restarted.
//! - [`control_kill9_stops_the_data_plane_stream_within_a_second`]: a data plane with a session
//!   started by a control plane in another process (this test binary re-executed as
//!   [`fake_control_child`]) and a fake client that sends GameStream pings; SIGKILL the control
//!   process → the data plane stops the session within 1 s, and no UDP reaches the client later
//!   than 1 s after the kill (sniffed on the client's socket); a new control plane is accepted.
//! - [`kill9_mid_moonlight_stream`]: strahl as the README starts it (e2e harness), a real
//!   Moonlight client paired and streaming; the host's media packets are timed on loopback with
//!   an AF_PACKET sniffer (root). SIGKILL the control plane → no media later than 1 s after the
//!   kill, the restarted control plane reconnects; SIGKILL the data plane mid-stream →
//!   `/healthz` 503 within 1 s, the session leaves `/api/v1/status`, the data plane is restarted
//!   and reconnected, `/healthz` 200. What the client sees afterwards (is it told the stream
//!   ended? may it launch again?) is measured and printed, not asserted (control-plane policy).
//!
//! Every wait is bounded; ports are free non-default ones on loopback; state is in a scratch dir.

use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strahl_ipc::socket::SeqPacket;
use strahl_ipc::{MAX_MESSAGE_LEN, Message};

/// Generous bound for anything that should happen "promptly" on a loaded 2-core machine.
const STEP: Duration = Duration::from_secs(20);
/// The bound: the data plane stops emitting within a second of losing the control plane.
const STOP_BOUND: Duration = Duration::from_secs(1);
/// The supervisor's restart back-off in these tests: long enough to observe the "down" state.
const BACKOFF_MS: u64 = 1500;

// ---------------------------------------------------------------------------------------------
// Helpers: binaries, scratch directories, processes with collected output.

/// A strahl binary: the e2e harness's directory (`$STRAHL_BIN_DIR`, else built once with this
/// test's cargo, target directory and profile).
fn bin(name: &str) -> PathBuf {
    strahl_e2e::bin_dir()
        .unwrap_or_else(|e| panic!("{e}"))
        .join(name)
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

struct Scratch(PathBuf);
impl Scratch {
    fn new(tag: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!(
            "strahl-faults-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(p.join("rt")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p.join("rt"), std::fs::Permissions::from_mode(0o700)).unwrap();
        Scratch(p)
    }
    /// `$XDG_RUNTIME_DIR` for both processes: the socket resolves to `rt/strahl/dataplane.sock`.
    fn runtime_dir(&self) -> PathBuf {
        self.0.join("rt")
    }
    fn socket(&self) -> PathBuf {
        self.runtime_dir().join("strahl/dataplane.sock")
    }
    /// A config on loopback with free ports; returns (path, status port).
    fn config(&self) -> (PathBuf, u16) {
        let base = free_base_port();
        let status = base + 1;
        let path = self.0.join("strahl.toml");
        std::fs::write(
            &path,
            format!(
                "[host]\nstate_dir = \"{}\"\n[network]\naddresses = [\"127.0.0.1\"]\n\
                 gamestream_base_port = {base}\nstatus_port = {status}\n",
                self.0.join("state").display()
            ),
        )
        .unwrap();
        (path, status)
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A GameStream base port whose TCP ports (−5, 0, +1 status, +21) are free on loopback now;
/// spread by pid and a counter, below the ephemeral range.
fn free_base_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    for _ in 0..200 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let seed = std::process::id()
            .wrapping_mul(2_654_435_761)
            .wrapping_add(n * 40_503 + 17);
        let base = 20_016 + (seed % 396) as u16 * 32;
        if [base - 5, base, base + 1, base + 21]
            .iter()
            .all(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        {
            return base;
        }
    }
    panic!("no free base port");
}

/// A child whose stdout and stderr lines are collected (with arrival times).
struct Proc {
    name: &'static str,
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Proc {
    fn spawn(name: &'static str, mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for r in [out, err] {
            let sink = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines() {
                    let Ok(line) = line else { break };
                    sink.lock().unwrap().push((Instant::now(), line));
                }
            });
        }
        Proc { name, child, lines }
    }
    fn log(&self) -> String {
        let l = self.lines.lock().unwrap();
        l.iter()
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
    fn count(&self, needle: &str) -> usize {
        let l = self.lines.lock().unwrap();
        l.iter().filter(|(_, s)| s.contains(needle)).count()
    }
    /// Waits for the `n`-th line containing `needle`; returns it and when it arrived.
    fn wait_for_n(&self, needle: &str, n: usize, timeout: Duration) -> (Instant, String) {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let l = self.lines.lock().unwrap();
                if let Some((t, s)) = l.iter().filter(|(_, s)| s.contains(needle)).nth(n - 1) {
                    return (*t, s.clone());
                }
            }
            assert!(
                Instant::now() < deadline,
                "{}: no {n}× {needle:?} within {timeout:?}; output:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?}; output:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM first so a supervisor stops its children; SIGKILL as the bound.
            signal(self.child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

fn alive(pid: u32) -> bool {
    // A zombie still has /proc/<pid>; its state letter is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_owned()))
        .is_some_and(|r| !r.starts_with('Z'))
}

/// GET `path` on the status port: `Some(status code)`, or `None` when nothing listens there.
fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], port).into(),
        Duration::from_secs(2),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace().nth(1)?.parse().ok()
}

/// Polls `/healthz` until it returns `want` (bounded); returns the time it took, or `None` when
/// no status server listens on `port` (not wired into `strahl-control serve` in this build).
fn wait_healthz(port: u16, want: u16, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    loop {
        let got = http_status(port, "/healthz")?;
        if got == want {
            return Some(start.elapsed());
        }
        assert!(
            start.elapsed() < timeout,
            "/healthz stayed {got}, expected {want} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn supervisor(dir: &Scratch, cfg: &Path, restart_max: u32) -> Proc {
    let dp = bin("strahl-dataplane");
    let cp = bin("strahl-control");
    assert_eq!(dp.parent(), cp.parent(), "both binaries in one directory");
    let mut cmd = Command::new(workspace().join("scripts/run.sh"));
    cmd.arg("--config")
        .arg(cfg)
        .env("STRAHL_BIN_DIR", dp.parent().unwrap())
        .env("XDG_RUNTIME_DIR", dir.runtime_dir())
        .env("TMPDIR", &dir.0)
        .env("RUST_LOG", "info")
        .env(
            "STRAHL_CONTROL_ARGS",
            "--no-mdns --stats-interval-ms 200 --connect-timeout-ms 15000",
        )
        .env("STRAHL_BACKOFF_START_MS", BACKOFF_MS.to_string())
        .env("STRAHL_BACKOFF_MAX_MS", (BACKOFF_MS * 2).to_string())
        .env("STRAHL_RESTART_MAX", restart_max.to_string())
        .env("STRAHL_RESTART_WINDOW_S", "120");
    Proc::spawn("run.sh", cmd)
}

/// Parses "data plane pid X, control plane pid Y" from the banner.
fn banner_pids(sup: &Proc) -> (u32, u32) {
    let (_, line) = sup.wait_for_n("strahl is running: data plane pid", 1, STEP);
    let nums: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect();
    (nums[0], nums[1])
}

fn started_pid(sup: &Proc, name: &str, n: usize) -> u32 {
    let (_, line) = sup.wait_for_n(&format!("run: started {name} (pid "), n, STEP);
    line.rsplit("pid ")
        .next()
        .and_then(|s| s.trim_end_matches(')').parse().ok())
        .unwrap()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn supervisor_restarts_each_process_after_kill9() {
    let dir = Scratch::new("sup");
    let (cfg, status_port) = dir.config();
    let sup = supervisor(&dir, &cfg, 3);
    let (dp, cp) = banner_pids(&sup);
    // The banner says where the page is and how to pair.
    sup.wait_for_n(&format!("http://127.0.0.1:{status_port}/"), 1, STEP);
    sup.wait_for_n("strahl-control pin <PIN>", 1, STEP);
    sup.wait_for_n("connected to dataplane", 1, STEP);
    let page = wait_healthz(status_port, 200, STEP);

    // 1. SIGKILL the data plane.
    let t0 = Instant::now();
    signal(dp, "KILL");
    let (lost_at, _) = sup.wait_for_n("lost the data plane", 1, STEP);
    let lost = lost_at.saturating_duration_since(t0);
    assert!(
        lost <= STOP_BOUND,
        "control noticed the loss after {lost:?}"
    );
    let unhealthy = page.map(|_| wait_healthz(status_port, 503, STOP_BOUND).unwrap());
    sup.wait_for_n("run: dataplane died (killed by signal 9)", 1, STEP);
    let dp2 = started_pid(&sup, "dataplane", 2);
    assert_ne!(dp2, dp);
    let (back_at, _) = sup.wait_for_n("connected to dataplane", 2, STEP);
    let reconnect = back_at.saturating_duration_since(t0);
    // Back-off first (the supervisor waits BACKOFF_MS), then the control plane finds it.
    assert!(
        reconnect >= Duration::from_millis(BACKOFF_MS),
        "{reconnect:?}"
    );
    let healthy = page.map(|_| wait_healthz(status_port, 200, STEP).unwrap());
    assert!(
        alive(cp),
        "the control plane survived the data plane's death"
    );

    // 2. SIGKILL the control plane.
    let t1 = Instant::now();
    signal(cp, "KILL");
    let (dp_saw_at, _) = sup.wait_for_n("control plane disconnected", 1, STEP);
    let dp_saw = dp_saw_at.saturating_duration_since(t1);
    assert!(dp_saw <= STOP_BOUND, "data plane noticed after {dp_saw:?}");
    sup.wait_for_n("run: control died (killed by signal 9)", 1, STEP);
    let cp2 = started_pid(&sup, "control", 2);
    let (cp_back_at, _) = sup.wait_for_n("connected to dataplane", 3, STEP);
    let cp_back = cp_back_at.saturating_duration_since(t1);
    assert!(
        alive(dp2),
        "the data plane survived the control plane's death"
    );

    // 3. A crash loop: two more data-plane deaths make three in the window → give up.
    signal(dp2, "KILL");
    let dp3 = started_pid(&sup, "dataplane", 3);
    sup.wait_for_n("connected to dataplane", 4, STEP);
    signal(dp3, "KILL");
    sup.wait_for_n("run: dataplane died 3 times within 120 s", 1, STEP);
    let mut sup = sup;
    let st = sup.wait_exit(STEP);
    assert_eq!(
        st.code(),
        Some(1),
        "give-up exit status; output:\n{}",
        sup.log()
    );
    assert!(
        !alive(cp2),
        "the supervisor stopped the control plane when giving up"
    );
    assert_eq!(sup.count("run: started dataplane"), 3, "{}", sup.log());

    eprintln!(
        "faults: dp kill -9 → control logged the loss after {lost:?}, /healthz 503 after {unhealthy:?}, \
         reconnected after {reconnect:?} (back-off {BACKOFF_MS} ms), /healthz 200 after {healthy:?} more; \
         control kill -9 → data plane logged the disconnect after {dp_saw:?}, restarted control \
         connected after {cp_back:?}; status server {}",
        if page.is_some() {
            "answered"
        } else {
            "NOT listening on the status port (not wired in this build): /healthz unchecked"
        }
    );
}

#[test]
fn sigterm_to_the_supervisor_stops_both_cleanly() {
    let dir = Scratch::new("term");
    let (cfg, _) = dir.config();
    let mut sup = supervisor(&dir, &cfg, 5);
    let (dp, cp) = banner_pids(&sup);
    let t = Instant::now();
    signal(sup.child.id(), "TERM");
    let st = sup.wait_exit(STEP);
    let took = t.elapsed();
    assert_eq!(st.code(), Some(0), "{}", sup.log());
    assert!(!alive(dp) && !alive(cp), "both processes are gone");
    assert_eq!(sup.count("data plane stopped cleanly"), 1, "{}", sup.log());
    assert_eq!(
        sup.count("control plane stopped cleanly"),
        1,
        "{}",
        sup.log()
    );
    assert_eq!(
        sup.count("SIGKILL"),
        0,
        "nobody needed SIGKILL: {}",
        sup.log()
    );
    assert!(!dir.socket().exists(), "the data plane removed its socket");
    eprintln!("faults: SIGTERM to run.sh → both stopped cleanly in {took:?}");
}

#[test]
fn ctrl_c_to_the_process_group_stops_both_without_restarts() {
    // A terminal's Ctrl-C sends SIGINT to the whole foreground group: run.sh and both children
    // get it at once. Nobody may be restarted; everything stops cleanly.
    let dir = Scratch::new("ctrlc");
    let (cfg, _) = dir.config();
    let mut sup = supervisor_in_own_group(&dir, &cfg);
    let (dp, cp) = banner_pids(&sup);
    let pgid = sup.child.id();
    let st = Command::new("kill")
        .args(["-INT", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    assert!(st.success());
    let st = sup.wait_exit(STEP);
    assert_eq!(st.code(), Some(0), "{}", sup.log());
    std::thread::sleep(Duration::from_millis(300));
    assert!(!alive(dp) && !alive(cp), "both processes are gone");
    assert_eq!(
        sup.count("run: started"),
        2,
        "nothing restarted: {}",
        sup.log()
    );
    assert_eq!(sup.count("data plane stopped cleanly"), 1, "{}", sup.log());
    assert_eq!(
        sup.count("control plane stopped cleanly"),
        1,
        "{}",
        sup.log()
    );
}

fn supervisor_in_own_group(dir: &Scratch, cfg: &Path) -> Proc {
    use std::os::unix::process::CommandExt;
    let dp = bin("strahl-dataplane");
    let mut cmd = Command::new(workspace().join("scripts/run.sh"));
    cmd.arg("--config")
        .arg(cfg)
        .env("STRAHL_BIN_DIR", dp.parent().unwrap())
        .env("XDG_RUNTIME_DIR", dir.runtime_dir())
        .env("TMPDIR", &dir.0)
        .env("RUST_LOG", "info")
        .env("STRAHL_CONTROL_ARGS", "--no-mdns")
        .process_group(0);
    Proc::spawn("run.sh", cmd)
}

// ---------------------------------------------------------------------------------------------
// Control plane killed mid-stream: the data plane stops emitting within a second.

const ENV_SOCKET: &str = "STRAHL_FAULTS_CHILD_SOCKET";
const ENV_CLIENT: &str = "STRAHL_FAULTS_CHILD_CLIENT";
const ENV_VIDEO_SRC: &str = "STRAHL_FAULTS_CHILD_VIDEO_SRC";
const PING_PAYLOAD: [u8; 16] = *b"FAULTSPINGPAYLD1";

fn session_start(client: std::net::SocketAddr, video_src: u16) -> Message {
    Message::SessionStart(Box::new(strahl_ipc::SessionStart {
        id: 7,
        protocol: strahl_ipc::Protocol::GameStream,
        peer: client,
        video: strahl_ipc::VideoParams {
            width: 640,
            height: 360,
            fps: 60,
            bitrate_kbps: 5_000,
            packet_size: 1024,
            fec_percent: 20,
            codec: strahl_ipc::Codec::H264,
        },
        audio: strahl_ipc::AudioParams {
            channels: 2,
            sample_rate_hz: 48_000,
            packet_duration_ms: 5,
            bitrate_kbps: 96,
        },
        keys: strahl_ipc::KeyMaterial::GameStream {
            rikey: strahl_ipc::Secret([7; 16]),
            rikeyid: 1,
        },
        ports: strahl_ipc::Ports {
            video_src,
            audio_src: video_src + 1,
            video_dst: client.port(),
            audio_dst: client.port(),
        },
        stream: strahl_ipc::StreamOptions {
            ping_payload: Some(PING_PAYLOAD),
            flags: 0,
            min_fec_packets: 0,
        },
    }))
}

fn hello() -> Message {
    Message::Hello(strahl_ipc::Hello {
        major: strahl_ipc::MAJOR,
        minor: strahl_ipc::MINOR,
        role: strahl_ipc::Role::Control,
        pid: std::process::id(),
        build: "faults test control".into(),
    })
}

fn connect(socket: &Path) -> SeqPacket {
    let deadline = Instant::now() + STEP;
    loop {
        match SeqPacket::connect(socket) {
            Ok(s) => {
                s.set_read_timeout(Some(STEP)).unwrap();
                s.set_write_timeout(Some(STEP)).unwrap();
                return s;
            }
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "connect {}: {e}",
                    socket.display()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Receives until `pred` matches (bounded by the socket's read timeout per message).
fn recv_until(s: &SeqPacket, what: &str, pred: impl Fn(&Message) -> bool) -> Message {
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    for _ in 0..100 {
        let m = s
            .recv_message(&mut buf)
            .unwrap_or_else(|e| panic!("waiting for {what}: {e:?}"))
            .message;
        if pred(&m) {
            return m;
        }
    }
    panic!("no {what} in 100 messages");
}

/// The control plane in its own process (so it can be SIGKILLed): handshake, SessionStart,
/// wait for SessionStarted, say so, then idle until killed.
#[test]
#[ignore = "child process of control_kill9_stops_the_data_plane_stream_within_a_second"]
fn fake_control_child() {
    let Some(socket) = std::env::var_os(ENV_SOCKET).map(PathBuf::from) else {
        return;
    };
    let client: std::net::SocketAddr = std::env::var(ENV_CLIENT).unwrap().parse().unwrap();
    let video_src: u16 = std::env::var(ENV_VIDEO_SRC).unwrap().parse().unwrap();
    let s = connect(&socket);
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    s.send_message(&hello(), &mut buf).unwrap();
    recv_until(&s, "HelloAck", |m| matches!(m, Message::HelloAck(_)));
    s.send_message(&session_start(client, video_src), &mut buf)
        .unwrap();
    recv_until(&s, "SessionStarted", |m| {
        matches!(
            m,
            Message::Event(strahl_ipc::Event::SessionStarted { id: 7 })
        )
    });
    println!("session started");
    // Keep the connection (and the session) until killed; bounded.
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn control_kill9_stops_the_data_plane_stream_within_a_second() {
    let dir = Scratch::new("cpkill");
    let socket = dir.socket();
    let mut dp_cmd = Command::new(bin("strahl-dataplane"));
    dp_cmd
        .arg("--socket")
        .arg(&socket)
        .env("RUST_LOG", "info")
        .env("XDG_RUNTIME_DIR", dir.runtime_dir());
    let dp = Proc::spawn("dataplane", dp_cmd);
    dp.wait_for_n("listening for the control plane", 1, STEP);

    // The fake client: receives whatever the data plane sends and pings its video port.
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let client_addr = client.local_addr().unwrap();
    let video_src = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let arrivals = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sniffer = {
        let (arrivals, stop, client) =
            (arrivals.clone(), stop.clone(), client.try_clone().unwrap());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            let mut last_ping = Instant::now() - Duration::from_secs(1);
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                if last_ping.elapsed() >= Duration::from_millis(100) {
                    // GameStream ping: the payload from RTSP, then a sequence number.
                    let mut ping = PING_PAYLOAD.to_vec();
                    ping.extend_from_slice(&1u32.to_be_bytes());
                    let _ = client.send_to(&ping, ("127.0.0.1", video_src));
                    last_ping = Instant::now();
                }
                if client.recv_from(&mut buf).is_ok() {
                    arrivals.lock().unwrap().push(Instant::now());
                }
            }
        })
    };

    let mut child_cmd = Command::new(std::env::current_exe().unwrap());
    child_cmd
        .args([
            "fake_control_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_SOCKET, &socket)
        .env(ENV_CLIENT, client_addr.to_string())
        .env(ENV_VIDEO_SRC, video_src.to_string());
    let mut ctl = Proc::spawn("fake control", child_cmd);
    ctl.wait_for_n("session started", 1, STEP);
    // Let the stream run (when the data plane has a media pipeline) before the kill.
    std::thread::sleep(Duration::from_millis(1500));
    let before = arrivals.lock().unwrap().len();

    let t0 = Instant::now();
    signal(ctl.child.id(), "KILL");
    ctl.wait_exit(STEP);
    let (stopped_at, line) = dp.wait_for_n("control plane disconnected; stopping", 1, STEP);
    let stopped = stopped_at.saturating_duration_since(t0);
    assert!(line.contains("stopping 1 session"), "{line}");
    assert!(
        stopped <= STOP_BOUND,
        "data plane stopped the session after {stopped:?}"
    );
    // Sniff for 2 s more: nothing may arrive later than STOP_BOUND after the kill.
    std::thread::sleep(STOP_BOUND * 2 + Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sniffer.join().unwrap();
    let arrivals = arrivals.lock().unwrap();
    let after_kill: Vec<Duration> = arrivals
        .iter()
        .filter(|t| **t >= t0)
        .map(|t| t.duration_since(t0))
        .collect();
    let last = after_kill.last().copied();
    assert!(
        last.is_none_or(|l| l <= STOP_BOUND),
        "the data plane kept emitting {last:?} after the control plane died ({} packets after \
         the kill)",
        after_kill.len()
    );

    // The data plane waits for a new control plane and accepts it.
    let s = connect(&socket);
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    s.send_message(&hello(), &mut buf).unwrap();
    recv_until(&s, "HelloAck", |m| matches!(m, Message::HelloAck(_)));
    assert!(alive(dp.child.id()));
    eprintln!(
        "faults: control kill -9 mid-stream → data plane stopped the session after {stopped:?}; \
         {before} UDP packets reached the client before the kill, {} after it, last at {last:?} \
         (bound {STOP_BOUND:?}){}",
        after_kill.len(),
        if before == 0 {
            "; the data plane emitted no media in this build (no media pipeline yet), so the \
             emission bound held vacuously and the session stop is what was measured"
        } else {
            ""
        }
    );
}

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
