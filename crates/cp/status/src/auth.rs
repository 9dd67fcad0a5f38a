//! Authentication state for mutations: the web password (argon2id PHC string in the state dir),
//! the admin bearer token (generated at first start), the first-start setup code (while no
//! password is set, see [`crate::setup`]), browser sessions with CSRF tokens, and the login rate
//! limiter (which also counts wrong setup codes).
//!
//! Contract: time comes in as `now` (no clock inside), so expiry and rate limiting are tested
//! with simulated time. Secrets are compared in constant time. Files are written atomically
//! with mode 0600. A corrupt password file or token file is an error at open, never silently
//! replaced (that would hand the appliance to whoever reaches the page first).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::setup::{SETUP_CODE_FILE, SetupCode};
use strahl_statefile::write_atomic;

/// File holding the argon2id hash of the web password.
pub const PASSWORD_FILE: &str = "status-password";
/// File holding the admin bearer token (hex).
pub const TOKEN_FILE: &str = "status-token";
/// Mode of both files: owner read/write only.
pub const SECRET_FILE_MODE: u32 = 0o600;
/// Random bytes in the admin token, session ids and CSRF tokens (256 bits: unguessable).
pub const SECRET_BYTES: usize = 32;
/// Shortest accepted web password.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest accepted web password (bounds the argon2 input and the request body).
pub const MAX_PASSWORD_LEN: usize = 256;
/// A browser session lives this long after login (a working day at the appliance).
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// At most this many live browser sessions; the oldest is evicted beyond it.
pub const MAX_SESSIONS: usize = 64;
/// Failed logins allowed per client IP within [`LOGIN_WINDOW`] before further attempts are
/// refused (429) until the window ends. With argon2's ~20 ms per guess this keeps an online
/// attacker to 5 guesses a minute per address.
pub const LOGIN_MAX_FAILURES_PER_IP: u32 = 5;
/// Failed logins allowed across all addresses within [`LOGIN_WINDOW`] (stops a guesser that
/// rotates source addresses; an operator locked out waits one window).
pub const LOGIN_MAX_FAILURES_GLOBAL: u32 = 50;
/// The rate-limit window.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked by the limiter (bounded memory); when full, expired entries are dropped
/// and, if none are, the global limit alone applies to new addresses.
pub const LOGIN_TRACKED_IPS: usize = 1024;

#[derive(Debug)]
pub enum AuthError {
    Io(PathBuf, std::io::Error),
    Corrupt(PathBuf, String),
    Random(String),
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            AuthError::Corrupt(p, m) => write!(f, "{}: corrupt: {m}", p.display()),
            AuthError::Random(m) => write!(f, "random source: {m}"),
        }
    }
}

impl std::error::Error for AuthError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    NoPassword,
    Wrong,
    RateLimited { retry_after: Duration },
}

/// Why a first-start password request's setup code was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupCodeError {
    /// No code in the request (not counted as a guess).
    Missing,
    /// Not the code (counted in the login limiter).
    Wrong,
    RateLimited {
        retry_after: Duration,
    },
    /// A password is set: there is no setup code any more.
    PasswordSet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordError {
    TooShort,
    TooLong,
    Hash(String),
    Io(String),
}

/// Random hex string of [`SECRET_BYTES`] bytes from the OS.
pub fn random_hex() -> Result<String, AuthError> {
    let mut b = [0u8; SECRET_BYTES];
    getrandom::fill(&mut b).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(hex(&b))
}

fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(D[(x >> 4) as usize] as char);
        s.push(D[(x & 15) as usize] as char);
    }
    s
}

