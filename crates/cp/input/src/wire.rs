//! Decoder for the payload of control message 0x0206 (§A13).
//!
//! Layout: u32 BE `size` (bytes after this field), u32 LE magic, body. Field byte orders differ
//! per packet (mouse fields are BE, controller/touch/pen fields LE) exactly as the table says.
//! Everything here is hostile input: every length is checked, every failure is an
//! [`InputError`], nothing panics and nothing allocates beyond the (≤ 32 B) text string.

use crate::event::{GamepadState, InputEvent, MouseButton};

pub const MAGIC_KEY_DOWN: u32 = 0x03;
pub const MAGIC_KEY_UP: u32 = 0x04;
pub const MAGIC_MOUSE_ABS: u32 = 0x05;
pub const MAGIC_MOUSE_REL: u32 = 0x07;
pub const MAGIC_BUTTON_DOWN: u32 = 0x08;
pub const MAGIC_BUTTON_UP: u32 = 0x09;
pub const MAGIC_SCROLL: u32 = 0x0A;
pub const MAGIC_MULTI_CONTROLLER: u32 = 0x0C;
pub const MAGIC_UTF8: u32 = 0x17;
pub const MAGIC_HSCROLL: u32 = 0x5500_0001;
pub const MAGIC_TOUCH: u32 = 0x5500_0002;
pub const MAGIC_PEN: u32 = 0x5500_0003;
pub const MAGIC_CONTROLLER_ARRIVAL: u32 = 0x5500_0004;
pub const MAGIC_CONTROLLER_TOUCH: u32 = 0x5500_0005;
pub const MAGIC_CONTROLLER_MOTION: u32 = 0x5500_0006;
pub const MAGIC_CONTROLLER_BATTERY: u32 = 0x5500_0007;

/// Header = u32 BE size + u32 LE magic.
pub const HEADER_LEN: usize = 8;
/// §A13: UTF-8 text events carry at most 32 bytes.
pub const MAX_TEXT_LEN: usize = 32;

/// Multi-controller framing constants (§A13): checked so that a garbled packet is refused
/// instead of moving sticks.
const MC_HEADER_B: u16 = 0x001A;
const MC_MID_B: u16 = 0x0014;
const MC_TAIL_A: u16 = 0x009C;
const MC_TAIL_B: u16 = 0x0055;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// The packet (or the body for its magic) is shorter than the layout needs.
    TooShort {
        needed: usize,
        got: usize,
    },
    /// The BE size field disagrees with the bytes present.
    SizeMismatch {
        declared: u32,
        actual: usize,
    },
    UnknownMagic(u32),
    TextTooLong(usize),
    BadUtf8,
    UnknownMouseButton(u8),
    /// A framing constant inside a packet had the wrong value.
    BadFraming(&'static str),
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "input packet: {self:?}")
    }
}
impl std::error::Error for InputError {}

