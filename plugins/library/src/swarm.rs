//! Peer assist from a cold start: which chunk of a clip to take from which source (pure; the
//! fetcher in [`crate::fetch`] does the I/O), and the chunks a node holds of the clips it is
//! still downloading ([`Partials`]), which its peer server serves.
//!
//! A node that shares (serves peers) fetches a clip chunk by chunk into a `.part` file the
//! size of the clip. Each chunk is checked against the master's chunk hash before it is
//! written and counted as held; from then on the node's peer server serves it to others
//! (`GET /api/media/objects/{id}` with a `Range` inside held chunks) and lists it in
//! `GET /api/media/objects/{id}/chunks?have` ([`Have`]). So receivers that all start at once
//! each take different chunks from the master and trade the rest among themselves.
//!
//! [`Schedule`] decides, for each free download slot, one `(source, chunk)`:
//! - a peer that is idle (one request at a time per peer) takes the rarest chunk it holds
//!   that this node still wants (fewest peers hold it; ties in this node's own salted order,
//!   so that nodes spread over the chunks);
//! - the master takes only chunks no usable peer holds or is fetching now (it is the port that
//!   runs out first; peers say what they are fetching in their maps), and any chunk a peer
//!   sent wrong;
//! - at most `slots` requests at once in all (the node's parallel-download limit); the
//!   bandwidth cap is the fetcher's, over every byte of every source.
//!
//! A peer that sends a chunk that does not match its hash is not asked again for this clip,
//! and that chunk comes from the master. A peer that fails to answer loses that chunk from its
//! map (until its next `?have`) and, after [`PEER_FAILURES`] failures, is not asked again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::id::ClipId;

/// Failures (no answer, a refused range) after which a peer is not asked again for a clip.
pub const PEER_FAILURES: u32 = 3;

/// Where a chunk comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    Master,
    /// A peer's `host:port`.
    Peer(String),
}

/// The chunks a node holds of one clip, as `GET …/chunks?have` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Have {
    /// Bytes in a chunk.
    pub chunk: u64,
    /// Bytes in the clip.
    pub total: u64,
    /// One bit per chunk, chunk 0 the high bit of the first byte, in hex.
    pub have: String,
    /// The chunks being fetched now, in the same form (empty: none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pending: String,
}

impl Have {
    /// A map of `held`, for a clip of `total` bytes in chunks of `chunk`.
    pub fn new(chunk: u64, total: u64, held: &[bool]) -> Self {
        Have {
            chunk,
            total,
            have: encode_bits(held),
            pending: String::new(),
        }
    }

    /// The chunks being fetched now (none when the map says none or does not fit).
    pub fn pending_bits(&self) -> Vec<bool> {
        let n = self.total.div_ceil(self.chunk.max(1)) as usize;
        decode_bits(&self.pending, n).unwrap_or_else(|| vec![false; n])
    }

    /// Bytes in the chunks held.
    pub fn held_bytes(&self) -> u64 {
        let n = self.total.div_ceil(self.chunk.max(1)) as usize;
        decode_bits(&self.have, n).map_or(0, |bits| {
            (0..n)
                .filter(|&k| bits[k])
                .map(|k| {
                    let start = k as u64 * self.chunk;
                    (start + self.chunk).min(self.total) - start
                })
                .sum()
        })
    }

    /// The bits, if the map fits a clip of `total` bytes in chunks of `chunk` (else `None`:
    /// the peer's map is not for these chunks).
    pub fn bits(&self, chunk: u64, total: u64) -> Option<Vec<bool>> {
        if self.chunk != chunk || self.total != total || chunk == 0 {
            return None;
        }
        decode_bits(&self.have, total.div_ceil(chunk) as usize)
    }
}

