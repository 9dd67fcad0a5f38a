//! KMS capture on a real kernel driver (virtio-gpu, the lab's Debian 6.12 guest), one boot;
//! `STRAHL_KMS_LAB_GPU=bochs` runs it on bochs-drm instead.
//!
//! In the guest three processes play the appliance's parts:
//! - the **game** (this binary, role `game`): DRM master on `card0`; sets 640×480 with dumb
//!   buffers, then page-flips numbered frames (the synthetic source's frame-number band, drawn
//!   in XRGB) at ~30 Hz through four buffers, moving a 64×64 hardware cursor each frame; then
//!   switches the connector to 800×600 (a real modeset) and flips more frames;
//! - the **capture helper** (`strahl-kms-helper`, root = CAP_SYS_ADMIN, not master): GETFB2 +
//!   PRIME per flip, dmabuf fds over the SEQPACKET socket;
//! - the **consumer** (role `guest`, the data plane's part: `KmsSource`): maps each dmabuf,
//!   converts to I420 and reads the frame number back with `synthetic::read_frame_number`.
//!
//! Checked: the numbers read are the drawn ones, strictly increasing, ≥ [`MIN_FRAMES`] in all
//! and ≥ [`MIN_FRAMES_640`] at 640×480; the mode change is followed without restarting
//! anything (one `Resized` to 800×600, ≥ [`MIN_FRAMES_800`] frames there, numbers continuing); the cursor's reported position is
//! where the game put it; the captured pictures through openh264 decode to the same numbers.
//! And the privilege split holds on the real driver: the same helper as user nobody without
//! capabilities gets no buffer from GETFB2 and exits naming CAP_SYS_ADMIN. The guest prints
//! `KMS-LAB` summary lines the host repeats.
//!
//! Before the game, the same boot sets the session's mode on the console's display and puts
//! it back, and later asks while the game is master (`kms_lab/mode.rs`, issue 11 item 3).
//!
//! The same boot then runs strahl on the same driver and streams to the real Moonlight core on
//! the host side of the guest's tap (`kms_lab/stream.rs`, issue 11's proof: ≥ 150 numbered
//! frames decoded in order across a mode change). That half needs root on the host (network
//! namespace); without it the case ends as not run after the KMS half has passed.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use drm::buffer::{Buffer as _, DrmFourcc};
use drm::control::dumbbuffer::DumbBuffer;
use drm::control::{Device as ControlDevice, Event, Mode, PageFlipFlags, connector, crtc};
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use strahl_capture::kms_map::i420_to_xrgb;
use strahl_capture::kms_source::{KmsSource, Next};
use strahl_capture::kms_wire::FLAG_CURSOR_VISIBLE;
use strahl_capture::synthetic::{
    BandLayout, FRAME_NUMBER_BITS, SyntheticConfig, SyntheticSource, read_frame_number,
    read_frame_number_strided,
};
use strahl_capture::{Frame, PixelFormat};
use strahl_encode::Encoder;
use strahl_encode::openh264_enc::{OpenH264Config, OpenH264Encoder};
use strahl_vmlab::harness::{Case, run, skip};
use strahl_vmlab::{Gpu, GuestSpec, Lab};

#[path = "kms_lab/mode.rs"]
mod mode;
#[path = "kms_lab/stream.rs"]
mod stream;

const ROLE: &str = "STRAHL_KMS_LAB_ROLE";
/// The driver's name, for the guest's summary line.
const GPU_NAME: &str = "STRAHL_KMS_LAB_GPU_NAME";
/// Frames the game flips at each mode (the first of each is set by the modeset itself).
const FRAMES_640: u32 = 200;
const FRAMES_800: u32 = 100;
/// What the capture must read back: ≥ 150 frames in all, a good share at each mode. Under TCG
/// on a loaded machine the consumer is slower than 30 Hz and drops stale frames for newer ones
/// (seen: all 300 when the machine is quiet, ~60 % when it is busy).
const MIN_FRAMES: usize = 150;
const MIN_FRAMES_640: usize = 60;
const MIN_FRAMES_800: usize = 30;
const FLIP_INTERVAL: Duration = Duration::from_micros(33_333);
const BUFFERS: usize = 4;
const CARD: &str = "/dev/dri/card0";

