//! The master's view of its nodes: registration, links, health, command delivery and the
//! replication stream. Plain data and logic: no sockets, no Bevy, time passed in.
//!
//! The registry owns no sockets and no channels: what it sends is queued in its outbox as
//! [`Outgoing`] frames and closes, by connection id, for the transport to drain
//! ([`Registry::take_outgoing`]) and write (`master::server` keeps one bounded writer queue per
//! connection). A connection whose writer queue is full or gone is reported back
//! ([`Registry::link_failed`]): the node is cut off rather than slowing anybody else down; it
//! reconnects and catches up from a snapshot.
//!
//! Commands for a node get a `command_id` and wait in the node's queue while it is offline;
//! on (re)connect they go out in order after the snapshot. A command stays in flight until the
//! node acknowledges it; a failure or a missing ack is retried up to [`MAX_RETRIES`] times,
//! then the node is marked degraded and an alert is raised. Nodes never apply a command id
//! twice, so re-sending after a lost ack is safe.
//!
//! Admission: the transport decides whether a connection authenticated ([`LinkAuth`]) before
//! the registry sees its hello. Nothing about a node changes for an unauthenticated hello.
//! One claiming an id the master knows (managed, registered, adopted or linked with a key) is
//! refused; one with a new id becomes a [`PendingRequest`] bound to its connection, at most
//! [`MAX_PENDING`] of them ([`MAX_PENDING_PER_ADDRESS`] from one address), each for at most
//! [`PENDING_WAIT`]. An operator adopts that
//! connection ([`Registry::adopt`]), never an id: the node is linked on it, and its id is
//! bound to the control key from then on (see [`crate::adoptions`]).
//!
//! Routing: the master outputs the show universes no node is given
//! ([`Registry::local_universes`]); [`Registry::routing_epoch`] changes whenever an
//! assignment does.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rockontrol_engine::{Command, PlaybackState, ShowTimeBase};
use serde::Serialize;

use crate::adoptions::{Adoption, BoundKey};
pub use crate::alerts::{Alert, AlertKind, Severity};
use crate::alerts::{AlertLog, NewAlert};
use crate::config::{Capability, ManagedNode, MasterConfig, UniverseConflict};
use crate::protocol::{
    self, AckStatus, Delta, Hello, Metrics, NodeCommand, NodeOverrides, Snapshot, ToMaster,
    ToReceiver, Welcome,
};
use rockontrol_replicate::Parts;

/// Retries after a failed or unacknowledged command before the node is marked degraded.
pub const MAX_RETRIES: u32 = 3;
/// A command not acknowledged within this is sent again.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// A node silent for this long is offline.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(3);
/// Heartbeat period asked of receivers.
pub const HEARTBEAT_PERIOD: Duration = Duration::from_secs(1);
/// Reconnect period asked of receivers.
pub const RECONNECT_PERIOD: Duration = Duration::from_secs(5);
/// A show clock older than this is not sent as a sync (the master just stalled).
pub const SYNC_STALE: Duration = Duration::from_millis(200);
/// Commands kept for an offline node.
pub const MAX_QUEUED: usize = 100_000;
/// A node reporting a DMX frame rate below this share of the show's tick rate is degraded.
pub const LOW_OUTPUT_RATE: f64 = 0.75;
/// How the degraded reason of a low output rate begins.
const LOW_OUTPUT_REASON: &str = "DMX output rate low";
/// Key-less connections waiting to be adopted, at most.
pub const MAX_PENDING: usize = 64;
/// Of those, from one address at most: one host cannot take every place.
pub const MAX_PENDING_PER_ADDRESS: usize = 8;
/// A key-less connection not adopted within this is closed (the node connects again).
pub const PENDING_WAIT: Duration = Duration::from_secs(60);

/// The registry's monotonic clock (heartbeat silence, acknowledgement timeouts): the
/// system's, or a manual one that a test moves ([`MonoClock::manual`], [`MonoClock::advance`]).
/// Wall time (`SystemTime`, for what is shown) is passed into each call.
#[derive(Debug, Clone, Default)]
pub struct MonoClock(Option<Arc<std::sync::Mutex<Instant>>>);

impl MonoClock {
    /// A clock that stands still until [`advance`](Self::advance)d.
    pub fn manual() -> Self {
        MonoClock(Some(Arc::new(std::sync::Mutex::new(Instant::now()))))
    }

    /// Now, on this clock.
    pub fn now(&self) -> Instant {
        match &self.0 {
            Some(t) => *t.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
            None => Instant::now(),
        }
    }

    /// Moves a manual clock on (the system's moves by itself).
    pub fn advance(&self, by: Duration) {
        if let Some(t) = &self.0 {
            *t.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += by;
        }
    }
}

/// A node's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Online,
    Degraded,
    Offline,
    /// Connected without a key: waits for an operator to adopt it.
    Pending,
}

/// A node's link: the connection its frames go to.
#[derive(Debug, Clone, Copy)]
struct Link {
    conn_id: u64,
}

/// What the registry wants done on a connection, in order: the transport drains these
/// ([`Registry::take_outgoing`]) and writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// An encoded frame for connection `conn`.
    Frame { conn: u64, frame: Arc<str> },
    /// Connection `conn` is done with (dropped, replaced, not adopted): close it once what was
    /// queued before went out.
    Close { conn: u64 },
}

impl Outgoing {
    /// The connection it is for.
    pub fn conn(&self) -> u64 {
        match self {
            Outgoing::Frame { conn, .. } | Outgoing::Close { conn } => *conn,
        }
    }
}

#[derive(Debug, Clone)]
struct QueuedCommand {
    command_id: String,
    command: NodeCommand,
    attempts: u32,
    sent_at: Option<Instant>,
}

/// One node as the master knows it.
#[derive(Debug)]
pub struct NodeEntry {
    node_id: String,
    managed: Option<ManagedNode>,
    capabilities: Vec<Capability>,
    universes: Vec<u16>,
    state: NodeState,
    state_since: SystemTime,
    last_heartbeat: Option<SystemTime>,
    last_seen: Option<Instant>,
    metrics: Metrics,
    link: Option<Link>,
    version: Option<String>,
    queue: VecDeque<QueuedCommand>,
    in_flight: VecDeque<QueuedCommand>,
    executed: u64,
    failed: u64,
    degraded_reason: Option<String>,
}

impl NodeEntry {
    fn new(node_id: &str, managed: Option<ManagedNode>, now: SystemTime) -> Self {
        NodeEntry {
            node_id: node_id.to_string(),
            universes: managed
                .as_ref()
                .map(|m| m.universe_map.clone())
                .unwrap_or_default(),
            managed,
            capabilities: Vec::new(),
            state: NodeState::Offline,
            state_since: now,
            last_heartbeat: None,
            last_seen: None,
            metrics: Metrics::default(),
            link: None,
            version: None,
            queue: VecDeque::new(),
            in_flight: VecDeque::new(),
            executed: 0,
            failed: 0,
            degraded_reason: None,
        }
    }

    fn set_state(&mut self, state: NodeState, now: SystemTime) {
        if self.state != state {
            tracing::info!("node {}: {:?} → {:?}", self.node_id, self.state, state);
            self.state = state;
            self.state_since = now;
        }
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Its configuration, if it is a configured (managed) node.
    pub fn managed(&self) -> Option<&ManagedNode> {
        self.managed.as_ref()
    }

    pub fn capabilities(&self) -> &[Capability] {
        &self.capabilities
    }

    /// The universes it outputs.
    pub fn universes(&self) -> &[u16] {
        &self.universes
    }

    pub fn state(&self) -> NodeState {
        self.state
    }

    /// When it entered its [`NodeEntry::state`].
    pub fn state_since(&self) -> SystemTime {
        self.state_since
    }

    pub fn last_heartbeat(&self) -> Option<SystemTime> {
        self.last_heartbeat
    }

    /// Its figures, as its last heartbeat gave them.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Its software version (from its hello).
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// Whether it has a link (a linked connection; a pending one is not).
    pub fn is_linked(&self) -> bool {
        self.link.is_some()
    }

    /// Node commands it acknowledged as executed.
    pub fn executed(&self) -> u64 {
        self.executed
    }

    /// Node commands that failed on it, or ran out of retries.
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// Why it is degraded, if it is.
    pub fn degraded_reason(&self) -> Option<&str> {
        self.degraded_reason.as_deref()
    }

    /// Commands waiting (queued or unacknowledged).
    pub fn pending_commands(&self) -> usize {
        self.queue.len() + self.in_flight.len()
    }

    /// Queues `frame` for its link, if it has one.
    fn send(&self, out: &mut Vec<Outgoing>, frame: Arc<str>) -> bool {
        let Some(link) = &self.link else { return false };
        out.push(Outgoing::Frame {
            conn: link.conn_id,
            frame,
        });
        true
    }

    /// Drops its link (the connection is closed) and takes back what was in flight on it.
    fn unlink(&mut self, out: &mut Vec<Outgoing>) {
        if let Some(link) = self.link.take() {
            out.push(Outgoing::Close { conn: link.conn_id });
        }
        requeue_in_flight(self);
    }
}

/// How a connection proved itself, decided by the transport before its hello is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkAuth {
    /// No key (or no proof of one): it may only ask to be adopted.
    Unauthenticated,
    /// It proved the control key.
    ControlKey,
}

/// The connection a hello arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub addr: SocketAddr,
    pub auth: LinkAuth,
}

/// What became of an accepted hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    /// Linked: welcomed, snapshot and queued commands sent. The connection id.
    Linked(u64),
    /// Waiting on this connection for an operator to adopt it (nothing else was sent but a
    /// notice). The connection id.
    Pending(u64),
}

impl Admitted {
    /// The connection id.
    pub fn conn_id(self) -> u64 {
        match self {
            Admitted::Linked(id) | Admitted::Pending(id) => id,
        }
    }
}

/// A key-less connection waiting to be adopted: bound to that connection, not to its id.
#[derive(Debug, Clone)]
pub struct PendingRequest {
    hello: Hello,
    addr: SocketAddr,
    since: SystemTime,
}

/// A pending connection, as `GET /api/nodes` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingView {
    pub connection: u64,
    pub node_id: String,
    pub address: String,
    pub version: String,
    pub universes: Vec<u16>,
    pub capabilities: Vec<Capability>,
    pub since: String,
}

/// Why an adoption is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdoptError {
    #[error(
        "no pending connection claims node {0:?} (it must be connected, without a key, to be adopted)"
    )]
    NotPending(String),
    #[error("{} pending connections claim node {node_id:?} ({}); adopt one by its connection", .candidates.len(), .candidates.iter().map(|(c, a)| format!("connection {c} from {a}")).collect::<Vec<_>>().join(", "))]
    Ambiguous {
        node_id: String,
        candidates: Vec<(u64, String)>,
    },
    #[error("node {0:?} is known already (managed, registered or adopted)")]
    Known(String),
    #[error("universe {universe} belongs to node {owner:?}; this node may not output it")]
    UniverseTaken { universe: u16, owner: String },
}

