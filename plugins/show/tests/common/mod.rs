//! Shared by the corpus tests and the import benchmark: where the QLC+ corpus lives.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::PathBuf;

/// Root of the unpacked `qlcplus-data` package: `$ROCKONTROL_QLC_CORPUS`, or
/// `target/qlc-corpus` in the workspace. Panics, saying how to fetch it, when absent: CI
/// runs `scripts/fetch-qlc-corpus.sh` first, so a missing corpus is a broken setup, not a
/// reason to skip.
pub fn corpus_root() -> PathBuf {
    let root = match std::env::var_os("ROCKONTROL_QLC_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/qlc-corpus"),
    };
    let fixtures = root.join("usr/share/qlcplus/fixtures");
    assert!(
        fixtures.is_dir(),
        "the QLC+ fixture corpus is missing at {}: run scripts/fetch-qlc-corpus.sh \
         (or point ROCKONTROL_QLC_CORPUS at an unpacked qlcplus-data package)",
        fixtures.display()
    );
    root.canonicalize().unwrap_or(root)
}

/// The corpus's fixture definitions folder.
pub fn corpus_fixtures() -> PathBuf {
    corpus_root().join("usr/share/qlcplus/fixtures")
}

/// QLC+'s sample workspace.
pub fn sample_workspace() -> PathBuf {
    corpus_root().join("usr/share/qlcplus/Sample.qxw")
}