fn main() -> ExitCode {
    match std::env::var(ROLE).as_deref() {
        Ok("game") => return exit(game()),
        Ok("guest") => return exit(guest()),
        _ => {}
    }
    run(&[Case {
        name: "kms_capture_reads_flipped_frames_and_follows_a_mode_change_on_virtio_gpu",
        run: host_case,
    }])
}

fn exit(r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn host_case(lab: &Lab) {
    let exe = std::env::current_exe().unwrap();
    // virtio-gpu in the suite (it has a cursor plane); `STRAHL_KMS_LAB_GPU=bochs` runs the same
    // check on bochs-drm by hand (no cursor plane there: the cursor check is skipped).
    let (gpu, name) = match std::env::var("STRAHL_KMS_LAB_GPU").as_deref() {
        Ok("bochs") => (Gpu::Bochs, "bochs-drm"),
        _ => (Gpu::Virtio, "virtio-gpu"),
    };
    // The Moonlight half shares the boot when this machine can give the guest a NIC (root).
    let host = stream::Host::prepare();
    let mut spec = GuestSpec::new([exe])
        .env(ROLE, "guest")
        .env(GPU_NAME, name)
        .gpu(gpu)
        .timeout_secs(if host.is_ok() { 900 } else { 300 });
    if let Ok(h) = &host {
        spec = h.guest_spec(spec);
    }
    let lab2 = lab.clone();
    let guest = std::thread::spawn(move || lab2.run(&spec));
    let drive = host.as_ref().ok().map(|h| h.drive(&guest));
    let out = guest
        .join()
        .expect("guest thread")
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "guest: {:.1} s\n{}\n{}",
        out.elapsed.as_secs_f64(),
        out.stdout,
        out.stderr
    );
    out.assert_success();
    for summary in out.stdout.lines().filter(|l| l.starts_with("KMS-LAB ")) {
        println!("{summary}");
    }
    match &host {
        Ok(h) => h.check(
            &drive
                .expect("driven whenever the host half is prepared")
                .unwrap_or_else(|e| panic!("Moonlight half: {e}")),
        ),
        Err(why) => skip(format!("the KMS half passed; {why}")),
    }
}

// ---------------------------------------------------------------- the game (DRM master)