/// Why a hello is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "protocol mismatch: this master speaks version {master_version} protocol {master_hash}, the node sent {node_version} protocol {node_hash}"
    )]
    Protocol {
        master_version: String,
        master_hash: String,
        node_version: String,
        node_hash: String,
    },
    #[error("node id {0:?} is already connected from another link")]
    DuplicateId(String),
    #[error("node {0:?} has no valid key and waits for an operator to adopt it")]
    Pending(String),
    #[error("node {0:?} is known to this master; it must connect with its key")]
    KeyRequired(String),
    #[error("{MAX_PENDING} key-less connections wait to be adopted already; try later")]
    TooManyPending,
    #[error(
        "{MAX_PENDING_PER_ADDRESS} key-less connections from {0} wait to be adopted already; adopt or let them time out first"
    )]
    TooManyPendingFrom(IpAddr),
    #[error("universe {universe} belongs to node {owner:?}; this node may not output it")]
    UniverseTaken { universe: u16, owner: String },
    #[error("{0}")]
    Invalid(String),
}

/// Why a command cannot be taken.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubmitError {
    #[error("no node {0:?}")]
    UnknownNode(String),
    #[error("node {0:?} has {MAX_QUEUED} commands waiting already")]
    QueueFull(String),
}

/// Whether a submitted command went out now or waits for the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    Sent,
    Queued,
}

/// Why a registration is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegisterError {
    #[error("{0}")]
    Invalid(String),
    #[error("universe {universe} belongs to node {owner:?}")]
    Conflict { universe: u16, owner: String },
}

/// The replicated show and playback state, as the master last published it (read and
/// changed through the [`Registry`]'s methods).
#[derive(Debug, Default)]
struct Replication {
    seq: u64,
    /// The master's next show tick (refreshed every frame).
    tick: u64,
    rate: u32,
    show_hash: Option<String>,
    /// Canonical RON of the show, served at `/api/show/{hash}`.
    show_ron: Option<Arc<str>>,
    state: Option<PlaybackState>,
    /// Per-node overrides (node commands that set a node's own output), by node id: the
    /// master owns them and every snapshot carries them.
    overrides: NodeOverrides,
    /// Counts changes of `overrides` (the master persists them when it moves).
    overrides_version: u64,
    /// The state parts other plugins registered, as last captured from the master's world
    /// (the engine's state and the overrides above are kept by type and are fresher).
    parts: Parts,
    /// The engine's show time base as of its last refresh of `tick` (`None`: nobody
    /// refreshes; syncs always go out).
    time: Option<ShowTimeRef>,
    /// The show's timecode (rate, label at show time 0), for the sync message's label
    /// (`None`: 25 fps from 00:00:00:00).
    timecode: Option<rockontrol_wire::timecode::RunningTimecode>,
    /// The show's tempo, for the sync message.
    bpm: Option<f64>,
}

/// The engine's show time base when it last refreshed the replicated tick.
#[derive(Debug, Clone, Copy)]
struct ShowTimeRef {
    base: ShowTimeBase,
    /// When, on the base's (the system's monotonic) clock.
    base_at: Instant,
    /// When, on the registry's clock.
    at: Instant,
}

impl Replication {
    fn snapshot(&self, now: Instant) -> Snapshot {
        Snapshot::new(
            self.seq,
            self.current_tick(now),
            self.rate,
            self.show_hash.clone(),
            self.state.as_ref(),
            &self.overrides,
            &self.parts,
        )
    }

    /// The master's next show tick at `now` (on the registry's clock): the tick last
    /// refreshed, moved on by the ticks the engine's show time base (which clock sync slews and
    /// steps) counts in the time since. After a stall the engine's own tick is still catching
    /// up, and a snapshot taken from it would pull receivers back mid-fade.
    fn current_tick(&self, now: Instant) -> u64 {
        let Some(t) = &self.time else {
            return self.tick;
        };
        let later = t.base_at + now.saturating_duration_since(t.at);
        let ran = t
            .base
            .tick_at(later)
            .saturating_sub(t.base.tick_at(t.base_at));
        self.tick.saturating_add(ran)
    }

    /// Whether the engine has not refreshed the tick for [`SYNC_STALE`] at `now` (a stall).
    fn stale(&self, now: Instant) -> bool {
        self.time
            .is_some_and(|t| now.saturating_duration_since(t.at) > SYNC_STALE)
    }

    /// Records what a node command does to its node's own output (nothing for other commands,
    /// or for one the node will refuse).
    fn record_override(&mut self, node_id: &str, command: &NodeCommand) {
        let mut o = self.overrides.get(node_id).cloned().unwrap_or_default();
        if let Some(Ok(_)) = o.apply(command) {
            if o.is_neutral() {
                self.overrides.remove(node_id);
            } else {
                self.overrides.insert(node_id.to_string(), o);
            }
            self.overrides_version += 1;
        }
    }
}

/// A node seen over mDNS (connected or not).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Discovered {
    pub node_id: String,
    pub role: String,
    pub address: String,
    pub version: String,
    pub universes: String,
    pub capabilities: String,
    pub last_seen: String,
}

/// Everything the master's servers and systems share.
#[derive(Debug)]
pub struct Registry {
    master_id: String,
    nodes: BTreeMap<String, NodeEntry>,
    alerts: AlertLog,
    replication: Replication,
    /// Frames and closes for the transport to write, in order ([`Registry::take_outgoing`]).
    outbox: Vec<Outgoing>,
    /// This run's part of every command id: random per start, so ids never repeat across
    /// restarts of this master or between two masters with the same id.
    boot: String,
    /// Adopted node ids and the key each is bound to.
    adoptions: BTreeMap<String, Adoption>,
    /// Key-less connections waiting to be adopted, by connection id.
    pending: BTreeMap<u64, PendingRequest>,
    /// Addresses of configured nodes and of connections that authenticated or were adopted:
    /// they may use the connections kept in reserve.
    known_addrs: BTreeSet<IpAddr>,
    /// Bumped whenever a node's universes change (routing must be computed again).
    routing_epoch: u64,
    /// Where adoptions are kept (the master's state directory), if anywhere.
    state_dir: Option<std::path::PathBuf>,
    next_command: u64,
    next_conn: u64,
    /// Commands accepted for nodes (all time).
    commands_submitted: u64,
    /// Nodes advertising `_rockontrol._tcp`, by node id.
    discovered: BTreeMap<String, Discovered>,
    /// Heartbeat silence and ack timeouts are measured on it.
    clock: MonoClock,
    /// The hash of the app's replication rules: a hello must carry the same.
    protocol_hash: String,
}

impl Registry {
    /// A registry knowing the configured managed nodes (all offline).
    pub fn new(config: &MasterConfig, now: SystemTime) -> Self {
        let mut nodes = BTreeMap::new();
        for m in &config.managed_nodes {
            nodes.insert(
                m.node_id.clone(),
                NodeEntry::new(&m.node_id, Some(m.clone()), now),
            );
        }
        let mut registry = Registry {
            master_id: config.node_id.clone(),
            nodes,
            alerts: AlertLog::default(),
            replication: Replication {
                rate: 44,
                ..Replication::default()
            },
            outbox: Vec::new(),
            boot: boot_id(),
            adoptions: BTreeMap::new(),
            pending: BTreeMap::new(),
            known_addrs: config.managed_nodes.iter().map(|m| m.ip).collect(),
            routing_epoch: 0,
            state_dir: config.state_dir.clone(),
            next_command: 0,
            next_conn: 0,
            commands_submitted: 0,
            discovered: BTreeMap::new(),
            clock: MonoClock::default(),
            protocol_hash: protocol::protocol_hash(),
        };
        registry.alert_conflicts(None, now);
        registry
    }

    /// The protocol hash of this master's app (its [`rockontrol_replicate::ReplicationRules`]);
    /// by default the base rules' ([`protocol::protocol_hash`]).
    pub fn set_protocol_hash(&mut self, hash: String) {
        self.protocol_hash = hash;
    }

    /// The protocol hash hellos must carry.
    pub fn protocol_hash(&self) -> &str {
        &self.protocol_hash
    }

    /// Measures heartbeat silence and ack timeouts on `clock` from now on (tests pass a
    /// [`MonoClock::manual`]).
    pub fn set_clock(&mut self, clock: MonoClock) {
        self.clock = clock;
    }

