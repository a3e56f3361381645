//! The fixture library: a folder of RON profiles, one per fixture type, at
//! `<root>/<manufacturer>/<model>.ron` (default root `assets/fixtures`).
//!
//! Files are canonical RON of one [`FixtureProfile`] (the same form a show's `profiles`
//! entries take, so a profile can be pasted into a show), preceded by `//` comments saying
//! where it was imported from and what the import changed or dropped. Shows reference a
//! profile as `"Manufacturer/Model"` plus a mode name; [`Library::load`] takes that
//! reference.
//!
//! Also here: [`attribute_slots`] and [`capability_for`], the lookups that turn a profile's
//! mode into DMX slot offsets — what the engine does when it patches a fixture.

use std::path::{Path, PathBuf};

use ron::extensions::Extensions;
use ron::ser::PrettyConfig;

use crate::model::{Attribute, ByteRole, Capability, Channel, FixtureProfile};

/// Where `rockontrol fixtures` keeps profiles unless told otherwise.
pub const DEFAULT_LIBRARY_DIR: &str = "assets/fixtures";

/// The same RON extensions show files use (see [`crate::io`]).
const EXTENSIONS: Extensions = Extensions::IMPLICIT_SOME.union(Extensions::UNWRAP_VARIANT_NEWTYPES);

/// Why a library operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Parse {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{reference:?} is not a profile reference; write it as MANUFACTURER/MODEL")]
    BadReference { reference: String },
    #[error("no profile {reference:?} in the library at {}{}", root.display(), suggest(.suggestions))]
    NotFound {
        reference: String,
        root: PathBuf,
        suggestions: Vec<String>,
    },
    #[error("{file}: holds profile {found:?}, not {expected:?}")]
    Mismatch {
        file: String,
        expected: String,
        found: String,
    },
}

fn suggest(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::new()
    } else {
        format!("; did you mean: {}?", suggestions.join(", "))
    }
}

/// One profile file in the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryEntry {
    pub manufacturer: String,
    pub model: String,
    pub path: PathBuf,
}

impl LibraryEntry {
    /// `"Manufacturer/Model"`, as shows reference it.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.manufacturer, self.model)
    }
}

/// A library folder.
#[derive(Debug, Clone)]
pub struct Library {
    root: PathBuf,
}

impl Library {
    /// The library rooted at `root` (it need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Library { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a profile's file goes: `<root>/<manufacturer>/<model>.ron`, with characters
    /// that file systems refuse replaced by `-`.
    pub fn path_for(&self, manufacturer: &str, model: &str) -> PathBuf {
        self.root
            .join(file_stem(manufacturer))
            .join(format!("{}.ron", file_stem(model)))
    }

