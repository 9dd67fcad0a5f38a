//! Helpers for the two-process tests: locating (building) the data-plane binary, running child
//! processes with captured logs, bounded waits, and raw IPC peers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use strahl_ipc::socket::{MsgError, SeqPacket};
use strahl_ipc::{Decoded, MAX_MESSAGE_LEN, Message};

/// Generous bound for anything that should happen "promptly" on a loaded 2-core machine.
pub const STEP: Duration = Duration::from_secs(10);

/// The `strahl-dataplane` binary. Binaries of other packages are not exposed to this crate's
/// tests, so build it with the same cargo, target directory and profile as this test binary
/// (a no-op when it is up to date) and take the path cargo reports.
pub fn dataplane_bin() -> PathBuf {
    workspace_bin("strahl-dataplane")
}

/// A binary of another workspace package (named like its package): binaries of other packages
/// are not exposed to this crate's tests, so build it with the same cargo, target directory and
/// profile as this test binary (a no-op when it is up to date) and take the path cargo reports.
/// Built once per test binary.
pub fn workspace_bin(package: &'static str) -> PathBuf {
    static BINS: OnceLock<Mutex<std::collections::BTreeMap<&'static str, PathBuf>>> =
        OnceLock::new();
    let bins = BINS.get_or_init(Default::default);
    // Held across the build: concurrent tests wait for the one build instead of racing cargo.
    let mut bins = bins.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = bins.get(package) {
        return p.clone();
    }
    let exe = std::env::current_exe().expect("test exe path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("<target>/<profile>/deps/<test>");
    let target_dir = profile_dir.parent().expect("<target>");
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(&workspace)
        .args([
            "build",
            "-p",
            package,
            "--bin",
            package,
            "--message-format=json",
        ])
        .arg("--target-dir")
        .arg(target_dir);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo build");
    assert!(out.status.success(), "building {package} failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let name = format!("\"{package}\"");
    let exe = stdout
        .lines()
        .filter(|l| l.contains("\"compiler-artifact\"") && l.contains(&name))
        .filter_map(|l| {
            let at = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = l[at..].find('"')?;
            Some(PathBuf::from(&l[at..at + end]))
        })
        .next_back()
        .unwrap_or_else(|| panic!("cargo reported no {package} executable"));
    assert!(exe.exists(), "{}", exe.display());
    bins.insert(package, exe.clone());
    exe
}

pub fn control_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_strahl-control"))
}

