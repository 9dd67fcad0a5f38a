//! Test clips for the passthrough source, made at test time with Debian's `ffmpeg` (a test
//! tool, `scripts/setup.sh` installs it): H.264 (libx264), HEVC Main and HEVC Main10 with HDR10
//! metadata (libx265), AV1 8-bit and 10-bit (libaom, the 10-bit one with mastering metadata
//! OBUs added after each sequence header), each carrying its frame number in the picture exactly as strahl's synthetic
//! source draws it (`strahl-capture`'s `BandLayout`: 32 blocks, MSB first, row-major, white for
//! 1, black for 0, `block` = 16 · max(1, W / 512) px), so the driver's `read_frame_number`
//! reads it back from the client's decoded pictures. The band is drawn by ffmpeg's `drawbox`
//! filters, one per bit, each enabled on the frames whose number has that bit set; below it
//! `testsrc2` moves, so every frame differs.
//!
//! Contract: [`make_clip`] writes `dir/<name>` and returns its path, or an error naming the
//! ffmpeg command and its stderr. Streams have no B-frames, a key frame every
//! [`KEY_INTERVAL`] frames, and a low-delay structure (what a streaming encoder makes). The
//! HEVC Main clip is written **without** repeated parameter sets, so the passthrough source's
//! re-insertion of VPS/SPS/PPS at every key frame is what the client relies on.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Frames between key frames (one a second at 60 fps).
pub const KEY_INTERVAL: u32 = 60;

/// HDR10 mastering display of the HDR clips, in x265's notation (chromaticities in 0.00002
/// steps, G then B then R, luminance in 0.0001 cd/m²): BT.2020 primaries, D65, 1000 / 0.0001.
pub const MASTER_DISPLAY: &str =
    "G(8500,39850)B(6550,2300)R(35400,14600)WP(15635,16450)L(10000000,1)";
/// The same for AV1's metadata OBU (AV1 §6.7.4): chromaticities in 0.16 fixed point, R, G, B
/// then white; luminance max in 24.8, min in 18.14 fixed point.
const AV1_MDCV: ([u16; 8], u32, u32) = (
    [46_399, 19_136, 11_141, 52_232, 8_585, 3_015, 20_493, 21_561],
    1000 << 8,
    2,
);
/// MaxCLL, MaxFALL of the HDR clips.
pub const CONTENT_LIGHT: (u16, u16) = (1000, 400);

/// What to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clip {
    H264,
    Hevc,
    HevcMain10Hdr,
    Av1,
    Av1TenBitHdr,
}

