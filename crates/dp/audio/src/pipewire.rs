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
//! - [`probe`] looks (the socket — `[audio] pipewire_socket`, else libpipewire's environment,
//!   else [`APPLIANCE_SOCKET`] — accepts a connection, `pw-record` and `stdbuf` are on PATH)
//!   without playing or recording anything; [`Probe::decide`] turns what it saw into the
//!   answer, or why not and the fix, with no IO (unit-tested). Without PipeWire at start the
//!   data plane streams the tone with `source = "auto"` (and probes again as each session
//!   starts) and refuses to start with `"pipewire"`.
//! - [`PipeWireCapture`] is one child process; [`Supervisor`] owns at most one, fills packets
//!   from it (silence while it primes, is down or restarting — never blocks), notices its exit
//!   (the reason: exit status and the tail of its stderr) and starts it again after a back-off.
//!   It does not log: each change (stopped with why, started again) is a [`Note`] its owner
//!   takes and logs once; one outage (PipeWire gone mid-session, whatever the retries then
//!   report) is one note, and running again is another.
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

/// The socket a system service looks at when nothing names one: the appliance's desktop user
/// (uid 1000: the first user of a Fedora/Bazzite install, the one the box logs in). That
/// user's session opens it to the `strahl-audio` group (appliance/pipewire/).
pub const APPLIANCE_SOCKET: &str = "/run/user/1000/pipewire-0";

/// Where PipeWire was found (for the start-up line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detected {
    pub socket: PathBuf,
    /// What named the socket (`[audio] pipewire_socket`, `XDG_RUNTIME_DIR`, …).
    pub origin: &'static str,
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

    /// The socket libpipewire connects to, and what named it: `PIPEWIRE_REMOTE` (a name or an
    /// absolute path, default `pipewire-0`) in `PIPEWIRE_RUNTIME_DIR`, else `XDG_RUNTIME_DIR`;
    /// with neither directory set (a system service), [`APPLIANCE_SOCKET`].
    pub fn socket(&self) -> (PathBuf, &'static str) {
        let name = self
            .pipewire_remote
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "pipewire-0".into());
        if Path::new(&name).is_absolute() {
            return (PathBuf::from(name), "PIPEWIRE_REMOTE");
        }
        let dirs = [
            (&self.pipewire_runtime_dir, "PIPEWIRE_RUNTIME_DIR"),
            (&self.xdg_runtime_dir, "XDG_RUNTIME_DIR"),
        ];
        match dirs
            .into_iter()
            .find_map(|(d, n)| d.as_ref().filter(|d| !d.is_empty()).map(|d| (d, n)))
        {
            Some((dir, origin)) => (Path::new(dir).join(name), origin),
            None => (
                PathBuf::from(APPLIANCE_SOCKET),
                "the appliance's desktop user (no PIPEWIRE_RUNTIME_DIR or XDG_RUNTIME_DIR)",
            ),
        }
    }

    fn which(&self, program: &str) -> Option<PathBuf> {
        let path = self.path.as_ref()?;
        std::env::split_paths(path)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    }
}

/// What [`probe`] saw; [`Probe::decide`] judges it without touching the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub socket: PathBuf,
    pub origin: &'static str,
    /// Whether a connection to the socket was accepted (`Err`: the error, with its kind).
    pub connect: Result<(), (std::io::ErrorKind, String)>,
    pub pw_record: Option<PathBuf>,
    pub stdbuf: Option<PathBuf>,
}

/// Looks for PipeWire without playing or recording anything: the socket (`configured`, else
/// [`Env::socket`]) is connected to and closed again, the programs are looked up on PATH.
pub fn probe(configured: Option<&Path>, env: &Env) -> Probe {
    let (socket, origin) = match configured {
        Some(p) => (p.to_path_buf(), "[audio] pipewire_socket"),
        None => env.socket(),
    };
    let connect = UnixStream::connect(&socket)
        .map(drop)
        .map_err(|e| (e.kind(), e.to_string()));
    Probe {
        socket,
        origin,
        connect,
        pw_record: env.which(PW_RECORD),
        stdbuf: env.which(STDBUF),
    }
}

