//! Node configuration files: the seed's JSON shapes, accepted verbatim, and the same in RON.
//!
//! Every field the seed shows is accepted exactly as written there; the extra fields a real
//! deployment needs (`api_key`, `on_master_loss`, …) are optional. Unknown keys and bad values
//! are errors that name the file, the place and what was expected.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The largest sACN universe number.
pub const MAX_UNIVERSE: u16 = 63999;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "String", into = "String")]
pub enum Role {
    Master,
    Receiver,
}

/// What a managed node is for (the seed's `managed_nodes[].role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum NodeRole {
    DmxOutput,
    MediaServer,
}

/// What a node can do (the seed's `capabilities`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Capability {
    DmxOutput,
    MediaPlayback,
}

/// What a receiver does with its output when the master goes silent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum MasterLoss {
    /// Keep running the replicated state: fades finish, the last look holds.
    #[default]
    Hold,
    /// Black out until the master is back.
    Blackout,
}

macro_rules! string_enum {
    ($ty:ident, $what:literal, $($variant:ident = $text:literal),+) => {
        impl TryFrom<String> for $ty {
            type Error = String;
            fn try_from(text: String) -> Result<Self, String> {
                match text.as_str() {
                    $($text => Ok($ty::$variant),)+
                    _ => Err(format!(
                        concat!("unknown ", $what, " {:?}; expected one of: {}"),
                        text,
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.as_str().to_string()
            }
        }
        impl $ty {
            /// The configuration-file spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text,)+
                }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        // Its wire shape is one of these strings: a new spelling changes the protocol hash.
        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }
            fn json_schema(
                _: &mut schemars::SchemaGenerator,
            ) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "enum": [$($text),+]
                })
            }
        }
    };
}

string_enum!(Role, "role", Master = "master", Receiver = "receiver");
string_enum!(
    NodeRole,
    "node role",
    DmxOutput = "dmx_output",
    MediaServer = "media_server"
);
string_enum!(
    Capability,
    "capability",
    DmxOutput = "dmx_output",
    MediaPlayback = "media_playback"
);
string_enum!(
    MasterLoss,
    "on_master_loss",
    Hold = "hold",
    Blackout = "blackout"
);

fn yes() -> bool {
    true
}
fn default_master_port() -> u16 {
    9000
}

/// A master node's configuration (the seed's "Master Node Setup").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterConfig {
    pub role: Role,
    pub node_id: String,
    /// REST and WebSocket port (0: any free port, reported at start).
    pub listen_port: u16,
    /// Advertise this master over mDNS.
    #[serde(default = "yes")]
    pub broadcast_enabled: bool,
    #[serde(default)]
    pub managed_nodes: Vec<ManagedNode>,
    /// Control key; `$ROCKONTROL_API_KEY` overrides it. Neither: one is generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Keys that may only read (GET).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_only_keys: Vec<String>,
    /// Address to listen on (default: every interface).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<IpAddr>,
    /// Where the generated key and adoptions are kept (default: `$ROCKONTROL_STATE_DIR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Open connections (REST and WebSocket) at most (default 512); an eighth of them is
    /// kept for peers at known node addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Cap on the master's clip serving to all receivers together, Mbit/s (default: none):
    /// keeps the master's port free for the control link (peers then carry the fan-out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_serve_mbit: Option<f64>,
    /// Real-time priority (SCHED_FIFO 1..=99) of the DMX output thread, so frames leave on
    /// time on a busy machine. Needs `CAP_SYS_NICE` (or root); without it a warning is logged
    /// and the thread runs at normal priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dmx_output_priority: Option<u8>,
    /// Media pre-roll, milliseconds (default 150; `--media-preroll-ms` overrides it): a media
    /// command without `at` and the media of an operator's cue GO start this long after the
    /// master got them, so every node can seek and fill its decoders first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_preroll_ms: Option<u64>,
    /// Plaintext REST, WebSocket and media (no TLS): closed lab networks only; warned about
    /// at every start.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// The TLS certificate (PEM) to serve with; default: a self-signed one generated into
    /// the state directory. Needs `tls_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM) of `tls_cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

/// A receiver the master drives (`managed_nodes[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagedNode {
    pub node_id: String,
    /// Where the node is expected (informational: receivers connect to the master).
    pub ip: IpAddr,
    /// Show universes this node outputs: its routing and its permissions.
    pub universe_map: Vec<u16>,
    pub role: NodeRole,
}

