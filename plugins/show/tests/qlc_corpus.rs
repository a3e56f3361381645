//! The whole QLC+ fixture corpus (Debian's `qlcplus-data`, ~1,358 `.qxf` files) through the
//! importer.
//!
//! Needs the corpus: run `scripts/fetch-qlc-corpus.sh` first (these tests fail, saying so,
//! without it). Run with `--nocapture` to see the counts.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use rockontrol_show::import::{self, ImportError, NoticeKind};
use rockontrol_show::validate::profile_problems;

/// The corpus files that must fail, and the defect each one really has: two `<Channel>`
/// definitions with one name, so its modes' references are ambiguous.
const KNOWN_DEFECTS: [(&str, &str); 3] = [
    ("Elation/Elation-Vision-250.qxf", "No function"),
    ("Stairville/Stairville-LED-PAR56-MKII-RGBA.qxf", "Mode"),
    ("Stairville/Stairville-LED-PAR56-MKII-RGBW.qxf", "Mode"),
];

#[test]
fn every_corpus_definition_imports_or_names_a_real_defect() {
    let root = common::corpus_fixtures();
    let outcomes =
        import::import_paths(std::slice::from_ref(&root)).expect("corpus folder is readable");
    let summary = import::summarize(&outcomes);

    let mut modes_checked = 0usize;
    let mut notice_kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failed = Vec::new();
    for o in &outcomes {
        let relative = o.path.strip_prefix(&root).unwrap_or(&o.path);
        let relative = relative.to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(&o.path).expect("corpus file is readable");
        match &o.result {
            Ok(imported) => {
                // Footprints, counted straight from the file's text, not through our parser.
                let source = mode_footprints(&text);
                assert_eq!(
                    imported.profile.modes.len(),
                    source.len(),
                    "{relative}: mode count differs from the source"
                );
                for (name, count) in &source {
                    let mode = imported
                        .profile
                        .mode(name)
                        .unwrap_or_else(|| panic!("{relative}: mode {name:?} is missing"));
                    assert_eq!(
                        mode.channels.len(),
                        *count,
                        "{relative}: mode {name:?} has {} channels, the source {count}",
                        mode.channels.len()
                    );
                    modes_checked += 1;
                }
                assert!(
                    profile_problems(&imported.profile).is_empty(),
                    "{relative}: imported profile has problems: {:?}",
                    profile_problems(&imported.profile)
                );
                for n in &imported.notices {
                    let kind = match n.kind {
                        NoticeKind::Warning => "warning",
                        NoticeKind::Dropped => "dropped",
                        NoticeKind::Info => "info",
                    };
                    *notice_kinds.entry(kind).or_default() += 1;
                }
            }
            Err(e) => {
                let Some((_, channel)) = KNOWN_DEFECTS.iter().find(|(f, _)| relative == *f) else {
                    panic!("{relative} failed but is not a known defect: {e}");
                };
                let ImportError::Defect {
                    at,
                    element,
                    message,
                } = e
                else {
                    panic!("{relative}: expected a defect naming an element, got: {e}");
                };
                assert!(
                    at.line_column.is_some(),
                    "{relative}: the error gives no line: {e}"
                );
                assert_eq!(element, &format!("<Channel Name={channel:?}>"), "{e}");
                assert!(message.contains("defined twice"), "{e}");
                // The defect is real: the file defines that channel name twice.
                let definitions = text
                    .matches(&format!("<Channel Name=\"{channel}\""))
                    .count();
                assert!(
                    definitions >= 2,
                    "{relative}: {channel:?} is defined {definitions} times"
                );
                failed.push(format!("{e}"));
            }
        }
    }

    eprintln!("QLC+ corpus: {summary}");
    eprintln!("  {modes_checked} modes, every footprint equal to the source");
    eprintln!("  notices: {notice_kinds:?}");
    for f in &failed {
        eprintln!("  failed: {f}");
    }
    assert!(
        summary.total() >= 1300,
        "expected ~1,358 definitions, found {}",
        summary.total()
    );
    assert_eq!(
        summary.failed,
        KNOWN_DEFECTS.len(),
        "every known defect fails, nothing else"
    );
}

/// `(mode name, number of <Channel Number=…> entries)` of every `<Mode>` in a .qxf file,
/// found by plain text search.
fn mode_footprints(text: &str) -> Vec<(String, usize)> {
    let mut modes = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<Mode ") {
        let body = &rest[start..];
        let end = body.find("</Mode>").unwrap_or(body.len());
        let block = &body[..end];
        let name_start = block.find("Name=\"").map(|i| i + 6).unwrap_or(0);
        let name_end = name_start + block[name_start..].find('"').unwrap_or(0);
        let name = unescape(&block[name_start..name_end]);
        modes.push((
            name.trim().to_string(),
            block.matches("<Channel Number=").count(),
        ));
        rest = &body[end..];
    }
    modes
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[test]
fn corpus_moving_head_keeps_physical_data_and_capabilities() {
    let path = common::corpus_fixtures().join("Clay_Paky/Clay-Paky-Alpha-Spot-575-HPE.qxf");
    let imported = import::import_file(Path::new(&path)).expect("a well-formed definition imports");
    let p = &imported.profile;
    assert_eq!(p.reference(), "Clay Paky/Alpha Spot HPE 575");
    let physical = p
        .physical
        .as_ref()
        .expect("the definition has physical data");
    assert!(
        physical.pan_range.is_some() && physical.tilt_range.is_some(),
        "{physical:?}"
    );
    let pan = p
        .channels
        .iter()
        .find(|c| c.name == "Pan")
        .expect("a Pan channel");
    assert_eq!(
        pan.fine.as_deref(),
        Some("Pan fine"),
        "Pan pairs with its fine channel"
    );
    let gobo = p
        .channels
        .iter()
        .find(|c| c.name == "Fixed gobo change")
        .expect("the fixed gobo wheel");
    assert_eq!(
        gobo.capabilities.len(),
        13,
        "every range of the wheel is kept"
    );
    let gobo3 = gobo
        .capabilities
        .iter()
        .find(|c| c.label == "Gobo 3")
        .expect("Gobo 3");
    assert_eq!(
        (gobo3.min, gobo3.max),
        (24, 31),
        "Gobo 3 keeps its DMX range"
    );
}
