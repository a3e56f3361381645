//! Live playback on a node: one [`ClipDecoder`] per active or pre-rolled layer, the frame
//! chosen by the show clock at each refresh of the node's outputs, late and missed frames
//! counted, and an optional capture of the composited picture (CPU reference compositor) at
//! chosen refreshes.
//!
//! The shell around the pure parts: decoders run on their own threads (opened off the ECS
//! thread, since opening blocks for the pre-roll); the ECS only asks each ring for a frame,
//! which never waits. The show time `t_k` of refresh `k` is its predicted scanout: on a
//! display whose frames were measured, the vblank after the one the frame began on
//! ([`RefreshGrid::scanout_after`]); otherwise (offscreen, or before the display was measured)
//! the target time on the output's rate grid, `t_k = ⌈k / r⌉`. The frame a layer shows there is
//! [`ClipPlay::frame_at`]`(t_k)`. Refreshes of the grid that were never composed (the node
//! presented slower than it) are counted as skipped and missed.
//!
//! A seek or a replay of the clip a layer plays (scheduled a pre-roll ahead, as commands
//! are) does not make the playing decoder seek at `t`: a second decoder of the same clip is
//! opened at the frame the layer needs at `t` during the pre-roll, and takes over at `t`, so
//! the first refresh at or after `t` shows the right frame.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::composite::{LayerParams, Rgba, composite_cpu};
use crate::decode::{ClipDecoder, DecodeError, DecoderChoice, Frame, Pick, PixelFormat};
use crate::timeline::{ClipPlay, MediaTimeline};
use crate::timing::{
    FrameChoice, FrameStats, NANOS_PER_SEC, RefreshGrid, ns_of_frame, rate_refresh,
    refreshes_skipped,
};

/// How long a decoder may take to open and pre-roll before the layer reports an error.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// A layer whose clip could not be opened tries again after this.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Finds a clip's verified file on this node: `(name, library id if the show names one)`.
pub type ClipLocator = Arc<dyn Fn(&str, Option<&str>) -> Option<PathBuf> + Send + Sync>;

/// Where clips' files are besides the library store: by name, or `NAME.mp4|mov|mkv` in a
/// folder (`run` and `receiver --clips-dir`: a node without the media-playback capability has
/// no store, and the programmer's `run` plays clips beside the show).
#[derive(bevy::prelude::Resource, Debug, Clone, Default)]
pub struct MediaClipFiles {
    pub files: HashMap<String, PathBuf>,
    pub dir: Option<PathBuf>,
}

impl MediaClipFiles {
    /// The file of clip `name`, if there is one.
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        if let Some(p) = self.files.get(name) {
            return Some(p.clone());
        }
        let dir = self.dir.as_ref()?;
        ["mp4", "mov", "mkv"]
            .iter()
            .map(|ext| dir.join(format!("{name}.{ext}")))
            .find(|p| p.is_file())
    }

    /// A [`ClipLocator`] over these files (the library id is not used).
    pub fn locator(&self) -> ClipLocator {
        let files = self.clone();
        Arc::new(move |name: &str, _id: Option<&str>| files.find(name))
    }
}

/// Writes the composited picture of every `every`-th refresh of this node's outputs to
/// `dir/<output>/<refresh>.png` (refresh index at the output's rate), with `frames.csv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSettings {
    pub dir: PathBuf,
    pub every: u64,
}

/// One layer in the node's media report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LayerReport {
    pub layer: String,
    pub output: String,
    /// The clip playing or pre-rolled, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<String>,
    /// Show time (ns) the clip's position counts from (its play, seek or resume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ns: Option<u64>,
    /// The content frame the show clock chose at the last refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<u64>,
    #[serde(default)]
    pub paused: bool,
    /// Refreshes that showed the chosen frame, an earlier stand-in (late), or nothing (missed).
    #[serde(default)]
    pub shown: u64,
    #[serde(default)]
    pub late: u64,
    #[serde(default)]
    pub missed: u64,
    /// Of the missed: refreshes never composed (the node presented slower than the grid).
    #[serde(default)]
    pub skipped: u64,
    /// The decoder element in use (`avdec_h264`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoder: Option<String>,
    /// The decoder holds the frame the layer needs next (for a clip that starts within the
    /// pre-roll: its first frame).
    #[serde(default)]
    pub armed: bool,
    /// Why the layer shows nothing (no file for the clip, a decoder error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One output in the node's media report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OutputReport {
    pub output: String,
    /// Refresh period in ns (from the output's rate).
    pub refresh_ns: u64,
    /// Offset of the refresh grid from show time 0, ns (0 for offscreen outputs, whose
    /// refreshes are their target times; a display's measured vblank phase).
    pub phase_ns: u64,
    /// What the refreshes' show times are: `scanout` (predicted from the display's measured
    /// grid) or `rate` (the output rate's target times).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub timing: String,
    /// Refreshes of the grid never composed (presenting slower than it).
    #[serde(default)]
    pub skipped: u64,
    /// Refreshes composed since start.
    pub refreshes: u64,
    /// How long after its show time the last refresh was composed, ns.
    pub lag_ns: u64,
    /// Where it is shown: `offscreen`, `window`, `fullscreen N` (a node with windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// The display's measured frame period, ns (median of the last presented frames' spacing;
    /// a window only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_period_ns: Option<u64>,
}

