//! The clock packets on the wire (pure: bytes in, bytes out).
//!
//! Binary, big-endian, versioned, and authenticated with an HMAC-SHA256 (truncated to 16
//! bytes) under a key derived from the node's control key, so nobody without the key can
//! steer a node's clock. Every field is fixed-size; a ping is 56 bytes, a pong 88.
//!
//! ```text
//! ping: "RKCK" | version u8 = 1 | kind u8 = 1 | flags u16 = 0 | key tag u64 |
//!       session u64 | seq u64 | t1 i64 | mac [16]                              (56 bytes)
//! pong: "RKCK" | version u8 = 1 | kind u8 = 2 | flags u16 | key tag u64 |
//!       session u64 | seq u64 | t1 i64 | t2 i64 | t3 i64 |
//!       master clock id u64 | master show ns u64 | mac [16]                    (88 bytes)
//! ```
//!
//! - `key tag` names the key (the master may hold several) without revealing it.
//! - `session` is random per client run and `seq` counts its pings: the master refuses a
//!   `(session, seq)` it has seen ([`ReplayWindow`]); the client accepts a pong only for its
//!   one outstanding ping, once, with its own `t1` echoed.
//! - `master clock id` is random per responder run: when it changes, the clock is another.
//! - `master show ns` is the master's show time at `t3` (flag bit 0 set when it has none).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The first four bytes of every packet.
pub const MAGIC: [u8; 4] = *b"RKCK";
/// The packet format this build speaks.
pub const VERSION: u8 = 1;
/// Bytes of MAC at the end of every packet.
pub const MAC_BYTES: usize = 16;
/// A ping's length.
pub const PING_LEN: usize = HEADER_LEN + 3 * 8 + MAC_BYTES;
/// A pong's length.
pub const PONG_LEN: usize = HEADER_LEN + 7 * 8 + MAC_BYTES;
/// Magic, version, kind, flags and key tag.
const HEADER_LEN: usize = 16;

const KIND_PING: u8 = 1;
const KIND_PONG: u8 = 2;
/// Pong flag: the master has no show time to give.
const FLAG_NO_SHOW_TIME: u16 = 1;

/// The secret clock packets are signed with, derived from a control key.
#[derive(Clone)]
pub struct ClockKey {
    mac_key: [u8; 32],
    tag: u64,
}

impl std::fmt::Debug for ClockKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClockKey(tag {:016x})", self.tag)
    }
}

fn mac_of(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

impl ClockKey {
    /// The clock key of control key `key`: a separate derived secret, so a clock MAC is no
    /// use on the link handshake and the other way round.
    pub fn derive(key: &str) -> ClockKey {
        let mac_key = mac_of(key.as_bytes(), &[b"rockontrol clock key v1".as_slice()]);
        let tag_bytes = mac_of(key.as_bytes(), &[b"rockontrol clock key tag v1".as_slice()]);
        let tag = u64::from_be_bytes(tag_bytes[..8].try_into().expect("8 bytes"));
        ClockKey { mac_key, tag }
    }

    /// The public name of the key carried in every packet.
    pub fn tag(&self) -> u64 {
        self.tag
    }

    fn mac(&self, body: &[u8]) -> [u8; MAC_BYTES] {
        let full = mac_of(&self.mac_key, &[body]);
        full[..MAC_BYTES].try_into().expect("16 bytes")
    }

    fn verify(&self, body: &[u8], mac: &[u8]) -> bool {
        let mut check =
            <HmacSha256 as Mac>::new_from_slice(&self.mac_key).expect("HMAC takes any key length");
        check.update(body);
        // Constant time, on the truncated MAC.
        check.verify_truncated_left(mac).is_ok()
    }
}

/// A node's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    pub session: u64,
    pub seq: u64,
    /// Local clock when it left, in nanoseconds.
    pub t1: i64,
}