/// Bits as hex, eight to a byte, high bit first.
pub fn encode_bits(bits: &[bool]) -> String {
    bits.chunks(8)
        .map(|byte| {
            let v = byte
                .iter()
                .enumerate()
                .fold(0u8, |v, (i, b)| v | (u8::from(*b) << (7 - i)));
            format!("{v:02x}")
        })
        .collect()
}

/// `n` bits from [`encode_bits`]' hex (`None` if the text is not that long or not hex).
pub fn decode_bits(text: &str, n: usize) -> Option<Vec<bool>> {
    if text.len() != n.div_ceil(8) * 2 {
        return None;
    }
    let mut bits = Vec::with_capacity(n);
    for i in 0..n.div_ceil(8) {
        let byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
        for b in 0..8 {
            if bits.len() < n {
                bits.push(byte & (0x80 >> b) != 0);
            }
        }
    }
    Some(bits)
}

/// The chunks held of each clip being downloaded, shared by a node's fetcher (which marks
/// verified chunks) and its peer server (which serves them).
#[derive(Debug, Clone, Default)]
pub struct Partials(Arc<Mutex<HashMap<ClipId, Have>>>);

impl Partials {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClipId, Have>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts (or restarts) a clip with the chunks `held`.
    pub fn start(&self, id: ClipId, chunk: u64, total: u64, held: &[bool]) {
        self.lock().insert(id, Have::new(chunk, total, held));
    }

    /// Marks chunk `k` of `id` held (verified and written).
    pub fn hold(&self, id: &ClipId, k: usize) {
        let mut map = self.lock();
        let Some(have) = map.get_mut(id) else { return };
        let n = have.total.div_ceil(have.chunk.max(1)) as usize;
        if let Some(mut bits) = decode_bits(&have.have, n)
            && k < n
        {
            bits[k] = true;
            have.have = encode_bits(&bits);
        }
        drop(map);
        self.pending(id, k, false);
    }

    /// Marks chunk `k` of `id` as being fetched now (or no more).
    pub fn pending(&self, id: &ClipId, k: usize, on: bool) {
        let mut map = self.lock();
        let Some(have) = map.get_mut(id) else { return };
        let mut bits = have.pending_bits();
        if let Some(b) = bits.get_mut(k) {
            *b = on;
            have.pending = if bits.iter().any(|b| *b) {
                encode_bits(&bits)
            } else {
                String::new()
            };
        }
    }

    /// Forgets `id` (installed in the store, or given up).
    pub fn forget(&self, id: &ClipId) {
        self.lock().remove(id);
    }

    /// The map of `id`, if it is being downloaded.
    pub fn get(&self, id: &ClipId) -> Option<Have> {
        self.lock().get(id).cloned()
    }

    /// Whether bytes `[start, end)` of `id` lie in held chunks.
    pub fn holds_range(&self, id: &ClipId, start: u64, end: u64) -> bool {
        let Some(have) = self.get(id) else {
            return false;
        };
        let Some(bits) = have.bits(have.chunk, have.total) else {
            return false;
        };
        if start >= end || end > have.total {
            return false;
        }
        let (first, last) = (start / have.chunk, (end - 1) / have.chunk);
        (first..=last).all(|k| bits.get(k as usize).copied().unwrap_or(false))
    }
}

/// Parses a single `Range: bytes=S-E` (inclusive `E`) into `[S, E+1)`; anything else (several
/// ranges, open or suffix ranges) is `None`. Only for the check that a range of a partly
/// downloaded clip lies in held chunks: the range itself is served by tower-http.
pub fn single_range(text: &str) -> Option<(u64, u64)> {
    let (start, end) = text.trim().strip_prefix("bytes=")?.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    (end >= start).then_some((start, end + 1))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Wanted,
    InFlight,
    Held,
}

#[derive(Debug, Clone)]
struct Peer {
    addr: String,
    have: Vec<bool>,
    /// Chunks it is fetching now (the master is not asked for them: they come from it soon).
    pending: Vec<bool>,
    busy: bool,
    failures: u32,
    /// Sent a chunk that did not match its hash, or failed too often.
    banned: bool,
}

