//! The mDNS responder's sans-IO core (RFC 6762 / RFC 6763): a datagram, its source and `now`
//! in; at most one reply (bytes and where to send them) out.
//!
//! Contract:
//! - **Answers only.** The core never produces a query, a probe or an unsolicited announcement;
//!   a reply exists only for a received query that asks for one of our names. Responses from
//!   other hosts (QR set), non-zero opcodes or rcodes, and anything malformed are dropped
//!   silently (RFC 6762 §18).
//! - Our names: the service type `_nvstream._tcp.local.` (PTR), the instance
//!   `<instance>._nvstream._tcp.local.` (SRV, TXT) and the host `<host>.local.` (A, AAAA). A
//!   question of class IN or ANY for one of them, with a matching type or ANY, is answered; the
//!   records that complete the picture (SRV/TXT/addresses after a PTR, addresses after an SRV)
//!   go in the additional section. Names compare ASCII-case-insensitively.
//! - Where the reply goes: a *legacy* query (source port ≠ the mDNS port, RFC 6762 §6.7) gets a
//!   unicast reply to its source with its id and questions echoed, TTLs capped at 10 s and no
//!   cache-flush bits; a query whose answered questions all carry the unicast-response (QU) bit
//!   gets a unicast reply to its source (§5.4); anything else is multicast to the group, at most
//!   once per [`MULTICAST_INTERVAL`] per link (§6: a record is not multicast more often).
//! - The A/AAAA records are the host's addresses on the link the query came from
//!   ([`link_for`]): for an IPv6 link-local source its scope (interface index), otherwise the
//!   interfaces whose prefix holds the source; failing both, every non-loopback address (or the
//!   loopback ones for a loopback source). At most [`MAX_ADDRESSES`].
//! - Parsing is bounded and total: at most [`MAX_QUESTIONS`] questions, names of at most 255
//!   bytes, compression pointers only backwards; any input gives `Ok` or an error, never a panic
//!   (property-tested with random bytes).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// The standard mDNS port.
pub const MDNS_PORT: u16 = 5353;
/// The IPv4 and IPv6 mDNS groups.
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 251);
pub const GROUP_V6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb);
/// The GameStream service type, without the trailing dot.
pub const SERVICE: &str = "_nvstream._tcp.local";
/// Largest datagram read (RFC 6762 §17: 9000 bytes including headers).
pub const MAX_PACKET: usize = 9000;
/// Questions looked at per query; more is not a query we answer.
pub const MAX_QUESTIONS: usize = 64;
/// Addresses put in one reply.
pub const MAX_ADDRESSES: usize = 16;
/// A link is multicast to at most once per this interval (RFC 6762 §6).
pub const MULTICAST_INTERVAL: Duration = Duration::from_secs(1);
/// TTLs (RFC 6762 §10): host-name-bound records 120 s, the others 75 minutes.
pub const TTL_HOST: u32 = 120;
pub const TTL_OTHER: u32 = 4500;
/// Legacy unicast replies carry TTLs of at most this (RFC 6762 §6.7).
pub const TTL_LEGACY: u32 = 10;

const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const TYPE_TXT: u16 = 16;
const TYPE_AAAA: u16 = 28;
const TYPE_SRV: u16 = 33;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
const CLASS_ANY: u16 = 255;
/// Top bit of a question's class: unicast response wanted; of a record's: cache flush.
const CLASS_TOP_BIT: u16 = 0x8000;
const MAX_NAME: usize = 255;
const MAX_LABEL: usize = 63;
/// Header flags of our replies: QR (response) and AA (authoritative).
const FLAGS_RESPONSE: u16 = 0x8400;
/// Links remembered for the multicast rate limit (a host has few).
const MAX_LINKS: usize = 64;

