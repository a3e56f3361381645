//! `rockontrol render SHOW --until 10s --png-dir DIR`: a media output's composited pictures,
//! one PNG per refresh, from the same offline engine run that renders DMX (so cues fire at
//! the same ticks), plus `frames.csv` saying which clip frame each layer showed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rockontrol_media::timing::seconds_to_ns;
use rockontrol_media::{CueFired, MediaTimeline};
use rockontrol_show::{CueNumber, Show};

use crate::timearg::parse_seconds;

/// Media options of `render`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MediaArgs {
    /// Render a media output into this folder as PNG frames (`000000.png`, … one per refresh of
    /// the output) and `frames.csv`. DMX is then written only with `--out`.
    #[arg(long)]
    pub png_dir: Option<PathBuf>,
    /// The media output to render. Default: the show's only output.
    #[arg(long)]
    pub media_output: Option<String>,
    /// A clip's file: `NAME=PATH` (repeatable). Overrides `--clips-dir`.
    #[arg(long = "clip", value_parser = parse_clip)]
    pub clips: Vec<(String, PathBuf)>,
    /// Folder of clip files named after the clips (`NAME.mp4`, `.mov`, `.mkv`). Default: `clips/`
    /// beside the show file.
    #[arg(long)]
    pub clips_dir: Option<PathBuf>,
    /// First show time rendered (a node joining late starts here), e.g. `2.5s`.
    #[arg(long, value_parser = parse_seconds, default_value = "0")]
    pub from: f64,
}

fn parse_clip(text: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected NAME=PATH, e.g. intro=clips/intro.mp4"))?;
    Ok((name.trim().to_owned(), PathBuf::from(path.trim())))
}

/// Renders the media output of `show` (at `show_path`) from `--from` to `until` seconds, with
/// the cue GOs of the engine run (show nanoseconds, playback, cue).
pub fn render_media<'a>(
    show: &Show,
    show_path: &Path,
    until: f64,
    gos: impl Iterator<Item = (u64, &'a str, CueNumber)>,
    args: &MediaArgs,
) -> anyhow::Result<ExitCode> {
    let Some(dir) = &args.png_dir else {
        return Ok(ExitCode::SUCCESS);
    };
    let media = &show.media;
    let output = match (&args.media_output, media.outputs.as_slice()) {
        (Some(name), _) => name.clone(),
        (None, [only]) => only.name.clone(),
        (None, []) => {
            anyhow::bail!("the show has no media outputs to render (add `media: (outputs: [...])`)")
        }
        (None, all) => anyhow::bail!(
            "the show has {} media outputs: choose one with --media-output ({})",
            all.len(),
            all.iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut timeline = MediaTimeline::new(media.clone());
    for (at_ns, playback, cue) in gos {
        let Some(list) = show
            .playbacks
            .iter()
            .find(|p| p.name == playback)
            .and_then(|p| show.cue_lists.iter().find(|l| l.name == p.cue_list))
        else {
            continue;
        };
        let Some(c) = list.cues.iter().find(|c| c.number == cue) else {
            continue;
        };
        timeline.fire(CueFired {
            at_ns,
            cue_list: list.name.clone(),
            cue,
            delay_ns: seconds_to_ns(c.delay),
            fade_ns: seconds_to_ns(c.fade_in),
        });
    }
    let clips_dir = args
        .clips_dir
        .clone()
        .unwrap_or_else(|| show_path.parent().unwrap_or(Path::new(".")).join("clips"));
    let files = rockontrol_media::MediaClipFiles {
        files: args.clips.iter().cloned().collect(),
        dir: Some(clips_dir),
    };
    let clips = move |name: &str| files.find(name);
    composite(&timeline, &output, &clips, args, until, dir)
}

/// Composites the output's refreshes into PNGs on a GPU device.
#[cfg(feature = "gpu")]
fn composite(
    timeline: &MediaTimeline,
    output: &str,
    clips: &dyn Fn(&str) -> Option<PathBuf>,
    args: &MediaArgs,
    until: f64,
    dir: &Path,
) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use rockontrol_media::GpuContext;
    use rockontrol_media::render::{RenderJob, render_output};
    let gpu = GpuContext::headless().context("media render needs a GPU device")?;
    let report = render_output(
        &gpu,
        &RenderJob {
            timeline,
            output,
            clips,
            from_ns: seconds_to_ns(args.from),
            until_ns: seconds_to_ns(until),
            dir,
        },
    )?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    eprintln!(
        "media: wrote {} frames of output {output:?} to {} (on {})",
        report.frames,
        dir.display(),
        gpu.adapter
    );
    Ok(ExitCode::SUCCESS)
}

/// This build has no GPU compositor (a headless receiver build): refused, saying how to get one.
#[cfg(not(feature = "gpu"))]
fn composite(
    _timeline: &MediaTimeline,
    output: &str,
    _clips: &dyn Fn(&str) -> Option<PathBuf>,
    _args: &MediaArgs,
    _until: f64,
    _dir: &Path,
) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "cannot render media output {output:?} to PNG: this rockontrol was built without the \
         `gpu` feature (the headless build); build it with the default features or with \
         `--features gpu`"
    )
}
