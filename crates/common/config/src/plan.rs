//! The data-plane plan: which tile runs on which core, and the ring/batch sizes, derived from a
//! valid [`Config`] and the number of online CPUs (passed in; nothing here probes the machine).
//!
//! Sizes are the ones measured to work on the reference VM (docs/measurements.md):
//! AF_XDP UMEM 8192 × 2048 B frames with fill/completion rings of 4096 and RX/TX rings of 2048
//! reached 525–530 kpps; syscall batches of 64 (sendmmsg / io_uring) were the knee (256 gave no
//! gain); shard payload ≈ MTU − 100 (1500 → 1400 B, 9000 → 8900 B, ARCHITECTURE §3).

use std::fmt;

use crate::types::{Config, Cores, TransportPref};

/// Data-plane tiles. The tx tile gets a core of its own whenever the plan has two or more (pacing
/// precision needs a quiet core: it parks until a few µs before each release); the others share
/// the remaining cores in this order: framing (FEC + seal), encode, capture, audio, housekeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tile {
    Tx,
    Frame,
    Encode,
    Capture,
    Audio,
    Housekeeping,
}

impl Tile {
    pub const ALL: [Tile; 6] = [
        Tile::Tx,
        Tile::Frame,
        Tile::Encode,
        Tile::Capture,
        Tile::Audio,
        Tile::Housekeeping,
    ];
}

/// Ring and batch sizes (entries, bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingSizes {
    pub umem_frames: u32,
    pub frame_size: u32,
    pub fill: u32,
    pub completion: u32,
    pub rx: u32,
    pub tx: u32,
    /// Packets per sendmmsg / io_uring submit / AF_XDP wakeup.
    pub batch: u32,
}

/// UMEM frames: 8192 × 2048 B = 16 MiB, measured to work (and below the memlock default for root
/// with CAP_IPC_LOCK; an unprivileged process must stay under its memlock limit).
const UMEM_FRAMES: u32 = 8192;
const FILL_RING: u32 = 4096;
const COMPLETION_RING: u32 = 4096;
const RX_RING: u32 = 2048;
const TX_RING: u32 = 2048;
const BATCH: u32 = 64;
/// Bytes reserved per datagram for IP/UDP and the protocol headers and AEAD tag.
const SHARD_OVERHEAD: u16 = 100;
/// Headroom the kernel reserves in each AF_XDP frame for XDP metadata.
const XDP_HEADROOM: u32 = 256;
/// Ethernet header.
const ETH_HEADER: u32 = 14;

/// The derived plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// (tile, core) for every tile.
    pub placement: Vec<(Tile, u16)>,
    /// True when several tiles share one core (small machine or short core list).
    pub shared: bool,
    /// True when no other tile is placed on the tx tile's core (two or more cores in the plan):
    /// the tx thread is pinned there and the encode threads are kept off it.
    pub tx_dedicated: bool,
    pub rings: RingSizes,
    /// Even shard payload bytes derived from the MTU.
    pub shard_payload: u16,
    /// True when one MTU-sized frame does not fit a 4096-byte AF_XDP frame (jumbo frames then
    /// need XDP multi-buffer, or the transport falls back).
    pub needs_multibuffer: bool,
    pub transport: TransportPref,
}

/// The configured cores do not exist on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    pub key: &'static str,
    pub message: String,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl std::error::Error for PlanError {}

/// Machines with at least this many cores keep core 0 for the OS and interrupts.
const RESERVE_CORE0_FROM: usize = 4;

impl Plan {
    /// The plan for a machine with `online_cpus` CPUs and no kernel-isolated CPU.
    pub fn derive(cfg: &Config, online_cpus: usize) -> Result<Plan, PlanError> {
        Self::derive_isolated(cfg, online_cpus, &[])
    }

