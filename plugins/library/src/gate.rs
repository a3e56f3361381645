//! Which node plays which clip, from the show's media part, and the GO gate (no I/O).
//!
//! A clip is played by the node of the output its layer sits on: a layer's own `clip`, and
//! every clip a cue's `Play` puts on it. [`clips_of_node`] feeds a node's manifest;
//! [`cue_needs`] says which (node, clip) pairs a cue starts, and [`gate`] checks them against
//! the nodes' readiness reports: what is not ready is refused or warned about, as the show's
//! `media.gate` says.

use std::collections::BTreeSet;

use rockontrol_show::{Clip, CueNumber, MediaAction, MediaGate, MediaSetup};
use serde::{Deserialize, Serialize};

use crate::id::ClipId;
use crate::readiness::{ClipState, MediaReport};

/// The node that shows `layer` (through its output), if both exist.
fn node_of_layer<'a>(media: &'a MediaSetup, layer: &str) -> Option<&'a str> {
    let layer = media.layer(layer)?;
    media.output(&layer.output).map(|o| o.node.as_str())
}

/// The clip names `node` plays: `None` when the show places no media output on any node
/// (then the capability rule decides, see [`crate::NodePlays::from_capability`]).
pub fn clips_of_node(media: &MediaSetup, node: &str) -> Option<BTreeSet<String>> {
    if media.outputs.is_empty() {
        return None;
    }
    let mut names = BTreeSet::new();
    for layer in &media.layers {
        if let Some(clip) = &layer.clip
            && node_of_layer(media, &layer.name) == Some(node)
        {
            names.insert(clip.clone());
        }
    }
    for cue in &media.cues {
        for action in &cue.actions {
            if let MediaAction::Play { layer, clip, .. } = action
                && node_of_layer(media, layer) == Some(node)
            {
                names.insert(clip.clone());
            }
        }
    }
    Some(names)
}

/// The clips of the show's table that no layer and no cue places on an output: operators
/// play them by command (`POST /api/command {"type": "media", …}`) on any layer, so every node
/// that shows an output holds them.
pub fn clips_for_commands(media: &MediaSetup, clips: &[Clip]) -> BTreeSet<String> {
    let placed = |name: &str| {
        media.layers.iter().any(|l| l.clip.as_deref() == Some(name))
            || media.cues.iter().any(|c| {
                c.actions
                    .iter()
                    .any(|a| matches!(a, MediaAction::Play { clip, .. } if clip == name))
            })
    };
    clips
        .iter()
        .filter(|c| !placed(&c.name))
        .map(|c| c.name.clone())
        .collect()
}

/// A clip a media command plays on a layer (from the replicated media log): `(layer, clip)`.
pub type Commanded = (String, String);

/// The one rule of which clips `node` needs, for its manifest: the clips the show places on
/// its outputs' layers ([`clips_of_node`]: a layer's own clip, a cue's `Play`), every clip a
/// media command in the replicated log plays on one of its layers (`commanded`: a command may
/// put any clip on any layer, also one the show places only on other nodes), and, when it
/// shows an output, the clips nothing places ([`clips_for_commands`]: staged ahead, so a
/// command with them plays without waiting for a download). `None`: the show places no
/// output on any node (the capability rule decides).
pub fn clips_needed(
    media: &MediaSetup,
    clips: &[Clip],
    commanded: &[Commanded],
    node: &str,
) -> Option<BTreeSet<String>> {
    let mut names = clips_of_node(media, node)?;
    if media.outputs.iter().any(|o| o.node == node) {
        names.extend(clips_for_commands(media, clips));
    }
    for (layer, clip) in commanded {
        if node_of_layer(media, layer) == Some(node) {
            names.insert(clip.clone());
        }
    }
    Some(names)
}

/// One clip one node must have ready for a cue.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Need {
    pub node: String,
    pub clip: String,
}

/// The (node, clip) pairs cue `cue` of `cue_list` starts (its `Play` actions), sorted, once each.
pub fn cue_needs(media: &MediaSetup, cue_list: &str, cue: CueNumber) -> Vec<Need> {
    let mut needs = BTreeSet::new();
    for c in media
        .cues
        .iter()
        .filter(|c| c.cue_list == cue_list && c.cue == cue)
    {
        for action in &c.actions {
            if let MediaAction::Play { layer, clip, .. } = action
                && let Some(node) = node_of_layer(media, layer)
            {
                needs.insert(Need {
                    node: node.to_string(),
                    clip: clip.clone(),
                });
            }
        }
    }
    needs.into_iter().collect()
}

