//! `rockontrol master`, `rockontrol receiver` and `rockontrol demo` (the nodes issue).

use std::path::PathBuf;
use std::process::ExitCode;

/// Options shared by `master` and `receiver`.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// Node configuration, JSON (the seed's format) or RON.
    #[arg(long)]
    pub config: PathBuf,
    /// Show to load at start (optional: a node without one runs an empty show).
    #[arg(long)]
    pub show: Option<PathBuf>,
    /// Never open a window.
    #[arg(long)]
    pub headless: bool,
    /// Stop by itself after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
}

pub fn master(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("master nodes are not built yet")
}

pub fn receiver(args: NodeArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("receiver nodes are not built yet")
}

pub fn demo() -> anyhow::Result<ExitCode> {
    anyhow::bail!("the multi-node demo is not built yet")
}
