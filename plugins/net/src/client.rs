//! The receiver's link to its master (tokio, no Bevy): connect, hello, forward frames both
//! ways, fetch shows by hash, notice silence, reconnect every 5 s.
//!
//! The benchmark drives 100 of these in one process; [`crate::plugin::ReceiverPlugin`] drives
//! one and feeds the ECS from its events.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::{Capability, Role};
use crate::protocol::{self, Hello, ToMaster, ToReceiver, decode_to_receiver};

/// Silence from the master for this long means it is gone (it sends the clock every second).
pub const MASTER_SILENCE: Duration = Duration::from_secs(3);

/// After [`MASTER_SILENCE`], how long frames that are already on their way still count.
const STALL_GRACE: Duration = Duration::from_millis(250);

/// How a link finds its master.
#[derive(Debug, Clone)]
pub enum MasterAddress {
    Fixed(SocketAddr),
    /// Ask mDNS first (falling back to the fixed address, if any).
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
    pub reconnect: Duration,
    /// Fetch the show over HTTP when the master names one not seen before.
    pub fetch_shows: bool,
    /// Show hashes this node has already (no fetch needed).
    pub known_shows: Vec<String>,
}

/// What the link reports.
#[derive(Debug, Clone)]
pub enum LinkEvent {
    /// Connected to this master.
    Connected(SocketAddr),
    /// A message from the master (after any show it names was delivered as [`LinkEvent::Show`]).
    Message(ToReceiver),
    /// The show with this hash, as canonical RON.
    Show { hash: String, ron: String },
    /// The master refused this node (the link retries after the reconnect period).
    Refused(String),
    /// The link is down.
    Disconnected(String),
}

