//! Unit tests of [`super`]: every translation as the exact evdev events it promises.

use super::event_type::*;
use super::*;

fn down(t: &mut TouchScreen, id: u32, x: f32, y: f32) -> Vec<Ev> {
    t.apply(DOWN, id, x, y, 0.0)
}

#[test]
fn one_finger_tap_is_a_tracked_contact_with_pointer_emulation() {
    let mut t = TouchScreen::default();
    assert_eq!(
        t.apply(DOWN, 7, 0.5, 0.25, 0.5),
        [
            (EV_ABS, ABS_MT_TRACKING_ID, 0),
            (EV_ABS, ABS_MT_POSITION_X, 32768),
            (EV_ABS, ABS_MT_POSITION_Y, 16384),
            (EV_ABS, ABS_MT_PRESSURE, 512),
            (EV_KEY, BTN_TOUCH, 1),
            (EV_ABS, ABS_X, 32768),
            (EV_ABS, ABS_Y, 16384),
        ]
    );
    // Only what changed: y stays, pressure unknown → 0.
    assert_eq!(
        t.apply(MOVE, 7, 1.0, 0.25, 0.0),
        [
            (EV_ABS, ABS_MT_POSITION_X, 65535),
            (EV_ABS, ABS_MT_PRESSURE, 0),
            (EV_ABS, ABS_X, 65535),
        ]
    );
    // A move to the same place is nothing at all (no empty frame).
    assert!(t.apply(MOVE, 7, 1.0, 0.25, 0.0).is_empty());
    assert_eq!(
        t.apply(UP, 7, 1.0, 0.25, 0.0),
        [(EV_ABS, ABS_MT_TRACKING_ID, -1), (EV_KEY, BTN_TOUCH, 0)]
    );
    assert_eq!(t.contacts(), 0);
    assert_eq!(t.stats, TouchStats::default());
}

#[test]
fn two_fingers_take_two_slots_and_the_primary_moves_to_the_survivor() {
    let mut t = TouchScreen::default();
    down(&mut t, 100, 0.0, 0.0);
    // The second finger: slot 1, tracking id 1; the emulated pointer stays on slot 0.
    assert_eq!(
        down(&mut t, 200, 0.5, 0.5),
        [
            (EV_ABS, ABS_MT_SLOT, 1),
            (EV_ABS, ABS_MT_TRACKING_ID, 1),
            (EV_ABS, ABS_MT_POSITION_X, 32768),
            (EV_ABS, ABS_MT_POSITION_Y, 32768),
        ]
    );
    // Back to slot 0 for pointer 100.
    assert_eq!(
        t.apply(MOVE, 100, 0.0, 1.0, 0.0),
        [
            (EV_ABS, ABS_MT_SLOT, 0),
            (EV_ABS, ABS_MT_POSITION_Y, 65535),
            (EV_ABS, ABS_Y, 65535),
        ]
    );
    // The first finger lifts: the emulated pointer jumps to the second one.
    assert_eq!(
        t.apply(CANCEL, 100, 0.0, 0.0, 0.0),
        [
            (EV_ABS, ABS_MT_TRACKING_ID, -1),
            (EV_ABS, ABS_X, 32768),
            (EV_ABS, ABS_Y, 32768),
        ]
    );
    // A new finger reuses slot 0 with a fresh tracking id; its old values are the kernel's
    // too, so an unchanged x is left out.
    assert_eq!(
        down(&mut t, 300, 0.0, 0.5),
        [
            (EV_ABS, ABS_MT_TRACKING_ID, 2),
            (EV_ABS, ABS_MT_POSITION_Y, 32768),
            (EV_ABS, ABS_X, 0),
        ]
    );
    assert_eq!(
        t.apply(CANCEL_ALL, 0, 0.0, 0.0, 0.0),
        [
            (EV_ABS, ABS_MT_TRACKING_ID, -1),
            (EV_ABS, ABS_MT_SLOT, 1),
            (EV_ABS, ABS_MT_TRACKING_ID, -1),
            (EV_KEY, BTN_TOUCH, 0),
        ]
    );
    assert_eq!(t.contacts(), 0);
}

