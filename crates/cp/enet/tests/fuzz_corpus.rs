//! Replays the fuzz seed corpus through the fuzz entry points (must not panic) and checks the
//! seeds still mean what their names say, so the corpus cannot rot silently.

use std::path::Path;

use strahl_enet::fuzzing::{fuzz_control_frame, fuzz_input};

fn files(dir: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz_corpus")
        .join(dir);
    let mut v: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn input_corpus() {
    let seeds = files("input");
    assert!(seeds.len() >= 15);
    for (name, data) in &seeds {
        fuzz_input(data);
        let r = strahl_input::wire::decode(data);
        // Every seed but the deliberately broken one decodes.
        assert_eq!(r.is_ok(), name != "size_lies", "{name}: {r:?}");
    }
}

#[test]
fn control_corpus() {
    let seeds = files("control");
    assert!(seeds.len() >= 9);
    for (name, data) in &seeds {
        fuzz_control_frame(data);
        if name == "length_mismatch" || name == "encrypted_shape" {
            continue;
        }
        let (ty, payload) = strahl_seal::gamestream::ControlCipher::parse_v2(data).unwrap();
        let msg = strahl_enet::message::decode_client(ty, payload);
        assert!(msg.is_ok(), "{name}: {msg:?}");
    }
}

mod props {
    use proptest::prelude::*;
    use strahl_enet::message::{self, FecStatus};
    use strahl_enet::{ControlEvent, ControlSession};
    use strahl_seal::gamestream::{ControlCipher, Role};

    proptest! {
        #[test]
        fn control_frames_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            strahl_enet::fuzzing::fuzz_control_frame(&data);
        }

        #[test]
        fn typed_messages_never_panic(ty in prop_oneof![Just(0x0206u16), Just(0x0301), Just(0x0350), Just(0x5502), any::<u16>()],
                                      payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = message::decode_client(ty, &payload);
        }

        #[test]
        fn fec_status_round_trips_through_the_session(f in any::<(u32, [u16; 7], [u8; 3])>()) {
            let s = FecStatus {
                frame_index: f.0,
                highest_recv_seq: f.1[0],
                next_contiguous_seq: f.1[1],
                missing_before_highest: f.1[2],
                total_data: f.1[3],
                total_parity: f.1[4],
                recv_data: f.1[5],
                recv_parity: f.1[6],
                fec_pct: f.2[0],
                block_index: f.2[1],
                block_count: f.2[2],
            };
            let key = [3u8; 16];
            let now = std::time::Instant::now();
            let mut host = ControlSession::new(&key, now);
            let mut client = ControlCipher::new(&key, Role::Client);
            let mut pkt = Vec::new();
            client.seal_message(message::MSG_FEC_STATUS, &s.encode(), &mut pkt).unwrap();
            prop_assert_eq!(host.on_packet(&pkt, now), Ok(Some(ControlEvent::FecStatus(s))));
        }

        #[test]
        fn any_single_bit_flip_ends_the_session(bit in 0usize..(8 * 26)) {
            let key = [5u8; 16];
            let now = std::time::Instant::now();
            let mut host = ControlSession::new(&key, now);
            let mut client = ControlCipher::new(&key, Role::Client);
            let mut pkt = Vec::new();
            client.seal_message(message::MSG_IDR_REQUEST, &[0, 0], &mut pkt).unwrap();
            // Flip one bit of seq, tag or ciphertext (bytes 4..): never accepted.
            let i = 4 + bit / 8;
            prop_assume!(i < pkt.len());
            pkt[i] ^= 1 << (bit % 8);
            prop_assert!(!matches!(host.on_packet(&pkt, now), Ok(Some(_))));
        }
    }
}
