//! Glue for the session manager: route a session's [`ControlEvent`]s into its input sink —
//! input events are applied, and any disconnect releases everything the client held (§A13,
//! "On session stop: release all held input"), whatever the reason the session ended — and
//! the sink's rumble back to the client as its 0x010b message ([`rumble_message`]).

use strahl_input::{InputSink, Rumble, SinkError};

use crate::message::{MSG_RUMBLE, host};
use crate::server::{Outgoing, SessionId};
use crate::session::ControlEvent;

/// A pad's motor change as the rumble message (§A12) to `session`: the id is the controller
/// number the client sent the pad's input with, low/high the heavy/light motor.
pub fn rumble_message(session: SessionId, r: &Rumble) -> Outgoing {
    Outgoing {
        session,
        msg_type: MSG_RUMBLE,
        payload: host::rumble(r.pad, r.low_freq, r.high_freq).to_vec(),
    }
}

/// Apply `ev` to `sink` if it concerns input; other events are ignored.
pub fn route_to_sink(ev: &ControlEvent, sink: &mut dyn InputSink) -> Result<(), SinkError> {
    match ev {
        ControlEvent::Input(i) => sink.apply(i),
        ControlEvent::Disconnected { .. } => sink.release_all(),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::DisconnectReason;
    use strahl_input::{InputEvent, MouseButton, RecordingSink};

    #[test]
    fn rumble_becomes_the_0x010b_message_for_that_session() {
        let m = rumble_message(
            SessionId(4),
            &Rumble {
                pad: 3,
                low_freq: 0xABCD,
                high_freq: 0x0102,
            },
        );
        assert_eq!((m.session, m.msg_type), (SessionId(4), 0x010b));
        // u32 filler, id 3, low, high: all little-endian.
        assert_eq!(
            m.payload,
            [0xEE, 0xFF, 0xC0, 0, 3, 0, 0xCD, 0xAB, 0x02, 0x01]
        );
    }

    #[test]
    fn disconnect_releases_held_input() {
        let mut sink = RecordingSink::new();
        let h = sink.handle();
        let down = InputEvent::MouseButton {
            down: true,
            button: MouseButton::Left,
        };
        route_to_sink(&ControlEvent::Input(down.clone()), &mut sink).unwrap();
        route_to_sink(&ControlEvent::IdrRequested, &mut sink).unwrap();
        route_to_sink(
            &ControlEvent::Disconnected {
                reason: DisconnectReason::Timeout,
            },
            &mut sink,
        )
        .unwrap();
        assert_eq!(
            h.events(),
            [
                down,
                InputEvent::MouseButton {
                    down: false,
                    button: MouseButton::Left
                }
            ]
        );
    }
}
