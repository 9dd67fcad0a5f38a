//! Decoder and sink tests: encoders from `wire::encode` (a separate reading of §A13) against
//! the decoder, hostile bytes against the decoder, and the recording/uinput sinks.

use proptest::prelude::*;
use strahl_input::wire::{self, InputError, encode};
use strahl_input::{GamepadState, InputEvent, InputSink, MouseButton, RecordingSink};

#[test]
fn byte_exact_layouts() {
    // Relative mouse: size 8 BE, magic 7 LE, dx/dy BE.
    let m = encode::mouse_move(-2, 0x0102);
    assert_eq!(m, [0, 0, 0, 8, 7, 0, 0, 0, 0xFF, 0xFE, 0x01, 0x02]);
    assert_eq!(
        wire::decode(&m).unwrap(),
        InputEvent::MouseMove { dx: -2, dy: 0x0102 }
    );
    // Key down 'A' with shift: flags, VK LE, modifiers, u16 0.
    let raw = [0, 0, 0, 10, 3, 0, 0, 0, 0, 0x41, 0, 1, 0, 0];
    assert_eq!(
        wire::decode(&raw).unwrap(),
        InputEvent::Key {
            down: true,
            key_code: 0x41,
            modifiers: 1,
            flags: 0
        }
    );
    // Horizontal scroll magic 0x55000001 LE.
    let h = encode::hscroll(-120);
    assert_eq!(&h[4..8], &[1, 0, 0, 0x55]);
    assert_eq!(
        wire::decode(&h).unwrap(),
        InputEvent::HScroll { amount: -120 }
    );
    // Absolute mouse carries width-1/height-1.
    assert_eq!(
        wire::decode(&encode::mouse_position(100, 200, 1920, 1080)).unwrap(),
        InputEvent::MousePosition {
            x: 100,
            y: 200,
            width: 1920,
            height: 1080
        }
    );
    assert_eq!(
        wire::decode(&encode::scroll(240)).unwrap(),
        InputEvent::Scroll { amount: 240 }
    );
    assert_eq!(
        wire::decode(&encode::mouse_button(false, 3)).unwrap(),
        InputEvent::MouseButton {
            down: false,
            button: MouseButton::Right
        }
    );
    assert_eq!(
        wire::decode(&encode::text("héllo")).unwrap(),
        InputEvent::Text {
            text: "héllo".into()
        }
    );
    assert_eq!(
        wire::decode(&encode::controller_arrival(2, 2, 0x1F, 0xFFFF)).unwrap(),
        InputEvent::ControllerArrival {
            number: 2,
            controller_type: 2,
            capabilities: 0x1F,
            supported_buttons: 0xFFFF
        }
    );
    assert_eq!(
        wire::decode(&encode::controller_motion(1, 2, [1.0, -2.5, 9.81])).unwrap(),
        InputEvent::ControllerMotion {
            number: 1,
            motion_type: 2,
            x: 1.0,
            y: -2.5,
            z: 9.81
        }
    );
    assert_eq!(
        wire::decode(&encode::controller_battery(0, 3, 77)).unwrap(),
        InputEvent::ControllerBattery {
            number: 0,
            state: 3,
            percentage: 77
        }
    );
    assert!(matches!(
        wire::decode(&encode::touch(1, 90, 7, [0.5, 0.25, 1.0, 0.0, 0.0])).unwrap(),
        InputEvent::Touch {
            event_type: 1,
            rotation: 90,
            pointer_id: 7,
            x: 0.5,
            y: 0.25,
            ..
        }
    ));
}

#[test]
fn hostile_inputs_are_typed_errors() {
    assert!(matches!(
        wire::decode(&[0, 0, 0]),
        Err(InputError::TooShort { .. })
    ));
    // Size field lies.
    let mut m = encode::mouse_move(1, 1);
    m[3] = 9;
    assert!(matches!(
        wire::decode(&m),
        Err(InputError::SizeMismatch { declared: 9, .. })
    ));
    // Body too short for its magic (key down with 1 body byte).
    assert!(matches!(
        wire::decode(&[0, 0, 0, 5, 3, 0, 0, 0, 0]),
        Err(InputError::TooShort { .. })
    ));
    assert_eq!(
        wire::decode(&[0, 0, 0, 4, 0x99, 0, 0, 0]),
        Err(InputError::UnknownMagic(0x99))
    );
    assert_eq!(
        wire::decode(&encode::text(&"x".repeat(33))),
        Err(InputError::TextTooLong(33))
    );
    assert_eq!(
        wire::decode(&[0, 0, 0, 6, 0x17, 0, 0, 0, 0xC3, 0x28]),
        Err(InputError::BadUtf8)
    );
    assert_eq!(
        wire::decode(&encode::mouse_button(true, 9)),
        Err(InputError::UnknownMouseButton(9))
    );
    let mut g = encode::gamepad(&GamepadState::default());
    g[8] = 0x1B;
    assert!(matches!(wire::decode(&g), Err(InputError::BadFraming(_))));
}

