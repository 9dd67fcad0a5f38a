//! H.264 SPS fields the GameStream path has requirements on (profile, reference count, picture
//! size, VUI bitstream restrictions), for tests and startup self-checks of an encoder's first
//! IDR. The reader itself is capture's ([`strahl_capture::h264_sps`]), the one SPS parser of
//! the tree (it also gives passthrough files their stream format); its tests live there.

pub use strahl_capture::h264_sps::{H264Sps as SpsInfo, parse_h264_sps as parse_sps};
