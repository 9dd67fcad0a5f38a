//! The quinn shell of `strahl/1`, shared by the host (`strahl-control`) and `strahl-client`.
//!
//! Contract:
//! - One bidirectional stream per connection carries the control messages (`msg.rs` frames);
//!   [`read_msg`] and [`send_msg`] move whole messages over it, with every read bounded by the
//!   codec's body limit.
//! - Secrets come from the TLS exporter of the connection, never from a message:
//!   [`channel_binding`] for the pairing ceremony, [`media_secrets`] (one secret per direction,
//!   context = the welcome's key context) for `strahl-seal`'s native key schedule.
//! - The sans-IO cores (`host.rs`, `pairing.rs`) decide; these modules only move bytes.

pub mod client;
pub mod server;
pub mod tls;

/// The QUIC implementation, for callers that hold an endpoint.
pub use quinn;

use quinn::{RecvStream, SendStream};

use crate::msg::{KEY_CONTEXT_LEN, Message, decode_body, encode};
use crate::pairing::BINDING_LABEL;
use crate::wire::{FrameReader, WireError};

/// TLS exporter labels of the two media secrets.
pub const MEDIA_LABEL_H2C: &[u8] = b"EXPORTER-strahl/1 media h2c";
pub const MEDIA_LABEL_C2H: &[u8] = b"EXPORTER-strahl/1 media c2h";

/// Why a message could not be moved.
#[derive(Debug)]
pub enum StreamError {
    /// The peer's bytes are not a valid message (peer misbehaviour).
    Wire(WireError),
    /// The stream or connection failed.
    Read(quinn::ReadError),
    Write(quinn::WriteError),
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Wire(e) => write!(f, "malformed message: {e}"),
            StreamError::Read(e) => write!(f, "read: {e}"),
            StreamError::Write(e) => write!(f, "write: {e}"),
        }
    }
}

impl std::error::Error for StreamError {}

/// Reads the next message; `Ok(None)` when the peer finished the stream.
pub async fn read_msg(
    recv: &mut RecvStream,
    reader: &mut FrameReader,
) -> Result<Option<Message>, StreamError> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some((t, body)) = reader.next_frame().map_err(StreamError::Wire)? {
            return decode_body(t, &body).map(Some).map_err(StreamError::Wire);
        }
        match recv.read(&mut buf).await.map_err(StreamError::Read)? {
            Some(n) => reader.push(&buf[..n]),
            None => return Ok(None),
        }
    }
}

pub async fn send_msg(send: &mut SendStream, m: &Message) -> Result<(), StreamError> {
    send.write_all(&encode(m)).await.map_err(StreamError::Write)
}

/// The pairing ceremony's channel binding: 32 exporter bytes of this connection.
pub fn channel_binding(conn: &quinn::Connection) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    conn.export_keying_material(&mut out, BINDING_LABEL, b"")
        .ok()?;
    Some(out)
}

/// The two media secrets of a session: (host → client, client → host).
pub fn media_secrets(
    conn: &quinn::Connection,
    key_context: &[u8; KEY_CONTEXT_LEN],
) -> Option<([u8; 32], [u8; 32])> {
    let mut h2c = [0u8; 32];
    let mut c2h = [0u8; 32];
    conn.export_keying_material(&mut h2c, MEDIA_LABEL_H2C, key_context)
        .ok()?;
    conn.export_keying_material(&mut c2h, MEDIA_LABEL_C2H, key_context)
        .ok()?;
    Some((h2c, c2h))
}
