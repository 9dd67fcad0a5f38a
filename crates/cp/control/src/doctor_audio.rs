//! The `audio` check of `strahl-control doctor`: can the data plane capture the box's sound?
//!
//! Contract (sans-IO like every check: the machine only through [`SystemView`]):
//! - `[audio] source = "tone"` / `"none"`: nothing to check; the detail says how to stream the
//!   box's sound.
//! - `"auto"` / `"pipewire"`: `pw-record` answers `--version`; the socket (`[audio]
//!   pipewire_socket`, else the appliance's desktop user's [`APPLIANCE_PIPEWIRE_SOCKET`] — the
//!   one the appliance's data plane, a system service, probes) accepts a connection; and on
//!   the appliance (the [`AUDIO_GROUP`] group exists) the socket's directory grants that group
//!   `x` and the socket `rw` in their ACLs — what the desktop session's
//!   `strahl-pipewire-access.service` sets (appliance/pipewire/), without which the data plane's
//!   user is refused even where doctor, as root, gets in.
//! - Required only with `"pipewire"` (the data plane refuses to start without it); with `"auto"`
//!   a failure means the test tone, so it is recommended.
//!
//! A data plane run in a user session (`make run`) uses that session's `XDG_RUNTIME_DIR`
//! instead; its start-up line and the status page always say what it found.

use strahl_config::{APPLIANCE_PIPEWIRE_SOCKET, AUDIO_GROUP, AudioSource};

use super::model::{Finding, Inputs, Level, SystemView, Verdict, finding, level_if};

const C: &str = "audio";
/// The user unit that opens the desktop session's socket to [`AUDIO_GROUP`].
const ACCESS_UNIT: &str = "strahl-pipewire-access.service";

pub(super) fn audio(sys: &dyn SystemView, inp: &Inputs) -> Finding {
    if matches!(inp.audio, AudioSource::Tone | AudioSource::None) {
        return finding(
            C,
            Level::Recommended,
            Verdict::Ok,
            format!(
                "[audio] source = \"{}\": the box's sound is not streamed (set source = \"auto\" \
                 to stream it wherever PipeWire is reachable)",
                inp.audio.name()
            ),
            "",
        );
    }
    let required = inp.audio == AudioSource::Pipewire;
    let fail = |verdict: Verdict, what: String, fix: &str| {
        let then = if required {
            "the data plane refuses to start ([audio] source = \"pipewire\")"
        } else {
            "the data plane streams the test tone ([audio] source = \"auto\")"
        };
        finding(
            C,
            level_if(required),
            verdict,
            format!("{what}: {then}"),
            fix,
        )
    };
    let (socket, origin) = match &inp.pipewire_socket {
        Some(p) => (p.as_str(), "[audio] pipewire_socket"),
        None => (APPLIANCE_PIPEWIRE_SOCKET, "the appliance's desktop user"),
    };

    let pw_record = sys
        .run(&["pw-record", "--version"])
        .is_some_and(|o| o.status == 0);
    if !pw_record {
        return fail(
            Verdict::Fail,
            "pw-record is not on PATH".into(),
            "install pw-record (Fedora: pipewire-utils; Debian: pipewire-bin)",
        );
    }
    if let Err(e) = sys.connect_unix(socket) {
        return fail(
            Verdict::Fail,
            format!("no PipeWire at {socket} (from {origin}): {e}"),
            "log the desktop user in (its pipewire.socket listens there), or set [audio] \
             pipewire_socket to the socket of the user whose sound to stream \
             (/run/user/UID/pipewire-0); a data plane started in a user session (make run) \
             uses that session's XDG_RUNTIME_DIR instead, and its start-up line says so",
        );
    }
    let appliance = sys
        .read("/etc/group")
        .is_some_and(|g| g.lines().any(|l| l.starts_with(&format!("{AUDIO_GROUP}:"))));
    if !appliance {
        return finding(
            C,
            level_if(required),
            Verdict::Ok,
            format!(
                "PipeWire reachable at {socket} (from {origin}), pw-record found (no \
                 {AUDIO_GROUP} group: not the appliance, so the data plane runs as a user who \
                 may open it; its start-up line says what it reached)"
            ),
            "",
        );
    }
    let dir = match socket.rsplit_once('/') {
        Some((d, _)) if !d.is_empty() => d,
        _ => "/",
    };
    let grant_fix = format!(
        "as the desktop user: `systemctl --user enable --now {ACCESS_UNIT}` (the image's user \
         preset enables it for every user; it sets these ACLs whenever pipewire.socket starts), \
         or once by hand: `setfacl -m g:{AUDIO_GROUP}:x {dir}; setfacl -m g:{AUDIO_GROUP}:rw \
         {socket}`"
    );
    for (path, need) in [(dir, "x"), (socket, "rw")] {
        match group_perms(sys, path) {
            Err(why) => {
                return fail(
                    Verdict::Unknown,
                    format!("cannot read the ACL of {path}: {why}"),
                    "run doctor as root (sudo) with getfacl (the acl package) installed",
                );
            }
            Ok(have) if !need.chars().all(|c| have.contains(c)) => {
                return fail(
                    Verdict::Fail,
                    format!(
                        "{path} grants the {AUDIO_GROUP} group \"{have}\", not \"{need}\" (the \
                         data plane's user is refused)"
                    ),
                    &grant_fix,
                );
            }
            Ok(_) => {}
        }
    }
    finding(
        C,
        level_if(required),
        Verdict::Ok,
        format!(
            "PipeWire reachable at {socket} (from {origin}) and open to the {AUDIO_GROUP} group; \
             pw-record found: the data plane captures the box's sound"
        ),
        "",
    )
}

/// The permissions `path`'s ACL gives [`AUDIO_GROUP`] in effect (its entry under the mask),
/// e.g. `"rw"`; `""` without an entry.
fn group_perms(sys: &dyn SystemView, path: &str) -> Result<String, String> {
    let out = sys
        .run(&["getfacl", "--omit-header", "--absolute-names", path])
        .ok_or("getfacl did not run")?;
    if out.status != 0 {
        return Err(format!("getfacl exited with {}", out.status));
    }
    Ok(effective_group_perms(&out.stdout, AUDIO_GROUP))
}

/// From `getfacl` output: the perms of `group:NAME:` intersected with `mask::` (POSIX ACLs: a
/// named group gets no more than the mask).
pub(super) fn effective_group_perms(getfacl: &str, group: &str) -> String {
    let field = |prefix: &str| {
        getfacl.lines().find_map(|l| {
            let l = l.split('#').next().unwrap_or("").trim();
            l.strip_prefix(prefix).map(|p| p.trim().to_string())
        })
    };
    let Some(entry) = field(&format!("group:{group}:")) else {
        return String::new();
    };
    let mask = field("mask::").unwrap_or_else(|| "rwx".into());
    entry
        .chars()
        .filter(|c| *c != '-' && mask.contains(*c))
        .collect()
}
