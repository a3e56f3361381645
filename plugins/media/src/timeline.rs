//! What every layer does at a show time: the show's static layers plus the media actions of
//! the cues that have gone and the media commands (play, pause, stop, seek). Pure: cue GOs
//! come in as [`CueFired`] (from the engine's events, the replicated [`MediaLog`], or a test),
//! commands as [`MediaCommand`]s at a show time, and [`MediaTimeline::at`] is a function of
//! show time.
//!
//! Rules (as for lighting attributes):
//! - A cue's actions start after the cue's delay. `Play` starts the clip's frame 0 (or
//!   `from`) at that instant; `Stop` empties the layer then.
//! - `Opacity` and `Transform` fade linearly over the cue's fade-in, from the value the layer
//!   has at the fade's start (so a cue that goes mid-fade starts from where the layer is).
//! - Tracking: a value stays until a later cue changes it.
//! - Commands act at their show time: `play` (a clip from a position, or resume), `pause`
//!   (hold the position reached), `stop`, `seek` (jump, paused stays paused).
//! - Cues and commands apply in the order they take effect (equal times: arrival order).
use rockontrol_show::{CueNumber, EndMode, FrameRate, MediaAction, MediaSetup, Transform};

use crate::command::{LogEntry, MediaCommand, MediaLog};
use crate::composite::LayerParams;
use crate::timing::{FrameChoice, Playhead, UNIT_SPEED_PPM, frame_of_ns, seconds_to_ns, speed_ppm};

/// A cue that went, with its timing.
#[derive(Debug, Clone, PartialEq)]
pub struct CueFired {
    /// Show time of the GO.
    pub at_ns: u64,
    pub cue_list: String,
    pub cue: CueNumber,
    /// The cue's delay and fade-in.
    pub delay_ns: u64,
    pub fade_ns: u64,
}

/// A layer's state at one show time.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerState {
    /// Index into the setup's layers.
    pub layer: usize,
    pub name: String,
    pub output: String,
    pub z: i32,
    /// The clip and its playhead (the playhead's fps is filled from the clip by the caller,
    /// see [`LayerState::playhead`]); `None`: nothing plays.
    pub clip: Option<ClipPlay>,
    pub params: LayerParams,
}

/// A clip playing on a layer, independent of the clip's frame rate (known once it is opened).
#[derive(Debug, Clone, PartialEq)]
pub struct ClipPlay {
    pub clip: String,
    pub start_ns: u64,
    /// Seconds into the clip shown at `start_ns`, in nanoseconds.
    pub from_ns: u64,
    pub speed_ppm: u64,
    pub end: EndMode,
    /// Paused: the clip holds `from_ns` from `start_ns` on.
    pub paused: bool,
}

impl ClipPlay {
    /// The playhead for a clip at `fps`.
    pub fn playhead(&self, fps: FrameRate) -> Playhead {
        Playhead {
            start_ns: self.start_ns,
            from: frame_of_ns(self.from_ns, fps),
            speed_ppm: if self.paused { 0 } else { self.speed_ppm },
            fps,
            end: self.end,
        }
    }

    /// How far into the clip the show clock is at `t_ns` (speed applied, before any loop or
    /// hold): `from + (t − start)·speed`; `None` before the start.
    pub fn position_ns(&self, t_ns: u64) -> Option<u64> {
        let elapsed = t_ns.checked_sub(self.start_ns)?;
        if self.paused {
            return Some(self.from_ns);
        }
        let on = u128::from(elapsed) * u128::from(self.speed_ppm) / u128::from(UNIT_SPEED_PPM);
        Some(
            self.from_ns
                .saturating_add(on.min(u128::from(u64::MAX)) as u64),
        )
    }

    /// The content frame shown at `t_ns` for a clip at `fps` of `length` frames (`None`: not
    /// known yet): `⌊position · fps⌋`, then the end mode. At speed 1 from 0 this is
    /// `⌊(t − t_start)·fps⌋`.
    pub fn frame_at(&self, t_ns: u64, fps: FrameRate, length: Option<u64>) -> FrameChoice {
        let Some(position) = self.position_ns(t_ns) else {
            return FrameChoice::BeforeStart;
        };
        let raw = frame_of_ns(position, fps);
        match length {
            None => FrameChoice::Frame(raw),
            Some(0) => FrameChoice::Ended,
            Some(n) if raw < n => FrameChoice::Frame(raw),
            Some(n) => match self.end {
                EndMode::Loop => FrameChoice::Frame(raw % n),
                EndMode::HoldLast => FrameChoice::Frame(n - 1),
                EndMode::Stop => FrameChoice::Ended,
            },
        }
    }
}

