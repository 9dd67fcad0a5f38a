//! The HEVC and AV1 test streams for `gamestream --codec hevc|av1`: made once with Debian's
//! ffmpeg (libx265 ultrafast, libaom real-time; a test tool, `scripts/setup.sh` installs it),
//! cached like the H.264 stream ([`super::stream`]), replayed by the data plane's passthrough.
//!
//! Content: `testsrc2` with fresh temporal noise in every frame (as the H.264 stream's noise,
//! so P frames are as large as key frames and the rate holds in every frame), no B-frames, a
//! key frame every [`IDR_INTERVAL`] frames, the bitrate asked of the encoder's rate control
//! (`-b:v`, one-frame buffer). Unlike the H.264 stream the AU size is the encoder's: the
//! analysis reports what it made. [`analyze`] splits the file with the passthrough's own
//! per-codec splitter, so it sees the AUs the data plane will send.

use std::path::{Path, PathBuf};
use std::process::Command;

use strahl_capture::passthrough::PassthroughSource;
use strahl_packetize::gamestream::plan::{self, max_access_unit_bytes, plan_frame};

use super::stream::{Analysis, IDR_INTERVAL, Recipe};

/// Bump when the recipe changes: part of the cache key.
const FORMAT_VERSION: u32 = 2;

/// The codecs the bench streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    H264,
    Hevc,
    Av1,
}

impl Codec {
    pub fn parse(s: &str) -> Option<Codec> {
        match s {
            "h264" => Some(Codec::H264),
            "hevc" => Some(Codec::Hevc),
            "av1" => Some(Codec::Av1),
            _ => None,
        }
    }

    /// The driver's `--codec` and the name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Hevc => "hevc",
            Codec::Av1 => "av1",
        }
    }

    /// The PyAV decoder of the driver's `check`.
    pub fn decoder(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Hevc => "hevc",
            Codec::Av1 => "libdav1d",
        }
    }
}

/// Makes (or finds in `cache`) the `codec` stream of `r` (HEVC or AV1).
pub fn ensure(codec: Codec, r: &Recipe, cache: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let (ext, enc): (&str, Vec<String>) = match codec {
        Codec::H264 => return Err("H.264 streams come from stream::ensure".into()),
        Codec::Hevc => (
            "hevc",
            [
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-x265-params",
                &format!(
                    "log-level=error:keyint={IDR_INTERVAL}:min-keyint={IDR_INTERVAL}:bframes=0:\
                     open-gop=0:scenecut=0:info=0:repeat-headers=1"
                ),
                "-f",
                "hevc",
            ]
            .map(String::from)
            .to_vec(),
        ),
        Codec::Av1 => (
            "obu",
            [
                "-c:v",
                "libaom-av1",
                "-usage",
                "realtime",
                "-cpu-used",
                "8",
                "-lag-in-frames",
                "0",
                // Key frames at most ~1.2x the mean frame (default: 2x), so a 1 Gbit/s key
                // frame fits GameStream's 4 x 255 shards (measured at 640x360: 122 KB vs
                // 203 KB for a 103 KB mean).
                "-aom-params",
                "max-intra-rate=50",
                "-f",
                "obu",
            ]
            .map(String::from)
            .to_vec(),
        ),
    };
    let bps = r.au_bytes * 8 * r.fps as usize;
    let name = format!(
        "gs-{}-v{FORMAT_VERSION}-{}x{}-{}fps-{}bps-{}f.{ext}",
        codec.name(),
        r.width,
        r.height,
        r.fps,
        bps,
        r.frames
    );
    let out = cache.join(name);
    if out.exists() {
        return Ok(out);
    }
    let tmp = out.with_extension("part");
    let source = format!(
        "testsrc2=size={}x{}:rate={},noise=alls=80:allf=t+u,format=yuv420p",
        r.width, r.height, r.fps
    );
    // libaom sizes the stream's first key frame without rate history (~1.8x the mean whatever
    // max-intra-rate says): AV1 streams are made one GOP longer and that GOP is cut off.
    let lead_in = if codec == Codec::Av1 { IDR_INTERVAL } else { 0 };
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", &source])
        .args(["-frames:v", &(r.frames + lead_in).to_string()])
        .args(["-g", &IDR_INTERVAL.to_string()])
        .args(["-b:v", &bps.to_string(), "-maxrate", &bps.to_string()])
        .args(["-bufsize", &(bps / r.fps as usize).to_string()])
        .args(&enc)
        .arg(&tmp);
    let shown = format!("{cmd:?}");
    let o = cmd
        .output()
        .map_err(|e| format!("{shown}: {e} (is ffmpeg installed? scripts/setup.sh)"))?;
    if !o.status.success() {
        return Err(format!(
            "{shown}: {}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    if lead_in > 0 {
        drop_lead_in(&tmp, lead_in)?;
    }
    std::fs::rename(&tmp, &out).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

/// Rewrite `path` without its first `n` access units, through the passthrough's own split (so
/// the new first AU is a key AU with the parameter sets it copies in front of every key AU).
fn drop_lead_in(path: &Path, n: usize) -> Result<(), String> {
    let shown = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let mut src = PassthroughSource::open(path).map_err(|e| shown(&e))?;
    let total = src.len();
    let mut kept = Vec::new();
    for i in 0..total {
        let au = src.next_au();
        if i == n && !au.idr {
            return Err(shown(&format!("AU {n} is not a key AU")));
        }
        if i >= n {
            kept.extend_from_slice(au.data);
        }
    }
    drop(src);
    std::fs::write(path, kept).map_err(|e| shown(&e))
}

/// [`super::stream::analyze`] for any codec: the passthrough's own split, once around.
pub fn analyze(path: &Path, packet_size: usize, fec_pct: u8) -> Result<Analysis, String> {
    let mut src = PassthroughSource::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let n = src.len();
    let chunk = packet_size - 16;
    let mut a = Analysis {
        access_units: n,
        unlowered_capacity_bytes: plan::unlowered_capacity_bytes(packet_size, fec_pct),
        max_au_capacity_bytes: max_access_unit_bytes(packet_size),
        ..Analysis::default()
    };
    let mut total = 0;
    for _ in 0..n {
        let au = src.next_au();
        let len = au.data.len();
        total += len;
        a.max_au_bytes = a.max_au_bytes.max(len);
        a.idr_access_units += usize::from(au.idr);
        let shards = (len + plan::FRAME_HEADER_LEN).div_ceil(chunk);
        match plan_frame(shards, fec_pct, 2) {
            None => a.over_capacity += 1,
            Some(p) if p.lowered_to.is_some() => a.needs_lowering += 1,
            Some(_) => {}
        }
    }
    a.mean_au_bytes = total / n.max(1);
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both codecs: a small stream is made, cached, and split into its frames with one key
    /// frame per IDR_INTERVAL.
    #[test]
    fn small_hevc_and_av1_streams() {
        let dir = std::env::temp_dir().join(format!("strahl-bench-ff-{}", std::process::id()));
        let r = Recipe {
            width: 320,
            height: 240,
            fps: 30,
            au_bytes: 4_000,
            frames: IDR_INTERVAL + 2,
        };
        for codec in [Codec::Hevc, Codec::Av1] {
            let p = ensure(codec, &r, &dir).unwrap();
            assert_eq!(ensure(codec, &r, &dir).unwrap(), p, "cached");
            let a = analyze(&p, 1392, 20).unwrap();
            assert_eq!(a.access_units, r.frames, "{codec:?}");
            assert_eq!(a.idr_access_units, 2, "{codec:?}");
            assert!(a.mean_au_bytes > 500, "{codec:?}: {a:?}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
