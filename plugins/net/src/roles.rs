//! Who may do what (issue 15), as one pure check: [`permit`]`(&Caller, &Action)`.
//!
//! Every key has a [`Role`]; the roles are ordered, each allowed what the one below it is:
//!
//! | role | may |
//! | --- | --- |
//! | `viewer` | read: nodes, status, alerts, shows, media status, the OpenAPI document |
//! | `operator` | run the show: cues and playbacks, blackout and grand master, media playback commands, node commands (blackout, intensity, identify, ping) |
//! | `programmer` | edit the show: upload clips to the media library |
//! | `admin` | everything: register and adopt nodes, link as a node, restart nodes, read the audit log |
//!
//! A key can also be limited ([`Limits`]) to universes and to playbacks: it may run only the
//! playbacks it names, only those whose cues drive no universe outside its universes, and
//! send node commands only to nodes whose universes are all its own. Commands that act on the
//! whole rig (blackout, grand master, release all, media layers) need an unlimited key.
//!
//! The REST extractors, the command path shared by `POST /api/command` and the WebSocket
//! control channel, and the media routes all call [`permit`]; nothing else decides.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// What a key may do; each role may do everything the roles below it may.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read only.
    #[default]
    Viewer,
    /// Runs the show: cues, playbacks, media playback, node output commands.
    Operator,
    /// Edits the show: media library uploads (and everything an operator may).
    Programmer,
    /// Everything: nodes, keys, the audit log.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Programmer, Role::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Programmer => "programmer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                format!("no role {s:?}: the roles are viewer, operator, programmer, admin")
            })
    }
}

/// What a key is limited to (empty lists: no limit).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// The universes it may act on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub universes: Vec<u16>,
    /// The playbacks (by name) it may run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub playbacks: Vec<String>,
}

impl Limits {
    /// True when the key may act on the whole rig.
    pub fn is_unlimited(&self) -> bool {
        self.universes.is_empty() && self.playbacks.is_empty()
    }
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.universes.is_empty(), self.playbacks.is_empty()) {
            (true, true) => f.write_str("unlimited"),
            (false, true) => write!(f, "universes {:?}", self.universes),
            (true, false) => write!(f, "playbacks {:?}", self.playbacks),
            (false, false) => write!(
                f,
                "universes {:?}, playbacks {:?}",
                self.universes, self.playbacks
            ),
        }
    }
}

/// Who sent a request: the key's public id and name, its role and limits, and where from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's public id ([`crate::handshake::key_id`]), never the key.
    pub key_id: String,
    /// A name for people (`keys add --name`), or where the key came from.
    pub name: String,
    pub role: Role,
    pub limits: Limits,
    /// The peer's address, when known.
    pub peer: Option<SocketAddr>,
}

