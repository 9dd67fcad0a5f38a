//! End-to-end harness: strahl started exactly as the README starts it (`scripts/run.sh
//! --config FILE`, both binaries supervised together), on loopback, and driven by the real
//! Moonlight core (PyPI moonlight-python 0.3.0, GPL: a test tool in its own process, never
//! linked) through `driver/moonlight_e2e.py`.
//!
//! Contract of [`Strahl`]:
//! - [`Strahl::start`] writes a temp config (a free GameStream base port and status port per
//!   instance so tests run in parallel, a temp `state_dir` and IPC socket, plus
//!   [`Options::extra_toml`] verbatim), runs `scripts/run.sh --config <it>` in its own process
//!   group with `STRAHL_BIN_DIR` = the test build's binaries and `STRAHL_CONTROL_ARGS=--no-mdns`,
//!   and returns once the control plane logged "connected to dataplane" (bounded by
//!   [`Options::start_timeout`]);
//! - the combined output of run.sh and both processes is collected ([`Strahl::log`]);
//! - on drop the whole process group gets SIGTERM, then SIGKILL after [`STOP_GRACE`], and the
//!   scratch directory is removed (kept when `STRAHL_E2E_KEEP=1`, for post-mortems).
//!
//! In a network namespace ([`Options::netns`], test beds from [`netns`]): run.sh is started as
//! `ip netns exec <host ns> bash scripts/run.sh --config FILE`, the config listens on the host
//! namespace's address with the GameStream default ports (the namespace is fresh, so they are
//! free) and `[dataplane] interface = "auto"` (the veth of the default route); the status
//! server, `strahl-control pin` and every HTTP request of the harness run inside the host
//! namespace too (`ip netns exec … curl`), and clients run in their own namespaces
//! ([`Driver::spawn_in`]). [`Options::embedded_config`] starts run.sh without `--config` at all
//! (the compiled-in default, mDNS included, as `make run` does) with `STATE_DIRECTORY` and
//! `RUNTIME_DIRECTORY` pointing into the scratch directory; [`Options::dataplane_user`] runs
//! the data plane as an unprivileged user through a `setpriv` wrapper in `STRAHL_BIN_DIR`.
//!
//! Binaries: `$STRAHL_BIN_DIR` when set, else `cargo build -p strahl-dataplane -p
//! strahl-control` with this test's cargo, target directory and profile (a no-op when fresh;
//! binaries of other packages are not exposed to a test crate, so the harness builds them).
#![forbid(unsafe_code)]

mod driver;
pub mod harness;
pub mod netns;
mod ports;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use driver::{Driver, DriverOutput, driver_script, python, run_driver};
pub use ports::PortPlan;

/// Start-up bound: the data plane's transport self-test plus both processes' start on a loaded
/// 2-core machine (the self-test alone took a few seconds in the bench's runs).
pub const START_TIMEOUT: Duration = Duration::from_secs(90);
/// SIGTERM to SIGKILL on teardown (both processes stop within ~2 s on SIGTERM, run.sh's
/// contract).
pub const STOP_GRACE: Duration = Duration::from_secs(8);
/// Bound for one pairing driver: Python start-up, RSA key generation, four HTTP round trips
/// and the stage-1 long poll.
pub const PAIR_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the client's stage-1 request may take to reach the host.
pub const PIN_WAIT: Duration = Duration::from_secs(60);
/// Log line the control plane prints while a client waits for its PIN.
pub const PIN_WAITING_LINE: &str = "pairing: waiting for the PIN";
/// Poll period of every log wait.
const POLL: Duration = Duration::from_millis(50);
/// One HTTP request to the status server.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest HTTP body the harness reads.
const HTTP_MAX_BYTES: u64 = 16 << 20;

/// Errors of the harness, by origin.
#[derive(Debug)]
pub enum Error {
    /// The environment: binaries, interpreter, files, ports.
    Setup(String),
    /// strahl (run.sh or one of its processes) did not do what was expected.
    Host { what: String, log: String },
    /// A bounded wait ran out.
    Timeout(String),
    /// A driver process misbehaved (killed, garbage on stdout, missing step, non-zero exit).
    Driver { what: String, output: String },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Setup(s) => write!(f, "setup: {s}"),
            Error::Host { what, log } => write!(f, "strahl: {what}\n--- log ---\n{log}"),
            Error::Timeout(s) => write!(f, "timed out: {s}"),
            Error::Driver { what, output } => write!(f, "driver: {what}\n{output}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// The repository root (this crate is `crates/test/e2e`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// Directory holding `strahl-dataplane` and `strahl-control`: `$STRAHL_BIN_DIR`, else built
/// once per test process with this test's cargo, target directory and profile.
pub fn bin_dir() -> Result<PathBuf> {
    static DIR: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(d) = std::env::var_os("STRAHL_BIN_DIR") {
            return Ok(PathBuf::from(d));
        }
        build_binaries()
    })
    .clone()
    .map_err(Error::Setup)
}

