//! The high-rate H.264 test stream for `gamestream`: made once with OpenH264, cached as an
//! Annex-B file, replayed by the data plane's passthrough source.
//!
//! How the stream is made (and why):
//! - Content: a moving gradient plus fresh uniform noise of amplitude `A` in every frame (seeded
//!   xorshift, so the file is reproducible). Fresh noise defeats motion prediction, so P frames
//!   are as large as IDRs: the AU size stays near the target in every frame, which is what a
//!   bitrate test at 1 Gbit/s needs (an encoder at high bitrate on real content reaches such
//!   sizes only on scene changes).
//! - Encoder: OpenH264 (the same bundled library the data plane uses), constrained baseline, a
//!   fixed QP (min = max), one IDR (SPS, PPS, IDR slice) every [`IDR_INTERVAL`] frames, the
//!   first AU an IDR. OpenH264's rate control cannot reach 1 Gbit/s (it clamps to level
//!   limits), so the size is set by the QP and the noise amplitude instead:
//!   1. QP: the highest QP whose P frame at full amplitude is ≥ the IDR target;
//!   2. amplitude: bisection at that QP until the P frame is within [`SIZE_TOLERANCE`];
//!   3. a second amplitude for IDRs, which are made [`IDR_SIZE_FACTOR`] × larger (as intra
//!      frames are in real content).
//! - The file is keyed by every input (geometry, target AU bytes, frame count, IDR interval,
//!   [`FORMAT_VERSION`]) so a changed recipe never reuses a stale file.
//!
//! [`analyze`] splits a file into AUs and predicts, with the packetizer's own planner
//! (`strahl_packetize::gamestream::plan`), which AUs need more than 4 FEC blocks at the
//! configured FEC % (parity lowered) and which cannot be protected at all (refused).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    QpRange, RateControlMode, SpsPpsStrategy, UsageType,
};
use openh264::formats::YUVSlices;
use strahl_capture::annexb::{access_unit_ranges, is_idr_au};
use strahl_packetize::gamestream::plan::{self, max_access_unit_bytes, plan_frame};

/// Bump when the recipe changes: part of the cache key.
const FORMAT_VERSION: u32 = 4;
/// An IDR every 60 AUs: the client gets a fresh IDR at least every second, and the file loops
/// on an IDR (the passthrough source restarts at the first IDR).
pub const IDR_INTERVAL: usize = 60;
/// Stop the amplitude bisection within ±1.5 % of the target (one amplitude step near the
/// top of the range moves the size by about 1–1.5 %, seen in the calibration log).
const SIZE_TOLERANCE: f64 = 0.015;
/// IDRs are made this much larger than the mean P frame, as with real content (an intra frame
/// costs more than a predicted one). At 1 Gbit/s and 120 fps this puts the IDRs (≈ 1.25 MB)
/// between the 4-block capacity at 20 % FEC (1.167 MB) and the absolute one (1.387 MB), so
/// the packetizer's parity lowering is exercised by the real client, as in a real stream.
const IDR_SIZE_FACTOR: f64 = 1.2;
/// Largest noise amplitude (±127 around the gradient).
const FULL_AMPLITUDE: u8 = 127;
/// Amplitude bisection steps (amplitude is 1..=127; 7 steps resolve it to 1).
const AMPLITUDE_STEPS: usize = 7;
/// Nominal bitrate handed to OpenH264: only sizes its buffers; the fixed QP decides the size.
const NOMINAL_BPS: u32 = 50_000_000;

/// What to make.
#[derive(Clone, Copy, Debug)]
pub struct Recipe {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Target mean access-unit size in bytes.
    pub au_bytes: usize,
    pub frames: usize,
}

impl Recipe {
    /// File name in the cache directory: every input is in it.
    pub fn file_name(&self) -> String {
        format!(
            "gs-v{FORMAT_VERSION}-{}x{}-{}B-{}f-idr{IDR_INTERVAL}.h264",
            self.width, self.height, self.au_bytes, self.frames
        )
    }
}

