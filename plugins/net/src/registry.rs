//! The master's view of its nodes: registration, links, health, command delivery and the
//! replication stream. Plain data and logic: no sockets, no Bevy, time passed in.
//!
//! Each online node has a bounded outgoing queue of encoded frames (its WebSocket writer
//! drains it). A node whose queue is full is cut off rather than slowing anybody else down; it
//! reconnects and catches up from a snapshot.
//!
//! Commands for a node get a `command_id` and wait in the node's queue while it is offline;
//! on (re)connect they go out in order after the snapshot. A command stays in flight until the
//! node acknowledges it; a failure or a missing ack is retried up to [`MAX_RETRIES`] times,
//! then the node is marked degraded and an alert is raised. Nodes never apply a command id
//! twice, so re-sending after a lost ack is safe.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rockontrol_engine::{Command, PlaybackState};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::{Capability, ManagedNode, MasterConfig};
use crate::protocol::{
    self, AckStatus, Delta, Hello, Metrics, NodeCommand, Snapshot, ToReceiver, Welcome,
};

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
/// Commands kept for an offline node.
pub const MAX_QUEUED: usize = 100_000;
/// A node reporting a DMX frame rate below this share of the show's tick rate is degraded.
pub const LOW_OUTPUT_RATE: f64 = 0.75;
/// How the degraded reason of a low output rate begins.
const LOW_OUTPUT_REASON: &str = "DMX output rate low";

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

/// Where a node's frames go: the writer of its WebSocket.
#[derive(Debug, Clone)]
pub struct Link {
    pub conn_id: u64,
    pub tx: mpsc::Sender<Arc<str>>,
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
    pub node_id: String,
    pub managed: Option<ManagedNode>,
    pub capabilities: Vec<Capability>,
    pub universes: Vec<u16>,
    pub state: NodeState,
    pub state_since: SystemTime,
    pub last_heartbeat: Option<SystemTime>,
    last_seen: Option<Instant>,
    pub metrics: Metrics,
    pub link: Option<Link>,
    pub version: Option<String>,
    queue: VecDeque<QueuedCommand>,
    in_flight: VecDeque<QueuedCommand>,
    pub executed: u64,
    pub failed: u64,
    pub degraded_reason: Option<String>,
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

    /// Commands waiting (queued or unacknowledged).
    pub fn pending_commands(&self) -> usize {
        self.queue.len() + self.in_flight.len()
    }

    fn send(&mut self, frame: Arc<str>) -> bool {
        let Some(link) = &self.link else { return false };
        match link.tx.try_send(frame) {
            Ok(()) => true,
            Err(_) => {
                // Full or closed: cut the node off; it reconnects and resynchronises.
                tracing::warn!(
                    "node {}: outgoing queue full or closed; dropping its link",
                    self.node_id
                );
                self.link = None;
                false
            }
        }
    }
}

/// An operator alert (command failures, conflicts, refused nodes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub time: String,
    pub node_id: Option<String>,
    pub message: String,
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

/// The replicated show and playback state, as the master last published it.
#[derive(Debug, Default)]
pub struct Replication {
    pub seq: u64,
    /// The master's next show tick (refreshed every frame).
    pub tick: u64,
    pub rate: u32,
    pub show_hash: Option<String>,
    /// Canonical RON of the show, served at `/api/show/{hash}`.
    pub show_ron: Option<Arc<str>>,
    pub state: Option<PlaybackState>,
}