fn build_binaries() -> std::result::Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    // <target>/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("test binary not under <target>/<profile>/deps")?;
    let target_dir = profile_dir.parent().ok_or("no target directory")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo_root())
        .args(["build", "-p", "strahl-dataplane", "-p", "strahl-control"])
        .args(["--bin", "strahl-dataplane", "--bin", "strahl-control"])
        .arg("--target-dir")
        .arg(target_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // Under `cargo test` the test profile (opt-level 2, see the workspace Cargo.toml) has
    // already built both binaries for their own integration tests: asking for the same profile
    // reuses them (no second compile in CI) and gives a host fast enough to encode 720p60 in
    // real time; the dev profile would rebuild every workspace crate at opt-level 0.
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    } else {
        cmd.args(["--profile", "test"]);
    }
    cmd.arg("--locked");
    let st = cmd.status().map_err(|e| format!("run cargo build: {e}"))?;
    if !st.success() {
        return Err(format!("cargo build of the strahl binaries failed ({st})"));
    }
    let dir = profile_dir.to_path_buf();
    for b in ["strahl-dataplane", "strahl-control"] {
        if !dir.join(b).exists() {
            return Err(format!("{} missing after the build", dir.join(b).display()));
        }
    }
    Ok(dir)
}

/// How to start one instance.
#[derive(Clone, Debug)]
pub struct Options {
    /// Appended verbatim to the generated config: `[testing]`, `[input]`, `[video]`, `[audio]`,
    /// `[status]`, `[[apps]]`… The harness writes only `[host]`, `[network]` and `[dataplane]`;
    /// do not repeat those (TOML forbids a table twice) — use the fields below instead.
    pub extra_toml: String,
    /// `[dataplane] transport`; `None` keeps the default ("auto": the start-up self-test picks).
    pub transport: Option<String>,
    /// Environment for run.sh (e.g. `STRAHL_BACKOFF_START_MS`), on top of the harness's own.
    pub env: Vec<(String, String)>,
    /// `RUST_LOG` for both processes.
    pub rust_log: String,
    /// Bound on reaching "connected to dataplane".
    pub start_timeout: Duration,
    /// Run strahl inside this network namespace, listening on its address (see the module
    /// header); `None`: on loopback in the test's own namespace.
    pub netns: Option<HostNetns>,
    /// Start run.sh without `--config`: the compiled-in default configuration exactly as `make
    /// run` uses it (mDNS as the default has it; `extra_toml`, `transport` are then refused).
    pub embedded_config: bool,
    /// Run the data plane as this user (e.g. "nobody"), without capabilities, through
    /// `setpriv`: what AF_XDP refuses.
    pub dataplane_user: Option<String>,
}

/// Where an instance runs when it runs in a namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostNetns {
    /// The namespace (under /var/run/netns).
    pub ns: String,
    /// The address strahl listens on and clients connect to.
    pub addr: Ipv4Addr,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            extra_toml: String::new(),
            transport: None,
            env: Vec::new(),
            rust_log: "info".into(),
            start_timeout: START_TIMEOUT,
            netns: None,
            embedded_config: false,
            dataplane_user: None,
        }
    }
}

impl Options {
    /// Input goes to the recording sink at [`Strahl::input_record_path`] (one JSON line per
    /// event).
    pub fn record_input(mut self) -> Self {
        self.extra_toml.push_str("\n[input]\nsink = \"record\"\n");
        self
    }

    /// Appends TOML (see [`extra_toml`](Self::extra_toml)).
    pub fn toml(mut self, text: &str) -> Self {
        self.extra_toml.push('\n');
        self.extra_toml.push_str(text);
        self.extra_toml.push('\n');
        self
    }

    /// Runs the instance in `place` (see [`Options::netns`]).
    pub fn in_netns(mut self, place: HostNetns) -> Self {
        self.netns = Some(place);
        self
    }
}

