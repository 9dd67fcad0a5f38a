//! The first-start setup code: a one-time secret shown on the appliance's console (and in its
//! journal) that a browser must present before it may set the admin password, so the first
//! device on the LAN to reach the page cannot claim a fresh box.
//!
//! Contract: 8 Crockford base32 characters (40 bits from the OS), shown as `XXXX-XXXX`; typing
//! is forgiving (case, `-` and spaces ignored, `O`→`0`, `I`/`L`→`1`). This file is the code's
//! spelling only; [`crate::auth::AuthState`] keeps it: in the state dir ([`SETUP_CODE_FILE`],
//! atomic, 0600) while no password is set, so a restart shows the same one; a corrupt file is an
//! error at open, never silently replaced; compared in constant time; consumed when the password
//! is stored; wrong codes counted in the login limiter.

/// File holding the setup code while no password is set.
pub const SETUP_CODE_FILE: &str = "status-setup-code";
/// Characters in a setup code (5 bits each: 40 bits).
pub const SETUP_CODE_CHARS: usize = 8;
/// Crockford's base32 alphabet: no I, L, O, U (nothing to confuse on a console font).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A setup code in canonical form (upper-case alphabet characters, no separator).
#[derive(Clone, PartialEq, Eq)]
pub struct SetupCode([u8; SETUP_CODE_CHARS]);

impl std::fmt::Debug for SetupCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetupCode(..)") // a secret: never in debug output
    }
}

impl std::fmt::Display for SetupCode {
    /// `XXXX-XXXX`, as the console and the journal show it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b) = self.0.split_at(SETUP_CODE_CHARS / 2);
        let s = |x: &[u8]| String::from_utf8_lossy(x).into_owned();
        write!(f, "{}-{}", s(a), s(b))
    }
}

impl SetupCode {
    /// A fresh code from the OS random source.
    pub fn generate() -> Result<SetupCode, getrandom::Error> {
        let mut b = [0u8; 5];
        getrandom::fill(&mut b)?;
        Ok(SetupCode::from_bytes(b))
    }

    /// The code spelling these 40 bits (big-endian, 5 bits a character).
    pub fn from_bytes(b: [u8; 5]) -> SetupCode {
        let v = b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
        let mut out = [0u8; SETUP_CODE_CHARS];
        for (i, c) in out.iter_mut().enumerate() {
            *c = ALPHABET[((v >> (5 * (SETUP_CODE_CHARS - 1 - i))) & 31) as usize];
        }
        SetupCode(out)
    }

    /// Reads what a person typed: case, `-` and white space are ignored, and the letters
    /// Crockford maps (`O`→`0`, `I`/`L`→`1`) are accepted. `None` unless exactly 8 characters
    /// of the alphabet remain.
    pub fn parse(s: &str) -> Option<SetupCode> {
        let mut out = [0u8; SETUP_CODE_CHARS];
        let mut n = 0;
        for c in s.chars() {
            if c == '-' || c.is_whitespace() {
                continue;
            }
            let c = match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) || n == SETUP_CODE_CHARS {
                return None;
            }
            out[n] = c as u8;
            n += 1;
        }
        (n == SETUP_CODE_CHARS).then_some(SetupCode(out))
    }

    /// The canonical characters (for a constant-time comparison).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_8_characters_of_crockford_base32_with_40_bits() {
        assert_eq!(SetupCode::from_bytes([0; 5]).to_string(), "0000-0000");
        assert_eq!(SetupCode::from_bytes([0xff; 5]).to_string(), "ZZZZ-ZZZZ");
        // 0x0123456789 = 00000 00100 10001 10100 01010 11001 11100 01001
        assert_eq!(
            SetupCode::from_bytes([0x01, 0x23, 0x45, 0x67, 0x89]).to_string(),
            "04HM-ASW9"
        );
        let a = SetupCode::generate().unwrap();
        let b = SetupCode::generate().unwrap();
        assert_ne!(a, b, "40 random bits twice alike");
        assert_eq!(
            format!("{a:?}"),
            "SetupCode(..)",
            "Debug never shows the code"
        );
    }

    #[test]
    fn typing_is_forgiving_but_exact_in_substance() {
        let c = SetupCode::parse("04HM-AST9").unwrap();
        assert_eq!(c.as_bytes(), b"04HMAST9");
        for typed in [
            "04hm-ast9",
            "04HMAST9",
            " 04hm ast9 ",
            "O4HM-AST9",
            "04-HM-AS-T9",
        ] {
            assert_eq!(SetupCode::parse(typed).as_ref(), Some(&c), "{typed:?}");
        }
        assert_eq!(
            SetupCode::parse("IiLl-1111").unwrap().as_bytes(),
            b"11111111"
        );
        assert_ne!(SetupCode::parse("04HM-AST8").as_ref(), Some(&c));
        for unreadable in [
            "",
            "04HM-AST",
            "04HM-AST99",
            "04HM-ASTU",
            "04HM-AST9é",
            "04HM_AST9",
        ] {
            assert_eq!(SetupCode::parse(unreadable), None, "{unreadable:?}");
        }
    }

    proptest::proptest! {
        /// Every code reads back from its display form (and lower-case), and arbitrary input
        /// never panics the parser.
        #[test]
        fn display_round_trips(b in proptest::array::uniform5(0u8..), junk in "\\PC{0,40}") {
            let c = SetupCode::from_bytes(b);
            proptest::prop_assert_eq!(SetupCode::parse(&c.to_string()), Some(c.clone()));
            proptest::prop_assert_eq!(SetupCode::parse(&c.to_string().to_lowercase()), Some(c));
            let _ = SetupCode::parse(&junk);
        }
    }
}