/// A receiver node's configuration (the seed's "Receiver Node Setup").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    pub role: Role,
    pub node_id: String,
    /// The master's address; may be absent with `auto_discover`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_ip: Option<IpAddr>,
    #[serde(default = "default_master_port")]
    pub master_port: u16,
    /// The master's `node_id`: over mDNS only that master is used, and a master that proves
    /// itself under another id is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_id: Option<String>,
    #[serde(default)]
    pub local_universes: Vec<u16>,
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Find the master over mDNS (used when `master_ip` is absent or unreachable).
    #[serde(default)]
    pub auto_discover: bool,
    /// Key for the master; `$ROCKONTROL_API_KEY` overrides it. Without one the node waits to
    /// be adopted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default)]
    pub on_master_loss: MasterLoss,
    /// Send every sACN output of this node's universes unicast to this `host:port` instead of
    /// the destinations the show names (a bench, a test, a visualiser on this machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dmx_destination: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Media clips downloaded at once (default 2; nodes with `media_playback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_downloads: Option<usize>,
    /// Bandwidth cap for media downloads, Mbit/s (default 300; 0: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_bandwidth_mbit: Option<f64>,
    /// Serve this node's ready clips to its peers at this `ip:port` (peer-assisted
    /// distribution; port 0: any free one). The IP is what peers connect to, so give the
    /// node's address on the show network, not 0.0.0.0. Absent: the node does not serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_serve: Option<std::net::SocketAddr>,
    /// Cap on that serving to peers, Mbit/s (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_serve_mbit: Option<f64>,
    /// How far ahead this node opens and fills the decoders of clips about to start,
    /// milliseconds (default 150; `--media-preroll-ms` overrides it). Keep it at least the
    /// master's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_preroll_ms: Option<u64>,
    /// Advertise this receiver over mDNS.
    #[serde(default = "yes")]
    pub broadcast_enabled: bool,
    /// Timecode this receiver sends from the replicated show clock, at the show's rate and
    /// start label: `["ArtNet", {"Mtc": "/dev/snd/midiC1D0"}, {"Ltc": "ltc.wav"}]` (the show's
    /// own `timecode.out` is the master's). Chasing stays with the master.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timecode_out: Vec<rockontrol_show::TimecodeLink>,
    /// Real-time priority (SCHED_FIFO 1..=99) of the DMX output thread; see the master's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dmx_output_priority: Option<u8>,
    /// Plaintext to the master and to peers (no TLS): closed lab networks only; warned about
    /// at every start.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// The SHA-256 fingerprint of the master's certificate (as the master prints it at
    /// start); without it the first master linked to is trusted and pinned in the state
    /// directory (`master-fingerprint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_fingerprint: Option<String>,
}

/// A parsed node configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeConfig {
    Master(MasterConfig),
    Receiver(ReceiverConfig),
}

/// Two managed nodes given one universe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UniverseConflict {
    pub universe: u16,
    pub nodes: Vec<String>,
}

impl UniverseConflict {
    /// The universes more than one of `nodes` (node id, its universes) outputs, in order.
    pub fn among<'a>(
        nodes: impl IntoIterator<Item = (&'a str, &'a [u16])>,
    ) -> Vec<UniverseConflict> {
        let mut owners: BTreeMap<u16, Vec<String>> = BTreeMap::new();
        for (node_id, universes) in nodes {
            for u in universes {
                owners.entry(*u).or_default().push(node_id.to_string());
            }
        }
        owners
            .into_iter()
            .filter(|(_, nodes)| nodes.len() > 1)
            .map(|(universe, nodes)| UniverseConflict { universe, nodes })
            .collect()
    }
}

#[derive(Deserialize)]
struct RoleProbe {
    role: Option<Role>,
}

/// Which syntax a configuration is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Json,
    Ron,
}

