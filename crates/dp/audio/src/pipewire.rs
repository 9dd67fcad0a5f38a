//! The box's sound from PipeWire: the default sink's monitor as interleaved s16 PCM at 48 kHz.
//!
//! Binding — `pw-record` (Debian/Fedora `pipewire-bin`, on every PipeWire desktop) as a child
//! process writing raw PCM to its stdout, read by a thread of ours into a [`JitterBuffer`]:
//! - the `pipewire` crate needs libpipewire-dev and bindgen in every build (CI and the image's
//!   build stage) and runs its main loop and callbacks on threads of a C library inside the data
//!   plane; libpulse needs the pipewire-pulse daemon as one more hop. A child process costs no
//!   build dependency, keeps PipeWire's code out of our address space, and every failure (not
//!   installed, no daemon, the daemon restarting) shows up as an exit status and stderr, which
//!   the [`Supervisor`] logs and answers with a restart.
//! - `pw-record -` writes raw samples (no header) through stdio: to a pipe it buffers 4096 B
//!   (21 ms of stereo) per write. `stdbuf -o0` (coreutils) makes it write each graph quantum as
//!   it comes (256 frames, 5.3 ms, with `--latency 256`); docs/measurements.md §audio capture.
//! - `stream.capture.sink=true` with no target records the monitor of the default sink (the
//!   session manager, WirePlumber, links it and follows default-sink changes).
//!
//! Contract:
//! - [`detect`] says whether capture can work here (the PipeWire socket accepts a connection,
//!   `pw-record` and `stdbuf` are on PATH) without starting anything; the data plane logs its
//!   answer once at start and falls back to the test tone.
//! - [`PipeWireCapture`] is one child process; [`Supervisor`] owns at most one, fills packets
//!   from it (silence while it primes, is down or restarting — never blocks), notices its exit
//!   (the reason: exit status and the tail of its stderr) and starts it again after a back-off.
//!   It does not log: each change (stopped with why, started again) is a [`Note`] its owner
//!   takes and logs once; a failure that repeats unchanged gives no new note.
//! - Drop kills the child it started (by its own handle) and joins its reader threads.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::jitter::{JitterBuffer, JitterStats, Popped};
use crate::{AudioError, SAMPLE_RATE};

/// The capture program and the wrapper that unbuffers its stdout.
pub const PW_RECORD: &str = "pw-record";
pub const STDBUF: &str = "stdbuf";
/// `--latency` asked of PipeWire, in frames: the quantum the graph runs at while we record
/// (256 frames = 5.3 ms, about one 5 ms packet; measured delivery in docs/measurements.md).
const LATENCY_FRAMES: u32 = 256;
/// First wait before starting an exited capture again, doubled up to [`RESTART_MAX`].
const RESTART_FIRST: Duration = Duration::from_millis(500);
const RESTART_MAX: Duration = Duration::from_secs(10);
/// Stderr bytes of an exited `pw-record` kept for its failure line.
const STDERR_TAIL: usize = 1024;
/// Bytes read from the pipe at a time: more than PipeWire's largest quantum (8192 frames of
/// stereo would be 32 KiB; bursts are cut, not lost).
const READ_CHUNK: usize = 16 * 1024;

/// Where PipeWire was found (for the start-up line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detected {
    pub socket: PathBuf,
    pub pw_record: PathBuf,
    pub stdbuf: PathBuf,
}

/// The environment detection reads (explicit, so tests need not change the process's own).
#[derive(Clone, Debug, Default)]
pub struct Env {
    pub pipewire_runtime_dir: Option<OsString>,
    pub xdg_runtime_dir: Option<OsString>,
    pub pipewire_remote: Option<OsString>,
    pub path: Option<OsString>,
}

impl Env {
    pub fn from_process() -> Self {
        Self {
            pipewire_runtime_dir: std::env::var_os("PIPEWIRE_RUNTIME_DIR"),
            xdg_runtime_dir: std::env::var_os("XDG_RUNTIME_DIR"),
            pipewire_remote: std::env::var_os("PIPEWIRE_REMOTE"),
            path: std::env::var_os("PATH"),
        }
    }

