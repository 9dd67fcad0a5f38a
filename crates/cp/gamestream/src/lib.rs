//! strahl-gamestream: the GameStream nvhttp host — HTTP/HTTPS servers, PIN pairing, the
//! host identity and paired-client state — for stock Moonlight clients
//! (reference: shared/reference/gamestream-host.md §A1–§A7, §B2–§B5).
//!
//! Layers:
//! - sans-IO cores: `query` (hostile-input query parser), `pairing` (the 5-stage state
//!   machine), `launch` (parameter validation + the `SessionHost` seam), `xml`;
//! - state: `identity` (self-signed RSA-2048 cert + key), `paired` (paired clients), both
//!   written with `strahl_statefile::write_atomic`;
//! - I/O: `mdns` (a responder for `_nvstream._tcp` that answers queries and never announces;
//!   its sans-IO core is `mdns::core`; switchable), `server` (hyper 1 + tokio + tokio-rustls;
//!   `tls` accepts any client cert at the TLS layer and `handlers` authorises by exact match
//!   against the paired set).
//!
//! Embedding (the control binary supplies its session manager as the `SessionHost`):
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use strahl_gamestream::{RecordingSessionHost, ServerConfig, SessionHost};
//!
//! let host: Arc<dyn SessionHost> = Arc::new(RecordingSessionHost::new());
//! let server = strahl_gamestream::start(ServerConfig::new("/var/lib/strahl"), host).await?;
//! // The status page received the PIN the Moonlight client shows:
//! let client = server.submit_pin("1234")?;
//! println!("PIN delivered to {client}");
//! server.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod clipboard;
pub mod crypto;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod handlers;
pub mod identity;
pub mod launch;
pub mod mdns;
pub mod paired;
pub mod pairing;
pub mod perms;
pub mod query;
pub mod server;
pub mod tls;
pub mod xml;

pub use handlers::{APP_VERSION, App, GFE_VERSION, SCM_ANY_HEVC, SCM_H264};
pub use identity::HostIdentity;
pub use launch::{
    HostError, HostEvent, HostState, LaunchParams, LaunchRequest, RecordingSessionHost,
    SessionHost, VideoSupport,
};
pub use pairing::{PendingPin, PinError};
pub use perms::Permissions;
pub use server::{ServerConfig, ServerHandle, StartError, start};
