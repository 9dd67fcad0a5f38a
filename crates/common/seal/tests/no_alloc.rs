//! Steady-state per-packet paths do not allocate (Rust heap): a counting global allocator
//! watches this thread while packets are sealed and opened after set-up. (aws-lc's C code is not
//! seen by it; `EVP_AEAD_CTX_seal/open` with caller buffers does not allocate either.)

use strahl_seal::aead::Backend;
use strahl_seal::gamestream::{AudioCipher, VideoCipher};
use strahl_seal::native::{Direction, RxOpener, TxSealer};

use strahl_testkit::{CountingAlloc, counted as watched};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn per_packet_paths_do_not_allocate() {
    for backend in Backend::ALL {
        let secret = [9u8; 32];
        let mut tx = TxSealer::new(&secret, Direction::HostToClient, backend);
        let mut rx = RxOpener::new(&secret, Direction::HostToClient, backend);
        let mut video = VideoCipher::with_backend(&[3; 16], backend);
        let audio = AudioCipher::new(&[4; 16], 77);
        let mut pkt = [0u8; 1400];
        let mut shard = [0u8; 1408];
        let (mut a_out, mut a_back) = ([0u8; 1424], [0u8; 1424]);
        // Set-up (first key derivations) happens before the watched window.
        let (ok, allocs) = watched(|| {
            for i in 0..10_000u32 {
                let aad = i.to_be_bytes();
                let (pn, tag) = tx.seal(&aad, &mut pkt)?;
                rx.open(pn, &aad, &mut pkt, &tag)?;
                video.seal_shard(i, &mut shard)?;
                video.open_shard(&mut shard)?;
                let n = audio.encrypt(i as u16, &pkt[..(i as usize % 1400)], &mut a_out)?;
                audio.decrypt(i as u16, &a_out[..n], &mut a_back)?;
            }
            Ok::<(), strahl_seal::SealError>(())
        });
        ok.unwrap();
        assert_eq!(
            allocs, 0,
            "{backend:?}: {allocs} allocations in 10,000 packets"
        );
    }
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the test above against a counter that never counts.
    let (v, allocs) = watched(|| vec![1u8; 100]);
    assert_eq!(v.len(), 100);
    assert!(allocs >= 1);
}
