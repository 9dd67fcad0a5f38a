//! Synthetic video: a moving, non-black test pattern that carries its frame number.
//!
//! Layout (all block edges on 16-pixel macroblock boundaries so the encoder codes each block as
//! flat macroblocks and ringing stays at the edges):
//! - a *band* at the top holding the 32 bits of the frame number, MSB first, as square blocks of
//!   `block` × `block` luma pixels: white (Y = 235) for 1, black (Y = 16) for 0, neutral chroma;
//!   up to 32 blocks per row, more rows when the picture is narrow;
//! - below it a diagonal luma gradient that scrolls with the frame number and a coloured square
//!   that bounces around, so every frame differs and motion estimation has work to do.
//!
//! [`read_frame_number`] recomputes the same layout from the picture size, averages the inner
//! half of each block and thresholds at mid-grey. It refuses (returns `None`) when any block's
//! mean is ambiguous, so a garbled picture is reported as unreadable rather than misread.
//! The pattern is never black (Moonlight's start-up gate waits for a mean pixel value > 5).

use crate::{CaptureError, Frame, PixelFormat, VideoSource};

/// Number of bits (blocks) carried per frame.
pub const FRAME_NUMBER_BITS: u32 = 32;
/// Luma of a 1 bit / 0 bit block (limited-range white / black).
const ONE_LUMA: u8 = 235;
const ZERO_LUMA: u8 = 16;
/// A block whose inner mean falls between these is ambiguous → unreadable frame. Chosen with a
/// wide margin: lossy coding at modest bitrates moves flat 16×16 block means by a few units.
const AMBIGUOUS_LOW: u32 = 70;
const AMBIGUOUS_HIGH: u32 = 180;
/// Smallest picture the band fits into with room for the moving part.
pub const MIN_WIDTH: u32 = 128;

/// Geometry of the frame-number band for a given picture size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BandLayout {
    /// Block edge in pixels (a multiple of 16).
    pub block: u32,
    /// Blocks per row.
    pub cols: u32,
    /// Rows of blocks.
    pub rows: u32,
}

impl BandLayout {
    /// The layout used for a `width` × `height` picture, or `None` when it does not fit.
    pub fn for_size(width: u32, height: u32) -> Option<Self> {
        if width < MIN_WIDTH {
            return None;
        }
        // 32 blocks across at ≥ 16 px each need 512 px; wider pictures get bigger blocks
        // (32 px at 1280), which survive lower bitrates.
        let block = 16 * (width / (16 * FRAME_NUMBER_BITS)).max(1);
        let cols = (width / block).min(FRAME_NUMBER_BITS);
        let rows = FRAME_NUMBER_BITS.div_ceil(cols);
        let band = rows * block;
        // Leave at least two macroblock rows for the moving part.
        if band + 32 > height {
            return None;
        }
        Some(Self { block, cols, rows })
    }

    /// Height of the band in pixels.
    pub fn band_height(&self) -> u32 {
        self.rows * self.block
    }

    /// Top-left pixel of the block carrying bit `i` (0 = MSB).
    pub fn origin(&self, i: u32) -> (u32, u32) {
        ((i % self.cols) * self.block, (i / self.cols) * self.block)
    }
}

/// Configuration of the synthetic source.
#[derive(Clone, Copy, Debug)]
pub struct SyntheticConfig {
    pub width: u32,
    pub height: u32,
    /// Frames per second; sets `pts_us` = frame_number × 10^6 / fps.
    pub fps: u32,
    pub format: PixelFormat,
    /// Frame number of the first frame (tests start elsewhere to exercise high bits).
    pub first_frame_number: u32,
}

/// The synthetic pattern generator.
#[derive(Debug)]
pub struct SyntheticSource {
    cfg: SyntheticConfig,
    layout: BandLayout,
    produced: u64,
}

impl SyntheticSource {
    pub fn new(cfg: SyntheticConfig) -> Result<Self, CaptureError> {
        if cfg.fps == 0 {
            return Err(CaptureError::Config("fps must be > 0".into()));
        }
        if !cfg.width.is_multiple_of(16) || !cfg.height.is_multiple_of(2) {
            return Err(CaptureError::Config(format!(
                "{}x{}: width must be a multiple of 16 and height even",
                cfg.width, cfg.height
            )));
        }
        let layout = BandLayout::for_size(cfg.width, cfg.height).ok_or_else(|| {
            CaptureError::Config(format!(
                "{}x{} is too small for the frame-number band",
                cfg.width, cfg.height
            ))
        })?;
        Ok(Self {
            cfg,
            layout,
            produced: 0,
        })
    }

    pub fn layout(&self) -> BandLayout {
        self.layout
    }

