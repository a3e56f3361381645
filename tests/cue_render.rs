//! Issue 11 (cue semantics) through `rockontrol render` as a user runs it: every defect and
//! decision of the issue is a case, with the issue's examples as the cases, asserted as exact
//! DMX values at exact ticks (44 Hz) of the rendered CSV frames.
//!
//! One show holds every case, each on a universe of its own with its own playbacks, and one
//! `render` process renders it (the `--at` script below), so the cases cost one process
//! together; each test reads its universe from the shared frames. The only global action,
//! the bare `blackout`, comes after every other case's last asserted tick.

use std::collections::HashMap;
use std::process::Command;
use std::sync::OnceLock;

const BIN: &str = env!("CARGO_BIN_EXE_rockontrol");

/// The cases: (universe, cue lists, playbacks). Universe *u* has a 1-channel dimmer, fixture
/// `10u + 1`, at address 1, and a spot, fixture `10u + 2`: Dimmer at 11, Red 12, Green 13,
/// Blue 14, Pan 15 (8-bit, default 100).
const CASES: &[(u16, &str, &str)] = &[
    // Defect 1: a looped 2-step chase, 0.125 s per step.
    (
        1,
        r#"(name: "chase", looped: true, cues: [
            (number: 1, follow: After(0.125), values: {Fixture(11): {Intensity: 1.0}}),
            (number: 2, follow: After(0.125), values: {Fixture(11): {Intensity: 0.0}})])"#,
        r#"(name: "chase", cue_list: "chase")"#,
    ),
    // Defect 1: a fade started by a follow due between ticks 5 and 6.
    (
        2,
        r#"(name: "follow", cues: [
            (number: 1, follow: After(0.125), values: {Fixture(21): {Intensity: 0.0}}),
            (number: 2, fade_in: 1.0, values: {Fixture(21): {Intensity: 1.0}})])"#,
        r#"(name: "follow", cue_list: "follow")"#,
    ),
    // Defect 2: A fades Red 0→1 over 2 s; B sets Red 0.2 at 0.5 s; A's cue 2 (1 s) moves
    // only Pan at 1 s.
    (
        3,
        r#"(name: "ltp_a", cues: [
            (number: 1, fade_in: 2.0, values: {Fixture(32): {Red: 1.0}}),
            (number: 2, fade_in: 1.0, values: {Fixture(32): {Pan: 1.0}})]),
           (name: "ltp_b", cues: [(number: 1, values: {Fixture(32): {Red: 0.2}})])"#,
        r#"(name: "ltp_a", cue_list: "ltp_a"), (name: "ltp_b", cue_list: "ltp_b")"#,
    ),
    // Defect 3: no fade times; Intensity 1, Red 1, Pan 0.5; released at 1 s.
    (
        4,
        r#"(name: "rel", cues: [
            (number: 1, values: {Fixture(42): {Intensity: 1.0, Red: 1.0, Pan: 0.5}})])"#,
        r#"(name: "rel", cue_list: "rel")"#,
    ),
    // Decision 1: A's cue 1 sets Red, its cue 2 only Blue; B sets Red 0.2 at 1 s; A GOes at 2 s.
    (
        5,
        r#"(name: "take_a", cues: [
            (number: 1, values: {Fixture(52): {Red: 1.0}}),
            (number: 2, values: {Fixture(52): {Blue: 1.0}})]),
           (name: "take_b", cues: [(number: 1, values: {Fixture(52): {Red: 0.2}})])"#,
        r#"(name: "take_a", cue_list: "take_a"), (name: "take_b", cue_list: "take_b")"#,
    ),
    // Decision 1, `assert: true`: the same, cue 2 asserts with a 1 s fade.
    (
        6,
        r#"(name: "assert_a", cues: [
            (number: 1, values: {Fixture(62): {Red: 1.0}}),
            (number: 2, fade_in: 1.0, assert: true, values: {Fixture(62): {Blue: 1.0}})]),
           (name: "assert_b", cues: [(number: 1, values: {Fixture(62): {Red: 0.2}})])"#,
        r#"(name: "assert_a", cue_list: "assert_a"), (name: "assert_b", cue_list: "assert_b")"#,
    ),
    // Decision 1: a running chase that changes only intensity does not steal Red.
    (
        7,
        r#"(name: "steal_chase", looped: true, cues: [
            (number: 1, follow: After(0.25), values: {Fixture(72): {Intensity: 1.0, Red: 0.0}}),
            (number: 2, follow: After(0.25), values: {Fixture(72): {Intensity: 0.0}})]),
           (name: "steal_main", cues: [(number: 1, values: {Fixture(72): {Red: 0.5}})])"#,
        r#"(name: "steal_chase", cue_list: "steal_chase"), (name: "steal_main", cue_list: "steal_main")"#,
    ),
    // Decision 2: cue 2 (delay 0.5 s, fade 1 s) GOes at 1 s into cue 1's 2 s fade.
    (
        8,
        r#"(name: "delay", cues: [
            (number: 1, fade_in: 2.0, values: {Fixture(81): {Intensity: 1.0}, Fixture(82): {Red: 1.0}}),
            (number: 2, delay: 0.5, fade_in: 1.0,
             values: {Fixture(81): {Intensity: 0.0}, Fixture(82): {Red: 0.0}})])"#,
        r#"(name: "delay", cue_list: "delay")"#,
    ),
    // Decision 2: a delayed move takes its channel when the delay ends, after B took it.
    (
        9,
        r#"(name: "late_a", cues: [
            (number: 1, values: {Fixture(92): {Red: 1.0}}),
            (number: 2, delay: 1.0, fade_in: 1.0, values: {Fixture(92): {Red: 0.0}})]),
           (name: "late_b", cues: [(number: 1, values: {Fixture(92): {Red: 0.2}})])"#,
        r#"(name: "late_a", cue_list: "late_a"), (name: "late_b", cue_list: "late_b")"#,
    ),
    // Decision 3: A (release_time 1 s) over B; A released at 1 s.
    (
        10,
        r#"(name: "fade_a", cues: [
            (number: 1, values: {Fixture(102): {Intensity: 1.0, Red: 1.0, Pan: 1.0}})]),
           (name: "fade_b", cues: [
            (number: 1, values: {Fixture(102): {Intensity: 0.2, Red: 0.2}})])"#,
        r#"(name: "fade_a", cue_list: "fade_a", release_time: 1.0),
           (name: "fade_b", cue_list: "fade_b")"#,
    ),
    // Decision 3: a GO half way through a 1 s release starts at cue 1.
    (
        11,
        r#"(name: "rego", cues: [
            (number: 1, values: {Fixture(112): {Intensity: 0.4}}),
            (number: 2, values: {Fixture(112): {Intensity: 1.0, Red: 1.0}})])"#,
        r#"(name: "rego", cue_list: "rego", release_time: 1.0)"#,
    ),
    // Decision 4: BACK into a cue with a 0.5 s follow.
    (
        12,
        r#"(name: "back", cues: [
            (number: 1, follow: After(0.5), values: {Fixture(121): {Intensity: Dmx(10)}}),
            (number: 2, values: {Fixture(121): {Intensity: Dmx(20)}})])"#,
        r#"(name: "back", cue_list: "back")"#,
    ),
    // Decision 4's counterpart: GOTO into that cue arms its follow.
    (
        13,
        r#"(name: "goto", cues: [
            (number: 1, follow: After(0.5), values: {Fixture(131): {Intensity: Dmx(10)}}),
            (number: 2, values: {Fixture(131): {Intensity: Dmx(20)}})])"#,
        r#"(name: "goto", cue_list: "goto")"#,
    ),
    // Decision 5: a looped list wraps to its first cue's state.
    (
        14,
        r#"(name: "wrap", looped: true, cues: [
            (number: 1, values: {Fixture(142): {Intensity: 1.0}}),
            (number: 2, values: {Fixture(142): {Red: 1.0}, Fixture(141): {Intensity: 1.0}})])"#,
        r#"(name: "wrap", cue_list: "wrap")"#,
    ),
    // Decision 5: a bare `blackout` means on (at tick 177, after every other case).
    (
        15,
        r#"(name: "bo", cues: [(number: 1, values: {Fixture(152): {Intensity: 1.0, Red: 1.0}})])"#,
        r#"(name: "bo", cue_list: "bo")"#,
    ),
];

