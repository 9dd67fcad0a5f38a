//! Touch and pen, sans-IO: GameStream's touch (0x55000002) and pen (0x55000003) events
//! (gamestream-host.md §A13) → the evdev events a multitouch touchscreen (protocol B) and a pen
//! tablet report. [`crate::uinput`] writes them to its virtual devices; this module only
//! translates, so every sequence is unit-tested here without a kernel.
//!
//! Contract:
//! - Coordinates arrive normalised (0.0..=1.0 of the stream's picture) and are scaled onto
//!   0..=[`AXIS_MAX`]; pressure 0.0..=1.0 onto 0..=[`PRESSURE_MAX`]. Out of range, infinite or
//!   NaN values are clamped (NaN → 0): hostile floats never panic or wrap.
//! - The output is exactly what the kernel's input core passes on to readers: an axis or key
//!   whose value did not change is left out (the core drops it anyway — `input_handle_abs_event`
//!   compares against the last value, per slot for MT axes), and `ABS_MT_SLOT` is written only
//!   when a value in another slot follows. So the VM-lab test can compare the kernel's output
//!   with what this module promises, event for event. A translator's state therefore mirrors
//!   its device's and is made and dropped with it.
//! - Touch ([`TouchScreen`]): each client pointer id that goes down takes one of
//!   [`TOUCH_SLOTS`] slots and a fresh tracking id; move updates it; up and cancel lift it
//!   (tracking id −1); cancel-all lifts every contact. A down past the last free slot, or a
//!   move/up for a pointer that holds no slot, is dropped and counted ([`TouchStats`]), so a
//!   hostile client cannot exhaust the slots or grow memory. Single-touch emulation follows the
//!   kernel drivers' convention (`input_mt_report_pointer_emulation`): `BTN_TOUCH` while any
//!   contact is down and `ABS_X`/`ABS_Y` of the lowest occupied slot, for readers that are not
//!   MT-aware. Pressure is reported when the client sends it; 0.0 means "unknown" on the wire
//!   and is reported as 0. Hover, hover-leave and button-only touch events have no
//!   touchscreen meaning and are counted as ignored. Contact area and rotation are not
//!   reported (no evdev reader we target uses them on a touchscreen).
//! - Pen ([`PenTablet`]): any event but leave brings the tool into range (`BTN_TOOL_PEN`, or
//!   `BTN_TOOL_RUBBER` for the eraser; a tool change leaves with the old tool first); down
//!   sets `BTN_TOUCH` and pressure, up clears them (the pen stays in range, hovering);
//!   hover-leave, cancel and cancel-all take the tool out of range, releasing tip and buttons.
//!   Stylus buttons: primary → `BTN_STYLUS`, secondary → `BTN_STYLUS2`, tertiary →
//!   `BTN_STYLUS3`. A touching pen whose pressure is unknown (0.0) reports half pressure:
//!   libinput derives a pressure tablet's tip state from a pressure threshold, not from
//!   `BTN_TOUCH`, so 0 would read as "not touching". Tilt is sent as an angle from the screen's
//!   normal (0..=90°) and an azimuth (rotation, 0..=359°, read as clockwise from the screen's
//!   up towards where the pen's top leans); evdev wants the two plane angles, so
//!   `ABS_TILT_X = atan2(sin θ·sin φ, cos θ)` and `ABS_TILT_Y = −atan2(sin θ·cos φ, cos θ)`
//!   (positive X to the right, positive Y towards the user). Without both tilt and rotation no
//!   tilt is reported.
//! - Sessions sharing one touchscreen ([`TouchIds`]): each session's pointers get ids of their
//!   own and its cancel-all lifts only its own contacts.

/// One evdev event: (type, code, value).
pub type Ev = (u16, u16, i32);

/// Linux codes, from linux/input-event-codes.h.
pub mod codes {
    pub const EV_KEY: u16 = 0x01;
    pub const EV_ABS: u16 = 0x03;
    pub const BTN_TOOL_PEN: u16 = 0x140;
    pub const BTN_TOOL_RUBBER: u16 = 0x141;
    pub const BTN_STYLUS3: u16 = 0x149;
    pub const BTN_TOUCH: u16 = 0x14a;
    pub const BTN_STYLUS: u16 = 0x14b;
    pub const BTN_STYLUS2: u16 = 0x14c;
    pub const ABS_X: u16 = 0x00;
    pub const ABS_Y: u16 = 0x01;
    pub const ABS_PRESSURE: u16 = 0x18;
    pub const ABS_TILT_X: u16 = 0x1a;
    pub const ABS_TILT_Y: u16 = 0x1b;
    pub const ABS_MT_SLOT: u16 = 0x2f;
    pub const ABS_MT_POSITION_X: u16 = 0x35;
    pub const ABS_MT_POSITION_Y: u16 = 0x36;
    pub const ABS_MT_TRACKING_ID: u16 = 0x39;
    pub const ABS_MT_PRESSURE: u16 = 0x3a;
}
use codes::*;