    /// Draws the picture for `number` into `frame` (exposed for tests and benchmarks).
    pub fn draw(&self, number: u32, frame: &mut Frame) -> Result<(), CaptureError> {
        let (w, h) = (self.cfg.width, self.cfg.height);
        frame.check(w, h, self.cfg.format)?;
        let band_h = self.layout.band_height();
        let (bx, by, bs) = box_position(w, h, band_h, number);
        let (y_plane, chroma) = frame.planes_mut();
        let wu = w as usize;

        for y in 0..h {
            let row = &mut y_plane[y as usize * wu..(y as usize + 1) * wu];
            if y < band_h {
                row.fill(128);
                continue;
            }
            let shift = number.wrapping_mul(3);
            for (x, px) in row.iter_mut().enumerate() {
                let x = x as u32;
                *px = if x >= bx && x < bx + bs && y >= by && y < by + bs {
                    200
                } else {
                    // 40..=199: never black, never as bright as a 1 block.
                    40 + (x.wrapping_add(2 * y).wrapping_add(shift) % 160) as u8
                };
            }
        }
        for i in 0..FRAME_NUMBER_BITS {
            let bit = (number >> (FRAME_NUMBER_BITS - 1 - i)) & 1;
            let luma = if bit == 1 { ONE_LUMA } else { ZERO_LUMA };
            let (ox, oy) = self.layout.origin(i);
            for y in oy..oy + self.layout.block {
                let start = y as usize * wu + ox as usize;
                y_plane[start..start + self.layout.block as usize].fill(luma);
            }
        }

        // Chroma: neutral in the band, a slow hue gradient below, a fixed colour for the box.
        let (cw, ch) = (w / 2, h / 2);
        let chroma_at = |cx: u32, cy: u32| -> (u8, u8) {
            let (x, y) = (cx * 2, cy * 2);
            if y < band_h {
                (128, 128)
            } else if x >= bx && x < bx + bs && y >= by && y < by + bs {
                (60, 200)
            } else {
                (
                    96 + (cx.wrapping_add(number) % 64) as u8,
                    96 + (cy.wrapping_add(number / 2) % 64) as u8,
                )
            }
        };
        match self.cfg.format {
            PixelFormat::I420 => {
                let (u, v) = chroma.split_at_mut((cw * ch) as usize);
                for cy in 0..ch {
                    for cx in 0..cw {
                        let (cu, cv) = chroma_at(cx, cy);
                        let i = (cy * cw + cx) as usize;
                        u[i] = cu;
                        v[i] = cv;
                    }
                }
            }
            PixelFormat::Nv12 => {
                for cy in 0..ch {
                    for cx in 0..cw {
                        let (cu, cv) = chroma_at(cx, cy);
                        let i = (cy * w + 2 * cx) as usize;
                        chroma[i] = cu;
                        chroma[i + 1] = cv;
                    }
                }
            }
        }
        frame.frame_number = number;
        frame.pts_us = u64::from(number.wrapping_sub(self.cfg.first_frame_number)) * 1_000_000
            / u64::from(self.cfg.fps);
        Ok(())
    }
}

/// Position (x, y) and edge of the bouncing square below the band for frame `n`.
fn box_position(w: u32, h: u32, band_h: u32, n: u32) -> (u32, u32, u32) {
    let area_h = h - band_h;
    let size = (w.min(area_h) / 4).max(8) & !1;
    let bounce = |span: u32, speed: u32| -> u32 {
        if span == 0 {
            return 0;
        }
        let t = n.wrapping_mul(speed) % (2 * span);
        if t < span { t } else { 2 * span - t }
    };
    let x = bounce(w - size, 7);
    let y = band_h + bounce(area_h - size, 5);
    (x, y, size)
}

impl VideoSource for SyntheticSource {
    fn dimensions(&self) -> (u32, u32) {
        (self.cfg.width, self.cfg.height)
    }