/// The action script: `TIME ACTION`, times chosen at exact ticks (tick k is at k/44 s; an
/// action at T happens on the first tick at or after T).
const SCRIPT: &[&str] = &[
    "0s go chase",
    "0s go follow",
    "0s go ltp_a",
    "0.5s go ltp_b", // tick 22
    "1s go ltp_a",   // tick 44
    "0s go rel",
    "1s release rel",
    "0s go take_a",
    "1s go take_b",
    "2s go take_a", // tick 88
    "0s go assert_a",
    "1s go assert_b",
    "2s go assert_a",
    "0s go steal_chase",
    "0.1s go steal_main", // tick 5
    "0s go delay",
    "1s go delay",
    "0s go late_a",
    "1s go late_a",
    "1.5s go late_b", // tick 66
    "0s go fade_b",
    "0.02s go fade_a", // tick 1
    "1s release fade_a",
    "0s go rego",
    "0.22s go rego", // tick 10
    "1s release rego",
    "1.5s go rego",
    "0s go back",
    "0.68s back back", // tick 30
    "0s goto goto 2",
    "0.22s goto goto 1", // tick 10
    "0s go wrap",
    "0.04s go wrap", // tick 2
    "0.08s go wrap", // tick 4
    "0s go bo",
    "4.02s blackout", // tick 177
];

