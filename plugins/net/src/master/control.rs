//! `GET /api/control`: show and media commands for tools over one WebSocket, and an optional
//! push of the rig's state.
//!
//! The upgrade carries the bearer key as REST does (`Authorization: Bearer <key>`; a
//! `viewer` key may connect and subscribe, a command needs what `POST /api/command` needs: the
//! `operator` role and the key's limits, [`crate::roles::permit`]; the link closes when the
//! key is revoked). Then each text
//! frame is one request, a JSON object with an optional `id` (any JSON value, echoed back):
//!
//! - `{"id": 1, "command": {…}}`: the body of `POST /api/command` (`{"type": "go", "playback":
//!   "main"}`, `{"type": "media", "action": "play", "layer": "bg", "clip": "intro"}`, …),
//!   run by the same function as REST ([`super::server::run_command`]) and answered with what
//!   REST answers: `{"id": 1, "status": 200, "body": {…}}` (409 with `media_not_ready` from the
//!   GO gate, 422 naming a bad layer, …). Commands are answered in the order they came.
//! - `{"id": 2, "subscribe": {"interval_ms": 500}}` (or `"subscribe": true`): the state is then
//!   pushed as `{"event": "state", …}` (every node's status: heartbeat figures and media
//!   playback, the master's own included) whenever it changed, at most every `interval_ms`
//!   (100 … 10 000, default 500). `{"unsubscribe": true}` stops it.
//!
//! Bounded: frames of at most [`MAX_CONTROL_FRAME`] bytes (a larger one closes the link, as
//! the WebSocket layer refuses it unread), [`COMMANDS_PER_SECOND`] commands a second with a
//! burst of [`COMMAND_BURST`] (more are answered 429), and [`MAX_BAD_FRAMES`] frames that are
//! not a request (garbage, binary) before the link is closed; each of those is answered with
//! a 400 naming what is wrong, and the link goes on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::server::{MasterShared, authorize, link_error, run_command, status_of};
use crate::roles::Action;

/// Where the control WebSocket is served.
pub const CONTROL_PATH: &str = "/api/control";
/// The largest request frame (a command is a few hundred bytes).
pub const MAX_CONTROL_FRAME: usize = 64 * 1024;
/// Commands a second on one link, sustained.
pub const COMMANDS_PER_SECOND: u32 = 50;
/// Commands one link may send at once above the sustained rate.
pub const COMMAND_BURST: u32 = 100;
/// Frames that are not a request before the link is closed.
pub const MAX_BAD_FRAMES: u32 = 10;
/// State pushes: by default, and the bounds a subscription may ask for.
const DEFAULT_INTERVAL: Duration = Duration::from_millis(500);
const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MAX_INTERVAL: Duration = Duration::from_secs(10);
/// Frames queued for one link's writer; a state push that finds it full is dropped (the
/// next one carries the state again).
const WRITE_QUEUE: usize = 64;

/// One request on the control link.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlRequest {
    /// A command, with the body `POST /api/command` takes.
    Command {
        id: Value,
        body: Value,
    },
    /// Push the state at most every `interval`.
    Subscribe {
        id: Value,
        interval: Duration,
    },
    Unsubscribe {
        id: Value,
    },
}

impl ControlRequest {
    pub fn id(&self) -> &Value {
        match self {
            ControlRequest::Command { id, .. }
            | ControlRequest::Subscribe { id, .. }
            | ControlRequest::Unsubscribe { id } => id,
        }
    }
}

/// A frame that is not a request: its `id` if one could be read, and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRequest {
    pub id: Value,
    pub reason: String,
}

