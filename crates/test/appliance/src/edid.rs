//! strahl's headless EDID: one 128-byte EDID 1.3 base block plus one CTA-861 extension, listing
//! the modes Moonlight clients ask for most (1280×720@60, 1920×1080@60/120, 2560×1440@60/120,
//! 3840×2160@60; preferred 1920×1080@60) and a stereo LPCM audio sink.
//!
//! [`generate`] writes it from first principles (VESA E-EDID 1.3 and CTA-861 layouts; CTA VIC
//! timings; CVT reduced blanking for the 1440p modes, which have no VIC). [`check`] is an
//! independent reader — block checksums, header, the detailed timings decoded back into modes —
//! that the tests run on the shipped file (`kernel-config/firmware/edid/strahl.bin`), alongside
//! Debian's `edid-decode --check`.

/// One video timing, as a detailed timing descriptor carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub pixel_clock_khz: u32,
    pub h_active: u16,
    pub h_front: u16,
    pub h_sync: u16,
    pub h_back: u16,
    pub v_active: u16,
    pub v_front: u16,
    pub v_sync: u16,
    pub v_back: u16,
    pub h_sync_positive: bool,
    pub v_sync_positive: bool,
}

impl Timing {
    pub fn h_total(&self) -> u32 {
        u32::from(self.h_active + self.h_front + self.h_sync + self.h_back)
    }
    pub fn v_total(&self) -> u32 {
        u32::from(self.v_active + self.v_front + self.v_sync + self.v_back)
    }
    /// Refresh rate in millihertz.
    pub fn refresh_mhz(&self) -> u64 {
        u64::from(self.pixel_clock_khz) * 1_000_000
            / (u64::from(self.h_total()) * u64::from(self.v_total()))
    }
}

/// CTA-861 VIC 4: 1280×720@60.
pub const VIC4_720P60: Timing = Timing {
    pixel_clock_khz: 74_250,
    h_active: 1280,
    h_front: 110,
    h_sync: 40,
    h_back: 220,
    v_active: 720,
    v_front: 5,
    v_sync: 5,
    v_back: 20,
    h_sync_positive: true,
    v_sync_positive: true,
};
/// CTA-861 VIC 16: 1920×1080@60.
pub const VIC16_1080P60: Timing = Timing {
    pixel_clock_khz: 148_500,
    h_active: 1920,
    h_front: 88,
    h_sync: 44,
    h_back: 148,
    v_active: 1080,
    v_front: 4,
    v_sync: 5,
    v_back: 36,
    h_sync_positive: true,
    v_sync_positive: true,
};
/// CTA-861 VIC 63: 1920×1080@120.
pub const VIC63_1080P120: Timing = Timing {
    pixel_clock_khz: 297_000,
    ..VIC16_1080P60
};
/// CTA-861 VIC 97: 3840×2160@60.
pub const VIC97_2160P60: Timing = Timing {
    pixel_clock_khz: 594_000,
    h_active: 3840,
    h_front: 176,
    h_sync: 88,
    h_back: 296,
    v_active: 2160,
    v_front: 8,
    v_sync: 10,
    v_back: 72,
    h_sync_positive: true,
    v_sync_positive: true,
};

/// A CVT reduced-blanking (v1) timing for a 16:9 mode: horizontal blank 160 (48/32/80, +hsync),
/// vertical front porch 3 and sync 5 (−vsync), at least 460 µs of vertical blank, pixel clock
/// rounded down to 250 kHz (VESA CVT 1.2 §3.4).
pub fn cvt_rb(h_active: u16, v_active: u16, refresh_hz: u32) -> Timing {
    const H_BLANK: u32 = 160;
    const MIN_VBLANK_NS: u64 = 460_000;
    const V_FRONT: u32 = 3;
    const V_SYNC_16_9: u32 = 5;
    const MIN_V_BACK: u32 = 6;
    let frame_ns = 1_000_000_000u64 / u64::from(refresh_hz);
    // Estimated line period (ns, scaled by 1000 to keep the precision of the standard's reals).
    let h_period_ps = (frame_ns - MIN_VBLANK_NS) * 1000 / u64::from(v_active);
    let vbi_lines = (MIN_VBLANK_NS * 1000 / h_period_ps) as u32 + 1;
    let vbi_lines = vbi_lines.max(V_FRONT + V_SYNC_16_9 + MIN_V_BACK);
    let h_total = u32::from(h_active) + H_BLANK;
    let v_total = u32::from(v_active) + vbi_lines;
    let clock_hz = u64::from(refresh_hz) * u64::from(h_total) * u64::from(v_total);
    let clock_khz = (clock_hz / 250_000 * 250) as u32;
    Timing {
        pixel_clock_khz: clock_khz,
        h_active,
        h_front: 48,
        h_sync: 32,
        h_back: 80,
        v_active,
        v_front: V_FRONT as u16,
        v_sync: V_SYNC_16_9 as u16,
        v_back: (vbi_lines - V_FRONT - V_SYNC_16_9) as u16,
        h_sync_positive: true,
        v_sync_positive: false,
    }
}