impl Replication {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            seq: self.seq,
            tick: self.tick,
            rate: self.rate,
            show_hash: self.show_hash.clone(),
            state: self.state.clone(),
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
    pub master_id: String,
    pub nodes: BTreeMap<String, NodeEntry>,
    pub alerts: Vec<Alert>,
    pub replication: Replication,
    pub adopted: BTreeSet<String>,
    next_command: u64,
    next_conn: u64,
    /// Commands accepted for nodes (all time).
    pub commands_submitted: u64,
    /// Nodes advertising `_rockontrol._tcp`, by node id.
    pub discovered: BTreeMap<String, Discovered>,
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
            alerts: Vec::new(),
            replication: Replication {
                rate: 44,
                ..Replication::default()
            },
            adopted: BTreeSet::new(),
            next_command: 0,
            next_conn: 0,
            commands_submitted: 0,
            discovered: BTreeMap::new(),
        };
        for c in config.conflicts() {
            registry.alert(
                None,
                format!(
                    "universe conflict: universe {} is assigned to {}",
                    c.universe,
                    c.nodes.join(" and ")
                ),
                now,
            );
        }
        registry
    }

    /// Raises an operator alert (logged, listed at `GET /api/alerts`).
    pub fn alert(&mut self, node_id: Option<&str>, message: String, now: SystemTime) {
        tracing::warn!("ALERT {}: {message}", node_id.unwrap_or("master"));
        self.alerts.push(Alert {
            time: crate::health::rfc3339(now),
            node_id: node_id.map(str::to_string),
            message,
        });
        if self.alerts.len() > 1000 {
            self.alerts.remove(0);
        }
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
            if let Some(owner) = self
                .nodes
                .values()
                .find(|n| n.node_id != node_id && n.universes.contains(u))
            {
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
        if entry.managed.is_none() {
            entry.universes = universes;
        }
        Ok(entry)
    }

    /// A receiver's hello on a new link. On success returns the connection id; the welcome,
    /// the snapshot and any queued commands are already in the link's queue.
    pub fn hello(
        &mut self,
        hello: &Hello,
        authorized: bool,
        tx: mpsc::Sender<Arc<str>>,
        now: SystemTime,
    ) -> Result<u64, Refusal> {
        if hello.protocol != protocol::PROTOCOL_VERSION
            || hello.protocol_hash != protocol::protocol_hash()
        {
            let refusal = Refusal::Protocol {
                master_version: protocol::VERSION.into(),
                master_hash: protocol::protocol_hash(),
                node_version: hello.version.clone(),
                node_hash: hello.protocol_hash.clone(),
            };
            self.alert(Some(&hello.node_id), refusal.to_string(), now);
            return Err(refusal);
        }
        crate::config::check_node_id(&hello.node_id).map_err(Refusal::Invalid)?;
        if hello.node_id == self.master_id {
            return Err(Refusal::DuplicateId(hello.node_id.clone()));
        }
        if let Some(existing) = self.nodes.get(&hello.node_id)
            && existing.link.as_ref().is_some_and(|l| !l.tx.is_closed())
            && existing
                .last_seen
                .is_some_and(|t| t.elapsed() < HEARTBEAT_TIMEOUT)
        {
            return Err(Refusal::DuplicateId(hello.node_id.clone()));
        }
        let authorized = authorized || self.adopted.contains(&hello.node_id);
        // A node's universes are its permissions: an unconfigured node may not take another's.
        let has_map = self
            .nodes
            .get(&hello.node_id)
            .is_some_and(|n| n.managed.is_some() || !n.universes.is_empty());
        let taken = if has_map {
            None
        } else {
            hello.universes.iter().find_map(|u| {
                self.nodes
                    .values()
                    .find(|n| n.node_id != hello.node_id && n.universes.contains(u))
                    .map(|n| (*u, n.node_id.clone()))
            })
        };
        let entry = self
            .nodes
            .entry(hello.node_id.clone())
            .or_insert_with(|| NodeEntry::new(&hello.node_id, None, now));
        entry.capabilities = hello.capabilities.clone();
        entry.version = Some(hello.version.clone());
        if !authorized {
            entry.set_state(NodeState::Pending, now);
            entry.link = None;
            return Err(Refusal::Pending(hello.node_id.clone()));
        }
        if let Some((universe, owner)) = taken {
            let refusal = Refusal::UniverseTaken { universe, owner };
            self.alert(Some(&hello.node_id), refusal.to_string(), now);
            return Err(refusal);
        }
        if entry.managed.is_none() && entry.universes.is_empty() {
            entry.universes = hello.universes.clone();
        }
        if let Some(m) = &entry.managed {
            entry.universes = m.universe_map.clone();
        }
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
        self.next_conn += 1;
        let conn_id = self.next_conn;
        let welcome = ToReceiver::Welcome(Welcome {
            master_id: self.master_id.clone(),
            version: protocol::VERSION.into(),
            protocol_hash: protocol::protocol_hash(),
            assigned_universes: entry.universes.clone(),
            show_hash: self.replication.show_hash.clone(),
            heartbeat_ms: HEARTBEAT_PERIOD.as_millis() as u64,
            reconnect_ms: RECONNECT_PERIOD.as_millis() as u64,
        });
        let snapshot = ToReceiver::Snapshot(self.replication.snapshot());
        entry.link = Some(Link { conn_id, tx });
        entry.last_seen = Some(Instant::now());
        entry.last_heartbeat = Some(now);
        let state = if entry.degraded_reason.is_some() {
            NodeState::Degraded
        } else {
            NodeState::Online
        };
        entry.set_state(state, now);
        entry.send(protocol::encode(&welcome).into());
        if let Some(denied) = denied {
            entry.send(protocol::encode(&denied).into());
        }
        entry.send(protocol::encode(&snapshot).into());
        // Unacknowledged commands of the previous link go first, then the queue, in order.
        let mut resend: VecDeque<QueuedCommand> = std::mem::take(&mut entry.in_flight);
        resend.extend(std::mem::take(&mut entry.queue));
        entry.queue = resend;
        flush_queue(entry);
        Ok(conn_id)
    }

    /// The link `conn_id` of `node_id` closed.
    pub fn disconnect(&mut self, node_id: &str, conn_id: u64, now: SystemTime) {
        let Some(entry) = self.nodes.get_mut(node_id) else {
            return;
        };
        if entry.link.as_ref().is_some_and(|l| l.conn_id == conn_id) {
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
        entry.last_seen = Some(Instant::now());
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
        entry.last_seen = Some(Instant::now());
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
            self.alert(Some(node_id), message, now);
            return;
        }
        tracing::info!(
            "node {node_id}: command {} attempt {} failed ({reason}); retrying",
            cmd.command_id,
            cmd.attempts
        );
        send_command(entry, &mut cmd);
        entry.in_flight.push_back(cmd);
    }

    /// Takes a command for a node: sent now if it is online, else queued.
    pub fn submit(
        &mut self,
        node_id: &str,
        command: NodeCommand,
    ) -> Result<(String, Delivery), SubmitError> {
        let entry = self
            .nodes
            .get_mut(node_id)
            .ok_or_else(|| SubmitError::UnknownNode(node_id.to_string()))?;
        if entry.pending_commands() >= MAX_QUEUED {
            return Err(SubmitError::QueueFull(node_id.to_string()));
        }
        self.next_command += 1;
        self.commands_submitted += 1;
        let command_id = format!("cmd-{}-{}", self.master_id, self.next_command);
        entry.queue.push_back(QueuedCommand {
            command_id: command_id.clone(),
            command,
            attempts: 0,
            sent_at: None,
        });
        let delivery = if entry.link.is_some() && entry.state != NodeState::Pending {
            flush_queue(entry);
            Delivery::Sent
        } else {
            Delivery::Queued
        };
        Ok((command_id, delivery))
    }

    /// Marks silent nodes offline and re-sends unacknowledged commands. Call a few times a second.
    pub fn check_timeouts(&mut self, now: SystemTime) {
        let mut retries = Vec::new();
        for entry in self.nodes.values_mut() {
            let silent = entry
                .last_seen
                .is_none_or(|t| t.elapsed() > HEARTBEAT_TIMEOUT);
            if entry.link.is_some() && silent {
                tracing::warn!(
                    "node {}: no heartbeat for {HEARTBEAT_TIMEOUT:?}",
                    entry.node_id
                );
                entry.link = None;
            }
            if entry.link.is_none()
                && matches!(entry.state, NodeState::Online | NodeState::Degraded)
            {
                requeue_in_flight(entry);
                entry.set_state(NodeState::Offline, now);
            }
            if entry.link.is_some()
                && let Some(pos) = entry
                    .in_flight
                    .iter()
                    .position(|c| c.sent_at.is_some_and(|t| t.elapsed() > ACK_TIMEOUT))
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
        let frame: Arc<str> = protocol::encode(&ToReceiver::Snapshot(r.snapshot())).into();
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

    /// Sends the current snapshot to one node (it asked after a gap).
    pub fn send_snapshot(&mut self, node_id: &str) {
        let frame: Arc<str> =
            protocol::encode(&ToReceiver::Snapshot(self.replication.snapshot())).into();
        if let Some(entry) = self.nodes.get_mut(node_id) {
            entry.send(frame);
        }
    }

    /// The show clock, to every node.
    pub fn publish_sync(&mut self, tick: u64) {
        self.replication.tick = tick;
        let rate = self.replication.rate;
        let frame: Arc<str> = protocol::encode(&ToReceiver::Sync {
            tick,
            rate,
            timecode: protocol::timecode(tick, rate),
            bpm: None,
        })
        .into();
        self.broadcast(&frame);
    }

    fn broadcast(&mut self, frame: &Arc<str>) {
        for entry in self.nodes.values_mut() {
            if entry.link.is_some() && entry.state != NodeState::Pending {
                entry.send(Arc::clone(frame));
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

    /// Lets a pending node in: its next connection is accepted without a key.
    pub fn adopt(&mut self, node_id: &str) -> bool {
        self.adopted.insert(node_id.to_string());
        self.nodes.contains_key(node_id)
    }
}

fn requeue_in_flight(entry: &mut NodeEntry) {
    while let Some(mut cmd) = entry.in_flight.pop_back() {
        cmd.sent_at = None;
        entry.queue.push_front(cmd);
    }
}

fn send_command(entry: &mut NodeEntry, cmd: &mut QueuedCommand) {
    cmd.attempts += 1;
    cmd.sent_at = Some(Instant::now());
    let frame: Arc<str> = protocol::encode(&ToReceiver::Command {
        command_id: cmd.command_id.clone(),
        attempt: cmd.attempts,
        command: cmd.command.clone(),
    })
    .into();
    entry.send(frame);
}

fn flush_queue(entry: &mut NodeEntry) {
    while entry.link.is_some() {
        let Some(mut cmd) = entry.queue.pop_front() else {
            break;
        };
        send_command(entry, &mut cmd);
        entry.in_flight.push_back(cmd);
    }
    if entry.link.is_none() {
        requeue_in_flight(entry);
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
        }
    }

    fn drain(rx: &mut mpsc::Receiver<Arc<str>>) -> Vec<ToReceiver> {
        let mut out = Vec::new();
        while let Ok(f) = rx.try_recv() {
            out.push(decode_to_receiver(&f).expect("valid frame"));
        }
        out
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
        let (tx, mut rx) = mpsc::channel(64);
        reg.hello(&hello("node-01"), true, tx, now)
            .expect("accepted");
        let msgs = drain(&mut rx);
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
        let (tx, mut rx) = mpsc::channel(64);
        reg.hello(&hello("node-01"), true, tx, now)
            .expect("accepted");
        assert_eq!(command_ids(&drain(&mut rx)), vec![a.clone(), b.clone()]);
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
        let (tx, mut rx) = mpsc::channel(64);
        reg.hello(&hello("node-01"), true, tx, now)
            .expect("accepted");
        drain(&mut rx);
        let (id, d) = reg.submit("node-01", NodeCommand::Clear).expect("known");
        assert_eq!(d, Delivery::Sent);
        for attempt in 1..=4 {
            let msgs = drain(&mut rx);
            assert!(
                matches!(&msgs[..], [ToReceiver::Command { attempt: a, .. }] if *a == attempt),
                "attempt {attempt}: {msgs:?}"
            );
            reg.ack("node-01", &id, AckStatus::Failed, Some("no such cue"), now)
                .expect("ok");
        }
        assert!(drain(&mut rx).is_empty(), "no fifth attempt");
        assert_eq!(reg.nodes["node-01"].state, NodeState::Degraded);
        assert!(
            reg.alerts
                .iter()
                .any(|a| a.message.contains("failed after 4 attempts")),
            "{:?}",
            reg.alerts
        );
    }

    #[test]
    fn duplicate_ids_mismatched_builds_and_keyless_nodes_are_refused() {
        let now = SystemTime::now();
        let mut reg = Registry::new(&master(), now);
        let (tx, _rx) = mpsc::channel(64);
        reg.hello(&hello("node-01"), true, tx, now).expect("first");
        let (tx2, _rx2) = mpsc::channel(64);
        assert_eq!(
            reg.hello(&hello("node-01"), true, tx2.clone(), now),
            Err(Refusal::DuplicateId("node-01".into()))
        );
        let mut old = hello("node-02");
        old.protocol_hash = "0000000000000000".into();
        assert!(matches!(
            reg.hello(&old, true, tx2.clone(), now),
            Err(Refusal::Protocol { .. })
        ));
        assert_eq!(
            reg.hello(&hello("node-03"), false, tx2.clone(), now),
            Err(Refusal::Pending("node-03".into()))
        );
        assert_eq!(reg.nodes["node-03"].state, NodeState::Pending);
        reg.adopt("node-03");
        assert!(
            reg.hello(&hello("node-03"), false, tx2.clone(), now)
                .is_err_and(|r| r
                    == Refusal::UniverseTaken {
                        universe: 1,
                        owner: "node-01".into()
                    }),
            "adopted, but universes 1 and 2 are node-01's"
        );
        let mut own = hello("node-03");
        own.universes = vec![7];
        assert!(reg.hello(&own, false, tx2, now).is_ok(), "adopted");
        assert_eq!(reg.nodes["node-03"].universes, vec![7]);
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
        let (tx, mut rx) = mpsc::channel(64);
        reg.hello(&hello("node-01"), true, tx, now)
            .expect("accepted");
        drain(&mut rx);
        let state = PlaybackState {
            grand_master: 1.0,
            blackout: false,
            action_seq: 0,
            playbacks: vec![],
        };
        for _ in 0..3 {
            reg.publish_delta(10, Command::Blackout { on: true }, state.clone());
        }
        let seqs: Vec<u64> = drain(&mut rx)
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
        let (tx, _rx) = mpsc::channel(64);
        reg.hello(&hello("node-01"), true, tx, now)
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
}
