//! The control protocol: versioned JSON text frames on the WebSocket, and the REST bodies.
//!
//! Every frame is one JSON object `{"v": 1, "type": "...", ...}`. [`decode_to_master`] and
//! [`decode_to_receiver`] check size and version before they parse, and never panic on any
//! input. The protocol hash is computed from the serde shape of every registered type (the
//! messages here, the engine's state and commands, and whatever other plugins register; see
//! `rockontrol_replicate`): two builds that disagree on it refuse each other at hello time
//! with a reason.

use std::collections::BTreeMap;

use rockontrol_engine::{Command, PlaybackState};
use rockontrol_replicate::{DuplicatePart, PartError, Parts, ReplicationRules};
use rockontrol_show::CueNumber;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Capability, Role};

/// Protocol version carried in every frame's `v`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame either side accepts, in bytes (a show travels over HTTP, not here).
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// The crate version, sent in hello/welcome.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The registered part of node commands ([`NodeCommand`]).
pub const NODE_COMMAND_PART: &str = "net.node_command";
/// The replicated part of per-node overrides ([`NodeOverrides`]), owned by the master.
pub const OVERRIDES_PART: &str = "net.node_overrides";
/// The registered message type master → receiver.
pub const TO_RECEIVER_PART: &str = "net.to_receiver";
/// The registered message type receiver → master.
pub const TO_MASTER_PART: &str = "net.to_master";

/// Every node's [`NodeOverride`] that is not neutral, by node id.
pub type NodeOverrides = BTreeMap<String, NodeOverride>;

/// What net registers for its link: the messages and node commands. The node overrides part,
/// whose handlers need the plugin's resources, is registered by [`crate::plugin`]
/// ([`register_overrides`] without handlers).
pub fn register_replication(rules: &mut ReplicationRules) -> Result<(), DuplicatePart> {
    rules
        .add_message::<ToReceiver>(TO_RECEIVER_PART)?
        .add_message::<ToMaster>(TO_MASTER_PART)?
        .add_command::<NodeCommand>(NODE_COMMAND_PART)?;
    Ok(())
}

/// Registers the node overrides part with handlers that do nothing (for the shape alone).
pub fn register_overrides(rules: &mut ReplicationRules) -> Result<(), DuplicatePart> {
    rules.add_state::<NodeOverrides, _, _>(
        OVERRIDES_PART,
        |_| NodeOverrides::new(),
        |_, _| Ok(()),
    )?;
    Ok(())
}

/// The rules every node role (`run`, `master`, `receiver`) has: the engine's parts, net's
/// messages, the node overrides part, clock sync's message, the tempo part (every role runs
/// timecode) and media's part and command (every role runs the media plugin), without
/// handlers. An app's own rules (the [`ReplicationRules`] resource) are these plus whatever
/// other plugins register; an app without the media plugin lacks media's.
pub fn base_rules() -> ReplicationRules {
    let mut rules = ReplicationRules::default();
    let registered = rockontrol_engine::register_replication(&mut rules)
        .and_then(|()| register_replication(&mut rules))
        .and_then(|()| register_overrides(&mut rules))
        .and_then(|()| rockontrol_clock::register_replication(&mut rules))
        .and_then(|()| rockontrol_timecode::register_replication(&mut rules))
        .and_then(|()| rockontrol_media::command::register_shapes(&mut rules));
    if let Err(e) = registered {
        // The names are constants that do not clash (a test builds these rules).
        tracing::error!("{e}");
    }
    rules
}

/// The protocol hash of [`base_rules`]: 16 hex digits of the SHA-256 of their serde shape.
/// A running node uses its app's own rules' hash ([`ReplicationRules::protocol_hash`]), which
/// equals this one when no other plugin registers parts.
pub fn protocol_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| base_rules().protocol_hash()).clone()
}

