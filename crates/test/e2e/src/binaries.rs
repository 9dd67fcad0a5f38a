//! Where the binaries come from: the repository root, `$STRAHL_BIN_DIR` or a build with this
//! test's cargo, target directory and profile, and the unprivileged data-plane wrapper.
//!
//! Contract: [`bin_dir`] builds at most once per test process (the result, error included, is
//! cached); the wrapper of `unprivileged_bin_dir` runs the real data plane through `setpriv`
//! with no capabilities. Imports [`crate::error`] only.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The repository root (this crate is `crates/test/e2e`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// Directory holding `strahl-dataplane` and `strahl-control`: `$STRAHL_BIN_DIR`, else built
/// once per test process with this test's cargo, target directory and profile.
pub fn bin_dir() -> Result<PathBuf> {
    static DIR: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(d) = std::env::var_os("STRAHL_BIN_DIR") {
            return Ok(PathBuf::from(d));
        }
        build_binaries()
    })
    .clone()
    .map_err(Error::Setup)
}

fn build_binaries() -> std::result::Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    // <target>/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("test binary not under <target>/<profile>/deps")?;
    let target_dir = profile_dir.parent().ok_or("no target directory")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(repo_root())
        .args(["build", "-p", "strahl-dataplane", "-p", "strahl-control"])
        .args(["--bin", "strahl-dataplane", "--bin", "strahl-control"])
        // The native reference client, for the native tests' client namespaces.
        .args(["-p", "strahl-client", "--bin", "strahl-client"])
        .arg("--target-dir")
        .arg(target_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // Under `cargo test` the test profile (opt-level 2, see the workspace Cargo.toml) has
    // already built both binaries for their own integration tests: asking for the same profile
    // reuses them (no second compile in CI) and gives a host fast enough to encode 720p60 in
    // real time; the dev profile would rebuild every workspace crate at opt-level 0.
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    } else {
        cmd.args(["--profile", "test"]);
    }
    cmd.arg("--locked");
    let st = cmd.status().map_err(|e| format!("run cargo build: {e}"))?;
    if !st.success() {
        return Err(format!("cargo build of the strahl binaries failed ({st})"));
    }
    let dir = profile_dir.to_path_buf();
    for b in ["strahl-dataplane", "strahl-control", "strahl-client"] {
        if !dir.join(b).exists() {
            return Err(format!("{} missing after the build", dir.join(b).display()));
        }
    }
    Ok(dir)
}

/// Writes `dir/bin/`: a `strahl-dataplane` script that runs the real one as `user` without any
/// capability (`setpriv`, as crates/dp/dataplane/tests/startup.rs does), and a link to the real
/// `strahl-control`. Returns the directory for `STRAHL_BIN_DIR`.
pub(crate) fn unprivileged_bin_dir(dir: &Path, real: &Path, user: &str) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let setup = |what: &Path, e: std::io::Error| Error::Setup(format!("{}: {e}", what.display()));
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| setup(&bin, e))?;
    let group = if user == "nobody" { "nogroup" } else { user };
    let script = format!(
        "#!/bin/sh\n# written by strahl-e2e: the data plane as {user}, no capabilities\n\
         exec setpriv --reuid={user} --regid={group} --clear-groups --inh-caps=-all \\\n  \
         '{dp}' \"$@\"\n",
        dp = real.join("strahl-dataplane").display()
    );
    let dp = bin.join("strahl-dataplane");
    std::fs::write(&dp, script).map_err(|e| setup(&dp, e))?;
    std::fs::set_permissions(&dp, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| setup(&dp, e))?;
    let cp = bin.join("strahl-control");
    std::os::unix::fs::symlink(real.join("strahl-control"), &cp).map_err(|e| setup(&cp, e))?;
    // The unprivileged data plane creates its IPC socket here.
    let run = dir.join("run");
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o777))
        .map_err(|e| setup(&run, e))?;
    Ok(bin)
}