/// The event types of touch and pen packets (Limelight.h `LI_TOUCH_EVENT_*`).
pub mod event_type {
    pub const HOVER: u8 = 0x00;
    pub const DOWN: u8 = 0x01;
    pub const UP: u8 = 0x02;
    pub const MOVE: u8 = 0x03;
    pub const CANCEL: u8 = 0x04;
    pub const BUTTON_ONLY: u8 = 0x05;
    pub const HOVER_LEAVE: u8 = 0x06;
    pub const CANCEL_ALL: u8 = 0x07;
}

/// Pen tools (`LI_TOOL_TYPE_*`).
pub mod tool {
    pub const UNKNOWN: u8 = 0x00;
    pub const PEN: u8 = 0x01;
    pub const ERASER: u8 = 0x02;
}

/// Pen barrel buttons (`LI_PEN_BUTTON_*`).
pub mod pen_button {
    pub const PRIMARY: u8 = 0x01;
    pub const SECONDARY: u8 = 0x02;
    pub const TERTIARY: u8 = 0x04;
}

/// Rotation not known (`LI_ROT_UNKNOWN`).
pub const ROT_UNKNOWN: u16 = 0xFFFF;
/// Tilt not known (`LI_TILT_UNKNOWN`).
pub const TILT_UNKNOWN: u8 = 0xFF;

/// Contacts the touchscreen tracks at once (a hand, plus one).
pub const TOUCH_SLOTS: usize = 10;
/// Position axes' maximum (both devices): 0..=AXIS_MAX.
pub const AXIS_MAX: i32 = 65535;
/// Pressure axes' maximum: 0..=PRESSURE_MAX.
pub const PRESSURE_MAX: i32 = 1023;
/// `ABS_MT_TRACKING_ID` runs 0..=TRACKING_ID_MAX, then wraps (−1 is "lifted").
pub const TRACKING_ID_MAX: i32 = 65535;
/// `ABS_TILT_X`/`ABS_TILT_Y` range, degrees.
pub const TILT_MAX: i32 = 90;

/// (barrel-button bit, Linux code).
pub const PEN_BUTTONS: [(u8, u16); 3] = [
    (pen_button::PRIMARY, BTN_STYLUS),
    (pen_button::SECONDARY, BTN_STYLUS2),
    (pen_button::TERTIARY, BTN_STYLUS3),
];

/// A normalised 0.0..=1.0 value on 0..=max (clamped; NaN → 0).
pub fn unit_to_axis(v: f32, max: i32) -> i32 {
    if v.is_nan() || v <= 0.0 {
        0
    } else if v >= 1.0 {
        max
    } else {
        // v in (0, 1): the product is in (0, max), so the cast cannot saturate.
        (f64::from(v) * f64::from(max)).round() as i32
    }
}

/// Counters of touch input that did not reach the screen.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TouchStats {
    /// Downs of new pointers while every slot was taken.
    pub no_slot: u64,
    /// Moves/ups/cancels for a pointer that holds no slot (never down, or dropped).
    pub unknown_pointer: u64,
    /// Event types a touchscreen has no meaning for (hover, hover-leave, button-only, unknown).
    pub ignored: u64,
}

#[derive(Debug, Clone, Copy)]
struct Contact {
    pointer_id: u32,
}

/// One slot's values as the kernel holds them (they persist after a lift).
#[derive(Debug, Default, Clone, Copy)]
struct SlotValues {
    x: i32,
    y: i32,
    pressure: i32,
}

/// The state of one virtual multitouch touchscreen.
#[derive(Debug, Clone)]
pub struct TouchScreen {
    contacts: [Option<Contact>; TOUCH_SLOTS],
    values: [SlotValues; TOUCH_SLOTS],
    /// The slot the kernel last passed on (`ABS_MT_SLOT` starts at 0).
    reported_slot: usize,
    next_tracking_id: i32,
    /// Single-touch emulation as reported: BTN_TOUCH, ABS_X, ABS_Y.
    touching: bool,
    abs: (i32, i32),
    pub stats: TouchStats,
}