/// Loads the setup code from `state_dir`, or draws one and stores it (atomic, 0600) if there is
/// none. A file that does not hold a code is [`AuthError::Corrupt`] (left for the operator).
fn load_or_create_setup_code(state_dir: &Path) -> Result<SetupCode, AuthError> {
    let path = state_dir.join(SETUP_CODE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => SetupCode::parse(text.trim()).ok_or_else(|| {
            AuthError::Corrupt(
                path,
                "expected a setup code like ABCD-EF12 (remove the file to draw a new one)".into(),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let code = SetupCode::generate().map_err(|e| AuthError::Random(e.to_string()))?;
            write_atomic(&path, format!("{code}\n").as_bytes(), SECRET_FILE_MODE)
                .map_err(|e| AuthError::Io(path.clone(), e))?;
            Ok(code)
        }
        Err(e) => Err(AuthError::Io(path, e)),
    }
}

/// Removes the stored setup code (used, or stale because a password is set); a file already
/// gone is fine.
fn remove_setup_code(state_dir: &Path) -> Result<(), AuthError> {
    let path = state_dir.join(SETUP_CODE_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(AuthError::Io(path, e)),
    }
}

/// Constant-time equality (length is not secret: all our secrets have a fixed length).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Hashes `password` with argon2id (the crate's default parameters: m=19 MiB, t=2, p=1, the
/// OWASP-recommended minimum) and a fresh 16-byte salt.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Verifies `password` against a PHC string produced by [`hash_password`].
pub fn verify_password(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

#[derive(Debug, Clone)]
struct Session {
    csrf: String,
    created: Instant,
}

/// A logged-in browser session as returned by [`AuthState::login`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub id: String,
    pub csrf: String,
}

/// Per-address and global failed-login counters over fixed windows.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    per_ip: HashMap<IpAddr, (Instant, u32)>,
    global: Option<(Instant, u32)>,
}

impl LoginLimiter {
    /// `Err(retry_after)` if a login attempt from `ip` must be refused now.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let blocked = |w: Option<&(Instant, u32)>, max: u32| -> Option<Duration> {
            let (start, n) = w?;
            let end = *start + LOGIN_WINDOW;
            (now < end && *n >= max).then(|| end - now)
        };
        if let Some(d) = blocked(self.global.as_ref(), LOGIN_MAX_FAILURES_GLOBAL) {
            return Err(d);
        }
        if let Some(d) = blocked(self.per_ip.get(&ip), LOGIN_MAX_FAILURES_PER_IP) {
            return Err(d);
        }
        Ok(())
    }

    pub fn record_failure(&mut self, ip: IpAddr, now: Instant) {
        let bump = |w: &mut (Instant, u32)| {
            if now >= w.0 + LOGIN_WINDOW {
                *w = (now, 0);
            }
            w.1 = w.1.saturating_add(1);
        };
        bump(self.global.get_or_insert((now, 0)));
        if !self.per_ip.contains_key(&ip) && self.per_ip.len() >= LOGIN_TRACKED_IPS {
            self.per_ip
                .retain(|_, (start, _)| now < *start + LOGIN_WINDOW);
            if self.per_ip.len() >= LOGIN_TRACKED_IPS {
                return; // bounded memory: the global counter still applies
            }
        }
        bump(self.per_ip.entry(ip).or_insert((now, 0)));
    }

    pub fn record_success(&mut self, ip: IpAddr) {
        self.per_ip.remove(&ip);
    }
}

/// Everything the server needs to decide who may mutate.
#[derive(Debug)]
pub struct AuthState {
    dir: PathBuf,
    password_hash: Option<String>,
    /// `Some` exactly while no password is set.
    setup_code: Option<SetupCode>,
    token: String,
    sessions: HashMap<String, Session>,
    pub limiter: LoginLimiter,
}

