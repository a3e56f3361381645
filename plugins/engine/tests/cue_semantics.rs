//! Issue 11: cue engine semantics as lighting programmers expect (grandMA3 / ETC Eos
//! defaults), as exact DMX values at exact ticks through the same `EnginePlugin` systems that
//! `rockontrol render` runs (one `update()` per tick at 44 Hz). Each test is one rule of the
//! README's "Cue semantics" section; the issue's examples are the cases.

mod common;

use common::{TestShow, show};

/// Tick `k`'s show time in seconds at 44 Hz.
fn secs(k: u64) -> f64 {
    k as f64 / 44.0
}

/// An 8-bit level rounded half up, as the engine writes it.
fn dmx(level: f64) -> u8 {
    (level.clamp(0.0, 1.0) * 255.0 + 0.5) as u8
}

// ---- Defect 1: follows at their exact show time, nothing accumulates ----------------------

#[test]
fn a_chase_steps_at_exact_show_times_without_drift() {
    // 2-step loop, `follow: After(0.125)` on both: 5.5 ticks per step at 44 Hz.
    let mut t = TestShow::new(&show(
        r#"(name: "chase", looped: true, cues: [
            (number: 1, follow: After(0.125), values: {Fixture(1): {Intensity: Dmx(200)}}),
            (number: 2, follow: After(0.125), values: {Fixture(1): {Intensity: Dmx(100)}}),
        ])"#,
        r#"(name: "chase", cue_list: "chase")"#,
    ));
    t.at(0, "go chase").run_through(176); // 4 s
    let series = t.series(0..=176, 1, 1);
    let changes: Vec<u64> = (1..=176u64)
        .filter(|&k| series[k as usize] != series[k as usize - 1])
        .collect();
    // Step n is due at n × 0.125 s and shows at the first tick at or after it: ⌈5.5 n⌉.
    let expected: Vec<u64> = (1..=32u64).map(|n| (11 * n).div_ceil(2)).collect();
    assert_eq!(&expected[..5], &[6, 11, 17, 22, 28]);
    assert_eq!(
        changes, expected,
        "32 steps in 4 s, each at the first tick at or after n × 0.125 s"
    );
    assert_eq!(
        series[176], 200,
        "step 32 (even) is cue 1 again, at exactly 4 s"
    );
}

#[test]
fn a_fade_started_by_a_follow_runs_from_the_follows_exact_time() {
    // Cue 2 is due at 0.125 s (between ticks 5 and 6) and fades in over 1 s.
    let mut t = TestShow::new(&show(
        r#"(name: "main", cues: [
            (number: 1, follow: After(0.125), values: {Fixture(1): {Intensity: 0.0}}),
            (number: 2, fade_in: 1.0, values: {Fixture(1): {Intensity: 1.0}}),
        ])"#,
        r#"(name: "main", cue_list: "main")"#,
    ));
    t.at(0, "go main").run_through(60);
    assert_eq!(t.dmx(5, 1, 1), 0, "before the follow");
    for k in 6..=60u64 {
        assert_eq!(
            t.dmx(k, 1, 1),
            dmx(secs(k) - 0.125),
            "tick {k}: the fade started at 0.125 s, not at tick 6"
        );
    }
    assert_eq!(
        t.dmx(6, 1, 1),
        3,
        "0.0114 s into the fade at tick 6: 2.9 → 3"
    );
    assert_eq!(t.dmx(49, 1, 1), 252, "tick 49 is 0.0114 s before the end");
    assert_eq!(t.dmx(50, 1, 1), 255);
}

// ---- Defect 2 and decision 1: LTP per channel, only what a cue moves takes it --------------