/// Why a datagram is not a query we look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than its header or than what its counts promise.
    Truncated,
    /// QR set: a response (ours or another host's).
    Response,
    /// A non-zero opcode or rcode (RFC 6762 §18.3, §18.11).
    NotStandardQuery,
    TooManyQuestions,
    /// A label over 63 bytes, a reserved label type, a forward or looping pointer, or a name
    /// over 255 bytes.
    BadName,
}

/// A name as labels (the bytes as received; compared case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(pub Vec<Vec<u8>>);

impl Name {
    /// `a.b.c` (no trailing dot; labels must not contain dots).
    pub fn from_dotted(s: &str) -> Name {
        Name(
            s.split('.')
                .filter(|l| !l.is_empty())
                .map(|l| l.as_bytes().to_vec())
                .collect(),
        )
    }

    fn eq_ignore_case(&self, other: &Name) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        for l in &self.0 {
            // Labels are at most 63 bytes: from the parser, or from `label_of`.
            out.push(l.len().min(MAX_LABEL) as u8);
            out.extend_from_slice(&l[..l.len().min(MAX_LABEL)]);
        }
        out.push(0);
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for l in &self.0 {
            write!(f, "{}.", String::from_utf8_lossy(l))?;
        }
        Ok(())
    }
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub name: Name,
    pub qtype: u16,
    /// The class without the QU bit.
    pub qclass: u16,
    /// The unicast-response (QU) bit.
    pub unicast: bool,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    pub questions: Vec<Question>,
}

fn u16_at(p: &[u8], at: usize) -> Result<u16, ParseError> {
    let b = p.get(at..at + 2).ok_or(ParseError::Truncated)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

/// Reads the name at `at`; returns it and the offset after it (after the first pointer, if
/// any). Pointers must point strictly before the label that holds them, so every jump goes
/// backwards and the walk ends.
fn read_name(p: &[u8], mut at: usize) -> Result<(Name, usize), ParseError> {
    let mut labels = Vec::new();
    let mut total = 0usize;
    let mut end = None;
    loop {
        let len = *p.get(at).ok_or(ParseError::Truncated)?;
        match len & 0xC0 {
            0x00 if len == 0 => {
                return Ok((Name(labels), end.unwrap_or(at + 1)));
            }
            0x00 => {
                let l = usize::from(len);
                let label = p.get(at + 1..at + 1 + l).ok_or(ParseError::Truncated)?;
                total += l + 1;
                if total > MAX_NAME {
                    return Err(ParseError::BadName);
                }
                labels.push(label.to_vec());
                at += 1 + l;
            }
            0xC0 => {
                let low = *p.get(at + 1).ok_or(ParseError::Truncated)?;
                let target = (usize::from(len & 0x3F) << 8) | usize::from(low);
                if target >= at {
                    return Err(ParseError::BadName);
                }
                end.get_or_insert(at + 2);
                at = target;
            }
            // 0x40 and 0x80: extended and reserved label types.
            _ => return Err(ParseError::BadName),
        }
    }
}

/// Parses a datagram as an mDNS query (only the question section is read).
pub fn parse_query(p: &[u8]) -> Result<Query, ParseError> {
    if p.len() < 12 {
        return Err(ParseError::Truncated);
    }
    let id = u16_at(p, 0)?;
    let flags = u16_at(p, 2)?;
    if flags & 0x8000 != 0 {
        return Err(ParseError::Response);
    }
    // Opcode (bits 11–14) and rcode (bits 0–3) must be zero.
    if flags & 0x7800 != 0 || flags & 0x000F != 0 {
        return Err(ParseError::NotStandardQuery);
    }
    let qdcount = usize::from(u16_at(p, 4)?);
    if qdcount > MAX_QUESTIONS {
        return Err(ParseError::TooManyQuestions);
    }
    let mut at = 12;
    let mut questions = Vec::with_capacity(qdcount);
    for _ in 0..qdcount {
        let (name, next) = read_name(p, at)?;
        let qtype = u16_at(p, next)?;
        let class = u16_at(p, next + 2)?;
        at = next + 4;
        questions.push(Question {
            name,
            qtype,
            qclass: class & !CLASS_TOP_BIT,
            unicast: class & CLASS_TOP_BIT != 0,
        });
    }
    Ok(Query { id, questions })
}

/// Where a reply goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The group of the query's family, on the link it came from.
    Multicast,
    /// Straight back to the querier.
    Unicast(SocketAddr),
}

