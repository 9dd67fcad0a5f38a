//! Deterministic test tone: one sine per channel, interleaved i16 at 48 kHz.
//!
//! Phase is derived from a sample counter (not accumulated), so output is exact and
//! reproducible over any length.

use crate::SAMPLE_RATE;

/// Per-channel frequencies: FL 440, FR 660, then distinct tones for the other channels so a
/// test can tell them apart after decoding.
pub const CHANNEL_FREQS_HZ: [f64; 8] = [440.0, 660.0, 550.0, 110.0, 770.0, 880.0, 990.0, 1100.0];
/// Peak amplitude (about −10 dBFS: loud, far from clipping).
const AMPLITUDE: f64 = 10_000.0;

#[derive(Clone, Debug)]
pub struct ToneSource {
    channels: usize,
    position: u64,
}

impl ToneSource {
    pub fn new(channels: u8) -> Self {
        Self {
            channels: usize::from(channels).clamp(1, 8),
            position: 0,
        }
    }

    /// Fills `out` (interleaved, a whole number of frames) with the next samples.
    pub fn fill(&mut self, out: &mut [i16]) {
        let frames = out.len() / self.channels;
        for (f, frame) in out.chunks_exact_mut(self.channels).enumerate() {
            let t = (self.position + f as u64) as f64 / f64::from(SAMPLE_RATE);
            for (ch, s) in frame.iter_mut().enumerate() {
                let v = (2.0 * std::f64::consts::PI * CHANNEL_FREQS_HZ[ch] * t).sin();
                *s = (v * AMPLITUDE) as i16;
            }
        }
        self.position += frames as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuous_across_calls() {
        let mut a = ToneSource::new(2);
        let mut b = ToneSource::new(2);
        let mut whole = vec![0i16; 960];
        a.fill(&mut whole);
        let mut parts = vec![0i16; 960];
        b.fill(&mut parts[..480]);
        b.fill(&mut parts[480..]);
        assert_eq!(whole, parts);
        assert!(whole.iter().any(|&s| s > 9000));
    }
}
