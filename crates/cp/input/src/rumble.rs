//! Rumble from the games back to the client (GameStream host message 0x010b: low- and
//! high-frequency motor per controller).
//!
//! A uinput gamepad made with rumble on advertises `FF_RUMBLE`; a game uploads rumble effects
//! on its evdev node (EVIOCSFF), plays and stops them (EV_FF writes) and erases them. The
//! kernel hands each upload and erase to the uinput owner as a request that the game's ioctl
//! waits on (uinput gives up after 30 s), and each play/stop as an EV_FF event on the uinput
//! fd. [`poll_pad`] answers every pending request and turns play/stop into [`Rumble`]s:
//! strong (heavy) motor → low frequency, weak (light) motor → high frequency, as xpad drives an
//! Xbox pad's motors. The owner must poll regularly while rumble is on, or games stall in their
//! upload — hence rumble is opt-in ([`crate::uinput::UinputSink::enable_rumble`]).
//!
//! Not handled: an effect's replay length (the game's stop, or the next play, ends a rumble;
//! SDL stops its rumbles itself) and effect types other than rumble (the device does not
//! advertise them, so the kernel refuses them before they reach us).

use std::collections::BTreeMap;
use std::io;

use evdev::uinput::VirtualDevice;
use evdev::{EventSummary, FFEffectKind, UInputCode};

/// One motor change for the client: `pad` is the controller number, magnitudes 0..=65535
/// (both 0 = stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rumble {
    pub pad: u16,
    pub low_freq: u16,
    pub high_freq: u16,
}

/// Effects a pad may hold at once (what the device advertises; the kernel enforces it).
pub const MAX_EFFECTS: u32 = 16;

/// Requests and events handled per poll and pad, so one flooding game cannot hold the caller.
const MAX_EVENTS_PER_POLL: usize = 256;

/// One pad's uploaded effects (id → strong, weak) and the one playing.
#[derive(Debug, Default)]
pub struct Effects {
    by_id: BTreeMap<i16, (u16, u16)>,
    playing: Option<i16>,
}

/// Answers `dev`'s pending requests and reports play/stop changes into `out`. `dev`'s fd must
/// be non-blocking.
pub fn poll_pad(
    pad: u16,
    dev: &mut VirtualDevice,
    fx: &mut Effects,
    out: &mut Vec<Rumble>,
) -> io::Result<()> {
    let mut handled = 0;
    while handled < MAX_EVENTS_PER_POLL {
        // Collected first: answering a request needs `dev` again.
        let evs: Vec<evdev::InputEvent> = match dev.fetch_events() {
            Ok(it) => it.collect(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        };
        if evs.is_empty() {
            return Ok(());
        }
        for ev in evs {
            handled += 1;
            match ev.destructure() {
                EventSummary::UInput(u, UInputCode::UI_FF_UPLOAD, _) => {
                    let mut up = dev.process_ff_upload(u)?;
                    let id = up.effect_id();
                    match up.effect().kind {
                        FFEffectKind::Rumble {
                            strong_magnitude,
                            weak_magnitude,
                        } => {
                            fx.by_id.insert(id, (strong_magnitude, weak_magnitude));
                            up.set_retval(0);
                            // A game changing a playing effect (SDL does, to change strength)
                            // changes the motors now.
                            if fx.playing == Some(id) {
                                out.push(Rumble {
                                    pad,
                                    low_freq: strong_magnitude,
                                    high_freq: weak_magnitude,
                                });
                            }
                        }
                        _ => up.set_retval(-22), // EINVAL: only rumble is advertised
                    }
                    // Dropping `up` ends the upload; the game's ioctl returns.
                }
                EventSummary::UInput(u, UInputCode::UI_FF_ERASE, _) => {
                    let er = dev.process_ff_erase(u)?;
                    let id = i16::try_from(er.effect_id()).unwrap_or(-1);
                    fx.by_id.remove(&id);
                    if fx.playing == Some(id) {
                        fx.playing = None;
                        out.push(stop(pad));
                    }
                }
                EventSummary::ForceFeedback(_, code, value) => {
                    let id = code.0 as i16;
                    if value > 0 {
                        if let Some(&(strong, weak)) = fx.by_id.get(&id) {
                            fx.playing = Some(id);
                            out.push(Rumble {
                                pad,
                                low_freq: strong,
                                high_freq: weak,
                            });
                        }
                    } else if fx.playing == Some(id) {
                        fx.playing = None;
                        out.push(stop(pad));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Forgets the playing rumble; true if there was one (the caller then owes the client a stop).
pub fn take_playing(fx: &mut Effects) -> bool {
    fx.playing.take().is_some()
}

pub fn stop(pad: u16) -> Rumble {
    Rumble {
        pad,
        low_freq: 0,
        high_freq: 0,
    }
}