#[test]
fn a_hostile_client_cannot_exhaust_the_slots() {
    let mut t = TouchScreen::default();
    for id in 0..1000u32 {
        down(&mut t, id, 0.1, 0.1);
    }
    assert_eq!(t.contacts(), TOUCH_SLOTS);
    assert_eq!(t.stats.no_slot, 1000 - TOUCH_SLOTS as u64);
    // The dropped pointers' moves and ups are dropped too, and counted.
    assert!(t.apply(MOVE, 999, 0.9, 0.9, 0.0).is_empty());
    assert!(t.apply(UP, 999, 0.9, 0.9, 0.0).is_empty());
    assert_eq!(t.stats.unknown_pointer, 2);
    // A real finger's up frees a slot that the next down takes.
    assert_eq!(
        t.apply(UP, 3, 0.0, 0.0, 0.0)[1],
        (EV_ABS, ABS_MT_TRACKING_ID, -1)
    );
    assert_eq!(
        down(&mut t, 5000, 0.1, 0.1)[0],
        (EV_ABS, ABS_MT_TRACKING_ID, 10)
    );
    assert_eq!(t.contacts(), TOUCH_SLOTS);
}

#[test]
fn tracking_ids_wrap_and_hostile_floats_are_clamped() {
    let mut t = TouchScreen {
        next_tracking_id: TRACKING_ID_MAX,
        ..TouchScreen::default()
    };
    assert_eq!(
        t.apply(DOWN, 1, f32::NAN, f32::INFINITY, -3.0),
        [
            (EV_ABS, ABS_MT_TRACKING_ID, TRACKING_ID_MAX),
            (EV_ABS, ABS_MT_POSITION_Y, AXIS_MAX),
            (EV_KEY, BTN_TOUCH, 1),
            (EV_ABS, ABS_Y, AXIS_MAX),
        ]
    );
    t.apply(UP, 1, 0.0, 0.0, 0.0);
    assert_eq!(
        t.apply(DOWN, 1, 0.0, 0.0, 2.0)[0],
        (EV_ABS, ABS_MT_TRACKING_ID, 0)
    );
    assert_eq!(unit_to_axis(f32::NEG_INFINITY, AXIS_MAX), 0);
    assert_eq!(unit_to_axis(1e-9, AXIS_MAX), 0);
}

#[test]
fn touch_hover_and_unknown_types_are_ignored() {
    let mut t = TouchScreen::default();
    for ev in [HOVER, HOVER_LEAVE, BUTTON_ONLY, 0x42] {
        assert!(t.apply(ev, 1, 0.5, 0.5, 0.5).is_empty());
    }
    assert_eq!(t.stats.ignored, 4);
    assert!(t.release_all().is_empty());
}

fn touch_ev(event_type: u8, pointer_id: u32) -> crate::InputEvent {
    crate::InputEvent::Touch {
        event_type,
        rotation: ROT_UNKNOWN,
        pointer_id,
        x: 0.5,
        y: 0.5,
        pressure: 0.0,
        contact_major: 0.0,
        contact_minor: 0.0,
    }
}

