//! The master's REST and WebSocket server (axum on tokio), on one port.
//!
//! Handlers only touch the [`Registry`] under a short lock (never across an `.await`) and
//! hand show commands to the ECS over a bounded channel; the engine applies them at a tick and
//! the registry streams them to receivers as deltas.
//!
//! Connections are bounded in time and number ([`ServerLimits`]): hyper's header-read timeout
//! closes a connection that has not sent a whole request head within
//! [`HEADER_READ_TIMEOUT`] (a half-open request, or an idle keep-alive connection); a request
//! gets [`REQUEST_TIMEOUT`] in all (its body included); a WebSocket must send its hello within
//! [`HANDSHAKE_TIMEOUT`] of the upgrade, pings or not. At most `max_connections` are open;
//! the last eighth of them is kept for peers at known node addresses (configured managed
//! nodes, and addresses that authenticated or were adopted), so a flood from elsewhere cannot
//! keep a node from reconnecting; one address that is not a node's holds a quarter at most.
//! A refused connection gets 503 (full) or 429 (too many from it) and is closed at once, and
//! logged at most once per [`crate::alerts::LOG_INTERVAL`] with a count. The pure rules and
//! the table of every bound are in [`super::limits`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use rockontrol_engine::Command;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};

use super::limits::{Admission, LogThrottle, Slot};
use crate::audit::{AuditLog, Record};
use crate::auth::Keys;
use crate::config::Capability;
use crate::events::{NodeEvent, NodeEvents};
use crate::handshake::{MasterChallenge, Nonce, ProofError};
use crate::keyring::KeyRing;
use crate::protocol::{
    self, AckStatus, FrameError, HelloAuth, Metrics, NodeCommand, ToMaster, ToReceiver,
    decode_to_master,
};
use crate::registry::{
    Admitted, AdoptError, AlertKind, Delivery, LinkAuth, NodeEntry, Outgoing, Peer, PendingView,
    Registry, Severity, SubmitError,
};
use crate::roles::{Action, Caller, Role};

/// A connection must send a whole request head within this (also: idle keep-alive time).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A request (its body included) is answered within this, or with 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// A WebSocket must send its hello within this of the upgrade.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A pending (key-less) link is pinged this often, so the node does not call it silent.
const PENDING_KEEPALIVE: Duration = Duration::from_secs(1);
/// Open connections at most, by default.
pub use super::limits::MAX_CONNECTIONS;

/// How many connections the server keeps open: see [`super::limits::Policy`].
pub type ServerLimits = super::limits::Policy;

/// A show command for the master's engine, answered with the tick it was applied at.
#[derive(Debug)]
pub struct ShowCommandRequest {
    pub command: Command,
    pub reply: oneshot::Sender<Result<Applied, Refused>>,
}

/// A show command the engine applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub tick: u64,
    /// Clips the cue starts that are not ready where they must play (the show's media gate
    /// is `Warn`, so the GO ran).
    pub media_not_ready: Vec<rockontrol_library::gate::NotReady>,
}

/// Why a show command was not applied.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// The engine refused it (no such playback, end of the list, …).
    Engine(String),
    /// The GO gate: the cue starts clips not ready on these nodes (media gate `Refuse`).
    MediaNotReady(Vec<rockontrol_library::gate::NotReady>),
}

/// The writers of the open node links, by connection id: the registry's [`Outgoing`] frames
/// are queued here (bounded, [`LINK_QUEUE`] per link); dropping a sender closes its link.
type Links = HashMap<u64, mpsc::Sender<Arc<str>>>;

/// A command of another plugin (registered with a handler in its replication rules, e.g.
/// media's `{"type": "media", …}`), applied in the master's world, answered with the
/// handler's JSON.
#[derive(Debug)]
pub struct PluginCommandRequest {
    /// The body's `type`.
    pub kind: String,
    pub body: serde_json::Value,
    pub reply: oneshot::Sender<Result<serde_json::Value, String>>,
}

/// The channel to the plugins' command handlers and the `type`s they take.
#[derive(Debug)]
pub struct PluginCommands {
    pub tx: mpsc::Sender<PluginCommandRequest>,
    /// Set at startup from the app's replication rules.
    pub kinds: std::sync::RwLock<Vec<String>>,
}

impl PluginCommands {
    pub fn new(tx: mpsc::Sender<PluginCommandRequest>) -> Self {
        PluginCommands {
            tx,
            kinds: std::sync::RwLock::new(Vec::new()),
        }
    }

    /// The body's `type` when a plugin handles it.
    fn kind_of(&self, body: &Bytes) -> Option<(String, serde_json::Value)> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        let kind = value.get("type")?.as_str()?.to_string();
        let known = self.kinds.read().ok()?.contains(&kind);
        known.then_some((kind, value))
    }
}

/// What the server and the ECS share.
#[derive(Debug)]
pub struct MasterShared {
    registry: Mutex<Registry>,
    /// Beside the registry (locked after it, never alone across a registry call).
    links: Mutex<Links>,
    pub keys: Keys,
    /// Show commands to the engine.
    pub show_commands: mpsc::Sender<ShowCommandRequest>,
    /// Commands of other plugins (media, …) to their handlers.
    pub plugin_commands: PluginCommands,
    /// The engine's next tick (written by the ECS every frame).
    pub clock: AtomicU64,
    /// Frames refused for being garbage, too large or out of place (all links).
    pub bad_frames: AtomicU64,
    /// The media library, when this master serves one (`/api/media/…`).
    pub media: Option<Arc<crate::media::MasterMedia>>,
    /// Answers clock pings that come over the link (clock sync's WebSocket fallback), once
    /// the clock responder started.
    pub clock_answerer: std::sync::OnceLock<Arc<rockontrol_clock::ClockAnswerer>>,
    /// The media playback report of the master's own outputs (none while the show gives it
    /// none), written by the ECS a few times a second: its status shows it like a receiver's.
    pub own_playback: Mutex<Option<rockontrol_media::PlaybackReport>>,
    /// The keys file (roles, limits, revocations), reloaded when it changes.
    pub keyring: KeyRing,
    /// The audit log of control actions (with a state directory).
    pub audit: Option<AuditLog>,
    /// The universes each playback of the show drives (for keys limited to universes).
    playback_universes: std::sync::RwLock<std::collections::BTreeMap<String, Vec<u16>>>,
}

impl MasterShared {
    /// What a master's server and systems share, around its `registry`.
    pub fn new(
        registry: Registry,
        keys: Keys,
        show_commands: mpsc::Sender<ShowCommandRequest>,
        plugin_commands: PluginCommands,
        media: Option<Arc<crate::media::MasterMedia>>,
    ) -> Self {
        let state_dir = registry.state_dir().map(std::path::Path::to_path_buf);
        let audit = state_dir.as_deref().and_then(|dir| {
            AuditLog::open(dir)
                .map_err(|e| {
                    tracing::error!(
                        "audit: cannot open the log in {}: {e}; control actions are not recorded",
                        dir.display()
                    )
                })
                .ok()
        });
        MasterShared {
            keyring: KeyRing::open(state_dir.as_deref()),
            audit,
            playback_universes: Default::default(),
            registry: Mutex::new(registry),
            links: Mutex::new(Links::new()),
            keys,
            show_commands,
            plugin_commands,
            clock: AtomicU64::new(0),
            bad_frames: AtomicU64::new(0),
            media,
            clock_answerer: std::sync::OnceLock::new(),
            own_playback: Mutex::new(None),
        }
    }