/// Reads one request frame (pure: no I/O).
pub fn parse_request(text: &str) -> Result<ControlRequest, BadRequest> {
    let bad = |id: &Value, reason: String| BadRequest {
        id: id.clone(),
        reason,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| {
        bad(
            &Value::Null,
            format!("not JSON ({e}); send {{\"id\": 1, \"command\": {{…}}}}"),
        )
    })?;
    let Value::Object(mut fields) = value else {
        return Err(bad(
            &Value::Null,
            "a request is a JSON object: {\"id\": 1, \"command\": {…}} or {\"subscribe\": true}"
                .into(),
        ));
    };
    let id = fields.remove("id").unwrap_or(Value::Null);
    let command = fields.remove("command");
    let subscribe = fields.remove("subscribe");
    let unsubscribe = fields.remove("unsubscribe");
    if let Some(extra) = fields.keys().next() {
        return Err(bad(
            &id,
            format!(
                "unknown field {extra:?}; a request has id and one of command, subscribe, unsubscribe"
            ),
        ));
    }
    match (command, subscribe, unsubscribe) {
        (Some(body @ Value::Object(_)), None, None) => Ok(ControlRequest::Command { id, body }),
        (Some(_), None, None) => Err(bad(
            &id,
            "command must be a JSON object, the body of POST /api/command".into(),
        )),
        (None, Some(s), None) => {
            let interval = match &s {
                Value::Bool(true) | Value::Null => DEFAULT_INTERVAL,
                Value::Object(o) => match o.get("interval_ms") {
                    None => DEFAULT_INTERVAL,
                    Some(ms) => {
                        let ms = ms.as_u64().ok_or_else(|| {
                            bad(&id, "subscribe.interval_ms must be a whole number".into())
                        })?;
                        let interval = Duration::from_millis(ms);
                        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
                            return Err(bad(
                                &id,
                                format!(
                                    "subscribe.interval_ms {ms} must be within {}..={}",
                                    MIN_INTERVAL.as_millis(),
                                    MAX_INTERVAL.as_millis()
                                ),
                            ));
                        }
                        interval
                    }
                },
                _ => {
                    return Err(bad(&id, "subscribe is true or {\"interval_ms\": N}".into()));
                }
            };
            if let Value::Object(o) = &s
                && let Some(k) = o.keys().find(|k| *k != "interval_ms")
            {
                return Err(bad(&id, format!("unknown subscribe field {k:?}")));
            }
            Ok(ControlRequest::Subscribe { id, interval })
        }
        (None, None, Some(Value::Bool(true))) => Ok(ControlRequest::Unsubscribe { id }),
        (None, None, Some(_)) => Err(bad(&id, "unsubscribe is true".into())),
        (None, None, None) => Err(bad(
            &id,
            "no command, subscribe or unsubscribe in the request".into(),
        )),
        _ => Err(bad(
            &id,
            "one of command, subscribe, unsubscribe per request".into(),
        )),
    }
}

/// A token bucket: `per_second` sustained, `burst` at once (pure: the time is passed in).
#[derive(Debug, Clone)]
pub struct RateLimit {
    per_second: f64,
    burst: f64,
    tokens: f64,
    at: Option<Instant>,
}

impl RateLimit {
    pub fn new(per_second: u32, burst: u32) -> Self {
        RateLimit {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            at: None,
        }
    }

