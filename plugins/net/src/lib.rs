//! RocKontrol nodes: a master that programs and runs the show, and receivers that output their
//! universes, on one network.
//!
//! - **Discovery**: mDNS `_rockontrol._tcp` with TXT records (node id, role, version,
//!   universes, capabilities).
//! - **REST** on the master's `listen_port`: the seed's endpoints (`/api/nodes/register`,
//!   `/api/nodes/{id}/command`, `/api/nodes/{id}/status`, `/api/master/heartbeat`,
//!   `/api/master/ack`) plus `/api/nodes`, `/api/alerts`, `/api/show/{hash}` and
//!   `/api/openapi.json`. `Authorization: Bearer <key>` everywhere; read-only keys may only GET.
//! - **WebSocket** `/api/ws` on the same port: one per receiver, versioned JSON text frames
//!   (hello/welcome with a protocol hash, snapshot + ordered deltas, command/ack, heartbeat,
//!   sync).
//! - **Replication**: the master's engine applies every show command at a tick and streams
//!   it as a delta with a sequence number; receivers run the same engine on the same state and
//!   ticks, so their frames equal the master's and a fade keeps running through an outage. A
//!   receiver that sees a gap asks for a snapshot.
//! - **Node commands** (`/api/nodes/{id}/command`): queued in order while the node is
//!   offline, acknowledged by id, retried 3 times, then the node is degraded and an alert is
//!   raised; receivers never execute one id twice (kept across restarts).
//!
//! # Layout
//! - [`config`]: node configuration files (the seed's JSON verbatim, or RON).
//! - [`protocol`]: the messages, their framing and the protocol hash.
//! - [`registry`]: the master's nodes, admission and adoption, routing, command queues,
//!   retries and replication stream (no I/O).
//! - [`alerts`]: operator alerts, aggregated per source and ranked by severity (no I/O).
//! - [`adoptions`]: adopted nodes, kept in the master's state directory.
//! - [`replica`]: the receiver's sequence tracking (no I/O).
//! - [`executed`]: the receiver's durable, bounded log of executed command ids.
//! - [`stage`]: the master's saved stage (playback state, show time, node overrides).
//! - [`master`]: the master role: [`MasterPlugin`] (ECS) and its axum REST + WebSocket server.
//! - [`receiver`]: the receiver role: [`ReceiverPlugin`] (ECS), its link to the master
//!   (tokio-tungstenite, reconnecting every 5 s) and the identify flash.
//! - [`app`]: one app assembly per role (standalone show, master, receiver).
//! - [`events`]: a node's structured events (JSON lines) for tests and tools.
//! - [`systems`]: [`NetSystems`], where every role's systems run in a frame.
//! - [`client`]: the REST client (hyper) and a raw WebSocket probe, for nodes, CLI and tests.
//! - [`link_policy`]: when the master counts as silent, which master to try next (no I/O).
//! - [`discovery`]: mDNS advertising and browsing.
//! - [`handshake`]: the link's mutual key proof (HMAC challenge–response, no I/O).
//! - [`auth`]: API keys: who a request's key belongs to.
//! - [`roles`]: roles and limits, and [`roles::permit`], the one permission check (no I/O).
//! - [`keyring`]: the keys file (hashed keys, revocations), reloaded by a running master.
//! - [`audit`]: the append-only audit log of control actions.
//! - [`health`]: timestamps, CPU and memory figures.
//! - [`media`]: the media library wired to the master's server and the receiver's heartbeat.
//! - [`openapi`]: the REST API's OpenAPI description.
//! - [`parts`]: net's replicated parts (node overrides) and messages, registered on the App.

pub mod adoptions;
pub mod alerts;
pub mod app;
pub mod audit;
pub mod auth;
pub mod bounded;
pub mod client;
pub mod config;
pub mod discovery;
pub mod doctor;
pub mod durable;
pub mod events;
pub mod executed;
pub mod handshake;
pub mod health;
pub mod keyring;
pub mod link_policy;
pub mod master;
pub mod media;
pub mod openapi;
pub mod parts;
pub mod protocol;
pub mod receiver;
pub mod registry;
pub mod replica;
pub mod roles;
pub mod stage;
pub mod systems;

pub use config::{MasterConfig, NodeConfig, ReceiverConfig};
pub use master::{MasterNet, MasterPlugin};
pub use receiver::{HistoryEntry, ReceiverNet, ReceiverPlugin};
pub use systems::NetSystems;