    /// What is to be written since the last call, in order: frames and closes by connection
    /// id. The transport drains this after every change and writes each to its connection (a
    /// frame for a connection it no longer has is dropped).
    pub fn take_outgoing(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.outbox)
    }

    /// The transport could not queue a frame on connection `conn_id` (its writer queue is full,
    /// or the connection is gone): the node on it is cut off (its unacknowledged commands wait
    /// for its next link), or the pending request on it is dropped. The node reconnects and
    /// resynchronises from a snapshot.
    pub fn link_failed(&mut self, conn_id: u64) {
        if self.pending.remove(&conn_id).is_some() {
            return;
        }
        if let Some(entry) = self
            .nodes
            .values_mut()
            .find(|n| n.link.is_some_and(|l| l.conn_id == conn_id))
        {
            tracing::warn!(
                "node {}: outgoing queue full or closed; dropping its link",
                entry.node_id
            );
            entry.link = None;
            requeue_in_flight(entry);
        }
    }

    /// The replication sequence number last published.
    pub fn seq(&self) -> u64 {
        self.replication.seq
    }

    /// The other plugins' state parts snapshots carry now ([`Registry::publish_parts`]).
    pub fn parts(&self) -> &Parts {
        &self.replication.parts
    }

    /// The master's next show tick now (see [`Registry::show_time_refreshed`]).
    pub fn show_tick(&self) -> u64 {
        self.replication.current_tick(self.clock.now())
    }

    /// The hash of the show published last.
    pub fn show_hash(&self) -> Option<&str> {
        self.replication.show_hash.as_deref()
    }

    /// The canonical RON of the show with hash `hash`, if that is the one published.
    pub fn show_ron(&self, hash: &str) -> Option<Arc<str>> {
        match (&self.replication.show_hash, &self.replication.show_ron) {
            (Some(h), Some(ron)) if h == hash => Some(Arc::clone(ron)),
            _ => None,
        }
    }

    /// The show published last: its hash and canonical RON.
    pub fn show(&self) -> Option<(String, Arc<str>)> {
        match (&self.replication.show_hash, &self.replication.show_ron) {
            (Some(h), Some(ron)) => Some((h.clone(), Arc::clone(ron))),
            _ => None,
        }
    }

    /// The per-node overrides (every snapshot carries them).
    pub fn overrides(&self) -> &NodeOverrides {
        &self.replication.overrides
    }

    /// Counts changes of [`Registry::overrides`] (the master saves them when it moves).
    pub fn overrides_version(&self) -> u64 {
        self.replication.overrides_version
    }

    /// What a restarted master saved: its node overrides and show tick rate (before any node
    /// links).
    pub fn restore_stage(&mut self, overrides: NodeOverrides, rate: u32) {
        self.replication.overrides = overrides;
        self.replication.rate = rate;
    }
    /// The show's timecode and tempo, as the sync message carries them (refreshed with the
    /// show time by the master's engine).
    pub fn set_sync_timecode(
        &mut self,
        timecode: Option<rockontrol_wire::timecode::RunningTimecode>,
        bpm: Option<f64>,
    ) {
        self.replication.timecode = timecode;
        self.replication.bpm = bpm;
    }

    /// The engine's show clock, refreshed every frame: its next tick, and the show time base
    /// it derives from as of `base_at` (the engine's instant on the system's monotonic clock).
    /// Until the next refresh, snapshots carry that tick moved on by the base's ticks over the
    /// time passed on the registry's clock: clock sync (which slews and steps the base) and
    /// tests (a manual [`MonoClock`]) steer them.
    pub fn show_time_refreshed(&mut self, next_tick: u64, base: ShowTimeBase, base_at: Instant) {
        let r = &mut self.replication;
        r.tick = r.tick.max(next_tick);
        r.time = Some(ShowTimeRef {
            base,
            base_at,
            at: self.clock.now(),
        });
    }

    /// Show time jumped to `tick` (a restarted master resumes its saved stage).
    pub fn show_time_stepped(&mut self, tick: u64) {
        self.replication.tick = tick;
        self.replication.time = None;
    }

    /// This master's node id.
    pub fn master_id(&self) -> &str {
        &self.master_id
    }

    /// The node `node_id`, if known.
    pub fn node(&self, node_id: &str) -> Option<&NodeEntry> {
        self.nodes.get(node_id)
    }

    /// Every known node, by id.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeEntry> {
        self.nodes.values()
    }

    /// Commands accepted for nodes (all time).
    pub fn commands_submitted(&self) -> u64 {
        self.commands_submitted
    }

    /// Nodes seen over mDNS, by node id (registered or not).
    pub fn discovered(&self) -> impl Iterator<Item = &Discovered> {
        self.discovered.values()
    }

    /// Nodes seen over mDNS that are neither this master nor a known node.
    pub fn discovered_unknown(&self) -> impl Iterator<Item = &Discovered> {
        self.discovered
            .values()
            .filter(|d| d.node_id != self.master_id && !self.nodes.contains_key(&d.node_id))
    }

    /// Sends `frame` to `node_id` if connection `conn_id` is still its link (dropped if its
    /// queue is full). True if it was queued.
    pub fn send_on(&mut self, node_id: &str, conn_id: u64, frame: Arc<str>) -> bool {
        if !self.is_linked(node_id, conn_id) {
            return false;
        }
        self.outbox.push(Outgoing::Frame {
            conn: conn_id,
            frame,
        });
        true
    }

    /// Drops `node_id`'s link (the operator's "restart link"): its connection is closed; the
    /// node reconnects after its reconnect period and is welcomed afresh. False if it had none.
    pub fn drop_link(&mut self, node_id: &str) -> bool {
        let Some(entry) = self.nodes.get_mut(node_id) else {
            return false;
        };
        let linked = entry.link.is_some();
        entry.unlink(&mut self.outbox);
        linked
    }

    /// Raises an operator alert (listed at `GET /api/alerts`; repeats from one node are
    /// aggregated and logged at a bounded rate).
    pub fn alert(&mut self, node_id: Option<&str>, message: String, now: SystemTime) {
        self.raise(
            NewAlert {
                severity: Severity::Warning,
                kind: AlertKind::Other,
                source: node_id,
                node_id,
                message,
            },
            now,
        );
    }

    /// Raises an alert of a given severity and kind; logs it unless its source has been
    /// reported within [`crate::alerts::LOG_INTERVAL`].
    pub fn raise(&mut self, alert: NewAlert<'_>, now: SystemTime) {
        let who = alert.node_id.unwrap_or("master").to_string();
        if let Some(line) = self.alerts.raise(alert, now) {
            match line.severity {
                Severity::Error => tracing::error!("ALERT {who}: {}", line.text),
                Severity::Warning => tracing::warn!("ALERT {who}: {}", line.text),
                Severity::Info => tracing::info!("ALERT {who}: {}", line.text),
            }
        }
    }

    /// The operator alerts, oldest first.
    pub fn alerts(&self) -> Vec<Alert> {
        self.alerts.to_vec()
    }

    fn refused_hello(&mut self, peer: &Peer, hello: &Hello, refusal: &Refusal, now: SystemTime) {
        let source = peer.addr.ip().to_string();
        self.raise(
            NewAlert {
                severity: Severity::Warning,
                kind: AlertKind::RefusedHello,
                source: Some(&source),
                node_id: None,
                message: format!(
                    "hello as {:?} from {} refused: {refusal}",
                    hello.node_id, peer.addr
                ),
            },
            now,
        );
    }

    /// Universes given to more than one node.
    pub fn conflicts(&self) -> Vec<UniverseConflict> {
        UniverseConflict::among(
            self.nodes
                .values()
                .map(|n| (n.node_id.as_str(), n.universes.as_slice())),
        )
    }

    /// Raises an alert for each conflict (of `universe` only, if given).
    fn alert_conflicts(&mut self, universe: Option<u16>, now: SystemTime) {
        for c in self.conflicts() {
            if universe.is_some_and(|u| u != c.universe) {
                continue;
            }
            let source = format!("universe {}", c.universe);
            self.raise(
                NewAlert {
                    severity: Severity::Error,
                    kind: AlertKind::UniverseConflict,
                    source: Some(&source),
                    node_id: None,
                    message: format!(
                        "universe conflict: universe {} is assigned to {}",
                        c.universe,
                        c.nodes.join(" and ")
                    ),
                },
                now,
            );
        }
    }

    /// Gives (`on`) or takes a universe from a node (the operator's matrix). A universe given
    /// to a second node is a conflict and raises an alert.
    pub fn assign(
        &mut self,
        node_id: &str,
        universe: u16,
        on: bool,
        now: SystemTime,
    ) -> Result<(), SubmitError> {
        let entry = self
            .nodes
            .get_mut(node_id)
            .ok_or_else(|| SubmitError::UnknownNode(node_id.to_string()))?;
        let mut set: BTreeSet<u16> = entry.universes.iter().copied().collect();
        if on {
            set.insert(universe);
        } else {
            set.remove(&universe);
        }
        entry.universes = set.into_iter().collect();
        if let Some(m) = &mut entry.managed {
            m.universe_map = entry.universes.clone();
        }
        self.routing_epoch += 1;
        if on {
            self.alert_conflicts(Some(universe), now);
        }
        Ok(())
    }

    /// Changes whenever a node's universes change.
    pub fn routing_epoch(&self) -> u64 {
        self.routing_epoch
    }

    /// The universes of `show_universes` the master outputs itself: those no node is given
    /// (whether it is online or not: a node's universes are its own).
    pub fn local_universes(&self, show_universes: &[u16]) -> Vec<u16> {
        let routed: BTreeSet<u16> = self
            .nodes
            .values()
            .flat_map(|n| n.universes.iter().copied())
            .collect();
        show_universes
            .iter()
            .copied()
            .filter(|u| !routed.contains(u))
            .collect()
    }

    /// Whether `ip` belongs to a configured node or to a connection that authenticated or
    /// was adopted (such peers may use the connections kept in reserve).
    pub fn is_known_address(&self, ip: IpAddr) -> bool {
        self.known_addrs.contains(&ip.to_canonical())
    }

    /// The key-less connections waiting to be adopted.
    pub fn pending(&self) -> Vec<PendingView> {
        self.pending
            .iter()
            .map(|(conn, p)| PendingView {
                connection: *conn,
                node_id: p.hello.node_id.clone(),
                address: p.addr.to_string(),
                version: p.hello.version.clone(),
                universes: p.hello.universes.clone(),
                capabilities: p.hello.capabilities.clone(),
                since: crate::health::rfc3339(p.since),
            })
            .collect()
    }

    /// The adoptions (to be kept on disk).
    pub fn adoptions(&self) -> Vec<Adoption> {
        self.adoptions.values().cloned().collect()
    }

    /// The master's state directory, where adoptions are kept.
    pub fn state_dir(&self) -> Option<&std::path::Path> {
        self.state_dir.as_deref()
    }

    /// Adoptions read back at start: each id is known (offline, with its universes) and bound
    /// to its key again.
    pub fn restore_adoptions(&mut self, adoptions: Vec<Adoption>, now: SystemTime) {
        for a in adoptions {
            if crate::config::check_node_id(&a.node_id).is_err() || a.node_id == self.master_id {
                tracing::warn!("adoption of {:?} ignored: not a node id", a.node_id);
                continue;
            }
            let entry = self
                .nodes
                .entry(a.node_id.clone())
                .or_insert_with(|| NodeEntry::new(&a.node_id, None, now));
            if entry.managed.is_none() && entry.universes.is_empty() {
                entry.universes = a.universes.clone();
            }
            if entry.capabilities.is_empty() {
                entry.capabilities = a.capabilities.clone();
            }
            if let Ok(ip) = a.address.parse() {
                self.known_addrs.insert(ip);
            }
            self.adoptions.insert(a.node_id.clone(), a);
        }
        self.routing_epoch += 1;
        self.alert_conflicts(None, now);
    }

    /// Registers (or refreshes) a node over REST.
    pub fn register(
        &mut self,
        node_id: &str,
        capabilities: Vec<Capability>,
        universes: Vec<u16>,
        now: SystemTime,
    ) -> Result<&NodeEntry, RegisterError> {
        crate::config::check_node_id(node_id).map_err(RegisterError::Invalid)?;
        if node_id == self.master_id {
            return Err(RegisterError::Invalid(format!(
                "{node_id:?} is the master's own id"
            )));
        }
        for u in &universes {
            if !(1..=crate::config::MAX_UNIVERSE).contains(u) {
                return Err(RegisterError::Invalid(format!(
                    "universe {u} is outside 1..={}",
                    crate::config::MAX_UNIVERSE
                )));
            }
            if let Some(owner) = self.owner(node_id, *u) {
                return Err(RegisterError::Conflict {
                    universe: *u,
                    owner: owner.node_id.clone(),
                });
            }
        }
        let entry = self
            .nodes
            .entry(node_id.to_string())
            .or_insert_with(|| NodeEntry::new(node_id, None, now));
        entry.capabilities = capabilities;
        if entry.managed.is_none() && entry.universes != universes {
            entry.universes = universes;
            self.routing_epoch += 1;
        }
        Ok(self.nodes.get(node_id).expect("inserted above"))
    }

    /// A receiver's hello on a new connection from `peer`; the connection id is in the answer.
    /// Linked: the welcome, the snapshot and any queued commands are in the outbox for it.
    /// Pending: only a notice is; the connection waits for [`Registry::adopt`]. Nothing about
    /// any node changes for an unauthenticated hello.
    pub fn hello(
        &mut self,
        hello: &Hello,
        peer: &Peer,
        now: SystemTime,
    ) -> Result<Admitted, Refusal> {
        if let Err(refusal) = self.admit(hello, peer) {
            self.refused_hello(peer, hello, &refusal, now);
            return Err(refusal);
        }
        self.next_conn += 1;
        let conn_id = self.next_conn;
        if peer.auth == LinkAuth::Unauthenticated {
            let notice = ToReceiver::Error {
                reason: Refusal::Pending(hello.node_id.clone()).to_string(),
            };
            self.outbox.push(Outgoing::Frame {
                conn: conn_id,
                frame: protocol::encode(&notice).into(),
            });
            tracing::info!(
                "node {:?} from {} waits to be adopted (connection {conn_id})",
                hello.node_id,
                peer.addr
            );
            self.pending.insert(
                conn_id,
                PendingRequest {
                    hello: hello.clone(),
                    addr: peer.addr,
                    since: now,
                },
            );
            return Ok(Admitted::Pending(conn_id));
        }
        self.known_addrs.insert(peer.addr.ip().to_canonical());
        // Key-less claims of this id are moot now.
        self.close_pending(&hello.node_id);
        self.link(hello, conn_id, now);
        Ok(Admitted::Linked(conn_id))
    }

    /// Checks a hello without changing anything.
    fn admit(&self, hello: &Hello, peer: &Peer) -> Result<(), Refusal> {
        if hello.protocol != protocol::PROTOCOL_VERSION || hello.protocol_hash != self.protocol_hash
        {
            return Err(Refusal::Protocol {
                master_version: protocol::VERSION.into(),
                master_hash: self.protocol_hash.clone(),
                node_version: hello.version.clone(),
                node_hash: hello.protocol_hash.clone(),
            });
        }
        crate::config::check_node_id(&hello.node_id).map_err(Refusal::Invalid)?;
        if hello.node_id == self.master_id {
            return Err(Refusal::DuplicateId(hello.node_id.clone()));
        }
        if peer.auth == LinkAuth::Unauthenticated {
            if self.nodes.contains_key(&hello.node_id)
                || self.adoptions.contains_key(&hello.node_id)
            {
                return Err(Refusal::KeyRequired(hello.node_id.clone()));
            }
            if self.pending.len() >= MAX_PENDING {
                return Err(Refusal::TooManyPending);
            }
            let ip = peer.addr.ip();
            if self.pending.values().filter(|p| p.addr.ip() == ip).count()
                >= MAX_PENDING_PER_ADDRESS
            {
                return Err(Refusal::TooManyPendingFrom(ip));
            }
            return Ok(());
        }
        if let Some(existing) = self.nodes.get(&hello.node_id)
            && existing.link.is_some()
            && existing
                .last_seen
                .is_some_and(|t| self.clock.now().saturating_duration_since(t) < HEARTBEAT_TIMEOUT)
        {
            return Err(Refusal::DuplicateId(hello.node_id.clone()));
        }
        // A node's universes are its permissions: an unconfigured node may not take another's.
        if let Some((universe, owner)) = self.taken(&hello.node_id, &hello.universes) {
            return Err(Refusal::UniverseTaken { universe, owner });
        }
        Ok(())
    }

    /// The first of `universes` another node owns, if `node_id` has no universes of its own.
    fn taken(&self, node_id: &str, universes: &[u16]) -> Option<(u16, String)> {
        let has_map = self
            .nodes
            .get(node_id)
            .is_some_and(|n| n.managed.is_some() || !n.universes.is_empty());
        if has_map {
            return None;
        }
        universes
            .iter()
            .find_map(|u| self.owner(node_id, *u).map(|n| (*u, n.node_id.clone())))
    }

    /// The node other than `node_id` given `universe`, if any.
    fn owner(&self, node_id: &str, universe: u16) -> Option<&NodeEntry> {
        self.nodes
            .values()
            .find(|n| n.node_id != node_id && n.universes.contains(&universe))
    }

    /// Links an admitted node on connection `conn_id`: welcome, snapshot, then its commands.
    fn link(&mut self, hello: &Hello, conn_id: u64, now: SystemTime) {
        let mono = self.clock.now();
        let snapshot = ToReceiver::Snapshot(self.replication.snapshot(mono));
        let protocol_hash = self.protocol_hash.clone();
        let entry = self
            .nodes
            .entry(hello.node_id.clone())
            .or_insert_with(|| NodeEntry::new(&hello.node_id, None, now));
        entry.capabilities = hello.capabilities.clone();
        entry.version = Some(hello.version.clone());
        let before = entry.universes.clone();
        if entry.managed.is_none() && entry.universes.is_empty() {
            entry.universes = hello.universes.clone();
        }
        if let Some(m) = &entry.managed {
            entry.universes = m.universe_map.clone();
        }
        let routing_changed = entry.universes != before;
        let outside: Vec<u16> = hello
            .universes
            .iter()
            .copied()
            .filter(|u| !entry.universes.contains(u))
            .collect();
        let denied = (!outside.is_empty()).then(|| {
            let message = format!(
                "universes {outside:?} are not this node's (its universes: {:?}); it outputs its own only",
                entry.universes
            );
            tracing::warn!("node {}: {message}", hello.node_id);
            ToReceiver::Error { reason: message }
        });
        let welcome = ToReceiver::Welcome(Welcome {
            master_id: self.master_id.clone(),
            version: protocol::VERSION.into(),
            protocol_hash,
            assigned_universes: entry.universes.clone(),
            show_hash: self.replication.show_hash.clone(),
            heartbeat_ms: HEARTBEAT_PERIOD.as_millis() as u64,
            reconnect_ms: RECONNECT_PERIOD.as_millis() as u64,
        });
        // A previous link of this node is replaced: its connection is closed.
        if let Some(old) = entry.link.replace(Link { conn_id })
            && old.conn_id != conn_id
        {
            self.outbox.push(Outgoing::Close { conn: old.conn_id });
        }
        entry.last_seen = Some(mono);
        entry.last_heartbeat = Some(now);
        let state = if entry.degraded_reason.is_some() {
            NodeState::Degraded
        } else {
            NodeState::Online
        };
        entry.set_state(state, now);
        let out = &mut self.outbox;
        entry.send(out, protocol::encode(&welcome).into());
        if let Some(denied) = denied {
            entry.send(out, protocol::encode(&denied).into());
        }
        entry.send(out, protocol::encode(&snapshot).into());
        // Unacknowledged commands of the previous link go first, then the queue, in order.
        let mut resend: VecDeque<QueuedCommand> = std::mem::take(&mut entry.in_flight);
        resend.extend(std::mem::take(&mut entry.queue));
        entry.queue = resend;
        flush_queue(entry, out, mono);
        if routing_changed {
            self.routing_epoch += 1;
        }
    }

    /// Adopts the pending connection that claims `node_id` (`connection` chooses one when
    /// several do): links the node on it and binds its id to the control key. Returns the
    /// adoption, to be kept on disk. The other connections claiming the id are closed.
    pub fn adopt(
        &mut self,
        node_id: &str,
        connection: Option<u64>,
        now: SystemTime,
    ) -> Result<Adoption, AdoptError> {
        if self.nodes.contains_key(node_id) || self.adoptions.contains_key(node_id) {
            return Err(AdoptError::Known(node_id.to_string()));
        }
        let candidates: Vec<(u64, String)> = self
            .pending
            .iter()
            .filter(|(c, p)| p.hello.node_id == node_id && connection.is_none_or(|w| w == **c))
            .map(|(c, p)| (*c, p.addr.to_string()))
            .collect();
        let conn_id = match candidates.as_slice() {
            [] => return Err(AdoptError::NotPending(node_id.to_string())),
            [(c, _)] => *c,
            _ => {
                return Err(AdoptError::Ambiguous {
                    node_id: node_id.to_string(),
                    candidates,
                });
            }
        };
        let universes = self
            .pending
            .get(&conn_id)
            .map(|p| p.hello.universes.clone())
            .unwrap_or_default();
        if let Some((universe, owner)) = self.taken(node_id, &universes) {
            return Err(AdoptError::UniverseTaken { universe, owner });
        }
        let Some(request) = self.pending.remove(&conn_id) else {
            return Err(AdoptError::NotPending(node_id.to_string()));
        };
        // The other claimants' connections are closed.
        self.close_pending(node_id);
        let adoption = Adoption {
            node_id: node_id.to_string(),
            key: BoundKey::Control,
            universes: request.hello.universes.clone(),
            capabilities: request.hello.capabilities.clone(),
            address: request.addr.ip().to_string(),
            adopted_at: crate::health::rfc3339(now),
        };
        self.adoptions.insert(node_id.to_string(), adoption.clone());
        self.known_addrs.insert(request.addr.ip().to_canonical());
        tracing::info!(
            "node {node_id}: connection {conn_id} from {} adopted",
            request.addr
        );
        self.link(&request.hello, conn_id, now);
        Ok(adoption)
    }

    /// Closes every pending connection claiming `node_id`.
    fn close_pending(&mut self, node_id: &str) {
        let outbox = &mut self.outbox;
        self.pending.retain(|conn, p| {
            let keep = p.hello.node_id != node_id;
            if !keep {
                outbox.push(Outgoing::Close { conn: *conn });
            }
            keep
        });
    }

    /// Whether connection `conn_id` is `node_id`'s link (a pending one is not).
    pub fn is_linked(&self, node_id: &str, conn_id: u64) -> bool {
        self.nodes
            .get(node_id)
            .and_then(|n| n.link.as_ref())
            .is_some_and(|l| l.conn_id == conn_id)
    }

    /// The link `conn_id` of `node_id` closed (the transport is done with the connection).
    pub fn disconnect(&mut self, node_id: &str, conn_id: u64, now: SystemTime) {
        self.outbox.push(Outgoing::Close { conn: conn_id });
        if self
            .pending
            .get(&conn_id)
            .is_some_and(|p| p.hello.node_id == node_id)
        {
            self.pending.remove(&conn_id);
            return;
        }
        let Some(entry) = self.nodes.get_mut(node_id) else {
            return;
        };
        if entry.link.is_some_and(|l| l.conn_id == conn_id) {
            entry.link = None;
        }
        if entry.link.is_none() && entry.state != NodeState::Pending {
            requeue_in_flight(entry);
            entry.set_state(NodeState::Offline, now);
        }
    }

    /// A heartbeat (WebSocket or REST).
    pub fn heartbeat(
        &mut self,
        node_id: &str,
        metrics: Metrics,
        now: SystemTime,
    ) -> Result<(), SubmitError> {
        let entry = self
            .nodes
            .get_mut(node_id)
            .ok_or_else(|| SubmitError::UnknownNode(node_id.to_string()))?;
        entry.metrics = metrics;
        entry.last_heartbeat = Some(now);
        entry.last_seen = Some(self.clock.now());
        if entry.state == NodeState::Offline && entry.link.is_some() {
            entry.set_state(NodeState::Online, now);
        }
        // A node that outputs DMX well below the show's rate is degraded (issue 16.2: after a
        // clock jump its output ran at 3.6 frames/s while it looked online), and online again
        // once its rate is back.
        let rate = f64::from(self.replication.rate);
        let outputs = !entry.universes.is_empty() && entry.metrics.frames_out > 0;
        let low = rate > 0.0 && outputs && entry.metrics.dmx_fps < rate * LOW_OUTPUT_RATE;
        let ours = entry
            .degraded_reason
            .as_deref()
            .is_some_and(|r| r.starts_with(LOW_OUTPUT_REASON));
        if low && matches!(entry.state, NodeState::Online | NodeState::Degraded) {
            if entry.degraded_reason.is_none() || ours {
                entry.degraded_reason = Some(format!(
                    "{LOW_OUTPUT_REASON}: {:.1} frames/s, the show runs at {rate} Hz",
                    entry.metrics.dmx_fps
                ));
                entry.set_state(NodeState::Degraded, now);
            }
        } else if ours && !low {
            entry.degraded_reason = None;
            entry.set_state(NodeState::Online, now);
        }
        Ok(())
    }

    /// An acknowledgement (WebSocket or REST).
    pub fn ack(
        &mut self,
        node_id: &str,
        command_id: &str,
        status: AckStatus,
        reason: Option<&str>,
        now: SystemTime,
    ) -> Result<(), SubmitError> {
        let entry = self
            .nodes
            .get_mut(node_id)
            .ok_or_else(|| SubmitError::UnknownNode(node_id.to_string()))?;
        entry.last_seen = Some(self.clock.now());
        let Some(pos) = entry
            .in_flight
            .iter()
            .position(|c| c.command_id == command_id)
        else {
            tracing::debug!(
                "node {node_id}: ack for {command_id} not in flight (late or repeated)"
            );
            return Ok(());
        };
        // "Executed before" is only an answer to a re-send: for an id this master sent once,
        // the node ran some other command under it, never this one.
        let first_send = entry.in_flight[pos].attempts <= 1;
        if status == AckStatus::Executed && first_send && reason == Some(protocol::ALREADY_EXECUTED)
        {
            let Some(cmd) = entry.in_flight.remove(pos) else {
                return Ok(());
            };
            entry.failed += 1;
            let message = format!(
                "command {command_id} ({}) was not executed: the node says the id ran before, but this master sent it once",
                serde_json::to_string(&cmd.command).unwrap_or_default()
            );
            entry.degraded_reason = Some(message.clone());
            entry.set_state(NodeState::Degraded, now);
            self.alert(Some(node_id), message, now);
            return Ok(());
        }
        match status {
            AckStatus::Executed => {
                entry.in_flight.remove(pos);
                entry.executed += 1;
                if entry.state == NodeState::Degraded {
                    entry.degraded_reason = None;
                    entry.set_state(NodeState::Online, now);
                }
                Ok(())
            }
            AckStatus::Failed => {
                let reason = reason.unwrap_or("no reason given").to_string();
                self.retry(node_id, pos, &reason, now);
                Ok(())
            }
        }
    }

    fn retry(&mut self, node_id: &str, pos: usize, reason: &str, now: SystemTime) {
        let mono = self.clock.now();
        let Some(entry) = self.nodes.get_mut(node_id) else {
            return;
        };
        let Some(mut cmd) = entry.in_flight.remove(pos) else {
            return;
        };
        if cmd.attempts > MAX_RETRIES {
            entry.failed += 1;
            let message = format!(
                "command {} ({}) failed after {} attempts: {reason}",
                cmd.command_id,
                serde_json::to_string(&cmd.command).unwrap_or_default(),
                cmd.attempts
            );
            entry.degraded_reason = Some(message.clone());
            entry.set_state(NodeState::Degraded, now);
            self.raise(
                NewAlert {
                    severity: Severity::Error,
                    kind: AlertKind::CommandFailed,
                    source: Some(node_id),
                    node_id: Some(node_id),
                    message,
                },
                now,
            );
            return;
        }
        tracing::info!(
            "node {node_id}: command {} attempt {} failed ({reason}); retrying",
            cmd.command_id,
            cmd.attempts
        );
        send_command(entry, &mut self.outbox, &mut cmd, mono);
        entry.in_flight.push_back(cmd);
    }

    /// Takes a command for a node: sent now if it is online, else queued.
    pub fn submit(
        &mut self,
        node_id: &str,
        command: NodeCommand,
    ) -> Result<(String, Delivery), SubmitError> {
        let mono = self.clock.now();
        let entry = self
            .nodes
            .get_mut(node_id)
            .ok_or_else(|| SubmitError::UnknownNode(node_id.to_string()))?;
        if entry.pending_commands() >= MAX_QUEUED {
            return Err(SubmitError::QueueFull(node_id.to_string()));
        }
        self.next_command += 1;
        self.commands_submitted += 1;
        // The master's record first: the snapshot of a (re)connect carries it, whatever
        // happens to the command itself.
        self.replication.record_override(node_id, &command);
        let command_id = format!("cmd-{}-{}-{}", self.master_id, self.boot, self.next_command);
        entry.queue.push_back(QueuedCommand {
            command_id: command_id.clone(),
            command,
            attempts: 0,
            sent_at: None,
        });
        let delivery = if entry.link.is_some() && entry.state != NodeState::Pending {
            flush_queue(entry, &mut self.outbox, mono);
            Delivery::Sent
        } else {
            Delivery::Queued
        };
        Ok((command_id, delivery))
    }

    /// Marks silent nodes offline and re-sends unacknowledged commands. Call a few times a second.
    pub fn check_timeouts(&mut self, now: SystemTime) {
        // A pending request not adopted in time: its connection is closed.
        let outbox = &mut self.outbox;
        self.pending.retain(|conn, p| {
            let waited = now.duration_since(p.since).unwrap_or_default();
            let keep = waited < PENDING_WAIT;
            if !keep {
                tracing::info!(
                    "node {:?}: connection {conn} from {} not adopted within {PENDING_WAIT:?}; closed",
                    p.hello.node_id,
                    p.addr
                );
                outbox.push(Outgoing::Close { conn: *conn });
            }
            keep
        });
        let mono = self.clock.now();
        let mut retries = Vec::new();
        for entry in self.nodes.values_mut() {
            let silent = entry
                .last_seen
                .is_none_or(|t| mono.saturating_duration_since(t) > HEARTBEAT_TIMEOUT);
            if entry.link.is_some() && silent {
                tracing::warn!(
                    "node {}: no heartbeat for {HEARTBEAT_TIMEOUT:?}",
                    entry.node_id
                );
                entry.unlink(&mut self.outbox);
            }
            if entry.link.is_none()
                && matches!(entry.state, NodeState::Online | NodeState::Degraded)
            {
                requeue_in_flight(entry);
                entry.set_state(NodeState::Offline, now);
            }
            if entry.link.is_some()
                && let Some(pos) = entry.in_flight.iter().position(|c| {
                    c.sent_at
                        .is_some_and(|t| mono.saturating_duration_since(t) > ACK_TIMEOUT)
                })
            {
                retries.push((entry.node_id.clone(), pos));
            }
        }
        for (node, pos) in retries {
            self.retry(&node, pos, "no acknowledgement", now);
        }
    }

    /// A new show (or the first): every node gets a fresh snapshot.
    pub fn publish_show(
        &mut self,
        hash: Option<String>,
        ron: Option<Arc<str>>,
        rate: u32,
        state: Option<PlaybackState>,
        tick: u64,
    ) {
        let r = &mut self.replication;
        r.seq += 1;
        r.show_hash = hash;
        r.show_ron = ron;
        r.rate = rate;
        r.state = state;
        r.tick = tick;
        let frame: Arc<str> =
            protocol::encode(&ToReceiver::Snapshot(r.snapshot(self.clock.now()))).into();
        self.broadcast(&frame);
    }

    /// A command the master's engine applied at `tick`: every node gets it as a delta.
    pub fn publish_delta(&mut self, tick: u64, command: Command, state: PlaybackState) {
        let r = &mut self.replication;
        r.seq += 1;
        r.state = Some(state);
        r.tick = r.tick.max(tick);
        let frame: Arc<str> = protocol::encode(&ToReceiver::Delta(Delta {
            seq: r.seq,
            tick,
            command,
        }))
        .into();
        self.broadcast(&frame);
    }

    /// The master's state changed without a command (a follow, a release finishing): the next
    /// snapshot carries it; receivers compute the same change themselves.
    pub fn refresh_state(&mut self, state: PlaybackState, tick: u64) {
        self.replication.state = Some(state);
        self.replication.tick = tick;
    }

    /// The state parts of other plugins, captured from the master's world: when they changed,
    /// every node gets a new snapshot (they have no deltas of their own). Returns whether they
    /// changed.
    pub fn publish_parts(&mut self, mut parts: Parts) -> bool {
        // Net keeps these two by type; their captured copies are not used.
        parts.remove(rockontrol_engine::PLAYBACK_PART);
        parts.remove(protocol::OVERRIDES_PART);
        if parts == self.replication.parts {
            return false;
        }
        let r = &mut self.replication;
        r.parts = parts;
        r.seq += 1;
        let frame: Arc<str> =
            protocol::encode(&ToReceiver::Snapshot(r.snapshot(self.clock.now()))).into();
        self.broadcast(&frame);
        true
    }

    /// What a linked node said after its hello (the transport decoded the frame and checked
    /// that the connection is the node's link): heartbeats, acks and snapshot requests.
    /// `show_tick` is the master's show clock now (a snapshot must not pull the node back).
    /// An `Err` is a message that has no place here, for the transport to answer as an error.
    pub fn receive(
        &mut self,
        node_id: &str,
        msg: ToMaster,
        show_tick: u64,
        now: SystemTime,
    ) -> Result<(), &'static str> {
        match msg {
            ToMaster::Heartbeat { metrics, .. } => {
                let _ = self.heartbeat(node_id, *metrics, now);
            }
            ToMaster::Ack {
                command_id,
                status,
                reason,
            } => {
                let _ = self.ack(node_id, &command_id, status, reason.as_deref(), now);
            }
            ToMaster::SnapshotRequest { reason } => {
                tracing::info!("node {node_id} asks for a snapshot: {reason}");
                self.replication.tick = self.replication.tick.max(show_tick);
                self.send_snapshot(node_id);
            }
            ToMaster::Hello(_) => return Err("hello was already received"),
            ToMaster::Proof { .. } => return Err("a proof only answers a challenge"),
            // The transport answers clock pings itself (they must not wait for this lock).
            ToMaster::ClockPing(_) => return Err("a clock ping is answered by the link"),
        }
        Ok(())
    }

    /// Sends the current snapshot to one node (it asked after a gap).
    pub fn send_snapshot(&mut self, node_id: &str) {
        let frame: Arc<str> = protocol::encode(&ToReceiver::Snapshot(
            self.replication.snapshot(self.clock.now()),
        ))
        .into();
        if let Some(entry) = self.nodes.get(node_id) {
            entry.send(&mut self.outbox, frame);
        }
    }

    /// The show clock, to every node. Skipped while the engine has not refreshed the show
    /// clock ([`Registry::show_time_refreshed`]) for [`SYNC_STALE`] on the registry's clock:
    /// the master is just out of a stall and its clock is about to catch up, and an old tick
    /// would pull receivers back.
    pub fn publish_sync(&mut self, tick: u64) {
        if self.replication.stale(self.clock.now()) {
            tracing::debug!("show clock not refreshed lately (a stall?): no sync this time");
            return;
        }
        let tick = tick.max(self.replication.tick);
        self.replication.tick = tick;
        let rate = self.replication.rate;
        let frame: Arc<str> = protocol::encode(&ToReceiver::Sync {
            tick,
            rate,
            timecode: match self.replication.timecode {
                Some(tc) => tc
                    .label_at_ns(rockontrol_engine::ns_of_tick(tick, rate))
                    .to_string(),
                None => protocol::timecode(tick, rate),
            },
            bpm: self.replication.bpm,
        })
        .into();
        self.broadcast(&frame);
    }

    fn broadcast(&mut self, frame: &Arc<str>) {
        for entry in self.nodes.values() {
            if entry.link.is_some() && entry.state != NodeState::Pending {
                entry.send(&mut self.outbox, Arc::clone(frame));
            }
        }
    }

    /// A node advertised itself over mDNS. Returns true the first time it is seen.
    pub fn saw_over_mdns(&mut self, seen: &crate::discovery::Seen, now: SystemTime) -> bool {
        if seen.node_id.is_empty() || seen.node_id == self.master_id {
            return false;
        }
        let txt = |k: &str| seen.txt.get(k).cloned().unwrap_or_default();
        let entry = Discovered {
            node_id: seen.node_id.clone(),
            role: seen.role.clone(),
            address: seen.addr.ip().to_string(),
            version: txt("version"),
            universes: txt("universes"),
            capabilities: txt("capabilities"),
            last_seen: crate::health::rfc3339(now),
        };
        self.discovered
            .insert(seen.node_id.clone(), entry)
            .is_none()
    }

    /// A node withdrew its mDNS advertisement (`instance` is its node id).
    pub fn mdns_goodbye(&mut self, instance: &str) {
        self.discovered.remove(instance);
    }
}

