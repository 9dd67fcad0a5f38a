//! Replays the corpora the coverage-guided fuzzer grew for the control plane's parsers
//! (`crates/fuzz/corpus/<target>`, minimised with `cargo fuzz cmin`, owned by the fuzz campaign)
//! through the same entry points the fuzz targets call, so `make test` re-checks every input
//! that once reached new coverage. Lives here because this crate links all three parser crates;
//! their hand-written seeds with meaning stay in each crate's `fuzz_corpus/` and tests.

use std::path::PathBuf;

/// Fewest files a grown corpus may have: fewer means it went missing, not that it shrank.
const MIN_FILES: usize = 8;

fn replay(target: &str, entry: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = e.unwrap().path();
        entry(&std::fs::read(&path).unwrap());
        files += 1;
    }
    assert!(files >= MIN_FILES, "{}: only {files} inputs", dir.display());
}

#[test]
fn nvhttp_query_corpus_replays() {
    replay("nvhttp_query", strahl_gamestream::fuzzing::fuzz_query);
}

#[test]
fn nvhttp_pair_corpus_replays() {
    replay("nvhttp_pair", strahl_gamestream::fuzzing::fuzz_pair);
}

#[test]
fn rtsp_request_corpus_replays() {
    replay("rtsp_request", strahl_rtsp::fuzzing::fuzz_request);
}

#[test]
fn rtsp_sdp_corpus_replays() {
    replay("rtsp_sdp", strahl_rtsp::fuzzing::fuzz_sdp);
}

#[test]
fn enet_input_corpus_replays() {
    replay("enet_input", strahl_enet::fuzzing::fuzz_input);
}

#[test]
fn enet_control_corpus_replays() {
    replay("enet_control", strahl_enet::fuzzing::fuzz_control_frame);
}
