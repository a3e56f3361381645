//! Round trip: an imported profile, patched in a show, puts attribute values on the DMX
//! slots the fixture's manual says.
//!
//! The engine crate does the real rendering; here a ten-line reference renderer does what
//! the engine does with a profile (`FixtureProfile::channel_for_slot` for each slot of the
//! mode, 16-bit values split into coarse and fine bytes), so the profile side is checked on
//! its own. Needs the QLC+ corpus (`scripts/fetch-qlc-corpus.sh`).

mod common;

use std::path::Path;

use rockontrol_show::import;
use rockontrol_show::library::{Library, attribute_slots, capability_for};
use rockontrol_show::{
    Attribute, Cue, CueList, CueNumber, CueValues, Fixture, FixtureProfile, Show, Target, Universe,
    Value, parse_show, to_ron_string, validate,
};

/// What the engine writes for one fixture: `values` on `mode` of `profile` at 1-based
/// `address`, into a 512-slot universe.
fn render(
    profile: &FixtureProfile,
    mode: &str,
    address: usize,
    values: &[(Attribute, Value)],
) -> Vec<u8> {
    let mut frame = vec![0u8; 512];
    for (attribute, value) in values {
        let slots = attribute_slots(profile, mode, attribute).expect("the mode has the attribute");
        let level = value.level(slots.bits());
        let base = address - 1;
        match slots.fine {
            Some(fine) => {
                let x = (level * 65535.0 + 0.5) as u32;
                frame[base + slots.coarse] = (x >> 8) as u8;
                frame[base + fine] = (x & 0xff) as u8;
            }
            None => frame[base + slots.coarse] = (level * 255.0 + 0.5) as u8,
        }
    }
    frame
}

fn alpha_spot() -> FixtureProfile {
    let path = common::corpus_fixtures().join("Clay_Paky/Clay-Paky-Alpha-Spot-575-HPE.qxf");
    match import::import_file(&path) {
        Ok(imported) => imported.profile,
        Err(e) => panic!("the Alpha Spot imports: {e}"),
    }
}

#[test]
fn sixteen_bit_pan_and_tilt_land_on_the_manuals_slots() {
    let profile = alpha_spot();
    // Option 16b: Pan is channel 21, Tilt 22, Pan fine 25, Tilt fine 26 (1-based).
    let pan = attribute_slots(&profile, "Option 16b", &Attribute::Pan).expect("pan");
    assert_eq!((pan.coarse, pan.fine), (20, Some(24)));
    let tilt = attribute_slots(&profile, "Option 16b", &Attribute::Tilt).expect("tilt");
    assert_eq!((tilt.coarse, tilt.fine), (21, Some(25)));

    let frame = render(
        &profile,
        "Option 16b",
        101,
        &[
            (Attribute::Pan, Value::Norm(0.5)),
            (Attribute::Tilt, Value::Dmx(0x1234)),
        ],
    );
    assert_eq!(frame[100 + 20], 128, "pan 50 %: coarse byte 0x80");
    assert_eq!(
        frame[100 + 24],
        0,
        "pan 50 %: fine byte 0x00 (32768 = 0x8000)"
    );
    assert_eq!(frame[100 + 21], 0x12, "tilt Dmx(0x1234): coarse");
    assert_eq!(frame[100 + 25], 0x34, "tilt Dmx(0x1234): fine");

    // Standard mode has no fine bytes: the same 50 % is one byte.
    let standard = attribute_slots(&profile, "Option Stnd", &Attribute::Pan).expect("pan");
    assert_eq!((standard.coarse, standard.fine), (20, None));
    let frame = render(
        &profile,
        "Option Stnd",
        1,
        &[(Attribute::Pan, Value::Norm(0.5))],
    );
    assert_eq!(frame[20], 128);
}