/// A value fading from `from` at `start` to `to` at `start + len`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Fade<T> {
    from: T,
    to: T,
    start: u64,
    len: u64,
}

impl<T: Copy> Fade<T> {
    fn held(v: T) -> Self {
        Fade {
            from: v,
            to: v,
            start: 0,
            len: 0,
        }
    }
    fn at(&self, t: u64, lerp: impl Fn(&T, &T, f64) -> T) -> T {
        if t >= self.start + self.len {
            self.to
        } else if t <= self.start {
            self.from
        } else {
            lerp(
                &self.from,
                &self.to,
                (t - self.start) as f64 / self.len as f64,
            )
        }
    }
}

/// The media setup of a show with the cues that went and the commands given, in the order
/// they take effect.
#[derive(Debug, Clone)]
pub struct MediaTimeline {
    setup: MediaSetup,
    log: MediaLog,
}

impl MediaTimeline {
    pub fn new(setup: MediaSetup) -> Self {
        MediaTimeline {
            setup,
            log: MediaLog::default(),
        }
    }

    pub fn setup(&self) -> &MediaSetup {
        &self.setup
    }

    /// Another show's setup, the log kept (a show reloaded mid-show).
    pub fn set_setup(&mut self, setup: MediaSetup) {
        self.setup = setup;
    }

    /// The cues and commands recorded (what the master replicates).
    pub fn log(&self) -> &MediaLog {
        &self.log
    }

    /// Replaces the log (a receiver applying the master's).
    pub fn set_log(&mut self, log: MediaLog) {
        let mut log = log;
        log.entries.sort_by_key(LogEntry::begin_ns);
        self.log = log;
    }

    fn record(&mut self, entry: LogEntry) {
        let begin = entry.begin_ns();
        let at = self.log.entries.partition_point(|e| e.begin_ns() <= begin);
        self.log.entries.insert(at, entry);
    }

    /// Records a GO. Kept in the order its actions take effect (equal times: arrival order).
    pub fn fire(&mut self, cue: CueFired) {
        self.record(cue.into());
    }

    /// Records a media command effective at show time `at_ns`.
    pub fn command(&mut self, at_ns: u64, command: MediaCommand) {
        self.record(LogEntry::Command { at_ns, command });
    }

    /// The show times in `(after_ns, until_ns]` at which a recorded cue or command takes
    /// effect (where a layer's play may change), in order, each once.
    pub fn changes_between(&self, after_ns: u64, until_ns: u64) -> Vec<u64> {
        let mut times: Vec<u64> = self
            .log
            .entries
            .iter()
            .map(LogEntry::begin_ns)
            .filter(|b| (after_ns + 1..=until_ns).contains(b))
            .collect();
        times.sort_unstable();
        times.dedup();
        times
    }

