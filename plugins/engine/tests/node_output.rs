//! A node's own output level on top of a frame rendered from the shared playback state.

use rockontrol_engine::{Command, CompiledShow, FadeEngine};

/// Two universes, a dimmer and an RGB wash (intensity + colour) on each.
const SHOW: &str = r#"(
    name: "node output",
    universes: [(id: 1), (id: 2)],
    profiles: [
        (manufacturer: "Test", model: "Dim", channels: [(name: "D", attribute: Intensity)],
         modes: [(name: "1ch", channels: ["D"])]),
        (manufacturer: "Test", model: "Wash", channels: [
            (name: "I", attribute: Intensity), (name: "R", attribute: Red)],
         modes: [(name: "2ch", channels: ["I", "R"])]),
    ],
    fixtures: [
        (id: 1, name: "D1", profile: "Test/Dim", mode: "1ch", universe: 1, address: 1),
        (id: 2, name: "W1", profile: "Test/Wash", mode: "2ch", universe: 1, address: 10),
        (id: 3, name: "D2", profile: "Test/Dim", mode: "1ch", universe: 2, address: 1),
    ],
    cue_lists: [(name: "main", cues: [(number: 1, values: {
        Fixture(1): {Intensity: 1.0}, Fixture(2): {Intensity: 0.8, Red: 1.0},
        Fixture(3): {Intensity: 0.6}})])],
    playbacks: [(name: "main", cue_list: "main")],
)"#;

#[test]
fn a_node_level_rewrites_only_its_universes_intensity() {
    let show = rockontrol_show::parse_show(SHOW, "node output").expect("show parses");
    let mut fade = FadeEngine::new(CompiledShow::compile(&show).expect("compiles"));
    let mut state = fade.initial_state();
    fade.apply(
        &mut state,
        &Command::Go {
            playback: "main".into(),
            fade: None,
        },
        0,
    )
    .expect("go");
    let mut shared = fade.new_frame();
    fade.render(&state, 1, &mut shared);
    assert_eq!(
        (shared[0], shared[9], shared[10], shared[512]),
        (255, 204, 255, 153),
        "the shared frame: D1, W1 intensity, W1 red, D2"
    );
    let mut frame = shared.clone();
    fade.rewrite_intensity(&mut frame, 0.5, &[1]);
    assert_eq!(frame[0], 128, "D1 at half");
    assert_eq!(frame[9], 102, "W1 intensity at half");
    assert_eq!(frame[10], 255, "colour is not intensity: untouched");
    assert_eq!(
        frame[512..],
        shared[512..],
        "universe 2 equals the shared frame"
    );
    let mut dark = shared.clone();
    fade.rewrite_intensity(&mut dark, 0.0, &[1]);
    assert_eq!((dark[0], dark[9], dark[10]), (0, 0, 255), "a node blackout");
}
