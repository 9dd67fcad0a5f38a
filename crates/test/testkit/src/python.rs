//! Where the test suites find the Python that runs the real Moonlight core and the other Python
//! test peers: one rule for every crate, so a machine set up once (`make test` → scripts/setup.sh
//! makes `<repo>/.venv`) serves them all.
//!
//! Order: `$STRAHL_MOONLIGHT_PYTHON` (must exist), else `<repo>/.venv/bin/python`, else
//! `/tmp/mlvenv/bin/python`. Errors are messages that say how to fix the machine.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The variable that names the interpreter explicitly.
pub const PYTHON_ENV: &str = "STRAHL_MOONLIGHT_PYTHON";

/// The repository's root (this crate sits at `crates/test/testkit`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// The one Moonlight driver every test, example and bench runs (`driver.py <subcommand>`).
pub fn moonlight_driver() -> PathBuf {
    repo_root().join("crates/test/moonlight/driver.py")
}

fn candidates() -> [PathBuf; 2] {
    [
        repo_root().join(".venv/bin/python"),
        PathBuf::from("/tmp/mlvenv/bin/python"),
    ]
}

/// The interpreter with moonlight-python (see the module header).
pub fn moonlight_python() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(PYTHON_ENV) {
        let p = PathBuf::from(p);
        return if p.exists() {
            Ok(p)
        } else {
            Err(format!("{PYTHON_ENV}={} does not exist", p.display()))
        };
    }
    candidates()
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| {
            format!(
                "no Python with moonlight-python found: set {PYTHON_ENV}, or run `make test` \
             (creates <repo>/.venv), or provide /tmp/mlvenv/bin/python"
            )
        })
}

/// The first interpreter of the same order that can `import module`.
pub fn python_with(module: &str) -> Result<PathBuf, String> {
    let named = std::env::var_os(PYTHON_ENV).map(PathBuf::from);
    let imports = |p: &PathBuf| {
        p.exists()
            && Command::new(p)
                .args(["-c", &format!("import {module}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    };
    named
        .into_iter()
        .chain(candidates())
        .find(imports)
        .ok_or_else(|| {
            format!(
                "no Python that imports {module}: run `make test` (scripts/setup.sh installs it \
                 into <repo>/.venv), or set {PYTHON_ENV}"
            )
        })
}