#[test]
fn a_playback_does_not_take_back_a_channel_its_cue_does_not_move() {
    // A fades Red 0→1 over 2 s from 0 s; B sets Red 0.2 at 0.5 s; at 1 s A runs a cue that
    // changes only Pan, with a 1 s fade.
    let mut t = TestShow::new(&show(
        r#"(name: "a", cues: [
               (number: 1, fade_in: 2.0, values: {Fixture(2): {Red: 1.0}}),
               (number: 2, fade_in: 1.0, values: {Fixture(3): {Pan: 1.0}}),
           ]),
           (name: "b", cues: [(number: 1, values: {Fixture(2): {Red: 0.2}})])"#,
        r#"(name: "a", cue_list: "a"), (name: "b", cue_list: "b")"#,
    ));
    t.at(0, "go a")
        .at(22, "go b")
        .at(44, "go a")
        .run_through(132);
    assert_eq!(t.dmx(21, 1, 11), dmx(21.0 / 88.0), "A's fade before B");
    assert_eq!(t.dmx(22, 1, 11), 51, "B snaps Red to 0.2");
    assert_eq!(
        t.series(43..=45, 1, 11),
        vec![51, 51, 51],
        "A's Pan cue does not take Red back: no jump at 1 s"
    );
    assert_eq!(t.series(88..=132, 1, 11), vec![51; 45], "B keeps Red");
    assert_eq!(t.dmx(66, 1, 20), 128, "A's Pan is half way at 1.5 s");
    let red = t.series(0..=132, 1, 11);
    for k in 1..red.len() {
        if k != 22 {
            assert!(
                red[k].abs_diff(red[k - 1]) <= 3,
                "Red jumps from {} to {} at tick {k} without a 0 s fade",
                red[k - 1],
                red[k]
            );
        }
    }
}

#[test]
fn a_go_leaves_tracked_values_another_playback_took() {
    // A's cue 1 sets Red 1.0 and its cue 2 only Blue. B sets Red 0.2 at 1 s. A's GO to cue 2
    // at 2 s leaves Red at 51.
    let mut t = TestShow::new(&show(
        r#"(name: "a", cues: [
               (number: 1, values: {Fixture(2): {Red: 1.0}}),
               (number: 2, values: {Fixture(2): {Blue: 1.0}}),
           ]),
           (name: "b", cues: [(number: 1, values: {Fixture(2): {Red: 0.2}})])"#,
        r#"(name: "a", cue_list: "a"), (name: "b", cue_list: "b")"#,
    ));
    t.at(0, "go a")
        .at(44, "go b")
        .at(88, "go a")
        .run_through(90);
    assert_eq!(t.dmx(43, 1, 11), 255);
    assert_eq!(t.dmx(44, 1, 11), 51, "B takes Red");
    assert_eq!(
        (t.dmx(88, 1, 11), t.dmx(88, 1, 13)),
        (51, 255),
        "A's cue 2 moves only Blue: Red stays B's"
    );
}

#[test]
fn a_running_chase_does_not_steal_colour_it_does_not_change() {
    // The chase changes intensity only after its first step; "main" sets Red later.
    let mut t = TestShow::new(&show(
        r#"(name: "chase", looped: true, cues: [
               (number: 1, follow: After(0.25), values: {Fixture(2): {Intensity: 1.0, Red: 0.0}}),
               (number: 2, follow: After(0.25), values: {Fixture(2): {Intensity: 0.0}}),
           ]),
           (name: "main", cues: [(number: 1, values: {Fixture(2): {Red: 0.5}})])"#,
        r#"(name: "chase", cue_list: "chase"), (name: "main", cue_list: "main")"#,
    ));
    t.at(0, "go chase").at(5, "go main").run_through(100);
    assert_eq!(t.dmx(4, 1, 11), 0, "the chase's cue 1 sets Red 0");
    // Steps at 11, 22 (wrap to cue 1), 33, 44, …: intensity alternates, Red stays main's.
    assert_eq!(t.series(5..=100, 1, 11), vec![128; 96], "main keeps Red");
    assert_eq!(
        (t.dmx(11, 1, 10), t.dmx(22, 1, 10), t.dmx(33, 1, 10)),
        (0, 255, 0),
        "the chase still steps"
    );
}