    /// The socket libpipewire connects to: `PIPEWIRE_REMOTE` (a name or an absolute path,
    /// default `pipewire-0`) in `PIPEWIRE_RUNTIME_DIR`, else `XDG_RUNTIME_DIR`.
    pub fn socket(&self) -> Option<PathBuf> {
        let name = self
            .pipewire_remote
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "pipewire-0".into());
        if Path::new(&name).is_absolute() {
            return Some(PathBuf::from(name));
        }
        let dir = [&self.pipewire_runtime_dir, &self.xdg_runtime_dir]
            .into_iter()
            .flatten()
            .find(|d| !d.is_empty())?;
        Some(Path::new(dir).join(name))
    }

    fn which(&self, program: &str) -> Option<PathBuf> {
        let path = self.path.as_ref()?;
        std::env::split_paths(path)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    }
}

/// Whether PipeWire capture can work here; `Err` says why not and how to fix it.
pub fn detect(env: &Env) -> Result<Detected, String> {
    let socket = env.socket().ok_or(
        "neither PIPEWIRE_RUNTIME_DIR nor XDG_RUNTIME_DIR is set (run the data plane in the \
         desktop user's session, or point PIPEWIRE_RUNTIME_DIR at its runtime directory)",
    )?;
    UnixStream::connect(&socket).map_err(|e| {
        format!(
            "no PipeWire at {}: {e} (is the user's pipewire service running, and may this \
             user open its socket?)",
            socket.display()
        )
    })?;
    let pw_record = env
        .which(PW_RECORD)
        .ok_or("pw-record is not on PATH (install pipewire-bin / pipewire-utils)")?;
    let stdbuf = env
        .which(STDBUF)
        .ok_or("stdbuf is not on PATH (install coreutils)")?;
    Ok(Detected {
        socket,
        pw_record,
        stdbuf,
    })
}

/// PipeWire's channel names in GameStream's order (FL FR C LFE BL BR SL SR).
fn channel_map(channels: u8) -> Result<&'static str, AudioError> {
    match channels {
        2 => Ok("FL,FR"),
        6 => Ok("FL,FR,FC,LFE,RL,RR"),
        8 => Ok("FL,FR,FC,LFE,RL,RR,SL,SR"),
        n => Err(AudioError::Config(format!(
            "{n} channels: not a GameStream layout"
        ))),
    }
}

/// How to run the capture.
#[derive(Clone, Debug)]
pub struct CaptureConfig {
    pub channels: u8,
    pub pw_record: PathBuf,
    pub stdbuf: PathBuf,
    /// Given to the child as `PIPEWIRE_RUNTIME_DIR` (`None`: it inherits ours).
    pub runtime_dir: Option<PathBuf>,
}

impl CaptureConfig {
    pub fn new(channels: u8, found: &Detected) -> Self {
        Self {
            channels,
            pw_record: found.pw_record.clone(),
            stdbuf: found.stdbuf.clone(),
            runtime_dir: None,
        }
    }
}

/// State the reader thread shares with the capture's owner.
#[derive(Debug)]
struct Inner {
    buf: Mutex<JitterBuffer>,
}

/// One running `pw-record`.
#[derive(Debug)]
pub struct PipeWireCapture {
    child: Child,
    inner: Arc<Inner>,
    reader: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<String>>,
}

