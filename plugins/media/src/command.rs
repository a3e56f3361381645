//! Media commands (play, pause, stop, seek per layer) and the replicated media log.
//!
//! A command is replicated playback state, not a node-local action: the master records it in
//! its [`MediaLog`] at a show time, and the log travels in every snapshot (part
//! [`MEDIA_PART`]). Each node then derives what a layer shows from the log and its own show
//! clock ([`crate::MediaTimeline`]), so a node that joins late or reconnects shows
//! `⌊(t − t_start)·fps⌋`, not frame 0.
//!
//! REST: `POST /api/command` with `{"type": "media", "action": "play", "layer": "bg",
//! "clip": "intro"}` (and `pause`, `stop`, `seek` with `position`). `at` (show time in
//! seconds) schedules it; without `at` it takes effect one pre-roll (default 150 ms) after the
//! master received it, so every node can seek and fill its decoder first ("armed").
//!
//! Pure: validation and the log's types; no I/O.

use rockontrol_show::{CueNumber, MediaSetup};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::timeline::CueFired;
use crate::timing::seconds_to_ns;

/// The replicated part that carries the [`MediaLog`].
pub const MEDIA_PART: &str = "media.playback";
/// The registered command type ([`MediaCommand`]).
pub const MEDIA_COMMAND_PART: &str = "media.command";
/// The `type` of a media command in a REST body.
pub const MEDIA_COMMAND_TYPE: &str = "media";

/// The longest show time a command may name (24 h, as for every time in the show).
const MAX_SECONDS: f64 = 86_400.0;
/// The fastest rate a command may set.
const MAX_RATE: f64 = 100.0;

/// A media command on one layer (`"action"` says which).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum MediaCommand {
    /// Play `clip` on `layer` from `position` seconds into it (default 0); without `clip`,
    /// resume the paused clip where it was.
    Play {
        layer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clip: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        position: Option<f64>,
        /// Speed (1.0: the clip's own rate; default the layer's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate: Option<f64>,
        /// Show time, seconds (default: now plus the pre-roll).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<f64>,
    },
    /// Hold the frame the layer shows at `at`.
    Pause {
        layer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<f64>,
    },
    /// Empty the layer.
    Stop {
        layer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<f64>,
    },
    /// Jump to `position` seconds into the clip (paused stays paused).
    Seek {
        layer: String,
        position: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<f64>,
    },
}

impl MediaCommand {
    /// The layer it addresses.
    pub fn layer(&self) -> &str {
        match self {
            MediaCommand::Play { layer, .. }
            | MediaCommand::Pause { layer, .. }
            | MediaCommand::Stop { layer, .. }
            | MediaCommand::Seek { layer, .. } => layer,
        }
    }

    /// The show time it names, seconds.
    pub fn at(&self) -> Option<f64> {
        match self {
            MediaCommand::Play { at, .. }
            | MediaCommand::Pause { at, .. }
            | MediaCommand::Stop { at, .. }
            | MediaCommand::Seek { at, .. } => *at,
        }
    }

    /// The action's name, for logs and status.
    pub fn action(&self) -> &'static str {
        match self {
            MediaCommand::Play { .. } => "play",
            MediaCommand::Pause { .. } => "pause",
            MediaCommand::Stop { .. } => "stop",
            MediaCommand::Seek { .. } => "seek",
        }
    }

    /// Checks the command against the show's media `setup` and clip names (`clips`; empty:
    /// any name, as with `render --clip`). Every error names the field and what to do.
    pub fn check(&self, setup: &MediaSetup, clips: &[String]) -> Result<(), String> {
        let time = |what: &str, v: f64| {
            if v.is_finite() && (0.0..=MAX_SECONDS).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "{what} {v} must be a number of seconds within 0..={MAX_SECONDS}"
                ))
            }
        };
        if setup.layer(self.layer()).is_none() {
            let known: Vec<&str> = setup.layers.iter().map(|l| l.name.as_str()).collect();
            return Err(format!(
                "no media layer {:?} in the show (layers: {})",
                self.layer(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        if let Some(at) = self.at() {
            time("at", at)?;
        }
        match self {
            MediaCommand::Play {
                clip,
                position,
                rate,
                ..
            } => {
                if let Some(c) = clip
                    && !clips.is_empty()
                    && !clips.contains(c)
                {
                    return Err(format!(
                        "no clip {c:?} in the show's clips ({}); add it with `rockontrol media add` and name it in the show",
                        clips.join(", ")
                    ));
                }
                if let Some(p) = position {
                    time("position", *p)?;
                }
                if let Some(r) = rate
                    && !(r.is_finite() && *r > 0.0 && *r <= MAX_RATE)
                {
                    return Err(format!("rate {r} must be within 0 < rate <= {MAX_RATE}"));
                }
                Ok(())
            }
            MediaCommand::Seek { position, .. } => time("position", *position),
            MediaCommand::Pause { .. } | MediaCommand::Stop { .. } => Ok(()),
        }
    }
}

/// One entry of the media log: a cue GO or a media command, at its show time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LogEntry {
    /// A cue with media actions went.
    Cue {
        at_ns: u64,
        cue_list: String,
        #[schemars(with = "f64")]
        cue: CueNumber,
        delay_ns: u64,
        fade_ns: u64,
    },
    /// A media command, effective at `at_ns`.
    Command { at_ns: u64, command: MediaCommand },
}

impl LogEntry {
    /// When it takes effect (a cue's delay added).
    pub fn begin_ns(&self) -> u64 {
        match self {
            LogEntry::Cue {
                at_ns, delay_ns, ..
            } => at_ns.saturating_add(*delay_ns),
            LogEntry::Command { at_ns, .. } => *at_ns,
        }
    }

    /// The cue GO it records, if it is one.
    pub fn cue(&self) -> Option<CueFired> {
        match self {
            LogEntry::Cue {
                at_ns,
                cue_list,
                cue,
                delay_ns,
                fade_ns,
            } => Some(CueFired {
                at_ns: *at_ns,
                cue_list: cue_list.clone(),
                cue: *cue,
                delay_ns: *delay_ns,
                fade_ns: *fade_ns,
            }),
            LogEntry::Command { .. } => None,
        }
    }
}

impl From<CueFired> for LogEntry {
    fn from(c: CueFired) -> Self {
        LogEntry::Cue {
            at_ns: c.at_ns,
            cue_list: c.cue_list,
            cue: c.cue,
            delay_ns: c.delay_ns,
            fade_ns: c.fade_ns,
        }
    }
}

/// The media playback state the master owns and replicates: every cue GO with media actions
/// and every media command, in show-time order. A node's layers are a function of this log,
/// the show and its show clock.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MediaLog {
    pub entries: Vec<LogEntry>,
}

