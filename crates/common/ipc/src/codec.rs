//! Encoding into caller buffers and decoding from hostile bytes.
//!
//! Body layouts, in order (integers little-endian, see the crate docs for strings/lists/options):
//! - Hello / HelloAck (frozen): major u16, minor u16, role u8, pid u32, build str(256)
//! - Refuse (frozen): major u16, minor u16, reason str(1024)
//! - SessionStart: id u64, protocol u8, peer addr, video {width u16, height u16, fps u16,
//!   bitrate_kbps u32, packet_size u16, fec_percent u8, codec u8}, audio {channels u8,
//!   sample_rate_hz u32, packet_duration_ms u8, bitrate_kbps u32}, keys {tag u8; 1: rikey [16],
//!   rikeyid u32; 2: secret [32]}, ports {video_src, audio_src, video_dst, audio_dst: u16},
//!   since minor 1: stream {ping present bool, [ping payload [16]], flags u32, min_fec_packets u8}
//!   (a minor-0 body has none: defaults)
//!   - addr: family u8 (4|6); 4: ip [4], port u16; 6: ip [16], port u16, scope_id u32
//! - SessionUpdate: id u64, bitrate_kbps `Option<u32>`, fec_percent `Option<u8>`, request_keyframe bool
//! - SessionStop: id u64, reason u8
//! - StatsRequest: request_id u32
//! - StatsSnapshot: request_id u32, uptime_ms u64, count u16 (≤ 1024), count × {name str(256), value u64}
//! - Shutdown: empty
//! - Event: tag u8, then 1 SessionStarted {id u64} | 2 SessionUpdated {id u64} |
//!   3 SessionEnded {id u64, reason u8} | 4 TransportChosen {id u64, transport u8, detail str(1024)} |
//!   5 SessionError {id u64, detail str(1024)} | 6 VideoCaps {encoder str(256), count u16 (≤ 32),
//!   count × {codec u8, profile u8, bit_depth u8, yuv444 bool}, hdr `Option<13 × u16>`
//!   (primaries R, G, B x/y, white x/y, max/min luminance, MaxCLL, MaxFALL, 0)} (minor 2) |
//!   7 Detected {subsystem u8, choice str(256), reason str(1024)} (minor 4) |
//!   8 Reconfigured (minor 5);
//!   other tags decode to `Event::Unknown`
//! - Error: code u16, in_reply_to u16, detail str(1024)
//! - SessionReconfigure, SessionPace and event tag 8 (Reconfigured), minor 5: `native.rs`

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::message::*;
use crate::wire::{DecodeError, EncodeError, Reader, Writer};
use crate::{
    HEADER_LEN, MAGIC, MAJOR, MAX_MESSAGE_LEN, MAX_NAME_LEN, MAX_STATS_ENTRIES, MAX_TEXT_LEN, MINOR,
};

/// A validated header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub major: u16,
    pub minor: u16,
    pub kind: u16,
    pub length: u32,
}

/// A decoded message with the version its sender declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub header: Header,
    pub message: Message,
}

/// Encodes `msg` with this build's version into `buf`; returns the datagram length.
pub fn encode(msg: &Message, buf: &mut [u8]) -> Result<usize, EncodeError> {
    encode_versioned(msg, MAJOR, MINOR, buf)
}