/// A unique scratch directory for one test (removed on drop).
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p =
            std::env::temp_dir().join(format!("strahl-ctl-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
    pub fn socket(&self) -> PathBuf {
        self.0.join("run/dataplane.sock")
    }

    pub fn admin_socket(&self) -> PathBuf {
        self.0.join("run/control.sock")
    }

    /// Writes (once) a configuration for this test: loopback only, a free GameStream base port
    /// (tests run in parallel), state in the scratch directory. Returns (path, base port).
    pub fn config(&self) -> (PathBuf, u16) {
        let path = self.0.join("strahl.toml");
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Some(port) = text
                .lines()
                .find_map(|l| l.strip_prefix("gamestream_base_port = "))
                .and_then(|p| p.trim().parse().ok())
        {
            return (path, port);
        }
        let base = free_base_port();
        let text = format!(
            "[host]\nstate_dir = \"{}\"\n[network]\naddresses = [\"127.0.0.1\"]\ngamestream_base_port = {base}\nstatus_port = {}\n",
            self.0.join("state").display(),
            // base + 1 (47990 for the default base): inside this base's reserved window, so
            // parallel tests' status servers do not collide.
            base + 1
        );
        std::fs::write(&path, text).unwrap();
        (path, base)
    }

    /// `serve` arguments with this test's configuration, no mDNS, and `rest`.
    pub fn serve_args(&self, rest: &[&str]) -> Vec<String> {
        let (cfg, _) = self.config();
        let mut v: Vec<String> = vec![
            "serve".into(),
            "--config".into(),
            cfg.display().to_string(),
            "--no-mdns".into(),
        ];
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    }
}

/// A GameStream base port whose TCP ports (HTTPS −5, HTTP, RTSP +21) are free on loopback now.
/// Candidates come from the pid and a counter so parallel tests and processes spread out.
pub fn free_base_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    // Process-wide: tests running in parallel threads must draw different candidates.
    static NEXT: AtomicU32 = AtomicU32::new(0);
    for _ in 0..200 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let seed = std::process::id()
            .wrapping_mul(2_654_435_761)
            .wrapping_add(n * 40_503);
        // 20000..32640 in steps of 32: never overlaps another base's −5..+21 window, and stays
        // below Linux's ephemeral range (32768..) that other tests' port-0 binds draw from.
        let base = 20_000 + (seed % 396) as u16 * 32;
        let free = [base - 5, base, base + 21]
            .iter()
            .all(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no free GameStream base port found");
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process whose stderr (the log) is collected line by line.
pub struct Proc {
    pub name: &'static str,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    status: Option<ExitStatus>,
    reader: Option<std::thread::JoinHandle<()>>,
    signalled: Option<Instant>,
}

impl Proc {
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(name: &'static str, bin: &Path, args: &[S]) -> Proc {
        Proc::spawn_env(name, bin, args, &[])
    }

    /// [`Proc::spawn`] with extra environment variables (e.g. systemd's `RUNTIME_DIRECTORY`).
    pub fn spawn_env<S: AsRef<std::ffi::OsStr>>(
        name: &'static str,
        bin: &Path,
        args: &[S],
        env: &[(&str, &Path)],
    ) -> Proc {
        let mut child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Proc {
            name,
            child,
            lines,
            status: None,
            reader: Some(reader),
            signalled: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    pub fn count(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits until at least `n` log lines contain `needle`.
    pub fn wait_for_n(&self, needle: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.count(needle) < n {
            assert!(
                Instant::now() < deadline,
                "{}: no {n}× {needle:?} within {timeout:?}; log:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_for(&self, needle: &str) {
        self.wait_for_n(needle, 1, STEP);
    }

    pub fn signal(&mut self, sig: &str) {
        self.signalled = Some(Instant::now());
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(st.success(), "kill -{sig} {}", self.pid());
    }

    /// Waits for the exit (bounded); returns the status and the time since the last signal
    /// (or since the call). The whole log has been collected when this returns.
    pub fn wait_exit(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let took = self.signalled.unwrap_or(start).elapsed();
                self.status = Some(st);
                // stderr reaches EOF when the process is gone: the reader ends promptly.
                if let Some(r) = self.reader.take() {
                    let _ = r.join();
                }
                return (st, took);
            }
            assert!(
                start.elapsed() < timeout,
                "{} did not exit within {timeout:?}; log:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts a data plane on `socket` and waits until it listens. Its transport self-test runs
/// on loopback: on the default-route interface it would probe the gateway, and tests send
/// nothing off this machine.
pub fn start_dataplane(socket: &Path) -> Proc {
    let p = Proc::spawn(
        "dataplane",
        &dataplane_bin(),
        &["--socket", socket.to_str().unwrap(), "--interface", "lo"],
    );
    p.wait_for("listening for the control plane");
    p
}

/// Connects a raw (blocking) peer with a bounded read timeout.
pub fn raw_connect(socket: &Path) -> SeqPacket {
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

pub fn send_raw(s: &SeqPacket, bytes: &[u8]) {
    s.send(bytes).unwrap();
}

pub fn send(s: &SeqPacket, m: &Message) {
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    s.send_message(m, &mut buf).unwrap();
}

pub fn recv(s: &SeqPacket) -> Result<Decoded, MsgError> {
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    s.recv_message(&mut buf)
}
