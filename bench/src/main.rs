//! `strahl-bench`: every subcommand prints one JSON object on stdout and, with `--plot FILE`, writes
//! an SVG chart. Comparisons are measured side by side in one run (these machines are noisy); the
//! figures that matter are ratios and medians.
// Unsafe only where a module allows it (gamestream's receive-side capture, with SAFETY notes).
#![deny(unsafe_code)]

mod report;

mod emit;
mod fec;
mod gamestream;
mod loss;
mod native;
mod pacing;
mod pipeline;
mod seal;

use std::process::ExitCode;

const USAGE: &str =
    "usage: strahl-bench <fec|seal|pipeline|loss|emit|pacing> [--quick] [--plot FILE.svg]
       strahl-bench gamestream [--rates 150,500,1000] [--seconds S] [--out DIR] (--help for more)
       strahl-bench native [--rates 1000,2000,3000,4000] [--seconds S] [--out DIR] (--help for more)

  fec       GF(2^16) (raw reed-solomon-simd vs our wrapper), GF(2^8) nanors (scalar, SIMD),
            reed-solomon-erasure; frames of 64 KiB..4 MiB at 10/20/50 % parity
  seal      AES-128-GCM backends on 1400-byte packets and whole frames
  pipeline  packetize + FEC + seal per frame, native strahl/1 and GameStream
  loss      random and burst loss 0..30 %: GF(2^16) one block per frame vs GF(2^8) <=4 blocks
  emit      packets/s, Gbit/s, CPU/packet per transport (AF_XDP, io_uring(+GSO), sendmmsg(+GSO),
            send) over a veth pair between two namespaces; needs root (else reports the skip)
  pacing    |release - schedule| p50/p99/p99.9 at 100k pkt/s: our tx tile vs 16-packet bursts
            with thread::sleep between
  gamestream  a high-rate H.264 stream through strahl (scripts/run.sh, passthrough source) to
            the real Moonlight core on loopback at 150/500/1000 Mbit/s: frames sent/received/
            lost, FEC-protected oversize frames, FEC-recovered packets, CPU per Gbit; JSON + SVG;
            --netns: across a veth between namespaces, per transport (af_xdp, io_uring,
            sendmmsg), plus the inter-packet gap error at the receiver (root)
  native    native strahl/1 host -> strahl-client across a veth, per transport: verified goodput
            at rising offered rates (20 % FEC), frames lost, host and client CPU per Gbit;
            capture -> reassembled p50/p99 at 720p120 (passthrough clean and with 5 % random
            loss, synthetic + openh264); JSON + SVG (root)
  --quick   fewer iterations (used by the test suite to check the bench runs)";

/// Options every subcommand understands.
pub struct Options {
    pub quick: bool,
    pub plot: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(cmd) = args.next() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if cmd == "gamestream" {
        let rest: Vec<String> = args.collect();
        return finish(&cmd, gamestream::run(&rest));
    }
    if cmd == "native" {
        let rest: Vec<String> = args.collect();
        return finish(&cmd, native::run(&rest));
    }
    let mut opts = Options {
        quick: false,
        plot: None,
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--plot" => match args.next() {
                Some(p) => opts.plot = Some(p.into()),
                None => {
                    eprintln!("--plot needs a file name\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let result = match cmd.as_str() {
        "fec" => fec::run(&opts),
        "seal" => seal::run(&opts),
        "pipeline" => pipeline::run(&opts),
        "loss" => loss::run(&opts),
        "emit" => emit::run(&opts),
        "pacing" => pacing::run(&opts),
        "-h" | "--help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("unknown subcommand {other:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    finish(&cmd, result)
}

fn finish(cmd: &str, result: Result<serde_json::Value, String>) -> ExitCode {
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("strahl-bench {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}