    fn format(&self) -> PixelFormat {
        self.cfg.format
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<(), CaptureError> {
        let number = self
            .cfg
            .first_frame_number
            .wrapping_add(self.produced as u32);
        self.draw(number, frame)?;
        self.produced += 1;
        Ok(())
    }
}

/// Reads the frame number from a luma plane whose stride equals its width.
pub fn read_frame_number(y_plane: &[u8], width: u32, height: u32) -> Option<u32> {
    read_frame_number_strided(y_plane, width as usize, width, height)
}

/// Reads the frame number from a luma plane with row stride `stride` (decoders pad rows).
/// Returns `None` when the picture is too small, the plane too short, or any block ambiguous.
pub fn read_frame_number_strided(
    y_plane: &[u8],
    stride: usize,
    width: u32,
    height: u32,
) -> Option<u32> {
    let layout = BandLayout::for_size(width, height)?;
    if stride < width as usize || y_plane.len() < stride * layout.band_height() as usize {
        return None;
    }
    // Average the inner half of each block: edges carry the coding artefacts.
    let inset = layout.block / 4;
    let inner = layout.block - 2 * inset;
    let mut number = 0u32;
    for i in 0..FRAME_NUMBER_BITS {
        let (ox, oy) = layout.origin(i);
        let mut sum = 0u32;
        for y in oy + inset..oy + inset + inner {
            let start = y as usize * stride + (ox + inset) as usize;
            sum += y_plane[start..start + inner as usize]
                .iter()
                .map(|&p| u32::from(p))
                .sum::<u32>();
        }
        let mean = sum / (inner * inner);
        if (AMBIGUOUS_LOW..=AMBIGUOUS_HIGH).contains(&mean) {
            return None;
        }
        number = (number << 1) | u32::from(mean > AMBIGUOUS_HIGH);
    }
    Some(number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn source(w: u32, h: u32, format: PixelFormat, first: u32) -> SyntheticSource {
        SyntheticSource::new(SyntheticConfig {
            width: w,
            height: h,
            fps: 60,
            format,
            first_frame_number: first,
        })
        .unwrap()
    }

    #[test]
    fn layouts() {
        let l = BandLayout::for_size(1280, 720).unwrap();
        assert_eq!((l.block, l.cols, l.rows), (32, 32, 1));
        let l = BandLayout::for_size(320, 240).unwrap();
        assert_eq!((l.block, l.cols, l.rows), (16, 20, 2));
        assert!(BandLayout::for_size(112, 240).is_none());
        assert!(BandLayout::for_size(128, 64).is_none());
        assert!(
            SyntheticSource::new(SyntheticConfig {
                width: 100,
                height: 100,
                fps: 60,
                format: PixelFormat::I420,
                first_frame_number: 0
            })
            .is_err()
        );
    }

    #[test]
    fn frames_advance_move_and_are_not_black() {
        let mut s = source(320, 240, PixelFormat::I420, 5);
        let mut a = Frame::new(320, 240, PixelFormat::I420).unwrap();
        let mut b = a.clone();
        s.next_frame(&mut a).unwrap();
        s.next_frame(&mut b).unwrap();
        assert_eq!((a.frame_number, b.frame_number), (5, 6));
        assert_eq!(b.pts_us - a.pts_us, 16_666);
        assert_ne!(a.y()[240 * 320 / 2..], b.y()[240 * 320 / 2..]);
        let mean = a.y().iter().map(|&p| u64::from(p)).sum::<u64>() / a.y().len() as u64;
        assert!(mean > 40, "mean luma {mean}");
    }

    #[test]
    fn garbage_is_unreadable() {
        let grey = vec![128u8; 320 * 240];
        assert_eq!(read_frame_number(&grey, 320, 240), None);
        assert_eq!(read_frame_number(&grey[..100], 320, 240), None);
    }

    #[test]
    fn nv12_and_i420_share_luma() {
        let s1 = source(256, 128, PixelFormat::I420, 0);
        let s2 = source(256, 128, PixelFormat::Nv12, 0);
        let mut a = Frame::new(256, 128, PixelFormat::I420).unwrap();
        let mut b = Frame::new(256, 128, PixelFormat::Nv12).unwrap();
        s1.draw(77, &mut a).unwrap();
        s2.draw(77, &mut b).unwrap();
        assert_eq!(a.y(), b.y());
        assert_eq!(a.u_or_uv()[5], b.u_or_uv()[10]);
        assert_eq!(a.v()[5], b.u_or_uv()[11]);
        assert!(s1.draw(1, &mut b).is_err());
    }

    proptest! {
        #[test]
        fn roundtrip_exact_pixels(n in any::<u32>(), wide in any::<bool>()) {
            let (w, h) = if wide { (1280, 720) } else { (320, 240) };
            let s = source(w, h, PixelFormat::I420, 0);
            let mut f = Frame::new(w, h, PixelFormat::I420).unwrap();
            s.draw(n, &mut f).unwrap();
            prop_assert_eq!(read_frame_number(f.y(), w, h), Some(n));
        }

        #[test]
        fn roundtrip_with_noise_and_stride(n in any::<u32>(), seed in any::<u64>()) {
            let (w, h) = (320u32, 240u32);
            let s = source(w, h, PixelFormat::I420, 0);
            let mut f = Frame::new(w, h, PixelFormat::I420).unwrap();
            s.draw(n, &mut f).unwrap();
            // Re-lay the plane with a padded stride and add ±30 of noise (a lossy codec's worth).
            let stride = 352usize;
            let mut padded = vec![0u8; stride * h as usize];
            let mut state = seed | 1;
            for y in 0..h as usize {
                for x in 0..w as usize {
                    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                    let noise = (state % 61) as i32 - 30;
                    let p = i32::from(f.y()[y * w as usize + x]) + noise;
                    padded[y * stride + x] = p.clamp(0, 255) as u8;
                }
            }
            prop_assert_eq!(read_frame_number_strided(&padded, stride, w, h), Some(n));
        }
    }
}