impl NodeConfig {
    /// Reads a configuration file (JSON if it ends in `.json` or starts with `{`, else RON).
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let syntax = if path.extension().is_some_and(|e| e == "json")
            || text.trim_start().starts_with('{')
        {
            Syntax::Json
        } else {
            Syntax::Ron
        };
        NodeConfig::parse(&text, syntax, &path.display().to_string())
    }

    /// Parses configuration text; `origin` names it in errors.
    pub fn parse(text: &str, syntax: Syntax, origin: &str) -> Result<NodeConfig, ConfigError> {
        let syntax_err = |message: String| ConfigError::Syntax {
            path: origin.to_string(),
            message,
        };
        let probe: RoleProbe = decode(text, syntax).map_err(syntax_err)?;
        let config = match probe.role {
            Some(Role::Master) => {
                NodeConfig::Master(decode::<MasterConfig>(text, syntax).map_err(syntax_err)?)
            }
            Some(Role::Receiver) => {
                NodeConfig::Receiver(decode::<ReceiverConfig>(text, syntax).map_err(syntax_err)?)
            }
            None => {
                return Err(syntax_err(
                    "missing field `role` (\"master\" or \"receiver\")".into(),
                ));
            }
        };
        config.validate().map_err(|message| ConfigError::Invalid {
            path: origin.to_string(),
            message,
        })?;
        Ok(config)
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        match self {
            NodeConfig::Master(m) => &m.node_id,
            NodeConfig::Receiver(r) => &r.node_id,
        }
    }

    fn validate(&self) -> Result<(), String> {
        match self {
            NodeConfig::Master(m) => {
                check_node_id(&m.node_id)?;
                let mut seen = BTreeMap::new();
                for n in &m.managed_nodes {
                    check_node_id(&n.node_id).map_err(|e| format!("managed_nodes: {e}"))?;
                    if n.node_id == m.node_id {
                        return Err(format!(
                            "managed node {:?} has the master's own node_id",
                            n.node_id
                        ));
                    }
                    if seen.insert(n.node_id.as_str(), ()).is_some() {
                        return Err(format!("managed node {:?} is listed twice", n.node_id));
                    }
                    check_universes(&n.universe_map)
                        .map_err(|e| format!("managed node {:?}: universe_map: {e}", n.node_id))?;
                }
                if let Some(key) = &m.api_key {
                    check_key(key)?;
                }
                for key in &m.read_only_keys {
                    check_key(key)?;
                }
                if let Some(n) = m.max_connections
                    && !(2..=65_536).contains(&n)
                {
                    return Err(format!("max_connections {n} is outside 2..=65536"));
                }
                if m.tls_cert.is_some() != m.tls_key.is_some() {
                    return Err("tls_cert and tls_key go together: give both, or neither for a generated self-signed certificate".into());
                }
                if m.insecure && m.tls_cert.is_some() {
                    return Err(
                        "insecure: true serves plaintext, but tls_cert is set: remove one".into(),
                    );
                }
                Ok(())
            }
            NodeConfig::Receiver(r) => {
                check_node_id(&r.node_id)?;
                check_universes(&r.local_universes).map_err(|e| format!("local_universes: {e}"))?;
                if r.master_ip.is_none() && !r.auto_discover {
                    return Err(
                        "no master: set master_ip, or auto_discover: true to find it over mDNS"
                            .into(),
                    );
                }
                if let Some(id) = &r.master_id {
                    check_node_id(id).map_err(|e| format!("master_id: {e}"))?;
                }
                if r.master_port == 0 {
                    return Err("master_port must be 1..=65535".into());
                }
                if let Some(key) = &r.api_key {
                    check_key(key)?;
                }
                if let Some(f) = &r.master_fingerprint {
                    f.parse::<rockontrol_tls::Fingerprint>()
                        .map_err(|e| format!("master_fingerprint: {e}"))?;
                    if r.insecure {
                        return Err("insecure: true talks plaintext, but master_fingerprint is set: remove one".into());
                    }
                }
                Ok(())
            }
        }
    }
}

impl MasterConfig {
    /// Universes given to more than one managed node.
    pub fn conflicts(&self) -> Vec<UniverseConflict> {
        UniverseConflict::among(
            self.managed_nodes
                .iter()
                .map(|n| (n.node_id.as_str(), n.universe_map.as_slice())),
        )
    }

