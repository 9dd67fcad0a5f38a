//! `strahl-bench gamestream` command line: the options, their defaults and their bounds
//! (checked here, so a run never starts with a setting it cannot measure).

use std::path::PathBuf;

use super::MAX_60FPS_MBPS;
use super::ffclip::Codec;

const USAGE: &str = "usage: strahl-bench gamestream [--rates 150,500,1000] [--seconds S] [--warmup S]
                          [--runs N] [--size WxH] [--fps N] [--out DIR] [--cache DIR] [--bin-dir DIR]
                          [--netns [--transports af_xdp,io_uring,sendmmsg] [--link-mbps N]] [--quick]
                          [--codec h264|hevc|av1] [--realtime N]
  --codec    the stream's codec (default h264, made with OpenH264); hevc and av1 streams are made
             with ffmpeg (libx265, libaom) and replayed the same way
  --netns    across a veth between two network namespaces (root), once per transport
  --transports  with --netns: [dataplane] transport per pass (default af_xdp,io_uring,sendmmsg)
  --link-mbps   with --netns: the rate cap the receive-side schedule assumes (default 10000: the
             data plane caps the link at the interface speed, 10 Gbit/s on veth, and each stream
             at max(2 Gbit/s, 4 x its bitrate); the spread rates here stay below both)
  --realtime [dataplane] realtime_priority of the host (0..=99; default: the config's auto,
             which is off on a machine whose tx tile shares its core)
  --quick    smoke run: 8 Mbit/s, 640x360@30, --warmup 1 --seconds 3 --runs 1 (flags after it win)
  --rates    Mbit/s, comma-separated (default 150,500,1000)
  --seconds  measurement window per run (default 10), after --warmup (default 3)
  --runs     runs per rate; figures are medians (default 3)
  --size     stream size (default 1920x1080)
  --fps      force one fps for every rate (default: 60, or 120 above 560 Mbit/s)
  --out      writes gamestream.json, gamestream.svg and gamestream-cost.svg there
  --cache    where the generated streams are kept (default $TMPDIR/strahl-bench-streams)
  --bin-dir  strahl-dataplane / strahl-control (default: next to this executable)";

pub(super) struct Args {
    pub(super) rates: Vec<u32>,
    pub(super) seconds: f64,
    pub(super) warmup: f64,
    pub(super) runs: usize,
    pub(super) width: u32,
    pub(super) height: u32,
    pub(super) fps: Option<u32>,
    pub(super) out: Option<PathBuf>,
    pub(super) cache: PathBuf,
    pub(super) bin_dir: Option<PathBuf>,
    pub(super) netns: bool,
    pub(super) transports: Vec<String>,
    pub(super) link_mbps: u64,
    pub(super) quick: bool,
    pub(super) codec: Codec,
    pub(super) realtime: Option<u8>,
}

/// The transports `--netns` measures by default, in the data plane's order of preference.
pub const TRANSPORTS: [&str; 3] = ["af_xdp", "io_uring", "sendmmsg"];

pub(super) fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        rates: vec![150, 500, 1000],
        seconds: 10.0,
        warmup: 3.0,
        runs: 3,
        width: 1920,
        height: 1080,
        fps: None,
        out: None,
        cache: std::env::temp_dir().join("strahl-bench-streams"),
        bin_dir: None,
        netns: false,
        transports: TRANSPORTS.iter().map(|t| t.to_string()).collect(),
        link_mbps: 10_000,
        quick: false,
        codec: Codec::H264,
        realtime: None,
    };
    // --quick sets defaults; any flag given explicitly overrides them, wherever it stands.
    if args.iter().any(|x| x == "--quick") {
        a.quick = true;
        a.rates = vec![8];
        a.width = 640;
        a.height = 360;
        a.fps = Some(30);
        a.warmup = 1.0;
        a.seconds = 3.0;
        a.runs = 1;
    }
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or(format!("{flag} needs a value\n{USAGE}"))
        };
        let bad = |e: &dyn std::fmt::Display| format!("{flag}: {e}\n{USAGE}");
        match flag.as_str() {
            "--rates" => {
                a.rates = val()?
                    .split(',')
                    .map(|s| s.trim().parse::<u32>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| bad(&e))?
            }
            "--seconds" => a.seconds = val()?.parse().map_err(|e| bad(&e))?,
            "--warmup" => a.warmup = val()?.parse().map_err(|e| bad(&e))?,
            "--runs" => a.runs = val()?.parse().map_err(|e| bad(&e))?,
            "--fps" => a.fps = Some(val()?.parse().map_err(|e| bad(&e))?),
            "--size" => {
                let v = val()?;
                let (w, h) = v.split_once('x').ok_or_else(|| bad(&"expected WxH"))?;
                a.width = w.parse().map_err(|e| bad(&e))?;
                a.height = h.parse().map_err(|e| bad(&e))?;
            }
            "--out" => a.out = Some(val()?.into()),
            "--cache" => a.cache = val()?.into(),
            "--bin-dir" => a.bin_dir = Some(val()?.into()),
            "--netns" => a.netns = true,
            "--realtime" => {
                a.realtime = Some(
                    val()?
                        .parse::<u8>()
                        .ok()
                        .filter(|p| *p <= 99)
                        .ok_or_else(|| bad(&"0..=99"))?,
                )
            }
            "--quick" => {}
            "--transports" => {
                a.transports = val()?.split(',').map(|t| t.trim().to_string()).collect();
                if let Some(t) = a
                    .transports
                    .iter()
                    .find(|t| !TRANSPORTS.contains(&t.as_str()))
                {
                    return Err(bad(&format!("unknown transport {t:?}")));
                }
            }
            "--link-mbps" => a.link_mbps = val()?.parse().map_err(|e| bad(&e))?,
            "--codec" => {
                let v = val()?;
                a.codec = Codec::parse(&v).ok_or_else(|| bad(&format!("unknown codec {v:?}")))?;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if a.rates.is_empty() || a.rates.contains(&0) {
        return Err(format!("--rates must be positive\n{USAGE}"));
    }
    if !(a.seconds > 0.0 && a.seconds <= 600.0 && a.warmup >= 0.0 && a.warmup <= 60.0) {
        return Err(format!(
            "--seconds in (0, 600], --warmup in [0, 60]\n{USAGE}"
        ));
    }
    if a.runs == 0 || a.runs > 20 {
        return Err(format!("--runs in 1..=20\n{USAGE}"));
    }
    if a.transports.is_empty() || a.link_mbps == 0 {
        return Err(format!(
            "--transports needs one, --link-mbps must be positive\n{USAGE}"
        ));
    }
    Ok(a)
}

/// 60 fps, or 120 above what a 60 fps frame can carry ([`MAX_60FPS_MBPS`]); `--fps` overrides.
pub(super) fn fps_for(a: &Args, rate: u32) -> u32 {
    a.fps
        .unwrap_or(if rate > MAX_60FPS_MBPS { 120 } else { 60 })
}
