//! Resolution of the `"auto"` paths. Pure functions over an [`Env`] snapshot so the rules are
//! testable; [`Env::from_process`] takes the snapshot.
//!
//! Socket (`dataplane.socket = "auto"`), first that applies:
//! 1. `$RUNTIME_DIRECTORY/dataplane.sock` — systemd sets it for units with
//!    `RuntimeDirectory=strahl`, giving `/run/strahl/dataplane.sock` on the appliance;
//! 2. `$XDG_RUNTIME_DIR/strahl/dataplane.sock` — a desktop/dev login session;
//! 3. `/tmp/strahl-$UID/dataplane.sock` — anything else (e.g. a bare container shell).
//!
//! Both processes apply the same rules, so on a dev machine (same user, same session) they meet
//! without any flag.
//!
//! State directory (`host.state_dir = "auto"`): `$STATE_DIRECTORY` (systemd `StateDirectory=`),
//! else `$XDG_STATE_HOME/strahl`, else `$HOME/.local/state/strahl`, else `/tmp/strahl-$UID/state`.
//!
//! The systemd runtime directory ([`systemd_runtime_dir`]): `$RUNTIME_DIRECTORY` only — what the
//! appliance links from outside (the console snippet); nothing there outside systemd.

use std::path::PathBuf;

use crate::types::AutoPath;

/// The `why` strings of [`ResolvedPath`], for callers that act on the rule (e.g. extra checks
/// for the world-writable `/tmp` fallback).
pub mod why {
    pub const TMP_FALLBACK: &str = "/tmp fallback";
}

/// The environment the rules look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    pub runtime_directory: Option<String>,
    pub xdg_runtime_dir: Option<String>,
    pub state_directory: Option<String>,
    pub xdg_state_home: Option<String>,
    pub home: Option<String>,
    pub uid: u32,
}

impl Env {
    pub fn from_process() -> Env {
        // Empty values count as unset (as in the XDG spec).
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Env {
            runtime_directory: var("RUNTIME_DIRECTORY"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            state_directory: var("STATE_DIRECTORY"),
            xdg_state_home: var("XDG_STATE_HOME"),
            home: var("HOME"),
            uid: rustix::process::getuid().as_raw(),
        }
    }
}

/// A resolved path and the rule that produced it (for the start-up log line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPath {
    pub path: PathBuf,
    pub why: &'static str,
}

/// Resolves the IPC socket path.
pub fn resolve_socket(setting: &AutoPath, env: &Env) -> ResolvedPath {
    if let AutoPath::Path(p) = setting {
        return ResolvedPath {
            path: p.clone(),
            why: "configured",
        };
    }
    if let Some(d) = systemd_runtime_dir(env) {
        return ResolvedPath {
            path: d.join("dataplane.sock"),
            why: "$RUNTIME_DIRECTORY (systemd)",
        };
    }
    if let Some(d) = &env.xdg_runtime_dir {
        return ResolvedPath {
            path: PathBuf::from(d).join("strahl/dataplane.sock"),
            why: "$XDG_RUNTIME_DIR",
        };
    }
    ResolvedPath {
        path: PathBuf::from(format!("/tmp/strahl-{}/dataplane.sock", env.uid)),
        why: why::TMP_FALLBACK,
    }
}

/// The unit's `RuntimeDirectory=` (`/run/strahl` on the appliance) when systemd started us.
pub fn systemd_runtime_dir(env: &Env) -> Option<PathBuf> {
    // systemd may list several directories separated by ':'; ours is the first.
    env.runtime_directory
        .as_deref()
        .and_then(|d| d.split(':').next())
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// Resolves the state directory.
pub fn resolve_state_dir(setting: &AutoPath, env: &Env) -> ResolvedPath {
    if let AutoPath::Path(p) = setting {
        return ResolvedPath {
            path: p.clone(),
            why: "configured",
        };
    }
    if let Some(d) = env
        .state_directory
        .as_deref()
        .and_then(|d| d.split(':').next())
    {
        return ResolvedPath {
            path: PathBuf::from(d),
            why: "$STATE_DIRECTORY (systemd)",
        };
    }
    if let Some(d) = &env.xdg_state_home {
        return ResolvedPath {
            path: PathBuf::from(d).join("strahl"),
            why: "$XDG_STATE_HOME",
        };
    }
    if let Some(h) = &env.home {
        return ResolvedPath {
            path: PathBuf::from(h).join(".local/state/strahl"),
            why: "$HOME",
        };
    }
    ResolvedPath {
        path: PathBuf::from(format!("/tmp/strahl-{}/state", env.uid)),
        why: why::TMP_FALLBACK,
    }
}
