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

/// The `kms_wire` target's hand-written seeds (`crates/dp/capture/fuzz_corpus/kms_wire`) replay
/// through `fuzz_kms_wire` and mean their names: `frame_*` decodes as a frame's metadata,
/// `request_*` as a mode request, `reply_<kind>*` as that reply; `broken_*` as none of them.
#[test]
fn kms_wire_corpus_replays_and_seeds_mean_their_names() {
    use strahl_capture::fuzzing::fuzz_kms_wire;
    use strahl_capture::kms_mode::{ModeReply, ModeRequest};
    use strahl_capture::kms_wire::FrameMeta;

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz_corpus/kms_wire");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        fuzz_kms_wire(&data);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let frame = FrameMeta::decode(&data).ok();
        let request = ModeRequest::decode(&data).ok();
        let reply = ModeReply::decode(&data).ok();
        let kind = match &reply {
            Some(ModeReply::Applied(_)) => "reply_applied",
            Some(ModeReply::HeldByOther) => "reply_held",
            Some(ModeReply::NotOffered(_)) => "reply_not_offered",
            Some(ModeReply::Failed(_)) => "reply_failed",
            None => "",
        };
        if name.starts_with("frame_") {
            assert!(frame.is_some(), "{name}");
        } else if name.starts_with("request_") {
            assert!(request.is_some(), "{name}");
        } else if name.starts_with("reply_") {
            assert!(
                !kind.is_empty() && name.starts_with(kind),
                "{name}: {reply:?}"
            );
        } else if name.starts_with("broken_") {
            assert!(
                frame.is_none() && request.is_none() && reply.is_none(),
                "{name}"
            );
        }
        names.push(name);
    }
    names.sort();
    for want in [
        "frame_",
        "request_",
        "reply_applied",
        "reply_held",
        "reply_not_offered",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(want)),
            "no {want}* seed in {names:?}"
        );
    }
    assert!(
        names.iter().any(|n| n.starts_with("reply_failed")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.starts_with("broken_")), "{names:?}");
}

/// One-off: writes the seeds above (run with `--ignored` when a layout changes).
#[test]
#[ignore = "writes crates/dp/capture/fuzz_corpus/kms_wire; run by hand after a layout change"]
fn write_kms_wire_seeds() {
    use strahl_capture::kms_mode::{DisplayMode, ModeReply, ModeRequest};
    use strahl_capture::kms_wire::{FLAG_CURSOR_VISIBLE, FLAG_MODES, FrameMeta};

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz_corpus/kms_wire");
    std::fs::create_dir_all(&dir).unwrap();
    let frame = FrameMeta {
        seq: 7,
        time_ns: 1_000_000_123,
        fb_id: 42,
        width: 1280,
        height: 800,
        fourcc: u32::from_le_bytes(*b"XR24"),
        modifier: 0,
        pitch: 5120,
        offset: 0,
        refresh_mhz: 60_000,
        flags: FLAG_CURSOR_VISIBLE | FLAG_MODES,
        cursor_x: 100,
        cursor_y: -3,
        cursor_w: 64,
        cursor_h: 64,
    };
    let mode = DisplayMode {
        width: 800,
        height: 600,
        refresh_mhz: 60_317,
    };
    let mut seeds: Vec<(&str, Vec<u8>)> = vec![
        ("frame_1280x800_cursor", frame.encode().to_vec()),
        ("request_800x600_60", ModeRequest { mode }.encode().to_vec()),
        ("reply_applied_800x600", ModeReply::Applied(mode).encode()),
        ("reply_held", ModeReply::HeldByOther.encode()),
        (
            "reply_not_offered",
            ModeReply::NotOffered("1280x800@75 (preferred), 1024x768@60, 800x600@60.32".into())
                .encode(),
        ),
        (
            "reply_failed",
            ModeReply::Failed("atomic commit: EINVAL".into()).encode(),
        ),
    ];
    let mut short = frame.encode().to_vec();
    short.pop();
    seeds.push(("broken_frame_short", short));
    let mut big = ModeRequest { mode }.encode().to_vec();
    big[12..16].copy_from_slice(&100_000u32.to_le_bytes());
    seeds.push(("broken_request_too_wide", big));
    let mut text = ModeReply::Failed("why".into()).encode();
    text[20] = 200;
    seeds.push(("broken_reply_text_length", text));
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