/// Hex SHA-256 of a show's canonical RON text: the show's identity in replication.
pub fn show_hash(canonical_ron: &str) -> String {
    hex(&Sha256::digest(canonical_ron.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A command aimed at one node (`POST /api/nodes/{node_id}/command`, and the WebSocket
/// `command` message). The seed's `{"type": "cue", "cue_id": 1.5, "fade_time": 3.0}` is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum NodeCommand {
    /// Go to a cue (of `playback`, default the show's first playback).
    Cue {
        #[schemars(with = "f64")]
        cue_id: CueNumber,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fade_time: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        playback: Option<String>,
    },
    /// Next cue.
    Go {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        playback: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fade_time: Option<f64>,
    },
    /// Previous cue.
    Back {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        playback: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fade_time: Option<f64>,
    },
    /// Release one playback.
    Release { playback: String },
    /// Release every playback.
    Clear,
    /// Blackout on (default) or off.
    Blackout {
        #[serde(default = "yes")]
        on: bool,
    },
    /// Output intensity 0..=1 (the node's grand master).
    Intensity { level: f64 },
    /// Grand master 0..=1.
    GrandMaster { level: f64 },
    /// Media playback control (handled by the media plugin once it exists).
    Media {
        action: MediaAction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clip: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        position: Option<f64>,
    },
    /// Flash every fixture of the node's universes at 2 Hz for `seconds` (default
    /// [`IDENTIFY_SECONDS`]), on top of the show, then hand the output back as it was.
    Identify {
        #[serde(default = "identify_seconds")]
        seconds: f64,
    },
    /// Restart the node's process: same arguments, same node id and executed-command log; it
    /// comes back online by itself. (Braced so that unknown fields are refused, which serde
    /// does not do for a unit variant of a tagged enum.)
    Restart {},
    /// Do nothing but acknowledge: a connection probe (the node view's latency graph) that
    /// changes nothing on stage. Braced like `restart`.
    Ping {},
}

fn yes() -> bool {
    true
}

/// How long an identify flashes when the command does not say.
pub const IDENTIFY_SECONDS: f64 = 5.0;

/// The longest identify a node accepts, in seconds.
pub const MAX_IDENTIFY_SECONDS: f64 = 60.0;

fn identify_seconds() -> f64 {
    IDENTIFY_SECONDS
}

/// What a media command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MediaAction {
    Play,
    Pause,
    Stop,
    Seek,
}

/// Why a [`NodeCommand`] cannot become an engine command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandMapError {
    #[error("the show has no playback to address (name one with \"playback\")")]
    NoPlayback,
    #[error("{0} must be within 0..=1")]
    Level(&'static str),
    #[error("fade_time {0}")]
    Fade(String),
    #[error("media position {0}")]
    Position(String),
    #[error(
        "media playback is rig-wide replicated state, not one node's: send {{\"type\": \"media\", \"action\", \"layer\", …}} to the master with POST {SHOW_COMMAND_PATH}"
    )]
    NoMedia,
    #[error(
        "identify seconds must be a finite number within 0 < seconds <= {MAX_IDENTIFY_SECONDS}"
    )]
    IdentifySeconds,
    #[error("{0} is an action of a receiver node, not a show command")]
    NodeAction(&'static str),
    #[error(
        "{0} is a show command: playbacks are rig-wide state that the master owns and replicates to every node, so one node cannot run it on its own; send it to the master with POST {SHOW_COMMAND_PATH}"
    )]
    ShowCommandForOneNode(&'static str),
}

/// Where show commands go (the master's engine applies them and replicates them).
pub const SHOW_COMMAND_PATH: &str = "/api/command";