impl AuthState {
    /// Loads (or, at first start, creates) the admin token and loads the password hash if set;
    /// without a password, loads (or creates) the setup code; with one, removes a code left over
    /// (a password set by the CLI while the server was stopped, or a crash after storing it).
    pub fn open(state_dir: &Path) -> Result<AuthState, AuthError> {
        std::fs::create_dir_all(state_dir).map_err(|e| AuthError::Io(state_dir.into(), e))?;
        let token_path = state_dir.join(TOKEN_FILE);
        let token = match std::fs::read_to_string(&token_path) {
            Ok(t) => {
                let t = t.trim().to_string();
                if t.len() != SECRET_BYTES * 2 || !t.bytes().all(|c| c.is_ascii_hexdigit()) {
                    return Err(AuthError::Corrupt(
                        token_path,
                        "expected 64 hex digits".into(),
                    ));
                }
                t
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let t = random_hex()?;
                write_atomic(&token_path, format!("{t}\n").as_bytes(), SECRET_FILE_MODE)
                    .map_err(|e| AuthError::Io(token_path.clone(), e))?;
                tracing::info!(path = %token_path.display(), "status: generated admin token");
                t
            }
            Err(e) => return Err(AuthError::Io(token_path, e)),
        };
        let pw_path = state_dir.join(PASSWORD_FILE);
        let password_hash = match std::fs::read_to_string(&pw_path) {
            Ok(h) => {
                let h = h.trim().to_string();
                PasswordHash::new(&h)
                    .map_err(|e| AuthError::Corrupt(pw_path.clone(), e.to_string()))?;
                Some(h)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(AuthError::Io(pw_path, e)),
        };
        let setup_code = match password_hash {
            None => Some(load_or_create_setup_code(state_dir)?),
            Some(_) => {
                remove_setup_code(state_dir)?;
                None
            }
        };
        Ok(AuthState {
            dir: state_dir.into(),
            password_hash,
            setup_code,
            token,
            sessions: HashMap::new(),
            limiter: LoginLimiter::default(),
        })
    }

    pub fn password_set(&self) -> bool {
        self.password_hash.is_some()
    }

    pub fn password_hash(&self) -> Option<&str> {
        self.password_hash.as_deref()
    }

    /// The code a first-start password request must present; `None` once a password is set.
    pub fn setup_code(&self) -> Option<&SetupCode> {
        self.setup_code.as_ref()
    }

    /// Checks a first-start request's setup code from `ip` at `now`. Wrong codes count as failed
    /// logins (per address and globally); once the limit is reached every attempt is refused
    /// unchecked until the window ends. Success does not consume the code: storing the password
    /// does ([`AuthState::store_password_hash`]), so a request that fails after this check
    /// (a short password, a write error) leaves the code usable.
    pub fn check_setup_code(
        &mut self,
        ip: IpAddr,
        presented: Option<&str>,
        now: Instant,
    ) -> Result<(), SetupCodeError> {
        if let Err(retry_after) = self.limiter.check(ip, now) {
            return Err(SetupCodeError::RateLimited { retry_after });
        }
        let Some(code) = &self.setup_code else {
            return Err(SetupCodeError::PasswordSet);
        };
        let presented = presented.map(str::trim).unwrap_or("");
        if presented.is_empty() {
            return Err(SetupCodeError::Missing);
        }
        // Constant time in the code's characters; what cannot be a code at all is simply wrong.
        let right =
            SetupCode::parse(presented).is_some_and(|p| ct_eq(p.as_bytes(), code.as_bytes()));
        if !right {
            self.limiter.record_failure(ip, now);
            return Err(SetupCodeError::Wrong);
        }
        self.limiter.record_success(ip);
        Ok(())
    }

    pub fn token_matches(&self, presented: &str) -> bool {
        ct_eq(presented.as_bytes(), self.token.as_bytes())
    }

    /// Validates a new password (length) before the caller hashes it off the async threads.
    pub fn check_new_password(password: &str) -> Result<(), PasswordError> {
        let n = password.chars().count();
        if n < MIN_PASSWORD_LEN {
            return Err(PasswordError::TooShort);
        }
        if password.len() > MAX_PASSWORD_LEN {
            return Err(PasswordError::TooLong);
        }
        Ok(())
    }

    /// Stores a new hash (atomic, 0600), ends every browser session and consumes the setup
    /// code (its file removed; should that fail, the next start removes it, as a password is
    /// set by then).
    pub fn store_password_hash(&mut self, phc: String) -> Result<(), PasswordError> {
        let path = self.dir.join(PASSWORD_FILE);
        write_atomic(&path, format!("{phc}\n").as_bytes(), SECRET_FILE_MODE)
            .map_err(|e| PasswordError::Io(format!("{}: {e}", path.display())))?;
        self.password_hash = Some(phc);
        self.sessions.clear();
        if self.setup_code.take().is_some()
            && let Err(e) = remove_setup_code(&self.dir)
        {
            tracing::warn!(error = %e, "status: used setup code not removed (removed at next start)");
        }
        Ok(())
    }

    /// Creates a session after the caller verified the password.
    pub fn new_session(&mut self, now: Instant) -> Result<NewSession, AuthError> {
        self.sessions
            .retain(|_, s| now.saturating_duration_since(s.created) < SESSION_TTL);
        if self.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone())
        {
            self.sessions.remove(&oldest);
        }
        let id = random_hex()?;
        let csrf = random_hex()?;
        self.sessions.insert(
            id.clone(),
            Session {
                csrf: csrf.clone(),
                created: now,
            },
        );
        Ok(NewSession { id, csrf })
    }

    /// The CSRF token of a live session, or `None` if the cookie names no live session.
    pub fn session_csrf(&self, id: &str, now: Instant) -> Option<&str> {
        // Lookup by hash map is not constant time in the id, but ids are 256-bit random values:
        // timing reveals nothing usable about an unknown id.
        let s = self.sessions.get(id)?;
        (now.saturating_duration_since(s.created) < SESSION_TTL).then_some(s.csrf.as_str())
    }