/// The last tick rendered (`--until 4.05s`: the first tick at or after 4.05 s).
const LAST: u64 = 179;

fn show() -> String {
    let universes: Vec<String> = CASES.iter().map(|c| format!("(id: {})", c.0)).collect();
    let fixtures: Vec<String> = CASES
        .iter()
        .map(|&(u, _, _)| {
            format!(
                r#"(id: {d}, name: "Dim {u}", profile: "T/Dim", mode: "1", universe: {u}, address: 1),
                   (id: {s}, name: "Spot {u}", profile: "T/Spot", mode: "5", universe: {u}, address: 11)"#,
                d = u * 10 + 1,
                s = u * 10 + 2,
            )
        })
        .collect();
    let lists: Vec<&str> = CASES.iter().map(|c| c.1).collect();
    let playbacks: Vec<&str> = CASES.iter().map(|c| c.2).collect();
    format!(
        r#"(name: "issue 11", universes: [{}],
    profiles: [
        (manufacturer: "T", model: "Dim", channels: [(name: "D", attribute: Intensity)],
         modes: [(name: "1", channels: ["D"])]),
        (manufacturer: "T", model: "Spot",
         channels: [(name: "Dimmer", attribute: Intensity), (name: "R", attribute: Red),
                    (name: "G", attribute: Green), (name: "B", attribute: Blue),
                    (name: "Pan", attribute: Pan, default: 100)],
         modes: [(name: "5", channels: ["Dimmer", "R", "G", "B", "Pan"])]),
    ],
    fixtures: [{}],
    cue_lists: [{}],
    playbacks: [{}])"#,
        universes.join(", "),
        fixtures.join(",\n"),
        lists.join(",\n"),
        playbacks.join(",\n"),
    )
}

/// Every rendered frame: (tick, universe) → its 512 slots.
struct Frames(HashMap<(u64, u16), Vec<u8>>);

impl Frames {
    /// Slot `address` (1-based) of universe `u` at tick `k`.
    fn dmx(&self, k: u64, u: u16, address: usize) -> u8 {
        self.0
            .get(&(k, u))
            .unwrap_or_else(|| panic!("no frame for tick {k} universe {u}"))[address - 1]
    }

