//! strahl as the README starts it (`scripts/run.sh --config <temp.toml>`, release binaries),
//! one instance per rate, plus the helpers the bench needs around it: the Moonlight driver
//! (one Python process per step), the data plane's metrics from the status server's
//! Prometheus `/metrics`, and a bounded, process-group teardown.
//!
//! On loopback (the default) the host listens on 127.0.0.1 with `interface = "lo"` and a free
//! port plan. In a network namespace ([`NetPlace`], for `--netns`) run.sh runs under `ip netns
//! exec <host ns>`, the host listens on the namespace's address with the GameStream default
//! ports and `interface = "auto"` (the veth of the namespace's default route), `/metrics` is
//! read from a thread inside the host namespace, and the driver runs in the client namespace.
//!
//! Every wait here is bounded; on drop the whole process group of run.sh is signalled (TERM,
//! then KILL after [`STOP_GRACE`]) and the scratch directory is removed (a shared state
//! directory given in [`HostConfig::state_dir`] belongs to the caller).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// run.sh prints "strahl is running" once the control plane reports the IPC connection; the
/// data plane's start-up transport self-test takes a few seconds on this machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// SIGTERM to SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// One HTTP request to the status server.
const HTTP_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the binaries and the repository are.
pub struct Paths {
    pub repo: PathBuf,
    pub bin_dir: PathBuf,
    pub python: PathBuf,
}

impl Paths {
    /// [`Paths::discover`] without the Moonlight core: for benches whose client is
    /// `strahl-client` (its binary must be in `bin_dir` too); `python` is left empty.
    pub fn discover_native(bin_dir: Option<PathBuf>) -> Result<Paths, String> {
        let (repo, bin_dir) = Self::binaries(
            bin_dir,
            &["strahl-dataplane", "strahl-control", "strahl-client"],
        )?;
        Ok(Paths {
            repo,
            bin_dir,
            python: PathBuf::new(),
        })
    }

    /// The repository is found from this executable's build location (…/<target>/release/) or
    /// the source tree this bench was compiled from; binaries default to this executable's
    /// directory (the bench is built next to strahl-dataplane and strahl-control).
    pub fn discover(bin_dir: Option<PathBuf>) -> Result<Paths, String> {
        let (repo, bin_dir) = Self::binaries(bin_dir, &["strahl-dataplane", "strahl-control"])?;
        let python = strahl_testkit::python::moonlight_python()?;
        Ok(Paths {
            repo,
            bin_dir,
            python,
        })
    }

    /// The repository and the binaries' directory, checking `bins` are there.
    fn binaries(bin_dir: Option<PathBuf>, bins: &[&str]) -> Result<(PathBuf, PathBuf), String> {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(Path::to_path_buf)
            .ok_or("no repository directory")?;
        let bin_dir = match bin_dir {
            Some(d) => d,
            None => std::env::current_exe()
                .map_err(|e| format!("current_exe: {e}"))?
                .parent()
                .map(Path::to_path_buf)
                .ok_or("no executable directory")?,
        };
        for b in bins {
            if !bin_dir.join(b).exists() {
                return Err(format!(
                    "{} missing: build with `cargo build --release -p {}` into the same target \
                     dir, or pass --bin-dir",
                    bin_dir.join(b).display(),
                    bins.join(" -p ")
                ));
            }
        }
        Ok((repo, bin_dir))
    }
}

/// A GameStream base port whose TCP ports (HTTPS −5, HTTP, RTSP +21) and UDP media/control
/// ports (+9..+11) are free on loopback, below the ephemeral range.
fn free_base_port() -> Result<u16, String> {
    let seed = std::process::id() as usize;
    for k in 0..200usize {
        let base = 20_000 + ((seed.wrapping_mul(31) + k * 97) % 390) as u16 * 32 + 16;
        let tcp = [base - 5, base, base + 21]
            .iter()
            .all(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok());
        let udp = [base + 9, base + 10, base + 11]
            .iter()
            .all(|p| std::net::UdpSocket::bind(("127.0.0.1", *p)).is_ok());
        let status = std::net::TcpListener::bind(("127.0.0.1", base + 1)).is_ok();
        if tcp && udp && status {
            return Ok(base);
        }
    }
    Err("no free GameStream base port".into())
}

