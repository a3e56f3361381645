//! An imported library profile (from the QLC+ corpus) patched in a show and rendered by the
//! real engine: attribute values land on the right coarse/fine slots and capability ranges.

mod common;

use common::TestShow;
use rockontrol_show::library::{Library, attribute_slots, capability_for};
use rockontrol_show::{
    Attribute, Cue, CueList, CueNumber, Fixture, Playback, Show, Target, Universe, Value,
    to_ron_string,
};

#[test]
fn imported_moving_head_renders_16_bit_pan_and_a_gobo_slot() {
    let library = Library::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../assets/fixtures"
    ));
    let profile = library
        .load("Clay Paky/Alpha Spot HPE 575")
        .unwrap_or_else(|e| panic!("the sample library has the Alpha Spot: {e}"));
    let mode = profile
        .modes
        .iter()
        .find(|m| {
            attribute_slots(&profile, &m.name, &Attribute::Pan).is_some_and(|s| s.fine.is_some())
        })
        .expect("a mode with 16-bit pan")
        .name
        .clone();
    let pan = attribute_slots(&profile, &mode, &Attribute::Pan).expect("pan");
    let gobo_slot = attribute_slots(&profile, &mode, &Attribute::Gobo)
        .expect("gobo")
        .coarse;
    let gobo = capability_for(&profile, &Attribute::Gobo, "Gobo 3")
        .expect("a Gobo 3 range")
        .clone();

    let mut show = Show::empty("library round trip");
    show.universes.push(Universe::new(1));
    show.profiles.push(profile.clone());
    show.fixtures.push(Fixture {
        id: 1,
        name: "Alpha".into(),
        profile: profile.reference(),
        mode,
        universe: 1,
        address: 101,
        position: None,
    });
    show.cue_lists.push(CueList {
        name: "main".into(),
        looped: false,
        cues: vec![Cue {
            number: CueNumber(1000),
            label: "pan half, gobo 3".into(),
            fade_in: 0.0,
            fade_out: None,
            delay: 0.0,
            follow: None,
            assert: false,
            values: [(
                Target::Fixture(1),
                [
                    (Attribute::Pan, Value::Norm(0.5)),
                    (Attribute::Gobo, Value::Dmx(u32::from(gobo.min))),
                ]
                .into_iter()
                .collect(),
            )]
            .into_iter()
            .collect(),
        }],
    });
    show.playbacks.push(Playback {
        name: "main".into(),
        cue_list: "main".into(),
        master: 1.0,
        release_time: 0.0,
    });
    let mut t = TestShow::new(&to_ron_string(&show));
    t.at(0, "go main").run_through(0);
    let address = |offset: usize| 101 + offset;
    let fine = pan.fine.expect("16-bit pan");
    assert_eq!(
        (t.dmx(0, 1, address(pan.coarse)), t.dmx(0, 1, address(fine))),
        (128, 0),
        "pan 50 % = 32768: coarse 128, fine 0"
    );
    let value = t.dmx(0, 1, address(gobo_slot));
    assert!(
        (gobo.min..=gobo.max).contains(&value),
        "gobo slot {value} inside {:?} {}..={}",
        gobo.label,
        gobo.min,
        gobo.max
    );
}
