//! The link's rules, as pure logic with injected time: when a master counts as silent
//! ([`SilenceWatch`]) and which master to try next ([`MasterSelection`]). The sockets are
//! [`crate::receiver::link`]'s.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::discovery::Seen;

/// How a link finds its master.
#[derive(Debug, Clone)]
pub enum MasterAddress {
    Fixed(SocketAddr),
    /// The fixed address, if any, first; mDNS when that fails.
    Discover(Option<SocketAddr>),
}

/// How long a master that refused this node or failed to prove itself is tried last.
pub const DISTRUST_PERIOD: Duration = Duration::from_secs(60);

/// Silence from the master, measured from the last frame received from it. Only incoming
/// frames move it: a node that keeps sending its own heartbeats still notices a silent master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SilenceWatch {
    last_rx: Instant,
    limit: Duration,
}

impl SilenceWatch {
    /// Starts counting at `now` (the link came up).
    pub fn new(now: Instant, limit: Duration) -> Self {
        SilenceWatch {
            last_rx: now,
            limit,
        }
    }

    /// A frame from the master arrived at `now`.
    pub fn heard(&mut self, now: Instant) {
        self.last_rx = self.last_rx.max(now);
    }

    /// When the master counts as silent unless a frame arrives first.
    pub fn deadline(&self) -> Instant {
        self.last_rx + self.limit
    }

    /// Whether the master has been silent for the limit at `now`.
    pub fn is_silent(&self, now: Instant) -> bool {
        now >= self.deadline()
    }
}

/// Which master to try next: the order of candidates, as pure logic.
///
/// A round tries [`MasterSelection::before_discovery`] (the fixed address) first; if no link
/// came up, mDNS is asked and [`MasterSelection::after_discovery`] gives the rest: the masters
/// found (only the one named `master_id`, when set) not tried yet, then, as a last resort,
/// those distrusted for refusing this node or failing to prove themselves.
#[derive(Debug, Clone)]
pub struct MasterSelection {
    fixed: Option<SocketAddr>,
    discover: bool,
    master_id: Option<String>,
    /// Masters tried last, each until the time given.
    distrusted: Vec<(SocketAddr, Instant)>,
}

impl MasterSelection {
    pub fn new(address: &MasterAddress, master_id: Option<String>) -> Self {
        let (fixed, discover) = match address {
            MasterAddress::Fixed(a) => (Some(*a), false),
            MasterAddress::Discover(a) => (*a, true),
        };
        MasterSelection {
            fixed,
            discover,
            master_id,
            distrusted: Vec::new(),
        }
    }

    /// Whether mDNS is asked when the fixed address fails.
    pub fn discovers(&self) -> bool {
        self.discover
    }

    /// The configured master id.
    pub fn master_id(&self) -> Option<&str> {
        self.master_id.as_deref()
    }

    fn is_distrusted(&self, addr: SocketAddr, now: Instant) -> bool {
        self.distrusted
            .iter()
            .any(|(a, until)| *a == addr && now < *until)
    }

    /// What to try before asking mDNS: the fixed address, unless it is distrusted.
    pub fn before_discovery(&self, now: Instant) -> Vec<SocketAddr> {
        self.fixed
            .filter(|a| !self.is_distrusted(*a, now))
            .into_iter()
            .collect()
    }

    /// What to try after mDNS answered `seen`, none of `tried`: the wanted masters in the order
    /// seen, then the distrusted candidates (the fixed address first).
    pub fn after_discovery(
        &self,
        seen: &[Seen],
        tried: &[SocketAddr],
        now: Instant,
    ) -> Vec<SocketAddr> {
        let found: Vec<SocketAddr> = seen
            .iter()
            .filter(|s| crate::discovery::is_wanted_master(s, self.master_id()))
            .map(|s| s.addr)
            .collect();
        let mut order: Vec<SocketAddr> = Vec::new();
        let fresh = found.iter().filter(|a| !self.is_distrusted(**a, now));
        let last_resort = self
            .fixed
            .iter()
            .chain(&found)
            .filter(|a| self.is_distrusted(**a, now));
        for a in fresh.chain(last_resort) {
            if !tried.contains(a) && !order.contains(a) {
                order.push(*a);
            }
        }
        order
    }

    /// `addr` refused this node or failed to prove itself at `now`: tried last for a while.
    pub fn distrust(&mut self, addr: SocketAddr, now: Instant) {
        self.distrusted
            .retain(|(a, until)| *a != addr && now < *until);
        self.distrusted.push((addr, now + DISTRUST_PERIOD));
    }

