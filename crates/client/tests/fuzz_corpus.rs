//! Replays the seed corpus under `fuzz_corpus/media/` (and whatever the fuzzer added there)
//! through the entry point the cargo-fuzz target `client_media` calls, and checks the named
//! seeds reach what their names say. `generate_seed_corpus` (ignored) rewrites the seeds:
//! `STRAHL_WRITE_CORPUS=1 cargo test -p strahl-client --test fuzz_corpus -- --ignored`.

use std::path::PathBuf;

use strahl_client::fuzzing::{MediaRun, fuzz_media};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz_corpus/media")
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = dir();
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// Script ops (see `fuzz_media`).
mod op {
    pub fn send(s: &mut Vec<u8>, len: u16, fec: u8, keyframe: bool) {
        s.push(0);
        s.extend_from_slice(&len.to_be_bytes());
        s.push(fec << 1 | u8::from(keyframe));
    }
    pub fn deliver(s: &mut Vec<u8>, n: usize) {
        s.extend(std::iter::repeat_n(1, n));
    }
    pub fn drop(s: &mut Vec<u8>, n: usize) {
        s.extend(std::iter::repeat_n(3, n));
    }
    pub fn deliver_at(s: &mut Vec<u8>, i: u8) {
        s.extend_from_slice(&[4, i]);
    }
    pub fn wait_ms(s: &mut Vec<u8>, ms: u16) {
        s.push(5);
        s.extend_from_slice(&(ms.saturating_mul(1000) / 16).max(1).to_be_bytes());
    }
    pub fn corrupt(s: &mut Vec<u8>, at: u16, bit: u8) {
        s.push(6);
        s.extend_from_slice(&at.to_be_bytes());
        s.push(bit);
    }
    pub fn replay(s: &mut Vec<u8>, i: u8) {
        s.extend_from_slice(&[7, i]);
    }
    pub fn garbage(s: &mut Vec<u8>, bytes: &[u8]) {
        s.extend_from_slice(&[8, bytes.len() as u8]);
        s.extend_from_slice(bytes);
    }
    pub fn forged_tag(s: &mut Vec<u8>, pn_offset: u8, bytes: &[u8]) {
        s.extend_from_slice(&[9, bytes.len() as u8, pn_offset]);
        s.extend_from_slice(bytes);
    }
    pub fn forge_header(s: &mut Vec<u8>, h: [u8; 7]) {
        s.push(10);
        s.extend_from_slice(&h);
    }
    pub fn reconfigure(s: &mut Vec<u8>) {
        s.extend_from_slice(&[11, 0]);
    }
}

/// Byte 0: codec (0 passthrough, 1 H.264, 2 other) + shard length + window (see `fuzz_media`).
const PASSTHROUGH_192_W16: u8 = 0x48;
const H264_192_W16: u8 = 0x49;
const OTHER_192_W16: u8 = 0x4A;
const PASSTHROUGH_64_W2: u8 = 0x00;

/// `n` frames of `len` bytes, each sent whole and followed by `gap` ms.
fn clean(cfg: u8, n: usize, len: u16) -> Vec<u8> {
    let mut s = vec![cfg];
    for i in 0..n {
        op::send(&mut s, len, 20, i == 0);
        op::deliver(&mut s, 16);
        op::wait_ms(&mut s, 5);
    }
    s
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut v = vec![
        ("empty.bin", vec![]),
        ("clean.bin", clean(PASSTHROUGH_192_W16, 10, 1000)),
        ("h264.bin", clean(H264_192_W16, 6, 700)),
        ("other_codec.bin", clean(OTHER_192_W16, 4, 300)),
    ];
    // 1000 B in 192 B shards: 6 data + 2 parity. Two data shards lost: FEC rebuilds them.
    let mut s = vec![PASSTHROUGH_192_W16];
    for i in 0..6 {
        op::send(&mut s, 1000, 20, i == 0);
        op::deliver(&mut s, 1);
        op::drop(&mut s, 2);
        op::deliver(&mut s, 5);
        op::wait_ms(&mut s, 5);
    }
    v.push(("loss_within_parity.bin", s));
    // Five shards of frame 1 lost: past the parity; frame 2 does not decode without it, so a
    // keyframe request, then a keyframe.
    let mut s = vec![PASSTHROUGH_192_W16];
    op::send(&mut s, 1000, 20, true);
    op::deliver(&mut s, 8);
    op::send(&mut s, 1000, 20, false);
    op::drop(&mut s, 5);
    op::deliver(&mut s, 3);
    op::send(&mut s, 1000, 20, false);
    op::deliver(&mut s, 8);
    op::wait_ms(&mut s, 150);
    op::send(&mut s, 1000, 20, true);
    op::deliver(&mut s, 8);
    op::wait_ms(&mut s, 300);
    v.push(("loss_past_parity.bin", s));
    // Shards delivered out of order, frames interleaved.
    let mut s = vec![PASSTHROUGH_192_W16];
    op::send(&mut s, 1000, 20, true);
    op::send(&mut s, 900, 20, false);
    for i in [7u8, 3, 9, 0, 5, 1, 2, 0, 4, 1, 0, 0, 0, 0, 0, 0] {
        op::deliver_at(&mut s, i);
    }
    op::wait_ms(&mut s, 5);
    v.push(("reorder.bin", s));
    // Bit flips in the prefix, the body and the tag of three of 6 data + 3 parity shards.
    let mut s = vec![PASSTHROUGH_192_W16];
    op::send(&mut s, 1000, 50, true);
    for (at, bit) in [(2, 3), (100, 7), (230, 2)] {
        op::corrupt(&mut s, at, bit);
    }
    op::deliver(&mut s, 8);
    op::wait_ms(&mut s, 5);
    v.push(("corrupt.bin", s));
    // Every delivered datagram replayed.
    let mut s = clean(PASSTHROUGH_192_W16, 2, 1000);
    for i in 0..16 {
        op::replay(&mut s, i);
    }
    op::wait_ms(&mut s, 5);
    v.push(("replay.bin", s));
    // Unsealed garbage and a prefix of the right stream with a forged tag.
    let mut s = clean(PASSTHROUGH_192_W16, 1, 500);
    op::garbage(&mut s, &[]);
    op::garbage(&mut s, &[0x10, 0, 0]);
    op::garbage(&mut s, &[0xFF; 60]);
    op::forged_tag(&mut s, 128, &[0; 80]);
    op::forged_tag(&mut s, 130, &[0xAB; 200]);
    v.push(("garbage.bin", s));
    // A key holder's hand-made headers around honest frames.
    let mut s = clean(PASSTHROUGH_192_W16, 2, 1000);
    op::forge_header(&mut s, [0, 3, 1, 10, 0, 1, 0xEE]);
    op::forge_header(&mut s, [0, 3, 1, 10, 1, 0, 0xEE]);
    op::forge_header(&mut s, [0xFF, 0, 0, 5, 0, 0, 0]);
    op::forge_header(&mut s, [4, 11, 3, 63, 14, 1, 1]);
    op::send(&mut s, 1000, 20, false);
    op::deliver(&mut s, 8);
    op::wait_ms(&mut s, 200);
    v.push(("forged_header.bin", s));
    // A new epoch opens while a frame of the old one is incomplete; its late shards are old.
    let mut s = vec![PASSTHROUGH_192_W16];
    op::send(&mut s, 1000, 20, true);
    op::send(&mut s, 1000, 20, false);
    op::deliver(&mut s, 8);
    op::deliver(&mut s, 2);
    op::reconfigure(&mut s);
    op::send(&mut s, 1000, 20, true);
    for _ in 0..8 {
        op::deliver_at(&mut s, 6);
    }
    op::wait_ms(&mut s, 5);
    op::deliver(&mut s, 6);
    op::wait_ms(&mut s, 5);
    v.push(("reconfigure.bin", s));
    // A window of two frames, five in flight delivered backwards.
    let mut s = vec![PASSTHROUGH_64_W2];
    for i in 0..5 {
        op::send(&mut s, 200, 20, i == 0);
    }
    for i in (0..30u8).rev() {
        op::deliver_at(&mut s, i);
    }
    op::wait_ms(&mut s, 200);
    v.push(("window.bin", s));
    v
}