#[test]
fn an_assert_cue_takes_its_whole_tracked_state_back_with_its_fade() {
    let mut t = TestShow::new(&show(
        r#"(name: "a", cues: [
               (number: 1, values: {Fixture(2): {Red: 1.0}}),
               (number: 2, fade_in: 1.0, assert: true, values: {Fixture(2): {Blue: 1.0}}),
           ]),
           (name: "b", cues: [(number: 1, values: {Fixture(2): {Red: 0.2}})])"#,
        r#"(name: "a", cue_list: "a"), (name: "b", cue_list: "b")"#,
    ));
    t.at(0, "go a")
        .at(44, "go b")
        .at(88, "go a")
        .run_through(140);
    // Red is re-asserted from where the output is (B's 0.2) to A's 1.0 over cue 2's 1 s fade.
    for k in 88..=132u64 {
        let p = (k - 88) as f64 / 44.0;
        assert_eq!(t.dmx(k, 1, 11), dmx(0.2 + 0.8 * p), "Red at tick {k}");
        assert_eq!(t.dmx(k, 1, 13), dmx(p), "Blue at tick {k}");
    }
}

// ---- Decision 2: a delay does not freeze a running fade -----------------------------------

#[test]
fn a_delayed_cue_lets_a_running_fade_run_until_its_delay_ends() {
    let mut t = TestShow::new(&show(
        r#"(name: "main", cues: [
            (number: 1, fade_in: 2.0, values: {Fixture(1): {Intensity: 1.0}, Fixture(2): {Red: 1.0}}),
            (number: 2, delay: 0.5, fade_in: 1.0, values: {Fixture(1): {Intensity: 0.0}, Fixture(2): {Red: 0.0}}),
        ])"#,
        r#"(name: "main", cue_list: "main")"#,
    ));
    t.at(0, "go main").at(44, "go main").run_through(120);
    for k in 44..=66u64 {
        let level = dmx(secs(k) / 2.0);
        assert_eq!(t.dmx(k, 1, 1), level, "intensity keeps rising at tick {k}");
        assert_eq!(t.dmx(k, 1, 11), level, "red keeps rising at tick {k}");
    }
    // At 1.5 s both are at 0.75 and fade from there to 0 over 1 s.
    for k in 66..=120u64 {
        let level = dmx(0.75 * (1.0 - (secs(k) - 1.5)));
        assert_eq!(
            t.dmx(k, 1, 1),
            level,
            "intensity fades from 0.75 at tick {k}"
        );
        assert_eq!(t.dmx(k, 1, 11), level, "red fades from 0.75 at tick {k}");
    }
}

#[test]
fn a_delayed_move_takes_the_channel_when_its_delay_ends() {
    // A's cue 2 moves Red after a 1 s delay; B takes Red during the delay. A's move happens
    // at GO + delay, after B's action, so A takes Red then, fading from B's value.
    let mut t = TestShow::new(&show(
        r#"(name: "a", cues: [
               (number: 1, values: {Fixture(2): {Red: 1.0}}),
               (number: 2, delay: 1.0, fade_in: 1.0, values: {Fixture(2): {Red: 0.0}}),
           ]),
           (name: "b", cues: [(number: 1, values: {Fixture(2): {Red: 0.2}})])"#,
        r#"(name: "a", cue_list: "a"), (name: "b", cue_list: "b")"#,
    ));
    t.at(0, "go a")
        .at(44, "go a")
        .at(66, "go b")
        .run_through(140);
    assert_eq!(
        t.series(44..=65, 1, 11),
        vec![255; 22],
        "A's Red holds in the delay"
    );
    assert_eq!(t.series(66..=88, 1, 11), vec![51; 23], "B took Red");
    for k in 88..=132u64 {
        let p = (k - 88) as f64 / 44.0;
        assert_eq!(
            t.dmx(k, 1, 11),
            dmx(0.2 * (1.0 - p)),
            "A fades Red from 0.2 at tick {k}"
        );
    }
}

// ---- Defect 3 and decision 3: release -----------------------------------------------------