impl NodeCommand {
    /// The name of a show command (`cue`, `go`, `back`, `release`, `clear`): one that changes
    /// the playbacks, which are the master's and every node's, not one node's own output.
    pub fn show_command(&self) -> Option<&'static str> {
        match self {
            NodeCommand::Cue { .. } => Some("cue"),
            NodeCommand::Go { .. } => Some("go"),
            NodeCommand::Back { .. } => Some("back"),
            NodeCommand::Release { .. } => Some("release"),
            NodeCommand::Clear => Some("clear"),
            _ => None,
        }
    }

    /// Refuses a show command aimed at one receiver: applied there only, it would be undone by
    /// the next snapshot (see [`CommandMapError::ShowCommandForOneNode`]).
    pub fn check_for_one_node(&self) -> Result<(), CommandMapError> {
        match self.show_command() {
            Some(name) => Err(CommandMapError::ShowCommandForOneNode(name)),
            None => Ok(()),
        }
    }

    /// Checks what can be checked without a show (the master does before it queues a command).
    /// Every number is range-checked here, where it enters from REST or the WebSocket.
    pub fn check(&self) -> Result<(), CommandMapError> {
        match self {
            NodeCommand::Identify { seconds } => identify_duration(*seconds).map(|_| ()),
            NodeCommand::Media {
                position: Some(p), ..
            } => match rockontrol_show::validate::time_problem(*p) {
                Some(problem) => Err(CommandMapError::Position(problem)),
                None => Ok(()),
            },
            // The engine command carries the numbers: check them there (a missing playback
            // is no range problem).
            _ => match self.to_engine(Some("")) {
                Ok(_)
                | Err(
                    CommandMapError::NoPlayback
                    | CommandMapError::NoMedia
                    | CommandMapError::NodeAction(_),
                ) => Ok(()),
                Err(e) => Err(e),
            },
        }
    }

    /// The engine command, with `first_playback` standing in where none is named.
    pub fn to_engine(&self, first_playback: Option<&str>) -> Result<Command, CommandMapError> {
        let pb = |p: &Option<String>| {
            p.clone()
                .or_else(|| first_playback.map(str::to_string))
                .ok_or(CommandMapError::NoPlayback)
        };
        let fade = |f: &Option<f64>| match f.and_then(rockontrol_show::validate::time_problem) {
            Some(problem) => Err(CommandMapError::Fade(problem)),
            None => Ok(*f),
        };
        let level = |l: f64, what| {
            if (0.0..=1.0).contains(&l) {
                Ok(l)
            } else {
                Err(CommandMapError::Level(what))
            }
        };
        Ok(match self {
            NodeCommand::Cue {
                cue_id,
                fade_time,
                playback,
            } => Command::Goto {
                playback: pb(playback)?,
                cue: *cue_id,
                fade: fade(fade_time)?,
            },
            NodeCommand::Go {
                playback,
                fade_time,
            } => Command::Go {
                playback: pb(playback)?,
                fade: fade(fade_time)?,
            },
            NodeCommand::Back {
                playback,
                fade_time,
            } => Command::Back {
                playback: pb(playback)?,
                fade: fade(fade_time)?,
            },
            NodeCommand::Release { playback } => Command::Release {
                playback: playback.clone(),
            },
            NodeCommand::Clear => Command::ReleaseAll,
            NodeCommand::Blackout { on } => Command::Blackout { on: *on },
            NodeCommand::Intensity { level: l } => Command::GrandMaster {
                level: level(*l, "intensity")?,
            },
            NodeCommand::GrandMaster { level: l } => Command::GrandMaster {
                level: level(*l, "grand master")?,
            },
            NodeCommand::Media { .. } => return Err(CommandMapError::NoMedia),
            NodeCommand::Identify { .. } => return Err(CommandMapError::NodeAction("identify")),
            NodeCommand::Restart {} => return Err(CommandMapError::NodeAction("restart")),
            NodeCommand::Ping {} => return Err(CommandMapError::NodeAction("ping")),
        })
    }
}

/// An identify's length, if `seconds` is one a node accepts.
pub fn identify_duration(seconds: f64) -> Result<std::time::Duration, CommandMapError> {
    if seconds.is_finite() && seconds > 0.0 && seconds <= MAX_IDENTIFY_SECONDS {
        Ok(std::time::Duration::from_secs_f64(seconds))
    } else {
        Err(CommandMapError::IdentifySeconds)
    }
}

/// The `reason` of an [`AckStatus::Executed`] for an id the node executed before (a re-send):
/// only a master that sent the id before may count it as executed.
pub const ALREADY_EXECUTED: &str = "already executed";

/// Outcome of a command on a node (`POST /api/master/ack` and the `ack` message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AckStatus {
    /// Done (also the answer to a command id seen before: nothing is applied twice).
    Executed,
    /// The node could not do it; the master retries.
    Failed,
}

