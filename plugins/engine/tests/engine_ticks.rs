//! Exact DMX values at exact ticks, through a real Bevy `App` running the engine in
//! `FixedUpdate` at 44 Hz (one `update()` per tick).

mod common;

use common::{TestShow, show};

/// round(255 * k / n): what a linear 8-bit fade shows k ticks into an n-tick fade.
fn ramp(k: u64, n: u64, from: f64, to: f64) -> u8 {
    let p = (k as f64 / n as f64).min(1.0);
    ((from + (to - from) * p) * 255.0 + 0.5) as u8
}

#[test]
fn intensity_fades_0_to_255_over_one_second_at_44_hz() {
    let mut t = TestShow::new(&show(
        r#"(name: "main", cues: [(number: 1, fade_in: 1.0, values: {Fixture(1): {Intensity: 1.0}})])"#,
        r#"(name: "main", cue_list: "main")"#,
    ));
    t.at(10, "go main").run_through(60);
    assert_eq!(
        t.series(0..=10, 1, 1),
        vec![0; 11],
        "dark until and at the GO tick"
    );
    for k in 0..=44 {
        assert_eq!(
            t.dmx(10 + k, 1, 1),
            ramp(k, 44, 0.0, 1.0),
            "tick {} ({k} ticks into the fade)",
            10 + k
        );
    }
    assert_eq!(
        t.dmx(32, 1, 1),
        128,
        "half way (22/44) is 127.5, rounded up"
    );
    assert_eq!(t.dmx(54, 1, 1), 255, "full after exactly 44 ticks");
    assert_eq!(t.series(54..=60, 1, 1), vec![255; 7], "holds at full");
}

#[test]
fn sixteen_bit_pan_fade_writes_coarse_and_fine() {
    let mut t = TestShow::new(&show(
        r#"(name: "main", cues: [(number: 1, fade_in: 2.0, values: {Fixture(3): {Pan: 1.0, Tilt: Dmx(4660)}})])"#,
        r#"(name: "main", cue_list: "main")"#,
    ));
    t.at(0, "go main").run_through(100);
    // Pan from default 0 to 65535 over 88 ticks: value(k) = round(65535 * k / 88).
    for k in [0u64, 1, 2, 11, 44, 87, 88] {
        let v = ((65535.0 * k as f64 / 88.0) + 0.5) as u32;
        assert_eq!(
            (t.dmx(k, 1, 20), t.dmx(k, 1, 21)),
            ((v >> 8) as u8, (v & 0xff) as u8),
            "pan coarse/fine at tick {k} (16-bit value {v})"
        );
    }
    assert_eq!(
        (t.dmx(1, 1, 20), t.dmx(1, 1, 21)),
        (2, 233),
        "one tick in: 745 = 0x02E9"
    );
    // Tilt: default coarse 128 → 128/0; raw 16-bit Dmx(4660) = 0x1234 at the end.
    assert_eq!(
        (t.dmx(0, 1, 22), t.dmx(0, 1, 23)),
        (128, 0),
        "tilt starts at its default 128/0"
    );
    assert_eq!(
        (t.dmx(88, 1, 22), t.dmx(88, 1, 23)),
        (0x12, 0x34),
        "raw 16-bit tilt lands exactly"
    );
}

#[test]
fn delay_holds_then_fades() {
    let mut t = TestShow::new(&show(
        r#"(name: "main", cues: [(number: 1, delay: 0.5, fade_in: 1.0, values: {Fixture(1): {Intensity: 1.0}})])"#,
        r#"(name: "main", cue_list: "main")"#,
    ));
    t.at(0, "go main").run_through(80);
    assert_eq!(
        t.series(0..=22, 1, 1),
        vec![0; 23],
        "nothing moves during the 0.5 s (22 tick) delay"
    );
    for k in 0..=44 {
        assert_eq!(
            t.dmx(22 + k, 1, 1),
            ramp(k, 44, 0.0, 1.0),
            "fade tick {k} after the delay"
        );
    }
    assert_eq!(t.dmx(66, 1, 1), 255);
}

