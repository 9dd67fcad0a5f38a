//! RTSP for the pending launches: which launch an RTSP connection belongs to (`rtspenc` by the
//! key that opens its frame, plain by source address, oldest first), feeding that launch's
//! [`RtspSession`], sealing the reply, and PLAY → `SessionStart` plus the ENet registration.
//!
//! Contract: see "Which pending launch an RTSP connection belongs to" in `session.rs`; pending
//! launches expire after [`PENDING_TIMEOUT`] here, on every RTSP query. A failed open or a
//! refused request changes no state. Imports [`super::types`] and [`super::manager`] (which
//! imports neither this file nor the module above).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use strahl_gamestream::handlers::canonical_ip;
use strahl_ipc::{
    AudioParams, Codec, KeyMaterial, Message, Ports, Protocol, Secret, SessionStart, StopReason,
    StreamOptions, VideoParams,
};
use strahl_metrics::{GLOBAL, Metric};
use strahl_rtsp::{
    EncryptionFlags, Event, Parsed, PingPayload, RtspSession, VideoCodec, parse_request,
};
use strahl_seal::gamestream::{RtspCipher, RtspRead};

use super::manager::{SessionManager, stop_stream};
use super::types::{
    Actions, ClientKey, ControlAction, MAX_ENCRYPTED_FRAME, MAX_PLAIN_REQUEST, PENDING_TIMEOUT,
    Pending, RTSPENC_FLAG, RtspMode, RtspStep, Stream, StreamFormat,
};
use crate::fec_adapt::{FecBounds, FecController};

impl SessionManager {
    fn expire(&mut self, now: Instant) {
        for (client, slot) in &mut self.clients {
            if slot
                .pending
                .as_ref()
                .is_some_and(|p| now.saturating_duration_since(p.armed_at) >= PENDING_TIMEOUT)
            {
                log::info!(
                    "pending launch of {client:?} expired: no RTSP PLAY within {PENDING_TIMEOUT:?}"
                );
                slot.pending = None;
            }
        }
    }

    /// Whether any launch is pending (RTSP is served only then).
    pub fn rtsp_open(&mut self, now: Instant) -> bool {
        self.expire(now);
        self.clients.values().any(|c| c.pending.is_some())
    }

    /// The framing of `client`'s pending launch, or `None` when it has none.
    pub fn pending_mode(&mut self, client: &ClientKey, now: Instant) -> Option<RtspMode> {
        self.expire(now);
        self.clients.get(client)?.pending.as_ref().map(|p| {
            if p.cipher.is_some() {
                RtspMode::Encrypted
            } else {
                RtspMode::Plain
            }
        })
    }

    /// Pending launches framed as `mode`, oldest first (plain ones only from `peer_ip`).
    fn candidates(&self, mode: RtspMode, peer_ip: IpAddr) -> Vec<ClientKey> {
        let mut v: Vec<(&ClientKey, &Pending)> = self
            .clients
            .iter()
            .filter_map(|(k, c)| c.pending.as_ref().map(|p| (k, p)))
            .filter(|(_, p)| match mode {
                RtspMode::Encrypted => p.cipher.is_some(),
                RtspMode::Plain => p.cipher.is_none() && p.client_ip == peer_ip,
            })
            .collect();
        v.sort_by_key(|(_, p)| p.age_key());
        v.into_iter().map(|(k, _)| *k).collect()
    }

