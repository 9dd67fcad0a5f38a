//! The session's display mode on the real driver (issue 11 item 3), in the KMS lab's one boot.
//!
//! [`before_game`] runs first, with only the console (fbcon) on the card — nobody is DRM
//! master, so strahl owns the display:
//! - a session asking for a W×H the connector offers (800×600@60, or 640×480 if the console
//!   already shows 800×600) → the helper answers `Applied`; GETCRTC shows that mode; the
//!   pictures the data plane's source captures are that size (no scaling);
//! - the session ends (its socket closes) → the helper puts the console's mode and
//!   framebuffer back;
//! - a mode larger than the console's framebuffer → `Applied` on a new black buffer of the
//!   mode's size (GETCRTC: that mode, another framebuffer; the pictures black); restored at
//!   the end and that buffer freed;
//! - a session asking for a size the connector does not offer → `NotOffered` with the
//!   connector's list summarised; the mode is unchanged.
//!
//! [`held_by_the_game`] runs while the game is DRM master: a session asking for 800×600 →
//! `HeldByOther`, the game's 640×480 unchanged.
//!
//! Every wait is bounded (TCG is slow). The guest prints `KMS-LAB mode` summary lines.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use drm::Device as _;
use drm::control::{Device as ControlDevice, Mode, ModeFlags, connector, crtc, framebuffer};
use strahl_capture::kms_mode::{DisplayMode, OfferedMode, choose, refresh_mhz, summarise};
use strahl_capture::kms_video::{DisplayState, KmsVideoSource};
use strahl_capture::kms_wire::ModeReply;
use strahl_capture::{Frame, PixelFormat, VideoSource};

use super::{CARD, Card};

const SOCKET: &str = "/tmp/strahl-kms-lab-mode.sock";
/// The session's frame rate, asked as the refresh.
const FPS: u32 = 60;
/// How long a session waits for the helper's answer and the new mode's pictures.
const ANSWER_WAIT: Duration = Duration::from_secs(90);
/// How long the restore may take after the session's socket closes.
const RESTORE_WAIT: Duration = Duration::from_secs(60);
/// A size no connector offers.
const NOT_OFFERED: (u32, u32) = (1000, 700);

/// The card opened for reading state, without the master role the kernel hands the first
/// opener when nobody holds it (the helper must find the display unowned).
fn open_card() -> Result<Card, String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(CARD)
        .map_err(|e| format!("{CARD}: {e}"))?;
    let card = Card(file);
    let _ = card.release_master_lock();
    Ok(card)
}

/// The connected connector's modes, the CRTC with a mode, and what it shows.
struct Display {
    modes: Vec<OfferedMode>,
    crtc: crtc::Handle,
}

fn offered(m: &Mode) -> OfferedMode {
    let interlaced = m
        .flags()
        .intersects(ModeFlags::INTERLACE | ModeFlags::DBLSCAN);
    OfferedMode {
        width: u32::from(m.size().0),
        height: u32::from(m.size().1),
        refresh_mhz: refresh_mhz(m.clock(), m.hsync().2, m.vsync().2, interlaced),
        interlaced,
        preferred: false,
    }
}

fn display(card: &Card) -> Result<Display, String> {
    let res = card.resource_handles().map_err(|e| e.to_string())?;
    let modes = res
        .connectors()
        .iter()
        .filter_map(|&c| card.get_connector(c, false).ok())
        .find(|i| i.state() == connector::State::Connected)
        .map(|i| i.modes().iter().map(offered).collect())
        .ok_or("no connected connector")?;
    let crtc = res
        .crtcs()
        .iter()
        .copied()
        .find(|&c| card.get_crtc(c).is_ok_and(|i| i.mode().is_some()))
        .ok_or("no CRTC shows a mode")?;
    Ok(Display { modes, crtc })
}

/// What the CRTC shows: mode (size, refresh) and framebuffer.
fn shown(
    card: &Card,
    crtc: crtc::Handle,
) -> Result<(Option<DisplayMode>, Option<framebuffer::Handle>), String> {
    let info = card.get_crtc(crtc).map_err(|e| format!("GETCRTC: {e}"))?;
    let mode = info.mode().map(|m| offered(&m).display());
    Ok((mode, info.framebuffer()))
}

fn start_helper(max_seconds: u32) -> Result<Child, String> {
    Command::new(env!("CARGO_BIN_EXE_strahl-kms-helper"))
        .args(["--socket", SOCKET, "--device", CARD])
        .args(["--max-seconds", &max_seconds.to_string()])
        .spawn()
        .map_err(|e| format!("helper: {e}"))
}