/// The master's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pong {
    pub session: u64,
    pub seq: u64,
    /// The ping's `t1`, echoed.
    pub t1: i64,
    /// Master clock when the ping arrived.
    pub t2: i64,
    /// Master clock when the pong left.
    pub t3: i64,
    /// Random per responder run.
    pub master_clock: u64,
    /// The master's show time at `t3`, in nanoseconds.
    pub show_ns: Option<u64>,
}

/// Why bytes are not a packet we take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("{got} bytes, a clock {what} has {want}")]
    Length {
        what: &'static str,
        got: usize,
        want: usize,
    },
    #[error("not a RocKontrol clock packet (magic bytes)")]
    Magic,
    #[error("clock packet version {0}, this build speaks {VERSION}")]
    Version(u8),
    #[error("packet kind {0} is not the one expected here")]
    Kind(u8),
    #[error("signed with another key (tag {0:016x})")]
    UnknownKey(u64),
    #[error("the MAC does not match: forged or damaged")]
    BadMac,
}

fn header(kind: u8, flags: u16, tag: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(PONG_LEN);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&tag.to_be_bytes());
    out
}

fn sign(mut body: Vec<u8>, key: &ClockKey) -> Vec<u8> {
    let mac = key.mac(&body);
    body.extend_from_slice(&mac);
    body
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(bytes[at..at + 8].try_into().expect("length checked"))
}

fn i64_at(bytes: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(bytes[at..at + 8].try_into().expect("length checked"))
}

/// Checks the framing of a packet of `kind` and returns its flags and key tag.
fn check(
    bytes: &[u8],
    kind: u8,
    what: &'static str,
    want: usize,
) -> Result<(u16, u64), PacketError> {
    if bytes.len() >= 4 && bytes[..4] != MAGIC {
        return Err(PacketError::Magic);
    }
    if bytes.len() >= 5 && bytes[4] != VERSION {
        return Err(PacketError::Version(bytes[4]));
    }
    if bytes.len() >= 6 && bytes[5] != kind {
        return Err(PacketError::Kind(bytes[5]));
    }
    if bytes.len() != want {
        return Err(PacketError::Length {
            what,
            got: bytes.len(),
            want,
        });
    }
    let flags = u16::from_be_bytes([bytes[6], bytes[7]]);
    Ok((flags, u64_at(bytes, 8)))
}

fn verify<'k>(bytes: &[u8], tag: u64, keys: &'k [ClockKey]) -> Result<&'k ClockKey, PacketError> {
    let key = keys
        .iter()
        .find(|k| k.tag == tag)
        .ok_or(PacketError::UnknownKey(tag))?;
    let (body, mac) = bytes.split_at(bytes.len() - MAC_BYTES);
    if key.verify(body, mac) {
        Ok(key)
    } else {
        Err(PacketError::BadMac)
    }
}

impl Ping {
    pub fn encode(&self, key: &ClockKey) -> Vec<u8> {
        let mut body = header(KIND_PING, 0, key.tag);
        body.extend_from_slice(&self.session.to_be_bytes());
        body.extend_from_slice(&self.seq.to_be_bytes());
        body.extend_from_slice(&self.t1.to_be_bytes());
        sign(body, key)
    }

    /// Decodes a ping signed by one of `keys`; returns it and the key that signed it.
    pub fn decode<'k>(
        bytes: &[u8],
        keys: &'k [ClockKey],
    ) -> Result<(Ping, &'k ClockKey), PacketError> {
        let (_, tag) = check(bytes, KIND_PING, "ping", PING_LEN)?;
        let key = verify(bytes, tag, keys)?;
        Ok((
            Ping {
                session: u64_at(bytes, 16),
                seq: u64_at(bytes, 24),
                t1: i64_at(bytes, 32),
            },
            key,
        ))
    }
}

