//! Replays client input on Linux through `/dev/uinput` (virtual keyboard + relative mouse,
//! an absolute pointer, a multitouch touchscreen, a pen tablet and up to 16 Xbox-style
//! gamepads), built with the `evdev` crate, which wraps the uinput ioctls.
//!
//! Device lifetime (one sink's "session" = from [`InputSink::begin_session`] or the first input
//! to [`InputSink::end_session`] or drop): [`UinputSink::open`] only checks that `/dev/uinput`
//! opens read-write and makes no device; `begin_session` makes the keyboard+mouse and the
//! absolute pointer (so a reader such as libinput has them open before the first key); the
//! touchscreen, the pen tablet and each gamepad are made by the first input that needs them
//! (touch, pen, controller arrival or state — clients that never send them never get the
//! devices); any input after `end_session` makes what it needs again. `end_session` and drop
//! release everything held (keys, buttons, pads, touch contacts, the pen) and then remove every
//! device: no node outlives its session. The touch and pen translation is [`crate::touch`]'s;
//! its state is made and dropped with the device it mirrors. A reader that opens the
//! touchscreen after the contact that made it went down still sees that contact: the kernel
//! keeps the slot state and libevdev reads it at open. A key-down whose modifier bits ask for
//! Shift, Ctrl or Alt that nobody holds gets those keys pressed just before it and released
//! just after it, as Sunshine does ([`HeldInput::synthetic_modifiers`]).
//!
//! Verified on the real `uinput` + `evdev` drivers (Debian 6.12 in the VM lab,
//! `tests/uinput_lab.rs`): the codes and values a reader of `/dev/input/event*` gets for keys,
//! relative motion, buttons, wheels, the absolute pointer, gamepad buttons/hat/sticks/
//! triggers, touchscreen contacts and the pen, and the touchscreen's and pen's properties;
//! `release_all` returning everything to rest; no node before `begin_session`; the nodes gone
//! once the sink is dropped or its session ended. Events still unread when a device is destroyed are lost to its readers (evdev
//! answers ENODEV at once), so a session end releases first and drops after.
//! [`UinputSink::open`] checks for the device node first and returns
//! [`SinkError::NotAvailable`]; callers fall back to [`crate::RecordingSink`].

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use evdev::uinput::VirtualDevice;
use evdev::{
    AbsInfo, AbsoluteAxisCode, AttributeSet, BusType, EventType, FFEffectCode, InputId, KeyCode,
    PropType, RelativeAxisCode, UinputAbsSetup,
};

use crate::event::{GamepadState, InputEvent, MouseButton, buttons};
use crate::held::{HeldInput, MAX_GAMEPADS};
use crate::rumble::{self, Rumble};
use crate::sink::{InputSink, SinkError};
use crate::touch::{self, PenInput, PenTablet, TouchScreen};
use crate::vk::vk_to_linux;

pub const UINPUT_PATH: &str = "/dev/uinput";

/// Resolution of the absolute pointer's axes; client coordinates are scaled onto it.
pub const ABS_POINTER_MAX: i32 = 65535;
/// One wheel notch in GameStream scroll units (and in Linux hi-res wheel units).
pub const SCROLL_NOTCH: i32 = 120;

const BTN_LEFT: u16 = 0x110;
const BTN_RIGHT: u16 = 0x111;
const BTN_MIDDLE: u16 = 0x112;
const BTN_SIDE: u16 = 0x113;
const BTN_EXTRA: u16 = 0x114;

/// (GameStream button bit, Linux BTN_* code) for the gamepad, Xbox layout as xpad reports it.
pub const GAMEPAD_BUTTONS: [(u32, u16); 11] = [
    (buttons::A, 0x130),        // BTN_SOUTH
    (buttons::B, 0x131),        // BTN_EAST
    (buttons::X, 0x133),        // BTN_NORTH (xpad's BTN_X)
    (buttons::Y, 0x134),        // BTN_WEST (xpad's BTN_Y)
    (buttons::LB, 0x136),       // BTN_TL
    (buttons::RB, 0x137),       // BTN_TR
    (buttons::BACK, 0x13a),     // BTN_SELECT
    (buttons::START, 0x13b),    // BTN_START
    (buttons::GUIDE, 0x13c),    // BTN_MODE
    (buttons::LS_CLICK, 0x13d), // BTN_THUMBL
    (buttons::RS_CLICK, 0x13e), // BTN_THUMBR
];

