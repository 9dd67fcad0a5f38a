//! The uinput sink on the real `uinput` and `evdev` drivers (the lab's Debian 6.12 guest), one
//! boot for the whole suite.
//!
//! In the guest this binary (role `guest`, root) plays both ends: it opens [`UinputSink`] and
//! feeds it GameStream input packets — real wire bytes (`wire::encode`, the client's layouts)
//! decoded by `wire::decode`, so the whole path from bytes to kernel events is covered — and
//! reads what the kernel delivers on the new `/dev/input/event*` nodes with the `evdev` crate,
//! as a game would. Checked, per device, as the exact list of (type, code, value) the kernel
//! passed on (SYN_REPORTs left out):
//! - keyboard: a VK press/release as the Linux KEY_* code, a held modifier;
//! - relative mouse: motion, buttons, vertical and horizontal wheel (hi-res + whole notches);
//! - absolute pointer: client coordinates scaled onto 0..=65535;
//! - gamepad (Xbox layout): buttons, d-pad as a hat, sticks (Y flipped), triggers;
//! - session end with `release_all` then drop: held key, button and pad returned to rest
//!   (the key-ups are read, the kernel's key state is empty) before the devices go, and then
//!   every node is gone from `/dev/input` (reads end in ENODEV); a second session ended by
//!   drop alone removes its devices too;
//! - `end_session` (the control plane's "last session gone"): the devices go while the sink
//!   lives, and the next session's input makes only the device it needs again;
//! - rumble (a third session, rumble on): a game thread's FF uploads/plays/stops/erases on the
//!   pad's node come out of `poll_rumble` as motor changes, and `release_all` stops a rumble
//!   left playing;
//! - no device before a session: `open` makes no node; `begin_session` makes the keyboard+mouse
//!   and the absolute pointer;
//! - touch and pen (a session that sends only those, so only those two devices appear): the
//!   touchscreen's and the pen tablet's properties and capabilities as a reader sees them
//!   (INPUT_PROP_DIRECT, protocol-B MT axes with 10 slots, pen/eraser tools, stylus buttons,
//!   pressure, tilt), two fingers and a pen stroke with tilt as the exact evdev events, held
//!   contacts, pen tip and barrel button released by `release_all`, both nodes gone after
//!   `end_session`.
//!
//! The guest prints one `UINPUT-LAB` summary line the host repeats.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use evdev::{Device, EventType, FFEffect, FFEffectData, FFEffectKind, FFReplay, FFTrigger};
use strahl_input::event::buttons;
use strahl_input::uinput::UinputSink;
use strahl_input::wire::{self, encode};
use strahl_input::{GamepadState, InputSink, Rumble};
use strahl_vmlab::harness::{Case, run};
use strahl_vmlab::{GuestSpec, Lab};

const ROLE: &str = "STRAHL_UINPUT_LAB_ROLE";
/// Bound on every wait for the kernel (node creation, event delivery, node removal).
const WAIT: Duration = Duration::from_secs(5);

const KBD: &str = "strahl keyboard and mouse";
const ABS: &str = "strahl absolute pointer";
const PAD: &str = "strahl gamepad";
const TOUCH: &str = "strahl touchscreen";
const PEN: &str = "strahl pen";

