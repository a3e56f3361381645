//! QLC+'s sample workspace (`Sample.qxw` from `qlcplus-data`) converted to a show.
//!
//! Needs the corpus: `scripts/fetch-qlc-corpus.sh`.

mod common;

use rockontrol_show::import::qxw::{FixtureSources, import_qxw_file};
use rockontrol_show::import::{Notice, NoticeKind};
use rockontrol_show::{Attribute, Follow, Target, Value, parse_show, to_ron_string, validate};

fn sample() -> (rockontrol_show::Show, Vec<Notice>) {
    let mut sources = FixtureSources::new(None, vec![common::corpus_fixtures()]);
    match import_qxw_file(&common::sample_workspace(), &mut sources) {
        Ok(imported) => (imported.show, imported.notices),
        Err(e) => panic!("Sample.qxw converts: {e}"),
    }
}

#[test]
fn sample_workspace_converts_to_a_valid_show() {
    let (show, notices) = sample();
    for n in &notices {
        eprintln!("{n}");
    }
    if let Err(errors) = validate(&show) {
        panic!("converted show is invalid: {errors:#?}");
    }
    eprintln!(
        "Sample.qxw: {} fixtures, {} profiles, {} groups, {} cue lists ({} cues), {} playbacks, {} warnings",
        show.fixtures.len(),
        show.profiles.len(),
        show.groups.len(),
        show.cue_lists.len(),
        show.cue_lists.iter().map(|l| l.cues.len()).sum::<usize>(),
        show.playbacks.len(),
        notices
            .iter()
            .filter(|n| n.kind == NoticeKind::Warning)
            .count()
    );
    // 13 QLC+ fixtures; the two 6-channel and one 4-channel generic dimmer packs become
    // one fixture per channel: 10 + 6 + 6 + 4.
    assert_eq!(show.fixtures.len(), 26);
    assert_eq!(show.universes.iter().map(|u| u.id).collect::<Vec<_>>(), [1]);
    let scan = show
        .fixture(5)
        .expect("QLC+ fixture 4, DJScan250 #1, is fixture 5");
    assert_eq!(
        (
            scan.name.as_str(),
            scan.profile.as_str(),
            scan.mode.as_str(),
            scan.address
        ),
        ("DJScan250 #1", "Futurelight/DJScan250", "Mode 1", 23),
        "QLC+ address 22 (0-based) is our 23"
    );
    // 13 chasers, plus the scenes no chaser uses.
    assert_eq!(show.cue_lists.len(), 14);
    assert_eq!(show.playbacks.len(), 14, "a playback per cue list");
    assert!(
        notices.iter().any(|n| n
            .message
            .contains("EFX (movement effects) \"SC Circle 1\" not carried over")),
        "EFX are reported by name"
    );

    let text = to_ron_string(&show);
    let back = parse_show(&text, "Sample.ron").expect("the converted show's RON parses");
    assert_eq!(back, show);
}

#[test]
fn chasers_keep_their_timing_and_play_like_qlc() {
    let (show, _) = sample();
    // "SC Pan": three 1 s steps (Duration "Common" = 1000 ms), looped.
    let pan = show
        .cue_lists
        .iter()
        .find(|l| l.name == "SC Pan")
        .expect("SC Pan");
    assert!(pan.looped);
    assert_eq!(pan.cues.len(), 3);
    for cue in &pan.cues {
        assert_eq!(
            cue.follow,
            Some(Follow::After(1.0)),
            "{}: each step holds 1 s",
            cue.label
        );
        // Fade in "Default": the step scene's own 1 s fade.
        assert_eq!(cue.fade_in, 1.0, "{}", cue.label);
    }
    // Scene values become raw DMX on the attribute the profile gives the channel.
    let first = &pan.cues[0];
    assert_eq!(first.label, "SC Pan 1");
    let scan = first
        .values
        .get(&Target::Fixture(5))
        .expect("values for DJScan250 #1");
    assert!(
        matches!(scan.get(&Attribute::Pan), Some(Value::Dmx(_))),
        "{scan:?}"
    );

    // A strobe chaser of two zero-length steps follows after one DMX tick, not instantly.
    let strobe = show
        .cue_lists
        .iter()
        .find(|l| l.name == "LST White strobo")
        .expect("strobe chaser");
    assert!(matches!(strobe.cues[0].follow, Some(Follow::After(t)) if t > 0.0 && t < 0.05));
}

