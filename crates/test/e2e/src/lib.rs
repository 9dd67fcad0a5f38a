//! End-to-end harness: strahl started exactly as the README starts it (`scripts/run.sh
//! --config FILE`, both binaries supervised together), on loopback, and driven by the real
//! Moonlight core (PyPI moonlight-python 0.3.0, GPL: a test tool in its own process, never
//! linked) through `crates/test/moonlight/driver.py`.
//!
//! Contract of [`Strahl`]:
//! - [`Strahl::start`] writes a temp config (a free GameStream base port and status port per
//!   instance so tests run in parallel, a temp `state_dir` and IPC socket, plus
//!   [`Options::extra_toml`] verbatim), runs `scripts/run.sh --config <it>` in its own process
//!   group with `STRAHL_BIN_DIR` = the test build's binaries and `STRAHL_CONTROL_ARGS=--no-mdns`,
//!   and returns once the control plane logged "connected to dataplane" (bounded by
//!   [`Options::start_timeout`]);
//! - the combined output of run.sh and both processes is collected ([`Strahl::log`]);
//! - on drop the whole process group gets SIGTERM, then SIGKILL after [`STOP_GRACE`], and the
//!   scratch directory is removed (kept when `STRAHL_E2E_KEEP=1`, for post-mortems).
//!
//! In a network namespace ([`Options::netns`], test beds from [`netns`]): run.sh is started as
//! `ip netns exec <host ns> bash scripts/run.sh --config FILE`, the config listens on the host
//! namespace's address with the GameStream default ports (the namespace is fresh, so they are
//! free) and `[dataplane] interface = "auto"` (the veth of the default route); the status
//! server, `strahl-control pin` and every HTTP request of the harness run inside the host
//! namespace too (`ip netns exec … curl`), and clients run in their own namespaces
//! ([`Driver::spawn_in`]). [`Options::embedded_config`] starts run.sh without `--config` at all
//! (the compiled-in default, mDNS included, as `make run` does) with `STATE_DIRECTORY` and
//! `RUNTIME_DIRECTORY` pointing into the scratch directory; [`Options::dataplane_user`] runs
//! the data plane as an unprivileged user through a `setpriv` wrapper in `STRAHL_BIN_DIR`.
//!
//! Binaries: `$STRAHL_BIN_DIR` when set, else `cargo build -p strahl-dataplane -p
//! strahl-control` with this test's cargo, target directory and profile (a no-op when fresh;
//! binaries of other packages are not exposed to a test crate, so the harness builds them).
//!
//! Files: [`error`] (the harness's errors), [`binaries`] (where the binaries come from),
//! [`options`] (how to start one instance), [`instance`] (start, log, signals, `pin`, teardown),
//! [`http`] (status server, metrics), [`pairing`] (pairing real clients), [`clips`] (passthrough
//! clips per codec, made with ffmpeg), plus `driver`,
//! `ports`, [`harness`] and [`netns`]. This file declares them and re-exports their API.
#![forbid(unsafe_code)]

pub mod binaries;
pub mod clips;
mod driver;
pub mod error;
pub mod harness;
pub mod http;
pub mod instance;
pub mod netns;
pub mod options;
pub mod pairing;
mod ports;

pub use binaries::{bin_dir, repo_root};
pub use driver::{Driver, DriverOutput, driver_script, python, run_driver};
pub use error::{Error, Result};
pub use instance::{STOP_GRACE, Strahl};
pub use options::{HostNetns, Options, START_TIMEOUT};
pub use pairing::{PAIR_TIMEOUT, PIN_WAIT, PIN_WAITING_LINE};
pub use ports::PortPlan;