    /// The layers of `output` at show time `t_ns`, in stacking order (bottom first).
    pub fn at(&self, output: &str, t_ns: u64) -> Vec<LayerState> {
        let mut layers: Vec<LayerState> = Vec::new();
        for (i, l) in self.setup.layers.iter().enumerate() {
            if l.output != output {
                continue;
            }
            let mut clip = l.clip.as_ref().map(|c| ClipPlay {
                clip: c.clone(),
                start_ns: seconds_to_ns(l.start.unwrap_or(0.0)),
                from_ns: 0,
                speed_ppm: speed_ppm(l.rate),
                end: l.end,
                paused: false,
            });
            let mut opacity = Fade::held(l.opacity);
            let mut transform = Fade::held(l.transform);
            for entry in &self.log.entries {
                let begin = entry.begin_ns();
                if begin > t_ns {
                    break;
                }
                let go = match entry {
                    LogEntry::Command { command, .. } => {
                        if command.layer() == l.name {
                            apply_command(&mut clip, command, begin, l);
                        }
                        continue;
                    }
                    LogEntry::Cue { .. } => match entry.cue() {
                        Some(go) => go,
                        None => continue,
                    },
                };
                for a in self.actions_of(&go).filter(|a| a.layer() == l.name) {
                    match a {
                        MediaAction::Play {
                            clip: c,
                            from,
                            end,
                            rate,
                            ..
                        } => {
                            clip = Some(ClipPlay {
                                clip: c.clone(),
                                start_ns: begin,
                                from_ns: seconds_to_ns(from.unwrap_or(0.0)),
                                speed_ppm: rate.map_or(speed_ppm(l.rate), speed_ppm),
                                end: end.unwrap_or(l.end),
                                paused: false,
                            });
                        }
                        MediaAction::Stop { .. } => clip = None,
                        MediaAction::Opacity { level, .. } => {
                            let now = opacity.at(begin, lerp_f64);
                            opacity = Fade {
                                from: now,
                                to: *level,
                                start: begin,
                                len: go.fade_ns,
                            };
                        }
                        MediaAction::Transform { transform: to, .. } => {
                            let now = transform.at(begin, Transform::lerp);
                            transform = Fade {
                                from: now,
                                to: *to,
                                start: begin,
                                len: go.fade_ns,
                            };
                        }
                    }
                }
            }
            layers.push(LayerState {
                layer: i,
                name: l.name.clone(),
                output: l.output.clone(),
                z: l.z,
                clip,
                params: LayerParams {
                    opacity: opacity.at(t_ns, lerp_f64) as f32,
                    blend: l.blend,
                    transform: transform.at(t_ns, Transform::lerp),
                },
            });
        }
        // Stable: equal z keeps the show file's order.
        layers.sort_by_key(|s| s.z);
        layers
    }

    /// Drops the entries of the log that no longer decide any layer's state at a show time
    /// from `now_ns` on ([`compact`]); returns how many went.
    pub fn compact(&mut self, now_ns: u64) -> usize {
        let before = self.log.entries.len();
        self.log = compact(&self.log, &self.setup, now_ns);
        before - self.log.entries.len()
    }

    fn actions_of<'a>(&'a self, go: &'a CueFired) -> impl Iterator<Item = &'a MediaAction> + 'a {
        self.setup
            .cues
            .iter()
            .filter(move |c| c.cue_list == go.cue_list && c.cue == go.cue)
            .flat_map(|c| c.actions.iter())
    }
}