/// A fixture with Dimmer (1), Red (2) and an 8-bit Pan whose default is 100 (3).
const MOVER: &str = r#"
    universes: [(id: 1)],
    profiles: [(manufacturer: "Test", model: "Mover",
        channels: [(name: "Dimmer", attribute: Intensity), (name: "R", attribute: Red),
                   (name: "Pan", attribute: Pan, default: 100)],
        modes: [(name: "3ch", channels: ["Dimmer", "R", "Pan"])])],
    fixtures: [(id: 1, name: "Mover", profile: "Test/Mover", mode: "3ch", universe: 1, address: 1)],
"#;

fn mover_show(cue_lists: &str, playbacks: &str) -> String {
    format!("(name: \"mover\", {MOVER} cue_lists: [{cue_lists}], playbacks: [{playbacks}])")
}

fn mover(t: &TestShow, k: u64) -> (u8, u8, u8) {
    (t.dmx(k, 1, 1), t.dmx(k, 1, 2), t.dmx(k, 1, 3))
}

#[test]
fn a_release_with_no_release_time_is_complete_on_its_tick() {
    let mut t = TestShow::new(&mover_show(
        r#"(name: "a", cues: [(number: 1, values: {Fixture(1): {Intensity: 1.0, Red: 1.0, Pan: 0.5}})])"#,
        r#"(name: "a", cue_list: "a")"#,
    ));
    t.at(0, "go a").at(44, "release a").run_through(46);
    assert_eq!(mover(&t, 43), (255, 255, 128));
    assert_eq!(
        mover(&t, 44),
        (0, 0, 100),
        "released at 1 s: intensity 0, Red and Pan at their defaults on tick 44"
    );
    assert_eq!(mover(&t, 45), (0, 0, 100));
}

#[test]
fn a_release_fades_back_to_what_lies_beneath_over_the_release_time() {
    let mut t = TestShow::new(&mover_show(
        r#"(name: "a", cues: [(number: 1, values: {Fixture(1): {Intensity: 1.0, Red: 1.0, Pan: 1.0}})]),
           (name: "b", cues: [(number: 1, values: {Fixture(1): {Intensity: 0.2, Red: 0.2}})])"#,
        r#"(name: "a", cue_list: "a", release_time: 1.0), (name: "b", cue_list: "b")"#,
    ));
    t.at(0, "go b")
        .at(1, "go a")
        .at(44, "release a")
        .run_through(100);
    assert_eq!(mover(&t, 43), (255, 255, 255), "A on top");
    for k in 44..=88u64 {
        let p = (k - 44) as f64 / 44.0;
        assert_eq!(
            mover(&t, k),
            (
                dmx((1.0 - p).max(0.2)),
                dmx(1.0 - 0.8 * p),
                dmx(1.0 - p * (1.0 - 100.0 / 255.0)),
            ),
            "tick {k}: intensity to B's 0.2 (HTP), Red to B's 0.2, Pan to its default 100"
        );
    }
    assert_eq!(
        mover(&t, 100),
        (51, 51, 100),
        "B's look and the default remain"
    );
}

#[test]
fn a_go_during_a_release_starts_at_the_first_cue() {
    let mut t = TestShow::new(&mover_show(
        r#"(name: "a", cues: [
               (number: 1, values: {Fixture(1): {Intensity: 0.4}}),
               (number: 2, values: {Fixture(1): {Intensity: 1.0, Red: 1.0}}),
           ])"#,
        r#"(name: "a", cue_list: "a", release_time: 1.0)"#,
    ));
    t.at(0, "go a")
        .at(10, "go a")
        .at(44, "release a")
        .at(66, "go a")
        .run_through(100);
    assert!(t.rejections().is_empty(), "{:?}", t.rejections());
    let releasing = dmx(1.0 - 21.0 / 44.0);
    assert_eq!(
        mover(&t, 65),
        (releasing, releasing, 100),
        "cue 2 releasing"
    );
    // Cue 1 snaps intensity to 0.4; Red, which cue 1 does not set, goes on releasing.
    for k in 66..=88u64 {
        let p = (k - 44) as f64 / 44.0;
        assert_eq!(mover(&t, k), (102, dmx(1.0 - p), 100), "tick {k}");
    }
    assert_eq!(mover(&t, 100), (102, 0, 100));
}

