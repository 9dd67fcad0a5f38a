//! The video encode tile's frame clock and its account of skipped slots, as pure logic over
//! nanoseconds since the stream started (the tile passes `Instant` readings; tests pass
//! simulated time).
//!
//! Contract:
//! - [`FrameClock::tick`]: slot k is due at k · 10⁹ / fps ns (integer arithmetic, no drift).
//!   Before the next slot's time it says how long to wait; at or after it, it hands out the
//!   *latest* slot whose time has come and counts every older slot that was not encoded as
//!   skipped (a late encoder skips ahead, it never bursts). The capture time is that slot's.
//! - [`LateWarning`] turns skips into at most one log line per [`LATE_WARN_INTERVAL`]: how many
//!   slots were skipped out of how many, and the mean encode time against the frame interval,
//!   so "1080p60 drops to 40 fps" is said, not silent. Skips are also the
//!   `strahl_video_frames_skipped_total` counter (the tile adds [`Tick::Frame::skipped`]).

/// Most one warning line per this long while frames are being skipped (a session that stays
/// late says so every 10 s, not 20 times a second).
pub const LATE_WARN_INTERVAL_NS: u64 = 10_000_000_000;

/// What the tile does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tick {
    /// Nothing is due for this long.
    Wait(u64),
    /// Capture and encode the slot due at `capture_ns`; `skipped` older slots were passed over.
    Frame { capture_ns: u64, skipped: u64 },
}

/// Slot arithmetic at a fixed frame rate.
#[derive(Clone, Debug)]
pub struct FrameClock {
    fps: u64,
    interval_ns: u64,
    /// The next slot not yet handed out.
    next: u64,
}

impl FrameClock {
    pub fn new(fps: u32) -> Self {
        let fps = u64::from(fps.max(1));
        Self {
            fps,
            interval_ns: 1_000_000_000 / fps,
            next: 0,
        }
    }

    pub fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    fn due(&self, slot: u64) -> u64 {
        slot * 1_000_000_000 / self.fps
    }

    /// At `now_ns` since the stream started.
    pub fn tick(&mut self, now_ns: u64) -> Tick {
        let due = self.due(self.next);
        if now_ns < due {
            return Tick::Wait(due - now_ns);
        }
        // The latest slot whose time has come: its time is ≤ now, the one after is > now.
        let mut latest = now_ns * self.fps / 1_000_000_000;
        while self.due(latest + 1) <= now_ns {
            latest += 1;
        }
        while latest > self.next && self.due(latest) > now_ns {
            latest -= 1;
        }
        let latest = latest.max(self.next);
        let skipped = latest - self.next;
        self.next = latest + 1;
        Tick::Frame {
            capture_ns: self.due(latest),
            skipped,
        }
    }
}

/// Rate-limited "the encoder is late" lines.
#[derive(Clone, Debug, Default)]
pub struct LateWarning {
    /// Start of the current window (ns since the stream started).
    window_start: u64,
    skipped: u64,
    encoded: u64,
    encode_ns: u64,
}

