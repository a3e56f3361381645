//! `rockontrol`: the RocKontrol command line.
//!
//! # Layout
//! - `main.rs`: the CLI (clap) and dispatch.
//! - `render.rs`: `rockontrol render`, the engine run offline, tick by tick, to CSV or JSON.
//! - `media_render.rs`: `render --png-dir`, a media output's pictures from the same run.
//! - `live.rs`: `rockontrol run`, the engine live with a terminal console.
//! - `timearg.rs`: `10s`, `1m30s`, `7.5s go main` arguments.
//! - `fixtures_cli.rs`: `rockontrol fixtures …` and `import-qlc`.
//! - `node_cli.rs`: `rockontrol master`, `receiver` and `demo`.
//! - `media_cli.rs`: `rockontrol media …`, the media library.
//! - `timecode_args.rs`: `--timecode-out`, `--timecode-chase`, `--timecode-rate`, `--timecode-from`.
//! - `artnet_args.rs`: `--artnet-broadcast` and `--artnet-timecode`, shared by `run` and nodes.

mod artnet_args;
mod doctor;
mod fixtures_cli;
mod keys_cli;
mod live;
mod media_cli;
mod media_render;
mod monitor;
mod node_cli;
mod render;
mod timearg;
mod timecode_args;
mod windowed;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rockontrol_show::{LoadError, load_show, parse_show, to_ron_string, validate};

use crate::timearg::{TimedCommand, parse_seconds};

