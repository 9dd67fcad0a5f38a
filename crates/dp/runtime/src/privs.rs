//! Dropping privileges after start-up.
//!
//! Contract: the data plane opens its sockets, loads BPF and binds AF_XDP while it still has
//! its capabilities, then calls [`drop_capabilities`], which clears every capability not in
//! `keep` from the effective, permitted and inheritable sets of the **calling thread** (Linux
//! capabilities are per thread: call it before spawning tiles, which inherit the sets). Without
//! capabilities it does nothing and says so. The returned line is for the log.

pub use caps::Capability;
use caps::{CapSet, CapsHashSet};

/// Clear every capability except `keep`; returns one line describing what happened.
pub fn drop_capabilities(keep: &[Capability]) -> Result<String, String> {
    let permitted = caps::read(None, CapSet::Permitted).map_err(|e| e.to_string())?;
    if permitted.is_empty() {
        return Ok("privileges: no capabilities held; nothing to drop".into());
    }
    let keep: CapsHashSet = keep
        .iter()
        .copied()
        .filter(|c| permitted.contains(c))
        .collect();
    let dropped = permitted.len() - keep.len();
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new()).map_err(|e| e.to_string())?;
    caps::set(None, CapSet::Effective, &keep).map_err(|e| e.to_string())?;
    caps::set(None, CapSet::Permitted, &keep).map_err(|e| e.to_string())?;
    let mut kept: Vec<String> = keep.iter().map(|c| c.to_string()).collect();
    kept.sort();
    Ok(format!(
        "privileges: dropped {dropped} capabilities; kept [{}]",
        kept.join(", ")
    ))
}

/// Capabilities in the calling thread's effective set (for tests and the status line).
pub fn effective() -> Vec<Capability> {
    let mut v: Vec<Capability> = caps::read(None, CapSet::Effective)
        .map(|s| s.into_iter().collect())
        .unwrap_or_default();
    v.sort_by_key(|c| c.index());
    v
}