impl MediaLog {
    /// Every `(layer, clip)` a media command in the log plays: what the clip-need rule
    /// (`rockontrol_library::gate::clips_needed`) adds to the manifest of the layer's node.
    pub fn commanded(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = self
            .entries
            .iter()
            .filter_map(|e| match e {
                LogEntry::Command {
                    command:
                        MediaCommand::Play {
                            layer,
                            clip: Some(clip),
                            ..
                        },
                    ..
                } => Some((layer.clone(), clip.clone())),
                _ => None,
            })
            .collect();
        pairs.sort();
        pairs.dedup();
        pairs
    }
}

/// Registers the media part and command for their shape only (no handlers): what net's base
/// protocol rules (and their golden) include, since every node role runs the media plugin,
/// which registers the same types with handlers.
pub fn register_shapes(
    rules: &mut rockontrol_replicate::ReplicationRules,
) -> Result<(), rockontrol_replicate::DuplicatePart> {
    rules
        .add_state::<MediaLog, _, _>(MEDIA_PART, |_| MediaLog::default(), |_, _| Ok(()))?
        .add_command::<MediaCommand>(MEDIA_COMMAND_PART)?;
    Ok(())
}

/// Where a command without `at` takes effect: `now_ns` plus the pre-roll.
pub fn effective_at(command: &MediaCommand, now_ns: u64, preroll_ns: u64) -> u64 {
    match command.at() {
        Some(at) => seconds_to_ns(at),
        None => now_ns.saturating_add(preroll_ns),
    }
}

#[cfg(test)]
mod tests {
    use rockontrol_show::MediaLayer;

    use super::*;

    fn setup() -> MediaSetup {
        MediaSetup {
            layers: vec![MediaLayer::new("bg", "wall")],
            ..MediaSetup::default()
        }
    }

    #[test]
    fn the_rest_body_shape_parses_and_bad_fields_are_named() {
        let c: MediaCommand = serde_json::from_value(serde_json::json!({
            "action": "play", "layer": "bg", "clip": "count", "at": 2.5
        }))
        .expect("play");
        assert_eq!(c.at(), Some(2.5));
        assert_eq!(c.check(&setup(), &["count".into()]), Ok(()));
        let e = serde_json::from_value::<MediaCommand>(serde_json::json!({
            "action": "seek", "layer": "bg"
        }))
        .expect_err("seek needs a position");
        assert!(e.to_string().contains("position"), "{e}");
        let e = serde_json::from_value::<MediaCommand>(serde_json::json!({
            "action": "pause", "layer": "bg", "clip": "x"
        }))
        .expect_err("unknown field");
        assert!(e.to_string().contains("unknown field `clip`"), "{e}");
    }

    #[test]
    fn check_names_the_layer_clip_and_numbers() {
        let play = |clip: &str, position: f64| MediaCommand::Play {
            layer: "bg".into(),
            clip: Some(clip.into()),
            position: Some(position),
            rate: None,
            at: None,
        };
        let clips = ["count".to_string()];
        let e = MediaCommand::Stop {
            layer: "fg".into(),
            at: None,
        }
        .check(&setup(), &clips)
        .expect_err("no layer");
        assert!(
            e.contains("no media layer \"fg\"") && e.contains("bg"),
            "{e}"
        );
        let e = play("intro", 0.0)
            .check(&setup(), &clips)
            .expect_err("no clip");
        assert!(e.contains("no clip \"intro\""), "{e}");
        let e = play("count", f64::NAN)
            .check(&setup(), &clips)
            .expect_err("NaN");
        assert!(e.contains("position NaN"), "{e}");
        assert_eq!(play("anything", 1.0).check(&setup(), &[]), Ok(()));
        let seek = MediaCommand::Seek {
            layer: "bg".into(),
            position: 1.0,
            at: Some(-1.0),
        };
        assert!(seek.check(&setup(), &clips).is_err());
    }

    #[test]
    fn without_at_a_command_waits_one_preroll() {
        let stop = MediaCommand::Stop {
            layer: "bg".into(),
            at: None,
        };
        assert_eq!(effective_at(&stop, 1_000, 150), 1_150);
        let at = MediaCommand::Stop {
            layer: "bg".into(),
            at: Some(2.0),
        };
        assert_eq!(effective_at(&at, 1_000, 150), 2_000_000_000);
    }
}
