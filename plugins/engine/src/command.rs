//! Playback commands: what operators, the terminal, the network and `--at` scripts send.

use std::fmt;
use std::str::FromStr;

use rockontrol_show::CueNumber;
use serde::{Deserialize, Serialize};

/// One playback action. Applied at a tick boundary; the tick is the action's show time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Next cue (the first, if the playback is off).
    Go {
        playback: String,
        /// Override the cue's fade times, in seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fade: Option<f64>,
    },
    /// Previous cue.
    Back {
        playback: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fade: Option<f64>,
    },
    /// Jump to a cue by number.
    Goto {
        playback: String,
        /// On the wire: the number as consoles write it (`1.5`).
        #[schemars(with = "f64")]
        cue: CueNumber,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fade: Option<f64>,
    },
    /// Fade the playback out and switch it off.
    Release { playback: String },
    /// Release every playback.
    ReleaseAll,
    /// All intensity to zero at once (on), or back (off).
    Blackout { on: bool },
    /// Grand master level 0..=1.
    GrandMaster { level: f64 },
    /// A playback's fader level 0..=1.
    Master { playback: String, level: f64 },
    /// Start (`on`) or stop one of the show's effects.
    Effect { name: String, on: bool },
}

/// A number in a command outside what the engine accepts (it is refused, never clamped into
/// something the operator did not ask for).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{what} {problem}")]
pub struct OutOfRange {
    /// The field: `fade`, `grand master level`, `master level`.
    pub what: &'static str,
    pub problem: String,
}

impl Command {
    /// Checks every number against its range: fades are times
    /// ([`rockontrol_show::validate::time_problem`]), levels lie in `0.0..=1.0`.
    pub fn check(&self) -> Result<(), OutOfRange> {
        use rockontrol_show::validate::{level_problem, time_problem};
        let (what, problem) = match self {
            Command::Go { fade, .. } | Command::Back { fade, .. } | Command::Goto { fade, .. } => {
                ("fade", fade.and_then(time_problem))
            }
            Command::GrandMaster { level } => ("grand master level", level_problem(*level)),
            Command::Master { level, .. } => ("master level", level_problem(*level)),
            Command::Release { .. }
            | Command::ReleaseAll
            | Command::Blackout { .. }
            | Command::Effect { .. } => ("", None),
        };
        match problem {
            Some(problem) => Err(OutOfRange { what, problem }),
            None => Ok(()),
        }
    }

    /// The playback this command addresses, if any.
    pub fn playback(&self) -> Option<&str> {
        match self {
            Command::Go { playback, .. }
            | Command::Back { playback, .. }
            | Command::Goto { playback, .. }
            | Command::Release { playback }
            | Command::Master { playback, .. } => Some(playback),
            Command::ReleaseAll
            | Command::Blackout { .. }
            | Command::GrandMaster { .. }
            | Command::Effect { .. } => None,
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let fade = |fade: &Option<f64>| fade.map(|t| format!(" fade {t}")).unwrap_or_default();
        match self {
            Command::Go { playback, fade: t } => write!(f, "go {playback}{}", fade(t)),
            Command::Back { playback, fade: t } => write!(f, "back {playback}{}", fade(t)),
            Command::Goto {
                playback,
                cue,
                fade: t,
            } => write!(f, "goto {playback} {cue}{}", fade(t)),
            Command::Release { playback } => write!(f, "release {playback}"),
            Command::ReleaseAll => write!(f, "release"),
            Command::Blackout { on } => write!(f, "blackout {}", if *on { "on" } else { "off" }),
            Command::GrandMaster { level } => write!(f, "gm {level}"),
            Command::Master { playback, level } => write!(f, "master {playback} {level}"),
            Command::Effect { name, on } => {
                write!(f, "effect {name} {}", if *on { "on" } else { "off" })
            }
        }
    }
}

/// A command line that does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "cannot read command {text:?}: {reason}. Commands: go PB, back PB, goto PB CUE, release [PB], blackout [on|off], gm LEVEL, master PB LEVEL, effect NAME on|off (each go/back/goto may end with `fade SECS`)"
)]
pub struct CommandParseError {
    pub text: String,
    pub reason: String,
}

fn level(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{text:?} is not a level"))?;
    let v = if text.ends_with('%') { v / 100.0 } else { v };
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("level {text} is outside 0..=1 (or 0%..=100%)"))
    }
}

