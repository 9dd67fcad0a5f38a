//! `strahl-dataplane selftest --out FILE`, run as a user runs it: on a machine without an
//! NVIDIA GPU and without the KMS capture helper it must choose the synthetic source and
//! OpenH264, say why on one line each, and write a stream that decodes to the frames captured,
//! in order.

use std::process::Command;

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use strahl_capture::annexb::{access_unit_ranges, is_idr_au, nal_units};
use strahl_capture::synthetic::read_frame_number_strided;

#[test]
fn selftest_without_a_gpu_picks_synthetic_and_openh264_and_writes_a_decodable_stream() {
    if strahl_encode::nvenc::detect().is_ok() {
        eprintln!("NVENC driver present: this test covers the GPU-less choice only");
        return;
    }
    let dir = std::env::temp_dir().join(format!("strahl-selftest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("selftest.h264");
    let run = Command::new(env!("CARGO_BIN_EXE_strahl-dataplane"))
        .args([
            "selftest",
            "--seconds",
            "0.4",
            "--size",
            "320x240",
            "--fps",
            "30",
        ])
        .arg("--out")
        .arg(&out)
        // No capture helper there: the synthetic pattern, and the line says why.
        .env("STRAHL_KMS_SOCKET", dir.join("no-helper.sock"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with("capture: synthetic — no KMS capture")
            && lines[0].contains("no-helper.sock"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("encoder: openh264 — openh264: ")
            && lines[1].contains("libnvidia-encode.so.1"),
        "the reason names the missing driver: {stdout}"
    );
    assert!(lines[2].starts_with("wrote 12 frames (1 IDR"), "{stdout}");

    // The file: 12 AUs, the first an IDR with SPS, PPS first; decoded, the frame numbers
    // drawn by the source come back 0..12 in order.
    let stream = std::fs::read(&out).unwrap();
    let aus = access_unit_ranges(&stream);
    assert_eq!(aus.len(), 12);
    let first: Vec<u8> = nal_units(&stream[aus[0].clone()])
        .map(|n| n.kind())
        .collect();
    assert_eq!(&first[..2], [7, 8], "SPS, PPS first");
    assert!(is_idr_au(&stream[aus[0].clone()]));
    let mut dec = Decoder::new().unwrap();
    let mut numbers = Vec::new();
    for au in aus {
        let pic = dec.decode(&stream[au]).unwrap().expect("a picture per AU");
        numbers.push(read_frame_number_strided(
            pic.y(),
            pic.strides().0,
            320,
            240,
        ));
    }
    assert_eq!(numbers, (0..12).map(Some).collect::<Vec<_>>());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn selftest_reports_a_bad_output_path() {
    let run = Command::new(env!("CARGO_BIN_EXE_strahl-dataplane"))
        .args(["selftest", "--seconds", "0.1", "--size", "320x240", "--out"])
        .arg("/nonexistent-dir/x.h264")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("cannot create /nonexistent-dir/x.h264"),
        "{stderr}"
    );
}
