//! Windows virtual-key code → Linux `KEY_*` code (input-event-codes.h numbers).
//! GameStream clients send Windows VKs (§A13); only the low byte is significant.
//! Unmapped keys return `None` and are dropped by the sinks (counted, never guessed).

/// Linux key code for a Windows VK, or None when there is no sensible mapping.
pub fn vk_to_linux(vk: u16) -> Option<u16> {
    let vk = vk & 0xFF;
    // Letters: VK 'A'..'Z' follow the QWERTY rows on Linux, so they need a table.
    const LETTERS: [u16; 26] = [
        30, 48, 46, 32, 18, 33, 34, 35, 23, 36, 37, 38, 50, 49, 24, 25, 16, 19, 31, 20, 22, 47, 17,
        45, 21, 44,
    ];
    const KEYPAD_DIGITS: [u16; 10] = [82, 79, 80, 81, 75, 76, 77, 71, 72, 73];
    Some(match vk {
        0x41..=0x5A => LETTERS[usize::from(vk - 0x41)],
        // '1'..'9' = KEY_1(2)..KEY_9(10), '0' = KEY_0(11).
        0x30 => 11,
        0x31..=0x39 => vk - 0x31 + 2,
        0x60..=0x69 => KEYPAD_DIGITS[usize::from(vk - 0x60)],
        // F1..F10 = 59..68, F11 87, F12 88, F13..F24 = 183..194.
        0x70..=0x79 => vk - 0x70 + 59,
        0x7A => 87,
        0x7B => 88,
        0x7C..=0x87 => vk - 0x7C + 183,
        0x08 => 14,        // BACK
        0x09 => 15,        // TAB
        0x0C => 76,        // CLEAR → KP5
        0x0D => 28,        // RETURN
        0x10 | 0xA0 => 42, // SHIFT / LSHIFT
        0xA1 => 54,        // RSHIFT
        0x11 | 0xA2 => 29, // CONTROL / LCONTROL
        0xA3 => 97,        // RCONTROL
        0x12 | 0xA4 => 56, // MENU / LMENU
        0xA5 => 100,       // RMENU
        0x13 => 119,       // PAUSE
        0x14 => 58,        // CAPITAL
        0x1B => 1,         // ESCAPE
        0x20 => 57,        // SPACE
        0x21 => 104,       // PRIOR
        0x22 => 109,       // NEXT
        0x23 => 107,       // END
        0x24 => 102,       // HOME
        0x25 => 105,       // LEFT
        0x26 => 103,       // UP
        0x27 => 106,       // RIGHT
        0x28 => 108,       // DOWN
        0x29 => 0x161,     // SELECT
        0x2A => 210,       // PRINT
        0x2C => 99,        // SNAPSHOT → SYSRQ
        0x2D => 110,       // INSERT
        0x2E => 111,       // DELETE
        0x2F => 138,       // HELP
        0x5B => 125,       // LWIN
        0x5C => 126,       // RWIN
        0x5D => 127,       // APPS → COMPOSE
        0x5F => 142,       // SLEEP
        0x6A => 55,        // MULTIPLY
        0x6B => 78,        // ADD
        0x6C => 121,       // SEPARATOR → KPCOMMA
        0x6D => 74,        // SUBTRACT
        0x6E => 83,        // DECIMAL
        0x6F => 98,        // DIVIDE
        0x90 => 69,        // NUMLOCK
        0x91 => 70,        // SCROLL
        0xA6 => 158,       // BROWSER_BACK
        0xA7 => 159,       // BROWSER_FORWARD
        0xA8 => 173,       // BROWSER_REFRESH
        0xA9 => 128,       // BROWSER_STOP
        0xAA => 217,       // BROWSER_SEARCH
        0xAB => 156,       // BROWSER_FAVORITES
        0xAC => 172,       // BROWSER_HOME
        0xAD => 113,       // VOLUME_MUTE
        0xAE => 114,       // VOLUME_DOWN
        0xAF => 115,       // VOLUME_UP
        0xB0 => 163,       // MEDIA_NEXT_TRACK
        0xB1 => 165,       // MEDIA_PREV_TRACK
        0xB2 => 166,       // MEDIA_STOP
        0xB3 => 164,       // MEDIA_PLAY_PAUSE
        0xBA => 39,        // OEM_1 ;:
        0xBB => 13,        // OEM_PLUS =+
        0xBC => 51,        // OEM_COMMA
        0xBD => 12,        // OEM_MINUS
        0xBE => 52,        // OEM_PERIOD
        0xBF => 53,        // OEM_2 /?
        0xC0 => 41,        // OEM_3 `~
        0xDB => 26,        // OEM_4 [{
        0xDC => 43,        // OEM_5 \|
        0xDD => 27,        // OEM_6 ]}
        0xDE => 40,        // OEM_7 '"
        0xE2 => 86,        // OEM_102 <> (ISO)
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spot_checks_against_input_event_codes() {
        // Values from linux/input-event-codes.h.
        assert_eq!(vk_to_linux(u16::from(b'A')), Some(30)); // KEY_A
        assert_eq!(vk_to_linux(u16::from(b'Q')), Some(16)); // KEY_Q
        assert_eq!(vk_to_linux(u16::from(b'M')), Some(50)); // KEY_M
        assert_eq!(vk_to_linux(u16::from(b'Z')), Some(44)); // KEY_Z
        assert_eq!(vk_to_linux(u16::from(b'1')), Some(2)); // KEY_1
        assert_eq!(vk_to_linux(u16::from(b'0')), Some(11)); // KEY_0
        assert_eq!(vk_to_linux(0x70), Some(59)); // F1
        assert_eq!(vk_to_linux(0x79), Some(68)); // F10
        assert_eq!(vk_to_linux(0x7B), Some(88)); // F12
        assert_eq!(vk_to_linux(0x87), Some(194)); // F24
        assert_eq!(vk_to_linux(0x60), Some(82)); // KP0
        assert_eq!(vk_to_linux(0x69), Some(73)); // KP9
        assert_eq!(vk_to_linux(0x0D), Some(28)); // ENTER
        // High byte ignored (Sunshine masks it).
        assert_eq!(vk_to_linux(0x1B41), Some(30));
        assert_eq!(vk_to_linux(0xFF), None);
    }

    #[test]
    fn letters_map_to_distinct_codes() {
        let mut seen = std::collections::HashSet::new();
        for vk in 0x41u16..=0x5A {
            assert!(seen.insert(vk_to_linux(vk).unwrap()));
        }
        for vk in 0x30u16..=0x39 {
            assert!(seen.insert(vk_to_linux(vk).unwrap()));
        }
    }
}
