//! `strahl-kms-helper`: the privileged half of KMS capture (design: `strahl_capture::kms`).
//!
//! Opens the card, finds the CRTC (of `--connector` when given), listens on `--socket`
//! (SOCK_SEQPACKET, mode 0660) and streams every page-flipped framebuffer to the connected
//! data plane as a dmabuf fd, one peer at a time, until `--max-seconds` (default: forever).
//! It is the one strahl process that holds CAP_SYS_ADMIN; it reads nothing from its peer.
//! Exit status: 0 at the time limit, 1 when capture is not possible (reason on stderr).

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use strahl_capture::kms_grab::{KmsGrabber, ServeLimits, serve};
use strahl_capture::{kms, kms_wire};

const USAGE: &str = "usage: strahl-kms-helper --socket PATH [--device /dev/dri/cardN] \
                     [--connector NAME] [--max-seconds N]";

/// Log lines to stderr (the journal under systemd).
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!("strahl-kms-helper: {}: {}", r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

struct Args {
    socket: PathBuf,
    device: Option<PathBuf>,
    connector: Option<String>,
    max_time: Option<Duration>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        socket: PathBuf::new(),
        device: None,
        connector: None,
        max_time: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || {
            it.next()
                .ok_or_else(|| format!("{k} needs a value\n{USAGE}"))
        };
        match k.as_str() {
            "--socket" => a.socket = PathBuf::from(v()?),
            "--device" => a.device = Some(PathBuf::from(v()?)),
            "--connector" => a.connector = Some(v()?),
            "--max-seconds" => {
                let s: u64 = v()?.parse().map_err(|e| format!("--max-seconds: {e}"))?;
                a.max_time = Some(Duration::from_secs(s));
            }
            "--help" | "-h" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument {k}\n{USAGE}")),
        }
    }
    if a.socket.as_os_str().is_empty() {
        return Err(format!("--socket is required\n{USAGE}"));
    }
    Ok(a)
}

fn main() -> ExitCode {
    let _ = log::set_logger(&StderrLog).map(|()| log::set_max_level(log::LevelFilter::Info));
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let device = match &args.device {
        Some(d) => d.clone(),
        None => kms::probe().map_err(|e| e.to_string())?.device,
    };
    let mut grabber =
        KmsGrabber::open(&device, args.connector.as_deref()).map_err(|e| e.to_string())?;
    let listener = kms_wire::listen(&args.socket).map_err(|e| e.to_string())?;
    log::info!(
        "capturing {} for peers on {}",
        grabber.describe(),
        args.socket.display()
    );
    let t0 = Instant::now();
    let stop = AtomicBool::new(false);
    let left = |t0: Instant| args.max_time.map(|m| m.saturating_sub(t0.elapsed()));
    while left(t0).is_none_or(|l| !l.is_zero()) {
        let wait = left(t0)
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1));
        let Some(peer) = kms_wire::accept(listener.as_fd(), wait).map_err(|e| e.to_string())?
        else {
            continue;
        };
        let limits = ServeLimits {
            max_frames: None,
            max_time: left(t0),
        };
        let st = serve(&mut grabber, &peer, limits, &stop).map_err(|e| e.to_string())?;
        log::info!(
            "peer done: {} frames in {} refresh ticks (peer left: {})",
            st.frames,
            st.ticks,
            st.peer_left
        );
    }
    let _ = std::fs::remove_file(&args.socket);
    Ok(())
}
