//! The whole QLC+ fixture corpus (Debian's `qlcplus-data`) through the `.qxf` importer.
//!
//! Needs the corpus: `scripts/fetch-qlc-corpus.sh` (the test fails, saying so, without it).

mod common;

use std::collections::BTreeMap;

use rockontrol_show::import::{self, ImportError};

#[test]
fn every_corpus_definition_imports_or_names_a_real_defect() {
    let outcomes =
        import::import_paths(&[common::corpus_fixtures()]).expect("corpus folder is readable");
    let summary = import::summarize(&outcomes);
    eprintln!("QLC+ corpus: {summary}");
    let mut warnings: BTreeMap<String, usize> = BTreeMap::new();
    for o in &outcomes {
        match &o.result {
            Ok(p) => {
                for n in p.warnings() {
                    let key: String = n.message.split(['"', '(']).next().unwrap_or("").to_string();
                    *warnings.entry(key).or_default() += 1;
                }
            }
            Err(e) => eprintln!("  failed: {e}"),
        }
    }
    for (k, n) in &warnings {
        eprintln!("  warning x{n}: {k}");
    }
    assert_eq!(summary.total(), outcomes.len());
    assert!(
        summary.total() >= 1300,
        "expected ~1,358 definitions, found {}",
        summary.total()
    );
    for o in &outcomes {
        if let Err(e) = &o.result {
            assert!(
                matches!(
                    e,
                    ImportError::Defect { .. } | ImportError::Malformed { .. }
                ),
                "{e}"
            );
        }
    }
}
