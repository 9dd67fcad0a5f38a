//! The host's input sink (gamestream-host.md §A13), chosen by `[input] sink`:
//!
//! - `uinput`: virtual devices through `/dev/uinput` (strahl-input); failing to open is a
//!   start-up error.
//! - `record`: every event appended as one JSON line to `[input] record_path` (default
//!   `<state_dir>/input-events.jsonl`, truncated at start), so an end-to-end test in another
//!   process can read what the client sent; failing to create the file is a start-up error.
//! - `auto`: uinput where it opens, else `record` (logged once, with uinput's reason).
//!
//! [`CountedSink`] wraps the sink for the control server's event thread: a control connect
//! begins the sink's session (uinput: the keyboard+mouse and absolute pointer appear before the
//! first input, so the desktop's readers have them open), input events are applied, a control
//! disconnect releases what *that session's* client holds (§A13; several clients may stream
//! into the one desktop, and one leaving must not lift another's keys, touches or pen — once no
//! session holds anything the sink's own release-all runs too; once no session is left the
//! sink's `end_session` removes its devices), and sink errors are logged (rate-limited) and
//! counted — a failing sink never panics and never ends a stream.
//!
//! Devices are shared, not per session: the sessions stream one desktop (one seat) and the
//! desktop merges every keyboard, pointer and touchscreen anyway, so separate devices per client
//! would change nothing a game sees except gamepad numbering. So two clients' gamepad 0 are the
//! same pad, and two clients' pens are the one pen tool. State is kept apart where it matters:
//! each session's touch pointers get ids of their own on the shared touchscreen and its
//! cancel-all lifts only its own contacts ([`strahl_input::touch::TouchIds`]), and each
//! session's held keys, buttons, pads, touch contacts and pen are tracked here per session and
//! only those are released when it leaves; the devices exist from the first session's start to
//! the last session's end.
//!
//! Rumble: with uinput the sink's gamepads advertise force feedback ([`open`] turns it on), and
//! [`CountedSink::poll_rumble`] — called by the control server's thread every turn, since a
//! game's effect upload waits for it — returns the games' motor changes addressed to every
//! session that drove that pad (sent its input or its arrival, with the controller
//! permission); a pad nobody drives gets none.
//!
//! Permissions: each session's input is filtered by its client's permission bits
//! ([`strahl_gamestream::Permissions`], given with the session's registration through the
//! table of [`CountedSink::permissions`]): an event of a kind the client may not send
//! (keyboard, mouse, controller, touch, pen) never reaches the sink and is counted in
//! `strahl_input_dropped_total{kind}`. A session without an entry sends nothing (fail closed:
//! every session the control server accepts was registered with its permissions first).

use std::path::{Path, PathBuf};

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use strahl_config::{AutoPath, InputSinkPref};
use strahl_enet::ControlEvent;
use strahl_gamestream::Permissions;
use strahl_input::held::MAX_GAMEPADS;
use strahl_input::touch::TouchIds;
use strahl_input::{HeldInput, InputEvent, InputSink, RecordingSink, Rumble, SinkError};
use strahl_metrics::{GLOBAL, Metric, Registry};

/// File name of the recording sink inside the state directory (`record_path = "auto"`).
pub const RECORD_FILE: &str = "input-events.jsonl";
/// Sink errors logged individually; past this only every [`ERROR_LOG_EVERY`]-th is, so a
/// client hammering a broken sink cannot flood the journal.
const ERROR_LOG_FIRST: u64 = 10;
const ERROR_LOG_EVERY: u64 = 1000;

/// `[input]` resolved against the state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputOptions {
    pub sink: InputSinkPref,
    pub record_path: PathBuf,
}

impl InputOptions {
    pub fn from_config(c: &strahl_config::Input, state_dir: &Path) -> Self {
        InputOptions {
            sink: c.sink,
            record_path: match &c.record_path {
                AutoPath::Auto => state_dir.join(RECORD_FILE),
                AutoPath::Path(p) => p.clone(),
            },
        }
    }
}

