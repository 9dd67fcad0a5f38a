//! Replays the seed corpora under `fuzz_corpus/{request,sdp}/` through the same entry points the
//! cargo-fuzz targets call, and checks what the main seeds must do.

use std::path::PathBuf;

use strahl_rtsp::fuzzing::{fuzz_request, fuzz_sdp};
use strahl_rtsp::{
    Event, LaunchContext, Parsed, PingPayload, RtspSession, StreamConfig, parse_request,
};

fn corpus(dir: &str) -> Vec<(String, Vec<u8>)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz_corpus")
        .join(dir);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
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

#[test]
fn request_corpus_replays() {
    let files = corpus("request");
    assert!(
        files.len() >= 15,
        "seed corpus went missing: {}",
        files.len()
    );
    for (name, data) in &files {
        eprintln!("replaying request/{name}");
        fuzz_request(data);
    }
}

#[test]
fn sdp_corpus_replays() {
    let files = corpus("sdp");
    assert!(
        files.len() >= 7,
        "seed corpus went missing: {}",
        files.len()
    );
    for (name, data) in &files {
        eprintln!("replaying sdp/{name}");
        fuzz_sdp(data);
    }
}

#[test]
fn the_session_seed_walks_the_whole_handshake() {
    let (_, data) = corpus("request")
        .into_iter()
        .find(|(n, _)| n == "10_b10_session.bin")
        .expect("seed present");
    let mut session = RtspSession::new(LaunchContext::new(PingPayload::from_u64(1), 1));
    let mut rest = &data[..];
    let mut events = Vec::new();
    for _ in 0..7 {
        let Ok(Parsed::Complete { request, len }) = parse_request(rest) else {
            panic!("seed does not hold 7 requests");
        };
        let out = session.handle(&request);
        assert_eq!(out.error, None);
        events.extend(out.event);
        rest = &rest[len..];
    }
    assert!(rest.is_empty());
    assert!(matches!(
        events.as_slice(),
        [.., Event::Configured(_), Event::Play]
    ));
}

#[test]
fn sdp_seeds_mean_what_their_names_say() {
    let files = corpus("sdp");
    let get = |n: &str| &files.iter().find(|(f, _)| f == n).expect(n).1;
    assert!(StreamConfig::parse(get("appendix_a.sdp")).is_ok());
    assert!(StreamConfig::parse(get("appendix_a_wire.sdp")).is_ok());
    assert!(StreamConfig::parse(get("required_only.sdp")).is_ok());
    assert!(StreamConfig::parse(get("surround71_hq.sdp")).is_ok_and(|c| c.audio.channels == 8));
    assert!(StreamConfig::parse(get("hevc_hdr_444.sdp")).is_ok());
    assert!(StreamConfig::parse(get("missing_maxfps.sdp")).is_err());
    assert!(StreamConfig::parse(get("bad_values.sdp")).is_err());
}