impl FromStr for Command {
    type Err = CommandParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| CommandParseError {
            text: text.to_string(),
            reason,
        };
        let mut words: Vec<&str> = text.split_whitespace().collect();
        // Optional trailing `fade SECS` on cue commands.
        let mut fade = None;
        if words.len() >= 2 && words[words.len() - 2].eq_ignore_ascii_case("fade") {
            let secs: f64 = words[words.len() - 1]
                .trim_end_matches('s')
                .parse()
                .map_err(|_| err("fade needs seconds".into()))?;
            if let Some(problem) = rockontrol_show::validate::time_problem(secs) {
                return Err(err(format!("fade {problem}")));
            }
            fade = Some(secs);
            words.truncate(words.len() - 2);
        }
        let verb = words
            .first()
            .map(|w| w.to_ascii_lowercase())
            .unwrap_or_default();
        let args = &words[words.len().min(1)..];
        let no_fade = |cmd: Command| {
            if fade.is_some() {
                Err(err(format!("`fade` does not apply to {verb}")))
            } else {
                Ok(cmd)
            }
        };
        match (verb.as_str(), args) {
            ("go", [pb]) => Ok(Command::Go {
                playback: pb.to_string(),
                fade,
            }),
            ("back", [pb]) => Ok(Command::Back {
                playback: pb.to_string(),
                fade,
            }),
            ("goto", [pb, cue]) => Ok(Command::Goto {
                playback: pb.to_string(),
                cue: CueNumber::parse(cue)
                    .ok_or_else(|| err(format!("{cue:?} is not a cue number")))?,
                fade,
            }),
            ("release", []) => no_fade(Command::ReleaseAll),
            ("release", [pb]) => no_fade(Command::Release {
                playback: pb.to_string(),
            }),
            ("blackout", []) | ("blackout", ["on"]) => no_fade(Command::Blackout { on: true }),
            ("blackout", ["off"]) => no_fade(Command::Blackout { on: false }),
            ("gm", [v]) | ("grandmaster", [v]) => no_fade(Command::GrandMaster {
                level: level(v).map_err(err)?,
            }),
            ("master", [pb, v]) => no_fade(Command::Master {
                playback: pb.to_string(),
                level: level(v).map_err(err)?,
            }),
            ("effect", [name, "on" | "start"]) => no_fade(Command::Effect {
                name: name.to_string(),
                on: true,
            }),
            ("effect", [name, "off" | "stop"]) => no_fade(Command::Effect {
                name: name.to_string(),
                on: false,
            }),
            ("", _) => Err(err("empty command".into())),
            (verb, _) => Err(err(format!(
                "unknown command or wrong arguments for `{verb}`"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command_and_prints_it_back() {
        for text in [
            "go main",
            "back main",
            "goto main 3.5",
            "goto main 2 fade 1.5",
            "go fx fade 0",
            "release main",
            "release",
            "blackout on",
            "blackout off",
            "gm 0.5",
            "master chase 0.25",
        ] {
            let cmd: Command = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(cmd.to_string(), text, "display of {cmd:?}");
        }
        assert_eq!(
            "gm 50%".parse::<Command>(),
            Ok(Command::GrandMaster { level: 0.5 })
        );
        assert_eq!(
            "blackout".parse::<Command>(),
            Ok(Command::Blackout { on: true })
        );
    }

    #[test]
    fn numbers_out_of_range_are_refused_by_name() {
        let cases = [
            (
                Command::Go {
                    playback: "main".into(),
                    fade: Some(1e300),
                },
                "fade",
            ),
            (
                Command::Goto {
                    playback: "main".into(),
                    cue: CueNumber(1000),
                    fade: Some(f64::NAN),
                },
                "fade",
            ),
            (
                Command::Back {
                    playback: "main".into(),
                    fade: Some(-0.5),
                },
                "fade",
            ),
            (
                Command::GrandMaster { level: f64::NAN },
                "grand master level",
            ),
            (
                Command::Master {
                    playback: "main".into(),
                    level: 1.5,
                },
                "master level",
            ),
        ];
        for (command, what) in cases {
            let e = command.check().expect_err("out of range");
            assert_eq!(e.what, what, "{command:?}: {e}");
        }
        for fine in [
            Command::Go {
                playback: "main".into(),
                fade: Some(86_400.0),
            },
            Command::GrandMaster { level: 0.0 },
            Command::Blackout { on: true },
        ] {
            assert_eq!(fine.check(), Ok(()), "{fine:?} is in range");
        }
    }

    #[test]
    fn bad_commands_say_what_is_wrong() {
        let e = "goto main x".parse::<Command>().expect_err("x is no cue");
        assert!(e.to_string().contains("\"x\" is not a cue number"), "{e}");
        let e = "gm 2".parse::<Command>().expect_err("2 > 1");
        assert!(e.to_string().contains("outside 0..=1"), "{e}");
        let e = "jump main".parse::<Command>().expect_err("unknown");
        assert!(e.to_string().contains("unknown command"), "{e}");
        let e = "go main fade 1e300"
            .parse::<Command>()
            .expect_err("past 24 h");
        assert!(e.to_string().contains("longer than"), "{e}");
        let e = "go main fade -1".parse::<Command>().expect_err("negative");
        assert!(e.to_string().contains("not a time"), "{e}");
        let e = "release main fade 2"
            .parse::<Command>()
            .expect_err("no fade on release");
        assert!(e.to_string().contains("does not apply"), "{e}");
    }
}