/// The log with only the entries that decide some layer's state at a show time `≥ now_ns`:
/// [`MediaTimeline::at`] gives the same for every output at every such time (for `setup`;
/// a show reloaded with other media cues may read old entries differently).
///
/// Per layer of `setup`, among the entries in effect by `now_ns`:
/// - the clip: the last entry that plays a clip or stops the layer (it replaces whatever
///   was before) and every later one (pause, seek, resume, rate build on it);
/// - opacity and transform: the last fade, and the fades before it as far back as one that
///   had ended when the next began (its start value no longer matters).
///
/// Entries that take effect after `now_ns` all stay. An entry is kept if any layer needs it;
/// the ones it also carries for other layers precede what those layers keep, so they change
/// nothing there. Order is kept. Pure.
pub fn compact(log: &MediaLog, setup: &MediaSetup, now_ns: u64) -> MediaLog {
    let entries = &log.entries;
    let mut keep: Vec<bool> = entries.iter().map(|e| e.begin_ns() > now_ns).collect();
    let past: Vec<usize> = (0..entries.len()).filter(|&i| !keep[i]).collect();
    let actions = |e: &LogEntry| -> Vec<&MediaAction> {
        match e {
            LogEntry::Cue { cue_list, cue, .. } => setup
                .cues
                .iter()
                .filter(|c| c.cue_list == *cue_list && c.cue == *cue)
                .flat_map(|c| c.actions.iter())
                .collect(),
            LogEntry::Command { .. } => Vec::new(),
        }
    };
    let fade_ns = |e: &LogEntry| match e {
        LogEntry::Cue { fade_ns, .. } => *fade_ns,
        LogEntry::Command { .. } => 0,
    };
    for layer in &setup.layers {
        let name = layer.name.as_str();
        // The clip: back to the last entry that replaces it.
        for &i in past.iter().rev() {
            let e = &entries[i];
            let (touches, replaces) = match e {
                LogEntry::Command { command, .. } => (
                    command.layer() == name,
                    matches!(
                        command,
                        MediaCommand::Play { clip: Some(_), .. } | MediaCommand::Stop { .. }
                    ),
                ),
                LogEntry::Cue { .. } => {
                    let clip_actions: Vec<_> = actions(e)
                        .into_iter()
                        .filter(|a| {
                            a.layer() == name
                                && matches!(a, MediaAction::Play { .. } | MediaAction::Stop { .. })
                        })
                        .collect();
                    (!clip_actions.is_empty(), !clip_actions.is_empty())
                }
            };
            if touches {
                keep[i] = true;
                if replaces {
                    break;
                }
            }
        }
        // Opacity, then transform: back to a fade that had ended when it was next read.
        for is_attr in [
            (|a: &MediaAction| matches!(a, MediaAction::Opacity { .. }))
                as fn(&MediaAction) -> bool,
            |a: &MediaAction| matches!(a, MediaAction::Transform { .. }),
        ] {
            let mut read_at = now_ns;
            for &i in past.iter().rev() {
                let e = &entries[i];
                if !actions(e).iter().any(|a| a.layer() == name && is_attr(a)) {
                    continue;
                }
                keep[i] = true;
                let begin = e.begin_ns();
                if begin.saturating_add(fade_ns(e)) <= read_at {
                    break;
                }
                read_at = begin;
            }
        }
    }
    MediaLog {
        entries: entries
            .iter()
            .zip(keep)
            .filter(|(_, k)| *k)
            .map(|(e, _)| e.clone())
            .collect(),
    }
}

/// What a media command does to a layer's clip at `begin`.
fn apply_command(
    clip: &mut Option<ClipPlay>,
    command: &MediaCommand,
    begin: u64,
    layer: &rockontrol_show::MediaLayer,
) {
    match command {
        MediaCommand::Play {
            clip: Some(name),
            position,
            rate,
            ..
        } => {
            *clip = Some(ClipPlay {
                clip: name.clone(),
                start_ns: begin,
                from_ns: seconds_to_ns(position.unwrap_or(0.0)),
                speed_ppm: rate.map_or(speed_ppm(layer.rate), speed_ppm),
                end: layer.end,
                paused: false,
            });
        }
        MediaCommand::Play {
            clip: None,
            position,
            rate,
            ..
        } => {
            // Resume (or restart from `position`) what the layer holds.
            if let Some(c) = clip {
                c.from_ns = match position {
                    Some(p) => seconds_to_ns(*p),
                    None => c.position_ns(begin).unwrap_or(c.from_ns),
                };
                c.start_ns = begin;
                c.paused = false;
                if let Some(r) = rate {
                    c.speed_ppm = speed_ppm(*r);
                }
            }
        }
        MediaCommand::Pause { .. } => {
            if let Some(c) = clip
                && !c.paused
            {
                c.from_ns = c.position_ns(begin).unwrap_or(c.from_ns);
                c.start_ns = begin;
                c.paused = true;
            }
        }
        MediaCommand::Stop { .. } => *clip = None,
        MediaCommand::Seek { position, .. } => {
            if let Some(c) = clip {
                c.from_ns = seconds_to_ns(*position);
                c.start_ns = begin;
            }
        }
    }
}

fn lerp_f64(a: &f64, b: &f64, f: f64) -> f64 {
    a + (b - a) * f
}

#[cfg(test)]
mod tests {
    use rockontrol_show::{MediaCue, MediaLayer};

    use super::*;
    use crate::timing::FrameChoice;
    use crate::timing::NANOS_PER_SEC as S;

