//! The `strahl-client` binary: parses, runs on a single-threaded runtime, prints, exits.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match strahl_client::parse(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("strahl-client: {}", e.message);
            return ExitCode::from(e.code);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("strahl-client: cannot start the async runtime: {e}");
            return ExitCode::from(5);
        }
    };
    match rt.block_on(strahl_client::run(parsed)) {
        Ok(out) => {
            // `stream --json FILE` has written its summary there: nothing to print.
            if !out.is_empty() {
                println!("{out}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("strahl-client: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}
