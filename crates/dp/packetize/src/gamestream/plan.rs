//! GameStream FEC block planning (`gamestream-host.md` §A14 steps 2 and 4), with our rule on top:
//! **never send a frame without FEC**.
//!
//! - Reference rule: D_max = ⌊25500 / (100 + F)⌋ data shards per block, blocks = ⌈n / D_max⌉,
//!   every block but the last takes ⌈n / blocks⌉ shards, the last the rest; p = ⌈d·F/100⌉, raised
//!   to `minRequiredFecPackets` with F_block = ⌊100·p/d⌋ when smaller.
//! - Where the reference (Sunshine) falls back to 4 blocks with F = 0, we lower F to the largest
//!   F' < F whose split fits 4 blocks (counted as `parity_lowered`), keeping the minimum parity.
//! - The stored per-block percentage is always the one the client will use: p is *derived* from
//!   it as ⌈d·F_block/100⌉, so the client's recomputation reproduces p exactly by construction.
//! - The capacity limit: at F' = 1, D_max = 252 and ⌈252/100⌉ = 3 parity, 255 in total. d = 253
//!   cannot work (F = 1 already gives p = 3 and 256 shards; p = 2 needs F ∈ (0.79, 0.395], no
//!   integer), so a frame holds at most 4 × 252 = [`MAX_FRAME_SHARDS`] data shards; bigger ones
//!   are refused and the encoder must cap its frame size ([`max_access_unit_bytes`]).

/// Blocks per frame (2 bits of multiFecBlocks).
pub const MAX_BLOCKS: usize = 4;
/// Data + parity shards of one block (nanors limit).
pub const MAX_BLOCK_SHARDS: usize = 255;
/// Data shards per block at the lowest usable parity (F = 1): ⌊25500 / 101⌋.
pub const MAX_BLOCK_DATA_SHARDS: usize = 252;
/// Data shards per frame with FEC: 4 × 252.
pub const MAX_FRAME_SHARDS: usize = MAX_BLOCKS * MAX_BLOCK_DATA_SHARDS;
/// Per-shard bytes in front of the payload.
pub const SHARD_HEADER_LEN: usize = 32;
/// Frame header placed before the access unit.
pub const FRAME_HEADER_LEN: usize = 8;

/// Largest access unit that one frame can carry with FEC at packet size `p` (the ANNOUNCE
/// packetSize, already reduced by 32 when SS_ENC_VIDEO is on).
pub fn max_access_unit_bytes(packet_size: usize) -> usize {
    (MAX_FRAME_SHARDS * packet_size.saturating_sub(16)).saturating_sub(FRAME_HEADER_LEN)
}

/// Largest access unit that fits 4 blocks at `fec_pct` without lowering the parity.
pub fn unlowered_capacity_bytes(packet_size: usize, fec_pct: u8) -> usize {
    (MAX_BLOCKS * d_max(fec_pct) * packet_size.saturating_sub(16)).saturating_sub(FRAME_HEADER_LEN)
}

/// One FEC block of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockPlan {
    /// Index of the block's first data shard within the frame's data shards.
    pub first_shard: usize,
    pub data: usize,
    pub parity: usize,
    /// The fecPct stored in this block's fecInfo: ⌈data · fec_pct / 100⌉ == parity.
    pub fec_pct: u8,
}

/// How a frame of `shards` data shards is cut into blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePlan {
    pub shards: usize,
    pub blocks: usize,
    pub block: [BlockPlan; MAX_BLOCKS],
    /// `Some(F')` when the configured percentage had to be lowered to F' to fit 4 blocks.
    pub lowered_to: Option<u8>,
}

impl FramePlan {
    pub fn packets(&self) -> usize {
        self.block[..self.blocks]
            .iter()
            .map(|b| b.data + b.parity)
            .sum()
    }
}

/// ⌊25500 / (100 + F)⌋.
pub fn d_max(fec_pct: u8) -> usize {
    25500 / (100 + fec_pct as usize)
}

fn split(n: usize, fec_pct: u8) -> Option<(usize, usize)> {
    let blocks = n.div_ceil(d_max(fec_pct));
    (blocks <= MAX_BLOCKS).then(|| (blocks, n.div_ceil(blocks)))
}