/// Encodes `msg` declaring `major.minor` in the header (and in Hello/Refuse bodies). Production
/// code uses [`encode`]; this exists for tests and fakes that play a peer of another version.
pub fn encode_versioned(
    msg: &Message,
    major: u16,
    minor: u16,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let mut w = Writer::new(buf, 0);
    w.bytes(&MAGIC);
    w.u16(major);
    w.u16(minor);
    w.u16(msg.kind() as u16);
    w.u32(0); // patched below
    match msg {
        Message::Hello(h) | Message::HelloAck(h) => {
            w.u16(major);
            w.u16(minor);
            w.u8(h.role as u8);
            w.u32(h.pid);
            w.str("build", &h.build, MAX_NAME_LEN);
        }
        Message::Refuse(r) => {
            w.u16(major);
            w.u16(minor);
            w.str("reason", &r.reason, MAX_TEXT_LEN);
        }
        Message::SessionStart(s) => encode_session_start(&mut w, s, minor),
        Message::SessionUpdate(u) => {
            w.u64(u.id);
            match u.bitrate_kbps {
                Some(b) => {
                    w.u8(1);
                    w.u32(b);
                }
                None => w.u8(0),
            }
            match u.fec_percent {
                Some(f) => {
                    w.u8(1);
                    w.u8(f);
                }
                None => w.u8(0),
            }
            w.bool(u.request_keyframe);
        }
        Message::SessionStop(s) => {
            w.u64(s.id);
            w.u8(s.reason.code());
        }
        Message::SessionReconfigure(r) => crate::native::encode_reconfigure(&mut w, r),
        Message::SessionPace(p) => crate::native::encode_pace(&mut w, p),
        Message::StatsRequest(r) => w.u32(r.request_id),
        Message::StatsSnapshot(s) => {
            w.u32(s.request_id);
            w.u64(s.uptime_ms);
            if w.count("counters", s.counters.len(), MAX_STATS_ENTRIES) {
                for (name, value) in &s.counters {
                    w.str("counter name", name, MAX_NAME_LEN);
                    w.u64(*value);
                }
            }
        }
        Message::Shutdown => {}
        Message::Event(e) => encode_event(&mut w, e),
        Message::Error(e) => {
            w.u16(e.code.code());
            w.u16(e.in_reply_to);
            w.str("detail", &e.detail, MAX_TEXT_LEN);
        }
    }
    let body = w.pos().saturating_sub(HEADER_LEN);
    w.patch_u32(10, body as u32);
    w.finish()
}

/// A minor-0 body (written for an older peer) has no stream options.
fn encode_session_start(w: &mut Writer<'_>, s: &SessionStart, minor: u16) {
    w.u64(s.id);
    w.u8(s.protocol as u8);
    match s.peer {
        SocketAddr::V4(a) => {
            w.u8(4);
            w.bytes(&a.ip().octets());
            w.u16(a.port());
        }
        SocketAddr::V6(a) => {
            w.u8(6);
            w.bytes(&a.ip().octets());
            w.u16(a.port());
            w.u32(a.scope_id());
        }
    }
    let v = &s.video;
    w.u16(v.width);
    w.u16(v.height);
    w.u16(v.fps);
    w.u32(v.bitrate_kbps);
    w.u16(v.packet_size);
    w.u8(v.fec_percent);
    w.u8(v.codec as u8);
    let a = &s.audio;
    w.u8(a.channels);
    w.u32(a.sample_rate_hz);
    w.u8(a.packet_duration_ms);
    w.u32(a.bitrate_kbps);
    match &s.keys {
        KeyMaterial::GameStream { rikey, rikeyid } => {
            w.u8(1);
            w.bytes(&rikey.0);
            w.u32(*rikeyid);
        }
        KeyMaterial::Native { secret } => {
            w.u8(2);
            w.bytes(&secret.0);
        }
    }
    let p = &s.ports;
    w.u16(p.video_src);
    w.u16(p.audio_src);
    w.u16(p.video_dst);
    w.u16(p.audio_dst);
    if minor == 0 {
        return;
    }
    let o = &s.stream;
    w.bool(o.ping_payload.is_some());
    if let Some(p) = &o.ping_payload {
        w.bytes(p);
    }
    w.u32(o.flags);
    w.u8(o.min_fec_packets);
}