// ---- Decision 4: BACK does not arm a follow -----------------------------------------------

#[test]
fn back_into_a_cue_with_a_follow_stays_there() {
    let mut t = TestShow::new(&show(
        r#"(name: "main", cues: [
            (number: 1, follow: After(0.5), values: {Fixture(1): {Intensity: Dmx(10)}}),
            (number: 2, values: {Fixture(1): {Intensity: Dmx(20)}}),
        ])"#,
        r#"(name: "main", cue_list: "main")"#,
    ));
    t.at(0, "go main").at(30, "back main").run_through(120);
    assert_eq!(
        (t.dmx(21, 1, 1), t.dmx(22, 1, 1)),
        (10, 20),
        "the GO armed the follow"
    );
    assert_eq!(
        t.series(30..=120, 1, 1),
        vec![10; 91],
        "after BACK, cue 1 stays"
    );
}

#[test]
fn goto_a_cue_with_a_follow_arms_it() {
    let mut t = TestShow::new(&show(
        r#"(name: "main", cues: [
            (number: 1, follow: After(0.5), values: {Fixture(1): {Intensity: Dmx(10)}}),
            (number: 2, values: {Fixture(1): {Intensity: Dmx(20)}}),
        ])"#,
        r#"(name: "main", cue_list: "main")"#,
    ));
    t.at(0, "goto main 2").at(10, "goto main 1").run_through(40);
    assert_eq!((t.dmx(31, 1, 1), t.dmx(32, 1, 1)), (10, 20));
}

// ---- Decision 5: kept readings -------------------------------------------------------------

#[test]
fn a_bare_blackout_means_on() {
    let mut t = TestShow::new(&show(
        r#"(name: "main", cues: [(number: 1, values: {Fixture(1): {Intensity: 1.0}})])"#,
        r#"(name: "main", cue_list: "main")"#,
    ));
    t.at(0, "go main").at(2, "blackout").run_through(3);
    assert_eq!(t.series(0..=3, 1, 1), vec![255, 255, 0, 0]);
}

#[test]
fn a_looped_list_wraps_to_the_first_cues_state() {
    let mut t = TestShow::new(&show(
        r#"(name: "loop", looped: true, cues: [
            (number: 1, values: {Fixture(2): {Intensity: 1.0}}),
            (number: 2, values: {Fixture(2): {Red: 1.0}, Fixture(1): {Intensity: 1.0}}),
        ])"#,
        r#"(name: "loop", cue_list: "loop")"#,
    ));
    t.at(0, "go loop")
        .at(2, "go loop")
        .at(4, "go loop")
        .run_through(5);
    let wash = |k| (t.dmx(k, 1, 1), t.dmx(k, 1, 10), t.dmx(k, 1, 11));
    assert_eq!(
        wash(2),
        (255, 255, 255),
        "cue 2 tracks the wash's intensity"
    );
    assert_eq!(
        wash(4),
        (0, 255, 0),
        "the wrap restarts at cue 1's state: what cue 1 does not set is out or at its default"
    );
}

// ---- The new show fields ---------------------------------------------------------------------