/// The namespace test bed a host and its client run in (`--netns`).
#[derive(Clone, Debug)]
pub struct NetPlace {
    pub host_ns: String,
    pub host_addr: Ipv4Addr,
    pub client_ns: String,
    /// The client's veth (where the receive-side capture listens).
    pub client_if: String,
}

/// What one strahl instance is configured with.
pub struct HostConfig<'a> {
    /// The passthrough source's stream; `None`: the synthetic source (openh264), as for a
    /// native session (whose passthrough codec brings the data plane's own pattern source).
    pub stream_file: Option<&'a Path>,
    /// `[video] max_bitrate_kbps`; `None` keeps the default (1 Gbit/s).
    pub max_bitrate_kbps: Option<u32>,
    /// `[dataplane] mtu` (the link's, set on the veth by the caller); `None` keeps 1500.
    pub mtu: Option<u16>,
    /// `[dataplane] realtime_priority`; `None` keeps "auto".
    pub realtime_priority: Option<u8>,
    pub fec_percent: u8,
    /// Extra TOML appended verbatim (sections the bench does not know about).
    pub extra_toml: &'a str,
    /// `[dataplane] transport`; `None` keeps "auto".
    pub transport: Option<&'a str>,
    /// A state directory shared by successive hosts (one pairing serves them all); `None`: a
    /// fresh one in the scratch directory.
    pub state_dir: Option<&'a Path>,
    /// Run in this namespace test bed; `None`: on loopback.
    pub net: Option<&'a NetPlace>,
}

/// The GameStream default ports (appliance/strahl.toml), used in a fresh namespace.
const DEFAULT_BASE_PORT: u16 = 47_989;
const DEFAULT_STATUS_PORT: u16 = 47_990;
/// Video is sent from base + 9 (gamestream-host.md §A1).
const VIDEO_PORT_OFFSET: u16 = 9;

/// A running strahl (run.sh and its two children).
pub struct Host {
    child: Child,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub base_port: u16,
    pub status_port: u16,
    /// The address clients connect to (127.0.0.1, or the host namespace's).
    pub addr: Ipv4Addr,
    /// The source port of the host's video packets.
    pub video_port: u16,
    /// The host namespace, when in one.
    pub netns: Option<String>,
    pub dataplane_pid: u32,
    pub control_pid: u32,
    output: Arc<Mutex<Vec<String>>>,
    bin_dir: PathBuf,
}

