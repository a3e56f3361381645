//! The receiver's link to its master (tokio, no Bevy): choose a master, connect, prove the key
//! both ways, forward frames both ways, fetch shows by hash, notice silence, reconnect.
//!
//! - **Choosing** ([`MasterSelection`]): the configured address (`master_ip`) first; mDNS only
//!   when that fails, and then only the master named `master_id` when one is configured. A
//!   master that refused this node or could not prove it holds the key is tried last for
//!   [`DISTRUST_PERIOD`], so an impostor cannot keep a node from its real master.
//! - **Handshake** ([`crate::handshake`]): the key never crosses the link; nothing from the
//!   master (welcome, snapshot, show, commands) is used before it proved itself, and the show
//!   is fetched with the key only from a master that did.
//! - **Silence** ([`SilenceWatch`]): measured from the last frame *received* from the master
//!   (which sends the clock every second); what this node sends does not count.
//!
//! The benchmark drives 100 of these in one process; [`crate::plugin::ReceiverPlugin`] drives
//! one and feeds the ECS from its events.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::{Capability, Role};
use crate::handshake::{HandshakeError, ReceiverHandshake, Step};
pub use crate::link_policy::{DISTRUST_PERIOD, MasterSelection, SilenceWatch};
use crate::protocol::{self, Hello, ToMaster, ToReceiver, decode_to_receiver};

/// Silence from the master for this long means it is gone (it sends the clock every second).
pub const MASTER_SILENCE: Duration = Duration::from_secs(3);

/// After [`MASTER_SILENCE`], how long frames that are already on their way still count.
const STALL_GRACE: Duration = Duration::from_millis(250);

/// How long connecting (TCP and the WebSocket upgrade) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the handshake (challenge, proof, welcome) may take once connected.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one mDNS search for the master lasts (it ends early once the master answers).
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(3);

/// How a link finds its master.
#[derive(Debug, Clone)]
pub enum MasterAddress {
    Fixed(SocketAddr),
    /// The fixed address, if any, first; mDNS when that fails.
    Discover(Option<SocketAddr>),
}

/// A link's settings.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub node_id: String,
    pub key: Option<String>,
    pub universes: Vec<u16>,
    pub capabilities: Vec<Capability>,
    pub master: MasterAddress,
    /// The master's node id, if configured: other masters over mDNS are ignored, and a master
    /// that proves itself under another id is not used.
    pub master_id: Option<String>,
    pub reconnect: Duration,
    /// Fetch the show over HTTP when the master names one not seen before.
    pub fetch_shows: bool,
    /// Show hashes this node has already (no fetch needed).
    pub known_shows: Vec<String>,
}

/// What the link reports.
#[derive(Debug, Clone)]
pub enum LinkEvent {
    /// Connected to this master, which proved itself (keyed nodes) and welcomed this node.
    Connected(SocketAddr),
    /// A message from the master (after any show it names was delivered as [`LinkEvent::Show`]).
    Message(ToReceiver),
    /// The show with this hash, as canonical RON.
    Show { hash: String, ron: String },
    /// The master refused this node (the link tries the next master, if any, then retries
    /// after the reconnect period).
    Refused(String),
    /// The link is down, or an attempt to bring it up failed (the reason says which).
    Disconnected(String),
}

/// Why a link to one master ended (or never came up).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("bad master address {addr}: {reason}")]
    Address { addr: SocketAddr, reason: String },
    #[error("connecting to {0} timed out")]
    ConnectTimeout(SocketAddr),
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("master at {addr} {source}")]
    Handshake {
        addr: SocketAddr,
        source: HandshakeError,
    },
    #[error("master at {0} did not finish the handshake within {HANDSHAKE_TIMEOUT:?}")]
    HandshakeTimeout(SocketAddr),
    #[error("refused by the master at {addr}: {reason}")]
    Refused { addr: SocketAddr, reason: String },
    #[error("master at {0} silent for {MASTER_SILENCE:?}")]
    Silent(SocketAddr),
    #[error("master at {0} closed the connection")]
    Closed(SocketAddr),
    #[error("connection to {addr} failed: {reason}")]
    Connection { addr: SocketAddr, reason: String },
    #[error("cannot send to {addr}: {reason}")]
    Send { addr: SocketAddr, reason: String },
    #[error("node stopping")]
    Stopping,
}

impl LinkError {
    /// Whether the master behind this failure is tried last for a while: it refused this node,
    /// or could not prove it holds the key (an impostor, or a master with another key).
    pub fn distrusts(&self) -> bool {
        matches!(
            self,
            LinkError::Handshake { .. } | LinkError::Refused { .. }
        )
    }
}

