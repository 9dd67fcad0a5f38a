//! Admission: what a `SessionStart` must satisfy before any thread starts — the keys match its
//! protocol, a native session names its ports, the video has a size and a rate — and the keys
//! it streams with ([`SessionKeys`]). A refusal is a [`MediaError::Session`], sent back to the
//! control plane as the session's error.

use strahl_ipc::{KeyMaterial, Protocol, SessionStart};

use super::MediaError;

/// The keys a session streams with, by protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKeys<'a> {
    GameStream {
        rikey: &'a [u8; 16],
        rikeyid: u32,
    },
    /// The host→client direction secret of `strahl/1` sealing.
    Native {
        secret: &'a [u8; 32],
    },
}

/// Why a session cannot be streamed (checked before any thread starts).
pub fn check_session(s: &SessionStart) -> Result<SessionKeys<'_>, MediaError> {
    let keys = match (&s.protocol, &s.keys) {
        (Protocol::GameStream, KeyMaterial::GameStream { rikey, rikeyid }) => {
            SessionKeys::GameStream {
                rikey: &rikey.0,
                rikeyid: *rikeyid,
            }
        }
        (Protocol::Native, KeyMaterial::Native { secret }) => {
            if s.ports.video_src == 0 || s.ports.video_dst == 0 {
                return Err(MediaError::Session(
                    "native session without a video source port or client media port".into(),
                ));
            }
            SessionKeys::Native { secret: &secret.0 }
        }
        (p, _) => {
            return Err(MediaError::Session(format!(
                "{p:?} session with another protocol's keys"
            )));
        }
    };
    if s.video.fps == 0 || s.video.width == 0 || s.video.height == 0 {
        return Err(MediaError::Session("video geometry or fps is zero".into()));
    }
    Ok(keys)
}