    /// Feeds the bytes of one RTSP connection so far (`eof`: the peer finished sending).
    pub fn rtsp_input(
        &mut self,
        input: &[u8],
        eof: bool,
        peer: SocketAddr,
        now: Instant,
    ) -> RtspStep {
        self.expire(now);
        if !self.clients.values().any(|c| c.pending.is_some()) {
            return RtspStep::Close {
                why: "no launch is pending".into(),
            };
        }
        let Some(&first) = input.first() else {
            if eof {
                return RtspStep::Close {
                    why: "empty connection".into(),
                };
            }
            // Which framing is not known before the first byte; both limits fit the buffer.
            return RtspStep::NeedMore {
                limit: MAX_PLAIN_REQUEST.max(MAX_ENCRYPTED_FRAME),
            };
        };
        let peer_ip = canonical_ip(peer.ip());
        let mut plain = Vec::new();
        let (client, encrypted) = if first & RTSPENC_FLAG != 0 {
            let candidates = self.candidates(RtspMode::Encrypted, peer_ip);
            if candidates.is_empty() {
                return RtspStep::Close {
                    why: "an rtspenc frame, but no pending launch uses rtspenc".into(),
                };
            }
            let mut owner = None;
            let mut last_err = String::new();
            for k in candidates {
                let Some(cipher) = self
                    .clients
                    .get(&k)
                    .and_then(|c| c.pending.as_ref())
                    .and_then(|p| p.cipher.as_ref())
                else {
                    continue;
                };
                match cipher.open(input, &mut plain) {
                    // The frame length is in the clear: every key needs the same bytes.
                    Ok(RtspRead::NeedMore { needed }) if !eof => {
                        return RtspStep::NeedMore {
                            limit: needed.min(MAX_ENCRYPTED_FRAME),
                        };
                    }
                    Ok(RtspRead::NeedMore { .. }) => {
                        return RtspStep::Close {
                            why: "rtspenc frame truncated".into(),
                        };
                    }
                    Ok(RtspRead::Message { .. }) => {
                        owner = Some(k);
                        break;
                    }
                    Err(e) => last_err = format!("{e:?}"),
                }
            }
            match owner {
                Some(k) => (k, true),
                None => {
                    return RtspStep::Close {
                        why: format!(
                            "rtspenc: no pending launch's key opens the frame ({last_err})"
                        ),
                    };
                }
            }
        } else {
            match self.candidates(RtspMode::Plain, peer_ip).first() {
                Some(k) => (*k, false),
                None => {
                    return RtspStep::Close {
                        why: format!("no plain-RTSP launch is pending from {peer_ip}"),
                    };
                }
            }
        };
        let Some(p) = self
            .clients
            .get_mut(&client)
            .and_then(|c| c.pending.as_mut())
        else {
            return RtspStep::Close {
                why: "pending launch vanished".into(),
            };
        };
        let outcome = if encrypted {
            p.rtsp.handle_message(&plain)
        } else {
            match parse_request(input) {
                Ok(Parsed::Complete { request, .. }) => p.rtsp.handle(&request),
                Ok(Parsed::NeedMore) if !eof => {
                    return RtspStep::NeedMore {
                        limit: MAX_PLAIN_REQUEST,
                    };
                }
                Ok(Parsed::NeedMore) => p.rtsp.handle_message(input),
                Err(e) => RtspSession::malformed(&e),
            }
        };
        let request_line = {
            let text: &[u8] = if encrypted { &plain } else { input };
            let line = text
                .split(|&b| b == b'\r' || b == b'\n')
                .next()
                .unwrap_or(&[]);
            String::from_utf8_lossy(&line[..line.len().min(120)]).into_owned()
        };
        let plain_reply = outcome.response.to_bytes();
        let bytes = match p.cipher.as_mut() {
            Some(c) => {
                let mut out = Vec::with_capacity(plain_reply.len() + RtspCipher::HEADER_LEN);
                if let Err(e) = c.seal(&plain_reply, &mut out) {
                    return RtspStep::Close {
                        why: format!("rtspenc seal: {e:?}"),
                    };
                }
                out
            }
            None => plain_reply,
        };
        let mut summary = format!(
            "{client:?}: {request_line:?} → {}",
            outcome.response.status.0
        );
        if let Some(e) = &outcome.error {
            summary.push_str(&format!(" ({e})"));
            if matches!(
                e,
                strahl_rtsp::SessionError::Announce(
                    strahl_rtsp::AnnounceError::EncryptionRequired { .. }
                )
            ) {
                log::warn!("{client:?} refused: {e}");
            }
            // A format the encoder cannot make: say what it makes (issue 13).
            if let strahl_rtsp::SessionError::Announce(
                a @ (strahl_rtsp::AnnounceError::CodecDisabled(_)
                | strahl_rtsp::AnnounceError::TenBitDisabled
                | strahl_rtsp::AnnounceError::EightBitUnavailable(_)
                | strahl_rtsp::AnnounceError::Yuv444Disabled),
            ) = e
            {
                log::warn!(
                    "{client:?} refused: {a}; the encoder makes only {}",
                    self.video.describe
                );
            }
        }
        let mut a = Actions::default();
        match outcome.event {
            Some(Event::Configured(n)) => {
                summary.push_str(&format!(
                    ": {}x{}@{} {:?} packet {} B, encoder {} kbit/s",
                    n.config.width,
                    n.config.height,
                    n.config.max_fps,
                    n.config.codec,
                    n.config.packet_size,
                    n.encoder_bitrate_kbps
                ));
                summary.push_str(
                    if n.config.encryption_enabled.contains(EncryptionFlags::VIDEO) {
                        ", video encrypted"
                    } else {
                        ", video in clear"
                    },
                );
                if n.config.intra_refresh {
                    // No encoder behind the data plane does intra refresh yet (openh264 here;
                    // NVENC would): the client gets IDR frames as without it.
                    log::info!(
                        "{client:?} asked for intra refresh (x-ss-video[0].intraRefresh); \
                         the encoder cannot, ignored"
                    );
                }
                p.negotiated = Some(*n);
            }
            Some(Event::Play) => {
                let permissions = p.permissions;
                if let Some((s, connect_data, rikey)) = self.session_start(&client, peer.ip()) {
                    summary.push_str(&format!(
                        ": SessionStart {} sent to the data plane, control stream expected",
                        s.id
                    ));
                    a.control.push(ControlAction::Register {
                        session: s.id,
                        connect_data,
                        rikey,
                        permissions,
                    });
                    let bounds = FecBounds {
                        min: self.cfg.fec_percent_min,
                        default: self.cfg.fec_percent,
                        max: self.cfg.fec_percent_max,
                    };
                    let fec = FecController::new(bounds, now);
                    GLOBAL.set(Metric::ControlFecPercent, u64::from(fec.current()));
                    let format = StreamFormat {
                        codec: s.video.codec,
                        bit_depth: if s.stream.has(StreamOptions::TEN_BIT) {
                            10
                        } else {
                            8
                        },
                        hdr: s.stream.has(StreamOptions::HDR),
                        encrypted_video: s.stream.has(StreamOptions::ENCRYPT_VIDEO),
                    };
                    summary.push_str(&format!(
                        " ({} {}-bit{}{})",
                        format.codec_name(),
                        format.bit_depth,
                        if format.hdr { " HDR" } else { "" },
                        if format.encrypted_video {
                            ", video encrypted"
                        } else {
                            ", video in clear"
                        }
                    ));
                    if let Some(slot) = self.clients.get_mut(&client) {
                        // Resume stopped any earlier stream; this only guards the bookkeeping.
                        a.extend(stop_stream(slot, StopReason::Replaced, true));
                        slot.stream = Some(Stream {
                            id: s.id,
                            format,
                            fec,
                            rtt: None,
                            fec_recovered: 0,
                            fec_lost: 0,
                        });
                    }
                    a.ipc.push(Message::SessionStart(Box::new(s)));
                }
                // This launch's RTSP phase is over: its RTSP closes until its next launch.
                if let Some(slot) = self.clients.get_mut(&client) {
                    slot.pending = None;
                }
            }
            Some(Event::Teardown) => {
                if let Some(slot) = self.clients.get_mut(&client) {
                    a.extend(stop_stream(slot, StopReason::ClientQuit, true));
                    slot.pending = None;
                }
            }
            Some(Event::Setup(_)) | None => {}
        }
        RtspStep::Reply {
            bytes,
            control: a.control,
            ipc: a.ipc,
            summary,
        }
    }