    pub fn end_session(&mut self, id: &str) {
        self.sessions.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_blocks_after_max_failures_and_recovers_after_window() {
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let mut l = LoginLimiter::default();
        for i in 0..LOGIN_MAX_FAILURES_PER_IP {
            assert!(l.check(ip, t0).is_ok(), "attempt {i} refused too early");
            l.record_failure(ip, t0);
        }
        let retry = l.check(ip, t0 + Duration::from_secs(1)).unwrap_err();
        assert_eq!(retry, LOGIN_WINDOW - Duration::from_secs(1));
        assert!(l.check(other, t0).is_ok(), "another address is not limited");
        assert!(l.check(ip, t0 + LOGIN_WINDOW).is_ok(), "window over");
    }

    #[test]
    fn global_limit_applies_across_addresses() {
        let t0 = Instant::now();
        let mut l = LoginLimiter::default();
        for i in 0..LOGIN_MAX_FAILURES_GLOBAL {
            let ip = IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]);
            l.record_failure(ip, t0);
        }
        assert!(l.check("10.9.9.9".parse().unwrap(), t0).is_err());
    }

    #[test]
    fn limiter_memory_is_bounded() {
        let t0 = Instant::now();
        let mut l = LoginLimiter::default();
        for i in 0..(LOGIN_TRACKED_IPS as u32 + 100) {
            l.record_failure(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert!(l.per_ip.len() <= LOGIN_TRACKED_IPS);
    }

    proptest::proptest! {
        /// Whatever the timing and interleaving of addresses, an address gets at most
        /// 2 × LOGIN_MAX_FAILURES_PER_IP attempts in any LOGIN_WINDOW (fixed windows allow one
        /// burst at a window boundary), and the limiter never blocks an address with no
        /// failures while the global budget has room.
        #[test]
        fn limiter_bounds_attempts_in_any_window(steps in proptest::collection::vec((0u8..3, 0u64..20_000), 1..200)) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut l = LoginLimiter::default();
            let mut allowed: Vec<(u8, Instant)> = Vec::new();
            for (who, dt_ms) in steps {
                now += Duration::from_millis(dt_ms);
                let ip = IpAddr::from([192, 0, 2, who]);
                if l.check(ip, now).is_ok() {
                    l.record_failure(ip, now);
                    allowed.push((who, now));
                }
            }
            for (i, (who, t)) in allowed.iter().enumerate() {
                let in_window = allowed[i..]
                    .iter()
                    .filter(|(w, u)| w == who && *u < *t + LOGIN_WINDOW)
                    .count();
                proptest::prop_assert!(in_window as u32 <= 2 * LOGIN_MAX_FAILURES_PER_IP);
            }
        }
    }

    #[test]
    fn sessions_expire_and_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = AuthState::open(dir.path()).unwrap();
        let t0 = Instant::now();
        let s = a.new_session(t0).unwrap();
        assert_eq!(a.session_csrf(&s.id, t0), Some(s.csrf.as_str()));
        assert_eq!(a.session_csrf(&s.id, t0 + SESSION_TTL), None);
        for _ in 0..MAX_SESSIONS + 5 {
            a.new_session(t0).unwrap();
        }
        assert!(a.sessions.len() <= MAX_SESSIONS);
    }

    #[test]
    fn corrupt_token_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(TOKEN_FILE), "nothex").unwrap();
        assert!(matches!(
            AuthState::open(dir.path()),
            Err(AuthError::Corrupt(..))
        ));
    }

    fn wrong_code_for(c: &SetupCode) -> String {
        // Same length and alphabet, one character different.
        let s = c.to_string();
        let last = if s.ends_with('0') { "1" } else { "0" };
        format!("{}{last}", &s[..s.len() - 1])
    }

    #[test]
    fn setup_code_is_single_use_and_persists_until_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let t0 = Instant::now();
        let mut a = AuthState::open(dir.path()).unwrap();
        let code = a.setup_code().expect("a code at first start").clone();
        let path = dir.path().join(SETUP_CODE_FILE);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{code}\n"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A restart before use shows the same code.
        let b = AuthState::open(dir.path()).unwrap();
        assert_eq!(b.setup_code(), Some(&code));
        drop(b);
        assert_eq!(
            a.check_setup_code(ip, None, t0),
            Err(SetupCodeError::Missing)
        );
        assert_eq!(
            a.check_setup_code(ip, Some("  "), t0),
            Err(SetupCodeError::Missing)
        );
        assert_eq!(
            a.check_setup_code(ip, Some(&wrong_code_for(&code)), t0),
            Err(SetupCodeError::Wrong)
        );
        let typed = code.to_string().to_lowercase().replace('-', " ");
        assert_eq!(a.check_setup_code(ip, Some(&typed), t0), Ok(()));
        // Checking does not consume it; storing the password does.
        assert_eq!(a.check_setup_code(ip, Some(&typed), t0), Ok(()));
        a.store_password_hash(hash_password("first password").unwrap())
            .unwrap();
        assert!(a.setup_code().is_none());
        assert!(!dir.path().join(SETUP_CODE_FILE).exists());
        assert_eq!(
            a.check_setup_code(ip, Some(&typed), t0),
            Err(SetupCodeError::PasswordSet),
            "used once"
        );
        // And it stays used across a restart.
        let c = AuthState::open(dir.path()).unwrap();
        assert!(c.setup_code().is_none());
        assert!(!dir.path().join(SETUP_CODE_FILE).exists());
    }

    #[test]
    fn wrong_setup_codes_are_rate_limited_per_address_and_globally() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = AuthState::open(dir.path()).unwrap();
        let code = a.setup_code().unwrap().clone();
        let wrong = wrong_code_for(&code);
        let right = code.to_string();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..LOGIN_MAX_FAILURES_PER_IP {
            assert_eq!(
                a.check_setup_code(ip, Some(&wrong), t0),
                Err(SetupCodeError::Wrong),
                "attempt {i}"
            );
        }
        // Limited now: even the right code is refused unchecked, a missing one too.
        let t1 = t0 + Duration::from_secs(10);
        for presented in [Some(right.as_str()), Some(wrong.as_str()), None] {
            assert_eq!(
                a.check_setup_code(ip, presented, t1),
                Err(SetupCodeError::RateLimited {
                    retry_after: LOGIN_WINDOW - Duration::from_secs(10)
                })
            );
        }
        // Another address is not limited by this one; the window's end frees this one.
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(a.check_setup_code(other, Some(&right), t1), Ok(()));
        assert_eq!(
            a.check_setup_code(ip, Some(&right), t0 + LOGIN_WINDOW),
            Ok(())
        );
        // Guesses from many addresses hit the global limit, which holds for everyone.
        let t2 = t0 + 3 * LOGIN_WINDOW;
        for i in 0..LOGIN_MAX_FAILURES_GLOBAL {
            let ip = IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]);
            assert_eq!(
                a.check_setup_code(ip, Some(&wrong), t2),
                Err(SetupCodeError::Wrong)
            );
        }
        assert!(matches!(
            a.check_setup_code("10.9.9.9".parse().unwrap(), Some(&right), t2),
            Err(SetupCodeError::RateLimited { .. })
        ));
        // Failed setup codes and failed logins share the limiter.
        let t3 = t2 + LOGIN_WINDOW;
        for _ in 0..LOGIN_MAX_FAILURES_PER_IP {
            a.limiter.record_failure(ip, t3);
        }
        assert!(matches!(
            a.check_setup_code(ip, Some(&right), t3),
            Err(SetupCodeError::RateLimited { .. })
        ));
    }

    #[test]
    fn corrupt_setup_code_file_is_an_error_and_a_stale_one_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SETUP_CODE_FILE);
        for junk in ["XXXX\n", "garbage!\n", "", "ABCD-EFGH-JKMN\n"] {
            std::fs::write(&path, junk).unwrap();
            let e = AuthState::open(dir.path()).unwrap_err();
            assert!(matches!(e, AuthError::Corrupt(..)), "{junk:?}: {e}");
            assert!(e.to_string().contains(SETUP_CODE_FILE), "{e}");
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                junk,
                "left as it was"
            );
        }
        // With a password set (e.g. by the CLI while serve was stopped), a left-over code is
        // removed at open whatever it holds.
        std::fs::write(
            dir.path().join(PASSWORD_FILE),
            hash_password("set offline").unwrap(),
        )
        .unwrap();
        let a = AuthState::open(dir.path()).unwrap();
        assert!(a.setup_code().is_none());
        assert!(!dir.path().join(SETUP_CODE_FILE).exists());
    }

    #[test]
    fn token_persists_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        let a = AuthState::open(dir.path()).unwrap();
        let b = AuthState::open(dir.path()).unwrap();
        assert_eq!(a.token, b.token);
        assert!(!a.token_matches(&"0".repeat(64)));
        assert!(a.token_matches(&b.token));
    }
}