#[test]
fn a_gobo_selection_lands_in_its_capability_range() {
    let profile = alpha_spot();
    let gobo3 =
        capability_for(&profile, &Attribute::Gobo, "Gobo 3").expect("Gobo 3 on the fixed wheel");
    assert_eq!(
        (gobo3.min, gobo3.max),
        (24, 31),
        "the definition's range for Gobo 3"
    );
    let pick = Value::Dmx(u32::from(gobo3.min + gobo3.max) / 2);
    let frame = render(&profile, "Option 16b", 1, &[(Attribute::Gobo, pick)]);
    let gobo_slot = attribute_slots(&profile, "Option 16b", &Attribute::Gobo)
        .expect("gobo")
        .coarse;
    assert_eq!(gobo_slot, 8, "Fixed gobo change is channel 9");
    assert!(
        (24..=31).contains(&frame[gobo_slot]),
        "{} is in Gobo 3's range",
        frame[gobo_slot]
    );
}

#[test]
fn an_imported_profile_patches_into_a_valid_show_that_round_trips() {
    let profile = alpha_spot();
    let reference = profile.reference();
    let mut show = Show::empty("imported profile");
    show.universes.push(Universe {
        id: 1,
        label: String::new(),
        outputs: Vec::new(),
        input: None,
    });
    show.profiles.push(profile);
    for (i, address) in [1u16, 33].into_iter().enumerate() {
        show.fixtures.push(Fixture {
            id: 101 + i as u32,
            name: format!("Spot {}", i + 1),
            profile: reference.clone(),
            mode: "Option 16b".to_string(),
            universe: 1,
            address,
            position: None,
        });
    }
    let mut values = CueValues::new();
    values.entry(Target::Fixture(101)).or_default().extend([
        (Attribute::Pan, Value::Norm(0.5)),
        (Attribute::Gobo, Value::Dmx(28)),
        (Attribute::Intensity, Value::Norm(1.0)),
    ]);
    show.cue_lists.push(CueList {
        name: "main".to_string(),
        looped: false,
        cues: vec![Cue {
            number: CueNumber(1000),
            label: "Gobo 3, pan centre".to_string(),
            fade_in: 2.0,
            fade_out: None,
            delay: 0.0,
            follow: None,
            assert: false,
            values,
        }],
    });
    assert_eq!(
        validate(&show),
        Ok(()),
        "the show with the imported profile is valid"
    );
    let text = to_ron_string(&show);
    let back = parse_show(&text, "round-trip.ron").expect("the saved show parses");
    assert_eq!(back, show, "load(save(show)) == show");
    assert_eq!(to_ron_string(&back), text, "and saves to the same bytes");
}

#[test]
fn a_library_saves_loads_and_finds_imported_profiles() {
    let dir = std::env::temp_dir().join(format!("rockontrol-library-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let library = Library::new(&dir);
    let profile = alpha_spot();
    let ofl = import::import_file(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/ofl/generic/moving-spot-16bit.json"),
    )
    .expect("imports")
    .profile;
    let path = library
        .save(&profile, &["Imported for a test.".to_string()])
        .expect("library is writable");
    assert!(
        path.ends_with("Clay Paky/Alpha Spot HPE 575.ron"),
        "{}",
        path.display()
    );
    library.save(&ofl, &[]).expect("library is writable");

    assert_eq!(
        library.load("Clay Paky/Alpha Spot HPE 575").expect("loads"),
        profile
    );
    assert_eq!(
        library
            .load("clay paky/alpha spot hpe 575")
            .expect("any case"),
        profile
    );
    let found: Vec<String> = library
        .search("spot")
        .expect("search")
        .iter()
        .map(|e| e.reference())
        .collect();
    assert_eq!(
        found,
        ["Clay Paky/Alpha Spot HPE 575", "Generic/Moving Spot 16bit"]
    );
    let found: Vec<String> = library
        .search("clay 575")
        .expect("search")
        .iter()
        .map(|e| e.reference())
        .collect();
    assert_eq!(found, ["Clay Paky/Alpha Spot HPE 575"]);
    let missing = library
        .load("Clay Paky/Alpha Spot")
        .expect_err("no such model");
    assert!(
        missing
            .to_string()
            .contains("did you mean: Clay Paky/Alpha Spot HPE 575"),
        "{missing}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