    /// Writes a profile, with `header` lines as `//` comments above it. Returns the path.
    pub fn save(
        &self,
        profile: &FixtureProfile,
        header: &[String],
    ) -> Result<PathBuf, LibraryError> {
        let path = self.path_for(&profile.manufacturer, &profile.model);
        let io = |source| LibraryError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut text = String::new();
        for line in header {
            for l in line.lines() {
                text.push_str("// ");
                text.push_str(l);
                text.push('\n');
            }
        }
        text.push_str(&profile_to_ron(profile));
        let tmp = path.with_extension("ron.tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(path)
    }

    /// Loads a profile by `"Manufacturer/Model"`.
    pub fn load(&self, reference: &str) -> Result<FixtureProfile, LibraryError> {
        let Some((manufacturer, model)) = reference.split_once('/') else {
            return Err(LibraryError::BadReference {
                reference: reference.to_string(),
            });
        };
        let path = self.path_for(manufacturer, model);
        if !path.is_file() {
            // Names differ from file stems only in replaced characters; fall back to the
            // names inside the files (and collect suggestions on the way).
            let entries = self.entries()?;
            if let Some(e) = entries
                .iter()
                .find(|e| e.reference().eq_ignore_ascii_case(reference))
            {
                return load_profile(&e.path);
            }
            let words = search_words(reference);
            let suggestions = entries
                .iter()
                .filter(|e| matches_any(e, &words))
                .take(5)
                .map(LibraryEntry::reference)
                .collect();
            return Err(LibraryError::NotFound {
                reference: reference.to_string(),
                root: self.root.clone(),
                suggestions,
            });
        }
        let profile = load_profile(&path)?;
        if !profile.reference().eq_ignore_ascii_case(reference) {
            return Err(LibraryError::Mismatch {
                file: path.display().to_string(),
                expected: reference.to_string(),
                found: profile.reference(),
            });
        }
        Ok(profile)
    }

    /// Every profile file, sorted by reference. Reads only each file's manufacturer and
    /// model (a full parse happens on [`Library::load`]). An absent root is an empty library.
    pub fn entries(&self) -> Result<Vec<LibraryEntry>, LibraryError> {
        let mut entries = Vec::new();
        if !self.root.exists() {
            return Ok(entries);
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LibraryError::Io { path, source }
        };
        for dir in std::fs::read_dir(&self.root).map_err(io(&self.root))? {
            let dir = dir.map_err(io(&self.root))?.path();
            if !dir.is_dir() {
                continue;
            }
            for file in std::fs::read_dir(&dir).map_err(io(&dir))? {
                let path = file.map_err(io(&dir))?.path();
                if path.extension().and_then(|e| e.to_str()) != Some("ron") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).map_err(io(&path))?;
                let (manufacturer, model) = match names_of(&text) {
                    Some(names) => names,
                    None => {
                        let p = parse_profile(&text, &path.display().to_string())?;
                        (p.manufacturer, p.model)
                    }
                };
                entries.push(LibraryEntry {
                    manufacturer,
                    model,
                    path,
                });
            }
        }
        entries.sort_by_key(|e| (e.manufacturer.to_lowercase(), e.model.to_lowercase()));
        Ok(entries)
    }

    /// Profiles whose `"Manufacturer Model"` contains every word of `text`, ignoring case.
    pub fn search(&self, text: &str) -> Result<Vec<LibraryEntry>, LibraryError> {
        let words = search_words(text);
        Ok(self
            .entries()?
            .into_iter()
            .filter(|e| {
                let hay = format!("{} {}", e.manufacturer, e.model).to_lowercase();
                words.iter().all(|w| hay.contains(w.as_str()))
            })
            .collect())
    }
}

fn search_words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| c.is_whitespace() || c == '/')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn matches_any(e: &LibraryEntry, words: &[String]) -> bool {
    let hay = format!("{} {}", e.manufacturer, e.model).to_lowercase();
    words
        .iter()
        .any(|w| w.len() > 2 && hay.contains(w.as_str()))
}

/// Manufacturer and model from the head of a library file, without parsing all of it.
fn names_of(text: &str) -> Option<(String, String)> {
    let field = |name: &str| -> Option<String> {
        let line = text
            .lines()
            .take(40)
            .map(str::trim)
            .find(|l| l.starts_with(name) && l[name.len()..].trim_start().starts_with(':'))?;
        let value = line[name.len()..].trim_start()[1..]
            .trim()
            .trim_end_matches(',');
        ron::from_str::<String>(value).ok()
    };
    Some((field("manufacturer")?, field("model")?))
}

/// A file-system-safe stem for a manufacturer or model name ("LED PAR 56/64" →
/// "LED PAR 56-64").
pub fn file_stem(name: &str) -> String {
    let stem: String = name
        .trim()
        .chars()
        .map(|c| match c {
            '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|' => '-',
            c if c.is_control() => '-',
            c => c,
        })
        .collect();
    // Never a hidden file or a path step.
    let stem = stem.trim_start_matches('.').to_string();
    if stem.is_empty() {
        "-".to_string()
    } else {
        stem
    }
}