#[derive(Debug, Parser)]
#[command(
    name = "rockontrol",
    version,
    about = "Distributed show engine: lighting console and media server"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Validate a show file: exit 0, or print every problem and exit 1.
    Check { show: PathBuf },
    /// Run the engine offline, tick by tick, and write every frame (deterministic).
    Render {
        show: PathBuf,
        /// Render show time 0 through this time, e.g. `10s`, `1m30s`, `500ms`.
        #[arg(long, value_parser = parse_seconds)]
        until: f64,
        /// Only these universes (repeatable). Default: all.
        #[arg(long = "universe")]
        universes: Vec<u16>,
        #[arg(long, value_enum, default_value_t = render::Format::Csv)]
        format: render::Format,
        /// An action at a show time, e.g. `'0s go main'`, `'7.5s goto main 3'`, `'9s blackout'`.
        #[arg(long = "at")]
        at: Vec<TimedCommand>,
        /// Write here instead of standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
        #[command(flatten)]
        media: media_render::MediaArgs,
        /// Timecode cues fire at their exact ticks; `--timecode-from 01:00:00:00` sets the label
        /// at show time 0 (outputs and chase run live only).
        #[command(flatten)]
        timecode: timecode_args::TimecodeArgs,
    },
    /// Run a show live: status line, GO/BACK from the terminal, Ctrl-C stops.
    Run {
        show: PathBuf,
        /// Never open a window (the default when there is no display).
        #[arg(long)]
        headless: bool,
        /// Actions at show times, as for `render`.
        #[arg(long = "at")]
        at: Vec<TimedCommand>,
        /// Stop by itself after this long, e.g. `30s`.
        #[arg(long, value_parser = parse_seconds)]
        duration: Option<f64>,
        /// IPv4 address of the interface DMX (sACN/Art-Net) leaves from. Default:
        /// $ROCKONTROL_DMX_INTERFACE, else 127.0.0.1 (this machine only).
        #[arg(long)]
        dmx_interface: Option<std::net::Ipv4Addr>,
        /// Also write every frame the engine computes to this file, as `render` writes CSV
        /// (a live run compared with `render`).
        #[arg(long)]
        capture: Option<PathBuf>,
        #[command(flatten)]
        artnet: artnet_args::ArtNetArgs,
        #[command(flatten)]
        timecode: timecode_args::TimecodeArgs,
    },
    /// Rewrite a show file in canonical form.
    Fmt {
        show: PathBuf,
        /// Only check: exit 1 if the file is not canonical.
        #[arg(long)]
        check: bool,
        /// Rewrite even though the file has comments (canonical form cannot keep them).
        #[arg(long)]
        drop_comments: bool,
    },
    /// The fixture library: import, search, show.
    #[command(subcommand)]
    Fixtures(fixtures_cli::FixturesCommand),
    /// Run a master node: drives receivers found by mDNS or listed in its config.
    Master(node_cli::NodeArgs),
    /// Run a receiver node: outputs its universes and media for a master.
    Receiver(node_cli::NodeArgs),
    /// A master and two receivers on this machine, running the demo show.
    Demo,
    /// One REST call to a master over TLS, its certificate pinned (`--fingerprint`, or the
    /// master's state directory on its own machine); the key from $ROCKONTROL_API_KEY.
    Api(node_cli::ApiArgs),
    /// Watch incoming sACN and Art-Net: universes, sources (name, IP, priority, rate), values.
    Monitor(monitor::MonitorArgs),
    /// The media library: add, list, show, rm, gc clips; serve or fetch them.
    #[command(subcommand)]
    Media(media_cli::MediaCommand),
    /// Check a node before a show: every port it opens and why, whether each can be bound and
    /// what the host firewall (nft, iptables) says, and what is insecure in its config and
    /// key files. Exit 1 when there is a warning.
    Doctor(doctor::DoctorArgs),
    /// The master's API keys: add (with a role and limits), list, revoke.
    #[command(subcommand)]
    Keys(keys_cli::KeysCommand),
    /// Convert a QLC+ workspace (.qxw) into a RocKontrol show.
    ImportQlc {
        workspace: PathBuf,
        /// Write the show here instead of standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Check { show } => check(&show),
        Cmd::Render {
            show,
            until,
            universes,
            format,
            at,
            out,
            media,
            timecode,
        } => render::render(
            &show,
            until,
            &universes,
            format,
            &at,
            out.as_deref(),
            &media,
            &timecode,
        ),
        Cmd::Run {
            show,
            headless,
            at,
            duration,
            dmx_interface,
            capture,
            artnet,
            timecode,
        } => live::run(
            &show,
            headless,
            &at,
            duration,
            dmx_interface,
            capture.as_deref(),
            &artnet,
            &timecode,
        ),
        Cmd::Fmt {
            show,
            check,
            drop_comments,
        } => fmt(&show, check, drop_comments),
        Cmd::Fixtures(command) => fixtures_cli::run(command),
        Cmd::Doctor(args) => doctor::run(&args),
        Cmd::ImportQlc { workspace, out } => fixtures_cli::import_qlc(workspace, out),
        Cmd::Master(args) => node_cli::master(args),
        Cmd::Receiver(args) => node_cli::receiver(args),
        Cmd::Demo => node_cli::demo(),
        Cmd::Api(args) => node_cli::api(args),
        Cmd::Monitor(args) => monitor::run(args),
        Cmd::Media(command) => media_cli::run(command),
        Cmd::Keys(command) => keys_cli::run(command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads and validates a show. A problem in the show file is printed for the user (it is the
/// answer, not a failure of the program) and gives `None`; only I/O errors are errors.
pub(crate) fn load_or_report(path: &Path) -> anyhow::Result<Option<rockontrol_show::Show>> {
    match load_show(path) {
        Ok(show) => Ok(Some(show)),
        Err(e @ (LoadError::Parse(_) | LoadError::Invalid { .. })) => {
            eprintln!("{e}");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn check(path: &Path) -> anyhow::Result<ExitCode> {
    let Some(show) = load_or_report(path)? else {
        return Ok(ExitCode::FAILURE);
    };
    let cues: usize = show.cue_lists.iter().map(|l| l.cues.len()).sum();
    println!(
        "{}: OK — {:?}: {} universes, {} fixtures, {} cue lists ({cues} cues), {} playbacks, {} Hz",
        path.display(),
        show.name,
        show.universes.len(),
        show.fixtures.len(),
        show.cue_lists.len(),
        show.playbacks.len(),
        show.tick_rate
    );
    Ok(ExitCode::SUCCESS)
}

fn fmt(path: &PathBuf, check_only: bool, drop_comments: bool) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read show file {}", path.display()))?;
    let file = path.display().to_string();
    let show = match parse_show(&text, &file) {
        Ok(show) => show,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Err(errors) = validate(&show) {
        eprintln!("{}", LoadError::Invalid { file, errors });
        return Ok(ExitCode::FAILURE);
    }
    let canonical = to_ron_string(&show);
    if canonical == text {
        if !check_only {
            println!("{}: already canonical", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if check_only {
        eprintln!(
            "{}: not in canonical form (run `rockontrol fmt {}`)",
            path.display(),
            path.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let comments = text
        .lines()
        .filter(|l| l.trim_start().starts_with("//"))
        .count();
    if comments > 0 && !drop_comments {
        eprintln!(
            "{}: has {comments} comment line(s) that canonical form cannot keep; \
             rerun with --drop-comments to rewrite anyway",
            path.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    rockontrol_show::save_show(&show, path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("{}: rewritten in canonical form", path.display());
    Ok(ExitCode::SUCCESS)
}