#[test]
fn values_track_across_three_cues() {
    let mut t = TestShow::new(&show(
        r#"(name: "main", cues: [
            (number: 1, values: {Fixture(2): {Intensity: 1.0, Red: 1.0}}),
            (number: 2, values: {Fixture(2): {Blue: Dmx(128)}}),
            (number: 3, values: {Fixture(2): {Red: Dmx(64)}, Fixture(1): {Intensity: 0.5}}),
        ])"#,
        r#"(name: "main", cue_list: "main")"#,
    ));
    t.at(0, "go main")
        .at(5, "go main")
        .at(10, "go main")
        .at(15, "goto main 2")
        .run_through(16);
    let wash = |t: &TestShow, k| {
        (
            t.dmx(k, 1, 10),
            t.dmx(k, 1, 11),
            t.dmx(k, 1, 12),
            t.dmx(k, 1, 13),
            t.dmx(k, 1, 1),
        )
    };
    assert_eq!(wash(&t, 0), (255, 255, 0, 0, 0), "cue 1: dimmer and red");
    assert_eq!(
        wash(&t, 5),
        (255, 255, 0, 128, 0),
        "cue 2: blue added, red and dimmer tracked"
    );
    assert_eq!(
        wash(&t, 10),
        (255, 64, 0, 128, 128),
        "cue 3: red changed, blue tracked, dimmer 1 up"
    );
    assert_eq!(
        wash(&t, 15),
        (255, 255, 0, 128, 0),
        "goto 2: the tracked state of cue 2, dimmer 1 out"
    );
}

#[test]
fn go_mid_fade_starts_from_where_the_output_is() {
    let mut t = TestShow::new(&show(
        r#"(name: "main", cues: [
            (number: 1, fade_in: 1.0, values: {Fixture(1): {Intensity: 1.0}, Fixture(2): {Red: 1.0}}),
            (number: 2, fade_in: 1.0, values: {Fixture(1): {Intensity: 0.0}, Fixture(2): {Red: 0.0}}),
        ])"#,
        r#"(name: "main", cue_list: "main")"#,
    ));
    // GO to cue 2 half way through cue 1's fade (22 of 44 ticks).
    t.at(0, "go main").at(22, "go main").run_through(80);
    assert_eq!(
        t.dmx(22, 1, 1),
        128,
        "at the second GO the dimmer is where cue 1 left it"
    );
    // From level 0.5 down to 0 over 1 s: no jump back to full.
    for k in 0..=44 {
        assert_eq!(
            t.dmx(22 + k, 1, 1),
            ramp(k, 44, 0.5, 0.0),
            "intensity {k} ticks into cue 2"
        );
        assert_eq!(
            t.dmx(22 + k, 1, 11),
            ramp(k, 44, 0.5, 0.0),
            "red {k} ticks into cue 2"
        );
    }
}

#[test]
fn unchanged_values_keep_fading_through_a_go() {
    let mut t = TestShow::new(&show(
        r#"(name: "main", cues: [
            (number: 1, fade_in: 2.0, values: {Fixture(1): {Intensity: 1.0}}),
            (number: 2, values: {Fixture(2): {Red: 1.0}}),
        ])"#,
        r#"(name: "main", cue_list: "main")"#,
    ));
    // Cue 2 (a snap) does not touch fixture 1: its 2 s fade carries on undisturbed.
    t.at(0, "go main").at(44, "go main").run_through(90);
    for k in [43u64, 44, 45, 66, 88] {
        assert_eq!(
            t.dmx(k, 1, 1),
            ramp(k, 88, 0.0, 1.0),
            "fixture 1 at tick {k}"
        );
    }
    assert_eq!(t.dmx(44, 1, 11), 255, "cue 2 snaps red");
}

#[test]
fn htp_of_two_cue_lists_takes_the_highest_intensity() {
    let mut t = TestShow::new(&show(
        r#"(name: "a", cues: [(number: 1, values: {Fixture(1): {Intensity: 0.6}, Fixture(2): {Intensity: 0.2}})]),
           (name: "b", cues: [(number: 1, values: {Fixture(1): {Intensity: 0.4}, Fixture(2): {Intensity: 0.8}})])"#,
        r#"(name: "a", cue_list: "a"), (name: "b", cue_list: "b")"#,
    ));
    t.at(0, "go a")
        .at(1, "go b")
        .at(3, "master b 0.5")
        .at(5, "release a")
        .run_through(6);
    assert_eq!((t.dmx(0, 1, 1), t.dmx(0, 1, 10)), (153, 51), "only list a");
    assert_eq!(
        (t.dmx(1, 1, 1), t.dmx(1, 1, 10)),
        (153, 204),
        "highest of each: 0.6 from a, 0.8 from b"
    );
    assert_eq!(
        (t.dmx(3, 1, 1), t.dmx(3, 1, 10)),
        (153, 102),
        "b at master 50%: 0.4 → 0.2 < 0.6, 0.8 → 0.4"
    );
    assert_eq!(
        (t.dmx(5, 1, 1), t.dmx(5, 1, 10)),
        (51, 102),
        "a released (snap): b's 0.2 and 0.4 remain"
    );
}