/// Opens the configured sink; the string says which one for the start-up log.
pub fn open(opts: &InputOptions) -> Result<(Box<dyn InputSink>, String), String> {
    let record = |why: &str| -> Result<(Box<dyn InputSink>, String), String> {
        // The default path is in the state directory, which may not exist yet at first start;
        // created private like the state directory itself (it holds the host's identity).
        if let Some(dir) = opts.record_path.parent()
            && !dir.as_os_str().is_empty()
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("input sink: cannot create {}: {e}", dir.display()))?;
        }
        let s = RecordingSink::with_json_lines(&opts.record_path).map_err(|e| {
            format!(
                "input sink: cannot create the recording file {}: {e}",
                opts.record_path.display()
            )
        })?;
        Ok((
            Box::new(s),
            format!("recording to {}{why}", opts.record_path.display()),
        ))
    };
    // Rumble on: the control server's thread polls the sink every turn (CountedSink).
    let uinput = || {
        strahl_input::uinput::UinputSink::open().map(|mut s| {
            s.enable_rumble();
            (
                Box::new(s) as Box<dyn InputSink>,
                "uinput (gamepads with rumble)".to_owned(),
            )
        })
    };
    match opts.sink {
        InputSinkPref::Record => record(""),
        InputSinkPref::Uinput => uinput().map_err(|e| format!("input sink \"uinput\": {e}")),
        InputSinkPref::Auto => match uinput() {
            Ok(s) => Ok(s),
            Err(e) => record(&format!(" (uinput unavailable: {e})")),
        },
    }
}

/// The sink as the control server's event thread uses it.
pub struct CountedSink {
    inner: Box<dyn InputSink>,
    metrics: &'static Registry,
    errors: u64,
    /// What each session's client holds (session id → held keys, buttons, pads). Bounded: an
    /// entry per connected session, each bounded by `HeldInput`.
    held: BTreeMap<u64, HeldInput>,
    /// Session id → its client's permissions (written by the control link at registration).
    perms: PermissionTable,
    /// Session id → the pads it drove (bit n = controller n), the addressees of their rumble.
    /// Bounded like `held`.
    pads: BTreeMap<u64, u16>,
    /// Each session's touch pointers → their ids on the shared touchscreen (bounded per session,
    /// forgotten at its disconnect).
    touch_ids: TouchIds,
}

/// Session id → permissions, shared between the control link (which registers sessions) and
/// the sink on the ENet thread. Bounded: an entry per registered session, removed when it ends.
pub type PermissionTable = Arc<Mutex<HashMap<u64, Permissions>>>;

/// The permission an input event needs and its label in `strahl_input_dropped_total`.
pub fn input_permission(ev: &InputEvent) -> (u32, &'static str) {
    match ev {
        InputEvent::Key { .. } | InputEvent::Text { .. } => (Permissions::KEYBOARD, "keyboard"),
        InputEvent::MouseMove { .. }
        | InputEvent::MousePosition { .. }
        | InputEvent::MouseButton { .. }
        | InputEvent::Scroll { .. }
        | InputEvent::HScroll { .. } => (Permissions::MOUSE, "mouse"),
        InputEvent::Touch { .. } => (Permissions::TOUCH, "touch"),
        InputEvent::Pen { .. } => (Permissions::PEN, "pen"),
        InputEvent::Gamepad(_)
        | InputEvent::ControllerArrival { .. }
        | InputEvent::ControllerTouch { .. }
        | InputEvent::ControllerMotion { .. }
        | InputEvent::ControllerBattery { .. } => (Permissions::CONTROLLER, "controller"),
    }
}

impl CountedSink {
    pub fn new(inner: Box<dyn InputSink>) -> Self {
        Self::with_registry(inner, &GLOBAL)
    }

    pub fn with_registry(inner: Box<dyn InputSink>, metrics: &'static Registry) -> Self {
        CountedSink {
            inner,
            metrics,
            errors: 0,
            held: BTreeMap::new(),
            perms: PermissionTable::default(),
            pads: BTreeMap::new(),
            touch_ids: TouchIds::default(),
        }
    }

    /// The session → permissions table this sink filters by.
    pub fn permissions(&self) -> PermissionTable {
        self.perms.clone()
    }

