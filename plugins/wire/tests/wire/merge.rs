//! The sACN sequence rule (§6.7.2) and the receiver merge, table-driven.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use rockontrol_wire::sacn::{
    DataPacket, MergeConfig, Merger, Options, Reception, SequenceTracker, sequence_is_newer,
};

#[test]
fn sequence_rule_table() {
    // (last accepted, new, accepted?)
    let cases: &[(u8, u8, bool)] = &[
        (0, 1, true),     // the next one
        (255, 0, true),   // wrap-around 255 -> 0
        (254, 1, true),   // wrap-around with a gap
        (10, 10, false),  // duplicate: diff 0
        (10, 9, false),   // one late: diff -1
        (20, 1, false),   // diff -19: still inside the window
        (20, 0, true),    // diff -20: outside, taken as a restart
        (0, 237, false),  // diff -19 across the wrap
        (0, 236, true),   // diff -20 across the wrap
        (0, 127, true),   // diff +127
        (0, 128, true),   // diff -128
        (100, 200, true), // a big jump forward
    ];
    for &(last, new, accepted) in cases {
        assert_eq!(
            sequence_is_newer(last, new),
            accepted,
            "after {last}, {new} accepted = {accepted}"
        );
        let mut tracker = SequenceTracker::new();
        assert!(tracker.accept(last), "first packet always accepted");
        assert_eq!(
            tracker.accept(new),
            accepted,
            "tracker: after {last}, {new}"
        );
        let expected_last = if accepted { new } else { last };
        assert_eq!(
            tracker.last(),
            Some(expected_last),
            "tracker remembers accepted only"
        );
    }
}

#[test]
fn sequence_tracker_follows_a_stream_through_the_wrap() {
    let mut tracker = SequenceTracker::new();
    for sequence in (200..=255).chain(0..50) {
        assert!(tracker.accept(sequence), "in-order {sequence} accepted");
    }
    assert!(!tracker.accept(45), "a straggler from before is refused");
    tracker.reset();
    assert!(tracker.accept(45), "after reset anything is accepted");
}

const A: u8 = 0xa;
const B: u8 = 0xb;
const C: u8 = 0xc;

fn packet(source: u8, priority: u8, sequence: u8, slots: &[u8]) -> DataPacket<'_> {
    DataPacket {
        cid: [source; 16],
        source_name: Cow::Owned(format!("source {source:x}")),
        priority,
        sync_address: 0,
        sequence,
        options: Options::default(),
        universe: 1,
        start_code: 0,
        slots: Cow::Borrowed(slots),
    }
}

fn ms(t0: Instant, millis: u64) -> Instant {
    t0 + Duration::from_millis(millis)
}

fn merged(merger: &mut Merger, now: Instant) -> Option<(Vec<u8>, u8)> {
    merger
        .merged(1, now)
        .map(|m| (m.slots()[..m.slot_count()].to_vec(), m.priority()))
}

