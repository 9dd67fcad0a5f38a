//! Typed input events decoded from the GameStream input packets (§A13), in wire units:
//! the Windows virtual-key codes, the client's reference plane for absolute positions,
//! 120-per-notch scroll amounts and the XInput-style controller button bits. Mapping to
//! Linux codes happens in the sinks ([`crate::vk`], [`crate::uinput`]).

use serde::{Deserialize, Serialize};

/// Controller button bits (§A13, "Button bits").
pub mod buttons {
    pub const DPAD_UP: u32 = 0x0001;
    pub const DPAD_DOWN: u32 = 0x0002;
    pub const DPAD_LEFT: u32 = 0x0004;
    pub const DPAD_RIGHT: u32 = 0x0008;
    pub const START: u32 = 0x0010;
    pub const BACK: u32 = 0x0020;
    pub const LS_CLICK: u32 = 0x0040;
    pub const RS_CLICK: u32 = 0x0080;
    pub const LB: u32 = 0x0100;
    pub const RB: u32 = 0x0200;
    pub const GUIDE: u32 = 0x0400;
    pub const A: u32 = 0x1000;
    pub const B: u32 = 0x2000;
    pub const X: u32 = 0x4000;
    pub const Y: u32 = 0x8000;
    pub const PADDLE1: u32 = 0x1_0000;
    pub const PADDLE2: u32 = 0x2_0000;
    pub const PADDLE3: u32 = 0x4_0000;
    pub const PADDLE4: u32 = 0x8_0000;
    pub const TOUCHPAD: u32 = 0x10_0000;
    pub const MISC: u32 = 0x20_0000;
}

/// Keyboard modifier bits carried next to the key code.
pub mod modifiers {
    pub const SHIFT: u8 = 0x01;
    pub const CTRL: u8 = 0x02;
    pub const ALT: u8 = 0x04;
    pub const META: u8 = 0x08;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MouseButton {
    Left,
    Middle,
    Right,
    X1,
    X2,
}

impl MouseButton {
    pub fn from_wire(b: u8) -> Option<Self> {
        Some(match b {
            1 => MouseButton::Left,
            2 => MouseButton::Middle,
            3 => MouseButton::Right,
            4 => MouseButton::X1,
            5 => MouseButton::X2,
            _ => return None,
        })
    }
}

/// The full state of one gamepad, as the multi-controller packet carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GamepadState {
    pub number: u16,
    /// Bit n set = gamepad n is attached.
    pub active_mask: u16,
    /// Low 16 bits from the main field, high 16 bits from the Sunshine extension field.
    pub buttons: u32,
    pub left_trigger: u8,
    pub right_trigger: u8,
    pub ls_x: i16,
    pub ls_y: i16,
    pub rs_x: i16,
    pub rs_y: i16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InputEvent {
    Key {
        down: bool,
        /// Windows virtual-key code (low byte significant, as Sunshine masks it).
        key_code: u16,
        modifiers: u8,
        flags: u8,
    },
    MouseMove {
        dx: i16,
        dy: i16,
    },
    /// Absolute position on the client's reference plane `width` x `height`.
    MousePosition {
        x: i16,
        y: i16,
        width: i32,
        height: i32,
    },
    MouseButton {
        down: bool,
        button: MouseButton,
    },
    /// 120 = one notch; positive = away from the user.
    Scroll {
        amount: i16,
    },
    HScroll {
        amount: i16,
    },
    Text {
        text: String,
    },
    Gamepad(GamepadState),
    Touch {
        event_type: u8,
        rotation: u16,
        pointer_id: u32,
        x: f32,
        y: f32,
        pressure: f32,
        contact_major: f32,
        contact_minor: f32,
    },
    Pen {
        event_type: u8,
        tool: u8,
        buttons: u8,
        x: f32,
        y: f32,
        pressure: f32,
        rotation: u16,
        tilt: u8,
        contact_major: f32,
        contact_minor: f32,
    },
    ControllerArrival {
        number: u8,
        /// 1 Xbox, 2 PlayStation, 3 Nintendo, 4 Steam (0 unknown).
        controller_type: u8,
        capabilities: u16,
        supported_buttons: u32,
    },
    ControllerTouch {
        number: u8,
        event_type: u8,
        pointer_id: u32,
        x: f32,
        y: f32,
        pressure: f32,
    },
    ControllerMotion {
        number: u8,
        /// 1 accelerometer, 2 gyroscope.
        motion_type: u8,
        x: f32,
        y: f32,
        z: f32,
    },
    ControllerBattery {
        number: u8,
        state: u8,
        percentage: u8,
    },
}
