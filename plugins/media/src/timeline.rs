//! What every layer does at a show time: the show's static layers plus the media actions of
//! the cues that have gone. Pure: cue GOs come in as [`CueFired`] (from the engine's events,
//! a replicated log, or a test), and [`MediaTimeline::at`] is a function of show time.
//!
//! Rules (as for lighting attributes):
//! - A cue's actions start after the cue's delay. `Play` starts the clip's frame 0 (or
//!   `from`) at that instant; `Stop` empties the layer then.
//! - `Opacity` and `Transform` fade linearly over the cue's fade-in, from the value the layer
//!   has at the fade's start (so a cue that goes mid-fade starts from where the layer is).
//! - Tracking: a value stays until a later cue changes it.

use rockontrol_show::{CueNumber, EndMode, FrameRate, MediaAction, MediaSetup, Transform};

use crate::composite::LayerParams;
use crate::timing::{Playhead, frame_of_ns, seconds_to_ns, speed_ppm};

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
}

impl ClipPlay {
    /// The playhead for a clip at `fps`.
    pub fn playhead(&self, fps: FrameRate) -> Playhead {
        Playhead {
            start_ns: self.start_ns,
            from: frame_of_ns(self.from_ns, fps),
            speed_ppm: self.speed_ppm,
            fps,
            end: self.end,
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

/// The media setup of a show with the cues that went, in GO order.
#[derive(Debug, Clone)]
pub struct MediaTimeline {
    setup: MediaSetup,
    fired: Vec<CueFired>,
}

impl MediaTimeline {
    pub fn new(setup: MediaSetup) -> Self {
        MediaTimeline {
            setup,
            fired: Vec::new(),
        }
    }

    pub fn setup(&self) -> &MediaSetup {
        &self.setup
    }

    /// Records a GO. GOs are kept in show-time order (equal times: arrival order).
    pub fn fire(&mut self, cue: CueFired) {
        let at = self.fired.partition_point(|c| c.at_ns <= cue.at_ns);
        self.fired.insert(at, cue);
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
            });
            let mut opacity = Fade::held(l.opacity);
            let mut transform = Fade::held(l.transform);
            for go in &self.fired {
                let begin = go.at_ns.saturating_add(go.delay_ns);
                if begin > t_ns {
                    break;
                }
                for a in self.actions_of(go).filter(|a| a.layer() == l.name) {
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

    fn actions_of<'a>(&'a self, go: &'a CueFired) -> impl Iterator<Item = &'a MediaAction> + 'a {
        self.setup
            .cues
            .iter()
            .filter(move |c| c.cue_list == go.cue_list && c.cue == go.cue)
            .flat_map(|c| c.actions.iter())
    }
}

fn lerp_f64(a: &f64, b: &f64, f: f64) -> f64 {
    a + (b - a) * f
}

#[cfg(test)]
mod tests {
    use rockontrol_show::{MediaCue, MediaLayer};

    use super::*;
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
}
