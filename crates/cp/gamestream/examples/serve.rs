//! Runs the nvhttp host alone, for manual Moonlight smoke tests:
//!
//!     cargo run -p strahl-gamestream --example serve -- STATE_DIR [HTTP_PORT] [--no-mdns]
//!
//! Type a 4-digit PIN and Enter when a client starts pairing. Launches are only recorded
//! (no RTSP/streams here); the running app is cleared by /cancel.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use strahl_gamestream::{RecordingSessionHost, ServerConfig, SessionHost};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(state) = args.first() else {
        eprintln!("usage: serve STATE_DIR [HTTP_PORT] [--no-mdns]");
        std::process::exit(2);
    };
    let port: u16 = args
        .get(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(strahl_gamestream::server::DEFAULT_HTTP_PORT);
    let mut cfg = ServerConfig::new(state);
    cfg.http_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
    cfg.https_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port.wrapping_sub(5));
    cfg.mdns = !args.iter().any(|a| a == "--no-mdns");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let host = Arc::new(RecordingSessionHost::new());
        let server = match strahl_gamestream::start(cfg, host.clone() as Arc<dyn SessionHost>).await
        {
            Ok(s) => s,
            Err(e) => {
                eprintln!("start failed: {e}");
                std::process::exit(1);
            }
        };
        println!(
            "listening: http {} https {} uniqueid {}",
            server.http_addr(),
            server.https_addr(),
            server.unique_id()
        );
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(4);
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
        while let Some(line) = rx.recv().await {
            match server.submit_pin(line.trim()) {
                Ok(u) => println!("PIN sent to client {u}"),
                Err(e) => println!("PIN refused: {e}"),
            }
            println!(
                "paired clients: {}; events: {:?}",
                server.paired_clients().len(),
                host.events().len()
            );
        }
        server.shutdown().await;
    });
}