/// Plan a frame of `n ≥ 1` data shards at `fec_pct ≥ 1` with `min_parity` (≤ 2 in practice).
/// `None`: too large even at F = 1.
pub fn plan_frame(n: usize, fec_pct: u8, min_parity: u8) -> Option<FramePlan> {
    if n == 0 || fec_pct == 0 {
        return None;
    }
    let (f, (blocks, per)) = match split(n, fec_pct) {
        Some(s) => (fec_pct, s),
        None => (1..fec_pct)
            .rev()
            .find_map(|f| split(n, f).map(|s| (f, s)))?,
    };
    let mut block = [BlockPlan::default(); MAX_BLOCKS];
    let mut first = 0;
    for (b, slot) in block.iter_mut().enumerate().take(blocks) {
        let d = if b + 1 == blocks { n - first } else { per };
        let mut pct = f;
        let mut p = (d * pct as usize).div_ceil(100);
        if p < min_parity as usize {
            pct = (100 * min_parity as usize / d).min(255) as u8;
            p = (d * pct as usize).div_ceil(100);
        }
        if d == 0 || p == 0 || d + p > MAX_BLOCK_SHARDS {
            return None;
        }
        *slot = BlockPlan {
            first_shard: first,
            data: d,
            parity: p,
            fec_pct: pct,
        };
        first += d;
    }
    Some(FramePlan {
        shards: n,
        blocks,
        block,
        lowered_to: (f != fec_pct).then_some(f),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_examples() {
        assert_eq!(d_max(20), 212);
        assert_eq!(d_max(1), MAX_BLOCK_DATA_SHARDS);
        let p = plan_frame(500, 20, 2).unwrap();
        assert_eq!(p.blocks, 3);
        assert_eq!(p.lowered_to, None);
        let b: Vec<_> = p.block[..3]
            .iter()
            .map(|b| (b.first_shard, b.data, b.parity, b.fec_pct))
            .collect();
        // ⌈500/3⌉ = 167, last 500 − 334 = 166; p = ⌈167·0.2⌉ = 34, ⌈166·0.2⌉ = 34.
        assert_eq!(
            b,
            vec![(0, 167, 34, 20), (167, 167, 34, 20), (334, 166, 34, 20)]
        );
        // One shard: p = ⌈0.2⌉ = 1 < 2, so p = 2 and F_block = 200.
        let p = plan_frame(1, 20, 2).unwrap();
        assert_eq!(
            p.block[0],
            BlockPlan {
                first_shard: 0,
                data: 1,
                parity: 2,
                fec_pct: 200
            }
        );
        // 7 shards at 20 %: p = ⌈1.4⌉ = 2, no adjustment.
        assert_eq!(plan_frame(7, 20, 2).unwrap().block[0].parity, 2);
        // 3 shards at 20 %: p = 1 → 2, F = ⌊200/3⌋ = 66, ⌈3·66/100⌉ = ⌈1.98⌉ = 2.
        assert_eq!(
            plan_frame(3, 20, 2).unwrap().block[0],
            BlockPlan {
                first_shard: 0,
                data: 3,
                parity: 2,
                fec_pct: 66
            }
        );
    }

    #[test]
    fn lowering_and_refusal() {
        // 849 shards at 20 % need 5 blocks of ≤ 212: lower to the largest F' whose D_max ≥ 213.
        let p = plan_frame(849, 20, 2).unwrap();
        assert_eq!(p.blocks, 4);
        let f = p.lowered_to.unwrap();
        assert_eq!(f, 19); // D_max(19) = ⌊25500/119⌋ = 214 ≥ ⌈849/4⌉ = 213; D_max(20) = 212
        assert_eq!(p.block[0].data, 213);
        assert_eq!(p.block[0].parity, 41); // ⌈213·0.19⌉ = ⌈40.47⌉
        assert_eq!(plan_frame(848, 20, 2).unwrap().lowered_to, None);
        let p = plan_frame(MAX_FRAME_SHARDS, 20, 2).unwrap();
        assert_eq!(p.lowered_to, Some(1));
        assert!(p.block.iter().all(|b| b.data == 252 && b.parity == 3));
        assert_eq!(plan_frame(MAX_FRAME_SHARDS + 1, 20, 2), None);
        assert_eq!(plan_frame(MAX_FRAME_SHARDS + 1, 1, 2), None);
        assert_eq!(max_access_unit_bytes(1392), 1008 * 1376 - 8);
    }

    /// Every shape the planner produces obeys the protocol: blocks partition the frame, each block
    /// 1 ≤ d, 2 ≤ p, d + p ≤ 255, and the client's p = ⌈d·F/100⌉ reproduces exactly.
    #[test]
    fn every_plan_is_valid() {
        for f in 1..=255u8 {
            for n in 1..=MAX_FRAME_SHARDS {
                let p = plan_frame(n, f, 2).expect("within capacity");
                assert!((1..=MAX_BLOCKS).contains(&p.blocks));
                let mut first = 0;
                for b in &p.block[..p.blocks] {
                    assert_eq!(b.first_shard, first);
                    assert!(
                        b.data >= 1 && b.parity >= 2 && b.data + b.parity <= 255,
                        "{n} {f} {b:?}"
                    );
                    assert_eq!((b.data * b.fec_pct as usize).div_ceil(100), b.parity);
                    assert!(b.data < 1024);
                    first += b.data;
                }
                assert_eq!(first, n);
                assert_eq!(
                    p.lowered_to.is_some(),
                    n.div_ceil(d_max(f)) > MAX_BLOCKS,
                    "{n} {f}"
                );
                if let Some(l) = p.lowered_to {
                    assert!(l < f && n.div_ceil(d_max(l)) <= 4 && n.div_ceil(d_max(l + 1)) > 4);
                }
            }
        }
    }
}
