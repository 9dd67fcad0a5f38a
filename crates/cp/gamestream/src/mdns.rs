//! mDNS advertisement of `_nvstream._tcp` on the HTTP port (reference §A2), so Moonlight's
//! discovery lists the host. Manual add by IP works without it.
//!
//! Contract: `MdnsAdvertiser::start` registers one service instance named after the host
//! on every interface (addresses follow interface changes); `stop` unregisters it (goodbye
//! packets) and shuts the responder thread down, each step bounded by `STOP_TIMEOUT`.
//! mdns-sd runs its own thread; nothing here blocks the tokio runtime for long.

use std::time::Duration;

use mdns_sd::{ServiceDaemon, ServiceInfo};

/// The GameStream service type.
pub const SERVICE_TYPE: &str = "_nvstream._tcp.local.";
/// Bound for each shutdown step (unregister, daemon stop).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the advertisement could not start.
#[derive(Debug)]
pub struct MdnsError(pub String);

impl std::fmt::Display for MdnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "mDNS advertisement failed: {}", self.0)
    }
}

impl std::error::Error for MdnsError {}

/// A registered `_nvstream._tcp` instance.
pub struct MdnsAdvertiser {
    daemon: ServiceDaemon,
    fullname: String,
}

/// A DNS label from a display name: ASCII letters, digits and '-', at most 63 bytes.
fn dns_label(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect::<String>()
        .trim_matches('-')
        .to_owned();
    if s.is_empty() { "strahl".to_owned() } else { s }
}

impl MdnsAdvertiser {
    /// Advertises `instance` (the host's display name) on `port`.
    pub fn start(instance: &str, port: u16) -> Result<Self, MdnsError> {
        let daemon = ServiceDaemon::new().map_err(|e| MdnsError(e.to_string()))?;
        let host_name = format!("{}.local.", dns_label(instance));
        let info = ServiceInfo::new(
            SERVICE_TYPE,
            instance,
            &host_name,
            (),
            port,
            None::<std::collections::HashMap<String, String>>,
        )
        .map_err(|e| MdnsError(e.to_string()))?
        .enable_addr_auto();
        let fullname = info.get_fullname().to_owned();
        if let Err(e) = daemon.register(info) {
            let _ = daemon.shutdown();
            return Err(MdnsError(e.to_string()));
        }
        tracing::info!(%fullname, port, "mDNS: advertising");
        Ok(MdnsAdvertiser { daemon, fullname })
    }

    /// The registered instance's full name.
    pub fn fullname(&self) -> &str {
        &self.fullname
    }

    /// Unregisters (sends goodbyes) and stops the responder.
    pub fn stop(self) {
        if let Ok(rx) = self.daemon.unregister(&self.fullname) {
            let _ = rx.recv_timeout(STOP_TIMEOUT);
        }
        if let Ok(rx) = self.daemon.shutdown() {
            let _ = rx.recv_timeout(STOP_TIMEOUT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::dns_label;

    #[test]
    fn labels_are_dns_safe() {
        assert_eq!(dns_label("My Gaming PC"), "My-Gaming-PC");
        assert_eq!(dns_label("  "), "strahl");
        assert_eq!(dns_label(&"x".repeat(100)).len(), 63);
        assert_eq!(dns_label("héllo"), "h-llo");
    }
}
