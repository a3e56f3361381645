//! The protocol's shape, checked in: a change to any replicated type or message must be seen
//! and accepted on purpose, because builds with different shapes refuse each other.
//!
//! `data/protocol-shape.json` holds the serde shape (JSON Schema per registered part) of the
//! base rules: the engine's playback state and commands, net's messages, node commands and
//! node overrides. When this test fails, the diff shows what changed.

use std::path::PathBuf;

use rockontrol_net::protocol;

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/protocol-shape.json")
}

#[test]
fn the_protocol_shape_matches_the_checked_in_golden() {
    let actual = protocol::base_rules().shape_text();
    let path = golden_path();
    if std::env::var_os("ROCKONTROL_BLESS").is_some() {
        std::fs::write(&path, &actual).expect("write the golden");
        eprintln!("wrote {}", path.display());
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; create it with ROCKONTROL_BLESS=1 cargo test --workspace --test protocol_shape",
            path.display()
        )
    });
    if expected == actual {
        return;
    }
    let diff = similar::TextDiff::from_lines(&expected, &actual)
        .unified_diff()
        .context_radius(3)
        .header("golden", "this build")
        .to_string();
    panic!(
        "The protocol changed: the serde shape of a replicated type or message is not the one \
         checked in, so this build's protocol hash ({}) differs from the last one's and the two \
         refuse each other.\n\n{diff}\n\
         If the change is intended, bump the protocol: raise PROTOCOL_VERSION in \
         plugins/net/src/protocol.rs if older builds cannot even parse the new frames, then \
         regenerate the golden with\n    ROCKONTROL_BLESS=1 cargo test --workspace --test protocol_shape\n\
         and commit {} with the change.",
        protocol::protocol_hash(),
        path.display()
    );
}

#[test]
fn the_golden_covers_every_base_part_and_the_hash_is_its_digest() {
    let rules = protocol::base_rules();
    let shape = rules.shape();
    for part in [
        rockontrol_engine::PLAYBACK_PART,
        rockontrol_engine::COMMAND_PART,
        protocol::NODE_COMMAND_PART,
        protocol::OVERRIDES_PART,
        protocol::TO_RECEIVER_PART,
        protocol::TO_MASTER_PART,
    ] {
        assert!(shape.get(part).is_some(), "{part} is in the shape: {shape}");
    }
    // A field's serde name is in the shape (so renaming it changes the hash).
    let text = rules.shape_text();
    for field in [
        "\"cue_id\"",
        "\"grand_master\"",
        "\"assigned_universes\"",
        "\"fade\"",
    ] {
        assert!(text.contains(field), "{field} is in the shape");
    }
    assert_eq!(protocol::protocol_hash(), rules.protocol_hash());
}
