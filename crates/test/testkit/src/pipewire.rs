//! A private PipeWire for a test: its own D-Bus session bus, `pipewire`, WirePlumber (the
//! session manager that links streams and picks the default sink) and a null sink, all under
//! one temporary runtime directory, so nothing of the machine's own audio (if any) is touched.
//! Needs no sound hardware: the null sink runs on PipeWire's dummy driver (the system clock).
//!
//! Contract: [`PipeWire::start`] returns once the null sink is WirePlumber's default sink (or
//! fails with the daemons' logs, bounded by [`START_BOUND`]); clients get the instance through
//! [`PipeWire::env`]; [`PipeWire::play`] plays a WAV into the default sink. Drop kills the
//! processes it started, by their handles, and removes the directory. [`write_tone_wav`] and
//! [`dominant_hz`] make and check the known tone. The programs come from `scripts/setup.sh`
//! (pipewire, pipewire-bin, wireplumber, dbus-daemon); a missing one is an error, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Bound on each daemon's start and on the default sink appearing.
pub const START_BOUND: Duration = Duration::from_secs(20);
/// Node name of the null sink the test plays into.
pub const SINK: &str = "strahl-test-sink";
const POLL: Duration = Duration::from_millis(50);

/// The running daemons of one test.
#[derive(Debug)]
pub struct PipeWire {
    dir: PathBuf,
    /// Started in order: dbus, pipewire, wireplumber (killed in reverse).
    children: Vec<Child>,
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + START_BOUND;
    while Instant::now() < deadline {
        if ok() {
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
    Err(format!("{what}: not within {START_BOUND:?}"))
}

impl PipeWire {
    /// Starts everything under `dir` (created, mode 0700 as PipeWire wants its runtime dir).
    pub fn start(dir: &Path) -> Result<Self, String> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut pw = PipeWire {
            dir: dir.to_path_buf(),
            children: Vec::new(),
        };
        let bus = dir.join("bus");
        pw.spawn(
            "dbus-daemon",
            &[
                "--session",
                &format!("--address=unix:path={}", bus.display()),
                "--nofork",
                "--nopidfile",
            ],
        )?;
        wait_for("the D-Bus session bus", || bus.exists()).map_err(|e| pw.failed(&e))?;
        pw.spawn("pipewire", &[])?;
        let sock = dir.join("pipewire-0");
        wait_for("the pipewire socket", || sock.exists()).map_err(|e| pw.failed(&e))?;
        pw.spawn("wireplumber", &[])?;
        let props = format!(
            "{{ factory.name=support.null-audio-sink node.name={SINK} media.class=Audio/Sink \
             object.linger=true audio.position=[FL FR] }}"
        );
        // pw-cli may connect before WirePlumber is up: retried until the sink is the default.
        let mut created = false;
        wait_for("the null sink as the default sink", || {
            if !created {
                created = pw
                    .command("pw-cli")
                    .args(["create-node", "adapter", &props])
                    .output()
                    .is_ok_and(|o| o.status.success());
            }
            created
                && pw
                    .command("wpctl")
                    .args(["inspect", "@DEFAULT_AUDIO_SINK@"])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(SINK))
        })
        .map_err(|e| pw.failed(&e))?;
        Ok(pw)
    }

    /// The environment a client of this instance needs.
    pub fn env(&self) -> Vec<(String, String)> {
        let d = self.dir.display().to_string();
        vec![
            ("XDG_RUNTIME_DIR".into(), d.clone()),
            ("PIPEWIRE_RUNTIME_DIR".into(), d),
            (
                "DBUS_SESSION_BUS_ADDRESS".into(),
                format!("unix:path={}", self.dir.join("bus").display()),
            ),
            // WirePlumber keeps its state (default nodes, volumes) here, not in the user's home.
            (
                "XDG_STATE_HOME".into(),
                self.dir.join("state").display().to_string(),
            ),
        ]
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A command with this instance's environment.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.envs(self.env()).stdin(Stdio::null());
        c
    }

