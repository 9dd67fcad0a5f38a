//! Passthrough source: replays a pre-encoded Annex-B H.264 stream, one access unit per call,
//! looping forever. Used to drive the packetizers and a real Moonlight client without an
//! encoder in the loop.
//!
//! The whole file is read once (bounded by [`MAX_STREAM_BYTES`]) and split into AU ranges at
//! open time; `next_au` then hands out borrowed slices (no copy, no allocation). Playback starts
//! at the first IDR AU (SPS first, [`annexb::is_idr_au`]) and every loop restarts there, so the
//! decoder always (re)starts on an IDR.

use std::ops::Range;
use std::path::Path;

use crate::CaptureError;
use crate::annexb::{access_unit_ranges, is_idr_au};

/// Refuse larger files: the stream is held in memory (256 MiB ≈ 35 min at 1 Mbit/s, or ~20 s
/// of 100 Mbit/s video — plenty for a test loop).
pub const MAX_STREAM_BYTES: u64 = 256 << 20;

/// One access unit handed out by [`PassthroughSource::next_au`].
#[derive(Clone, Copy, Debug)]
pub struct AccessUnit<'a> {
    /// Annex-B bytes of the AU (start codes included).
    pub data: &'a [u8],
    /// Index of the AU in the file.
    pub index: usize,
    /// Whether it is an IDR AU starting with SPS.
    pub idr: bool,
    /// Monotonic count of AUs handed out (frame number).
    pub sequence: u64,
}

/// Replays an Annex-B file.
#[derive(Debug)]
pub struct PassthroughSource {
    data: Vec<u8>,
    aus: Vec<Range<usize>>,
    idr: Vec<bool>,
    first_idr: usize,
    next: usize,
    sequence: u64,
}

impl PassthroughSource {
    /// Reads and indexes `path`.
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let len = std::fs::metadata(path).map_err(CaptureError::Io)?.len();
        if len > MAX_STREAM_BYTES {
            return Err(CaptureError::BadStream(format!(
                "{}: {len} bytes exceeds {MAX_STREAM_BYTES}",
                path.display()
            )));
        }
        Self::from_bytes(std::fs::read(path).map_err(CaptureError::Io)?)
    }

    /// Indexes an in-memory stream.
    pub fn from_bytes(data: Vec<u8>) -> Result<Self, CaptureError> {
        let aus = access_unit_ranges(&data);
        let idr: Vec<bool> = aus.iter().map(|r| is_idr_au(&data[r.clone()])).collect();
        let first_idr = idr.iter().position(|&b| b).ok_or_else(|| {
            CaptureError::BadStream(format!(
                "{} access units, none is an IDR starting with SPS",
                aus.len()
            ))
        })?;
        Ok(Self {
            data,
            aus,
            idr,
            first_idr,
            next: first_idr,
            sequence: 0,
        })
    }

    /// Number of AUs in the file.
    pub fn len(&self) -> usize {
        self.aus.len()
    }

    /// Always false (construction fails on a stream without AUs); for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        self.aus.is_empty()
    }

    /// The next AU, wrapping to the first IDR at the end of the file.
    pub fn next_au(&mut self) -> AccessUnit<'_> {
        if self.next >= self.aus.len() {
            self.next = self.first_idr;
        }
        let index = self.next;
        self.next += 1;
        let sequence = self.sequence;
        self.sequence += 1;
        AccessUnit {
            data: &self.data[self.aus[index].clone()],
            index,
            idr: self.idr[index],
            sequence,
        }
    }

    /// Makes the next `next_au` return an IDR: the next one in file order (wrapping).
    pub fn seek_to_next_idr(&mut self) {
        let n = self.aus.len();
        let from = if self.next >= n {
            self.first_idr
        } else {
            self.next
        };
        let found = (0..n).map(|k| (from + k) % n).find(|&i| self.idr[i]);
        self.next = found.unwrap_or(self.first_idr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nal(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 0, 1, 0x60 | kind];
        v.extend_from_slice(payload);
        v
    }

    fn stream() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend(nal(1, &[0x88])); // leading P slice without an IDR: skipped
        for _ in 0..2 {
            s.extend(nal(7, &[0x42]));
            s.extend(nal(8, &[0xce]));
            s.extend(nal(5, &[0x88]));
            s.extend(nal(1, &[0x9a]));
            s.extend(nal(1, &[0x9a]));
        }
        s
    }

    #[test]
    fn loops_from_first_idr_and_seeks() {
        let mut p = PassthroughSource::from_bytes(stream()).unwrap();
        assert_eq!(p.len(), 7);
        let mut seq = Vec::new();
        for _ in 0..8 {
            let a = p.next_au();
            seq.push((a.index, a.idr));
        }
        assert_eq!(
            seq,
            [
                (1, true),
                (2, false),
                (3, false),
                (4, true),
                (5, false),
                (6, false),
                (1, true),
                (2, false)
            ]
        );
        p.seek_to_next_idr();
        assert_eq!(p.next_au().index, 4);
        p.seek_to_next_idr();
        assert_eq!(p.next_au().index, 1);
    }

    #[test]
    fn rejects_stream_without_idr() {
        assert!(matches!(
            PassthroughSource::from_bytes(nal(1, &[0x88])),
            Err(CaptureError::BadStream(_))
        ));
        assert!(PassthroughSource::from_bytes(Vec::new()).is_err());
        let missing = PassthroughSource::open(Path::new("/nonexistent/strahl.h264"));
        assert!(matches!(missing, Err(CaptureError::Io(_))));
    }
}
