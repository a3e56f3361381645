//! Effects (issue 12): exact DMX values at exact ticks, a speed in BPM, Hz or beats, HTP and
//! LTP merging with cue levels, and two nodes computing the same frame from the same state.

mod common;

use common::{PATCH, TestShow};
use rockontrol_engine::{BeatClock, EffectBeat, ShowEngine};

/// Fixture 1 (address 1) and the Wash's dimmer (address 10): a ramp once a second, the two
/// half a cycle apart; the Wash's red (address 11, LTP) a square twice a second.
fn effects_show(speed: &str) -> String {
    format!(
        r#"(name: "fx", {PATCH}
    cue_lists: [(name: "main", cues: [(number: 1, values: {{Fixture(1): {{Intensity: 0.2}}, Fixture(2): {{Red: 0.4}}}})])],
    playbacks: [(name: "main", cue_list: "main")],
    effects: [
        (name: "ramp", fixtures: [1, 2], waveform: Ramp, speed: {speed}, spread: 0.5),
        (name: "flash", fixtures: [2], attribute: Red, waveform: Square, speed: Hz(2.0)),
    ],
)"#
    )
}

/// `round(255 · v)` as the engine writes a level.
fn byte(v: f64) -> u8 {
    (v * 255.0 + 0.5) as u8
}

fn assert_ramp(show: &TestShow, what: &str) {
    // 44 Hz: tick 11 is 0.25 s, 22 is 0.5 s, 33 is 0.75 s, 44 is 1 s (exact nanoseconds).
    // Fixture 1: max(cue 0.2, ramp); the Wash half a cycle on.
    let expect = [
        (0, byte(0.2), byte(0.5)),
        // 0.1136 s: the ramp's 0.11 is under the cue's 0.2 (HTP: the higher wins).
        (5, byte(0.2), byte(5.0 / 44.0 + 0.5)),
        (11, byte(0.25), byte(0.75)),
        (22, byte(0.5), 0),
        (33, byte(0.75), byte(0.25)),
        (44, byte(0.2), byte(0.5)),
    ];
    for (tick, one, wash) in expect {
        assert_eq!(
            show.dmx(tick, 1, 1),
            one,
            "{what}: fixture 1 at tick {tick}"
        );
        assert_eq!(
            show.dmx(tick, 1, 10),
            wash,
            "{what}: the Wash at tick {tick}"
        );
    }
}

#[test]
fn effects_give_exact_levels_at_exact_ticks_merged_with_the_cues() {
    let mut show = TestShow::new(&effects_show("Bpm(60.0)"));
    show.at(0, "goto main 1")
        .at(0, "effect ramp on")
        .at(0, "effect flash on")
        .at(66, "effect flash off")
        .at(88, "effect ramp off")
        .run_through(100);
    assert!(show.rejections().is_empty(), "{:?}", show.rejections());
    assert_ramp(&show, "60 BPM");
    // The square (LTP) replaces the cue's red: top for the first quarter second of each half.
    assert_eq!(show.dmx(0, 1, 11), 255, "square top at 0 s");
    assert_eq!(show.dmx(11, 1, 11), 0, "square bottom at 0.25 s");
    assert_eq!(show.dmx(22, 1, 11), 255, "top again at 0.5 s");
    // Stopped: the cue's own levels come back at the exact tick.
    assert_eq!(
        show.dmx(65, 1, 11),
        0,
        "1.477 s: the second half of a cycle, bottom"
    );
    assert_eq!(
        show.dmx(66, 1, 11),
        byte(0.4),
        "flash off at tick 66: the cue's red"
    );
    assert_eq!(
        show.dmx(87, 1, 10),
        byte(87.0 / 44.0 - 1.5),
        "ramp still on at tick 87"
    );
    assert_eq!(
        (show.dmx(88, 1, 1), show.dmx(88, 1, 10)),
        (byte(0.2), 0),
        "ramp off at tick 88: the cue's level, and the Wash's dimmer at its default"
    );
}

#[test]
fn a_speed_in_beats_follows_the_tempo() {
    // One cycle every 2 beats at 120 BPM is once a second: the same frames as 60 BPM.
    let mut show = TestShow::new(&effects_show("Beats(2.0)"));
    show.app
        .world_mut()
        .insert_resource(EffectBeat(Some(BeatClock {
            milli_bpm: 120_000,
            anchor_ns: 0,
        })));
    show.at(0, "goto main 1")
        .at(0, "effect ramp on")
        .run_through(44);
    assert_ramp(&show, "2 beats at 120 BPM");
    // At 60 BPM from 1 s on, 2 beats take 2 s: 0.5 s after beat 0 is a quarter cycle.
    show.app
        .world_mut()
        .insert_resource(EffectBeat(Some(BeatClock {
            milli_bpm: 60_000,
            anchor_ns: 1_000_000_000,
        })));
    show.run_through(66);
    assert_eq!(
        show.dmx(66, 1, 1),
        byte(0.25),
        "1.5 s: a quarter of a 2 s cycle"
    );
}

#[test]
fn two_nodes_render_the_same_effect_frame_from_the_replicated_state() {
    let ron = effects_show("Bpm(90.0)");
    let mut master = TestShow::new(&ron);
    master
        .at(0, "goto main 1")
        .at(3, "effect ramp on")
        .at(3, "effect flash on")
        .run_through(30);
    // The receiver gets the master's playback state as JSON (what replication carries) and
    // renders on from its own show clock.
    let state = master
        .app
        .world()
        .resource::<ShowEngine>()
        .state
        .clone()
        .expect("state");
    let wire = serde_json::to_string(&state).expect("serialise");
    assert!(
        wire.contains("\"effects\":[0,1]"),
        "running effects travel: {wire}"
    );
    let mut receiver = TestShow::new(&ron);
    receiver.run_through(30);
    receiver.app.world_mut().resource_mut::<ShowEngine>().state =
        Some(serde_json::from_str(&wire).expect("deserialise"));
    master.run_through(120);
    receiver.run_through(120);
    for tick in 31..=120 {
        for address in [1, 10, 11] {
            assert_eq!(
                receiver.dmx(tick, 1, address),
                master.dmx(tick, 1, address),
                "address {address} at tick {tick}: both nodes compute the same level"
            );
        }
    }
    assert_ne!(
        master.series(31..=60, 1, 10).iter().min(),
        master.series(31..=60, 1, 10).iter().max(),
        "the effect moves"
    );
}