/// A reply to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub bytes: Vec<u8>,
    pub to: Destination,
}

/// One of the host's addresses, as the shell lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostAddr {
    pub ip: IpAddr,
    pub prefix_len: u8,
    pub if_index: u32,
}

/// The link a query came from: its interface(s), and the addresses to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The interface indexes the source belongs to (empty: not known).
    pub if_indexes: Vec<u32>,
    pub addrs: Vec<IpAddr>,
}

fn in_prefix(a: IpAddr, b: IpAddr, prefix_len: u8) -> bool {
    let bits = |ip: IpAddr| -> (u128, u32) {
        match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        }
    };
    let ((x, w), (y, w2)) = (bits(a), bits(b));
    if w != w2 {
        return false;
    }
    let len = u32::from(prefix_len).min(w);
    if len == 0 {
        return true;
    }
    let shift = w - len;
    (x >> shift) == (y >> shift)
}

/// IPv4-mapped IPv6 as IPv4 (a dual-stack socket reports IPv4 peers that way).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// See the module contract.
pub fn link_for(src: SocketAddr, host: &[HostAddr]) -> Link {
    let src_ip = canonical(src.ip());
    let mut if_indexes: Vec<u32> = match src {
        SocketAddr::V6(v6) if v6.scope_id() != 0 => vec![v6.scope_id()],
        _ => host
            .iter()
            .filter(|h| in_prefix(canonical(h.ip), src_ip, h.prefix_len))
            .map(|h| h.if_index)
            .collect(),
    };
    if_indexes.sort_unstable();
    if_indexes.dedup();
    let mut addrs: Vec<IpAddr> = if if_indexes.is_empty() {
        let loopback = src_ip.is_loopback();
        host.iter()
            .filter(|h| h.ip.is_loopback() == loopback)
            .map(|h| h.ip)
            .collect()
    } else {
        host.iter()
            .filter(|h| if_indexes.contains(&h.if_index))
            .map(|h| h.ip)
            .collect()
    };
    addrs.dedup();
    addrs.truncate(MAX_ADDRESSES);
    Link { if_indexes, addrs }
}

/// What the responder has done, for logs, the status and the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams handed to [`Responder::handle`].
    pub received: u64,
    /// Queries that asked for one of our names and got a reply.
    pub answered: u64,
    /// Queries for other names (most of a LAN's mDNS traffic).
    pub ignored: u64,
    /// Responses from other hosts (and our own, looped back).
    pub responses: u64,
    /// Malformed datagrams.
    pub malformed: u64,
    /// Multicast replies held back by the per-link rate limit.
    pub rate_limited: u64,
}

/// The records we can answer with, and the rate-limit memory.
pub struct Responder {
    instance: Name,
    service: Name,
    host: Name,
    port: u16,
    mdns_port: u16,
    counters: Counters,
    last_multicast: HashMap<(Vec<u32>, bool), Instant>,
}

/// A DNS label from a display name for the host name: ASCII letters, digits and '-', at most
/// 63 bytes.
pub fn host_label(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(MAX_LABEL)
        .collect::<String>()
        .trim_matches('-')
        .to_owned();
    if s.is_empty() { "strahl".to_owned() } else { s }
}

/// The instance label: the display name (DNS-SD allows any UTF-8) cut to 63 bytes at a char
/// boundary, control characters and dots replaced (a dot would read as a label break in logs
/// and in some clients' presentation form).
pub fn instance_label(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        let c = if c.is_control() || c == '.' { '-' } else { c };
        if out.len() + c.len_utf8() > MAX_LABEL {
            break;
        }
        out.push(c);
    }
    if out.is_empty() {
        "strahl".to_owned()
    } else {
        out
    }
}