    fn setup() -> MediaSetup {
        let mut bg = MediaLayer::new("bg", "wall");
        bg.clip = Some("count".into());
        bg.start = Some(1.0);
        let mut top = MediaLayer::new("top", "wall");
        top.z = 5;
        let under = MediaLayer {
            z: -1,
            ..MediaLayer::new("under", "wall")
        };
        MediaSetup {
            outputs: vec![],
            layers: vec![top, bg, under],
            cues: vec![MediaCue {
                cue_list: "main".into(),
                cue: CueNumber(2000),
                actions: vec![
                    MediaAction::Play {
                        layer: "top".into(),
                        clip: "intro".into(),
                        from: Some(0.5),
                        end: Some(EndMode::Loop),
                        rate: None,
                    },
                    MediaAction::Opacity {
                        layer: "bg".into(),
                        level: 0.0,
                    },
                ],
            }],
            ..MediaSetup::default()
        }
    }

    fn go(at_s: u64, delay_s: u64, fade_s: u64) -> CueFired {
        CueFired {
            at_ns: at_s * S,
            cue_list: "main".into(),
            cue: CueNumber(2000),
            delay_ns: delay_s * S,
            fade_ns: fade_s * S,
        }
    }

    #[test]
    fn layers_stack_by_z_then_file_order() {
        let t = MediaTimeline::new(setup());
        let names: Vec<_> = t.at("wall", 0).into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["under", "bg", "top"]);
        assert!(t.at("other", 0).is_empty());
    }

    #[test]
    fn a_cue_plays_after_its_delay_and_fades_opacity_over_its_fade() {
        let mut t = MediaTimeline::new(setup());
        t.fire(go(10, 1, 4));
        let top = |t: &MediaTimeline, ns| {
            t.at("wall", ns)
                .into_iter()
                .find(|l| l.name == "top")
                .expect("top")
        };
        let bg = |t: &MediaTimeline, ns| {
            t.at("wall", ns)
                .into_iter()
                .find(|l| l.name == "bg")
                .expect("bg")
        };
        assert_eq!(top(&t, 10 * S).clip, None, "the delay has not passed");
        let play = top(&t, 11 * S).clip.expect("playing after the delay");
        assert_eq!(
            (play.start_ns, play.from_ns, play.end),
            (11 * S, S / 2, EndMode::Loop)
        );
        // From 0.5 s in at 30 fps: frame 15 at the start.
        assert_eq!(play.playhead(FrameRate::whole(30)).from, 15);
        assert_eq!(bg(&t, 11 * S).params.opacity, 1.0);
        assert_eq!(
            bg(&t, 13 * S).params.opacity,
            0.5,
            "half-way through a 4 s fade"
        );
        assert_eq!(bg(&t, 20 * S).params.opacity, 0.0);
        assert_eq!(
            bg(&t, 20 * S).clip.map(|c| c.start_ns),
            Some(S),
            "the static clip keeps playing"
        );
    }

    fn frame(t: &MediaTimeline, layer: &str, ns: u64) -> FrameChoice {
        let l = t
            .at("wall", ns)
            .into_iter()
            .find(|l| l.name == layer)
            .expect("layer");
        match l.clip {
            Some(c) => c.frame_at(ns, FrameRate::whole(25), Some(1000)),
            None => FrameChoice::Ended,
        }
    }

    /// Play at 2 s, pause at 4 s, seek to 10 s at 5 s, resume at 6 s, stop at 8 s: the frame
    /// at each time is the clip position times 25 fps.
    #[test]
    fn commands_play_pause_seek_resume_and_stop_on_the_show_clock() {
        let mut t = MediaTimeline::new(setup());
        let top = || "top".to_string();
        t.command(
            2 * S,
            MediaCommand::Play {
                layer: top(),
                clip: Some("count".into()),
                position: None,
                rate: None,
                at: None,
            },
        );
        t.command(
            6 * S,
            MediaCommand::Play {
                layer: top(),
                clip: None,
                position: None,
                rate: None,
                at: None,
            },
        );
        t.command(
            4 * S,
            MediaCommand::Pause {
                layer: top(),
                at: None,
            },
        );
        t.command(
            5 * S,
            MediaCommand::Seek {
                layer: top(),
                position: 10.0,
                at: None,
            },
        );
        t.command(
            8 * S,
            MediaCommand::Stop {
                layer: top(),
                at: None,
            },
        );
        assert_eq!(
            frame(&t, "top", 2 * S - 1),
            FrameChoice::Ended,
            "nothing before the play"
        );
        assert_eq!(frame(&t, "top", 2 * S), FrameChoice::Frame(0));
        assert_eq!(
            frame(&t, "top", 3 * S + S / 2),
            FrameChoice::Frame(37),
            "⌊1.5 s · 25⌋"
        );
        assert_eq!(
            frame(&t, "top", 4 * S + S / 2),
            FrameChoice::Frame(50),
            "paused at 2 s in"
        );
        assert_eq!(
            frame(&t, "top", 5 * S + S / 2),
            FrameChoice::Frame(250),
            "seek while paused holds 10 s"
        );
        assert_eq!(
            frame(&t, "top", 7 * S),
            FrameChoice::Frame(275),
            "resumed at 6 s from 10 s"
        );
        assert_eq!(frame(&t, "top", 8 * S), FrameChoice::Ended, "stopped");
        // Where the layer's play may change (the player pre-seeks for the first of them).
        assert_eq!(t.changes_between(2 * S, 6 * S), [4 * S, 5 * S, 6 * S]);
        assert_eq!(t.changes_between(0, 2 * S), [2 * S], "the end is included");
        assert!(
            t.changes_between(8 * S, 20 * S).is_empty(),
            "the start is not"
        );
        // A receiver that gets the log late computes the same frames.
        let mut late = MediaTimeline::new(setup());
        late.set_log(t.log().clone());
        for ns in [2 * S, 3 * S + 7, 4 * S + S / 2, 7 * S, 9 * S] {
            assert_eq!(frame(&late, "top", ns), frame(&t, "top", ns), "at {ns} ns");
        }
    }

    #[test]
    fn a_second_go_mid_fade_starts_from_where_the_layer_is() {
        let mut s = setup();
        s.cues.push(MediaCue {
            cue_list: "main".into(),
            cue: CueNumber(3000),
            actions: vec![MediaAction::Opacity {
                layer: "bg".into(),
                level: 1.0,
            }],
        });
        let mut t = MediaTimeline::new(s);
        t.fire(go(0, 0, 4));
        t.fire(CueFired {
            cue: CueNumber(3000),
            ..go(2, 0, 2)
        });
        let bg = |ns| {
            t.at("wall", ns)
                .into_iter()
                .find(|l| l.name == "bg")
                .expect("bg")
                .params
                .opacity
        };
        assert_eq!(bg(2 * S), 0.5, "the second fade starts at the first's 0.5");
        assert_eq!(bg(3 * S), 0.75);
        assert_eq!(bg(4 * S), 1.0);
    }

    mod compaction {
        use proptest::prelude::*;
        use rockontrol_show::{MediaCue, MediaLayer};

        use super::*;

        /// Two layers on one output; four cues whose actions play, stop, fade opacity and move
        /// either layer (some touch both).
        fn show() -> MediaSetup {
            let mut a = MediaLayer::new("a", "wall");
            a.clip = Some("still".into());
            let b = MediaLayer::new("b", "wall");
            let moved = |x: f64| Transform {
                position: (x, 0.0),
                ..Transform::default()
            };
            let play = |layer: &str, clip: &str, from: f64| MediaAction::Play {
                layer: layer.into(),
                clip: clip.into(),
                from: Some(from),
                end: None,
                rate: None,
            };
            let opacity = |layer: &str, level: f64| MediaAction::Opacity {
                layer: layer.into(),
                level,
            };
            let cue = |n: u32, actions| MediaCue {
                cue_list: "main".into(),
                cue: CueNumber(n * 1000),
                actions,
            };
            MediaSetup {
                outputs: vec![],
                layers: vec![a, b],
                cues: vec![
                    cue(1, vec![play("a", "x", 0.0), opacity("b", 1.0)]),
                    cue(
                        2,
                        vec![
                            play("b", "y", 1.5),
                            opacity("a", 0.25),
                            MediaAction::Transform {
                                layer: "b".into(),
                                transform: moved(40.0),
                            },
                        ],
                    ),
                    cue(
                        3,
                        vec![MediaAction::Stop { layer: "a".into() }, opacity("b", 0.0)],
                    ),
                    cue(
                        4,
                        vec![MediaAction::Transform {
                            layer: "a".into(),
                            transform: moved(-10.0),
                        }],
                    ),
                ],
                ..MediaSetup::default()
            }
        }

        const Q: u64 = S / 4;

        fn entry() -> impl Strategy<Value = LogEntry> {
            let layer = prop_oneof![Just("a"), Just("b"), Just("gone")].prop_map(String::from);
            let at = (0u64..40).prop_map(|q| q * Q);
            let pos = (0u32..8).prop_map(|q| f64::from(q) / 2.0);
            let command = prop_oneof![
                (
                    layer.clone(),
                    prop::option::of(prop_oneof![Just("x"), Just("z")]),
                    prop::option::of(pos.clone())
                )
                    .prop_map(|(layer, clip, position)| MediaCommand::Play {
                        layer,
                        clip: clip.map(String::from),
                        position,
                        rate: None,
                        at: None,
                    }),
                layer
                    .clone()
                    .prop_map(|layer| MediaCommand::Pause { layer, at: None }),
                layer
                    .clone()
                    .prop_map(|layer| MediaCommand::Stop { layer, at: None }),
                (layer, pos).prop_map(|(layer, position)| MediaCommand::Seek {
                    layer,
                    position,
                    at: None
                }),
            ];
            prop_oneof![
                (at.clone(), command)
                    .prop_map(|(at_ns, command)| LogEntry::Command { at_ns, command }),
                (at, 1u32..6, 0u64..4, 0u64..12).prop_map(|(at_ns, n, delay, fade)| {
                    LogEntry::Cue {
                        at_ns,
                        cue_list: "main".into(),
                        cue: CueNumber(n * 1000),
                        delay_ns: delay * Q,
                        fade_ns: fade * Q,
                    }
                }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(400))]
            /// The compacted log gives every layer the same clip, playhead, opacity and
            /// transform as the full log at any show time from `now` on: at `now`, at every
            /// entry's start and fade end after it, a nanosecond either side, and beyond.
            #[test]
            fn a_compacted_log_gives_the_same_layers_from_now_on(
                entries in prop::collection::vec(entry(), 0..40),
                now_q in 0u64..48,
            ) {
                let mut full = MediaTimeline::new(show());
                for e in entries {
                    match e {
                        LogEntry::Command { at_ns, command } => full.command(at_ns, command),
                        cue => full.fire(cue.cue().expect("a cue")),
                    }
                }
                let now = now_q * Q;
                let mut compacted = full.clone();
                compacted.compact(now);
                prop_assert!(compacted.log().entries.len() <= full.log().entries.len());
                let mut times = vec![now, now + 1, 20 * S, 100 * S];
                for e in &full.log().entries {
                    let end = e.begin_ns() + match e { LogEntry::Cue { fade_ns, .. } => *fade_ns, _ => 0 };
                    for t in [e.begin_ns(), end] {
                        times.extend([t.saturating_sub(1), t, t + 1, t + Q / 2]);
                    }
                }
                for t in times.into_iter().filter(|&t| t >= now) {
                    prop_assert_eq!(compacted.at("wall", t), full.at("wall", t), "at {} ns, now {} ns", t, now);
                }
                // Compacting again at the same time keeps it as it is.
                let again = compact(compacted.log(), compacted.setup(), now);
                prop_assert_eq!(&again, compacted.log());
            }
        }

        /// A long show of GOs and commands on one layer keeps a handful of entries, not all.
        #[test]
        fn a_long_show_keeps_the_log_short() {
            let mut t = MediaTimeline::new(show());
            for k in 0..1000u64 {
                let at = k * S;
                t.fire(CueFired {
                    at_ns: at,
                    cue_list: "main".into(),
                    cue: CueNumber((k % 4 + 1) as u32 * 1000),
                    delay_ns: 0,
                    fade_ns: S / 2,
                });
                t.command(
                    at + S / 3,
                    MediaCommand::Seek {
                        layer: "a".into(),
                        position: 1.0,
                        at: None,
                    },
                );
                t.compact(at);
            }
            let n = t.log().entries.len();
            assert!(n <= 12, "{n} entries after 2000 records: {:?}", t.log());
        }
    }
}
