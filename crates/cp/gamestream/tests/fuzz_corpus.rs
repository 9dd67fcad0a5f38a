//! Replays the query fuzz seeds and runs the same entry point on random and mutated inputs
//! (proptest), so `cargo test` exercises what the fuzzer would.

use proptest::prelude::*;
use strahl_gamestream::fuzzing::{fuzz_mdns, fuzz_pair, fuzz_query};
use strahl_gamestream::query::Query;

fn seeds() -> Vec<(String, Vec<u8>)> {
    seeds_in("query")
}

fn seeds_in(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz_corpus")
        .join(target);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn corpus_replays_without_panic_and_parses_as_expected() {
    let seeds = seeds();
    assert!(seeds.len() >= 10, "seed corpus missing");
    for (name, data) in &seeds {
        fuzz_query(data);
        let parsed = Query::parse(std::str::from_utf8(data).unwrap());
        // The seeds named after Moonlight requests must parse; the hostile ones must not.
        match name.as_str() {
            "bad_escapes" | "empty_and_bad_keys" => assert!(parsed.is_err(), "{name}"),
            _ => assert!(parsed.is_ok(), "{name}: {parsed:?}"),
        }
    }
}

#[test]
fn pair_corpus_replays() {
    let seeds = seeds_in("pair");
    assert!(seeds.len() >= 4, "pair seed corpus missing");
    for (_, data) in &seeds {
        fuzz_pair(data);
    }
}

#[test]
fn mdns_corpus_replays() {
    let seeds = seeds_in("mdns");
    assert!(seeds.len() >= 4, "mdns seed corpus missing");
    for (_, data) in &seeds {
        fuzz_mdns(data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        fuzz_query(&data);
    }

    #[test]
    fn mutated_seeds_never_panic(idx in 0usize..64, pos in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()) {
        let seeds = seeds();
        let mut d = seeds[idx % seeds.len()].1.clone();
        if !d.is_empty() {
            let p = pos % d.len();
            d[p] = byte;
            d.truncate(cut % (d.len() + 1));
        }
        fuzz_query(&d);
    }

    #[test]
    fn mutated_pair_sequences_never_panic(idx in 0usize..16, pos in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()) {
        let seeds = seeds_in("pair");
        let mut d = seeds[idx % seeds.len()].1.clone();
        let p = pos % d.len();
        d[p] = byte;
        d.truncate(cut % (d.len() + 1));
        fuzz_pair(&d);
    }

    #[test]
    fn rikeyid_bit_pattern_round_trips(v in any::<i32>()) {
        let q = Query::parse(&format!("rikeyid={v}")).unwrap();
        prop_assert_eq!(q.i32_bits("rikeyid").unwrap(), v as u32);
    }
}
