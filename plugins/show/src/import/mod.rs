//! Fixture importers: QLC+ fixture definitions (`.qxf`), Open Fixture Library fixtures
//! (`.json`) and QLC+ workspaces (`.qxw`).
//!
//! Importing keeps everything our [`FixtureProfile`] can hold — every mode with its exact
//! footprint, channels, capability ranges, 16-bit pairs, physical data — and says precisely
//! what it had to change or drop, as [`Notice`]s. A file that cannot be imported faithfully
//! gives one [`ImportError`] naming the file, the line where known, and the element.
//!
//! Both fixture formats go through one shared assembly step (`Draft`): pair fine channels
//! with their coarse ones, rename attributes that a mode would carry twice (multi-cell bars),
//! drop channels no mode uses, and finally check the result with
//! [`profile_problems`] so an imported profile is always
//! one a show accepts.
//!
//! # Layout
//! - this module: errors, notices, batch import ([`import_paths`]) and the shared assembly.
//! - [`qxf`]: QLC+ fixture definitions.
//! - [`ofl`]: Open Fixture Library JSON.
//! - [`qxw`]: QLC+ workspaces to a [`Show`](crate::Show).

pub mod ofl;
pub mod qxf;
pub mod qxw;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::model::{Attribute, Capability, Channel, FixtureKind, FixtureProfile, Mode, Physical};
use crate::validate::profile_problems;

/// Largest fixture or workspace file read (the biggest QLC+ definition is ~70 KiB).
pub const MAX_FILE_BYTES: u64 = 8 << 20;
/// Most channels one profile may define.
pub const MAX_CHANNELS: usize = 4096;
/// Most modes one profile may define.
pub const MAX_MODES: usize = 256;
/// Most capability ranges one channel may define (an 8-bit channel has 256 values).
pub const MAX_CAPABILITIES: usize = 256;
/// Longest name (manufacturer, model, channel, mode) in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// Longest capability label in characters (some labels are whole sentences).
pub const MAX_LABEL_CHARS: usize = 2048;
/// Deepest XML element nesting accepted (QLC+ files nest 4 deep, workspaces ~10).
pub const MAX_XML_DEPTH: usize = 64;

/// Where in a source file something is: `file:line:column`, or just the file for formats
/// whose parser keeps no positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    /// 1-based line and column, when known.
    pub line_column: Option<(usize, usize)>,
}

impl Location {
    /// A whole file.
    pub fn file(file: &str) -> Self {
        Location {
            file: file.to_string(),
            line_column: None,
        }
    }

    /// A line and column of a file.
    pub fn at(file: &str, line: usize, column: usize) -> Self {
        Location {
            file: file.to_string(),
            line_column: Some((line, column)),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.line_column {
            Some((line, column)) => write!(f, "{}:{line}:{column}", self.file),
            None => f.write_str(&self.file),
        }
    }
}

/// Why a file could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{file}: {size} bytes is more than the {MAX_FILE_BYTES}-byte limit for a fixture or workspace file"
    )]
    TooLarge { file: String, size: u64 },
    #[error(
        "{file}: not a QLC+ fixture (.qxf), QLC+ workspace (.qxw) or Open Fixture Library (.json) file"
    )]
    UnknownFormat { file: String },
    /// The file is not well-formed XML/JSON, or not text.
    #[error("{at}: malformed {format}: {message}")]
    Malformed {
        at: Location,
        format: &'static str,
        message: String,
    },
    /// Well-formed, but describes something that is wrong or cannot be held faithfully.
    #[error("{at}: {element}: {message}")]
    Defect {
        at: Location,
        /// The element at fault, as written in the source (`<Channel Name="Pan">`,
        /// `availableChannels."Pan"`).
        element: String,
        message: String,
    },
}

impl ImportError {
    pub(crate) fn defect(
        at: Location,
        element: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ImportError::Defect {
            at,
            element: element.into(),
            message: message.into(),
        }
    }
}