/// Node health metrics (the seed's heartbeat `metrics`, plus counters).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Metrics {
    #[serde(default)]
    pub dmx_fps: f64,
    #[serde(default)]
    pub cpu_usage: f64,
    #[serde(default)]
    pub memory_mb: f64,
    /// DMX frames sent since start.
    #[serde(default)]
    pub frames_out: u64,
    /// Latest replication sequence applied.
    #[serde(default)]
    pub seq: u64,
    /// The node's show tick.
    #[serde(default)]
    pub tick: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub show_hash: Option<String>,
    /// The receiver's clock sync: offset, drift, uncertainty, min RTT (none without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<rockontrol_clock::ClockStatus>,
    /// Media readiness, per clip of the node's manifest (nodes with the media capability).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<rockontrol_library::MediaReport>,
    /// The node's timecode: label, rate, chase lock state and error, beat (issue 12). Boxed:
    /// it would make every heartbeat message several times larger in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timecode: Option<Box<rockontrol_timecode::TimecodeStatus>>,
    /// Media playback: per layer clip, frame, late/missed, decoder, armed; per output the
    /// refresh period and phase (nodes that play media).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Boxed, as `timecode`: it would make every heartbeat message larger in memory.
    pub playback: Option<Box<rockontrol_media::PlaybackReport>>,
    /// How the receiver trusts its master: the certificate fingerprint it pins and whether by
    /// its config or on first use, or plaintext (`insecure`), for the master's node view.
    /// Boxed: every heartbeat message stays as small in memory as it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<Box<str>>,
}

/// A receiver's first message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Hello {
    pub node_id: String,
    pub role: Role,
    pub version: String,
    pub protocol: u32,
    pub protocol_hash: String,
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    #[serde(default)]
    pub universes: Vec<u16>,
    /// A keyed receiver's half of the handshake ([`crate::handshake`]); none: keyless (pending
    /// adoption), or a tool that sent `Authorization: Bearer` on the WebSocket upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<HelloAuth>,
}

/// What a keyed receiver's hello carries instead of its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HelloAuth {
    /// [`crate::handshake::key_id`] of the receiver's key (names it, does not reveal it).
    pub key_id: String,
    /// The receiver's fresh nonce, hex.
    pub nonce: String,
}

/// The master's answer to an accepted hello.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Welcome {
    pub master_id: String,
    pub version: String,
    pub protocol_hash: String,
    /// Universes this node outputs (from `managed_nodes`, else what it asked for).
    pub assigned_universes: Vec<u16>,
    pub show_hash: Option<String>,
    pub heartbeat_ms: u64,
    pub reconnect_ms: u64,
}

/// The whole replicated state at `tick`; deltas with `seq` + 1 onwards follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Snapshot {
    pub seq: u64,
    /// The master's next show tick when the snapshot was taken.
    pub tick: u64,
    pub rate: u32,
    /// Show content hash (fetch `GET /api/show/{hash}` if it is not the one loaded).
    pub show_hash: Option<String>,
    /// Every registered state part, by its registered name: the engine's playback state
    /// ([`rockontrol_engine::PLAYBACK_PART`], `null` while the master has no compiled show),
    /// the node overrides ([`OVERRIDES_PART`]) and whatever other plugins register. A receiver
    /// applies each through the handler registered for it.
    pub parts: Parts,
}

impl Snapshot {
    /// A snapshot of the engine's `state` and the node `overrides` (the parts net knows by
    /// type), plus the `extra` parts of other plugins.
    pub fn new(
        seq: u64,
        tick: u64,
        rate: u32,
        show_hash: Option<String>,
        state: Option<&PlaybackState>,
        overrides: &NodeOverrides,
        extra: &Parts,
    ) -> Self {
        let mut parts = extra.clone();
        // Serializing these cannot fail (string keys, no custom errors; NaN lanes are null).
        parts.insert(
            rockontrol_engine::PLAYBACK_PART.into(),
            serde_json::to_value(state).unwrap_or(serde_json::Value::Null),
        );
        parts.insert(
            OVERRIDES_PART.into(),
            serde_json::to_value(overrides).unwrap_or_default(),
        );
        Snapshot {
            seq,
            tick,
            rate,
            show_hash,
            parts,
        }
    }

    /// The engine's playback state it carries (`None`: the master has no compiled show).
    pub fn state(&self) -> Result<Option<PlaybackState>, PartError> {
        decode_part::<Option<PlaybackState>>(&self.parts, rockontrol_engine::PLAYBACK_PART)
            .map(Option::flatten)
    }

    /// The node overrides it carries.
    pub fn overrides(&self) -> Result<NodeOverrides, PartError> {
        decode_part(&self.parts, OVERRIDES_PART).map(Option::unwrap_or_default)
    }
}

