//! The [`InputSink`] seam and the recording sink.
//!
//! The recording sink is what tests (and hosts without `/dev/uinput`) use: every applied
//! event is stored in order, readable through a cloned [`RecordingHandle`], and optionally
//! appended as one JSON object per line to a file so a test in another process can read it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::event::InputEvent;
use crate::held::HeldInput;

#[derive(Debug)]
pub enum SinkError {
    /// The backend does not exist on this machine (no `/dev/uinput`, no permission).
    NotAvailable(String),
    Io(std::io::Error),
}

impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkError::NotAvailable(why) => write!(f, "input backend not available: {why}"),
            SinkError::Io(e) => write!(f, "input backend i/o: {e}"),
        }
    }
}
impl std::error::Error for SinkError {}

impl From<std::io::Error> for SinkError {
    fn from(e: std::io::Error) -> Self {
        SinkError::Io(e)
    }
}

/// Where decoded client input goes. One sink per streaming session.
pub trait InputSink: Send {
    fn apply(&mut self, ev: &InputEvent) -> Result<(), SinkError>;
    /// Release every held key, button and gamepad input (session stop).
    fn release_all(&mut self) -> Result<(), SinkError>;
    /// A session starts: a sink with devices makes the ones every session uses, so that the
    /// desktop's readers have them open before the first input. Without devices: nothing.
    fn begin_session(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// The last session ended: return everything to rest and, where the sink has devices,
    /// remove them (the next input makes them again). Without devices: [`Self::release_all`].
    fn end_session(&mut self) -> Result<(), SinkError> {
        self.release_all()
    }
    /// Rumble changes the games asked for since the last call (for the client's 0x010b
    /// messages). Sinks without force feedback have none.
    fn poll_rumble(&mut self) -> Result<Vec<crate::rumble::Rumble>, SinkError> {
        Ok(Vec::new())
    }
}

/// Bound on stored events so a long session cannot grow memory without limit; past it the
/// oldest half is dropped (tests read far fewer).
pub const RECORDING_CAPACITY: usize = 1 << 16;

#[derive(Clone, Default)]
pub struct RecordingHandle(Arc<Mutex<Vec<InputEvent>>>);

impl RecordingHandle {
    pub fn events(&self) -> Vec<InputEvent> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

pub struct RecordingSink {
    events: RecordingHandle,
    file: Option<BufWriter<File>>,
    held: HeldInput,
}

impl RecordingSink {
    pub fn new() -> Self {
        RecordingSink {
            events: RecordingHandle::default(),
            file: None,
            held: HeldInput::default(),
        }
    }

    /// Also append JSON lines to `path` (created or truncated). Each line is flushed so a
    /// reader in another process sees events as they happen.
    pub fn with_json_lines(path: &Path) -> Result<Self, SinkError> {
        let mut s = Self::new();
        s.file = Some(BufWriter::new(File::create(path)?));
        Ok(s)
    }

    pub fn handle(&self) -> RecordingHandle {
        self.events.clone()
    }

    fn record(&mut self, ev: &InputEvent) -> Result<(), SinkError> {
        if let Ok(mut v) = self.events.0.lock() {
            if v.len() >= RECORDING_CAPACITY {
                v.drain(..RECORDING_CAPACITY / 2);
            }
            v.push(ev.clone());
        }
        if let Some(f) = &mut self.file {
            let line = serde_json::to_string(ev).map_err(std::io::Error::other)?;
            f.write_all(line.as_bytes())?;
            f.write_all(b"\n")?;
            f.flush()?;
        }
        Ok(())
    }
}

impl Default for RecordingSink {
    fn default() -> Self {
        Self::new()
    }
}

impl InputSink for RecordingSink {
    fn apply(&mut self, ev: &InputEvent) -> Result<(), SinkError> {
        self.held.observe(ev);
        self.record(ev)
    }

    fn release_all(&mut self) -> Result<(), SinkError> {
        for ev in self.held.releases() {
            self.record(&ev)?;
        }
        Ok(())
    }
}

/// Read a JSON-lines file written by [`RecordingSink::with_json_lines`].
pub fn read_json_lines(path: &Path) -> Result<Vec<InputEvent>, SinkError> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| SinkError::Io(std::io::Error::other(e))))
        .collect()
}