impl PipeWireCapture {
    pub fn start(cfg: &CaptureConfig) -> Result<Self, AudioError> {
        let map = channel_map(cfg.channels)?;
        let mut cmd = Command::new(&cfg.stdbuf);
        cmd.arg("-o0")
            .arg(&cfg.pw_record)
            .args([
                "-P",
                "{ stream.capture.sink=true node.name=strahl-capture }",
            ])
            .args(["--latency", &LATENCY_FRAMES.to_string()])
            .args(["--rate", &SAMPLE_RATE.to_string()])
            .args(["--channels", &cfg.channels.to_string()])
            .args(["--channel-map", map])
            .args(["--format", "s16", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(d) = &cfg.runtime_dir {
            cmd.env("PIPEWIRE_RUNTIME_DIR", d);
        }
        let mut child = cmd.spawn().map_err(|e| {
            AudioError::Capture(format!("cannot start {}: {e}", cfg.pw_record.display()))
        })?;
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(AudioError::Capture("pw-record without pipes".into()));
        };
        let inner = Arc::new(Inner {
            buf: Mutex::new(JitterBuffer::new(cfg.channels, SAMPLE_RATE)),
        });
        let channels = usize::from(cfg.channels);
        let shared = inner.clone();
        let reader = std::thread::Builder::new()
            .name("strahl-pw-read".into())
            .spawn(move || read_pcm(out, channels, &shared));
        let stderr = std::thread::Builder::new()
            .name("strahl-pw-err".into())
            .spawn(move || stderr_tail(err));
        match (reader, stderr) {
            (Ok(r), Ok(e)) => Ok(Self {
                child,
                inner,
                reader: Some(r),
                stderr: Some(e),
            }),
            (r, e) => {
                // Killing the child ends whichever thread did start (its pipe closes).
                let _ = child.kill();
                let _ = child.wait();
                drop((r.map(JoinHandle::join), e.map(JoinHandle::join)));
                Err(AudioError::Capture(
                    "cannot start the capture threads".into(),
                ))
            }
        }
    }

    /// The next packet (never blocks).
    pub fn fill(&self, out: &mut [i16]) -> Popped {
        match self.inner.buf.lock() {
            Ok(mut b) => b.pop(out),
            Err(_) => {
                out.fill(0);
                Popped::Underrun
            }
        }
    }

    pub fn stats(&self) -> JitterStats {
        self.inner.buf.lock().map(|b| b.stats()).unwrap_or_default()
    }

    /// `Some(why)` once the child has exited (its status and the tail of its stderr).
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(self.reap(&format!("pw-record exited ({status})"))),
            Err(e) => Some(self.reap(&format!("pw-record cannot be waited for: {e}"))),
        }
    }

    fn reap(&mut self, what: &str) -> String {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let tail = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let tail = tail.trim();
        if tail.is_empty() {
            what.to_string()
        } else {
            format!("{what}: {}", tail.replace('\n', " | "))
        }
    }
}

impl Drop for PipeWireCapture {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        if let Some(e) = self.stderr.take() {
            let _ = e.join();
        }
    }
}

/// The reader thread: raw little-endian s16 from the pipe into the jitter buffer, whole frames
/// only (a read may end inside a frame; its bytes wait for the next read). Ends at EOF.
fn read_pcm(mut out: ChildStdout, channels: usize, inner: &Inner) {
    let frame_bytes = 2 * channels;
    let mut bytes = vec![0u8; READ_CHUNK];
    let mut samples = vec![0i16; READ_CHUNK / 2];
    let mut have = 0;
    loop {
        let n = match out.read(&mut bytes[have..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        have += n;
        let whole = have - have % frame_bytes;
        for (s, b) in samples.iter_mut().zip(bytes[..whole].chunks_exact(2)) {
            *s = i16::from_le_bytes([b[0], b[1]]);
        }
        if let Ok(mut b) = inner.buf.lock() {
            b.push(&samples[..whole / 2]);
        }
        bytes.copy_within(whole..have, 0);
        have -= whole;
    }
}

/// The stderr thread: keeps the last [`STDERR_TAIL`] bytes until the pipe closes.
fn stderr_tail(mut err: ChildStderr) -> String {
    let mut tail = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        match err.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.extend_from_slice(&chunk[..n]);
                if tail.len() > STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
        }
    }
    String::from_utf8_lossy(&tail).into_owned()
}

/// Cumulative counters of a [`Supervisor`] (over every capture it started).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    pub underruns: u64,
    pub trimmed_frames: u64,
    /// Captures that exited and were (or will be) started again.
    pub restarts: u64,
}

/// A change in a [`Supervisor`]'s capture, for its owner's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// The capture could not start or exited: why; silence until it is started again.
    Stopped(String),
    /// Running again after a [`Note::Stopped`].
    Restarted,
}

/// Keeps one capture running for a session: starts it, fills packets from it, restarts it
/// after an exit with a doubling back-off, and notes each new failure once.
#[derive(Debug)]
pub struct Supervisor {
    cfg: CaptureConfig,
    capture: Option<PipeWireCapture>,
    next_start: Instant,
    backoff: Duration,
    /// Counters of captures already gone.
    past: CaptureStats,
    /// The last failure noted (a repeat of the same one is not noted again).
    last_failure: Option<String>,
    note: Option<Note>,
}

impl Supervisor {
    /// Does not start anything until the first [`fill`](Self::fill).
    pub fn new(cfg: CaptureConfig, now: Instant) -> Self {
        Self {
            cfg,
            capture: None,
            next_start: now,
            backoff: RESTART_FIRST,
            past: CaptureStats::default(),
            last_failure: None,
            note: None,
        }
    }

    /// The latest change since the last call (for the owner's log).
    pub fn take_note(&mut self) -> Option<Note> {
        self.note.take()
    }

