//! How the media plane paces its streams: the tunables of GameStream video's spread pacing and
//! audio's cap, each citing the measurement behind it, and [`video_pacer`], the configuration
//! every GameStream video stream's `strahl_pacer::Pacer` is built from (native video's is
//! [`super::native_stream::native_pacer`]).

use strahl_pacer::{Mode, PacerConfig};

/// Part of the frame interval each frame is spread over. Half leaves room for encode jitter
/// on the shared 2-core machine while keeping the instantaneous rate at 2 × the stream rate
/// (Moonshine PR #192: ~100 µs gaps already removed the unpaced 1 % loss at 60 Mbit/s).
pub const SPREAD_PERMILLE: u32 = 500;
/// Per-stream pacing cap: 2 Gbit/s, above every GameStream rate (the 1 Gbit/s goal at 50 %
/// spread needs 2 Gbit/s); Sunshine's fixed 800 Mbit/s cap is the bottleneck this avoids (§A18).
pub const PACER_LINK_BPS: u64 = 2_000_000_000;
/// Token-bucket depth of a video stream, as time at its spread rate. The bucket refills between
/// frames; the pacer cuts it at each frame's start (to half a release granule: see
/// `strahl_pacer`), so the depth only matters outside spread frames: the pacer's generic 100 µs
/// let the first ~18 packets of a 1 Gbit/s frame leave back to back (seen at the receiver as
/// every later packet ~100 µs "early").
pub const VIDEO_BURST_NS: u64 = 10_000;
/// Bucket depth of a video stream while a frame is being sent: a tile that woke late (preempted,
/// a slow kick) gets up to 250 µs of missed credit back in larger batches instead of losing it,
/// which with the 10 µs bucket alone stretched 1 Gbit/s frames to 1.24× their window on the
/// 2-core VM. Each new frame still starts with the 10 µs burst (`strahl_pacer` cuts the credit
/// at `frame_queued`). docs/measurements.md §media path.
pub const VIDEO_CATCH_UP_NS: u64 = 250_000;
/// Shortest gap between two releases of a video stream, as link time: packets closer than this
/// leave together in one kick. A copy-mode AF_XDP kick on the 2-core VM costs ~10 µs (15 µs
/// without receive steering: veth runs the peer's receive path inside it). Each batch is centred
/// on its packets' places on the frame's even line (`strahl_pacer`), so a packet is off by at most
/// half of this (in whole packets) plus the kick's jitter: at 1 Gbit/s spread over half the frame
/// interval (≈ 2.5 Gbit/s, a 1.4 kB packet every 4.6 µs) 20 µs is 5 packets a kick, ±9 µs. With
/// the tile at SCHED_FIFO on its own core: AF_XDP gap error p99 13–14 µs at 500/1000 Mbit/s
/// (30 µs, centred: 14–22 µs; 30 µs uncentred: 36–38 µs) for AF_XDP work CPU per Gbit 0.24–0.28
/// (0.22 at 30 µs); 15 µs uncentred, with the tile at normal priority, spent ~¾ of its core in
/// kicks (docs/measurements.md §media path, "Centred release batches"; bench/results/netns/).
pub const VIDEO_RELEASE_NS: u64 = 20_000;
/// Link cap when the interface does not report its speed (virtio-net, loopback): 10 Gbit/s,
/// above any stream the tile is asked to pace, so only the per-stream pacers shape traffic.
pub const DEFAULT_LINK_BPS: u64 = 10_000_000_000;
/// Audio streams are tiny (≤ 0.5 Mbit/s): 10 Mbit/s lets each packet (and a block's two FEC
/// packets) leave the moment it is ready while still bounding a misbehaving stream.
pub const AUDIO_PACE_BPS: u64 = 10_000_000;

/// How a GameStream video stream of `bitrate_kbps` is paced: each frame spread over
/// [`SPREAD_PERMILLE`] of its interval, under a per-stream cap of 4 × the bitrate or
/// [`PACER_LINK_BPS`], whichever is more.
pub fn video_pacer(bitrate_kbps: u32) -> PacerConfig {
    let mut vpace = PacerConfig::new(PACER_LINK_BPS.max(u64::from(bitrate_kbps) * 4000));
    vpace.mode = Mode::Spread {
        permille: SPREAD_PERMILLE,
    };
    vpace.burst_ns = VIDEO_BURST_NS;
    vpace.catch_up_ns = VIDEO_CATCH_UP_NS;
    vpace.min_release_interval_ns = VIDEO_RELEASE_NS;
    vpace
}