/// Physical image size written into the descriptors (a 27" 16:9 panel), millimetres.
const IMAGE_MM: (u16, u16) = (597, 336);

/// An 18-byte detailed timing descriptor.
fn dtd(t: &Timing) -> [u8; 18] {
    let clk = (t.pixel_clock_khz / 10) as u16;
    let h_blank = t.h_front + t.h_sync + t.h_back;
    let v_blank = t.v_front + t.v_sync + t.v_back;
    let lo = |v: u16| (v & 0xff) as u8;
    let hi4 = |v: u16| ((v >> 8) & 0x0f) as u8;
    let mut d = [0u8; 18];
    d[0..2].copy_from_slice(&clk.to_le_bytes());
    d[2] = lo(t.h_active);
    d[3] = lo(h_blank);
    d[4] = (hi4(t.h_active) << 4) | hi4(h_blank);
    d[5] = lo(t.v_active);
    d[6] = lo(v_blank);
    d[7] = (hi4(t.v_active) << 4) | hi4(v_blank);
    d[8] = lo(t.h_front);
    d[9] = lo(t.h_sync);
    d[10] = (((t.v_front & 0x0f) as u8) << 4) | (t.v_sync & 0x0f) as u8;
    d[11] = ((((t.h_front >> 8) & 3) as u8) << 6)
        | ((((t.h_sync >> 8) & 3) as u8) << 4)
        | ((((t.v_front >> 4) & 3) as u8) << 2)
        | (((t.v_sync >> 4) & 3) as u8);
    d[12] = lo(IMAGE_MM.0);
    d[13] = lo(IMAGE_MM.1);
    d[14] = (hi4(IMAGE_MM.0) << 4) | hi4(IMAGE_MM.1);
    // Digital separate sync (0b11 << 3) with the two polarities.
    d[17] = 0x18 | (u8::from(t.v_sync_positive) << 2) | (u8::from(t.h_sync_positive) << 1);
    d
}

/// A display descriptor: tag and 13 bytes of payload.
fn display_descriptor(tag: u8, payload: [u8; 13]) -> [u8; 18] {
    let mut d = [0u8; 18];
    d[3] = tag;
    d[5..].copy_from_slice(&payload);
    d
}

/// Text payload: up to 13 bytes, then a line feed and space padding.
fn text(s: &str) -> [u8; 13] {
    assert!(s.len() < 13 && s.is_ascii());
    let mut p = [b' '; 13];
    p[..s.len()].copy_from_slice(s.as_bytes());
    p[s.len()] = b'\n';
    p
}

/// Sets byte 127 so that the block's bytes sum to 0 mod 256.
fn seal(block: &mut [u8; 128]) {
    let sum = block[..127].iter().fold(0u8, |a, b| a.wrapping_add(*b));
    block[127] = 0u8.wrapping_sub(sum);
}

/// EDID 3-letter manufacturer ID ("STR"), packed 5 bits per letter, big-endian.
fn manufacturer(id: &[u8; 3]) -> [u8; 2] {
    let v = id
        .iter()
        .fold(0u16, |a, c| (a << 5) | u16::from(c - b'A' + 1));
    v.to_be_bytes()
}

/// 10-bit CIE coordinate of a value given in 1/10000, rounded to nearest.
fn cie(v: u32) -> u16 {
    ((v * 1024 + 5000) / 10000) as u16
}

