//! What the client is holding right now, so that a session stop can release it (§A13,
//! "On session stop: release all held input"). Sinks feed every applied event through
//! [`HeldInput::observe`] and, on stop, apply the events from [`HeldInput::releases`].
//! Touch contacts are released with an up per pointer id, a pen in range with a hover-leave
//! (which lifts its tip and buttons too, `crate::touch`).
//!
//! It also answers which modifiers a key-down must have pressed around it
//! ([`HeldInput::synthetic_modifiers`]): a client may carry Ctrl/Shift/Alt only in the key
//! packet's modifier bits, without sending the modifier key itself (Sunshine presses those
//! around the key, and clients rely on it), so a sink that ignored the bits would type `k`
//! where the user typed Ctrl+K.

use std::collections::{BTreeMap, BTreeSet};

use crate::event::{GamepadState, InputEvent, MouseButton, modifiers};
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

/// The modifiers a key packet's bits can stand for, as (bit, the VK pressed for it, every VK
/// that counts as holding it: generic, left, right). Shift, Ctrl and Alt, as Sunshine
/// synthesizes them; Meta is not (a Windows key pressed on its own opens the desktop's menu).
const SYNTHESIZED: [(u8, u16, [u16; 3]); 3] = [
    (modifiers::SHIFT, 0x10, [0x10, 0xA0, 0xA1]),
    (modifiers::CTRL, 0x11, [0x11, 0xA2, 0xA3]),
    (modifiers::ALT, 0x12, [0x12, 0xA4, 0xA5]),
];

/// Whether `vk` (low byte) is a Shift, Ctrl or Alt key (generic, left or right).
pub fn is_modifier_key(vk: u16) -> bool {
    SYNTHESIZED
        .iter()
        .any(|(_, _, keys)| keys.contains(&(vk & 0xFF)))
}

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

    /// The modifier VKs to press just before key-down `key_code` and release just after it:
    /// those its `mods` bits ask for whose key nobody holds. None for a key-up, for a modifier
    /// key itself, or when the modifier's key is held (the client sent it: pressing it again
    /// would be a second press). Call after observing the key-down (a held modifier observed
    /// before counts).
    pub fn synthetic_modifiers(&self, down: bool, key_code: u16, mods: u8) -> Vec<u16> {
        if !down || is_modifier_key(key_code) {
            return Vec::new();
        }
        SYNTHESIZED
            .iter()
            .filter(|(bit, _, keys)| mods & bit != 0 && !keys.iter().any(|k| self.keys.contains(k)))
            .map(|&(_, vk, _)| vk)
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(down: bool, key_code: u16, modifiers: u8) -> InputEvent {
        InputEvent::Key {
            down,
            key_code,
            modifiers,
            flags: 0,
        }
    }

    #[test]
    fn modifier_bits_without_their_keys_are_synthesized() {
        let mut h = HeldInput::default();
        h.observe(&key(true, 0x4B, modifiers::CTRL));
        assert_eq!(h.synthetic_modifiers(true, 0x4B, modifiers::CTRL), [0x11]);
        // All three, in shift-ctrl-alt order; Meta never.
        let all = modifiers::SHIFT | modifiers::CTRL | modifiers::ALT | modifiers::META;
        assert_eq!(h.synthetic_modifiers(true, 0x4B, all), [0x10, 0x11, 0x12]);
        // Nothing around a key-up or a key without bits.
        assert!(
            h.synthetic_modifiers(false, 0x4B, modifiers::CTRL)
                .is_empty()
        );
        assert!(h.synthetic_modifiers(true, 0x4B, 0).is_empty());
        // The high byte is ignored like everywhere else (Sunshine masks it).
        assert!(
            h.synthetic_modifiers(true, 0x1BA2, modifiers::CTRL)
                .is_empty()
        );
    }

    #[test]
    fn a_held_modifier_key_is_not_pressed_again() {
        for held in [0x11, 0xA2, 0xA3] {
            let mut h = HeldInput::default();
            h.observe(&key(true, held, modifiers::CTRL));
            h.observe(&key(true, 0x4B, modifiers::CTRL | modifiers::SHIFT));
            assert_eq!(
                h.synthetic_modifiers(true, 0x4B, modifiers::CTRL | modifiers::SHIFT),
                [0x10],
                "ctrl held as {held:#x}"
            );
            // Released: synthesized again.
            h.observe(&key(false, held, 0));
            assert_eq!(h.synthetic_modifiers(true, 0x4B, modifiers::CTRL), [0x11]);
        }
    }

    #[test]
    fn modifier_keys_themselves_get_nothing() {
        let h = HeldInput::default();
        for vk in [0x10, 0x11, 0x12, 0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5] {
            assert!(is_modifier_key(vk));
            assert!(h.synthetic_modifiers(true, vk, modifiers::SHIFT).is_empty());
        }
        assert!(!is_modifier_key(0x4B));
        assert!(!is_modifier_key(0x5B)); // LWIN: Meta is not synthesized
    }
}