    /// The master's own playback report, if its outputs play media.
    pub fn own_playback(&self) -> Option<rockontrol_media::PlaybackReport> {
        self.own_playback
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The registry, locked (a poisoned lock is taken over: the data stays consistent per
    /// call). What the registry queued meanwhile goes to the links when the guard drops.
    pub fn registry(&self) -> RegistryGuard<'_> {
        RegistryGuard {
            registry: self
                .registry
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
            links: &self.links,
        }
    }

    /// Follows the show: which universes each playback drives.
    pub fn set_show(&self, show: &rockontrol_show::Show) {
        if let Ok(mut map) = self.playback_universes.write() {
            *map = crate::roles::playback_universes(show);
        }
    }

    /// The universes playback `name` drives (none known: empty).
    pub fn playback_universes(&self, name: &str) -> Vec<u16> {
        self.playback_universes
            .read()
            .ok()
            .and_then(|m| m.get(name).cloned())
            .unwrap_or_default()
    }

    /// Who the request with `headers` from `peer` comes from (401 without a valid key).
    #[expect(
        clippy::result_large_err,
        reason = "the error is the HTTP response, returned at once"
    )]
    pub fn caller(
        &self,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<Caller, Response> {
        let header = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        self.keys
            .caller(header, &self.keyring.file())
            .map(|c| Caller { peer, ..c })
            .map_err(|e| error(StatusCode::UNAUTHORIZED, e.to_string()))
    }

    /// Whether `caller` may do `action`: `Err` is the 403, naming the key, its role and what
    /// is missing ([`crate::roles::permit`]).
    #[expect(
        clippy::result_large_err,
        reason = "the error is the HTTP response, returned at once"
    )]
    pub fn permit(&self, caller: &Caller, action: &Action) -> Result<(), Response> {
        crate::roles::permit(caller, action).map_err(|denied| {
            (
                StatusCode::FORBIDDEN,
                axum::Json(json!({
                    "error": denied.to_string(),
                    "status": 403,
                    "key_id": denied.key_id,
                    "role": denied.role,
                    "action": denied.action,
                    "missing": denied.missing,
                    "needs_role": denied.needs_role,
                })),
            )
                .into_response()
        })
    }

    /// The link key with id `key_id`, unless revoked (node links prove it by HMAC).
    pub fn link_key(&self, key_id: &str) -> Option<&str> {
        let key = self.keys.control_with_id(key_id)?;
        (!self.keyring.file().is_revoked(key_id)).then_some(key)
    }

    /// The link keys (configured control keys) not revoked: what clock pings may be signed
    /// with.
    pub fn live_link_keys(&self) -> Vec<String> {
        self.keys
            .control
            .iter()
            .filter(|k| self.key_live(&crate::handshake::key_id(k)))
            .cloned()
            .collect()
    }

    /// Whether a connection authorised by key `key_id` may stay open: not revoked, and (a
    /// key of the keys file) still listed.
    pub fn key_live(&self, key_id: &str) -> bool {
        let file = self.keyring.file();
        if file.is_revoked(key_id) {
            return false;
        }
        let static_key = self
            .keys
            .control
            .iter()
            .chain(&self.keys.read_only)
            .any(|k| crate::handshake::key_id(k) == key_id);
        static_key || file.keys.iter().any(|k| k.id == key_id)
    }

    /// Completes when key `key_id` is revoked (or leaves the keys file): an open connection
    /// it authorised selects on this and closes.
    pub async fn key_revoked(&self, key_id: &str) {
        let mut changes = self.keyring.subscribe();
        loop {
            if !self.key_live(key_id) {
                return;
            }
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Appends to the audit log (a master without a state directory keeps none).
    pub fn audit(&self, record: Record) {
        if let Some(log) = &self.audit {
            log.record(record, SystemTime::now());
        }
    }

    /// The registry, if nobody holds it now.
    pub fn try_registry(&self) -> Option<RegistryGuard<'_>> {
        let registry = match self.registry.try_lock() {
            Ok(r) => r,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        Some(RegistryGuard {
            registry,
            links: &self.links,
        })
    }
}

fn lock_links(links: &Mutex<Links>) -> MutexGuard<'_, Links> {
    links
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The locked registry of a [`MasterShared`]: on drop, the frames and closes it queued are
/// handed to the links' writers, in order (the transport half of the registry's outbox).
pub struct RegistryGuard<'a> {
    registry: MutexGuard<'a, Registry>,
    links: &'a Mutex<Links>,
}

impl std::fmt::Debug for RegistryGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryGuard").finish_non_exhaustive()
    }
}

impl std::ops::Deref for RegistryGuard<'_> {
    type Target = Registry;
    fn deref(&self) -> &Registry {
        &self.registry
    }
}

impl std::ops::DerefMut for RegistryGuard<'_> {
    fn deref_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }
}

impl RegistryGuard<'_> {
    /// Connection `conn_id` (from [`Registry::hello`]) writes through `writer`: what the
    /// registry queued for it goes there, from its welcome (or notice) on.
    pub fn attach(&self, conn_id: u64, writer: mpsc::Sender<Arc<str>>) {
        lock_links(self.links).insert(conn_id, writer);
    }

    /// Reports the links whose writer is gone to the registry (a node whose socket died is
    /// not taken for a live link when it connects again).
    pub fn prune_closed(&mut self) {
        let gone: Vec<u64> = lock_links(self.links)
            .extract_if(|_, tx| tx.is_closed())
            .map(|(conn, _)| conn)
            .collect();
        for conn in gone {
            self.registry.link_failed(conn);
        }
    }

    /// Writes what the registry queued: frames to their links' writers (a full or closed
    /// writer cuts that link off, which the registry is told), closes by dropping writers.
    fn deliver(&mut self) {
        loop {
            let outgoing = self.registry.take_outgoing();
            if outgoing.is_empty() {
                return;
            }
            let mut failed = Vec::new();
            {
                let mut links = lock_links(self.links);
                for out in outgoing {
                    match out {
                        Outgoing::Frame { conn, frame } => {
                            if let Some(tx) = links.get(&conn)
                                && tx.try_send(frame).is_err()
                            {
                                links.remove(&conn);
                                failed.push(conn);
                            }
                        }
                        Outgoing::Close { conn } => {
                            links.remove(&conn);
                        }
                    }
                }
            }
            for conn in failed {
                self.registry.link_failed(conn);
            }
        }
    }
}

impl Drop for RegistryGuard<'_> {
    fn drop(&mut self) {
        self.deliver();
    }
}

/// A JSON error response.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    (
        status,
        axum::Json(json!({ "error": message, "status": status.as_u16() })),
    )
        .into_response()
}

/// The caller of a request with `headers`, allowed `action` (401 without a valid key, 403
/// with the reason where its role or limits do not allow it).
#[expect(
    clippy::result_large_err,
    reason = "the error is the HTTP response, returned at once"
)]
pub(crate) fn authorize(
    shared: &MasterShared,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    action: &Action,
) -> Result<Caller, Response> {
    let caller = shared.caller(headers, peer)?;
    shared.permit(&caller, action)?;
    Ok(caller)
}

