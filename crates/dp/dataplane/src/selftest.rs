//! `strahl-dataplane selftest --out FILE`: the hardware self-check a user runs on their box —
//! capture → encode for a few seconds (5 by default) at the frame rate, the access units
//! written to FILE as an Annex-B elementary stream (playable with `ffplay FILE`), and what was
//! chosen for capture and encode and why, one line each, then a summary.
//!
//! - Capture: the scan-out from `strahl-kms-helper` when it answers at `STRAHL_KMS_SOCKET`
//!   (default `/run/strahl/kms.sock`; read by the CPU into I420 at the requested size), else the
//!   synthetic test pattern, with why.
//! - Encode: [`strahl_encode::select::build`] with the requested preference — NVENC when the
//!   driver is there and its session opens (with the software fallback on device loss), else
//!   OpenH264; its one-line reason is printed as is.
//! - Pacing: frame `k` is captured at `k / fps` s after the start (the capture clock of a
//!   display); a frame whose encode ends after the next frame is due counts as late — the
//!   figure that says whether this encoder keeps up on this machine.
//!
//! Exit status: 0 when every frame was encoded and written, 1 otherwise (the error printed).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use strahl_capture::kms_video::{DEFAULT_SOCKET, KmsVideoSource};
use strahl_capture::synthetic::{SyntheticConfig, SyntheticSource};
use strahl_capture::{Frame, PixelFormat, VideoSource};
use strahl_encode::openh264_enc::OpenH264Config;
use strahl_encode::select::{self, Preference};

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct SelftestArgs {
    pub out: PathBuf,
    pub seconds: f64,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub encoder: Preference,
}

impl SelftestArgs {
    pub fn new(out: PathBuf) -> Self {
        Self {
            out,
            seconds: 5.0,
            width: 1280,
            height: 720,
            fps: 60,
            bitrate_kbps: 10_000,
            encoder: Preference::Auto,
        }
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub capture: String,
    pub encoder: String,
    pub frames: u32,
    pub idr_frames: u32,
    pub bytes: u64,
    pub late: u32,
    pub elapsed: Duration,
}

/// Runs the self-check, writing its lines to `log`.
pub fn run(args: &SelftestArgs, log: &mut dyn Write) -> Result<Report, String> {
    let (w, h, fps) = (args.width, args.height, args.fps);
    if !(args.seconds > 0.0 && args.seconds <= 3600.0) || fps == 0 || fps > 240 {
        return Err(format!(
            "--seconds must be in (0, 3600] and --fps in 1..=240 (got {} s, {fps} fps)",
            args.seconds
        ));
    }
    let frames = ((args.seconds * f64::from(fps)).round() as u32).max(1);
    let say = |log: &mut dyn Write, line: String| {
        let _ = writeln!(log, "{line}");
    };

    let socket = std::env::var_os("STRAHL_KMS_SOCKET")
        .map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from);
    let (mut src, capture): (Box<dyn VideoSource>, String) =
        match KmsVideoSource::connect(&socket, w, h, fps) {
            Ok(kms) => (
                Box::new(kms),
                format!(
                    "kms — strahl-kms-helper answers at {} (scan-out dmabufs, read by the CPU \
                     into I420)",
                    socket.display()
                ),
            ),
            Err(e) => {
                let synthetic = SyntheticSource::new(SyntheticConfig {
                    width: w,
                    height: h,
                    fps,
                    format: PixelFormat::I420,
                    first_frame_number: 0,
                })
                .map_err(|e| format!("synthetic source {w}x{h}: {e}"))?;
                (
                    Box::new(synthetic),
                    format!(
                        "synthetic — no KMS capture ({e}; strahl-kms-helper, which holds \
                         CAP_SYS_ADMIN, serves it)"
                    ),
                )
            }
        };
    say(log, format!("capture: {capture}"));
    let mut frame = Frame::new(w, h, PixelFormat::I420).map_err(|e| format!("frame: {e}"))?;

    let cfg = OpenH264Config::new(w, h, fps, args.bitrate_kbps.saturating_mul(1000));
    let (mut enc, choice) =
        select::build(args.encoder, cfg).map_err(|e| format!("encoder: {e}"))?;
    say(log, format!("encoder: {} — {}", enc.name(), choice.reason));

    let file = File::create(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let mut file = BufWriter::new(file);
    let mut au = Vec::new();
    let (mut idr_frames, mut bytes, mut late) = (0u32, 0u64, 0u32);
    let period_ns = 1_000_000_000u64 / u64::from(fps);
    let start = Instant::now();
    for k in 0..u64::from(frames) {
        let due = start + Duration::from_nanos(k * period_ns);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        src.next_frame(&mut frame)
            .map_err(|e| format!("capture frame {k}: {e}"))?;
        let info = enc
            .encode(&frame, &mut au)
            .map_err(|e| format!("encode frame {k} with {}: {e}", enc.name()))?;
        file.write_all(&au)
            .map_err(|e| format!("write {}: {e}", args.out.display()))?;
        idr_frames += u32::from(info.idr);
        bytes += au.len() as u64;
        if Instant::now() > due + Duration::from_nanos(period_ns) {
            late += 1;
        }
    }
    file.flush()
        .map_err(|e| format!("write {}: {e}", args.out.display()))?;
    let elapsed = start.elapsed();
    let kbps = bytes * 8 * u64::from(fps) / u64::from(frames) / 1000;
    say(
        log,
        format!(
            "wrote {frames} frames ({idr_frames} IDR, {bytes} bytes, ~{kbps} kbit/s) of \
             {w}x{h}@{fps} to {} in {:.2} s; {late} frames late (encoder {} at the end)",
            args.out.display(),
            elapsed.as_secs_f64(),
            enc.name()
        ),
    );
    Ok(Report {
        capture,
        encoder: choice.reason,
        frames,
        idr_frames,
        bytes,
        late,
        elapsed,
    })
}
