//! AF_XDP transport (xsk-rs): [`tx::XdpTx`] (UMEM frames as `TxQueue` frames, header templates,
//! neighbour resolution) and [`rx::XdpRx`] (fed by the redirect program in `bpf/`). Header
//! templates ([`headers`]) and next-hop resolution ([`neigh`]) are written once for IPv4 and IPv6.
pub mod headers;
pub mod neigh;
pub mod rx;
pub mod tx;

pub use rx::XdpRx;
pub use tx::{BindMode, XdpPlan, XdpTx};
