//! Fuzz entry points (called by cargo-fuzz targets and by the corpus replay test).
//!
//! Contract: each function accepts arbitrary bytes and must never panic or allocate
//! without bound; they assert the parser's own invariants.

use crate::launch::LaunchParams;
use crate::query::{MAX_PAIRS, Query};

/// Parses arbitrary bytes as an nvhttp query and, when that succeeds, runs every typed
/// accessor the handlers use (hex, integers, the signed `rikeyid`, launch validation).
pub fn fuzz_query(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(q) = Query::parse(s) else { return };
    assert!(q.len() <= MAX_PAIRS);
    for key in [
        "salt",
        "clientcert",
        "clientchallenge",
        "rikey",
        "serverchallengeresp",
    ] {
        let _ = q.hex(key, None);
        let _ = q.hex(key, Some(16));
    }
    for key in ["appid", "corever", "surroundaudioinfo"] {
        let _ = q.opt_u32(key);
    }
    if let Ok(bits) = q.i32_bits("rikeyid") {
        // The bit pattern round-trips through the signed spelling.
        let back =
            Query::parse(&format!("rikeyid={}", bits as i32)).expect("canonical form parses");
        assert_eq!(back.i32_bits("rikeyid"), Ok(bits));
    }
    let _ = LaunchParams::from_query(&q, true);
    let _ = LaunchParams::from_query(&q, false);
}
