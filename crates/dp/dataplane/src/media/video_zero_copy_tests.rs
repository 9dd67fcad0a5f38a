//! Zero-copy sessions ([`super::zero_copy`]) through the real encode tile: a session built by
//! `VideoPipeline::build` with `[video] source = "kms"` connects to a stand-in capture helper
//! (this test, on a listening socket, sending memfds as the "dmabufs" over SCM_RIGHTS in the
//! helper's wire format) and encodes with NVENC on the recording fake. What the fake records
//! shows which path each frame took: a dmabuf import and ARGB pictures (zero-copy) or uploads
//! and I420 pictures (the CPU copy); its input timestamps are the frame numbers.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use openh264::formats::YUVSource;
use strahl_capture::kms_map::i420_to_xrgb;
use strahl_capture::kms_wire::{FrameMeta, accept, listen, send_frame};
use strahl_capture::synthetic::{SyntheticConfig, SyntheticSource, read_frame_number_strided};
use strahl_capture::{Frame, PixelFormat};
use strahl_encode::nvenc::api::{BufferFormat, NvError, fourcc};
use strahl_encode::nvenc::fake::{Call, FakeGpu};
use strahl_ipc::Codec;
use strahl_metrics::{Metric, Registry};

use super::super::ring::{self, Consumer};
use super::super::{Shared, VIDEO, VideoSourceKind};
use super::tests::{next_unit, session, settings, starts_with_sps};
use super::{Source, VideoPipeline, VideoProducer};

