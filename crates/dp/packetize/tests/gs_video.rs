//! GameStream video: golden header bytes derived by hand from `gamestream-host.md` §A14, a
//! test-side depacketizer that recovers the access unit from any d of d+p shards per block with
//! `Gf8Decoder`, sequence continuity, the lowering path and the refusal path, SS_ENC_VIDEO.

use std::time::Duration;

use strahl_fec::gf8::{Gf8Code, Gf8Decoder};
use strahl_packetize::PacketizeError;
use strahl_packetize::gamestream::plan::MAX_FRAME_SHARDS;
use strahl_packetize::gamestream::{
    FrameType, GsFrameMeta, GsVideoConfig, GsVideoPacketizer, max_access_unit_bytes,
};
use strahl_seal::gamestream::VideoCipher;

const P: usize = 1392;
const B: usize = P + 16;
const C: usize = P - 16;

fn au(seed: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(seed)
                .rotate_right(13) as u8
        })
        .collect()
}

fn meta(ft: FrameType, secs: u64) -> GsFrameMeta {
    GsFrameMeta {
        frame_type: ft,
        capture_time: Duration::from_secs(secs),
        host_latency_tenth_ms: 0x0123,
    }
}

fn packetize(p: &mut GsVideoPacketizer, data: &[u8], m: GsFrameMeta) -> Vec<Vec<u8>> {
    let mut f = p.frame(data, m).unwrap();
    let mut buf = vec![0u8; 2048];
    let mut out = Vec::new();
    while let Some(n) = f.next_packet(&mut buf).unwrap() {
        out.push(buf[..n].to_vec());
    }
    assert_eq!(f.remaining(), 0);
    out
}

fn fec_info(h: &[u8]) -> (usize, usize, usize) {
    let v = u32::from_le_bytes(h[28..32].try_into().unwrap());
    (
        ((v >> 12) & 0x3FF) as usize,
        (v >> 22) as usize,
        ((v >> 4) & 0xFF) as usize,
    )
}

