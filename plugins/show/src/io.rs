//! Reading and writing show files.
//!
//! Loading gives exactly one error for a file that does not parse, naming
//! `file:line:column` and what was expected there; a file that parses but does not make a
//! valid show gives every problem at once. Saving is canonical: the same show always gives
//! the same bytes, so `load → save` of a canonical file reproduces it byte for byte.

use std::fmt;
use std::path::{Path, PathBuf};

use ron::extensions::Extensions;
use ron::ser::PrettyConfig;

use crate::model::Show;
use crate::validate::{ValidationError, validate};

/// RON extensions show files use: `position: (1.0, 2.0)` instead of `Some((1.0, 2.0))`, and
/// `Sacn(priority: 150)` instead of `Sacn((priority: 150))`. Saved files declare them in a
/// `#![enable(..)]` header; loading accepts files with or without it.
const EXTENSIONS: Extensions = Extensions::IMPLICIT_SOME.union(Extensions::UNWRAP_VARIANT_NEWTYPES);

/// A show file that is not valid RON for a [`Show`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ParseError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Why a show could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read show file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("{}", InvalidDisplay(file, errors))]
    Invalid {
        file: String,
        errors: Vec<ValidationError>,
    },
}

struct InvalidDisplay<'a>(&'a str, &'a [ValidationError]);

impl fmt::Display for InvalidDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let n = self.1.len();
        write!(
            f,
            "{}: {n} problem{} in the show:",
            self.0,
            if n == 1 { "" } else { "s" }
        )?;
        for e in self.1 {
            write!(f, "\n  - {e}")?;
        }
        Ok(())
    }
}

/// Parses show text without validating it. `file` is only used in the error.
pub fn parse_show(text: &str, file: &str) -> Result<Show, ParseError> {
    ron::Options::default()
        .with_default_extension(EXTENSIONS)
        .from_str::<Show>(text)
        .map_err(|e| ParseError {
            file: file.to_string(),
            line: e.span.start.line,
            column: e.span.start.col,
            message: describe(&e.code),
        })
}

/// Reads, parses and validates a show file.
pub fn load_show(path: impl AsRef<Path>) -> Result<Show, LoadError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file = path.display().to_string();
    let show = parse_show(&text, &file)?;
    validate(&show).map_err(|errors| LoadError::Invalid { file, errors })?;
    Ok(show)
}

/// The canonical RON text of a show.
pub fn to_ron_string(show: &Show) -> String {
    let config = PrettyConfig::new()
        .indentor("    ".to_string())
        .new_line("\n".to_string())
        .struct_names(false)
        .extensions(EXTENSIONS);
    // Serializing our own types to a String cannot fail: every map key is a plain value and
    // every float is finite after validation (a NaN still prints as `NaN`).
    let mut text = match ron::ser::to_string_pretty(show, config) {
        Ok(text) => text,
        Err(e) => format!("// show could not be serialized: {e}\n"),
    };
    text.push('\n');
    text
}

/// Writes a show in canonical form, atomically (a crash never leaves half a show file).
pub fn save_show(show: &Show, path: impl AsRef<Path>) -> std::io::Result<()> {
    let path = path.as_ref();
    let text = to_ron_string(show);
    let tmp = path.with_extension("ron.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// ron's messages, reworded where they would puzzle a show author.
fn describe(code: &ron::Error) -> String {
    use ron::Error as E;
    match code {
        E::NoSuchStructField {
            expected,
            found,
            outer,
        } => {
            let within = outer
                .as_deref()
                .map(|o| format!(" in {o}"))
                .unwrap_or_default();
            format!(
                "unknown field `{found}`{within}, expected one of: {}",
                expected.join(", ")
            )
        }
        E::MissingStructField { field, outer } => {
            let within = outer
                .as_deref()
                .map(|o| format!(" in {o}"))
                .unwrap_or_default();
            format!("missing field `{field}`{within}")
        }
        E::NoSuchEnumVariant {
            expected,
            found,
            outer,
        } => {
            let within = outer
                .as_deref()
                .map(|o| format!(" for {o}"))
                .unwrap_or_default();
            format!(
                "unknown variant `{found}`{within}, expected one of: {}",
                expected.join(", ")
            )
        }
        other => other.to_string(),
    }
}