/// What a request asks to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action<'a> {
    /// Read state (GET).
    Read,
    /// Read the audit log.
    ReadAudit,
    /// Speak for a node: register, link with a bearer key, report heartbeats and acks.
    ActAsNode,
    /// Adopt a pending node.
    AdoptNode,
    /// Change the show or its media library (`what`: say what, for the reason).
    EditShow { what: &'a str },
    /// Run a playback (GO, back, goto, release, fader); `universes`: those its cues drive.
    Playback {
        what: &'a str,
        playback: &'a str,
        universes: &'a [u16],
    },
    /// A command that acts on every universe or on rig-wide media (blackout, grand master,
    /// release all, media layers).
    RigWide { what: &'a str },
    /// A command for one node's own output (blackout, intensity, identify, ping);
    /// `universes`: the node's.
    NodeCommand {
        what: &'a str,
        node: &'a str,
        universes: &'a [u16],
    },
    /// Restart a node's process.
    RestartNode { node: &'a str },
    /// Call an endpoint that needs at least `role` (its own checks follow, by action).
    Endpoint { role: Role, what: &'a str },
}

impl Action<'_> {
    /// The lowest role allowed to do it.
    pub fn min_role(&self) -> Role {
        match self {
            Action::Read => Role::Viewer,
            Action::Playback { .. } | Action::RigWide { .. } | Action::NodeCommand { .. } => {
                Role::Operator
            }
            Action::EditShow { .. } => Role::Programmer,
            Action::ReadAudit
            | Action::ActAsNode
            | Action::AdoptNode
            | Action::RestartNode { .. } => Role::Admin,
            Action::Endpoint { role, .. } => *role,
        }
    }

    /// What it is, in words (for refusals and the audit log).
    pub fn describe(&self) -> String {
        match self {
            Action::Read => "read".into(),
            Action::ReadAudit => "read the audit log".into(),
            Action::ActAsNode => "act as a node (register, link, heartbeat, ack)".into(),
            Action::AdoptNode => "adopt a node".into(),
            Action::EditShow { what } => format!("edit the show ({what})"),
            Action::Playback { what, playback, .. } => format!("{what} on playback {playback:?}"),
            Action::RigWide { what } => (*what).to_string(),
            Action::NodeCommand { what, node, .. } => format!("{what} on node {node:?}"),
            Action::RestartNode { node } => format!("restart node {node:?}"),
            Action::Endpoint { what, .. } => (*what).to_string(),
        }
    }
}

/// Why a key may not do something: which key, its role, the action and what is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key {key_id} (role {role}) may not {action}: {missing}")]
pub struct Denied {
    pub key_id: String,
    pub role: Role,
    pub action: String,
    pub missing: String,
    /// The role the action needs, when the role is what is missing.
    pub needs_role: Option<Role>,
}

/// Whether `caller` may do `action`: `Err` names the key, its role and what is missing.
pub fn permit(caller: &Caller, action: &Action) -> Result<(), Denied> {
    let deny = |missing: String, needs_role: Option<Role>| Denied {
        key_id: caller.key_id.clone(),
        role: caller.role,
        action: action.describe(),
        missing,
        needs_role,
    };
    let need = action.min_role();
    if caller.role < need {
        return Err(deny(
            format!("the {need} role is needed, this key is {}", caller.role),
            Some(need),
        ));
    }
    let limits = &caller.limits;
    match action {
        Action::Playback {
            playback,
            universes,
            ..
        } => {
            if !limits.playbacks.is_empty() && !limits.playbacks.iter().any(|p| p == playback) {
                return Err(deny(
                    format!(
                        "playback {playback:?} is not among this key's playbacks {:?}",
                        limits.playbacks
                    ),
                    None,
                ));
            }
            let outside = outside(universes, &limits.universes);
            if !outside.is_empty() {
                return Err(deny(
                    format!(
                        "playback {playback:?} drives universes {outside:?} outside this key's universes {:?}",
                        limits.universes
                    ),
                    None,
                ));
            }
            Ok(())
        }
        Action::RigWide { .. } if !limits.is_unlimited() => Err(deny(
            format!("it acts on the whole rig, and this key is limited to {limits}"),
            None,
        )),
        // A node says which universes it outputs: only an unlimited key may speak for one.
        Action::ActAsNode if !limits.is_unlimited() => Err(deny(
            format!("a node link needs an unlimited key, and this key is limited to {limits}"),
            None,
        )),
        Action::NodeCommand {
            node, universes, ..
        } => {
            let outside = outside(universes, &limits.universes);
            if outside.is_empty() {
                Ok(())
            } else {
                Err(deny(
                    format!(
                        "node {node:?} outputs universes {outside:?} outside this key's universes {:?}",
                        limits.universes
                    ),
                    None,
                ))
            }
        }
        _ => Ok(()),
    }
}

/// The universes of `used` not in `allowed` (an empty `allowed`: no limit, none outside).
fn outside(used: &[u16], allowed: &[u16]) -> Vec<u16> {
    if allowed.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<u16> = used
        .iter()
        .copied()
        .filter(|u| !allowed.contains(u))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The universes each playback of `show` drives: those of the fixtures (directly or through
/// a group) that any cue of its cue list sets.
pub fn playback_universes(show: &rockontrol_show::Show) -> BTreeMap<String, Vec<u16>> {
    use rockontrol_show::model::Target;
    let universe_of = |id: u32| show.fixture(id).map(|f| f.universe);
    show.playbacks
        .iter()
        .map(|p| {
            let mut universes = BTreeSet::new();
            let list = show.cue_lists.iter().find(|l| l.name == p.cue_list);
            for cue in list.iter().flat_map(|l| &l.cues) {
                for target in cue.values.keys() {
                    match target {
                        Target::Fixture(id) => universes.extend(universe_of(*id)),
                        Target::Group(name) => {
                            let group = show.groups.iter().find(|g| &g.name == name);
                            for id in group.iter().flat_map(|g| &g.fixtures) {
                                universes.extend(universe_of(*id));
                            }
                        }
                    }
                }
            }
            (p.name.clone(), universes.into_iter().collect())
        })
        .collect()
}

/// The seed's "command filtering based on role" on a receiver: whether a node with
/// `capabilities` can run `command` at all (`Err`: why not, for the ack). Media needs
/// `media_playback`; identify flashes fixtures and needs `dmx_output`; the rest act on any
/// node.
pub fn node_can_run(
    capabilities: &[crate::config::Capability],
    command: &crate::protocol::NodeCommand,
) -> Result<(), String> {
    use crate::config::Capability;
    use crate::protocol::NodeCommand;
    let (needs, what) = match command {
        NodeCommand::Media { .. } => (Capability::MediaPlayback, "a media command"),
        NodeCommand::Identify { .. } => (Capability::DmxOutput, "identify (it flashes fixtures)"),
        _ => return Ok(()),
    };
    if capabilities.contains(&needs) {
        return Ok(());
    }
    let name = |c: &Capability| {
        serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    Err(format!(
        "this node cannot run {what}: it needs the {} capability, and this node has [{}]",
        name(&needs),
        capabilities.iter().map(name).collect::<Vec<_>>().join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_refuses_commands_its_capabilities_cannot_run() {
        use crate::config::Capability::{DmxOutput, MediaPlayback};
        use crate::protocol::{MediaAction, NodeCommand};
        let media = NodeCommand::Media {
            action: MediaAction::Play,
            clip: Some("intro".into()),
            position: None,
        };
        let identify = NodeCommand::Identify { seconds: 1.0 };
        let blackout = NodeCommand::Blackout { on: true };
        assert_eq!(
            node_can_run(&[DmxOutput], &media),
            Err("this node cannot run a media command: it needs the media_playback capability, and this node has [dmx_output]".into())
        );
        assert_eq!(node_can_run(&[DmxOutput, MediaPlayback], &media), Ok(()));
        assert_eq!(
            node_can_run(&[MediaPlayback], &identify),
            Err("this node cannot run identify (it flashes fixtures): it needs the dmx_output capability, and this node has [media_playback]".into())
        );
        assert_eq!(node_can_run(&[DmxOutput], &identify), Ok(()));
        assert_eq!(node_can_run(&[], &blackout), Ok(()), "any node goes dark");
    }

    fn caller(role: Role, universes: &[u16], playbacks: &[&str]) -> Caller {
        Caller {
            key_id: "0123456789abcdef".into(),
            name: "test".into(),
            role,
            limits: Limits {
                universes: universes.to_vec(),
                playbacks: playbacks.iter().map(|p| p.to_string()).collect(),
            },
            peer: None,
        }
    }

    /// Every action against every role: the lowest role allowed, and each role above it.
    #[test]
    fn each_role_may_do_what_the_roles_below_it_may() {
        let cases: Vec<(Action, Role)> = vec![
            (Action::Read, Role::Viewer),
            (
                Action::Playback {
                    what: "go",
                    playback: "main",
                    universes: &[1],
                },
                Role::Operator,
            ),
            (Action::RigWide { what: "blackout" }, Role::Operator),
            (
                Action::NodeCommand {
                    what: "identify",
                    node: "node-01",
                    universes: &[1],
                },
                Role::Operator,
            ),
            (
                Action::EditShow {
                    what: "upload a clip",
                },
                Role::Programmer,
            ),
            (Action::AdoptNode, Role::Admin),
            (Action::ActAsNode, Role::Admin),
            (Action::ReadAudit, Role::Admin),
            (Action::RestartNode { node: "node-01" }, Role::Admin),
        ];
        for (action, lowest) in &cases {
            for role in Role::ALL {
                let got = permit(&caller(role, &[], &[]), action);
                if role >= *lowest {
                    assert_eq!(got, Ok(()), "{role} may {}", action.describe());
                } else {
                    let denied = got.expect_err("denied");
                    assert_eq!(denied.needs_role, Some(*lowest), "{denied}");
                    assert!(
                        denied.to_string().contains(&format!("role {role}"))
                            && denied
                                .missing
                                .contains(&format!("the {lowest} role is needed")),
                        "the reason names the role and what is missing: {denied}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_limited_key_runs_only_its_playbacks_and_universes() {
        let op = caller(Role::Operator, &[1, 2], &["main"]);
        let go = |playback, universes| Action::Playback {
            what: "go",
            playback,
            universes,
        };
        assert_eq!(permit(&op, &go("main", &[1, 2])), Ok(()));
        let e = permit(&op, &go("side", &[1])).expect_err("not its playback");
        assert_eq!(
            e.missing,
            "playback \"side\" is not among this key's playbacks [\"main\"]"
        );
        let e = permit(&op, &go("main", &[2, 3, 3])).expect_err("a universe outside");
        assert_eq!(
            e.missing,
            "playback \"main\" drives universes [3] outside this key's universes [1, 2]"
        );
        let e = permit(&op, &Action::RigWide { what: "blackout" }).expect_err("rig-wide");
        assert!(e.missing.contains("whole rig"), "{e}");
        let node = |universes| Action::NodeCommand {
            what: "blackout",
            node: "node-03",
            universes,
        };
        assert_eq!(permit(&op, &node(&[2])), Ok(()));
        assert!(
            permit(&op, &node(&[2, 3])).is_err(),
            "node-03 also outputs 3"
        );
        // Only a playbacks limit: any node, no rig-wide command.
        let pb = caller(Role::Admin, &[], &["main"]);
        assert_eq!(permit(&pb, &node(&[7])), Ok(()));
        assert!(
            permit(
                &pb,
                &Action::RigWide {
                    what: "grand master"
                }
            )
            .is_err()
        );
        assert!(
            permit(&pb, &Action::ActAsNode).is_err(),
            "a limited admin key cannot speak for a node"
        );
        assert_eq!(permit(&pb, &Action::AdoptNode), Ok(()));
    }

    #[test]
    fn playbacks_drive_the_universes_of_their_fixtures_and_groups() {
        use rockontrol_show::model::Target;
        let mut show =
            rockontrol_show::parse_show(include_str!("../../../shows/demo.ron"), "demo.ron")
                .expect("the demo show");
        // A list whose cues name fixtures directly (the demo's main sets spots 202 and 203).
        let mut direct = show.cue_lists[0].clone();
        direct.name = "direct".into();
        for cue in &mut direct.cues {
            cue.values.retain(|t, _| matches!(t, Target::Fixture(_)));
        }
        show.cue_lists.push(direct);
        show.playbacks.push(rockontrol_show::Playback {
            name: "direct".into(),
            cue_list: "direct".into(),
            master: 1.0,
            release_time: 0.0,
        });
        let map = playback_universes(&show);
        assert_eq!(map["main"], vec![1, 2], "pars and spots, through groups");
        assert_eq!(map["chase"], vec![1], "odd and even pars");
        assert_eq!(map["direct"], vec![2], "spots 202 and 203, by id");
    }
}