/// How serious a [`Notice`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NoticeKind {
    /// Something that changes how the fixture is driven: a renamed attribute, an unpaired
    /// fine channel, a mode-dependent channel function that was lost.
    Warning,
    /// Descriptive data our model has no place for (bulb, dimensions, gobo images, pixel
    /// layout): the fixture is driven exactly as before.
    Dropped,
    /// Neither lost nor changed: where something came from.
    Info,
}

/// Something an import changed or left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    /// Line in the source, when known.
    pub line: Option<usize>,
    /// The element concerned (`<Channel Name="Red 2">`, `modes[2]`).
    pub element: String,
    pub message: String,
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let kind = match self.kind {
            NoticeKind::Warning => "warning",
            NoticeKind::Dropped => "dropped",
            NoticeKind::Info => "note",
        };
        match self.line {
            Some(line) => write!(f, "{kind}: line {line}: {}: {}", self.element, self.message),
            None => write!(f, "{kind}: {}: {}", self.element, self.message),
        }
    }
}

/// The format a fixture came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Qxf,
    Ofl,
}

/// A profile imported from one file, with everything the import changed or dropped.
#[derive(Debug, Clone)]
pub struct ImportedProfile {
    pub file: String,
    pub format: SourceFormat,
    pub profile: FixtureProfile,
    pub notices: Vec<Notice>,
    /// Slot count of every mode in the source, by mode name, in source order: the profile's
    /// modes have exactly these footprints (a test checks it against the corpus).
    pub source_footprints: Vec<(String, usize)>,
}

impl ImportedProfile {
    /// Notices that change how the fixture is driven.
    pub fn warnings(&self) -> impl Iterator<Item = &Notice> {
        self.notices
            .iter()
            .filter(|n| n.kind == NoticeKind::Warning)
    }

    /// True when some notice is a warning.
    pub fn has_warnings(&self) -> bool {
        self.warnings().next().is_some()
    }
}

/// Reads a file as UTF-8 text, refusing absurd sizes before reading.
/// The emitter attribute of a colour name as both QLC+ (`<Colour>`) and OFL (`color`) spell
/// it; `None` for a colour we have no attribute for.
pub(crate) fn colour_attribute(colour: &str) -> Option<Attribute> {
    Some(match colour {
        "Red" => Attribute::Red,
        "Green" => Attribute::Green,
        "Blue" => Attribute::Blue,
        "Cyan" => Attribute::Cyan,
        "Magenta" => Attribute::Magenta,
        "Yellow" => Attribute::Yellow,
        "Amber" => Attribute::Amber,
        "White" => Attribute::White,
        "UV" => Attribute::Uv,
        _ => return None,
    })
}

pub(crate) fn read_text(path: &Path) -> Result<String, ImportError> {
    let file = path.display().to_string();
    let io = |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        return Err(ImportError::TooLarge { file, size });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&e.into_bytes()[..offset]).into_owned();
        let (line, column) = LineIndex::new(&text).line_column(offset);
        ImportError::Malformed {
            at: Location::at(&file, line, column),
            format: "text",
            message: "not valid UTF-8".to_string(),
        }
    })
}

/// Imports one fixture file, choosing the importer by extension (`.qxf`, `.json`).
pub fn import_file(path: &Path) -> Result<ImportedProfile, ImportError> {
    match extension(path).as_deref() {
        Some("qxf") => {
            let text = read_text(path)?;
            qxf::import_qxf_str(&text, &path.display().to_string())
        }
        Some("json") => {
            let text = read_text(path)?;
            let manufacturer = ofl::manufacturer_for_path(path);
            ofl::import_ofl_str(&text, &path.display().to_string(), &manufacturer)
        }
        _ => Err(ImportError::UnknownFormat {
            file: path.display().to_string(),
        }),
    }
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

/// Whether a path looks like a fixture file (`.qxf`, or `.json` other than OFL's
/// `manufacturers.json` index).
pub fn is_fixture_file(path: &Path) -> bool {
    match extension(path).as_deref() {
        Some("qxf") => true,
        Some("json") => path.file_name().and_then(|n| n.to_str()) != Some("manufacturers.json"),
        _ => false,
    }
}

/// The fixture files named by `paths`: files as given, folders searched recursively for
/// `.qxf`/`.json` files, sorted so batch output is stable; a file named twice (itself and
/// through its folder) is listed once.
pub fn collect_fixture_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ImportError> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| ImportError::Io {
            path: path.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found)?;
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    let mut seen = BTreeSet::new();
    files.retain(|f| seen.insert(f.canonicalize().unwrap_or_else(|_| f.clone())));
    Ok(files)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), ImportError> {
    let io = |source| ImportError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            walk(&path, found)?;
        } else if is_fixture_file(&path) {
            found.push(path);
        }
    }
    Ok(())
}