pub fn mouse_button_code(b: MouseButton) -> u16 {
    match b {
        MouseButton::Left => BTN_LEFT,
        MouseButton::Middle => BTN_MIDDLE,
        MouseButton::Right => BTN_RIGHT,
        MouseButton::X1 => BTN_SIDE,
        MouseButton::X2 => BTN_EXTRA,
    }
}

/// Scale a client coordinate on a `extent`-sized reference plane onto 0..=ABS_POINTER_MAX.
pub fn scale_abs(v: i16, extent: i32) -> i32 {
    if extent <= 1 {
        return 0;
    }
    let v = i64::from(v).clamp(0, i64::from(extent) - 1);
    (v * i64::from(ABS_POINTER_MAX) / (i64::from(extent) - 1)) as i32
}

fn ev(ty: EventType, code: u16, value: i32) -> evdev::InputEvent {
    evdev::InputEvent::new(ty.0, code, value)
}

/// Writes a translation's events as one frame (nothing when it is empty: no bare SYN_REPORT).
fn emit_evs(dev: &mut VirtualDevice, evs: &[touch::Ev]) -> io::Result<()> {
    if evs.is_empty() {
        return Ok(());
    }
    let evs: Vec<evdev::InputEvent> = evs
        .iter()
        .map(|&(ty, code, value)| evdev::InputEvent::new(ty, code, value))
        .collect();
    dev.emit(&evs)
}

/// INPUT_PROP_DIRECT: the surface is the screen (touchscreen, screen tablet), so readers map
/// positions onto the display instead of moving a cursor relatively.
fn direct() -> AttributeSet<PropType> {
    let mut p = AttributeSet::<PropType>::new();
    p.insert(PropType::DIRECT);
    p
}

/// A protocol-B multitouch touchscreen with [`touch::TOUCH_SLOTS`] slots and single-touch
/// emulation (`BTN_TOUCH`, `ABS_X`/`ABS_Y`). uinput initialises the kernel's MT slots from
/// `ABS_MT_SLOT`'s maximum.
fn build_touchscreen() -> io::Result<VirtualDevice> {
    let mut keys = AttributeSet::<KeyCode>::new();
    keys.insert(KeyCode(touch::codes::BTN_TOUCH));
    let pos = AbsInfo::new(0, 0, touch::AXIS_MAX, 0, 0, 0);
    let mut b = VirtualDevice::builder()?
        .name("strahl touchscreen")
        .with_properties(&direct())?
        .with_keys(&keys)?;
    for (code, info) in [
        (AbsoluteAxisCode::ABS_X, pos),
        (AbsoluteAxisCode::ABS_Y, pos),
        (
            AbsoluteAxisCode::ABS_MT_SLOT,
            AbsInfo::new(0, 0, touch::TOUCH_SLOTS as i32 - 1, 0, 0, 0),
        ),
        (
            AbsoluteAxisCode::ABS_MT_TRACKING_ID,
            AbsInfo::new(0, 0, touch::TRACKING_ID_MAX, 0, 0, 0),
        ),
        (AbsoluteAxisCode::ABS_MT_POSITION_X, pos),
        (AbsoluteAxisCode::ABS_MT_POSITION_Y, pos),
        (
            AbsoluteAxisCode::ABS_MT_PRESSURE,
            AbsInfo::new(0, 0, touch::PRESSURE_MAX, 0, 0, 0),
        ),
    ] {
        b = b.with_absolute_axis(&UinputAbsSetup::new(code, info))?;
    }
    b.build()
}