/// A node's media playback state, for heartbeats and `GET /api/nodes/{id}/status`.
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema, bevy::prelude::Resource,
)]
pub struct PlaybackReport {
    /// Show time (ns) of the report.
    pub show_ns: u64,
    pub outputs: Vec<OutputReport>,
    pub layers: Vec<LayerReport>,
    /// Every layer whose clip starts within the pre-roll holds its first frame.
    pub armed: bool,
}

impl PlaybackReport {
    /// One short line for the node view: `wall: bg count #123 (2 late, 0 missed)`.
    pub fn summary(&self) -> String {
        let layers: Vec<String> = self
            .layers
            .iter()
            .map(|l| match (&l.clip, l.frame) {
                (Some(c), Some(f)) => format!(
                    "{}: {c} #{f}{} ({} late, {} missed)",
                    l.layer,
                    if l.paused { " paused" } else { "" },
                    l.late,
                    l.missed
                ),
                (Some(c), None) if l.armed => format!("{}: {c} armed", l.layer),
                (Some(c), None) => format!("{}: {c} pre-rolling", l.layer),
                _ => format!("{}: idle", l.layer),
            })
            .collect();
        if layers.is_empty() {
            "no media layers".into()
        } else {
            layers.join(" | ")
        }
    }
}

/// What one layer of an output shows at its latest refresh (for the on-screen outputs).
#[derive(Debug, Clone)]
pub struct LayerFrame {
    /// The layer's index in the show (its stacking order on the output).
    pub layer: usize,
    pub name: String,
    pub clip: String,
    /// The content frame the show clock chose.
    pub wanted: u64,
    /// The frame to draw: the wanted one, an earlier stand-in (late), or `None` (missed).
    pub frame: Option<Frame>,
    pub params: LayerParams,
    /// The layer's counts so far (each refresh counted once).
    pub stats: FrameStats,
    pub decoder: String,
}

/// What one output shows at its latest refresh.
#[derive(Debug, Clone, Default)]
pub struct OutputFrames {
    /// The refresh index at the output's rate, and its show time `t_k` in ns.
    pub refresh: u64,
    pub show_ns: u64,
    pub layers: Vec<LayerFrame>,
}

/// The frames every output of this node shows at its latest refresh, by output name: what
/// the live windows draw (one decode path: the player's decoders and counts).
#[derive(bevy::prelude::Resource, Debug, Clone, Default)]
pub struct PlaybackFrames(pub HashMap<String, OutputFrames>);

/// How an output is shown and what its display measured (set by the on-screen outputs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DisplayTiming {
    pub display: String,
    pub period_ns: Option<u64>,
    pub phase_ns: Option<u64>,
}

impl DisplayTiming {
    /// The display's measured refresh grid, if it was measured.
    pub fn grid(&self) -> Option<RefreshGrid> {
        match (self.period_ns, self.phase_ns) {
            (Some(period_ns), Some(phase_ns)) if period_ns > 0 => Some(RefreshGrid {
                period_ns,
                phase_ns: phase_ns % period_ns,
            }),
            _ => None,
        }
    }
}

/// The on-screen outputs' [`DisplayTiming`] by output name; it goes into the report.
#[derive(bevy::prelude::Resource, Debug, Clone, Default)]
pub struct DisplayTimings(pub HashMap<String, DisplayTiming>);

