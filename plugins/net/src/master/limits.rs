//! Admission limits of the master's control port (issue 15, hostile input): pure logic, no
//! I/O, time injected.
//!
//! An unauthenticated peer can open connections, trickle request heads (slowloris), stall a
//! WebSocket before its hello, send large bodies and claim pending node ids. Each is bounded:
//!
//! | what                        | bound                                                   |
//! |-----------------------------|---------------------------------------------------------|
//! | open connections            | [`Policy::max_connections`], the last [`Policy::reserved`] of them only for known node addresses |
//! | connections per address     | [`Policy::per_address`] (known node addresses exempt)   |
//! | request head (slowloris)    | whole within `server::HEADER_READ_TIMEOUT`, at most [`MAX_HEAD_BYTES`] |
//! | request                     | answered within `server::REQUEST_TIMEOUT`, body at most `protocol::MAX_FRAME_BYTES` |
//! | TLS handshake               | `rockontrol_tls::HANDSHAKE_TIMEOUT`, holding its [`Slot`] (`crate::bounded::serve_admitted`) |
//! | WebSocket hello             | `server::HANDSHAKE_TIMEOUT` after the upgrade           |
//! | pending (unadopted) nodes   | `registry::MAX_PENDING`, `registry::MAX_PENDING_PER_ADDRESS` from one address, each for `registry::PENDING_WAIT` |
//!
//! A refused connection is answered at once ([`Refusal::http_answer`]: 503 when the server is
//! full, 429 when one address has too many open) and closed; the log says so at most once
//! per [`LogThrottle`] interval with the count in between.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A request head (request line and headers) larger than this is refused (hyper answers 431).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Open connections at most, by default.
pub const MAX_CONNECTIONS: usize = 512;

/// How many connections the server admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Open connections at most (REST and WebSocket together).
    pub max_connections: usize,
    /// Of those, kept for peers at known node addresses.
    pub reserved: usize,
    /// Open connections at most from one address that is not a known node address.
    pub per_address: usize,
}

impl Policy {
    /// `max_connections` in all (at least 2); an eighth of them (at least one) kept in
    /// reserve; a quarter (at least 4) from any one unknown address (a test rig or a bench runs
    /// a hundred nodes from one loopback address before they are known).
    pub fn new(max_connections: usize) -> Self {
        let max_connections = max_connections.max(2);
        Policy {
            max_connections,
            reserved: (max_connections / 8).max(1),
            per_address: (max_connections / 4).max(4),
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::new(MAX_CONNECTIONS)
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "{max} connections open (the limit; {reserved} kept for known nodes): raise max_connections in the master's config, or find the peer flooding the port"
    )]
    Full { max: usize, reserved: usize },
    #[error(
        "{limit} connections open from {ip} already (the per-address limit for addresses that are not nodes)"
    )]
    PerAddress { ip: IpAddr, limit: usize },
}

impl Refusal {
    /// The HTTP status the peer gets: 503 (server full) or 429 (too many from it).
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Full { .. } => 503,
            Refusal::PerAddress { .. } => 429,
        }
    }

    /// A complete HTTP/1.1 answer, written (best effort, without waiting) before closing.
    pub fn http_answer(&self) -> &'static [u8] {
        match self {
            Refusal::Full { .. } => {
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            }
            Refusal::PerAddress { .. } => {
                b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 5\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            }
        }
    }
}

/// Which pool a connection's slot is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    General,
    /// The reserve for known node addresses.
    Reserve,
}

/// An admitted connection, to be given back with [`Admission::release`].
#[derive(Debug, PartialEq, Eq)]
pub struct Ticket {
    ip: IpAddr,
    pool: Pool,
}

impl Ticket {
    pub fn pool(&self) -> Pool {
        self.pool
    }
}

/// The open connections, counted by pool and by address.
#[derive(Debug)]
pub struct Admission {
    policy: Policy,
    general: usize,
    reserve: usize,
    by_address: HashMap<IpAddr, usize>,
}