#[test]
fn ltp_colour_follows_the_latest_action() {
    let mut t = TestShow::new(&show(
        r#"(name: "a", cues: [(number: 1, values: {Fixture(2): {Red: 1.0, Green: 0.2}}),
                               (number: 2, values: {Fixture(2): {Red: 0.5}})]),
           (name: "b", cues: [(number: 1, values: {Fixture(2): {Red: 0.1}})])"#,
        r#"(name: "a", cue_list: "a"), (name: "b", cue_list: "b")"#,
    ));
    t.at(0, "go a")
        .at(2, "go b")
        .at(4, "go a")
        .at(6, "release a")
        .run_through(8);
    assert_eq!(t.dmx(0, 1, 11), 255, "a sets red full");
    assert_eq!(
        t.dmx(2, 1, 11),
        26,
        "b acted last: its 0.1 wins though lower"
    );
    assert_eq!(t.dmx(2, 1, 12), 51, "b does not set green: a's green stays");
    assert_eq!(t.dmx(4, 1, 11), 128, "a acted last again: 0.5");
    assert_eq!(t.dmx(7, 1, 11), 26, "a released: b's red is back");
}

#[test]
fn grand_master_at_half_scales_intensity_only() {
    let mut t = TestShow::new(&show(
        r#"(name: "main", cues: [(number: 1, values: {Fixture(1): {Intensity: 1.0}, Fixture(2): {Intensity: 0.8, Red: 1.0}, Fixture(3): {Intensity: 1.0, Pan: 0.5}})])"#,
        r#"(name: "main", cue_list: "main")"#,
    ));
    t.at(0, "go main").at(2, "gm 0.5").run_through(3);
    assert_eq!((t.dmx(1, 1, 1), t.dmx(1, 1, 10)), (255, 204));
    assert_eq!(t.dmx(2, 1, 1), 128, "255 × 0.5 = 127.5 → 128");
    assert_eq!(t.dmx(2, 1, 10), 102, "0.8 × 0.5 = 0.4 → 102");
    assert_eq!(t.dmx(2, 1, 11), 255, "colour is not intensity: untouched");
    assert_eq!(t.dmx(2, 1, 24), 128, "spot dimmer halved");
    assert_eq!(
        (t.dmx(2, 1, 20), t.dmx(2, 1, 21)),
        (128, 0),
        "pan untouched: 0.5 → 32768"
    );
}

#[test]
fn blackout_zeroes_intensity_and_restores_it() {
    let mut t = TestShow::new(&show(
        r#"(name: "main", cues: [(number: 1, values: {Fixture(1): {Intensity: 1.0}, Fixture(2): {Intensity: 1.0, Blue: 1.0}})])"#,
        r#"(name: "main", cue_list: "main")"#,
    ));
    t.at(0, "go main")
        .at(3, "blackout on")
        .at(6, "blackout off")
        .run_through(7);
    assert_eq!(
        (t.dmx(2, 1, 1), t.dmx(2, 1, 10), t.dmx(2, 1, 13)),
        (255, 255, 255)
    );
    for k in 3..=5 {
        assert_eq!(
            (t.dmx(k, 1, 1), t.dmx(k, 1, 10)),
            (0, 0),
            "blacked out at tick {k}"
        );
        assert_eq!(
            t.dmx(k, 1, 13),
            255,
            "blue is colour, not intensity: it stays"
        );
    }
    assert_eq!((t.dmx(6, 1, 1), t.dmx(6, 1, 10)), (255, 255), "restored");
}