/// A decoder for one (layer, clip), opening or open.
struct Slot {
    /// The opening decoder's answer (a mutex: the slot lives in a resource, shared).
    opening: Option<Mutex<Receiver<Result<ClipDecoder, DecodeError>>>>,
    decoder: Option<ClipDecoder>,
    error: Option<String>,
    /// When it failed (it is tried again [`RETRY_AFTER`] later).
    failed_at: Option<Instant>,
}

impl Slot {
    /// Opens `path` in a decoder pre-rolled at frame `first`.
    fn open(path: PathBuf, choice: DecoderChoice, format: PixelFormat, first: u64) -> Slot {
        let (tx, rx) = channel();
        let name = format!(
            "open {}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            let _ = tx.send(ClipDecoder::open_as(
                &path,
                choice,
                format,
                first,
                OPEN_TIMEOUT,
            ));
        });
        match spawned {
            Ok(_) => Slot {
                opening: Some(Mutex::new(rx)),
                decoder: None,
                error: None,
                failed_at: None,
            },
            Err(e) => Slot::failed(format!("cannot start a decoder thread: {e}")),
        }
    }

    fn failed(error: String) -> Slot {
        Slot {
            opening: None,
            decoder: None,
            error: Some(error),
            failed_at: Some(Instant::now()),
        }
    }

    /// Takes the decoder once it has opened, and its error if it failed.
    fn poll(&mut self) {
        if let Some(rx) = &mut self.opening {
            let rx = rx.get_mut().unwrap_or_else(|e| e.into_inner());
            match rx.try_recv() {
                Ok(Ok(d)) => {
                    self.decoder = Some(d);
                    self.opening = None;
                }
                Ok(Err(e)) => {
                    warn!("media: {e}");
                    self.error = Some(e.to_string());
                    self.opening = None;
                    self.failed_at = Some(Instant::now());
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => {
                    self.error = Some("the decoder thread stopped".into());
                    self.opening = None;
                    self.failed_at = Some(Instant::now());
                }
            }
        }
        if let Some(e) = self.decoder.as_ref().and_then(ClipDecoder::error) {
            self.error = Some(e);
        }
    }
}

#[derive(Default)]
struct OutputRun {
    /// The show time of the last composed refresh, and whether it was on a display's grid.
    last: Option<(u64, bool)>,
    refreshes: u64,
    skipped: u64,
    lag_ns: u64,
}

/// A layer's decoders are keyed by (layer index, clip); a pre-seek's also by the show time the
/// play it is for starts at.
type SlotKey = (usize, String);
type PreSeekKey = (usize, String, u64);

/// The node's live decoders and counters (see the [module docs](self)).
#[derive(Default)]
pub struct Player {
    slots: HashMap<SlotKey, Slot>,
    /// Second decoders of a clip a layer plays, opened at the frame a seek or replay of it
    /// needs, for the play starting at that show time.
    pre_seeks: HashMap<PreSeekKey, Slot>,
    stats: HashMap<usize, FrameStats>,
    outputs: HashMap<String, OutputRun>,
    armed_logged: HashSet<(usize, String, u64)>,
    layers: HashMap<usize, LayerReport>,
    frames: HashMap<String, OutputFrames>,
}

/// What one refresh needs from outside the player.
pub struct Refresh<'a> {
    pub timeline: &'a MediaTimeline,
    /// This node's name: it plays the outputs whose `node` it is (`None`: every output, `run`).
    pub node: Option<&'a str>,
    /// Show time now, ns.
    pub now_ns: u64,
    pub preroll_ns: u64,
    pub locate: &'a ClipLocator,
    /// The library id of each clip name the show lists.
    pub clip_ids: &'a HashMap<String, String>,
    pub decoder: DecoderChoice,
    /// What the decoders give: RGBA (capture, the CPU compositor) or NV12 (GPU outputs).
    pub format: PixelFormat,
    pub capture: Option<&'a CaptureSettings>,
    /// How the on-screen outputs are shown and their measured display timing.
    pub displays: Option<&'a DisplayTimings>,
}

impl Player {
    /// The frames each output shows at its latest refresh.
    pub fn frames(&self) -> &HashMap<String, OutputFrames> {
        &self.frames
    }