impl Admission {
    pub fn new(policy: Policy) -> Self {
        Admission {
            policy,
            general: 0,
            reserve: 0,
            by_address: HashMap::new(),
        }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Admits a connection from `ip`, or says why not. `known` (asked only when it matters)
    /// says whether `ip` is a known node address: exempt from the per-address limit, and
    /// allowed into the reserve when the general pool is full.
    pub fn admit(&mut self, ip: IpAddr, known: impl FnOnce() -> bool) -> Result<Ticket, Refusal> {
        let from_ip = self.by_address.get(&ip).copied().unwrap_or(0);
        let general_full = self.general >= self.policy.max_connections - self.policy.reserved;
        let mut known = LazyBool::new(known);
        if from_ip >= self.policy.per_address && !known.get() {
            return Err(Refusal::PerAddress {
                ip,
                limit: self.policy.per_address,
            });
        }
        let pool = if !general_full {
            Pool::General
        } else if self.reserve < self.policy.reserved && known.get() {
            Pool::Reserve
        } else {
            return Err(Refusal::Full {
                max: self.policy.max_connections,
                reserved: self.policy.reserved,
            });
        };
        match pool {
            Pool::General => self.general += 1,
            Pool::Reserve => self.reserve += 1,
        }
        *self.by_address.entry(ip).or_insert(0) += 1;
        Ok(Ticket { ip, pool })
    }

    /// Gives a closed connection's slot back.
    pub fn release(&mut self, ticket: Ticket) {
        match ticket.pool {
            Pool::General => self.general = self.general.saturating_sub(1),
            Pool::Reserve => self.reserve = self.reserve.saturating_sub(1),
        }
        if let Some(n) = self.by_address.get_mut(&ticket.ip) {
            *n -= 1;
            if *n == 0 {
                self.by_address.remove(&ticket.ip);
            }
        }
    }

    /// Connections open in all.
    pub fn open(&self) -> usize {
        self.general + self.reserve
    }

    /// Connections open from `ip`.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.by_address.get(&ip).copied().unwrap_or(0)
    }
}

/// A `FnOnce() -> bool` evaluated at most once, when first asked.
struct LazyBool<F> {
    f: Option<F>,
    value: bool,
}

impl<F: FnOnce() -> bool> LazyBool<F> {
    fn new(f: F) -> Self {
        LazyBool {
            f: Some(f),
            value: false,
        }
    }

    fn get(&mut self) -> bool {
        if let Some(f) = self.f.take() {
            self.value = f();
        }
        self.value
    }
}

/// The shared [`Admission`] of one server.
pub type SharedAdmission = Arc<Mutex<Admission>>;

/// An admitted connection's slot, given back when dropped (it lives with the socket, through
/// a TLS handshake and a WebSocket upgrade).
#[derive(Debug)]
pub struct Slot {
    admission: SharedAdmission,
    ticket: Option<Ticket>,
}

impl Slot {
    /// Admits a connection from `ip` into `admission` (see [`Admission::admit`]).
    pub fn admit(
        admission: &SharedAdmission,
        ip: IpAddr,
        known: impl FnOnce() -> bool,
    ) -> Result<Slot, Refusal> {
        let ticket = admission
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(ip, known)?;
        Ok(Slot {
            admission: Arc::clone(admission),
            ticket: Some(ticket),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.admission
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .release(ticket);
        }
    }
}

/// A log line at most once per `interval`, with how many were held back in between.
#[derive(Debug)]
pub struct LogThrottle {
    interval: Duration,
    last: Option<Instant>,
    held: u64,
}

impl LogThrottle {
    pub fn new(interval: Duration) -> Self {
        LogThrottle {
            interval,
            last: None,
            held: 0,
        }
    }

