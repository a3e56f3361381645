//! No drift: six hours of ticks one by one give exactly the frame computed directly.

mod common;

use rockontrol_engine::{Command, CompiledShow, FadeEngine};
use rockontrol_show::parse_show;

/// Six hours at 44 Hz.
const SIX_HOURS: u64 = 6 * 3600 * 44;

#[test]
fn frame_six_hours_in_equals_the_direct_computation() {
    assert_eq!(SIX_HOURS, 950_400);
    // A 7-hour 16-bit pan fade, plus a two-step chase on the dimmer that follows every 0.5 s.
    let ron = common::show(
        r#"(name: "slow", cues: [(number: 1, fade_in: 25200.0, values: {Fixture(3): {Pan: 1.0}})]),
           (name: "chase", looped: true, cues: [
               (number: 1, follow: After(0.5), values: {Fixture(1): {Intensity: Dmx(200)}}),
               (number: 2, follow: After(0.5), values: {Fixture(1): {Intensity: Dmx(100)}}),
           ])"#,
        r#"(name: "slow", cue_list: "slow"), (name: "chase", cue_list: "chase")"#,
    );
    let show = parse_show(&ron, "long.ron").expect("parses");
    let compiled = CompiledShow::compile(&show).expect("compiles");
    let go = |pb: &str| Command::Go {
        playback: pb.into(),
        fade: None,
    };

    // Tick by tick, as the live engine runs.
    let mut engine = FadeEngine::new(compiled.clone());
    let mut state = engine.initial_state();
    let mut frame = engine.new_frame();
    for tick in 0..=SIX_HOURS {
        engine.advance(&mut state, tick);
        if tick == 0 {
            engine.apply(&mut state, &go("slow"), 0).expect("go slow");
            engine.apply(&mut state, &go("chase"), 0).expect("go chase");
        }
        engine.render(&state, tick, &mut frame);
    }

    // Directly: the same commands at tick 0, then only the last tick rendered. The chase
    // steps every 22 ticks; 950,400 is an even number of steps, so it is on cue 1.
    let mut direct = FadeEngine::new(compiled);
    let mut direct_state = direct.initial_state();
    direct
        .apply(&mut direct_state, &go("slow"), 0)
        .expect("go slow");
    direct
        .apply(&mut direct_state, &go("chase"), 0)
        .expect("go chase");
    let mut direct_frame = direct.new_frame();
    direct.render(&direct_state, SIX_HOURS, &mut direct_frame);

    let pan = ((21600.0 / 25200.0) * 65535.0_f64 + 0.5) as u32;
    assert_eq!(
        (frame[19], frame[20]),
        ((pan >> 8) as u8, (pan & 0xff) as u8),
        "pan 6/7 of the way: 16-bit {pan}"
    );
    assert_eq!(frame[0], 200, "chase on cue 1 after 21,600 whole cycles");
    assert_eq!(
        frame[19..21],
        direct_frame[19..21],
        "tick-by-tick pan equals direct"
    );
    assert_eq!(
        state.playbacks[1].follow_at,
        Some(engine.ns(SIX_HOURS + 22)),
        "the next follow is exactly 0.5 s (22 ticks) on"
    );
    assert_eq!(
        engine.ns(SIX_HOURS + 22),
        21_600_500_000_000,
        "at exactly 6 h 0.5 s: nothing drifted"
    );
}
