//! `strahl-bench loss`: how many frames survive packet loss with GF(2^16) one block per frame vs
//! GameStream's GF(2^8) with at most 4 blocks of at most 255 shards, at the same overhead.
//!
//! - A frame is [`DATA_SHARDS`] data shards plus [`OVERHEAD_PCT`] % parity, split GameStream-style
//!   into 4 GF(2^8) blocks of 200 + 40 (the most blocks GameStream allows); GF(2^16) gets exactly the
//!   same parity total in one block.
//! - Send order: GF(2^16) data then parity; GF(2^8) block by block, data then parity (Sunshine's
//!   order). Both schemes see the *same* per-packet loss sequence (a paired comparison).
//! - Loss models, seeded: independent (Bernoulli) loss, and bursts from a two-state Gilbert model
//!   (every packet lost in the bad state, mean burst [`MEAN_BURST`] packets, stationary loss equal
//!   to the target). Channel state carries over from frame to frame.
//! - Every frame is really decoded (lost shards are zeroed first) and counted as recovered only if
//!   decoding succeeded and the bytes equal the original.

use serde_json::{Value, json};
use strahl_fec::FecError;
use strahl_fec::gf8::{Gf8Code, Gf8Decoder};
use strahl_fec::gf16::{Gf16Decoder, Gf16Encoder};

use crate::Options;
use crate::fec::{Rng, fill, gf8_blocks};
use crate::report::Plot;

/// Loss behaviour does not depend on shard size; decode time does, so keep shards small.
const SHARD: usize = 512;
/// 800 shards (1.1 MB at 1392 B, near GameStream's FEC ceiling): 4 GF(2^8) blocks at 20 %.
const DATA_SHARDS: usize = 800;
/// Sunshine's default FEC percentage.
const OVERHEAD_PCT: usize = 20;
const LOSS_PCT: [f64; 13] = [
    0.0, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 12.5, 15.0, 17.5, 20.0, 25.0, 30.0,
];
/// Mean burst length of the Gilbert model, in packets (Wi-Fi retry bursts span a few ms, i.e. a
/// handful of packets at these rates).
const MEAN_BURST: f64 = 8.0;
const FRAMES: usize = 200;
const FRAMES_QUICK: usize = 8;

/// Per-packet loss process.
enum Channel {
    Random { p: f64 },
    Gilbert { p_gb: f64, p_bg: f64, bad: bool },
}

impl Channel {
    fn new(burst: bool, loss: f64) -> Channel {
        if burst {
            let p_bg = 1.0 / MEAN_BURST;
            Channel::Gilbert {
                p_gb: loss * p_bg / (1.0 - loss),
                p_bg,
                bad: false,
            }
        } else {
            Channel::Random { p: loss }
        }
    }

    fn lost(&mut self, rng: &mut Rng) -> bool {
        match self {
            Channel::Random { p } => rng.unit() < *p,
            Channel::Gilbert { p_gb, p_bg, bad } => {
                let flip = if *bad { *p_bg } else { *p_gb };
                if rng.unit() < flip {
                    *bad = !*bad;
                }
                *bad
            }
        }
    }
}