/// Which records a reply holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Set {
    ptr: bool,
    srv: bool,
    txt: bool,
    a: bool,
    aaaa: bool,
}

impl Set {
    fn any(self) -> bool {
        self.ptr || self.srv || self.txt || self.a || self.aaaa
    }
    fn minus(self, o: Set) -> Set {
        Set {
            ptr: self.ptr && !o.ptr,
            srv: self.srv && !o.srv,
            txt: self.txt && !o.txt,
            a: self.a && !o.a,
            aaaa: self.aaaa && !o.aaaa,
        }
    }
}

impl Responder {
    /// `instance`: the host's display name; `port`: the GameStream HTTP port; `mdns_port`: the
    /// port the responder listens on (5353; tests use another).
    pub fn new(instance: &str, port: u16, mdns_port: u16) -> Responder {
        let mut inst = vec![instance_label(instance).into_bytes()];
        inst.extend(Name::from_dotted(SERVICE).0);
        Responder {
            instance: Name(inst),
            service: Name::from_dotted(SERVICE),
            host: Name(vec![host_label(instance).into_bytes(), b"local".to_vec()]),
            port,
            mdns_port,
            counters: Counters::default(),
            last_multicast: HashMap::new(),
        }
    }

    /// `<instance>._nvstream._tcp.local.`
    pub fn instance_name(&self) -> String {
        self.instance.to_string()
    }

    /// `<host>.local.`
    pub fn host_name(&self) -> String {
        self.host.to_string()
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// One received datagram from `src` on `link` at `now`.
    pub fn handle(
        &mut self,
        packet: &[u8],
        src: SocketAddr,
        link: &Link,
        now: Instant,
    ) -> Option<Reply> {
        self.counters.received += 1;
        let q = match parse_query(packet) {
            Ok(q) => q,
            Err(ParseError::Response) => {
                self.counters.responses += 1;
                return None;
            }
            Err(_) => {
                self.counters.malformed += 1;
                return None;
            }
        };
        let has_v4 = link.addrs.iter().any(IpAddr::is_ipv4);
        let has_v6 = link.addrs.iter().any(IpAddr::is_ipv6);
        let mut answers = Set::default();
        let mut additional = Set::default();
        let mut all_qu = true;
        let mut answered_questions = Vec::new();
        for question in &q.questions {
            if question.qclass != CLASS_IN && question.qclass != CLASS_ANY {
                continue;
            }
            let t = question.qtype;
            let any = t == TYPE_ANY;
            let mut hit = Set::default();
            if question.name.eq_ignore_case(&self.service) && (t == TYPE_PTR || any) {
                hit.ptr = true;
                additional.srv = true;
                additional.txt = true;
                additional.a = has_v4;
                additional.aaaa = has_v6;
            } else if question.name.eq_ignore_case(&self.instance) {
                hit.srv = t == TYPE_SRV || any;
                hit.txt = t == TYPE_TXT || any;
                if hit.srv {
                    additional.a = has_v4;
                    additional.aaaa = has_v6;
                }
            } else if question.name.eq_ignore_case(&self.host) {
                hit.a = (t == TYPE_A || any) && has_v4;
                hit.aaaa = (t == TYPE_AAAA || any) && has_v6;
            }
            if hit.any() {
                all_qu &= question.unicast;
                answered_questions.push(question);
                answers = Set {
                    ptr: answers.ptr || hit.ptr,
                    srv: answers.srv || hit.srv,
                    txt: answers.txt || hit.txt,
                    a: answers.a || hit.a,
                    aaaa: answers.aaaa || hit.aaaa,
                };
            }
        }
        if !answers.any() {
            self.counters.ignored += 1;
            return None;
        }
        let legacy = src.port() != self.mdns_port;
        let to = if legacy || all_qu {
            Destination::Unicast(src)
        } else {
            Destination::Multicast
        };
        if to == Destination::Multicast {
            let key = (link.if_indexes.clone(), canonical(src.ip()).is_ipv4());
            if let Some(t) = self.last_multicast.get(&key)
                && now.saturating_duration_since(*t) < MULTICAST_INTERVAL
            {
                self.counters.rate_limited += 1;
                return None;
            }
            if self.last_multicast.len() >= MAX_LINKS {
                self.last_multicast.clear();
            }
            self.last_multicast.insert(key, now);
        }
        let additional = additional.minus(answers);
        let bytes = self.encode(
            if legacy { q.id } else { 0 },
            if legacy { &answered_questions[..] } else { &[] },
            answers,
            additional,
            &link.addrs,
            legacy,
        );
        self.counters.answered += 1;
        Some(Reply { bytes, to })
    }

    fn encode(
        &self,
        id: u16,
        questions: &[&Question],
        answers: Set,
        additional: Set,
        addrs: &[IpAddr],
        legacy: bool,
    ) -> Vec<u8> {
        let mut body = Vec::with_capacity(512);
        for q in questions {
            q.name.encode(&mut body);
            body.extend_from_slice(&q.qtype.to_be_bytes());
            body.extend_from_slice(&q.qclass.to_be_bytes());
        }
        let an = self.records(answers, addrs, legacy, &mut body);
        let ar = self.records(additional, addrs, legacy, &mut body);
        let mut out = Vec::with_capacity(12 + body.len());
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&FLAGS_RESPONSE.to_be_bytes());
        for count in [questions.len(), an, 0, ar] {
            // ≤ MAX_QUESTIONS questions; ≤ 4 + MAX_ADDRESSES records.
            out.extend_from_slice(&(count as u16).to_be_bytes());
        }
        out.extend_from_slice(&body);
        out
    }