    /// `addr` proved itself and linked this node.
    pub fn trust(&mut self, addr: SocketAddr) {
        self.distrusted.retain(|(a, _)| *a != addr);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn at(secs: f64, start: Instant) -> Instant {
        start + Duration::from_secs_f64(secs)
    }

    #[test]
    fn silence_counts_from_the_last_frame_received_not_sent() {
        let t0 = Instant::now();
        let mut watch = SilenceWatch::new(t0, Duration::from_secs(3));
        // The node sends its heartbeat at 1 s and 2 s: nothing here moves the watch; the
        // master said nothing since 0 s.
        assert!(!watch.is_silent(at(2.9, t0)));
        assert!(
            watch.is_silent(at(3.0, t0)),
            "silent 3 s after the last frame"
        );
        assert_eq!(watch.deadline(), at(3.0, t0));
        // A frame at 2.5 s moves the deadline to 5.5 s.
        watch.heard(at(2.5, t0));
        assert!(!watch.is_silent(at(5.4, t0)));
        assert!(watch.is_silent(at(5.5, t0)));
        // A frame stamped earlier (read late) never moves it back.
        watch.heard(at(1.0, t0));
        assert_eq!(watch.deadline(), at(5.5, t0));
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn seen(id: &str, role: &str, port: u16) -> Seen {
        Seen {
            node_id: id.into(),
            role: role.into(),
            addr: addr(port),
            txt: BTreeMap::new(),
        }
    }

    #[test]
    fn the_fixed_address_goes_first_and_mdns_only_after_it() {
        let t0 = Instant::now();
        let sel = MasterSelection::new(&MasterAddress::Discover(Some(addr(9000))), None);
        assert!(sel.discovers());
        assert_eq!(
            sel.before_discovery(t0),
            vec![addr(9000)],
            "master_ip first"
        );
        let mdns = [
            seen("master-01", "master", 9001),
            seen("node-02", "receiver", 9002),
            seen("master-01", "master", 9000),
        ];
        assert_eq!(
            sel.after_discovery(&mdns, &[addr(9000)], t0),
            vec![addr(9001)],
            "then masters over mDNS (receivers and what was tried left out)"
        );
        let fixed_only = MasterSelection::new(&MasterAddress::Fixed(addr(9000)), None);
        assert!(!fixed_only.discovers());
        assert_eq!(fixed_only.before_discovery(t0), vec![addr(9000)]);
        assert!(
            fixed_only
                .after_discovery(&[], &[addr(9000)], t0)
                .is_empty()
        );
        let mdns_only = MasterSelection::new(&MasterAddress::Discover(None), None);
        assert!(
            mdns_only.before_discovery(t0).is_empty(),
            "nothing to try first"
        );
    }

    #[test]
    fn mdns_answers_are_filtered_by_the_configured_master_id() {
        let t0 = Instant::now();
        let sel = MasterSelection::new(&MasterAddress::Discover(None), Some("master-01".into()));
        let mdns = [
            seen("rogue", "master", 9001),
            seen("master-01", "receiver", 9002),
            seen("master-01", "master", 9003),
        ];
        assert_eq!(sel.after_discovery(&mdns, &[], t0), vec![addr(9003)]);
        let any = MasterSelection::new(&MasterAddress::Discover(None), None);
        assert_eq!(
            any.after_discovery(&mdns, &[], t0),
            vec![addr(9001), addr(9003)],
            "without master_id every master, in the order seen"
        );
    }

    #[test]
    fn a_master_that_failed_to_prove_itself_is_tried_last_for_a_while() {
        let t0 = Instant::now();
        let mut sel = MasterSelection::new(&MasterAddress::Discover(Some(addr(9000))), None);
        let mdns = [seen("master-01", "master", 9001)];
        // The fixed address was an impostor: next round, mDNS goes first and the impostor
        // only comes after, as a last resort.
        sel.distrust(addr(9000), t0);
        assert!(sel.before_discovery(at(1.0, t0)).is_empty());
        assert_eq!(
            sel.after_discovery(&mdns, &[], at(1.0, t0)),
            vec![addr(9001), addr(9000)]
        );
        // A distrusted mDNS master goes behind the fixed one, too.
        sel.distrust(addr(9001), at(2.0, t0));
        assert_eq!(
            sel.after_discovery(&mdns, &[], at(3.0, t0)),
            vec![addr(9000), addr(9001)]
        );
        // Distrust ends after DISTRUST_PERIOD, or when the master links this node.
        let later = t0 + DISTRUST_PERIOD;
        assert_eq!(sel.before_discovery(later), vec![addr(9000)]);
        sel.trust(addr(9001));
        assert_eq!(
            sel.after_discovery(&mdns, &[], at(3.0, t0)),
            vec![addr(9001), addr(9000)]
        );
        // Distrusting again restarts the period instead of piling up entries.
        sel.distrust(addr(9000), later);
        sel.distrust(addr(9000), later);
        assert_eq!(sel.distrusted.len(), 1);
        assert!(sel.before_discovery(later + DISTRUST_PERIOD / 2).is_empty());
    }
}
