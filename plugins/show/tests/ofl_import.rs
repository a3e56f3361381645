//! Open Fixture Library fixtures (hand-written in OFL's real shapes, under tests/data/ofl).

use std::path::{Path, PathBuf};

use rockontrol_show::import::{self, ImportedProfile, NoticeKind};
use rockontrol_show::library::{attribute_slots, capability_for};
use rockontrol_show::{Attribute, FixtureKind};

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/ofl")
        .join(path)
}

fn import(path: &str) -> ImportedProfile {
    match import::import_file(&data(path)) {
        Ok(p) => p,
        Err(e) => panic!("{path} should import: {e}"),
    }
}

fn has_notice(p: &ImportedProfile, kind: NoticeKind, fragment: &str) -> bool {
    p.notices
        .iter()
        .any(|n| n.kind == kind && n.to_string().contains(fragment))
}

#[test]
fn moving_spot_keeps_modes_fine_channels_wheels_and_physical_data() {
    let p = import("generic/moving-spot-16bit.json");
    for n in &p.notices {
        eprintln!("{n}");
    }
    let profile = &p.profile;
    assert_eq!(
        profile.reference(),
        "Generic/Moving Spot 16bit",
        "manufacturer from manufacturers.json"
    );
    assert_eq!(profile.kind, FixtureKind::MovingHead);
    assert_eq!(
        p.source_footprints,
        vec![
            ("Extended 16ch".to_string(), 16),
            ("Basic 9ch".to_string(), 9)
        ],
        "footprints as the source lists them, nulls included"
    );
    let extended = profile.mode("Extended 16ch").expect("the 16ch mode");
    assert_eq!(extended.channels.len(), 16);
    assert_eq!(
        extended.channels[12], "Unused 1",
        "a null slot keeps its place"
    );
    assert_eq!(&extended.channels[14..], ["Unused 2", "Unused 3"]);

    let pan = attribute_slots(profile, "Extended 16ch", &Attribute::Pan).expect("pan in 16ch");
    assert_eq!(
        (pan.coarse, pan.fine),
        (0, Some(1)),
        "16-bit pan: coarse at 1, fine at 2"
    );
    let dimmer = attribute_slots(profile, "Extended 16ch", &Attribute::Intensity).expect("dimmer");
    assert_eq!((dimmer.coarse, dimmer.fine), (5, Some(6)));
    let basic_pan = attribute_slots(profile, "Basic 9ch", &Attribute::Pan).expect("pan in 9ch");
    assert_eq!(
        (basic_pan.coarse, basic_pan.fine),
        (0, None),
        "the 9ch mode has 8-bit pan"
    );

    let pan_channel = profile
        .channels
        .iter()
        .find(|c| c.name == "Pan")
        .expect("Pan");
    assert_eq!(
        pan_channel.default, 128,
        "defaultValue \"50%\" of a 16-bit channel, coarse byte"
    );
    let shutter = profile
        .channels
        .iter()
        .find(|c| c.name == "Shutter")
        .expect("Shutter");
    assert_eq!(shutter.default, 255);
    assert_eq!(shutter.attribute, Attribute::Shutter);

    let flames = capability_for(profile, &Attribute::Gobo, "Flames").expect("the Flames gobo slot");
    assert_eq!(
        (flames.min, flames.max),
        (16, 23),
        "wheel slot 3 of the gobo wheel"
    );
    let red = capability_for(profile, &Attribute::ColorWheel, "Red").expect("the red colour slot");
    assert_eq!((red.min, red.max), (16, 31));
    let rotation = profile
        .channels
        .iter()
        .find(|c| c.name == "Gobo Rotation")
        .expect("rotation");
    assert_eq!(rotation.attribute, Attribute::GoboRotation);
    let control = profile
        .channels
        .iter()
        .find(|c| c.name == "Control")
        .expect("Control");
    assert_eq!(
        control.attribute,
        Attribute::Maintenance,
        "first capability that does something"
    );

    let physical = profile.physical.as_ref().expect("physical data");
    assert_eq!(
        physical.pan_range,
        Some(540.0),
        "from the Pan capability's angles"
    );
    assert_eq!(physical.tilt_range, Some(270.0), "-135deg..135deg");
    assert_eq!(physical.beam_angle, Some(15.0));
    assert_eq!((physical.power, physical.weight), (Some(400.0), Some(18.5)));
    assert!(
        has_notice(&p, NoticeKind::Dropped, "bulb"),
        "the bulb is reported as dropped"
    );
    assert!(
        !p.has_warnings(),
        "nothing that changes driving the fixture: {:?}",
        p.notices
    );
}