fn decode_part<T: serde::de::DeserializeOwned>(
    parts: &Parts,
    name: &str,
) -> Result<Option<T>, PartError> {
    parts
        .get(name)
        .map(|v| {
            T::deserialize(v).map_err(|e| PartError::Decode {
                name: name.into(),
                type_name: std::any::type_name::<T>(),
                reason: e.to_string(),
            })
        })
        .transpose()
}

/// A node's own output, set by node commands and owned by the master: replicated in every
/// snapshot (by node id) so no reconnect, receiver restart or master restart loses it. The
/// receiver applies its own entry when it renders, on top of the shared playback state (which
/// it never edits for a node command), so its frames equal the master's but for this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NodeOverride {
    /// The node's output is dark (intensity channels at 0).
    #[serde(default)]
    pub blackout: bool,
    /// The node's own grand master, 0..=1, on top of the show's.
    #[serde(default = "full")]
    pub intensity: f64,
}

fn full() -> f64 {
    1.0
}

impl Default for NodeOverride {
    fn default() -> Self {
        NodeOverride {
            blackout: false,
            intensity: 1.0,
        }
    }
}

impl NodeOverride {
    /// True when it changes nothing.
    pub fn is_neutral(&self) -> bool {
        *self == NodeOverride::default()
    }

    /// Applies a node command that sets the node's own output (`blackout`, `intensity`,
    /// `grand_master`): `None` for every other command, else what it now is.
    pub fn apply(&mut self, command: &NodeCommand) -> Option<Result<String, CommandMapError>> {
        let level = |l: f64, what| {
            if (0.0..=1.0).contains(&l) {
                Ok(l)
            } else {
                Err(CommandMapError::Level(what))
            }
        };
        let result = match command {
            NodeCommand::Blackout { on } => {
                self.blackout = *on;
                Ok(format!("node blackout {}", if *on { "on" } else { "off" }))
            }
            NodeCommand::Intensity { level: l } => level(*l, "intensity").map(|l| {
                self.intensity = l;
                format!("node intensity {:.0}%", l * 100.0)
            }),
            NodeCommand::GrandMaster { level: l } => level(*l, "grand master").map(|l| {
                self.intensity = l;
                format!("node grand master {:.0}%", l * 100.0)
            }),
            _ => return None,
        };
        Some(result)
    }

    /// The grand master of the node's intensity channels with the show's `state`.
    pub fn output_level(&self, state: &PlaybackState) -> f32 {
        if self.blackout || state.blackout {
            0.0
        } else {
            (state.grand_master.clamp(0.0, 1.0) * self.intensity.clamp(0.0, 1.0)) as f32
        }
    }
}

/// One change of the replicated state: `command` applied at `tick`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Delta {
    pub seq: u64,
    pub tick: u64,
    pub command: Command,
}

/// Master → receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToReceiver {
    /// The master's half of the handshake: its nonce and its proof that it holds the key the
    /// hello named ([`crate::handshake`]). The receiver answers with [`ToMaster::Proof`].
    Challenge {
        master_id: String,
        nonce: String,
        proof: String,
    },
    Welcome(Welcome),
    /// The connection is refused; it will be closed.
    Refused {
        reason: String,
    },
    /// A frame was not understood (the connection stays up).
    Error {
        reason: String,
    },
    Snapshot(Snapshot),
    Delta(Delta),
    Command {
        command_id: String,
        attempt: u32,
        command: NodeCommand,
    },
    /// Show clock, 1 Hz.
    Sync {
        tick: u64,
        rate: u32,
        timecode: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bpm: Option<f64>,
    },
    /// The master's answer to a [`ToMaster::ClockPing`] (clock sync's WebSocket fallback,
    /// [`rockontrol_clock::websocket`]).
    ClockPong(rockontrol_clock::WsClockPacket),
}

/// Receiver → master.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToMaster {
    Hello(Hello),
    /// The receiver's proof that it holds the key, after it checked the master's challenge.
    Proof {
        proof: String,
    },
    Heartbeat {
        status: String,
        /// Boxed: the media report makes it the largest message by far.
        metrics: Box<Metrics>,
    },
    Ack {
        command_id: String,
        status: AckStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A sequence gap (or a show change) was seen: send a snapshot.
    SnapshotRequest {
        reason: String,
    },
    /// A clock ping over the link, where the master's clock port does not answer on UDP
    /// (answered at once with a [`ToReceiver::ClockPong`]).
    ClockPing(rockontrol_clock::WsClockPacket),
}