pub fn run(opts: &Options) -> Result<Value, String> {
    let k = DATA_SHARDS;
    let blocks = gf8_blocks(k, OVERHEAD_PCT);
    let p8: usize = blocks.last().map_or(0, |b| b.1.end);
    // Same overhead by construction: GF(2^16) gets exactly the GF(2^8) parity total.
    let r = p8;
    let n = k + r;
    if blocks.len() > 4 {
        return Err(format!(
            "GameStream allows 4 FEC blocks, layout needs {}",
            blocks.len()
        ));
    }
    let codes: Vec<Gf8Code> = blocks
        .iter()
        .map(|(d, p)| Gf8Code::new(d.len(), p.len()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;

    // One original frame, encoded once per scheme; each trial starts from these bytes.
    let mut data = vec![0u8; k * SHARD];
    fill(&mut data, 0x1055);
    let drefs: Vec<&[u8]> = data.chunks_exact(SHARD).collect();
    let mut orig16 = data.clone();
    orig16.resize(n * SHARD, 0);
    {
        let mut prefs: Vec<&mut [u8]> = orig16[k * SHARD..].chunks_exact_mut(SHARD).collect();
        Gf16Encoder::new()
            .encode(&drefs, &mut prefs)
            .map_err(|e| e.to_string())?;
    }
    // GF(2^8) buffer in send order: block 0 data, block 0 parity, block 1 data, ...
    let mut orig8 = Vec::with_capacity((k + p8) * SHARD);
    for ((d, p), code) in blocks.iter().zip(&codes) {
        let mut par = vec![0u8; p.len() * SHARD];
        let mut prefs: Vec<&mut [u8]> = par.chunks_exact_mut(SHARD).collect();
        code.encode(&drefs[d.clone()], &mut prefs)
            .map_err(|e| e.to_string())?;
        orig8.extend_from_slice(&data[d.start * SHARD..d.end * SHARD]);
        orig8.extend_from_slice(&par);
    }
    if p8 != r {
        return Err(format!(
            "overheads differ: GF(2^16) {r} parity vs GF(2^8) {p8}"
        ));
    }

    let frames = if opts.quick { FRAMES_QUICK } else { FRAMES };
    let mut dec16 = Gf16Decoder::new();
    let mut dec8 = Gf8Decoder::new();
    let mut work16 = orig16.clone();
    let mut work8 = orig8.clone();
    let mut lost = vec![false; n];
    let mut rng = Rng(0x5EED_1055);
    let mut models = serde_json::Map::new();
    let mut plot = Plot::new(
        &format!("Frames recovered, {k} data shards + {OVERHEAD_PCT} % parity"),
        "packet loss %",
        "frames recovered %",
    );
    for burst in [false, true] {
        let name = if burst { "burst" } else { "random" };
        let (mut pts16, mut pts8, mut rows) = (Vec::new(), Vec::new(), Vec::new());
        for &loss_pct in &LOSS_PCT {
            let mut ch = Channel::new(burst, loss_pct / 100.0);
            let (mut ok16, mut ok8, mut lost_pkts) = (0usize, 0usize, 0usize);
            for _ in 0..frames {
                for l in lost.iter_mut() {
                    *l = ch.lost(&mut rng);
                }
                lost_pkts += lost.iter().filter(|&&l| l).count();
                ok16 += usize::from(trial16(&mut dec16, &orig16, &mut work16, &lost, k, r)?);
                ok8 += usize::from(trial8(
                    &mut dec8, &codes, &blocks, &orig8, &mut work8, &lost,
                )?);
            }
            let pct = |ok: usize| 100.0 * ok as f64 / frames as f64;
            pts16.push((loss_pct, pct(ok16)));
            pts8.push((loss_pct, pct(ok8)));
            rows.push(json!({
                "loss_pct": loss_pct,
                "measured_loss_pct": 100.0 * lost_pkts as f64 / (frames * n) as f64,
                "frames": frames,
                "gf16_one_block_recovered": ok16,
                "gf8_gamestream_recovered": ok8,
            }));
        }
        plot.series(&format!("GF(2^16) 1 block, {name} loss"), pts16);
        plot.series(
            &format!("GF(2^8) {} blocks, {name} loss", blocks.len()),
            pts8,
        );
        models.insert(name.into(), Value::Array(rows));
    }
    if let Some(path) = &opts.plot {
        plot.write(path)?;
    }
    Ok(json!({
        "bench": "loss",
        "shard_bytes": SHARD,
        "data_shards": k,
        "overhead_pct": OVERHEAD_PCT,
        "gf16": {"data": k, "parity": r},
        "gf8_blocks": blocks.iter().map(|(d, p)| [d.len(), p.len()]).collect::<Vec<_>>(),
        "mean_burst_packets": MEAN_BURST,
        "quick": opts.quick,
        "models": models,
    }))
}

/// Zero the lost shards, decode, and check the data. `Ok(false)`: not enough shards arrived.
fn trial16(
    dec: &mut Gf16Decoder,
    orig: &[u8],
    work: &mut [u8],
    lost: &[bool],
    k: usize,
    r: usize,
) -> Result<bool, String> {
    let mut shards: Vec<&mut [u8]> = work.chunks_exact_mut(SHARD).collect();
    let mut present = vec![true; k + r];
    for (i, &l) in lost.iter().enumerate() {
        if l {
            shards[i].fill(0);
            present[i] = false;
        }
    }
    match dec.reconstruct(k, r, &mut shards, &present) {
        Ok(()) => {}
        Err(FecError::TooFewShards { .. }) => {
            work.copy_from_slice(orig);
            return Ok(false);
        }
        Err(e) => return Err(format!("GF(2^16) decode: {e}")),
    }
    let good = work[..k * SHARD] == orig[..k * SHARD];
    work.copy_from_slice(orig);
    if !good {
        return Err("GF(2^16) decode returned wrong data".into());
    }
    Ok(true)
}

/// Same for the GameStream layout: the frame survives only if every block does.
fn trial8(
    dec: &mut Gf8Decoder,
    codes: &[Gf8Code],
    blocks: &[(std::ops::Range<usize>, std::ops::Range<usize>)],
    orig: &[u8],
    work: &mut [u8],
    lost: &[bool],
) -> Result<bool, String> {
    let mut all_ok = true;
    let mut shards: Vec<&mut [u8]> = work.chunks_exact_mut(SHARD).collect();
    let mut at = 0;
    for ((d, p), code) in blocks.iter().zip(codes) {
        let nb = d.len() + p.len();
        let present: Vec<bool> = lost[at..at + nb].iter().map(|&l| !l).collect();
        for (s, &ok) in shards[at..at + nb].iter_mut().zip(&present) {
            if !ok {
                s.fill(0);
            }
        }
        let block_ok = match dec.reconstruct(*code, &mut shards[at..at + nb], &present) {
            Ok(()) => true,
            Err(FecError::TooFewShards { .. }) => false,
            Err(e) => return Err(format!("GF(2^8) decode: {e}")),
        };
        let same = shards[at..at + d.len()]
            .iter()
            .zip(orig[at * SHARD..].chunks_exact(SHARD))
            .all(|(a, b)| **a == *b);
        if block_ok && !same {
            return Err("GF(2^8) decode returned wrong data".into());
        }
        all_ok &= block_ok;
        at += nb;
    }
    drop(shards);
    work.copy_from_slice(orig);
    Ok(all_ok)
}