/// The result of importing one file of a batch.
#[derive(Debug)]
pub struct Outcome {
    pub path: PathBuf,
    pub result: Result<ImportedProfile, ImportError>,
}

/// Counts of a batch import.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Imported with nothing changed that affects driving the fixture.
    pub imported: usize,
    /// Imported, with at least one [`NoticeKind::Warning`].
    pub with_warnings: usize,
    pub failed: usize,
}

impl Summary {
    pub fn total(&self) -> usize {
        self.imported + self.with_warnings + self.failed
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{} files: {} imported, {} imported with warnings, {} failed",
            self.total(),
            self.imported,
            self.with_warnings,
            self.failed
        )
    }
}

/// Imports every file, carrying on past failures.
pub fn import_files(files: &[PathBuf]) -> Vec<Outcome> {
    files
        .iter()
        .map(|path| Outcome {
            path: path.clone(),
            result: import_file(path),
        })
        .collect()
}

/// Collects the fixture files under `paths` (see [`collect_fixture_files`]) and imports
/// them all. Only an unreadable *argument* stops the batch; a bad file is one failed
/// [`Outcome`].
pub fn import_paths(paths: &[PathBuf]) -> Result<Vec<Outcome>, ImportError> {
    Ok(import_files(&collect_fixture_files(paths)?))
}

/// Counts a batch's outcomes.
pub fn summarize(outcomes: &[Outcome]) -> Summary {
    let mut s = Summary::default();
    for o in outcomes {
        match &o.result {
            Ok(p) if p.has_warnings() => s.with_warnings += 1,
            Ok(_) => s.imported += 1,
            Err(_) => s.failed += 1,
        }
    }
    s
}

// ---------------------------------------------------------------------------------------
// Shared assembly
// ---------------------------------------------------------------------------------------

/// One channel as a source format describes it, before assembly.
#[derive(Debug, Clone)]
pub(crate) struct DraftChannel {
    pub name: String,
    pub attribute: Attribute,
    /// This slot is the fine byte of the named channel.
    pub fine_of: Option<String>,
    pub default: u8,
    pub highlight: Option<u8>,
    pub capabilities: Vec<Capability>,
    pub line: Option<usize>,
    /// How the source names this element, for notices.
    pub element: String,
}

/// One mode as a source format describes it.
#[derive(Debug, Clone)]
pub(crate) struct DraftMode {
    pub name: String,
    pub slots: Vec<String>,
    pub line: Option<usize>,
    pub element: String,
}

/// A profile as read from a source, before the shared checks and fix-ups.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub file: String,
    pub format: SourceFormat,
    pub manufacturer: String,
    pub model: String,
    pub kind: FixtureKind,
    pub channels: Vec<DraftChannel>,
    pub modes: Vec<DraftMode>,
    pub physical: Option<Physical>,
    pub notices: Vec<Notice>,
    /// Element naming the whole fixture, for profile-level errors.
    pub element: String,
}

impl Draft {
    fn warn(&mut self, line: Option<usize>, element: &str, message: String) {
        self.notices.push(Notice {
            kind: NoticeKind::Warning,
            line,
            element: element.to_string(),
            message,
        });
    }