    /// Whether one more may go at `now` (and takes its token if so).
    pub fn allow(&mut self, now: Instant) -> bool {
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() * self.per_second;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The reply to a request.
fn reply(id: &Value, status: StatusCode, body: Value) -> String {
    json!({ "id": id, "status": status.as_u16(), "body": body }).to_string()
}

/// A reply with an error body in REST's shape.
fn refusal(id: &Value, status: StatusCode, message: impl Into<String>) -> String {
    let message = message.into();
    reply(
        id,
        status,
        json!({ "error": message, "status": status.as_u16() }),
    )
}

/// The state pushed to subscribers: every node's status (heartbeat figures and media
/// playback), the master's own included, and the show tick.
pub(crate) fn state_message(shared: &MasterShared) -> Value {
    let reg = shared.registry();
    let mut nodes: Vec<Value> = Vec::new();
    if let Some(own) = super::server::master_status(shared, &reg) {
        nodes.push(json!(own));
    }
    nodes.extend(
        reg.nodes()
            .map(|n| serde_json::to_value(status_of(n)).unwrap_or(Value::Null)),
    );
    json!({
        "event": "state",
        "master_id": reg.master_id(),
        "tick": reg.show_tick(),
        "nodes": nodes,
    })
}

/// The upgrade: the key is checked first, as for REST (a viewer key may subscribe; each
/// command is checked again, so a key that is revoked stops commanding at once).
pub(crate) async fn control(
    State(shared): State<Arc<MasterShared>>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let peer = peer.map(|p| p.0.0);
    let caller = match authorize(&shared, &headers, peer, &Action::Read) {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    ws.max_message_size(MAX_CONTROL_FRAME)
        .max_frame_size(MAX_CONTROL_FRAME)
        .on_upgrade(move |socket| control_link(socket, shared, headers, peer, caller.key_id))
}

/// A REST response as a reply on the link: its status and JSON body.
async fn reply_of(id: &Value, response: Response) -> String {
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_CONTROL_FRAME * 16)
        .await
        .unwrap_or_default();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    reply(id, status, body)
}

async fn control_link(
    socket: WebSocket,
    shared: Arc<MasterShared>,
    headers: HeaderMap,
    peer: Option<std::net::SocketAddr>,
    key_id: String,
) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Message>(WRITE_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            let close = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || close {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut pushes: Option<tokio::task::JoinHandle<()>> = None;
    let mut limit = RateLimit::new(COMMANDS_PER_SECOND, COMMAND_BURST);
    let mut bad = 0u32;
    let master_id = shared.registry().master_id().to_string();
    tracing::debug!("control link opened");
    // The link closes when the key that opened it is revoked (as a node's link does).
    let revoked = {
        let shared = Arc::clone(&shared);
        let key_id = key_id.clone();
        async move { shared.key_revoked(&key_id).await }
    };
    let mut revoked = std::pin::pin!(revoked);
    let mut revoked_now = false;
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            () = &mut revoked => {
                revoked_now = true;
                break;
            }
        };
        let Some(message) = message else { break };
        let text = match message {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(_)) => break,
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Binary(_)) => {
                bad += 1;
                shared
                    .bad_frames
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _ = tx
                    .send(Message::Text(
                        refusal(
                            &Value::Null,
                            StatusCode::BAD_REQUEST,
                            "binary frames are not requests; send JSON text",
                        )
                        .into(),
                    ))
                    .await;
                if bad >= MAX_BAD_FRAMES {
                    break;
                }
                continue;
            }
            Err(e) => {
                // An oversized frame ends here: the WebSocket layer cannot go on after it.
                let reason = link_error(&e);
                tracing::warn!("control link closed: {reason}");
                let _ = tx
                    .send(Message::Text(
                        refusal(&Value::Null, StatusCode::PAYLOAD_TOO_LARGE, reason).into(),
                    ))
                    .await;
                break;
            }
        };
        let request = match parse_request(&text) {
            Ok(r) => r,
            Err(e) => {
                bad += 1;
                shared
                    .bad_frames
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::debug!("control link: bad request: {}", e.reason);
                let _ = tx
                    .send(Message::Text(
                        refusal(&e.id, StatusCode::BAD_REQUEST, e.reason).into(),
                    ))
                    .await;
                if bad >= MAX_BAD_FRAMES {
                    break;
                }
                continue;
            }
        };
        let answer = match request {
            // The key is looked up again for every command (a revoked key stops at once), and
            // run_command checks its role and limits for what the command does, as for REST.
            ControlRequest::Command { id, body } => match shared.caller(&headers, peer) {
                Err(refused) => reply_of(&id, refused).await,
                Ok(_) if !limit.allow(Instant::now()) => refusal(
                    &id,
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "more than {COMMANDS_PER_SECOND} commands a second on this link; slow down"
                    ),
                ),
                Ok(caller) => {
                    let body = Bytes::from(body.to_string());
                    reply_of(&id, run_command(&shared, &caller, &master_id, &body).await).await
                }
            },
            ControlRequest::Subscribe { id, interval } => {
                if let Some(p) = pushes.take() {
                    p.abort();
                }
                pushes = Some(tokio::spawn(push_state(
                    Arc::clone(&shared),
                    tx.clone(),
                    interval,
                )));
                reply(
                    &id,
                    StatusCode::OK,
                    json!({ "subscribed": true, "interval_ms": interval.as_millis() as u64 }),
                )
            }
            ControlRequest::Unsubscribe { id } => {
                if let Some(p) = pushes.take() {
                    p.abort();
                }
                reply(&id, StatusCode::OK, json!({ "subscribed": false }))
            }
        };
        if tx.send(Message::Text(answer.into())).await.is_err() {
            break;
        }
    }
    if let Some(p) = pushes.take() {
        p.abort();
    }
    if revoked_now {
        let reason = format!("the key {key_id} that opened this link was revoked");
        tracing::warn!("control link: {reason}; closing it");
        let _ = tx
            .send(Message::Close(Some(CloseFrame {
                code: axum::extract::ws::close_code::POLICY,
                reason: reason.into(),
            })))
            .await;
    } else if bad >= MAX_BAD_FRAMES {
        tracing::warn!("control link: {bad} bad frames; closing it");
        let _ = tx
            .send(Message::Close(Some(CloseFrame {
                code: axum::extract::ws::close_code::POLICY,
                reason: format!("{bad} frames that are not requests").into(),
            })))
            .await;
    }
    drop(tx);
    if tokio::time::timeout(Duration::from_secs(1), writer)
        .await
        .is_err()
    {
        tracing::debug!("control link: writer did not finish within 1 s");
    }
    tracing::debug!("control link closed");
}

