//! The programming model without a window: record, update, undo/redo, moves and save, through
//! the same actions the panels push. Each `update()` is one engine tick.

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use rockontrol_engine::{
    CaptureSink, EnginePlugin, PatchedFixture, Programmer, ShowClock, ShowCueList, load_show,
    show_from_world,
};
use rockontrol_show::{Attribute, CueNumber, Target, Value, parse_show, to_ron_string};
use rockontrol_ui::actions::RecordMode;
use rockontrol_ui::{UiAction, UiActions, UiState, programming_plugin};

const DEMO: &str = include_str!("../../../shows/demo.ron");

fn app(show_path: Option<std::path::PathBuf>) -> App {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins)
        .add_plugins(EnginePlugin)
        .insert_resource(TimeUpdateStrategy::FixedTimesteps(1))
        .init_resource::<CaptureSink>();
    programming_plugin(&mut app, show_path);
    load_show(
        app.world_mut(),
        &parse_show(DEMO, "demo.ron").expect("demo"),
    );
    app.update();
    app.update();
    app
}

fn act(app: &mut App, actions: impl IntoIterator<Item = UiAction>) {
    app.world_mut()
        .resource_mut::<UiActions>()
        .0
        .extend(actions);
    app.update();
}

fn main_cues(app: &mut App) -> Vec<rockontrol_show::Cue> {
    let world = app.world_mut();
    let mut q = world.query::<&ShowCueList>();
    q.iter(world)
        .find(|l| l.0.name == "main")
        .expect("main list")
        .0
        .cues
        .clone()
}

fn set(attribute: Attribute, level: f32) -> UiAction {
    UiAction::Set { attribute, level }
}

#[test]
fn record_takes_the_next_number_and_update_merges() {
    let mut app = app(None);
    act(
        &mut app,
        [
            UiAction::SelectGroup("Spots".into()),
            set(Attribute::Pan, 0.25),
            set(Attribute::Intensity, 0.5),
        ],
    );
    act(
        &mut app,
        [UiAction::Record {
            list: "main".into(),
            cue: None,
            mode: RecordMode::New,
        }],
    );
    let cues = main_cues(&mut app);
    let last = cues.last().expect("cues");
    assert_eq!(last.number, CueNumber(11_000), "after cue 10 comes 11");
    let spot = &last.values[&Target::Fixture(201)];
    assert_eq!(
        spot[&Attribute::Pan],
        Value::Dmx(16384),
        "16-bit pan is recorded as its exact DMX value (0.25 × 65535 rounded)"
    );
    assert_eq!(spot[&Attribute::Intensity], Value::Norm(0.5));
    assert!(
        app.world().resource::<UiState>().dirty,
        "recording marks the show unsaved"
    );

    // Recording onto an existing number as New is refused; Update merges.
    act(
        &mut app,
        [
            UiAction::ClearProgrammer,
            UiAction::Select {
                fixtures: vec![201],
                add: false,
            },
            set(Attribute::Zoom, 1.0),
            UiAction::Record {
                list: "main".into(),
                cue: Some(CueNumber(11_000)),
                mode: RecordMode::New,
            },
        ],
    );
    assert!(
        app.world().resource::<UiState>().status.contains("exists"),
        "New onto cue 11 is refused: {:?}",
        app.world().resource::<UiState>().status
    );
    act(
        &mut app,
        [UiAction::Record {
            list: "main".into(),
            cue: Some(CueNumber(11_000)),
            mode: RecordMode::Update,
        }],
    );
    let cues = main_cues(&mut app);
    let spot = &cues.last().expect("cue 11").values[&Target::Fixture(201)];
    assert_eq!(spot[&Attribute::Zoom], Value::Norm(1.0), "zoom merged in");
    assert_eq!(spot[&Attribute::Pan], Value::Dmx(16384), "pan kept");
}

#[test]
fn undo_and_redo_programming_steps_with_a_fader_drag_as_one_step() {
    let mut app = app(None);
    let before = main_cues(&mut app).len();
    act(
        &mut app,
        [UiAction::Select {
            fixtures: vec![101],
            add: false,
        }],
    );
    // A fader drag: many values, one undo step.
    act(
        &mut app,
        (1..=10).map(|i| set(Attribute::Intensity, i as f32 / 10.0)),
    );
    act(&mut app, [set(Attribute::Red, 1.0)]);
    act(
        &mut app,
        [UiAction::Record {
            list: "main".into(),
            cue: CueNumber::parse("0.5"),
            mode: RecordMode::New,
        }],
    );
    assert_eq!(main_cues(&mut app).len(), before + 1, "cue 0.5 recorded");

    act(&mut app, [UiAction::Undo]);
    assert_eq!(
        main_cues(&mut app).len(),
        before,
        "undo removes the recorded cue"
    );
    assert!(
        !app.world().resource::<UiState>().dirty,
        "and the unsaved mark"
    );
    act(&mut app, [UiAction::Undo]);
    let p = app.world().resource::<Programmer>();
    assert_eq!(p.get(101, &Attribute::Red), None, "undo the red");
    assert_eq!(
        p.get(101, &Attribute::Intensity),
        Some(1.0),
        "the drag is intact"
    );
    act(&mut app, [UiAction::Undo]);
    assert!(
        app.world().resource::<Programmer>().is_empty(),
        "one undo takes back the whole drag"
    );
    act(&mut app, [UiAction::Redo, UiAction::Redo, UiAction::Redo]);
    assert_eq!(main_cues(&mut app).len(), before + 1, "redo records again");
    assert_eq!(
        app.world()
            .resource::<Programmer>()
            .get(101, &Attribute::Red),
        Some(1.0)
    );
}

#[test]
fn moving_a_fixture_and_saving_writes_the_canonical_show() {
    let dir = std::env::temp_dir().join(format!("rockontrol-ui-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("show.ron");
    let mut app = app(Some(path.clone()));
    act(
        &mut app,
        [UiAction::MoveFixture {
            fixture: 101,
            position: (-6.004, 1.4962),
        }],
    );
    assert!(app.world().resource::<UiState>().dirty);
    act(&mut app, [UiAction::Save]);
    assert!(
        !app.world().resource::<UiState>().dirty,
        "saved: no unsaved mark"
    );
    let text = std::fs::read_to_string(&path).expect("saved file");
    let show = show_from_world(app.world_mut());
    assert_eq!(
        text,
        to_ron_string(&show),
        "the file is the canonical form of the show"
    );
    assert_eq!(
        show.fixture(101).and_then(|f| f.position),
        Some((-6.0, 1.5)),
        "positions snap to centimetres"
    );
    let reloaded = parse_show(&text, "show.ron").expect("saved show parses");
    assert_eq!(reloaded, show, "load(save(show)) == show");
    act(&mut app, [UiAction::Undo]);
    let world = app.world_mut();
    let mut q = world.query::<&PatchedFixture>();
    let par = q.iter(world).find(|f| f.0.id == 101).expect("par 1");
    assert_eq!(par.0.position, Some((-5.5, 2.0)), "undo puts it back");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(app.world().resource::<ShowClock>().next_tick > 0);
}
