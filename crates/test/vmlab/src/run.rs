//! Drives `scripts/vmlab/run-guest` for one [`GuestSpec`]: spawns it in its own process group,
//! reads both streams on threads (so a chatty guest cannot block on a full pipe), and bounds the
//! wait: the runner kills QEMU at the spec's timeout itself; if it has not returned 30 s after
//! that, the whole group (runner and QEMU) is killed here.

use std::fmt;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{GuestSpec, Lab};

/// The runner's exit status when its timeout killed the guest.
pub const STATUS_TIMED_OUT: i32 = 124;
/// The runner's exit status when the lab failed before the command ran.
pub const STATUS_LAB_FAILED: i32 = 125;

/// What the guest's command printed and how it exited.
#[derive(Debug, Clone)]
pub struct GuestOutput {
    pub stdout: String,
    /// The command's stderr, then the runner's own messages (if any).
    pub stderr: String,
    /// The command's exit status.
    pub status: i32,
    /// Boot + command + power-off, as seen from here.
    pub elapsed: Duration,
}

impl GuestOutput {
    /// Panics with both streams unless the command exited 0.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status == 0,
            "guest command exited {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Why no command status came back.
#[derive(Debug)]
pub enum LabError {
    /// The runner could not be started.
    Spawn(std::io::Error),
    /// The guest ran past the spec's timeout and was killed.
    TimedOut {
        after: Duration,
        stdout: String,
        stderr: String,
    },
    /// The lab failed before the command ran (QEMU, kernel, stage 1/2); `stderr` carries the
    /// runner's explanation and the guest console's tail.
    Failed { status: Option<i32>, stderr: String },
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabError::Spawn(e) => write!(f, "cannot start scripts/vmlab/run-guest: {e}"),
            LabError::TimedOut { after, stderr, .. } => {
                write!(f, "guest timed out after {after:?}:\n{stderr}")
            }
            LabError::Failed { status, stderr } => {
                write!(f, "VM lab failed (runner status {status:?}):\n{stderr}")
            }
        }
    }
}

impl std::error::Error for LabError {}

fn drain(r: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn kill_group(child: &mut Child) {
    // The runner leads its own process group (process_group(0)), so -PID reaches QEMU too.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
}

pub(crate) fn run(lab: &Lab, spec: &GuestSpec) -> Result<GuestOutput, LabError> {
    let started = Instant::now();
    let mut child = Command::new(lab.runner())
        .args(spec.args())
        .env("STRAHL_VMLAB_DIR", lab.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(LabError::Spawn)?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let hard_limit = spec.timeout + Duration::from_secs(30);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if started.elapsed() >= hard_limit => {
                kill_group(&mut child);
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(100)),
            Err(_) => {
                kill_group(&mut child);
                let _ = child.wait();
                break None;
            }
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let elapsed = started.elapsed();
    let code = status.and_then(|s| s.code().or_else(|| s.signal().map(|n| 128 + n)));
    // 124/125 are the runner's own only when it says so (a command may exit 124 itself).
    match code {
        None => Err(LabError::TimedOut {
            after: elapsed,
            stdout,
            stderr,
        }),
        Some(STATUS_TIMED_OUT) if stderr.contains("run-guest: timed out") => {
            Err(LabError::TimedOut {
                after: elapsed,
                stdout,
                stderr,
            })
        }
        Some(STATUS_LAB_FAILED) if stderr.contains("run-guest: ") => Err(LabError::Failed {
            status: code,
            stderr,
        }),
        Some(status) => Ok(GuestOutput {
            stdout,
            stderr,
            status,
            elapsed,
        }),
    }
}