    /// The plan when the kernel isolates `isolated` (`/sys/devices/system/cpu/isolated`, from
    /// `isolcpus=`): with `cores = "auto"` the tx tile goes to the lowest isolated CPU and no
    /// other tile goes to any isolated CPU. The kernel's isolation is the one source of truth
    /// for "the quiet core" — the shipped profile (kernel-config/kargs.d) names CPU 1, because
    /// `isolcpus` cannot name "the last CPU" (the kernel reads a leading "N" as a flag), and a
    /// plan that guessed the core itself would pin the tile beside the isolated one. An
    /// explicit `cores` list is the operator's and is taken as written.
    pub fn derive_isolated(
        cfg: &Config,
        online_cpus: usize,
        isolated: &[u16],
    ) -> Result<Plan, PlanError> {
        let online = online_cpus.max(1);
        let auto = |online: usize| -> Vec<u16> {
            if online >= RESERVE_CORE0_FROM {
                (1..online).map(|c| c as u16).collect()
            } else {
                (0..online).map(|c| c as u16).collect()
            }
        };
        let quiet = isolated
            .iter()
            .copied()
            .filter(|c| usize::from(*c) < online)
            .min();
        let cores: Vec<u16> = match &cfg.dataplane.cores {
            Cores::Auto => match quiet {
                Some(tx) => {
                    let mut v: Vec<u16> = auto(online)
                        .into_iter()
                        .filter(|c| !isolated.contains(c))
                        .collect();
                    if v.is_empty() {
                        v = (0..online as u16)
                            .filter(|c| !isolated.contains(c))
                            .collect();
                    }
                    v.push(tx);
                    v
                }
                None => auto(online),
            },
            Cores::List(list) => {
                if let Some(c) = list.iter().find(|c| usize::from(**c) >= online) {
                    return Err(PlanError {
                        key: "dataplane.cores",
                        message: format!(
                            "core {c} does not exist (this machine has {online} online CPUs)"
                        ),
                    });
                }
                list.clone()
            }
        };
        // The last core of the list goes to tx (core 0 takes the interrupts and the OS on small
        // machines; an isolated core was put last above); the other tiles cycle over the rest,
        // or over the one core there is.
        let tx_core = cores[cores.len() - 1];
        let rest = if cores.len() >= 2 {
            &cores[..cores.len() - 1]
        } else {
            &cores[..]
        };
        let placement: Vec<(Tile, u16)> = Tile::ALL
            .iter()
            .enumerate()
            .map(|(i, t)| match t {
                Tile::Tx => (*t, tx_core),
                _ => (*t, rest[(i - 1) % rest.len()]),
            })
            .collect();
        let mtu = cfg.dataplane.mtu;
        let shard_payload = (mtu.saturating_sub(SHARD_OVERHEAD)) & !1;
        let frame_need = u32::from(mtu) + ETH_HEADER + XDP_HEADROOM;
        let frame_size = if frame_need <= 2048 { 2048 } else { 4096 };
        Ok(Plan {
            shared: cores.len() < Tile::ALL.len(),
            tx_dedicated: cores.len() >= 2,
            placement,
            rings: RingSizes {
                umem_frames: UMEM_FRAMES,
                frame_size,
                fill: FILL_RING,
                completion: COMPLETION_RING,
                rx: RX_RING,
                tx: TX_RING,
                batch: BATCH,
            },
            shard_payload,
            needs_multibuffer: frame_need > 4096,
            transport: cfg.dataplane.transport,
        })
    }

    /// The cores of every tile but tx, each once, ascending (where encode threads may run).
    pub fn worker_cores(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self
            .placement
            .iter()
            .filter(|(t, _)| *t != Tile::Tx)
            .map(|(_, c)| *c)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    pub fn core_of(&self, tile: Tile) -> u16 {
        self.placement
            .iter()
            .find(|(t, _)| *t == tile)
            .map(|(_, c)| *c)
            .unwrap_or(0)
    }
}

/// Parses a kernel CPU list ("0-3,6"). Bounded: ranges are capped at
/// [`crate::MAX_CORE`]. The kernel's "N" (the last CPU) is not resolved here: see
/// [`parse_cpu_list_last`].
pub fn parse_cpu_list(s: &str) -> Vec<u16> {
    parse_cpu_list_last(s, None)
}

/// [`parse_cpu_list`] with "N" standing for `last`, the numerically last CPU ("1-N", "N"), as
/// the kernel reads lists on its command line.
pub fn parse_cpu_list_last(s: &str, last: Option<u16>) -> Vec<u16> {
    let num = |v: &str| match (v, last) {
        ("N", Some(l)) => Ok(l),
        _ => v.parse::<u16>(),
    };
    let mut out = Vec::new();
    for part in s.trim().split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (num(a), num(b)),
            None => (num(part), num(part)),
        };
        if let (Ok(a), Ok(b)) = (a, b) {
            for c in a..=b.min(crate::MAX_CORE) {
                out.push(c);
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}