/// The noisy pattern, one I420 frame at a time.
struct Pattern {
    w: usize,
    h: usize,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    rng: u64,
}

impl Pattern {
    fn new(w: usize, h: usize) -> Pattern {
        Pattern {
            w,
            h,
            y: vec![0; w * h],
            u: vec![0; w * h / 4],
            v: vec![0; w * h / 4],
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*: fast, seeded, good enough to defeat prediction.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Fills frame `n` with gradient + noise of amplitude `amp` (0..=[`FULL_AMPLITUDE`]).
    fn fill(&mut self, n: usize, amp: u8) {
        let span = 2 * amp as u64 + 1;
        let shift = n * 4;
        for plane in 0..3 {
            let (w, h) = if plane == 0 {
                (self.w, self.h)
            } else {
                (self.w / 2, self.h / 2)
            };
            for row in 0..h {
                let mut i = 0;
                while i < w {
                    let r = self.next_rand();
                    // Eight noise samples per random word.
                    for k in 0..8 {
                        if i + k >= w {
                            break;
                        }
                        let base = ((i + k + shift + row) & 0xff) as i32 / 2 + 64;
                        let noise = ((r >> (8 * k)) & 0xff) % span;
                        let val = (base + noise as i32 - amp as i32).clamp(0, 255) as u8;
                        let idx = row * w + i + k;
                        match plane {
                            0 => self.y[idx] = val,
                            1 => self.u[idx] = val,
                            _ => self.v[idx] = val,
                        }
                    }
                    i += 8;
                }
            }
        }
    }
}

fn encoder(r: &Recipe, qp: u8) -> Result<Encoder, String> {
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(NOMINAL_BPS))
        .max_frame_rate(FrameRate::from_hz(r.fps as f32))
        .rate_control_mode(RateControlMode::Bitrate)
        .skip_frames(false)
        .usage_type(UsageType::CameraVideoRealTime)
        .profile(Profile::Baseline)
        .sps_pps_strategy(SpsPpsStrategy::ConstantId)
        .intra_frame_period(IntraFramePeriod::from_num_frames(0))
        .complexity(Complexity::Low)
        .num_threads(1)
        .qp(QpRange::new(qp, qp))
        .scene_change_detect(false)
        .background_detection(false)
        .long_term_reference(false);
    Encoder::with_api_config(openh264::OpenH264API::from_source(), config)
        .map_err(|e| format!("openh264: {e}"))
}

/// Encodes frame `n` of the pattern; returns whether it was an IDR.
fn encode_one(
    enc: &mut Encoder,
    pat: &mut Pattern,
    n: usize,
    amp: u8,
    idr: bool,
    out: &mut Vec<u8>,
) -> Result<bool, String> {
    pat.fill(n, amp);
    if idr && n > 0 {
        enc.force_intra_frame();
    }
    let (w, h) = (pat.w, pat.h);
    let yuv = YUVSlices::new((&pat.y, &pat.u, &pat.v), (w, h), (w, w / 2, w / 2));
    let bs = enc
        .encode(&yuv)
        .map_err(|e| format!("openh264 encode: {e}"))?;
    let kind = bs.frame_type();
    out.clear();
    bs.write_vec(out);
    match kind {
        FrameType::IDR => Ok(true),
        FrameType::Skip | FrameType::Invalid => Err(format!("openh264 produced no AU ({kind:?})")),
        _ => Ok(false),
    }
}

/// AU sizes (IDR, P) of a 2-frame probe at `qp`, the IDR with noise amplitude `amp_idr` and
/// the P frame with `amp_p`. An encode error is reported as `usize::MAX`: OpenH264 fails
/// (native error 3) when a frame overflows its bitstream buffer, which happens at very low QP
/// on full-amplitude noise — "too large".
fn probe(r: &Recipe, qp: u8, amp_idr: u8, amp_p: u8) -> Result<(usize, usize), String> {
    let mut enc = encoder(r, qp)?;
    let mut pat = Pattern::new(r.width as usize, r.height as usize);
    let mut au = Vec::new();
    let mut sizes = [0usize; 2];
    for (n, amp) in [amp_idr, amp_p].into_iter().enumerate() {
        if encode_one(&mut enc, &mut pat, n, amp, n == 0, &mut au).is_err() {
            return Ok((usize::MAX, usize::MAX));
        }
        sizes[n] = au.len();
    }
    Ok((sizes[0], sizes[1]))
}

/// Bisection on the noise amplitude (size rises with it): the amplitude whose `size` is
/// closest to `target`, stopping early within [`SIZE_TOLERANCE`].
fn bisect_amplitude(
    target: f64,
    what: &str,
    mut size: impl FnMut(u8) -> Result<usize, String>,
) -> Result<u8, String> {
    let (mut lo, mut hi) = (1u8, FULL_AMPLITUDE);
    let mut best = (FULL_AMPLITUDE, size(FULL_AMPLITUDE)?);
    for _ in 0..AMPLITUDE_STEPS {
        let mid = lo + (hi - lo) / 2;
        let s = size(mid)?;
        eprintln!("gamestream: calibrate {what} amplitude {mid}: {s} B");
        if (s as f64 - target).abs() < (best.1 as f64 - target).abs() {
            best = (mid, s);
        }
        if ((s as f64 - target) / target).abs() <= SIZE_TOLERANCE {
            break;
        }
        if (s as f64) < target {
            lo = mid + 1;
        } else {
            hi = mid;
        }
        if lo >= hi {
            break;
        }
    }
    Ok(best.0)
}

/// Chosen encoding parameters.
#[derive(Clone, Copy, Debug)]
struct Params {
    qp: u8,
    amp_idr: u8,
    amp_p: u8,
}

/// Chooses QP and the two amplitudes for the target; logs each probe on stderr.
fn calibrate(r: &Recipe) -> Result<Params, String> {
    const FULL: u8 = FULL_AMPLITUDE;
    let target = r.au_bytes as f64;
    // Bisection on QP (size falls as QP rises): the highest QP still ≥ the IDR target at full
    // noise, so both amplitudes below have room.
    let qp_target = target * IDR_SIZE_FACTOR;
    let (mut lo, mut hi) = (0u8, 51u8);
    if (probe(r, lo, FULL, FULL)?.1 as f64) < qp_target {
        return Err(format!(
            "{}x{} cannot reach {} B per AU even at QP 0: use a larger size",
            r.width, r.height, r.au_bytes
        ));
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        let s = probe(r, mid, FULL, FULL)?.1;
        eprintln!("gamestream: calibrate QP {mid}: {s} B");
        if s as f64 >= qp_target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let qp = lo;
    let amp_p = bisect_amplitude(target, "P", |a| Ok(probe(r, qp, a, a)?.1))?;
    let amp_idr = bisect_amplitude(target * IDR_SIZE_FACTOR, "IDR", |a| {
        Ok(probe(r, qp, a, amp_p)?.0)
    })?;
    Ok(Params { qp, amp_idr, amp_p })
}

/// Returns the cached file for `r`, making it first when absent (written to a temp name and
/// renamed, so an interrupted run never leaves a truncated file under the real name).
pub fn ensure(r: &Recipe, cache: &Path) -> Result<PathBuf, String> {
    let path = cache.join(r.file_name());
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let t0 = Instant::now();
    let Params { qp, amp_idr, amp_p } = calibrate(r)?;
    let tmp = path.with_extension("h264.tmp");
    let file = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let mut file = std::io::BufWriter::new(file);
    let mut enc = encoder(r, qp)?;
    let mut pat = Pattern::new(r.width as usize, r.height as usize);
    let mut au = Vec::new();
    let mut total = 0usize;
    for n in 0..r.frames {
        let want_idr = n % IDR_INTERVAL == 0;
        let amp = if want_idr { amp_idr } else { amp_p };
        let got_idr = encode_one(&mut enc, &mut pat, n, amp, want_idr, &mut au)?;
        if want_idr && !(got_idr && is_idr_au(&au)) {
            return Err(format!(
                "frame {n}: OpenH264 did not give an IDR starting with SPS"
            ));
        }
        total += au.len();
        file.write_all(&au)
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
    }
    file.flush()
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "gamestream: made {} ({} AUs, mean {} B, QP {qp}, noise ±{amp_p}, IDR ±{amp_idr}) in {:.1} s",
        path.display(),
        r.frames,
        total / r.frames.max(1),
        t0.elapsed().as_secs_f64()
    );
    Ok(path)
}

/// What the packetizer will do with the AUs of a stream file (predicted with its own planner).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Analysis {
    pub access_units: usize,
    pub idr_access_units: usize,
    pub mean_au_bytes: usize,
    pub max_au_bytes: usize,
    /// AUs that need more than 4 blocks at the configured FEC % (parity lowered to fit).
    pub needs_lowering: usize,
    /// AUs too large for 4 × 252 data shards: cannot be protected by FEC at all (refused).
    pub over_capacity: usize,
    /// Largest AU that fits 4 blocks at the configured FEC % without lowering.
    pub unlowered_capacity_bytes: usize,
    /// Largest AU that fits 4 blocks with FEC at any parity (the encoder cap).
    pub max_au_capacity_bytes: usize,
}

