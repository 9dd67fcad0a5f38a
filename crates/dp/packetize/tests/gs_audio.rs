//! GameStream audio (§A17): RTP fields, 4+2 FEC packets, recovery of lost packets from parity.

use strahl_fec::gf8::AudioFec;
use strahl_packetize::gamestream::audio::{FEC_HEADER_LEN, RTP_HEADER_LEN};
use strahl_packetize::gamestream::{GsAudioConfig, GsAudioPacketizer};
use strahl_seal::gamestream::AudioCipher;

const KEY: [u8; 16] = [0x11; 16];
const KEY_ID: u32 = 0x0102_0304;

fn opus(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 131 + j * 7) as u8).collect()
}

/// Runs `blocks` blocks of CBR packets; returns (data packets, fec packets).
fn run(p: &mut GsAudioPacketizer, packets: usize, len: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut buf = vec![0u8; GsAudioPacketizer::MAX_PACKET_LEN];
    let (mut data, mut fec) = (Vec::new(), Vec::new());
    for i in 0..packets {
        let r = p.push(&opus(i, len), &mut buf).unwrap();
        assert_eq!(r.seq as usize, i);
        assert_eq!(r.fec_ready, i % 4 == 3);
        data.push(buf[..r.len].to_vec());
        while let Some(n) = p.next_fec(&mut buf).unwrap() {
            fec.push(buf[..n].to_vec());
        }
    }
    (data, fec)
}

#[test]
fn rtp_fields_and_fec_headers() {
    let cipher = AudioCipher::new(&KEY, KEY_ID);
    let mut p = GsAudioPacketizer::new(
        GsAudioConfig {
            packet_duration_ms: 5,
        },
        Some(cipher),
    )
    .unwrap();
    let (data, fec) = run(&mut p, 8, 60);
    let rx = AudioCipher::new(&KEY, KEY_ID);
    for (i, d) in data.iter().enumerate() {
        // 0x80, PT 97, seq BE from 0, timestamp in ms (+5 per packet), ssrc 0.
        let ts = (5 * i as u32).to_be_bytes();
        assert_eq!(
            d[..12],
            [0x80, 97, 0, i as u8, ts[0], ts[1], ts[2], ts[3], 0, 0, 0, 0]
        );
        // PKCS#7: 60 → 64 bytes.
        assert_eq!(d.len(), 12 + 64);
        let mut out = vec![0u8; 64];
        let n = rx.decrypt(i as u16, &d[12..], &mut out).unwrap();
        assert_eq!(out[..n], opus(i, 60)[..]);
    }
    assert_eq!(fec.len(), 4);
    // Block 0: FEC seqs 4 and 5 (last data seq 3 + 1 + index), ts 0, base seq 0, base ts 0.
    // Block 1: FEC seqs 8 and 9, base seq 4, base ts 20.
    for (j, f) in fec.iter().enumerate() {
        let (blk, idx) = (j / 2, j % 2);
        let seq = (4 * blk + 4 + idx) as u8;
        assert_eq!(f[..12], [0x80, 127, 0, seq, 0, 0, 0, 0, 0, 0, 0, 0]);
        let base_ts = (20 * blk as u32).to_be_bytes();
        assert_eq!(
            f[12..24],
            [
                idx as u8,
                97,
                0,
                (4 * blk) as u8,
                base_ts[0],
                base_ts[1],
                base_ts[2],
                base_ts[3],
                0,
                0,
                0,
                0
            ]
        );
        assert_eq!(f.len(), RTP_HEADER_LEN + FEC_HEADER_LEN + 64);
    }
    assert_eq!((p.stats().packets, p.stats().fec_packets), (8, 4));
}

fn recover(data: &[Vec<u8>], fec: &[Vec<u8>], lost: &[usize]) -> Vec<Vec<u8>> {
    let len = data[0].len() - RTP_HEADER_LEN;
    let mut shards: Vec<Vec<u8>> = data[..4]
        .iter()
        .map(|d| d[RTP_HEADER_LEN..].to_vec())
        .collect();
    shards.extend(
        fec[..2]
            .iter()
            .map(|f| f[RTP_HEADER_LEN + FEC_HEADER_LEN..].to_vec()),
    );
    let mut present = [true; 6];
    for &l in lost {
        present[l] = false;
        shards[l] = vec![0xEE; len];
    }
    let [a, b, c, d, e, f] = &mut shards[..] else {
        unreachable!()
    };
    AudioFec::reconstruct(
        &mut [
            &mut a[..],
            &mut b[..],
            &mut c[..],
            &mut d[..],
            &mut e[..],
            &mut f[..],
        ],
        &present,
    )
    .unwrap();
    shards.truncate(4);
    shards
}

#[test]
fn lost_packets_are_recovered_from_parity() {
    let mut p = GsAudioPacketizer::new(
        GsAudioConfig::default(),
        Some(AudioCipher::new(&KEY, KEY_ID)),
    )
    .unwrap();
    let (data, fec) = run(&mut p, 4, 120);
    let rx = AudioCipher::new(&KEY, KEY_ID);
    for lost in [vec![2], vec![0, 3], vec![1, 4], vec![3, 5]] {
        let rec = recover(&data, &fec, &lost);
        for &l in lost.iter().filter(|&&l| l < 4) {
            let mut out = vec![0u8; 128];
            let n = rx.decrypt(l as u16, &rec[l], &mut out).unwrap();
            assert_eq!(out[..n], opus(l, 120)[..], "lost {lost:?}");
        }
    }
}

#[test]
fn unencrypted_payload_is_the_opus_packet_and_uneven_blocks_skip_fec() {
    let mut p = GsAudioPacketizer::new(
        GsAudioConfig {
            packet_duration_ms: 10,
        },
        None,
    )
    .unwrap();
    let (data, fec) = run(&mut p, 4, 50);
    assert_eq!(data[1][12..], opus(1, 50)[..]);
    assert_eq!(data[3][4..8], 30u32.to_be_bytes());
    let rec = recover(&data, &fec, &[1]);
    assert_eq!(rec[1], opus(1, 50));
    // A non-CBR block: FEC skipped and counted.
    let mut buf = vec![0u8; GsAudioPacketizer::MAX_PACKET_LEN];
    for len in [50, 51, 50, 50] {
        let r = p.push(&opus(0, len), &mut buf).unwrap();
        assert!(!r.fec_ready);
    }
    assert_eq!(p.next_fec(&mut buf).unwrap(), None);
    assert_eq!(p.stats().fec_skipped_unequal, 1);
    // Refusals.
    assert!(p.push(&[], &mut buf).is_err());
    assert!(p.push(&vec![0u8; 1401], &mut buf).is_err());
    assert!(p.push(&[1u8; 100], &mut buf[..50]).is_err());
    assert_eq!(p.stats().refused, 2);
}