    /// Every universe some managed node outputs.
    pub fn routed_universes(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self
            .managed_nodes
            .iter()
            .flat_map(|n| n.universe_map.iter().copied())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

fn decode<T: for<'de> Deserialize<'de>>(text: &str, syntax: Syntax) -> Result<T, String> {
    match syntax {
        Syntax::Json => serde_json::from_str(text).map_err(|e| e.to_string()),
        // Implicit `Some`: `master_ip: "10.0.0.1"` reads as in JSON.
        Syntax::Ron => ron::Options::default()
            .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
            .from_str(text)
            .map_err(|e| format!("{}:{}: {}", e.span.start.line, e.span.start.col, e.code)),
    }
}

/// A node id: 1 to 63 letters, digits, `-`, `_` or `.` (it appears in URLs and mDNS names).
pub fn check_node_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 63 {
        return Err(format!("node_id {id:?} must be 1 to 63 characters"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "node_id {id:?} may only hold letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

fn check_universes(universes: &[u16]) -> Result<(), String> {
    let mut seen = Vec::new();
    for u in universes {
        if !(1..=MAX_UNIVERSE).contains(u) {
            return Err(format!("universe {u} is outside 1..={MAX_UNIVERSE}"));
        }
        if seen.contains(u) {
            return Err(format!("universe {u} is listed twice"));
        }
        seen.push(*u);
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), String> {
    if key.len() < 8 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err("an API key must be at least 8 printable ASCII characters, no spaces".into());
    }
    Ok(())
}

/// The example node configurations of the seed design document, verbatim (its 192.168.x
/// addresses included): what `--config` must accept exactly as written.
pub mod seed {
    /// The seed's master configuration (`master-01`, two managed nodes).
    pub const MASTER: &str = include_str!("../seed/master.json");
    /// The seed's receiver configuration (`node-01`, `auto_discover`).
    pub const RECEIVER: &str = include_str!("../seed/receiver.json");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_json_configs_parse_verbatim() {
        let NodeConfig::Master(m) =
            NodeConfig::parse(seed::MASTER, Syntax::Json, "master.json").expect("seed master")
        else {
            panic!("expected a master")
        };
        assert_eq!(m.node_id, "master-01");
        assert_eq!(m.listen_port, 9000);
        assert_eq!(m.managed_nodes.len(), 2);
        assert_eq!(m.managed_nodes[1].role, NodeRole::MediaServer);
        assert_eq!(m.managed_nodes[0].universe_map, vec![1, 2]);
        assert!(m.conflicts().is_empty(), "no universe is shared");
        let NodeConfig::Receiver(r) =
            NodeConfig::parse(seed::RECEIVER, Syntax::Json, "node.json").expect("seed receiver")
        else {
            panic!("expected a receiver")
        };
        assert_eq!(r.master_port, 9000);
        assert_eq!(
            r.capabilities,
            vec![Capability::DmxOutput, Capability::MediaPlayback]
        );
        assert!(r.auto_discover);
        assert_eq!(r.on_master_loss, MasterLoss::Hold, "holding is the default");
    }

    #[test]
    fn the_same_configs_parse_as_ron() {
        let ron = r#"(
            role: "master", node_id: "master-01", listen_port: 9000, broadcast_enabled: true,
            managed_nodes: [
                (node_id: "node-01", ip: "192.168.1.101", universe_map: [1, 2], role: "dmx_output"),
                (node_id: "node-02", ip: "192.168.1.102", universe_map: [3, 4], role: "media_server"),
            ],
        )"#;
        let from_ron = NodeConfig::parse(ron, Syntax::Ron, "m.ron").expect("ron master");
        let from_json = NodeConfig::parse(seed::MASTER, Syntax::Json, "m.json").expect("json");
        assert_eq!(from_ron, from_json);
        let ron = r#"(role: "receiver", node_id: "node-01", master_ip: "192.168.1.100",
            master_port: 9000, local_universes: [1, 2],
            capabilities: ["dmx_output", "media_playback"], auto_discover: true)"#;
        let from_ron = NodeConfig::parse(ron, Syntax::Ron, "r.ron").expect("ron receiver");
        let from_json = NodeConfig::parse(seed::RECEIVER, Syntax::Json, "r.json").expect("json");
        assert_eq!(from_ron, from_json);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_clear_errors() {
        let cases = [
            (
                seed::RECEIVER.replace("\"auto_discover\"", "\"auto_discovery\""),
                "unknown field `auto_discovery`",
            ),
            (
                seed::RECEIVER.replace("\"media_playback\"", "\"lasers\""),
                "unknown capability \"lasers\"",
            ),
            (
                seed::RECEIVER.replace("192.168.1.100", "192.168.1"),
                "invalid IP address",
            ),
            (
                seed::RECEIVER.replace("[1, 2]", "[0, 2]"),
                "universe 0 is outside 1..=63999",
            ),
            (
                seed::RECEIVER.replace("\"receiver\"", "\"slave\""),
                "unknown role \"slave\"",
            ),
            (
                seed::MASTER.replace("\"dmx_output\"", "\"dmx\""),
                "unknown node role \"dmx\"",
            ),
            (
                seed::MASTER.replace("\"node-02\"", "\"node-01\""),
                "listed twice",
            ),
            (seed::MASTER.replace("9000", "90000"), "invalid value"),
            (
                seed::RECEIVER
                    .replace("\"master_ip\": \"192.168.1.100\",", "")
                    .replace("true", "false"),
                "no master",
            ),
            (
                seed::RECEIVER.replace(
                    "\"auto_discover\"",
                    "\"master_fingerprint\": \"AB:CD\", \"auto_discover\"",
                ),
                "master_fingerprint: bad certificate fingerprint \"AB:CD\": 4 hex digits",
            ),
            (
                seed::RECEIVER.replace(
                    "\"auto_discover\"",
                    &format!(
                        "\"insecure\": true, \"master_fingerprint\": \"{}\", \"auto_discover\"",
                        "AB".repeat(32)
                    ),
                ),
                "insecure: true talks plaintext, but master_fingerprint is set",
            ),
            (
                seed::MASTER.replace(
                    "\"listen_port\"",
                    "\"tls_cert\": \"/etc/rk/cert.pem\", \"listen_port\"",
                ),
                "tls_cert and tls_key go together",
            ),
        ];
        for (text, expected) in cases {
            let e =
                NodeConfig::parse(&text, Syntax::Json, "node.json").expect_err("must be refused");
            let message = e.to_string();
            assert!(
                message.starts_with("node.json: ") && message.contains(expected),
                "expected {expected:?} in {message:?}"
            );
        }
        let e = NodeConfig::parse(
            "(role: \"master\", node_id: \"m\", listen_port: 1, colour: 3)",
            Syntax::Ron,
            "m.ron",
        )
        .expect_err("unknown RON field");
        assert!(e.to_string().contains("colour"), "{e}");
    }

    #[test]
    fn a_receiver_may_name_its_master() {
        let json = seed::RECEIVER.replace(
            "\"auto_discover\": true",
            "\"auto_discover\": true, \"master_id\": \"master-01\"",
        );
        let NodeConfig::Receiver(r) =
            NodeConfig::parse(&json, Syntax::Json, "node.json").expect("master_id in JSON")
        else {
            panic!("expected a receiver")
        };
        assert_eq!(r.master_id.as_deref(), Some("master-01"));
        let ron = r#"(role: "receiver", node_id: "node-01", auto_discover: true,
            master_id: "master-01")"#;
        let NodeConfig::Receiver(from_ron) =
            NodeConfig::parse(ron, Syntax::Ron, "r.ron").expect("master_id in RON")
        else {
            panic!("expected a receiver")
        };
        assert_eq!(from_ron.master_id.as_deref(), Some("master-01"));
        let NodeConfig::Receiver(none) =
            NodeConfig::parse(seed::RECEIVER, Syntax::Json, "node.json").expect("seed")
        else {
            panic!("expected a receiver")
        };
        assert_eq!(none.master_id, None, "optional: the seed has none");
        let e = NodeConfig::parse(
            &seed::RECEIVER.replace(
                "\"auto_discover\"",
                "\"master_id\": \"a b\", \"auto_discover\"",
            ),
            Syntax::Json,
            "node.json",
        )
        .expect_err("a bad id");
        assert!(e.to_string().contains("master_id: node_id \"a b\""), "{e}");
        let e = NodeConfig::parse(
            &seed::RECEIVER.replace(
                "\"auto_discover\"",
                "\"master_name\": \"m\", \"auto_discover\"",
            ),
            Syntax::Json,
            "node.json",
        )
        .expect_err("unknown keys stay errors");
        assert!(e.to_string().contains("unknown field `master_name`"), "{e}");
    }

    #[test]
    fn shared_universes_are_reported_as_conflicts() {
        let text = seed::MASTER.replace("[3, 4]", "[2, 3]");
        let NodeConfig::Master(m) =
            NodeConfig::parse(&text, Syntax::Json, "m.json").expect("parses")
        else {
            panic!("master")
        };
        assert_eq!(
            m.conflicts(),
            vec![UniverseConflict {
                universe: 2,
                nodes: vec!["node-01".into(), "node-02".into()]
            }]
        );
        assert_eq!(m.routed_universes(), vec![1, 2, 3]);
    }
}
