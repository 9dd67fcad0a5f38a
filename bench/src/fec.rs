//! `strahl-bench fec` (to be written).

use crate::Options;

pub fn run(_opts: &Options) -> Result<serde_json::Value, String> {
    Err("not written yet".into())
}