impl LateWarning {
    /// Accounts one tick's outcome: `skipped` slots passed over, then one frame encoded in
    /// `encode_ns` (0 and `None` when the slot was skipped before encoding). Returns the line to
    /// log when a window with skips has ended.
    pub fn note(
        &mut self,
        now_ns: u64,
        skipped: u64,
        encode_ns: Option<u64>,
        interval_ns: u64,
    ) -> Option<String> {
        self.skipped += skipped;
        if let Some(ns) = encode_ns {
            self.encoded += 1;
            self.encode_ns += ns;
        }
        if now_ns.saturating_sub(self.window_start) < LATE_WARN_INTERVAL_NS {
            return None;
        }
        let line = (self.skipped > 0).then(|| {
            let slots = self.skipped + self.encoded;
            let secs = (now_ns - self.window_start) as f64 / 1e9;
            let mean_ms = if self.encoded > 0 {
                self.encode_ns as f64 / self.encoded as f64 / 1e6
            } else {
                0.0
            };
            format!(
                "encoder late: {} of {slots} frame slots skipped in {secs:.1} s ({:.1} fps \
                 delivered of {:.1}); mean encode {mean_ms:.1} ms against a {:.1} ms frame \
                 interval",
                self.skipped,
                self.encoded as f64 / secs,
                slots as f64 / secs,
                interval_ns as f64 / 1e6,
            )
        });
        *self = Self {
            window_start: now_ns,
            ..Self::default()
        };
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// A fake encoder that takes `cost_ns` per frame, driven by the clock for `seconds` of
    /// simulated time: (frames encoded, slots skipped, capture times).
    fn run(fps: u32, cost_ns: u64, seconds: u64) -> (u64, u64, Vec<u64>) {
        let mut clock = FrameClock::new(fps);
        let mut now = 0;
        let (mut frames, mut skipped, mut times) = (0, 0, Vec::new());
        let end = seconds * 1_000 * MS;
        for _ in 0..1_000_000 {
            if now >= end {
                break;
            }
            match clock.tick(now) {
                Tick::Wait(ns) => now += ns,
                Tick::Frame {
                    capture_ns,
                    skipped: s,
                } => {
                    assert!(capture_ns <= now);
                    frames += 1;
                    skipped += s;
                    times.push(capture_ns);
                    now += cost_ns;
                }
            }
        }
        (frames, skipped, times)
    }

    #[test]
    fn an_encoder_that_keeps_up_skips_nothing() {
        let (frames, skipped, times) = run(60, 10 * MS, 2);
        assert_eq!((frames, skipped), (120, 0));
        // Slot times without drift: 60 fps in integer ns.
        assert_eq!(times[59], 59 * 1_000_000_000 / 60);
    }

    #[test]
    fn a_25_ms_encoder_at_60_fps_delivers_40_fps_and_counts_the_rest() {
        // 1080p60 on the 2-core VM: ~25 ms an encode. Every slot is either encoded or skipped.
        let (frames, skipped, times) = run(60, 25 * MS, 3);
        // Every slot up to the last one encoded is either encoded or counted as skipped.
        let last_slot = (times.last().unwrap() * 60).div_ceil(1_000_000_000);
        assert_eq!(frames + skipped, last_slot + 1, "{frames} + {skipped}");
        assert_eq!(frames, 120, "one frame per 25 ms");
        assert_eq!(skipped, 59, "one slot in three");
        // Capture times are slot times, strictly increasing.
        assert!(times.windows(2).all(|w| w[0] < w[1]));
        let slot_time = |t: u64| (t * 60).div_ceil(1_000_000_000) * 1_000_000_000 / 60;
        assert!(times.iter().all(|&t| slot_time(t) == t), "{times:?}");
    }

    #[test]
    fn a_stall_skips_ahead_instead_of_bursting() {
        let mut clock = FrameClock::new(60);
        assert_eq!(
            clock.tick(0),
            Tick::Frame {
                capture_ns: 0,
                skipped: 0
            }
        );
        // 1 s stall: the next frame is the slot due at 1 s, 59 skipped, and then it waits.
        assert_eq!(
            clock.tick(1_000 * MS),
            Tick::Frame {
                capture_ns: 1_000 * MS,
                skipped: 59
            }
        );
        assert!(matches!(clock.tick(1_000 * MS), Tick::Wait(w) if w > 16 * MS));
    }

    #[test]
    fn the_warning_is_rate_limited_and_says_the_figures() {
        let mut w = LateWarning::default();
        let interval = 1_000_000_000 / 60;
        // 25 ms encodes at 60 fps for 30 s of simulated time: one line per 10 s window.
        let mut clock = FrameClock::new(60);
        let mut now = 0;
        let mut lines = Vec::new();
        for _ in 0..100_000 {
            if now > 30_000 * MS {
                break;
            }
            match clock.tick(now) {
                Tick::Wait(ns) => now += ns,
                Tick::Frame { skipped, .. } => {
                    now += 25 * MS;
                    lines.extend(w.note(now, skipped, Some(25 * MS), interval));
                }
            }
        }
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(
            lines[1].contains("40.0 fps delivered of 60.0"),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains("mean encode 25.0 ms"), "{}", lines[1]);
        // A window without skips says nothing.
        let mut quiet = LateWarning::default();
        assert_eq!(quiet.note(20_000 * MS, 0, Some(MS), interval), None);
    }
}
