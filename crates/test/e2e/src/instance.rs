//! A running strahl: run.sh and its two children in their own process group, started from
//! [`Options`], with their combined log, pids, signals, `strahl-control pin` and teardown.
//!
//! Contract: as the crate's contract of [`Strahl`] says (start bounded by
//! [`Options::start_timeout`], log collected, SIGTERM then SIGKILL after [`STOP_GRACE`] on
//! drop, scratch directory removed unless `STRAHL_E2E_KEEP=1`). The status server and pairing
//! are in [`crate::http`] and [`crate::pairing`], which import this file (it imports neither).

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::binaries::{bin_dir, repo_root, unprivileged_bin_dir};
use crate::error::{Error, Result};
use crate::options::{HostNetns, Options};
use crate::ports::PortPlan;

/// SIGTERM to SIGKILL on teardown (both processes stop within ~2 s on SIGTERM, run.sh's
/// contract).
pub const STOP_GRACE: Duration = Duration::from_secs(8);
/// Poll period of every log wait.
const POLL: Duration = Duration::from_millis(50);

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

    pub(crate) fn host_error(&self, what: String) -> Error {
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

    /// `strahl-control ARGS --config CONFIG` against this instance (the real CLI, inside the
    /// instance's namespace when it has one): (exit code, stdout + stderr).
    pub fn control_cli(&self, args: &[&str]) -> Result<(i32, String)> {
        let out = self
            .host_command(self.bin_dir.join("strahl-control"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::Setup(format!("run strahl-control {args:?}: {e}")))?;
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
