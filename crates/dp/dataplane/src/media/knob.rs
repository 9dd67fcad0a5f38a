//! The `[testing] video_drop_fraction` knob: drops a fraction of outgoing video packets with a
//! seeded, deterministic generator (splitmix64), so FEC recovery by a real client can be tested
//! without netem. Test-only; off (fraction 0) by default.
//!
//! Contract: the knob drops only what FEC can restore. Of each FEC block it drops at most the
//! block's parity count (a draw that would exceed it is spent and the packet sent), so a client
//! whose decoder is correct loses no frame, and a test may demand exactly that: any lost frame is
//! a defect of our parity or of the receiver, never bad luck. (Unbounded random loss let a 23-
//! packet block lose 5 of 4 parity about once in 1 500 frames — CI failed once on it.) Streams
//! that report no block ([`super::stream::StreamPacketizer::next_fec_block`] = `None`) are
//! dropped unbounded.

use super::stream::FecBlock;

/// Deterministic packet dropper.
#[derive(Debug, Clone)]
pub struct DropKnob {
    /// Drop when the next 53-bit uniform draw is below this (fraction · 2^53).
    threshold: u64,
    state: u64,
    /// The block the last packet belonged to, and how many of it were dropped.
    block: Option<u32>,
    dropped_in_block: u32,
    /// Draws that fell on a block whose parity was spent (the packet was sent).
    spared: u64,
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
            block: None,
            dropped_in_block: 0,
            spared: 0,
        }
    }

    pub fn is_off(&self) -> bool {
        self.threshold == 0
    }

    /// Draws the knob refused because their block's parity was spent.
    pub fn spared(&self) -> u64 {
        self.spared
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A new unit begins: its blocks are counted afresh.
    pub fn begin_unit(&mut self) {
        self.block = None;
        self.dropped_in_block = 0;
    }

    /// Whether to drop the next packet, which belongs to `block` (see the module contract).
    pub fn drop_next(&mut self, block: Option<FecBlock>) -> bool {
        if self.threshold == 0 {
            return false;
        }
        // Always draw: the sequence of draws does not depend on the frames' shapes.
        let draw = (self.next() >> 11) < self.threshold;
        let Some(b) = block else {
            return draw;
        };
        if self.block != Some(b.index) {
            self.block = Some(b.index);
            self.dropped_in_block = 0;
        }
        if !draw {
            return false;
        }
        if self.dropped_in_block >= b.parity {
            self.spared += 1;
            return false;
        }
        self.dropped_in_block += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_never_drops_and_rate_matches() {
        let mut k = DropKnob::new(0.0, 1);
        assert!(k.is_off());
        assert!((0..10_000).all(|_| !k.drop_next(None)));
        let mut k = DropKnob::new(0.03, 7);
        let n = (0..100_000).filter(|_| k.drop_next(None)).count();
        assert!((2_700..3_300).contains(&n), "{n}");
        // Same seed, same packets; another seed, other packets.
        let a: Vec<bool> = {
            let mut k = DropKnob::new(0.1, 5);
            (0..256).map(|_| k.drop_next(None)).collect()
        };
        let b: Vec<bool> = {
            let mut k = DropKnob::new(0.1, 5);
            (0..256).map(|_| k.drop_next(None)).collect()
        };
        let c: Vec<bool> = {
            let mut k = DropKnob::new(0.1, 6);
            (0..256).map(|_| k.drop_next(None)).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut k = DropKnob::new(9.0, 1);
        let n = (0..10_000).filter(|_| k.drop_next(None)).count();
        assert!((4_500..5_500).contains(&n), "clamped to 0.5: {n}");
    }

    #[test]
    fn never_drops_more_of_a_block_than_its_parity() {
        // Half the packets drawn, blocks of 10 data + 2 parity: at most 2 of each go.
        let mut k = DropKnob::new(0.5, 3);
        let mut total = 0;
        for unit in 0..200 {
            k.begin_unit();
            for index in 0..3u32 {
                let b = Some(FecBlock { index, parity: 2 });
                let n = (0..12).filter(|_| k.drop_next(b)).count();
                assert!(n <= 2, "unit {unit} block {index}: {n} dropped");
                total += n;
            }
        }
        // The bound binds (draws are spared) but still drops most of what it may.
        assert!(k.spared() > 0);
        assert!(total > 200 * 3 * 3 / 2, "{total}");
        // A block without parity loses nothing; the next unit's block 0 is counted afresh.
        let mut k = DropKnob::new(0.5, 3);
        let none = Some(FecBlock {
            index: 0,
            parity: 0,
        });
        assert!((0..100).all(|_| !k.drop_next(none)));
        k.begin_unit();
        let one = Some(FecBlock {
            index: 0,
            parity: 1,
        });
        assert_eq!((0..100).filter(|_| k.drop_next(one)).count(), 1);
    }
}
