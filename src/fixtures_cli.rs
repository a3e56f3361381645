//! `rockontrol fixtures …` and `rockontrol import-qlc …`: the fixture library at the
//! command line. The work is done by `rockontrol_show::import` and
//! `rockontrol_show::library`; this module prints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use rockontrol_show::import::qxw::{FixtureSources, import_qxw_file};
use rockontrol_show::import::{self, NoticeKind, SourceFormat};
use rockontrol_show::library::{DEFAULT_LIBRARY_DIR, Library};
use rockontrol_show::{ByteRole, FixtureProfile, save_show, to_ron_string, validate};

/// `rockontrol fixtures` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum FixturesCommand {
    /// Import QLC+ (.qxf) and Open Fixture Library (.json) definitions into the library.
    Import {
        /// Files or folders to import.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Library folder to write profiles into.
        #[arg(long, default_value = DEFAULT_LIBRARY_DIR)]
        out: PathBuf,
        /// Also list what was dropped (descriptive data our profiles have no place for).
        #[arg(long, short)]
        verbose: bool,
    },
    /// Find profiles by manufacturer or model.
    Search {
        text: String,
        /// Library folder to search.
        #[arg(long, default_value = DEFAULT_LIBRARY_DIR)]
        library: PathBuf,
    },
    /// Show one profile: modes, channels, capabilities.
    Show {
        reference: String,
        /// Library folder to read from.
        #[arg(long, default_value = DEFAULT_LIBRARY_DIR)]
        library: PathBuf,
        /// Print the profile's RON instead of a summary.
        #[arg(long)]
        ron: bool,
    },
}

pub fn run(command: FixturesCommand) -> anyhow::Result<ExitCode> {
    match command {
        FixturesCommand::Import {
            paths,
            out,
            verbose,
        } => import_fixtures(&paths, &out, verbose),
        FixturesCommand::Search { text, library } => search(&text, &library),
        FixturesCommand::Show {
            reference,
            library,
            ron,
        } => show(&reference, &library, ron),
    }
}

