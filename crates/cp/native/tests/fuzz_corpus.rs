//! Replays the seed corpus under `fuzz_corpus/control/` through the entry point the cargo-fuzz
//! target `native_control` calls, and checks the seeds mean what their names say.

use std::path::PathBuf;

use strahl_native::fuzzing::{fuzz_control, fuzz_host};
use strahl_native::msg::{Message, REGISTRY, Reason, decode};

fn corpus_of(dir: &str) -> Vec<(String, Vec<u8>)> {
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

fn corpus() -> Vec<(String, Vec<u8>)> {
    corpus_of("control")
}

#[test]
fn control_corpus_replays() {
    let files = corpus();
    assert!(
        files.len() >= 16,
        "seed corpus went missing: {}",
        files.len()
    );
    for (name, data) in &files {
        eprintln!("replaying control/{name}");
        fuzz_control(data);
    }
}

#[test]
fn every_registered_message_has_a_decodable_seed() {
    let files = corpus();
    for (_, name, _) in REGISTRY {
        let file = format!("{}.bin", name.replace('-', "_"));
        let (_, data) = files
            .iter()
            .find(|(f, _)| *f == file)
            .unwrap_or_else(|| panic!("no seed {file}"));
        let m = decode(&data[1..]).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(m.name(), *name);
        assert!(!matches!(m, Message::Unknown(_)));
    }
}

#[test]
fn host_corpus_replays() {
    let files = corpus_of("host");
    assert!(
        files.len() >= 6,
        "seed corpus went missing: {}",
        files.len()
    );
    for (name, data) in &files {
        eprintln!("replaying host/{name}");
        fuzz_host(data);
    }
    let run = |n: &str| fuzz_host(&files.iter().find(|(f, _)| f == n).expect(n).1);
    // The seeds reach what their names say: a paired client's whole session, refusals with
    // the right reasons.
    let s = run("paired_stream.bin");
    assert_eq!(
        (s.sessions, s.session_messages, s.closed),
        (1, 3, true),
        "{s:?}"
    );
    assert_eq!(run("unpaired_hello.bin").refusals, [Reason::NotPaired]);
    assert_eq!(run("pairing_unarmed.bin").refusals, [Reason::NotArmed]);
    assert_eq!(
        run("out_of_order.bin").refusals.first(),
        Some(&Reason::UnexpectedMessage)
    );
}