    fn series(&self, ticks: std::ops::RangeInclusive<u64>, u: u16, address: usize) -> Vec<u8> {
        ticks.map(|k| self.dmx(k, u, address)).collect()
    }

    /// The spot's (Dimmer, Red, Pan) on universe `u` at tick `k`.
    fn spot(&self, k: u64, u: u16) -> (u8, u8, u8) {
        (self.dmx(k, u, 11), self.dmx(k, u, 12), self.dmx(k, u, 15))
    }
}

/// Renders the show once (the first test to ask), through the binary.
fn frames() -> &'static Frames {
    static FRAMES: OnceLock<Frames> = OnceLock::new();
    FRAMES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rk-cue-render-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("issue11.ron");
        std::fs::write(&path, show()).expect("write show");
        let mut cmd = Command::new(BIN);
        cmd.arg("render")
            .arg(&path)
            .args(["--until", "4.05s"])
            .env("ROCKONTROL_STATE_DIR", dir.join("state"));
        for action in SCRIPT {
            cmd.args(["--at", action]);
        }
        let out = cmd.output().expect("run rockontrol render");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "render failed: {stderr}");
        assert!(
            !stderr.contains("refused"),
            "every action is accepted: {stderr}"
        );
        let stdout = String::from_utf8(out.stdout).expect("utf8 CSV");
        let mut frames = HashMap::new();
        for row in stdout.lines().skip(1) {
            let mut fields = row.split(',');
            let tick: u64 = fields.next().and_then(|f| f.parse().ok()).expect("tick");
            let _time = fields.next();
            let universe: u16 = fields
                .next()
                .and_then(|f| f.parse().ok())
                .expect("universe");
            let slots: Vec<u8> = fields.map(|f| f.parse().expect("a byte")).collect();
            assert_eq!(slots.len(), 512, "tick {tick} universe {universe}");
            frames.insert((tick, universe), slots);
        }
        assert_eq!(
            frames.len(),
            (LAST as usize + 1) * CASES.len(),
            "ticks 0..={LAST} of every universe"
        );
        Frames(frames)
    })
}

/// Tick `k`'s show time in seconds at 44 Hz.
fn secs(k: u64) -> f64 {
    k as f64 / 44.0
}

/// An 8-bit level rounded half up, as the engine writes it.
fn dmx(level: f64) -> u8 {
    (level.clamp(0.0, 1.0) * 255.0 + 0.5) as u8
}

// ---- Defect 1: chases do not drift -------------------------------------------------------------

#[test]
fn defect_1_a_chase_steps_at_ticks_0_6_11_17_22_and_32_times_in_4_s() {
    let f = frames();
    let d = f.series(0..=176, 1, 1);
    assert_eq!(d[0], 255, "step 1 (cue 1) at tick 0");
    let changes: Vec<u64> = (1..=176u64)
        .filter(|&k| d[k as usize] != d[k as usize - 1])
        .collect();
    // Step n is due at n × 0.125 s and shows from the first tick at or after it: ⌈5.5 n⌉.
    let expected: Vec<u64> = (1..=32u64).map(|n| (11 * n).div_ceil(2)).collect();
    assert_eq!(&changes[..4], &[6, 11, 17, 22]);
    assert_eq!(changes, expected, "32 steps in 4 s, none late");
    assert_eq!(d[176], 255, "step 32 (cue 1 again) at exactly 4 s");
}

#[test]
fn defect_1_a_fade_started_by_a_follow_runs_from_the_follows_exact_time() {
    let f = frames();
    assert_eq!(
        f.dmx(5, 2, 1),
        0,
        "before the follow (due at 0.125 s, tick 5.5)"
    );
    assert_eq!(
        f.dmx(6, 2, 1),
        3,
        "0.0114 s into the 1 s fade at tick 6, not 0"
    );
    for k in 6..=60u64 {
        assert_eq!(f.dmx(k, 2, 1), dmx(secs(k) - 0.125), "tick {k}");
    }
    assert_eq!((f.dmx(49, 2, 1), f.dmx(50, 2, 1)), (252, 255));
}

