//! The show's `timecode` section checked and compiled: labels parsed at the show's rate,
//! actions parsed as console commands, playbacks checked against the show. Every problem is
//! reported at once, each naming its entry (`timecode.cues[2].at`).

use rockontrol_engine::Command;
use rockontrol_show::{Show, TimecodeLink, TimecodeRate, TimecodeSetup};
use rockontrol_wire::timecode::{FrameRate, Timecode};

use crate::beat::Tempo;
use crate::smpte::{ShowTimecode, parse_timecode};

/// The wire crate's rate for the show file's.
#[must_use]
pub const fn frame_rate(rate: TimecodeRate) -> FrameRate {
    match rate {
        TimecodeRate::Film24 => FrameRate::Film24,
        TimecodeRate::Ebu25 => FrameRate::Ebu25,
        TimecodeRate::Df2997 => FrameRate::Df2997,
        TimecodeRate::Smpte30 => FrameRate::Smpte30,
    }
}

/// Problems in a show's `timecode` section, one line each.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the show's timecode section has {} problem(s):\n  {}", .0.len(), .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

/// A timecode cue: a command at the show time its label starts.
#[derive(Debug, Clone, PartialEq)]
pub struct TimecodeCueAt {
    pub ns: u64,
    pub label: Timecode,
    pub command: Command,
}

/// A playback that GOes every `every` beats.
#[derive(Debug, Clone, PartialEq)]
pub struct Follow {
    pub playback: String,
    pub every: u64,
}

/// The compiled `timecode` section.
#[derive(Debug, Clone, PartialEq)]
pub struct TimecodeConfig {
    pub timecode: ShowTimecode,
    /// By show time, then in file order.
    pub cues: Vec<TimecodeCueAt>,
    pub tempo: Option<Tempo>,
    pub follows: Vec<Follow>,
    pub out: Vec<TimecodeLink>,
    pub chase: Option<TimecodeLink>,
    pub freewheel_ns: u64,
}

impl Default for TimecodeConfig {
    fn default() -> Self {
        let rate = FrameRate::Ebu25;
        TimecodeConfig {
            timecode: ShowTimecode::new(rate, Timecode::from_frames(0, rate)),
            cues: Vec::new(),
            tempo: None,
            follows: Vec::new(),
            out: Vec::new(),
            chase: None,
            freewheel_ns: 2_000_000_000,
        }
    }
}

impl TimecodeConfig {
    /// Compiles `show.timecode`; `start` overrides the label at show time 0
    /// (`render --timecode-from`).
    ///
    /// # Errors
    /// [`ConfigError`] listing every bad label, action, playback, tempo or freewheel time.
    pub fn from_show(show: &Show, start: Option<&str>) -> Result<Self, ConfigError> {
        let setup: &TimecodeSetup = &show.timecode;
        let rate = frame_rate(setup.rate);
        let mut problems = Vec::new();
        let start_label = match start.or(setup.start.as_deref()) {
            Some(text) => parse_timecode(text, rate).unwrap_or_else(|e| {
                problems.push(format!("timecode.start: {e}"));
                Timecode::from_frames(0, rate)
            }),
            None => Timecode::from_frames(0, rate),
        };
        let timecode = ShowTimecode::new(rate, start_label);
        let playback_exists = |name: &str| show.playbacks.iter().any(|p| p.name == name);
        let mut cues = Vec::new();
        for (i, cue) in setup.cues.iter().enumerate() {
            let label = parse_timecode(&cue.at, rate)
                .map_err(|e| problems.push(format!("timecode.cues[{i}].at: {e}")))
                .ok();
            let command = cue
                .action
                .parse::<Command>()
                .map_err(|e| problems.push(format!("timecode.cues[{i}].action: {e}")))
                .ok();
            if let Some(name) = command.as_ref().and_then(Command::playback)
                && !playback_exists(name)
            {
                problems.push(format!(
                    "timecode.cues[{i}].action {:?}: no playback {name:?} in the show",
                    cue.action
                ));
            }
            if let (Some(label), Some(command)) = (label, command) {
                cues.push(TimecodeCueAt {
                    ns: timecode.ns_of_label(&label),
                    label,
                    command,
                });
            }
        }
        cues.sort_by_key(|c| c.ns);
        let (tempo, follows) = match &setup.tempo {
            None => (None, Vec::new()),
            Some(t) => {
                let tempo = if t.start.is_finite() && t.start >= 0.0 {
                    Tempo::new(t.bpm, (t.start * 1e9).round() as u64)
                } else {
                    None
                };
                if tempo.is_none() {
                    problems.push(format!(
                        "timecode.tempo: bpm {} must lie in 1..1000 and start {} be a time ≥ 0",
                        t.bpm, t.start
                    ));
                }
                let mut follows = Vec::new();
                for (i, f) in t.follow.iter().enumerate() {
                    if !playback_exists(&f.playback) {
                        problems.push(format!(
                            "timecode.tempo.follow[{i}]: no playback {:?} in the show",
                            f.playback
                        ));
                    }
                    if f.every == 0 {
                        problems.push(format!("timecode.tempo.follow[{i}].every must be ≥ 1"));
                    }
                    follows.push(Follow {
                        playback: f.playback.clone(),
                        every: u64::from(f.every.max(1)),
                    });
                }
                (tempo, follows)
            }
        };
        let freewheel = setup.freewheel.unwrap_or(2.0);
        if !(freewheel.is_finite() && (0.0..=3600.0).contains(&freewheel)) {
            problems.push(format!(
                "timecode.freewheel: {freewheel} is not a time in 0..=3600 s"
            ));
        }
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(TimecodeConfig {
            timecode,
            cues,
            tempo,
            follows,
            out: setup.out.clone(),
            chase: setup.chase.clone(),
            freewheel_ns: (freewheel.clamp(0.0, 3600.0) * 1e9) as u64,
        })
    }