fn import_fixtures(paths: &[PathBuf], out: &Path, verbose: bool) -> anyhow::Result<ExitCode> {
    let library = Library::new(out);
    let files = import::collect_fixture_files(paths)?;
    if files.is_empty() {
        anyhow::bail!("no .qxf or .json fixture files under {}", list(paths));
    }
    let outcomes = import::import_files(&files);
    let mut summary = import::summarize(&outcomes);
    // The first file to define a profile (or its library file) wins; a later one would
    // silently replace it.
    let mut written: BTreeMap<String, String> = BTreeMap::new();
    for outcome in &outcomes {
        let shown = outcome.path.display();
        match &outcome.result {
            Err(e) => println!("FAIL {e}"),
            Ok(imported) => {
                let reference = imported.profile.reference();
                let target =
                    library.path_for(&imported.profile.manufacturer, &imported.profile.model);
                let key = target.display().to_string().to_lowercase();
                let refused = match written.get(&key) {
                    Some(first) => Some(format!(
                        "profile {reference:?} goes to {}, already written from {first}; not written",
                        target.display()
                    )),
                    None => {
                        let mut header = vec![format!(
                            "Imported by `rockontrol fixtures import` from {} ({}).",
                            file_name(&outcome.path),
                            match imported.format {
                                SourceFormat::Qxf => "QLC+ fixture definition",
                                SourceFormat::Ofl => "Open Fixture Library",
                            }
                        )];
                        header.extend(imported.notices.iter().map(ToString::to_string));
                        library
                            .save(&imported.profile, &header)
                            .err()
                            .map(|e| e.to_string())
                    }
                };
                if let Some(why) = refused {
                    println!("FAIL {shown}: {why}");
                    if imported.has_warnings() {
                        summary.with_warnings -= 1;
                    } else {
                        summary.imported -= 1;
                    }
                    summary.failed += 1;
                    continue;
                }
                written.insert(key, shown.to_string());
                let path = target;
                let warnings = imported.warnings().count();
                if warnings > 0 {
                    println!("warn {shown} -> {} ({warnings} warnings)", path.display());
                } else {
                    println!("ok   {shown} -> {}", path.display());
                }
                for n in &imported.notices {
                    if n.kind == NoticeKind::Warning || verbose {
                        println!("       {n}");
                    }
                }
            }
        }
    }
    println!("{summary}");
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn search(text: &str, library: &Path) -> anyhow::Result<ExitCode> {
    let library = Library::new(library);
    let found = library.search(text)?;
    for entry in &found {
        println!("{}", entry.reference());
    }
    if found.is_empty() {
        eprintln!(
            "no profile in {} matches {text:?}",
            library.root().display()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn show(reference: &str, library: &Path, ron: bool) -> anyhow::Result<ExitCode> {
    let library = Library::new(library);
    let profile = library.load(reference)?;
    if ron {
        print!("{}", rockontrol_show::library::profile_to_ron(&profile));
    } else {
        print!("{}", describe(&profile));
    }
    Ok(ExitCode::SUCCESS)
}

/// A profile for people: modes slot by slot, then channels with their ranges.
fn describe(p: &FixtureProfile) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "{}  ({:?})", p.reference(), p.kind);
    if let Some(ph) = &p.physical {
        let mut parts = Vec::new();
        if let Some(v) = ph.pan_range {
            parts.push(format!("pan {v}°"));
        }
        if let Some(v) = ph.tilt_range {
            parts.push(format!("tilt {v}°"));
        }
        if let Some(v) = ph.beam_angle {
            parts.push(format!("beam {v}°"));
        }
        if let Some(v) = ph.power {
            parts.push(format!("{v} W"));
        }
        if let Some(v) = ph.weight {
            parts.push(format!("{v} kg"));
        }
        let _ = writeln!(s, "physical: {}", parts.join(", "));
    }
    for m in &p.modes {
        let _ = writeln!(s, "\nmode {:?}: {} channels", m.name, m.channels.len());
        for (i, slot) in m.channels.iter().enumerate() {
            let what = match p.channel_for_slot(slot) {
                Some((c, ByteRole::Coarse)) => {
                    let sixteen = c.fine.as_ref().is_some_and(|f| m.channels.contains(f));
                    format!(
                        "{}{}",
                        c.attribute.name(),
                        if sixteen { " (coarse)" } else { "" }
                    )
                }
                Some((c, ByteRole::Fine)) => format!("{} (fine)", c.attribute.name()),
                None => "?".to_string(),
            };
            let _ = writeln!(s, "  {:>3}  {slot:<28} {what}", i + 1);
        }
    }
    let _ = writeln!(s, "\nchannels:");
    for c in &p.channels {
        let mut line = format!("  {} = {}", c.name, c.attribute.name());
        if let Some(f) = &c.fine {
            line.push_str(&format!(", fine {f:?}"));
        }
        if c.default != 0 {
            line.push_str(&format!(", default {}", c.default));
        }
        let _ = writeln!(s, "{line}");
        for cap in &c.capabilities {
            let _ = writeln!(s, "      {:>3}-{:<3} {}", cap.min, cap.max, cap.label);
        }
    }
    s
}

pub fn import_qlc(workspace: PathBuf, out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let library = Path::new(DEFAULT_LIBRARY_DIR);
    let mut sources = FixtureSources::new(
        library.is_dir().then(|| Library::new(library)),
        qlc_fixture_dirs(&workspace),
    );
    let imported = import_qxw_file(&workspace, &mut sources)?;
    for n in &imported.notices {
        eprintln!("{}: {n}", workspace.display());
    }
    if let Err(errors) = validate(&imported.show) {
        eprintln!(
            "{}: the converted show has {} problems; not written:",
            workspace.display(),
            errors.len()
        );
        for e in errors {
            eprintln!("  - {e}");
        }
        return Ok(ExitCode::FAILURE);
    }
    let show = &imported.show;
    let summary = format!(
        "{}: {} fixtures, {} profiles, {} cue lists ({} cues), {} playbacks; {} warnings",
        workspace.display(),
        show.fixtures.len(),
        show.profiles.len(),
        show.cue_lists.len(),
        show.cue_lists.iter().map(|l| l.cues.len()).sum::<usize>(),
        show.playbacks.len(),
        imported
            .notices
            .iter()
            .filter(|n| n.kind == NoticeKind::Warning)
            .count()
    );
    match out {
        Some(path) => {
            save_show(show, &path).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("{summary}; written to {}", path.display());
        }
        None => {
            print!("{}", to_ron_string(show));
            eprintln!("{summary}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where QLC+ fixture definitions may be: beside the workspace, the corpus that
/// `scripts/fetch-qlc-corpus.sh` fetches, and QLC+'s own system and user folders.
fn qlc_fixture_dirs(workspace: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = workspace.parent() {
        dirs.push(if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir.to_path_buf()
        });
    }
    let corpus = std::env::var_os("ROCKONTROL_QLC_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/qlc-corpus"));
    dirs.push(corpus.join("usr/share/qlcplus/fixtures"));
    dirs.push(PathBuf::from("/usr/share/qlcplus/fixtures"));
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".qlcplus/fixtures"));
    }
    dirs.retain(|d| d.is_dir());
    dirs
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