    /// Runs every output of this node whose next refresh has come; returns the report.
    pub fn refresh(&mut self, r: &Refresh<'_>) -> PlaybackReport {
        let setup = r.timeline.setup();
        let mut used: HashSet<SlotKey> = HashSet::new();
        let mut used_pre: HashSet<PreSeekKey> = HashSet::new();
        let mut outputs = Vec::new();
        let mut live_layers = HashSet::new();
        for output in setup
            .outputs
            .iter()
            .filter(|o| r.node.is_none_or(|n| o.node == n))
        {
            let shown_on = r.displays.and_then(|d| d.0.get(&output.name));
            let grid = shown_on.and_then(DisplayTiming::grid);
            // t_k: the predicted scanout on a measured display, else the rate grid's target.
            let (k, t, period) = match grid {
                Some(g) => {
                    let (k, t) = g.scanout_after(r.now_ns);
                    (k, t, g.period_ns)
                }
                None => {
                    let (k, t) = rate_refresh(r.now_ns, output.rate);
                    (k, t, ns_of_frame(1, output.rate))
                }
            };
            let on_display = grid.is_some();
            let run = self.outputs.entry(output.name.clone()).or_default();
            let due = run
                .last
                .is_none_or(|(prev, _)| prev.abs_diff(t) > period / 2);
            // Refreshes between the last composed one and this (same grid only).
            let mut skipped = 0;
            let mut prev_t = None;
            if due {
                if let Some((prev, was_on_display)) = run.last
                    && was_on_display == on_display
                {
                    skipped = refreshes_skipped(prev, t, period);
                    prev_t = Some(prev);
                }
                run.last = Some((t, on_display));
                run.refreshes += 1;
                run.skipped += skipped;
                run.lag_ns = r.now_ns.saturating_sub(t);
            }
            outputs.push(OutputReport {
                output: output.name.clone(),
                refresh_ns: ns_of_frame(1, output.rate),
                phase_ns: grid.map_or(0, |g| g.phase_ns),
                timing: if on_display { "scanout" } else { "rate" }.into(),
                skipped: run.skipped,
                refreshes: run.refreshes,
                lag_ns: run.lag_ns,
                display: shown_on.map(|d| d.display.clone()),
                display_period_ns: shown_on.and_then(|d| d.period_ns),
            });
            let ahead: HashMap<usize, Option<ClipPlay>> = r
                .timeline
                .at(&output.name, t.saturating_add(r.preroll_ns))
                .into_iter()
                .map(|l| (l.layer, l.clip))
                .collect();
            let mut draws: Vec<(Frame, LayerParams)> = Vec::new();
            let mut exact = true;
            let mut csv = Vec::new();
            let mut frames = OutputFrames {
                refresh: k,
                show_ns: t,
                layers: Vec::new(),
            };
            for state in r.timeline.at(&output.name, t) {
                live_layers.insert(state.layer);
                let mut report = LayerReport {
                    layer: state.name.clone(),
                    output: output.name.clone(),
                    ..LayerReport::default()
                };
                let ahead_play = ahead.get(&state.layer).cloned().flatten();
                // The clip that starts within the pre-roll, if it is another play.
                let upcoming = ahead_play
                    .clone()
                    .filter(|next| state.clip.as_ref().is_none_or(|now| now.clip != next.clip));
                if let Some(play) = &state.clip {
                    report.clip = Some(play.clip.clone());
                    report.start_ns = Some(play.start_ns);
                    report.paused = play.paused;
                    let key = (state.layer, play.clip.clone());
                    used.insert(key.clone());
                    // A decoder pre-seeked for this play takes over from the one that played.
                    let pre_key = (state.layer, play.clip.clone(), play.start_ns);
                    if let Some(pre) = self.pre_seeks.remove(&pre_key) {
                        debug!(layer = %state.name, clip = %play.clip, "media: the pre-seeked decoder takes over");
                        if let Some(old) = self.slots.insert(key.clone(), pre) {
                            close_off_thread(vec![old]);
                        }
                    }
                    // A seek or replay of this clip within the pre-roll (the first change
                    // of the layer's play, however soon another follows): a second decoder
                    // opens at the frame it needs.
                    let next_play = r
                        .timeline
                        .changes_between(t, t.saturating_add(r.preroll_ns))
                        .into_iter()
                        .find_map(|at| {
                            r.timeline
                                .at(&output.name, at)
                                .into_iter()
                                .find(|l| l.layer == state.layer)
                                .and_then(|l| l.clip)
                                .filter(|next| next != play)
                        });
                    if let Some(next) = next_play.as_ref().filter(|n| n.clip == play.clip)
                        && let Some(info) = self
                            .slots
                            .get(&key)
                            .and_then(|s| s.decoder.as_ref())
                            .map(ClipDecoder::info)
                        && let Some(first) = jump_target(play, next, info.fps, info.frames)
                    {
                        let pre_key = (state.layer, next.clip.clone(), next.start_ns);
                        used_pre.insert(pre_key.clone());
                        let pre = pre_seek_for(&mut self.pre_seeks, pre_key, first, r);
                        pre.poll();
                        if let Some(decoder) = pre.decoder.as_ref() {
                            decoder.pick(first);
                            if decoder.is_armed()
                                && self.armed_logged.insert((
                                    state.layer,
                                    next.clip.clone(),
                                    next.start_ns,
                                ))
                            {
                                info!(
                                    layer = %state.name,
                                    clip = %next.clip,
                                    frame = first,
                                    at_s = next.start_ns as f64 / NANOS_PER_SEC as f64,
                                    "media: armed (pre-seeked)"
                                );
                            }
                        }
                    }
                    let slot = slot_for(&mut self.slots, key, r);
                    slot.poll();
                    report.error = slot.error.clone();
                    if let Some(decoder) = slot.decoder.as_ref() {
                        let info = decoder.info();
                        report.decoder = Some(decoder.decoder_name().to_string());
                        if let FrameChoice::Frame(want) = play.frame_at(t, info.fps, info.frames) {
                            report.frame = Some(want);
                            let pick = if due { Some(decoder.pick(want)) } else { None };
                            if let Some(pick) = pick {
                                let stats = self.stats.entry(state.layer).or_default();
                                // Refreshes skipped while this play was on count as missed.
                                if prev_t.is_some_and(|p| p >= play.start_ns) {
                                    stats.record_skipped(skipped);
                                }
                                stats.record(want, pick.frame().map(|f| f.index));
                                report.armed = matches!(pick, Pick::Exact(_));
                                exact &= report.armed;
                                if let Some(f) = pick.frame() {
                                    draws.push((f.clone(), state.params));
                                }
                                frames.layers.push(LayerFrame {
                                    layer: state.layer,
                                    name: state.name.clone(),
                                    clip: play.clip.clone(),
                                    wanted: want,
                                    frame: pick.frame().cloned(),
                                    params: state.params,
                                    stats: *stats,
                                    decoder: decoder.decoder_name().to_string(),
                                });
                                csv.push(format!(
                                    "{k},{t},{},{},{want},{}",
                                    state.name,
                                    play.clip,
                                    pick.frame()
                                        .map_or("-".to_string(), |f| f.index.to_string())
                                ));
                            } else if let Some(old) = self.layers.get(&state.layer) {
                                report.armed = old.armed;
                            }
                        }
                    } else if report.error.is_none() {
                        exact = false;
                    }
                } else if let Some(next) = &upcoming {
                    report.clip = Some(next.clip.clone());
                    report.start_ns = Some(next.start_ns);
                }
                if let Some(next) = upcoming {
                    // Pre-roll: open it and fill its ring with its first frame.
                    let key = (state.layer, next.clip.clone());
                    used.insert(key.clone());
                    let slot = slot_for(&mut self.slots, key, r);
                    slot.poll();
                    if let Some(decoder) = slot.decoder.as_ref() {
                        let info = decoder.info();
                        let first = match next.frame_at(next.start_ns, info.fps, info.frames) {
                            FrameChoice::Frame(f) => f,
                            _ => 0,
                        };
                        let armed = if state.clip.is_none() {
                            decoder.pick(first);
                            decoder.is_armed()
                        } else {
                            // Another clip still plays on the layer: its decoder is ready
                            // once it holds a frame.
                            !matches!(decoder.pick(first), Pick::Missed)
                        };
                        if state.clip.is_none() {
                            report.armed = armed;
                            report.decoder = Some(decoder.decoder_name().to_string());
                        }
                        if armed
                            && self.armed_logged.insert((
                                state.layer,
                                next.clip.clone(),
                                next.start_ns,
                            ))
                        {
                            info!(
                                layer = %state.name,
                                clip = %next.clip,
                                start_s = next.start_ns as f64 / NANOS_PER_SEC as f64,
                                "media: armed"
                            );
                        }
                    }
                }
                let stats = self.stats.get(&state.layer).copied().unwrap_or_default();
                report.shown = stats.shown;
                report.late = stats.late;
                report.missed = stats.missed;
                report.skipped = stats.skipped;
                self.layers.insert(state.layer, report);
            }
            if due {
                self.frames.insert(output.name.clone(), frames);
            }
            if due
                && let Some(capture) = r.capture
                && capture.every > 0
                && k.is_multiple_of(capture.every)
            {
                write_capture(capture, output, k, t, &draws, exact, &csv);
            }
        }
        // Decoders no layer needs any more are closed (their threads end), off this thread.
        let gone: Vec<SlotKey> = self
            .slots
            .keys()
            .filter(|k| !used.contains(*k))
            .cloned()
            .collect();
        let mut closing: Vec<Slot> = gone.iter().filter_map(|k| self.slots.remove(k)).collect();
        let gone: Vec<PreSeekKey> = self
            .pre_seeks
            .keys()
            .filter(|k| !used_pre.contains(*k))
            .cloned()
            .collect();
        closing.extend(gone.iter().filter_map(|k| self.pre_seeks.remove(k)));
        close_off_thread(closing);
        self.layers.retain(|layer, _| live_layers.contains(layer));
        let names: HashSet<&str> = outputs.iter().map(|o| o.output.as_str()).collect();
        self.frames.retain(|name, _| names.contains(name.as_str()));
        let mut layers: Vec<(usize, LayerReport)> =
            self.layers.iter().map(|(i, l)| (*i, l.clone())).collect();
        layers.sort_by_key(|(i, _)| *i);
        let layers: Vec<LayerReport> = layers.into_iter().map(|(_, l)| l).collect();
        let armed = layers.iter().all(|l| l.clip.is_none() || l.armed);
        PlaybackReport {
            show_ns: r.now_ns,
            outputs,
            layers,
            armed,
        }
    }
}

