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

/// Decodes client packets and runs them through the touch and pen translators, as the uinput
/// sink does, returning each packet's evdev events.
fn translate(packets: &[Vec<u8>]) -> Vec<Vec<(u16, u16, i32)>> {
    use strahl_input::touch::{PenInput, PenTablet, TouchScreen};
    let (mut ts, mut pen) = (TouchScreen::default(), PenTablet::default());
    packets
        .iter()
        .map(|p| match wire::decode(p).unwrap() {
            InputEvent::Touch {
                event_type,
                pointer_id,
                x,
                y,
                pressure,
                ..
            } => ts.apply(event_type, pointer_id, x, y, pressure),
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
            } => pen.apply(&PenInput {
                event_type,
                tool,
                buttons,
                x,
                y,
                pressure,
                rotation,
                tilt,
            }),
            other => panic!("not touch or pen: {other:?}"),
        })
        .collect()
}

#[test]
fn gamestream_touch_packets_become_protocol_b_multitouch() {
    // Codes written out from linux/input-event-codes.h, not taken from the crate.
    const KEY: u16 = 1;
    const ABS: u16 = 3;
    const BTN_TOUCH: u16 = 0x14a;
    let (slot, x, y, id, p): (u16, u16, u16, u16, u16) = (0x2f, 0x35, 0x36, 0x39, 0x3a);
    let rot = strahl_input::touch::ROT_UNKNOWN;
    // Two fingers (pointer ids as Android sends them): down, down, move both, up, up.
    let got = translate(&[
        encode::touch(1, rot, 0, [0.25, 0.5, 0.5, 0.0, 0.0]),
        encode::touch(1, rot, 1, [0.75, 0.5, 0.0, 0.0, 0.0]),
        encode::touch(3, rot, 1, [0.75, 0.75, 0.0, 0.0, 0.0]),
        encode::touch(3, rot, 0, [0.5, 0.5, 1.0, 0.0, 0.0]),
        encode::touch(2, rot, 0, [0.5, 0.5, 0.0, 0.0, 0.0]),
        encode::touch(2, rot, 1, [0.75, 0.75, 0.0, 0.0, 0.0]),
    ]);
    assert_eq!(
        got,
        [
            vec![
                (ABS, id, 0),
                (ABS, x, 16384),
                (ABS, y, 32768),
                (ABS, p, 512),
                (KEY, BTN_TOUCH, 1),
                (ABS, 0, 16384),
                (ABS, 1, 32768),
            ],
            vec![
                (ABS, slot, 1),
                (ABS, id, 1),
                (ABS, x, 49151),
                (ABS, y, 32768)
            ],
            vec![(ABS, y, 49151)],
            vec![
                (ABS, slot, 0),
                (ABS, x, 32768),
                (ABS, p, 1023),
                (ABS, 0, 32768)
            ],
            // The first finger lifts: the emulated pointer moves to the second.
            vec![(ABS, id, -1), (ABS, 0, 49151), (ABS, 1, 49151)],
            vec![(ABS, slot, 1), (ABS, id, -1), (KEY, BTN_TOUCH, 0)],
        ]
    );
}

#[test]
fn gamestream_pen_packets_become_tablet_events() {
    const KEY: u16 = 1;
    const ABS: u16 = 3;
    let (tool_pen, tool_rubber, touch, stylus): (u16, u16, u16, u16) = (0x140, 0x141, 0x14a, 0x14b);
    let (x, y, pressure, tilt_x, tilt_y): (u16, u16, u16, u16, u16) = (0, 1, 0x18, 0x1a, 0x1b);
    let f = |x, y, p| [x, y, p, 0.0, 0.0];
    let got = translate(&[
        // Hover in, leaning right 30° (rotation 90), touch down with pressure, press the
        // barrel button, lift, leave; then the eraser end comes down and the session ends.
        encode::pen(0, 1, 0, f(0.5, 0.5, 0.0), 90, 30),
        encode::pen(1, 1, 0, f(0.5, 0.5, 0.25), 90, 30),
        encode::pen(5, 1, 1, f(0.5, 0.5, 0.25), 90, 30),
        encode::pen(2, 1, 0, f(0.5, 0.5, 0.0), 0xFFFF, 0xFF),
        encode::pen(6, 1, 0, f(0.5, 0.5, 0.0), 0xFFFF, 0xFF),
        encode::pen(1, 2, 0, f(0.0, 1.0, 0.0), 180, 45),
    ]);
    assert_eq!(
        got,
        [
            vec![
                (KEY, tool_pen, 1),
                (ABS, x, 32768),
                (ABS, y, 32768),
                (ABS, tilt_x, 30),
            ],
            vec![(ABS, pressure, 256), (KEY, touch, 1)],
            vec![(KEY, stylus, 1)],
            vec![(ABS, pressure, 0), (KEY, touch, 0), (KEY, stylus, 0)],
            vec![(KEY, tool_pen, 0)],
            vec![
                (KEY, tool_rubber, 1),
                (ABS, x, 0),
                (ABS, y, 65535),
                // Unknown pressure while touching: half (libinput's tip threshold).
                (ABS, pressure, 511),
                (ABS, tilt_x, 0),
                (ABS, tilt_y, 45),
                (KEY, touch, 1),
            ],
        ]
    );
}

#[test]
fn held_touches_and_pen_are_released_at_session_end() {
    let mut sink = RecordingSink::new();
    let h = sink.handle();
    let rot = strahl_input::touch::ROT_UNKNOWN;
    for p in [
        encode::touch(1, rot, 4, [0.1, 0.1, 0.0, 0.0, 0.0]),
        encode::touch(1, rot, 9, [0.2, 0.2, 0.0, 0.0, 0.0]),
        encode::touch(2, rot, 4, [0.1, 0.1, 0.0, 0.0, 0.0]),
        encode::pen(1, 1, 2, [0.3, 0.3, 0.5, 0.0, 0.0], 0xFFFF, 0xFF),
    ] {
        sink.apply(&wire::decode(&p).unwrap()).unwrap();
    }
    let n = h.events().len();
    sink.release_all().unwrap();
    let released: Vec<(u8, u8)> = h.events()[n..]
        .iter()
        .map(|e| match e {
            InputEvent::Touch {
                event_type,
                pointer_id,
                ..
            } => (*event_type, *pointer_id as u8),
            InputEvent::Pen { event_type, .. } => (*event_type, 0xEE),
            other => panic!("unexpected release {other:?}"),
        })
        .collect();
    // Pointer 9 comes up (4 already did); the pen leaves (which lifts tip and buttons).
    assert_eq!(released, [(2, 9), (6, 0xEE)]);
    // Run through the translators, those releases leave nothing down.
    use strahl_input::touch::{PenInput, PenTablet, TouchScreen};
    let (mut ts, mut pen) = (TouchScreen::default(), PenTablet::default());
    for e in h.events() {
        match e {
            InputEvent::Touch {
                event_type,
                pointer_id,
                x,
                y,
                pressure,
                ..
            } => {
                ts.apply(event_type, pointer_id, x, y, pressure);
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
                pen.apply(&PenInput {
                    event_type,
                    tool,
                    buttons,
                    x,
                    y,
                    pressure,
                    rotation,
                    tilt,
                });
            }
            _ => {}
        }
    }
    assert_eq!((ts.contacts(), pen.in_range()), (0, false));
    assert!(ts.release_all().is_empty() && pen.release_all().is_empty());
}