#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    v: u32,
    #[serde(flatten)]
    msg: &'a T,
}

#[derive(Deserialize)]
struct VersionProbe {
    v: Option<u32>,
}

/// A frame that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is larger than the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("frame is not JSON: {0}")]
    NotJson(String),
    #[error("frame has no protocol version `v`")]
    NoVersion,
    #[error("protocol version {0} is not supported (this build speaks {PROTOCOL_VERSION})")]
    Version(u32),
    #[error("unknown or malformed message: {0}")]
    Message(String),
    #[error("binary frames are not part of the protocol")]
    Binary,
}

/// Encodes a message as a text frame.
pub fn encode<T: Serialize>(msg: &T) -> String {
    // Serializing these types cannot fail: no maps with non-string keys, no custom errors.
    serde_json::to_string(&EnvelopeOut {
        v: PROTOCOL_VERSION,
        msg,
    })
    .unwrap_or_else(|e| format!("{{\"v\":1,\"type\":\"error\",\"reason\":\"encode: {e}\"}}"))
}

fn decode<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, FrameError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(text.len()));
    }
    let probe: VersionProbe =
        serde_json::from_str(text).map_err(|e| FrameError::NotJson(e.to_string()))?;
    match probe.v {
        None => return Err(FrameError::NoVersion),
        Some(PROTOCOL_VERSION) => {}
        Some(v) => return Err(FrameError::Version(v)),
    }
    serde_json::from_str(text).map_err(|e| FrameError::Message(e.to_string()))
}

/// Parses a frame a receiver sent.
pub fn decode_to_master(text: &str) -> Result<ToMaster, FrameError> {
    decode(text)
}

/// Parses a frame the master sent.
pub fn decode_to_receiver(text: &str) -> Result<ToReceiver, FrameError> {
    decode(text)
}