/// Stops decoders on a thread of their own: closing joins a decoder's thread and stops its
/// pipeline, which can take tens of milliseconds, and the refresh must not wait for that.
fn close_off_thread(slots: Vec<Slot>) {
    if slots
        .iter()
        .all(|s| s.decoder.is_none() && s.opening.is_none())
    {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("close decoders".into())
        .spawn(move || drop(slots));
    if let Err(e) = spawned {
        warn!("media: cannot close decoders off the main thread ({e}); closed here");
    }
}

/// The frame a decoder must be pre-seeked to for `next`, a later play of the clip `now`
/// plays on the same layer, when `next` does not continue what `now` shows (a seek, a
/// replay, a rate change that jumps); `None` when the playing decoder gets there by
/// decoding on (a pause, a resume, a jump a few frames ahead).
pub fn jump_target(
    now: &ClipPlay,
    next: &ClipPlay,
    fps: rockontrol_show::FrameRate,
    frames: Option<u64>,
) -> Option<u64> {
    if now == next || now.clip != next.clip {
        return None;
    }
    let FrameChoice::Frame(first) = next.frame_at(next.start_ns, fps, frames) else {
        return None;
    };
    match now.frame_at(next.start_ns, fps, frames) {
        // Up to a few frames on: the playing ring holds it or soon will.
        FrameChoice::Frame(shown) if (shown..=shown + 2).contains(&first) => None,
        _ => Some(first),
    }
}

/// The pre-seek slot for `key`, opening its decoder at `first` the first time.
fn pre_seek_for<'a>(
    slots: &'a mut HashMap<PreSeekKey, Slot>,
    key: PreSeekKey,
    first: u64,
    r: &Refresh<'_>,
) -> &'a mut Slot {
    slots.entry(key).or_insert_with_key(|(_, clip, _)| {
        let id = r.clip_ids.get(clip).map(String::as_str);
        match (r.locate)(clip, id) {
            Some(path) => Slot::open(path, r.decoder, r.format, first),
            None => Slot::failed(format!("no verified file for clip {clip:?} on this node")),
        }
    })
}

