//! The entry point of the `video_clip` cargo-fuzz target (`crates/fuzz`) and of the corpus
//! replay test (`tests/fuzz_corpus.rs`): a passthrough clip is a file from disk, hostile input
//! for every reader here. `fuzz_clip` must never panic, whatever the bytes: it opens them as a
//! passthrough stream (codec detection, SPS / sequence header, HDR metadata, per-codec AU split,
//! key detection, parameter-set insertion, banner-SEI removal), replays every AU once around,
//! and runs each header reader on the raw bytes too.
//!
//! `fuzz_kms_wire` is the `kms_wire` target's: the KMS capture helper's socket messages (a
//! frame's metadata, the data plane's mode request, the helper's reply) come from another
//! process, so each decoder takes any bytes without panicking, and whatever decodes re-encodes
//! to a message that decodes to the same value (a reply's text may be cut to its limit).

use crate::format::MasteringMetadata;
use crate::kms_mode::{ModeReply, ModeRequest};
use crate::kms_wire::FrameMeta;
use crate::passthrough::PassthroughSource;
use crate::{annexb, av1, hevc};

/// See the module contract.
pub fn fuzz_clip(data: &[u8]) {
    if let Ok(mut src) = PassthroughSource::from_bytes(data.to_vec()) {
        let _ = src.format().describe();
        for _ in 0..src.len() + 1 {
            let au = src.next_au();
            assert!(!au.data.is_empty());
        }
        src.seek_to_next_idr();
        assert!(src.next_au().idr, "seek lands on a key AU");
    }
    let _ = annexb::sps_format(data);
    let _ = hevc::parse_sps(data);
    let _ = hevc::read_hdr_sei(data, &mut MasteringMetadata::default());
    let _ = av1::parse_sequence_header(data);
    let _ = av1::read_hdr_metadata(data, &mut MasteringMetadata::default());
    let _ = av1::is_key_unit(data);
    let _ = hevc::probe(data);
    let _ = av1::probe(data);
}

/// See the module contract.
pub fn fuzz_kms_wire(data: &[u8]) {
    if let Ok(m) = FrameMeta::decode(data) {
        assert_eq!(FrameMeta::decode(&m.encode()).ok(), Some(m));
    }
    if let Ok(r) = ModeRequest::decode(data) {
        assert_eq!(ModeRequest::decode(&r.encode()).ok(), Some(r));
    }
    if let Ok(r) = ModeReply::decode(data) {
        let again = ModeReply::decode(&r.encode()).expect("a decoded reply re-encodes");
        match (&r, &again) {
            (ModeReply::NotOffered(a), ModeReply::NotOffered(b))
            | (ModeReply::Failed(a), ModeReply::Failed(b)) => assert!(a.starts_with(b.as_str())),
            _ => assert_eq!(again, r),
        }
    }
}
