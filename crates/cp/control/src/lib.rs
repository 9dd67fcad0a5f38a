//! `strahl-control` internals (the binary is `src/main.rs`).
//!
//! - [`ipc`]: async client of the data plane's IPC socket (tokio `AsyncFd` over the
//!   `SOCK_SEQPACKET` wrapper from `strahl-ipc`), including the version handshake.
//! - [`serve`]: the `serve` subcommand: connect with bounded back-off, poll stats, reconnect
//!   when the data plane goes away, stop own sessions on shutdown.
//! - [`session`]: the sans-IO GameStream session manager (launch → RTSP → SessionStart).
//! - [`host`]: its async shells: the nvhttp `SessionHost` and the RTSP listener.
//! - [`shared`]: what those shells share: the locked manager and the bounded outbox.
//! - [`live`]: what the IPC loop learns from the data plane, owned by `serve`, read by the
//!   status backend.
//! - [`fec_adapt`]: the sans-IO adaptive FEC controller fed by SS_FRAME_FEC_STATUS;
//!   [`native_fec`]: its `strahl/1` counterpart fed by native loss reports.
//! - [`control_link`]: the ENet control server wired to the manager (actions out, events in).
//! - [`input_sink`]: the configured input sink (uinput / JSON-lines recording), counted.
//! - [`admin`]: the local admin socket (`strahl-control pin`).
//! - [`cli`]: argument parsing.
//! - [`status_backend`]: the status server's view of the running `serve` (issue 5).
//! - [`commands`]: the operator subcommands talking to a running `serve` (status, clients, …).
//! - [`doctor`]: host checks over an injected system view.
#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod commands;
pub mod control_link;
pub mod doctor;
pub mod fec_adapt;
pub mod host;
pub mod input_sink;
pub mod ipc;
pub mod live;
pub mod native;
pub mod native_fec;
pub mod native_pace;
pub mod serve;
pub mod session;
pub mod shared;
pub mod status_backend;
