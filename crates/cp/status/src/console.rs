//! The console snippet: what a person with a screen attached to the appliance sees above the
//! login prompt — the status page's URLs and, until the admin password is set, the setup code.
//!
//! Contract: the server writes it to [`crate::StatusConfig::console_issue`] (on the appliance
//! `/run/strahl/console.issue`, which the image links as `/etc/issue.d/strahl.issue`; agetty
//! reads `*.issue` files there) atomically, mode 0600 (it holds a secret; agetty reads it as
//! root): at start, again without the code as soon as a password is set, and whenever the
//! machine's addresses change ([`CONSOLE_REFRESH`]; at first boot the network usually comes up
//! after us). Rendering is a pure function of the URLs and the code. The text holds no `\`
//! (agetty's escape character): URLs of IP literals and base32 codes cannot contain one.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::auth::SECRET_FILE_MODE;
use crate::setup::SetupCode;
use strahl_statefile::write_atomic;

/// The snippet's file name in the runtime directory.
pub const CONSOLE_ISSUE_FILE: &str = "console.issue";
/// How often the machine's addresses are looked at again (the file is rewritten only when its
/// text changes).
pub const CONSOLE_REFRESH: Duration = Duration::from_secs(5);

/// `http://…/` for each address a browser on the LAN can use to reach a server bound to
/// `bound`: that address itself when it is specific, else every one of `local` that the
/// wildcard covers (`0.0.0.0`: IPv4; `::`: both), without loopback and IPv6 link-local ones
/// (a browser needs a zone id for those).
pub fn status_urls(bound: SocketAddr, local: &[IpAddr]) -> Vec<String> {
    let url = |ip: IpAddr| match ip {
        IpAddr::V4(a) => format!("http://{a}:{}/", bound.port()),
        IpAddr::V6(a) => format!("http://[{a}]:{}/", bound.port()),
    };
    if !bound.ip().is_unspecified() {
        return vec![url(bound.ip())];
    }
    let mut ips: Vec<IpAddr> = local
        .iter()
        .copied()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .filter(|ip| match ip {
            IpAddr::V4(_) => true,
            IpAddr::V6(a) => bound.is_ipv6() && !a.is_unicast_link_local(),
        })
        .collect();
    // IPv4 first (shorter to type), then in address order; each once.
    ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    ips.dedup();
    ips.into_iter().map(url).collect()
}

/// This machine's interface addresses (empty, with a log line, if they cannot be listed).
pub fn local_addrs() -> Vec<IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(list) => list.into_iter().map(|i| i.ip()).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "status: cannot list this machine's addresses");
            Vec::new()
        }
    }
}

/// The snippet's text.
pub fn render_issue(urls: &[String], code: Option<&SetupCode>) -> String {
    let mut s = String::from("strahl status page:\n");
    if urls.is_empty() {
        s.push_str("  (no network address yet; this list follows the network)\n");
    }
    for u in urls {
        s.push_str(&format!("  {u}\n"));
    }
    if let Some(code) = code {
        s.push_str(&format!(
            "First start: open the page and enter the setup code   {code}\n\
             to set the admin password (the code works once).\n"
        ));
    }
    s.push('\n');
    s
}

/// The snippet file and what was last written to it.
pub(crate) struct Console {
    path: PathBuf,
    bound: SocketAddr,
    written: Option<String>,
    /// The text whose write failed last (logged once, retried at each refresh).
    failed: Option<String>,
}

impl Console {
    pub(crate) fn new(path: PathBuf, bound: SocketAddr) -> Console {
        Console {
            path,
            bound,
            written: None,
            failed: None,
        }
    }

    /// Renders for `local` addresses and `code`; writes only when the text changed. Errors
    /// are logged (the journal has the code too): the page keeps working without the snippet.
    pub(crate) fn update(&mut self, local: &[IpAddr], code: Option<&SetupCode>) {
        let text = render_issue(&status_urls(self.bound, local), code);
        if self.written.as_deref() == Some(text.as_str()) {
            return;
        }
        let written = self
            .path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| write_atomic(&self.path, text.as_bytes(), SECRET_FILE_MODE));
        match written {
            Ok(()) => {
                tracing::debug!(path = %self.path.display(), "status: console snippet written");
                self.written = Some(text);
                self.failed = None;
            }
            Err(e) => {
                if self.failed.as_deref() != Some(text.as_str()) {
                    tracing::warn!(path = %self.path.display(), error = %e, "status: cannot write the console snippet");
                }
                self.failed = Some(text);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(v: &[&str]) -> Vec<IpAddr> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn urls_cover_what_the_wildcard_binds_and_skip_unusable_addresses() {
        let local = ips(&[
            "127.0.0.1",
            "192.168.1.5",
            "10.0.0.2",
            "::1",
            "fe80::1",
            "2001:db8::5",
            "192.168.1.5",
        ]);
        assert_eq!(
            status_urls("0.0.0.0:47990".parse().unwrap(), &local),
            vec!["http://10.0.0.2:47990/", "http://192.168.1.5:47990/"]
        );
        assert_eq!(
            status_urls("[::]:47990".parse().unwrap(), &local),
            vec![
                "http://10.0.0.2:47990/",
                "http://192.168.1.5:47990/",
                "http://[2001:db8::5]:47990/"
            ]
        );
        assert_eq!(
            status_urls("192.168.1.5:1234".parse().unwrap(), &local),
            vec!["http://192.168.1.5:1234/"]
        );
        assert!(status_urls("0.0.0.0:47990".parse().unwrap(), &ips(&["127.0.0.1"])).is_empty());
    }

    #[test]
    fn snippet_shows_the_code_only_while_it_is_unused() {
        let code = SetupCode::parse("04HM-ASW9").unwrap();
        let urls = vec!["http://192.168.1.5:47990/".to_string()];
        let with = render_issue(&urls, Some(&code));
        assert_eq!(
            with,
            "strahl status page:\n  http://192.168.1.5:47990/\nFirst start: open the page and \
             enter the setup code   04HM-ASW9\nto set the admin password (the code works \
             once).\n\n"
        );
        let without = render_issue(&urls, None);
        assert_eq!(
            without,
            "strahl status page:\n  http://192.168.1.5:47990/\n\n"
        );
        assert!(render_issue(&[], None).contains("no network address yet"));
        assert!(!with.contains('\\'), "agetty's escape character");
    }

    #[test]
    fn update_writes_0600_and_only_on_change() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/console.issue");
        let mut c = Console::new(path.clone(), "0.0.0.0:47990".parse().unwrap());
        let code = SetupCode::parse("04HM-ASW9").unwrap();
        c.update(&ips(&["192.168.1.5"]), Some(&code));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("http://192.168.1.5:47990/") && text.contains("04HM-ASW9"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Unchanged text: not rewritten (an operator's edit survives until something changes).
        std::fs::write(&path, "edited").unwrap();
        c.update(&ips(&["192.168.1.5"]), Some(&code));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "edited");
        // A new address, then the code used: rewritten each time.
        c.update(&ips(&["192.168.1.5", "10.0.0.2"]), Some(&code));
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("http://10.0.0.2:47990/")
        );
        c.update(&ips(&["192.168.1.5", "10.0.0.2"]), None);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("04HM-ASW9") && !text.contains("setup code"),
            "{text}"
        );
        assert!(text.contains("http://10.0.0.2:47990/"), "{text}");
    }
}
