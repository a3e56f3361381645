//! Broken and hostile fixture files: one clear error naming file and element each, and a
//! batch import that carries on past them.

use std::path::{Path, PathBuf};

use rockontrol_show::import::{self, ImportError, MAX_FILE_BYTES, NoticeKind};

fn bad(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/bad")
        .join(name)
}

fn error_of(name: &str) -> ImportError {
    match import::import_file(&bad(name)) {
        Ok(p) => panic!("{name} should not import, got {:?}", p.profile),
        Err(e) => e,
    }
}

/// A scratch folder for generated files, fresh per test.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rockontrol-bad-input-{}-{test}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    dir
}

#[test]
fn malformed_xml_names_file_line_and_column() {
    let e = error_of("malformed.qxf");
    let text = e.to_string();
    assert!(
        matches!(e, ImportError::Malformed { format: "XML", .. }),
        "{text}"
    );
    assert!(text.contains("malformed.qxf:"), "names the file: {text}");
    // The unclosed <Channel Name="Red"> is found where </FixtureDefinition> closes it.
    let ImportError::Malformed { at, .. } = &e else {
        unreachable!()
    };
    assert_eq!(at.line_column.map(|(l, _)| l), Some(11), "{text}");
}

#[test]
fn malformed_json_names_file_line_and_column() {
    let e = error_of("malformed.json");
    let ImportError::Malformed { at, format, .. } = &e else {
        panic!("expected malformed JSON, got {e}");
    };
    assert_eq!(*format, "JSON");
    assert!(at.file.ends_with("malformed.json"), "{e}");
    assert_eq!(
        at.line_column.map(|(l, _)| l),
        Some(7),
        "the trailing comma's object closes on line 7: {e}"
    );
}

#[test]
fn unknown_channel_group_is_a_defect_of_that_channel() {
    let e = error_of("unknown-group.qxf");
    let text = e.to_string();
    let ImportError::Defect {
        at,
        element,
        message,
    } = &e
    else {
        panic!("expected a defect, got {text}");
    };
    assert_eq!(element, "<Channel Name=\"Sparkle\">");
    assert!(
        message.contains("unknown channel group \"Glitter\""),
        "{text}"
    );
    assert_eq!(at.line_column, Some((8, 2)), "{text}");
}

#[test]
fn a_channel_no_mode_uses_is_dropped_with_a_warning_naming_it() {
    let p = import::import_file(&bad("unused-channel.qxf")).expect("still importable");
    assert!(p.profile.channels.iter().all(|c| c.name != "Macro"));
    let warning = p
        .warnings()
        .find(|n| n.element == "<Channel Name=\"Macro\">")
        .expect("a warning names the unused channel");
    assert_eq!(warning.line, Some(10));
    assert!(
        warning.message.contains("no mode uses this channel"),
        "{warning}"
    );
}