/// Runs the link until `events` is dropped.
pub async fn run_link(
    config: LinkConfig,
    events: mpsc::Sender<LinkEvent>,
    mut outgoing: mpsc::Receiver<ToMaster>,
) {
    let mut known = config.known_shows.clone();
    let mut selection = MasterSelection::new(&config.master, config.master_id.clone());
    loop {
        let linked = link_round(&config, &mut selection, &events, &mut outgoing, &mut known).await;
        let Some(linked) = linked else { return };
        tracing::info!(
            "{}; trying again in {:?}",
            if linked {
                "link to master down"
            } else {
                "no master linked"
            },
            config.reconnect
        );
        // Wait out the reconnect period; what the node says meanwhile is dropped (the master
        // re-sends unacknowledged commands after the next hello, and heartbeats are only news).
        let deadline = tokio::time::Instant::now() + config.reconnect;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                msg = outgoing.recv() => if msg.is_none() { return },
            }
        }
    }
}

/// Tries the candidates in [`MasterSelection`] order until one links this node and that link
/// ends, or none is left. Returns whether a link came up, `None` when the node is stopping.
async fn link_round(
    config: &LinkConfig,
    selection: &mut MasterSelection,
    events: &mpsc::Sender<LinkEvent>,
    outgoing: &mut mpsc::Receiver<ToMaster>,
    known: &mut Vec<String>,
) -> Option<bool> {
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut queue: VecDeque<SocketAddr> = selection.before_discovery(Instant::now()).into();
    let mut asked_mdns = false;
    loop {
        let Some(addr) = queue.pop_front() else {
            if asked_mdns {
                return Some(false);
            }
            asked_mdns = true;
            let seen = if selection.discovers() {
                crate::discovery::find_masters(
                    DISCOVERY_TIMEOUT,
                    selection.master_id().map(str::to_string),
                )
                .await
            } else {
                Vec::new()
            };
            queue.extend(selection.after_discovery(&seen, &tried, Instant::now()));
            if queue.is_empty() && tried.is_empty() {
                let reason = match selection.master_id() {
                    Some(id) => format!("master {id:?} not found over mDNS"),
                    None => "no master found over mDNS".to_string(),
                };
                events.send(LinkEvent::Disconnected(reason)).await.ok()?;
            }
            continue;
        };
        tried.push(addr);
        let mut linked = false;
        let error = session(config, addr, events, outgoing, known, &mut linked).await;
        if matches!(error, LinkError::Stopping) {
            return None;
        }
        let reason = error.to_string();
        if linked {
            selection.trust(addr);
        } else if error.distrusts() {
            selection.distrust(addr, Instant::now());
            tracing::error!("{reason}; trying another master");
        } else {
            tracing::info!("{reason}");
        }
        events.send(LinkEvent::Disconnected(reason)).await.ok()?;
        if linked {
            return Some(true);
        }
    }
}