fn encode_event(w: &mut Writer<'_>, e: &Event) {
    match e {
        Event::SessionStarted { id } => {
            w.u8(1);
            w.u64(*id);
        }
        Event::SessionUpdated { id } => {
            w.u8(2);
            w.u64(*id);
        }
        Event::SessionEnded { id, reason } => {
            w.u8(3);
            w.u64(*id);
            w.u8(reason.code());
        }
        Event::TransportChosen {
            id,
            transport,
            detail,
        } => {
            w.u8(4);
            w.u64(*id);
            w.u8(transport.code());
            w.str("detail", detail, MAX_TEXT_LEN);
        }
        Event::SessionError { id, detail } => {
            w.u8(5);
            w.u64(*id);
            w.str("detail", detail, MAX_TEXT_LEN);
        }
        Event::VideoCaps(c) => {
            w.u8(6);
            w.str("encoder", &c.encoder, MAX_NAME_LEN);
            if w.count("video formats", c.formats.len(), MAX_VIDEO_FORMATS) {
                for f in &c.formats {
                    w.u8(f.codec as u8);
                    w.u8(f.profile);
                    w.u8(f.bit_depth);
                    w.bool(f.yuv444);
                }
            }
            w.bool(c.hdr.is_some());
            if let Some(h) = &c.hdr {
                for v in hdr_fields(h) {
                    w.u16(v);
                }
            }
        }
        Event::Detected(d) => {
            w.u8(7);
            w.u8(d.subsystem.code());
            w.str("choice", &d.choice, MAX_NAME_LEN);
            w.str("reason", &d.reason, MAX_TEXT_LEN);
        }
        Event::Reconfigured {
            id,
            epoch,
            first_frame,
        } => {
            w.u8(8);
            crate::native::encode_reconfigured(w, *id, *epoch, *first_frame);
        }
        Event::Unknown { tag } => w.u8(*tag),
    }
}

/// The 13 u16 fields of [`HdrMetadata`] in wire order.
fn hdr_fields(h: &HdrMetadata) -> [u16; 13] {
    let p = &h.primaries;
    [
        p[0].0,
        p[0].1,
        p[1].0,
        p[1].1,
        p[2].0,
        p[2].1,
        h.white_point.0,
        h.white_point.1,
        h.max_luminance,
        h.min_luminance,
        h.max_cll,
        h.max_fall,
        0,
    ]
}

fn codec_of(r: &Reader<'_>, v: u8) -> Result<Codec, DecodeError> {
    match v {
        1 => Ok(Codec::H264),
        2 => Ok(Codec::Hevc),
        3 => Ok(Codec::Av1),
        v => Err(r.bad("video codec", u64::from(v))),
    }
}

fn decode_video_caps(r: &mut Reader<'_>) -> Result<VideoCaps, DecodeError> {
    let encoder = r.str("encoder", MAX_NAME_LEN)?;
    let n = r.count("video formats", MAX_VIDEO_FORMATS)?;
    let mut formats = Vec::with_capacity(n);
    for _ in 0..n {
        let c = r.u8("format codec")?;
        formats.push(VideoFormat {
            codec: codec_of(r, c)?,
            profile: r.u8("format profile")?,
            bit_depth: r.u8("format bit_depth")?,
            yuv444: r.bool("format yuv444")?,
        });
    }
    let hdr = if r.bool("hdr present")? {
        let mut v = [0u16; 13];
        for x in &mut v {
            *x = r.u16("hdr field")?;
        }
        Some(HdrMetadata {
            primaries: [(v[0], v[1]), (v[2], v[3]), (v[4], v[5])],
            white_point: (v[6], v[7]),
            max_luminance: v[8],
            min_luminance: v[9],
            max_cll: v[10],
            max_fall: v[11],
        })
    } else {
        None
    };
    Ok(VideoCaps {
        encoder,
        formats,
        hdr,
    })
}

/// Validates the framing of a datagram: size bounds, magic, and body length.
pub fn decode_header(buf: &[u8]) -> Result<Header, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::TooShort { len: buf.len() });
    }
    if buf.len() > MAX_MESSAGE_LEN {
        return Err(DecodeError::TooLong { len: buf.len() });
    }
    let mut r = Reader::new(buf, 0);
    let magic: [u8; 4] = r.array("magic")?;
    if magic != MAGIC {
        return Err(DecodeError::BadMagic { found: magic });
    }
    let major = r.u16("major")?;
    let minor = r.u16("minor")?;
    let kind = r.u16("kind")?;
    let length = r.u32("length")?;
    let actual = buf.len() - HEADER_LEN;
    if length as usize != actual {
        return Err(DecodeError::LengthMismatch {
            declared: length,
            actual,
        });
    }
    Ok(Header {
        major,
        minor,
        kind,
        length,
    })
}

