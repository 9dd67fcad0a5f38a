//! The nvhttp query-string parser (reference §A3, §B4, §B5).
//!
//! Contract: `Query::parse` accepts what Moonlight and Sunshine-era clients send — empty pairs
//! (`&&corever=1`), keys in any case (compared ASCII-case-insensitively), hex in any case,
//! `%XX` escapes and `+` in values — and rejects everything else with a typed `QueryError`.
//! It never panics and its memory is bounded by `MAX_QUERY_LEN` and `MAX_PAIRS`.
//! Duplicate keys: the first occurrence wins (Sunshine's lookup does the same).

use std::fmt;

/// Longest accepted query string. The largest legitimate one is pairing stage 1: a PEM
/// client certificate (≈ 1.1 KiB for RSA-2048, up to ≈ 2.2 KiB for RSA-4096) sent as hex,
/// so ≈ 4.5 KiB; 16 KiB leaves room without letting a peer make us buffer much.
pub const MAX_QUERY_LEN: usize = 16 * 1024;
/// Most `key=value` pairs accepted. Moonlight's /launch sends 13; 64 is generous.
pub const MAX_PAIRS: usize = 64;
/// Longest accepted key. The longest known key is `remoteControllersBitmap` (23).
pub const MAX_KEY_LEN: usize = 64;

/// Why a query (or one of its values) was rejected. Always the peer's fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    TooLong {
        len: usize,
    },
    TooManyPairs,
    /// A key is empty, too long or has characters outside `[A-Za-z0-9_.-]`.
    BadKey,
    /// A value contains a malformed `%` escape or decodes to invalid UTF-8.
    BadEscape,
    /// A required parameter is absent.
    Missing(&'static str),
    /// A parameter is present but malformed.
    Invalid {
        key: &'static str,
        reason: &'static str,
    },
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::TooLong { len } => {
                write!(f, "query too long ({len} > {MAX_QUERY_LEN} bytes)")
            }
            QueryError::TooManyPairs => write!(f, "more than {MAX_PAIRS} query parameters"),
            QueryError::BadKey => f.write_str("malformed query key"),
            QueryError::BadEscape => f.write_str("malformed percent escape in query value"),
            QueryError::Missing(k) => write!(f, "missing parameter {k}"),
            QueryError::Invalid { key, reason } => write!(f, "invalid parameter {key}: {reason}"),
        }
    }
}

impl std::error::Error for QueryError {}

/// A parsed query: keys lower-cased, values decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

fn key_ok(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= MAX_KEY_LEN
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn percent_decode(v: &str) -> Result<String, QueryError> {
    if !v.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(v.to_owned());
    }
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes
                    .get(i + 1)
                    .copied()
                    .and_then(hex_val)
                    .ok_or(QueryError::BadEscape)?;
                let lo = bytes
                    .get(i + 2)
                    .copied()
                    .and_then(hex_val)
                    .ok_or(QueryError::BadEscape)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| QueryError::BadEscape)
}

/// Decodes hex (either case). `None` for odd length or a non-hex digit.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks_exact(2)
        .map(|p| Some(hex_val(p[0])? << 4 | hex_val(p[1])?))
        .collect()
}

/// Encodes bytes as lowercase hex (the form GameStream peers send and expect).
pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