    fn allowed(&self, session: u64, bits: u32) -> bool {
        self.perms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&session)
            .is_some_and(|p| p.allows(bits))
    }

    /// Session `session`'s connect → the sink's session begins (its devices are made); its
    /// input → applied; its disconnect → what it holds is released; anything else is not the
    /// sink's business. Returns whether `ev` was input or a disconnect.
    pub fn deliver(&mut self, session: u64, ev: &ControlEvent) -> bool {
        match ev {
            ControlEvent::Connected { .. } => {
                // Idempotent: devices already made stay as they are.
                if let Err(e) = self.inner.begin_session() {
                    self.error(&e);
                }
                false
            }
            ControlEvent::Input(i) => {
                let (bits, kind) = input_permission(i);
                if !self.allowed(session, bits) {
                    if let Some(at) = Registry::label_index(Metric::InputDropped, kind) {
                        self.metrics.add_at(Metric::InputDropped, at, 1);
                    }
                    return true;
                }
                self.metrics.inc(Metric::InputEvents);
                let pad = match i {
                    InputEvent::Gamepad(g) => Some(g.number),
                    InputEvent::ControllerArrival { number, .. } => Some(u16::from(*number)),
                    _ => None,
                };
                if let Some(n) = pad.filter(|n| *n < MAX_GAMEPADS) {
                    *self.pads.entry(session).or_default() |= 1 << n;
                }
                let scoped;
                let evs = if matches!(i, InputEvent::Touch { .. }) {
                    scoped = self.touch_ids.scope(session, i);
                    scoped.as_slice()
                } else {
                    std::slice::from_ref(i)
                };
                for e in evs {
                    match self.inner.apply(e) {
                        Ok(()) => self.held.entry(session).or_default().observe(e),
                        Err(err) => self.error(&err),
                    }
                }
                true
            }
            ControlEvent::Disconnected { .. } => {
                self.perms
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&session);
                self.pads.remove(&session);
                // Its held touches are released under their scoped ids; then those are free.
                self.touch_ids.forget(session);
                let releases = self
                    .held
                    .remove(&session)
                    .map(|mut h| h.releases())
                    .unwrap_or_default();
                for r in &releases {
                    if let Err(e) = self.inner.apply(r) {
                        self.error(&e);
                    }
                }
                // No session left: the sink returns everything to rest and removes its
                // devices (uinput: made again by the next session's input). Sessions left but
                // nobody holding anything: return to rest only (covers what the sink holds
                // that our per-session view missed).
                let last = self
                    .perms
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_empty();
                let ended = if last {
                    self.inner.end_session()
                } else if self.held.values().all(HeldInput::is_empty) {
                    self.inner.release_all()
                } else {
                    Ok(())
                };
                if let Err(e) = ended {
                    self.error(&e);
                }
                true
            }
            _ => false,
        }
    }

    /// The games' motor changes since the last call, each addressed to every session that
    /// drove its pad (for their 0x010b messages). A sink error is counted and logged like an
    /// input error, and yields nothing this time.
    pub fn poll_rumble(&mut self) -> Vec<(u64, Rumble)> {
        let rumbles = match self.inner.poll_rumble() {
            Ok(r) => r,
            Err(e) => {
                self.error(&e);
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for r in rumbles {
            if r.pad >= MAX_GAMEPADS {
                continue;
            }
            for (&session, &mask) in &self.pads {
                if mask & (1 << r.pad) != 0 {
                    out.push((session, r));
                }
            }
        }
        out
    }

    fn error(&mut self, e: &SinkError) {
        self.errors += 1;
        self.metrics.inc(Metric::InputSinkErrors);
        if self.errors <= ERROR_LOG_FIRST || self.errors.is_multiple_of(ERROR_LOG_EVERY) {
            log::warn!("input sink error #{}: {e}", self.errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strahl_enet::DisconnectReason;
    use strahl_input::{MouseButton, read_json_lines};

    // This module's own registry, so other tests' input never counts here; static because
    // `CountedSink` keeps a `&'static Registry` (it lives on the ENet service thread).
    static METRICS: Registry = Registry::new();

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("strahl-input-sink-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn grant(s: &CountedSink, session: u64, p: Permissions) {
        s.permissions().lock().unwrap().insert(session, p);
    }

    fn grant_all(s: &CountedSink, sessions: &[u64]) {
        for &id in sessions {
            grant(s, id, Permissions::ALL);
        }
    }

    #[test]
    fn a_view_only_clients_input_is_dropped_and_counted_never_reaching_the_sink() {
        // This test's own registry; static because `CountedSink` keeps a `&'static Registry`.
        static M: Registry = Registry::new();
        let rec = RecordingSink::new();
        let h = rec.handle();
        let mut s = CountedSink::with_registry(Box::new(rec), &M);
        // Session 1: a view-only client (view + list, what a later-paired client gets).
        // Session 2: keyboard only. Session 9: never registered.
        grant(&s, 1, Permissions::DEFAULT_LATER);
        grant(
            &s,
            2,
            Permissions(Permissions::VIEW | Permissions::KEYBOARD),
        );
        let key = InputEvent::Key {
            down: true,
            key_code: 0x41,
            modifiers: 0,
            flags: 0,
        };
        let text = InputEvent::Text { text: "x".into() };
        let mv = InputEvent::MouseMove { dx: 3, dy: 4 };
        for session in [1, 9] {
            for ev in [&key, &text, &mv] {
                assert!(s.deliver(session, &ControlEvent::Input(ev.clone())));
            }
        }
        assert!(
            h.events().is_empty(),
            "dropped input reached the sink: {:?}",
            h.events()
        );
        let dropped = |kind| {
            M.get_at(
                Metric::InputDropped,
                Registry::label_index(Metric::InputDropped, kind).unwrap(),
            )
        };
        assert_eq!((dropped("keyboard"), dropped("mouse")), (4, 2));
        assert_eq!(M.get(Metric::InputEvents), 0);
        // The keyboard client's key reaches the sink; its mouse move does not.
        s.deliver(2, &ControlEvent::Input(key.clone()));
        s.deliver(2, &ControlEvent::Input(mv.clone()));
        assert_eq!(h.events(), std::slice::from_ref(&key));
        assert_eq!((dropped("keyboard"), dropped("mouse")), (4, 3));
        assert_eq!(M.get(Metric::InputEvents), 1);
        // Its disconnect releases the key and forgets its permissions.
        s.deliver(
            2,
            &ControlEvent::Disconnected {
                reason: DisconnectReason::PeerDisconnected,
            },
        );
        assert!(s.permissions().lock().unwrap().get(&2).is_none());
    }

    #[test]
    fn every_input_kind_needs_its_permission() {
        let pad = InputEvent::Gamepad(strahl_input::GamepadState::default());
        assert_eq!(
            input_permission(&pad),
            (Permissions::CONTROLLER, "controller")
        );
        let scroll = InputEvent::Scroll { amount: 120 };
        assert_eq!(input_permission(&scroll), (Permissions::MOUSE, "mouse"));
    }

    #[test]
    fn auto_record_path_is_in_the_state_dir() {
        let c = strahl_config::Input::default();
        let o = InputOptions::from_config(&c, Path::new("/var/lib/strahl"));
        assert_eq!(
            o.record_path,
            Path::new("/var/lib/strahl/input-events.jsonl")
        );
        assert_eq!(o.sink, InputSinkPref::Auto);
        let c = strahl_config::Input {
            sink: InputSinkPref::Record,
            record_path: AutoPath::Path("/tmp/x.jsonl".into()),
        };
        assert_eq!(
            InputOptions::from_config(&c, Path::new("/s")).record_path,
            Path::new("/tmp/x.jsonl")
        );
    }

    #[test]
    fn record_sink_writes_events_and_releases_as_json_lines() {
        let d = scratch("record");
        let opts = InputOptions {
            sink: InputSinkPref::Record,
            record_path: d.join(RECORD_FILE),
        };
        let (sink, what) = open(&opts).unwrap();
        assert!(what.starts_with("recording to "), "{what}");
        let mut s = CountedSink::with_registry(sink, &METRICS);
        grant_all(&s, &[1]);
        let before = METRICS.get(Metric::InputEvents);
        let down = InputEvent::MouseButton {
            down: true,
            button: MouseButton::Left,
        };
        let keys = InputEvent::Text { text: "hé".into() };
        assert!(s.deliver(1, &ControlEvent::Input(down.clone())));
        assert!(s.deliver(1, &ControlEvent::Input(keys.clone())));
        assert!(!s.deliver(1, &ControlEvent::IdrRequested));
        assert!(s.deliver(
            1,
            &ControlEvent::Disconnected {
                reason: DisconnectReason::Timeout
            }
        ));
        let got = read_json_lines(&opts.record_path).unwrap();
        let up = InputEvent::MouseButton {
            down: false,
            button: MouseButton::Left,
        };
        assert_eq!(got, [down, keys, up]);
        assert!(METRICS.get(Metric::InputEvents) >= before + 2);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_disconnect_releases_only_what_that_session_holds() {
        // This test's own registry; static because `CountedSink` keeps a `&'static Registry`.
        static M: Registry = Registry::new();
        let rec = RecordingSink::new();
        let h = rec.handle();
        let mut s = CountedSink::with_registry(Box::new(rec), &M);
        grant_all(&s, &[1, 2, 3]);
        let key = |down, vk| InputEvent::Key {
            down,
            key_code: vk,
            modifiers: 0,
            flags: 0,
        };
        // Session 1 holds W, session 2 holds the left button and A.
        s.deliver(1, &ControlEvent::Input(key(true, 0x57)));
        let left = |down| InputEvent::MouseButton {
            down,
            button: MouseButton::Left,
        };
        s.deliver(2, &ControlEvent::Input(left(true)));
        s.deliver(2, &ControlEvent::Input(key(true, 0x41)));
        let before = h.events().len();
        s.deliver(
            1,
            &ControlEvent::Disconnected {
                reason: DisconnectReason::Timeout,
            },
        );
        assert_eq!(
            h.events()[before..],
            [key(false, 0x57)],
            "only session 1's key is released"
        );
        // Session 2 goes on; its own disconnect releases its button and key.
        s.deliver(2, &ControlEvent::Input(key(false, 0x41)));
        let before = h.events().len();
        s.deliver(
            2,
            &ControlEvent::Disconnected {
                reason: DisconnectReason::PeerDisconnected,
            },
        );
        assert_eq!(h.events()[before..], [left(false)]);
        // A session that never sent input disconnects without touching anything.
        let before = h.events().len();
        s.deliver(
            3,
            &ControlEvent::Disconnected {
                reason: DisconnectReason::PeerDisconnected,
            },
        );
        assert_eq!(h.events().len(), before);
    }

    #[test]
    fn touch_and_pen_need_their_own_permissions() {
        static M: Registry = Registry::new();
        let rec = RecordingSink::new();
        let h = rec.handle();
        let mut s = CountedSink::with_registry(Box::new(rec), &M);
        // Session 1 may touch but not use a pen; session 2 the other way round.
        let base = Permissions::VIEW | Permissions::KEYBOARD | Permissions::MOUSE;
        grant(&s, 1, Permissions(base | Permissions::TOUCH));
        grant(&s, 2, Permissions(base | Permissions::PEN));
        let touch = strahl_input::wire::decode(&strahl_input::wire::encode::touch(
            1,
            0xFFFF,
            3,
            [0.5, 0.5, 0.0, 0.0, 0.0],
        ))
        .unwrap();
        let pen = strahl_input::wire::decode(&strahl_input::wire::encode::pen(
            1,
            1,
            0,
            [0.5, 0.5, 0.5, 0.0, 0.0],
            0xFFFF,
            0xFF,
        ))
        .unwrap();
        assert_eq!(input_permission(&touch), (Permissions::TOUCH, "touch"));
        assert_eq!(input_permission(&pen), (Permissions::PEN, "pen"));
        for session in [1, 2] {
            for ev in [&touch, &pen] {
                s.deliver(session, &ControlEvent::Input(ev.clone()));
            }
        }
        assert_eq!(h.events(), [touch.clone(), pen.clone()]);
        let dropped = |kind| {
            M.get_at(
                Metric::InputDropped,
                Registry::label_index(Metric::InputDropped, kind).unwrap(),
            )
        };
        assert_eq!((dropped("touch"), dropped("pen")), (1, 1));
        // Session 3 puts its finger 3 down too: on the shared touchscreen it gets an id of
        // its own, and its cancel-all lifts only that one.
        grant(&s, 3, Permissions::ALL);
        s.deliver(3, &ControlEvent::Input(touch.clone()));
        let cancel_all =
            strahl_input::wire::decode(&strahl_input::wire::encode::touch(7, 0xFFFF, 0, [0.0; 5]))
                .unwrap();
        s.deliver(3, &ControlEvent::Input(cancel_all));
        let ids: Vec<(u8, u32)> = h.events()[2..]
            .iter()
            .map(|e| match e {
                InputEvent::Touch {
                    event_type,
                    pointer_id,
                    ..
                } => (*event_type, *pointer_id),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, [(1, 4), (4, 4)]);
        s.deliver(
            3,
            &ControlEvent::Disconnected {
                reason: DisconnectReason::PeerDisconnected,
            },
        );
        let n = h.events().len();
        // Session 1 leaving lifts its finger only; session 2's pen stays in range until it
        // leaves too.
        let gone = ControlEvent::Disconnected {
            reason: DisconnectReason::PeerDisconnected,
        };
        s.deliver(1, &gone);
        let released = &h.events()[n..];
        assert!(
            matches!(
                released,
                [InputEvent::Touch {
                    event_type: 2,
                    pointer_id: 3,
                    ..
                }]
            ),
            "{released:?}"
        );
        s.deliver(2, &gone);
        assert!(
            matches!(
                &h.events()[n + 1..],
                [InputEvent::Pen { event_type: 6, .. }]
            ),
            "{:?}",
            h.events()
        );
    }

    /// Counts which session-end call the sink got.
    struct Ends(Arc<Mutex<(u32, u32)>>);
    impl InputSink for Ends {
        fn apply(&mut self, _: &InputEvent) -> Result<(), SinkError> {
            Ok(())
        }
        fn release_all(&mut self) -> Result<(), SinkError> {
            self.0.lock().unwrap().0 += 1;
            Ok(())
        }
        fn end_session(&mut self) -> Result<(), SinkError> {
            self.0.lock().unwrap().1 += 1;
            Ok(())
        }
    }

    /// Counts session begins.
    struct Begins(Arc<Mutex<u32>>);
    impl InputSink for Begins {
        fn apply(&mut self, _: &InputEvent) -> Result<(), SinkError> {
            Ok(())
        }
        fn release_all(&mut self) -> Result<(), SinkError> {
            Ok(())
        }
        fn begin_session(&mut self) -> Result<(), SinkError> {
            *self.0.lock().unwrap() += 1;
            Ok(())
        }
    }

    #[test]
    fn a_control_connect_begins_the_sinks_session() {
        static M: Registry = Registry::new();
        let begins = Arc::new(Mutex::new(0));
        let mut s = CountedSink::with_registry(Box::new(Begins(begins.clone())), &M);
        grant_all(&s, &[1]);
        let peer = "192.0.2.1:5000".parse().unwrap();
        assert!(!s.deliver(1, &ControlEvent::Connected { peer }));
        assert_eq!(*begins.lock().unwrap(), 1);
    }

    #[test]
    fn the_last_session_leaving_ends_the_sinks_session_earlier_ones_only_release() {
        static M: Registry = Registry::new();
        let calls = Arc::new(Mutex::new((0, 0)));
        let mut s = CountedSink::with_registry(Box::new(Ends(calls.clone())), &M);
        grant_all(&s, &[1, 2]);
        let gone = ControlEvent::Disconnected {
            reason: DisconnectReason::PeerDisconnected,
        };
        s.deliver(1, &gone);
        assert_eq!(*calls.lock().unwrap(), (1, 0), "session 2 still streams");
        s.deliver(2, &gone);
        assert_eq!(
            *calls.lock().unwrap(),
            (1, 1),
            "no session left: devices go"
        );
    }

    /// A sink whose games rumble what the test queues; counts polls.
    struct Games(Arc<Mutex<Vec<Rumble>>>);
    impl InputSink for Games {
        fn apply(&mut self, _: &InputEvent) -> Result<(), SinkError> {
            Ok(())
        }
        fn release_all(&mut self) -> Result<(), SinkError> {
            Ok(())
        }
        fn poll_rumble(&mut self) -> Result<Vec<Rumble>, SinkError> {
            Ok(std::mem::take(&mut *self.0.lock().unwrap()))
        }
    }

    #[test]
    fn rumble_goes_to_the_sessions_that_drove_the_pad() {
        static M: Registry = Registry::new();
        let games = Arc::new(Mutex::new(Vec::new()));
        let mut s = CountedSink::with_registry(Box::new(Games(games.clone())), &M);
        // 1 drives pad 0, 2 announces pad 1 and drives pad 0 too, 3 may not use controllers.
        grant_all(&s, &[1, 2]);
        grant(&s, 3, Permissions::DEFAULT_LATER);
        let pad = |number| {
            InputEvent::Gamepad(strahl_input::GamepadState {
                number,
                ..Default::default()
            })
        };
        s.deliver(1, &ControlEvent::Input(pad(0)));
        s.deliver(2, &ControlEvent::Input(pad(0)));
        s.deliver(
            2,
            &ControlEvent::Input(InputEvent::ControllerArrival {
                number: 1,
                controller_type: 1,
                capabilities: 0,
                supported_buttons: 0,
            }),
        );
        s.deliver(3, &ControlEvent::Input(pad(2)));
        let r = |pad, low_freq, high_freq| Rumble {
            pad,
            low_freq,
            high_freq,
        };
        *games.lock().unwrap() = vec![r(0, 9, 8), r(1, 7, 6), r(2, 5, 4), r(40, 1, 1)];
        assert_eq!(
            s.poll_rumble(),
            [(1, r(0, 9, 8)), (2, r(0, 9, 8)), (2, r(1, 7, 6))],
            "pad 2 was only touched by a client without the controller permission"
        );
        assert!(s.poll_rumble().is_empty());
        // Session 2 leaves: its pads' rumble goes to nobody but session 1.
        s.deliver(
            2,
            &ControlEvent::Disconnected {
                reason: DisconnectReason::PeerDisconnected,
            },
        );
        *games.lock().unwrap() = vec![r(0, 0, 0), r(1, 0, 0)];
        assert_eq!(s.poll_rumble(), [(1, r(0, 0, 0))]);
    }

    #[test]
    fn unwritable_record_path_is_a_clear_start_error() {
        let opts = InputOptions {
            sink: InputSinkPref::Record,
            record_path: PathBuf::from("/proc/strahl-no-such-dir/x.jsonl"),
        };
        let e = open(&opts).err().unwrap();
        assert!(e.contains("/proc/strahl-no-such-dir"), "{e}");
    }

    struct Failing;
    impl InputSink for Failing {
        fn apply(&mut self, _: &InputEvent) -> Result<(), SinkError> {
            Err(SinkError::NotAvailable("test".into()))
        }
        fn release_all(&mut self) -> Result<(), SinkError> {
            Err(SinkError::NotAvailable("test".into()))
        }
    }

    #[test]
    fn sink_errors_are_counted_not_fatal() {
        // This test's own registry; static because `CountedSink` keeps a `&'static Registry`.
        static M: Registry = Registry::new();
        let mut s = CountedSink::with_registry(Box::new(Failing), &M);
        grant_all(&s, &[1]);
        for _ in 0..3 {
            assert!(s.deliver(
                1,
                &ControlEvent::Input(InputEvent::MouseMove { dx: 1, dy: -1 })
            ));
        }
        s.deliver(
            1,
            &ControlEvent::Disconnected {
                reason: DisconnectReason::PeerDisconnected,
            },
        );
        assert_eq!(M.get(Metric::InputSinkErrors), 4);
        assert_eq!(M.get(Metric::InputEvents), 3);
    }
}
