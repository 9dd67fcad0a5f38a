//! KMS capture allocates nothing per picture in its steady state, on the zero-copy path (the
//! newest picture received over the helper's socket and held unmapped, then described for
//! NVENC by `strahl_encode::DmabufFrame::from_kms`) and on the CPU copy of a held picture
//! (mapped and converted into the frame the encoder reads). The data plane's encode tile runs
//! these once per frame; its own allocation test (`dataplane/tests/media_alloc.rs`) streams
//! the synthetic source, so this covers the KMS half. Counted per thread: the test thread
//! does every step (the helper's sends included, which must not allocate either).

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use strahl_capture::kms_source::KmsSource;
use strahl_capture::kms_video::KmsVideoSource;
use strahl_capture::kms_wire::{FrameMeta, pair, send_frame};
use strahl_capture::{Frame, PixelFormat};
use strahl_encode::DmabufFrame;
use strahl_testkit::{CountingAlloc, allocs_during};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const W: u32 = 320;
const H: u32 = 240;

/// A linear XR24 "scan-out buffer" (a memfd standing in for the helper's dmabuf).
fn buffer(grey: u8) -> (OwnedFd, FrameMeta, u64) {
    let fd = rustix::fs::memfd_create("kms-alloc", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::io::write(&fd, &vec![grey; (W * 4 * H) as usize]).unwrap();
    let ino = std::fs::File::from(fd.try_clone().unwrap())
        .metadata()
        .unwrap()
        .ino();
    let meta = FrameMeta {
        width: W,
        height: H,
        pitch: W * 4,
        fourcc: u32::from_le_bytes(*b"XR24"),
        ..FrameMeta::default()
    };
    (fd, meta, ino)
}

#[test]
fn kms_pictures_taken_zero_copy_or_copied_by_the_cpu_allocate_nothing_per_picture() {
    // The counter works (else the assertions below would pass vacuously).
    assert!(allocs_during(|| drop(std::hint::black_box(vec![1u8; 64]))) > 0);

    let (helper, dp) = pair().unwrap();
    let mut v = KmsVideoSource::new(KmsSource::from_socket(dp), W, H, 60).unwrap();
    let mut frame = Frame::new(W, H, PixelFormat::I420).unwrap();
    // A scan-out flipping between two buffers; the helper exports each flip as a new fd.
    let bufs = [buffer(60), buffer(200)];
    let mut round = |k: usize, cpu: bool| {
        let (fd, meta, ino) = &bufs[k % 2];
        send_frame(helper.as_fd(), meta, fd.as_fd(), None).unwrap();
        let held = v.next_dmabuf().unwrap();
        let (n, pts) = (held.frame_number, held.pts_us);
        let (m, dmabuf) = held.picture.expect("a picture was sent");
        let f = DmabufFrame::from_kms(m, dmabuf, n, pts).unwrap();
        assert_eq!((f.buffer_id, f.frame_number), (*ino, k as u32));
        if cpu {
            v.cpu_frame(&mut frame, n, pts).unwrap();
            let luma = frame.y()[0];
            assert!(
                if k.is_multiple_of(2) {
                    luma < 100
                } else {
                    luma > 150
                },
                "{luma}"
            );
        }
    };
    // Warm-up: the first picture is a new display size (said once in the log).
    round(0, true);
    round(1, true);
    let zero_copy = allocs_during(|| (2..102).for_each(|k| round(k, false)));
    let cpu = allocs_during(|| (102..202).for_each(|k| round(k, true)));
    assert_eq!((zero_copy, cpu), (0, 0), "allocations in 100 pictures each");
}
