//! What the client is holding right now, so that a session stop can release it (§A13,
//! "On session stop: release all held input"). Sinks feed every applied event through
//! [`HeldInput::observe`] and, on stop, apply the events from [`HeldInput::releases`].
//! Touch contacts are released with an up per pointer id, a pen in range with a hover-leave
//! (which lifts its tip and buttons too, `crate::touch`).

use std::collections::{BTreeMap, BTreeSet};

use crate::event::{GamepadState, InputEvent, MouseButton};
use crate::touch::{self, event_type};

/// Bounded: at most 256 keys (VK low byte), 5 mouse buttons, 16 gamepads,
/// [`touch::TOUCH_SLOTS`] touch pointers (more cannot be down on the touchscreen either) and
/// one pen.
#[derive(Debug, Default, Clone)]
pub struct HeldInput {
    keys: BTreeSet<u16>,
    buttons: BTreeSet<MouseButtonKey>,
    gamepads: BTreeMap<u16, GamepadState>,
    touches: BTreeSet<u32>,
    pen_in_range: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct MouseButtonKey(u8);

fn button_key(b: MouseButton) -> MouseButtonKey {
    MouseButtonKey(match b {
        MouseButton::Left => 1,
        MouseButton::Middle => 2,
        MouseButton::Right => 3,
        MouseButton::X1 => 4,
        MouseButton::X2 => 5,
    })
}

/// GameStream supports 16 gamepads (the active mask is 16 bits).
pub const MAX_GAMEPADS: u16 = 16;

impl HeldInput {
    pub fn observe(&mut self, ev: &InputEvent) {
        match ev {
            InputEvent::Key { down, key_code, .. } => {
                let k = key_code & 0xFF;
                if *down {
                    self.keys.insert(k);
                } else {
                    self.keys.remove(&k);
                }
            }
            InputEvent::MouseButton { down, button } => {
                if *down {
                    self.buttons.insert(button_key(*button));
                } else {
                    self.buttons.remove(&button_key(*button));
                }
            }
            InputEvent::Gamepad(s) if s.number < MAX_GAMEPADS => {
                let neutral = s.buttons == 0
                    && s.left_trigger == 0
                    && s.right_trigger == 0
                    && s.ls_x == 0
                    && s.ls_y == 0
                    && s.rs_x == 0
                    && s.rs_y == 0;
                if neutral {
                    self.gamepads.remove(&s.number);
                } else {
                    self.gamepads.insert(s.number, *s);
                }
            }
            InputEvent::Touch {
                event_type: ty,
                pointer_id,
                ..
            } => match *ty {
                event_type::DOWN if self.touches.len() < touch::TOUCH_SLOTS => {
                    self.touches.insert(*pointer_id);
                }
                event_type::UP | event_type::CANCEL => {
                    self.touches.remove(pointer_id);
                }
                event_type::CANCEL_ALL => self.touches.clear(),
                _ => {}
            },
            InputEvent::Pen { event_type: ty, .. } => match *ty {
                event_type::HOVER_LEAVE | event_type::CANCEL | event_type::CANCEL_ALL => {
                    self.pen_in_range = false
                }
                event_type::HOVER
                | event_type::DOWN
                | event_type::MOVE
                | event_type::UP
                | event_type::BUTTON_ONLY => self.pen_in_range = true,
                _ => {}
            },
            _ => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
            && self.buttons.is_empty()
            && self.gamepads.is_empty()
            && self.touches.is_empty()
            && !self.pen_in_range
    }

    /// The events that return everything to rest, and forget the held state.
    pub fn releases(&mut self) -> Vec<InputEvent> {
        let mut out = Vec::new();
        for k in std::mem::take(&mut self.keys) {
            out.push(InputEvent::Key {
                down: false,
                key_code: k,
                modifiers: 0,
                flags: 0,
            });
        }
        for MouseButtonKey(b) in std::mem::take(&mut self.buttons) {
            if let Some(button) = MouseButton::from_wire(b) {
                out.push(InputEvent::MouseButton {
                    down: false,
                    button,
                });
            }
        }
        for (number, s) in std::mem::take(&mut self.gamepads) {
            out.push(InputEvent::Gamepad(GamepadState {
                number,
                active_mask: s.active_mask,
                ..GamepadState::default()
            }));
        }
        for pointer_id in std::mem::take(&mut self.touches) {
            out.push(InputEvent::Touch {
                event_type: event_type::UP,
                rotation: touch::ROT_UNKNOWN,
                pointer_id,
                x: 0.0,
                y: 0.0,
                pressure: 0.0,
                contact_major: 0.0,
                contact_minor: 0.0,
            });
        }
        if std::mem::take(&mut self.pen_in_range) {
            out.push(InputEvent::Pen {
                event_type: event_type::HOVER_LEAVE,
                tool: touch::tool::UNKNOWN,
                buttons: 0,
                x: 0.0,
                y: 0.0,
                pressure: 0.0,
                rotation: touch::ROT_UNKNOWN,
                tilt: touch::TILT_UNKNOWN,
                contact_major: 0.0,
                contact_minor: 0.0,
            });
        }
        out
    }
}
