//! `strahl-dataplane` internals, split from the binary so they are unit-testable.
//!
//! - [`server`]: the sans-IO IPC protocol handler (handshake, session table, stats), bytes in,
//!   messages out; no sockets, no clock reads.
//! - [`run`]: the blocking event loop: one `poll(2)` over the signal self-pipe, the listening
//!   socket and the control connection. No async runtime (architecture invariant: the data
//!   plane never links tokio; `tests/no_async_deps.rs` checks the dependency graph).
//! - [`media`]: the per-session media pipeline (ping learning, synthetic/passthrough video →
//!   openh264 → GameStream FEC packetizer → paced sendmmsg; tone → Opus → GameStream audio).
//! - [`cli`]: argument parsing.
//! - [`transport`]: start-up transport self-test target, candidates and reporting.
//! - [`selftest`]: `strahl-dataplane selftest`, the capture → encode → file hardware check.
#![forbid(unsafe_code)]

pub mod cli;
pub mod media;
pub mod run;
pub mod selftest;
pub mod server;
pub mod transport;