struct Card(std::fs::File);
impl AsFd for Card {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
impl drm::Device for Card {}
impl ControlDevice for Card {}

/// Where the game puts the cursor for frame `n`.
fn cursor_pos(n: u32) -> (i32, i32) {
    (100 + 2 * (n % 100) as i32, 200)
}

/// How the game plays: the check above by default; the Moonlight stream (`stream.rs`) sets
/// each through the environment of the game's process.
struct GameParams {
    /// Frames flipped at 640×480, then at 800×600 (`STRAHL_KMS_LAB_FRAMES=a,b`).
    frames: [u32; 2],
    /// The first frame's number (`STRAHL_KMS_LAB_FIRST`).
    first: u32,
    /// Draw the number band as laid out for this size, scaled to the screen
    /// (`STRAHL_KMS_LAB_BAND=WxH`): what the stream's reader expects once the data plane has
    /// scaled the screen to the stream's size. Default: the screen's own layout.
    band_ref: Option<(u32, u32)>,
    /// Buffers flipped through (`STRAHL_KMS_LAB_BUFFERS`): a buffer is redrawn `buffers`
    /// flips after it was shown, so a consumer that lags less than that reads whole pictures.
    buffers: usize,
    /// Cued by the orchestrator (`STRAHL_KMS_LAB_CUED=1`): a phase also ends early on a
    /// `NEXT` line on stdin (`frames` are then upper bounds) and prints `LAST <number>`; after
    /// the last flip `DONE`, and the picture stays up until a line on stdin (bounded), so a
    /// stream running past the game still sees the game.
    cued: bool,
}

impl GameParams {
    fn from_env() -> Result<Self, String> {
        let var = |k: &str| std::env::var(k).ok();
        let num = |s: &str| s.trim().parse::<u32>().map_err(|e| format!("{s:?}: {e}"));
        let frames = match var("STRAHL_KMS_LAB_FRAMES") {
            Some(v) => {
                let (a, b) = v.split_once(',').ok_or("STRAHL_KMS_LAB_FRAMES=a,b")?;
                [num(a)?, num(b)?]
            }
            None => [FRAMES_640, FRAMES_800],
        };
        let band_ref = match var("STRAHL_KMS_LAB_BAND") {
            Some(v) => {
                let (w, h) = v.split_once('x').ok_or("STRAHL_KMS_LAB_BAND=WxH")?;
                Some((num(w)?, num(h)?))
            }
            None => None,
        };
        Ok(Self {
            frames,
            first: var("STRAHL_KMS_LAB_FIRST").map_or(Ok(0), |v| num(&v))?,
            band_ref,
            buffers: var("STRAHL_KMS_LAB_BUFFERS").map_or(Ok(BUFFERS as u32), |v| num(&v))?
                as usize,
            cued: var("STRAHL_KMS_LAB_CUED").is_some_and(|v| v == "1"),
        })
    }
}

struct Screen {
    bufs: Vec<(DumbBuffer, drm::control::framebuffer::Handle)>,
    layout: BandLayout,
    /// The band's block edge on this screen (`layout.block` unless scaled from a reference).
    block: u32,
}

impl Screen {
    /// Buffers holding the full synthetic picture (drawn once); frames then rewrite the band.
    fn new(
        card: &Card,
        (w, h): (u32, u32),
        band_ref: Option<(u32, u32)>,
        buffers: usize,
    ) -> Result<Self, String> {
        let src = SyntheticSource::new(SyntheticConfig {
            width: w,
            height: h,
            fps: 30,
            format: PixelFormat::I420,
            first_frame_number: 0,
        })
        .map_err(|e| e.to_string())?;
        let mut pic = Frame::new(w, h, PixelFormat::I420).map_err(|e| e.to_string())?;
        src.draw(0, &mut pic).map_err(|e| e.to_string())?;
        // The band of the reference size, scaled by an exact factor (nearest-neighbour scaling
        // back to the reference then lands every block where the reader looks).
        let (layout, block) = match band_ref {
            None => (src.layout(), src.layout().block),
            Some((rw, rh)) => {
                let l = BandLayout::for_size(rw, rh).ok_or("no band layout for the reference")?;
                if w * rh != h * rw || (l.block * w) % rw != 0 {
                    return Err(format!("{w}x{h} is no exact scale of {rw}x{rh}"));
                }
                (l, l.block * w / rw)
            }
        };
        let mut bufs = Vec::new();
        for _ in 0..buffers {
            let mut db = card
                .create_dumb_buffer((w, h), DrmFourcc::Xrgb8888, 32)
                .map_err(|e| format!("dumb buffer: {e}"))?;
            let pitch = db.pitch() as usize;
            {
                let mut map = card
                    .map_dumb_buffer(&mut db)
                    .map_err(|e| format!("map: {e}"))?;
                i420_to_xrgb(&pic, &mut map, pitch);
            }
            let fb = card
                .add_framebuffer(&db, 24, 32)
                .map_err(|e| format!("ADDFB: {e}"))?;
            bufs.push((db, fb));
        }
        Ok(Self {
            bufs,
            layout,
            block,
        })
    }

