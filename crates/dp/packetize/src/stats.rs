//! Plain counter structs, one per packetizer / reassembler. Monotonic `u64`s only: the metrics
//! crate samples and exports them; nothing here resets or derives rates.

/// [`crate::native::NativePacketizer`] counters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NativeTxStats {
    pub frames: u64,
    pub keyframes: u64,
    pub packets: u64,
    pub data_packets: u64,
    pub parity_packets: u64,
    /// Wire bytes written (prefix + header + shard + tag).
    pub bytes: u64,
    /// Frames whose parity count was cut to keep k + m ≤ 65535.
    pub parity_lowered: u64,
    /// Access units refused (empty or too large).
    pub refused: u64,
}

/// [`crate::native::Reassembler`] counters. Every datagram ends in exactly one of: accepted
/// (`shards_accepted`) or one anomaly counter.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReassemblerStats {
    pub datagrams: u64,
    pub shards_accepted: u64,
    pub frames_delivered: u64,
    pub keyframes_delivered: u64,
    /// Delivered frames that needed FEC (some data shard was missing).
    pub frames_recovered: u64,
    /// Data shards rebuilt by FEC.
    pub shards_recovered: u64,
    /// Incomplete frames given up because they waited longer than the frame timeout.
    pub frames_abandoned_timeout: u64,
    /// Incomplete frames given up because a newer frame completed and the reorder grace passed.
    pub frames_abandoned_superseded: u64,
    /// Frames evicted to keep the number of frames in flight bounded.
    pub frames_abandoned_window: u64,
    /// Frames evicted to make room for a newer frame within the memory budget.
    pub frames_abandoned_memory: u64,
    /// Frame ids never seen at all before a newer frame was delivered.
    pub frames_skipped: u64,
    // ---- anomalies (the datagram is dropped) ----
    /// Shorter than the smallest possible datagram.
    pub short_datagram: u64,
    /// Clear prefix with a wrong version or reserved bits set.
    pub bad_prefix: u64,
    /// A different stream than this reassembler's.
    pub wrong_stream: u64,
    /// Authentication failed.
    pub forged: u64,
    /// Packet number already seen or too old.
    pub replayed: u64,
    /// Authenticated, but the sealed header breaks an invariant.
    pub bad_header: u64,
    /// Shard bytes on the wire differ from what the header implies.
    pub bad_length: u64,
    /// k/m/shard length/frame length/flags/pts differ from earlier shards of the same frame.
    pub inconsistent: u64,
    /// Same shard index twice for one frame.
    pub duplicate: u64,
    /// Shard of a frame already delivered, abandoned or skipped.
    pub late: u64,
    /// A frame bigger than `max_frame_bytes`, or no memory left within the budget.
    pub over_budget: u64,
    /// A new frame older than every frame in flight while the window is full.
    pub window_full: u64,
    /// FEC decode failed (a bug guard; cannot happen with ≥ k consistent shards).
    pub decode_failed: u64,
}

impl ReassemblerStats {
    /// Sum of every per-datagram anomaly counter.
    pub fn anomalies(&self) -> u64 {
        self.short_datagram
            + self.bad_prefix
            + self.wrong_stream
            + self.forged
            + self.replayed
            + self.bad_header
            + self.bad_length
            + self.inconsistent
            + self.duplicate
            + self.late
            + self.over_budget
            + self.window_full
            + self.decode_failed
    }
}

/// [`crate::gamestream::video::GsVideoPacketizer`] counters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GsVideoStats {
    pub frames: u64,
    pub packets: u64,
    pub data_packets: u64,
    pub parity_packets: u64,
    pub bytes: u64,
    pub blocks: u64,
    /// Frames that needed more than 4 blocks at the configured FEC % and were sent with a lower
    /// per-block parity instead.
    pub parity_lowered: u64,
    /// Access units refused: too large even at the lowest parity (or empty).
    pub refused: u64,
    /// Shards encrypted with SS_ENC_VIDEO.
    pub encrypted: u64,
}

/// [`crate::gamestream::audio::GsAudioPacketizer`] counters.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GsAudioStats {
    pub packets: u64,
    pub fec_packets: u64,
    pub bytes: u64,
    /// FEC blocks skipped because the 4 payloads differ in size (the encoder is not CBR).
    pub fec_skipped_unequal: u64,
    /// FEC packets not drained before the next data packet was pushed.
    pub fec_dropped_undrained: u64,
    /// Opus packets refused (empty or larger than the maximum).
    pub refused: u64,
}