    /// Notes one event at `now`: `Some(n)` when it is to be logged (`n` events were held back
    /// since the last line), `None` when it is held back.
    pub fn note(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < self.interval)
        {
            self.held += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn the_policy_scales_with_the_cap() {
        assert_eq!(
            Policy::new(512),
            Policy {
                max_connections: 512,
                reserved: 64,
                per_address: 128
            }
        );
        assert_eq!(
            Policy::new(0),
            Policy {
                max_connections: 2,
                reserved: 1,
                per_address: 4
            }
        );
    }

    #[test]
    fn one_address_gets_its_share_and_then_429() {
        let mut a = Admission::new(Policy::new(32)); // 4 reserved, 8 per address
        let flood = ip("10.0.0.66");
        let tickets: Vec<Ticket> = (0..8)
            .map(|_| a.admit(flood, || false).expect("within the share"))
            .collect();
        let refused = a.admit(flood, || false).expect_err("over the share");
        assert_eq!(
            refused,
            Refusal::PerAddress {
                ip: flood,
                limit: 8
            }
        );
        assert_eq!(refused.status(), 429);
        assert!(refused.http_answer().starts_with(b"HTTP/1.1 429 "));
        // Other addresses are not affected.
        assert!(a.admit(ip("10.0.0.7"), || false).is_ok());
        // A closed connection frees its place.
        for t in tickets {
            a.release(t);
        }
        assert_eq!(a.open_from(flood), 0);
        assert!(a.admit(flood, || false).is_ok());
        assert_eq!(a.open(), 2);
    }

    #[test]
    fn known_node_addresses_are_exempt_from_the_share_and_use_the_reserve() {
        let mut a = Admission::new(Policy::new(16)); // 2 reserved, 4 per address
        let node = ip("10.0.0.5");
        // 14 general slots, from many addresses (4 each at most).
        let mut held = Vec::new();
        for i in 0..14u8 {
            held.push(
                a.admit(IpAddr::from([10, 0, 1, i / 4]), || false)
                    .expect("general"),
            );
        }
        let full = a.admit(ip("10.0.2.1"), || false).expect_err("general full");
        assert_eq!(
            full,
            Refusal::Full {
                max: 16,
                reserved: 2
            }
        );
        assert_eq!(full.status(), 503);
        let r1 = a.admit(node, || true).expect("reserve 1");
        assert_eq!(r1.pool(), Pool::Reserve);
        let r2 = a.admit(node, || true).expect("reserve 2");
        assert!(matches!(a.admit(node, || true), Err(Refusal::Full { .. })));
        a.release(r1);
        assert_eq!(a.admit(node, || true).expect("again").pool(), Pool::Reserve);
        a.release(r2);
        // A known address is never held to the per-address share while there is room.
        let mut b = Admission::new(Policy::new(64));
        for _ in 0..40 {
            b.admit(node, || true).expect("known: no share");
        }
        assert_eq!(b.open_from(node), 40);
    }

    #[test]
    fn whether_an_address_is_known_is_asked_only_when_it_matters() {
        let mut a = Admission::new(Policy::new(64));
        let t = a
            .admit(ip("10.0.0.9"), || {
                panic!("not needed with room and under the share")
            })
            .expect("room");
        assert_eq!(t.pool(), Pool::General);
    }

    #[test]
    fn a_slot_gives_its_place_back_when_dropped() {
        let shared: SharedAdmission = Arc::new(Mutex::new(Admission::new(Policy::new(8))));
        let peer = ip("10.0.0.3");
        let slots: Vec<Slot> = (0..4)
            .map(|_| Slot::admit(&shared, peer, || false).expect("admit"))
            .collect();
        assert!(Slot::admit(&shared, peer, || false).is_err());
        drop(slots);
        assert_eq!(shared.lock().expect("admission").open(), 0);
        assert!(Slot::admit(&shared, peer, || false).is_ok());
    }

    #[test]
    fn the_log_throttle_says_once_per_interval_with_the_count() {
        let t0 = Instant::now();
        let mut log = LogThrottle::new(Duration::from_secs(5));
        assert_eq!(log.note(t0), Some(0));
        for i in 1..=999 {
            assert_eq!(log.note(t0 + Duration::from_millis(i * 4)), None);
        }
        assert_eq!(log.note(t0 + Duration::from_secs(5)), Some(999));
        assert_eq!(log.note(t0 + Duration::from_secs(6)), None);
        assert_eq!(log.note(t0 + Duration::from_secs(11)), Some(1));
    }
}