    /// The SessionStart for `client`'s pending launch, with its connect data and key (PLAY is
    /// accepted only after ANNOUNCE, so the negotiated stream is always there; `None` would be
    /// a state-machine bug, not peer input). A stream the client still had is replaced by the
    /// caller's bookkeeping (resume already stopped it).
    fn session_start(
        &mut self,
        client: &ClientKey,
        client_ip: IpAddr,
    ) -> Option<(SessionStart, u32, [u8; 16])> {
        let id = self.next_id;
        let p = self.clients.get(client)?.pending.as_ref()?;
        let n = p.negotiated.as_ref()?;
        let c = &n.config;
        // ANNOUNCE bounds geometry (≤ 16384), fps (≤ 1000) and packet size (≤ 65488): the u16
        // conversions cannot saturate for accepted values.
        let u16_of = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        let start = SessionStart {
            id,
            protocol: Protocol::GameStream,
            peer: SocketAddr::new(client_ip, 0),
            video: VideoParams {
                width: u16_of(c.width),
                height: u16_of(c.height),
                fps: u16_of(c.max_fps),
                bitrate_kbps: n.encoder_bitrate_kbps.min(self.cfg.max_bitrate_kbps),
                packet_size: u16_of(c.packet_size),
                fec_percent: self.cfg.fec_percent,
                codec: match c.codec {
                    VideoCodec::H264 => Codec::H264,
                    VideoCodec::Hevc => Codec::Hevc,
                    VideoCodec::Av1 => Codec::Av1,
                },
            },
            audio: AudioParams {
                channels: n.audio.channels,
                sample_rate_hz: 48_000,
                packet_duration_ms: c.audio.packet_duration_ms,
                bitrate_kbps: n.audio.bitrate_bps / 1000,
            },
            keys: KeyMaterial::GameStream {
                rikey: Secret(p.rikey),
                rikeyid: p.rikeyid,
            },
            ports: Ports {
                video_src: self.cfg.video_port,
                audio_src: self.cfg.audio_port,
                video_dst: 0,
                audio_dst: 0,
            },
            stream: stream_options(c, p.ping_payload),
        };
        let (connect_data, rikey) = (p.connect_data, p.rikey);
        self.next_id += 1;
        Some((start, connect_data, rikey))
    }
}

