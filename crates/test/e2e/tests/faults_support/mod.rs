//! Helpers shared by the fault tests (`faults*.rs`): the strahl binaries, scratch directories,
//! child processes whose output lines are collected with arrival times, signals, `/healthz`
//! polling and the supervisor (`scripts/run.sh`) started on a test config.
//! Each test binary uses a part of them.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous bound for anything that should happen "promptly" on a loaded 2-core machine.
pub const STEP: Duration = Duration::from_secs(20);
/// The bound: the data plane stops emitting within a second of losing the control plane.
pub const STOP_BOUND: Duration = Duration::from_secs(1);
/// The supervisor's restart back-off in these tests: long enough to observe the "down" state.
pub const BACKOFF_MS: u64 = 1500;

// ---------------------------------------------------------------------------------------------
// Helpers: binaries, scratch directories, processes with collected output.

/// A strahl binary: the e2e harness's directory (`$STRAHL_BIN_DIR`, else built once with this
/// test's cargo, target directory and profile).
pub fn bin(name: &str) -> PathBuf {
    strahl_e2e::bin_dir()
        .unwrap_or_else(|e| panic!("{e}"))
        .join(name)
}

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

pub struct Scratch(pub PathBuf);
impl Scratch {
    pub fn new(tag: &str) -> Scratch {
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
    pub fn runtime_dir(&self) -> PathBuf {
        self.0.join("rt")
    }
    pub fn socket(&self) -> PathBuf {
        self.runtime_dir().join("strahl/dataplane.sock")
    }
    /// A config on loopback with free ports; returns (path, status port).
    pub fn config(&self) -> (PathBuf, u16) {
        let base = free_base_port();
        let status = base + 1;
        let path = self.0.join("strahl.toml");
        std::fs::write(
            &path,
            format!(
                "[host]\nstate_dir = \"{}\"\n[network]\naddresses = [\"127.0.0.1\"]\n\
                 gamestream_base_port = {base}\nstatus_port = {status}\n\
                 [dataplane]\ninterface = \"lo\"\n",
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
pub fn free_base_port() -> u16 {
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
pub struct Proc {
    pub name: &'static str,
    pub child: Child,
    pub lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Proc {
    pub fn spawn(name: &'static str, mut cmd: Command) -> Proc {
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
    pub fn log(&self) -> String {
        let l = self.lines.lock().unwrap();
        l.iter()
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
    pub fn count(&self, needle: &str) -> usize {
        let l = self.lines.lock().unwrap();
        l.iter().filter(|(_, s)| s.contains(needle)).count()
    }
    /// Waits for the `n`-th line containing `needle`; returns it and when it arrived.
    pub fn wait_for_n(&self, needle: &str, n: usize, timeout: Duration) -> (Instant, String) {
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
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
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

pub fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

pub fn alive(pid: u32) -> bool {
    // A zombie still has /proc/<pid>; its state letter is Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_owned()))
        .is_some_and(|r| !r.starts_with('Z'))
}

/// GET `path` on the status port: `Some(status code)`, or `None` when nothing listens there.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
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
pub fn wait_healthz(port: u16, want: u16, timeout: Duration) -> Option<Duration> {
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

/// `scripts/run.sh --config cfg` on the test binaries, its runtime and log directories in `dir`;
/// `control_args` go to `strahl-control serve`.
pub fn supervisor_command(dir: &Scratch, cfg: &Path, control_args: &str) -> Command {
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
        .env("STRAHL_CONTROL_ARGS", control_args);
    cmd
}

pub fn supervisor(dir: &Scratch, cfg: &Path, restart_max: u32) -> Proc {
    let mut cmd = supervisor_command(
        dir,
        cfg,
        "--no-mdns --stats-interval-ms 200 --connect-timeout-ms 15000",
    );
    cmd.env("STRAHL_BACKOFF_START_MS", BACKOFF_MS.to_string())
        .env("STRAHL_BACKOFF_MAX_MS", (BACKOFF_MS * 2).to_string())
        .env("STRAHL_RESTART_MAX", restart_max.to_string())
        .env("STRAHL_RESTART_WINDOW_S", "120");
    Proc::spawn("run.sh", cmd)
}

/// Parses "data plane pid X, control plane pid Y" from the banner.
pub fn banner_pids(sup: &Proc) -> (u32, u32) {
    let (_, line) = sup.wait_for_n("strahl is running: data plane pid", 1, STEP);
    let nums: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect();
    (nums[0], nums[1])
}

pub fn started_pid(sup: &Proc, name: &str, n: usize) -> u32 {
    let (_, line) = sup.wait_for_n(&format!("run: started {name} (pid "), n, STEP);
    line.rsplit("pid ")
        .next()
        .and_then(|s| s.trim_end_matches(')').parse().ok())
        .unwrap()
}