/// 687,892-byte IDR at P = 1392, F = 20: (687,892 + 8) / 1376 → 500 shards, D_max = 212, so 3
/// blocks of 167, 167, 166 data shards, each with ⌈d·0.2⌉ = 34 parity.
#[test]
fn golden_three_block_frame() {
    let mut p = GsVideoPacketizer::new(GsVideoConfig::new(P), None).unwrap();
    let data = au(1, 500 * C - 8 - 100);
    let pk = packetize(&mut p, &data, meta(FrameType::Idr, 1));
    assert_eq!(pk.len(), 167 + 34 + 167 + 34 + 166 + 34);
    assert!(pk.iter().all(|x| x.len() == B));
    // ts = 1 s · 90 kHz = 90000 = 0x00015F90.
    let ts = [0x00, 0x01, 0x5F, 0x90];
    let hdr = |seq: u16, spi: [u8; 4], flags: u8, mfb: u8, fec: [u8; 4]| -> Vec<u8> {
        let s = seq.to_be_bytes();
        let mut v = vec![0x90, 0x00, s[0], s[1]];
        v.extend_from_slice(&ts);
        v.extend_from_slice(&[0; 8]); // ssrc + extension
        v.extend_from_slice(&spi);
        v.extend_from_slice(&[1, 0, 0, 0]); // frameIndex 1
        v.extend_from_slice(&[flags, 0x00, 0x10, mfb]);
        v.extend_from_slice(&fec);
        v
    };
    // Block 0, shard 0: SOF|PIC, multiFecBlocks = 0<<4 | 2<<6 = 0x80,
    // fecInfo = 0<<12 | 167<<22 | 20<<4 = 0x29C00140.
    assert_eq!(
        pk[0][..32],
        hdr(0, [0, 0, 0, 0], 0x05, 0x80, [0x40, 0x01, 0xC0, 0x29])[..]
    );
    // Frame header: 0x01, latency 0x0123 LE, type 2, lastPayloadLen = 1376 − 100 = 1276 (0x04FC) LE.
    assert_eq!(
        pk[0][32..40],
        [0x01, 0x23, 0x01, 0x02, 0xFC, 0x04, 0x00, 0x00]
    );
    assert_eq!(pk[0][40..B], data[..C - 8]);
    // Block 0, last data shard x = 166: EOF|PIC, streamPacketIndex = 166 << 8,
    // fecInfo = 166<<12 | 167<<22 | 20<<4 = 0x29CA6140.
    assert_eq!(
        pk[166][..32],
        hdr(
            166,
            [0x00, 0xA6, 0, 0],
            0x03,
            0x80,
            [0x40, 0x61, 0xCA, 0x29]
        )[..]
    );
    // A middle data shard: PIC only.
    assert_eq!(pk[5][24], 0x01);
    // Block 0, first parity shard x = 167: only step-6 fields are overwritten.
    let par = &pk[167];
    assert_eq!(par[0], 0x90);
    assert_eq!(par[2..8], [0x00, 0xA7, 0x00, 0x01, 0x5F, 0x90]);
    assert_eq!(par[20..24], [1, 0, 0, 0]);
    assert_eq!(par[27], 0x80);
    assert_eq!(par[28..32], [0x40, 0x71, 0xCA, 0x29]); // 167<<12 | 167<<22 | 20<<4 = 0x29CA7140
    // Block 1 starts at seq 201: multiFecBlocks = 1<<4 | 2<<6 = 0x90, spi = 201 << 8.
    assert_eq!(
        pk[201][..32],
        hdr(
            201,
            [0x00, 0xC9, 0, 0],
            0x05,
            0x90,
            [0x40, 0x01, 0xC0, 0x29]
        )[..]
    );
    // Block 2 at seq 402: 0xA0, d = 166 → 166<<22 | 20<<4 = 0x29800140, spi = 402 << 8 = 0x19200.
    assert_eq!(
        pk[402][..32],
        hdr(
            402,
            [0x00, 0x92, 0x01, 0x00],
            0x05,
            0xA0,
            [0x40, 0x01, 0x80, 0x29]
        )[..]
    );
    // Last packet: block 2 parity 33, x = 199, seq 601: 199<<12 | 166<<22 | 20<<4 = 0x298C7140.
    assert_eq!(pk[601][2..4], [0x02, 0x59]);
    assert_eq!(pk[601][28..32], [0x40, 0x71, 0x8C, 0x29]);
    assert_eq!(p.next_seq(), 602);

    // Parity covers the *pre-encode* headers (step 5 before step 6): rebuild block 0's data
    // shards with RTP bytes and fecInfo zeroed, encode them independently, and compare with the
    // parity packets everywhere except the step-6 fields.
    let code = Gf8Code::new(167, 34).unwrap();
    let pre: Vec<Vec<u8>> = pk[..167]
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s[..16].fill(0);
            s[28..32].fill(0);
            s
        })
        .collect();
    let refs: Vec<&[u8]> = pre.iter().map(|v| &v[..]).collect();
    let mut out = vec![vec![0u8; B]; 34];
    let mut outs: Vec<&mut [u8]> = out.iter_mut().map(|v| &mut v[..]).collect();
    code.encode(&refs, &mut outs).unwrap();
    for (j, expect) in out.iter().enumerate() {
        let got = &pk[167 + j];
        let step6 = |i: usize| {
            i == 0
                || (2..8).contains(&i)
                || (20..24).contains(&i)
                || i == 27
                || (28..32).contains(&i)
        };
        for i in 0..B {
            if !step6(i) {
                assert_eq!(got[i], expect[i], "parity {j} byte {i}");
            }
        }
    }
}

/// (data shards, parity shards, shards as received, present flags) of one FEC block.
type Block = (usize, usize, Vec<Vec<u8>>, Vec<bool>);

