//! What the client is holding right now, so that a session stop can release it (§A13,
//! "On session stop: release all held input"). Sinks feed every applied event through
//! [`HeldInput::observe`] and, on stop, apply the events from [`HeldInput::releases`].

use std::collections::{BTreeMap, BTreeSet};

use crate::event::{GamepadState, InputEvent, MouseButton};

/// Bounded: at most 256 keys (VK low byte), 5 mouse buttons, 16 gamepads.
#[derive(Debug, Default, Clone)]
pub struct HeldInput {
    keys: BTreeSet<u16>,
    buttons: BTreeSet<MouseButtonKey>,
    gamepads: BTreeMap<u16, GamepadState>,
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
            _ => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.buttons.is_empty() && self.gamepads.is_empty()
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
        out
    }
}