impl Pong {
    pub fn encode(&self, key: &ClockKey) -> Vec<u8> {
        let flags = if self.show_ns.is_none() {
            FLAG_NO_SHOW_TIME
        } else {
            0
        };
        let mut body = header(KIND_PONG, flags, key.tag);
        body.extend_from_slice(&self.session.to_be_bytes());
        body.extend_from_slice(&self.seq.to_be_bytes());
        body.extend_from_slice(&self.t1.to_be_bytes());
        body.extend_from_slice(&self.t2.to_be_bytes());
        body.extend_from_slice(&self.t3.to_be_bytes());
        body.extend_from_slice(&self.master_clock.to_be_bytes());
        body.extend_from_slice(&self.show_ns.unwrap_or(0).to_be_bytes());
        sign(body, key)
    }

    /// Decodes a pong signed with `key`.
    pub fn decode(bytes: &[u8], key: &ClockKey) -> Result<Pong, PacketError> {
        let (flags, tag) = check(bytes, KIND_PONG, "pong", PONG_LEN)?;
        verify(bytes, tag, std::slice::from_ref(key))?;
        Ok(Pong {
            session: u64_at(bytes, 16),
            seq: u64_at(bytes, 24),
            t1: i64_at(bytes, 32),
            t2: i64_at(bytes, 40),
            t3: i64_at(bytes, 48),
            master_clock: u64_at(bytes, 56),
            show_ns: (flags & FLAG_NO_SHOW_TIME == 0).then(|| u64_at(bytes, 64)),
        })
    }
}

/// The master's memory of recent pings, to refuse a replayed one: per client session the
/// highest sequence seen and a 64-bit window below it (as IPsec's anti-replay window), for a
/// bounded number of sessions (the least recently used is forgotten).
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    sessions: Vec<(u64, u64, u64, u64)>,
    capacity: usize,
    clock: u64,
}

impl ReplayWindow {
    /// Remembers up to `capacity` client sessions.
    pub fn new(capacity: usize) -> Self {
        ReplayWindow {
            sessions: Vec::new(),
            capacity: capacity.max(1),
            clock: 0,
        }
    }

    /// True (and remembered) the first time `(session, seq)` is seen; false for a replay or a
    /// sequence more than 64 behind the newest.
    pub fn accept(&mut self, session: u64, seq: u64) -> bool {
        self.clock += 1;
        let now = self.clock;
        if let Some(entry) = self.sessions.iter_mut().find(|e| e.0 == session) {
            let (_, top, bits, used) = entry;
            *used = now;
            if seq > *top {
                let shift = seq - *top;
                *bits = if shift >= 64 { 0 } else { *bits << shift };
                *bits |= 1;
                *top = seq;
                return true;
            }
            let back = *top - seq;
            if back >= 64 || *bits & (1 << back) != 0 {
                return false;
            }
            *bits |= 1 << back;
            return true;
        }
        if self.sessions.len() >= self.capacity
            && let Some(oldest) = self
                .sessions
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.3)
                .map(|(i, _)| i)
        {
            self.sessions.swap_remove(oldest);
        }
        self.sessions.push((session, seq, 1, now));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ClockKey {
        ClockKey::derive("e2e-control-key-0001")
    }

