//! `strahl-bench fec`, our GF(2^8) against nanors itself — the Reed-Solomon every GameStream peer
//! (Moonlight clients, Sunshine) runs — in the same run.
//!
//! nanors is reached as the golden-vector generator reaches it: moonlight-python's bundled
//! `libmoonlight-common-c.so`, loaded by `bench/nanors_fec.py` in cffi ABI mode in a separate
//! Python process (GPL: a test tool, never linked). That script times each nanors ISA build the
//! CPU runs per call with `perf_counter_ns` (its timer overhead is reported; the cffi call adds
//! well under a microsecond to calls of tens to hundreds of microseconds).
//!
//! Side by side: ours is measured in two halves, before and after the Python run, and the halves
//! are pooled (their medians are reported too, to show the drift). Shapes: GameStream's largest
//! block (212+43) and a 720p-sized 64 KiB frame (48+10), 1392-byte shards; encode, and decode at
//! max loss (every parity shard's worth of data shards lost, a fresh pattern per call).

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strahl_fec::gf8::{Gf8Code, Gf8Decoder, Gf8Kernel};

use super::{Rng, SHARD, fill};
use crate::Options;
use crate::report::Stats;

/// (data, parity): GameStream's largest block, and a 64 KiB frame at 20 %.
const SHAPES: [(usize, usize); 2] = [(212, 43), (48, 10)];
/// Calls per half (ours) and per variant (nanors) in the full run.
const ITERS: usize = 300;

struct Ours {
    code: Gf8Code,
    buf: Vec<u8>,
    dec: Gf8Decoder,
    kernel: Gf8Kernel,
    rng: Rng,
    mask: Vec<bool>,
    idx: Vec<usize>,
}

impl Ours {
    fn new(d: usize, p: usize) -> Result<Ours, String> {
        let code = Gf8Code::new(d, p).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; (d + p) * SHARD];
        fill(&mut buf[..d * SHARD], (d * 1000 + p) as u64);
        let kernel = Gf8Kernel::best();
        Ok(Ours {
            code,
            buf,
            dec: Gf8Decoder::with_kernel(kernel),
            kernel,
            rng: Rng(0x8A2 + d as u64),
            mask: vec![true; d + p],
            idx: vec![0; d],
        })
    }

    fn encode(&mut self) {
        let d = self.code.data_shards();
        let (data, parity) = self.buf.split_at_mut(d * SHARD);
        let ins: Vec<&[u8]> = data.chunks_exact(SHARD).collect();
        let mut outs: Vec<&mut [u8]> = parity.chunks_exact_mut(SHARD).collect();
        self.code
            .encode_with(self.kernel, &ins, &mut outs)
            .expect("gf8 encode");
    }

    fn decode(&mut self) {
        let (d, p) = (self.code.data_shards(), self.code.parity_shards());
        self.rng.erase(&mut self.mask[..d], &mut self.idx, p.min(d));
        let mut shards: Vec<&mut [u8]> = self.buf.chunks_exact_mut(SHARD).collect();
        self.dec
            .reconstruct(self.code, &mut shards, &self.mask)
            .expect("gf8 decode");
    }

    fn time(&mut self, op: &str, iters: usize) -> Vec<Duration> {
        (0..iters + 2)
            .map(|_| {
                let t = Instant::now();
                if op == "encode" {
                    self.encode()
                } else {
                    self.decode()
                }
                t.elapsed()
            })
            .skip(2)
            .collect()
    }
}

/// Run the nanors side: `Ok(json)` from the script, or why it could not run.
fn nanors(cases: &Value) -> Result<Value, String> {
    let python = strahl_testkit::python::moonlight_python()?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/nanors_fec.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(cases.to_string())
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "nanors_fec.py failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("nanors_fec.py output: {e}"))
}

pub(crate) fn run(opts: &Options) -> Result<Value, String> {
    let iters = if opts.quick { 2 } else { ITERS };
    let ops = ["encode", "decode"];
    let mut ours: Vec<Ours> = SHAPES
        .iter()
        .map(|&(d, p)| Ours::new(d, p))
        .collect::<Result<_, _>>()?;
    // First half of ours.
    let mut first = Vec::new();
    for o in ours.iter_mut() {
        for op in ops {
            first.push(o.time(op, iters / 2 + 1));
        }
    }
    let cases: Value = SHAPES
        .iter()
        .flat_map(|&(d, p)| {
            ops.map(|op| json!({"op": op, "d": d, "p": p, "len": SHARD, "iters": iters}))
        })
        .collect();
    let theirs = nanors(&cases);
    // Second half.
    let mut results = Vec::new();
    let mut n = 0;
    for (o, &(d, p)) in ours.iter_mut().zip(&SHAPES) {
        for op in ops {
            let second = o.time(op, iters / 2 + 1);
            let (a, b) = (Stats::of(&first[n]), Stats::of(&second));
            let pooled: Vec<Duration> = first[n].iter().chain(&second).copied().collect();
            let s = Stats::of(&pooled);
            n += 1;
            let mut entry = json!({
                "op": op, "data": d, "parity": p, "shard_bytes": SHARD,
                "ours": {"kernel": o.kernel.name(), "median_us": s.median_us, "p99_us": s.p99_us,
                         "min_us": s.min_us, "samples": s.samples,
                         "median_before_us": a.median_us, "median_after_us": b.median_us},
            });
            if let Ok(t) = &theirs {
                let mine: Vec<&Value> = t["results"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| r["op"] == op && r["d"] == d && r["p"] == p)
                    .collect();
                let best = mine.iter().min_by(|x, y| {
                    let m = |v: &Value| v["median_us"].as_f64().unwrap_or(f64::INFINITY);
                    m(x).total_cmp(&m(y))
                });
                entry["nanors"] = json!(mine);
                if let Some(b) = best {
                    entry["nanors_best_variant"] = b["variant"].clone();
                    entry["ratio_nanors_best_over_ours"] =
                        json!(b["median_us"].as_f64().unwrap_or(f64::NAN) / s.median_us);
                }
            }
            results.push(entry);
        }
    }
    Ok(match theirs {
        Ok(t) => json!({
            "source": "moonlight-python's libmoonlight-common-c.so via bench/nanors_fec.py (cffi)",
            "nanors_variants": t["variants"],
            "nanors_timer_overhead_us": t["timer_overhead_us"],
            "cases": results,
        }),
        Err(why) => json!({"skipped": why, "cases": results}),
    })
}