fn base_block(preferred: &Timing, extra: &Timing) -> [u8; 128] {
    let mut b = [0u8; 128];
    b[0..8].copy_from_slice(&[0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
    b[8..10].copy_from_slice(&manufacturer(b"STR"));
    b[10..12].copy_from_slice(&1u16.to_le_bytes()); // product code
    // Serial number 0 (none); week 1 of 2026.
    b[16] = 1;
    b[17] = (2026 - 1990) as u8;
    // EDID 1.3: the structure the HDMI specification builds on (CTA-861 carries the rest).
    b[18] = 1;
    b[19] = 3;
    // Digital input.
    b[20] = 0x80;
    b[21] = (IMAGE_MM.0 / 10) as u8;
    b[22] = (IMAGE_MM.1 / 10) as u8;
    b[23] = 120; // gamma 2.2
    // RGB colour display, sRGB default colour space, the first detailed timing preferred.
    b[24] = 0x08 | 0x04 | 0x02;
    // sRGB chromaticity (red, green, blue, white).
    let xy = [
        (cie(6400), cie(3300)),
        (cie(3000), cie(6000)),
        (cie(1500), cie(600)),
        (cie(3127), cie(3290)),
    ];
    let lo2 = |v: u16| (v & 3) as u8;
    b[25] = (lo2(xy[0].0) << 6) | (lo2(xy[0].1) << 4) | (lo2(xy[1].0) << 2) | lo2(xy[1].1);
    b[26] = (lo2(xy[2].0) << 6) | (lo2(xy[2].1) << 4) | (lo2(xy[3].0) << 2) | lo2(xy[3].1);
    for (i, (x, y)) in xy.iter().enumerate() {
        b[27 + 2 * i] = (x >> 2) as u8;
        b[28 + 2 * i] = (y >> 2) as u8;
    }
    // Established timings: 640×480@60, which every HDMI sink must accept.
    b[35] = 0x20;
    // Standard timings: none.
    for i in 0..8 {
        b[38 + 2 * i] = 0x01;
        b[39 + 2 * i] = 0x01;
    }
    b[54..72].copy_from_slice(&dtd(preferred));
    b[72..90].copy_from_slice(&dtd(extra));
    // Range limits: 24–120 Hz vertical, 30–190 kHz horizontal, 600 MHz pixel clock.
    let mut range = [0u8; 13];
    range[0] = 24;
    range[1] = 120;
    range[2] = 30;
    range[3] = 190;
    range[4] = 60;
    range[5] = 0x00;
    range[6] = b'\n';
    range[7..].fill(b' ');
    // Byte 4 of the descriptor (offset flags) stays 0: the rates above are not offset.
    b[90..108].copy_from_slice(&display_descriptor(0xfd, range));
    b[108..126].copy_from_slice(&display_descriptor(0xfc, text("strahl")));
    b[126] = 1; // one extension
    seal(&mut b);
    b
}

/// CTA-861 video identification codes in the video data block.
pub const VICS: [u8; 4] = [16, 4, 63, 97];

fn cta_block(dtds: &[Timing]) -> [u8; 128] {
    let mut data = Vec::new();
    // Video data block (tag 2). The native mode is the base block's first detailed timing.
    data.push((2 << 5) | VICS.len() as u8);
    data.extend_from_slice(&VICS);
    // Video capability block (tag 7, extended tag 0): RGB quantization range selectable; PC, IT
    // and CE formats all underscanned (S_PT 0: "as IT and CE"; a capture sink has no overscan).
    data.extend_from_slice(&[(7 << 5) | 2, 0x00, 0x40 | 0x08 | 0x02]);
    // Audio data block (tag 1): LPCM, 2 channels, 32/44.1/48 kHz, 16/20/24 bit.
    data.extend_from_slice(&[(1 << 5) | 3, (1 << 3) | 1, 0x07, 0x07]);
    // Speaker allocation (tag 4): front left/right.
    data.extend_from_slice(&[(4 << 5) | 3, 0x01, 0x00, 0x00]);
    // HDMI 1.4 vendor-specific block (tag 3, OUI 00-0C-03): physical address 1.0.0.0, no deep
    // colour, max TMDS clock 340 MHz (5 MHz units).
    data.extend_from_slice(&[
        (3 << 5) | 7,
        0x03,
        0x0c,
        0x00,
        0x10,
        0x00,
        0x00,
        (340 / 5) as u8,
    ]);
    // HDMI Forum block (tag 3, OUI C4-5D-D8): version 1, max TMDS character rate 600 MHz,
    // SCDC present (required above 340 Mcsc), no other features.
    data.extend_from_slice(&[
        (3 << 5) | 7,
        0xd8,
        0x5d,
        0xc4,
        0x01,
        (600 / 5) as u8,
        0x80,
        0x00,
    ]);
    let mut b = [0u8; 128];
    b[0] = 0x02; // CTA extension tag
    b[1] = 0x03; // revision 3
    b[2] = (4 + data.len()) as u8; // first detailed timing
    // Underscanned IT formats, basic audio; one native detailed timing (the base block's first).
    b[3] = 0x80 | 0x40 | 0x01;
    b[4..4 + data.len()].copy_from_slice(&data);
    let mut at = 4 + data.len();
    for t in dtds {
        b[at..at + 18].copy_from_slice(&dtd(t));
        at += 18;
    }
    assert!(at <= 127, "CTA block overflows");
    seal(&mut b);
    b
}

/// The whole EDID (256 bytes).
pub fn generate() -> Vec<u8> {
    let qhd60 = cvt_rb(2560, 1440, 60);
    let qhd120 = cvt_rb(2560, 1440, 120);
    let mut out = base_block(&VIC16_1080P60, &qhd60).to_vec();
    out.extend_from_slice(&cta_block(&[qhd120]));
    out
}

/// A mode: width, height, refresh rounded to whole hertz.
pub type Mode = (u16, u16, u32);

/// What [`check`] read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Detailed timings of every block, in order (the first is the preferred mode).
    pub detailed: Vec<Mode>,
    /// VICs of the CTA video data block (native bit cleared).
    pub vics: Vec<u8>,
    pub name: String,
}

/// Reads `edid` independently of [`generate`]: checks the header, every block's checksum and
/// the extension count, decodes the detailed timings and the CTA video data block.
pub fn check(edid: &[u8]) -> Result<Summary, String> {
    if edid.len() < 128 || !edid.len().is_multiple_of(128) {
        return Err(format!(
            "{} bytes: not a whole number of 128-byte blocks",
            edid.len()
        ));
    }
    if edid[..8] != [0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0] {
        return Err("bad header".into());
    }
    let blocks = edid.len() / 128;
    if usize::from(edid[126]) + 1 != blocks {
        return Err(format!(
            "extension count {} but {} blocks",
            edid[126], blocks
        ));
    }
    for (i, b) in edid.chunks(128).enumerate() {
        let sum = b.iter().fold(0u8, |a, x| a.wrapping_add(*x));
        if sum != 0 {
            return Err(format!("block {i}: checksum leaves {sum:#04x}, not 0"));
        }
    }
    if edid[18] != 1 || !(3..=4).contains(&edid[19]) {
        return Err(format!(
            "EDID version {}.{}, not 1.3 or 1.4",
            edid[18], edid[19]
        ));
    }
    let mut s = Summary {
        detailed: Vec::new(),
        vics: Vec::new(),
        name: String::new(),
    };
    for d in edid[54..126].chunks(18) {
        if d[0] != 0 || d[1] != 0 {
            s.detailed.push(read_dtd(d));
        } else if d[3] == 0xfc {
            s.name = String::from_utf8_lossy(&d[5..])
                .split('\n')
                .next()
                .unwrap_or("")
                .to_string();
        }
    }
    for b in edid.chunks(128).skip(1) {
        if b[0] != 0x02 {
            continue;
        }
        let dtd_at = usize::from(b[2]);
        let mut at = 4;
        while at < dtd_at {
            let tag = b[at] >> 5;
            let len = usize::from(b[at] & 0x1f);
            if at + 1 + len > dtd_at {
                return Err(format!("CTA data block at {at} runs past the timings"));
            }
            if tag == 2 {
                s.vics.extend(b[at + 1..at + 1 + len].iter().map(|v| {
                    if (129..=192).contains(v) {
                        v & 0x7f
                    } else {
                        *v
                    }
                }));
            }
            at += 1 + len;
        }
        let mut at = dtd_at;
        while at + 18 <= 127 && (b[at] != 0 || b[at + 1] != 0) {
            s.detailed.push(read_dtd(&b[at..at + 18]));
            at += 18;
        }
    }
    Ok(s)
}

fn read_dtd(d: &[u8]) -> Mode {
    let clk_hz = u64::from(u16::from_le_bytes([d[0], d[1]])) * 10_000;
    let h_active = u16::from(d[2]) | (u16::from(d[4] >> 4) << 8);
    let h_blank = u16::from(d[3]) | (u16::from(d[4] & 0x0f) << 8);
    let v_active = u16::from(d[5]) | (u16::from(d[7] >> 4) << 8);
    let v_blank = u16::from(d[6]) | (u16::from(d[7] & 0x0f) << 8);
    let total = u64::from(h_active + h_blank) * u64::from(v_active + v_blank);
    let hz = ((clk_hz * 10 / total) + 5) / 10;
    (h_active, v_active, hz as u32)
}

/// The modes the CTA VICs of [`VICS`] stand for.
pub fn vic_mode(vic: u8) -> Option<Mode> {
    match vic {
        4 => Some((1280, 720, 60)),
        16 => Some((1920, 1080, 60)),
        63 => Some((1920, 1080, 120)),
        97 => Some((3840, 2160, 60)),
        _ => None,
    }
}
