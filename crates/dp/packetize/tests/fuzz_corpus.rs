//! Replays every committed fuzz corpus file through the functions the cargo-fuzz targets call, so
//! `cargo test` exercises the corpora without cargo-fuzz. `generate_seed_corpus` (ignored) writes
//! the seed files: `STRAHL_WRITE_CORPUS=1 cargo test -p strahl-packetize --test fuzz_corpus -- --ignored`.

use std::path::PathBuf;

use strahl_packetize::fuzzing::{fuzz_native_header, fuzz_reassembler};
use strahl_packetize::native::wire::{HEADER_LEN, PREFIX_LEN, Prefix, ShardHeader};

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn replay(target: &str, f: fn(&[u8])) -> usize {
    let dir = corpus(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_file() {
            let data = std::fs::read(&path).unwrap();
            f(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn native_header_corpus_replays() {
    assert!(replay("native_header", fuzz_native_header) >= 20);
}

#[test]
fn reassembler_corpus_replays() {
    assert!(replay("reassembler", fuzz_reassembler) >= 20);
}

fn header_seed(h: &ShardHeader, stream: u8, pn: u64, fill: u8) -> Vec<u8> {
    let mut v = vec![0u8; PREFIX_LEN + HEADER_LEN];
    let mut p = [0u8; PREFIX_LEN];
    Prefix::new(stream, pn).encode(&mut p);
    v[..PREFIX_LEN].copy_from_slice(&p);
    let mut hb = [0u8; HEADER_LEN];
    h.encode(&mut hb);
    v[PREFIX_LEN..].copy_from_slice(&hb);
    v.extend(std::iter::repeat_n(fill, h.wire_shard_len().min(2048)));
    v
}

#[test]
#[ignore = "writes the seed corpora; run by hand"]
fn generate_seed_corpus() {
    if std::env::var_os("STRAHL_WRITE_CORPUS").is_none() {
        return;
    }
    let base = ShardHeader {
        frame_id: 0,
        shard_index: 0,
        data_shards: 1,
        parity_shards: 2,
        shard_len: 64,
        frame_len: 10,
        flags: 0,
        pts_us: 0,
    };
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for (i, h) in [
        base,
        ShardHeader {
            shard_index: 1,
            ..base
        },
        ShardHeader {
            shard_index: 2,
            flags: 1,
            ..base
        },
        ShardHeader {
            data_shards: 4,
            parity_shards: 2,
            frame_len: 200,
            shard_index: 3,
            ..base
        },
        ShardHeader {
            data_shards: 4,
            parity_shards: 2,
            frame_len: 256,
            shard_index: 5,
            ..base
        },
        ShardHeader {
            data_shards: 3,
            parity_shards: 0,
            frame_len: 129,
            shard_index: 2,
            pts_us: 1 << 40,
            ..base
        },
        ShardHeader {
            frame_id: u32::MAX,
            data_shards: 2,
            parity_shards: 1,
            frame_len: 100,
            ..base
        },
        ShardHeader {
            shard_len: 1408,
            frame_len: 1408,
            ..base
        },
        ShardHeader {
            shard_len: 1408,
            data_shards: 20,
            parity_shards: 4,
            frame_len: 19 * 1408 + 1,
            ..base
        },
    ]
    .iter()
    .enumerate()
    {
        seeds.push(header_seed(h, 0, i as u64, i as u8));
    }
    // Invalid variants: reserved bits, bad version, wrong stream, truncated, bad lengths.
    let mut v = header_seed(&base, 0, 1, 0);
    v[PREFIX_LEN + 17] = 1;
    seeds.push(v);
    let mut v = header_seed(&base, 0, 1, 0);
    v[0] = 0x20;
    seeds.push(v);
    seeds.push(header_seed(&base, 3, 1, 0));
    seeds.push(header_seed(&base, 0, 1, 0)[..PREFIX_LEN + 10].to_vec());
    let mut v = header_seed(&base, 0, 1, 0);
    v[PREFIX_LEN + 11] = 63; // odd shard length
    seeds.push(v);
    let mut v = header_seed(&base, 0, 1, 0);
    v.pop(); // one shard byte short
    seeds.push(v);
    let mut v = header_seed(&base, 0, 1, 0);
    v[PREFIX_LEN + 15] = 65; // frame_len > k·S
    seeds.push(v);
    seeds.push(vec![]);
    seeds.push(vec![0x10]);
    seeds.push(vec![0x10, 0, 0, 0]);
    seeds.push(vec![0xFF; 40]);
    let mut v = header_seed(&base, 0, 1, 0);
    v[PREFIX_LEN + 6] = 0xFF; // k = 65281
    seeds.push(v);
    let dir = corpus("native_header");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, s) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), s).unwrap();
    }

    // Reassembler scripts: cfg byte, then ops (see `fuzz_reassembler`): 0 send frame (len u16,
    // flags), 1/2 deliver, 3 drop, 4 deliver index, 5 time step, 6 corrupt, 7 duplicate,
    // 8 hand-made header (8 bytes), 9 arbitrary sealed body (len + bytes).
    let mut scripts: Vec<Vec<u8>> = vec![
        vec![0, 0, 0, 100, 0x28, 1, 1, 1, 1, 1, 1],
        vec![
            0x40, 0, 0x04, 0, 0x28, 1, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        ],
        vec![
            0x80, 0, 0x02, 0, 0x29, 0, 0x01, 0, 0x28, 4, 9, 4, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
            1, 1,
        ],
        vec![
            0xC0, 0, 0x0F, 0xFF, 0x50, 5, 0x10, 0, 1, 1, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        ],
        vec![1, 0, 0, 10, 0x28, 6, 0, 5, 3, 1, 1, 1, 7, 1, 7],
        vec![
            2, 8, 0, 3, 1, 2, 0, 0x11, 8, 0, 3, 1, 0, 0, 0x22, 8, 1, 3, 1, 0, 1, 0, 0x33,
        ],
        vec![
            3, 9, 30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 2, 0, 0, 0, 0, 0, 64, 0, 0, 0, 5, 0, 0,
        ],
        vec![
            4, 0, 1, 0, 0x28, 0, 1, 0, 0x28, 0, 1, 0, 0x28, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 5,
            0xFF, 0xFF,
        ],
        vec![5, 0, 0, 50, 0x02, 5, 0x20, 0, 1, 1, 1, 5, 0x20, 0],
        vec![6, 0, 0x03, 0, 0xC8, 2, 2, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2],
    ];
    for i in 0..16u8 {
        // Frames of growing size, each with a different loss/reorder pattern.
        let mut s = vec![i.wrapping_mul(37)];
        for f in 0..4u8 {
            s.extend_from_slice(&[0, i, f.wrapping_mul(61), 0x28 + f]);
            for op in 0..(8 + i) {
                s.push([1, 1, 3, 4, 1, 7, 6, 5][(op as usize + f as usize) % 8]);
                s.push(op.wrapping_mul(13));
            }
        }
        scripts.push(s);
    }
    let dir = corpus("reassembler");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, s) in scripts.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), s).unwrap();
    }
}
