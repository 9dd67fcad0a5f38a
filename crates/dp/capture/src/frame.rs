//! Raw frame buffers: one contiguous allocation holding all planes of an I420 or NV12 picture.
//!
//! Plane strides equal the plane widths (no padding); chroma is subsampled 2×2, so width and
//! height must be even. The buffer is allocated once by [`Frame::new`] and reused.

/// Planar layouts the sources can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    /// Y plane, then U plane, then V plane (each chroma plane w/2 × h/2).
    I420,
    /// Y plane, then one interleaved UV plane (w × h/2).
    Nv12,
}

/// Why a frame could not be created or used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Width or height is zero or odd.
    BadDimensions { width: u32, height: u32 },
    /// The frame's geometry or format differs from what the consumer expects.
    Mismatch {
        expected: (u32, u32, PixelFormat),
        got: (u32, u32, PixelFormat),
    },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadDimensions { width, height } => {
                write!(f, "{width}x{height}: dimensions must be even and non-zero")
            }
            Self::Mismatch { expected, got } => write!(f, "expected {expected:?}, got {got:?}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// One picture plus its timing. Owned by the caller; sources write into it.
#[derive(Clone, Debug)]
pub struct Frame {
    width: u32,
    height: u32,
    format: PixelFormat,
    data: Vec<u8>,
    /// Presentation time in microseconds since the source's first frame.
    pub pts_us: u64,
    /// Monotonic frame counter of the source (the pattern's embedded number for synthetic frames).
    pub frame_number: u32,
}

impl Frame {
    /// Allocates a zeroed frame (the only allocation; reuse the frame afterwards).
    pub fn new(width: u32, height: u32, format: PixelFormat) -> Result<Self, FrameError> {
        if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(FrameError::BadDimensions { width, height });
        }
        let luma = width as usize * height as usize;
        Ok(Self {
            width,
            height,
            format,
            data: vec![0; luma + luma / 2],
            pts_us: 0,
            frame_number: 0,
        })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// Fails unless the frame has exactly this geometry and format.
    pub fn check(&self, width: u32, height: u32, format: PixelFormat) -> Result<(), FrameError> {
        if (self.width, self.height, self.format) == (width, height, format) {
            Ok(())
        } else {
            Err(FrameError::Mismatch {
                expected: (width, height, format),
                got: (self.width, self.height, self.format),
            })
        }
    }

    fn luma_len(&self) -> usize {
        self.width as usize * self.height as usize
    }

    /// The luma plane (stride = width).
    pub fn y(&self) -> &[u8] {
        &self.data[..self.luma_len()]
    }

    /// I420: the U plane; NV12: the interleaved UV plane (stride = width).
    pub fn u_or_uv(&self) -> &[u8] {
        let l = self.luma_len();
        match self.format {
            PixelFormat::I420 => &self.data[l..l + l / 4],
            PixelFormat::Nv12 => &self.data[l..],
        }
    }

    /// I420 only: the V plane. Empty for NV12.
    pub fn v(&self) -> &[u8] {
        let l = self.luma_len();
        match self.format {
            PixelFormat::I420 => &self.data[l + l / 4..],
            PixelFormat::Nv12 => &[],
        }
    }

    /// All planes at once, mutably: `(y, chroma)` where chroma is U‖V (I420) or UV (NV12).
    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8]) {
        let l = self.luma_len();
        self.data.split_at_mut(l)
    }

    /// The whole buffer (planes back to back).
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_odd_or_zero_sizes() {
        assert!(Frame::new(0, 2, PixelFormat::I420).is_err());
        assert!(Frame::new(3, 2, PixelFormat::I420).is_err());
        assert!(Frame::new(4, 5, PixelFormat::Nv12).is_err());
    }

    #[test]
    fn plane_sizes() {
        let f = Frame::new(8, 4, PixelFormat::I420).unwrap();
        assert_eq!((f.y().len(), f.u_or_uv().len(), f.v().len()), (32, 8, 8));
        let f = Frame::new(8, 4, PixelFormat::Nv12).unwrap();
        assert_eq!((f.y().len(), f.u_or_uv().len(), f.v().len()), (32, 16, 0));
        assert!(f.check(8, 4, PixelFormat::I420).is_err());
        assert!(f.check(8, 4, PixelFormat::Nv12).is_ok());
    }
}
