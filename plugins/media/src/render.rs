//! Offline render: an output's composited picture at each of its refreshes, written as PNG
//! frames, deterministically (a show with media is tested in CI like a show without it).
//!
//! Refresh *k* of an output at rate `r` is at show time `⌈k / r⌉` ns; each layer shows the
//! frame its playhead chooses for that time. Unlike a live output, the render waits for each
//! chosen frame to be decoded, so the result does not depend on the machine's speed.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{info, warn};

use crate::decode::{ClipDecoder, DecoderChoice};
use crate::gpu::{GpuContext, GpuError, LayerDraw, OutputCompositor};
use crate::timeline::MediaTimeline;
use crate::timing::{FrameChoice, cadence_warning, frame_of_ns, ns_of_frame};

/// How long a render waits for one frame before it gives up on the layer.
const FRAME_TIMEOUT: Duration = Duration::from_secs(20);

/// What to render.
pub struct RenderJob<'a> {
    pub timeline: &'a MediaTimeline,
    /// The output's name in the show.
    pub output: &'a str,
    /// Finds a clip's file by name.
    pub clips: &'a dyn Fn(&str) -> Option<PathBuf>,
    /// Show time of the first refresh rendered (a late join starts here).
    pub from_ns: u64,
    /// Show time of the last refresh rendered (inclusive).
    pub until_ns: u64,
    /// PNG frames and `frames.csv` go here.
    pub dir: &'a Path,
}

/// What a render did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RenderReport {
    /// Refreshes written.
    pub frames: u64,
    /// Problems that did not stop the render (a missing clip, judder), once each.
    pub warnings: Vec<String>,
}

/// Why a render could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("no media output {name:?} in the show (outputs: {known})")]
    UnknownOutput { name: String, known: String },
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> RenderError + '_ {
    move |source| RenderError::Write {
        path: path.to_owned(),
        source,
    }
}

/// Renders `job` on `gpu`.
pub fn render_output(gpu: &GpuContext, job: &RenderJob<'_>) -> Result<RenderReport, RenderError> {
    let setup = job.timeline.setup();
    let output = setup
        .output(job.output)
        .ok_or_else(|| RenderError::UnknownOutput {
            name: job.output.to_owned(),
            known: setup
                .outputs
                .iter()
                .map(|o| format!("{:?}", o.name))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let layers: Vec<usize> = setup
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| l.output == output.name)
        .map(|(i, _)| i)
        .collect();
    let slot_of = |layer: usize| layers.iter().position(|l| *l == layer).unwrap_or(0);
    let mut compositor = OutputCompositor::new(gpu, output.width, output.height, layers.len());
    std::fs::create_dir_all(job.dir).map_err(write_err(job.dir))?;
    let manifest_path = job.dir.join("frames.csv");
    let mut manifest = std::io::BufWriter::new(
        std::fs::File::create(&manifest_path).map_err(write_err(&manifest_path))?,
    );
    writeln!(manifest, "refresh,show_ns,layer,clip,frame").map_err(write_err(&manifest_path))?;

    let mut report = RenderReport::default();
    let warn_once = |report: &mut RenderReport, w: String| {
        if !report.warnings.contains(&w) {
            warn!("{w}");
            report.warnings.push(w);
        }
    };
    let mut decoders: HashMap<usize, (String, ClipDecoder)> = HashMap::new();
    // The first refresh at or after `from_ns`.
    let mut first = frame_of_ns(job.from_ns, output.rate);
    if ns_of_frame(first, output.rate) < job.from_ns {
        first += 1;
    }
    let last = frame_of_ns(job.until_ns, output.rate);
    let total = last.saturating_sub(first) + 1;
    info!(output = %output.name, refreshes = total, rate = %output.rate, "rendering media");
    for k in first..=last {
        let t = ns_of_frame(k, output.rate);
        let mut draws = Vec::new();
        for state in job.timeline.at(&output.name, t) {
            let Some(play) = &state.clip else {
                decoders.remove(&state.layer);
                continue;
            };
            if decoders
                .get(&state.layer)
                .is_none_or(|(name, _)| *name != play.clip)
            {
                decoders.remove(&state.layer);
                let Some(path) = (job.clips)(&play.clip) else {
                    warn_once(
                        &mut report,
                        format!(
                            "layer {:?}: no file for clip {:?}; the layer stays empty",
                            state.name, play.clip
                        ),
                    );
                    continue;
                };
                // The clip's rate is known once it is open; a wanted frame far from 0 then
                // makes the decoder seek (a late join).
                match ClipDecoder::open(&path, DecoderChoice::Software, 0, FRAME_TIMEOUT) {
                    Ok(d) => {
                        if let Some(w) = cadence_warning(output.rate, d.info().fps, play.speed_ppm)
                        {
                            warn_once(
                                &mut report,
                                format!("layer {:?}, clip {:?}: {w}", state.name, play.clip),
                            );
                        }
                        decoders.insert(state.layer, (play.clip.clone(), d));
                    }
                    Err(e) => {
                        warn_once(
                            &mut report,
                            format!("layer {:?}: {e}; the layer stays empty", state.name),
                        );
                        continue;
                    }
                }
            }
            let Some((_, decoder)) = decoders.get(&state.layer) else {
                continue;
            };
            let info = decoder.info();
            let FrameChoice::Frame(want) = play.playhead(info.fps).frame_at(t, info.frames) else {
                continue;
            };
            let Some(frame) = decoder.wait_exact(want, FRAME_TIMEOUT) else {
                warn_once(
                    &mut report,
                    format!(
                        "layer {:?}: clip {:?} frame {want} was not decoded ({}); the layer stays empty",
                        state.name,
                        play.clip,
                        decoder.error().unwrap_or_else(|| {
                            "the clip may be shorter than its container says".into()
                        })
                    ),
                );
                continue;
            };
            let slot = slot_of(state.layer);
            compositor.upload(gpu, slot, frame.width, frame.height, &frame.data)?;
            draws.push(LayerDraw {
                slot,
                params: state.params,
            });
            writeln!(manifest, "{k},{t},{},{},{want}", state.name, play.clip)
                .map_err(write_err(&manifest_path))?;
        }
        compositor.render(gpu, &draws)?;
        let pixels = compositor.read_back(gpu)?;
        let path = job.dir.join(format!("{k:06}.png"));
        image::save_buffer(
            &path,
            &pixels,
            output.width,
            output.height,
            image::ExtendedColorType::Rgba8,
        )
        .map_err(|e| RenderError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        report.frames += 1;
        if report.frames % 100 == 0 {
            info!("rendered {} of {total} refreshes", report.frames);
        }
    }
    manifest.flush().map_err(write_err(&manifest_path))?;
    Ok(report)
}