fn connect(sock: &Path, (w, h): (u32, u32)) -> Result<KmsVideoSource, String> {
    let t0 = Instant::now();
    loop {
        match KmsVideoSource::connect(sock, w, h, FPS) {
            Ok(v) => return Ok(v),
            Err(_) if t0.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => return Err(format!("connect {}: {e}", sock.display())),
        }
    }
}

/// Streams (as the encode tile would) until the helper has answered and, for `Applied`, a
/// picture at the stream's size has arrived; the answer and the pictures seen at that size.
fn session_answer(v: &mut KmsVideoSource) -> Result<(ModeReply, u32), String> {
    let (w, h) = v.dimensions();
    let mut out = Frame::new(w, h, PixelFormat::I420).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + ANSWER_WAIT;
    let mut at_size = 0;
    let mut last = None;
    while Instant::now() < deadline {
        v.next_frame(&mut out).map_err(|e| e.to_string())?;
        let pic = v
            .source()
            .frame()
            .map(|f| (f.width(), f.height(), v.source().meta().seq));
        if pic != last
            && let Some((pw, ph, _)) = pic
        {
            last = pic;
            at_size += u32::from((pw, ph) == (w, h));
        }
        match v.display_state() {
            DisplayState::Answered(ModeReply::Applied(_)) if at_size == 0 => {}
            DisplayState::Answered(r) => return Ok((r.clone(), at_size)),
            DisplayState::NotSupported => return Err("the helper sets no modes".into()),
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "no answer (and picture) within {} s: {:?}, pictures at {w}x{h}: {at_size}",
        ANSWER_WAIT.as_secs(),
        v.display_state()
    ))
}