#[test]
fn intensities_a_step_does_not_set_fade_out() {
    let (show, _) = sample();
    // Steps of a chaser do not track in QLC+: whatever intensity one step set and the next
    // does not is zero in the next.
    for list in &show.cue_lists {
        let mut set: std::collections::BTreeSet<(Target, Attribute)> = Default::default();
        for cue in &list.cues {
            for (t, attrs) in &cue.values {
                for a in attrs.keys() {
                    set.insert((t.clone(), a.clone()));
                }
            }
        }
        for cue in &list.cues {
            for (t, a) in set.iter().filter(|(_, a)| *a == Attribute::Intensity) {
                assert!(
                    cue.values.get(t).is_some_and(|v| v.contains_key(a)),
                    "list {:?} cue {}: {a:?} of {t:?} is set in every cue",
                    list.name,
                    cue.number
                );
            }
        }
    }
}

/// Serves the hand-written OFL moving spot to a workspace, as a library would.
struct OneProfile;

impl rockontrol_show::import::qxw::ProfileSource for OneProfile {
    fn find(
        &mut self,
        manufacturer: &str,
        model: &str,
    ) -> Result<Option<rockontrol_show::import::qxw::FoundProfile>, String> {
        if (manufacturer, model) != ("Generic", "Moving Spot 16bit") {
            return Ok(None);
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/ofl/generic/moving-spot-16bit.json");
        let imported = rockontrol_show::import::import_file(&path).map_err(|e| e.to_string())?;
        Ok(Some(rockontrol_show::import::qxw::FoundProfile {
            profile: imported.profile,
            origin: path.display().to_string(),
            notices: imported.notices,
        }))
    }
}

#[test]
fn a_qlc_4_12_workspace_keeps_outputs_groups_16_bit_values_and_step_times() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/qxw/modern.qxw");
    let imported = import_qxw_file(&path, &mut OneProfile).expect("converts");
    let (show, notices) = (imported.show, imported.notices);
    for n in &notices {
        eprintln!("{n}");
    }
    if let Err(errors) = validate(&show) {
        panic!("converted show is invalid: {errors:#?}");
    }
    assert_eq!(show.name, "modern");
    // Universe 1 has an E1.31 output; universe 2's USB output is reported, not guessed.
    assert!(matches!(
        show.universes[0].outputs[..],
        [rockontrol_show::Output::Sacn(_)]
    ));
    assert!(notices.iter().any(|n| {
        n.message
            .contains("output plugin \"DMX USB\" not carried over")
    }));
    // The fixture without a profile is reported by name and left out, with its values.
    assert_eq!(show.fixtures.len(), 2);
    assert!(
        notices
            .iter()
            .any(|n| n.element.contains("\"Mystery\"") && n.message.contains("not patched"))
    );
    assert_eq!(
        show.fixture(2).map(|f| f.address),
        Some(17),
        "QLC+ address 16 is our 17"
    );
    assert_eq!(
        show.groups
            .iter()
            .find(|g| g.name == "Spots")
            .map(|g| g.fixtures.clone()),
        Some(vec![1, 2])
    );

    // Scene "Centre & open": pan coarse 128 + fine 64 is one 16-bit value.
    let scenes = show
        .cue_lists
        .iter()
        .find(|l| l.name == "Scenes")
        .expect("Scenes");
    let centre = &scenes.cues[0];
    assert_eq!(centre.label, "Centre & open");
    assert_eq!(centre.fade_in, 0.5);
    let spot_l = &centre.values[&Target::Fixture(1)];
    assert_eq!(spot_l[&Attribute::Pan], Value::Dmx(128 << 8 | 64));
    assert_eq!(
        spot_l[&Attribute::Intensity],
        Value::Dmx(255 << 8),
        "16-bit dimmer, coarse only"
    );
    assert_eq!(spot_l[&Attribute::Gobo], Value::Dmx(20));

    // Chaser "Sweep": backward, single shot, per-step times; the EFX step is dropped.
    let sweep = show
        .cue_lists
        .iter()
        .find(|l| l.name == "Sweep")
        .expect("Sweep");
    assert!(!sweep.looped);
    let labels: Vec<&str> = sweep.cues.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels, ["Right", "Left"], "backward");
    assert_eq!(sweep.cues[0].fade_in, 0.25);
    assert_eq!(sweep.cues[0].follow, None, "an infinite hold waits for GO");
    assert_eq!(sweep.cues[1].fade_in, 1.0);
    assert_eq!(
        sweep.cues[1].fade_out,
        Some(0.0),
        "Right's fade out (0 ms) takes it away"
    );
    assert_eq!(
        sweep.cues[1].follow, None,
        "the last cue of a single-shot list"
    );
    assert!(
        notices
            .iter()
            .any(|n| n.message.contains("step runs EFX \"Circle\""))
    );
    // Right sets Spot R's dimmer, Left does not: in Left, Spot R's dimmer goes to zero.
    assert_eq!(
        sweep.cues[1].values[&Target::Fixture(2)][&Attribute::Intensity],
        Value::Dmx(0)
    );
    assert!(
        show.playbacks
            .iter()
            .any(|p| p.name == "Sweep" && p.cue_list == "Sweep")
    );
}