impl Host {
    pub fn start(paths: &Paths, cfg: &HostConfig<'_>) -> Result<Host, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("strahl-bench-gs-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(dir.join("run")).map_err(|e| format!("{}: {e}", dir.display()))?;
        // A fresh namespace has every port free: the defaults, as on an appliance.
        let (base_port, status_port, addr, interface) = match cfg.net {
            Some(n) => (DEFAULT_BASE_PORT, DEFAULT_STATUS_PORT, n.host_addr, "auto"),
            None => {
                let b = free_base_port()?;
                (b, b + 1, Ipv4Addr::LOCALHOST, "lo")
            }
        };
        let fec = cfg.fec_percent;
        let state = cfg
            .state_dir
            .map_or_else(|| dir.join("state"), Path::to_path_buf);
        let transport = cfg
            .transport
            .map(|t| format!("transport = \"{t}\"\n"))
            .unwrap_or_default();
        // Video in clear: the receiver-side pacing capture reads each packet's frame, block and
        // shard from the GameStream video header, which SS_ENC_VIDEO (on by default) encrypts.
        // The cost of sealing is measured on its own (`strahl-bench seal`).
        let source = match cfg.stream_file {
            Some(f) => format!(
                "source = \"passthrough\"\npassthrough_file = \"{}\"\n",
                f.display()
            ),
            None => "source = \"synthetic\"\n".into(),
        };
        let mtu = cfg.mtu.map(|m| format!("mtu = {m}\n")).unwrap_or_default();
        let realtime = cfg
            .realtime_priority
            .map(|p| format!("realtime_priority = {p}\n"))
            .unwrap_or_default();
        let max_bitrate = cfg
            .max_bitrate_kbps
            .map(|k| format!("max_bitrate_kbps = {k}\n"))
            .unwrap_or_default();
        let toml = format!(
            "[host]\nname = \"strahl-bench\"\nstate_dir = \"{state}\"\n\
             [network]\naddresses = [\"{addr}\"]\ngamestream_base_port = {base_port}\nstatus_port = {status_port}\n\
             [dataplane]\nsocket = \"{sock}\"\ninterface = \"{interface}\"\n{transport}{mtu}{realtime}\
             [video]\n{source}{max_bitrate}\
             fec_percent_min = {fec}\nfec_percent_default = {fec}\nfec_percent_max = {fec}\n\
             [gamestream]\nencryption = \"off\"\n\
             [status]\nopen_reads = true\n{extra}\n",
            state = state.display(),
            sock = dir.join("run/dataplane.sock").display(),
            extra = cfg.extra_toml,
        );
        let config = dir.join("strahl.toml");
        std::fs::write(&config, toml).map_err(|e| format!("{}: {e}", config.display()))?;
        let mut cmd = match cfg.net {
            Some(n) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &n.host_ns, "bash"]);
                c
            }
            None => Command::new("bash"),
        };
        let mut child = cmd
            .arg(paths.repo.join("scripts/run.sh"))
            .arg("--config")
            .arg(&config)
            .env("STRAHL_BIN_DIR", &paths.bin_dir)
            .env("RUST_LOG", "info")
            // run.sh passes these to `strahl-control serve` only: no mDNS from a bench.
            .env("STRAHL_CONTROL_ARGS", "--no-mdns")
            .env("TMPDIR", &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("spawn run.sh: {e}"))?;
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let sink = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(mut v) = sink.lock() {
                        v.push(line);
                    }
                }
            });
        }
        let mut host = Host {
            child,
            dir,
            config,
            base_port,
            status_port,
            addr,
            video_port: base_port + VIDEO_PORT_OFFSET,
            netns: cfg.net.map(|n| n.host_ns.clone()),
            dataplane_pid: 0,
            control_pid: 0,
            output,
            bin_dir: paths.bin_dir.clone(),
        };
        let t0 = Instant::now();
        loop {
            if let Some((dp, cp)) = host.find_pids() {
                host.dataplane_pid = dp;
                host.control_pid = cp;
                return Ok(host);
            }
            if let Ok(Some(st)) = host.child.try_wait() {
                return Err(format!(
                    "run.sh exited ({st}) before strahl was up:\n{}",
                    host.log_tail(40)
                ));
            }
            if t0.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "strahl not up after {START_TIMEOUT:?}:\n{}",
                    host.log_tail(40)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Parses run.sh's "strahl is running: data plane pid X, control plane pid Y".
    fn find_pids(&self) -> Option<(u32, u32)> {
        let out = self.output.lock().ok()?;
        let line = out
            .iter()
            .find(|l| l.contains("strahl is running: data plane pid"))?;
        let nums: Vec<u32> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|s| s.parse().ok())
            .collect();
        (nums.len() >= 2).then(|| (nums[0], nums[1]))
    }

    /// The last `n` lines run.sh and both processes printed.
    pub fn log_tail(&self, n: usize) -> String {
        let out = self.output.lock().map(|v| v.clone()).unwrap_or_default();
        out[out.len().saturating_sub(n)..].join("\n")
    }

    /// Lines of the combined log that contain `pat`.
    pub fn log_grep(&self, pat: &str) -> Vec<String> {
        let out = self.output.lock().map(|v| v.clone()).unwrap_or_default();
        out.into_iter().filter(|l| l.contains(pat)).collect()
    }

    /// The `strahl-control pin` command line (the PIN is appended by the driver), run where
    /// the host runs.
    pub fn pin_cmd(&self) -> Vec<String> {
        let mut cmd = match &self.netns {
            Some(ns) => vec!["ip".into(), "netns".into(), "exec".into(), ns.clone()],
            None => Vec::new(),
        };
        cmd.extend([
            self.bin_dir.join("strahl-control").display().to_string(),
            "pin".into(),
            "--config".into(),
            self.config.display().to_string(),
        ]);
        cmd
    }

    /// GET `path` from the status server (from a thread inside the host namespace, if any).
    pub fn http_get(&self, path: &str) -> Result<String, String> {
        let (addr, port) = (self.addr, self.status_port);
        match &self.netns {
            None => http_get(addr, port, path),
            Some(ns) => strahl_net::testbed::in_netns(ns, || http_get(addr, port, path))
                .map_err(|e| format!("enter {ns}: {e}"))?,
        }
    }

    /// Scrapes the status server's `/metrics`: series key (`name` or `name{labels}`) → value.
    /// `Err` when the status server does not answer or has no such endpoint.
    pub fn metrics(&self) -> Result<BTreeMap<String, f64>, String> {
        let text = self.http_get("/metrics")?;
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
        Ok(out)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let pg = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &pg]).status();
        let t0 = Instant::now();
        while t0.elapsed() < STOP_GRACE {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &pg]).status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A minimal HTTP/1.0 GET; the body on status 200.