/// A screen pen tablet: pen and eraser tools, tip, three barrel buttons, position, pressure
/// and tilt (degrees; resolution 57 units per radian, as the kernel documents tilt).
fn build_pen() -> io::Result<VirtualDevice> {
    use touch::codes::*;
    let mut keys = AttributeSet::<KeyCode>::new();
    for code in [
        BTN_TOOL_PEN,
        BTN_TOOL_RUBBER,
        BTN_TOUCH,
        BTN_STYLUS,
        BTN_STYLUS2,
        BTN_STYLUS3,
    ] {
        keys.insert(KeyCode(code));
    }
    let pos = AbsInfo::new(0, 0, touch::AXIS_MAX, 0, 0, 0);
    let tilt = AbsInfo::new(0, -touch::TILT_MAX, touch::TILT_MAX, 0, 0, 57);
    let mut b = VirtualDevice::builder()?
        .name("strahl pen")
        .with_properties(&direct())?
        .with_keys(&keys)?;
    for (code, info) in [
        (AbsoluteAxisCode::ABS_X, pos),
        (AbsoluteAxisCode::ABS_Y, pos),
        (
            AbsoluteAxisCode::ABS_PRESSURE,
            AbsInfo::new(0, 0, touch::PRESSURE_MAX, 0, 0, 0),
        ),
        (AbsoluteAxisCode::ABS_TILT_X, tilt),
        (AbsoluteAxisCode::ABS_TILT_Y, tilt),
    ] {
        b = b.with_absolute_axis(&UinputAbsSetup::new(code, info))?;
    }
    b.build()
}

fn build_kbd_mouse() -> io::Result<VirtualDevice> {
    let mut keys = AttributeSet::<KeyCode>::new();
    for vk in 0u16..=0xFF {
        if let Some(code) = vk_to_linux(vk) {
            keys.insert(KeyCode(code));
        }
    }
    for code in [BTN_LEFT, BTN_RIGHT, BTN_MIDDLE, BTN_SIDE, BTN_EXTRA] {
        keys.insert(KeyCode(code));
    }
    let mut rel = AttributeSet::<RelativeAxisCode>::new();
    for a in [
        RelativeAxisCode::REL_X,
        RelativeAxisCode::REL_Y,
        RelativeAxisCode::REL_WHEEL,
        RelativeAxisCode::REL_HWHEEL,
        RelativeAxisCode::REL_WHEEL_HI_RES,
        RelativeAxisCode::REL_HWHEEL_HI_RES,
    ] {
        rel.insert(a);
    }
    VirtualDevice::builder()?
        .name("strahl keyboard and mouse")
        .with_keys(&keys)?
        .with_relative_axes(&rel)?
        .build()
}

fn build_abs_pointer() -> io::Result<VirtualDevice> {
    let mut abs_keys = AttributeSet::<KeyCode>::new();
    for code in [BTN_LEFT, BTN_RIGHT, BTN_MIDDLE] {
        abs_keys.insert(KeyCode(code));
    }
    let info = AbsInfo::new(0, 0, ABS_POINTER_MAX, 0, 0, 0);
    VirtualDevice::builder()?
        .name("strahl absolute pointer")
        .with_keys(&abs_keys)?
        .with_absolute_axis(&UinputAbsSetup::new(AbsoluteAxisCode::ABS_X, info))?
        .with_absolute_axis(&UinputAbsSetup::new(AbsoluteAxisCode::ABS_Y, info))?
        .build()
}

