//! Steady-state calls do not allocate on the Rust side: synthetic frame drawing, OpenH264 encode
//! into a reused AU buffer (P-frames and an IDR on request), and passthrough replay. Counted by a
//! wrapping global allocator, per thread. OpenH264's own C `malloc`s are not visible here; it
//! allocates its buffers at initialisation.

use strahl_testkit::{CountingAlloc, allocs_during};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

use strahl_capture::passthrough::PassthroughSource;
use strahl_capture::synthetic::{SyntheticConfig, SyntheticSource};
use strahl_capture::{Frame, PixelFormat, VideoSource};
use strahl_encode::Encoder;
use strahl_encode::openh264_enc::{OpenH264Config, OpenH264Encoder};
use strahl_encode::passthrough::PassthroughEncoder;

#[test]
fn steady_state_calls_do_not_allocate() {
    // The counter itself works (otherwise every assertion below would pass vacuously).
    assert_eq!(
        allocs_during(|| drop(std::hint::black_box(vec![1u8; 100]))),
        1
    );

    let (w, h) = (320, 240);
    let mut src = SyntheticSource::new(SyntheticConfig {
        width: w,
        height: h,
        fps: 60,
        format: PixelFormat::Nv12,
        first_frame_number: 0,
    })
    .unwrap();
    let mut frame = Frame::new(w, h, PixelFormat::Nv12).unwrap();
    let mut enc = OpenH264Encoder::new(OpenH264Config::new(w, h, 60, 2_000_000)).unwrap();
    // Give the AU buffer room for an IDR, then warm up (first encode initialises OpenH264).
    let mut au = Vec::with_capacity(256 * 1024);
    let mut stream = Vec::new();
    for _ in 0..5 {
        src.next_frame(&mut frame).unwrap();
        enc.encode(&frame, &mut au).unwrap();
        stream.extend_from_slice(&au);
    }
    let n = allocs_during(|| {
        for i in 0..30 {
            if i == 10 {
                enc.request_idr();
            }
            src.next_frame(&mut frame).unwrap();
            enc.encode(&frame, &mut au).unwrap();
        }
    });
    assert_eq!(n, 0, "synthetic draw + openh264 encode allocated {n} times");

    let mut pass = PassthroughEncoder::new(PassthroughSource::from_bytes(stream).unwrap());
    pass.encode(&frame, &mut au).unwrap();
    let n = allocs_during(|| {
        for i in 0..20 {
            if i == 7 {
                pass.request_idr();
            }
            pass.encode(&frame, &mut au).unwrap();
        }
    });
    assert_eq!(n, 0, "passthrough allocated {n} times");
}