    #[test]
    fn a_ping_has_this_layout() {
        let k = key();
        let bytes = Ping {
            session: 0x0102_0304_0506_0708,
            seq: 9,
            t1: -2,
        }
        .encode(&k);
        assert_eq!(bytes.len(), 56);
        assert_eq!(&bytes[0..4], b"RKCK", "magic");
        assert_eq!(bytes[4], 1, "version");
        assert_eq!(bytes[5], 1, "kind: ping");
        assert_eq!(&bytes[6..8], &[0, 0], "flags");
        assert_eq!(&bytes[8..16], &k.tag().to_be_bytes(), "key tag");
        assert_eq!(
            &bytes[16..24],
            &[1, 2, 3, 4, 5, 6, 7, 8],
            "session, big-endian"
        );
        assert_eq!(&bytes[24..32], &[0, 0, 0, 0, 0, 0, 0, 9], "seq");
        assert_eq!(
            &bytes[32..40],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe],
            "t1 = −2, two's complement"
        );
        assert_eq!(
            &bytes[40..56],
            &mac_of(&k.mac_key, &[&bytes[..40]])[..16],
            "HMAC-SHA256 of the rest, first 16 bytes"
        );
        let (ping, _) = Ping::decode(&bytes, &[k]).expect("decodes");
        assert_eq!(ping.t1, -2);
    }

    #[test]
    fn a_pong_round_trips_with_and_without_show_time() {
        let k = key();
        for show_ns in [Some(123_456_789), Some(0), None] {
            let pong = Pong {
                session: 1,
                seq: u64::MAX,
                t1: i64::MIN,
                t2: i64::MAX,
                t3: 7,
                master_clock: 0xdead_beef,
                show_ns,
            };
            let bytes = pong.encode(&k);
            assert_eq!(bytes.len(), PONG_LEN);
            assert_eq!(PONG_LEN, 88);
            assert_eq!(bytes[5], 2, "kind: pong");
            assert_eq!(Pong::decode(&bytes, &k), Ok(pong));
        }
    }

    #[test]
    fn forged_damaged_and_foreign_packets_are_refused() {
        let k = key();
        let bytes = Ping {
            session: 1,
            seq: 1,
            t1: 5,
        }
        .encode(&k);
        for i in [0, 4, 5, 12, 20, 35, 47, 55] {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            let got = Ping::decode(&bad, std::slice::from_ref(&k));
            assert!(
                got.is_err(),
                "byte {i} flipped must be refused, got {got:?}"
            );
        }
        // Re-signed under another key with our tag: the MAC does not match.
        let other = ClockKey::derive("another key");
        let mut forged = Ping {
            session: 1,
            seq: 1,
            t1: 5,
        }
        .encode(&other);
        forged[8..16].copy_from_slice(&k.tag().to_be_bytes());
        assert_eq!(
            Ping::decode(&forged, std::slice::from_ref(&k)).map(|p| p.0),
            Err(PacketError::BadMac)
        );
        let foreign = Ping {
            session: 1,
            seq: 1,
            t1: 5,
        }
        .encode(&other);
        assert_eq!(
            Ping::decode(&foreign, std::slice::from_ref(&k)).map(|p| p.0),
            Err(PacketError::UnknownKey(other.tag()))
        );
        // A ping is not a pong, and lengths are exact.
        assert_eq!(Pong::decode(&bytes, &k), Err(PacketError::Kind(1)));
        assert!(matches!(
            Ping::decode(&bytes[..55], std::slice::from_ref(&k)),
            Err(PacketError::Length {
                got: 55,
                want: 56,
                ..
            })
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            Ping::decode(&long, std::slice::from_ref(&k)),
            Err(PacketError::Length { got: 57, .. })
        ));
        assert_eq!(
            Ping::decode(&[], std::slice::from_ref(&k)).map(|p| p.0),
            Err(PacketError::Length {
                what: "ping",
                got: 0,
                want: 56
            })
        );
        let mut v2 = bytes.clone();
        v2[4] = 2;
        assert_eq!(
            Ping::decode(&v2, std::slice::from_ref(&k)).map(|p| p.0),
            Err(PacketError::Version(2))
        );
    }

    #[test]
    fn the_replay_window_refuses_repeats_and_stale_sequences() {
        let mut w = ReplayWindow::new(2);
        assert!(w.accept(7, 10));
        assert!(!w.accept(7, 10), "the same ping twice");
        assert!(w.accept(7, 12));
        assert!(w.accept(7, 11), "late but new");
        assert!(!w.accept(7, 11), "late and repeated");
        assert!(w.accept(7, 100));
        assert!(!w.accept(7, 36), "64 or more behind the newest");
        assert!(w.accept(7, 37));
        assert!(w.accept(8, 1), "another session");
        assert!(w.accept(7, 38), "7 used again, after 8");
        assert!(
            w.accept(9, 1),
            "a third session evicts the least recently used (8)"
        );
        assert!(!w.accept(7, 100), "7 is still remembered");
        assert!(
            w.accept(8, 1),
            "8 was forgotten (its old pings are stale by now)"
        );
    }
}