/// What Moonlight does, as far as FEC goes: per block, take any d of the d+p shards (as received,
/// headers included), reconstruct, then read data shards in order. Returns the access unit.
fn depacketize(
    packets: &[Vec<u8>],
    drop: &dyn Fn(usize, usize) -> bool,
    cipher: Option<&VideoCipher>,
) -> Vec<u8> {
    let mut blocks: Vec<Block> = Vec::new();
    for pkt in packets {
        let mut pkt = pkt.clone();
        let shard: Vec<u8> = match cipher {
            Some(c) => {
                c.open_shard(&mut pkt).unwrap();
                pkt[32..].to_vec()
            }
            None => pkt,
        };
        assert_eq!(shard.len(), B);
        let (x, d, pct) = fec_info(&shard);
        let p = (d * pct).div_ceil(100);
        let mfb = shard[27];
        let (bi, count) = ((mfb >> 4 & 3) as usize, (mfb >> 6) as usize + 1);
        if blocks.is_empty() {
            blocks = (0..count).map(|_| (0, 0, Vec::new(), Vec::new())).collect();
        }
        let b = &mut blocks[bi];
        if b.2.is_empty() {
            *b = (d, p, vec![vec![0u8; B]; d + p], vec![false; d + p]);
        }
        if !drop(bi, x) {
            b.2[x] = shard;
            b.3[x] = true;
        }
    }
    let mut dec = Gf8Decoder::new();
    let mut stream = Vec::new();
    for (bi, (d, p, shards, present)) in blocks.iter_mut().enumerate() {
        let received: Vec<Vec<u8>> = shards.clone();
        let code = Gf8Code::new(*d, *p).unwrap();
        let mut refs: Vec<&mut [u8]> = shards.iter_mut().map(|v| &mut v[..]).collect();
        dec.reconstruct(code, &mut refs, present).unwrap();
        for x in 0..*d {
            let s = &shards[x];
            // Fields set before encoding recover exactly: streamPacketIndex, frameIndex, flags,
            // extraFlags, multiFecFlags, multiFecBlocks.
            let expect_flags =
                0x01 | if x == 0 { 0x04 } else { 0 } | if x + 1 == *d { 0x02 } else { 0 };
            assert_eq!(s[24], expect_flags, "block {bi} shard {x} flags");
            assert_eq!(s[26], 0x10);
            if !present[x] {
                // A recovered streamPacketIndex continues its received neighbours' sequence.
                let spi = u32::from_le_bytes(s[16..20].try_into().unwrap());
                if let Some(o) = (0..*d).find(|&y| present[y]) {
                    let spi_o = u32::from_le_bytes(received[o][16..20].try_into().unwrap());
                    assert_eq!(
                        spi,
                        spi_o.wrapping_add((x as u32).wrapping_sub(o as u32) << 8)
                    );
                }
            }
            stream.extend_from_slice(&s[32..]);
        }
    }
    assert_eq!(stream[0], 0x01);
    let last = u16::from_le_bytes([stream[4], stream[5]]) as usize;
    let total = stream.len() - C + last;
    stream.truncate(total);
    stream.drain(..8);
    stream
}

#[test]
fn any_d_of_d_plus_p_recovers_every_block() {
    let mut p = GsVideoPacketizer::new(GsVideoConfig::new(P), None).unwrap();
    for (i, len) in [1usize, C - 8, C - 7, 10_000, 300_000, 500 * C - 108]
        .into_iter()
        .enumerate()
    {
        let data = au(i as u32, len);
        let pk = packetize(&mut p, &data, meta(FrameType::P, i as u64));
        let plan = p.plan(len).unwrap();
        assert_eq!(
            depacketize(&pk, &|_, _| false, None),
            data,
            "lossless {len}"
        );
        // Drop the first p shards of each block (all data when d ≤ p), then the last p, then a
        // strided pattern.
        let parity = |b: usize| plan.block[b].parity;
        let data_n = |b: usize| plan.block[b].data;
        assert_eq!(
            depacketize(&pk, &|b, x| x < parity(b), None),
            data,
            "first p lost, {len}"
        );
        assert_eq!(
            depacketize(&pk, &|b, x| x + parity(b) >= data_n(b) + parity(b), None),
            data
        );
        assert_eq!(
            depacketize(&pk, &|b, x| x % 3 == 1 && x / 3 < parity(b), None),
            data,
            "strided loss, {len}"
        );
    }
}