impl Clip {
    /// File name (its extension says the container: raw Annex-B or low-overhead OBUs).
    pub fn file_name(self) -> &'static str {
        match self {
            Clip::H264 => "clip.h264",
            Clip::Hevc => "clip-main.hevc",
            Clip::HevcMain10Hdr => "clip-main10-hdr.hevc",
            Clip::Av1 => "clip-8bit.obu",
            Clip::Av1TenBitHdr => "clip-10bit-hdr.obu",
        }
    }

    pub fn ten_bit(self) -> bool {
        matches!(self, Clip::HevcMain10Hdr | Clip::Av1TenBitHdr)
    }

    /// The ffmpeg output options (encoder, pixel format, muxer).
    fn encoder_args(self) -> Vec<String> {
        let gop = KEY_INTERVAL.to_string();
        let x265 = |extra: &str| {
            format!(
                "log-level=error:keyint={gop}:min-keyint={gop}:bframes=0:open-gop=0:\
                 scenecut=0{extra}"
            )
        };
        let (cl, fall) = CONTENT_LIGHT;
        let args: Vec<String> = match self {
            Clip::H264 => vec![
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-g",
                &gop,
                "-bf",
                "0",
                "-pix_fmt",
                "yuv420p",
                "-f",
                "h264",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            Clip::Hevc => [
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
            ]
            .into_iter()
            .map(String::from)
            .chain(["-x265-params".into(), x265(""), "-f".into(), "hevc".into()])
            .collect(),
            Clip::HevcMain10Hdr => [
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p10le",
            ]
            .into_iter()
            .map(String::from)
            .chain([
                "-x265-params".into(),
                x265(&format!(
                    ":repeat-headers=1:hdr10=1:hdr10-opt=0:master-display={MASTER_DISPLAY}:\
                     max-cll={cl},{fall}:colorprim=bt2020:transfer=smpte2084:\
                     colormatrix=bt2020nc"
                )),
                "-f".into(),
                "hevc".into(),
            ])
            .collect(),
            // libaom in real-time mode (no lag, no hidden frames): what a streaming AV1
            // encoder makes. (SVT-AV1 1.4's low-delay mode repeated pictures here; at
            // cpu-used 8 one 8-bit picture's band came out grey where six bits flip at once.)
            Clip::Av1 | Clip::Av1TenBitHdr => [
                "-c:v",
                "libaom-av1",
                "-usage",
                "realtime",
                "-cpu-used",
                "6",
                "-lag-in-frames",
                "0",
                "-g",
                &gop,
                "-crf",
                "30",
                "-b:v",
                "0",
                "-pix_fmt",
                if self == Clip::Av1 {
                    "yuv420p"
                } else {
                    "yuv420p10le"
                },
                "-f",
                "obu",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        };
        args
    }
}

/// The `drawbox` chain that writes frame number `n` (ffmpeg's frame counter, from 0) into the
/// band, as `BandLayout::for_size(width, height)` lays it out.
fn band_filters(width: u32) -> String {
    const BITS: u32 = 32;
    let block = 16 * (width / (16 * BITS)).max(1);
    let cols = (width / block).min(BITS);
    let rows = BITS.div_ceil(cols);
    let mut f = format!(
        "drawbox=x=0:y=0:w={}:h={}:color=black:t=fill",
        cols * block,
        rows * block
    );
    for i in 0..BITS {
        let (x, y) = ((i % cols) * block, (i / cols) * block);
        let weight = 1u64 << (BITS - 1 - i);
        f.push_str(&format!(
            ",drawbox=x={x}:y={y}:w={block}:h={block}:color=white:t=fill:\
             enable='eq(mod(floor(n/{weight}),2),1)'"
        ));
    }
    f
}

/// Makes `clip` (`frames` frames of `width`×`height` at `fps`) in `dir`; see the module
/// contract.
pub fn make_clip(
    clip: Clip,
    dir: &Path,
    width: u32,
    height: u32,
    fps: u32,
    frames: u32,
) -> Result<PathBuf> {
    let out = dir.join(clip.file_name());
    let source = format!(
        "testsrc2=size={width}x{height}:rate={fps},format=yuv420p,{}",
        band_filters(width)
    );
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", &source])
        .args(["-frames:v", &frames.to_string()])
        .args(clip.encoder_args())
        .arg(&out);
    let shown = format!("{cmd:?}");
    let o = cmd.output().map_err(|e| {
        Error::Setup(format!(
            "{shown}: {e} (is ffmpeg installed? scripts/setup.sh)"
        ))
    })?;
    if !o.status.success() {
        return Err(Error::Setup(format!(
            "{shown}: {}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        )));
    }
    if clip == Clip::Av1TenBitHdr {
        // No AV1 encoder of Debian 12's ffmpeg writes mastering metadata in real-time mode:
        // add HDR_MDCV and HDR_CLL metadata OBUs after every sequence header, as an HDR
        // encoder does.
        let data = std::fs::read(&out).map_err(|e| Error::Setup(format!("{out:?}: {e}")))?;
        std::fs::write(&out, with_av1_hdr_metadata(&data)?)
            .map_err(|e| Error::Setup(format!("{out:?}: {e}")))?;
    }
    Ok(out)
}

/// `data` (low-overhead OBUs, each with a size field) with MDCV + CLL metadata OBUs after every
/// sequence header OBU.
fn with_av1_hdr_metadata(data: &[u8]) -> Result<Vec<u8>> {
    let metadata = |payload: &[u8]| {
        // OBU_METADATA (5) with a size field; the payload ends in trailing bits (0x80).
        let mut o = vec![(5 << 3) | 0x02, (payload.len() + 1) as u8];
        o.extend_from_slice(payload);
        o.push(0x80);
        o
    };
    let mut mdcv = vec![2u8]; // METADATA_TYPE_HDR_MDCV
    for v in AV1_MDCV.0 {
        mdcv.extend(v.to_be_bytes());
    }
    mdcv.extend(AV1_MDCV.1.to_be_bytes());
    mdcv.extend(AV1_MDCV.2.to_be_bytes());
    let (cll, fall) = CONTENT_LIGHT;
    let mut cllp = vec![1u8]; // METADATA_TYPE_HDR_CLL
    cllp.extend(cll.to_be_bytes());
    cllp.extend(fall.to_be_bytes());
    let extra = [metadata(&mdcv), metadata(&cllp)].concat();
    let mut out = Vec::with_capacity(data.len() + data.len() / 8);
    let mut at = 0;
    let bad = |why: &str, at: usize| Error::Setup(format!("AV1 clip: {why} at byte {at}"));
    while at < data.len() {
        let h = data[at];
        let mut off = at + 1 + usize::from(h & 0x04 != 0);
        if h & 0x02 == 0 {
            return Err(bad("an OBU without a size field", at));
        }
        let mut size = 0usize;
        for i in 0..8 {
            let b = *data.get(off).ok_or_else(|| bad("truncated size", at))?;
            off += 1;
            size |= usize::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                break;
            }
        }
        let end = off + size;
        if end > data.len() {
            return Err(bad("truncated OBU", at));
        }
        out.extend_from_slice(&data[at..end]);
        if (h >> 3) & 0x0f == 1 {
            out.extend_from_slice(&extra);
        }
        at = end;
    }
    Ok(out)
}
