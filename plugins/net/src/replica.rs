//! The receiver's side of replication: which snapshot and deltas to apply, and when to ask for
//! a new snapshot. Plain logic, no I/O.

use std::collections::BTreeMap;

use rockontrol_engine::Command;

use crate::protocol::{Delta, Snapshot};

/// What the receiver should do with a message.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplicaAction {
    /// Replace the playback state (and the show if the hash differs) and set the clock.
    ApplySnapshot(Snapshot),
    /// Apply these commands, each at its tick, in order.
    Apply(Vec<(u64, Command)>),
    /// A sequence number was skipped: ask the master for a snapshot.
    RequestSnapshot { expected: u64, got: u64 },
    /// Already applied (a repeat): nothing to do.
    Ignore,
}

/// Sequence tracking of the replicated stream.
#[derive(Debug, Default)]
pub struct Replica {
    /// Sequence of the latest snapshot or delta applied; `None` before the first snapshot.
    pub seq: Option<u64>,
    /// Deltas that arrived after a gap, kept until a snapshot covers them.
    held: BTreeMap<u64, Delta>,
    /// A snapshot was asked for and has not come yet.
    pub awaiting_snapshot: bool,
}

impl Replica {
    /// A snapshot arrived.
    pub fn on_snapshot(&mut self, snapshot: Snapshot) -> ReplicaAction {
        let seq = snapshot.seq;
        self.seq = Some(seq);
        self.awaiting_snapshot = false;
        self.held = self.held.split_off(&(seq + 1));
        ReplicaAction::ApplySnapshot(snapshot)
    }

    /// The deltas held after a snapshot that now follow on from it.
    pub fn drain_held(&mut self) -> Vec<(u64, Command)> {
        let mut out = Vec::new();
        while let Some(seq) = self.seq {
            let Some(d) = self.held.remove(&(seq + 1)) else {
                break;
            };
            self.seq = Some(d.seq);
            out.push((d.tick, d.command));
        }
        out
    }

    /// A delta arrived.
    pub fn on_delta(&mut self, delta: Delta) -> ReplicaAction {
        let Some(seq) = self.seq else {
            // No snapshot yet: it is on its way (the master sends one after the welcome).
            self.held.insert(delta.seq, delta);
            return ReplicaAction::Ignore;
        };
        if delta.seq <= seq {
            return ReplicaAction::Ignore;
        }
        if delta.seq > seq + 1 {
            let expected = seq + 1;
            let got = delta.seq;
            self.held.insert(delta.seq, delta);
            if self.awaiting_snapshot {
                return ReplicaAction::Ignore;
            }
            self.awaiting_snapshot = true;
            return ReplicaAction::RequestSnapshot { expected, got };
        }
        self.seq = Some(delta.seq);
        let mut out = vec![(delta.tick, delta.command)];
        out.extend(self.drain_held());
        ReplicaAction::Apply(out)
    }

    /// The link dropped: the next connection starts from a snapshot.
    pub fn reset(&mut self) {
        self.seq = None;
        self.held.clear();
        self.awaiting_snapshot = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(seq: u64) -> Snapshot {
        Snapshot {
            seq,
            tick: 100,
            rate: 44,
            show_hash: None,
            parts: Default::default(),
        }
    }
    fn delta(seq: u64) -> Delta {
        Delta {
            seq,
            tick: 100 + seq,
            command: Command::GrandMaster {
                level: seq as f64 / 10.0,
            },
        }
    }

    #[test]
    fn in_order_deltas_apply_and_repeats_are_ignored() {
        let mut r = Replica::default();
        assert!(matches!(
            r.on_snapshot(snap(5)),
            ReplicaAction::ApplySnapshot(_)
        ));
        assert!(matches!(r.on_delta(delta(6)), ReplicaAction::Apply(v) if v.len() == 1));
        assert_eq!(r.on_delta(delta(6)), ReplicaAction::Ignore, "a repeat");
        assert_eq!(
            r.on_delta(delta(3)),
            ReplicaAction::Ignore,
            "older than the snapshot"
        );
        assert_eq!(r.seq, Some(6));
    }

    #[test]
    fn a_gap_asks_once_for_a_snapshot_and_held_deltas_follow_it() {
        let mut r = Replica::default();
        r.on_snapshot(snap(1));
        assert_eq!(
            r.on_delta(delta(3)),
            ReplicaAction::RequestSnapshot {
                expected: 2,
                got: 3
            }
        );
        assert_eq!(r.on_delta(delta(4)), ReplicaAction::Ignore, "asked already");
        // The snapshot covers up to 3; delta 4 follows on from it.
        assert!(matches!(
            r.on_snapshot(snap(3)),
            ReplicaAction::ApplySnapshot(_)
        ));
        let held = r.drain_held();
        assert_eq!(held.len(), 1, "delta 4 applies after snapshot 3");
        assert_eq!(held[0].0, 104);
        assert_eq!(r.seq, Some(4));
        assert!(!r.awaiting_snapshot);
    }

    #[test]
    fn deltas_before_the_first_snapshot_wait_for_it() {
        let mut r = Replica::default();
        assert_eq!(r.on_delta(delta(2)), ReplicaAction::Ignore);
        r.on_snapshot(snap(1));
        assert_eq!(r.drain_held().len(), 1);
        assert_eq!(r.seq, Some(2));
    }
}