impl Default for TouchScreen {
    fn default() -> Self {
        TouchScreen {
            contacts: [None; TOUCH_SLOTS],
            values: [SlotValues::default(); TOUCH_SLOTS],
            reported_slot: 0,
            next_tracking_id: 0,
            touching: false,
            abs: (0, 0),
            stats: TouchStats::default(),
        }
    }
}

impl TouchScreen {
    /// Contacts down now.
    pub fn contacts(&self) -> usize {
        self.contacts.iter().flatten().count()
    }

    /// The events for one touch packet (empty when nothing changes).
    pub fn apply(&mut self, event: u8, pointer_id: u32, x: f32, y: f32, pressure: f32) -> Vec<Ev> {
        let mut out = Vec::new();
        match event {
            event_type::DOWN | event_type::MOVE => {
                let slot = match self.slot_of(pointer_id) {
                    Some(s) => s,
                    None if event == event_type::DOWN => {
                        let Some(s) = self.contacts.iter().position(Option::is_none) else {
                            self.stats.no_slot += 1;
                            return out;
                        };
                        self.contacts[s] = Some(Contact { pointer_id });
                        let id = self.next_tracking_id;
                        self.next_tracking_id = if id >= TRACKING_ID_MAX { 0 } else { id + 1 };
                        self.mt(s, ABS_MT_TRACKING_ID, id, &mut out);
                        s
                    }
                    None => {
                        self.stats.unknown_pointer += 1;
                        return out;
                    }
                };
                let v = SlotValues {
                    x: unit_to_axis(x, AXIS_MAX),
                    y: unit_to_axis(y, AXIS_MAX),
                    pressure: unit_to_axis(pressure, PRESSURE_MAX),
                };
                let old = self.values[slot];
                self.values[slot] = v;
                for (code, new, was) in [
                    (ABS_MT_POSITION_X, v.x, old.x),
                    (ABS_MT_POSITION_Y, v.y, old.y),
                    (ABS_MT_PRESSURE, v.pressure, old.pressure),
                ] {
                    if new != was {
                        self.mt(slot, code, new, &mut out);
                    }
                }
            }
            event_type::UP | event_type::CANCEL => match self.slot_of(pointer_id) {
                Some(s) => self.lift(s, &mut out),
                None => {
                    self.stats.unknown_pointer += 1;
                    return out;
                }
            },
            event_type::CANCEL_ALL => return self.release_all(),
            _ => {
                self.stats.ignored += 1;
                return out;
            }
        }
        self.emulate_pointer(&mut out);
        out
    }

    /// Lifts every contact (session end, cancel-all).
    pub fn release_all(&mut self) -> Vec<Ev> {
        let mut out = Vec::new();
        for s in 0..TOUCH_SLOTS {
            if self.contacts[s].is_some() {
                self.lift(s, &mut out);
            }
        }
        self.emulate_pointer(&mut out);
        out
    }

    fn slot_of(&self, pointer_id: u32) -> Option<usize> {
        self.contacts
            .iter()
            .position(|c| c.is_some_and(|c| c.pointer_id == pointer_id))
    }

    fn lift(&mut self, slot: usize, out: &mut Vec<Ev>) {
        self.contacts[slot] = None;
        self.mt(slot, ABS_MT_TRACKING_ID, -1, out);
    }

    /// An MT value for `slot`, preceded by `ABS_MT_SLOT` when another slot was last reported.
    fn mt(&mut self, slot: usize, code: u16, value: i32, out: &mut Vec<Ev>) {
        if slot != self.reported_slot {
            self.reported_slot = slot;
            out.push((EV_ABS, ABS_MT_SLOT, slot as i32));
        }
        out.push((EV_ABS, code, value));
    }

    fn emulate_pointer(&mut self, out: &mut Vec<Ev>) {
        let primary = self.contacts.iter().position(Option::is_some);
        let touching = primary.is_some();
        if touching != self.touching {
            self.touching = touching;
            out.push((EV_KEY, BTN_TOUCH, i32::from(touching)));
        }
        if let Some(s) = primary {
            let (x, y) = (self.values[s].x, self.values[s].y);
            if x != self.abs.0 {
                out.push((EV_ABS, ABS_X, x));
            }
            if y != self.abs.1 {
                out.push((EV_ABS, ABS_Y, y));
            }
            self.abs = (x, y);
        }
    }
}