#[test]
fn merge_table() {
    struct Case {
        name: &'static str,
        /// (ms after start, source, priority, slots)
        packets: &'static [(u64, u8, u8, &'static [u8])],
        /// When to look, and what to see: merged slots and winning priority, or nothing.
        at: u64,
        expect: Option<(&'static [u8], u8)>,
    }
    let cases = [
        Case {
            name: "a single source passes through",
            packets: &[(0, A, 100, &[1, 2, 3])],
            at: 0,
            expect: Some((&[1, 2, 3], 100)),
        },
        Case {
            name: "priority 150 beats 100, even with lower levels",
            packets: &[(0, A, 100, &[255, 255, 255]), (0, B, 150, &[10, 20])],
            at: 0,
            expect: Some((&[10, 20], 150)),
        },
        Case {
            name: "HTP at equal priority, slot by slot",
            packets: &[(0, A, 100, &[10, 200, 0, 7]), (0, B, 100, &[100, 50])],
            at: 0,
            expect: Some((&[100, 200, 0, 7], 100)),
        },
        Case {
            name: "three sources, two tie on top",
            packets: &[
                (0, A, 120, &[1, 90]),
                (0, B, 120, &[80, 2]),
                (0, C, 50, &[255, 255, 255]),
            ],
            at: 0,
            expect: Some((&[80, 90], 120)),
        },
        Case {
            name: "a source is still live 1 ms before 2.5 s",
            packets: &[(0, A, 100, &[9])],
            at: 2_499,
            expect: Some((&[9], 100)),
        },
        Case {
            name: "a source is lost at exactly 2.5 s",
            packets: &[(0, A, 100, &[9])],
            at: 2_500,
            expect: None,
        },
        Case {
            name: "the lower priority takes over when the higher is lost",
            packets: &[
                (0, A, 150, &[200]),
                (0, B, 100, &[30]),
                (2_000, B, 100, &[31]),
                (2_600, B, 100, &[32]),
            ],
            at: 2_600,
            expect: Some((&[32], 100)),
        },
        Case {
            name: "the latest packet of a source replaces its slots (not HTP with itself)",
            packets: &[(0, A, 100, &[200, 200]), (25, A, 100, &[5])],
            at: 25,
            expect: Some((&[5], 100)),
        },
        Case {
            name: "zero slots",
            packets: &[(0, A, 100, &[])],
            at: 0,
            expect: Some((&[], 100)),
        },
    ];
    for case in cases {
        let t0 = Instant::now();
        let mut merger = Merger::new(MergeConfig::default());
        let mut sequences = [0u8; 256];
        for &(at, source, priority, slots) in case.packets {
            let sequence = &mut sequences[usize::from(source)];
            *sequence = sequence.wrapping_add(1);
            assert_eq!(
                merger.receive(&packet(source, priority, *sequence, slots), ms(t0, at)),
                Reception::Accepted,
                "{}: packet from {source:x} at {at} ms accepted",
                case.name
            );
        }
        let got = merged(&mut merger, ms(t0, case.at));
        let expect = case
            .expect
            .map(|(slots, priority)| (slots.to_vec(), priority));
        assert_eq!(got, expect, "{}", case.name);
    }
}

#[test]
fn stream_terminated_removes_the_source_at_once() {
    let t0 = Instant::now();
    let mut merger = Merger::new(MergeConfig::default());
    merger.receive(&packet(A, 100, 1, &[100, 100]), t0);
    merger.receive(&packet(B, 100, 1, &[50, 150]), t0);
    assert_eq!(
        merged(&mut merger, t0),
        Some((vec![100, 150], 100)),
        "both merged"
    );

    let mut terminate = packet(A, 100, 2, &[255, 255]);
    terminate.options.stream_terminated = true;
    assert_eq!(
        merger.receive(&terminate, ms(t0, 10)),
        Reception::Terminated,
        "termination reported"
    );
    assert_eq!(
        merged(&mut merger, ms(t0, 10)),
        Some((vec![50, 150], 100)),
        "A is gone at once and its last slots are ignored"
    );
    assert_eq!(merger.sources(1).count(), 1, "one source left");

    let mut terminate_b = packet(B, 100, 2, &[]);
    terminate_b.options.stream_terminated = true;
    merger.receive(&terminate_b, ms(t0, 20));
    assert_eq!(
        merged(&mut merger, ms(t0, 20)),
        None,
        "no sources: nothing to merge"
    );
    assert_eq!(merger.universes().count(), 0, "the universe is forgotten");
}

#[test]
fn out_of_sequence_packets_are_discarded() {
    let t0 = Instant::now();
    let mut merger = Merger::new(MergeConfig::default());
    assert_eq!(
        merger.receive(&packet(A, 100, 255, &[1]), t0),
        Reception::Accepted,
        "255"
    );
    assert_eq!(
        merger.receive(&packet(A, 100, 0, &[2]), ms(t0, 1)),
        Reception::Accepted,
        "255 -> 0 wraps"
    );
    assert_eq!(
        merger.receive(&packet(A, 100, 250, &[99]), ms(t0, 2)),
        Reception::OutOfSequence,
        "a stale packet (diff -6) is refused"
    );
    assert_eq!(
        merged(&mut merger, ms(t0, 2)),
        Some((vec![2], 100)),
        "stale slots ignored"
    );
    // A source that comes back after being lost starts a new stream at any sequence.
    assert_eq!(
        merger.receive(&packet(A, 100, 250, &[3]), ms(t0, 3_000)),
        Reception::Accepted,
        "after a loss the sequence restarts"
    );
}

