//! The jitter buffer between a capture that delivers PCM in bursts (PipeWire's graph quantum)
//! and the audio tile's steady packet clock.
//!
//! Contract:
//! - [`JitterBuffer::push`] appends interleaved samples (the capture's reader thread);
//!   [`JitterBuffer::pop`] fills one packet's worth (the audio tile). Both are O(n) copies into a
//!   ring allocated once: neither allocates.
//! - It starts silent and primes: `pop` returns silence until [`PREBUFFER_MS`] of audio is
//!   queued, so the first bursts do not run dry at once. A `pop` that finds less than a packet
//!   after priming plays what there is, pads with silence, counts an underrun and primes again.
//! - Latency stays bounded: when more than [`MAX_QUEUED_MS`] is queued (the capture's clock ran
//!   ahead of the tile's, or the tile stalled), the oldest samples are dropped down to
//!   [`PREBUFFER_MS`] (counted as trimmed samples), never the newest.
//! - Sample positions are whole frames (all channels of one instant): trims and drops never
//!   split a frame, so channels never swap.

/// Audio queued before the first packet plays and after each underrun. PipeWire delivered
/// 256-frame chunks (5.3 ms) with gaps of p50 5.3, p99 7.5, max 8.2 ms on the 2-core VM while it
/// was loaded (docs/measurements.md §audio capture); 15 ms covers the worst gap plus a packet.
pub const PREBUFFER_MS: usize = 15;
/// Most audio queued before the oldest is dropped: 4 × the prebuffer keeps a clock drift or a
/// stalled tile from turning into seconds of delay, while normal jitter (≤ 8.2 ms) never trims.
pub const MAX_QUEUED_MS: usize = 60;

/// Counters of one buffer (since creation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets that ran dry after priming (padded with silence).
    pub underruns: u64,
    /// Frames dropped because more than [`MAX_QUEUED_MS`] was queued.
    pub trimmed_frames: u64,
    /// Packets returned as whole silence while priming.
    pub silent_packets: u64,
}

/// What one [`JitterBuffer::pop`] produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Popped {
    /// A whole packet of captured audio.
    Audio,
    /// Silence: still priming.
    Priming,
    /// Part audio, the rest silence: the capture ran dry (an underrun).
    Underrun,
}

/// A fixed-capacity ring of interleaved i16 samples with priming and a latency bound.
#[derive(Debug)]
pub struct JitterBuffer {
    channels: usize,
    ring: Vec<i16>,
    /// Index of the oldest sample.
    head: usize,
    /// Samples queued.
    len: usize,
    primed: bool,
    prebuffer: usize,
    max_queued: usize,
    stats: JitterStats,
}

impl JitterBuffer {
    /// A buffer for `channels` interleaved channels at `rate` Hz.
    pub fn new(channels: u8, rate: u32) -> Self {
        let channels = usize::from(channels.max(1));
        let frames_per_ms = rate as usize / 1000;
        let prebuffer = PREBUFFER_MS * frames_per_ms * channels;
        let max_queued = MAX_QUEUED_MS * frames_per_ms * channels;
        Self {
            channels,
            // Room for the bound plus one large capture burst before a trim runs.
            ring: vec![0; 2 * max_queued],
            head: 0,
            len: 0,
            primed: false,
            prebuffer,
            max_queued,
            stats: JitterStats::default(),
        }
    }

