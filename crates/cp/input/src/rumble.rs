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
//! The mapping is sans-IO: [`poll_pad`] turns the device's requests into [`FfRequest`]s and
//! [`Effects::apply`] / [`Effects::expire`] decide, from them and a caller-given `now`, what the
//! client's motors do. Rules (as the kernel's own memoryless FF devices behave):
//! - an effect plays for its replay length × the play's count, then stops by itself; length 0
//!   plays until stopped; re-uploading a playing effect (SDL
//!   does, to change strength) changes the motors now and restarts its time;
//! - one effect plays per pad: a play replaces the one playing, a stop or erase of another
//!   effect changes nothing;
//! - effect types other than rumble are refused with EINVAL (the device does not advertise
//!   them, so the kernel normally refuses them before they reach us).
//!
//! Not handled: an effect's replay delay (it starts at once).

use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

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

/// The answer to an upload of an effect type the pad does not have.
pub const EINVAL: i32 = -22;

/// What a game did on a pad, as the kernel hands it to the uinput owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FfRequest {
    /// EVIOCSFF (new or changed effect `id`): `rumble` is (strong, weak) magnitude for an
    /// FF_RUMBLE effect, None for any other type; `length_ms` its replay length (0 = until
    /// stopped).
    Upload {
        id: i16,
        rumble: Option<(u16, u16)>,
        length_ms: u16,
    },
    /// EVIOCRMFF.
    Erase { id: i16 },
    /// An EV_FF write: `count` > 0 plays the effect that many times, 0 stops it.
    Play { id: i16, count: i32 },
}

/// One uploaded rumble effect.
#[derive(Debug, Clone, Copy)]
struct Effect {
    strong: u16,
    weak: u16,
    length_ms: u16,
}

/// The effect playing on a pad: its id, how many times it was asked to play, when it ends.
#[derive(Debug, Clone, Copy)]
struct Playing {
    id: i16,
    count: u32,
    until: Option<Instant>,
}

/// One pad's uploaded effects and the one playing.
#[derive(Debug, Default)]
pub struct Effects {
    by_id: BTreeMap<i16, Effect>,
    playing: Option<Playing>,
}

fn until(e: &Effect, count: u32, now: Instant) -> Option<Instant> {
    (e.length_ms != 0)
        .then(|| now + Duration::from_millis(u64::from(e.length_ms) * u64::from(count.max(1))))
}

fn on(pad: u16, e: &Effect) -> Rumble {
    Rumble {
        pad,
        low_freq: e.strong,
        high_freq: e.weak,
    }
}

impl Effects {
    /// Applies `req` at `now`, pushing motor changes for `pad` into `out`. Returns the answer
    /// the game's upload gets (0, or [`EINVAL`] for a type that is not rumble); 0 for the rest.
    pub fn apply(&mut self, pad: u16, req: FfRequest, now: Instant, out: &mut Vec<Rumble>) -> i32 {
        match req {
            FfRequest::Upload {
                id,
                rumble: Some((strong, weak)),
                length_ms,
            } => {
                let e = Effect {
                    strong,
                    weak,
                    length_ms,
                };
                self.by_id.insert(id, e);
                if let Some(p) = self.playing.as_mut().filter(|p| p.id == id) {
                    p.until = until(&e, p.count, now);
                    out.push(on(pad, &e));
                }
                0
            }
            FfRequest::Upload { rumble: None, .. } => EINVAL,
            FfRequest::Erase { id } => {
                self.by_id.remove(&id);
                self.stop_if(pad, id, out);
                0
            }
            FfRequest::Play { id, count } if count > 0 => {
                if let Some(e) = self.by_id.get(&id) {
                    let count = u32::try_from(count).unwrap_or(1);
                    self.playing = Some(Playing {
                        id,
                        count,
                        until: until(e, count, now),
                    });
                    out.push(on(pad, e));
                }
                0
            }
            FfRequest::Play { id, .. } => {
                self.stop_if(pad, id, out);
                0
            }
        }
    }

    /// The playing effect stops if its time is up at `now`.
    pub fn expire(&mut self, pad: u16, now: Instant, out: &mut Vec<Rumble>) {
        if self
            .playing
            .is_some_and(|p| p.until.is_some_and(|u| now >= u))
        {
            self.playing = None;
            out.push(stop(pad));
        }
    }

    fn stop_if(&mut self, pad: u16, id: i16, out: &mut Vec<Rumble>) {
        if self.playing.is_some_and(|p| p.id == id) {
            self.playing = None;
            out.push(stop(pad));
        }
    }
}