#[test]
fn pixel_bar_expands_matrix_inserts_and_renames_repeated_colours() {
    let p = import("generic/pixel-bar-4.json");
    for n in &p.notices {
        eprintln!("{n}");
    }
    let profile = &p.profile;
    assert_eq!(profile.kind, FixtureKind::LedBar);
    let names: Vec<&str> = profile.modes.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["5ch", "14ch"],
        "the eachPixelXYZ mode cannot be expanded and is dropped"
    );
    assert!(
        has_notice(&p, NoticeKind::Warning, "eachPixelXYZ"),
        "and that is said"
    );
    let mode = profile.mode("14ch").expect("14ch");
    assert_eq!(
        mode.channels[..5],
        ["Master Dimmer", "Red 1", "Green 1", "Blue 1", "Red 2"],
        "perPixel order"
    );
    assert_eq!(mode.channels.len(), 14);
    let red2 = profile
        .channels
        .iter()
        .find(|c| c.name == "Red 2")
        .expect("Red 2");
    assert_eq!(
        red2.attribute,
        Attribute::Other("Red 2".to_string()),
        "one Red per mode"
    );
    assert!(
        has_notice(&p, NoticeKind::Warning, "also carries Red"),
        "the rename is reported"
    );
    let left = profile.mode("5ch").expect("5ch");
    assert_eq!(
        left.channels[1], "Red Left",
        "template resolved with a pixel group key"
    );
    assert!(has_notice(&p, NoticeKind::Dropped, "pixel matrix layout"));
    assert!(
        has_notice(&p, NoticeKind::Dropped, "HTP precedence"),
        "channel precedence is reported"
    );
}

#[test]
fn third_byte_and_switching_channels_are_reported() {
    let p = import("showtec/compact-par-24bit.json");
    for n in &p.notices {
        eprintln!("{n}");
    }
    let profile = &p.profile;
    assert_eq!(profile.reference(), "Showtec/Compact Par Test");
    let dimmer = profile
        .channels
        .iter()
        .find(|c| c.name == "Dimmer")
        .expect("Dimmer");
    assert_eq!(dimmer.fine.as_deref(), Some("Dimmer fine"));
    assert!(
        has_notice(&p, NoticeKind::Warning, "Dimmer fine^2"),
        "the 24-bit byte is reported"
    );
    let function = profile
        .channels
        .iter()
        .find(|c| c.name == "Function")
        .expect("Function");
    assert_eq!(
        function.attribute,
        Attribute::Strobe,
        "switching channel at the default: Strobe Speed"
    );
    assert!(has_notice(&p, NoticeKind::Warning, "depends on \"Mode\""));
    assert!(
        profile
            .channels
            .iter()
            .all(|c| c.name != "Strobe Speed" && c.name != "Program Speed"),
        "switch targets no mode lists do not appear on their own"
    );
    assert_eq!(
        profile.physical.as_ref().and_then(|p| p.beam_angle),
        Some(40.0)
    );
    assert!(has_notice(&p, NoticeKind::Dropped, "zoom range 25°–40°"));
    assert!(has_notice(&p, NoticeKind::Dropped, "RDM"));
    assert_eq!(profile.mode("8ch").map(|m| m.channels.len()), Some(8));
}

#[test]
fn a_folder_of_ofl_fixtures_imports_as_a_batch() {
    let outcomes = import::import_paths(&[data("")]).expect("folder is readable");
    let summary = import::summarize(&outcomes);
    assert_eq!(
        summary.total(),
        3,
        "manufacturers.json is not a fixture: {outcomes:?}"
    );
    assert_eq!(summary.failed, 0, "{outcomes:?}");
}