/// A memfd holding synthetic picture `n` as XR24, linear (stands in for a scan-out dmabuf).
fn picture(w: u32, h: u32, n: u32) -> (OwnedFd, FrameMeta) {
    let src = SyntheticSource::new(SyntheticConfig {
        width: w,
        height: h,
        fps: 60,
        format: PixelFormat::I420,
        first_frame_number: 0,
    })
    .unwrap();
    let mut f = Frame::new(w, h, PixelFormat::I420).unwrap();
    src.draw(n, &mut f).unwrap();
    let pitch = w as usize * 4;
    let mut rgb = vec![0u8; pitch * h as usize];
    i420_to_xrgb(&f, &mut rgb, pitch);
    let fd = rustix::fs::memfd_create("zero-copy-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::io::write(&fd, &rgb).unwrap();
    let meta = FrameMeta {
        fb_id: 40 + n,
        width: w,
        height: h,
        pitch: pitch as u32,
        fourcc: fourcc::XRGB8888,
        ..FrameMeta::default()
    };
    (fd, meta)
}

/// A running zero-copy session: its helper end, its units, the fake and the counters.
struct Rig {
    dir: PathBuf,
    helper: OwnedFd,
    units: Consumer,
    shared: Arc<Shared>,
    metrics: &'static Registry,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl Rig {
    /// Builds a 320×240 H.264 session on `gpu` with the KMS source at a fresh socket, sends
    /// `first` before the tile starts (so frame 0 already has a picture), starts the tile.
    fn start(gpu: &FakeGpu, tag: &str, first: &(OwnedFd, FrameMeta)) -> Self {
        let dir = std::env::temp_dir().join(format!("strahl-zc-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("kms.sock");
        let listener = listen(&sock).unwrap();
        let mut settings = settings(gpu);
        settings.video_source = VideoSourceKind::Kms(sock);
        let pipeline =
            VideoPipeline::build(&session(Codec::H264, 0), &settings, 2_000, 1 << 20, 1).unwrap();
        assert!(
            matches!(pipeline.source, Source::Dmabuf(_)),
            "NVENC takes dmabufs"
        );
        let helper = accept(listener.as_fd(), Duration::from_secs(5))
            .unwrap()
            .expect("the session connected");
        send_frame(helper.as_fd(), &first.1, first.0.as_fd(), None).unwrap();
        let metrics: &'static Registry = Box::leak(Box::new(Registry::new()));
        let shared = Arc::new(Shared::new(2_000));
        shared.ready[VIDEO].store(true, Ordering::Release);
        let (producer, units) = ring::ring(3, 1 << 20, None);
        let tile = VideoProducer::new(7, 60, pipeline, producer, shared.clone(), metrics);
        Self {
            dir,
            helper,
            units,
            shared,
            metrics,
            worker: Some(std::thread::spawn(move || tile.run())),
        }
    }

    fn send(&self, p: &(OwnedFd, FrameMeta)) {
        send_frame(self.helper.as_fd(), &p.1, p.0.as_fd(), None).unwrap();
    }

    /// Takes units until `done` holds (within 10 s).
    fn until(&mut self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            next_unit(&mut self.units, |_| ());
        }
    }

    /// Stops the tile; the session must not have failed.
    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.worker.take().unwrap().join().unwrap();
        assert_eq!(self.shared.take_failure(), None, "the session went on");
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The pictures NVENC encoded: (input format, frame number), in order.
fn encoded(gpu: &FakeGpu) -> Vec<(BufferFormat, u64)> {
    gpu.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Encode(p) => Some((p.format, p.timestamp)),
            _ => None,
        })
        .collect()
}

fn count(gpu: &FakeGpu, name: &str) -> usize {
    gpu.names().iter().filter(|&&n| n == name).count()
}

/// Frame numbers 0, 1, 2, … in order: none lost, none repeated, whichever path encoded them.
fn assert_dense(pictures: &[(BufferFormat, u64)]) {
    let numbers: Vec<u64> = pictures.iter().map(|p| p.1).collect();
    let expected: Vec<u64> = (0..numbers.len() as u64).collect();
    assert_eq!(numbers, expected);
}

#[test]
fn kms_dmabufs_reach_nvenc_unmapped_another_display_size_takes_the_cpu_and_a_lost_gpu_openh264() {
    let gpu = FakeGpu::default();
    let (a, b) = (picture(320, 240, 5), picture(320, 240, 6));
    let mut rig = Rig::start(&gpu, "zero-copy", &a);
    assert!(next_unit(&mut rig.units, |u| u.meta.keyframe
        && starts_with_sps(u.unit())));
    rig.until("10 frames", || encoded(&gpu).len() >= 10);
    // Imported once (cached by buffer), linear as sent, never uploaded; ARGB straight from
    // the scan-out layout.
    assert_eq!(
        gpu.calls()
            .iter()
            .filter(|c| matches!(c, Call::Import { .. }))
            .collect::<Vec<_>>(),
        [&Call::Import {
            size: 320 * 4 * 240,
            modifier: fourcc::MOD_LINEAR
        }]
    );
    assert_eq!(count(&gpu, "upload"), 0);
    assert!(encoded(&gpu).iter().all(|p| p.0 == BufferFormat::Argb));

    // A second buffer is imported too; the first one again (a new fd each flip, as the helper
    // sends) is the cached import.
    rig.send(&b);
    rig.until("the second buffer", || count(&gpu, "import") == 2);
    rig.send(&a);
    let n = encoded(&gpu).len();
    rig.until("more frames", || encoded(&gpu).len() >= n + 5);
    assert_eq!(count(&gpu, "import"), 2);
    assert_eq!(count(&gpu, "upload"), 0);

    // The display at another size: those frames take the CPU copy (scaled), without leaving
    // zero-copy for the session; the stream's size again: dmabufs again.
    rig.send(&picture(640, 480, 9));
    rig.until("an uploaded frame", || count(&gpu, "upload") > 0);
    rig.send(&b);
    let n = encoded(&gpu).len();
    rig.until("dmabufs again", || {
        encoded(&gpu)[n..]
            .iter()
            .filter(|p| p.0 == BufferFormat::Argb)
            .count()
            >= 3
    });
    assert_eq!(rig.metrics.get(Metric::VideoZeroCopyFallbacks), 0);

    // The GPU falls off the bus while mapping a dmabuf: the same picture is converted on the
    // CPU and encoded by openh264 as an IDR (the client recovers), then every frame.
    gpu.lose_device_at("map", 0);
    let mut dec = openh264::decoder::Decoder::new().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let number = loop {
        assert!(
            Instant::now() < deadline,
            "no openh264 IDR after the GPU was lost"
        );
        // The fake's AUs end in 0xa5 padding; openh264's do not.
        let au = next_unit(&mut rig.units, |u| {
            (u.meta.keyframe && starts_with_sps(u.unit()) && !u.unit().ends_with(&[0xa5; 16]))
                .then(|| u.unit().to_vec())
        });
        if let Some(au) = au {
            let pic = dec.decode(&au).unwrap().expect("a picture per AU");
            break read_frame_number_strided(pic.y(), pic.strides().0, 320, 240);
        }
    };
    assert_eq!(number, Some(6), "the held picture, read by the CPU");
    for _ in 0..3 {
        assert!(!next_unit(&mut rig.units, |u| u
            .unit()
            .ends_with(&[0xa5; 16])));
    }
    rig.stop();
    assert_eq!(rig.metrics.get(Metric::VideoZeroCopyFallbacks), 1);
    let pictures = encoded(&gpu);
    assert_dense(&pictures);
    let on_gpu = pictures
        .iter()
        .filter(|p| p.0 == BufferFormat::Argb)
        .count();
    assert_eq!(rig.metrics.get(Metric::VideoFramesZeroCopy), on_gpu as u64);
    assert!(
        rig.metrics.get(Metric::VideoFramesEncoded) > pictures.len() as u64,
        "openh264 encoded frames after the loss"
    );
    assert_eq!(gpu.live(), Vec::<String>::new());
    assert_eq!(gpu.violations(), Vec::<String>::new());
}

#[test]
fn an_import_the_gpu_refuses_continues_the_session_on_the_cpu_copy_with_dense_frame_numbers() {
    let gpu = FakeGpu::default();
    gpu.fail_once(
        "import",
        0,
        NvError::Unsupported("fake: this modifier cannot be imported".into()),
    );
    let (a, b) = (picture(320, 240, 5), picture(320, 240, 6));
    let mut rig = Rig::start(&gpu, "refused", &a);
    // Frame 0's import is refused: the same frame, number 0, is encoded from the CPU copy as
    // the stream's first IDR, by NVENC (the session itself works).
    assert!(next_unit(&mut rig.units, |u| u.meta.keyframe
        && starts_with_sps(u.unit())));
    rig.until("10 frames", || encoded(&gpu).len() >= 10);
    rig.send(&b);
    let n = count(&gpu, "upload");
    rig.until("more frames", || count(&gpu, "upload") >= n + 5);
    rig.stop();
    // Tried once, not per frame or per new buffer: the session stays on the CPU copy.
    assert_eq!(count(&gpu, "import"), 1);
    assert_eq!(rig.metrics.get(Metric::VideoZeroCopyFallbacks), 1);
    assert_eq!(rig.metrics.get(Metric::VideoFramesZeroCopy), 0);
    let pictures = encoded(&gpu);
    assert!(pictures.iter().all(|p| p.0 == BufferFormat::Iyuv));
    assert_eq!(count(&gpu, "upload"), pictures.len());
    assert_dense(&pictures);
    assert_eq!(
        rig.metrics.get(Metric::VideoFramesEncoded),
        pictures.len() as u64
    );
    assert_eq!(gpu.violations(), Vec::<String>::new());
}
