//! The Moonlight half of the KMS lab's one boot (issue 11's proof): the game flips numbered
//! frames on the real driver, strahl itself — the data plane with `[video] source = "kms"` and
//! the control plane, started directly as root in the guest, beside `strahl-kms-helper` —
//! captures them (GETFB2 + PRIME), encodes them with openh264 and streams them over the
//! guest's virtio-net NIC; the real Moonlight core on the host side of the tap (in a namespace
//! this test makes) pairs, streams at 640×480 and decodes.
//!
//! Choreography (files in a directory shared with the guest; every wait bounded):
//! guest: game up at 640×480 showing [`FIRST`], helper, strahl → `ready` (+ the admin token);
//! host: pair (PIN through the status API with that token) and stream; guest: on the data
//! plane's `session N started` line, `GO` to the game, which flips at ~30 Hz; once the data
//! plane's own counter (`/metrics`) shows [`ENCODED_PER_MODE`] more frames encoded, `NEXT`:
//! a real modeset to 800×600 and more flips; after as many again, `NEXT` ends the game, whose
//! last picture stays up → `phases` (the numbers drawn at each mode) and `game-done`; host:
//! the stream stops pulling at `game-done`, then `host-done`; the guest stops everything.
//!
//! The product keeps the client's stream size across the mode change (the encoder is not
//! re-created) and scales the 800×600 screen to 640×480 in software; the log says which. So the
//! game draws its number band as laid out for 640×480, scaled by the screen's exact factor
//! (20-pixel blocks at 800×600), as a game scales its HUD: the scaled picture reads at 640×480.
//!
//! Checked on the host ([`Host::check`]), and why:
//! - Moonlight's own frame numbers are dense (`lost` 0, no gap) and every pulled frame decodes:
//!   nothing is lost on the wire, so any jump in the pixels' numbers happened before encode;
//! - one picture size, 640×480, and the log's scaling lines: 640×480 "no scaling", then
//!   800×600 "scaling in software", and the session's mode request "held by another DRM
//!   master" (the game) — one session, and (checked in the guest) the same data
//!   plane and control plane processes alive from start to end: no restart;
//! - the pictures' numbers, in decode order: unreadable ones only before the first readable one
//!   (the dark grey shown before the first capture), then every one readable, each a number
//!   the game drew ([`FIRST`]…last), never decreasing, up to the game's last frame;
//! - ≥ [`MIN_DISTINCT`] distinct numbers, ≥ [`MIN_PER_MODE`] of them at each mode.
//!   Repeats are allowed (a slot with no new flip re-encodes the last picture: the source's
//!   contract). Jumps are allowed and counted, those over 2 only when the encode tile logged
//!   skipped slots: under TCG it encodes far slower than the game's 30 Hz (≈ 2–6 fps seen on
//!   a loaded 2-core machine), skips the late slots and takes the newest capture (older ones
//!   are stale); without skips only the beat of two 30 Hz clocks can miss a flip.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use strahl_vmlab::{GuestNet, GuestOutput, GuestSpec, LabError, NetNs, repo_root};

use super::{CARD, ROLE};

/// Names the shared directory in the guest's environment; unset: no stream half.
pub const STREAM_DIR: &str = "STRAHL_KMS_LAB_STREAM_DIR";
const HOST_CIDR: &str = "10.202.0.1/24";
const GUEST_CIDR: &str = "10.202.0.2/24";
const GUEST: &str = "10.202.0.2";
/// Upper bounds of the frames the game flips at 640×480 and then at 800×600 (120 s each at
/// 30 Hz); it is cued on once the data plane has encoded [`ENCODED_PER_MODE`] at a mode.
const FRAMES: [u32; 2] = [3600, 3600];
/// Frames the data plane encodes (its own counter, `/metrics`) before the game is cued on:
/// the game flips at 30 Hz, faster than openh264 encodes under TCG (≈ 4–10 fps seen), so
/// each encoded frame shows a newer number than the last, and a slow machine flips longer
/// instead of failing.
const ENCODED_PER_MODE: u64 = 110;
/// The stream's first number: far from the first half's 0…299, so no leftover is mistaken.
const FIRST: u32 = 10_000;
const MIN_DISTINCT: usize = 150;
const MIN_PER_MODE: usize = 30;
/// The guest's own paths (tmpfs: sockets and the control plane's state stay off 9p).
const RUN_DIR: &str = "/run/strahl-kms-lab";