#[expect(
    clippy::result_large_err,
    reason = "the error is the HTTP response, returned at once"
)]
fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Response> {
    if body.len() > protocol::MAX_FRAME_BYTES {
        return Err(error(StatusCode::PAYLOAD_TOO_LARGE, "body too large"));
    }
    serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

/// The lowest role an endpoint needs ([`Authorized`]).
pub(crate) trait Need {
    const ROLE: Role;
}

/// Any valid key (`viewer`).
pub(crate) struct ReadOnly;
impl Need for ReadOnly {
    const ROLE: Role = Role::Viewer;
}

/// `operator` or above: runs the show (the command path checks playbacks and universes).
pub(crate) struct Operate;
impl Need for Operate {
    const ROLE: Role = Role::Operator;
}

/// `admin`: nodes, the audit log.
pub(crate) struct Control;
impl Need for Control {
    const ROLE: Role = Role::Admin;
}

/// Every REST handler's prologue as an extractor: the caller's `Authorization` checked for
/// `N` before anything else is read (401 without a valid key, 403 naming the role and what is
/// missing). Holds the [`Caller`], its peer address included.
pub(crate) struct Authorized<N: Need>(pub Caller, std::marker::PhantomData<N>);

impl<N: Need> axum::extract::FromRequestParts<Arc<MasterShared>> for Authorized<N> {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        shared: &Arc<MasterShared>,
    ) -> Result<Self, Response> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let what = format!("{} {}", parts.method, parts.uri.path());
        authorize(
            shared,
            &parts.headers,
            peer,
            &Action::Endpoint {
                role: N::ROLE,
                what: &what,
            },
        )
        .map(|caller| Authorized(caller, std::marker::PhantomData))
    }
}

/// A JSON request body of at most [`protocol::MAX_FRAME_BYTES`], parsed as `T` (413 when
/// larger, 400 naming the error when it does not parse). After [`Authorized`] in a handler's
/// arguments, so nothing is parsed for a caller without a key.
pub(crate) struct JsonBody<T>(T);

impl<T: for<'de> Deserialize<'de>, S: Send + Sync> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Response> {
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        parse_body(&body).map(JsonBody)
    }
}

/// The router of every endpoint.
pub fn router(shared: Arc<MasterShared>) -> Router {
    let api = Router::new()
        .route("/api/nodes", get(list_nodes))
        .route("/api/nodes/register", post(register))
        .route("/api/command", post(show_command))
        .route("/api/nodes/{node_id}/command", post(node_command))
        .route("/api/nodes/{node_id}/status", get(node_status))
        .route("/api/nodes/{node_id}/adopt", post(adopt))
        .route("/api/master/heartbeat", post(rest_heartbeat))
        .route("/api/master/ack", post(rest_ack))
        .route("/api/alerts", get(alerts))
        .route("/api/audit", get(audit))
        .route("/api/show/{hash}", get(show))
        .route("/api/openapi.json", get(openapi))
        .route("/api/ws", get(websocket))
        .route("/api/control", get(super::control::control))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(axum::middleware::from_fn(request_timeout))
        // A body larger than a frame is refused (413): at once when its Content-Length says
        // so, else when it passes the limit while read.
        .layer(axum::extract::DefaultBodyLimit::max(
            protocol::MAX_FRAME_BYTES,
        ))
        .layer(axum::middleware::from_fn(refuse_oversized))
        .with_state(Arc::clone(&shared));
    // After the request timeout: a clip download takes as long as it takes.
    let all = match crate::media::routes(&shared) {
        Some(media) => api.merge(media),
        None => api,
    };
    all.layer(axum::middleware::from_fn_with_state(shared, audit_layer))
}

/// Marks a response whose action is in the audit log already ([`run_command`] records its
/// own, with what the command was).
#[derive(Debug, Clone, Copy)]
struct Audited;

/// The reason of an error response (its JSON `error`), and the response rebuilt.
async fn reason_of(response: Response) -> (Response, Option<String>) {
    if response.status().as_u16() < 400 {
        return (response, None);
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let reason = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_string))
        .or_else(|| {
            let text = String::from_utf8_lossy(&bytes).trim().to_string();
            (!text.is_empty()).then_some(text)
        });
    (
        Response::from_parts(parts, axum::body::Body::from(bytes)),
        reason,
    )
}

/// Records every request that may change something (all but GET and HEAD), allowed or not,
/// in the audit log: who, what, from where, the status and the reason of a refusal.
async fn audit_layer(
    State(shared): State<Arc<MasterShared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method().clone();
    if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let caller = shared.caller(request.headers(), peer).ok();
    let action = format!("{method} {}", request.uri().path());
    let response = next.run(request).await;
    if response.extensions().get::<Audited>().is_some() {
        return response;
    }
    let status = response.status().as_u16();
    let (response, reason) = reason_of(response).await;
    shared.audit(Record {
        caller,
        peer,
        action,
        status,
        reason,
    });
    response
}

/// Answers 413 at once for a request whose `Content-Length` is over
/// [`protocol::MAX_FRAME_BYTES`] (no endpoint of this router takes more), without reading it.
async fn refuse_oversized(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match length {
        Some(n) if n > protocol::MAX_FRAME_BYTES as u64 => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "a body of {n} bytes is over the {}-byte limit",
                protocol::MAX_FRAME_BYTES
            ),
        ),
        _ => next.run(request).await,
    }
}

/// Answers 408 for a request not handled (its body read included) within [`REQUEST_TIMEOUT`].
async fn request_timeout(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            format!("request not complete within {REQUEST_TIMEOUT:?}"),
        ),
    }
}

/// Serves plaintext until `shutdown` completes, with the default [`ServerLimits`] (benchmarks
/// and in-process tests; a node serves TLS through [`serve_with`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<MasterShared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, shared, ServerLimits::default(), None, shutdown).await
}

/// Serves until `shutdown` completes: HTTP/1.1 with upgrades, bounded as [`ServerLimits`]
/// and the module's timeouts say, over TLS with `tls` (none: plaintext, `insecure`).
///
/// The accept loop only accepts and admits (connection limits); the TLS handshake (with its
/// timeout, [`rockontrol_tls::HANDSHAKE_TIMEOUT`]) runs in the connection's own task, so a
/// slow or silent client never delays the next accept.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    shared: Arc<MasterShared>,
    limits: ServerLimits,
    tls: Option<rockontrol_tls::tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(Arc::clone(&shared));
    tokio::spawn(housekeeping(Arc::clone(&shared)));
    let admission = Arc::new(Mutex::new(Admission::new(limits)));
    let mut refused = RefusalLog::default();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut shutdown => return Ok(()),
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, say: wait a little rather than spin.
                refused.note(&format!("cannot accept a connection: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match Slot::admit(&admission, peer.ip(), || {
            shared.registry().is_known_address(peer.ip())
        }) {
            Ok(slot) => slot,
            Err(refusal) => {
                // Best effort, never waiting: the answer fits an empty socket buffer.
                let _ = tcp.try_write(refusal.http_answer());
                drop(tcp);
                refused.note(&format!("connection from {peer} refused: {refusal}"));
                let source = peer.ip().to_string();
                shared.registry().raise(
                    crate::alerts::NewAlert {
                        severity: Severity::Warning,
                        kind: AlertKind::RefusedConnection,
                        source: Some(&source),
                        node_id: None,
                        message: format!("connection from {peer} refused: {refusal}"),
                    },
                    SystemTime::now(),
                );
                continue;
            }
        };
        // Frames are small and latency matters: no Nagle delay behind an unacknowledged segment.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            // The slot lives with the socket, through TLS and a WebSocket upgrade too.
            let io = Limited {
                io: tcp,
                _slot: slot,
            };
            crate::bounded::serve_admitted(io, peer, app, tls, HEADER_READ_TIMEOUT, "control port")
                .await;
        });
    }
}