/// One Xbox-style pad; `with_rumble`, it advertises FF_RUMBLE and its fd is non-blocking (the
/// owner polls it for the games' force-feedback requests, `crate::rumble`).
fn build_gamepad(with_rumble: bool) -> io::Result<VirtualDevice> {
    let mut keys = AttributeSet::<KeyCode>::new();
    for (_, code) in GAMEPAD_BUTTONS {
        keys.insert(KeyCode(code));
    }
    let stick = AbsInfo::new(0, -32768, 32767, 16, 128, 0);
    let trigger = AbsInfo::new(0, 0, 255, 0, 0, 0);
    let hat = AbsInfo::new(0, -1, 1, 0, 0, 0);
    // An Xbox 360 pad's identity (USB 045e:028e, as xpad registers it) so that SDL and Steam
    // Input pick their Xbox mapping instead of treating it as unknown.
    let mut b = VirtualDevice::builder()?
        .name("strahl gamepad")
        .input_id(InputId::new(BusType::BUS_USB, 0x045e, 0x028e, 0x0110))
        .with_keys(&keys)?;
    for (code, info) in [
        (AbsoluteAxisCode::ABS_X, stick),
        (AbsoluteAxisCode::ABS_Y, stick),
        (AbsoluteAxisCode::ABS_RX, stick),
        (AbsoluteAxisCode::ABS_RY, stick),
        (AbsoluteAxisCode::ABS_Z, trigger),
        (AbsoluteAxisCode::ABS_RZ, trigger),
        (AbsoluteAxisCode::ABS_HAT0X, hat),
        (AbsoluteAxisCode::ABS_HAT0Y, hat),
    ] {
        b = b.with_absolute_axis(&UinputAbsSetup::new(code, info))?;
    }
    if with_rumble {
        let mut ff = AttributeSet::<FFEffectCode>::new();
        ff.insert(FFEffectCode::FF_RUMBLE);
        b = b.with_ff(&ff)?.with_ff_effects_max(rumble::MAX_EFFECTS);
    }
    let dev = b.build()?;
    if with_rumble {
        // Polled, never waited on: the event thread must not block on a quiet pad.
        let fl = rustix::fs::fcntl_getfl(&dev).map_err(io::Error::from)?;
        rustix::fs::fcntl_setfl(&dev, fl | rustix::fs::OFlags::NONBLOCK)
            .map_err(io::Error::from)?;
    }
    Ok(dev)
}

pub struct UinputSink {
    /// None after [`InputSink::end_session`] until the next input needs it.
    kbd_mouse: Option<VirtualDevice>,
    abs_pointer: Option<VirtualDevice>,
    /// Each with the translator that mirrors its kernel state (made and dropped together).
    touchscreen: Option<(VirtualDevice, TouchScreen)>,
    pen: Option<(VirtualDevice, PenTablet)>,
    gamepads: BTreeMap<u16, (VirtualDevice, GamepadState)>,
    /// Rumble effects per pad (only with rumble on).
    effects: BTreeMap<u16, rumble::Effects>,
    rumble: bool,
    /// Stops owed to the client for rumbles cut by `release_all` (returned by the next poll).
    pending_rumble: Vec<Rumble>,
    held: HeldInput,
    /// Sub-notch scroll remainders (hi-res wheels send less than 120 per event).
    wheel_rem: i32,
    hwheel_rem: i32,
    /// Key events whose VK has no Linux mapping (dropped).
    pub unmapped_keys: u64,
    /// Touch events dropped: downs past the last free slot, moves/ups of pointers without one.
    pub dropped_touches: u64,
}

impl UinputSink {
    pub fn open() -> Result<Self, SinkError> {
        if !Path::new(UINPUT_PATH).exists() {
            return Err(SinkError::NotAvailable(format!(
                "{UINPUT_PATH} does not exist"
            )));
        }
        // Opened now (and closed: no device is made before a session) so that a host whose
        // uinput is missing or not writable finds out at start and falls back, not mid-session.
        drop(
            VirtualDevice::builder()
                .map_err(|e| SinkError::NotAvailable(format!("{UINPUT_PATH}: {e}")))?,
        );
        Ok(UinputSink {
            kbd_mouse: None,
            abs_pointer: None,
            touchscreen: None,
            pen: None,
            gamepads: BTreeMap::new(),
            effects: BTreeMap::new(),
            rumble: false,
            pending_rumble: Vec::new(),
            held: HeldInput::default(),
            wheel_rem: 0,
            hwheel_rem: 0,
            unmapped_keys: 0,
            dropped_touches: 0,
        })
    }

