//! Replays the fuzz seed corpus (`crates/fuzz/corpus/ipc_decode`) through the same entry point
//! the fuzz target calls, and checks the seeds mean what their names say.
mod common;

use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/ipc_decode")
}

#[test]
fn replay_corpus() {
    let dir = corpus_dir();
    let mut files = 0;
    let mut kinds_ok = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        strahl_ipc::fuzzing::fuzz_decode(&data);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("kind_") {
            strahl_ipc::decode(&data).unwrap_or_else(|e| panic!("{name} must decode: {e}"));
            kinds_ok += 1;
        } else if name.starts_with("broken_") {
            assert!(strahl_ipc::decode(&data).is_err(), "{name} must not decode");
        }
        files += 1;
    }
    let expect = common::samples().len();
    assert!(
        kinds_ok >= expect,
        "found {kinds_ok} kind_* seeds, want ≥ {expect}"
    );
    assert!(
        files >= expect + common::broken().len(),
        "only {files} corpus files"
    );
}

/// Rewrites the seed files: `cargo test -p strahl-ipc --test corpus -- --ignored`.
#[test]
#[ignore]
fn write_seed_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (stem, m) in common::samples() {
        std::fs::write(dir.join(format!("kind_{stem}")), common::encode_vec(&m)).unwrap();
    }
    for (stem, bytes) in common::broken() {
        std::fs::write(dir.join(stem), bytes).unwrap();
    }
}

#[test]
fn samples_cover_every_kind_and_broken_seeds_fail() {
    let mut seen: Vec<strahl_ipc::Kind> = common::samples().iter().map(|(_, m)| m.kind()).collect();
    seen.sort_by_key(|k| *k as u16);
    seen.dedup();
    assert_eq!(seen, strahl_ipc::Kind::ALL.to_vec());
    for (stem, bytes) in common::broken() {
        assert!(strahl_ipc::decode(&bytes).is_err(), "{stem} decoded");
        strahl_ipc::fuzzing::fuzz_decode(&bytes);
    }
}