/// Touch pointer ids per session on one shared touchscreen. Clients number their fingers from
/// 0, so two sessions touching at once would otherwise drive the same contact; this gives each
/// (session, client pointer id) a pointer id of its own — the client's own id when no other
/// session uses it (so a lone client's ids pass unchanged), else the next free one — and turns
/// a session's cancel-all into a cancel per pointer of *that* session. Moves, ups and cancels
/// of pointers the session has not put down are dropped. Bounded: at most [`TOUCH_SLOTS`]
/// pointers per session (the touchscreen cannot hold more; further downs are dropped), and
/// [`TouchIds::forget`] removes a session's entries when it ends.
#[derive(Debug, Default, Clone)]
pub struct TouchIds {
    ids: std::collections::BTreeMap<(u64, u32), u32>,
}

impl TouchIds {
    /// The events the shared sink gets for `session`'s event `ev` (anything but touch passes
    /// unchanged).
    pub fn scope(&mut self, session: u64, ev: &crate::InputEvent) -> Vec<crate::InputEvent> {
        let crate::InputEvent::Touch {
            event_type: ty,
            pointer_id: client_id,
            ..
        } = *ev
        else {
            return vec![ev.clone()];
        };
        let with = |ty: u8, id: u32| {
            let mut e = ev.clone();
            if let crate::InputEvent::Touch {
                event_type,
                pointer_id,
                ..
            } = &mut e
            {
                *event_type = ty;
                *pointer_id = id;
            }
            e
        };
        let key = (session, client_id);
        match ty {
            event_type::DOWN => match self.ids.get(&key) {
                Some(&id) => vec![with(ty, id)],
                None if self.of(session).count() >= TOUCH_SLOTS => Vec::new(),
                None => {
                    let id = self.free_id(client_id);
                    self.ids.insert(key, id);
                    vec![with(ty, id)]
                }
            },
            event_type::MOVE => self
                .ids
                .get(&key)
                .map(|&id| with(ty, id))
                .into_iter()
                .collect(),
            event_type::UP | event_type::CANCEL => self
                .ids
                .remove(&key)
                .map(|id| with(ty, id))
                .into_iter()
                .collect(),
            event_type::CANCEL_ALL => {
                let mine: Vec<((u64, u32), u32)> = self.of(session).collect();
                mine.into_iter()
                    .map(|(k, id)| {
                        self.ids.remove(&k);
                        with(event_type::CANCEL, id)
                    })
                    .collect()
            }
            // Hover and the like: no contact, nothing to scope (the touchscreen ignores them).
            _ => vec![ev.clone()],
        }
    }

    /// `session` ended: its pointers' ids are free again (its contacts were released through
    /// the scoped ids it held).
    pub fn forget(&mut self, session: u64) {
        self.ids.retain(|&(s, _), _| s != session);
    }

    fn of(&self, session: u64) -> impl Iterator<Item = ((u64, u32), u32)> + '_ {
        self.ids
            .range((session, 0)..=(session, u32::MAX))
            .map(|(&k, &v)| (k, v))
    }

    fn free_id(&self, wanted: u32) -> u32 {
        let used: std::collections::BTreeSet<u32> = self.ids.values().copied().collect();
        let mut id = wanted;
        // Terminates: fewer ids are in use (sessions × TOUCH_SLOTS) than there are u32s.
        while used.contains(&id) {
            id = id.wrapping_add(1);
        }
        id
    }
}

/// One pen packet's fields, as decoded ([`crate::InputEvent::Pen`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PenInput {
    pub event_type: u8,
    pub tool: u8,
    pub buttons: u8,
    pub x: f32,
    pub y: f32,
    pub pressure: f32,
    pub rotation: u16,
    pub tilt: u8,
}

/// The state of one virtual pen tablet, as the kernel holds it.
#[derive(Debug, Clone, Default)]
pub struct PenTablet {
    /// The tool in range (BTN_TOOL_PEN or BTN_TOOL_RUBBER), if any.
    tool: Option<u16>,
    touching: bool,
    buttons: u8,
    x: i32,
    y: i32,
    pressure: i32,
    tilt: (i32, i32),
    /// Event types with no meaning (unknown values).
    pub ignored: u64,
}

impl PenTablet {
    pub fn in_range(&self) -> bool {
        self.tool.is_some()
    }