/// Decodes one datagram. Trailing body bytes after the known fields are ignored (newer minor).
pub fn decode(buf: &[u8]) -> Result<Decoded, DecodeError> {
    let header = decode_header(buf)?;
    let known = Kind::from_code(header.kind);
    if header.major != MAJOR && !known.is_some_and(Kind::is_frozen_handshake) {
        return Err(DecodeError::MajorMismatch {
            ours: MAJOR,
            theirs: header.major,
            kind: header.kind,
        });
    }
    let Some(kind) = known else {
        return Err(DecodeError::UnknownKind {
            kind: header.kind,
            minor: header.minor,
        });
    };
    let mut r = Reader::new(&buf[HEADER_LEN..], header.kind);
    let message = match kind {
        Kind::Hello => Message::Hello(decode_hello(&mut r, &header)?),
        Kind::HelloAck => Message::HelloAck(decode_hello(&mut r, &header)?),
        Kind::Refuse => {
            let (major, minor) = decode_version(&mut r, &header)?;
            Message::Refuse(Refuse {
                major,
                minor,
                reason: r.str("reason", MAX_TEXT_LEN)?,
            })
        }
        Kind::SessionStart => {
            Message::SessionStart(Box::new(decode_session_start(&mut r, header.minor)?))
        }
        Kind::SessionUpdate => {
            let id = r.u64("id")?;
            let bitrate_kbps = if r.bool("bitrate present")? {
                Some(r.u32("bitrate_kbps")?)
            } else {
                None
            };
            let fec_percent = if r.bool("fec present")? {
                Some(r.u8("fec_percent")?)
            } else {
                None
            };
            let request_keyframe = r.bool("request_keyframe")?;
            Message::SessionUpdate(SessionUpdate {
                id,
                bitrate_kbps,
                fec_percent,
                request_keyframe,
            })
        }
        Kind::SessionStop => Message::SessionStop(SessionStop {
            id: r.u64("id")?,
            reason: StopReason::from_code(r.u8("reason")?),
        }),
        Kind::SessionReconfigure => {
            Message::SessionReconfigure(crate::native::decode_reconfigure(&mut r)?)
        }
        Kind::SessionPace => Message::SessionPace(crate::native::decode_pace(&mut r)?),
        Kind::StatsRequest => Message::StatsRequest(StatsRequest {
            request_id: r.u32("request_id")?,
        }),
        Kind::StatsSnapshot => {
            let request_id = r.u32("request_id")?;
            let uptime_ms = r.u64("uptime_ms")?;
            let n = r.count("counters", MAX_STATS_ENTRIES)?;
            // Each entry is at least 10 bytes (empty name + value), so a short body is caught
            // before the vector grows; capacity is bounded by MAX_STATS_ENTRIES anyway.
            let mut counters = Vec::with_capacity(n);
            for _ in 0..n {
                let name = r.str("counter name", MAX_NAME_LEN)?;
                counters.push((name, r.u64("counter value")?));
            }
            Message::StatsSnapshot(StatsSnapshot {
                request_id,
                uptime_ms,
                counters,
            })
        }
        Kind::Shutdown => Message::Shutdown,
        Kind::Event => Message::Event(decode_event(&mut r)?),
        Kind::Error => Message::Error(ErrorMsg {
            code: ErrorCode::from_code(r.u16("code")?),
            in_reply_to: r.u16("in_reply_to")?,
            detail: r.str("detail", MAX_TEXT_LEN)?,
        }),
    };
    Ok(Decoded { header, message })
}

fn decode_version(r: &mut Reader<'_>, h: &Header) -> Result<(u16, u16), DecodeError> {
    let major = r.u16("major")?;
    if major != h.major {
        return Err(r.bad("body major (differs from header)", u64::from(major)));
    }
    let minor = r.u16("minor")?;
    if minor != h.minor {
        return Err(r.bad("body minor (differs from header)", u64::from(minor)));
    }
    Ok((major, minor))
}

fn decode_hello(r: &mut Reader<'_>, h: &Header) -> Result<Hello, DecodeError> {
    let (major, minor) = decode_version(r, h)?;
    let role = match r.u8("role")? {
        1 => Role::Control,
        2 => Role::Dataplane,
        v => return Err(r.bad("role", u64::from(v))),
    };
    let pid = r.u32("pid")?;
    let build = r.str("build", MAX_NAME_LEN)?;
    Ok(Hello {
        major,
        minor,
        role,
        pid,
        build,
    })
}