    /// Writes frame `n`'s number band into buffer `n % buffers`; returns its framebuffer.
    fn draw(&mut self, card: &Card, n: u32) -> Result<drm::control::framebuffer::Handle, String> {
        let count = self.bufs.len();
        let (db, fb) = &mut self.bufs[n as usize % count];
        let pitch = db.pitch() as usize;
        let mut map = card.map_dumb_buffer(db).map_err(|e| format!("map: {e}"))?;
        let b = self.block as usize;
        for i in 0..FRAME_NUMBER_BITS {
            // Y 235 / 16 with neutral chroma is RGB white / black.
            let v = if (n >> (FRAME_NUMBER_BITS - 1 - i)) & 1 == 1 {
                0xff
            } else {
                0
            };
            let (ox, oy) = (
                (i % self.layout.cols) * self.block,
                (i / self.layout.cols) * self.block,
            );
            for y in oy as usize..oy as usize + b {
                let row = &mut map[y * pitch + ox as usize * 4..y * pitch + (ox as usize + b) * 4];
                for px in row.chunks_exact_mut(4) {
                    px.copy_from_slice(&[v, v, v, 0xff]);
                }
            }
        }
        Ok(*fb)
    }
}

fn mode_of(modes: &[Mode], (w, h): (u16, u16)) -> Result<Mode, String> {
    modes
        .iter()
        .filter(|m| m.size() == (w, h))
        .max_by_key(|m| m.vrefresh())
        .copied()
        .ok_or_else(|| format!("connector offers no {w}x{h} mode"))
}

/// Moves the cursor, retrying while a commit is still in flight (EBUSY): the check compares
/// against where the game put it, so a move must not be silently lost.
fn move_cursor(card: &Card, crtc: crtc::Handle, pos: (i32, i32)) -> Result<(), String> {
    let mut last = None;
    for _ in 0..50 {
        #[allow(deprecated)]
        match card.move_cursor(crtc, pos) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(format!("cursor move to {pos:?}: {last:?}"))
}

fn wait_flip(card: &Card) -> Result<(), String> {
    let mut pfd = [rustix::event::PollFd::new(
        card,
        rustix::event::PollFlags::IN,
    )];
    let ts = rustix::event::Timespec {
        tv_sec: 2,
        tv_nsec: 0,
    };
    for _ in 0..4 {
        if rustix::event::poll(&mut pfd, Some(&ts)).map_err(|e| e.to_string())? == 0 {
            return Err("no page-flip event within 2 s".into());
        }
        let events = card.receive_events().map_err(|e| format!("events: {e}"))?;
        if events.into_iter().any(|e| matches!(e, Event::PageFlip(_))) {
            return Ok(());
        }
    }
    Err("events, but no page flip".into())
}

fn game() -> Result<(), String> {
    let params = GameParams::from_env()?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(CARD)
        .map_err(|e| format!("{CARD}: {e}"))?;
    let card = Card(file);
    let res = card.resource_handles().map_err(|e| e.to_string())?;
    let (conn, modes) = res
        .connectors()
        .iter()
        .filter_map(|&c| card.get_connector(c, true).ok())
        .find(|i| i.state() == connector::State::Connected)
        .map(|i| (i.handle(), i.modes().to_vec()))
        .ok_or("no connected connector")?;
    let crtc: crtc::Handle = *res.crtcs().first().ok_or("no CRTC")?;
    let mut n = params.first;
    // Drivers without a cursor plane (bochs) refuse the cursor: then it is not moved.
    let mut cursor_on = false;
    let mut report = Vec::new();
    let stdin = std::io::stdin();
    // The orchestrator's cues after GO (lines), read off the flip loop.
    let (cue_tx, cues) = mpsc::channel::<String>();
    for (phase, (size, frames)) in [(640u16, 480u16), (800, 600)]
        .into_iter()
        .zip(params.frames)
        .enumerate()
    {
        let mode = mode_of(&modes, size)?;
        let mut screen = Screen::new(
            &card,
            (u32::from(size.0), u32::from(size.1)),
            params.band_ref,
            params.buffers,
        )?;
        let fb = screen.draw(&card, n)?;
        if cursor_on {
            move_cursor(&card, crtc, cursor_pos(n))?;
        }
        card.set_crtc(crtc, Some(fb), (0, 0), &[conn], Some(mode))
            .map_err(|e| format!("SETCRTC {}x{}: {e}", size.0, size.1))?;
        if phase == 0 {
            // A hardware cursor (64×64, opaque orange) the capture reports as metadata.
            let mut cur = card
                .create_dumb_buffer((64, 64), DrmFourcc::Argb8888, 32)
                .map_err(|e| format!("cursor buffer: {e}"))?;
            {
                let mut map = card.map_dumb_buffer(&mut cur).map_err(|e| e.to_string())?;
                for px in map.chunks_exact_mut(4) {
                    px.copy_from_slice(&[0x00, 0x80, 0xff, 0xff]);
                }
            }
            #[allow(deprecated)]
            let cursor = card
                .set_cursor2(crtc, Some(&cur), (0, 0))
                .and_then(|()| card.move_cursor(crtc, cursor_pos(n)));
            cursor_on = cursor.is_ok();
            println!("CURSOR {}", if cursor_on { "set" } else { "none" });
            println!("READY");
            std::io::stdout().flush().ok();
            // Wait for the consumer to be connected (the orchestrator answers or kills us).
            let mut line = String::new();
            stdin
                .lock()
                .read_line(&mut line)
                .map_err(|e| e.to_string())?;
            if params.cued {
                let tx = cue_tx.clone();
                std::thread::spawn(move || {
                    for l in std::io::stdin().lock().lines().map_while(Result::ok) {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                });
            }
        }
        let t0 = Instant::now();
        for k in 1..frames {
            if params.cued && cues.try_recv().is_ok_and(|l| l == "NEXT") {
                break;
            }
            n += 1;
            let due = FLIP_INTERVAL * k;
            if let Some(d) = due.checked_sub(t0.elapsed()) {
                std::thread::sleep(d);
            }
            let fb = screen.draw(&card, n)?;
            if cursor_on {
                move_cursor(&card, crtc, cursor_pos(n))?;
            }
            card.page_flip(crtc, fb, PageFlipFlags::EVENT, None)
                .map_err(|e| format!("page flip {n}: {e}"))?;
            wait_flip(&card)?;
        }
        report.push(format!(
            "{}x{}: up to {n} in {:.1} s",
            size.0,
            size.1,
            t0.elapsed().as_secs_f64()
        ));
        if params.cued {
            println!("LAST {n}");
            std::io::stdout().flush().ok();
        }
        n += 1; // the next phase's modeset shows the next number
    }
    // Keep the last picture up while the capture reads it, then exit (the CRTC goes away).
    std::thread::sleep(Duration::from_millis(500));
    println!("GAME {}", report.join(", "));
    if params.cued {
        println!("DONE");
        std::io::stdout().flush().ok();
        // Until the orchestrator says so (or goes away: EOF), bounded.
        let _ = cues.recv_timeout(Duration::from_secs(600));
    }
    Ok(())
}

// ---------------------------------------------------------------- the guest orchestrator

/// The helper as user nobody without capabilities (the card opened read-write for it): it finds
/// the CRTC, but GETFB2 hands it no buffer, so it must exit naming CAP_SYS_ADMIN.
fn unprivileged_helper_refuses() -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(CARD, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| format!("chmod {CARD}: {e}"))?;
    let sock = Path::new("/tmp/strahl-kms-lab-nobody.sock");
    let weak = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .args([
            "--bounding-set=-all",
            env!("CARGO_BIN_EXE_strahl-kms-helper"),
        ])
        .args([
            "--socket",
            "/tmp/strahl-kms-lab-nobody.sock",
            "--device",
            CARD,
        ])
        .args(["--max-seconds", "30"])
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("setpriv: {e}"))?;
    let t0 = Instant::now();
    let mut src = loop {
        match KmsSource::connect(sock) {
            Ok(s) => break Some(s),
            Err(_) if t0.elapsed() < Duration::from_secs(20) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(_) => break None,
        }
    };
    // It must close the link without a frame.
    let got = src.as_mut().map(|s| s.next(Duration::from_secs(20)));
    let out = weak.wait_with_output().map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("unprivileged helper: {} — {}", out.status, stderr.trim());
    match got {
        Some(Err(_)) | None if !out.status.success() && stderr.contains("CAP_SYS_ADMIN") => Ok(()),
        other => Err(format!(
            "the helper without CAP_SYS_ADMIN: {}, link {other:?}, stderr {stderr}",
            out.status
        )),
    }
}

/// One picture the consumer converted.
#[derive(Clone, Copy, Debug)]
struct Seen {
    size: (u32, u32),
    number: Option<u32>,
    cursor: Option<(i32, i32)>,
}

fn guest() -> Result<(), String> {
    let t_start = Instant::now();
    // Only the console on the card yet: strahl owns the display.
    mode::before_game()?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut game = Command::new(&exe)
        .env(ROLE, "game")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("game: {e}"))?;
    let (tx, rx) = mpsc::channel::<String>();
    let game_out = game.stdout.take().ok_or("game stdout")?;
    std::thread::spawn(move || {
        for line in BufReader::new(game_out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut game_lines = Vec::new();
    let ready = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) if l == "READY" => break true,
            Ok(l) => game_lines.push(l),
            Err(_) => break false,
        }
    };
    if !ready {
        let _ = game.kill();
        return Err(format!("game never got ready: {game_lines:?}"));
    }
    unprivileged_helper_refuses()?;
    let sock = Path::new("/tmp/strahl-kms-lab.sock");
    let mut helper = Command::new(env!("CARGO_BIN_EXE_strahl-kms-helper"))
        .args([
            "--socket",
            "/tmp/strahl-kms-lab.sock",
            "--device",
            CARD,
            "--max-seconds",
            "200",
        ])
        .spawn()
        .map_err(|e| format!("helper: {e}"))?;
    let t0 = Instant::now();
    let src = loop {
        match KmsSource::connect(sock) {
            Ok(s) => break s,
            Err(_) if t0.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => {
                let _ = (game.kill(), helper.kill());
                return Err(format!("helper socket: {e}"));
            }
        }
    };
    // Like the data plane's start-up probe: connect and leave. The helper must notice on the
    // static screen and serve the next peer (below) the current picture.
    drop(src);
    mode::held_by_the_game(sock)?;
    let mut src = KmsSource::connect(sock).map_err(|e| format!("second connect: {e}"))?;
    // The first frame (the modeset's) before the game starts flipping.
    let mut seen = Vec::new();
    let mut resized = Vec::new();
    // Every converted picture also goes, after the capture, through openh264 (encode, decode).
    let (ftx, frx) = mpsc::channel::<Frame>();
    let record =
        |src: &KmsSource, next: Next, seen: &mut Vec<Seen>, resized: &mut Vec<(u32, u32)>| {
            if let Next::Resized { width, height } = next {
                resized.push((width, height));
            }
            let f = src.frame().expect("a frame after Frame/Resized");
            let _ = ftx.send(f.clone());
            let m = src.meta();
            seen.push(Seen {
                size: (f.width(), f.height()),
                number: read_frame_number(f.y(), f.width(), f.height()),
                cursor: (m.flags & FLAG_CURSOR_VISIBLE != 0).then_some((m.cursor_x, m.cursor_y)),
            });
        };
    loop {
        match src
            .next(Duration::from_secs(10))
            .map_err(|e| e.to_string())?
        {
            Next::Idle => {
                let _ = (game.kill(), helper.kill());
                return Err("no first frame from the helper in 10 s".into());
            }
            Next::Cursor => continue,
            next => {
                record(&src, next, &mut seen, &mut resized);
                break;
            }
        }
    }
    let game_in = game.stdin.as_mut().ok_or("game stdin")?;
    game_in.write_all(b"GO\n").map_err(|e| e.to_string())?;
    // Until the game has exited and the helper has nothing more, bounded in time.
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut game_status = None;
    while Instant::now() < deadline {
        match src
            .next(Duration::from_millis(1000))
            .map_err(|e| e.to_string())?
        {
            Next::Idle if game_status.is_some() => break,
            Next::Idle | Next::Cursor => {}
            next => record(&src, next, &mut seen, &mut resized),
        }
        if game_status.is_none() {
            game_status = game.try_wait().map_err(|e| e.to_string())?;
        }
    }
    let _ = helper.kill();
    let _ = helper.wait();
    let status = match game_status {
        Some(s) => s,
        None => {
            let _ = game.kill();
            return Err("game did not finish in time".into());
        }
    };
    while let Ok(l) = rx.try_recv() {
        game_lines.push(l);
    }
    drop(ftx);
    let t_enc = Instant::now();
    let coded = encode_all(frx)?;
    println!(
        "openh264: {} pictures encoded and decoded in {:.1} s",
        coded.numbers.len(),
        t_enc.elapsed().as_secs_f64()
    );
    println!("game: {game_lines:?} ({status})");
    if !status.success() {
        return Err(format!("game failed: {status}"));
    }
    check(
        &seen,
        &resized,
        src.dropped(),
        &game_lines,
        t_start.elapsed(),
    )?;
    // The encoded stream carries the same numbers, with a new encoder at the new mode.
    let raw: Vec<Option<u32>> = seen.iter().map(|s| s.number).collect();
    if coded.numbers != raw || coded.encoders != 2 {
        return Err(format!(
            "openh264 round trip: {} encoders; decoded {:?}… vs captured {:?}…",
            coded.encoders,
            &coded.numbers[..coded.numbers.len().min(8)],
            &raw[..raw.len().min(8)]
        ));
    }
    println!(
        "KMS-LAB openh264: all {} captured pictures decoded to the same numbers, {} encoders \
         (one per mode)",
        raw.len(),
        coded.encoders
    );
    // The same boot goes on with strahl and the Moonlight core when the host set it up.
    match std::env::var_os(stream::STREAM_DIR) {
        Some(dir) => stream::guest(Path::new(&dir), &exe),
        None => Ok(()),
    }
}