// Linux codes, written out from linux/input-event-codes.h (not from the sink's tables, so a
// wrong table entry fails here).
const EV_KEY: u16 = 1;
const EV_REL: u16 = 2;
const EV_ABS: u16 = 3;
const KEY_W: u16 = 17;
const KEY_A: u16 = 30;
const KEY_LEFTSHIFT: u16 = 42;
const BTN_LEFT: u16 = 0x110;
const BTN_RIGHT: u16 = 0x111;
const BTN_SOUTH: u16 = 0x130;
const BTN_EAST: u16 = 0x131;
const BTN_NORTH: u16 = 0x133;
const BTN_TL: u16 = 0x136;
const REL_X: u16 = 0;
const REL_Y: u16 = 1;
const REL_HWHEEL: u16 = 6;
const REL_WHEEL: u16 = 8;
const REL_WHEEL_HI_RES: u16 = 0x0b;
const REL_HWHEEL_HI_RES: u16 = 0x0c;
const ABS_X: u16 = 0;
const ABS_Y: u16 = 1;
const ABS_Z: u16 = 2;
const ABS_RX: u16 = 3;
const ABS_RY: u16 = 4;
const ABS_RZ: u16 = 5;
const ABS_HAT0Y: u16 = 0x11;
const ABS_PRESSURE: u16 = 0x18;
const ABS_TILT_X: u16 = 0x1a;
const ABS_TILT_Y: u16 = 0x1b;
const ABS_MT_SLOT: u16 = 0x2f;
const ABS_MT_POSITION_X: u16 = 0x35;
const ABS_MT_POSITION_Y: u16 = 0x36;
const ABS_MT_TRACKING_ID: u16 = 0x39;
const ABS_MT_PRESSURE: u16 = 0x3a;
const BTN_TOOL_PEN: u16 = 0x140;
const BTN_TOOL_RUBBER: u16 = 0x141;
const BTN_STYLUS3: u16 = 0x149;
const BTN_TOUCH: u16 = 0x14a;
const BTN_STYLUS: u16 = 0x14b;
const BTN_STYLUS2: u16 = 0x14c;
const INPUT_PROP_DIRECT: u16 = 0x01;

type Ev = (u16, u16, i32);