    /// Samples (not frames) queued now.
    pub fn queued(&self) -> usize {
        self.len
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Appends interleaved samples; a trailing partial frame is the caller's to keep.
    pub fn push(&mut self, samples: &[i16]) {
        let whole = samples.len() - samples.len() % self.channels;
        // A burst larger than the ring keeps only its newest part.
        let samples = &samples[whole.saturating_sub(self.ring.len())..whole];
        let free = self.ring.len() - self.len;
        if samples.len() > free {
            self.drop_oldest(samples.len() - free);
        }
        let cap = self.ring.len();
        let tail = (self.head + self.len) % cap;
        let first = samples.len().min(cap - tail);
        self.ring[tail..tail + first].copy_from_slice(&samples[..first]);
        self.ring[..samples.len() - first].copy_from_slice(&samples[first..]);
        self.len += samples.len();
        if self.len > self.max_queued {
            self.drop_oldest(self.len - self.prebuffer);
        }
    }

    /// Fills `out` (a whole number of frames) with the next packet.
    pub fn pop(&mut self, out: &mut [i16]) -> Popped {
        if !self.primed {
            if self.len < self.prebuffer.max(out.len()) {
                out.fill(0);
                self.stats.silent_packets += 1;
                return Popped::Priming;
            }
            self.primed = true;
        }
        let n = out.len().min(self.len);
        let cap = self.ring.len();
        let first = n.min(cap - self.head);
        out[..first].copy_from_slice(&self.ring[self.head..self.head + first]);
        out[first..n].copy_from_slice(&self.ring[..n - first]);
        self.head = (self.head + n) % cap;
        self.len -= n;
        if n < out.len() {
            out[n..].fill(0);
            self.primed = false;
            self.stats.underruns += 1;
            return Popped::Underrun;
        }
        Popped::Audio
    }

    fn drop_oldest(&mut self, samples: usize) {
        let samples = samples.min(self.len);
        let samples = samples + (self.channels - samples % self.channels) % self.channels;
        let samples = samples.min(self.len);
        self.head = (self.head + samples) % self.ring.len();
        self.len -= samples;
        self.stats.trimmed_frames += (samples / self.channels) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;
    /// One 5 ms stereo packet.
    const PACKET: usize = 240 * 2;

    fn ramp(from: i16, n: usize) -> Vec<i16> {
        (0..n).map(|i| from.wrapping_add(i as i16)).collect()
    }

    #[test]
    fn primes_then_plays_in_order() {
        let mut j = JitterBuffer::new(2, RATE);
        let mut out = vec![0i16; PACKET];
        // 10 ms queued: below the 15 ms prebuffer → silence.
        j.push(&ramp(1, 960));
        assert_eq!(j.pop(&mut out), Popped::Priming);
        assert!(out.iter().all(|&s| s == 0));
        j.push(&ramp(961, 960));
        // 20 ms queued: plays from the first sample, in order, across calls.
        let mut got = Vec::new();
        for _ in 0..4 {
            assert_eq!(j.pop(&mut out), Popped::Audio);
            got.extend_from_slice(&out);
        }
        assert_eq!(got, ramp(1, 1920));
        assert_eq!(j.queued(), 0);
        assert_eq!(j.stats().silent_packets, 1);
    }

    #[test]
    fn underrun_pads_counts_and_primes_again() {
        let mut j = JitterBuffer::new(2, RATE);
        let mut out = vec![7i16; PACKET];
        j.push(&ramp(1, 1440 + 100));
        for _ in 0..3 {
            assert_eq!(j.pop(&mut out), Popped::Audio);
        }
        // 100 samples left: played, the rest silence.
        assert_eq!(j.pop(&mut out), Popped::Underrun);
        assert_eq!(out[..100], ramp(1441, 100)[..]);
        assert!(out[100..].iter().all(|&s| s == 0));
        assert_eq!(j.stats().underruns, 1);
        // Primes again: one packet's worth is not enough.
        j.push(&ramp(0, PACKET));
        assert_eq!(j.pop(&mut out), Popped::Priming);
    }

    #[test]
    fn latency_is_bounded_and_the_newest_kept() {
        let mut j = JitterBuffer::new(2, RATE);
        // 200 ms pushed in 5.3 ms bursts without a pop: the queue never exceeds 60 ms.
        let burst = 256 * 2;
        let mut next: i16 = 0;
        for _ in 0..38 {
            j.push(&ramp(next, burst));
            next = next.wrapping_add(burst as i16);
            assert!(j.queued() <= MAX_QUEUED_MS * 48 * 2, "{}", j.queued());
        }
        assert!(j.stats().trimmed_frames > 0);
        // What remains ends with the newest sample pushed.
        let mut out = vec![0i16; PACKET];
        let mut last = 0;
        while j.queued() >= PACKET {
            assert_eq!(j.pop(&mut out), Popped::Audio);
            last = out[PACKET - 1];
        }
        let rest = j.queued();
        if rest > 0 {
            j.pop(&mut out);
            last = out[rest - 1];
        }
        assert_eq!(last, next.wrapping_sub(1));
    }

    #[test]
    fn frames_never_split() {
        // 6 channels: pushes with a trailing partial frame, trims: channel k always holds k.
        let mut j = JitterBuffer::new(6, RATE);
        let frame: Vec<i16> = (0..6).collect();
        let mut burst: Vec<i16> = frame.iter().copied().cycle().take(6 * 500).collect();
        burst.push(0); // partial frame: ignored
        for _ in 0..30 {
            j.push(&burst);
        }
        let mut out = vec![-1i16; 240 * 6];
        for _ in 0..10 {
            j.pop(&mut out);
            for f in out.chunks_exact(6) {
                assert!(f == &frame[..] || f.iter().all(|&s| s == 0), "{f:?}");
            }
        }
    }
}
