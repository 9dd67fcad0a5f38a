//! Steady-state calls do not allocate: GF(2^8) encode/decode and audio always, GF(2^16)
//! encode/decode once the encoder/decoder has seen the shape. Counted by a wrapping global
//! allocator, per thread (the test harness runs other tests on other threads).

use strahl_fec::gf8::{AudioFec, Gf8Code, Gf8Decoder, Gf8Kernel};
use strahl_fec::gf16::{Gf16Decoder, Gf16Encoder};

use strahl_testkit::{CountingAlloc, allocs_during};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn steady_state_calls_do_not_allocate() {
    const LEN: usize = 1392;
    // The counter itself works (otherwise every assertion below would pass vacuously).
    assert_eq!(
        allocs_during(|| drop(std::hint::black_box(vec![1u8; 100]))),
        1
    );
    // GF(2^8) (212, 43) on every kernel, encode then decode of 43 lost data shards.
    let (d, p) = (212, 43);
    let code = Gf8Code::new(d, p).unwrap();
    let mut all: Vec<u8> = (0..(d + p) * LEN).map(|i| (i * 7 + i / 3) as u8).collect();
    let mut present = vec![true; d + p];
    for k in 0..p {
        present[k * d / p] = false;
    }
    for kernel in Gf8Kernel::ALL.into_iter().filter(|k| k.is_available()) {
        let mut dec = Gf8Decoder::with_kernel(kernel);
        let (data, parity) = all.split_at_mut(d * LEN);
        let drefs: Vec<&[u8]> = data.chunks_exact(LEN).collect();
        let mut prefs: Vec<&mut [u8]> = parity.chunks_exact_mut(LEN).collect();
        let n = allocs_during(|| code.encode_with(kernel, &drefs, &mut prefs).unwrap());
        assert_eq!(n, 0, "gf8 encode on {} allocated", kernel.name());
        drop((drefs, prefs));
        let mut shards: Vec<&mut [u8]> = all.chunks_exact_mut(LEN).collect();
        let n = allocs_during(|| dec.reconstruct(code, &mut shards, &present).unwrap());
        assert_eq!(n, 0, "gf8 decode on {} allocated", kernel.name());
    }

    // Audio 4+2.
    let mut audio = vec![vec![5u8; 64]; 6];
    {
        let (data, parity) = audio.split_at_mut(4);
        let drefs: [&[u8]; 4] = std::array::from_fn(|i| data[i].as_slice());
        let (p0, p1) = parity.split_at_mut(1);
        let mut prefs = [p0[0].as_mut_slice(), p1[0].as_mut_slice()];
        assert_eq!(
            allocs_during(|| AudioFec::encode(&drefs, &mut prefs).unwrap()),
            0
        );
    }
    let mut it = audio.iter_mut();
    let mut refs: [&mut [u8]; 6] = std::array::from_fn(|_| it.next().unwrap().as_mut_slice());
    let mask = [false, true, true, false, true, true];
    assert_eq!(
        allocs_during(|| AudioFec::reconstruct(&mut refs, &mask).unwrap()),
        0
    );

    // GF(2^16): the first call of a shape may allocate the crate's work buffers, later ones not.
    let (k, r) = (188, 38);
    let mut frame: Vec<u8> = (0..(k + r) * LEN).map(|i| (i * 11 + i / 9) as u8).collect();
    let mut enc = Gf16Encoder::new();
    let mut dec = Gf16Decoder::new();
    let mut present = vec![true; k + r];
    for j in 0..r {
        present[j * k / r] = false;
    }
    for round in 0..3 {
        let (data, parity) = frame.split_at_mut(k * LEN);
        let drefs: Vec<&[u8]> = data.chunks_exact(LEN).collect();
        let mut prefs: Vec<&mut [u8]> = parity.chunks_exact_mut(LEN).collect();
        let n = allocs_during(|| enc.encode(&drefs, &mut prefs).unwrap());
        assert!(
            round == 0 || n == 0,
            "gf16 encode allocated {n} times in round {round}"
        );
        drop((drefs, prefs));
        let mut shards: Vec<&mut [u8]> = frame.chunks_exact_mut(LEN).collect();
        let n = allocs_during(|| dec.reconstruct(k, r, &mut shards, &present).unwrap());
        assert!(
            round == 0 || n == 0,
            "gf16 decode allocated {n} times in round {round}"
        );
    }

    // GF(2^16) few-erasure path (4 lost, a partial last chunk): after the first call of a
    // shape, nothing allocates.
    let (k, r, len) = (60, 12, 1428);
    let mut frame: Vec<u8> = (0..(k + r) * len).map(|i| (i * 13 + i / 5) as u8).collect();
    {
        let (data, parity) = frame.split_at_mut(k * len);
        let drefs: Vec<&[u8]> = data.chunks_exact(len).collect();
        let mut prefs: Vec<&mut [u8]> = parity.chunks_exact_mut(len).collect();
        enc.encode(&drefs, &mut prefs).unwrap();
    }
    let mut present = vec![true; k + r];
    for j in 0..4 {
        present[j * 11 + 2] = false;
    }
    let mut dec = Gf16Decoder::new();
    for round in 0..3 {
        let mut shards: Vec<&mut [u8]> = frame.chunks_exact_mut(len).collect();
        let n = allocs_during(|| dec.reconstruct(k, r, &mut shards, &present).unwrap());
        assert!(
            round == 0 || n == 0,
            "gf16 few-erasure decode allocated {n} times in round {round}"
        );
    }
    assert_eq!(dec.fast_decodes(), 3, "the few-erasure path ran");
}