struct Coded {
    numbers: Vec<Option<u32>>,
    encoders: u32,
}

/// Encodes the pictures in order with the data plane's openh264 encoder (a new one whenever the
/// size changes, as the encode tile re-creates its encoder), decodes each AU, reads the number.
fn encode_all(frames: mpsc::Receiver<Frame>) -> Result<Coded, String> {
    let mut coder: Option<(u32, u32, OpenH264Encoder, Decoder)> = None;
    let (mut au, mut out, mut encoders) = (Vec::new(), Vec::new(), 0);
    for f in frames.iter() {
        let (w, h) = (f.width(), f.height());
        if coder.as_ref().is_none_or(|c| (c.0, c.1) != (w, h)) {
            let enc = OpenH264Encoder::new(OpenH264Config::new(w, h, 30, 2_000_000))
                .map_err(|e| format!("openh264 encoder: {e}"))?;
            let dec = Decoder::new().map_err(|e| format!("openh264 decoder: {e}"))?;
            coder = Some((w, h, enc, dec));
            encoders += 1;
        }
        let (_, _, enc, dec) = coder.as_mut().expect("set above");
        enc.encode(&f, &mut au)
            .map_err(|e| format!("encode: {e}"))?;
        let pic = dec
            .decode(&au)
            .map_err(|e| format!("decode: {e}"))?
            .ok_or("an AU without a picture")?;
        out.push(read_frame_number_strided(pic.y(), pic.strides().0, w, h));
    }
    Ok(Coded {
        numbers: out,
        encoders,
    })
}