fn run(files: &[(String, Vec<u8>)], name: &str) -> MediaRun {
    let (_, data) = files
        .iter()
        .find(|(f, _)| f == name)
        .unwrap_or_else(|| panic!("no seed {name}"));
    fuzz_media(data)
}

#[test]
fn media_corpus_replays() {
    let files = corpus();
    assert!(
        files.len() >= seeds().len(),
        "seed corpus went missing: {}",
        files.len()
    );
    for (name, data) in &files {
        eprintln!("replaying media/{name}");
        fuzz_media(data);
    }
}

#[test]
fn seeds_reach_what_their_names_say() {
    let files = corpus();
    let c = run(&files, "clean.bin").counters;
    assert_eq!(
        (c.frames, c.lost, c.recovered, c.verify_failures),
        (10, 0, 0, 0),
        "{c:?}"
    );
    assert_eq!(c.authenticated, c.datagrams);
    let c = run(&files, "h264.bin").counters;
    assert_eq!((c.frames, c.verify_failures), (6, 0), "{c:?}");
    assert_eq!(run(&files, "other_codec.bin").counters.frames, 4);
    let c = run(&files, "loss_within_parity.bin").counters;
    assert_eq!((c.frames, c.recovered, c.lost), (6, 6, 0), "{c:?}");
    let r = run(&files, "loss_past_parity.bin");
    assert_eq!((r.counters.frames, r.counters.lost), (3, 1), "{r:?}");
    assert!(r.keyframe_requests >= 1 && r.loss_reports >= 1, "{r:?}");
    let c = run(&files, "reorder.bin").counters;
    assert_eq!((c.frames, c.lost, c.verify_failures), (2, 0, 0), "{c:?}");
    let c = run(&files, "corrupt.bin").counters;
    assert_eq!(c.bad_tag, 3, "{c:?}");
    assert_eq!((c.frames, c.recovered), (1, 1), "{c:?}");
    let c = run(&files, "replay.bin").counters;
    assert_eq!(c.replayed, 16, "{c:?}");
    assert_eq!(c.frames, 2);
    let c = run(&files, "garbage.bin").counters;
    assert!(c.malformed >= 3 && c.bad_tag >= 2, "{c:?}");
    assert_eq!(c.frames, 1);
    let r = run(&files, "forged_header.bin");
    assert!(r.forged_with_key && r.counters.frames >= 2, "{r:?}");
    let c = run(&files, "reconfigure.bin").counters;
    assert!(c.old_epoch >= 1, "{c:?}");
    let c = run(&files, "window.bin").counters;
    assert!(c.lost >= 1 && c.frames >= 1, "{c:?}");
}

#[test]
#[ignore = "writes the seed corpus; run by hand"]
fn generate_seed_corpus() {
    if std::env::var_os("STRAHL_WRITE_CORPUS").is_none() {
        return;
    }
    let dir = dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, s) in seeds() {
        std::fs::write(dir.join(name), s).unwrap();
    }
}