    /// Pairs, renames, prunes and checks: the profile, or a defect naming the element.
    pub(crate) fn assemble(mut self) -> Result<ImportedProfile, ImportError> {
        let at = Location::file(&self.file);
        let source_footprints: Vec<(String, usize)> = self
            .modes
            .iter()
            .map(|m| (m.name.clone(), m.slots.len()))
            .collect();
        self.check_names()?;
        self.unpair_fines_without_coarse();
        self.rename_duplicate_attributes();
        self.drop_unused_channels();

        let mut channels: Vec<Channel> = Vec::with_capacity(self.channels.len());
        let mut fine_of: BTreeMap<String, String> = BTreeMap::new();
        for c in &self.channels {
            if let Some(coarse) = &c.fine_of {
                fine_of.insert(coarse.clone(), c.name.clone());
            }
        }
        for c in self.channels.iter().filter(|c| c.fine_of.is_none()) {
            channels.push(Channel {
                name: c.name.clone(),
                attribute: c.attribute.clone(),
                fine: fine_of.get(&c.name).cloned(),
                default: c.default,
                highlight: c.highlight,
                capabilities: c.capabilities.clone(),
            });
        }
        let profile = FixtureProfile {
            manufacturer: self.manufacturer.clone(),
            model: self.model.clone(),
            kind: self.kind,
            channels,
            modes: self
                .modes
                .iter()
                .map(|m| Mode {
                    name: m.name.clone(),
                    channels: m.slots.clone(),
                })
                .collect(),
            physical: self.physical.clone(),
        };
        let problems = profile_problems(&profile);
        if !problems.is_empty() {
            return Err(ImportError::defect(
                at,
                self.element.clone(),
                problems.join("; "),
            ));
        }
        Ok(ImportedProfile {
            file: self.file,
            format: self.format,
            profile,
            notices: self.notices,
            source_footprints,
        })
    }

