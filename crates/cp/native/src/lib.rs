//! `strahl-native`: the native protocol `strahl/1`'s control plane.
//!
//! - [`wire`], [`msg`]: the control-message codec (sans-IO, fuzzed) and its type registry.
//! - [`arm`], [`pairing`]: the operator's pairing window and the SPAKE2 ceremony (sans-IO).
//! - [`store`]: the host's paired native clients and the client's own state (atomic writes).
//! - [`quic`]: the quinn shell shared by the host (`strahl-control`) and `strahl-client`:
//!   endpoint configurations (ALPN `strahl/1`, pinned certificates), framed streams, the
//!   host's connection handler and the client's pairing call.
#![forbid(unsafe_code)]

pub mod arm;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod host;
pub mod msg;
pub mod pairing;
pub mod quic;
pub mod store;
pub mod wire;