impl Probe {
    /// Whether capture can work; `Err` says why not and how to fix it.
    pub fn decide(&self) -> Result<Detected, String> {
        let at = format!("{} (from {})", self.socket.display(), self.origin);
        if let Err((kind, e)) = &self.connect {
            let hint = match kind {
                std::io::ErrorKind::PermissionDenied => {
                    "this user may not open it: on the appliance the data plane's user needs \
                     the strahl-audio group and the desktop session's grant (README, \"The \
                     box's sound\"); `strahl-control doctor` checks both"
                }
                std::io::ErrorKind::NotFound => {
                    "no PipeWire runs there: is the desktop user logged in with its pipewire \
                     service, or does [audio] pipewire_socket name another user's socket?"
                }
                _ => "is the user's pipewire service running?",
            };
            return Err(format!("no PipeWire at {at}: {e} ({hint})"));
        }
        let pw_record = self.pw_record.clone().ok_or(
            "pw-record is not on PATH (install pipewire-bin / pipewire-utils)".to_string(),
        )?;
        let stdbuf = self
            .stdbuf
            .clone()
            .ok_or("stdbuf is not on PATH (install coreutils)".to_string())?;
        Ok(Detected {
            socket: self.socket.clone(),
            origin: self.origin,
            pw_record,
            stdbuf,
        })
    }
}

/// [`probe`] then [`Probe::decide`].
pub fn detect(configured: Option<&Path>, env: &Env) -> Result<Detected, String> {
    probe(configured, env).decide()
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
    /// The socket the child connects to, given to it as `PIPEWIRE_RUNTIME_DIR` (the
    /// directory) and `PIPEWIRE_REMOTE` (the name) — every libpipewire reads those two, so the
    /// capture reaches the socket the probe reached whatever named it (`None`: it inherits
    /// our environment).
    pub socket: Option<PathBuf>,
}