    /// Names that would make the profile ambiguous: the source is at fault.
    fn check_names(&self) -> Result<(), ImportError> {
        let at = |line: Option<usize>| match line {
            Some(l) => Location::at(&self.file, l, 1),
            None => Location::file(&self.file),
        };
        if self.manufacturer.trim().is_empty() || self.model.trim().is_empty() {
            return Err(ImportError::defect(
                at(None),
                self.element.clone(),
                "manufacturer and model must not be empty",
            ));
        }
        if self.modes.is_empty() {
            return Err(ImportError::defect(
                at(None),
                self.element.clone(),
                "defines no modes",
            ));
        }
        let mut names: BTreeMap<&str, Option<usize>> = BTreeMap::new();
        for c in &self.channels {
            if c.name.trim().is_empty() {
                return Err(ImportError::defect(
                    at(c.line),
                    c.element.clone(),
                    "channel has no name",
                ));
            }
            if let Some(first) = names.insert(c.name.as_str(), c.line) {
                let first = first
                    .map(|l| format!(" (first at line {l})"))
                    .unwrap_or_default();
                return Err(ImportError::defect(
                    at(c.line),
                    c.element.clone(),
                    format!(
                        "channel name {:?} is defined twice{first}; modes could not tell them apart",
                        c.name
                    ),
                ));
            }
        }
        let mut mode_names = BTreeSet::new();
        for m in &self.modes {
            if !mode_names.insert(m.name.as_str()) {
                return Err(ImportError::defect(
                    at(m.line),
                    m.element.clone(),
                    format!("mode name {:?} is defined twice", m.name),
                ));
            }
            if m.slots.is_empty() {
                return Err(ImportError::defect(
                    at(m.line),
                    m.element.clone(),
                    "mode has no channels",
                ));
            }
            if m.slots.len() > crate::model::UNIVERSE_SLOTS {
                return Err(ImportError::defect(
                    at(m.line),
                    m.element.clone(),
                    format!(
                        "mode has {} channels, more than the 512 of a DMX universe",
                        m.slots.len()
                    ),
                ));
            }
            let mut used = BTreeSet::new();
            for slot in &m.slots {
                if !names.contains_key(slot.as_str()) {
                    return Err(ImportError::defect(
                        at(m.line),
                        m.element.clone(),
                        format!("lists channel {slot:?}, which the fixture does not define"),
                    ));
                }
                if !used.insert(slot.as_str()) {
                    return Err(ImportError::defect(
                        at(m.line),
                        m.element.clone(),
                        format!("lists channel {slot:?} twice"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A fine channel is an alias of its coarse channel, so every mode that lists it must
    /// list the coarse channel too; where one doesn't, the fine channel stands alone.
    fn unpair_fines_without_coarse(&mut self) {
        let mut lone: Vec<(usize, String)> = Vec::new();
        for (i, c) in self.channels.iter().enumerate() {
            let Some(coarse) = &c.fine_of else { continue };
            let orphaned_in = self
                .modes
                .iter()
                .find(|m| m.slots.contains(&c.name) && !m.slots.contains(coarse));
            if let Some(m) = orphaned_in {
                lone.push((i, format!("mode {:?} lists it without {coarse:?}", m.name)));
            }
        }
        for (i, why) in lone {
            let c = &mut self.channels[i];
            let coarse = c.fine_of.take().unwrap_or_default();
            c.attribute = Attribute::Other(c.name.clone());
            let (line, element) = (c.line, c.element.clone());
            let name = c.name.clone();
            self.warn(
                line,
                &element,
                format!(
                    "fine byte of {coarse:?} but {why}; imported as an 8-bit channel Other({name:?})"
                ),
            );
        }
    }

    /// A mode may not carry two coarse channels with one attribute (the engine could not
    /// tell them apart): every channel after the first gets `Other("<its name>")`.
    fn rename_duplicate_attributes(&mut self) {
        let index: BTreeMap<String, usize> = self
            .channels
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        // Renaming can collide again only with an `Other` of the same text; a few passes
        // settle it (each pass renames at least one channel or stops).
        for _ in 0..8 {
            let mut renames: Vec<(usize, String, String)> = Vec::new();
            let mut renamed: BTreeSet<usize> = BTreeSet::new();
            for m in &self.modes {
                let mut carried: BTreeMap<Attribute, usize> = BTreeMap::new();
                for slot in &m.slots {
                    let Some(&i) = index.get(slot) else { continue };
                    let c = &self.channels[i];
                    if c.fine_of.is_some() || renamed.contains(&i) {
                        continue;
                    }
                    match carried.get(&c.attribute) {
                        Some(&first) if first != i => {
                            renamed.insert(i);
                            renames.push((i, self.channels[first].name.clone(), m.name.clone()));
                        }
                        _ => {
                            carried.insert(c.attribute.clone(), i);
                        }
                    }
                }
            }
            if renames.is_empty() {
                return;
            }
            for (i, first, mode) in renames {
                let c = &mut self.channels[i];
                let old = c.attribute.name();
                let mut new_name = c.name.clone();
                if c.attribute == Attribute::Other(new_name.clone()) {
                    new_name = format!("{} ({})", c.name, old);
                }
                c.attribute = Attribute::Other(new_name);
                let (line, element, msg) = (
                    c.line,
                    c.element.clone(),
                    format!(
                        "mode {mode:?} also carries {old} on {first:?}; imported as {}",
                        c.attribute.name()
                    ),
                );
                self.warn(line, &element, msg);
            }
        }
    }

    /// Channels no mode lists cannot be patched: drop them, saying so.
    fn drop_unused_channels(&mut self) {
        let used: BTreeSet<&str> = self
            .modes
            .iter()
            .flat_map(|m| m.slots.iter().map(String::as_str))
            .collect();
        let mut dropped = Vec::new();
        self.channels.retain(|c| {
            let keep = used.contains(c.name.as_str());
            if !keep {
                dropped.push((c.line, c.element.clone()));
            }
            keep
        });
        // A coarse channel whose fine alias was dropped is simply 8-bit; one whose coarse
        // was dropped cannot be, because any mode listing the fine lists the coarse.
        for (line, element) in dropped {
            self.warn(
                line,
                &element,
                "no mode uses this channel; dropped".to_string(),
            );
        }
    }
}

/// Checks a name's length (a hostile file could carry megabyte-long names).
pub(crate) fn check_name(
    name: &str,
    at: impl FnOnce() -> Location,
    element: impl FnOnce() -> String,
) -> Result<(), ImportError> {
    check_length(name, MAX_NAME_CHARS, "name", at, element)
}

/// Checks a capability label's length.
pub(crate) fn check_label(
    label: &str,
    at: impl FnOnce() -> Location,
    element: impl FnOnce() -> String,
) -> Result<(), ImportError> {
    check_length(label, MAX_LABEL_CHARS, "label", at, element)
}

fn check_length(
    text: &str,
    limit: usize,
    what: &str,
    at: impl FnOnce() -> Location,
    element: impl FnOnce() -> String,
) -> Result<(), ImportError> {
    // Bytes bound chars from above: most texts skip the count.
    if text.len() > limit {
        let chars = text.chars().count();
        if chars > limit {
            return Err(ImportError::defect(
                at(),
                element(),
                format!("{what} is {chars} characters long, more than {limit}"),
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Positions
// ---------------------------------------------------------------------------------------

/// Byte offset → line/column, for error messages.
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub(crate) fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// 1-based line and column (in bytes) of a byte offset.
    pub(crate) fn line_column(&self, offset: usize) -> (usize, usize) {
        let line = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.starts.get(line).copied().unwrap_or(0);
        (line + 1, offset.saturating_sub(start) + 1)
    }
}

// ---------------------------------------------------------------------------------------
// A small XML tree for the QLC+ formats
// ---------------------------------------------------------------------------------------

/// QLC+ files are small and read whole: a tree with byte offsets is simpler to interpret
/// than a stream, and fast enough for the whole corpus.
pub(crate) mod xml {
    use quick_xml::events::Event;
    use quick_xml::reader::Reader;

    use super::{ImportError, LineIndex, Location, MAX_XML_DEPTH};

    /// One element: local name, attributes, text content, children, and where it starts.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Element {
        pub name: String,
        pub attributes: Vec<(String, String)>,
        pub text: String,
        pub children: Vec<Element>,
        /// Byte offset of the `<`.
        pub offset: usize,
    }

    impl Element {
        pub(crate) fn attr(&self, name: &str) -> Option<&str> {
            self.attributes
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }

        pub(crate) fn child(&self, name: &str) -> Option<&Element> {
            self.children.iter().find(|c| c.name == name)
        }

        pub(crate) fn children_named<'a>(
            &'a self,
            name: &'a str,
        ) -> impl Iterator<Item = &'a Element> + 'a {
            self.children.iter().filter(move |c| c.name == name)
        }

        /// Trimmed text of a child element.
        pub(crate) fn child_text(&self, name: &str) -> Option<&str> {
            self.child(name).map(|c| c.text.trim())
        }

        /// How the element reads in the source, with its identifying attribute:
        /// `<Channel Name="Pan">`.
        pub(crate) fn describe(&self) -> String {
            let key = ["Name", "ID", "Number", "Min"]
                .into_iter()
                .find_map(|k| self.attr(k).map(|v| (k, v)));
            match key {
                Some((k, v)) => format!("<{} {k}={v:?}>", self.name),
                None => format!("<{}>", self.name),
            }
        }
    }

    /// A parsed document with its line index.
    pub(crate) struct Document {
        pub root: Element,
        pub lines: LineIndex,
        pub file: String,
    }

    impl Document {
        pub(crate) fn location(&self, e: &Element) -> Location {
            let (line, column) = self.lines.line_column(e.offset);
            Location::at(&self.file, line, column)
        }

        pub(crate) fn line(&self, e: &Element) -> usize {
            self.lines.line_column(e.offset).0
        }
    }

    fn malformed(file: &str, lines: &LineIndex, offset: usize, message: String) -> ImportError {
        let (line, column) = lines.line_column(offset);
        ImportError::Malformed {
            at: Location::at(file, line, column),
            format: "XML",
            message,
        }
    }

    /// Parses a whole document, checking that end tags match and nesting stays sane.
    pub(crate) fn parse(text: &str, file: &str) -> Result<Document, ImportError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let lines = LineIndex::new(text);
        let mut reader = Reader::from_str(text);
        reader.config_mut().trim_text(false);
        reader.config_mut().check_end_names = true;
        let mut stack: Vec<Element> = Vec::new();
        let mut root: Option<Element> = None;
        loop {
            let before = reader.buffer_position() as usize;
            let event = reader.read_event().map_err(|e| {
                malformed(
                    file,
                    &lines,
                    reader.error_position() as usize,
                    e.to_string(),
                )
            })?;
            let after = reader.buffer_position() as usize;
            match event {
                Event::Start(_) | Event::Empty(_) if root.is_some() => {
                    return Err(malformed(
                        file,
                        &lines,
                        before,
                        "content after the root element".to_string(),
                    ));
                }
                Event::Start(ref start) | Event::Empty(ref start) => {
                    let is_empty = matches!(event, Event::Empty(_));
                    // The event spans `<` .. `>`; its content is everything in between.
                    let offset = after.saturating_sub(start.len() + if is_empty { 3 } else { 2 });
                    let name = start.local_name().as_ref().to_string();
                    let mut attributes = Vec::new();
                    for attr in start.attributes() {
                        let attr =
                            attr.map_err(|e| malformed(file, &lines, offset, e.to_string()))?;
                        let key = attr.key.local_name().as_ref().to_string();
                        let value = attr
                            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .map_err(|e| malformed(file, &lines, offset, e.to_string()))?
                            .into_owned();
                        attributes.push((key, value));
                    }
                    let element = Element {
                        name,
                        attributes,
                        offset,
                        ..Element::default()
                    };
                    if is_empty {
                        match stack.last_mut() {
                            Some(parent) => parent.children.push(element),
                            None => root = Some(element),
                        }
                    } else {
                        if stack.len() >= MAX_XML_DEPTH {
                            return Err(malformed(
                                file,
                                &lines,
                                offset,
                                format!("elements nest more than {MAX_XML_DEPTH} deep"),
                            ));
                        }
                        stack.push(element);
                    }
                }
                Event::End(_) => {
                    // check_end_names guarantees a matching start.
                    let Some(element) = stack.pop() else {
                        return Err(malformed(
                            file,
                            &lines,
                            before,
                            "unexpected end tag".to_string(),
                        ));
                    };
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(element),
                        None => root = Some(element),
                    }
                }
                Event::Text(t) => {
                    if let Some(current) = stack.last_mut() {
                        current.text.push_str(&t.xml10_content());
                    }
                }
                Event::CData(t) => {
                    if let Some(current) = stack.last_mut() {
                        current.text.push_str(&t.xml10_content());
                    }
                }
                Event::GeneralRef(r) => {
                    let resolved = match r.resolve_char_ref() {
                        Ok(Some(c)) => Some(c.to_string()),
                        Ok(None) => {
                            quick_xml::escape::resolve_predefined_entity(&r.xml10_content())
                                .map(str::to_string)
                        }
                        Err(e) => {
                            return Err(malformed(file, &lines, before, e.to_string()));
                        }
                    };
                    let Some(resolved) = resolved else {
                        return Err(malformed(
                            file,
                            &lines,
                            before,
                            format!("unknown entity &{};", r.xml10_content()),
                        ));
                    };
                    if let Some(current) = stack.last_mut() {
                        current.text.push_str(&resolved);
                    }
                }
                Event::Eof => break,
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
            }
        }
        if let Some(open) = stack.last() {
            return Err(malformed(
                file,
                &lines,
                text.len(),
                format!(
                    "file ends inside <{}> (opened at line {})",
                    open.name,
                    lines.line_column(open.offset).0
                ),
            ));
        }
        let Some(root) = root else {
            return Err(malformed(file, &lines, 0, "no root element".to_string()));
        };
        Ok(Document {
            root,
            lines,
            file: file.to_string(),
        })
    }
}