#[test]
fn two_sessions_fingers_get_ids_of_their_own_and_cancel_all_stays_in_its_session() {
    let mut ids = TouchIds::default();
    let scoped = |ids: &mut TouchIds, s: u64, ty: u8, id: u32| -> Vec<(u8, u32)> {
        ids.scope(s, &touch_ev(ty, id))
            .into_iter()
            .map(|e| match e {
                crate::InputEvent::Touch {
                    event_type,
                    pointer_id,
                    ..
                } => (event_type, pointer_id),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    // A lone session's ids pass unchanged; session 2's finger 0 collides with session 1's
    // and gets 1, so its finger 1 gets the next free id, 2.
    assert_eq!(scoped(&mut ids, 1, DOWN, 0), [(DOWN, 0)]);
    assert_eq!(scoped(&mut ids, 2, DOWN, 0), [(DOWN, 1)]);
    assert_eq!(scoped(&mut ids, 2, DOWN, 1), [(DOWN, 2)]);
    assert_eq!(scoped(&mut ids, 2, MOVE, 0), [(MOVE, 1)]);
    // Unknown pointers' moves and ups go nowhere.
    assert!(scoped(&mut ids, 1, MOVE, 5).is_empty());
    assert!(scoped(&mut ids, 1, UP, 1).is_empty());
    // Session 2's cancel-all lifts its two fingers only.
    assert_eq!(
        scoped(&mut ids, 2, CANCEL_ALL, 0),
        [(CANCEL, 1), (CANCEL, 2)]
    );
    assert_eq!(scoped(&mut ids, 1, MOVE, 0), [(MOVE, 0)]);
    assert_eq!(scoped(&mut ids, 1, UP, 0), [(UP, 0)]);
    // Hover passes as is; non-touch input too.
    assert_eq!(scoped(&mut ids, 1, HOVER, 9), [(HOVER, 9)]);
    let key = crate::InputEvent::Text { text: "x".into() };
    assert_eq!(ids.scope(1, &key), [key]);
}

#[test]
fn a_session_holds_at_most_the_slots_and_forget_frees_its_ids() {
    let mut ids = TouchIds::default();
    for id in 0..100 {
        ids.scope(7, &touch_ev(DOWN, id));
    }
    assert_eq!(ids.ids.len(), TOUCH_SLOTS);
    assert!(ids.scope(7, &touch_ev(DOWN, 500)).is_empty());
    // Another session still gets its own (ids 0..10 are taken: 10).
    assert!(matches!(
        ids.scope(8, &touch_ev(DOWN, 0))[..],
        [crate::InputEvent::Touch { pointer_id: 10, .. }]
    ));
    ids.forget(7);
    assert_eq!(ids.ids.len(), 1);
    assert!(matches!(
        ids.scope(9, &touch_ev(DOWN, 3))[..],
        [crate::InputEvent::Touch { pointer_id: 3, .. }]
    ));
}

fn pen(event_type: u8, tool: u8, buttons: u8, x: f32, y: f32, pressure: f32) -> PenInput {
    PenInput {
        event_type,
        tool,
        buttons,
        x,
        y,
        pressure,
        rotation: ROT_UNKNOWN,
        tilt: TILT_UNKNOWN,
    }
}

#[test]
fn a_pen_stroke_hovers_touches_lifts_and_leaves() {
    let mut p = PenTablet::default();
    assert_eq!(
        p.apply(&pen(HOVER, tool::PEN, 0, 0.5, 0.5, 0.3)),
        [
            (EV_KEY, BTN_TOOL_PEN, 1),
            (EV_ABS, ABS_X, 32768),
            (EV_ABS, ABS_Y, 32768),
        ]
    );
    assert_eq!(
        p.apply(&pen(DOWN, tool::PEN, 0, 0.5, 0.5, 1.0)),
        [(EV_ABS, ABS_PRESSURE, PRESSURE_MAX), (EV_KEY, BTN_TOUCH, 1)]
    );
    // A move keeps touching; unknown pressure while touching is half pressure.
    assert_eq!(
        p.apply(&pen(MOVE, tool::UNKNOWN, 0, 0.75, 0.5, 0.0)),
        [(EV_ABS, ABS_X, 49151), (EV_ABS, ABS_PRESSURE, 511)]
    );
    assert_eq!(
        p.apply(&pen(UP, tool::PEN, 0, 0.75, 0.5, 0.0)),
        [(EV_ABS, ABS_PRESSURE, 0), (EV_KEY, BTN_TOUCH, 0)]
    );
    assert!(p.in_range());
    assert_eq!(
        p.apply(&pen(HOVER_LEAVE, tool::PEN, 0, 0.0, 0.0, 0.0)),
        [(EV_KEY, BTN_TOOL_PEN, 0)]
    );
    assert!(!p.in_range());
    // Leaving again changes nothing.
    assert!(p.release_all().is_empty());
}

#[test]
fn stylus_buttons_eraser_switch_and_release_at_session_end() {
    let mut p = PenTablet::default();
    p.apply(&pen(DOWN, tool::PEN, 0, 0.1, 0.1, 0.5));
    assert_eq!(
        p.apply(&pen(
            BUTTON_ONLY,
            tool::PEN,
            pen_button::PRIMARY | 0x80,
            0.9,
            0.9,
            0.0
        )),
        [(EV_KEY, BTN_STYLUS, 1)],
        "button-only moves nothing; unknown button bits are ignored"
    );
    assert_eq!(
        p.apply(&pen(MOVE, tool::PEN, pen_button::SECONDARY, 0.1, 0.1, 0.5)),
        [(EV_KEY, BTN_STYLUS, 0), (EV_KEY, BTN_STYLUS2, 1)]
    );
    // The eraser end comes down: the pen leaves (tip, buttons, tool) first.
    assert_eq!(
        p.apply(&pen(DOWN, tool::ERASER, 0, 0.1, 0.1, 0.5)),
        [
            (EV_ABS, ABS_PRESSURE, 0),
            (EV_KEY, BTN_TOUCH, 0),
            (EV_KEY, BTN_STYLUS2, 0),
            (EV_KEY, BTN_TOOL_PEN, 0),
            (EV_KEY, BTN_TOOL_RUBBER, 1),
            (EV_ABS, ABS_PRESSURE, 512),
            (EV_KEY, BTN_TOUCH, 1),
        ]
    );
    p.apply(&pen(
        MOVE,
        tool::ERASER,
        pen_button::TERTIARY,
        0.1,
        0.1,
        0.5,
    ));
    assert_eq!(
        p.release_all(),
        [
            (EV_ABS, ABS_PRESSURE, 0),
            (EV_KEY, BTN_TOUCH, 0),
            (EV_KEY, BTN_STYLUS3, 0),
            (EV_KEY, BTN_TOOL_RUBBER, 0),
        ]
    );
    assert!(p.apply(&pen(0x42, tool::PEN, 0, 0.0, 0.0, 0.0)).is_empty());
    assert_eq!(p.ignored, 1);
}

#[test]
fn tilt_and_rotation_become_plane_angles() {
    assert_eq!(tilt_xy(0, 123), Some((0, 0)));
    // Leaning right by 45°: all X; leaning up (away from the user): negative Y.
    assert_eq!(tilt_xy(45, 90), Some((45, 0)));
    assert_eq!(tilt_xy(45, 0), Some((0, -45)));
    assert_eq!(tilt_xy(45, 180), Some((0, 45)));
    assert_eq!(tilt_xy(30, 270), Some((-30, 0)));
    // Flat on the screen towards the bottom-right corner: flat in both planes.
    assert_eq!(tilt_xy(90, 135), Some((90, 90)));
    assert_eq!(tilt_xy(200, 90 + 360), Some((90, 0)));
    assert_eq!(tilt_xy(TILT_UNKNOWN, 90), None);
    assert_eq!(tilt_xy(45, ROT_UNKNOWN), None);
    let mut p = PenTablet::default();
    let mut e = pen(HOVER, tool::PEN, 0, 0.0, 0.0, 0.0);
    e.tilt = 45;
    e.rotation = 90;
    assert_eq!(
        p.apply(&e),
        [(EV_KEY, BTN_TOOL_PEN, 1), (EV_ABS, ABS_TILT_X, 45)]
    );
}