fn decode_session_start(r: &mut Reader<'_>, minor: u16) -> Result<SessionStart, DecodeError> {
    let id = r.u64("id")?;
    let protocol = match r.u8("protocol")? {
        1 => Protocol::GameStream,
        2 => Protocol::Native,
        v => return Err(r.bad("protocol", u64::from(v))),
    };
    let peer = match r.u8("peer family")? {
        4 => {
            let ip: [u8; 4] = r.array("peer ipv4")?;
            let port = r.u16("peer port")?;
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port))
        }
        6 => {
            let ip: [u8; 16] = r.array("peer ipv6")?;
            let port = r.u16("peer port")?;
            let scope = r.u32("peer scope_id")?;
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, scope))
        }
        v => return Err(r.bad("peer family", u64::from(v))),
    };
    let video = VideoParams {
        width: r.u16("video width")?,
        height: r.u16("video height")?,
        fps: r.u16("video fps")?,
        bitrate_kbps: r.u32("video bitrate_kbps")?,
        packet_size: r.u16("video packet_size")?,
        fec_percent: r.u8("video fec_percent")?,
        codec: {
            let c = r.u8("video codec")?;
            codec_of(r, c)?
        },
    };
    let audio = AudioParams {
        channels: r.u8("audio channels")?,
        sample_rate_hz: r.u32("audio sample_rate_hz")?,
        packet_duration_ms: r.u8("audio packet_duration_ms")?,
        bitrate_kbps: r.u32("audio bitrate_kbps")?,
    };
    let keys = match r.u8("key tag")? {
        1 => KeyMaterial::GameStream {
            rikey: Secret(r.array("rikey")?),
            rikeyid: r.u32("rikeyid")?,
        },
        2 => KeyMaterial::Native {
            secret: Secret(r.array("native secret")?),
        },
        v => return Err(r.bad("key tag", u64::from(v))),
    };
    let ports = Ports {
        video_src: r.u16("video_src port")?,
        audio_src: r.u16("audio_src port")?,
        video_dst: r.u16("video_dst port")?,
        audio_dst: r.u16("audio_dst port")?,
    };
    // The address is only checked for shape here; whether it is acceptable is policy for the
    // data plane (it must be the peer the control plane authenticated).
    let _: IpAddr = peer.ip();
    // Minor 0 ended here; its sessions get the defaults (legacy ping matching, no encryption).
    let stream = if minor == 0 {
        StreamOptions::default()
    } else {
        let ping_payload = if r.bool("ping present")? {
            Some(r.array("ping payload")?)
        } else {
            None
        };
        StreamOptions {
            ping_payload,
            flags: r.u32("stream flags")?,
            min_fec_packets: r.u8("min_fec_packets")?,
        }
    };
    Ok(SessionStart {
        id,
        protocol,
        peer,
        video,
        audio,
        keys,
        ports,
        stream,
    })
}

fn decode_event(r: &mut Reader<'_>) -> Result<Event, DecodeError> {
    Ok(match r.u8("event tag")? {
        1 => Event::SessionStarted { id: r.u64("id")? },
        2 => Event::SessionUpdated { id: r.u64("id")? },
        3 => Event::SessionEnded {
            id: r.u64("id")?,
            reason: StopReason::from_code(r.u8("reason")?),
        },
        4 => Event::TransportChosen {
            id: r.u64("id")?,
            transport: Transport::from_code(r.u8("transport")?),
            detail: r.str("detail", MAX_TEXT_LEN)?,
        },
        5 => Event::SessionError {
            id: r.u64("id")?,
            detail: r.str("detail", MAX_TEXT_LEN)?,
        },
        6 => Event::VideoCaps(decode_video_caps(r)?),
        7 => Event::Detected(Detected {
            subsystem: Subsystem::from_code(r.u8("subsystem")?),
            choice: r.str("choice", MAX_NAME_LEN)?,
            reason: r.str("reason", MAX_TEXT_LEN)?,
        }),
        8 => {
            let (id, epoch, first_frame) = crate::native::decode_reconfigured(r)?;
            Event::Reconfigured {
                id,
                epoch,
                first_frame,
            }
        }
        tag => Event::Unknown { tag },
    })
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