    /// Plays `wav` into the default sink (the caller waits for or kills the child).
    pub fn play(&self, wav: &Path) -> Result<Child, String> {
        let log = self.log_file("pw-play")?;
        self.command("pw-play")
            .arg(wav)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("pw-play: {e} (scripts/setup.sh installs pipewire-bin)"))
    }

    /// The daemons' logs, for a failure message.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for name in ["dbus-daemon", "pipewire", "wireplumber", "pw-play"] {
            let text =
                std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            s.push_str(&format!("--- {name}.log (tail) ---\n"));
            for l in tail.iter().rev() {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }

    fn log_file(&self, name: &str) -> Result<std::fs::File, String> {
        let p = self.dir.join(format!("{name}.log"));
        std::fs::File::create(&p).map_err(|e| format!("{}: {e}", p.display()))
    }

    fn spawn(&mut self, program: &str, args: &[&str]) -> Result<(), String> {
        let log = self.log_file(program)?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = self
            .command(program)
            .args(args)
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| {
                format!("{program}: {e} (scripts/setup.sh installs pipewire, wireplumber, dbus)")
            })?;
        self.children.push(child);
        Ok(())
    }

    fn failed(&self, what: &str) -> String {
        format!(
            "private PipeWire in {}: {what}\n{}",
            self.dir.display(),
            self.logs()
        )
    }
}

impl Drop for PipeWire {
    /// Kills the daemons, then removes the directory (a failing test has already formatted
    /// the logs into its message by the time it unwinds).
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes a 48 kHz 16-bit WAV with one sine per channel (`freqs[ch]` Hz) at `amplitude`.
pub fn write_tone_wav(
    path: &Path,
    freqs: &[f64],
    seconds: f64,
    amplitude: i16,
) -> Result<(), String> {
    const RATE: u32 = 48_000;
    let channels = freqs.len() as u16;
    let frames = (seconds * f64::from(RATE)) as u32;
    let data_len = frames * u32::from(channels) * 2;
    let mut b = Vec::with_capacity(44 + data_len as usize);
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data_len).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&RATE.to_le_bytes());
    b.extend_from_slice(&(RATE * u32::from(channels) * 2).to_le_bytes());
    b.extend_from_slice(&(channels * 2).to_le_bytes());
    b.extend_from_slice(&16u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..frames {
        let t = f64::from(i) / f64::from(RATE);
        for f in freqs {
            let v = (2.0 * std::f64::consts::PI * f * t).sin() * f64::from(amplitude);
            b.extend_from_slice(&(v as i16).to_le_bytes());
        }
    }
    std::fs::write(path, b).map_err(|e| format!("{}: {e}", path.display()))
}

/// Power of `x` at `hz` (Goertzel).
fn power_at(x: &[f64], rate: f64, hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / rate;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s0 = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// The frequency (Hz, 1 Hz resolution) with the most power in `x` between 50 Hz and 5 kHz:
/// a 10 Hz scan over the first 0.1 s (whose main lobe, ±10 Hz, is as wide as the step, so a
/// tone between two steps is not missed), then 1 Hz steps around its peak over all of `x`.
pub fn dominant_hz(x: &[f64], rate: f64) -> f64 {
    let best = |x: &[f64], from: f64, to: f64, step: f64| {
        let mut f = from;
        let (mut bf, mut bp) = (from, f64::MIN);
        while f <= to {
            let p = power_at(x, rate, f);
            if p > bp {
                (bf, bp) = (f, p);
            }
            f += step;
        }
        bf
    };
    let head = &x[..x.len().min((rate / 10.0) as usize)];
    let coarse = best(head, 50.0, 5000.0, 10.0);
    best(x, coarse - 10.0, coarse + 10.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dominant_hz_finds_a_sine_in_noise() {
        let rate = 48_000.0;
        let mut seed: u32 = 1;
        let x: Vec<f64> = (0..24_000)
            .map(|i| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = f64::from(seed >> 16) / 65_536.0 - 0.5;
                (2.0 * std::f64::consts::PI * 1234.0 * f64::from(i) / rate).sin() + 0.5 * noise
            })
            .collect();
        let hz = dominant_hz(&x, rate);
        assert!((hz - 1234.0).abs() <= 1.0, "{hz}");
    }
}
