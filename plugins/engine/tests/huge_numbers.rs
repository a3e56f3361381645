//! Numbers past their range never panic the fade engine (issue 16.9): a follow of 1e23 s in a
//! show that skipped validation, or a fade of 1e300 s in a command that skipped the network
//! checks, saturate where seconds become ticks instead of overflowing `u64` (a panic in debug
//! builds, a follow that wraps into the past and skips a cue in release builds). Commands with
//! such numbers are refused by [`FadeEngine::apply`] itself, naming the field.

mod common;

use common::show;
use rockontrol_engine::{Command, CommandError, CompiledShow, FadeEngine, seconds_to_ticks};
use rockontrol_show::{Follow, Show, parse_show};

/// The show as written, without validation (the engine's own defence is what is tested).
fn unvalidated(cue_lists: &str) -> Show {
    parse_show(
        &show(cue_lists, r#"(name: "main", cue_list: "main")"#),
        "huge.ron",
    )
    .unwrap_or_else(|e| panic!("test show parses: {e}"))
}

#[test]
fn seconds_to_ticks_saturates() {
    assert_eq!(
        seconds_to_ticks(1e23, 44.0),
        u64::MAX,
        "far future saturates"
    );
    assert_eq!(seconds_to_ticks(f64::INFINITY, 44.0), u64::MAX);
    assert_eq!(seconds_to_ticks(f64::NAN, 44.0), 0, "NaN is no time");
    assert_eq!(seconds_to_ticks(-5.0, 44.0), 0, "never negative");
    assert_eq!(seconds_to_ticks(0.5, 44.0), 22, "ordinary times unchanged");
}

#[test]
fn a_huge_follow_or_fade_in_the_show_never_fires_early_or_panics() {
    let show = unvalidated(
        r#"(name: "main", cues: [
            (number: 1, fade_in: 1.0, values: {Fixture(1): {Intensity: 1.0}}),
            (number: 2, values: {Fixture(1): {Intensity: 0.5}}),
        ])"#,
    );
    // Compiling validates the show (and refuses these numbers, tested below); set them in the
    // compiled show directly, as a bug upstream of the engine would.
    let mut compiled = CompiledShow::compile(&show).expect("compiles");
    let cues = &mut compiled.lists[0].cues;
    cues[0].follow = Some(Follow::After(99_999_999_999_999_999_999_999.0));
    cues[1].fade_in = 1e300;
    cues[1].fade_out = f64::INFINITY;
    cues[1].delay = f64::MAX;
    let mut engine = FadeEngine::new(compiled);
    let mut state = engine.initial_state();
    let mut frame = engine.new_frame();
    let go = Command::Go {
        playback: "main".into(),
        fade: None,
    };
    // GO late in a long show: tick + the saturated follow must not overflow.
    let start = u64::MAX / 2;
    engine.apply(&mut state, &go, start).expect("go");
    assert_eq!(
        state.playbacks[0].follow_at, None,
        "a 1e23 s follow is due at the end of time (never), not wrapped into the past"
    );
    for tick in [start + 1, start + 44, start + 1_000_000, u64::MAX - 1] {
        let events = engine.advance(&mut state, tick);
        assert!(
            events.is_empty(),
            "nothing follows at tick {tick}: {events:?}"
        );
        engine.render(&state, tick, &mut frame);
    }
    assert_eq!(
        state.playbacks[0].cue,
        Some(0),
        "still on cue 1: no cue skipped"
    );
    // The second cue's absurd delay and fade: GO to it, then release, near the end of time.
    engine
        .apply(&mut state, &go, u64::MAX - 10)
        .expect("go to cue 2");
    engine.render(&state, u64::MAX - 5, &mut frame);
    engine
        .apply(
            &mut state,
            &Command::Release {
                playback: "main".into(),
            },
            u64::MAX - 2,
        )
        .expect("release");
    engine.advance(&mut state, u64::MAX);
    engine.render(&state, u64::MAX, &mut frame);
}

#[test]
fn compiling_refuses_a_show_with_times_past_their_range() {
    let mut show = unvalidated(
        r#"(name: "main", cues: [(number: 1, values: {Fixture(1): {Intensity: 1.0}})])"#,
    );
    show.cue_lists[0].cues[0].follow = Some(Follow::After(99_999_999_999_999_999_999_999.0));
    let e = CompiledShow::compile(&show).expect_err("a 1e23 s follow is refused");
    assert!(
        e.to_string().contains("follow After 1e23 s is longer than"),
        "names the field: {e}"
    );
}

#[test]
fn commands_with_numbers_out_of_range_are_refused_and_change_nothing() {
    let show = unvalidated(
        r#"(name: "main", cues: [(number: 1, values: {Fixture(1): {Intensity: 1.0}})])"#,
    );
    let mut engine = FadeEngine::new(CompiledShow::compile(&show).expect("compiles"));
    let mut state = engine.initial_state();
    let before = state.clone();
    for command in [
        Command::Go {
            playback: "main".into(),
            fade: Some(1e300),
        },
        Command::Go {
            playback: "main".into(),
            fade: Some(f64::NAN),
        },
        Command::Go {
            playback: "main".into(),
            fade: Some(-1.0),
        },
        Command::GrandMaster { level: f64::NAN },
        Command::GrandMaster { level: 1e300 },
        Command::Master {
            playback: "main".into(),
            level: -0.1,
        },
    ] {
        match engine.apply(&mut state, &command, 10) {
            Err(CommandError::OutOfRange(e)) => {
                assert!(!e.what.is_empty(), "{command:?} names its field: {e}");
            }
            other => panic!("{command:?} must be refused as out of range, got {other:?}"),
        }
    }
    assert_eq!(state, before, "refused commands leave the state as it was");
    // A long but legal fade still works at a late tick.
    engine
        .apply(
            &mut state,
            &Command::Go {
                playback: "main".into(),
                fade: Some(86_400.0),
            },
            u64::MAX - 100,
        )
        .expect("a 24 h fade is legal");
    let mut frame = engine.new_frame();
    engine.render(&state, u64::MAX, &mut frame);
}

/// A state from the network or disk that does not fit the show is refused by name, never
/// indexed: wrong lane counts, a timing index past `timings`, a cue past the list.
#[test]
fn a_state_that_does_not_fit_the_show_is_refused_before_it_is_used() {
    let show = unvalidated(
        r#"(name: "main", cues: [(number: 1, values: {Fixture(1): {Intensity: 1.0}})])"#,
    );
    let engine = FadeEngine::new(CompiledShow::compile(&show).expect("compiles"));
    let good = engine.initial_state();
    assert_eq!(engine.check_state(&good), Ok(()));
    let mut short = good.clone();
    short.playbacks[0].to.pop();
    assert!(
        engine
            .check_state(&short)
            .expect_err("short")
            .contains("lanes")
    );
    let mut timing = good.clone();
    timing.playbacks[0].timing[0] = 999;
    assert!(
        engine
            .check_state(&timing)
            .expect_err("timing")
            .contains("timing")
    );
    let mut cue = good.clone();
    cue.playbacks[0].cue = Some(999);
    assert!(engine.check_state(&cue).expect_err("cue").contains("cue"));
    let mut none = good;
    none.playbacks.clear();
    assert!(
        engine
            .check_state(&none)
            .expect_err("playbacks")
            .contains("playbacks")
    );
}