/// A running strahl: run.sh and its two children, in their own process group.
pub struct Strahl {
    child: Child,
    /// Scratch directory (config, state, sockets, run.sh's logs).
    pub dir: PathBuf,
    /// The generated config file.
    pub config: PathBuf,
    /// Every port of this instance.
    pub ports: PortPlan,
    /// Where the binaries are (also `STRAHL_BIN_DIR` of run.sh).
    pub bin_dir: PathBuf,
    /// The namespace and address when started with [`Options::netns`].
    pub netns: Option<HostNetns>,
    output: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// Writes `dir/bin/`: a `strahl-dataplane` script that runs the real one as `user` without any
/// capability (`setpriv`, as crates/dp/dataplane/tests/startup.rs does), and a link to the real
/// `strahl-control`. Returns the directory for `STRAHL_BIN_DIR`.
fn unprivileged_bin_dir(dir: &Path, real: &Path, user: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let setup = |what: &Path, e: std::io::Error| Error::Setup(format!("{}: {e}", what.display()));
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| setup(&bin, e))?;
    let group = if user == "nobody" { "nogroup" } else { user };
    let script = format!(
        "#!/bin/sh\n# written by strahl-e2e: the data plane as {user}, no capabilities\n\
         exec setpriv --reuid={user} --regid={group} --clear-groups --inh-caps=-all \\\n  \
         '{dp}' \"$@\"\n",
        dp = real.join("strahl-dataplane").display()
    );
    let dp = bin.join("strahl-dataplane");
    std::fs::write(&dp, script).map_err(|e| setup(&dp, e))?;
    std::fs::set_permissions(&dp, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| setup(&dp, e))?;
    let cp = bin.join("strahl-control");
    std::os::unix::fs::symlink(real.join("strahl-control"), &cp).map_err(|e| setup(&cp, e))?;
    // The unprivileged data plane creates its IPC socket here.
    let run = dir.join("run");
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o777))
        .map_err(|e| setup(&run, e))?;
    Ok(bin)
}

