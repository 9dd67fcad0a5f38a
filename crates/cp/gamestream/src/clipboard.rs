//! The host clipboard behind Apollo's `/actions/clipboard` (frontier.md §1) and the control
//! stream's set-clipboard message: text only, bounded.
//!
//! Contract: one [`Clipboard`] per host, shared by every paired client (what one sets, another
//! with `clipboard-read` reads) and by the control plane (the control stream's 0x3001). Text is
//! UTF-8 of at most [`MAX_CLIPBOARD_BYTES`]; longer or non-text is refused (400), never cut.
//! Routes (HTTPS, paired, checked by `handlers` for the permission first):
//! `GET /actions/clipboard?type=text` → `text/plain` with the text (404 while empty);
//! `POST /actions/clipboard?type=text` with the text as body → XML status 200.
//! The clipboard is the host's own: nothing here reaches the desktop session's clipboard (the
//! appliance has no clipboard bridge yet).

use std::sync::Mutex;

use crate::handlers::Reply;
use crate::query::Query;
use crate::xml::XmlReply;

/// The route.
pub const PATH: &str = "/actions/clipboard";
/// Longest clipboard text accepted (bytes of UTF-8).
pub const MAX_CLIPBOARD_BYTES: usize = 64 * 1024;

/// Why a clipboard text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClipboardError {
    TooLong { len: usize },
    NotUtf8,
}

impl std::fmt::Display for ClipboardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClipboardError::TooLong { len } => write!(
                f,
                "clipboard text of {len} bytes is over the {MAX_CLIPBOARD_BYTES}-byte limit"
            ),
            ClipboardError::NotUtf8 => f.write_str("clipboard text is not UTF-8"),
        }
    }
}

impl std::error::Error for ClipboardError {}

/// The host clipboard.
#[derive(Debug, Default)]
pub struct Clipboard {
    text: Mutex<Option<String>>,
}

impl Clipboard {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the text (bytes as received; checked for size and UTF-8).
    pub fn set(&self, bytes: &[u8]) -> Result<(), ClipboardError> {
        if bytes.len() > MAX_CLIPBOARD_BYTES {
            return Err(ClipboardError::TooLong { len: bytes.len() });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| ClipboardError::NotUtf8)?;
        *self.text.lock().unwrap_or_else(|p| p.into_inner()) = Some(text.to_owned());
        Ok(())
    }

    /// The current text, if any was set.
    pub fn get(&self) -> Option<String> {
        self.text.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// One authorised request (see the module contract).
    pub(crate) fn handle(&self, q: &Query, post_body: Option<&[u8]>) -> Reply {
        if q.get("type").is_some_and(|t| t != "text") {
            return Reply::Xml(XmlReply::error(400, "Only type=text is supported"));
        }
        match post_body {
            Some(body) => match self.set(body) {
                Ok(()) => {
                    tracing::info!(bytes = body.len(), "clipboard set by a client");
                    Reply::Xml(XmlReply::new(200))
                }
                Err(e) => Reply::Xml(XmlReply::error(400, &e.to_string())),
            },
            None => match self.get() {
                Some(text) => Reply::Text(text),
                None => Reply::Xml(XmlReply::error(404, "The clipboard is empty")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_text_only() {
        let c = Clipboard::new();
        assert_eq!(c.get(), None);
        c.set("grüß".as_bytes()).unwrap();
        assert_eq!(c.get().as_deref(), Some("grüß"));
        let long = vec![b'a'; MAX_CLIPBOARD_BYTES + 1];
        assert_eq!(
            c.set(&long),
            Err(ClipboardError::TooLong {
                len: MAX_CLIPBOARD_BYTES + 1
            })
        );
        assert_eq!(c.set(&[0xff, 0xfe]), Err(ClipboardError::NotUtf8));
        // Refusals leave the text as it was.
        assert_eq!(c.get().as_deref(), Some("grüß"));
        c.set(&vec![b'b'; MAX_CLIPBOARD_BYTES]).unwrap();
    }
}
