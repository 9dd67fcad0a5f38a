//! The operator's pairing window: one 4-digit PIN, valid for a while, good for one guess.
//!
//! Contract (sans-IO: `now` comes in, nothing here reads a clock):
//! - [`ArmWindow::arm`] opens a window with a PIN until `now + window`; arming again replaces
//!   the previous PIN (the old one is dead at once).
//! - [`ArmWindow::take`] is the one online guess: it hands out the PIN and closes the window in
//!   the same call, before the host answers the client (so a client that stalls or drops the
//!   connection has still spent the guess). Taking from a closed, spent or expired window is
//!   refused with the reason the client prints.
//! - [`ArmWindow::peek`] shows the PIN and the time left, for the status page and the CLI.

use std::time::{Duration, Instant};

use crate::msg::Reason;

/// How long `strahl-control pair` keeps a window open by default.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    Armed {
        pin: String,
        until: Instant,
    },
    /// The one guess was taken.
    Spent,
}

/// See the module contract.
#[derive(Debug, Clone)]
pub struct ArmWindow {
    state: State,
}

impl Default for ArmWindow {
    fn default() -> Self {
        ArmWindow { state: State::Idle }
    }
}

/// Why a guess cannot be made; maps to a [`Reason`] on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArmError {
    NotArmed,
    Spent,
    Expired,
}

impl ArmError {
    pub fn reason(self) -> Reason {
        match self {
            ArmError::NotArmed | ArmError::Spent => Reason::NotArmed,
            ArmError::Expired => Reason::WindowExpired,
        }
    }

    pub fn detail(self) -> &'static str {
        match self {
            ArmError::NotArmed => "no window armed",
            ArmError::Spent => "this window's one guess was already used",
            ArmError::Expired => "the window expired",
        }
    }
}

impl ArmWindow {
    pub fn arm(&mut self, pin: String, now: Instant, window: Duration) {
        self.state = State::Armed {
            pin,
            until: now + window,
        };
    }

    /// The armed PIN and the time left; `None` when no guess can be made now.
    pub fn peek(&self, now: Instant) -> Option<(&str, Duration)> {
        match &self.state {
            State::Armed { pin, until } if *until > now => {
                Some((pin.as_str(), until.saturating_duration_since(now)))
            }
            _ => None,
        }
    }

    /// Takes the one guess (see the module contract).
    pub fn take(&mut self, now: Instant) -> Result<String, ArmError> {
        match std::mem::replace(&mut self.state, State::Spent) {
            State::Armed { pin, until } if until > now => Ok(pin),
            State::Armed { .. } => {
                self.state = State::Idle;
                Err(ArmError::Expired)
            }
            State::Spent => Err(ArmError::Spent),
            State::Idle => {
                self.state = State::Idle;
                Err(ArmError::NotArmed)
            }
        }
    }
}

/// A uniformly drawn 4-digit PIN from 4 random bytes (rejection sampling: no modulo bias).
pub fn pin_from_random(mut next_u32: impl FnMut() -> u32) -> String {
    // 4294960000 = 429496 · 10000, the largest multiple of 10000 below 2^32.
    loop {
        let x = next_u32();
        if x < 4_294_960_000 {
            return format!("{:04}", x % 10_000);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_guess_per_arm_then_spent() {
        let t0 = Instant::now();
        let mut w = ArmWindow::default();
        assert_eq!(w.take(t0), Err(ArmError::NotArmed));
        w.arm("0420".into(), t0, Duration::from_secs(60));
        assert_eq!(w.peek(t0 + Duration::from_secs(10)).unwrap().0, "0420");
        assert_eq!(w.take(t0 + Duration::from_secs(10)).unwrap(), "0420");
        assert_eq!(w.take(t0 + Duration::from_secs(11)), Err(ArmError::Spent));
        assert!(w.peek(t0 + Duration::from_secs(11)).is_none());
        // Re-arming opens a new guess with the new PIN only.
        w.arm(
            "1234".into(),
            t0 + Duration::from_secs(12),
            Duration::from_secs(60),
        );
        assert_eq!(w.take(t0 + Duration::from_secs(13)).unwrap(), "1234");
    }

    #[test]
    fn expired_window_is_refused_as_expired() {
        let t0 = Instant::now();
        let mut w = ArmWindow::default();
        w.arm("9999".into(), t0, Duration::from_secs(60));
        let late = t0 + Duration::from_secs(60);
        assert!(w.peek(late).is_none());
        assert_eq!(w.take(late), Err(ArmError::Expired));
        assert_eq!(ArmError::Expired.reason(), Reason::WindowExpired);
        assert_eq!(w.take(late), Err(ArmError::NotArmed));
    }

    #[test]
    fn pins_are_four_digits_and_skip_the_biased_tail() {
        let mut seq = [u32::MAX, 4_294_960_000, 7].into_iter();
        assert_eq!(pin_from_random(|| seq.next().unwrap()), "0007");
        assert_eq!(pin_from_random(|| 4_294_959_999), "9999");
    }
}
