//! The master's REST and WebSocket server (axum on tokio), on one port.
//!
//! Handlers only touch the [`Registry`] under a short lock (never across an `.await`) and
//! hand show commands to the ECS over a bounded channel; the engine applies them at a tick and
//! the registry streams them to receivers as deltas.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{SinkExt, StreamExt};
use rockontrol_engine::Command;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::auth::{Access, Keys};
use crate::config::Capability;
use crate::protocol::{
    self, AckStatus, FrameError, Metrics, NodeCommand, ToMaster, ToReceiver, decode_to_master,
};
use crate::registry::{Delivery, NodeEntry, Registry, SubmitError};

/// A show command for the master's engine, answered with the tick it was applied at.
#[derive(Debug)]
pub struct ShowCommandRequest {
    pub command: Command,
    pub reply: oneshot::Sender<Result<u64, String>>,
}

/// What the server and the ECS share.
#[derive(Debug)]
pub struct MasterShared {
    pub registry: Mutex<Registry>,
    pub keys: Keys,
    /// Show commands to the engine.
    pub show_commands: mpsc::Sender<ShowCommandRequest>,
    /// The engine's next tick (written by the ECS every frame).
    pub clock: AtomicU64,
    /// Frames refused for being garbage, too large or out of place (all links).
    pub bad_frames: AtomicU64,
}

impl MasterShared {
    /// The registry (a poisoned lock is taken over: the data stays consistent per call).
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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

#[expect(
    clippy::result_large_err,
    reason = "the error is the HTTP response, returned at once"
)]
fn authorize(shared: &MasterShared, headers: &HeaderMap, need: Access) -> Result<(), Response> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let access = shared.keys.check(header);
    if access >= need {
        return Ok(());
    }
    Err(match access {
        Access::None if header.is_none() => error(
            StatusCode::UNAUTHORIZED,
            "missing Authorization: Bearer <key>",
        ),
        Access::None => error(StatusCode::UNAUTHORIZED, "invalid API key"),
        _ => error(
            StatusCode::FORBIDDEN,
            "this key is read-only; a control key is needed",
        ),
    })
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

