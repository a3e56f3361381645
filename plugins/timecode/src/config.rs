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
        self.beat_follows(tempo, after, upto, &mut due);
        due
    }

    /// The commands of a forward jump of show time from `from` to `upto`, passing
    /// `(from, before]` (`before` is the previous tick's show time, `from < before`): what a
    /// console fires when the chased timecode steps over cues. Cues jumped over leave the state
    /// they would have left had they played ([`jumped_over`]: per playback the last cue, not
    /// every one), snapped; cues of the window `(before, upto]` fire as usual. Beat follows go
    /// only for the beats of `(before, upto]` (a jump over 100 beats is not 100 GOs).
    #[must_use]
    pub fn due_after_jump(
        &self,
        from: u64,
        before: u64,
        upto: u64,
        tempo: Option<&Tempo>,
    ) -> Vec<Command> {
        let passed = |after: u64, upto: u64| {
            let a = self.cues.partition_point(|c| c.ns <= after);
            let b = self.cues.partition_point(|c| c.ns <= upto);
            self.cues[a..b.max(a)].iter().map(|c| c.command.clone())
        };
        let jumped = passed(from, before.max(from)).map(|c| (c, true));
        let now = passed(before.max(from), upto).map(|c| (c, false));
        let mut due = jumped_over(jumped.chain(now));
        self.beat_follows(tempo, Some(before.max(from)), upto, &mut due);
        due
    }

    /// The GOs of the beat follows for the beats of `(after, upto]`.
    fn beat_follows(
        &self,
        tempo: Option<&Tempo>,
        after: Option<u64>,
        upto: u64,
        due: &mut Vec<Command>,
    ) {
        let Some(tempo) = tempo else { return };
        for beat in tempo.beats_in(after, upto) {
            for f in self.follows.iter().filter(|f| beat % f.every == 0) {
                due.push(Command::Go {
                    playback: f.playback.clone(),
                    fade: None,
                });
            }
        }
    }
}

/// The commands that leave the state `commands` (in time order) would leave, as a console fires
/// timecode events it jumped over: per playback, only what follows its last absolute command
/// (`goto`, `release`, or a `release` of all) matters, and of its master level only the last;
/// of the grand master and blackout only the last. Commands marked `true` were jumped over:
/// kept ones are snapped (fade 0), as if they had played long ago. Order is kept.
#[must_use]
pub fn jumped_over(commands: impl IntoIterator<Item = (Command, bool)>) -> Vec<Command> {
    let commands: Vec<(Command, bool)> = commands.into_iter().collect();
    // Index of the last command that makes earlier ones of the same scope irrelevant.
    let last_release_all = commands
        .iter()
        .rposition(|(c, _)| matches!(c, Command::ReleaseAll));
    let superseded = |i: usize, command: &Command| -> bool {
        let later = &commands[i + 1..];
        // `release` of all ends every playback's story (not effects, masters or levels).
        if last_release_all.is_some_and(|r| r > i)
            && matches!(
                command,
                Command::Go { .. }
                    | Command::Back { .. }
                    | Command::Goto { .. }
                    | Command::Release { .. }
                    | Command::ReleaseAll
            )
        {
            return true;
        }
        match command {
            Command::Go { playback, .. }
            | Command::Back { playback, .. }
            | Command::Goto { playback, .. }
            | Command::Release { playback } => later.iter().any(|(c, _)| {
                matches!(c, Command::Goto { playback: p, .. } | Command::Release { playback: p } if p == playback)
            }),
            Command::Master { playback, .. } => later
                .iter()
                .any(|(c, _)| matches!(c, Command::Master { playback: p, .. } if p == playback)),
            Command::GrandMaster { .. } => later
                .iter()
                .any(|(c, _)| matches!(c, Command::GrandMaster { .. })),
            Command::Blackout { .. } => later
                .iter()
                .any(|(c, _)| matches!(c, Command::Blackout { .. })),
            Command::Effect { name, .. } => later
                .iter()
                .any(|(c, _)| matches!(c, Command::Effect { name: n, .. } if n == name)),
            Command::ReleaseAll => false,
        }
    };
    commands
        .iter()
        .enumerate()
        .filter(|(i, (c, _))| !superseded(*i, c))
        .map(|(_, (c, jumped))| {
            let mut c = c.clone();
            if *jumped {
                match &mut c {
                    Command::Go { fade, .. }
                    | Command::Back { fade, .. }
                    | Command::Goto { fade, .. } => *fade = Some(0.0),
                    _ => {}
                }
            }
            c
        })
        .collect()
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

    fn cmd(text: &str) -> Command {
        text.parse().expect("a command")
    }

    #[test]
    fn a_jump_keeps_per_playback_what_its_last_absolute_cue_left() {
        let passed = [
            "goto main 1",
            "go beat",
            "goto main 3",
            "go main",
            "master main 0.5",
            "gm 0.2",
            "goto beat 2",
            "master main 0.8",
            "gm 1",
        ]
        .map(|c| (cmd(c), true));
        assert_eq!(
            jumped_over(passed),
            vec![
                cmd("goto main 3 fade 0"),
                cmd("go main fade 0"),
                cmd("goto beat 2 fade 0"),
                cmd("master main 0.8"),
                cmd("gm 1"),
            ],
            "main: goto 3 then go (cue 4); beat: goto 2; last levels; jumped cues snap"
        );
        let released = [
            (cmd("goto main 2"), true),
            (cmd("release"), true),
            (cmd("goto beat 1"), false),
        ];
        assert_eq!(
            jumped_over(released),
            vec![cmd("release"), cmd("goto beat 1")],
            "a release of all supersedes what came before; the new tick's cue keeps its fade"
        );
    }

    #[test]
    fn a_forward_jump_fires_the_last_cue_per_list_and_a_backward_jump_rearms() {
        let config = TimecodeConfig::from_show(
            &show(TimecodeSetup {
                cues: ["1", "2", "3", "4"]
                    .iter()
                    .enumerate()
                    .map(|(i, n)| TimecodeCue {
                        at: format!("00:00:0{}:00", i + 1),
                        action: format!("goto main {n}"),
                    })
                    .collect(),
                ..TimecodeSetup::default()
            }),
            None,
        )
        .expect("valid");
        let s = 1_000_000_000;
        // From 1.5 s to 4.5 s (the tick before 4.5 s at 4.48 s): cues 2, 3 and 4 passed.
        assert_eq!(
            config.due_after_jump(s + s / 2, 4_480_000_000, 4_500_000_000, None),
            vec![cmd("goto main 4 fade 0")],
            "only the last cue passed, snapped"
        );
        // Cue 4 lies in the new tick's own window: it fires as written.
        assert_eq!(
            config.due_after_jump(s + s / 2, 3_990_000_000, 4 * s, None),
            vec![cmd("goto main 4")]
        );
        // Back to 1.5 s: the window logic re-arms every cue after the new time.
        assert_eq!(
            config.due(Some(s + s / 2), 2 * s, None),
            vec![cmd("goto main 2")],
            "after a backward jump cue 2 fires again"
        );
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
