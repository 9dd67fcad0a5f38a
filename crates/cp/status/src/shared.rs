//! What every request handler sees: the server's configuration, the control plane's backend
//! and the authentication state. Built by `server.rs` at bind, read by `routes.rs` per request;
//! it lives here so that neither of those two files imports the other for it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::auth::AuthState;
use crate::backend::StatusBackend;
use crate::console::Console;

/// Which reads are open without a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusConfig {
    /// `/api/v1/status` and `GET /api/v1/clients` readable without login (the native pairing
    /// PIN is still only shown to logged-in callers). Off by default; the appliance config
    /// `[status] open_reads` maps here.
    pub open_reads: bool,
    /// `/healthz` and `/metrics` readable without login (on by default: monitoring scrapers).
    pub open_health_and_metrics: bool,
    /// Where to keep the console snippet (status URLs, and the setup code until a password is
    /// set; see `console.rs`). `None`: no snippet (the setup code is still logged at start).
    pub console_issue: Option<PathBuf>,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            open_reads: false,
            open_health_and_metrics: true,
            console_issue: None,
        }
    }
}

/// The state every connection of one server shares.
pub(crate) struct Shared {
    pub config: StatusConfig,
    pub backend: Arc<dyn StatusBackend>,
    /// Never held across an `.await`.
    pub auth: Mutex<AuthState>,
    /// The console snippet, when configured. Locked only while `auth` is held (order: auth,
    /// then console), so a code that was just used can never be written back.
    pub console: Option<Mutex<Console>>,
}

impl Shared {
    /// Brings the console snippet up to date with this machine's addresses and `auth`'s setup
    /// code (the caller holds the auth lock).
    pub fn update_console(&self, auth: &AuthState) {
        if let Some(c) = &self.console {
            let local = crate::console::local_addrs();
            c.lock()
                .unwrap_or_else(|p| p.into_inner())
                .update(&local, auth.setup_code());
        }
    }
}