#[test]
fn preview_and_alternate_start_codes_are_not_merged() {
    let t0 = Instant::now();
    let mut merger = Merger::new(MergeConfig::default());
    let mut preview = packet(A, 100, 1, &[1]);
    preview.options.preview = true;
    assert_eq!(
        merger.receive(&preview, t0),
        Reception::Preview,
        "preview ignored"
    );
    let mut priorities = packet(B, 100, 1, &[1]);
    priorities.start_code = 0xdd;
    assert_eq!(
        merger.receive(&priorities, t0),
        Reception::AlternateStartCode,
        "0xDD is not dimmer data"
    );
    assert_eq!(merged(&mut merger, t0), None, "nothing merged");

    let mut merger = Merger::new(MergeConfig {
        accept_preview: true,
        ..MergeConfig::default()
    });
    assert_eq!(
        merger.receive(&preview, t0),
        Reception::Accepted,
        "preview opted in"
    );
}

#[test]
fn sources_are_bounded() {
    let t0 = Instant::now();
    let mut merger = Merger::new(MergeConfig {
        max_sources_per_universe: 2,
        ..MergeConfig::default()
    });
    assert_eq!(
        merger.receive(&packet(A, 100, 1, &[1]), t0),
        Reception::Accepted,
        "A"
    );
    assert_eq!(
        merger.receive(&packet(B, 100, 1, &[1]), t0),
        Reception::Accepted,
        "B"
    );
    assert_eq!(
        merger.receive(&packet(C, 100, 1, &[1]), t0),
        Reception::TooManySources,
        "a third source is refused"
    );
    assert_eq!(
        merger.receive(&packet(C, 100, 1, &[1]), ms(t0, 2_500)),
        Reception::Accepted,
        "once the others are lost there is room"
    );
}

#[test]
fn source_list_reports_name_priority_and_rate() {
    let t0 = Instant::now();
    let mut merger = Merger::new(MergeConfig::default());
    // 44 packets per second for two seconds: k / 44 s, exact in nanoseconds at k = 44 and 88.
    for k in 0..=88u32 {
        let now = t0 + Duration::from_secs(1) * k / 44;
        assert_eq!(
            merger.receive(&packet(A, 120, k as u8, &[0; 512]), now),
            Reception::Accepted,
            "packet {k}"
        );
    }
    merger.receive(&packet(B, 100, 1, &[1, 2]), ms(t0, 1_500));
    let now = ms(t0, 2_000);
    let view = merger.merged(1, now).expect("live");
    assert_eq!(view.universe(), 1, "universe");
    let sources: Vec<_> = view.sources().collect();
    assert_eq!(sources.len(), 2, "two sources listed, winner and loser");
    assert_eq!(sources[0].cid, [A; 16], "A's CID");
    assert_eq!(sources[0].name, "source a", "A's name");
    assert_eq!(sources[0].priority, 120, "A's priority");
    assert_eq!(sources[0].slot_count, 512, "A's slot count");
    assert_eq!(sources[0].packet_rate, Some(44.0), "A sends at 44 Hz");
    assert_eq!(sources[0].last_seen, now, "A's last packet");
    assert_eq!(
        sources[1].packet_rate, None,
        "B has not been seen for a second yet"
    );
    assert_eq!(view.priority(), 120, "A wins");

    assert_eq!(
        merger.expire(ms(t0, 4_000)),
        1,
        "B lost at 4 s (last seen 1.5 s)"
    );
    assert_eq!(merger.expire(ms(t0, 4_500)), 1, "A lost at 4.5 s");
    assert_eq!(merger.universes().count(), 0, "nothing left");
}