impl Query {
    /// Parses the part of a URI after `?` (without the `?`). `None`/empty gives an empty query.
    pub fn parse(q: &str) -> Result<Self, QueryError> {
        if q.len() > MAX_QUERY_LEN {
            return Err(QueryError::TooLong { len: q.len() });
        }
        let mut pairs = Vec::new();
        for part in q.split('&') {
            if part.is_empty() {
                continue; // `&&corever=1` (§B5)
            }
            if pairs.len() == MAX_PAIRS {
                return Err(QueryError::TooManyPairs);
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            if !key_ok(k) {
                return Err(QueryError::BadKey);
            }
            pairs.push((k.to_ascii_lowercase(), percent_decode(v)?));
        }
        Ok(Query { pairs })
    }

    /// The value of `key` (matched case-insensitively), first occurrence.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Whether `key` is present.
    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Required string value.
    pub fn require(&self, key: &'static str) -> Result<&str, QueryError> {
        self.get(key).ok_or(QueryError::Missing(key))
    }

    /// Required hex value of exactly `len` bytes (`None` = any length up to the query bound).
    pub fn hex(&self, key: &'static str, len: Option<usize>) -> Result<Vec<u8>, QueryError> {
        let bytes = decode_hex(self.require(key)?).ok_or(QueryError::Invalid {
            key,
            reason: "not hex",
        })?;
        match len {
            Some(n) if bytes.len() != n => Err(QueryError::Invalid {
                key,
                reason: "wrong length",
            }),
            _ => Ok(bytes),
        }
    }

    /// Optional unsigned decimal.
    pub fn opt_u32(&self, key: &'static str) -> Result<Option<u32>, QueryError> {
        self.get(key)
            .map(|v| {
                v.parse::<u32>().map_err(|_| QueryError::Invalid {
                    key,
                    reason: "not an unsigned integer",
                })
            })
            .transpose()
    }

    /// Required unsigned decimal.
    pub fn u32(&self, key: &'static str) -> Result<u32, QueryError> {
        self.opt_u32(key)?.ok_or(QueryError::Missing(key))
    }

    /// Required 32-bit value sent as *signed* decimal (`rikeyid`, §A7): returns its u32 bit
    /// pattern. Unsigned spellings up to `u32::MAX` are accepted too, as some clients send them.
    pub fn i32_bits(&self, key: &'static str) -> Result<u32, QueryError> {
        let v = self.require(key)?;
        let n: i64 = v.parse().map_err(|_| QueryError::Invalid {
            key,
            reason: "not an integer",
        })?;
        if n < i64::from(i32::MIN) || n > i64::from(u32::MAX) {
            return Err(QueryError::Invalid {
                key,
                reason: "out of 32-bit range",
            });
        }
        // Truncating to the low 32 bits is exactly the two's-complement pattern for negatives
        // and the identity for 0..=u32::MAX.
        Ok(n as u32)
    }

    /// Number of non-empty pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether the query has no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moonlight_launch_query() {
        let q = Query::parse(
            "uniqueid=0123456789ABCDEF&uuid=00112233445566778899aabbccddeeff&appid=1&mode=1280x720x60\
             &additionalStates=1&sops=1&rikey=000102030405060708090A0B0C0D0E0F&rikeyid=-556323120\
             &localAudioPlayMode=0&surroundAudioInfo=196610&remoteControllersBitmap=0&gcmap=0&gcpersist=0&&corever=1",
        )
        .unwrap();
        assert_eq!(q.get("UNIQUEID"), Some("0123456789ABCDEF"));
        assert_eq!(q.get("additionalstates"), Some("1"));
        assert_eq!(q.u32("corever").unwrap(), 1);
        assert_eq!(
            q.hex("rikey", Some(16)).unwrap(),
            (0..16).collect::<Vec<u8>>()
        );
        assert_eq!(q.i32_bits("rikeyid").unwrap(), (-556323120i32) as u32);
        assert_eq!(q.u32("surroundaudioinfo").unwrap(), 196610);
        assert_eq!(q.len(), 14);
    }

    #[test]
    fn signed_and_unsigned_rikeyid() {
        let q = Query::parse("a=-1&b=4294967295&c=-2147483648&d=-2147483649&e=4294967296&f=12x")
            .unwrap();
        assert_eq!(q.i32_bits("a").unwrap(), u32::MAX);
        assert_eq!(q.i32_bits("b").unwrap(), u32::MAX);
        assert_eq!(q.i32_bits("c").unwrap(), 0x8000_0000);
        assert!(q.i32_bits("d").is_err());
        assert!(q.i32_bits("e").is_err());
        assert!(q.i32_bits("f").is_err());
        assert_eq!(q.i32_bits("g"), Err(QueryError::Missing("g")));
        for n in [0i32, 1, 7, i32::MAX, -7, i32::MIN + 1] {
            let q = Query::parse(&format!("k={n}")).unwrap();
            assert_eq!(q.i32_bits("k").unwrap(), n as u32);
        }
    }

    #[test]
    fn hostile_inputs_are_typed_errors() {
        assert_eq!(Query::parse("a=%zz"), Err(QueryError::BadEscape));
        assert_eq!(Query::parse("a=%4"), Err(QueryError::BadEscape));
        assert_eq!(Query::parse("a=%ff"), Err(QueryError::BadEscape));
        assert_eq!(Query::parse("=1"), Err(QueryError::BadKey));
        assert_eq!(Query::parse("a b=1"), Err(QueryError::BadKey));
        assert!(matches!(
            Query::parse(&"a".repeat(MAX_QUERY_LEN + 1)),
            Err(QueryError::TooLong { .. })
        ));
        assert_eq!(
            Query::parse(&"a=1&".repeat(MAX_PAIRS + 1)),
            Err(QueryError::TooManyPairs)
        );
        let q = Query::parse("x=abc&y=0g&name=my%20pc+1").unwrap();
        assert!(q.hex("x", None).is_err());
        assert!(q.hex("y", None).is_err());
        assert_eq!(q.get("name"), Some("my pc 1"));
        assert!(Query::parse("").unwrap().is_empty());
        assert!(Query::parse("&&&").unwrap().is_empty());
    }

    #[test]
    fn hex_round_trip() {
        let b: Vec<u8> = (0..=255).collect();
        assert_eq!(decode_hex(&encode_hex(&b)).unwrap(), b);
        assert_eq!(decode_hex("ABcd").unwrap(), [0xab, 0xcd]);
    }

    #[test]
    fn first_duplicate_wins() {
        let q = Query::parse("A=1&a=2").unwrap();
        assert_eq!(q.get("a"), Some("1"));
    }
}
