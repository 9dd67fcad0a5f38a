//! AF_XDP transport (xsk-rs): [`tx::XdpTx`] (UMEM frames as `TxQueue` frames, header templates,
//! neighbour resolution) and [`rx::XdpRx`] (fed by the redirect program in `bpf/`).
pub mod headers;
pub mod headers6;
pub mod neigh;
pub mod neigh6;
pub mod rx;
pub mod tx;

pub use rx::XdpRx;
pub use tx::{BindMode, XdpPlan, XdpTx};