/// Encryption and ping matching as negotiated in ANNOUNCE (§A10, §A11): the client puts the
/// payload in its pings only with ML_FF_SESSION_ID_V1; audio is encrypted with SS_ENC_AUDIO or
/// the legacy featureFlags bit 0x20.
fn stream_options(c: &strahl_rtsp::StreamConfig, ping: PingPayload) -> StreamOptions {
    use strahl_rtsp::announce::{ML_FF_FEC_STATUS, ML_FF_SESSION_ID_V1, NV_FF_AUDIO_ENCRYPTION};
    let mut flags = 0;
    if c.encryption_enabled.contains(EncryptionFlags::VIDEO) {
        flags |= StreamOptions::ENCRYPT_VIDEO;
    }
    if c.encryption_enabled.contains(EncryptionFlags::AUDIO)
        || c.nv_feature_flags & NV_FF_AUDIO_ENCRYPTION != 0
    {
        flags |= StreamOptions::ENCRYPT_AUDIO;
    }
    if c.ml_feature_flags & ML_FF_FEC_STATUS != 0 {
        flags |= StreamOptions::FEC_STATUS;
    }
    // ANNOUNCE accepted dynamicRangeMode 1 only for a 10-bit format the encoder makes.
    if c.dynamic_range == strahl_rtsp::announce::DynamicRange::Hdr {
        flags |= StreamOptions::TEN_BIT | StreamOptions::HDR;
    }
    if c.chroma == strahl_rtsp::announce::ChromaSampling::Yuv444 {
        flags |= StreamOptions::YUV444;
    }
    StreamOptions {
        ping_payload: (c.ml_feature_flags & ML_FF_SESSION_ID_V1 != 0).then(|| *ping.as_bytes()),
        flags,
        min_fec_packets: u8::try_from(c.min_required_fec_packets).unwrap_or(u8::MAX),
    }
}
