//! GameStream media for stock Moonlight clients: video ([`video`], §A14–A16 of
//! `gamestream-host.md`, with FEC on every frame via [`plan`]) and audio ([`audio`], §A17).

pub mod audio;
pub mod plan;
pub mod video;

pub use audio::{AudioPush, GsAudioConfig, GsAudioPacketizer};
pub use plan::{FramePlan, max_access_unit_bytes};
pub use video::{FrameType, GsCursor, GsFrame, GsFrameMeta, GsVideoConfig, GsVideoPacketizer};