/// A clip a node lacks for a cue, with where it stands there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NotReady {
    pub node: String,
    pub clip: String,
    /// `missing`, `downloading 42%`, `verified`, `failed`, `not reported` (no heartbeat with
    /// media yet), `not in the library` (the show names no id for it, or a bad one).
    pub state: String,
}

/// What the gate decided for one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every clip the cue starts is ready where it must play (or it starts none).
    Go,
    /// Run it, and say what is not ready.
    Warn(Vec<NotReady>),
    /// Do not run it: these are not ready.
    Refuse(Vec<NotReady>),
}

/// Checks `needs` against each node's readiness (`report_of(node)`: `None` when the node sent
/// no media report). `clips` is the show's clip table (name → id).
pub fn gate<'a>(
    mode: MediaGate,
    needs: &[Need],
    clips: &[Clip],
    report_of: impl Fn(&str) -> Option<&'a MediaReport>,
) -> Verdict {
    let mut missing = Vec::new();
    for need in needs {
        let id = clips
            .iter()
            .find(|c| c.name == need.clip)
            .and_then(|c| c.id.parse::<ClipId>().ok());
        let state = match id {
            None => Some("not in the library".to_string()),
            Some(id) => match report_of(&need.node) {
                None => Some("not reported".to_string()),
                Some(report) => match report.state(&id) {
                    Some(s) if s.is_ready() => None,
                    Some(s) => Some(s.label()),
                    None => Some(ClipState::Missing.label()),
                },
            },
        };
        if let Some(state) = state {
            missing.push(NotReady {
                node: need.node.clone(),
                clip: need.clip.clone(),
                state,
            });
        }
    }
    match (missing.is_empty(), mode) {
        (true, _) => Verdict::Go,
        (false, MediaGate::Warn) => Verdict::Warn(missing),
        (false, MediaGate::Refuse) => Verdict::Refuse(missing),
    }
}

