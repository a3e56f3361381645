//! Import speed: the whole QLC+ fixture corpus (Debian's `qlcplus-data`, ~1,358 `.qxf`
//! files). Target: under 2 s for the lot.
//!
//! Needs the corpus: `scripts/fetch-qlc-corpus.sh` first. Run with
//! `cargo bench -p rockontrol-show --bench import`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rockontrol_show::import::{self, qxf};

fn corpus(c: &mut Criterion) {
    let files = import::collect_fixture_files(&[common::corpus_fixtures()])
        .expect("the corpus folder is readable");
    let texts: Vec<(String, String)> = files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("corpus files are UTF-8 text");
            (p.display().to_string(), text)
        })
        .collect();

    let mut group = c.benchmark_group("qlc_corpus");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    // Everything `rockontrol fixtures import` does but writing: list, read, parse, build.
    group.bench_function(format!("import {} files from disk", files.len()), |b| {
        b.iter(|| {
            let outcomes = import::import_paths(&[common::corpus_fixtures()]).expect("readable");
            black_box(import::summarize(&outcomes))
        })
    });
    // Parsing and profile building alone.
    group.bench_function(format!("import {} files from memory", texts.len()), |b| {
        b.iter(|| {
            let ok = texts
                .iter()
                .filter(|(file, text)| qxf::import_qxf_str(text, file).is_ok())
                .count();
            black_box(ok)
        })
    });
    group.finish();
}

criterion_group!(benches, corpus);
criterion_main!(benches);