#[test]
fn follows_fire_at_exact_ticks() {
    let mut t = TestShow::new(&show(
        r#"(name: "main", cues: [
            (number: 1, follow: After(0.5), values: {Fixture(1): {Intensity: Dmx(10)}}),
            (number: 2, delay: 0.25, fade_in: 0.5, follow: AfterFade, values: {Fixture(1): {Intensity: Dmx(20)}}),
            (number: 3, values: {Fixture(1): {Intensity: Dmx(30)}}),
        ])"#,
        r#"(name: "main", cue_list: "main")"#,
    ));
    t.at(3, "go main").run_through(80);
    // Cue 1 at tick 3; follow 0.5 s = 22 ticks → cue 2 at 25; its delay 0.25 s (11 ticks) +
    // fade 0.5 s (22 ticks) completes at 58 → cue 3 follows at tick 58.
    assert_eq!(
        t.dmx(24, 1, 1),
        10,
        "still cue 1 one tick before the follow"
    );
    assert_eq!(
        t.dmx(25, 1, 1),
        10,
        "cue 2 began at 25 but waits its 11-tick delay"
    );
    assert_eq!(t.dmx(36, 1, 1), 10, "delay ends at 36: fade starts from 10");
    assert_eq!(t.dmx(47, 1, 1), 15, "half way: 10 + 10 × 11/22");
    assert_eq!(
        t.dmx(57, 1, 1),
        20,
        "cue 2 complete one tick before its follow"
    );
    assert_eq!(t.dmx(58, 1, 1), 30, "cue 3 by follow at exactly tick 58");
}

#[test]
fn looped_chase_wraps_and_release_fades_out() {
    let mut t = TestShow::new(&show(
        r#"(name: "chase", looped: true, cues: [
            (number: 1, follow: After(0.25), values: {Fixture(1): {Intensity: 1.0}}),
            (number: 2, fade_out: 0.5, follow: After(0.25), values: {Fixture(1): {Intensity: 0.2}}),
        ])"#,
        r#"(name: "chase", cue_list: "chase", release_time: 0.5)"#,
    ));
    // 0.25 s = 11 ticks per step: cue 1 at 0, 2 at 11, 1 at 22, 2 at 33.
    t.at(0, "go chase").at(33, "release chase").run_through(70);
    let steps: Vec<u8> = [0u64, 10, 11, 21, 22, 32]
        .iter()
        .map(|k| t.dmx(*k, 1, 1))
        .collect();
    // Cue 2 takes intensity down over its 0.5 s fade-out, so 10 ticks in it is at
    // 1 − 0.8 × 10/22 → 162; cue 1 snaps back up at 22 (no fade-in).
    assert_eq!(
        steps,
        vec![255, 255, 255, 162, 255, 255],
        "the chase steps and wraps"
    );
    // At 33 the follow to cue 2 fires first, then the release: from cue 2's start level
    // (full) to 0 over the playback's 0.5 s release time (22 ticks).
    assert_eq!(
        t.dmx(33, 1, 1),
        255,
        "release starts from the current level"
    );
    assert_eq!(t.dmx(44, 1, 1), 128, "half way through the 22-tick release");
    assert_eq!(t.dmx(55, 1, 1), 0, "released");
    assert_eq!(t.dmx(70, 1, 1), 0, "and the chase stopped");
}

#[test]
fn refused_commands_leave_the_show_running() {
    let mut t = TestShow::new(&show(
        r#"(name: "main", cues: [(number: 1, fade_in: 1.0, values: {Fixture(1): {Intensity: 1.0}})])"#,
        r#"(name: "main", cue_list: "main")"#,
    ));
    t.at(0, "go main")
        .at(5, "go nope")
        .at(6, "goto main 9")
        .at(7, "go main")
        .run_through(44);
    assert_eq!(
        t.dmx(44, 1, 1),
        255,
        "the fade completed despite three refused commands"
    );
    let rejected: Vec<String> = t
        .rejections()
        .iter()
        .map(|r| format!("{}: {}", r.tick, r.error))
        .collect();
    assert_eq!(
        rejected,
        vec![
            "5: no playback named \"nope\" (playbacks: main)".to_string(),
            "6: playback \"main\" has no cue 9".to_string(),
            "7: playback \"main\" is on its last cue".to_string(),
        ]
    );
}