/// One line for logs and error messages: `media-2: b (downloading 40%), c (missing)`.
pub fn describe(not_ready: &[NotReady]) -> String {
    let mut nodes: Vec<&str> = not_ready.iter().map(|n| n.node.as_str()).collect();
    nodes.dedup();
    nodes
        .iter()
        .map(|node| {
            let clips: Vec<String> = not_ready
                .iter()
                .filter(|n| n.node == *node)
                .map(|n| format!("{} ({})", n.clip, n.state))
                .collect();
            format!("{node}: {}", clips.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::ClipReport;

    fn setup(gate: MediaGate) -> MediaSetup {
        let show: rockontrol_show::MediaSetup = ron::from_str(
            r#"(
                outputs: [
                    (name: "w1", node: "media-1", width: 64, height: 36, rate: "25"),
                    (name: "w2", node: "media-2", width: 64, height: 36, rate: "25"),
                ],
                layers: [
                    (name: "l1", output: "w1", clip: Some("bg")),
                    (name: "l2", output: "w2"),
                ],
                cues: [
                    (cue_list: "main", cue: 1, actions: [Play(layer: "l1", clip: "a")]),
                    (cue_list: "main", cue: 2, actions: [Play(layer: "l2", clip: "b"), Play(layer: "l1", clip: "a"), Stop(layer: "l1")]),
                ],
            )"#,
        )
        .expect("media setup");
        MediaSetup { gate, ..show }
    }

    fn clip(name: &str) -> Clip {
        Clip {
            name: name.into(),
            id: ClipId::of(name.as_bytes()).to_string(),
        }
    }

    fn report(clips: &[(&str, ClipState)]) -> MediaReport {
        MediaReport {
            serves: None,
            clips: clips
                .iter()
                .map(|(n, s)| ClipReport {
                    id: ClipId::of(n.as_bytes()),
                    name: (*n).into(),
                    size: 10,
                    state: s.clone(),
                })
                .collect(),
            ..MediaReport::default()
        }
    }

    #[test]
    fn a_node_plays_the_clips_of_the_layers_on_its_outputs() {
        let media = setup(MediaGate::Refuse);
        let names = |n| clips_of_node(&media, n).expect("outputs exist");
        assert_eq!(names("media-1"), ["a".to_string(), "bg".to_string()].into());
        assert_eq!(names("media-2"), ["b".to_string()].into());
        assert!(names("dmx-1").is_empty(), "no output, no clips");
        assert_eq!(
            clips_of_node(&MediaSetup::default(), "x"),
            None,
            "no outputs at all: the capability rule decides"
        );
    }

    #[test]
    fn clips_no_layer_or_cue_places_go_to_every_node_with_an_output() {
        let media = setup(MediaGate::Refuse);
        let clip = |name: &str| Clip {
            name: name.into(),
            id: "0".repeat(64),
        };
        let table = [clip("a"), clip("b"), clip("spare")];
        assert_eq!(
            clips_for_commands(&media, &table),
            ["spare".to_string()].into()
        );
        let names = |n| clips_needed(&media, &table, &[], n).expect("outputs exist");
        assert!(names("media-1").contains("spare"));
        assert!(names("media-2").contains("spare") && names("media-2").contains("b"));
        assert!(names("dmx-1").is_empty(), "no output, no clips");
    }

    /// A command that plays a clip on a layer adds it to that layer's node only.
    #[test]
    fn a_commanded_clip_is_needed_by_the_node_of_its_layer() {
        let media = setup(MediaGate::Refuse);
        let table = [clip("a"), clip("b"), clip("c")];
        let (on1, on2) = (
            clips_needed(&media, &table, &[], "media-1").expect("outputs"),
            clips_needed(&media, &table, &[], "media-2").expect("outputs"),
        );
        let commanded = [("l1".to_string(), "b".to_string())];
        let with = clips_needed(&media, &table, &commanded, "media-1").expect("outputs");
        assert!(
            !on1.contains("b") && on2.contains("b"),
            "the show places b on media-2 only: {on1:?} {on2:?}"
        );
        assert!(
            with.contains("b"),
            "the command puts b on media-1's layer: {with:?}"
        );
        assert_eq!(
            clips_needed(&media, &table, &commanded, "media-2"),
            Some(on2),
            "media-2 is not commanded"
        );
        assert_eq!(
            clips_needed(&media, &table, &[("nope".into(), "b".into())], "media-1"),
            Some(on1),
            "a layer the show does not have places nothing"
        );
    }

    #[test]
    fn a_cue_needs_the_clips_it_plays_on_the_nodes_that_show_them() {
        let media = setup(MediaGate::Refuse);
        let need = |node: &str, clip: &str| Need {
            node: node.into(),
            clip: clip.into(),
        };
        assert_eq!(
            cue_needs(&media, "main", CueNumber(2000)),
            [need("media-1", "a"), need("media-2", "b")]
        );
        assert_eq!(
            cue_needs(&media, "main", CueNumber(1000)),
            [need("media-1", "a")]
        );
        assert!(cue_needs(&media, "other", CueNumber(1000)).is_empty());
        assert!(cue_needs(&media, "main", CueNumber(3000)).is_empty());
    }

    fn lookup<'a>(reports: &'a [(&str, MediaReport)]) -> impl Fn(&str) -> Option<&'a MediaReport> {
        move |node| reports.iter().find(|(n, _)| *n == node).map(|(_, r)| r)
    }

    #[test]
    fn the_gate_refuses_or_warns_naming_node_clip_and_state_then_lets_go() {
        let clips = [clip("a"), clip("b")];
        let needs = cue_needs(&setup(MediaGate::Refuse), "main", CueNumber(2000));
        let with_b = |state: ClipState| {
            [
                ("media-1", report(&[("a", ClipState::Ready)])),
                ("media-2", report(&[("b", state)])),
            ]
        };
        let busy = with_b(ClipState::Downloading {
            bytes: 4,
            total: 10,
        });
        let expected = vec![NotReady {
            node: "media-2".into(),
            clip: "b".into(),
            state: "downloading 40%".into(),
        }];
        assert_eq!(
            gate(MediaGate::Refuse, &needs, &clips, lookup(&busy)),
            Verdict::Refuse(expected.clone())
        );
        assert_eq!(
            gate(MediaGate::Warn, &needs, &clips, lookup(&busy)),
            Verdict::Warn(expected.clone())
        );
        assert_eq!(describe(&expected), "media-2: b (downloading 40%)");
        let verified = with_b(ClipState::Verified);
        assert!(
            matches!(gate(MediaGate::Refuse, &needs, &clips, lookup(&verified)),
                Verdict::Refuse(v) if v[0].state == "verified"),
            "verified is not ready: the clip is not opened yet"
        );
        let ready = with_b(ClipState::Ready);
        assert_eq!(
            gate(MediaGate::Refuse, &needs, &clips, lookup(&ready)),
            Verdict::Go
        );

        // A node with no report, and a clip with no id in the show.
        let silent = gate(MediaGate::Refuse, &needs, &[clip("a")], |_| None);
        assert_eq!(
            silent,
            Verdict::Refuse(vec![
                NotReady {
                    node: "media-1".into(),
                    clip: "a".into(),
                    state: "not reported".into()
                },
                NotReady {
                    node: "media-2".into(),
                    clip: "b".into(),
                    state: "not in the library".into()
                },
            ])
        );
    }
}