    /// Gamepads made from now on advertise rumble (FF_RUMBLE); the owner must then call
    /// [`InputSink::poll_rumble`] regularly (every few ms to 100 ms), since a game's effect
    /// upload waits for it (`crate::rumble`). Where uinput refuses force feedback, pads are made
    /// without it (logged once).
    pub fn enable_rumble(&mut self) {
        self.rumble = true;
    }

    fn kbd(&mut self) -> Result<&mut VirtualDevice, SinkError> {
        if self.kbd_mouse.is_none() {
            self.kbd_mouse = Some(build_kbd_mouse()?);
        }
        self.kbd_mouse
            .as_mut()
            .ok_or_else(|| SinkError::NotAvailable("keyboard vanished".into()))
    }

    fn abs(&mut self) -> Result<&mut VirtualDevice, SinkError> {
        if self.abs_pointer.is_none() {
            self.abs_pointer = Some(build_abs_pointer()?);
        }
        self.abs_pointer
            .as_mut()
            .ok_or_else(|| SinkError::NotAvailable("absolute pointer vanished".into()))
    }

    fn touchscreen(&mut self) -> Result<&mut (VirtualDevice, TouchScreen), SinkError> {
        if self.touchscreen.is_none() {
            self.touchscreen = Some((build_touchscreen()?, TouchScreen::default()));
        }
        self.touchscreen
            .as_mut()
            .ok_or_else(|| SinkError::NotAvailable("touchscreen vanished".into()))
    }

    fn pen(&mut self) -> Result<&mut (VirtualDevice, PenTablet), SinkError> {
        if self.pen.is_none() {
            self.pen = Some((build_pen()?, PenTablet::default()));
        }
        self.pen
            .as_mut()
            .ok_or_else(|| SinkError::NotAvailable("pen tablet vanished".into()))
    }