#[test]
fn sequence_and_frame_index_continue_across_frames() {
    let mut p = GsVideoPacketizer::new(GsVideoConfig::new(P), None).unwrap();
    let mut expect_seq = 0u16;
    for fi in 1..=4u32 {
        let pk = packetize(
            &mut p,
            &au(fi, 5000 * fi as usize),
            meta(FrameType::P, fi as u64),
        );
        for pkt in &pk {
            assert_eq!(u16::from_be_bytes([pkt[2], pkt[3]]), expect_seq);
            assert_eq!(u32::from_le_bytes(pkt[20..24].try_into().unwrap()), fi);
            expect_seq = expect_seq.wrapping_add(1);
        }
        // Data shards: streamPacketIndex = seq << 8.
        let seq0 = u16::from_be_bytes([pk[0][2], pk[0][3]]) as u32;
        assert_eq!(
            u32::from_le_bytes(pk[0][16..20].try_into().unwrap()),
            seq0 << 8
        );
    }
    assert_eq!(p.next_frame_index(), 5);
    assert_eq!(p.stats().frames, 4);
}

#[test]
fn frames_beyond_four_blocks_get_lower_parity_never_none() {
    let mut p = GsVideoPacketizer::new(GsVideoConfig::new(P), None).unwrap();
    // 849 shards need 5 blocks of ≤ 212 at 20 %: lowered to 19 % (D_max 214), 4 blocks.
    let data = au(9, 849 * C - 8 - 3);
    let pk = packetize(&mut p, &data, meta(FrameType::Idr, 0));
    let plan = p.plan(data.len()).unwrap();
    assert_eq!((plan.blocks, plan.lowered_to), (4, Some(19)));
    assert_eq!(p.stats().parity_lowered, 1);
    for b in &plan.block {
        assert!(b.parity >= 2 && b.data + b.parity <= 255);
    }
    let (_, d, pct) = fec_info(&pk[0]);
    assert_eq!((d, pct), (213, 19));
    assert_eq!(
        depacketize(&pk, &|b, x| x < plan.block[b].parity, None),
        data
    );
    // The largest frame with FEC: 4 × 252 shards at 1 %, 3 parity each.
    let max = max_access_unit_bytes(P);
    assert_eq!(max, MAX_FRAME_SHARDS * C - 8);
    let data = au(10, max);
    let pk = packetize(&mut p, &data, meta(FrameType::Idr, 0));
    assert_eq!(pk.len(), 4 * 255);
    assert_eq!(depacketize(&pk, &|_, x| x < 3, None), data);
    assert_eq!(p.stats().parity_lowered, 2);
}

#[test]
fn frames_too_large_even_at_one_percent_are_refused() {
    let mut p = GsVideoPacketizer::new(GsVideoConfig::new(P), None).unwrap();
    let too_big = vec![0u8; max_access_unit_bytes(P) + 1];
    let seq = p.next_seq();
    let fi = p.next_frame_index();
    assert!(matches!(
        p.frame(&too_big, meta(FrameType::Idr, 0)),
        Err(PacketizeError::FrameTooLarge { max, .. }) if max == max_access_unit_bytes(P)
    ));
    assert!(matches!(
        p.frame(&[], meta(FrameType::Idr, 0)),
        Err(PacketizeError::EmptyAccessUnit)
    ));
    assert_eq!(p.stats().refused, 2);
    // A refusal consumes neither a frame index nor a sequence number.
    assert_eq!((p.next_seq(), p.next_frame_index()), (seq, fi));
    assert!(
        GsVideoPacketizer::new(
            GsVideoConfig {
                fec_percent: 0,
                ..GsVideoConfig::new(P)
            },
            None
        )
        .is_err()
    );
}

#[test]
fn encrypted_video_keeps_the_wire_size_and_recovers() {
    let key = [0x42u8; 16];
    // The client announced P' = P − 32 for SS_ENC_VIDEO; the packetizer gets P'.
    let pp = P - 32;
    let mut p =
        GsVideoPacketizer::new(GsVideoConfig::new(pp), Some(VideoCipher::new(&key))).unwrap();
    assert_eq!(p.packet_len(), P + 16);
    let data = au(3, 40_000);
    let mut f = p.frame(&data, meta(FrameType::P, 2)).unwrap();
    let mut buf = vec![0u8; P + 16];
    let mut pk = Vec::new();
    while let Some(n) = f.next_packet(&mut buf).unwrap() {
        assert_eq!(n, P + 16);
        // ENC_VIDEO header: frameNumber u32 LE at 12..16 = frameIndex 1.
        assert_eq!(buf[12..16], [1, 0, 0, 0]);
        pk.push(buf[..n].to_vec());
    }
    let rx = VideoCipher::new(&key);
    // Depacketize through decryption with the test's B = P'+16.
    let out = depacketize_enc(&pk, &rx, pp);
    assert_eq!(out, data);
    assert_eq!(p.stats().encrypted as usize, pk.len());
}

