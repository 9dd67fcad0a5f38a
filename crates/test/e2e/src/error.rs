//! The harness's errors, by origin: the environment, strahl itself, a bounded wait, a driver.
//!
//! Contract: every fallible harness call returns [`Result`]; the variants carry what a test
//! failure needs to be read (strahl's log for [`Error::Host`], the driver's output for
//! [`Error::Driver`]). Imports no other file of this crate.

/// Errors of the harness, by origin.
#[derive(Debug)]
pub enum Error {
    /// The environment: binaries, interpreter, files, ports.
    Setup(String),
    /// strahl (run.sh or one of its processes) did not do what was expected.
    Host { what: String, log: String },
    /// A bounded wait ran out.
    Timeout(String),
    /// A driver process misbehaved (killed, garbage on stdout, missing step, non-zero exit).
    Driver { what: String, output: String },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Setup(s) => write!(f, "setup: {s}"),
            Error::Host { what, log } => write!(f, "strahl: {what}\n--- log ---\n{log}"),
            Error::Timeout(s) => write!(f, "timed out: {s}"),
            Error::Driver { what, output } => write!(f, "driver: {what}\n{output}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
