//! The `[testing] video_drop_fraction` knob: drops a fraction of outgoing video packets with a
//! seeded, deterministic generator (splitmix64), so FEC recovery by a real client can be tested
//! without netem. Test-only; off (fraction 0) by default.

/// Deterministic packet dropper.
#[derive(Debug, Clone)]
pub struct DropKnob {
    /// Drop when the next 53-bit uniform draw is below this (fraction · 2^53).
    threshold: u64,
    state: u64,
}

impl DropKnob {
    /// `fraction` is clamped to 0..=0.5 (the config refuses anything else).
    pub fn new(fraction: f64, seed: u64) -> Self {
        let f = if fraction.is_finite() {
            fraction.clamp(0.0, 0.5)
        } else {
            0.0
        };
        Self {
            threshold: (f * (1u64 << 53) as f64) as u64,
            state: seed,
        }
    }

    pub fn is_off(&self) -> bool {
        self.threshold == 0
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Whether to drop the next packet.
    pub fn drop_next(&mut self) -> bool {
        if self.threshold == 0 {
            return false;
        }
        (self.next() >> 11) < self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_never_drops_and_rate_matches() {
        let mut k = DropKnob::new(0.0, 1);
        assert!(k.is_off());
        assert!((0..10_000).all(|_| !k.drop_next()));
        let mut k = DropKnob::new(0.03, 7);
        let n = (0..100_000).filter(|_| k.drop_next()).count();
        assert!((2_700..3_300).contains(&n), "{n}");
        // Same seed, same packets; another seed, other packets.
        let a: Vec<bool> = {
            let mut k = DropKnob::new(0.1, 5);
            (0..256).map(|_| k.drop_next()).collect()
        };
        let b: Vec<bool> = {
            let mut k = DropKnob::new(0.1, 5);
            (0..256).map(|_| k.drop_next()).collect()
        };
        let c: Vec<bool> = {
            let mut k = DropKnob::new(0.1, 6);
            (0..256).map(|_| k.drop_next()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut k = DropKnob::new(9.0, 1);
        let n = (0..10_000).filter(|_| k.drop_next()).count();
        assert!((4_500..5_500).contains(&n), "clamped to 0.5: {n}");
    }
}
