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
//! The benchmark drives 100 of these in one process; [`super::ReceiverPlugin`] drives
//! one and feeds the ECS from its events.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::client::{Connection, Endpoint, Transport, fetch_show};
use crate::config::{Capability, Role};
use crate::handshake::{HandshakeError, ReceiverHandshake, Step};
pub use crate::link_policy::{DISTRUST_PERIOD, MasterAddress, MasterSelection, SilenceWatch};
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
    /// The hash of the app's replication rules, sent in hello (empty: the base rules',
    /// [`protocol::protocol_hash`]).
    pub protocol_hash: String,
    /// Where the master's clock packets go, straight from the link with their frames'
    /// arrival instants (clock sync's WebSocket fallback); none: dropped.
    pub clock_inbox: Option<rockontrol_clock::WsInbox>,
    /// How the link is secured.
    pub security: LinkSecurity,
}

/// TLS to the master with its certificate pinned, or plaintext (`insecure`).
#[derive(Debug, Clone)]
pub enum LinkSecurity {
    Plain,
    Tls {
        /// The pin in force (configured, or kept from first use); empty until the first
        /// master links (trust on first use), then filled.
        pin: rockontrol_tls::PinSlot,
        /// Where a pin taken on first use is kept (`master-fingerprint` in it); none: only
        /// in memory.
        state_dir: Option<std::path::PathBuf>,
    },
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
    /// The master's certificate was trusted on first use and pinned (kept in `file`).
    Pinned {
        fingerprint: rockontrol_tls::Fingerprint,
        file: Option<std::path::PathBuf>,
    },
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
    /// TLS failed: another certificate than the pinned one (the reason names both), or a
    /// master that does not speak TLS.
    #[error("master at {addr}: {reason}")]
    Tls {
        addr: SocketAddr,
        reason: String,
        mismatch: bool,
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
            LinkError::Handshake { .. }
                | LinkError::Refused { .. }
                | LinkError::Tls { mismatch: true, .. }
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
    let (endpoint, first_use) = match &config.security {
        LinkSecurity::Plain => (Endpoint::plain(addr), false),
        LinkSecurity::Tls { pin, .. } => {
            let pinned = pin.get();
            (
                Endpoint {
                    addr,
                    transport: Transport::Tls(pinned.clone()),
                },
                pinned.is_none(),
            )
        }
    };
    let request =
        match format!("{}://{addr}/api/ws", endpoint.transport.ws_scheme()).into_client_request() {
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
    // TCP, then TLS (the certificate checked against the pin before anything is sent), then
    // the WebSocket upgrade.
    let connect = async {
        let connection = crate::client::connect(&endpoint)
            .await
            .map_err(|e| match e {
                crate::client::HttpError::Tls { source, .. } => LinkError::Tls {
                    addr,
                    mismatch: matches!(*source, rockontrol_tls::client::ConnectError::Mismatch(_)),
                    reason: source.to_string(),
                },
                e => LinkError::Connect {
                    addr,
                    reason: e.to_string(),
                },
            })?;
        let presented = match &connection {
            Connection::Tls(s) => s
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| rockontrol_tls::Fingerprint::of_der(c.as_ref())),
            Connection::Plain(_) => None,
        };
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(request, connection, Some(ws_config))
                .await
                .map_err(|e| LinkError::Connect {
                    addr,
                    reason: e.to_string(),
                })?;
        Ok::<_, LinkError>((ws, presented))
    };
    let (ws, presented) = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Err(_) => return LinkError::ConnectTimeout(addr),
        Ok(Err(e)) => {
            if let LinkError::Tls {
                mismatch: true,
                reason,
                ..
            } = &e
            {
                tracing::error!("refusing the master at {addr}: {reason}");
                let _ = events.send(LinkEvent::Refused(reason.clone())).await;
            }
            return e;
        }
        Ok(Ok(ws)) => ws,
    };
    // The show is fetched from this very certificate.
    let endpoint = match presented {
        Some(fingerprint) => Endpoint {
            addr,
            transport: Transport::Tls(Some(rockontrol_tls::Pin {
                fingerprint,
                source: rockontrol_tls::PinSource::Session,
            })),
        },
        None => endpoint,
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
        protocol_hash: if config.protocol_hash.is_empty() {
            protocol::protocol_hash()
        } else {
            config.protocol_hash.clone()
        },
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
    // Trust on first use: the first master that proved itself (keyed) or adopted this node
    // is pinned from now on.
    if first_use
        && let (Some(fingerprint), LinkSecurity::Tls { pin, state_dir }) =
            (presented, &config.security)
    {
        let file = match state_dir {
            Some(dir) => match pin.trust_first_use(fingerprint, dir) {
                Ok(p) => match p.source {
                    rockontrol_tls::PinSource::File(f) => Some(f),
                    _ => None,
                },
                Err(e) => {
                    tracing::error!("{e}; the pin holds until this node stops");
                    None
                }
            },
            None => None,
        };
        if file.is_none() {
            // Memory only: still pinned for this run.
            pin.set(Some(rockontrol_tls::Pin {
                fingerprint,
                source: rockontrol_tls::PinSource::Session,
            }));
        }
        tracing::info!(
            "trusting the master at {addr} on first use: certificate SHA-256 {fingerprint}{}",
            file.as_ref()
                .map(|f| format!(", pinned in {}", f.display()))
                .unwrap_or_default()
        );
        if events
            .send(LinkEvent::Pinned { fingerprint, file })
            .await
            .is_err()
        {
            return LinkError::Stopping;
        }
    }
    if events.send(LinkEvent::Connected(addr)).await.is_err() {
        return LinkError::Stopping;
    }
    if let Err(e) = deliver(welcome, config, &endpoint, events, known).await {
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
        let arrived = Instant::now();
        watch.heard(arrived);
        match read_frame(frame, addr) {
            Ok(Some(ToReceiver::ClockPong(packet))) => {
                if let Some(inbox) = &config.clock_inbox {
                    inbox.deliver(&packet, arrived);
                }
            }
            Ok(Some(ToReceiver::Challenge { .. })) => {
                tracing::warn!("master at {addr} sent a challenge after its welcome; ignored");
            }
            Ok(Some(msg)) => {
                if let Err(e) = deliver(msg, config, &endpoint, events, known).await {
                    return e;
                }
            }
            Ok(None) => {}
            Err(e) => return e,
        }
    }
}

type Sink =
    futures_util::stream::SplitSink<tokio_tungstenite::WebSocketStream<Connection>, Message>;

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
    endpoint: &Endpoint,
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
        match fetch_show(endpoint, &hash, config.key.as_deref()).await {
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
            addr: endpoint.addr,
            reason: reason.clone(),
        });
    }
    events
        .send(LinkEvent::Message(msg))
        .await
        .map_err(|_| LinkError::Stopping)
}
