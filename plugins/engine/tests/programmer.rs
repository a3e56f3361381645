//! The programmer overrides playback output from the tick it is set, and clearing it hands
//! the channels back to playback on the next tick.

mod common;

use common::{TestShow, show};
use rockontrol_engine::{CompiledShow, FadeEngine, Programmer, programmer};
use rockontrol_show::{Attribute, parse_show};

/// Cue 1 sets the wash (fixture 2) to dimmer full, red 20 %.
fn wash_show() -> String {
    show(
        r#"(name: "main", cues: [(number: 1, values: {Fixture(2): {Intensity: 1.0, Red: 0.2}})])"#,
        r#"(name: "main", cue_list: "main")"#,
    )
}

#[test]
fn render_with_overrides_replaces_the_cue_level_before_grand_master() {
    let show = parse_show(&wash_show(), "test.ron").expect("test show parses");
    let mut engine = FadeEngine::new(CompiledShow::compile(&show).expect("compiles"));
    let mut state = engine.initial_state();
    engine
        .apply(&mut state, &"go main".parse().expect("command"), 0)
        .expect("go main");
    let mut frame = engine.new_frame();

    engine.render(&state, 5, &mut frame);
    assert_eq!(frame[10], 51, "cue 1: red 20 % of 255 at address 11");

    let mut p = Programmer::default();
    p.set(2, Attribute::Red, 1.0);
    p.set(2, Attribute::Intensity, 0.5);
    let overrides = p.overrides(engine.show());
    assert_eq!(overrides.len(), 2, "two channels overridden: {overrides:?}");
    state.grand_master = 0.5;
    engine.render_with(&state, 5, &mut frame, &overrides);
    assert_eq!(
        frame[10], 255,
        "programmer red full wins over the cue's 20 %"
    );
    assert_eq!(
        frame[9], 64,
        "programmer dimmer 50 % is still scaled by the grand master (25 % = 64)"
    );
    state.blackout = true;
    engine.render_with(&state, 5, &mut frame, &overrides);
    assert_eq!(frame[9], 0, "blackout darkens programmer intensity too");
    assert_eq!(frame[10], 255, "blackout leaves colour alone");
}

#[test]
fn a_programmer_value_overrides_a_cue_at_an_exact_tick_and_clear_releases_it() {
    let mut t = TestShow::new(&wash_show());
    programmer::plugin(&mut t.app);
    t.at(0, "go main").run_through(2);
    assert_eq!(t.dmx(2, 1, 11), 51, "tick 2: the cue's red 20 %");

    // Set during tick 2's frame: tick 3 is the first tick that carries it.
    t.app
        .world_mut()
        .resource_mut::<Programmer>()
        .set(2, Attribute::Red, 1.0);
    t.run_through(4);
    assert_eq!(t.dmx(3, 1, 11), 255, "tick 3: programmer red full");
    assert_eq!(t.dmx(4, 1, 11), 255, "tick 4: still held by the programmer");
    assert_eq!(t.dmx(3, 1, 10), 255, "dimmer stays with the cue");

    t.app.world_mut().resource_mut::<Programmer>().clear();
    t.run_through(5);
    assert_eq!(
        t.dmx(5, 1, 11),
        51,
        "tick 5: cleared, back to the cue's 20 %"
    );

    // Highlight: the dim fixture (1), untouched by the cue, comes up to full; not recorded.
    t.app
        .world_mut()
        .resource_mut::<Programmer>()
        .highlight([1]);
    t.run_through(6);
    assert_eq!(t.dmx(6, 1, 1), 255, "highlighted dimmer at full");
    assert!(
        t.app
            .world()
            .resource::<Programmer>()
            .values()
            .next()
            .is_none(),
        "highlight holds no programmer values"
    );
    t.app.world_mut().resource_mut::<Programmer>().clear();
    t.run_through(7);
    assert_eq!(t.dmx(7, 1, 1), 0, "highlight off: back to dark");
}