    /// Appends the records of `set`; returns how many.
    fn records(&self, set: Set, addrs: &[IpAddr], legacy: bool, out: &mut Vec<u8>) -> usize {
        let mut n = 0;
        let mut record = |name: &Name, rtype: u16, unique: bool, ttl: u32, rdata: &[u8]| {
            name.encode(out);
            out.extend_from_slice(&rtype.to_be_bytes());
            // Cache flush on our unique records, never in legacy replies (§10.2, §6.7).
            let class = if unique && !legacy {
                CLASS_IN | CLASS_TOP_BIT
            } else {
                CLASS_IN
            };
            out.extend_from_slice(&class.to_be_bytes());
            let ttl = if legacy { ttl.min(TTL_LEGACY) } else { ttl };
            out.extend_from_slice(&ttl.to_be_bytes());
            // rdata is at most a name (≤ 256 bytes) plus 6.
            out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            out.extend_from_slice(rdata);
            n += 1;
        };
        if set.ptr {
            let mut rdata = Vec::new();
            self.instance.encode(&mut rdata);
            record(&self.service, TYPE_PTR, false, TTL_OTHER, &rdata);
        }
        if set.srv {
            let mut rdata = vec![0, 0, 0, 0];
            rdata.extend_from_slice(&self.port.to_be_bytes());
            self.host.encode(&mut rdata);
            record(&self.instance, TYPE_SRV, true, TTL_HOST, &rdata);
        }
        if set.txt {
            // An empty TXT record holds one empty string (RFC 6763 §6.1).
            record(&self.instance, TYPE_TXT, true, TTL_OTHER, &[0]);
        }
        for ip in addrs {
            match ip {
                IpAddr::V4(v4) if set.a => {
                    record(&self.host, TYPE_A, true, TTL_HOST, &v4.octets());
                }
                IpAddr::V6(v6) if set.aaaa => {
                    record(&self.host, TYPE_AAAA, true, TTL_HOST, &v6.octets());
                }
                _ => {}
            }
        }
        n
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
