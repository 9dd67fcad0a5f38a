//! Bodies of the minor-5 native-session messages (kept out of `codec.rs` so each file stays
//! readable). Layouts, integers little-endian:
//! - SessionReconfigure: id u64, epoch u32, width u16, height u16, fps u16, bitrate_kbps u32,
//!   fec_percent u8, shard_len u16
//! - SessionPace: id u64, rate_kbps u32 (0: the link rate)
//! - Event tag 8 Reconfigured: id u64, epoch u32, first_frame u64

use crate::message::{SessionPace, SessionReconfigure};
use crate::wire::{DecodeError, Reader, Writer};

pub(crate) fn encode_reconfigure(w: &mut Writer<'_>, r: &SessionReconfigure) {
    w.u64(r.id);
    w.u32(r.epoch);
    w.u16(r.width);
    w.u16(r.height);
    w.u16(r.fps);
    w.u32(r.bitrate_kbps);
    w.u8(r.fec_percent);
    w.u16(r.shard_len);
}

pub(crate) fn decode_reconfigure(r: &mut Reader<'_>) -> Result<SessionReconfigure, DecodeError> {
    Ok(SessionReconfigure {
        id: r.u64("id")?,
        epoch: r.u32("epoch")?,
        width: r.u16("width")?,
        height: r.u16("height")?,
        fps: r.u16("fps")?,
        bitrate_kbps: r.u32("bitrate_kbps")?,
        fec_percent: r.u8("fec_percent")?,
        shard_len: r.u16("shard_len")?,
    })
}

pub(crate) fn encode_pace(w: &mut Writer<'_>, p: &SessionPace) {
    w.u64(p.id);
    w.u32(p.rate_kbps);
}

pub(crate) fn decode_pace(r: &mut Reader<'_>) -> Result<SessionPace, DecodeError> {
    Ok(SessionPace {
        id: r.u64("id")?,
        rate_kbps: r.u32("rate_kbps")?,
    })
}

/// The body of event tag 8 after the tag.
pub(crate) fn encode_reconfigured(w: &mut Writer<'_>, id: u64, epoch: u32, first_frame: u64) {
    w.u64(id);
    w.u32(epoch);
    w.u64(first_frame);
}

pub(crate) fn decode_reconfigured(r: &mut Reader<'_>) -> Result<(u64, u32, u64), DecodeError> {
    Ok((r.u64("id")?, r.u32("epoch")?, r.u64("first_frame")?))
}
