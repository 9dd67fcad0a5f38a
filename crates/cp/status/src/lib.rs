//! `strahl-status`: the HTTP status endpoint (TCP 47990) as a library — a live status page
//! (plain HTML/CSS/JS compiled into the binary, no CDN), `/api/v1/*` JSON API, `/metrics`
//! (Prometheus text from the shared `strahl-metrics` table), `/healthz`, and authentication
//! for every mutation (argon2id web password + session cookie + CSRF header, or the admin
//! bearer token from the state dir). At first start the password can only be set with the
//! one-time setup code ([`setup`]) shown on the console ([`console`]) and in the log, or with
//! the admin token.
//!
//! The control plane implements [`StatusBackend`] and starts the server with
//! [`StatusServer::bind`]; [`testing::FakeBackend`] is a stand-in with a moving fake session
//! (used by the tests and `examples/demo.rs`). Routing and authorisation rules are documented
//! in `routes.rs`; secrets and rate limits in [`auth`].
#![forbid(unsafe_code)]

pub mod auth;
mod backend;
pub mod console;
mod merge;
mod routes;
mod server;
pub mod setup;
mod shared;
pub mod testing;

pub use backend::*;
pub use merge::{PROCESS_LABEL, render_merged};
pub use routes::{CSRF_HEADER, MAX_BODY_BYTES, MAX_CLIENT_NAME, SESSION_COOKIE};
pub use server::{
    ACCEPT_ERROR_BACKOFF, CONNECTION_TIMEOUT, HEADER_READ_TIMEOUT, MAX_CONNECTIONS, StatusError,
    StatusServer,
};
pub use shared::StatusConfig;
pub use strahl_statefile::write_atomic;
