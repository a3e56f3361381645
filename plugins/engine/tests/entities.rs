//! The show as ECS entities: spawned from a file, written back unchanged, and live edits that
//! recompile — or, when broken, are refused while the running show keeps running.

mod common;

use common::{TestShow, show};
use rockontrol_engine::{PatchedFixture, ShowCueList, ShowEngine, show_from_world};
use rockontrol_show::{Value, parse_show, to_ron_string};

const DEMO: &str = include_str!("../../../shows/demo.ron");

#[test]
fn the_demo_show_round_trips_through_the_world() {
    let original = parse_show(DEMO, "demo.ron").expect("demo parses");
    let mut t = TestShow::new(DEMO);
    t.run_through(0);
    let written = show_from_world(t.app.world_mut());
    assert_eq!(written, original, "entities written back equal the file");
    assert_eq!(
        to_ron_string(&written),
        to_ron_string(&original),
        "and save to the same bytes"
    );
    let engine = t.app.world().resource::<ShowEngine>();
    assert_eq!(
        engine.engine.as_ref().map(|e| e.show().universes.clone()),
        Some(vec![1, 2])
    );
}

#[test]
fn editing_a_cue_recompiles_and_keeps_the_playback_on_its_cue() {
    let mut t = TestShow::new(&show(
        r#"(name: "main", cues: [(number: 1, values: {Fixture(1): {Intensity: 1.0}})])"#,
        r#"(name: "main", cue_list: "main")"#,
    ));
    t.at(0, "go main").run_through(2);
    assert_eq!(t.dmx(2, 1, 1), 255);
    // The programmer updates cue 1 to 50 %: like recording into the live cue.
    let world = t.app.world_mut();
    let mut lists = world.query::<&mut ShowCueList>();
    for mut list in lists.iter_mut(world) {
        let values = list.0.cues[0]
            .values
            .values_mut()
            .next()
            .expect("fixture 1 values");
        values.insert(rockontrol_show::Attribute::Intensity, Value::Norm(0.5));
    }
    t.run_through(4);
    assert_eq!(
        t.dmx(3, 1, 1),
        128,
        "the edit shows on the next tick, still on cue 1"
    );
    assert_eq!(
        t.app.world().resource::<ShowEngine>().generation,
        2,
        "compiled twice"
    );
}

#[test]
fn a_broken_edit_is_refused_and_the_show_keeps_running() {
    let mut t = TestShow::new(&show(
        r#"(name: "main", cues: [(number: 1, fade_in: 1.0, values: {Fixture(1): {Intensity: 1.0}})])"#,
        r#"(name: "main", cue_list: "main")"#,
    ));
    t.at(0, "go main").run_through(10);
    // Move fixture 2 onto fixture 1's address: an overlapping patch.
    let world = t.app.world_mut();
    let mut fixtures = world.query::<&mut PatchedFixture>();
    for mut f in fixtures.iter_mut(world) {
        if f.0.id == 2 {
            f.0.address = 1;
        }
    }
    t.run_through(44);
    let engine = t.app.world().resource::<ShowEngine>();
    let error = engine.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("overlap in universe 1"),
        "the refusal names the problem: {error}"
    );
    assert_eq!(engine.generation, 1, "the broken show was not compiled");
    assert_eq!(
        t.dmx(44, 1, 1),
        255,
        "the fade finished on the running show"
    );
}

#[test]
fn external_inputs_merge_htp_or_bridge_on_the_published_frame() {
    use rockontrol_engine::{ExternalInputs, ExternalUniverse};
    use rockontrol_show::InputMode;
    let mut t = TestShow::new(&show(
        r#"(name: "main", cues: [(number: 1, values: {Fixture(1): {Intensity: 0.5}, Fixture(2): {Red: 1.0}})])"#,
        r#"(name: "main", cue_list: "main")"#,
    ));
    t.at(0, "go main").run_through(1);
    let mut slots = vec![0u8; 512];
    slots[0] = 200; // above our 128 on slot 1
    slots[10] = 10; // below our 255 red on slot 11
    slots[499] = 77; // a slot no fixture uses
    let set = |t: &mut TestShow, mode, live| {
        t.app
            .world_mut()
            .resource_mut::<ExternalInputs>()
            .universes
            .insert(
                1,
                ExternalUniverse {
                    mode,
                    slots: slots.clone(),
                    live,
                },
            );
    };
    set(&mut t, InputMode::Merge, true);
    t.run_through(2);
    assert_eq!(
        (t.dmx(2, 1, 1), t.dmx(2, 1, 11), t.dmx(2, 1, 500)),
        (200, 255, 77),
        "HTP per slot"
    );
    set(&mut t, InputMode::Bridge, true);
    t.run_through(3);
    assert_eq!(
        (t.dmx(3, 1, 1), t.dmx(3, 1, 11), t.dmx(3, 1, 500)),
        (200, 10, 77),
        "bridge: input only"
    );
    set(&mut t, InputMode::Merge, false);
    t.run_through(4);
    assert_eq!(
        (t.dmx(4, 1, 1), t.dmx(4, 1, 11), t.dmx(4, 1, 500)),
        (128, 255, 0),
        "a lost input no longer counts"
    );
    let engine = t.app.world().resource::<ShowEngine>();
    assert_eq!(
        engine.frame[0], 128,
        "the engine's own frame never saw the input"
    );
}