/// Runs the link until `events` is dropped.
pub async fn run_link(
    config: LinkConfig,
    events: mpsc::Sender<LinkEvent>,
    mut outgoing: mpsc::Receiver<ToMaster>,
) {
    let mut known = config.known_shows.clone();
    loop {
        let addr = match &config.master {
            MasterAddress::Fixed(a) => Some(*a),
            MasterAddress::Discover(fallback) => {
                match crate::discovery::find_master(Duration::from_secs(3)).await {
                    Some(a) => Some(a),
                    None => *fallback,
                }
            }
        };
        let reason = match addr {
            Some(addr) => match session(&config, addr, &events, &mut outgoing, &mut known).await {
                Ok(reason) => reason,
                Err(reason) => reason,
            },
            None => "no master found over mDNS".to_string(),
        };
        if events
            .send(LinkEvent::Disconnected(reason.clone()))
            .await
            .is_err()
        {
            return;
        }
        tracing::info!(
            "link to master down ({reason}); reconnecting in {:?}",
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

async fn session(
    config: &LinkConfig,
    addr: SocketAddr,
    events: &mpsc::Sender<LinkEvent>,
    outgoing: &mut mpsc::Receiver<ToMaster>,
    known: &mut Vec<String>,
) -> Result<String, String> {
    let url = format!("ws://{addr}/api/ws");
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| format!("bad master address {addr}: {e}"))?;
    if let Some(key) = &config.key {
        let value = HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| "the API key holds characters a header cannot carry".to_string())?;
        request.headers_mut().insert("authorization", value);
    }
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(protocol::MAX_FRAME_BYTES))
        .max_frame_size(Some(protocol::MAX_FRAME_BYTES));
    let connect = tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true);
    let (ws, _) = tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .map_err(|_| format!("connecting to {addr} timed out"))?
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let (mut sink, mut stream) = ws.split();
    let hello = ToMaster::Hello(Hello {
        node_id: config.node_id.clone(),
        role: Role::Receiver,
        version: protocol::VERSION.into(),
        protocol: protocol::PROTOCOL_VERSION,
        protocol_hash: protocol::protocol_hash(),
        capabilities: config.capabilities.clone(),
        universes: config.universes.clone(),
    });
    sink.send(Message::Text(protocol::encode(&hello).into()))
        .await
        .map_err(|e| format!("cannot send hello: {e}"))?;
    let _ = events.send(LinkEvent::Connected(addr)).await;
    loop {
        tokio::select! {
            incoming = tokio::time::timeout(MASTER_SILENCE, stream.next()) => {
                // If this node itself was stalled (suspended, frozen), what the master sent
                // meanwhile is already here: read it before calling the master silent.
                let incoming = match incoming {
                    Err(_) => tokio::time::timeout(STALL_GRACE, stream.next())
                        .await
                        .map_err(|_| ()),
                    ready => ready.map_err(|_| ()),
                };
                let text = match incoming {
                    Err(()) => return Ok(format!("master silent for {MASTER_SILENCE:?}")),
                    Ok(None) => return Ok("master closed the connection".into()),
                    Ok(Some(Err(e))) => return Ok(format!("connection error: {e}")),
                    Ok(Some(Ok(Message::Text(t)))) => t,
                    Ok(Some(Ok(Message::Close(_)))) => return Ok("master closed the connection".into()),
                    Ok(Some(Ok(_))) => continue,
                };
                let msg = match decode_to_receiver(&text) {
                    Ok(m) => m,
                    Err(e) => {
                        let excerpt: String = text.chars().take(200).collect();
                        tracing::warn!("bad frame from the master: {e} (frame: {excerpt})");
                        continue;
                    }
                };
                let show = match &msg {
                    ToReceiver::Welcome(w) => w.show_hash.clone(),
                    ToReceiver::Snapshot(s) => s.show_hash.clone(),
                    _ => None,
                };
                if config.fetch_shows && let Some(hash) = show && !known.contains(&hash) {
                    match fetch_show(addr, &hash, config.key.as_deref()).await {
                        Ok(ron) => {
                            known.push(hash.clone());
                            if events.send(LinkEvent::Show { hash, ron }).await.is_err() {
                                return Ok("node stopping".into());
                            }
                        }
                        Err(e) => tracing::error!("cannot fetch show {hash}: {e}"),
                    }
                }
                if let ToReceiver::Refused { reason } = &msg {
                    let _ = events.send(LinkEvent::Refused(reason.clone())).await;
                    return Err(format!("refused: {reason}"));
                }
                if events.send(LinkEvent::Message(msg)).await.is_err() {
                    return Ok("node stopping".into());
                }
            }
            out = outgoing.recv() => {
                let Some(out) = out else { return Ok("node stopping".into()) };
                if let Err(e) = sink.send(Message::Text(protocol::encode(&out).into())).await {
                    return Ok(format!("cannot send: {e}"));
                }
            }
        }
    }
}

/// `GET /api/show/{hash}` over plain HTTP/1.1 (one request, `Connection: close`).
pub async fn fetch_show(addr: SocketAddr, hash: &str, key: Option<&str>) -> Result<String, String> {
    let (status, body) = http_request(addr, "GET", &format!("/api/show/{hash}"), key, None).await?;
    if status != 200 {
        return Err(format!("HTTP {status}: {body}"));
    }
    Ok(body)
}

/// A minimal HTTP/1.1 client for the master's REST API: returns status and body.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let work = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        if let Some(key) = key {
            request.push_str(&format!("Authorization: Bearer {key}\r\n"));
        }
        let body = body.unwrap_or("");
        if !body.is_empty() || method == "POST" {
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("cannot send request: {e}"))?;
        let mut response = Vec::new();
        stream
            .take(64 << 20)
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("cannot read response: {e}"))?;
        parse_response(&response)
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| format!("{method} {path}: no answer within 10 s"))?
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
) -> Result<(u16, String), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime.block_on(http_request(addr, method, path, key, body))
}

fn parse_response(bytes: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| "response has no header end".to_string())?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "response has no status code".to_string())?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    if !chunked {
        return Ok((status, body.to_string()));
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    Ok((status, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_responses_plain_and_chunked() {
        let plain = b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain), Ok((404, "{}".into())));
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Ok((200, "abcde".into())));
        assert!(parse_response(b"garbage").is_err());
    }
}