/// One connection to `addr`: handshake, then frames both ways until it ends; returns why.
/// `linked` is set once the master proved itself and welcomed this node.
async fn session(
    config: &LinkConfig,
    addr: SocketAddr,
    events: &mpsc::Sender<LinkEvent>,
    outgoing: &mut mpsc::Receiver<ToMaster>,
    known: &mut Vec<String>,
    linked: &mut bool,
) -> LinkError {
    let request = match format!("ws://{addr}/api/ws").into_client_request() {
        Ok(r) => r,
        Err(e) => {
            return LinkError::Address {
                addr,
                reason: e.to_string(),
            };
        }
    };
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(protocol::MAX_FRAME_BYTES))
        .max_frame_size(Some(protocol::MAX_FRAME_BYTES));
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true);
    let ws = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Err(_) => return LinkError::ConnectTimeout(addr),
        Ok(Err(e)) => {
            return LinkError::Connect {
                addr,
                reason: e.to_string(),
            };
        }
        Ok(Ok((ws, _))) => ws,
    };
    let (mut sink, mut stream) = ws.split();
    let mut handshake = match ReceiverHandshake::start(
        config.key.clone(),
        &config.node_id,
        config.master_id.clone(),
    ) {
        Ok(h) => h,
        Err(source) => return LinkError::Handshake { addr, source },
    };
    let hello = ToMaster::Hello(Hello {
        node_id: config.node_id.clone(),
        role: Role::Receiver,
        version: protocol::VERSION.into(),
        protocol: protocol::PROTOCOL_VERSION,
        protocol_hash: protocol::protocol_hash(),
        capabilities: config.capabilities.clone(),
        universes: config.universes.clone(),
        auth: handshake.hello_auth(),
    });
    let send = async |sink: &mut Sink, msg: &ToMaster| {
        let frame = Message::Text(protocol::encode(msg).into());
        match tokio::time::timeout(MASTER_SILENCE, sink.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(LinkError::Send {
                addr,
                reason: e.to_string(),
            }),
            Err(_) => Err(LinkError::Send {
                addr,
                reason: format!("blocked for {MASTER_SILENCE:?}"),
            }),
        }
    };
    if let Err(e) = send(&mut sink, &hello).await {
        return e;
    }

    // The handshake: nothing from the master is used before it proved itself.
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let welcome = loop {
        let frame = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(frame) => frame,
            Err(_) => return LinkError::HandshakeTimeout(addr),
        };
        let msg = match read_frame(frame, addr) {
            Ok(Some(msg)) => msg,
            Ok(None) => continue,
            Err(e) => return e,
        };
        match handshake.on_message(msg) {
            Ok(Step::Send(reply)) => {
                if let Err(e) = send(&mut sink, &reply).await {
                    return e;
                }
            }
            Ok(Step::Linked(welcome)) => break welcome,
            Ok(Step::Refused(reason)) => {
                let _ = events.send(LinkEvent::Refused(reason.clone())).await;
                let _ = sink.close().await;
                return LinkError::Refused { addr, reason };
            }
            Ok(Step::Wait) => {}
            Err(source) => {
                let _ = sink.close().await;
                return LinkError::Handshake { addr, source };
            }
        }
    };
    *linked = true;
    if events.send(LinkEvent::Connected(addr)).await.is_err() {
        return LinkError::Stopping;
    }
    if let Err(e) = deliver(welcome, config, addr, events, known).await {
        return e;
    }

    // Linked. Silence counts from the last frame received; sending does not move it.
    let mut watch = SilenceWatch::new(Instant::now(), MASTER_SILENCE);
    loop {
        let deadline = tokio::time::Instant::from_std(watch.deadline());
        let frame = tokio::select! {
            frame = stream.next() => frame,
            () = tokio::time::sleep_until(deadline) => {
                // If this node itself was stalled (suspended, frozen), what the master sent
                // meanwhile is already here: read it before calling the master silent.
                match tokio::time::timeout(STALL_GRACE, stream.next()).await {
                    Ok(frame) => frame,
                    Err(_) => return LinkError::Silent(addr),
                }
            }
            out = outgoing.recv() => {
                let Some(out) = out else { return LinkError::Stopping };
                if let Err(e) = send(&mut sink, &out).await {
                    return e;
                }
                continue;
            }
        };
        watch.heard(Instant::now());
        match read_frame(frame, addr) {
            Ok(Some(ToReceiver::Challenge { .. })) => {
                tracing::warn!("master at {addr} sent a challenge after its welcome; ignored");
            }
            Ok(Some(msg)) => {
                if let Err(e) = deliver(msg, config, addr, events, known).await {
                    return e;
                }
            }
            Ok(None) => {}
            Err(e) => return e,
        }
    }
}

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

/// A frame from the master: its message, `None` for a frame that carries none (control
/// frames, garbage, which is logged), or why the link ended.
fn read_frame(
    frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    addr: SocketAddr,
) -> Result<Option<ToReceiver>, LinkError> {
    let text = match frame {
        None | Some(Ok(Message::Close(_))) => return Err(LinkError::Closed(addr)),
        Some(Err(e)) => {
            return Err(LinkError::Connection {
                addr,
                reason: e.to_string(),
            });
        }
        Some(Ok(Message::Text(t))) => t,
        Some(Ok(_)) => return Ok(None),
    };
    match decode_to_receiver(&text) {
        Ok(m) => Ok(Some(m)),
        Err(e) => {
            let excerpt: String = text.chars().take(200).collect();
            tracing::warn!("bad frame from the master: {e} (frame: {excerpt})");
            Ok(None)
        }
    }
}