#[test]
fn duplicate_names_are_defects() {
    let e = error_of("duplicate-channel.qxf");
    assert!(
        e.to_string().contains(
            "<Channel Name=\"Dimmer\">: channel name \"Dimmer\" is defined twice (first at line 7)"
        ),
        "{e}"
    );
    let e = error_of("duplicate-mode.json");
    let ImportError::Defect {
        element, message, ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(element, "modes[1] \"2ch\"", "{e}");
    assert!(message.contains("defined twice"), "{e}");
}

#[test]
fn a_mode_naming_an_undefined_channel_is_a_defect() {
    let e = error_of("undefined-channel.qxf");
    assert!(
        e.to_string().contains(
            "<Mode Name=\"2ch\">: lists channel \"Strobe\", which the fixture does not define"
        ),
        "{e}"
    );
}

#[test]
fn out_of_range_capabilities_are_defects() {
    let e = error_of("capability-range.qxf");
    let text = e.to_string();
    assert!(
        text.contains("<Channel Name=\"Strobe\"> <Capability Min=\"10\">"),
        "{text}"
    );
    assert!(
        text.contains("Max=\"300\" is not a DMX value 0..=255"),
        "{text}"
    );
}

#[test]
fn entity_expansion_is_refused() {
    let e = error_of("entity-expansion.qxf");
    assert!(matches!(e, ImportError::Malformed { .. }), "{e}");
    assert!(e.to_string().contains("unknown entity &lol3;"), "{e}");
}

#[test]
fn json_that_is_not_a_fixture_is_unknown_format() {
    let e = error_of("not-a-fixture.json");
    assert!(matches!(e, ImportError::UnknownFormat { .. }), "{e}");
}

#[test]
fn absurd_sizes_are_refused() {
    let dir = scratch("absurd");
    // A mode longer than a universe.
    let mut text = String::from(
        "<FixtureDefinition><Manufacturer>Huge</Manufacturer><Model>Long Mode</Model><Type>Other</Type>\n",
    );
    for i in 0..600 {
        text.push_str(&format!(
            "<Channel Name=\"C{i}\"><Group Byte=\"0\">Effect</Group></Channel>\n"
        ));
    }
    text.push_str("<Mode Name=\"600ch\">\n");
    for i in 0..600 {
        text.push_str(&format!("<Channel Number=\"{i}\">C{i}</Channel>\n"));
    }
    text.push_str("</Mode></FixtureDefinition>\n");
    let long_mode = dir.join("long-mode.qxf");
    std::fs::write(&long_mode, &text).expect("write");
    let e = import::import_file(&long_mode).expect_err("600 channels do not fit a universe");
    assert!(
        e.to_string()
            .contains("<Mode Name=\"600ch\">: mode has 600 channels, more than the 512"),
        "{e}"
    );

    // A file past the size limit is refused before it is read.
    let huge = dir.join("huge.qxf");
    let file = std::fs::File::create(&huge).expect("create");
    file.set_len(MAX_FILE_BYTES + 1).expect("sparse file");
    let e = import::import_file(&huge).expect_err("too large");
    assert!(matches!(e, ImportError::TooLarge { .. }), "{e}");

    // Deep nesting.
    let deep = dir.join("deep.qxf");
    std::fs::write(&deep, "<a>".repeat(100) + &"</a>".repeat(100)).expect("write");
    let e = import::import_file(&deep).expect_err("too deep");
    assert!(e.to_string().contains("nest more than"), "{e}");

    // A name a megabyte long.
    let long_name = dir.join("long-name.qxf");
    let name = "x".repeat(1 << 20);
    std::fs::write(
        &long_name,
        format!(
            "<FixtureDefinition><Manufacturer>M</Manufacturer><Model>{name}</Model><Type>Other</Type></FixtureDefinition>"
        ),
    )
    .expect("write");
    let e = import::import_file(&long_name).expect_err("name too long");
    assert!(
        e.to_string()
            .contains("<Model>: name is 1048576 characters long"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_batch_carries_on_and_counts() {
    let good =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ofl/generic/moving-spot-16bit.json");
    let outcomes = import::import_paths(&[bad(""), good]).expect("paths are readable");
    let summary = import::summarize(&outcomes);
    for o in &outcomes {
        match &o.result {
            Ok(p) => eprintln!(
                "ok   {} ({} warnings)",
                o.path.display(),
                p.warnings().count()
            ),
            Err(e) => eprintln!("FAIL {e}"),
        }
    }
    eprintln!("{summary}");
    assert_eq!(summary.imported, 1, "the good OFL fixture");
    assert_eq!(summary.with_warnings, 1, "unused-channel.qxf");
    assert_eq!(summary.failed, 9, "every other bad file, each on its own");
    assert_eq!(
        summary.to_string(),
        "11 files: 1 imported, 1 imported with warnings, 9 failed"
    );
    // Every failure names its own file.
    for o in &outcomes {
        if let Err(e) = &o.result {
            let name = o.path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
            assert!(e.to_string().contains(name), "{e} should name {name}");
        }
    }
    let unused = outcomes
        .iter()
        .find(|o| o.path.ends_with("unused-channel.qxf"))
        .and_then(|o| o.result.as_ref().ok())
        .expect("imported");
    assert!(unused.notices.iter().any(|n| n.kind == NoticeKind::Warning));
}