/// The slot of (layer, clip), opening its decoder the first time.
fn slot_for<'a>(
    slots: &'a mut HashMap<SlotKey, Slot>,
    key: SlotKey,
    r: &Refresh<'_>,
) -> &'a mut Slot {
    // A clip that failed (not fetched yet, a decoder error) is tried again after a while: a
    // node whose clip becomes ready mid-show joins at the right frame.
    if slots
        .get(&key)
        .is_some_and(|s| s.failed_at.is_some_and(|at| at.elapsed() >= RETRY_AFTER))
    {
        slots.remove(&key);
    }
    slots.entry(key).or_insert_with_key(|(_, clip)| {
        let id = r.clip_ids.get(clip).map(String::as_str);
        match (r.locate)(clip, id) {
            Some(path) => Slot::open(path, r.decoder, r.format, 0),
            None => {
                let error = format!(
                    "no verified file for clip {clip:?}{} on this node yet (the library fetches it; see GET /api/media/status)",
                    id.map(|i| format!(" (id {i})")).unwrap_or_default()
                );
                debug!("media: {error}");
                Slot::failed(error)
            }
        }
    })
}

/// Writes refresh `k` of `output`: the PNG only when every layer showed its chosen frame
/// (a late stand-in would show another frame than the show clock chose), always the CSV lines.
fn write_capture(
    capture: &CaptureSettings,
    output: &rockontrol_show::LedWallOutput,
    k: u64,
    t: u64,
    draws: &[(Frame, LayerParams)],
    exact: bool,
    csv: &[String],
) {
    let dir = capture.dir.join(&output.name);
    let pictures: Vec<Rgba> = draws
        .iter()
        .map(|(f, _)| Rgba {
            width: f.width,
            height: f.height,
            data: f.data.as_ref().clone(),
        })
        .collect();
    let layers: Vec<(&Rgba, LayerParams)> = pictures
        .iter()
        .zip(draws)
        .map(|(p, (_, params))| (p, *params))
        .collect();
    let picture = exact.then(|| composite_cpu(output.width, output.height, &layers));
    let csv = csv.to_vec();
    let (w, h) = (output.width, output.height);
    // Encoding and writing are off the ECS thread.
    let written = std::thread::Builder::new()
        .name("media capture".into())
        .spawn(move || {
            if let Err(e) = std::fs::create_dir_all(&dir) {
                warn!("media capture: cannot create {}: {e}", dir.display());
                return;
            }
            if let Some(p) = picture {
                let path = dir.join(format!("{k:06}.png"));
                if let Err(e) =
                    image::save_buffer(&path, &p.data, w, h, image::ExtendedColorType::Rgba8)
                {
                    warn!("media capture: {}: {e}", path.display());
                }
            }
            let path = dir.join("frames.csv");
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path);
            match file {
                Ok(mut f) => {
                    let mut text = String::new();
                    for line in &csv {
                        text.push_str(line);
                        text.push('\n');
                    }
                    if csv.is_empty() {
                        text.push_str(&format!("{k},{t},,,,\n"));
                    }
                    if let Err(e) = f.write_all(text.as_bytes()) {
                        warn!("media capture: {}: {e}", path.display());
                    }
                }
                Err(e) => warn!("media capture: {}: {e}", path.display()),
            }
        });
    if let Err(e) = written {
        warn!("media capture: cannot start the writer: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rockontrol_show::{EndMode, FrameRate};

    fn play(start_s: u64, from_s: u64, paused: bool) -> ClipPlay {
        ClipPlay {
            clip: "count".into(),
            start_ns: start_s * NANOS_PER_SEC,
            from_ns: from_s * NANOS_PER_SEC,
            speed_ppm: crate::timing::UNIT_SPEED_PPM,
            end: EndMode::HoldLast,
            paused,
        }
    }

    #[test]
    fn a_seek_or_replay_needs_a_pre_seek_and_a_pause_or_resume_does_not() {
        let fps = FrameRate::whole(30);
        let now = play(1, 0, false);
        // Seek to 7 s at show time 3 s: frame 210, where the playing decoder is at 60.
        assert_eq!(
            jump_target(&now, &play(3, 7, false), fps, Some(300)),
            Some(210)
        );
        // Replay from 0 at 5 s.
        assert_eq!(
            jump_target(&now, &play(5, 0, false), fps, Some(300)),
            Some(0)
        );
        // Pause at 3 s (holds 2 s in) and resume from there: the decoder is already there.
        assert_eq!(jump_target(&now, &play(3, 2, true), fps, Some(300)), None);
        assert_eq!(
            jump_target(&play(3, 2, true), &play(4, 2, false), fps, Some(300)),
            None
        );
        // The same play, or another clip (a decoder of its own anyway).
        assert_eq!(jump_target(&now, &now.clone(), fps, Some(300)), None);
        let mut other = play(3, 0, false);
        other.clip = "other".into();
        assert_eq!(jump_target(&now, &other, fps, Some(300)), None);
    }
}
