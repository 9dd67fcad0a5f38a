//! The tile's steady state does not allocate: a run of 20 000 packets makes exactly as many
//! allocations as a run of 2 000 (only set-up allocates). Counting allocator, counting the
//! allocations of the thread the tile runs on (the test's own): the harness's threads allocate
//! when they please (seen in CI under load: 4 stray allocations in one window), the tile's thread
//! is what the claim is about. Loopback only; no privileges needed.

use std::net::{SocketAddr, UdpSocket};

use strahl_net::mmsg::{MmsgConfig, MmsgTx};
use strahl_pacer::{Backlog, PacerConfig};
use strahl_runtime::tile::{self, Clock, Shared, Source, TileConfig};

use strahl_testkit::{CountingAlloc, counted};

#[global_allocator]
static A: CountingAlloc = CountingAlloc;

struct Src {
    left: u64,
    dest: SocketAddr,
}

impl Source for Src {
    fn backlog(&self) -> Backlog {
        Backlog {
            packets: self.left,
            bytes: self.left * 1200,
        }
    }
    fn fill(&mut self, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        self.left = self.left.checked_sub(1)?;
        buf[..8].copy_from_slice(&self.left.to_be_bytes());
        Some((1200, self.dest))
    }
    fn finished(&self) -> bool {
        true
    }
}

fn allocs_for(n: u64, q: &mut MmsgTx, dest: SocketAddr) -> u64 {
    let cfg = TileConfig {
        core: None,
        // Fast enough for a quick test, paced so spins and kicks happen (2 Gbit/s of 1200 B).
        pacer: PacerConfig::new(2_000_000_000),
        max_run: None,
    };
    let shared = Shared::default();
    let clock = Clock::new();
    let mut src = Src { left: n, dest };
    let (c, allocs) = counted(|| tile::run(q, &mut src, &cfg, &shared, &clock).unwrap());
    assert_eq!(c.packets, n);
    allocs
}

#[test]
fn steady_state_does_not_allocate() {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dest = rx.local_addr().unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut q = MmsgTx::new(
        tx,
        MmsgConfig {
            frame_payload: 1200,
            ..Default::default()
        },
    )
    .unwrap();
    let _warm = allocs_for(100, &mut q, dest);
    let small = allocs_for(2_000, &mut q, dest);
    let large = allocs_for(20_000, &mut q, dest);
    assert_eq!(
        small, large,
        "allocations grow with packets: {small} vs {large}"
    );
}