    /// Whether a capture is running now.
    pub fn running(&self) -> bool {
        self.capture.is_some()
    }

    pub fn stats(&self) -> CaptureStats {
        let live = self.capture.as_ref().map(|c| c.stats()).unwrap_or_default();
        CaptureStats {
            underruns: self.past.underruns + live.underruns,
            trimmed_frames: self.past.trimmed_frames + live.trimmed_frames,
            restarts: self.past.restarts,
        }
    }

    /// The next packet: captured audio, or silence while the capture primes or is down.
    pub fn fill(&mut self, out: &mut [i16], now: Instant) -> Popped {
        if let Some(c) = &mut self.capture
            && let Some(why) = c.exited()
        {
            let gone = c.stats();
            self.past.underruns += gone.underruns;
            self.past.trimmed_frames += gone.trimmed_frames;
            self.past.restarts += 1;
            self.capture = None;
            self.failed(why, now);
        }
        if self.capture.is_none() && now >= self.next_start {
            match PipeWireCapture::start(&self.cfg) {
                Ok(c) => {
                    if self.last_failure.take().is_some() {
                        self.note = Some(Note::Restarted);
                    }
                    self.capture = Some(c);
                }
                Err(e) => self.failed(e.to_string(), now),
            }
        }
        match &self.capture {
            Some(c) => c.fill(out),
            None => {
                out.fill(0);
                Popped::Priming
            }
        }
    }

    fn failed(&mut self, why: String, now: Instant) {
        if self.last_failure.as_deref() != Some(why.as_str()) {
            self.note = Some(Note::Stopped(why.clone()));
            self.last_failure = Some(why);
            self.backoff = RESTART_FIRST;
        } else {
            self.backoff = (self.backoff * 2).min(RESTART_MAX);
        }
        self.next_start = now + self.backoff;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_path_follows_libpipewire_rules() {
        let mut env = Env {
            xdg_runtime_dir: Some("/run/user/1000".into()),
            ..Env::default()
        };
        assert_eq!(env.socket(), Some("/run/user/1000/pipewire-0".into()));
        env.pipewire_runtime_dir = Some("/tmp/pw".into());
        assert_eq!(env.socket(), Some("/tmp/pw/pipewire-0".into()));
        env.pipewire_remote = Some("other".into());
        assert_eq!(env.socket(), Some("/tmp/pw/other".into()));
        env.pipewire_remote = Some("/abs/sock".into());
        assert_eq!(env.socket(), Some("/abs/sock".into()));
        assert_eq!(Env::default().socket(), None);
    }

    #[test]
    fn detect_says_why_not() {
        let e = detect(&Env::default()).unwrap_err();
        assert!(e.contains("XDG_RUNTIME_DIR"), "{e}");
        let dir = std::env::temp_dir().join(format!("strahl-pw-none-{}", std::process::id()));
        let e = detect(&Env {
            pipewire_runtime_dir: Some(dir.clone().into()),
            ..Env::default()
        })
        .unwrap_err();
        assert!(e.contains(&dir.display().to_string()), "{e}");
    }

    #[test]
    fn a_missing_program_is_a_logged_failure_with_silence_and_backoff() {
        let cfg = CaptureConfig {
            channels: 2,
            pw_record: "/nonexistent/pw-record".into(),
            stdbuf: "/nonexistent/stdbuf".into(),
            runtime_dir: None,
        };
        let t0 = Instant::now();
        let mut s = Supervisor::new(cfg, t0);
        let mut out = vec![5i16; 480];
        assert_eq!(s.fill(&mut out, t0), Popped::Priming);
        assert!(out.iter().all(|&v| v == 0));
        assert!(!s.running());
        match s.take_note() {
            Some(Note::Stopped(why)) => assert!(why.contains("cannot start"), "{why}"),
            n => panic!("{n:?}"),
        }
        // Not retried before the back-off ends; retried (and failing again) after it, with a
        // longer wait.
        assert_eq!(s.next_start, t0 + RESTART_FIRST);
        s.fill(&mut out, t0 + RESTART_FIRST);
        assert_eq!(s.next_start, t0 + RESTART_FIRST + 2 * RESTART_FIRST);
        // The same failure again: no new note.
        assert_eq!(s.take_note(), None);
        assert_eq!(
            channel_map(4).unwrap_err().to_string(),
            "audio config: 4 channels: not a GameStream layout"
        );
    }
}