/// Waits until the CRTC shows `want` again (bounded).
fn await_shown(
    card: &Card,
    crtc: crtc::Handle,
    want: (Option<DisplayMode>, Option<framebuffer::Handle>),
) -> Result<Duration, String> {
    let t0 = Instant::now();
    loop {
        let now = shown(card, crtc)?;
        if now == want {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > RESTORE_WAIT {
            return Err(format!("the CRTC shows {now:?}, want {want:?} back"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Luma at or below which a converted picture counts as black (limited range: 16).
const BLACK_LUMA: u8 = 20;
/// The largest mode the lab asks for (TCG converts each picture on the CPU).
const MAX_PIXELS: u32 = 1920 * 1200;

/// The smallest offered progressive mode (at 60 Hz) the console's framebuffer cannot hold.
fn bigger_than_the_console(
    card: &Card,
    d: &Display,
    original: (Option<DisplayMode>, Option<framebuffer::Handle>),
) -> Result<DisplayMode, String> {
    let fb = original.1.ok_or("the console shows no framebuffer")?;
    let (fw, fh) = card
        .get_framebuffer(fb)
        .map_err(|e| format!("GETFB: {e}"))?
        .size();
    let m = d
        .modes
        .iter()
        .filter(|m| !m.interlaced && (m.width > fw || m.height > fh))
        .filter(|m| m.width % 2 == 0 && m.height % 2 == 0 && m.width * m.height <= MAX_PIXELS)
        .min_by_key(|m| (m.width * m.height, m.refresh_mhz.abs_diff(FPS * 1000)))
        .ok_or_else(|| format!("no offered mode is larger than the console's {fw}x{fh}"))?;
    Ok(DisplayMode {
        refresh_mhz: FPS * 1000,
        ..m.display()
    })
}

/// The phase before the game takes master (module header).
pub fn before_game() -> Result<(), String> {
    let card = open_card()?;
    let d = display(&card)?;
    let original = shown(&card, d.crtc)?;
    let console = original.0.ok_or("the console shows no mode")?;
    let target = if (console.width, console.height) == (800, 600) {
        (640, 480)
    } else {
        (800, 600)
    };
    let want = DisplayMode {
        width: target.0,
        height: target.1,
        refresh_mhz: FPS * 1000,
    };
    let summary = summarise(&d.modes);
    println!("KMS-LAB mode: the console shows {console}; the connector offers {summary}");
    let i = choose(&d.modes, want).map_err(|e| format!("the lab needs {want}: {e}"))?;
    let expected = d.modes[i].display();
    let missing = DisplayMode {
        width: NOT_OFFERED.0,
        height: NOT_OFFERED.1,
        refresh_mhz: FPS * 1000,
    };
    if choose(&d.modes, missing).is_ok() {
        return Err(format!("the connector offers {missing}: pick another size"));
    }

    let mut helper = start_helper(300)?;
    let r = (|| {
        // A session at the offered size: set, shown, captured at that size.
        let mut v = connect(Path::new(SOCKET), target)?;
        let t0 = Instant::now();
        let (reply, pictures) = session_answer(&mut v)?;
        let took = t0.elapsed();
        if reply != ModeReply::Applied(expected) {
            return Err(format!("asked {want}: {reply:?}, want Applied({expected})"));
        }
        let now = shown(&card, d.crtc)?;
        if now.0 != Some(expected) {
            return Err(format!(
                "after Applied the CRTC shows {now:?}, want {expected}"
            ));
        }
        if v.scaling_from().is_some() {
            return Err(format!("still scaling from {:?}", v.scaling_from()));
        }
        println!(
            "KMS-LAB mode: asked {want} → Applied({expected}) in {:.1} s; GETCRTC shows it; \
             {pictures} picture(s) captured at {}x{} (no scaling)",
            took.as_secs_f64(),
            target.0,
            target.1
        );
        // The session ends: the console's mode and framebuffer come back.
        drop(v);
        let took = await_shown(&card, d.crtc, original)?;
        println!(
            "KMS-LAB mode: session over → {console} and the console's framebuffer restored in \
             {:.1} s",
            took.as_secs_f64()
        );
        // A mode larger than the console's framebuffer: the helper's own (black) buffer shows
        // it, and goes with the session.
        let made = bigger_than_the_console(&card, &d, original)?;
        let mut v = connect(Path::new(SOCKET), (made.width, made.height))?;
        let (reply, pictures) = session_answer(&mut v)?;
        let now = shown(&card, d.crtc)?;
        let fb = now.1.ok_or("no framebuffer shown")?;
        let dark = v
            .source()
            .frame()
            .is_some_and(|f| f.y().iter().all(|&l| l <= BLACK_LUMA));
        if !matches!(reply, ModeReply::Applied(m) if (m.width, m.height) == (made.width, made.height))
            || now.0.map(|m| (m.width, m.height)) != Some((made.width, made.height))
            || Some(fb) == original.1
            || !dark
        {
            return Err(format!(
                "asked {made}: {reply:?}, CRTC {now:?} (console's framebuffer {:?}), picture \
                 black: {dark}",
                original.1
            ));
        }
        drop(v);
        await_shown(&card, d.crtc, original)?;
        // Freed right after the restore's commit (the helper's next step), bounded.
        let t0 = Instant::now();
        while card.get_framebuffer(fb).is_ok() {
            if t0.elapsed() > RESTORE_WAIT {
                return Err(format!(
                    "the helper's framebuffer {fb:?} outlived the session"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        println!(
            "KMS-LAB mode: asked {made} (larger than the console's framebuffer) → Applied on a \
             new black buffer, {pictures} picture(s) captured at that size; restored, the \
             buffer freed"
        );
        // A size the connector does not offer: named, nothing changed.
        let mut v = connect(Path::new(SOCKET), NOT_OFFERED)?;
        let (reply, _) = session_answer(&mut v)?;
        let ModeReply::NotOffered(what) = &reply else {
            return Err(format!("asked {missing}: {reply:?}, want NotOffered"));
        };
        if !what.contains("no 1000x700") || !what.contains(&format!("{}x{}", target.0, target.1)) {
            return Err(format!("NotOffered summary: {what}"));
        }
        let now = shown(&card, d.crtc)?;
        if now != original {
            return Err(format!(
                "after NotOffered the CRTC shows {now:?}, want {original:?}"
            ));
        }
        drop(v);
        println!("KMS-LAB mode: asked {missing} → NotOffered ({what}); mode unchanged");
        Ok(())
    })();
    let _ = helper.kill();
    let _ = helper.wait();
    r
}

/// While the game is DRM master (module header): the main helper at `sock` is asked for
/// 800×600.
pub fn held_by_the_game(sock: &Path) -> Result<(), String> {
    let card = open_card()?;
    let d = display(&card)?;
    let before = shown(&card, d.crtc)?;
    let mut v = connect(sock, (800, 600))?;
    let (reply, _) = session_answer(&mut v)?;
    drop(v);
    let after = shown(&card, d.crtc)?;
    if reply != ModeReply::HeldByOther || after != before {
        return Err(format!(
            "with the game as master: {reply:?}, CRTC {before:?} → {after:?}"
        ));
    }
    println!(
        "KMS-LAB mode: the game is master → HeldByOther; {} unchanged",
        before.0.map_or("-".into(), |m| m.to_string())
    );
    Ok(())
}