/// The canonical RON text of one profile.
pub fn profile_to_ron(profile: &FixtureProfile) -> String {
    let config = PrettyConfig::new()
        .indentor("    ".to_string())
        .new_line("\n".to_string())
        .struct_names(false)
        .extensions(EXTENSIONS);
    // Our own types always serialize (no maps with non-string keys, floats are finite).
    let mut text = match ron::ser::to_string_pretty(profile, config) {
        Ok(text) => text,
        Err(e) => format!("// profile could not be serialized: {e}\n"),
    };
    text.push('\n');
    text
}

/// Parses the RON text of one profile; `file` names it in the error.
pub fn parse_profile(text: &str, file: &str) -> Result<FixtureProfile, LibraryError> {
    ron::Options::default()
        .with_default_extension(EXTENSIONS)
        .from_str::<FixtureProfile>(text)
        .map_err(|e| LibraryError::Parse {
            file: file.to_string(),
            line: e.span.start.line,
            column: e.span.start.col,
            message: e.code.to_string(),
        })
}

/// Reads one profile file.
pub fn load_profile(path: &Path) -> Result<FixtureProfile, LibraryError> {
    let text = std::fs::read_to_string(path).map_err(|source| LibraryError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_profile(&text, &path.display().to_string())
}

// ---------------------------------------------------------------------------------------
// Profile lookups: from attribute to DMX slot
// ---------------------------------------------------------------------------------------

/// Where an attribute sits in a mode's footprint: 0-based slot offsets from the fixture's
/// start address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeSlots {
    /// Offset of the coarse (high) byte.
    pub coarse: usize,
    /// Offset of the fine (low) byte when the mode makes the channel 16-bit.
    pub fine: Option<usize>,
}

impl AttributeSlots {
    /// Resolution in bits: 16 with a fine byte, else 8.
    pub fn bits(&self) -> u8 {
        if self.fine.is_some() { 16 } else { 8 }
    }
}

/// The slots carrying `attribute` in mode `mode` of `profile`, if that mode has it.
pub fn attribute_slots(
    profile: &FixtureProfile,
    mode: &str,
    attribute: &Attribute,
) -> Option<AttributeSlots> {
    let mode = profile.mode(mode)?;
    let mut coarse_channel: Option<(&Channel, usize)> = None;
    for (offset, slot) in mode.channels.iter().enumerate() {
        if let Some((c, ByteRole::Coarse)) = profile.channel_for_slot(slot)
            && c.attribute == *attribute
        {
            coarse_channel = Some((c, offset));
            break;
        }
    }
    let (channel, coarse) = coarse_channel?;
    let fine = channel
        .fine
        .as_ref()
        .and_then(|f| mode.channels.iter().position(|s| s == f));
    Some(AttributeSlots { coarse, fine })
}

/// The first capability of the channel carrying `attribute` whose label contains `label`
/// (ignoring case): where a programmer finds "Gobo 3" or "Strobe".
pub fn capability_for<'a>(
    profile: &'a FixtureProfile,
    attribute: &Attribute,
    label: &str,
) -> Option<&'a Capability> {
    let label = label.to_lowercase();
    profile
        .channels
        .iter()
        .filter(|c| c.attribute == *attribute)
        .flat_map(|c| c.capabilities.iter())
        .find(|cap| cap.label.to_lowercase().contains(&label))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(file_stem("LED PAR 56/64"), "LED PAR 56-64");
        assert_eq!(file_stem("../etc"), "-etc");
        assert_eq!(file_stem(""), "-");
    }

    #[test]
    fn names_come_from_the_head_of_a_file() {
        let text = "// imported\n(\n    manufacturer: \"Clay Paky\",\n    model: \"Alpha \\\"Spot\\\"\",\n";
        assert_eq!(
            names_of(text),
            Some(("Clay Paky".to_string(), "Alpha \"Spot\"".to_string()))
        );
    }
}
