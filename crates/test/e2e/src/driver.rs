//! The Python side: the interpreter with the real Moonlight core, and one driver process per
//! client case (moonlight-common-c is process-global, so a process never runs two cases).
//!
//! Contract: a driver prints one JSON object per line on stdout (anything else on stdout is an
//! error) and its diagnostics on stderr; [`Driver::finish`] waits at most the given timeout,
//! then kills it. The Moonlight driver is `crates/test/moonlight/driver.py` (shared with the
//! control-plane tests and the bench); the packet sniffer is `crates/test/e2e/driver/sniff.py`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Error;

/// Poll period while waiting for a driver to exit.
const POLL: Duration = Duration::from_millis(50);

/// The interpreter with moonlight-python ([`strahl_testkit::python::moonlight_python`]).
pub fn python() -> Result<PathBuf, Error> {
    strahl_testkit::python::moonlight_python().map_err(Error::Setup)
}

/// The Moonlight driver (`crates/test/moonlight/driver.py`).
pub fn driver_script() -> PathBuf {
    strahl_testkit::python::moonlight_driver()
}

/// What a finished driver produced.
#[derive(Debug, Clone)]
pub struct DriverOutput {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// One JSON object per stdout line, in order.
    pub lines: Vec<Value>,
    /// Everything it wrote on stderr.
    pub stderr: String,
}

impl DriverOutput {
    /// The first line whose `"step"` equals `name`.
    pub fn step(&self, name: &str) -> Option<&Value> {
        self.lines.iter().find(|v| v["step"] == name)
    }

    /// Like [`step`](Self::step), with an error naming everything the driver printed.
    pub fn require(&self, name: &str) -> Result<&Value, Error> {
        self.step(name).ok_or_else(|| Error::Driver {
            what: format!("no step {name:?}"),
            output: self.to_string(),
        })
    }
}

impl std::fmt::Display for DriverOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "exit code {:?}", self.code)?;
        for l in &self.lines {
            writeln!(f, "  {l}")?;
        }
        write!(f, "stderr:\n{}", self.stderr)
    }
}

/// Copies everything `pipe` yields into `sink` until EOF, on its own thread.
fn drain(
    mut pipe: impl Read + Send + 'static,
    sink: Arc<Mutex<Vec<u8>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut v) = sink.lock() {
                v.extend_from_slice(&buf[..n]);
            }
        }
    })
}

/// A running driver process (killed on drop).
pub struct Driver {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Driver {
    /// Starts `python crates/test/moonlight/driver.py ARGS…`.
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Result<Driver, Error> {
        Driver::spawn_script(&driver_script(), args)
    }

    /// Starts `python SCRIPT ARGS…` (for drivers other than the main one).
    pub fn spawn_script<S: AsRef<std::ffi::OsStr>>(
        script: &Path,
        args: &[S],
    ) -> Result<Driver, Error> {
        Driver::spawn_script_in(None, script, args)
    }

    /// [`spawn`](Self::spawn) inside network namespace `ns` (`ip netns exec NS python …`;
    /// `ip` execs the interpreter, so killing the child kills the driver itself).
    pub fn spawn_in<S: AsRef<std::ffi::OsStr>>(
        ns: Option<&str>,
        args: &[S],
    ) -> Result<Driver, Error> {
        Driver::spawn_script_in(ns, &driver_script(), args)
    }

    /// [`spawn_script`](Self::spawn_script) inside network namespace `ns` when given.
    pub fn spawn_script_in<S: AsRef<std::ffi::OsStr>>(
        ns: Option<&str>,
        script: &Path,
        args: &[S],
    ) -> Result<Driver, Error> {
        let py = python()?;
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&py);
                c
            }
            None => Command::new(&py),
        };
        let mut child = cmd
            .arg("-u")
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Setup(format!("spawn {}: {e}", script.display())))?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        // Drain both pipes continuously so a chatty driver never blocks on a full pipe.
        if let Some(pipe) = child.stdout.take() {
            readers.push(drain(pipe, stdout.clone()));
        }
        if let Some(pipe) = child.stderr.take() {
            readers.push(drain(pipe, stderr.clone()));
        }
        Ok(Driver {
            child,
            stdout,
            stderr,
            readers,
        })
    }

    /// The JSON lines printed so far (complete lines only; unparsable ones are skipped here,
    /// [`finish`](Self::finish) reports them).
    pub fn lines_so_far(&self) -> Vec<Value> {
        let out = self.stdout.lock().map(|v| v.clone()).unwrap_or_default();
        let text = String::from_utf8_lossy(&out);
        let complete = text.rsplit_once('\n').map(|(a, _)| a).unwrap_or("");
        complete
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits (at most `timeout`) until a line with `"step" == name` appears.
    pub fn wait_step(&mut self, name: &str, timeout: Duration) -> Result<Value, Error> {
        let t0 = Instant::now();
        loop {
            if let Some(v) = self.lines_so_far().into_iter().find(|v| v["step"] == name) {
                return Ok(v);
            }
            if t0.elapsed() > timeout || matches!(self.child.try_wait(), Ok(Some(_))) {
                // One last look: the line may have arrived with the exit.
                if let Some(v) = self.lines_so_far().into_iter().find(|v| v["step"] == name) {
                    return Ok(v);
                }
                return Err(Error::Timeout(format!(
                    "driver step {name:?} within {timeout:?}; so far: {:?}",
                    self.lines_so_far()
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits for the exit (killing the driver after `timeout`) and parses its output. A driver
    /// that had to be killed or printed a non-JSON stdout line is an [`Error::Driver`].
    pub fn finish(mut self, timeout: Duration) -> Result<DriverOutput, Error> {
        let t0 = Instant::now();
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) if t0.elapsed() > timeout => break None,
                Ok(None) => std::thread::sleep(POLL),
                Err(e) => return Err(Error::Setup(format!("wait for the driver: {e}"))),
            }
        };
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let stdout =
            String::from_utf8_lossy(&self.stdout.lock().map(|v| v.clone()).unwrap_or_default())
                .into_owned();
        let stderr =
            String::from_utf8_lossy(&self.stderr.lock().map(|v| v.clone()).unwrap_or_default())
                .into_owned();
        let mut lines = Vec::new();
        let mut bad = Vec::new();
        for l in stdout.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Value>(l) {
                Ok(v) => lines.push(v),
                Err(_) => bad.push(l.to_string()),
            }
        }
        let out = DriverOutput {
            code: status.and_then(|s| s.code()),
            lines,
            stderr,
        };
        if status.is_none() {
            return Err(Error::Driver {
                what: format!("killed after {timeout:?}"),
                output: out.to_string(),
            });
        }
        if !bad.is_empty() {
            return Err(Error::Driver {
                what: format!("non-JSON stdout lines {bad:?}"),
                output: out.to_string(),
            });
        }
        Ok(out)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs one driver to completion (bounded by `timeout`) and returns its JSON lines. A non-zero
/// exit is an error carrying the whole output.
pub fn run_driver<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    timeout: Duration,
) -> Result<Vec<Value>, Error> {
    let out = Driver::spawn(args)?.finish(timeout)?;
    if out.code != Some(0) {
        return Err(Error::Driver {
            what: "non-zero exit".into(),
            output: out.to_string(),
        });
    }
    Ok(out.lines)
}