// ---------------------------------------------------------------- host side

/// The host's part: the namespace with the guest's tap, the shared directory, the binaries.
pub struct Host {
    ns: NetNs,
    dir: PathBuf,
    bin: PathBuf,
}

/// What the Moonlight core said.
pub struct Drive {
    pair: String,
    stream: String,
    took: Duration,
}

impl Host {
    /// `Err(why)` when this machine cannot run the half (the namespace needs root).
    pub fn prepare() -> Result<Host, String> {
        let uid = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|v| v.split_whitespace().next().map(str::to_owned))
            })
            .unwrap_or_default();
        if uid != "0" {
            return Err("the Moonlight half needs root (network namespace and tap)".into());
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kms-lab-stream");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let dir = dir.canonicalize().map_err(|e| e.to_string())?;
        let ns = NetNs::new("kms").map_err(|e| format!("network namespace: {e}"))?;
        Ok(Host {
            ns,
            dir,
            bin: bin_dir(),
        })
    }

    /// `spec` with the guest's NIC in the namespace and the half switched on.
    pub fn guest_spec(&self, spec: GuestSpec) -> GuestSpec {
        spec.net(GuestNet::new(self.ns.name(), HOST_CIDR, GUEST_CIDR))
            .env(STREAM_DIR, &self.dir.display().to_string())
            .env("STRAHL_BIN_DIR", &self.bin.display().to_string())
    }

    /// Pairs and streams once the guest says strahl is up; `host-done` always written after.
    pub fn drive(
        &self,
        guest: &JoinHandle<Result<GuestOutput, LabError>>,
    ) -> Result<Drive, String> {
        let r = self.drive_inner(guest);
        let _ = std::fs::write(self.dir.join("host-done"), b"");
        r
    }

    fn drive_inner(
        &self,
        guest: &JoinHandle<Result<GuestOutput, LabError>>,
    ) -> Result<Drive, String> {
        let t0 = Instant::now();
        while !self.dir.join("ready").exists() {
            if guest.is_finished() {
                return Err("the guest ended before strahl was up".into());
            }
            if t0.elapsed() > Duration::from_secs(600) {
                return Err("strahl not up in the guest after 600 s".into());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        eprintln!(
            "stream half: strahl up in the guest after {:.0} s",
            t0.elapsed().as_secs_f64()
        );
        let python = strahl_testkit::python::moonlight_python()?;
        let driver = repo_root().join("crates/test/moonlight/driver.py");
        let client = self.dir.join("client");
        std::fs::create_dir_all(&client).map_err(|e| e.to_string())?;
        // The operator's PIN through the status API with the admin token, as on a LAN.
        let pin = self.dir.join("pin.sh");
        std::fs::write(
            &pin,
            format!(
                "#!/bin/sh\nexec curl -fsS --max-time 20 -H \"Authorization: Bearer $(cat {tok})\" \
                 -H 'Content-Type: application/json' --data \"{{\\\"pin\\\":\\\"$1\\\"}}\" \
                 http://{GUEST}:47990/api/v1/pin\n",
                tok = self.dir.join("status-token").display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let pin_cmd = serde_json::to_string(&["/bin/sh".to_owned(), pin.display().to_string()])
            .map_err(|e| e.to_string())?;
        let mut pair = self.ns.command(&python);
        pair.arg(&driver)
            .args(["pair", "--host", GUEST, "--port", "47989", "--pin", "4711"])
            .arg("--config")
            .arg(&client)
            .args(["--pin-cmd", &pin_cmd]);
        let (st, pair_out, pair_err) = run_bounded(pair, Duration::from_secs(240));
        if step(&pair_out, "pair").is_none_or(|p| p["ok"] != true) {
            return Err(format!("pairing ({st:?}):\n{pair_out}\n{pair_err}"));
        }
        let t_stream = Instant::now();
        let mut stream = self.ns.command(&python);
        stream
            .arg(&driver)
            .args(["stream", "--host", GUEST, "--port", "47989"])
            .arg("--config")
            .arg(&client)
            .args(["--width", "640", "--height", "480", "--fps", "30"])
            .args(["--bitrate", "2000", "--frames", "150"])
            .arg("--until-file")
            .arg(self.dir.join("game-done"))
            .args(["--timeout", "300", "--pixel-numbers"]);
        let (st, out, err) = run_bounded(stream, Duration::from_secs(360));
        if step(&out, "video").is_none() {
            return Err(format!("no video step ({st:?}):\n{out}\n{err}"));
        }
        Ok(Drive {
            pair: pair_out,
            stream: out,
            took: t_stream.elapsed(),
        })
    }

    /// The checks of the module header; prints a `KMS-LAB stream` summary line.
    pub fn check(&self, d: &Drive) {
        let log = std::fs::read_to_string(self.dir.join("strahl.log")).unwrap_or_default();
        let v = step(&d.stream, "video").expect("video step");
        let ctx = format!("pair: {}\nvideo: {v}\nstrahl.log:\n{log}", d.pair.trim());
        // The wire: every frame the host sent arrived and decoded.
        assert_eq!(v["lost"], 0, "{ctx}");
        assert_eq!(v["gap_count"], 0, "{ctx}");
        assert_eq!(v["decoded"], v["frames"], "{ctx}");
        assert_eq!(v["decode_errors"], 0, "{ctx}");
        // One size: the encoder kept the client's, the capture scaled.
        assert_eq!(v["shapes"], serde_json::json!([[640, 480]]), "{ctx}");
        let no_scaling = log
            .find("kms capture: display 640x480 = the stream's size, no scaling")
            .unwrap_or_else(|| panic!("no 640x480 no-scaling line: {ctx}"));
        let scaling = log
            .find("kms capture: display 800x600, stream 640x480: scaling in software")
            .unwrap_or_else(|| panic!("no 800x600 scaling line: {ctx}"));
        assert!(no_scaling < scaling, "{ctx}");
        // The game is DRM master: the session's mode request was answered so, and said once.
        let held = "kms display: held by another DRM master; the display shows 640x480";
        assert_eq!(log.matches(held).count(), 1, "{ctx}");
        assert!(log.contains("video source: kms"), "{ctx}");
        // No restart: one session (the guest checked that both processes lived throughout).
        let sessions = log
            .lines()
            .filter(|l| l.contains("session ") && l.contains(" started: "))
            .count();
        assert_eq!(sessions, 1, "{ctx}");

        let pics: Vec<Option<u32>> = v["pixel_numbers"]
            .as_array()
            .unwrap_or_else(|| panic!("no pixel_numbers: {ctx}"))
            .iter()
            .map(|n| n.as_u64().map(|n| n as u32))
            .collect();
        let lead = pics.iter().take_while(|n| n.is_none()).count();
        let nums: Vec<u32> = pics[lead..].iter().map(|n| n.unwrap_or(u32::MAX)).collect();
        // What the game drew: FIRST..=last_640 at 640×480, then ..=last_drawn at 800×600.
        let phases = std::fs::read_to_string(self.dir.join("phases")).unwrap_or_default();
        let p: Vec<u32> = phases
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let [first, last_640, last_drawn] = p[..] else {
            panic!("phases {phases:?}: {ctx}")
        };
        assert_eq!(first, FIRST, "{ctx}");
        let mut distinct = nums.clone();
        distinct.dedup();
        let at_640 = distinct.iter().filter(|&&n| n <= last_640).count();
        let at_800 = distinct.len() - at_640;
        let jumps: Vec<u32> = distinct.windows(2).map(|w| w[1] - w[0] - 1).collect();
        let skipped: u32 = jumps.iter().sum();
        let skip_warnings = log.matches("frame slots skipped").count();
        println!(
            "KMS-LAB stream: Moonlight decoded {} pictures ({lead} before the first capture) in \
             {:.1} s: {} distinct numbers {:?}..={:?} ({at_640} at 640x480, {at_800} at 800x600 \
             scaled), {} repeats, {skipped} drawn frames never encoded (largest jump {}), \
             {} encode-tile skip lines in the log",
            pics.len(),
            d.took.as_secs_f64(),
            distinct.len(),
            distinct.first(),
            distinct.last(),
            nums.len() - distinct.len(),
            jumps.iter().max().copied().unwrap_or(0),
            skip_warnings,
        );
        assert!(
            nums.iter().all(|&n| (FIRST..=last_drawn).contains(&n)),
            "unreadable or undrawn numbers after the first capture: {pics:?}\n{ctx}"
        );
        assert!(
            nums.windows(2).all(|w| w[0] <= w[1]),
            "numbers out of order: {pics:?}\n{ctx}"
        );
        assert_eq!(
            distinct.last(),
            Some(&last_drawn),
            "the game's last frame: {pics:?}\n{ctx}"
        );
        assert!(distinct.len() >= MIN_DISTINCT, "{pics:?}\n{ctx}");
        assert!(
            skip_warnings > 0 || jumps.iter().all(|&j| j <= 2),
            "frames missing without the encode tile skipping: {pics:?}\n{ctx}"
        );
        assert!(
            at_640 >= MIN_PER_MODE && at_800 >= MIN_PER_MODE,
            "{pics:?}\n{ctx}"
        );
    }
}

/// strahl's binaries: `$STRAHL_BIN_DIR`, else built with this test's cargo and profile (the
/// test profile has already built them for their own tests, so CI compiles nothing twice) —
/// as the appliance boot test finds them.
fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("STRAHL_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let target = profile_dir.parent().unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(cargo);
    c.current_dir(repo_root())
        .args(["build", "--locked", "-p", "strahl-dataplane", "-p"])
        .args(["strahl-control", "--bin", "strahl-dataplane", "--bin"])
        .arg("strahl-control")
        .arg("--target-dir")
        .arg(target)
        .stdout(Stdio::null());
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        c.arg("--release");
    } else {
        c.args(["--profile", "test"]);
    }
    let st = c.status().expect("cargo build");
    assert!(st.success(), "building strahl's binaries failed");
    profile_dir.canonicalize().unwrap()
}

/// Runs `cmd` to completion within `limit` (killed after); (status, stdout, stderr).
fn run_bounded(mut cmd: Command, limit: Duration) -> (Option<i32>, String, String) {
    let out = std::env::temp_dir().join(format!("kms-lab-{}-out", std::process::id()));
    let err = out.with_extension("err");
    // Files, not pipes: a full pipe would block the child while this side only polls.
    let (Ok(fo), Ok(fe)) = (std::fs::File::create(&out), std::fs::File::create(&err)) else {
        return (None, String::new(), "no temporary files".into());
    };
    let mut child = match cmd.stdout(fo).stderr(fe).stdin(Stdio::null()).spawn() {
        Ok(c) => c,
        Err(e) => return (None, String::new(), format!("spawn: {e}")),
    };
    let t0 = Instant::now();
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s.code();
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let r = (status, read(&out), read(&err));
    let _ = (std::fs::remove_file(&out), std::fs::remove_file(&err));
    r
}

/// The driver's JSON line for `name`.
fn step(out: &str, name: &str) -> Option<serde_json::Value> {
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["step"] == name)
}

// ---------------------------------------------------------------- guest side

/// Children of the guest's half, stopped on every way out.
struct Procs {
    game: Option<Child>,
    helper: Option<Child>,
    dataplane: Option<Child>,
    control: Option<Child>,
}

impl Procs {
    /// True when both strahl processes are still the ones started (neither exited).
    fn strahl_alive(&mut self) -> bool {
        [&mut self.dataplane, &mut self.control]
            .into_iter()
            .all(|c| c.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None))))
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        // The control plane first (it ends its sessions), then the data plane: SIGTERM, bounded.
        for c in [self.control.take(), self.dataplane.take()]
            .into_iter()
            .flatten()
        {
            let mut c = c;
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let t0 = Instant::now();
            while !matches!(c.try_wait(), Ok(Some(_))) && t0.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for c in [self.game.take(), self.helper.take()].into_iter().flatten() {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The data plane's `strahl_video_frames_encoded_total` from the status server's `/metrics`
/// (admin token), or `None`.
fn encoded_frames(token: &str) -> Option<u64> {
    let out = Command::new("curl")
        .args(["-fsS", "--max-time", "5", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("http://{GUEST}:47990/metrics"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let name = "strahl_video_frames_encoded_total";
    let mut found = None;
    for l in text.lines().filter(|l| l.starts_with(name)) {
        if let Some(v) = l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0) += v as u64;
        }
    }
    found
}

/// Waits (bounded) until `f` holds, polling.
fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Result<(), String> {
    let t0 = Instant::now();
    while !f() {
        if t0.elapsed() > limit {
            return Err(format!("{what}: not within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The guest's half (see the module header); `exe` is this test binary (the game).
pub fn guest(dir: &Path, exe: &Path) -> Result<(), String> {
    let t_start = Instant::now();
    let bin = PathBuf::from(std::env::var_os("STRAHL_BIN_DIR").ok_or("STRAHL_BIN_DIR unset")?);
    let run = Path::new(RUN_DIR);
    std::fs::create_dir_all(run.join("state")).map_err(|e| format!("{RUN_DIR}: {e}"))?;
    let mut procs = Procs {
        game: None,
        helper: None,
        dataplane: None,
        control: None,
    };
    let game = procs.game.insert(
        Command::new(exe)
            .env(ROLE, "game")
            .env(
                "STRAHL_KMS_LAB_FRAMES",
                format!("{},{}", FRAMES[0], FRAMES[1]),
            )
            .env("STRAHL_KMS_LAB_FIRST", FIRST.to_string())
            .env("STRAHL_KMS_LAB_BAND", "640x480")
            .env("STRAHL_KMS_LAB_BUFFERS", "8")
            .env("STRAHL_KMS_LAB_CUED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("game: {e}"))?,
    );
    let (tx, rx) = mpsc::channel::<String>();
    let game_out = game.stdout.take().ok_or("game stdout")?;
    std::thread::spawn(move || {
        for line in BufReader::new(game_out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut game_lines = Vec::new();
    // The game's next line starting with `want`.
    let mut until = |want: &str, limit: Duration| -> Result<String, String> {
        let t0 = Instant::now();
        loop {
            let left = limit.saturating_sub(t0.elapsed());
            match rx.recv_timeout(left) {
                Ok(l) if l.starts_with(want) => return Ok(l),
                Ok(l) => game_lines.push(l),
                Err(_) => return Err(format!("game: no {want} in {limit:?}: {game_lines:?}")),
            }
        }
    };
    until("READY", Duration::from_secs(60))?;

    let kms_sock = run.join("kms.sock");
    procs.helper = Some(
        Command::new(env!("CARGO_BIN_EXE_strahl-kms-helper"))
            .arg("--socket")
            .arg(&kms_sock)
            .args(["--device", CARD, "--max-seconds", "600"])
            .spawn()
            .map_err(|e| format!("helper: {e}"))?,
    );
    wait_for("the helper's socket", Duration::from_secs(30), || {
        kms_sock.exists()
    })?;

    let config = dir.join("strahl.toml");
    std::fs::write(
        &config,
        format!(
            "# written by the KMS lab\n\
             [host]\nname = \"strahl-kms-lab\"\nstate_dir = \"{state}\"\n\
             [network]\naddresses = [\"{GUEST}\"]\n\
             [dataplane]\nsocket = \"{RUN_DIR}/dataplane.sock\"\ninterface = \"auto\"\n\
             [video]\nsource = \"kms\"\n",
            state = run.join("state").display(),
        ),
    )
    .map_err(|e| format!("{}: {e}", config.display()))?;
    // Both processes started directly (as root; the appliance's units drop privileges, not
    // this lab), their logs into one shared file, in the order the appliance starts them.
    let log_path = dir.join("strahl.log");
    let log_file = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let start = |args: &[&str]| -> Result<Child, String> {
        let f = log_file.try_clone().map_err(|e| e.to_string())?;
        let g = log_file.try_clone().map_err(|e| e.to_string())?;
        Command::new(bin.join(args[0]))
            .args(&args[1..])
            .arg("--config")
            .arg(&config)
            .env("STRAHL_KMS_SOCKET", &kms_sock)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(f)
            .stderr(g)
            .spawn()
            .map_err(|e| format!("{}: {e}", args[0]))
    };
    procs.dataplane = Some(start(&["strahl-dataplane"])?);
    let dp_sock = run.join("dataplane.sock");
    wait_for("the data plane's socket", Duration::from_secs(120), || {
        dp_sock.exists()
    })?;
    procs.control = Some(start(&["strahl-control", "serve", "--no-mdns"])?);
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_for("strahl up", Duration::from_secs(180), || {
        log().contains("connected to dataplane")
    })
    .map_err(|e| format!("{e}\n{}", log()))?;
    let token = run.join("state/status-token");
    wait_for("the admin token", Duration::from_secs(60), || {
        token.exists()
    })?;
    std::fs::copy(&token, dir.join("status-token")).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("ready"), b"").map_err(|e| e.to_string())?;
    let t_up = t_start.elapsed();

    // The stream starts when the data plane has a session (host: pairing, then launch).
    let host_done = dir.join("host-done");
    wait_for("a session", Duration::from_secs(400), || {
        host_done.exists() || log().lines().any(|l| l.contains(" started: "))
    })?;
    if host_done.exists() {
        return Err("the host side gave up before a session started".into());
    }
    let game_in = procs
        .game
        .as_mut()
        .and_then(|g| g.stdin.as_mut())
        .ok_or("game stdin")?;
    game_in.write_all(b"GO\n").map_err(|e| e.to_string())?;
    let t_go = Instant::now();
    // Each mode until the data plane has encoded enough there (the game's own bound is 120 s).
    let token_text = std::fs::read_to_string(&token).map_err(|e| e.to_string())?;
    let encoded = || encoded_frames(token_text.trim());
    let mut lasts = Vec::new();
    for mode in ["640x480", "800x600"] {
        let e0 = encoded().ok_or("no strahl_video_frames_encoded_total on /metrics")?;
        let t0 = Instant::now();
        wait_for(
            &format!("{ENCODED_PER_MODE} frames encoded at {mode}"),
            Duration::from_secs(110),
            || encoded().is_some_and(|e| e >= e0 + ENCODED_PER_MODE),
        )?;
        game_in.write_all(b"NEXT\n").map_err(|e| e.to_string())?;
        let last = until("LAST ", Duration::from_secs(30))?;
        let last: u32 = last[5..].parse().map_err(|e| format!("{last:?}: {e}"))?;
        println!(
            "KMS-LAB stream guest: {mode} up to frame {last}, {ENCODED_PER_MODE} encoded in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        lasts.push(last);
    }
    until("DONE", Duration::from_secs(30))?;
    let flipped = t_go.elapsed();
    std::fs::write(
        dir.join("phases"),
        format!("{FIRST} {} {}\n", lasts[0], lasts[1]),
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(dir.join("game-done"), b"").map_err(|e| e.to_string())?;
    wait_for("the host's end", Duration::from_secs(300), || {
        host_done.exists()
    })?;
    let _ = procs
        .game
        .as_mut()
        .and_then(|g| g.stdin.as_mut())
        .map(|i| i.write_all(b"EXIT\n"));
    while let Ok(l) = rx.try_recv() {
        game_lines.push(l);
    }
    // Followed without a restart: the same two processes served the whole stream.
    if !procs.strahl_alive() {
        return Err(format!(
            "a strahl process exited during the stream:\n{}",
            log()
        ));
    }
    println!(
        "KMS-LAB stream guest: strahl up {:.1} s after the first half, game flipped for {:.1} s: \
         {game_lines:?}",
        t_up.as_secs_f64(),
        flipped.as_secs_f64()
    );
    drop(procs);
    Ok(())
}
