//! `rockontrol fixtures …` and `rockontrol import-qlc …` (the fixture library issue).

use std::path::PathBuf;
use std::process::ExitCode;

/// `rockontrol fixtures` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum FixturesCommand {
    /// Import QLC+ (.qxf) and Open Fixture Library (.json) definitions into the library.
    Import {
        /// Files or folders to import.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Library folder to write profiles into.
        #[arg(long, default_value = "assets/fixtures")]
        out: PathBuf,
    },
    /// Find profiles by manufacturer or model.
    Search { text: String },
    /// Show one profile: modes, channels, capabilities.
    Show { reference: String },
}

pub fn run(command: FixturesCommand) -> anyhow::Result<ExitCode> {
    let _ = command;
    anyhow::bail!("the fixture library is not built yet")
}

pub fn import_qlc(workspace: PathBuf, out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let _ = (workspace, out);
    anyhow::bail!("QLC+ workspace import is not built yet")
}