/// A bounds-checked little cursor over the body.
struct Body<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Body<'a> {
    fn need(b: &'a [u8], len: usize) -> Result<Self, InputError> {
        if b.len() < len {
            return Err(InputError::TooShort {
                needed: HEADER_LEN + len,
                got: HEADER_LEN + b.len(),
            });
        }
        Ok(Body { b, at: 0 })
    }
    fn take<const N: usize>(&mut self) -> [u8; N] {
        // `need` checked the whole layout up front; a short read here is a bug in a layout
        // constant, so fall back to zeros instead of panicking on hostile input.
        let mut out = [0u8; N];
        if let Some(s) = self.b.get(self.at..self.at + N) {
            out.copy_from_slice(s);
        }
        self.at += N;
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u16le(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    fn i16le(&mut self) -> i16 {
        i16::from_le_bytes(self.take())
    }
    fn i16be(&mut self) -> i16 {
        i16::from_be_bytes(self.take())
    }
    fn u32le(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn f32le(&mut self) -> f32 {
        f32::from_le_bytes(self.take())
    }
}

/// Decode one input packet (the whole 0x0206 payload).
pub fn decode(packet: &[u8]) -> Result<InputEvent, InputError> {
    if packet.len() < HEADER_LEN {
        return Err(InputError::TooShort {
            needed: HEADER_LEN,
            got: packet.len(),
        });
    }
    let size = u32::from_be_bytes([packet[0], packet[1], packet[2], packet[3]]);
    if usize::try_from(size).ok() != Some(packet.len() - 4) {
        return Err(InputError::SizeMismatch {
            declared: size,
            actual: packet.len() - 4,
        });
    }
    let magic = u32::from_le_bytes([packet[4], packet[5], packet[6], packet[7]]);
    let body = &packet[HEADER_LEN..];
    Ok(match magic {
        MAGIC_KEY_DOWN | MAGIC_KEY_UP => {
            let mut c = Body::need(body, 6)?;
            let flags = c.u8();
            let key_code = c.u16le();
            let modifiers = c.u8();
            InputEvent::Key {
                down: magic == MAGIC_KEY_DOWN,
                key_code,
                modifiers,
                flags,
            }
        }
        MAGIC_MOUSE_REL => {
            let mut c = Body::need(body, 4)?;
            InputEvent::MouseMove {
                dx: c.i16be(),
                dy: c.i16be(),
            }
        }
        MAGIC_MOUSE_ABS => {
            let mut c = Body::need(body, 10)?;
            let x = c.i16be();
            let y = c.i16be();
            let _unused = c.i16be();
            // The wire carries width-1 / height-1.
            let width = i32::from(c.i16be()) + 1;
            let height = i32::from(c.i16be()) + 1;
            InputEvent::MousePosition {
                x,
                y,
                width,
                height,
            }
        }
        MAGIC_BUTTON_DOWN | MAGIC_BUTTON_UP => {
            let mut c = Body::need(body, 1)?;
            let raw = c.u8();
            InputEvent::MouseButton {
                down: magic == MAGIC_BUTTON_DOWN,
                button: MouseButton::from_wire(raw).ok_or(InputError::UnknownMouseButton(raw))?,
            }
        }
        MAGIC_SCROLL => {
            let mut c = Body::need(body, 2)?;
            InputEvent::Scroll { amount: c.i16be() }
        }
        MAGIC_HSCROLL => {
            let mut c = Body::need(body, 2)?;
            InputEvent::HScroll { amount: c.i16be() }
        }
        MAGIC_UTF8 => {
            if body.len() > MAX_TEXT_LEN {
                return Err(InputError::TextTooLong(body.len()));
            }
            let text = std::str::from_utf8(body).map_err(|_| InputError::BadUtf8)?;
            InputEvent::Text {
                text: text.to_owned(),
            }
        }
        MAGIC_MULTI_CONTROLLER => {
            let mut c = Body::need(body, 26)?;
            if c.u16le() != MC_HEADER_B {
                return Err(InputError::BadFraming("multi-controller headerB"));
            }
            let number = c.u16le();
            let active_mask = c.u16le();
            if c.u16le() != MC_MID_B {
                return Err(InputError::BadFraming("multi-controller midB"));
            }
            let low = c.u16le();
            let left_trigger = c.u8();
            let right_trigger = c.u8();
            let ls_x = c.i16le();
            let ls_y = c.i16le();
            let rs_x = c.i16le();
            let rs_y = c.i16le();
            if c.u16le() != MC_TAIL_A {
                return Err(InputError::BadFraming("multi-controller tailA"));
            }
            let high = c.u16le();
            if c.u16le() != MC_TAIL_B {
                return Err(InputError::BadFraming("multi-controller tailB"));
            }
            InputEvent::Gamepad(GamepadState {
                number,
                active_mask,
                buttons: u32::from(low) | (u32::from(high) << 16),
                left_trigger,
                right_trigger,
                ls_x,
                ls_y,
                rs_x,
                rs_y,
            })
        }
        MAGIC_TOUCH => {
            let mut c = Body::need(body, 28)?;
            let event_type = c.u8();
            let _pad = c.u8();
            InputEvent::Touch {
                event_type,
                rotation: c.u16le(),
                pointer_id: c.u32le(),
                x: c.f32le(),
                y: c.f32le(),
                pressure: c.f32le(),
                contact_major: c.f32le(),
                contact_minor: c.f32le(),
            }
        }
        MAGIC_PEN => {
            let mut c = Body::need(body, 28)?;
            let event_type = c.u8();
            let tool = c.u8();
            let buttons = c.u8();
            let _pad = c.u8();
            let x = c.f32le();
            let y = c.f32le();
            let pressure = c.f32le();
            let rotation = c.u16le();
            let tilt = c.u8();
            let _pad2 = c.u8();
            InputEvent::Pen {
                event_type,
                tool,
                buttons,
                x,
                y,
                pressure,
                rotation,
                tilt,
                contact_major: c.f32le(),
                contact_minor: c.f32le(),
            }
        }
        MAGIC_CONTROLLER_ARRIVAL => {
            let mut c = Body::need(body, 8)?;
            InputEvent::ControllerArrival {
                number: c.u8(),
                controller_type: c.u8(),
                capabilities: c.u16le(),
                supported_buttons: c.u32le(),
            }
        }
        MAGIC_CONTROLLER_TOUCH => {
            let mut c = Body::need(body, 20)?;
            let number = c.u8();
            let event_type = c.u8();
            let _pad: [u8; 2] = c.take();
            InputEvent::ControllerTouch {
                number,
                event_type,
                pointer_id: c.u32le(),
                x: c.f32le(),
                y: c.f32le(),
                pressure: c.f32le(),
            }
        }
        MAGIC_CONTROLLER_MOTION => {
            let mut c = Body::need(body, 16)?;
            let number = c.u8();
            let motion_type = c.u8();
            let _pad: [u8; 2] = c.take();
            InputEvent::ControllerMotion {
                number,
                motion_type,
                x: c.f32le(),
                y: c.f32le(),
                z: c.f32le(),
            }
        }
        MAGIC_CONTROLLER_BATTERY => {
            let mut c = Body::need(body, 3)?;
            InputEvent::ControllerBattery {
                number: c.u8(),
                state: c.u8(),
                percentage: c.u8(),
            }
        }
        other => return Err(InputError::UnknownMagic(other)),
    })
}

/// Encoders for tests and fuzz seeds: the client-side layouts, built independently of the
/// decoder's cursor so a test compares two separate readings of §A13.
pub mod encode {
    use super::*;

    fn frame(magic: u32, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER_LEN + body.len());
        v.extend_from_slice(&((4 + body.len()) as u32).to_be_bytes());
        v.extend_from_slice(&magic.to_le_bytes());
        v.extend_from_slice(body);
        v
    }

    pub fn key(down: bool, vk: u16, modifiers: u8) -> Vec<u8> {
        let mut b = vec![0u8];
        b.extend_from_slice(&vk.to_le_bytes());
        b.push(modifiers);
        b.extend_from_slice(&[0, 0]);
        frame(if down { MAGIC_KEY_DOWN } else { MAGIC_KEY_UP }, &b)
    }

    pub fn mouse_move(dx: i16, dy: i16) -> Vec<u8> {
        let mut b = dx.to_be_bytes().to_vec();
        b.extend_from_slice(&dy.to_be_bytes());
        frame(MAGIC_MOUSE_REL, &b)
    }

    pub fn mouse_position(x: i16, y: i16, width: i16, height: i16) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [x, y, 0, width - 1, height - 1] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        frame(MAGIC_MOUSE_ABS, &b)
    }

    pub fn mouse_button(down: bool, button: u8) -> Vec<u8> {
        frame(
            if down {
                MAGIC_BUTTON_DOWN
            } else {
                MAGIC_BUTTON_UP
            },
            &[button],
        )
    }

    pub fn scroll(amount: i16) -> Vec<u8> {
        let mut b = amount.to_be_bytes().to_vec();
        b.extend_from_slice(&amount.to_be_bytes());
        b.extend_from_slice(&[0, 0]);
        frame(MAGIC_SCROLL, &b)
    }

    pub fn hscroll(amount: i16) -> Vec<u8> {
        frame(MAGIC_HSCROLL, &amount.to_be_bytes())
    }

    pub fn text(s: &str) -> Vec<u8> {
        frame(MAGIC_UTF8, s.as_bytes())
    }

    pub fn gamepad(s: &GamepadState) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [
            MC_HEADER_B,
            s.number,
            s.active_mask,
            MC_MID_B,
            s.buttons as u16,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.push(s.left_trigger);
        b.push(s.right_trigger);
        for v in [s.ls_x, s.ls_y, s.rs_x, s.rs_y] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in [MC_TAIL_A, (s.buttons >> 16) as u16, MC_TAIL_B] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        frame(MAGIC_MULTI_CONTROLLER, &b)
    }

    pub fn controller_arrival(number: u8, ty: u8, caps: u16, supported: u32) -> Vec<u8> {
        let mut b = vec![number, ty];
        b.extend_from_slice(&caps.to_le_bytes());
        b.extend_from_slice(&supported.to_le_bytes());
        frame(MAGIC_CONTROLLER_ARRIVAL, &b)
    }

    pub fn controller_motion(number: u8, ty: u8, xyz: [f32; 3]) -> Vec<u8> {
        let mut b = vec![number, ty, 0, 0];
        for v in xyz {
            b.extend_from_slice(&v.to_le_bytes());
        }
        frame(MAGIC_CONTROLLER_MOTION, &b)
    }

    pub fn controller_battery(number: u8, state: u8, pct: u8) -> Vec<u8> {
        frame(MAGIC_CONTROLLER_BATTERY, &[number, state, pct, 0])
    }

    #[allow(clippy::too_many_arguments)]
    pub fn touch(ev: u8, rotation: u16, id: u32, f: [f32; 5]) -> Vec<u8> {
        let mut b = vec![ev, 0];
        b.extend_from_slice(&rotation.to_le_bytes());
        b.extend_from_slice(&id.to_le_bytes());
        for v in f {
            b.extend_from_slice(&v.to_le_bytes());
        }
        frame(MAGIC_TOUCH, &b)
    }

    /// Pen: `f` = x, y, pressure, contact major, contact minor.
    pub fn pen(ev: u8, tool: u8, buttons: u8, f: [f32; 5], rotation: u16, tilt: u8) -> Vec<u8> {
        let mut b = vec![ev, tool, buttons, 0];
        for v in &f[..3] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&rotation.to_le_bytes());
        b.extend_from_slice(&[tilt, 0]);
        for v in &f[3..] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        frame(MAGIC_PEN, &b)
    }
}