    /// The events for one pen packet (empty when nothing changes).
    pub fn apply(&mut self, p: &PenInput) -> Vec<Ev> {
        let mut out = Vec::new();
        match p.event_type {
            event_type::HOVER_LEAVE | event_type::CANCEL | event_type::CANCEL_ALL => {
                self.leave(&mut out);
                return out;
            }
            event_type::HOVER
            | event_type::DOWN
            | event_type::MOVE
            | event_type::UP
            | event_type::BUTTON_ONLY => {}
            _ => {
                self.ignored += 1;
                return out;
            }
        }
        let tool = match p.tool {
            tool::ERASER => BTN_TOOL_RUBBER,
            tool::PEN => BTN_TOOL_PEN,
            _ => self.tool.unwrap_or(BTN_TOOL_PEN),
        };
        if self.tool.is_some_and(|t| t != tool) {
            self.leave(&mut out);
        }
        if self.tool.is_none() {
            self.tool = Some(tool);
            out.push((EV_KEY, tool, 1));
        }
        if p.event_type != event_type::BUTTON_ONLY {
            let touching = match p.event_type {
                event_type::DOWN => true,
                event_type::MOVE => self.touching,
                _ => false,
            };
            self.set_abs(ABS_X, unit_to_axis(p.x, AXIS_MAX), &mut out);
            self.set_abs(ABS_Y, unit_to_axis(p.y, AXIS_MAX), &mut out);
            let pressure = match (touching, unit_to_axis(p.pressure, PRESSURE_MAX)) {
                (false, _) => 0,
                (true, 0) => PRESSURE_MAX / 2,
                (true, v) => v,
            };
            self.set_abs(ABS_PRESSURE, pressure, &mut out);
            if let Some((tx, ty)) = tilt_xy(p.tilt, p.rotation) {
                self.set_abs(ABS_TILT_X, tx, &mut out);
                self.set_abs(ABS_TILT_Y, ty, &mut out);
            }
            if touching != self.touching {
                self.touching = touching;
                out.push((EV_KEY, BTN_TOUCH, i32::from(touching)));
            }
        }
        self.set_buttons(p.buttons, &mut out);
        out
    }

    /// Takes the tool out of range, lifting tip and buttons (session end).
    pub fn release_all(&mut self) -> Vec<Ev> {
        let mut out = Vec::new();
        self.leave(&mut out);
        out
    }

    fn leave(&mut self, out: &mut Vec<Ev>) {
        self.set_abs(ABS_PRESSURE, 0, out);
        if self.touching {
            self.touching = false;
            out.push((EV_KEY, BTN_TOUCH, 0));
        }
        self.set_buttons(0, out);
        if let Some(t) = self.tool.take() {
            out.push((EV_KEY, t, 0));
        }
    }

    fn set_buttons(&mut self, buttons: u8, out: &mut Vec<Ev>) {
        for (bit, code) in PEN_BUTTONS {
            if (self.buttons ^ buttons) & bit != 0 {
                out.push((EV_KEY, code, i32::from(buttons & bit != 0)));
            }
        }
        self.buttons =
            buttons & (pen_button::PRIMARY | pen_button::SECONDARY | pen_button::TERTIARY);
    }

    fn set_abs(&mut self, code: u16, value: i32, out: &mut Vec<Ev>) {
        let slot = match code {
            ABS_X => &mut self.x,
            ABS_Y => &mut self.y,
            ABS_PRESSURE => &mut self.pressure,
            ABS_TILT_X => &mut self.tilt.0,
            _ => &mut self.tilt.1,
        };
        if *slot != value {
            *slot = value;
            out.push((EV_ABS, code, value));
        }
    }
}

/// (ABS_TILT_X, ABS_TILT_Y) in degrees from the wire's tilt and rotation, when both are known.
pub fn tilt_xy(tilt: u8, rotation: u16) -> Option<(i32, i32)> {
    if tilt == TILT_UNKNOWN || rotation == ROT_UNKNOWN {
        return None;
    }
    let theta = f64::from(tilt.min(90)).to_radians();
    let phi = f64::from(rotation % 360).to_radians();
    // sin/cos of whole right angles are not exactly 0 in floating point; a leftover 1e-17
    // would turn atan2(0, 0) into 45° for a pen lying flat.
    let clean = |v: f64| if v.abs() < 1e-9 { 0.0 } else { v };
    let (across, along, up) = (
        clean(theta.sin() * phi.sin()),
        clean(theta.sin() * phi.cos()),
        clean(theta.cos()),
    );
    let deg = |v: f64| (v.to_degrees().round() as i32).clamp(-TILT_MAX, TILT_MAX);
    Some((deg(across.atan2(up)), -deg(along.atan2(up))))
}

#[cfg(test)]
#[path = "touch_tests.rs"]
mod tests;