/// A random tag for this start of the master (12 hex digits), from the standard library's
/// per-process random hash keys, the time and the process id.
fn boot_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
}

fn requeue_in_flight(entry: &mut NodeEntry) {
    while let Some(mut cmd) = entry.in_flight.pop_back() {
        cmd.sent_at = None;
        entry.queue.push_front(cmd);
    }
}

fn send_command(entry: &NodeEntry, out: &mut Vec<Outgoing>, cmd: &mut QueuedCommand, now: Instant) {
    cmd.attempts += 1;
    cmd.sent_at = Some(now);
    let frame: Arc<str> = protocol::encode(&ToReceiver::Command {
        command_id: cmd.command_id.clone(),
        attempt: cmd.attempts,
        command: cmd.command.clone(),
    })
    .into();
    entry.send(out, frame);
}

/// Sends `entry`'s queued commands on its link, in order (they stay in flight until acked).
fn flush_queue(entry: &mut NodeEntry, out: &mut Vec<Outgoing>, now: Instant) {
    if entry.link.is_none() {
        requeue_in_flight(entry);
        return;
    }
    while let Some(mut cmd) = entry.queue.pop_front() {
        send_command(entry, out, &mut cmd, now);
        entry.in_flight.push_back(cmd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NodeConfig, Role, Syntax};
    use crate::protocol::{ToReceiver, decode_to_receiver};

    fn master() -> MasterConfig {
        let text = r#"{"role":"master","node_id":"master-01","listen_port":0,
            "managed_nodes":[{"node_id":"node-01","ip":"127.0.0.1","universe_map":[1,2],"role":"dmx_output"}]}"#;
        match NodeConfig::parse(text, Syntax::Json, "m.json") {
            Ok(NodeConfig::Master(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    fn hello(id: &str) -> Hello {
        Hello {
            node_id: id.into(),
            role: Role::Receiver,
            version: protocol::VERSION.into(),
            protocol: protocol::PROTOCOL_VERSION,
            protocol_hash: protocol::protocol_hash(),
            capabilities: vec![],
            universes: vec![1, 2, 9],
            auth: None,
        }
    }

    fn keyed() -> Peer {
        Peer {
            addr: "127.0.0.1:40001".parse().expect("address"),
            auth: LinkAuth::ControlKey,
        }
    }

    fn keyless(addr: &str) -> Peer {
        Peer {
            addr: addr.parse().expect("address"),
            auth: LinkAuth::Unauthenticated,
        }
    }

    /// The frames queued for connection `conn` (the transport's part): taken from the outbox,
    /// decoded; what is queued for other connections stays.
    fn drain(reg: &mut Registry, conn: u64) -> Vec<ToReceiver> {
        let (mine, others): (Vec<Outgoing>, Vec<Outgoing>) = reg
            .take_outgoing()
            .into_iter()
            .partition(|o| o.conn() == conn);
        reg.outbox = others;
        mine.into_iter()
            .filter_map(|o| match o {
                Outgoing::Frame { frame, .. } => {
                    Some(decode_to_receiver(&frame).expect("valid frame"))
                }
                Outgoing::Close { .. } => None,
            })
            .collect()
    }

    /// Whether the registry asked for connection `conn` to be closed.
    fn closed(reg: &Registry, conn: u64) -> bool {
        reg.outbox.contains(&Outgoing::Close { conn })
    }

    fn command_ids(msgs: &[ToReceiver]) -> Vec<String> {
        msgs.iter()
            .filter_map(|m| match m {
                ToReceiver::Command { command_id, .. } => Some(command_id.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn offline_commands_queue_in_order_and_go_out_after_the_snapshot() {
        let now = SystemTime::now();
        let mut reg = Registry::new(&master(), now);
        let (a, _) = reg.submit("node-01", NodeCommand::Clear).expect("known");
        let (b, d) = reg
            .submit("node-01", NodeCommand::Blackout { on: true })
            .expect("known");
        assert_eq!(d, Delivery::Queued, "node-01 is offline");
        let rx = reg
            .hello(&hello("node-01"), &keyed(), now)
            .expect("accepted")
            .conn_id();
        let msgs = drain(&mut reg, rx);
        assert!(
            matches!(&msgs[0], ToReceiver::Welcome(w) if w.assigned_universes == vec![1, 2]),
            "welcome with the universe_map (9 is outside it): {msgs:?}"
        );
        assert!(
            matches!(&msgs[1], ToReceiver::Error { reason } if reason.contains("universes [9] are not this node's")),
            "{msgs:?}"
        );
        assert!(matches!(msgs[2], ToReceiver::Snapshot(_)), "{msgs:?}");
        assert_eq!(command_ids(&msgs), vec![a.clone(), b.clone()]);
        // The link drops before any ack: both go out again, in order, on the next link.
        reg.disconnect("node-01", 1, now);
        assert_eq!(reg.nodes["node-01"].state, NodeState::Offline);
        let rx = reg
            .hello(&hello("node-01"), &keyed(), now)
            .expect("accepted")
            .conn_id();
        assert_eq!(
            command_ids(&drain(&mut reg, rx)),
            vec![a.clone(), b.clone()]
        );
        reg.ack("node-01", &a, AckStatus::Executed, None, now)
            .expect("ok");
        reg.ack("node-01", &b, AckStatus::Executed, None, now)
            .expect("ok");
        reg.ack("node-01", &b, AckStatus::Executed, None, now)
            .expect("repeat is harmless");
        assert_eq!(reg.nodes["node-01"].executed, 2);
        assert_eq!(reg.nodes["node-01"].pending_commands(), 0);
    }

    #[test]
    fn failures_are_retried_three_times_then_the_node_is_degraded() {
        let now = SystemTime::now();
        let mut reg = Registry::new(&master(), now);
        let rx = reg
            .hello(&hello("node-01"), &keyed(), now)
            .expect("accepted")
            .conn_id();
        drain(&mut reg, rx);
        let (id, d) = reg.submit("node-01", NodeCommand::Clear).expect("known");
        assert_eq!(d, Delivery::Sent);
        for attempt in 1..=4 {
            let msgs = drain(&mut reg, rx);
            assert!(
                matches!(&msgs[..], [ToReceiver::Command { attempt: a, .. }] if *a == attempt),
                "attempt {attempt}: {msgs:?}"
            );
            reg.ack("node-01", &id, AckStatus::Failed, Some("no such cue"), now)
                .expect("ok");
        }
        assert!(drain(&mut reg, rx).is_empty(), "no fifth attempt");
        assert_eq!(reg.nodes["node-01"].state, NodeState::Degraded);
        assert!(
            reg.alerts()
                .iter()
                .any(|a| a.message.contains("failed after 4 attempts")
                    && a.severity == Severity::Error),
            "{:?}",
            reg.alerts()
        );
    }

    #[test]
    fn duplicate_ids_and_mismatched_builds_are_refused() {
        let now = SystemTime::now();
        let mut reg = Registry::new(&master(), now);
        reg.hello(&hello("node-01"), &keyed(), now).expect("first");
        assert_eq!(
            reg.hello(&hello("node-01"), &keyed(), now),
            Err(Refusal::DuplicateId("node-01".into()))
        );
        let mut old = hello("node-02");
        old.protocol_hash = "0000000000000000".into();
        assert!(matches!(
            reg.hello(&old, &keyed(), now),
            Err(Refusal::Protocol { .. })
        ));
        assert!(
            !reg.nodes.contains_key("node-02"),
            "a refused build is not listed"
        );
    }

    /// Issue 10 defect 4 and issue 16 item 6: a key-less hello changed the registry before any
    /// key was checked (an offline managed node went pending with the caller's version), and
    /// 2,000 of them made 2,000 entries.
    #[test]
    fn a_keyless_hello_changes_nothing_and_pending_connections_are_capped() {
        let now = SystemTime::now();
        let mut reg = Registry::new(&master(), now);
        let mut spoof = hello("node-01");
        spoof.version = "attacker-9.9".into();
        assert_eq!(
            reg.hello(&spoof, &keyless("10.0.0.66:5000"), now),
            Err(Refusal::KeyRequired("node-01".into())),
            "a managed id needs its key"
        );
        let n = &reg.nodes["node-01"];
        assert_eq!((n.state, n.version.as_deref()), (NodeState::Offline, None));
        assert!(
            reg.take_outgoing().is_empty(),
            "no welcome, show or snapshot"
        );
        assert!(reg.pending().is_empty());
        let before = reg.nodes.len();
        let mut refused = 0;
        for i in 0..2000 {
            match reg.hello(&hello(&format!("x-{i}")), &keyless("10.0.0.66:5001"), now) {
                Ok(Admitted::Pending(_)) => {}
                Err(Refusal::TooManyPendingFrom(ip)) if ip.to_string() == "10.0.0.66" => {
                    refused += 1
                }
                other => panic!("hello {i}: {other:?}"),
            }
        }
        assert_eq!(
            reg.nodes.len(),
            before,
            "no entry for an unauthenticated node"
        );
        assert_eq!(
            (reg.pending().len(), refused),
            (MAX_PENDING_PER_ADDRESS, 2000 - MAX_PENDING_PER_ADDRESS),
            "one address holds its share of the pending places"
        );
        assert_eq!(
            reg.alerts()
                .iter()
                .filter(|a| a.kind == AlertKind::RefusedHello)
                .map(|a| (a.source.clone(), a.count))
                .collect::<Vec<_>>(),
            vec![(
                Some("10.0.0.66".into()),
                1 + 2000 - MAX_PENDING_PER_ADDRESS as u64
            )],
            "refusals aggregate per source"
        );
        // From many addresses: MAX_PENDING in all.
        let mut refused = 0;
        for i in 0..2000 {
            let from = format!("10.0.1.{}:5001", i % 200);
            match reg.hello(&hello(&format!("y-{i}")), &keyless(&from), now) {
                Ok(Admitted::Pending(_)) => {}
                Err(Refusal::TooManyPending | Refusal::TooManyPendingFrom(_)) => refused += 1,
                other => panic!("hello {i}: {other:?}"),
            }
        }
        assert_eq!(reg.pending().len(), MAX_PENDING);
        assert_eq!(refused, 2000 - (MAX_PENDING - MAX_PENDING_PER_ADDRESS));
        // Pending connections are closed after a while, which makes room again.
        reg.check_timeouts(now + PENDING_WAIT);
        assert!(reg.pending().is_empty());
    }

    /// Issue 16 item 6: adoption was per claimed id, so any later key-less hello with the id
    /// was welcomed (show, snapshot, commands).
    #[test]
    fn adoption_takes_the_pending_connection_and_binds_the_id_to_the_key() {
        let now = SystemTime::now();
        let mut reg = Registry::new(&master(), now);
        let mut own = hello("node-05");
        own.universes = vec![5];
        let a = reg
            .hello(&own, &keyless("10.0.0.5:4000"), now)
            .expect("pending");
        assert!(matches!(a, Admitted::Pending(_)));
        let notice = drain(&mut reg, a.conn_id());
        assert!(
            matches!(&notice[..], [ToReceiver::Error { reason }] if reason.contains("waits for an operator")),
            "only a notice while pending: {notice:?}"
        );
        // An impostor claims the same id from elsewhere: two candidates, the operator picks.
        let b = reg
            .hello(&own, &keyless("10.0.0.66:4000"), now)
            .expect("pending too");
        assert!(matches!(
            reg.adopt("node-05", None, now),
            Err(AdoptError::Ambiguous { .. })
        ));
        assert!(!reg.is_linked("node-05", a.conn_id()));
        assert_eq!(
            reg.adopt("node-09", None, now),
            Err(AdoptError::NotPending("node-09".into()))
        );
        let adoption = reg
            .adopt("node-05", Some(a.conn_id()), now)
            .expect("adopted");
        assert_eq!(
            (
                adoption.address.as_str(),
                adoption.key,
                adoption.universes.clone()
            ),
            ("10.0.0.5", BoundKey::Control, vec![5])
        );
        assert!(
            reg.is_linked("node-05", a.conn_id()),
            "the chosen connection"
        );
        assert!(!reg.is_linked("node-05", b.conn_id()));
        let msgs = drain(&mut reg, a.conn_id());
        assert!(
            matches!(&msgs[..], [ToReceiver::Welcome(w), ToReceiver::Snapshot(_)] if w.assigned_universes == vec![5]),
            "{msgs:?}"
        );
        assert!(
            closed(&reg, b.conn_id()),
            "the impostor's connection is closed"
        );
        assert!(!closed(&reg, a.conn_id()));
        let _ = drain(&mut reg, b.conn_id()); // its notice and close, written
        assert!(reg.pending().is_empty());
        assert_eq!(reg.adoptions(), vec![adoption.clone()]);
        // Later, key-less claims of the id are refused; with the key it links.
        reg.disconnect("node-05", a.conn_id(), now);
        assert_eq!(
            reg.take_outgoing(),
            vec![Outgoing::Close { conn: a.conn_id() }]
        );
        assert_eq!(
            reg.hello(&own, &keyless("10.0.0.5:4001"), now),
            Err(Refusal::KeyRequired("node-05".into()))
        );
        assert!(
            reg.take_outgoing().is_empty(),
            "nothing for a refused hello"
        );
        assert_eq!(reg.nodes["node-05"].state, NodeState::Offline);
        assert!(matches!(
            reg.hello(&own, &keyed(), now),
            Ok(Admitted::Linked(_))
        ));
        // A master started again with the adoptions it kept refuses key-less claims too.
        let mut again = Registry::new(&master(), now);
        again.restore_adoptions(vec![adoption], now);
        assert_eq!(again.nodes["node-05"].universes, vec![5]);
        assert_eq!(
            again.hello(&own, &keyless("10.0.0.5:4002"), now),
            Err(Refusal::KeyRequired("node-05".into()))
        );
        assert!(again.is_known_address("10.0.0.5".parse().expect("ip")));
    }

    #[test]
    fn an_adopted_node_may_not_take_another_nodes_universes() {
        let now = SystemTime::now();
        let mut reg = Registry::new(&master(), now);
        reg.hello(&hello("node-03"), &keyless("10.0.0.3:1"), now)
            .expect("pending");
        assert_eq!(
            reg.adopt("node-03", None, now),
            Err(AdoptError::UniverseTaken {
                universe: 1,
                owner: "node-01".into()
            }),
            "universes 1 and 2 are node-01's"
        );
        assert!(!reg.nodes.contains_key("node-03"));
    }

    /// Issue 10 defect 5: the master's own universes were computed once at start.
    #[test]
    fn the_master_outputs_the_universes_no_node_is_given() {
        let now = SystemTime::now();
        let mut reg = Registry::new(&master(), now);
        let show = [1, 2, 3, 4];
        assert_eq!(
            reg.local_universes(&show),
            vec![3, 4],
            "node-01 has 1 and 2"
        );
        let epoch = reg.routing_epoch();
        reg.register("node-07", vec![], vec![3], now)
            .expect("registered");
        assert!(
            reg.routing_epoch() > epoch,
            "a registration moves the epoch"
        );
        assert_eq!(reg.local_universes(&show), vec![4]);
        let epoch = reg.routing_epoch();
        reg.register("node-07", vec![], vec![3], now)
            .expect("again");
        assert_eq!(reg.routing_epoch(), epoch, "the same universes: no change");
        // A node linking with universes of its own takes them over.
        let mut late = hello("node-08");
        late.universes = vec![4];
        reg.hello(&late, &keyed(), now).expect("linked");
        assert!(reg.routing_epoch() > epoch);
        assert!(reg.local_universes(&show).is_empty());
        // The operator takes universe 4 back: the master outputs it again; a conflict is one.
        reg.assign("node-08", 4, false, now).expect("known");
        assert_eq!(reg.local_universes(&show), vec![4]);
        assert!(reg.conflicts().is_empty());
        reg.assign("node-08", 3, true, now).expect("known");
        assert_eq!(
            reg.conflicts(),
            vec![UniverseConflict {
                universe: 3,
                nodes: vec!["node-07".into(), "node-08".into()]
            }]
        );
        assert!(
            reg.alerts()
                .iter()
                .any(|a| a.kind == AlertKind::UniverseConflict
                    && a.severity == Severity::Error
                    && a.message
                        == "universe conflict: universe 3 is assigned to node-07 and node-08"),
            "{:?}",
            reg.alerts()
        );
    }

    #[test]
    fn nodes_seen_over_mdns_are_listed_until_they_say_goodbye() {
        let now = SystemTime::now();
        let mut reg = Registry::new(&master(), now);
        let seen = crate::discovery::Seen {
            node_id: "node-05".into(),
            role: "receiver".into(),
            addr: "127.0.0.1:9000".parse().expect("addr"),
            txt: [("universes", "5,6"), ("version", "0.1.0")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        assert!(reg.saw_over_mdns(&seen, now), "new");
        assert!(!reg.saw_over_mdns(&seen, now), "seen again: not new");
        assert_eq!(reg.discovered["node-05"].universes, "5,6");
        let mut me = seen.clone();
        me.node_id = "master-01".into();
        assert!(!reg.saw_over_mdns(&me, now), "the master's own advert");
        reg.mdns_goodbye("node-05");
        assert!(reg.discovered.is_empty());
    }

    #[test]
    fn deltas_carry_consecutive_sequence_numbers_to_every_online_node() {
        let now = SystemTime::now();
        let mut reg = Registry::new(&master(), now);
        let rx = reg
            .hello(&hello("node-01"), &keyed(), now)
            .expect("accepted")
            .conn_id();
        drain(&mut reg, rx);
        let state = PlaybackState {
            effects: Vec::new(),
            grand_master: 1.0,
            blackout: false,
            action_seq: 0,
            playbacks: vec![],
        };
        for _ in 0..3 {
            reg.publish_delta(10, Command::Blackout { on: true }, state.clone());
        }
        let seqs: Vec<u64> = drain(&mut reg, rx)
            .iter()
            .filter_map(|m| match m {
                ToReceiver::Delta(d) => Some(d.seq),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, vec![1, 2, 3]);
        assert!(
            reg.register("node-09", vec![], vec![2], now).is_err(),
            "universe 2 belongs to node-01"
        );
    }

    #[test]
    fn a_node_outputting_well_below_the_show_rate_is_degraded_with_the_reason() {
        let now = SystemTime::now();
        let mut reg = Registry::new(&master(), now);
        reg.hello(&hello("node-01"), &keyed(), now)
            .expect("accepted");
        reg.publish_show(None, None, 44, None, 0);
        let beat = |fps: f64| Metrics {
            dmx_fps: fps,
            frames_out: 1000,
            ..Metrics::default()
        };
        reg.heartbeat("node-01", beat(44.0), now).expect("known");
        assert_eq!(
            reg.nodes["node-01"].state,
            NodeState::Online,
            "44 fps at 44 Hz"
        );
        let later = now + Duration::from_secs(1);
        reg.heartbeat("node-01", beat(3.6), later).expect("known");
        let node = &reg.nodes["node-01"];
        assert_eq!(
            node.state,
            NodeState::Degraded,
            "3.6 fps at 44 Hz is degraded"
        );
        assert_eq!(node.state_since, later);
        assert_eq!(
            node.degraded_reason.as_deref(),
            Some("DMX output rate low: 3.6 frames/s, the show runs at 44 Hz")
        );
        reg.heartbeat("node-01", beat(43.9), later + Duration::from_secs(1))
            .expect("known");
        let node = &reg.nodes["node-01"];
        assert_eq!(
            node.state,
            NodeState::Online,
            "back to 44 fps: online again"
        );
        assert_eq!(node.degraded_reason, None);
        // A node that outputs nothing (no frames yet) is not judged by its rate.
        reg.heartbeat(
            "node-01",
            Metrics::default(),
            later + Duration::from_secs(2),
        )
        .expect("known");
        assert_eq!(reg.nodes["node-01"].state, NodeState::Online);
    }

    #[test]
    fn command_ids_never_repeat_across_restarts_or_masters() {
        let now = SystemTime::now();
        let mut first = Registry::new(&master(), now);
        let (a, _) = first.submit("node-01", NodeCommand::Clear).expect("known");
        // The same master started again with the same config and state, and a standby with
        // the same id: each starts counting at 1, and no id repeats.
        let mut again = Registry::new(&master(), now);
        let (b, _) = again.submit("node-01", NodeCommand::Clear).expect("known");
        let mut standby = Registry::new(&master(), now);
        let (c, _) = standby
            .submit("node-01", NodeCommand::Clear)
            .expect("known");
        assert!(a.starts_with("cmd-master-01-"), "{a}");
        assert!(a != b && b != c && a != c, "{a} {b} {c}");
        let (a2, _) = first.submit("node-01", NodeCommand::Clear).expect("known");
        assert_ne!(a, a2);
    }

    #[test]
    fn already_executed_for_an_id_sent_once_is_not_counted_as_executed() {
        let now = SystemTime::now();
        let mut reg = Registry::new(&master(), now);
        let rx = reg
            .hello(&hello("node-01"), &keyed(), now)
            .expect("accepted")
            .conn_id();
        drain(&mut reg, rx);
        let (id, _) = reg
            .submit("node-01", NodeCommand::Blackout { on: false })
            .expect("known");
        reg.ack(
            "node-01",
            &id,
            AckStatus::Executed,
            Some(protocol::ALREADY_EXECUTED),
            now,
        )
        .expect("ok");
        let n = &reg.nodes["node-01"];
        assert_eq!(
            (n.executed, n.failed, n.state),
            (0, 1, NodeState::Degraded),
            "the node ran something else under this id: not executed"
        );
        assert!(
            reg.alerts.iter().any(|a| a.message.contains(&id)),
            "{:?}",
            reg.alerts
        );
        // A re-send (attempt 2) answered "already executed" is the lost-ack case: executed.
        let (id2, _) = reg.submit("node-01", NodeCommand::Clear).expect("known");
        reg.check_timeouts(now);
        reg.ack("node-01", &id2, AckStatus::Failed, Some("busy"), now)
            .expect("ok");
        reg.ack(
            "node-01",
            &id2,
            AckStatus::Executed,
            Some(protocol::ALREADY_EXECUTED),
            now,
        )
        .expect("ok");
        assert_eq!(reg.nodes["node-01"].executed, 1);
    }

    #[test]
    fn node_overrides_are_the_masters_and_every_snapshot_carries_them() {
        let now = SystemTime::now();
        let mut reg = Registry::new(&master(), now);
        reg.submit("node-01", NodeCommand::Blackout { on: true })
            .expect("known");
        reg.submit("node-01", NodeCommand::Intensity { level: 1.5 })
            .expect("known, refused by the node later");
        let rx = reg
            .hello(&hello("node-01"), &keyed(), now)
            .expect("accepted")
            .conn_id();
        let snapshot = drain(&mut reg, rx)
            .into_iter()
            .find_map(|m| match m {
                ToReceiver::Snapshot(s) => Some(s),
                _ => None,
            })
            .expect("a snapshot on connect");
        assert_eq!(
            snapshot.overrides().expect("overrides").get("node-01"),
            Some(&protocol::NodeOverride {
                blackout: true,
                intensity: 1.0
            }),
            "the blackout is in the snapshot; the out-of-range intensity is not"
        );
        // A new show (or any later snapshot) still carries it.
        reg.publish_show(None, None, 44, None, 10);
        let again = drain(&mut reg, rx)
            .into_iter()
            .find_map(|m| match m {
                ToReceiver::Snapshot(s) => Some(s),
                _ => None,
            })
            .expect("a snapshot");
        assert!(again.overrides().expect("overrides")["node-01"].blackout);
        reg.submit("node-01", NodeCommand::Blackout { on: false })
            .expect("known");
        reg.send_snapshot("node-01");
        let cleared = drain(&mut reg, rx)
            .into_iter()
            .find_map(|m| match m {
                ToReceiver::Snapshot(s) => Some(s),
                _ => None,
            })
            .expect("a snapshot");
        assert!(
            cleared.overrides().expect("overrides").is_empty(),
            "neutral again: nothing to carry"
        );
    }

    /// A registry on a manual clock with node-01 linked, and its frames.
    fn linked_on_manual_clock() -> (Registry, MonoClock, u64, SystemTime) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut reg = Registry::new(&master(), now);
        let clock = MonoClock::manual();
        reg.set_clock(clock.clone());
        let rx = reg
            .hello(&hello("node-01"), &keyed(), now)
            .expect("accepted")
            .conn_id();
        drain(&mut reg, rx);
        (reg, clock, rx, now)
    }

    fn attempts(msgs: &[ToReceiver]) -> Vec<u32> {
        msgs.iter()
            .filter_map(|m| match m {
                ToReceiver::Command { attempt, .. } => Some(*attempt),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_unacknowledged_command_is_resent_after_the_ack_timeout_then_degrades() {
        let (mut reg, clock, rx, now) = linked_on_manual_clock();
        let (id, _) = reg
            .submit("node-01", NodeCommand::Blackout { on: true })
            .expect("known");
        assert_eq!(attempts(&drain(&mut reg, rx)), vec![1]);
        for attempt in 2..=4 {
            // Heartbeats keep the node online; only the ack is missing.
            clock.advance(ACK_TIMEOUT);
            reg.heartbeat("node-01", Metrics::default(), now)
                .expect("known");
            reg.check_timeouts(now);
            assert_eq!(
                attempts(&drain(&mut reg, rx)),
                Vec::<u32>::new(),
                "exactly {ACK_TIMEOUT:?} is not past the timeout yet (attempt {attempt})"
            );
            clock.advance(Duration::from_millis(1));
            reg.check_timeouts(now);
            assert_eq!(
                attempts(&drain(&mut reg, rx)),
                vec![attempt],
                "resent once the ack is {ACK_TIMEOUT:?} + 1 ms late"
            );
        }
        assert_eq!(reg.nodes["node-01"].state, NodeState::Online);
        clock.advance(ACK_TIMEOUT + Duration::from_millis(1));
        reg.heartbeat("node-01", Metrics::default(), now)
            .expect("known");
        reg.check_timeouts(now);
        assert!(drain(&mut reg, rx).is_empty(), "no fifth attempt");
        let node = &reg.nodes["node-01"];
        assert_eq!(
            node.state,
            NodeState::Degraded,
            "given up after 1 + {MAX_RETRIES}"
        );
        assert!(
            node.degraded_reason
                .as_deref()
                .is_some_and(|r| r.contains(&id) && r.contains("no acknowledgement")),
            "{:?}",
            node.degraded_reason
        );
        assert_eq!(node.pending_commands(), 0, "dropped, not kept in flight");
    }

    #[test]
    fn an_ack_in_time_stops_the_resends() {
        let (mut reg, clock, rx, now) = linked_on_manual_clock();
        let (id, _) = reg.submit("node-01", NodeCommand::Ping {}).expect("known");
        drain(&mut reg, rx);
        clock.advance(ACK_TIMEOUT - Duration::from_millis(1));
        reg.ack("node-01", &id, AckStatus::Executed, None, now)
            .expect("ok");
        clock.advance(ACK_TIMEOUT * 10);
        reg.heartbeat("node-01", Metrics::default(), now)
            .expect("known");
        reg.check_timeouts(now);
        assert!(
            drain(&mut reg, rx).is_empty(),
            "nothing resent after the ack"
        );
        assert_eq!(reg.nodes["node-01"].executed, 1);
    }

    #[test]
    fn a_silent_node_goes_offline_after_the_heartbeat_timeout_and_keeps_its_commands() {
        let (mut reg, clock, rx, now) = linked_on_manual_clock();
        let (id, _) = reg
            .submit("node-01", NodeCommand::Blackout { on: true })
            .expect("known");
        drain(&mut reg, rx);
        // Heartbeats reset the silence: 2 × 2.5 s with a heartbeat between is not silence.
        clock.advance(HEARTBEAT_TIMEOUT / 2 + HEARTBEAT_TIMEOUT / 3);
        reg.heartbeat("node-01", Metrics::default(), now)
            .expect("known");
        reg.ack("node-01", &id, AckStatus::Executed, None, now)
            .expect("ok");
        clock.advance(HEARTBEAT_TIMEOUT);
        reg.check_timeouts(now);
        assert_eq!(
            reg.nodes["node-01"].state,
            NodeState::Online,
            "exactly {HEARTBEAT_TIMEOUT:?} of silence is not past the timeout"
        );
        let (queued, _) = reg
            .submit("node-01", NodeCommand::Blackout { on: false })
            .expect("known");
        drain(&mut reg, rx);
        clock.advance(Duration::from_millis(1));
        let later = now + Duration::from_secs(7);
        reg.check_timeouts(later);
        let node = &reg.nodes["node-01"];
        assert_eq!(
            node.state,
            NodeState::Offline,
            "silent for longer than the timeout"
        );
        assert_eq!(
            node.state_since, later,
            "offline since the wall time passed in"
        );
        assert!(node.link.is_none(), "the link is dropped");
        assert_eq!(
            node.pending_commands(),
            1,
            "the unacknowledged command waits for the next link"
        );
        // A duplicate hello is refused while a live link is fresh, accepted once it is silent.
        let rx = reg
            .hello(&hello("node-01"), &keyed(), later)
            .expect("the silent node reconnects")
            .conn_id();
        let msgs = drain(&mut reg, rx);
        assert_eq!(
            command_ids(&msgs),
            vec![queued],
            "the kept command goes out again"
        );
        assert_eq!(reg.nodes["node-01"].state, NodeState::Online);
    }

    #[test]
    fn a_live_link_refuses_a_second_hello_until_it_is_silent() {
        let (mut reg, clock, first, now) = linked_on_manual_clock();
        clock.advance(HEARTBEAT_TIMEOUT - Duration::from_millis(1));
        let refused = reg.hello(&hello("node-01"), &keyed(), now);
        assert!(refused.is_err(), "node-01 is linked and heard from lately");
        clock.advance(Duration::from_millis(2));
        let taken = reg
            .hello(&hello("node-01"), &keyed(), now)
            .expect("silent for {HEARTBEAT_TIMEOUT:?}: the new connection takes over")
            .conn_id();
        assert!(closed(&reg, first), "the old connection is closed");
        assert!(reg.is_linked("node-01", taken));
        assert!(!reg.is_linked("node-01", first));
    }

    /// The transport reports a connection whose writer queue is full: the node is cut off, and
    /// what was in flight on it waits for its next link (the registry owns no channel).
    #[test]
    fn a_link_the_transport_cannot_write_to_is_dropped_and_its_commands_kept() {
        let (mut reg, clock, conn, now) = linked_on_manual_clock();
        let (id, delivery) = reg
            .submit("node-01", NodeCommand::Blackout { on: true })
            .expect("known");
        assert_eq!(delivery, Delivery::Sent);
        assert_eq!(command_ids(&drain(&mut reg, conn)), vec![id.clone()]);
        reg.link_failed(conn);
        assert!(!reg.is_linked("node-01", conn));
        assert!(
            !reg.send_on("node-01", conn, "{}".into()),
            "nothing more for a dropped link"
        );
        assert!(reg.take_outgoing().is_empty());
        reg.check_timeouts(now);
        assert_eq!(reg.nodes["node-01"].state, NodeState::Offline);
        clock.advance(Duration::from_millis(10));
        let again = reg
            .hello(&hello("node-01"), &keyed(), now)
            .expect("it reconnects at once: its old link is gone")
            .conn_id();
        let msgs = drain(&mut reg, again);
        assert_eq!(command_ids(&msgs), vec![id], "the command goes out again");
    }

    /// Snapshots and syncs read show time from the engine's time base over the time passed on
    /// the registry's clock: a manual clock steers them, and a slewed or stepped base moves
    /// them.
    #[test]
    fn snapshot_ticks_follow_the_engines_show_time_base_on_the_injected_clock() {
        let (mut reg, clock, conn, _now) = linked_on_manual_clock();
        let rate = 40;
        let mut base = ShowTimeBase::new(rate, clock.now());
        base.step_to_tick(clock.now(), 100, "test");
        reg.show_time_refreshed(100, base, clock.now());
        assert_eq!(
            reg.show_tick(),
            100,
            "just refreshed: the engine's next tick"
        );
        // Half a second later the engine has not refreshed (a stall): show time ran on.
        clock.advance(Duration::from_millis(500));
        assert_eq!(reg.show_tick(), 120, "20 ticks at 40 Hz");
        reg.send_snapshot("node-01");
        let ticks: Vec<u64> = drain(&mut reg, conn)
            .iter()
            .filter_map(|m| match m {
                ToReceiver::Snapshot(s) => Some(s.tick),
                _ => None,
            })
            .collect();
        assert_eq!(ticks, vec![120]);
        // Not refreshed for over SYNC_STALE: no sync goes out; after a refresh it does.
        reg.publish_sync(110);
        assert!(drain(&mut reg, conn).is_empty(), "stale: no sync");
        reg.show_time_refreshed(120, base, clock.now());
        reg.publish_sync(120);
        assert!(
            matches!(
                &drain(&mut reg, conn)[..],
                [ToReceiver::Sync { tick: 120, .. }]
            ),
            "fresh again: a sync"
        );
        // Clock sync slews the base 100 ms ahead at +50 % (over 200 ms): the snapshot's tick
        // runs ahead with it.
        let target = base.show_ns_at(clock.now()) + 100_000_000;
        base.slew(clock.now(), target, 500_000);
        reg.show_time_refreshed(120, base, clock.now());
        clock.advance(Duration::from_millis(200));
        assert_eq!(
            reg.show_tick(),
            132,
            "300 ms of show time in 200 ms: 12 ticks, not 8"
        );
        // A step of the base moves the next snapshot with it.
        base.step_to_tick(clock.now(), 400, "test step");
        reg.show_time_refreshed(400, base, clock.now());
        clock.advance(Duration::from_millis(100));
        assert_eq!(reg.show_tick(), 404);
    }
}