/// Answers `dev`'s pending requests and reports motor changes at `now` into `out`. `dev`'s fd
/// must be non-blocking.
pub fn poll_pad(
    pad: u16,
    dev: &mut VirtualDevice,
    fx: &mut Effects,
    now: Instant,
    out: &mut Vec<Rumble>,
) -> io::Result<()> {
    let mut handled = 0;
    while handled < MAX_EVENTS_PER_POLL {
        // Collected first: answering a request needs `dev` again.
        let evs: Vec<evdev::InputEvent> = match dev.fetch_events() {
            Ok(it) => it.collect(),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        };
        if evs.is_empty() {
            break;
        }
        for ev in evs {
            handled += 1;
            match ev.destructure() {
                EventSummary::UInput(u, UInputCode::UI_FF_UPLOAD, _) => {
                    let mut up = dev.process_ff_upload(u)?;
                    let effect = up.effect();
                    let rumble = match effect.kind {
                        FFEffectKind::Rumble {
                            strong_magnitude,
                            weak_magnitude,
                        } => Some((strong_magnitude, weak_magnitude)),
                        _ => None,
                    };
                    let req = FfRequest::Upload {
                        id: up.effect_id(),
                        rumble,
                        length_ms: effect.replay.length,
                    };
                    up.set_retval(fx.apply(pad, req, now, out));
                    // Dropping `up` ends the upload; the game's ioctl returns.
                }
                EventSummary::UInput(u, UInputCode::UI_FF_ERASE, _) => {
                    let er = dev.process_ff_erase(u)?;
                    let id = i16::try_from(er.effect_id()).unwrap_or(-1);
                    fx.apply(pad, FfRequest::Erase { id }, now, out);
                }
                EventSummary::ForceFeedback(_, code, count) => {
                    let id = code.0 as i16;
                    fx.apply(pad, FfRequest::Play { id, count }, now, out);
                }
                _ => {}
            }
        }
    }
    fx.expire(pad, now, out);
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

#[cfg(test)]
mod tests {
    use super::*;

    const PAD: u16 = 2;

    fn r(low_freq: u16, high_freq: u16) -> Rumble {
        Rumble {
            pad: PAD,
            low_freq,
            high_freq,
        }
    }

    fn upload(id: i16, strong: u16, weak: u16, length_ms: u16) -> FfRequest {
        FfRequest::Upload {
            id,
            rumble: Some((strong, weak)),
            length_ms,
        }
    }

    #[test]
    fn play_stop_change_and_erase_map_to_motor_changes() {
        let t0 = Instant::now();
        let mut fx = Effects::default();
        let mut out = Vec::new();
        // Uploading alone moves nothing; playing does (strong → low, weak → high frequency).
        assert_eq!(fx.apply(PAD, upload(0, 0x8000, 0x4000, 0), t0, &mut out), 0);
        assert!(out.is_empty());
        fx.apply(PAD, FfRequest::Play { id: 0, count: 1 }, t0, &mut out);
        assert_eq!(out, [r(0x8000, 0x4000)]);
        // A changed upload of the playing effect changes the motors at once.
        fx.apply(PAD, upload(0, 0xffff, 0, 0), t0, &mut out);
        assert_eq!(out[1..], [r(0xffff, 0)]);
        // Stopping or erasing another effect changes nothing; stopping this one stops.
        fx.apply(PAD, upload(1, 1, 1, 0), t0, &mut out);
        fx.apply(PAD, FfRequest::Play { id: 1, count: 0 }, t0, &mut out);
        fx.apply(PAD, FfRequest::Erase { id: 1 }, t0, &mut out);
        assert_eq!(out.len(), 2);
        fx.apply(PAD, FfRequest::Play { id: 0, count: 0 }, t0, &mut out);
        assert_eq!(out[2..], [r(0, 0)]);
        // Erasing the playing effect stops it; playing an erased or unknown one does nothing.
        fx.apply(PAD, FfRequest::Play { id: 0, count: 1 }, t0, &mut out);
        fx.apply(PAD, FfRequest::Erase { id: 0 }, t0, &mut out);
        assert_eq!(out[3..], [r(0xffff, 0), r(0, 0)]);
        fx.apply(PAD, FfRequest::Play { id: 0, count: 1 }, t0, &mut out);
        fx.apply(PAD, FfRequest::Play { id: 7, count: 1 }, t0, &mut out);
        assert_eq!(out.len(), 5);
        // Length 0 never runs out.
        fx.apply(PAD, upload(3, 9, 9, 0), t0, &mut out);
        fx.apply(PAD, FfRequest::Play { id: 3, count: 1 }, t0, &mut out);
        fx.expire(PAD, t0 + Duration::from_secs(3600), &mut out);
        assert_eq!(out[5..], [r(9, 9)]);
        assert!(take_playing(&mut fx));
        assert!(!take_playing(&mut fx));
    }

    #[test]
    fn a_play_runs_for_length_times_count_and_a_change_restarts_it() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut fx = Effects::default();
        let mut out = Vec::new();
        fx.apply(PAD, upload(4, 100, 200, 250), t0, &mut out);
        fx.apply(PAD, FfRequest::Play { id: 4, count: 2 }, t0, &mut out);
        fx.expire(PAD, ms(499), &mut out);
        assert_eq!(out, [r(100, 200)]);
        fx.expire(PAD, ms(500), &mut out);
        assert_eq!(out[1..], [r(0, 0)]);
        fx.expire(PAD, ms(900), &mut out);
        assert_eq!(out.len(), 2, "one stop only");
        // Replayed at 1000, changed at 1400: runs to 1400 + 2 × 250.
        fx.apply(PAD, FfRequest::Play { id: 4, count: 2 }, ms(1000), &mut out);
        fx.apply(PAD, upload(4, 7, 8, 250), ms(1400), &mut out);
        fx.expire(PAD, ms(1899), &mut out);
        assert_eq!(out[2..], [r(100, 200), r(7, 8)]);
        fx.expire(PAD, ms(1900), &mut out);
        assert_eq!(out[4..], [r(0, 0)]);
    }

    #[test]
    fn effects_other_than_rumble_are_refused() {
        let t0 = Instant::now();
        let mut fx = Effects::default();
        let mut out = Vec::new();
        let periodic = FfRequest::Upload {
            id: 0,
            rumble: None,
            length_ms: 100,
        };
        assert_eq!(fx.apply(PAD, periodic, t0, &mut out), EINVAL);
        fx.apply(PAD, FfRequest::Play { id: 0, count: 1 }, t0, &mut out);
        assert!(out.is_empty());
    }
}
