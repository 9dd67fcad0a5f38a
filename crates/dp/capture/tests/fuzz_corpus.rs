//! Replays the committed `video_clip` fuzz corpus (`crates/fuzz/corpus/video_clip`) through the
//! function the cargo-fuzz target calls, and checks the seeds mean what their names say: each
//! `clip_*` (tiny ffmpeg outputs: H.264, HEVC Main with parameter sets once, HEVC Main10 with
//! HDR10 SEIs, AV1 8-bit and 10-bit) opens as a passthrough stream of the named codec and bit
//! depth with a key AU that starts with its parameter sets; `broken_*` never panics.

use std::path::PathBuf;

use strahl_capture::format::CodecKind;
use strahl_capture::fuzzing::fuzz_clip;
use strahl_capture::passthrough::PassthroughSource;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/video_clip")
}

#[test]
fn video_clip_corpus_replays_and_seeds_mean_their_names() {
    let dir = corpus();
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        fuzz_clip(&data);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let want = match name.as_str() {
            "clip_h264" => Some((CodecKind::H264, 8, false)),
            "clip_hevc_main" => Some((CodecKind::Hevc, 8, false)),
            "clip_hevc_main10_hdr" => Some((CodecKind::Hevc, 10, true)),
            "clip_av1_8bit" => Some((CodecKind::Av1, 8, false)),
            "clip_av1_10bit" => Some((CodecKind::Av1, 10, false)),
            _ => None,
        };
        if let Some((codec, depth, hdr)) = want {
            let mut src = PassthroughSource::from_bytes(data).unwrap();
            let f = *src.format();
            assert_eq!((f.codec, f.bit_depth), (codec, depth), "{name}");
            assert_eq!(f.mastering.is_some(), hdr, "{name}");
            assert_eq!((f.width, f.height), (128, 96), "{name}");
            let au = src.next_au();
            assert!(au.idr, "{name}: starts on a key AU");
            let first = match codec {
                CodecKind::H264 => au.data[4] & 0x1f == 7,
                CodecKind::Hevc => (au.data[4] >> 1) & 0x3f == 32,
                CodecKind::Av1 => {
                    au.data.starts_with(&[0x12, 0x00]) && (au.data[2] >> 3) & 0xf == 1
                }
            };
            assert!(first, "{name}: key AU opens with its parameter sets");
            assert_eq!(src.len(), 8, "{name}: one AU a frame");
            seen.push(name);
        }
    }
    seen.sort();
    assert_eq!(seen.len(), 5, "clip seeds found: {seen:?}");
}