fn main() -> ExitCode {
    if std::env::var(ROLE).as_deref() == Ok("guest") {
        return match guest() {
            Ok(summary) => {
                println!("UINPUT-LAB {summary}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("FAILED: {e}");
                ExitCode::FAILURE
            }
        };
    }
    run(&[Case {
        name: "uinput_sink_events_come_out_of_evdev_and_devices_go_at_session_end",
        run: host_case,
    }])
}

fn host_case(lab: &Lab) {
    let exe = std::env::current_exe().unwrap();
    let out = lab
        .run(
            &GuestSpec::new([exe])
                .env(ROLE, "guest")
                .modules(&["uinput", "evdev"])
                .timeout_secs(120),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "guest: {:.1} s\n{}\n{}",
        out.elapsed.as_secs_f64(),
        out.stdout,
        out.stderr
    );
    out.assert_success();
    let summary = out
        .stdout
        .lines()
        .find(|l| l.starts_with("UINPUT-LAB "))
        .expect("summary line");
    println!("{summary}");
}

// ---------------------------------------------------------------- the guest

/// Decodes a client packet and applies it, as the control stream does.
fn send(sink: &mut UinputSink, packet: &[u8]) -> Result<(), String> {
    let ev = wire::decode(packet).map_err(|e| format!("decode {packet:02x?}: {e}"))?;
    sink.apply(&ev).map_err(|e| format!("apply {ev:?}: {e}"))
}

fn event_nodes() -> BTreeSet<PathBuf> {
    std::fs::read_dir("/dev/input")
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("event"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The evdev node named `name` (the only one), opened non-blocking; waits for devtmpfs.
fn open_named(name: &str) -> Result<(PathBuf, Device), String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut found: Vec<(PathBuf, Device)> = evdev::enumerate()
            .filter(|(_, d)| d.name() == Some(name))
            .collect();
        if found.len() > 1 {
            return Err(format!("{} nodes named {name:?}", found.len()));
        }
        if let Some((p, d)) = found.pop() {
            d.set_nonblocking(true)
                .map_err(|e| format!("{}: {e}", p.display()))?;
            return Ok((p, d));
        }
        if Instant::now() > deadline {
            return Err(format!("no /dev/input node named {name:?} within {WAIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads non-SYN events until `n` have come (or the wait ends), then whatever else is queued.
/// `Err` carries the io error that ended reading (ENODEV once the device is gone) with what
/// was read before it.
fn read_events(dev: &mut Device, n: usize) -> (Vec<Ev>, Option<std::io::Error>) {
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    let mut quiet_reads = 0;
    // Bounded: one read per 10 ms for at most WAIT, plus 3 quiet reads after the count.
    while Instant::now() < deadline && quiet_reads < 3 {
        match dev.fetch_events() {
            Ok(evs) => {
                for e in evs {
                    if e.event_type() != EventType::SYNCHRONIZATION {
                        got.push((e.event_type().0, e.code(), e.value()));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if got.len() >= n {
                    quiet_reads += 1;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return (got, Some(e)),
        }
    }
    (got, None)
}

fn expect(what: &str, dev: &mut Device, want: &[Ev]) -> Result<(), String> {
    let (got, err) = read_events(dev, want.len());
    if got != want {
        return Err(format!(
            "{what}: kernel delivered {got:?} (then {err:?}), expected {want:?}"
        ));
    }
    Ok(())
}

/// After the sink is gone: reading ends in ENODEV and the node disappears from `/dev/input`.
/// (What was queued but unread is lost: evdev answers ENODEV as soon as its device is gone,
/// buffer or not — seen on 6.12 — so releases are checked before the drop.)
fn expect_gone(what: &str, dev: &mut Device, node: &Path) -> Result<(), String> {
    let (got, err) = read_events(dev, usize::MAX);
    let err = err.ok_or(format!(
        "{what}: the device was not removed within {WAIT:?} (read {got:?})"
    ))?;
    if err.raw_os_error() != Some(19) {
        return Err(format!("{what}: reading ended with {err}, expected ENODEV"));
    }
    let deadline = Instant::now() + WAIT;
    while node.exists() {
        if Instant::now() > deadline {
            return Err(format!("{what}: {} still exists", node.display()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Keys and buttons the kernel holds as down on `dev` (EVIOCGKEY).
fn keys_down(what: &str, dev: &Device) -> Result<Vec<u16>, String> {
    let keys = dev
        .get_key_state()
        .map_err(|e| format!("{what}: EVIOCGKEY: {e}"))?;
    Ok(keys.iter().map(|k| k.0).collect())
}

fn pad(buttons: u32, lt: u8, rt: u8, ls: (i16, i16), rs: (i16, i16)) -> Vec<u8> {
    encode::gamepad(&GamepadState {
        number: 0,
        active_mask: 1,
        buttons,
        left_trigger: lt,
        right_trigger: rt,
        ls_x: ls.0,
        ls_y: ls.1,
        rs_x: rs.0,
        rs_y: rs.1,
    })
}

fn guest() -> Result<String, String> {
    let t0 = Instant::now();
    let before = event_nodes();
    let mut sink = UinputSink::open().map_err(|e| format!("UinputSink::open: {e}"))?;
    // No session yet: no device. (Bounded pause: a node would appear within milliseconds.)
    std::thread::sleep(Duration::from_millis(200));
    if event_nodes() != before {
        return Err(format!(
            "open made devices before a session: {:?}",
            event_nodes().difference(&before).collect::<Vec<_>>()
        ));
    }
    sink.begin_session()
        .map_err(|e| format!("begin_session: {e}"))?;
    let (kbd_node, mut kbd) = open_named(KBD)?;
    let (abs_node, mut abs) = open_named(ABS)?;

    // Keyboard: 'A' pressed and released, left shift held (released at session end).
    send(&mut sink, &encode::key(true, 0x41, 0))?;
    send(&mut sink, &encode::key(false, 0x41, 0))?;
    send(&mut sink, &encode::key(true, 0xA0, 1))?;
    // Relative mouse: motion, left held, right clicked, one wheel notch, two half notches left.
    send(&mut sink, &encode::mouse_move(5, -3))?;
    send(&mut sink, &encode::mouse_button(true, 1))?;
    send(&mut sink, &encode::mouse_button(true, 3))?;
    send(&mut sink, &encode::mouse_button(false, 3))?;
    send(&mut sink, &encode::scroll(120))?;
    send(&mut sink, &encode::hscroll(-60))?;
    send(&mut sink, &encode::hscroll(-60))?;
    expect(
        "keyboard and mouse",
        &mut kbd,
        &[
            (EV_KEY, KEY_A, 1),
            (EV_KEY, KEY_A, 0),
            (EV_KEY, KEY_LEFTSHIFT, 1),
            (EV_REL, REL_X, 5),
            (EV_REL, REL_Y, -3),
            (EV_KEY, BTN_LEFT, 1),
            (EV_KEY, BTN_RIGHT, 1),
            (EV_KEY, BTN_RIGHT, 0),
            (EV_REL, REL_WHEEL_HI_RES, 120),
            (EV_REL, REL_WHEEL, 1),
            (EV_REL, REL_HWHEEL_HI_RES, -60),
            (EV_REL, REL_HWHEEL_HI_RES, -60),
            (EV_REL, REL_HWHEEL, -1),
        ],
    )?;

    // Absolute pointer on a 1920×1080 client plane: centre, top-left, bottom-right.
    send(&mut sink, &encode::mouse_position(960, 540, 1920, 1080))?;
    send(&mut sink, &encode::mouse_position(0, 0, 1920, 1080))?;
    send(&mut sink, &encode::mouse_position(1919, 1079, 1920, 1080))?;
    expect(
        "absolute pointer",
        &mut abs,
        &[
            // 960 * 65535 / 1919, 540 * 65535 / 1079 (integer division).
            (EV_ABS, ABS_X, 32784),
            (EV_ABS, ABS_Y, 32797),
            (EV_ABS, ABS_X, 0),
            (EV_ABS, ABS_Y, 0),
            (EV_ABS, ABS_X, 65535),
            (EV_ABS, ABS_Y, 65535),
        ],
    )?;

    // Gamepad 0 arrives (its device is made), then two states.
    send(&mut sink, &encode::controller_arrival(0, 1, 0, 0xFFFF))?;
    let (pad_node, mut gp) = open_named(PAD)?;
    let held = buttons::A | buttons::DPAD_UP | buttons::LB;
    send(&mut sink, &pad(held, 200, 0, (1000, 2000), (-32768, 32767)))?;
    let held2 = (held & !buttons::A) | buttons::B;
    send(
        &mut sink,
        &pad(held2, 200, 255, (1000, 2000), (-32768, 32767)),
    )?;
    expect(
        "gamepad",
        &mut gp,
        &[
            (EV_KEY, BTN_SOUTH, 1),
            (EV_KEY, BTN_TL, 1),
            (EV_ABS, ABS_HAT0Y, -1),
            (EV_ABS, ABS_X, 1000),
            // XInput's Y grows upwards, evdev's downwards.
            (EV_ABS, ABS_Y, -2000),
            (EV_ABS, ABS_RX, -32768),
            (EV_ABS, ABS_RY, -32767),
            (EV_ABS, ABS_Z, 200),
            // Second state: only what changed reaches the reader.
            (EV_KEY, BTN_SOUTH, 0),
            (EV_KEY, BTN_EAST, 1),
            (EV_ABS, ABS_RZ, 255),
        ],
    )?;
    let created: BTreeSet<PathBuf> = [kbd_node.clone(), abs_node.clone(), pad_node.clone()].into();
    let new: BTreeSet<PathBuf> = event_nodes().difference(&before).cloned().collect();
    if new != created {
        return Err(format!("new nodes {new:?}, expected exactly {created:?}"));
    }

    // Session end: release what is held (the readers see it and the kernel's key state is
    // empty), then the devices go.
    if keys_down("keyboard", &kbd)? != [KEY_LEFTSHIFT, BTN_LEFT] {
        return Err(format!(
            "held before release: {:?}",
            keys_down("keyboard", &kbd)?
        ));
    }
    sink.release_all()
        .map_err(|e| format!("release_all: {e}"))?;
    expect(
        "keyboard and mouse released",
        &mut kbd,
        &[(EV_KEY, KEY_LEFTSHIFT, 0), (EV_KEY, BTN_LEFT, 0)],
    )?;
    expect(
        "gamepad released",
        &mut gp,
        &[
            (EV_KEY, BTN_EAST, 0),
            (EV_KEY, BTN_TL, 0),
            (EV_ABS, ABS_HAT0Y, 0),
            (EV_ABS, ABS_X, 0),
            (EV_ABS, ABS_Y, 0),
            (EV_ABS, ABS_RX, 0),
            (EV_ABS, ABS_RY, 0),
            (EV_ABS, ABS_Z, 0),
            (EV_ABS, ABS_RZ, 0),
        ],
    )?;
    for (what, dev) in [("keyboard", &kbd), ("gamepad", &gp)] {
        let down = keys_down(what, dev)?;
        if !down.is_empty() {
            return Err(format!("{what}: still down after release_all: {down:?}"));
        }
    }
    drop(sink);
    expect_gone("keyboard and mouse at session end", &mut kbd, &kbd_node)?;
    expect_gone("absolute pointer at session end", &mut abs, &abs_node)?;
    expect_gone("gamepad at session end", &mut gp, &pad_node)?;
    let first = t0.elapsed();

    // A second session ended by drop alone (a control thread unwinding, say): its devices go
    // too. (The sink's Drop releases first; unread events die with the device, see above.)
    let mut sink = UinputSink::open().map_err(|e| format!("second UinputSink::open: {e}"))?;
    sink.begin_session()
        .map_err(|e| format!("begin_session: {e}"))?;
    let (kbd_node, mut kbd) = open_named(KBD)?;
    let (abs_node, mut abs) = open_named(ABS)?;
    send(&mut sink, &encode::key(true, 0x57, 0))?;
    send(&mut sink, &encode::controller_arrival(0, 1, 0, 0xFFFF))?;
    let (pad_node, mut gp) = open_named(PAD)?;
    send(&mut sink, &pad(buttons::X, 0, 0, (5000, 0), (0, 0)))?;
    expect("second session keyboard", &mut kbd, &[(EV_KEY, KEY_W, 1)])?;
    expect(
        "second session gamepad",
        &mut gp,
        &[(EV_KEY, BTN_NORTH, 1), (EV_ABS, ABS_X, 5000)],
    )?;
    drop(sink);
    expect_gone("keyboard dropped", &mut kbd, &kbd_node)?;
    expect_gone("absolute pointer dropped", &mut abs, &abs_node)?;
    expect_gone("gamepad dropped", &mut gp, &pad_node)?;
    let rumbles = rumble_session()?;
    end_session_then_again()?;
    let touch_pen = touch_and_pen_session()?;

    let left: BTreeSet<PathBuf> = event_nodes().difference(&before).cloned().collect();
    if !left.is_empty() {
        return Err(format!("nodes left after both sessions: {left:?}"));
    }
    Ok(format!(
        "kernel={} keyboard+mouse 13 events, abs 6, gamepad 11, releases seen, nodes removed; \
         rumble {rumbles} changes, end_session removes and input remakes; {touch_pen}; \
         first session {:.2} s, all {:.2} s",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        first.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    ))
}

fn rumble_effect(strong: u16, weak: u16, length: u16) -> FFEffectData {
    FFEffectData {
        direction: 0,
        trigger: FFTrigger::default(),
        replay: FFReplay { length, delay: 0 },
        kind: FFEffectKind::Rumble {
            strong_magnitude: strong,
            weak_magnitude: weak,
        },
    }
}

/// A third session with rumble on: a game thread uploads, plays, stops, changes and erases
/// rumble effects on the pad's evdev node (its ioctls wait for the sink to answer), while this
/// thread polls the sink; then a rumble left playing is stopped by `release_all`.
fn rumble_session() -> Result<usize, String> {
    let mut sink = UinputSink::open().map_err(|e| format!("third UinputSink::open: {e}"))?;
    sink.enable_rumble();
    send(&mut sink, &encode::controller_arrival(0, 1, 0, 0xFFFF))?;
    let (pad_node, game) = open_named(PAD)?;
    let game_thread = std::thread::spawn(move || -> Result<(Device, FFEffect), String> {
        let mut game = game;
        let pause = || std::thread::sleep(Duration::from_millis(50));
        let e = |what: &str, err: std::io::Error| format!("game: {what}: {err}");
        let mut a = game
            .upload_ff_effect(rumble_effect(0x8000, 0x4000, 1000))
            .map_err(|err| e("upload", err))?;
        a.play(1).map_err(|err| e("play", err))?;
        pause();
        a.stop().map_err(|err| e("stop", err))?;
        pause();
        let mut b = game
            .upload_ff_effect(rumble_effect(0xffff, 0x1000, 1000))
            .map_err(|err| e("upload 2", err))?;
        b.play(1).map_err(|err| e("play 2", err))?;
        pause();
        drop(b); // erased while playing: a stop
        drop(a);
        // Length 0: plays until stopped, so `release_all` below is what stops it (an effect's
        // own time running out is unit-tested in `rumble.rs`).
        let mut c = game
            .upload_ff_effect(rumble_effect(0x7000, 0x7000, 0))
            .map_err(|err| e("upload 3", err))?;
        c.play(1).map_err(|err| e("play 3", err))?;
        Ok((game, c))
    });
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    // Bounded: one poll per 5 ms for at most WAIT.
    while Instant::now() < deadline && !(game_thread.is_finished() && got.len() >= 5) {
        got.extend(
            sink.poll_rumble()
                .map_err(|e| format!("poll_rumble: {e}"))?,
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let (game, playing) = game_thread
        .join()
        .map_err(|_| "game thread panicked".to_owned())??;
    got.extend(
        sink.poll_rumble()
            .map_err(|e| format!("poll_rumble: {e}"))?,
    );
    let r = |low_freq, high_freq| Rumble {
        pad: 0,
        low_freq,
        high_freq,
    };
    let want = [
        r(0x8000, 0x4000),
        r(0, 0),
        r(0xffff, 0x1000),
        r(0, 0),
        r(0x7000, 0x7000),
    ];
    if got != want {
        return Err(format!("rumble: sink reported {got:?}, expected {want:?}"));
    }
    sink.release_all()
        .map_err(|e| format!("release_all: {e}"))?;
    let stop = sink
        .poll_rumble()
        .map_err(|e| format!("poll_rumble: {e}"))?;
    if stop != [r(0, 0)] {
        return Err(format!("rumble at session end: {stop:?}, expected a stop"));
    }
    drop(sink);
    // The device is gone: erasing the game's effect now fails, it does not hang.
    drop(playing);
    let mut game = game;
    expect_gone("rumbling gamepad dropped", &mut game, &pad_node)?;
    Ok(got.len() + stop.len())
}

/// `end_session` removes the devices though the sink lives on; the next input makes the device
/// it needs again (and only that one).
fn end_session_then_again() -> Result<(), String> {
    let mut sink = UinputSink::open().map_err(|e| format!("fourth UinputSink::open: {e}"))?;
    sink.begin_session()
        .map_err(|e| format!("begin_session: {e}"))?;
    let (kbd_node, mut kbd) = open_named(KBD)?;
    let (abs_node, mut abs) = open_named(ABS)?;
    send(&mut sink, &encode::key(true, 0x41, 0))?;
    expect("before end_session", &mut kbd, &[(EV_KEY, KEY_A, 1)])?;
    sink.end_session()
        .map_err(|e| format!("end_session: {e}"))?;
    expect_gone("keyboard after end_session", &mut kbd, &kbd_node)?;
    expect_gone("absolute pointer after end_session", &mut abs, &abs_node)?;
    // The next session: its first input makes the keyboard+mouse device again.
    send(&mut sink, &encode::mouse_move(1, 2))?;
    let (kbd_node, mut kbd) = open_named(KBD)?;
    send(&mut sink, &encode::mouse_move(3, 4))?;
    expect(
        "keyboard and mouse made again",
        &mut kbd,
        &[(EV_REL, REL_X, 3), (EV_REL, REL_Y, 4)],
    )?;
    if evdev::enumerate().any(|(_, d)| d.name() == Some(ABS)) {
        return Err("the absolute pointer came back without absolute input".into());
    }
    drop(sink);
    expect_gone("keyboard made again, dropped", &mut kbd, &kbd_node)
}

/// (properties, keys, absolute axes as (code, min, max)) the kernel reports for `dev`.
type Caps = (Vec<u16>, Vec<u16>, Vec<(u16, i32, i32)>);

fn caps(what: &str, dev: &Device) -> Result<Caps, String> {
    let props = dev.properties().iter().map(|p| p.0).collect();
    let keys = dev
        .supported_keys()
        .map(|k| k.iter().map(|k| k.0).collect())
        .unwrap_or_default();
    let abs = dev
        .get_absinfo()
        .map_err(|e| format!("{what}: EVIOCGABS: {e}"))?
        .map(|(code, info)| (code.0, info.minimum(), info.maximum()))
        .collect();
    Ok((props, keys, abs))
}

/// A session that sends only touch and pen: only the touchscreen and the pen tablet appear,
/// with the properties and codes a reader (libinput) needs; two fingers and a pen stroke come
/// out as exact evdev events; what is held is released; both devices go at `end_session`.
fn touch_and_pen_session() -> Result<String, String> {
    let before = event_nodes();
    let mut sink = UinputSink::open().map_err(|e| format!("fifth UinputSink::open: {e}"))?;
    let rot = 0xFFFF;
    let no_tilt = (0xFFFF, 0xFF);
    // A touch hover and a pen hover-leave change nothing on the devices but make them, so the
    // readers below are open before the first contact.
    send(&mut sink, &encode::touch(0, rot, 0, [0.0; 5]))?;
    send(
        &mut sink,
        &encode::pen(6, 1, 0, [0.0; 5], no_tilt.0, no_tilt.1),
    )?;
    let (touch_node, mut ts) = open_named(TOUCH)?;
    let (pen_node, mut pen) = open_named(PEN)?;
    let new: BTreeSet<PathBuf> = event_nodes().difference(&before).cloned().collect();
    let made: BTreeSet<PathBuf> = [touch_node.clone(), pen_node.clone()].into();
    if new != made {
        return Err(format!("touch/pen session made {new:?}, expected {made:?}"));
    }
    let (max, pmax) = (65535, 1023);
    let want_touch: Caps = (
        vec![INPUT_PROP_DIRECT],
        vec![BTN_TOUCH],
        vec![
            (ABS_X, 0, max),
            (ABS_Y, 0, max),
            (ABS_MT_SLOT, 0, 9),
            (ABS_MT_POSITION_X, 0, max),
            (ABS_MT_POSITION_Y, 0, max),
            (ABS_MT_TRACKING_ID, 0, 65535),
            (ABS_MT_PRESSURE, 0, pmax),
        ],
    );
    let got = caps("touchscreen", &ts)?;
    if got != want_touch {
        return Err(format!(
            "touchscreen capabilities {got:?}, expected {want_touch:?}"
        ));
    }
    let want_pen: Caps = (
        vec![INPUT_PROP_DIRECT],
        vec![
            BTN_TOOL_PEN,
            BTN_TOOL_RUBBER,
            BTN_STYLUS3,
            BTN_TOUCH,
            BTN_STYLUS,
            BTN_STYLUS2,
        ],
        vec![
            (ABS_X, 0, max),
            (ABS_Y, 0, max),
            (ABS_PRESSURE, 0, pmax),
            (ABS_TILT_X, -90, 90),
            (ABS_TILT_Y, -90, 90),
        ],
    );
    let got = caps("pen", &pen)?;
    if got != want_pen {
        return Err(format!("pen capabilities {got:?}, expected {want_pen:?}"));
    }

    // Two fingers: down, down, the second moves, the first moves with full pressure; both
    // stay down for the session end.
    for (ev, id, f) in [
        (1, 0, [0.25, 0.5, 0.5]),
        (1, 1, [0.75, 0.5, 0.0]),
        (3, 1, [0.75, 0.75, 0.0]),
        (3, 0, [0.5, 0.5, 1.0]),
    ] {
        send(
            &mut sink,
            &encode::touch(ev, rot, id, [f[0], f[1], f[2], 0.0, 0.0]),
        )?;
    }
    // Protocol B as the kernel passes it on (the slot only when it changes, unchanged values
    // left out), with the single-touch emulation following slot 0.
    expect(
        "touchscreen",
        &mut ts,
        &[
            (EV_ABS, ABS_MT_TRACKING_ID, 0),
            (EV_ABS, ABS_MT_POSITION_X, 16384),
            (EV_ABS, ABS_MT_POSITION_Y, 32768),
            (EV_ABS, ABS_MT_PRESSURE, 512),
            (EV_KEY, BTN_TOUCH, 1),
            (EV_ABS, ABS_X, 16384),
            (EV_ABS, ABS_Y, 32768),
            (EV_ABS, ABS_MT_SLOT, 1),
            (EV_ABS, ABS_MT_TRACKING_ID, 1),
            (EV_ABS, ABS_MT_POSITION_X, 49151),
            (EV_ABS, ABS_MT_POSITION_Y, 32768),
            (EV_ABS, ABS_MT_POSITION_Y, 49151),
            (EV_ABS, ABS_MT_SLOT, 0),
            (EV_ABS, ABS_MT_POSITION_X, 32768),
            (EV_ABS, ABS_MT_PRESSURE, 1023),
            (EV_ABS, ABS_X, 32768),
        ],
    )?;
    // A pen hovers in leaning right 30°, touches down at quarter pressure and presses its
    // barrel button; it stays down for the session end.
    send(
        &mut sink,
        &encode::pen(0, 1, 0, [0.5, 0.5, 0.0, 0.0, 0.0], 90, 30),
    )?;
    send(
        &mut sink,
        &encode::pen(1, 1, 0, [0.5, 0.5, 0.25, 0.0, 0.0], 90, 30),
    )?;
    send(
        &mut sink,
        &encode::pen(5, 1, 1, [0.5, 0.5, 0.25, 0.0, 0.0], 90, 30),
    )?;
    expect(
        "pen",
        &mut pen,
        &[
            (EV_KEY, BTN_TOOL_PEN, 1),
            (EV_ABS, ABS_X, 32768),
            (EV_ABS, ABS_Y, 32768),
            (EV_ABS, ABS_TILT_X, 30),
            (EV_ABS, ABS_PRESSURE, 256),
            (EV_KEY, BTN_TOUCH, 1),
            (EV_KEY, BTN_STYLUS, 1),
        ],
    )?;
    if keys_down("pen", &pen)? != [BTN_TOOL_PEN, BTN_TOUCH, BTN_STYLUS] {
        return Err(format!("pen held: {:?}", keys_down("pen", &pen)?));
    }

    // Session end: contacts lifted (the emulated pointer moves to the survivor first), the pen's
    // tip, button and tool released; nothing down in the kernel; then both devices go.
    sink.release_all()
        .map_err(|e| format!("release_all: {e}"))?;
    expect(
        "touchscreen released",
        &mut ts,
        &[
            (EV_ABS, ABS_MT_TRACKING_ID, -1),
            (EV_ABS, ABS_X, 49151),
            (EV_ABS, ABS_Y, 49151),
            (EV_ABS, ABS_MT_SLOT, 1),
            (EV_ABS, ABS_MT_TRACKING_ID, -1),
            (EV_KEY, BTN_TOUCH, 0),
        ],
    )?;
    expect(
        "pen released",
        &mut pen,
        &[
            (EV_ABS, ABS_PRESSURE, 0),
            (EV_KEY, BTN_TOUCH, 0),
            (EV_KEY, BTN_STYLUS, 0),
            (EV_KEY, BTN_TOOL_PEN, 0),
        ],
    )?;
    for (what, dev) in [("touchscreen", &ts), ("pen", &pen)] {
        let down = keys_down(what, dev)?;
        if !down.is_empty() {
            return Err(format!("{what}: still down after release_all: {down:?}"));
        }
    }
    sink.end_session()
        .map_err(|e| format!("end_session: {e}"))?;
    expect_gone("touchscreen after end_session", &mut ts, &touch_node)?;
    expect_gone("pen after end_session", &mut pen, &pen_node)?;
    Ok("touch 16 events + 6 released, pen 7 + 4, both devices gone at end_session".into())
}