/// Which chunk from which source, for one clip on one node (see the module's docs).
#[derive(Debug, Clone)]
pub struct Schedule {
    chunks: Vec<Chunk>,
    /// Chunks a peer sent wrong: only the master gives them.
    master_only: Vec<bool>,
    /// This node's order of the chunks (a salted permutation), for ties.
    rank: Vec<usize>,
    peers: Vec<Peer>,
    master_busy: usize,
    slots: usize,
}

/// A 64-bit mix (splitmix64's finaliser): the salted order of the chunks.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Schedule {
    /// A schedule for a clip whose chunks `held` are already on disk, with at most `slots`
    /// requests at once, in the order `salt` gives this node.
    pub fn new(held: &[bool], slots: usize, salt: u64) -> Self {
        let n = held.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&k| mix(salt ^ mix(k as u64)));
        let mut rank = vec![0; n];
        for (pos, &k) in order.iter().enumerate() {
            rank[k] = pos;
        }
        Schedule {
            chunks: held
                .iter()
                .map(|&h| if h { Chunk::Held } else { Chunk::Wanted })
                .collect(),
            master_only: vec![false; n],
            rank,
            peers: Vec::new(),
            master_busy: 0,
            slots: slots.max(1),
        }
    }

    /// Whether every chunk is held.
    pub fn complete(&self) -> bool {
        self.chunks.iter().all(|c| *c == Chunk::Held)
    }

    /// Requests running.
    pub fn in_flight(&self) -> usize {
        self.chunks
            .iter()
            .filter(|c| **c == Chunk::InFlight)
            .count()
    }

    /// Chunks held.
    pub fn held(&self) -> usize {
        self.chunks.iter().filter(|c| **c == Chunk::Held).count()
    }

    /// The peers to ask for their maps (not banned).
    pub fn peers(&self) -> Vec<String> {
        self.peers
            .iter()
            .filter(|p| !p.banned)
            .map(|p| p.addr.clone())
            .collect()
    }

    /// Takes the sources the master names now: new peers join with an empty map; peers no
    /// longer named are dropped once idle.
    pub fn set_peers(&mut self, addrs: &[String]) {
        self.peers
            .retain(|p| p.busy || p.banned || addrs.contains(&p.addr));
        for addr in addrs {
            if !self.peers.iter().any(|p| p.addr == *addr) {
                self.peers.push(Peer {
                    addr: addr.clone(),
                    have: Vec::new(),
                    pending: Vec::new(),
                    busy: false,
                    failures: 0,
                    banned: false,
                });
            }
        }
    }

    /// A peer's map (from its `?have`; `None`: it could not say, so it holds nothing).
    pub fn set_have(&mut self, addr: &str, have: Option<Vec<bool>>) {
        let n = self.chunks.len();
        if let Some(p) = self.peers.iter_mut().find(|p| p.addr == addr) {
            p.have = have.filter(|h| h.len() == n).unwrap_or_default();
            p.pending.clear();
        }
    }

    /// The chunks a peer is fetching now (after its [`Schedule::set_have`]).
    pub fn set_pending(&mut self, addr: &str, pending: Vec<bool>) {
        let n = self.chunks.len();
        if let Some(p) = self.peers.iter_mut().find(|p| p.addr == addr) {
            p.pending = if pending.len() == n {
                pending
            } else {
                Vec::new()
            };
        }
    }

    /// Whether a usable peer is fetching chunk `k` now.
    fn coming(&self, k: usize) -> bool {
        self.peers
            .iter()
            .any(|p| !p.banned && p.pending.get(k).copied().unwrap_or(false))
    }

    fn usable(p: &Peer, k: usize) -> bool {
        !p.banned && p.have.get(k).copied().unwrap_or(false)
    }

    /// How many usable peers hold chunk `k`.
    fn holders(&self, k: usize) -> usize {
        self.peers.iter().filter(|p| Self::usable(p, k)).count()
    }

    /// The next request to start, marked in flight; `None` when all slots are busy or no
    /// source can give a wanted chunk now.
    pub fn assign(&mut self) -> Option<(Source, usize)> {
        if self.in_flight() >= self.slots {
            return None;
        }
        let mut wanted: Vec<usize> = (0..self.chunks.len())
            .filter(|&k| self.chunks[k] == Chunk::Wanted)
            .collect();
        wanted.sort_by_key(|&k| (self.holders(k), self.rank[k]));
        // A peer first: the rarest chunk an idle peer holds.
        for &k in &wanted {
            if self.master_only[k] {
                continue;
            }
            if let Some(p) = self
                .peers
                .iter_mut()
                .find(|p| !p.busy && Self::usable(p, k))
            {
                p.busy = true;
                self.chunks[k] = Chunk::InFlight;
                return Some((Source::Peer(p.addr.clone()), k));
            }
        }
        // The master: a chunk a peer sent wrong, else one no usable peer holds or is fetching
        // (that one comes from the peer soon: the master's port is the one that runs out).
        let k = wanted
            .iter()
            .copied()
            .find(|&k| self.master_only[k])
            .or_else(|| {
                wanted
                    .iter()
                    .copied()
                    .find(|&k| self.holders(k) == 0 && !self.coming(k))
            })?;
        self.master_busy += 1;
        self.chunks[k] = Chunk::InFlight;
        Some((Source::Master, k))
    }

    fn release(&mut self, source: &Source) -> Option<&mut Peer> {
        match source {
            Source::Master => {
                self.master_busy = self.master_busy.saturating_sub(1);
                None
            }
            Source::Peer(addr) => {
                let p = self.peers.iter_mut().find(|p| p.addr == *addr)?;
                p.busy = false;
                Some(p)
            }
        }
    }

    /// Chunk `k` from `source` matched its hash and is written.
    pub fn done(&mut self, source: &Source, k: usize) {
        if let Some(p) = self.release(source) {
            p.failures = 0;
        }
        if let Some(c) = self.chunks.get_mut(k) {
            *c = Chunk::Held;
        }
    }

    /// `source` could not give chunk `k` (no answer, a refusal): it is wanted again; a peer
    /// loses it from its map, and is dropped after [`PEER_FAILURES`] failures in a row.
    pub fn failed(&mut self, source: &Source, k: usize) {
        if let Some(p) = self.release(source) {
            if let Some(h) = p.have.get_mut(k) {
                *h = false;
            }
            p.failures += 1;
            if p.failures >= PEER_FAILURES {
                p.banned = true;
            }
        }
        if let Some(c) = self.chunks.get_mut(k) {
            *c = Chunk::Wanted;
        }
    }

    /// `source` sent chunk `k` and it did not match the master's hash: that peer is not asked
    /// again, and the chunk comes from the master.
    pub fn lied(&mut self, source: &Source, k: usize) {
        if let Some(p) = self.release(source) {
            p.banned = true;
        }
        if let Some(c) = self.chunks.get_mut(k) {
            *c = Chunk::Wanted;
        }
        if let Some(m) = self.master_only.get_mut(k) {
            *m = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(s: &str) -> Source {
        Source::Peer(s.into())
    }

    #[test]
    fn bits_round_trip_and_maps_must_fit_the_clip() {
        let bits = [true, false, true, true, false, false, false, false, true];
        assert_eq!(encode_bits(&bits), "b080");
        assert_eq!(decode_bits("b080", 9).as_deref(), Some(&bits[..]));
        assert_eq!(decode_bits("b08", 9), None);
        assert_eq!(decode_bits("zz80", 9), None);
        let have = Have::new(4, 35, &bits);
        assert_eq!(have.bits(4, 35).as_deref(), Some(&bits[..]));
        assert_eq!(
            have.held_bytes(),
            4 * 3 + 3,
            "three whole chunks and the short last one"
        );
        assert_eq!(have.bits(8, 35), None, "another chunk size");
        assert_eq!(have.bits(4, 40), None, "another clip size");
    }

    #[test]
    fn partials_serve_only_ranges_inside_held_chunks() {
        let p = Partials::default();
        let id = ClipId::of(b"clip");
        p.start(id, 10, 35, &[false; 4]);
        assert!(!p.holds_range(&id, 0, 10));
        p.hold(&id, 1);
        p.hold(&id, 2);
        assert!(p.holds_range(&id, 10, 20));
        assert!(p.holds_range(&id, 12, 30), "spans two held chunks");
        assert!(!p.holds_range(&id, 9, 20), "starts in a chunk not held");
        assert!(!p.holds_range(&id, 20, 31), "ends in a chunk not held");
        assert!(!p.holds_range(&id, 20, 20), "empty");
        p.hold(&id, 3);
        assert!(p.holds_range(&id, 30, 35), "the short last chunk");
        assert!(!p.holds_range(&id, 30, 36), "past the end");
        p.forget(&id);
        assert!(!p.holds_range(&id, 10, 20));
        assert_eq!(single_range("bytes=10-19"), Some((10, 20)));
        assert_eq!(single_range("bytes=10-"), None);
        assert_eq!(single_range("bytes=0-1,4-5"), None);
        assert_eq!(single_range("bytes=5-4"), None);
    }

    #[test]
    fn a_cold_start_takes_from_the_master_in_each_nodes_own_order() {
        let a: Vec<usize> = {
            let mut s = Schedule::new(&[false; 16], 16, crate::chunks::salt("rx-1"));
            std::iter::from_fn(|| s.assign().map(|(_, k)| k)).collect()
        };
        let b: Vec<usize> = {
            let mut s = Schedule::new(&[false; 16], 16, crate::chunks::salt("rx-2"));
            std::iter::from_fn(|| s.assign().map(|(_, k)| k)).collect()
        };
        assert_eq!(a.len(), 16, "no peer yet: every chunk from the master");
        assert_ne!(a[..4], b[..4], "two nodes start on different chunks");
        let mut s = Schedule::new(&[false; 4], 2, 7);
        assert!(matches!(s.assign(), Some((Source::Master, _))));
        assert!(matches!(s.assign(), Some((Source::Master, _))));
        assert_eq!(s.assign(), None, "two slots");
    }

    #[test]
    fn peers_give_the_rarest_chunk_and_the_master_only_what_no_peer_holds() {
        let mut s = Schedule::new(&[true, false, false, false], 3, 0);
        s.set_peers(&["p1".into(), "p2".into()]);
        s.set_have("p1", Some(vec![true, true, true, false]));
        s.set_have("p2", Some(vec![true, false, true, false]));
        // Chunk 1 is held by p1 alone (rarer than 2, held by both): p1 takes it.
        assert_eq!(s.assign(), Some((peer("p1"), 1)));
        // p1 is busy: p2 takes 2.
        assert_eq!(s.assign(), Some((peer("p2"), 2)));
        // Chunk 3: no peer holds it, the master gives it.
        assert_eq!(s.assign(), Some((Source::Master, 3)));
        assert_eq!(s.assign(), None, "three slots busy");
        s.done(&peer("p1"), 1);
        s.done(&peer("p2"), 2);
        s.done(&Source::Master, 3);
        assert!(s.complete());
        assert_eq!(s.held(), 4);
    }

    #[test]
    fn the_master_waits_for_a_busy_peer_rather_than_send_what_peers_hold() {
        let mut s = Schedule::new(&[false, false], 4, 0);
        s.set_peers(&["p1".into()]);
        s.set_have("p1", Some(vec![true, true]));
        assert!(matches!(s.assign(), Some((Source::Peer(_), _))));
        assert_eq!(s.assign(), None, "the other chunk waits for p1");
    }

    #[test]
    fn a_lying_peer_is_dropped_and_its_chunk_comes_from_the_master() {
        let mut s = Schedule::new(&[false, false, false], 2, 0);
        s.set_peers(&["liar".into(), "good".into()]);
        s.set_have("liar", Some(vec![true; 3]));
        s.set_have("good", Some(vec![true; 3]));
        let (src, k) = s.assign().expect("a request");
        assert_eq!(src, peer("liar"));
        let (src2, k2) = s.assign().expect("a second");
        assert_eq!(src2, peer("good"));
        s.lied(&src, k);
        assert_eq!(s.peers(), vec!["good".to_string()]);
        assert_eq!(
            s.assign(),
            Some((Source::Master, k)),
            "the master refetches it"
        );
        s.done(&src2, k2);
        let (src3, k3) = s.assign().expect("the last chunk");
        assert_eq!(src3, peer("good"));
        s.done(&src3, k3);
        s.done(&Source::Master, k);
        assert!(s.complete());
    }

    #[test]
    fn a_failing_peer_loses_the_chunk_then_is_dropped() {
        let mut s = Schedule::new(&[false; 8], 1, 0);
        s.set_peers(&["flaky".into()]);
        s.set_have("flaky", Some(vec![true; 8]));
        for i in 0..PEER_FAILURES {
            let (src, k) = s.assign().expect("a request");
            assert_eq!(src, peer("flaky"), "try {i}");
            s.failed(&src, k);
        }
        assert!(
            s.peers().is_empty(),
            "dropped after {PEER_FAILURES} failures"
        );
        assert!(matches!(s.assign(), Some((Source::Master, _))));
        // A map that does not fit the clip counts as empty.
        let mut s = Schedule::new(&[false; 2], 2, 0);
        s.set_peers(&["p".into()]);
        s.set_have("p", Some(vec![true; 3]));
        assert_eq!(s.assign().map(|(src, _)| src), Some(Source::Master));
    }

    #[test]
    fn the_master_is_not_asked_for_what_a_peer_is_fetching() {
        let mut s = Schedule::new(&[false; 3], 3, 0);
        s.set_peers(&["p1".into()]);
        s.set_have("p1", Some(vec![false; 3]));
        s.set_pending("p1", vec![true, false, true]);
        assert_eq!(s.assign(), Some((Source::Master, 1)));
        assert_eq!(s.assign(), None, "0 and 2 come from p1 once it holds them");
        s.set_have("p1", Some(vec![true, false, false]));
        assert_eq!(s.assign(), Some((peer("p1"), 0)));
        assert_eq!(
            s.assign(),
            Some((Source::Master, 2)),
            "p1 no longer says it fetches 2"
        );
        let p = Partials::default();
        let id = ClipId::of(b"clip");
        p.start(id, 10, 30, &[false; 3]);
        p.pending(&id, 1, true);
        assert_eq!(
            p.get(&id).map(|h| h.pending_bits()),
            Some(vec![false, true, false])
        );
        p.hold(&id, 1);
        let have = p.get(&id).expect("map");
        assert_eq!(have.pending, "", "held: no longer pending");
        assert_eq!(have.bits(10, 30), Some(vec![false, true, false]));
    }

    #[test]
    fn peers_named_no_more_leave_once_idle() {
        let mut s = Schedule::new(&[false; 2], 2, 0);
        s.set_peers(&["p1".into()]);
        s.set_have("p1", Some(vec![true, true]));
        let (src, k) = s.assign().expect("request");
        s.set_peers(&[]);
        assert_eq!(s.peers(), vec!["p1".to_string()], "busy: kept");
        s.done(&src, k);
        s.set_peers(&[]);
        assert!(s.peers().is_empty());
    }
}
