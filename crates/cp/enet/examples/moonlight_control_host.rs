//! Manual interop host: RTSP + our ENet control server on loopback (ephemeral ports) for a
//! real moonlight-common-c client; see `interop/README.md`. Prints `READY <rtsp port>`, then
//! `REQUEST`/`PLAY`/`CONTROL` lines, and exits when the control session ends.
//!
//! Usage: moonlight_control_host RIKEY_HEX [TERMINATE_MS]

#[path = "../interop/host.rs"]
mod host;

use std::io::Write;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let key_hex = args
        .get(1)
        .expect("usage: moonlight_control_host RIKEY_HEX [TERMINATE_MS]");
    let mut rikey = [0u8; 16];
    for (i, b) in rikey.iter_mut().enumerate() {
        *b = u8::from_str_radix(&key_hex[2 * i..2 * i + 2], 16).expect("rikey hex");
    }
    let terminate = args
        .get(2)
        .map(|s| Duration::from_millis(s.parse().expect("ms")));
    let h = host::Host::bind(rikey).expect("bind");
    println!("READY {}", h.rtsp_port);
    std::io::stdout().flush().ok();
    let log = h.run(terminate, |l| {
        println!("{l}");
        std::io::stdout().flush().ok();
    });
    println!(
        "DONE played={} control_events={}",
        log.played,
        log.control.len()
    );
}
