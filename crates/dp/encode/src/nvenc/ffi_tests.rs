//! The real function-table binding ([`super::ffi::RealNvenc`]) against a C stand-in for the
//! driver compiled at test time against the SDK header the `nvidia-video-codec-sdk` crate
//! bundles (`tests/fixtures/nvenc_table_stub.c`): struct versions, the low-latency CBR
//! configuration and the resource/picture fields cross the C ABI as the header defines them.
//! CUDA is the recording fake (the stub never touches the device pointers). The stub reports
//! what it saw in each AU's payload; misuse in a release call aborts the test process.

use std::path::{Path, PathBuf};
use std::process::Command;

use strahl_capture::{Frame, PixelFormat};

use super::api::Codec;
use super::fake::FakeGpu;
use super::ffi::RealNvenc;
use super::session::{NvencConfig, NvencEncoder};
use crate::Encoder;

/// `src/sys/headers` of the nvidia-video-codec-sdk package this build uses (from
/// `cargo metadata`, so it works wherever the registry or a vendor directory is).
fn sdk_headers() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = String::from_utf8(out.stdout).unwrap();
    let key = "\"manifest_path\":\"";
    json.match_indices(key)
        .map(|(i, _)| {
            let rest = &json[i + key.len()..];
            PathBuf::from(&rest[..rest.find('"').unwrap()])
        })
        .find(|p| {
            p.parent()
                .and_then(Path::file_name)
                .is_some_and(|d| d.to_string_lossy().starts_with("nvidia-video-codec-sdk-"))
        })
        .expect("nvidia-video-codec-sdk in cargo metadata")
        .parent()
        .unwrap()
        .join("src/sys/headers")
}

fn build_stub(name: &str, defines: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strahl-nvenc-table-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lib = dir.join(format!("lib{name}.so"));
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nvenc_table_stub.c");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-Wall"])
        .args(defines)
        .arg("-I")
        .arg(sdk_headers())
        .arg("-o")
        .arg(&lib)
        .arg(&src)
        .output()
        .expect("a C compiler (`cc`) is required for this test");
    assert!(
        out.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}

/// The stub's report: the ASCII after the last NAL header of the AU.
fn report(au: &[u8]) -> String {
    let start = au
        .windows(3)
        .position(|w| w == b"ts=")
        .expect("stub report");
    String::from_utf8_lossy(&au[start..]).into_owned()
}

#[test]
fn the_real_table_binding_marshals_what_the_header_defines() {
    let lib = build_stub("nvenc-table-stub", &[]);
    let nv = RealNvenc::load_from(lib.to_str().unwrap()).unwrap();
    let gpu = FakeGpu::default();
    let mut enc =
        NvencEncoder::open(nv, gpu.cuda(), NvencConfig::h264(320, 240, 60, 4_800_000)).unwrap();

    // Capability queries crossed the ABI: the stub offers H.264 and HEVC (10-bit on HEVC).
    let caps = enc.capabilities();
    assert_eq!(
        caps.iter().map(|c| c.codec).collect::<Vec<_>>(),
        [Codec::H264, Codec::Hevc]
    );
    assert_eq!((caps[0].max_width, caps[0].max_height), (4096, 2304));
    assert!(!caps[0].ten_bit && caps[1].ten_bit && caps[0].ref_pic_invalidation);

    let mut f = Frame::new(320, 240, PixelFormat::I420).unwrap();
    let mut out = Vec::new();
    let mut aus = Vec::new();
    for n in 0..3 {
        f.frame_number = n;
        let info = enc.encode(&f, &mut out).unwrap();
        aus.push((info.idr, report(&out)));
    }
    // IYUV = 0x100, FORCEIDR|OUTPUT_SPSPPS = 6, infinite GOP and IDR period, SPS/PPS repeated,
    // ultra-low-latency tuning (3), High profile, CBR at the rate with a one-frame VBV.
    let session = "rate=4800000 vbv=80000 gop=4294967295 idrp=4294967295 rep=1 tune=3 high=1";
    assert_eq!(
        aus[0],
        (
            true,
            format!("ts=0 flags=6 fmt=256 pitch=320 size=320x240 reg=320x240/320/256 {session}")
        )
    );
    assert_eq!(
        aus[2],
        (
            false,
            format!("ts=2 flags=0 fmt=256 pitch=320 size=320x240 reg=320x240/320/256 {session}")
        )
    );

    // Bitrate by reconfigure (no reset, no IDR); IDR and invalidation on request.
    enc.set_bitrate(9_600_000).unwrap();
    f.frame_number = 3;
    let info = enc.encode(&f, &mut out).unwrap();
    assert!(!info.idr);
    assert!(
        report(&out).contains("rate=9600000 vbv=160000"),
        "{}",
        report(&out)
    );
    enc.invalidate_frames(2, 3);
    assert_eq!(enc.invalidations(), 2);
    enc.request_idr();
    f.frame_number = 4;
    assert!(enc.encode(&f, &mut out).unwrap().idr);
    assert!(report(&out).starts_with("ts=4 flags=6"));

    // Drop: the stub aborts the process if anything is still registered, mapped or locked.
    drop(enc);
    assert_eq!(gpu.live(), Vec::<String>::new());

    // A GPU without an NVENC engine: the driver's refusal is the typed "not available" (what
    // select::build turns into the openh264 fallback), and the CUDA context is released.
    let lib = build_stub("nvenc-no-engine", &["-DNO_ENCODE_DEVICE"]);
    // Held so the library (and the stub's state) stays loaded between the two opens.
    let _loaded = RealNvenc::load_from(lib.to_str().unwrap()).unwrap();
    let nv = RealNvenc::load_from(lib.to_str().unwrap()).unwrap();
    let gpu = FakeGpu::default();
    let err = NvencEncoder::open(nv, gpu.cuda(), NvencConfig::h264(320, 240, 60, 1_000_000))
        .err()
        .expect("no encode device");
    assert!(
        matches!(err, crate::EncodeError::NotAvailable(ref m) if m.contains("NV_ENC_ERR_NO_ENCODE_DEVICE")),
        "{err}"
    );
    assert_eq!(gpu.live(), Vec::<String>::new());
    // The failed open's handle was destroyed: the stub aborts a second open otherwise.
    let nv = RealNvenc::load_from(lib.to_str().unwrap()).unwrap();
    let again = NvencEncoder::open(nv, gpu.cuda(), NvencConfig::h264(320, 240, 60, 1_000_000));
    assert!(matches!(again, Err(crate::EncodeError::NotAvailable(_))));
    std::fs::remove_dir_all(lib.parent().unwrap()).unwrap();
}