fn check(
    seen: &[Seen],
    resized: &[(u32, u32)],
    dropped: u64,
    game_lines: &[String],
    took: Duration,
) -> Result<(), String> {
    // After the game exits the console's own picture may show up: unreadable, ignored at the end.
    let last_readable = seen
        .iter()
        .rposition(|s| s.number.is_some())
        .ok_or("nothing readable")?;
    let body = &seen[..=last_readable];
    let unreadable = body.iter().filter(|s| s.number.is_none()).count();
    let at = |size| {
        body.iter()
            .filter(move |s| s.size == size)
            .filter_map(|s| s.number)
            .collect::<Vec<u32>>()
    };
    let (n640, n800) = (at((640, 480)), at((800, 600)));
    let increasing = body
        .iter()
        .filter_map(|s| s.number)
        .collect::<Vec<_>>()
        .windows(2)
        .all(|w| w[0] < w[1]);
    let switch = body.iter().position(|s| s.size == (800, 600));
    let ordered_sizes = switch.is_some_and(|i| body[i..].iter().all(|s| s.size == (800, 600)))
        && body[..switch.unwrap_or(0)]
            .iter()
            .all(|s| s.size == (640, 480));
    let cursor_set = game_lines.iter().any(|l| l == "CURSOR set");
    let cursor_ok = body
        .iter()
        .filter_map(|s| Some((s.number?, s.cursor?)))
        .filter(|&(n, c)| n > 0 && (c == cursor_pos(n) || c == cursor_pos(n + 1)))
        .count();
    // A consumer that lags (a loaded machine under TCG) can read a buffer the game has since
    // redrawn — a newer number than the message's cursor. Such a cursor is still one the game
    // set within the last two turns of its buffers; anything else is wrong.
    let plausible = |n: u32, c: (i32, i32)| {
        (n.saturating_sub(2 * BUFFERS as u32)..=n + 1).any(|m| c == cursor_pos(m))
    };
    let cursor_wrong: Vec<(u32, (i32, i32))> = body
        .iter()
        .filter_map(|s| Some((s.number?, s.cursor?)))
        .filter(|&(n, c)| n > 0 && !plausible(n, c))
        .take(5)
        .collect();
    let with_cursor = body
        .iter()
        .filter(|s| s.number.is_some_and(|n| n > 0) && s.cursor.is_some())
        .count();
    println!(
        "KMS-LAB {}: {} frames at 640x480 (first {:?}, last {:?}), {} at 800x600 (last {:?}), \
         in order: {increasing}, resized: {resized:?}, unreadable in between: {unreadable}, \
         dropped as stale: {dropped}, cursor position right on {cursor_ok}/{with_cursor} (game: cursor {}), \
         guest run {:.1} s",
        std::env::var(GPU_NAME).unwrap_or_default(),
        n640.len(),
        n640.first(),
        n640.last(),
        n800.len(),
        n800.last(),
        if cursor_set { "set" } else { "refused" },
        took.as_secs_f64()
    );
    let mut errs = Vec::new();
    if !increasing {
        errs.push("frame numbers not strictly increasing".to_string());
    }
    if n640.first() != Some(&0) {
        errs.push(format!("first frame {:?}, want 0", n640.first()));
    }
    if n640.len() + n800.len() < MIN_FRAMES {
        errs.push(format!(
            "{} frames in all < {MIN_FRAMES}",
            n640.len() + n800.len()
        ));
    }
    if n640.len() < MIN_FRAMES_640 {
        errs.push(format!(
            "{} frames at 640x480 < {MIN_FRAMES_640}",
            n640.len()
        ));
    }
    if n800.len() < MIN_FRAMES_800 || n800.last() != Some(&(FRAMES_640 + FRAMES_800 - 1)) {
        errs.push(format!(
            "800x600: {} frames, last {:?}",
            n800.len(),
            n800.last()
        ));
    }
    if resized != [(640, 480), (800, 600)] || !ordered_sizes {
        errs.push(format!(
            "mode change not followed cleanly: resized {resized:?}"
        ));
    }
    if unreadable > 0 {
        errs.push(format!(
            "{unreadable} unreadable pictures between readable ones"
        ));
    }
    if cursor_set
        && (with_cursor == 0 || !cursor_wrong.is_empty() || cursor_ok * 10 < with_cursor * 9)
    {
        errs.push(format!(
            "cursor: right on {cursor_ok} of {with_cursor}; (number, position) wrong: {cursor_wrong:?}"
        ));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}