    fn gamepad(&mut self, number: u16) -> Result<&mut (VirtualDevice, GamepadState), SinkError> {
        if let std::collections::btree_map::Entry::Vacant(slot) = self.gamepads.entry(number) {
            let dev = if self.rumble {
                match build_gamepad(true) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        // Runtime detection: a uinput without force feedback still gets pads,
                        // only without rumble (logged once; later pads skip the attempt).
                        log::warn!(
                            "uinput gamepad with rumble (FF_RUMBLE) refused: {e}; \
                             gamepads go on without rumble"
                        );
                        self.rumble = false;
                        None
                    }
                }
            } else {
                None
            };
            let dev = match dev {
                Some(d) => {
                    self.effects.insert(number, rumble::Effects::default());
                    d
                }
                None => build_gamepad(false)?,
            };
            slot.insert((dev, GamepadState::default()));
        }
        self.gamepads
            .get_mut(&number)
            .ok_or_else(|| SinkError::NotAvailable("gamepad vanished".into()))
    }

    fn emit_gamepad(&mut self, s: &GamepadState) -> Result<(), SinkError> {
        if s.number >= MAX_GAMEPADS {
            return Ok(());
        }
        let (dev, last) = self.gamepad(s.number)?;
        let mut evs = Vec::with_capacity(20);
        for (bit, code) in GAMEPAD_BUTTONS {
            if (last.buttons ^ s.buttons) & bit != 0 {
                evs.push(ev(EventType::KEY, code, i32::from(s.buttons & bit != 0)));
            }
        }
        let hat = |neg: u32, pos: u32| -> i32 {
            i32::from(s.buttons & pos != 0) - i32::from(s.buttons & neg != 0)
        };
        let abs = EventType::ABSOLUTE;
        evs.push(ev(
            abs,
            AbsoluteAxisCode::ABS_HAT0X.0,
            hat(buttons::DPAD_LEFT, buttons::DPAD_RIGHT),
        ));
        evs.push(ev(
            abs,
            AbsoluteAxisCode::ABS_HAT0Y.0,
            hat(buttons::DPAD_UP, buttons::DPAD_DOWN),
        ));
        // XInput's stick Y grows upwards, evdev's downwards.
        evs.push(ev(abs, AbsoluteAxisCode::ABS_X.0, i32::from(s.ls_x)));
        evs.push(ev(
            abs,
            AbsoluteAxisCode::ABS_Y.0,
            -i32::from(s.ls_y).max(-32767),
        ));
        evs.push(ev(abs, AbsoluteAxisCode::ABS_RX.0, i32::from(s.rs_x)));
        evs.push(ev(
            abs,
            AbsoluteAxisCode::ABS_RY.0,
            -i32::from(s.rs_y).max(-32767),
        ));
        evs.push(ev(
            abs,
            AbsoluteAxisCode::ABS_Z.0,
            i32::from(s.left_trigger),
        ));
        evs.push(ev(
            abs,
            AbsoluteAxisCode::ABS_RZ.0,
            i32::from(s.right_trigger),
        ));
        dev.emit(&evs)?;
        *last = *s;
        Ok(())
    }

    fn emit_event(&mut self, e: &InputEvent) -> Result<(), SinkError> {
        let rel = EventType::RELATIVE;
        match e {
            InputEvent::Key {
                down,
                key_code,
                modifiers,
                ..
            } => match vk_to_linux(*key_code) {
                Some(code) => {
                    // Modifiers the packet's bits ask for but nobody holds: pressed just
                    // around the key-down (`HeldInput::synthetic_modifiers`), each report its
                    // own frame as a keyboard sends them, so the key lands with them held.
                    let around: Vec<u16> = self
                        .held
                        .synthetic_modifiers(*down, *key_code, *modifiers)
                        .into_iter()
                        .filter_map(vk_to_linux)
                        .collect();
                    let dev = self.kbd()?;
                    for &m in &around {
                        dev.emit(&[ev(EventType::KEY, m, 1)])?;
                    }
                    dev.emit(&[ev(EventType::KEY, code, i32::from(*down))])?;
                    for &m in around.iter().rev() {
                        dev.emit(&[ev(EventType::KEY, m, 0)])?;
                    }
                }
                None => self.unmapped_keys += 1,
            },
            InputEvent::MouseMove { dx, dy } => self.kbd()?.emit(&[
                ev(rel, RelativeAxisCode::REL_X.0, i32::from(*dx)),
                ev(rel, RelativeAxisCode::REL_Y.0, i32::from(*dy)),
            ])?,
            InputEvent::MousePosition {
                x,
                y,
                width,
                height,
            } => self.abs()?.emit(&[
                ev(
                    EventType::ABSOLUTE,
                    AbsoluteAxisCode::ABS_X.0,
                    scale_abs(*x, *width),
                ),
                ev(
                    EventType::ABSOLUTE,
                    AbsoluteAxisCode::ABS_Y.0,
                    scale_abs(*y, *height),
                ),
            ])?,
            InputEvent::MouseButton { down, button } => self.kbd()?.emit(&[ev(
                EventType::KEY,
                mouse_button_code(*button),
                i32::from(*down),
            )])?,
            InputEvent::Scroll { amount } => {
                self.wheel_rem += i32::from(*amount);
                let notches = self.wheel_rem / SCROLL_NOTCH;
                self.wheel_rem -= notches * SCROLL_NOTCH;
                let mut evs = vec![ev(
                    rel,
                    RelativeAxisCode::REL_WHEEL_HI_RES.0,
                    i32::from(*amount),
                )];
                if notches != 0 {
                    evs.push(ev(rel, RelativeAxisCode::REL_WHEEL.0, notches));
                }
                self.kbd()?.emit(&evs)?
            }
            InputEvent::HScroll { amount } => {
                self.hwheel_rem += i32::from(*amount);
                let notches = self.hwheel_rem / SCROLL_NOTCH;
                self.hwheel_rem -= notches * SCROLL_NOTCH;
                let mut evs = vec![ev(
                    rel,
                    RelativeAxisCode::REL_HWHEEL_HI_RES.0,
                    i32::from(*amount),
                )];
                if notches != 0 {
                    evs.push(ev(rel, RelativeAxisCode::REL_HWHEEL.0, notches));
                }
                self.kbd()?.emit(&evs)?
            }
            InputEvent::Gamepad(s) => self.emit_gamepad(s)?,
            InputEvent::ControllerArrival { number, .. } if u16::from(*number) < MAX_GAMEPADS => {
                self.gamepad(u16::from(*number))?;
            }
            InputEvent::Touch {
                event_type,
                pointer_id,
                x,
                y,
                pressure,
                ..
            } => {
                let (dev, state) = self.touchscreen()?;
                let before = state.stats;
                let evs = state.apply(*event_type, *pointer_id, *x, *y, *pressure);
                let after = state.stats;
                emit_evs(dev, &evs)?;
                self.dropped_touches += (after.no_slot - before.no_slot)
                    + (after.unknown_pointer - before.unknown_pointer);
            }
            InputEvent::Pen {
                event_type,
                tool,
                buttons,
                x,
                y,
                pressure,
                rotation,
                tilt,
                ..
            } => {
                let p = PenInput {
                    event_type: *event_type,
                    tool: *tool,
                    buttons: *buttons,
                    x: *x,
                    y: *y,
                    pressure: *pressure,
                    rotation: *rotation,
                    tilt: *tilt,
                };
                let (dev, state) = self.pen()?;
                let evs = state.apply(&p);
                emit_evs(dev, &evs)?;
            }
            // Text and controller motion/touch/battery need an input method or a
            // motion/touchpad-capable pad; they are decoded but not replayed yet.
            _ => {}
        }
        Ok(())
    }
}