// ---- Defect 2: an LTP value does not jump when a playback GOes -------------------------------

#[test]
fn defect_2_red_stays_51_at_ticks_43_and_44_when_a_goes_to_a_pan_cue() {
    let f = frames();
    assert_eq!(f.dmx(21, 3, 12), dmx(21.0 / 88.0), "A's Red fade before B");
    assert_eq!(f.dmx(22, 3, 12), 51, "B sets Red 0.2 at 0.5 s");
    assert_eq!(f.series(43..=45, 3, 12), [51, 51, 51], "no jump at 1 s");
    assert_eq!(f.series(22..=176, 3, 12), vec![51; 155], "B keeps Red");
    let pan = f.series(43..=88, 3, 15);
    assert_eq!((pan[0], pan[1], pan[45]), (100, 100, 255), "Pan 100 → 255");
    assert!(
        pan.windows(2).all(|w| w[0] <= w[1] && w[1] - w[0] <= 4),
        "{pan:?}"
    );
}

// ---- Defect 3: a release with no release time is complete on its own tick ---------------------

#[test]
fn defect_3_release_at_1_s_is_complete_at_tick_44() {
    let f = frames();
    assert_eq!(f.spot(43, 4), (255, 255, 128));
    assert_eq!(
        f.spot(44, 4),
        (0, 0, 100),
        "intensity 0, Red 0, Pan default 100"
    );
    assert_eq!(f.spot(45, 4), (0, 0, 100));
}

// ---- Decision 1: LTP per channel; only a move takes a channel --------------------------------

#[test]
fn decision_1_a_go_to_a_blue_cue_leaves_red_at_51() {
    let f = frames();
    assert_eq!(f.dmx(43, 5, 12), 255);
    assert_eq!(f.dmx(44, 5, 12), 51, "B takes Red at 1 s");
    assert_eq!(
        (f.dmx(87, 5, 14), f.dmx(88, 5, 14)),
        (0, 255),
        "A's GO at 2 s"
    );
    assert_eq!(f.series(44..=176, 5, 12), vec![51; 133], "Red stays B's");
}

#[test]
fn decision_1_an_assert_cue_takes_red_back_with_its_fade() {
    let f = frames();
    assert_eq!(f.dmx(87, 6, 12), 51);
    for k in 88..=132u64 {
        let p = (k - 88) as f64 / 44.0;
        assert_eq!(f.dmx(k, 6, 12), dmx(0.2 + 0.8 * p), "Red at tick {k}");
        assert_eq!(f.dmx(k, 6, 14), dmx(p), "Blue at tick {k}");
    }
}

#[test]
fn decision_1_a_running_chase_does_not_steal_red() {
    let f = frames();
    assert_eq!(f.dmx(4, 7, 12), 0, "the chase's cue 1 sets Red 0");
    assert_eq!(f.series(5..=176, 7, 12), vec![128; 172], "main keeps Red");
    assert_eq!(
        (
            f.dmx(10, 7, 11),
            f.dmx(11, 7, 11),
            f.dmx(22, 7, 11),
            f.dmx(33, 7, 11)
        ),
        (255, 0, 255, 0),
        "the chase steps every 0.25 s"
    );
}

// ---- Decision 2: a delay does not freeze a running fade ---------------------------------------

#[test]
fn decision_2_a_delayed_cue_lets_the_fade_run_until_go_plus_delay() {
    let f = frames();
    for k in 44..=66u64 {
        let level = dmx(secs(k) / 2.0);
        assert_eq!(f.dmx(k, 8, 1), level, "intensity keeps rising at tick {k}");
        assert_eq!(f.dmx(k, 8, 12), level, "Red keeps rising at tick {k}");
    }
    for k in 66..=120u64 {
        let level = dmx(0.75 * (1.0 - (secs(k) - 1.5)));
        assert_eq!(f.dmx(k, 8, 1), level, "intensity from 0.75 at tick {k}");
        assert_eq!(f.dmx(k, 8, 12), level, "Red from 0.75 at tick {k}");
    }
}

