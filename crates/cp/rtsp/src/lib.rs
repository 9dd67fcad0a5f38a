//! `strahl-rtsp`: the GameStream (Moonlight) RTSP dialect, sans-IO.
//!
//! Bytes in, typed values and bytes out; no sockets, no clocks, no threads. The pieces:
//! - [`request`]: incremental, bounded request parser ([`parse_request`]) that accepts
//!   Moonlight's relative targets (`SETUP streamid=audio/0/0 RTSP/1.0`), and the whole-message
//!   variant for `rtspenc` frames ([`parse_message`]);
//! - [`response`]: the writer for what common-c's parser accepts (status line, at least the CSeq
//!   header, `Name: value` with one space, body after the blank line);
//! - [`announce`]: the ANNOUNCE SDP → [`StreamConfig`], Sunshine's defaults, typed refusals;
//! - [`media`]: the encoder bitrate (§A18) and Opus layout (§A17) decisions;
//! - [`describe`]: the DESCRIBE body advertising features, encryption and codecs;
//! - [`session`]: the per-launch state machine, [`RtspSession`], producing responses and
//!   [`Event`]s;
//! - [`limits`]: every size limit, as named constants.
//!
//! Encryption seam: `rtspenc` framing (AES-128-GCM, gamestream-host.md §A8) belongs to
//! `strahl_seal::gamestream::RtspCipher`. The caller decrypts a frame, passes the plaintext to
//! [`RtspSession::handle_message`], and encrypts [`Response::to_bytes`]; nothing here sees a key.
//!
//! Section references (§A8…) point into `shared/reference/gamestream-host.md`.
#![forbid(unsafe_code)]

pub mod announce;
pub mod describe;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod limits;
pub mod media;
pub mod request;
pub mod response;
pub mod session;

pub use announce::{
    AnnounceError, AudioRequest, ChromaSampling, ColorSpace, DynamicRange, EncoderCsc,
    EncryptionFlags, HostCodecs, StreamConfig, VideoCodec,
};
pub use describe::{DescribeParams, SurroundParams, describe_body};
pub use media::{OpusLayout, choose_audio, encoder_bitrate_kbps};
pub use request::{
    Header, Method, Parsed, Request, RequestError, RequestErrorKind, parse_message, parse_request,
};
pub use response::{Response, StatusCode};
pub use session::{
    Event, LaunchContext, NegotiatedStream, Outcome, PingPayload, RtspSession, SessionError,
    SessionToken, StreamKind, VideoEncryption,
};