/// The accept loop's error log, at most once per [`crate::alerts::LOG_INTERVAL`] with a count.
struct RefusalLog(LogThrottle);

impl Default for RefusalLog {
    fn default() -> Self {
        RefusalLog(LogThrottle::new(crate::alerts::LOG_INTERVAL))
    }
}

impl RefusalLog {
    fn note(&mut self, what: &str) {
        if let Some(held) = self.0.note(Instant::now()) {
            tracing::error!("{what} ({held} more such since the last report)");
        }
    }
}

/// A socket holding its connection slot until it closes.
struct Limited {
    io: tokio::net::TcpStream,
    _slot: Slot,
}

impl AsyncRead for Limited {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Limited {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Timeouts and the keys file every 250 ms, the show clock to every node every second.
async fn housekeeping(shared: Arc<MasterShared>) {
    let mut interval = tokio::time::interval(Duration::from_millis(250));
    let mut n: u64 = 0;
    // Whether the clock answerer has the link keys of the keys file as it is now.
    let mut keys_changes = shared.keyring.subscribe();
    let mut clock_keys_current = false;
    loop {
        interval.tick().await;
        n += 1;
        // A key revoked by `rockontrol keys revoke` closes its open connections now, and its
        // clock pings are refused from now on.
        shared.keyring.refresh();
        if keys_changes.has_changed().unwrap_or(false) {
            keys_changes.mark_unchanged();
            clock_keys_current = false;
        }
        if !clock_keys_current && let Some(answerer) = shared.clock_answerer.get() {
            answerer.set_keys(
                shared
                    .live_link_keys()
                    .iter()
                    .map(|k| rockontrol_clock::ClockKey::derive(k))
                    .collect(),
            );
            clock_keys_current = true;
        }
        let mut reg = shared.registry();
        reg.check_timeouts(SystemTime::now());
        if n.is_multiple_of(4) {
            reg.publish_sync(shared.clock.load(Ordering::Relaxed));
        }
    }
}

/// `GET /api/nodes/{id}/status` (the seed's shape, plus state and counters).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub online: bool,
    pub last_heartbeat: Option<String>,
    pub dmx_fps: f64,
    pub cpu_usage: f64,
    pub node_id: String,
    pub state: String,
    pub state_since: String,
    pub universes: Vec<u16>,
    pub capabilities: Vec<Capability>,
    pub memory_mb: f64,
    pub frames_out: u64,
    pub seq: u64,
    pub pending_commands: usize,
    pub commands_executed: u64,
    pub commands_failed: u64,
    pub degraded_reason: Option<String>,
    pub version: Option<String>,
    /// The node's clock sync as of its latest heartbeat (offset, drift in ppm, uncertainty,
    /// min RTT); none for a node without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<rockontrol_clock::ClockStatus>,
    /// Media readiness (nodes that report it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<rockontrol_library::MediaReport>,
    /// The node's timecode, chase lock state and beat as of its latest heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timecode: Option<rockontrol_timecode::TimecodeStatus>,
    /// Media playback state (nodes that play media): per layer clip, frame, late, missed,
    /// decoder, armed; per output refresh period and phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub playback: Option<rockontrol_media::PlaybackReport>,
    /// How the node trusts this master (its pinned fingerprint, by config or on first use, or
    /// plaintext), from its heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<String>,
}

pub(crate) fn status_of(n: &NodeEntry) -> NodeStatus {
    let metrics = n.metrics();
    NodeStatus {
        online: matches!(
            n.state(),
            crate::registry::NodeState::Online | crate::registry::NodeState::Degraded
        ),
        last_heartbeat: n.last_heartbeat().map(crate::health::rfc3339),
        dmx_fps: metrics.dmx_fps,
        cpu_usage: metrics.cpu_usage,
        node_id: n.node_id().to_string(),
        state: serde_json::to_value(n.state())
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        state_since: crate::health::rfc3339(n.state_since()),
        universes: n.universes().to_vec(),
        capabilities: n.capabilities().to_vec(),
        memory_mb: metrics.memory_mb,
        frames_out: metrics.frames_out,
        seq: metrics.seq,
        pending_commands: n.pending_commands(),
        commands_executed: n.executed(),
        commands_failed: n.failed(),
        degraded_reason: n.degraded_reason().map(str::to_string),
        version: n.version().map(str::to_string),
        clock: metrics.clock.clone(),
        media: metrics.media.clone(),
        timecode: metrics.timecode.as_deref().cloned(),
        playback: metrics.playback.as_deref().cloned(),
        trust: metrics.trust.as_deref().map(str::to_string),
    }
}

async fn list_nodes(_: Authorized<ReadOnly>, State(shared): State<Arc<MasterShared>>) -> Response {
    let reg = shared.registry();
    let nodes: Vec<NodeStatus> = reg.nodes().map(status_of).collect();
    axum::Json(json!({
        "master_id": reg.master_id(),
        "seq": reg.seq(),
        "tick": reg.show_tick(),
        "show_hash": reg.show_hash(),
        "nodes": nodes,
        "pending": reg.pending(),
        "discovered": reg.discovered().collect::<Vec<_>>(),
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    node_id: String,
    #[serde(default)]
    capabilities: Vec<Capability>,
    #[serde(default)]
    universes: Vec<u16>,
}

async fn register(
    _: Authorized<Control>,
    State(shared): State<Arc<MasterShared>>,
    JsonBody(body): JsonBody<RegisterBody>,
) -> Response {
    let mut reg = shared.registry();
    match reg.register(
        &body.node_id,
        body.capabilities,
        body.universes,
        SystemTime::now(),
    ) {
        Ok(entry) => (
            StatusCode::CREATED,
            axum::Json(json!({
                "node_id": entry.node_id(),
                "registered": true,
                "universes": entry.universes(),
                "websocket": "/api/ws",
            })),
        )
            .into_response(),
        Err(e @ crate::registry::RegisterError::Conflict { .. }) => {
            error(StatusCode::CONFLICT, e.to_string())
        }
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

/// `POST /api/command`: a show command, applied by the master's engine and replicated to
/// every node (the same as a command to the master's own node id).
async fn show_command(
    Authorized(caller, _): Authorized<Operate>,
    State(shared): State<Arc<MasterShared>>,
    body: Bytes,
) -> Response {
    let master_id = shared.registry().master_id().to_string();
    run_command(&shared, &caller, &master_id, &body).await
}

async fn node_command(
    Authorized(caller, _): Authorized<Operate>,
    State(shared): State<Arc<MasterShared>>,
    Path(node_id): Path<String>,
    body: Bytes,
) -> Response {
    run_command(&shared, &caller, &node_id, &body).await
}

/// The one command path (REST `POST /api/command`, `POST /api/nodes/{id}/command`, and
/// tools' WebSocket commands): `caller`'s role and limits are checked for what the command
/// does ([`crate::roles::permit`]), then it runs; the answer is recorded in the audit log.
pub async fn run_command(
    shared: &MasterShared,
    caller: &Caller,
    node_id: &str,
    body: &Bytes,
) -> Response {
    let mut what = format!("command to {node_id}");
    if let Some(kind) = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("type")?.as_str().map(str::to_string))
    {
        what = format!("{kind} command to {node_id}");
    }
    let response = command(shared, caller, node_id, body, &mut what).await;
    let status = response.status().as_u16();
    let (mut response, reason) = reason_of(response).await;
    shared.audit(Record {
        caller: Some(caller.clone()),
        peer: caller.peer,
        action: what,
        status,
        reason,
    });
    response.extensions_mut().insert(Audited);
    response
}

/// [`run_command`] before the audit: `what` says what the command was, once known.
async fn command(
    shared: &MasterShared,
    caller: &Caller,
    node_id: &str,
    body: &Bytes,
    what: &mut String,
) -> Response {
    if let Err(r) = shared.permit(
        caller,
        &Action::Endpoint {
            role: Role::Operator,
            what: "send commands",
        },
    ) {
        return r;
    }
    let node_id = node_id.to_string();
    let master_id = shared.registry().master_id().to_string();
    if body.len() > protocol::MAX_FRAME_BYTES {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
    }
    // The seed's node command shape (`{"type": "media", "action", "clip", "position"}`, no
    // layer) still goes to the node, which refuses it with where to send it instead.
    let legacy_for_node =
        node_id != master_id && serde_json::from_slice::<NodeCommand>(body).is_ok();
    if !legacy_for_node && let Some((kind, value)) = shared.plugin_commands.kind_of(body) {
        if node_id != master_id {
            if shared.registry().node(&node_id).is_none() {
                return error(StatusCode::NOT_FOUND, format!("no node {node_id:?}"));
            }
            return error(
                StatusCode::CONFLICT,
                format!(
                    "a {kind:?} command is rig-wide playback state that the master owns and replicates to every node; send it to the master with POST {}",
                    protocol::SHOW_COMMAND_PATH
                ),
            );
        }
        let action = value.get("action").and_then(|a| a.as_str()).unwrap_or("");
        *what = format!("{kind} {action}");
        if let Err(r) = shared.permit(
            caller,
            &Action::RigWide {
                what: what.as_str(),
            },
        ) {
            return r;
        }
        return plugin_command(shared, kind, value).await;
    }
    if node_id == master_id {
        // A command for the master is a show command: applied by the engine, replicated.
        let command: Command = match serde_json::from_slice::<NodeCommand>(body) {
            Ok(nc) if nc.check().is_err() => {
                let reason = nc.check().err().map(|e| e.to_string()).unwrap_or_default();
                return error(StatusCode::BAD_REQUEST, reason);
            }
            Ok(nc) => match nc.to_engine(None) {
                Ok(c) => c,
                Err(crate::protocol::CommandMapError::NoPlayback) => {
                    match serde_json::from_slice::<Command>(body) {
                        Ok(c) => c,
                        Err(_) => {
                            return error(
                                StatusCode::UNPROCESSABLE_ENTITY,
                                "name the playback (\"playback\": \"main\")",
                            );
                        }
                    }
                }
                Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            },
            Err(e1) => match serde_json::from_slice::<Command>(body) {
                Ok(c) => c,
                Err(_) => {
                    return error(StatusCode::BAD_REQUEST, format!("invalid command: {e1}"));
                }
            },
        };
        if let Err(e) = command.check() {
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
        *what = command.to_string();
        // Without a playback (release all, blackout, grand master, an effect, which may drive
        // any fixture): rig-wide, for unlimited keys.
        let playback = command.playback();
        let universes = playback
            .map(|p| shared.playback_universes(p))
            .unwrap_or_default();
        let action = match playback {
            Some(playback) => Action::Playback {
                what: what.as_str(),
                playback,
                universes: &universes,
            },
            None => Action::RigWide {
                what: what.as_str(),
            },
        };
        if let Err(r) = shared.permit(caller, &action) {
            return r;
        }
        let (tx, rx) = oneshot::channel();
        if shared
            .show_commands
            .try_send(ShowCommandRequest {
                command: command.clone(),
                reply: tx,
            })
            .is_err()
        {
            return error(StatusCode::SERVICE_UNAVAILABLE, "the engine is busy; retry");
        }
        return match tokio::time::timeout(Duration::from_secs(2), rx).await {
            Ok(Ok(Ok(applied))) => {
                let mut body = json!({
                    "command": command,
                    "status": "executed",
                    "tick": applied.tick,
                });
                if !applied.media_not_ready.is_empty() {
                    body["warning"] = json!(format!(
                        "media not ready: {}",
                        rockontrol_library::gate::describe(&applied.media_not_ready)
                    ));
                    body["media_not_ready"] = json!(applied.media_not_ready);
                }
                (StatusCode::OK, axum::Json(body)).into_response()
            }
            Ok(Ok(Err(Refused::Engine(e)))) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
            Ok(Ok(Err(Refused::MediaNotReady(not_ready)))) => (
                StatusCode::CONFLICT,
                axum::Json(json!({
                    "error": format!(
                        "{command} refused: media not ready: {}; wait for the transfer \
                         (GET /api/media/status) or set the show's media gate to Warn",
                        rockontrol_library::gate::describe(&not_ready)
                    ),
                    "status": 409,
                    "media_not_ready": not_ready,
                })),
            )
                .into_response(),
            _ => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the engine did not answer within 2 s",
            ),
        };
    }
    let command: NodeCommand = match parse_body(body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(e) = command.check() {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    if let Err(e) = command.check_for_one_node() {
        if shared.registry().node(&node_id).is_none() {
            return error(StatusCode::NOT_FOUND, format!("no node {node_id:?}"));
        }
        // 409: the command is valid, but not for one node (it names the right endpoint).
        return error(StatusCode::CONFLICT, e.to_string());
    }
    let universes = shared
        .registry()
        .node(&node_id)
        .map(|n| n.universes().to_vec())
        .unwrap_or_default();
    let action = match &command {
        NodeCommand::Restart {} => Action::RestartNode { node: &node_id },
        _ => Action::NodeCommand {
            what: what.as_str(),
            node: &node_id,
            universes: &universes,
        },
    };
    if let Err(r) = shared.permit(caller, &action) {
        return r;
    }
    let submitted = shared.registry().submit(&node_id, command);
    match submitted {
        Ok((command_id, delivery)) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({
                "command_id": command_id,
                "node_id": node_id,
                "status": match delivery { Delivery::Sent => "sent", Delivery::Queued => "queued" },
            })),
        )
            .into_response(),
        Err(e @ SubmitError::UnknownNode(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// A plugin's command, applied by its handler in the master's world.
async fn plugin_command(shared: &MasterShared, kind: String, body: serde_json::Value) -> Response {
    let (tx, rx) = oneshot::channel();
    if shared
        .plugin_commands
        .tx
        .try_send(PluginCommandRequest {
            kind,
            body: body.clone(),
            reply: tx,
        })
        .is_err()
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the master is busy; retry");
    }
    match tokio::time::timeout(Duration::from_secs(2), rx).await {
        Ok(Ok(Ok(answer))) => (
            StatusCode::OK,
            axum::Json(json!({
                "command": body,
                "status": "executed",
                "result": answer,
            })),
        )
            .into_response(),
        Ok(Ok(Err(e))) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        _ => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the master did not answer within 2 s",
        ),
    }
}

async fn node_status(
    _: Authorized<ReadOnly>,
    State(shared): State<Arc<MasterShared>>,
    Path(node_id): Path<String>,
) -> Response {
    let reg = shared.registry();
    if let Some(n) = reg.node(&node_id) {
        return axum::Json(status_of(n)).into_response();
    }
    if node_id == reg.master_id()
        && let Some(own) = master_status(&shared, &reg)
    {
        return axum::Json(own).into_response();
    }
    match reg.pending().into_iter().find(|p| p.node_id == node_id) {
        Some(p) => axum::Json(pending_status(&p)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no node {node_id:?}")),
    }
}

/// The master itself in the status shape, when it has something a receiver would report
/// (media playback on its own outputs); `None` otherwise.
pub(crate) fn master_status(shared: &MasterShared, reg: &Registry) -> Option<NodeStatus> {
    let playback = shared.own_playback()?;
    let now = crate::health::rfc3339(SystemTime::now());
    Some(NodeStatus {
        online: true,
        last_heartbeat: Some(now.clone()),
        dmx_fps: 0.0,
        cpu_usage: 0.0,
        node_id: reg.master_id().to_string(),
        state: "online".into(),
        state_since: now,
        universes: Vec::new(),
        capabilities: Vec::new(),
        memory_mb: 0.0,
        frames_out: 0,
        seq: reg.seq(),
        pending_commands: 0,
        commands_executed: 0,
        commands_failed: 0,
        degraded_reason: None,
        version: Some(env!("CARGO_PKG_VERSION").to_string()),
        clock: None,
        media: None,
        timecode: None,
        playback: Some(playback),
        trust: None,
    })
}

/// A key-less connection waiting to be adopted, in the status shape.
fn pending_status(p: &PendingView) -> NodeStatus {
    NodeStatus {
        online: false,
        last_heartbeat: None,
        dmx_fps: 0.0,
        cpu_usage: 0.0,
        node_id: p.node_id.clone(),
        state: "pending".into(),
        state_since: p.since.clone(),
        universes: p.universes.clone(),
        capabilities: p.capabilities.clone(),
        memory_mb: 0.0,
        frames_out: 0,
        seq: 0,
        pending_commands: 0,
        commands_executed: 0,
        commands_failed: 0,
        degraded_reason: None,
        version: Some(p.version.clone()),
        clock: None,
        media: None,
        timecode: None,
        playback: None,
        trust: None,
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AdoptBody {
    /// Which pending connection, when several claim the id (`GET /api/nodes` lists them).
    #[serde(default)]
    connection: Option<u64>,
}

/// Adopts the pending connection claiming `node_id` and keeps the adoption on disk (under the
/// registry's lock, so concurrent adoptions are written in order; they are rare).
async fn adopt(
    _: Authorized<Control>,
    State(shared): State<Arc<MasterShared>>,
    Path(node_id): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(e) = crate::config::check_node_id(&node_id) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, e);
    }
    let body: AdoptBody = if body.is_empty() {
        AdoptBody::default()
    } else {
        match parse_body(&body) {
            Ok(b) => b,
            Err(r) => return r,
        }
    };
    let now = SystemTime::now();
    let mut reg = shared.registry();
    let adoption = match reg.adopt(&node_id, body.connection, now) {
        Ok(a) => a,
        Err(e @ AdoptError::NotPending(_)) => return error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e) => return error(StatusCode::CONFLICT, e.to_string()),
    };
    let saved = match reg.state_dir().map(std::path::Path::to_path_buf) {
        Some(dir) => crate::adoptions::save(&dir, &reg.adoptions()).map_err(|e| e.to_string()),
        None => Err("the master has no state directory".to_string()),
    };
    if let Err(e) = &saved {
        reg.raise(
            crate::alerts::NewAlert {
                severity: Severity::Error,
                kind: AlertKind::Other,
                source: Some(&node_id),
                node_id: Some(&node_id),
                message: format!("adoption of {node_id} is not kept across restarts: {e}"),
            },
            now,
        );
    }
    axum::Json(json!({
        "node_id": node_id,
        "adopted": true,
        "address": adoption.address,
        "universes": adoption.universes,
        "key": adoption.key,
        "saved": saved.is_ok(),
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeartbeatBody {
    node_id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    metrics: Metrics,
}

async fn rest_heartbeat(
    _: Authorized<Control>,
    State(shared): State<Arc<MasterShared>>,
    JsonBody(body): JsonBody<HeartbeatBody>,
) -> Response {
    let _ = body.status;
    match shared
        .registry()
        .heartbeat(&body.node_id, body.metrics, SystemTime::now())
    {
        Ok(()) => axum::Json(json!({ "ok": true })).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    node_id: String,
    command_id: String,
    status: AckStatus,
    #[serde(default)]
    reason: Option<String>,
}

async fn rest_ack(
    _: Authorized<Control>,
    State(shared): State<Arc<MasterShared>>,
    JsonBody(body): JsonBody<AckBody>,
) -> Response {
    match shared.registry().ack(
        &body.node_id,
        &body.command_id,
        body.status,
        body.reason.as_deref(),
        SystemTime::now(),
    ) {
        Ok(()) => axum::Json(json!({ "ok": true })).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
    }
}

async fn alerts(_: Authorized<ReadOnly>, State(shared): State<Arc<MasterShared>>) -> Response {
    let alerts = shared.registry().alerts();
    axum::Json(json!({ "alerts": alerts })).into_response()
}

async fn show(
    _: Authorized<ReadOnly>,
    State(shared): State<Arc<MasterShared>>,
    Path(hash): Path<String>,
) -> Response {
    let ron = shared.registry().show_ron(&hash);
    match ron {
        Some(ron) => (
            [(header::CONTENT_TYPE, "application/ron; charset=utf-8")],
            ron.to_string(),
        )
            .into_response(),
        _ => error(StatusCode::NOT_FOUND, format!("no show with hash {hash}")),
    }
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::OPENAPI_JSON,
    )
        .into_response()
}

/// `GET /api/audit?after=SEQ&since=RFC3339&limit=N` (admin): the audit log's entries after
/// number `after` (default 0) and at or after `since`, at most `limit` (default 100, at most
/// [`crate::audit::MAX_PAGE`]); `next` is the `after` of the next page.
async fn audit(
    _: Authorized<Control>,
    State(shared): State<Arc<MasterShared>>,
    axum::extract::Query(query): axum::extract::Query<AuditQuery>,
) -> Response {
    let Some(log) = &shared.audit else {
        return error(
            StatusCode::NOT_FOUND,
            "this master keeps no audit log (it has no state directory)",
        );
    };
    let after = query.after.unwrap_or(0);
    match log.page(after, query.since.as_deref(), query.limit.unwrap_or(100)) {
        Ok(entries) => {
            let next = entries.last().map_or(after, |e| e.seq);
            axum::Json(json!({ "entries": entries, "next": next })).into_response()
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the audit log: {e}"),
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    after: Option<u64>,
    since: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/ws`: a node's link. Without `Authorization` the node proves its key in the
/// frames (or waits to be adopted); with it, the key must be `admin` (a bearer key speaks for
/// a node). The link closes when the key that opened it is revoked.
async fn websocket(
    State(shared): State<Arc<MasterShared>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let addr = peer.map(|p| (p.0).0);
    let bearer = match shared.caller(&headers, addr) {
        Ok(caller) => {
            if let Err(r) = shared.permit(&caller, &Action::ActAsNode) {
                return r;
            }
            Some(caller.key_id)
        }
        Err(_) if headers.get(header::AUTHORIZATION).is_none() => None,
        Err(r) => return r,
    };
    let peer = Peer {
        addr: addr.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
        auth: if bearer.is_some() {
            LinkAuth::ControlKey
        } else {
            LinkAuth::Unauthenticated
        },
    };
    ws.max_message_size(protocol::MAX_FRAME_BYTES)
        .max_frame_size(protocol::MAX_FRAME_BYTES)
        .on_upgrade(move |socket| node_link(socket, shared, peer, bearer))
}

/// Garbage frames tolerated on one link before it is closed.
const MAX_BAD_FRAMES: u32 = 10;
/// Frames written to a node in one go at most.
const WRITE_BATCH: usize = 64;
/// Frames buffered for one node before it is cut off as too slow.
const LINK_QUEUE: usize = 8192;

async fn node_link(
    socket: WebSocket,
    shared: Arc<MasterShared>,
    mut peer: Peer,
    mut key_id: Option<String>,
) {
    let (mut sink, mut stream) = socket.split();
    let reply = |msg: &ToReceiver| Message::Text(protocol::encode(msg).into());
    // The first frame must be a hello, within the handshake time (pings do not extend it).
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let hello = loop {
        let next = tokio::time::timeout_at(deadline, stream.next()).await;
        let text = match next {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Binary(_)))) => {
                shared.bad_frames.fetch_add(1, Ordering::Relaxed);
                let _ = sink
                    .send(reply(&ToReceiver::Refused {
                        reason: FrameError::Binary.to_string(),
                    }))
                    .await;
                return;
            }
            Ok(Some(Err(e))) => {
                // Oversized frames end here (the WebSocket layer refuses them unread).
                shared.bad_frames.fetch_add(1, Ordering::Relaxed);
                let reason = link_error(&e);
                tracing::warn!("a node link was refused before its hello: {reason}");
                let _ = sink.send(reply(&ToReceiver::Refused { reason })).await;
                let _ = sink.close().await;
                return;
            }
            Err(_) => {
                let reason = format!("no hello within {HANDSHAKE_TIMEOUT:?}");
                tracing::debug!("link from {} closed: {reason}", peer.addr);
                let _ = sink
                    .send(reply(&ToReceiver::Refused {
                        reason: reason.clone(),
                    }))
                    .await;
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code: axum::extract::ws::close_code::POLICY,
                        reason: reason.into(),
                    })))
                    .await;
                return;
            }
            _ => return,
        };
        match decode_to_master(&text) {
            Ok(ToMaster::Hello(h)) => break h,
            Ok(_) => {
                shared.bad_frames.fetch_add(1, Ordering::Relaxed);
                let _ = sink
                    .send(reply(&ToReceiver::Refused {
                        reason: "the first message must be a hello".into(),
                    }))
                    .await;
                return;
            }
            Err(e) => {
                shared.bad_frames.fetch_add(1, Ordering::Relaxed);
                let _ = sink
                    .send(reply(&ToReceiver::Refused {
                        reason: e.to_string(),
                    }))
                    .await;
                return;
            }
        }
    };
    // A keyed receiver and the master prove the key to each other before anything in the
    // registry changes; the key itself never crosses the link.
    if let Some(auth) = &hello.auth {
        match prove_node(&mut sink, &mut stream, &shared, &hello.node_id, auth).await {
            Ok(()) => {
                peer.auth = LinkAuth::ControlKey;
                key_id = Some(auth.key_id.clone());
            }
            Err(refusal) => {
                // An alert like any refused hello: aggregated per source, logged at most
                // every few seconds, so a flood of bad proofs cannot flood the log.
                let source = peer.addr.ip().to_string();
                shared.registry().raise(
                    crate::alerts::NewAlert {
                        severity: crate::alerts::Severity::Warning,
                        kind: AlertKind::RefusedHello,
                        source: Some(&source),
                        node_id: None,
                        message: format!(
                            "hello as {:?} from {} refused: {refusal}",
                            hello.node_id, peer.addr
                        ),
                    },
                    SystemTime::now(),
                );
                refuse(&mut sink, refusal.to_string()).await;
                return;
            }
        }
    }
    let (tx, mut rx) = mpsc::channel::<Arc<str>>(LINK_QUEUE);
    let accepted = {
        let mut reg = shared.registry();
        reg.prune_closed();
        let accepted = reg.hello(&hello, &peer, SystemTime::now());
        if let Ok(a) = &accepted {
            reg.attach(a.conn_id(), tx);
        }
        accepted
    };
    let (conn_id, pending) = match accepted {
        Ok(a) => (a.conn_id(), matches!(a, Admitted::Pending(_))),
        Err(refusal) => {
            // Logged (aggregated, rate-limited) by the registry's alert.
            tracing::debug!("node {:?} refused: {refusal}", hello.node_id);
            refuse(&mut sink, refusal.to_string()).await;
            return;
        }
    };
    let node_id = hello.node_id.clone();
    if !pending {
        tracing::info!(
            "node {node_id} connected (version {}, universes {:?})",
            hello.version,
            hello.universes
        );
    }
    let mut writer = tokio::spawn(async move {
        // A pending link is pinged so the node does not take the wait for silence.
        let mut keepalive = tokio::time::interval(PENDING_KEEPALIVE);
        // Frames queued behind the first go out in the same write: one system call per
        // burst, not per frame, when a node falls behind.
        'link: loop {
            let frame = tokio::select! {
                frame = rx.recv() => match frame {
                    Some(f) => f,
                    None => break,
                },
                _ = keepalive.tick(), if pending => {
                    if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                        break;
                    }
                    continue;
                }
            };
            if sink
                .feed(Message::Text(frame.as_ref().into()))
                .await
                .is_err()
            {
                break;
            }
            for _ in 0..WRITE_BATCH {
                let Ok(frame) = rx.try_recv() else { break };
                if sink
                    .feed(Message::Text(frame.as_ref().into()))
                    .await
                    .is_err()
                {
                    break 'link;
                }
            }
            if sink.flush().await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut bad = 0u32;
    // The registry closes a link through its outbox, which drops its writer's sender: the
    // writer ends, and so does this.
    let mut writer_done = false;
    // The key that opened the link: when it is revoked, the node is dropped.
    let revoked = async {
        match &key_id {
            Some(id) => shared.key_revoked(id).await,
            None => std::future::pending().await,
        }
    };
    let mut revoked = std::pin::pin!(revoked);
    loop {
        let msg = tokio::select! {
            msg = stream.next() => msg,
            _ = &mut writer => {
                writer_done = true;
                break;
            }
            () = &mut revoked => {
                let id = key_id.as_deref().unwrap_or_default();
                let reason = format!("the key {id} this link proved was revoked");
                tracing::warn!("node {node_id}: {reason}; dropping its link");
                shared.audit(Record {
                    peer: Some(peer.addr),
                    action: format!("drop node {node_id}: its link key {id} was revoked"),
                    status: 401,
                    reason: Some(reason.clone()),
                    ..Record::default()
                });
                let frame: Arc<str> = protocol::encode(&ToReceiver::Refused { reason }).into();
                shared.registry().send_on(&node_id, conn_id, frame);
                break;
            }
        };
        let Some(msg) = msg else { break };
        // A clock ping's t2: as close to the frame's arrival as this task gets.
        let arrived = std::time::Instant::now();
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(_)) => break,
            Err(e) => {
                shared.bad_frames.fetch_add(1, Ordering::Relaxed);
                let reason = link_error(&e);
                tracing::warn!("node {node_id}: link closed: {reason}");
                send_error(&shared, &node_id, conn_id, reason);
                break;
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Binary(_)) => {
                bad += 1;
                shared.bad_frames.fetch_add(1, Ordering::Relaxed);
                send_error(&shared, &node_id, conn_id, FrameError::Binary.to_string());
                if bad >= MAX_BAD_FRAMES {
                    break;
                }
                continue;
            }
        };
        let now = SystemTime::now();
        if !shared.registry().is_linked(&node_id, conn_id) {
            // Pending (or cut off): what it says changes nothing.
            continue;
        }
        match decode_to_master(&text) {
            Ok(ToMaster::ClockPing(ping)) => {
                answer_clock_ping(&shared, &node_id, conn_id, &ping, arrived)
            }
            Ok(msg) => {
                let show_tick = shared.clock.load(Ordering::Relaxed);
                let answer = shared.registry().receive(&node_id, msg, show_tick, now);
                if let Err(reason) = answer {
                    bad += 1;
                    send_error(&shared, &node_id, conn_id, reason.into());
                }
            }
            Err(e) => {
                bad += 1;
                shared.bad_frames.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("node {node_id}: bad frame: {e}");
                send_error(&shared, &node_id, conn_id, e.to_string());
            }
        }
        if bad >= MAX_BAD_FRAMES {
            tracing::warn!("node {node_id}: {bad} bad frames; closing its link");
            break;
        }
    }
    shared
        .registry()
        .disconnect(&node_id, conn_id, SystemTime::now());
    // The registry closed this link (its sender is dropped): the writer sends what is queued
    // (a last error, say), closes, and ends; a peer that does not read is not waited for long.
    if !writer_done
        && tokio::time::timeout(Duration::from_secs(1), writer)
            .await
            .is_err()
    {
        tracing::debug!("node {node_id}: writer did not finish within 1 s");
    }
    tracing::info!("node {node_id} disconnected");
}

/// How long a node has to answer the master's challenge with its proof.
const PROOF_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the master refuses a keyed node during the handshake.
#[derive(Debug, thiserror::Error)]
enum ProofRefusal {
    #[error("no control key with id {0} on this master (or it was revoked)")]
    UnknownKey(String),
    #[error("bad hello auth: {0}")]
    BadAuth(ProofError),
    #[error("the master cannot challenge: {0}")]
    Random(ProofError),
    #[error("the node's key proof does not match: wrong key")]
    Mismatch,
    #[error("no proof within {PROOF_TIMEOUT:?}")]
    Timeout,
    #[error("the answer to a challenge must be a proof")]
    NotAProof,
    #[error("link closed during the handshake: {0}")]
    Link(String),
}

/// Tells a node why it is refused and closes its link.
async fn refuse(sink: &mut SplitSink<WebSocket, Message>, reason: String) {
    let frame = Message::Text(protocol::encode(&ToReceiver::Refused { reason }).into());
    let _ = sink.send(frame).await;
    let _ = sink.close().await;
}

/// The master's half of the key handshake ([`crate::handshake`]) on a new link: the challenge
/// with the master's proof, then the check of the node's proof, in constant time.
async fn prove_node(
    sink: &mut SplitSink<WebSocket, Message>,
    stream: &mut SplitStream<WebSocket>,
    shared: &MasterShared,
    node_id: &str,
    auth: &HelloAuth,
) -> Result<(), ProofRefusal> {
    let key = shared
        .link_key(&auth.key_id)
        .ok_or_else(|| ProofRefusal::UnknownKey(auth.key_id.clone()))?;
    let client_nonce = Nonce::from_hex(&auth.nonce).map_err(ProofRefusal::BadAuth)?;
    let master_nonce = Nonce::random().map_err(ProofRefusal::Random)?;
    let master_id = shared.registry().master_id().to_string();
    let challenge = MasterChallenge::new(key, client_nonce, master_nonce, node_id, &master_id);
    sink.send(Message::Text(protocol::encode(&challenge.message()).into()))
        .await
        .map_err(|e| ProofRefusal::Link(e.to_string()))?;
    let deadline = tokio::time::Instant::now() + PROOF_TIMEOUT;
    let text = loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => break t,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Binary(_)))) => return Err(ProofRefusal::NotAProof),
            Ok(Some(Ok(Message::Close(_))) | None) => {
                return Err(ProofRefusal::Link("closed by the node".into()));
            }
            Ok(Some(Err(e))) => return Err(ProofRefusal::Link(link_error(&e))),
            Err(_) => return Err(ProofRefusal::Timeout),
        }
    };
    match decode_to_master(&text) {
        Ok(ToMaster::Proof { proof }) => {
            challenge.check(&proof).map_err(|_| ProofRefusal::Mismatch)
        }
        _ => Err(ProofRefusal::NotAProof),
    }
}

/// A WebSocket receive error, said plainly (oversized frames name the limit).
pub(crate) fn link_error(e: &axum::Error) -> String {
    let text = e.to_string();
    if text.contains("too long") || text.contains("too big") || text.contains("Space limit") {
        format!(
            "frame larger than the {}-byte limit refused ({text})",
            protocol::MAX_FRAME_BYTES
        )
    } else {
        format!("WebSocket error: {text}")
    }
}

/// Answers a clock ping that came over the link (arrived at `arrived`), on the same link.
/// A ping that is not answerable (forged, replayed, no responder yet) is dropped, as on UDP:
/// the node's client times out and tries again.
fn answer_clock_ping(
    shared: &MasterShared,
    node_id: &str,
    conn_id: u64,
    ping: &rockontrol_clock::WsClockPacket,
    arrived: std::time::Instant,
) {
    let Some(answerer) = shared.clock_answerer.get() else {
        tracing::debug!("node {node_id}: a clock ping before the clock responder started");
        return;
    };
    let pong = ping
        .to_bytes()
        .map_err(|e| e.to_string())
        .and_then(|bytes| answerer.answer(&bytes, arrived).map_err(|e| e.to_string()));
    match pong {
        Ok(pong) => {
            let frame: Arc<str> = protocol::encode(&ToReceiver::ClockPong(
                rockontrol_clock::WsClockPacket::from_bytes(&pong),
            ))
            .into();
            shared.registry().send_on(node_id, conn_id, frame);
        }
        Err(e) => tracing::debug!("node {node_id}: clock ping over the link refused: {e}"),
    }
}

fn send_error(shared: &MasterShared, node_id: &str, conn_id: u64, reason: String) {
    let frame: Arc<str> = protocol::encode(&ToReceiver::Error { reason }).into();
    shared.registry().send_on(node_id, conn_id, frame);
}

/// Keeps the registry's list of nodes seen over mDNS (on `interface`, `None`: every one).
pub fn watch_mdns(
    shared: Arc<MasterShared>,
    interface: Option<String>,
    events: Option<NodeEvents>,
) -> std::io::Result<()> {
    let gone = Arc::clone(&shared);
    crate::discovery::watch(
        interface,
        move |seen| {
            if shared.registry().saw_over_mdns(&seen, SystemTime::now()) {
                let fingerprint = seen.fingerprint().map(|f| f.to_string());
                tracing::info!(
                    "mDNS: sees {} {} at {} (universes {}; TLS {})",
                    seen.role,
                    seen.node_id,
                    seen.addr.ip(),
                    seen.txt.get("universes").map_or("", String::as_str),
                    fingerprint.as_deref().unwrap_or("off")
                );
                crate::events::emit(
                    events.as_ref(),
                    NodeEvent::MdnsSeen {
                        role: seen.role.to_string(),
                        node_id: seen.node_id.clone(),
                        addr: seen.addr.ip().to_string(),
                        fingerprint,
                    },
                );
            }
        },
        move |instance| gone.registry().mdns_goodbye(instance),
    )
}

/// Binds the master's port (`port` 0: any free port) and returns the listener and its address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