fn depacketize_enc(packets: &[Vec<u8>], cipher: &VideoCipher, pp: usize) -> Vec<u8> {
    let mut stream = Vec::new();
    let mut dec = Gf8Decoder::new();
    let shards: Vec<Vec<u8>> = packets
        .iter()
        .map(|p| {
            let mut p = p.clone();
            cipher.open_shard(&mut p).unwrap();
            p[32..].to_vec()
        })
        .collect();
    let mut i = 0;
    while i < shards.len() {
        let (_, d, pct) = fec_info(&shards[i]);
        let p = (d * pct).div_ceil(100);
        let mut block: Vec<Vec<u8>> = shards[i..i + d + p].to_vec();
        // Lose the first data shard of every block.
        let mut present = vec![true; d + p];
        present[0] = false;
        block[0].fill(0);
        let mut refs: Vec<&mut [u8]> = block.iter_mut().map(|v| &mut v[..]).collect();
        dec.reconstruct(Gf8Code::new(d, p).unwrap(), &mut refs, &present)
            .unwrap();
        for s in &block[..d] {
            stream.extend_from_slice(&s[32..]);
        }
        i += d + p;
    }
    let c = pp - 16;
    let last = u16::from_le_bytes([stream[4], stream[5]]) as usize;
    let total = stream.len() - c + last;
    stream.truncate(total);
    stream.drain(..8);
    stream
}

/// AV1 temporal units end in bytes the decoder must get exactly (zero bytes included): the
/// client cuts the zero padding of the last shard by the frame header's lastPayloadLen, as
/// `depacketize` does. HEVC/H.264 access units take the same path (the packetizer never looks
/// inside an AU), so the one check covers every codec: sizes around the shard boundaries, a TU
/// ending in zeros, one lost shard per block rebuilt by FEC, and an HEVC IDR whose parameter
/// sets open the first shard (where the client looks for them).
#[test]
fn every_codec_comes_back_byte_exact_by_last_payload_len() {
    let mut p = GsVideoPacketizer::new(GsVideoConfig::new(P), None).unwrap();
    for len in [
        1,
        C - 8 - 1,
        C - 8,
        C - 8 + 1,
        2 * C - 8,
        2 * C - 7,
        9_000,
        300_001,
    ] {
        // An OBU stream ending in a tile group whose last bytes are zero.
        let mut tu = vec![0x12, 0x00, 0x32, 0x80];
        tu.extend(au(len as u32, len.saturating_sub(6)));
        tu.truncate(len.max(1));
        let n = tu.len();
        if n > 2 {
            tu[n - 2..].fill(0);
        }
        let pkts = packetize(&mut p, &tu, meta(FrameType::Idr, 1));
        let got = depacketize(&pkts, &|_, x| x == 0, None);
        assert_eq!(got, tu, "TU of {len} bytes");
    }
    // HEVC IDR: VPS, SPS, PPS, then the IDR slice, all starting in the first shard.
    let mut hevc = Vec::new();
    for (kind, body) in [(32u8, 24usize), (33, 44), (34, 9), (19, 5_000)] {
        hevc.extend([0, 0, 0, 1, kind << 1, 1]);
        hevc.extend(au(u32::from(kind), body));
    }
    let pkts = packetize(&mut p, &hevc, meta(FrameType::Idr, 2));
    let first = &pkts[0][32..];
    assert_eq!(first[0], 0x01, "frame header");
    assert_eq!(first[3], 2, "IDR");
    assert_eq!(&first[8..14], &[0, 0, 0, 1, 0x40, 1], "VPS first");
    let slice_at = hevc
        .windows(5)
        .position(|w| w == [0, 0, 1, 19 << 1, 1])
        .unwrap();
    assert!(8 + slice_at < C, "the IDR slice starts in the first shard");
    assert_eq!(depacketize(&pkts, &|_, x| x == 1, None), hevc);
}