/// Pushes the state when it changed, at most every `interval`.
async fn push_state(shared: Arc<MasterShared>, tx: mpsc::Sender<Message>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = String::new();
    loop {
        ticker.tick().await;
        if tx.is_closed() {
            return;
        }
        let state = state_message(&shared).to_string();
        if state == last {
            continue;
        }
        match tx.try_send(Message::Text(state.clone().into())) {
            Ok(()) => last = state,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!("control link: state push dropped (the client reads slowly)");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_bad_ones_say_why() {
        assert_eq!(
            parse_request(r#"{"id": 7, "command": {"type": "go", "playback": "main"}}"#),
            Ok(ControlRequest::Command {
                id: json!(7),
                body: json!({"type": "go", "playback": "main"})
            })
        );
        assert_eq!(
            parse_request(r#"{"subscribe": {"interval_ms": 250}}"#),
            Ok(ControlRequest::Subscribe {
                id: Value::Null,
                interval: Duration::from_millis(250)
            })
        );
        assert_eq!(
            parse_request(r#"{"id": "s", "subscribe": true}"#),
            Ok(ControlRequest::Subscribe {
                id: json!("s"),
                interval: DEFAULT_INTERVAL
            })
        );
        assert_eq!(
            parse_request(r#"{"unsubscribe": true}"#),
            Ok(ControlRequest::Unsubscribe { id: Value::Null })
        );
        let e = parse_request("garbage").expect_err("not JSON");
        assert!(e.reason.starts_with("not JSON"), "{e:?}");
        let e = parse_request(r#"{"id": 3, "command": "go"}"#).expect_err("a string");
        assert_eq!(e.id, json!(3));
        assert!(e.reason.contains("JSON object"), "{e:?}");
        let e =
            parse_request(r#"{"id": 4, "subscribe": {"interval_ms": 5}}"#).expect_err("too often");
        assert!(e.reason.contains("100..=10000"), "{e:?}");
        let e = parse_request(r#"{"id": 5, "comand": {}}"#).expect_err("a typo");
        assert!(e.reason.contains("\"comand\""), "{e:?}");
        let e = parse_request(r#"{"command": {}, "subscribe": true}"#).expect_err("two");
        assert!(e.reason.contains("one of"), "{e:?}");
        assert!(parse_request("[1]").is_err());
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_the_sustained_rate() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(10, 3);
        assert!((0..3).all(|_| limit.allow(t0)), "the burst");
        assert!(!limit.allow(t0), "then none at once");
        // 10 a second: one token per 100 ms.
        assert!(!limit.allow(t0 + Duration::from_millis(50)));
        assert!(limit.allow(t0 + Duration::from_millis(101)));
        assert!(!limit.allow(t0 + Duration::from_millis(102)));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| limit.allow(later)).count(), 3);
    }
}