/// The router of every endpoint.
pub fn router(shared: Arc<MasterShared>) -> Router {
    Router::new()
        .route("/api/nodes", get(list_nodes))
        .route("/api/nodes/register", post(register))
        .route("/api/nodes/{node_id}/command", post(node_command))
        .route("/api/nodes/{node_id}/status", get(node_status))
        .route("/api/nodes/{node_id}/adopt", post(adopt))
        .route("/api/master/heartbeat", post(rest_heartbeat))
        .route("/api/master/ack", post(rest_ack))
        .route("/api/alerts", get(alerts))
        .route("/api/show/{hash}", get(show))
        .route("/api/openapi.json", get(openapi))
        .route("/api/ws", get(websocket))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .with_state(shared)
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<MasterShared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let app = router(Arc::clone(&shared));
    tokio::spawn(housekeeping(Arc::clone(&shared)));
    // Frames are small and latency matters: no Nagle delay behind an unacknowledged segment.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Timeouts every 250 ms, the show clock to every node every second.
async fn housekeeping(shared: Arc<MasterShared>) {
    let mut interval = tokio::time::interval(Duration::from_millis(250));
    let mut n: u64 = 0;
    loop {
        interval.tick().await;
        n += 1;
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
}

fn status_of(n: &NodeEntry) -> NodeStatus {
    NodeStatus {
        online: matches!(
            n.state,
            crate::registry::NodeState::Online | crate::registry::NodeState::Degraded
        ),
        last_heartbeat: n.last_heartbeat.map(crate::health::rfc3339),
        dmx_fps: n.metrics.dmx_fps,
        cpu_usage: n.metrics.cpu_usage,
        node_id: n.node_id.clone(),
        state: serde_json::to_value(n.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        state_since: crate::health::rfc3339(n.state_since),
        universes: n.universes.clone(),
        capabilities: n.capabilities.clone(),
        memory_mb: n.metrics.memory_mb,
        frames_out: n.metrics.frames_out,
        seq: n.metrics.seq,
        pending_commands: n.pending_commands(),
        commands_executed: n.executed,
        commands_failed: n.failed,
        degraded_reason: n.degraded_reason.clone(),
        version: n.version.clone(),
    }
}

async fn list_nodes(State(shared): State<Arc<MasterShared>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&shared, &headers, Access::ReadOnly) {
        return r;
    }
    let reg = shared.registry();
    let nodes: Vec<NodeStatus> = reg.nodes.values().map(status_of).collect();
    axum::Json(json!({
        "master_id": reg.master_id,
        "seq": reg.replication.seq,
        "tick": reg.replication.tick,
        "show_hash": reg.replication.show_hash,
        "nodes": nodes,
        "discovered": reg.discovered.values().collect::<Vec<_>>(),
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
    State(shared): State<Arc<MasterShared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, Access::Control) {
        return r;
    }
    let body: RegisterBody = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
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
                "node_id": entry.node_id,
                "registered": true,
                "universes": entry.universes,
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

async fn node_command(
    State(shared): State<Arc<MasterShared>>,
    Path(node_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, Access::Control) {
        return r;
    }
    let master_id = shared.registry().master_id.clone();
    if node_id == master_id {
        // A command for the master is a show command: applied by the engine, replicated.
        let command: Command = match serde_json::from_slice::<NodeCommand>(&body) {
            Ok(nc) if nc.check().is_err() => {
                let reason = nc.check().err().map(|e| e.to_string()).unwrap_or_default();
                return error(StatusCode::BAD_REQUEST, reason);
            }
            Ok(nc) => match nc.to_engine(None) {
                Ok(c) => c,
                Err(crate::protocol::CommandMapError::NoPlayback) => {
                    match serde_json::from_slice::<Command>(&body) {
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
            Err(e1) => match serde_json::from_slice::<Command>(&body) {
                Ok(c) => c,
                Err(_) => {
                    return error(StatusCode::BAD_REQUEST, format!("invalid command: {e1}"));
                }
            },
        };
        if let Err(e) = command.check() {
            return error(StatusCode::BAD_REQUEST, e.to_string());
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
            Ok(Ok(Ok(tick))) => (
                StatusCode::OK,
                axum::Json(json!({
                    "command": command,
                    "status": "executed",
                    "tick": tick,
                })),
            )
                .into_response(),
            Ok(Ok(Err(e))) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
            _ => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the engine did not answer within 2 s",
            ),
        };
    }
    let command: NodeCommand = match parse_body(&body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(e) = command.check() {
        return error(StatusCode::BAD_REQUEST, e.to_string());
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

async fn node_status(
    State(shared): State<Arc<MasterShared>>,
    Path(node_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, Access::ReadOnly) {
        return r;
    }
    let reg = shared.registry();
    match reg.nodes.get(&node_id) {
        Some(n) => axum::Json(status_of(n)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no node {node_id:?}")),
    }
}

async fn adopt(
    State(shared): State<Arc<MasterShared>>,
    Path(node_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, Access::Control) {
        return r;
    }
    if let Err(e) = crate::config::check_node_id(&node_id) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, e);
    }
    let known = shared.registry().adopt(&node_id);
    axum::Json(json!({ "node_id": node_id, "adopted": true, "seen": known })).into_response()
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
    State(shared): State<Arc<MasterShared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, Access::Control) {
        return r;
    }
    let body: HeartbeatBody = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
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
    State(shared): State<Arc<MasterShared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, Access::Control) {
        return r;
    }
    let body: AckBody = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
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

async fn alerts(State(shared): State<Arc<MasterShared>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&shared, &headers, Access::ReadOnly) {
        return r;
    }
    let reg = shared.registry();
    axum::Json(json!({ "alerts": reg.alerts })).into_response()
}

async fn show(
    State(shared): State<Arc<MasterShared>>,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&shared, &headers, Access::ReadOnly) {
        return r;
    }
    let reg = shared.registry();
    match (&reg.replication.show_hash, &reg.replication.show_ron) {
        (Some(h), Some(ron)) if *h == hash => (
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

async fn websocket(
    State(shared): State<Arc<MasterShared>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let access = shared.keys.check(header);
    if header.is_some() && access == Access::None {
        return error(StatusCode::UNAUTHORIZED, "invalid API key");
    }
    if access == Access::ReadOnly {
        return error(
            StatusCode::FORBIDDEN,
            "a read-only key cannot connect a node",
        );
    }
    let authorized = access == Access::Control;
    ws.max_message_size(protocol::MAX_FRAME_BYTES)
        .max_frame_size(protocol::MAX_FRAME_BYTES)
        .on_upgrade(move |socket| node_link(socket, shared, authorized))
}

/// Garbage frames tolerated on one link before it is closed.
const MAX_BAD_FRAMES: u32 = 10;
/// Frames written to a node in one go at most.
const WRITE_BATCH: usize = 64;
/// Frames buffered for one node before it is cut off as too slow.
const LINK_QUEUE: usize = 8192;

async fn node_link(socket: WebSocket, shared: Arc<MasterShared>, authorized: bool) {
    let (mut sink, mut stream) = socket.split();
    let reply = |msg: &ToReceiver| Message::Text(protocol::encode(msg).into());
    // The first frame must be a hello, within 5 s.
    let hello = loop {
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
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
    let (tx, mut rx) = mpsc::channel::<Arc<str>>(LINK_QUEUE);
    let accepted = {
        let mut reg = shared.registry();
        // The snapshot in the welcome carries the engine's tick of this moment.
        reg.replication.tick = shared.clock.load(Ordering::Relaxed);
        reg.hello(&hello, authorized, tx, SystemTime::now())
    };
    let conn_id = match accepted {
        Ok(id) => id,
        Err(refusal) => {
            tracing::warn!("node {:?} refused: {refusal}", hello.node_id);
            let _ = sink
                .send(reply(&ToReceiver::Refused {
                    reason: refusal.to_string(),
                }))
                .await;
            let _ = sink.close().await;
            return;
        }
    };
    let node_id = hello.node_id.clone();
    tracing::info!(
        "node {node_id} connected (version {}, universes {:?})",
        hello.version,
        hello.universes
    );
    let writer = tokio::spawn(async move {
        // Frames queued behind the first go out in the same write: one system call per
        // burst, not per frame, when a node falls behind.
        'link: while let Some(frame) = rx.recv().await {
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
    while let Some(msg) = stream.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(_)) => break,
            Err(e) => {
                shared.bad_frames.fetch_add(1, Ordering::Relaxed);
                let reason = link_error(&e);
                tracing::warn!("node {node_id}: link closed: {reason}");
                send_error(&shared, &node_id, reason);
                break;
            }
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Binary(_)) => {
                bad += 1;
                shared.bad_frames.fetch_add(1, Ordering::Relaxed);
                send_error(&shared, &node_id, FrameError::Binary.to_string());
                if bad >= MAX_BAD_FRAMES {
                    break;
                }
                continue;
            }
        };
        let now = SystemTime::now();
        match decode_to_master(&text) {
            Ok(ToMaster::Heartbeat { metrics, .. }) => {
                let _ = shared.registry().heartbeat(&node_id, metrics, now);
            }
            Ok(ToMaster::Ack {
                command_id,
                status,
                reason,
            }) => {
                let _ =
                    shared
                        .registry()
                        .ack(&node_id, &command_id, status, reason.as_deref(), now);
            }
            Ok(ToMaster::SnapshotRequest { reason }) => {
                tracing::info!("node {node_id} asks for a snapshot: {reason}");
                let mut reg = shared.registry();
                reg.replication.tick = shared.clock.load(Ordering::Relaxed);
                reg.send_snapshot(&node_id);
            }
            Ok(ToMaster::Hello(_)) => {
                bad += 1;
                send_error(&shared, &node_id, "hello was already received".into());
            }
            Err(e) => {
                bad += 1;
                shared.bad_frames.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("node {node_id}: bad frame: {e}");
                send_error(&shared, &node_id, e.to_string());
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
    // The registry dropped this link's sender: the writer sends what is queued (a last error,
    // say), closes, and ends; a peer that does not read is not waited for long.
    if tokio::time::timeout(Duration::from_secs(1), writer)
        .await
        .is_err()
    {
        tracing::debug!("node {node_id}: writer did not finish within 1 s");
    }
    tracing::info!("node {node_id} disconnected");
}

/// A WebSocket receive error, said plainly (oversized frames name the limit).
fn link_error(e: &axum::Error) -> String {
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

fn send_error(shared: &MasterShared, node_id: &str, reason: String) {
    let frame: Arc<str> = protocol::encode(&ToReceiver::Error { reason }).into();
    let reg = shared.registry();
    if let Some(link) = reg.nodes.get(node_id).and_then(|n| n.link.as_ref()) {
        let _ = link.tx.try_send(frame);
    }
}

/// Keeps the registry's list of nodes seen over mDNS (on `interface`, `None`: every one).
pub fn watch_mdns(shared: Arc<MasterShared>, interface: Option<String>) -> std::io::Result<()> {
    let gone = Arc::clone(&shared);
    crate::discovery::watch(
        interface,
        move |seen| {
            if shared.registry().saw_over_mdns(&seen, SystemTime::now()) {
                tracing::info!(
                    "mDNS: sees {} {} at {} (universes {})",
                    seen.role,
                    seen.node_id,
                    seen.addr.ip(),
                    seen.txt.get("universes").map_or("", String::as_str)
                );
                println!(
                    "mDNS: sees {} {} at {}",
                    seen.role,
                    seen.node_id,
                    seen.addr.ip()
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