/// Splits the file into AUs and plans each at `packet_size` and `fec_pct`.
pub fn analyze(path: &Path, packet_size: usize, fec_pct: u8) -> Result<Analysis, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let aus = access_unit_ranges(&data);
    if aus.is_empty() {
        return Err(format!("{}: no access units", path.display()));
    }
    let chunk = packet_size - 16;
    let mut a = Analysis {
        access_units: aus.len(),
        unlowered_capacity_bytes: plan::unlowered_capacity_bytes(packet_size, fec_pct),
        max_au_capacity_bytes: max_access_unit_bytes(packet_size),
        ..Analysis::default()
    };
    let mut total = 0;
    for r in &aus {
        let len = r.len();
        total += len;
        a.max_au_bytes = a.max_au_bytes.max(len);
        a.idr_access_units += usize::from(is_idr_au(&data[r.clone()]));
        let shards = (len + plan::FRAME_HEADER_LEN).div_ceil(chunk);
        match plan_frame(shards, fec_pct, 2) {
            None => a.over_capacity += 1,
            Some(p) if p.lowered_to.is_some() => a.needs_lowering += 1,
            Some(_) => {}
        }
    }
    a.mean_au_bytes = total / aus.len();
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small stream: the calibration lands near the target, every IDR_INTERVAL-th AU is an
    /// IDR starting with SPS, and the analysis sees them all.
    #[test]
    fn small_stream_hits_target_and_structure() {
        let dir = std::env::temp_dir().join(format!("strahl-bench-gs-{}", std::process::id()));
        let r = Recipe {
            width: 320,
            height: 240,
            fps: 60,
            au_bytes: 20_000,
            frames: IDR_INTERVAL + 2,
        };
        let p = ensure(&r, &dir).unwrap();
        let a = analyze(&p, 1392, 20).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(a.access_units, r.frames);
        assert_eq!(a.idr_access_units, 2);
        let err = (a.mean_au_bytes as f64 - 20_000.0).abs() / 20_000.0;
        assert!(err < 0.15, "mean AU {} B vs 20000 B", a.mean_au_bytes);
        assert_eq!(a.needs_lowering + a.over_capacity, 0);
    }
}