fn gamepad_strategy() -> impl Strategy<Value = GamepadState> {
    (
        0u16..16,
        any::<u16>(),
        any::<u32>(),
        any::<u8>(),
        any::<u8>(),
        any::<[i16; 4]>(),
    )
        .prop_map(|(number, active_mask, buttons, lt, rt, s)| GamepadState {
            number,
            active_mask,
            buttons,
            left_trigger: lt,
            right_trigger: rt,
            ls_x: s[0],
            ls_y: s[1],
            rs_x: s[2],
            rs_y: s[3],
        })
}

proptest! {
    #[test]
    fn decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..80)) {
        let _ = wire::decode(&data);
    }

    #[test]
    fn header_prefixed_garbage_never_panics(magic in prop_oneof![0u32..0x20, 0x5500_0000u32..0x5500_0008],
                                          body in proptest::collection::vec(any::<u8>(), 0..48)) {
        let mut p = ((4 + body.len()) as u32).to_be_bytes().to_vec();
        p.extend_from_slice(&magic.to_le_bytes());
        p.extend_from_slice(&body);
        let _ = wire::decode(&p);
    }

    #[test]
    fn gamepad_round_trips(s in gamepad_strategy()) {
        prop_assert_eq!(wire::decode(&encode::gamepad(&s)).unwrap(), InputEvent::Gamepad(s));
    }

    #[test]
    fn mouse_and_keys_round_trip(dx in any::<i16>(), dy in any::<i16>(), vk in any::<u16>(), m in 0u8..16, down in any::<bool>()) {
        prop_assert_eq!(wire::decode(&encode::mouse_move(dx, dy)).unwrap(), InputEvent::MouseMove { dx, dy });
        prop_assert_eq!(wire::decode(&encode::key(down, vk, m)).unwrap(),
            InputEvent::Key { down, key_code: vk, modifiers: m, flags: 0 });
    }

    #[test]
    fn truncation_is_an_error(s in gamepad_strategy(), cut in 1usize..30) {
        let p = encode::gamepad(&s);
        let mut t = p[..p.len() - cut].to_vec();
        // Keep the size field honest so the body-length check is what fires.
        let size = (t.len() - 4) as u32;
        t[..4].copy_from_slice(&size.to_be_bytes());
        prop_assert!(wire::decode(&t).is_err());
    }
}

#[test]
fn recording_sink_keeps_order_and_releases_held_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.jsonl");
    let mut sink = RecordingSink::with_json_lines(&path).unwrap();
    let h = sink.handle();
    let evs = [
        InputEvent::Key {
            down: true,
            key_code: 0x41,
            modifiers: 0,
            flags: 0,
        },
        InputEvent::Key {
            down: true,
            key_code: 0x10,
            modifiers: 1,
            flags: 0,
        },
        InputEvent::Key {
            down: false,
            key_code: 0x41,
            modifiers: 1,
            flags: 0,
        },
        InputEvent::MouseButton {
            down: true,
            button: MouseButton::Left,
        },
        InputEvent::MouseMove { dx: 3, dy: -4 },
        InputEvent::Gamepad(GamepadState {
            number: 1,
            active_mask: 3,
            buttons: 0x1000,
            ..Default::default()
        }),
    ];
    for e in &evs {
        sink.apply(e).unwrap();
    }
    assert_eq!(h.events(), evs);
    sink.release_all().unwrap();
    let all = h.events();
    let released = &all[evs.len()..];
    // Shift (still held), the left button and gamepad 1 come back up; 'A' was already up.
    assert_eq!(
        released,
        [
            InputEvent::Key {
                down: false,
                key_code: 0x10,
                modifiers: 0,
                flags: 0
            },
            InputEvent::MouseButton {
                down: false,
                button: MouseButton::Left
            },
            InputEvent::Gamepad(GamepadState {
                number: 1,
                active_mask: 3,
                ..Default::default()
            }),
        ]
    );
    // A second stop has nothing left to release.
    sink.release_all().unwrap();
    assert_eq!(h.events().len(), all.len());
    // The JSON-lines file reads back the same sequence.
    assert_eq!(strahl_input::read_json_lines(&path).unwrap(), all);
}

#[test]
fn uinput_absent_is_a_typed_not_available_and_default_falls_back() {
    if std::path::Path::new(strahl_input::uinput::UINPUT_PATH).exists() {
        eprintln!("/dev/uinput exists here; the not-available path is not what runs");
        return;
    }
    assert!(matches!(
        strahl_input::uinput::UinputSink::open(),
        Err(strahl_input::SinkError::NotAvailable(_))
    ));
    let (_sink, why) = strahl_input::open_default_sink();
    assert!(matches!(
        why,
        Some(strahl_input::SinkError::NotAvailable(_))
    ));
}

#[test]
fn abs_scaling_hits_both_ends() {
    use strahl_input::uinput::{ABS_POINTER_MAX, scale_abs};
    assert_eq!(scale_abs(0, 1920), 0);
    assert_eq!(scale_abs(1919, 1920), ABS_POINTER_MAX);
    assert_eq!(scale_abs(5000, 1920), ABS_POINTER_MAX);
    assert_eq!(scale_abs(-3, 1920), 0);
    assert_eq!(scale_abs(7, 0), 0);
}
