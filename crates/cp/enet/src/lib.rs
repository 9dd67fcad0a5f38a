//! strahl-enet: the GameStream control stream (§A11, §A12) on ENet (UDP 47999).
//!
//! - [`session::ControlSession`] — sans-IO per-session core: encrypted V2 framing both ways
//!   (via `strahl_seal::gamestream::ControlCipher`), typed [`ControlEvent`]s, timeout.
//! - [`message`] — client message decoding (IDR, Start B, RFI, ping, FEC status, LTR ack,
//!   input) and host message encoders (termination, rumble, HDR, LED, triggers, motion).
//! - [`server::ControlServer`] — the thin I/O shell: a `rusty_enet` host (255 channels, many
//!   peers) on its own thread, binding peers to sessions by the CONNECT `data` u32.
//! - `fuzzing` (feature `fuzzing`, off in shipped builds) — entry points for cargo-fuzz and the
//!   corpus replay test.
//! - [`input_bridge::route_to_sink`] — input events into a `strahl_input::InputSink`, with
//!   release of held input on any disconnect; [`input_bridge::rumble_message`] — the sink's
//!   rumble as the 0x010b message a [`ControlEventSink`] hands back through `outgoing`.
//!
//! Input payloads (0x0206) are decoded by `strahl_input::wire` and surface as
//! [`ControlEvent::Input`].
#![forbid(unsafe_code)]

#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod input_bridge;
pub mod message;
pub mod server;
pub mod session;

pub use message::FecStatus;
pub use server::{
    ControlConfig, ControlEventSink, ControlServer, DEFAULT_CONTROL_PORT, Outgoing,
    RTT_REPORT_INTERVAL, SessionId,
};
pub use session::{CONTROL_TIMEOUT, ControlEvent, ControlSession, DisconnectReason};
pub use strahl_input::InputEvent;