#[test]
fn decision_2_a_delayed_move_takes_its_channel_when_the_delay_ends() {
    let f = frames();
    assert_eq!(
        f.series(44..=65, 9, 12),
        vec![255; 22],
        "A holds Red in the delay"
    );
    assert_eq!(
        f.series(66..=88, 9, 12),
        vec![51; 23],
        "B took Red at 1.5 s"
    );
    for k in 88..=132u64 {
        let p = (k - 88) as f64 / 44.0;
        assert_eq!(
            f.dmx(k, 9, 12),
            dmx(0.2 * (1.0 - p)),
            "A fades Red from 0.2, tick {k}"
        );
    }
}

// ---- Decision 3: release fades to what lies beneath; the next GO starts at cue 1 --------------

#[test]
fn decision_3_a_release_fades_to_what_lies_beneath_over_the_release_time() {
    let f = frames();
    assert_eq!(f.spot(43, 10), (255, 255, 255), "A on top of B");
    for k in 44..=88u64 {
        let p = (k - 44) as f64 / 44.0;
        assert_eq!(
            f.spot(k, 10),
            (
                dmx((1.0 - p).max(0.2)),
                dmx(1.0 - 0.8 * p),
                dmx(1.0 - p * (1.0 - 100.0 / 255.0)),
            ),
            "tick {k}: intensity down to B's 0.2, Red to B's 0.2, Pan to its default 100"
        );
    }
    assert_eq!(f.spot(176, 10), (51, 51, 100));
}

#[test]
fn decision_3_a_go_during_the_release_starts_at_cue_1() {
    let f = frames();
    let releasing = dmx(1.0 - 21.0 / 44.0);
    assert_eq!(
        f.spot(65, 11),
        (releasing, releasing, 100),
        "cue 2 releasing"
    );
    for k in 66..=88u64 {
        let p = (k - 44) as f64 / 44.0;
        assert_eq!(
            f.spot(k, 11),
            (102, dmx(1.0 - p), 100),
            "tick {k}: cue 1's 0.4, Red still releasing"
        );
    }
    assert_eq!(f.spot(176, 11), (102, 0, 100));
}

// ---- Decision 4: BACK does not arm a follow ---------------------------------------------------

#[test]
fn decision_4_back_into_a_cue_with_a_follow_stays_there() {
    let f = frames();
    assert_eq!(
        (f.dmx(21, 12, 1), f.dmx(22, 12, 1)),
        (10, 20),
        "the GO armed it"
    );
    assert_eq!(
        f.series(30..=176, 12, 1),
        vec![10; 147],
        "after BACK at tick 30"
    );
}

#[test]
fn decision_4_goto_into_a_cue_with_a_follow_arms_it() {
    let f = frames();
    assert_eq!(f.series(10..=31, 13, 1), vec![10; 22]);
    assert_eq!(f.dmx(32, 13, 1), 20, "0.5 s after the GOTO at tick 10");
}

// ---- Decision 5: the kept readings ------------------------------------------------------------

#[test]
fn decision_5_a_looped_list_wraps_to_the_first_cues_state() {
    let f = frames();
    let wash = |k| (f.dmx(k, 14, 1), f.dmx(k, 14, 11), f.dmx(k, 14, 12));
    assert_eq!(wash(0), (0, 255, 0));
    assert_eq!(
        wash(2),
        (255, 255, 255),
        "cue 2 tracks the spot's intensity"
    );
    assert_eq!(
        wash(4),
        (0, 255, 0),
        "the wrap: what cue 1 does not set goes out"
    );
}

#[test]
fn decision_5_a_bare_blackout_means_on_and_leaves_other_attributes() {
    let f = frames();
    assert_eq!(f.spot(176, 15), (255, 255, 100));
    for k in 177..=LAST {
        assert_eq!(f.spot(k, 15), (0, 255, 100), "tick {k}: blackout");
        assert_eq!(f.dmx(k, 5, 12), 51, "tick {k}: Red of another case kept");
    }
}