fn http_get(addr: Ipv4Addr, port: u16, path: &str) -> Result<String, String> {
    let sa = std::net::SocketAddr::from((addr, port));
    let mut s =
        TcpStream::connect_timeout(&sa, HTTP_TIMEOUT).map_err(|e| format!("connect {sa}: {e}"))?;
    s.set_read_timeout(Some(HTTP_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(HTTP_TIMEOUT))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.take(16 << 20)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP header")?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("GET {path}: HTTP {status}"));
    }
    Ok(body.to_string())
}

/// The CPUs of the client side of the netns test bed: every online CPU but the last, which the
/// data plane's plan gives its tx tile (`strahl_config::Plan`); empty on a single CPU.
pub fn client_cpus() -> Vec<usize> {
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..online.saturating_sub(1)).collect()
}

/// [`client_cpus`] as a `taskset -c` list ("0-2" on four), or `None` on a single CPU.
pub fn client_cpu_list() -> Option<String> {
    match client_cpus().as_slice() {
        [] => None,
        [only] => Some(only.to_string()),
        [first, .., last] => Some(format!("{first}-{last}")),
    }
}

/// Runs the driver in `mode` with `args` (in network namespace `ns` when given); returns its
/// JSON lines. Bounded by `timeout`.
pub fn run_driver(
    paths: &Paths,
    ns: Option<&str>,
    mode: &str,
    args: &[String],
    timeout: Duration,
) -> Result<Vec<Value>, String> {
    let script = strahl_testkit::python::moonlight_driver();
    let mut cmd = match ns {
        // `ip` execs `taskset`, which execs the interpreter: the child is the driver itself
        // (killed on timeout). The client namespace stands for another machine: its process
        // stays off the core the data plane pins its tx tile to (the last one; see
        // `netbed::steer_client_receive`, which moves its receive processing there too).
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]);
            if let Some(cpus) = client_cpu_list() {
                c.args(["taskset", "-c", &cpus]);
            }
            c.arg(&paths.python);
            c
        }
        None => Command::new(&paths.python),
    };
    let mut child = cmd
        .arg(&script)
        .arg(mode)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", paths.python.display()))?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = out_t.join().unwrap_or_default();
    let err = err_t.join().unwrap_or_default();
    let lines: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    match status {
        None => Err(format!(
            "driver {mode} timed out after {timeout:?}; output: {out}\nstderr: {}",
            tail(&err, 20)
        )),
        Some(st) if !st.success() => Err(format!(
            "driver {mode} failed ({st}); output: {out}\nstderr: {}",
            tail(&err, 20)
        )),
        Some(_) => Ok(lines),
    }
}

fn tail(s: &str, n: usize) -> String {
    let l: Vec<&str> = s.lines().collect();
    l[l.len().saturating_sub(n)..].join("\n")
}

/// The first JSON line whose `step` is `step`.
pub fn step<'a>(lines: &'a [Value], step: &str) -> Option<&'a Value> {
    lines.iter().find(|v| v["step"] == step)
}
