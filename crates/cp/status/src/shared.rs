//! What every request handler sees: the server's configuration, the control plane's backend
//! and the authentication state. Built by `server.rs` at bind, read by `routes.rs` per request;
//! it lives here so that neither of those two files imports the other for it.

use std::sync::{Arc, Mutex};

use crate::auth::AuthState;
use crate::backend::StatusBackend;

/// Which reads are open without a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusConfig {
    /// `/api/v1/status` and `GET /api/v1/clients` readable without login (the native pairing
    /// PIN is still only shown to logged-in callers). Off by default; the appliance config
    /// `[status] open_reads` maps here.
    pub open_reads: bool,
    /// `/healthz` and `/metrics` readable without login (on by default: monitoring scrapers).
    pub open_health_and_metrics: bool,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            open_reads: false,
            open_health_and_metrics: true,
        }
    }
}

/// The state every connection of one server shares.
pub(crate) struct Shared {
    pub config: StatusConfig,
    pub backend: Arc<dyn StatusBackend>,
    /// Never held across an `.await`.
    pub auth: Mutex<AuthState>,
}
