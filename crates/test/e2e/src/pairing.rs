//! Pairing real Moonlight clients with an instance: the driver's `pair` step in its own
//! process, the operator's PIN through the real `strahl-control pin` once the client waits in
//! stage 1.
//!
//! Contract: every wait is bounded ([`PIN_WAIT`] for the client to reach stage 1,
//! [`PAIR_TIMEOUT`] for the driver); [`Strahl::pair`] fails unless the CLI and the driver both
//! say the client paired. Imports [`crate::instance`], `crate::driver` and [`crate::error`].

use std::path::Path;
use std::time::Duration;

use crate::driver::{Driver, DriverOutput};
use crate::error::{Error, Result};
use crate::instance::Strahl;

/// Bound for one pairing driver: Python start-up, RSA key generation, four HTTP round trips
/// and the stage-1 long poll.
pub const PAIR_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the client's stage-1 request may take to reach the host.
pub const PIN_WAIT: Duration = Duration::from_secs(60);
/// Log line the control plane prints while a client waits for its PIN.
pub const PIN_WAITING_LINE: &str = "pairing: waiting for the PIN";

impl Strahl {
    /// Driver arguments that point a client at this instance: `--host ADDR --port HTTP`.
    pub fn client_args(&self) -> Vec<String> {
        vec![
            "--host".into(),
            self.addr().to_string(),
            "--port".into(),
            self.ports.http.to_string(),
        ]
    }

    /// One pairing attempt by a real Moonlight client whose identity lives in `client_dir`:
    /// the client uses `client_pin`, the operator types `operator_pin` into `strahl-control
    /// pin` once the client waits in stage 1. Returns the driver's output (its `pair` step says
    /// whether it paired) and the pin CLI's (exit code, text).
    pub fn pair_attempt(
        &self,
        client_dir: &Path,
        client_pin: &str,
        operator_pin: &str,
    ) -> Result<(DriverOutput, (i32, String))> {
        self.pair_attempt_in(None, client_dir, client_pin, operator_pin)
    }

    /// [`pair_attempt`](Self::pair_attempt) with the client running in namespace `client_ns`.
    pub fn pair_attempt_in(
        &self,
        client_ns: Option<&str>,
        client_dir: &Path,
        client_pin: &str,
        operator_pin: &str,
    ) -> Result<(DriverOutput, (i32, String))> {
        std::fs::create_dir_all(client_dir)
            .map_err(|e| Error::Setup(format!("{}: {e}", client_dir.display())))?;
        let waiting = self.log_count(PIN_WAITING_LINE);
        let mut args = vec!["pair".to_string()];
        args.extend(self.client_args());
        args.extend([
            "--config".into(),
            client_dir.display().to_string(),
            "--pin".into(),
            client_pin.into(),
        ]);
        let drv = Driver::spawn_in(client_ns, &args)?;
        self.wait_log_n(PIN_WAITING_LINE, waiting + 1, PIN_WAIT)?;
        let cli = self.pin(operator_pin, None)?;
        let out = drv.finish(PAIR_TIMEOUT)?;
        Ok((out, cli))
    }

    /// Pairs a real Moonlight client (identity in `client_dir`) with a PIN chosen here and
    /// submitted through `strahl-control pin`. Returns the driver's lines.
    pub fn pair(&self, client_dir: &Path) -> Result<DriverOutput> {
        self.pair_in(None, client_dir)
    }

    /// [`pair`](Self::pair) with the client running in namespace `client_ns`.
    pub fn pair_in(&self, client_ns: Option<&str>, client_dir: &Path) -> Result<DriverOutput> {
        // Distinct per client directory, so two clients of one instance use different PINs.
        let salt = client_dir
            .to_string_lossy()
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        let pin = format!(
            "{:04}",
            (std::process::id() ^ self.ports.http as u32 ^ salt) % 10_000
        );
        let (out, (code, text)) = self.pair_attempt_in(client_ns, client_dir, &pin, &pin)?;
        if code != 0 {
            return Err(self.host_error(format!("strahl-control pin {pin} exited {code}: {text}")));
        }
        let ok = out.step("pair").is_some_and(|p| p["ok"] == true);
        if !ok {
            return Err(Error::Driver {
                what: "pairing failed".into(),
                output: out.to_string(),
            });
        }
        Ok(out)
    }
}