/// Hands a message from a linked (proven) master to the node, fetching the show it names
/// first if it is new.
async fn deliver(
    msg: ToReceiver,
    config: &LinkConfig,
    addr: SocketAddr,
    events: &mpsc::Sender<LinkEvent>,
    known: &mut Vec<String>,
) -> Result<(), LinkError> {
    let show = match &msg {
        ToReceiver::Welcome(w) => w.show_hash.clone(),
        ToReceiver::Snapshot(s) => s.show_hash.clone(),
        _ => None,
    };
    // The key goes with the fetch: this master proved it holds it.
    if config.fetch_shows
        && let Some(hash) = show
        && !known.contains(&hash)
    {
        match fetch_show(addr, &hash, config.key.as_deref()).await {
            Ok(ron) => {
                known.push(hash.clone());
                if events.send(LinkEvent::Show { hash, ron }).await.is_err() {
                    return Err(LinkError::Stopping);
                }
            }
            Err(e) => tracing::error!("cannot fetch show {hash}: {e}"),
        }
    }
    if let ToReceiver::Refused { reason } = &msg {
        let _ = events.send(LinkEvent::Refused(reason.clone())).await;
        return Err(LinkError::Refused {
            addr,
            reason: reason.clone(),
        });
    }
    events
        .send(LinkEvent::Message(msg))
        .await
        .map_err(|_| LinkError::Stopping)
}

/// `GET /api/show/{hash}`: the show's canonical RON.
pub async fn fetch_show(
    addr: SocketAddr,
    hash: &str,
    key: Option<&str>,
) -> Result<String, HttpError> {
    let (status, body) = http_request(addr, "GET", &format!("/api/show/{hash}"), key, None).await?;
    if status != 200 {
        return Err(HttpError::Status { status, body });
    }
    Ok(body)
}

/// The most a REST answer may hold (a show file is the largest the master sends).
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// How long one REST exchange may take, body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a REST exchange with the master failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot start a runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot build the request {method} {path}: {reason}")]
    Request {
        method: String,
        path: String,
        reason: String,
    },
    /// The peer broke HTTP/1.1: no status line, a truncated body, a bad chunk…
    #[error("{method} {path}: {source}")]
    Protocol {
        method: String,
        path: String,
        source: hyper::Error,
    },
    #[error("{method} {path}: the answer is larger than {limit} bytes")]
    TooLarge {
        method: String,
        path: String,
        limit: usize,
    },
    #[error("{method} {path}: the answer is not UTF-8 text ({source})")]
    NotText {
        method: String,
        path: String,
        source: std::string::FromUtf8Error,
    },
    #[error("{method} {path}: no answer within {:?}", REQUEST_TIMEOUT)]
    Timeout { method: String, path: String },
    /// A status other than the one the caller needs (`fetch_show`: 200).
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
}

/// One HTTP/1.1 request to the master's REST API (hyper, one connection per request): the
/// status and the body as text. The body streams in up to [`MAX_RESPONSE_BYTES`]; the
/// whole exchange has [`REQUEST_TIMEOUT`].
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String), HttpError> {
    request_limited(addr, method, path, key, body, MAX_RESPONSE_BYTES).await
}

async fn request_limited(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
    limit: usize,
) -> Result<(u16, String), HttpError> {
    use http_body_util::BodyExt;
    use hyper::header;

    let request_error = |reason: String| HttpError::Request {
        method: method.to_string(),
        path: path.to_string(),
        reason,
    };
    let protocol = |source: hyper::Error| HttpError::Protocol {
        method: method.to_string(),
        path: path.to_string(),
        source,
    };
    let mut request = hyper::Request::builder()
        .method(
            hyper::Method::from_bytes(method.as_bytes())
                .map_err(|e| request_error(e.to_string()))?,
        )
        .uri(path)
        .header(header::HOST, addr.to_string())
        .header(header::CONNECTION, "close");
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    if body.is_some() || method == "POST" {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.unwrap_or("").to_owned(),
        )))
        .map_err(|e| request_error(e.to_string()))?;
    let work = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| HttpError::Connect { addr, source })?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(protocol)?;
        // The connection does the I/O; it ends with the exchange (or is aborted with it).
        let connection = tokio::spawn(connection);
        let exchange = async {
            let response = sender.send_request(request).await.map_err(protocol)?;
            let status = response.status().as_u16();
            let bytes = http_body_util::Limited::new(response.into_body(), limit)
                .collect()
                .await
                .map_err(|e| match e.downcast::<hyper::Error>() {
                    Ok(source) => protocol(*source),
                    Err(_) => HttpError::TooLarge {
                        method: method.to_string(),
                        path: path.to_string(),
                        limit,
                    },
                })?
                .to_bytes();
            let text = String::from_utf8(bytes.to_vec()).map_err(|source| HttpError::NotText {
                method: method.to_string(),
                path: path.to_string(),
                source,
            })?;
            Ok((status, text))
        };
        let result = exchange.await;
        connection.abort();
        result
    };
    tokio::time::timeout(REQUEST_TIMEOUT, work)
        .await
        .map_err(|_| HttpError::Timeout {
            method: method.to_string(),
            path: path.to_string(),
        })?
}

