//! Serves the status page with the fake backend on 127.0.0.1 (default port 47990; pass another
//! as the first argument, 0 for any). The state dir is a fresh temp dir unless STRAHL_STATE_DIR
//! is set. Stop with Ctrl-C.
use std::sync::Arc;

use strahl_status::testing::FakeBackend;
use strahl_status::{StatusConfig, StatusServer};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse())
        .transpose()?
        .unwrap_or(47990);
    let tmp;
    let dir = match std::env::var_os("STRAHL_STATE_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let config = StatusConfig {
        open_reads: true,
        ..StatusConfig::default()
    };
    let server = StatusServer::bind(
        ([127, 0, 0, 1], port).into(),
        config,
        Arc::new(FakeBackend::new()),
        &dir,
    )
    .await?;
    println!("status page: http://{}/", server.local_addr());
    println!("admin token: {}", server.token_path().display());
    // What the appliance's console shows at first start.
    if let Ok(code) = std::fs::read_to_string(dir.join(strahl_status::setup::SETUP_CODE_FILE)) {
        println!("setup code (first start): {}", code.trim());
    }
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
