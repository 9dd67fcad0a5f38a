//! strahl-input: GameStream client input (§A13) — typed events, the wire decoder, and the
//! sinks that replay them on the host.
//!
//! - [`wire::decode`] turns the payload of control message 0x0206 into an [`InputEvent`]
//!   (hostile input → [`wire::InputError`], never a panic).
//! - [`InputSink`] is the seam; [`RecordingSink`] stores events (tests, hosts without uinput);
//!   [`uinput::UinputSink`] creates virtual devices through `/dev/uinput` with the `evdev`
//!   crate — verified on the real uinput/evdev drivers in the VM lab (`tests/uinput_lab.rs`).
//! - [`touch`] translates touch and pen packets into the evdev events of a multitouch
//!   touchscreen and a pen tablet (pure; the uinput sink writes them).
//! - [`open_default_sink`] tries uinput and falls back to recording.
#![forbid(unsafe_code)]

pub mod event;
pub mod held;
pub mod rumble;
pub mod sink;
pub mod touch;
pub mod uinput;
pub mod vk;
pub mod wire;

pub use event::{GamepadState, InputEvent, MouseButton};
pub use held::HeldInput;
pub use rumble::Rumble;
pub use sink::{InputSink, RecordingHandle, RecordingSink, SinkError, read_json_lines};

/// uinput when available, else a recording sink (returned with the reason uinput failed).
pub fn open_default_sink() -> (Box<dyn InputSink>, Option<SinkError>) {
    match uinput::UinputSink::open() {
        Ok(s) => (Box::new(s), None),
        Err(e) => (Box::new(RecordingSink::new()), Some(e)),
    }
}