#[test]
fn assert_and_release_time_are_optional_checked_and_written_back() {
    use rockontrol_engine::CompiledShow;
    use rockontrol_show::{parse_show, to_ron_string};
    let ron = show(
        r#"(name: "a", cues: [(number: 1, assert: true, values: {Fixture(1): {Intensity: 1.0}}),
                              (number: 2, values: {Fixture(1): {Intensity: 0.5}})])"#,
        r#"(name: "a", cue_list: "a", release_time: 2.5), (name: "b", cue_list: "a")"#,
    );
    let parsed = parse_show(&ron, "new.ron").expect("parses");
    let cues = &parsed.cue_lists[0].cues;
    assert!(
        cues[0].assert && !cues[1].assert,
        "assert defaults to false"
    );
    assert_eq!(
        (
            parsed.playbacks[0].release_time,
            parsed.playbacks[1].release_time
        ),
        (2.5, 0.0),
        "release_time defaults to 0 s"
    );
    let written = to_ron_string(&parsed);
    assert_eq!(written.matches("assert: true").count(), 1, "{written}");
    assert_eq!(
        written.matches("release_time").count(),
        1,
        "defaults left out: {written}"
    );
    assert_eq!(
        parse_show(&written, "back.ron").expect("reads back"),
        parsed
    );

    let bad = show(
        r#"(name: "a", cues: [(number: 1, values: {Fixture(1): {Intensity: 1.0}})])"#,
        r#"(name: "a", cue_list: "a", release_time: -1.0)"#,
    );
    let e = CompiledShow::compile(&parse_show(&bad, "bad.ron").expect("parses"))
        .expect_err("a negative release time is refused");
    assert!(
        e.to_string()
            .contains("playback \"a\": release_time -1.0 is not a time"),
        "names the playback and the field: {e}"
    );
}

// ---- The GO gate reads the cue a command would run (issue 13) -----------------------------

/// `FadeEngine::cue_to_run` names the cue Go, Back and Goto then run, for every kind of step:
/// the first GO, a GO on a tick whose follow fires first, BACK, GOTO, a GO that wraps a looped
/// list, and none for a GO past the end or a non-cue command.
#[test]
fn the_cue_a_command_would_run_is_read_without_running_it() {
    let mut t = TestShow::new(&show(
        r#"(name: "main", cues: [
            (number: 1, follow: After(0.5), values: {Fixture(1): {Intensity: Dmx(10)}}),
            (number: 2, values: {Fixture(1): {Intensity: Dmx(20)}}),
            (number: 3, values: {Fixture(1): {Intensity: Dmx(30)}}),
        ]), (name: "loop", looped: true, cues: [
            (number: 1, values: {Fixture(1): {Intensity: Dmx(40)}}),
            (number: 2.5, values: {Fixture(1): {Intensity: Dmx(50)}}),
        ])"#,
        r#"(name: "main", cue_list: "main"), (name: "fx", cue_list: "loop")"#,
    ));
    t.run_through(0);
    type Step<'a> = (u64, &'a str, Option<(&'a str, u32)>);
    let script: [Step; 9] = [
        (1, "go main", Some(("main", 1000))),
        // The follow of cue 1 fires at tick 23 (1 + 0.5 s at 44 Hz): GO then runs cue 3.
        (23, "go main", Some(("main", 3000))),
        (24, "go main", None),
        (25, "back main", Some(("main", 2000))),
        (26, "goto main 1", Some(("main", 1000))),
        (27, "go fx", Some(("loop", 1000))),
        (28, "go fx", Some(("loop", 2500))),
        (29, "go fx", Some(("loop", 1000))),
        (30, "blackout", None),
    ];
    let mut engine = t
        .app
        .world_mut()
        .resource_mut::<rockontrol_engine::ShowEngine>();
    let running = engine.running().expect("a compiled show");
    for (tick, text, want) in script {
        let command: rockontrol_engine::Command = text.parse().expect("command");
        running.seam.advance(running.fade, running.state, tick);
        let read = running.fade.cue_to_run(running.state, &command);
        let want = want.map(|(l, c)| (l.to_string(), rockontrol_show::CueNumber(c)));
        assert_eq!(read, want, "tick {tick}: {text}");
        let ran = running
            .seam
            .apply(running.fade, running.state, &command, tick)
            .unwrap_or_default()
            .into_iter()
            .find_map(|e| match e {
                rockontrol_engine::Event::Cue { cue, .. } => Some(cue),
                _ => None,
            });
        assert_eq!(
            ran,
            read.map(|(_, c)| c),
            "tick {tick}: {text} ran that cue"
        );
    }
}