    /// The commands due in the show-time window `(after, upto]` (`after` `None`: `[0, upto]`):
    /// timecode cues in label order, then beat follows on the beats of `tempo` (the show's, or
    /// one typed or tapped since). A tick *k* asks for `(t_{k−1}, t_k]`, so a cue at `ns` fires
    /// at the first tick at or after `ns`.
    #[must_use]
    pub fn due(&self, after: Option<u64>, upto: u64, tempo: Option<&Tempo>) -> Vec<Command> {
        let from = match after {
            None => 0,
            Some(after) => self.cues.partition_point(|c| c.ns <= after),
        };
        let to = self.cues.partition_point(|c| c.ns <= upto);
        let mut due: Vec<Command> = self.cues[from..to.max(from)]
            .iter()
            .map(|c| c.command.clone())
            .collect();
        if let Some(tempo) = tempo {
            for beat in tempo.beats_in(after, upto) {
                for f in self.follows.iter().filter(|f| beat % f.every == 0) {
                    due.push(Command::Go {
                        playback: f.playback.clone(),
                        fade: None,
                    });
                }
            }
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rockontrol_show::{BeatFollow, TempoSetup, TimecodeCue};

    fn show(setup: TimecodeSetup) -> Show {
        let mut show = Show::empty("tc");
        show.playbacks
            .push(ron::from_str("(name: \"main\", cue_list: \"main\")").expect("playback"));
        show.timecode = setup;
        show
    }

    #[test]
    fn cues_fire_in_the_window_their_label_starts_in() {
        let config = TimecodeConfig::from_show(
            &show(TimecodeSetup {
                start: Some("01:00:00:00".into()),
                cues: vec![
                    TimecodeCue {
                        at: "01:00:02:10".into(),
                        action: "goto main 5".into(),
                    },
                    TimecodeCue {
                        at: "01:00:00:00".into(),
                        action: "go main".into(),
                    },
                ],
                ..TimecodeSetup::default()
            }),
            None,
        )
        .expect("valid");
        assert_eq!(config.cues[1].ns, 2_400_000_000, "2 s 10 frames at 25 fps");
        assert_eq!(
            config.due(None, 0, config.tempo.as_ref()),
            vec!["go main".parse::<Command>().expect("cmd")]
        );
        assert!(config.due(Some(0), 2_399_999_999, None).is_empty());
        assert_eq!(
            config.due(Some(2_399_999_999), 2_400_000_000, None),
            vec!["goto main 5".parse::<Command>().expect("cmd")]
        );
        let later =
            TimecodeConfig::from_show(&show(config_setup()), Some("01:00:02:00")).expect("valid");
        assert_eq!(
            later.cues[0].ns, 400_000_000,
            "--timecode-from moves show time 0"
        );
    }

    fn config_setup() -> TimecodeSetup {
        TimecodeSetup {
            cues: vec![TimecodeCue {
                at: "01:00:02:10".into(),
                action: "goto main 5".into(),
            }],
            ..TimecodeSetup::default()
        }
    }

    #[test]
    fn every_problem_is_named() {
        let err = TimecodeConfig::from_show(
            &show(TimecodeSetup {
                start: Some("1:00".into()),
                cues: vec![
                    TimecodeCue {
                        at: "00:00:00:25".into(),
                        action: "go main".into(),
                    },
                    TimecodeCue {
                        at: "00:00:01:00".into(),
                        action: "jump main".into(),
                    },
                    TimecodeCue {
                        at: "00:00:01:00".into(),
                        action: "go nowhere".into(),
                    },
                ],
                tempo: Some(TempoSetup {
                    bpm: 0.0,
                    start: 0.0,
                    follow: vec![BeatFollow {
                        playback: "ghost".into(),
                        every: 0,
                    }],
                }),
                ..TimecodeSetup::default()
            }),
            None,
        )
        .expect_err("bad");
        let text = err.to_string();
        for needle in [
            "timecode.start",
            "timecode.cues[0].at",
            "timecode.cues[1].action",
            "timecode.cues[2].action \"go nowhere\": no playback \"nowhere\"",
            "timecode.tempo: bpm 0",
            "timecode.tempo.follow[0]: no playback \"ghost\"",
            "timecode.tempo.follow[0].every",
        ] {
            assert!(text.contains(needle), "{needle:?} in {text}");
        }
    }

    #[test]
    fn beat_follows_go_on_every_nth_beat() {
        let config = TimecodeConfig::from_show(
            &show(TimecodeSetup {
                tempo: Some(TempoSetup {
                    bpm: 120.0,
                    start: 0.0,
                    follow: vec![BeatFollow {
                        playback: "main".into(),
                        every: 2,
                    }],
                }),
                ..TimecodeSetup::default()
            }),
            None,
        )
        .expect("valid");
        let go = vec!["go main".parse::<Command>().expect("cmd")];
        assert_eq!(config.due(None, 0, config.tempo.as_ref()), go, "beat 0");
        assert!(
            config
                .due(Some(0), 999_999_999, config.tempo.as_ref())
                .is_empty(),
            "beat 1 is odd"
        );
        assert_eq!(
            config.due(Some(999_999_999), 1_000_000_000, config.tempo.as_ref()),
            go,
            "beat 2 at 1 s"
        );
    }
}