impl InputSink for UinputSink {
    fn apply(&mut self, e: &InputEvent) -> Result<(), SinkError> {
        self.held.observe(e);
        self.emit_event(e)
    }

    fn release_all(&mut self) -> Result<(), SinkError> {
        // A session ending mid-rumble must not leave the client's motors running.
        for (&pad, fx) in &mut self.effects {
            if rumble::take_playing(fx) {
                self.pending_rumble.push(rumble::stop(pad));
            }
        }
        for e in self.held.releases() {
            self.emit_event(&e)?;
        }
        // Whatever the per-pointer view missed (a cancel-all mid-way, say) is lifted here.
        if let Some((dev, state)) = &mut self.touchscreen {
            emit_evs(dev, &state.release_all())?;
        }
        if let Some((dev, state)) = &mut self.pen {
            emit_evs(dev, &state.release_all())?;
        }
        Ok(())
    }

    /// Makes the keyboard+mouse and the absolute pointer now, before the session's first
    /// input, so that readers have opened them when it comes.
    fn begin_session(&mut self) -> Result<(), SinkError> {
        self.kbd()?;
        self.abs()?;
        Ok(())
    }

    /// Releases what is held, then removes every device (their `/dev/input` nodes go); the
    /// next input makes them again for the next session. Owed rumble stops stay queued.
    fn end_session(&mut self) -> Result<(), SinkError> {
        let released = self.release_all();
        self.kbd_mouse = None;
        self.abs_pointer = None;
        self.touchscreen = None;
        self.pen = None;
        self.gamepads.clear();
        self.effects.clear();
        self.wheel_rem = 0;
        self.hwheel_rem = 0;
        released
    }

    fn poll_rumble(&mut self) -> Result<Vec<Rumble>, SinkError> {
        let mut out = std::mem::take(&mut self.pending_rumble);
        let now = std::time::Instant::now();
        for (&pad, fx) in &mut self.effects {
            if let Some((dev, _)) = self.gamepads.get_mut(&pad) {
                rumble::poll_pad(pad, dev, fx, now, &mut out)?;
            }
        }
        Ok(out)
    }
}

/// Dropping the sink ends its session: what is still held is released first, then the
/// devices are destroyed (closing the uinput fds removes their `/dev/input` nodes). The kernel
/// would lift held keys of a removed device by itself, but not sticks or triggers; releasing
/// here also makes the readers see the same key-ups whichever way the session ended.
impl Drop for UinputSink {
    fn drop(&mut self) {
        if let Err(e) = self.release_all() {
            // Nothing to return to: the devices go away right after regardless.
            log::warn!("releasing held input at session end: {e}");
        }
    }
}
