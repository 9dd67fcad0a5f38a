//! `strahl-runtime`: the data plane's threads ("tiles") and their start-up plumbing.
//!
//! - [`sched`]: sans-IO decisions of the tx tile (spin vs sleep vs batch kick), tested with
//!   simulated time.
//! - [`tile`]: the tx tile thread shell: pinned (core_affinity), run loop over a
//!   [`strahl_net::TxQueue`] paced by [`strahl_pacer::Pacer`], shutdown flag, tile-local counters
//!   published on a housekeeping cadence.
//! - [`privs`]: drop capabilities once the privileged start-up is done.
//!
//! No async runtime anywhere (the data plane never links tokio; checked by
//! `strahl-dataplane/tests/no_async_deps.rs`). No `unsafe` here: syscalls live in `strahl-net`
//! and in the `caps` / `core_affinity` crates.
#![forbid(unsafe_code)]

pub mod privs;
pub mod sched;
pub mod tile;

pub use tile::{Clock, Shared, Source, TileConfig, TileCounters};