/// `hh:mm:ss:ff` at 25 fps for a show tick.
pub fn timecode(tick: u64, rate: u32) -> String {
    let rate = u64::from(rate.max(1));
    let total_frames = tick * 25 / rate;
    let ff = total_frames % 25;
    let secs = total_frames / 25;
    format!(
        "{:02}:{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        ff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_command_shape_is_a_node_command() {
        let cmd: NodeCommand =
            serde_json::from_str(r#"{"type": "cue", "cue_id": 1.5, "fade_time": 3.0}"#)
                .expect("seed command");
        assert_eq!(
            cmd.to_engine(Some("main")).expect("maps"),
            Command::Goto {
                playback: "main".into(),
                cue: CueNumber(1500),
                fade: Some(3.0)
            }
        );
        let e = serde_json::from_str::<NodeCommand>(r#"{"type": "cue", "cue": 1}"#)
            .expect_err("unknown field");
        assert!(e.to_string().contains("unknown field `cue`"), "{e}");
        let e = NodeCommand::Intensity { level: 1.5 }
            .to_engine(None)
            .expect_err("out of range");
        assert_eq!(e, CommandMapError::Level("intensity"));
        assert_eq!(
            NodeCommand::Go {
                playback: None,
                fade_time: None
            }
            .to_engine(None),
            Err(CommandMapError::NoPlayback)
        );
    }

    #[test]
    fn identify_and_restart_are_node_actions() {
        let cmd: NodeCommand =
            serde_json::from_str(r#"{"type": "identify", "seconds": 5}"#).expect("identify");
        assert_eq!(cmd, NodeCommand::Identify { seconds: 5.0 });
        assert_eq!(cmd.check(), Ok(()));
        let cmd: NodeCommand = serde_json::from_str(r#"{"type": "identify"}"#).expect("default");
        assert_eq!(
            cmd,
            NodeCommand::Identify {
                seconds: IDENTIFY_SECONDS
            },
            "seconds default to {IDENTIFY_SECONDS}"
        );
        for bad in [
            0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            MAX_IDENTIFY_SECONDS + 1.0,
        ] {
            assert_eq!(
                NodeCommand::Identify { seconds: bad }.check(),
                Err(CommandMapError::IdentifySeconds),
                "{bad} seconds must be refused"
            );
        }
        let cmd: NodeCommand = serde_json::from_str(r#"{"type": "restart"}"#).expect("restart");
        assert_eq!(cmd, NodeCommand::Restart {});
        assert_eq!(
            serde_json::to_string(&cmd).expect("encodes"),
            r#"{"type":"restart"}"#
        );
        let e = serde_json::from_str::<NodeCommand>(r#"{"type": "restart", "now": true}"#)
            .expect_err("unknown field");
        assert!(e.to_string().contains("unknown field `now`"), "{e}");
        assert_eq!(
            NodeCommand::Restart {}.to_engine(Some("main")),
            Err(CommandMapError::NodeAction("restart")),
            "not a show command"
        );
        assert_eq!(
            NodeCommand::Identify { seconds: 1.0 }.to_engine(Some("main")),
            Err(CommandMapError::NodeAction("identify"))
        );
    }

    #[test]
    fn frames_round_trip_with_their_version() {
        let msgs = [
            ToMaster::Hello(Hello {
                node_id: "node-01".into(),
                role: Role::Receiver,
                version: VERSION.into(),
                protocol: PROTOCOL_VERSION,
                protocol_hash: protocol_hash(),
                capabilities: vec![Capability::DmxOutput],
                universes: vec![1, 2],
                auth: Some(HelloAuth {
                    key_id: "0011223344556677".into(),
                    nonce: "ab".repeat(32),
                }),
            }),
            ToMaster::Proof {
                proof: "cd".repeat(32),
            },
            ToMaster::Ack {
                command_id: "cmd-12345".into(),
                status: AckStatus::Executed,
                reason: None,
            },
            ToMaster::SnapshotRequest {
                reason: "gap".into(),
            },
        ];
        for msg in msgs {
            let text = encode(&msg);
            assert!(text.starts_with("{\"v\":1,\"type\":"), "{text}");
            assert_eq!(decode_to_master(&text), Ok(msg));
        }
        let delta = ToReceiver::Delta(Delta {
            seq: 7,
            tick: 440,
            command: Command::Go {
                playback: "main".into(),
                fade: None,
            },
        });
        let text = encode(&delta);
        assert_eq!(
            text,
            r#"{"v":1,"type":"delta","seq":7,"tick":440,"command":{"type":"go","playback":"main"}}"#
        );
        assert_eq!(decode_to_receiver(&text), Ok(delta));
    }

    #[test]
    fn snapshots_carry_unset_lanes_as_null() {
        // Lanes a cue does not touch are NaN in the engine; JSON has no NaN.
        let run = rockontrol_engine::PlaybackRun {
            cue: Some(0),
            master: 1.0,
            last_action: 1,
            go_tick: 220,
            follow_at: None,
            release_at: None,
            from: vec![0.0, f32::NAN],
            to: vec![1.0, f32::NAN],
            timing: vec![0, 0],
            timings: vec![],
            ..Default::default()
        };
        let state = PlaybackState {
            effects: Vec::new(),
            grand_master: 1.0,
            blackout: false,
            action_seq: 1,
            playbacks: vec![run],
        };
        let snapshot = ToReceiver::Snapshot(Snapshot::new(
            3,
            221,
            44,
            None,
            Some(&state),
            &NodeOverrides::new(),
            &Parts::new(),
        ));
        let text = encode(&snapshot);
        assert!(
            text.contains(r#""from":[0.0,null]"#) && text.contains(r#""to":[1.0,null]"#),
            "{text}"
        );
        let Ok(ToReceiver::Snapshot(back)) = decode_to_receiver(&text) else {
            panic!("the snapshot decodes: {text}");
        };
        let state = back.state().expect("decodes").expect("a state");
        let run = &state.playbacks[0];
        assert_eq!((run.from[0], run.to[0]), (0.0, 1.0));
        assert!(
            run.from[1].is_nan() && run.to[1].is_nan(),
            "unset stays unset"
        );
        assert_eq!(encode(&ToReceiver::Snapshot(back.clone())), text);
    }

    #[test]
    fn garbage_frames_are_errors_never_panics() {
        assert!(matches!(
            decode_to_master("hello"),
            Err(FrameError::NotJson(_))
        ));
        assert_eq!(decode_to_master("{}"), Err(FrameError::NoVersion));
        assert_eq!(
            decode_to_master(r#"{"v":2,"type":"hello"}"#),
            Err(FrameError::Version(2))
        );
        assert!(matches!(
            decode_to_master(r#"{"v":1,"type":"launch"}"#),
            Err(FrameError::Message(_))
        ));
        let huge = format!("{{\"v\":1,\"pad\":\"{}\"}}", "x".repeat(MAX_FRAME_BYTES));
        assert!(matches!(
            decode_to_master(&huge),
            Err(FrameError::TooLarge(_))
        ));
        for text in ["", "[", "{\"v\":", "\u{0}", "{\"v\":1}", "null", "[1,2]"] {
            assert!(
                decode_to_receiver(text).is_err(),
                "{text:?} must be refused"
            );
        }
    }

    #[test]
    fn timecode_counts_25_frames_a_second() {
        assert_eq!(timecode(44 * 61 + 22, 44), "00:01:01:12");
    }

    #[test]
    fn the_base_rules_register_the_engines_parts_and_nets() {
        let rules = base_rules();
        assert_eq!(
            rules.names(rockontrol_replicate::PartKind::State),
            vec![
                rockontrol_engine::PLAYBACK_PART,
                rockontrol_media::MEDIA_PART,
                OVERRIDES_PART,
                rockontrol_timecode::TEMPO_PART
            ],
            "{rules:?}"
        );
        assert_eq!(
            rules.names(rockontrol_replicate::PartKind::Command),
            vec![
                rockontrol_engine::COMMAND_PART,
                rockontrol_media::command::MEDIA_COMMAND_PART,
                NODE_COMMAND_PART
            ]
        );
        assert_eq!(protocol_hash(), rules.protocol_hash());
        assert_eq!(protocol_hash().len(), 16);
    }

    #[test]
    fn a_snapshot_missing_or_mangling_a_part_is_an_error_naming_it() {
        let snapshot = Snapshot {
            seq: 1,
            tick: 2,
            rate: 44,
            show_hash: None,
            parts: Parts::from([(
                rockontrol_engine::PLAYBACK_PART.to_string(),
                serde_json::json!({"grand_master": "full"}),
            )]),
        };
        let e = snapshot.state().expect_err("not a state");
        assert!(e.to_string().contains("engine.playback"), "{e}");
        assert_eq!(
            snapshot.overrides(),
            Ok(NodeOverrides::new()),
            "no overrides part: none"
        );
    }

    #[test]
    fn node_overrides_take_node_output_commands_only() {
        let mut o = NodeOverride::default();
        assert!(o.is_neutral());
        assert!(
            o.apply(&NodeCommand::Clear).is_none(),
            "not a node output command"
        );
        assert!(matches!(
            o.apply(&NodeCommand::Blackout { on: true }),
            Some(Ok(_))
        ));
        assert!(matches!(
            o.apply(&NodeCommand::Intensity { level: 0.5 }),
            Some(Ok(_))
        ));
        assert_eq!(
            o.apply(&NodeCommand::GrandMaster { level: 2.0 }),
            Some(Err(CommandMapError::Level("grand master"))),
            "out of range is refused and changes nothing"
        );
        assert_eq!(
            o,
            NodeOverride {
                blackout: true,
                intensity: 0.5
            }
        );
        let state = PlaybackState {
            effects: Vec::new(),
            grand_master: 0.8,
            blackout: false,
            action_seq: 0,
            playbacks: vec![],
        };
        assert_eq!(o.output_level(&state), 0.0, "the node is blacked out");
        o.apply(&NodeCommand::Blackout { on: false });
        assert!((o.output_level(&state) - 0.4).abs() < 1e-6, "0.8 × 0.5");
        let dark = PlaybackState {
            effects: Vec::new(),
            blackout: true,
            ..state
        };
        assert_eq!(
            o.output_level(&dark),
            0.0,
            "the show's blackout still counts"
        );
        // On the wire: a snapshot carries them by node id; an old snapshot has none.
        let snapshot = Snapshot::new(
            1,
            2,
            44,
            None,
            None,
            &NodeOverrides::from([("node-01".to_string(), o.clone())]),
            &Parts::new(),
        );
        let text = encode(&ToReceiver::Snapshot(snapshot.clone()));
        assert!(
            text.contains(
                r#""parts":{"engine.playback":null,"net.node_overrides":{"node-01":{"blackout":false,"intensity":0.5}}}"#
            ),
            "{text}"
        );
        assert_eq!(
            decode_to_receiver(&text),
            Ok(ToReceiver::Snapshot(snapshot))
        );
    }
}
