//! Writes strahl's headless EDID (see `strahl_appliance::edid`) to the file given, or to stdout.
//! `kernel-config/firmware/edid/generate.sh` runs it; the tests check the shipped file is its
//! output byte for byte.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let edid = strahl_appliance::edid::generate();
    if let Err(e) = strahl_appliance::edid::check(&edid) {
        eprintln!("strahl-edid: generated EDID fails its own check: {e}");
        return ExitCode::FAILURE;
    }
    let r = match std::env::args_os().nth(1) {
        Some(a) if a == "--help" || a == "-h" => {
            println!("usage: strahl-edid [FILE]   (the 256-byte EDID to FILE, else stdout)");
            return ExitCode::SUCCESS;
        }
        Some(path) => std::fs::write(&path, &edid),
        None => std::io::stdout().write_all(&edid),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strahl-edid: {e}");
            ExitCode::FAILURE
        }
    }
}
