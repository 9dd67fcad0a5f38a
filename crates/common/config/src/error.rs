//! Configuration errors that point at the file, line and key.

use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// A configuration error. `Display` reads like `strahl.toml:12: video.fec_percent_min: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// The file could not be read.
    Io { file: String, error: String },
    /// A syntax error, an unknown key, a wrong type or value, or a broken cross-field rule.
    Invalid {
        file: String,
        /// 1-based; 0 when the position is unknown.
        line: usize,
        /// Dotted key path (`video.encoder`, `apps[0].name`); empty for syntax errors.
        key: String,
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { file, error } => write!(f, "{file}: {error}"),
            Self::Invalid {
                file,
                line,
                key,
                message,
            } => {
                write!(f, "{file}:{line}: ")?;
                if !key.is_empty() {
                    write!(f, "{key}: ")?;
                }
                write!(f, "{message}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// Wraps a toml/serde error; `path` is the serde path to the failing value (may be empty).
    pub(crate) fn from_toml(file: &str, src: &str, path: &str, e: toml::de::Error) -> Self {
        let message = e.message().trim().to_owned();
        let mut key = if path == "." {
            String::new()
        } else {
            path.to_owned()
        };
        // serde reports an unknown field at its parent's path; name the field itself.
        if let Some(field) = unknown_field_name(&message) {
            let parent_is_field = key.rsplit('.').next().is_some_and(|last| last == field);
            if !parent_is_field {
                key = if key.is_empty() {
                    field.to_owned()
                } else {
                    format!("{key}.{field}")
                };
            }
        }
        let line = e
            .span()
            .map(|s| line_of(src, s.start))
            .or_else(|| locate(src, &key).map(|s| line_of(src, s.start)))
            .unwrap_or(0);
        Self::Invalid {
            file: file.to_owned(),
            line,
            key,
            message,
        }
    }

    /// An error found after parsing, at a dotted key whose line is looked up in `src`.
    pub(crate) fn at_key(file: &str, src: &str, key: &str, message: String) -> Self {
        let line = locate(src, key).map(|s| line_of(src, s.start)).unwrap_or(0);
        Self::Invalid {
            file: file.to_owned(),
            line,
            key: key.to_owned(),
            message,
        }
    }

    /// The 1-based line, if this is an `Invalid` error with a known position.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Invalid { line, .. } if *line > 0 => Some(*line),
            _ => None,
        }
    }

    /// The dotted key, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Invalid { key, .. } if !key.is_empty() => Some(key),
            _ => None,
        }
    }
}

fn unknown_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

fn line_of(src: &str, offset: usize) -> usize {
    let end = offset.min(src.len());
    src.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Span of the value (or, for a missing one, of the nearest existing parent) at a dotted path
/// such as `video.fec_percent_min` or `apps[1].name`.
fn locate(src: &str, key: &str) -> Option<Range<usize>> {
    let root = DeTable::parse(src).ok()?;
    let mut table: &DeTable<'_> = root.get_ref();
    let mut best = None;
    for seg in key.split('.').filter(|s| !s.is_empty()) {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        let Some((k, v)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name) else {
            return best;
        };
        best = Some(k.span());
        let mut value = v;
        if let Some(i) = index {
            match value.get_ref() {
                DeValue::Array(a) => {
                    value = a.get(i)?;
                    best = Some(value.span());
                }
                _ => return best,
            }
        }
        match value.get_ref() {
            DeValue::Table(t) => table = t,
            _ => return best,
        }
    }
    best
}