impl CaptureConfig {
    pub fn new(channels: u8, found: &Detected) -> Self {
        Self {
            channels,
            pw_record: found.pw_record.clone(),
            stdbuf: found.stdbuf.clone(),
            socket: Some(found.socket.clone()),
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
        if let Some(sock) = &cfg.socket
            && let (Some(dir), Some(name)) = (sock.parent(), sock.file_name())
        {
            cmd.env("PIPEWIRE_RUNTIME_DIR", dir)
                .env("PIPEWIRE_REMOTE", name);
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
    /// The latest failure of the current outage (`None` while a capture runs).
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

    /// One note per outage: the first failure after running (or at the start) is noted; the
    /// retries that follow — PipeWire gone, then refusing connections, then not there at all —
    /// only lengthen the back-off, until a capture runs again ([`Note::Restarted`]).
    fn failed(&mut self, why: String, now: Instant) {
        if self.last_failure.is_none() {
            self.note = Some(Note::Stopped(why.clone()));
            self.backoff = RESTART_FIRST;
        } else {
            self.backoff = (self.backoff * 2).min(RESTART_MAX);
        }
        self.last_failure = Some(why);
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
        assert_eq!(
            env.socket(),
            ("/run/user/1000/pipewire-0".into(), "XDG_RUNTIME_DIR")
        );
        env.pipewire_runtime_dir = Some("/tmp/pw".into());
        assert_eq!(
            env.socket(),
            ("/tmp/pw/pipewire-0".into(), "PIPEWIRE_RUNTIME_DIR")
        );
        env.pipewire_remote = Some("other".into());
        assert_eq!(env.socket().0, PathBuf::from("/tmp/pw/other"));
        env.pipewire_remote = Some("/abs/sock".into());
        assert_eq!(env.socket(), ("/abs/sock".into(), "PIPEWIRE_REMOTE"));
        // A system service: the appliance's desktop user.
        assert_eq!(Env::default().socket().0, PathBuf::from(APPLIANCE_SOCKET));
    }

    fn seen(connect: Result<(), std::io::ErrorKind>) -> Probe {
        Probe {
            socket: "/run/user/1000/pipewire-0".into(),
            origin: "[audio] pipewire_socket",
            connect: connect.map_err(|k| (k, std::io::Error::from(k).to_string())),
            pw_record: Some("/usr/bin/pw-record".into()),
            stdbuf: Some("/usr/bin/stdbuf".into()),
        }
    }

    #[test]
    fn the_decision_names_the_socket_its_origin_and_the_fix() {
        let d = seen(Ok(())).decide().unwrap();
        assert_eq!(d.socket, PathBuf::from("/run/user/1000/pipewire-0"));
        assert_eq!(d.origin, "[audio] pipewire_socket");
        assert_eq!(d.pw_record, PathBuf::from("/usr/bin/pw-record"));

        let e = seen(Err(std::io::ErrorKind::PermissionDenied))
            .decide()
            .unwrap_err();
        assert!(
            e.starts_with(
                "no PipeWire at /run/user/1000/pipewire-0 (from [audio] pipewire_socket): "
            ),
            "{e}"
        );
        assert!(e.contains("strahl-audio") && e.contains("doctor"), "{e}");
        let e = seen(Err(std::io::ErrorKind::NotFound))
            .decide()
            .unwrap_err();
        assert!(e.contains("logged in"), "{e}");
        let e = seen(Err(std::io::ErrorKind::ConnectionRefused))
            .decide()
            .unwrap_err();
        assert!(e.contains("pipewire service running"), "{e}");

        // Reachable, but a program is missing: that is the reason.
        let mut p = seen(Ok(()));
        p.pw_record = None;
        assert!(p.decide().unwrap_err().contains("pipewire-bin"));
        let mut p = seen(Ok(()));
        p.stdbuf = None;
        assert!(p.decide().unwrap_err().contains("coreutils"));
    }

    #[test]
    fn probe_connects_and_finds_programs_without_playing() {
        let dir = std::env::temp_dir().join(format!("strahl-pw-probe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        for p in [PW_RECORD, STDBUF] {
            std::fs::write(dir.join("bin").join(p), "").unwrap();
        }
        let env = Env {
            pipewire_runtime_dir: Some(dir.clone().into()),
            path: Some(dir.join("bin").into()),
            ..Env::default()
        };
        // Nothing listens yet.
        let p = probe(None, &env);
        assert_eq!(p.socket, dir.join("pipewire-0"));
        assert_eq!(p.origin, "PIPEWIRE_RUNTIME_DIR");
        assert_eq!(
            p.connect.as_ref().map_err(|e| e.0),
            Err(std::io::ErrorKind::NotFound)
        );
        // A listener there (standing in for the daemon): reachable, and the connection is
        // all the probe did — nothing was written to it.
        let listener = std::os::unix::net::UnixListener::bind(dir.join("pipewire-0")).unwrap();
        let d = detect(None, &env).unwrap();
        assert_eq!(d.pw_record, dir.join("bin").join(PW_RECORD));
        let (mut conn, _) = listener.accept().unwrap();
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        // The configured path wins over the environment.
        let other = dir.join("elsewhere");
        let p = probe(Some(&other), &env);
        assert_eq!(
            (p.socket.as_path(), p.origin),
            (other.as_path(), "[audio] pipewire_socket")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_program_is_a_logged_failure_with_silence_and_backoff() {
        let cfg = CaptureConfig {
            channels: 2,
            pw_record: "/nonexistent/pw-record".into(),
            stdbuf: "/nonexistent/stdbuf".into(),
            socket: None,
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
