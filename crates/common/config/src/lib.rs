//! `strahl-config`: the one configuration file, typed.
//!
//! `appliance/strahl.toml` is the commented default; it is compiled in ([`DEFAULT_TOML`]) and
//! every struct's `Default` equals it (a test parses the file and compares). A user file may
//! omit any key. **Every** unknown key and every invalid value is an error that names the file,
//! the line and the dotted key ([`ConfigError`]); cross-field rules (FEC bounds, port clashes,
//! duplicate apps) are checked right after parsing with the same kind of error. The data-plane
//! [`Plan`] (cores, ring sizes, batch sizes) is derived from a valid config and the machine's
//! core count, without touching the machine itself.
#![forbid(unsafe_code)]

mod error;
mod paths;
mod plan;
mod types;
mod validate;

use std::path::Path;

pub use error::ConfigError;
pub use paths::{
    Env, ResolvedPath, resolve_socket, resolve_state_dir, systemd_runtime_dir, why as paths_why,
};
pub use plan::{Plan, PlanError, RingSizes, Tile, parse_cpu_list, parse_cpu_list_last};
pub use types::*;

/// The compiled-in default configuration (the appliance's `strahl.toml`).
pub const DEFAULT_TOML: &str = include_str!("../../../../appliance/strahl.toml");
/// Name used for the embedded file in error messages.
pub const DEFAULT_NAME: &str = "<embedded appliance/strahl.toml>";

impl Config {
    /// Parses `src`; `file` only labels errors.
    pub fn parse(src: &str, file: &str) -> Result<Config, ConfigError> {
        let de =
            toml::Deserializer::parse(src).map_err(|e| ConfigError::from_toml(file, src, "", e))?;
        let cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::from_toml(file, src, &path, e.into_inner())
        })?;
        validate::check(&cfg).map_err(|(key, msg)| ConfigError::at_key(file, src, &key, msg))?;
        Ok(cfg)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
            file: name.clone(),
            error: e.to_string(),
        })?;
        Self::parse(&src, &name)
    }

    /// The compiled-in default.
    pub fn embedded() -> Config {
        // The embedded file is checked by this crate's tests; failing here is a build defect.
        Self::parse(DEFAULT_TOML, DEFAULT_NAME).expect("embedded default config is valid")
    }

    /// `--config FILE` if given, else the embedded default.
    pub fn load_or_default(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(p) => Self::load(p),
            None => Ok(Self::embedded()),
        }
    }
}
