//! Glue for the session manager: route a session's [`ControlEvent`]s into its input sink —
//! input events are applied, and any disconnect releases everything the client held (§A13,
//! "On session stop: release all held input"), whatever the reason the session ended.

use strahl_input::{InputSink, SinkError};

use crate::session::ControlEvent;

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