impl Strahl {
    /// Starts strahl with `opts` and waits until the control plane is connected to the data
    /// plane.
    pub fn start(opts: Options) -> Result<Strahl> {
        let bin_dir = bin_dir()?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "strahl-e2e-{}-{}",
            std::process::id(),
            nanos % 1_000_000_000_000
        ));
        let mkdir = |p: &Path| {
            std::fs::create_dir_all(p).map_err(|e| Error::Setup(format!("{}: {e}", p.display())))
        };
        mkdir(&dir.join("run"))?;
        mkdir(&dir.join("state"))?;
        mkdir(&dir.join("tmp"))?;
        if opts.embedded_config && (!opts.extra_toml.trim().is_empty() || opts.transport.is_some())
        {
            return Err(Error::Setup(
                "embedded_config runs the compiled-in default: no extra_toml or transport".into(),
            ));
        }
        // A fresh namespace has every port free: the defaults, as on an appliance.
        let ports = if opts.netns.is_some() {
            PortPlan::defaults()
        } else {
            PortPlan::pick().ok_or(Error::Setup("no free port plan".into()))?
        };
        let transport = opts
            .transport
            .as_deref()
            .map(|t| format!("transport = \"{t}\"\n"))
            .unwrap_or_default();
        let (listen, interface) = match &opts.netns {
            Some(n) => (n.addr.to_string(), "auto"),
            None => ("127.0.0.1".to_string(), "lo"),
        };
        let text = format!(
            "# written by strahl-e2e\n\
             [host]\nname = \"strahl-e2e\"\nstate_dir = \"{state}\"\n\
             [network]\naddresses = [\"{listen}\"]\ngamestream_base_port = {base}\n\
             status_port = {status}\nnative_port = {native}\n\
             [dataplane]\nsocket = \"{sock}\"\ninterface = \"{interface}\"\n{transport}\
             {extra}\n",
            state = dir.join("state").display(),
            base = ports.http,
            status = ports.status,
            native = ports.native,
            sock = dir.join("run/dataplane.sock").display(),
            extra = opts.extra_toml,
        );
        let config = dir.join("strahl.toml");
        std::fs::write(&config, text)
            .map_err(|e| Error::Setup(format!("{}: {e}", config.display())))?;
        let run_bin_dir = match &opts.dataplane_user {
            Some(user) => unprivileged_bin_dir(&dir, &bin_dir, user)?,
            None => bin_dir.clone(),
        };

        let mut cmd = match &opts.netns {
            Some(n) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &n.ns, "bash"]);
                c
            }
            None => Command::new("bash"),
        };
        cmd.arg(repo_root().join("scripts/run.sh"));
        if opts.embedded_config {
            // What systemd's StateDirectory=/RuntimeDirectory= would give: the embedded
            // "auto" paths land in the scratch directory instead of the machine's — the same
            // state directory and socket the generated file names, so `pin` (which reads it)
            // still reaches this instance.
            cmd.env("STATE_DIRECTORY", dir.join("state"))
                .env("RUNTIME_DIRECTORY", dir.join("run"))
                .env_remove("STRAHL_CONTROL_ARGS");
        } else {
            cmd.arg("--config")
                .arg(&config)
                .env("STRAHL_CONTROL_ARGS", "--no-mdns");
        }
        cmd.env("STRAHL_BIN_DIR", &run_bin_dir)
            .env("RUST_LOG", &opts.rust_log)
            // run.sh's own log directory lands in the scratch directory.
            .env("TMPDIR", dir.join("tmp"));
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| Error::Setup(format!("spawn scripts/run.sh: {e}")))?;
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let pipes: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ];
        for pipe in pipes.into_iter().flatten() {
            let sink = output.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(mut v) = sink.lock() {
                        v.push(line);
                    }
                }
            }));
        }
        let mut s = Strahl {
            child,
            dir,
            config,
            ports,
            bin_dir,
            netns: opts.netns.clone(),
            output,
            readers,
        };
        let t0 = Instant::now();
        loop {
            if s.log_count("connected to dataplane") > 0 && s.pids().is_some() {
                return Ok(s);
            }
            if let Ok(Some(st)) = s.child.try_wait() {
                return Err(s.host_error(format!("run.sh exited ({st}) before strahl was up")));
            }
            if t0.elapsed() > opts.start_timeout {
                return Err(s.host_error(format!(
                    "no \"connected to dataplane\" within {:?}",
                    opts.start_timeout
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    fn host_error(&self, what: String) -> Error {
        Error::Host {
            what,
            log: self.log(),
        }
    }

    /// The temp state directory (host identity, paired clients, admin token).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// The data-plane IPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("run/dataplane.sock")
    }

    /// The recording sink's file with [`Options::record_input`] (`record_path = "auto"`).
    pub fn input_record_path(&self) -> PathBuf {
        self.state_dir().join("input-events.jsonl")
    }

    /// The process group of run.sh and both children.
    pub fn pgid(&self) -> u32 {
        self.child.id()
    }

    /// The current (data plane, control plane) pids: the last "started … (pid N)" of each that
    /// run.sh printed (restarts print a new one).
    pub fn pids(&self) -> Option<(u32, u32)> {
        let out = self.output.lock().ok()?;
        let last = |name: &str| {
            let pat = format!("run: started {name} (pid ");
            out.iter()
                .rev()
                .find_map(|l| l.split_once(&pat).map(|(_, r)| r.to_string()))
                .and_then(|r| r.trim_end_matches(')').parse::<u32>().ok())
        };
        Some((last("dataplane")?, last("control")?))
    }

    /// The data plane's current pid.
    pub fn dataplane_pid(&self) -> Option<u32> {
        self.pids().map(|p| p.0)
    }

    /// The control plane's current pid.
    pub fn control_pid(&self) -> Option<u32> {
        self.pids().map(|p| p.1)
    }

    /// Everything run.sh and both processes printed so far, one line each.
    pub fn log(&self) -> String {
        self.output.lock().map(|v| v.join("\n")).unwrap_or_default()
    }

    /// The log lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.output.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// How many log lines contain `pat`.
    pub fn log_count(&self, pat: &str) -> usize {
        self.output
            .lock()
            .map(|v| v.iter().filter(|l| l.contains(pat)).count())
            .unwrap_or(0)
    }

    /// Waits (bounded) until at least `n` log lines contain `pat`.
    pub fn wait_log_n(&self, pat: &str, n: usize, timeout: Duration) -> Result<()> {
        let t0 = Instant::now();
        while self.log_count(pat) < n {
            if t0.elapsed() > timeout {
                return Err(self.host_error(format!(
                    "{n} log line(s) containing {pat:?} within {timeout:?} (saw {})",
                    self.log_count(pat)
                )));
            }
            std::thread::sleep(POLL);
        }
        Ok(())
    }

    /// Waits (bounded) until a log line contains `pat`.
    pub fn wait_log(&self, pat: &str, timeout: Duration) -> Result<()> {
        self.wait_log_n(pat, 1, timeout)
    }

    /// run.sh's exit status, if it ended.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends `sig` (e.g. "TERM", "KILL") to one process.
    pub fn signal(pid: u32, sig: &str) -> bool {
        Command::new("kill")
            .args([&format!("-{sig}"), &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Stops strahl as Ctrl-C would (SIGTERM to run.sh) and waits (bounded) for run.sh.
    pub fn stop(&mut self, timeout: Duration) -> Result<ExitStatus> {
        Strahl::signal(self.child.id(), "TERM");
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.try_exit() {
                return Ok(st);
            }
            if t0.elapsed() > timeout {
                return Err(self.host_error(format!("run.sh did not exit within {timeout:?}")));
            }
            std::thread::sleep(POLL);
        }
    }

    /// `strahl-control pin [--client ID] PIN` against this instance's config (the real CLI,
    /// inside the instance's namespace when it has one): (exit code, stdout + stderr).
    pub fn pin(&self, pin: &str, client: Option<&str>) -> Result<(i32, String)> {
        let mut cmd = self.host_command(self.bin_dir.join("strahl-control"));
        cmd.arg("pin").arg("--config").arg(&self.config);
        if let Some(c) = client {
            cmd.args(["--client", c]);
        }
        let out = cmd
            .arg(pin)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::Setup(format!("run strahl-control pin: {e}")))?;
        Ok((
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ))
    }

    /// `program` as a command that runs where this instance runs (its namespace, if any).
    pub fn host_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match &self.netns {
            Some(n) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &n.ns]).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

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

    /// Driver arguments that point a client at this instance: `--host ADDR --port HTTP`.
    pub fn client_args(&self) -> Vec<String> {
        vec![
            "--host".into(),
            self.addr().to_string(),
            "--port".into(),
            self.ports.http.to_string(),
        ]
    }

    /// One pairing attempt by a real Moonlight client whose identity lives in `client_dir`:
    /// the client uses `client_pin`, the operator types `operator_pin` into `strahl-control
    /// pin` once the client waits in stage 1. Returns the driver's output (its `pair` step says
    /// whether it paired) and the pin CLI's (exit code, text).
    pub fn pair_attempt(
        &self,
        client_dir: &Path,
        client_pin: &str,
        operator_pin: &str,
    ) -> Result<(DriverOutput, (i32, String))> {
        self.pair_attempt_in(None, client_dir, client_pin, operator_pin)
    }

    /// [`pair_attempt`](Self::pair_attempt) with the client running in namespace `client_ns`.
    pub fn pair_attempt_in(
        &self,
        client_ns: Option<&str>,
        client_dir: &Path,
        client_pin: &str,
        operator_pin: &str,
    ) -> Result<(DriverOutput, (i32, String))> {
        std::fs::create_dir_all(client_dir)
            .map_err(|e| Error::Setup(format!("{}: {e}", client_dir.display())))?;
        let waiting = self.log_count(PIN_WAITING_LINE);
        let mut args = vec!["pair".to_string()];
        args.extend(self.client_args());
        args.extend([
            "--config".into(),
            client_dir.display().to_string(),
            "--pin".into(),
            client_pin.into(),
        ]);
        let drv = Driver::spawn_in(client_ns, &args)?;
        self.wait_log_n(PIN_WAITING_LINE, waiting + 1, PIN_WAIT)?;
        let cli = self.pin(operator_pin, None)?;
        let out = drv.finish(PAIR_TIMEOUT)?;
        Ok((out, cli))
    }

    /// Pairs a real Moonlight client (identity in `client_dir`) with a PIN chosen here and
    /// submitted through `strahl-control pin`. Returns the driver's lines.
    pub fn pair(&self, client_dir: &Path) -> Result<DriverOutput> {
        self.pair_in(None, client_dir)
    }

    /// [`pair`](Self::pair) with the client running in namespace `client_ns`.
    pub fn pair_in(&self, client_ns: Option<&str>, client_dir: &Path) -> Result<DriverOutput> {
        // Distinct per client directory, so two clients of one instance use different PINs.
        let salt = client_dir
            .to_string_lossy()
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        let pin = format!(
            "{:04}",
            (std::process::id() ^ self.ports.http as u32 ^ salt) % 10_000
        );
        let (out, (code, text)) = self.pair_attempt_in(client_ns, client_dir, &pin, &pin)?;
        if code != 0 {
            return Err(self.host_error(format!("strahl-control pin {pin} exited {code}: {text}")));
        }
        let ok = out.step("pair").is_some_and(|p| p["ok"] == true);
        if !ok {
            return Err(Error::Driver {
                what: "pairing failed".into(),
                output: out.to_string(),
            });
        }
        Ok(out)
    }
}

impl Drop for Strahl {
    fn drop(&mut self) {
        let pg = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &pg])
            .stderr(Stdio::null())
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < STOP_GRACE {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(POLL);
        }
        // Children outlive run.sh only if they ignored SIGTERM: the group gets SIGKILL.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &pg])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        // The reader threads end at EOF; not joined, so a stray grandchild holding a pipe
        // cannot hang the test.
        self.readers.clear();
        if std::env::var_os("STRAHL_E2E_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
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