/// A raw WebSocket client for tests and tools: connects to `/api/ws` with `key`, sends `frames`
/// as text, and returns every text frame received (and a close frame as `close CODE: REASON`)
/// until the master closes or `listen` passes.
/// A refused handshake is an `Err` naming the HTTP status.
pub fn probe_blocking(
    addr: SocketAddr,
    key: Option<&str>,
    frames: &[String],
    listen: Duration,
) -> Result<Vec<String>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime.block_on(async {
        let mut request = format!("ws://{addr}/api/ws")
            .into_client_request()
            .map_err(|e| e.to_string())?;
        if let Some(key) = key {
            let value =
                HeaderValue::from_str(&format!("Bearer {key}")).map_err(|e| e.to_string())?;
            request.headers_mut().insert("authorization", value);
        }
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| format!("handshake refused: {e}"))?;
        let (mut sink, mut stream) = ws.split();
        for f in frames {
            if sink.send(Message::Text(f.clone().into())).await.is_err() {
                break;
            }
        }
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + listen;
        while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, stream.next()).await {
            match msg {
                Message::Text(t) => got.push(t.to_string()),
                Message::Close(Some(frame)) => {
                    got.push(format!("close {}: {}", u16::from(frame.code), frame.reason));
                }
                _ => {}
            }
        }
        Ok(got)
    })
}

/// [`http_request`] from synchronous code (the CLI, tests, benchmarks).
pub fn http_request_blocking(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String), HttpError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(HttpError::Runtime)?;
    runtime.block_on(http_request(addr, method, path, key, body))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A server that reads one request and answers `response` byte for byte, then closes.
    fn answer_once(response: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(response);
        });
        addr
    }

    fn get(response: &'static [u8]) -> Result<(u16, String), HttpError> {
        http_request_blocking(answer_once(response), "GET", "/api/nodes", None, None)
    }

    #[test]
    fn plain_and_chunked_answers_are_read_whole() {
        assert_eq!(
            get(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}").expect("plain"),
            (404, "{}".to_string())
        );
        // "é" (C3 A9) split across two chunks: the old client sliced a lossy string by the
        // chunk sizes and panicked on such a split.
        assert_eq!(
            get(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\na\xc3\r\n3\r\n\xa9bc\r\n0\r\n\r\n")
                .expect("chunked"),
            (200, "aébc".to_string())
        );
        // No length at all: the body runs to the close.
        assert_eq!(
            get(b"HTTP/1.1 200 OK\r\n\r\nuntil close").expect("close-delimited"),
            (200, "until close".to_string())
        );
    }

    #[test]
    fn broken_answers_are_clear_errors_never_panics() {
        let e = get(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n\xff\xfe\xc3(")
            .expect_err("invalid UTF-8");
        assert!(matches!(e, HttpError::NotText { .. }), "{e}");
        assert!(e.to_string().contains("not UTF-8"), "{e}");
        // A chunk that claims more than it sends, then the connection closes; the old client
        // sliced past the end of the text here.
        let e = get(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nff\r\n\xc3\xa9\xc3")
            .expect_err("truncated chunk");
        assert!(matches!(e, HttpError::Protocol { .. }), "{e}");
        let e = get(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nten bytes.")
            .expect_err("truncated body");
        assert!(matches!(e, HttpError::Protocol { .. }), "{e}");
        assert!(e.to_string().starts_with("GET /api/nodes: "), "{e}");
        let e = get(b"garbage\r\n\r\n").expect_err("not HTTP");
        assert!(matches!(e, HttpError::Protocol { .. }), "{e}");
        let e = get(b"").expect_err("closed without a word");
        assert!(matches!(e, HttpError::Protocol { .. }), "{e}");
    }

    #[test]
    fn bodies_past_the_limit_are_refused() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let addr = answer_once(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n8\r\n01234567\r\n8\r\n89abcdef\r\n0\r\n\r\n");
        let e = runtime
            .block_on(request_limited(addr, "GET", "/api/show/x", None, None, 10))
            .expect_err("16 bytes > 10");
        assert!(matches!(e, HttpError::TooLarge { limit: 10, .. }), "{e}");
    }

    #[test]
    fn nobody_listening_is_a_connect_error() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port");
        let e = http_request_blocking(addr, "GET", "/", None, None).expect_err("closed port");
        assert!(matches!(e, HttpError::Connect { .. }), "{e}");
    }
}
