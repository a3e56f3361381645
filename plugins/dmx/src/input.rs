//! DMX in: sACN and Art-Net receivers with priority/HTP merge, for bridges and `rockontrol monitor`.
//!
//! [`InputReceiver::start`] opens the sockets and starts the named thread `dmx-input`, which
//! decodes every datagram with the codecs of `rockontrol-wire`, merges the sources of each
//! universe and publishes the result through the returned [`InputHandle`]:
//! [`InputHandle::snapshot`] for status displays, [`InputHandle::subscribe`] for a bridge (a
//! bounded channel of [`InputFrame`]s, sent only when a universe's merged values change), and
//! [`InputHandle::stats`] for the drop counters. Dropping the handle stops and joins the thread.
//!
//! # Merge
//! - sACN: [`sacn::Merger`] — a source is its CID; the highest priority present wins, sources tied
//!   on it merge highest-takes-precedence; a source is lost after 2.5 s of silence or at once on
//!   Stream_Terminated; out-of-sequence and preview packets are discarded.
//! - Art-Net has neither CIDs nor priorities: a source is its IP address, every live source merges
//!   HTP, and a source is lost after [`InputConfig::artnet_loss_timeout`] (Art-Net 4 says 10 s).
//! - When the last source of a universe is lost the last look is held (what OLA does) and the
//!   universe is marked not live; subscribers get one [`InputFrame`] with `live: false`.
//! - Universe synchronization is not honoured: data is applied as it arrives (as OLA 0.10.9 does).
//!
//! # Sockets (see `shared/interop/PEERS.md`)
//! - sACN multicast: one group per universe, joined on [`InputConfig::interface`]. Linux allows
//!   `net.ipv4.igmp_max_memberships` (default 20) groups per socket, so the joins are spread over
//!   as many sockets bound to `0.0.0.0:5568` as needed; each has `IP_MULTICAST_ALL` off so it only
//!   gets the groups it joined. A join the kernel still refuses is an error naming the limit.
//! - sACN unicast: a socket bound to `interface:5568` (more specific than the wildcard sockets, so
//!   unicast to our address lands there even when a peer on this host holds `0.0.0.0:5568`).
//! - Art-Net: `interface:6454` for unicast and for sending ArtPollReply from our own address, and
//!   for broadcasts the interface's broadcast address (e.g. `2.255.255.255:6454`) plus
//!   `255.255.255.255:6454`. Not `0.0.0.0:6454` when an interface is given: a wildcard socket
//!   would also match unicast to *other* addresses of this host, and the kernel hands each such
//!   datagram to one socket only — measured with `olad` on the same host, our wildcard socket took
//!   the ArtPollReplies we sent to olad, so olad never subscribed us. The wildcard is used only
//!   when no interface is given or its broadcast address is unknown (loopback has none).
//! - Nothing here sends multicast (multicast loop is off on every socket anyway).
//!
//! # Bad input
//! Truncated, oversized, malformed and wrong-version datagrams are counted per protocol and kind
//! in [`InputStats`] and dropped with a `warn!` line at most every [`WARN_INTERVAL`] per kind.
//! Nothing in the receive path panics or stops the thread; socket errors are counted and logged
//! the same way.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::UdpSocket as MioUdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use rockontrol_wire::artnet::{self, ArtDmx, ArtNetError, ArtPacket, ArtPollReply};
use rockontrol_wire::sacn::{self, MergeConfig, Merger, Packet, Reception, SacnError};
use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use tracing::{debug, info, warn};

/// Re-exported: the type of [`InputConfig::artnet_universes`].
pub use rockontrol_wire::artnet::PortAddress;

/// At most one warning per kind of bad packet in this interval (the rest are counted).
pub const WARN_INTERVAL: Duration = Duration::from_secs(5);
/// The Linux default of `net.ipv4.igmp_max_memberships`: multicast groups per socket.
pub const LINUX_DEFAULT_MEMBERSHIPS: usize = 20;
/// Art-Net 4: a merge source that has sent nothing for 10 s is dropped.
pub const ARTNET_LOSS_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest sACN datagram: a discovery packet with a full page of 512 universes.
const MAX_SACN_DATAGRAM: usize =
    sacn::DISCOVERY_HEADER_LEN + 2 * sacn::UNIVERSES_PER_DISCOVERY_PAGE;
/// Largest Art-Net datagram we accept (ArtDmx is 530; later revisions append to ArtPollReply).
const MAX_ARTNET_DATAGRAM: usize = 1024;
/// Receive buffer: one byte more than any datagram we accept, so larger ones are seen as such.
const RECV_BUFFER: usize = 2048;
/// How often lost sources are expired and unsolicited ArtPollReplies are due.
const HOUSEKEEPING: Duration = Duration::from_millis(100);
/// Unsolicited ArtPollReply interval (keeps OLA-style controllers subscribed between polls).
const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(5);
/// Datagrams read from one socket per readiness event before the others get their turn.
const MAX_BURST: usize = 256;
/// Art-Net sources kept per universe (bounds a flood of forged addresses).
const MAX_ARTNET_SOURCES: usize = 32;

/// What to receive.
#[derive(Debug, Clone, PartialEq)]
pub struct InputConfig {
    /// Interface address: multicast joins, the unicast sockets, the IP our ArtPollReply names.
    /// `0.0.0.0`: the kernel's default multicast interface and unicast on every address.
    pub interface: Ipv4Addr,
    /// Receive sACN at all.
    pub sacn: bool,
    /// sACN universes (1..=63999) to join by multicast. Also a filter: data for other universes
    /// (sent unicast) is counted and dropped. Empty: no joins, every unicast universe is kept.
    pub sacn_universes: Vec<u16>,
    /// Listen for sACN sent unicast to [`InputConfig::interface`].
    pub sacn_unicast: bool,
    /// sACN UDP port (5568; 0 in tests: the kernel picks one, see [`InputHandle::sacn_addr`]).
    pub sacn_port: u16,
    /// Receive Art-Net at all.
    pub artnet: bool,
    /// Art-Net Port-Addresses to keep, and the ports our ArtPollReply advertises. Empty: every
    /// Port-Address is kept and none is advertised.
    pub artnet_universes: Vec<PortAddress>,
    /// Art-Net UDP port (6454; 0 in tests).
    pub artnet_port: u16,
    /// Answer ArtPoll with ArtPollReplies naming [`InputConfig::artnet_universes`] as ports that
    /// take DMX from the network, so controllers that only unicast to subscribers send to us.
    pub artnet_reply: bool,
    /// Also send those replies unsolicited, at start and every 5 s, to this address (a directed
    /// broadcast such as `198.18.0.255:6454`, or a controller).
    pub artnet_announce: Option<SocketAddr>,
    /// Short/long name in our ArtPollReply.
    pub node_name: String,
    /// sACN merge settings (loss timeout, preview, sources per universe).
    pub merge: MergeConfig,
    /// Art-Net sources are dropped after this long without an ArtDmx.
    pub artnet_loss_timeout: Duration,
    /// Multicast groups joined per socket before a new socket is opened. `0`: read
    /// `/proc/sys/net/ipv4/igmp_max_memberships` (20 if unreadable).
    pub memberships_per_socket: usize,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            interface: Ipv4Addr::UNSPECIFIED,
            sacn: true,
            sacn_universes: Vec::new(),
            sacn_unicast: true,
            sacn_port: sacn::PORT,
            artnet: true,
            artnet_universes: Vec::new(),
            artnet_port: artnet::PORT,
            artnet_reply: true,
            artnet_announce: None,
            node_name: "RocKontrol input".into(),
            merge: MergeConfig::default(),
            artnet_loss_timeout: ARTNET_LOSS_TIMEOUT,
            memberships_per_socket: 0,
        }
    }
}

/// Why the receiver could not start.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A socket could not be opened or bound.
    #[error("cannot open the {what} socket on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// The kernel refused a multicast join even on a fresh socket.
    #[error(
        "cannot join sACN universe {universe} ({group}) on {interface}: {source} \
         (multicast memberships per socket: {limit}; raise net.ipv4.igmp_max_memberships?)"
    )]
    Join {
        universe: u16,
        group: Ipv4Addr,
        interface: Ipv4Addr,
        limit: usize,
        #[source]
        source: io::Error,
    },
    /// A universe number outside 1..=63999.
    #[error("sACN universe {0} is outside 1..=63999")]
    BadUniverse(u16),
    /// The poller or the thread could not be created.
    #[error("cannot start the DMX input thread: {0}")]
    Thread(#[source] io::Error),
}

/// The protocol a universe arrives by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InputProtocol {
    Sacn,
    ArtNet,
}

impl std::fmt::Display for InputProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InputProtocol::Sacn => "sACN",
            InputProtocol::ArtNet => "Art-Net",
        })
    }
}

/// A received universe: an sACN universe or an Art-Net Port-Address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UniverseKey {
    pub protocol: InputProtocol,
    /// sACN universe (1..=63999) or Art-Net Port-Address (0..=32767).
    pub universe: u16,
}

impl UniverseKey {
    pub const fn sacn(universe: u16) -> Self {
        UniverseKey {
            protocol: InputProtocol::Sacn,
            universe,
        }
    }

    pub const fn artnet(port_address: u16) -> Self {
        UniverseKey {
            protocol: InputProtocol::ArtNet,
            universe: port_address,
        }
    }
}

impl std::fmt::Display for UniverseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.protocol {
            InputProtocol::Sacn => write!(f, "sACN {}", self.universe),
            InputProtocol::ArtNet => match PortAddress::new(self.universe) {
                Some(p) => write!(
                    f,
                    "Art-Net {} ({}:{}:{})",
                    self.universe,
                    p.net(),
                    p.sub_net(),
                    p.universe()
                ),
                None => write!(f, "Art-Net {}", self.universe),
            },
        }
    }
}

/// Who sends a universe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceId {
    /// An sACN source's CID.
    Cid([u8; 16]),
    /// An Art-Net source's address.
    Ip(Ipv4Addr),
}

impl std::fmt::Display for SourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceId::Cid(cid) => {
                for (i, b) in cid.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        f.write_str("-")?;
                    }
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
            SourceId::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// One live source of a universe.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSource {
    pub id: SourceId,
    /// Where its latest packet came from.
    pub addr: Option<SocketAddr>,
    /// sACN source name; Art-Net: the long name of its ArtPollReply, if one was seen.
    pub name: String,
    /// sACN priority; `None` for Art-Net.
    pub priority: Option<u8>,
    /// Slots in its latest packet.
    pub slot_count: usize,
    /// Accepted packets per second over the last completed window of ≥ 1 s.
    pub packet_rate: Option<f32>,
    pub last_seen: Instant,
    /// Its slots count in the merge (sACN: it has the winning priority; Art-Net: always).
    pub winning: bool,
}

/// The merged state of one universe.
#[derive(Debug, Clone, PartialEq)]
pub struct InputUniverse {
    pub key: UniverseKey,
    /// The merged slots, `slot_count` of them.
    pub slots: Vec<u8>,
    /// sACN: the winning priority; `None` for Art-Net.
    pub priority: Option<u8>,
    /// At least one source is live; otherwise `slots` is the last look held.
    pub live: bool,
    /// Live sources, in order of arrival.
    pub sources: Vec<InputSource>,
    /// Times the merged values changed.
    pub changes: u64,
    /// Last change of the merged values.
    pub last_change: Instant,
}

/// A universe's merged values after a change, for a bridge (see [`InputHandle::subscribe`]).
#[derive(Debug, Clone, PartialEq)]
pub struct InputFrame {
    pub key: UniverseKey,
    pub slots: Vec<u8>,
    pub priority: Option<u8>,
    /// `false` once the last source is lost: `slots` is the last look.
    pub live: bool,
    pub at: Instant,
}

/// Counters of the receive path, per protocol and kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputStats {
    /// Sockets open, and multicast groups joined over them.
    pub sockets: usize,
    pub memberships: usize,
    /// Groups joined per socket.
    pub memberships_per_socket: usize,
    pub sacn: ProtocolStats,
    pub artnet: ProtocolStats,
    /// sACN data packets discarded by the §6.7.2 sequence rule.
    pub sacn_out_of_sequence: u64,
    /// sACN packets with the preview flag (ignored unless the merge accepts them).
    pub sacn_preview: u64,
    pub sacn_terminated: u64,
    pub sacn_sync: u64,
    pub sacn_discovery: u64,
    /// Packets with a start code other than 0 (e.g. per-slot priority 0xDD).
    pub sacn_alternate_start_code: u64,
    /// New sources refused because a universe already had the maximum.
    pub too_many_sources: u64,
    pub artnet_polls: u64,
    pub artnet_poll_replies_sent: u64,
    /// Frames a subscriber's full channel could not take.
    pub frames_dropped: u64,
    /// `recv`/`send` failures.
    pub socket_errors: u64,
}

/// Counters of one protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtocolStats {
    /// Datagrams read.
    pub datagrams: u64,
    /// DMX data packets taken into the merge.
    pub accepted: u64,
    /// Data for a universe not listened to.
    pub unlisted: u64,
    /// Shorter than their own length fields say.
    pub truncated: u64,
    /// Larger than any packet of the protocol.
    pub oversized: u64,
    /// A protocol version we do not speak (sACN draft root vector, Art-Net ProtVer < 14).
    pub wrong_version: u64,
    /// Any other field the specification forbids (or not this protocol at all).
    pub malformed: u64,
    /// Well-formed packets of a kind we do not use (Art-Net OpCodes like ArtAddress).
    pub ignored: u64,
}

/// Starts receivers; see the module docs.
#[derive(Debug)]
pub struct InputReceiver;

impl InputReceiver {
    /// Opens the sockets, joins the multicast groups and starts the thread `dmx-input`.
    ///
    /// # Errors
    /// [`InputError`] if a socket cannot be bound, a group cannot be joined even on a fresh
    /// socket, a universe is out of range, or the thread cannot start.
    pub fn start(config: InputConfig) -> Result<InputHandle, InputError> {
        let sockets = open_sockets(&config)?;
        let poll = Poll::new().map_err(InputError::Thread)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE).map_err(InputError::Thread)?);
        let mut registered = Vec::with_capacity(sockets.list.len());
        for (index, open) in sockets.list.into_iter().enumerate() {
            let mut socket = MioUdpSocket::from_std(open.socket);
            poll.registry()
                .register(&mut socket, Token(index), Interest::READABLE)
                .map_err(InputError::Thread)?;
            registered.push(Registered {
                socket,
                kind: open.kind,
            });
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(&config)),
            subscribers: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        {
            let mut state = lock(&shared.state);
            state.stats.sockets = registered.len();
            state.stats.memberships = sockets.memberships;
            state.stats.memberships_per_socket = sockets.per_socket;
        }
        let thread_shared = Arc::clone(&shared);
        let sacn_addr = sockets.sacn_addr;
        let artnet_addr = sockets.artnet_addr;
        let handle = std::thread::Builder::new()
            .name("dmx-input".into())
            .spawn(move || {
                let mut thread = InputThread {
                    config,
                    poll,
                    sockets: registered,
                    shared: thread_shared,
                    buf: vec![0; RECV_BUFFER],
                    warnings: Warnings::default(),
                    reply_buf: Vec::new(),
                };
                thread.run();
            })
            .map_err(InputError::Thread)?;
        Ok(InputHandle {
            shared,
            waker,
            thread: Some(handle),
            sacn_addr,
            artnet_addr,
        })
    }
}

/// A running receiver. Dropping it stops the thread and waits for it.
#[derive(Debug)]
pub struct InputHandle {
    shared: Arc<Shared>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
    sacn_addr: Option<SocketAddr>,
    artnet_addr: Option<SocketAddr>,
}

impl InputHandle {
    /// Every universe received so far, in key order, with its live sources.
    pub fn snapshot(&self) -> Vec<InputUniverse> {
        lock(&self.shared.state).snapshot(Instant::now())
    }

    /// One universe, if anything was received for it.
    pub fn universe(&self, key: UniverseKey) -> Option<InputUniverse> {
        lock(&self.shared.state).universe(key, Instant::now())
    }

    /// The counters so far.
    pub fn stats(&self) -> InputStats {
        lock(&self.shared.state).stats.clone()
    }

    /// A channel of merged frames, one each time a universe's merged values (or its priority, or
    /// its liveness) change. Bounded: when the channel is full further frames are dropped and
    /// counted in [`InputStats::frames_dropped`]; a bridge reads it every tick and keeps the
    /// latest frame per universe.
    pub fn subscribe(&self, capacity: usize) -> Receiver<InputFrame> {
        let (tx, rx) = sync_channel(capacity.max(1));
        lock(&self.shared.subscribers).push(tx);
        rx
    }

    /// Where unicast sACN is received (the port the kernel picked when configured as 0).
    pub fn sacn_addr(&self) -> Option<SocketAddr> {
        self.sacn_addr
    }

    /// Where unicast Art-Net is received.
    pub fn artnet_addr(&self) -> Option<SocketAddr> {
        self.artnet_addr
    }

    /// Stops the thread and waits for it (also done on drop).
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Err(e) = self.waker.wake() {
            debug!("cannot wake the DMX input thread ({e}); it stops within 100 ms");
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            warn!("the DMX input thread panicked");
        }
    }
}

impl Drop for InputHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

const WAKE: Token = Token(usize::MAX);

/// A poisoned lock only means another thread panicked while holding it; the data is counters
/// and merge state, still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    subscribers: Mutex<Vec<SyncSender<InputFrame>>>,
    stop: AtomicBool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SocketKind {
    Sacn,
    ArtNet,
}

struct OpenSocket {
    socket: UdpSocket,
    kind: SocketKind,
}

struct OpenSockets {
    list: Vec<OpenSocket>,
    memberships: usize,
    per_socket: usize,
    sacn_addr: Option<SocketAddr>,
    artnet_addr: Option<SocketAddr>,
}

#[derive(Debug)]
struct Registered {
    socket: MioUdpSocket,
    kind: SocketKind,
}

fn udp_socket(
    what: &'static str,
    addr: SocketAddrV4,
    broadcast: bool,
) -> Result<Socket, InputError> {
    let bind_err = |source| InputError::Bind {
        what,
        addr: SocketAddr::V4(addr),
        source,
    };
    let socket =
        Socket::new(Domain::IPV4, Type::DGRAM, Some(SockProtocol::UDP)).map_err(bind_err)?;
    // Share the port with other receivers on this host (olad, a second monitor). Not
    // SO_REUSEPORT: that would split unicast between unrelated processes.
    socket.set_reuse_address(true).map_err(bind_err)?;
    socket.set_nonblocking(true).map_err(bind_err)?;
    socket.set_multicast_loop_v4(false).map_err(bind_err)?;
    // Only the groups this socket joined, not every group joined on the host.
    socket.set_multicast_all_v4(false).map_err(bind_err)?;
    if broadcast {
        socket.set_broadcast(true).map_err(bind_err)?;
    }
    // 512 universes at 44 Hz is ~14 MB/s: give bursts room (the kernel caps it at rmem_max).
    if let Err(e) = socket.set_recv_buffer_size(4 << 20) {
        debug!("cannot enlarge the receive buffer of the {what} socket: {e}");
    }
    socket
        .bind(&SocketAddr::V4(addr).into())
        .map_err(bind_err)?;
    Ok(socket)
}

fn local_port(socket: &Socket) -> u16 {
    socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map_or(0, |a| a.port())
}

/// The kernel's per-socket multicast membership limit.
fn kernel_membership_limit() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/igmp_max_memberships")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|n: &usize| *n > 0)
        .unwrap_or(LINUX_DEFAULT_MEMBERSHIPS)
}

/// The broadcast address of the interface that holds `ip`, if it has one.
pub(crate) fn interface_broadcast(ip: Ipv4Addr) -> Option<Ipv4Addr> {
    let interfaces = match if_addrs::get_if_addrs() {
        Ok(list) => list,
        Err(e) => {
            debug!("cannot list interfaces ({e}); Art-Net broadcasts on 0.0.0.0");
            return None;
        }
    };
    interfaces.into_iter().find_map(|i| match i.addr {
        if_addrs::IfAddr::V4(a) if a.ip == ip => a.broadcast.filter(|b| !b.is_unspecified()),
        _ => None,
    })
}

fn open_sockets(config: &InputConfig) -> Result<OpenSockets, InputError> {
    let mut list = Vec::new();
    let mut memberships: usize = 0;
    let limit = kernel_membership_limit();
    let per_socket = match config.memberships_per_socket {
        0 => limit,
        n => n.min(limit),
    };
    let mut sacn_addr = None;
    let mut artnet_addr = None;
    let iface = config.interface;
    if config.sacn {
        for &u in &config.sacn_universes {
            if !sacn::is_data_universe(u) {
                return Err(InputError::BadUniverse(u));
            }
        }
        let mut port = config.sacn_port;
        if config.sacn_unicast {
            let socket = udp_socket("sACN unicast", SocketAddrV4::new(iface, port), false)?;
            port = local_port(&socket);
            sacn_addr = Some(SocketAddr::V4(SocketAddrV4::new(iface, port)));
            list.push(OpenSocket {
                socket: socket.into(),
                kind: SocketKind::Sacn,
            });
        }
        let mut universes = config.sacn_universes.clone();
        universes.sort_unstable();
        universes.dedup();
        let mut current: Option<(Socket, usize)> = None;
        for universe in universes {
            let group = sacn::multicast_addr(universe);
            let mut fresh = false;
            loop {
                if current.as_ref().is_none_or(|(_, n)| *n >= per_socket) {
                    if let Some((socket, _)) = current.take() {
                        list.push(OpenSocket {
                            socket: socket.into(),
                            kind: SocketKind::Sacn,
                        });
                    }
                    let socket = udp_socket(
                        "sACN multicast",
                        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port),
                        false,
                    )?;
                    port = local_port(&socket);
                    current = Some((socket, 0));
                    fresh = true;
                }
                let Some((socket, joined)) = current.as_mut() else {
                    continue;
                };
                match socket.join_multicast_v4(&group, &iface) {
                    Ok(()) => {
                        *joined += 1;
                        memberships += 1;
                        break;
                    }
                    // ENOBUFS: this socket is full (the limit is lower than we thought).
                    Err(e) if !fresh && e.raw_os_error() == Some(105) => {
                        warn!(
                            "multicast membership limit reached after {joined} groups on one \
                             socket ({e}); opening another socket"
                        );
                        *joined = usize::MAX;
                    }
                    Err(source) => {
                        return Err(InputError::Join {
                            universe,
                            group,
                            interface: iface,
                            limit: per_socket,
                            source,
                        });
                    }
                }
            }
        }
        if let Some((socket, _)) = current {
            list.push(OpenSocket {
                socket: socket.into(),
                kind: SocketKind::Sacn,
            });
        }
        if memberships > 0 {
            info!(
                "sACN: joined {memberships} multicast groups on {iface} over {} sockets \
                 ({per_socket} per socket, kernel limit {limit})",
                memberships.div_ceil(per_socket.max(1))
            );
        }
    }
    if config.artnet {
        let mut port = config.artnet_port;
        let broadcast = if iface.is_unspecified() {
            None
        } else {
            let socket = udp_socket("Art-Net unicast", SocketAddrV4::new(iface, port), true)?;
            port = local_port(&socket);
            artnet_addr = Some(SocketAddr::V4(SocketAddrV4::new(iface, port)));
            list.push(OpenSocket {
                socket: socket.into(),
                kind: SocketKind::ArtNet,
            });
            interface_broadcast(iface)
        };
        match broadcast {
            Some(directed) => {
                let socket =
                    udp_socket("Art-Net broadcast", SocketAddrV4::new(directed, port), true)?;
                list.push(OpenSocket {
                    socket: socket.into(),
                    kind: SocketKind::ArtNet,
                });
                // Limited broadcast too (some controllers use it); best effort.
                match udp_socket(
                    "Art-Net limited broadcast",
                    SocketAddrV4::new(Ipv4Addr::BROADCAST, port),
                    true,
                ) {
                    Ok(socket) => list.push(OpenSocket {
                        socket: socket.into(),
                        kind: SocketKind::ArtNet,
                    }),
                    Err(e) => debug!("Art-Net: no socket for 255.255.255.255 ({e})"),
                }
            }
            None => {
                let socket = udp_socket(
                    "Art-Net broadcast",
                    SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port),
                    true,
                )?;
                let port = local_port(&socket);
                if artnet_addr.is_none() {
                    artnet_addr = Some(SocketAddr::V4(SocketAddrV4::new(iface, port)));
                }
                list.push(OpenSocket {
                    socket: socket.into(),
                    kind: SocketKind::ArtNet,
                });
            }
        }
    }
    Ok(OpenSockets {
        list,
        memberships,
        per_socket,
        sacn_addr,
        artnet_addr,
    })
}

/// Rate of accepted packets over windows of at least one second.
#[derive(Debug, Clone)]
struct RateMeter {
    window_start: Instant,
    packets: u32,
    rate: Option<f32>,
}

impl RateMeter {
    fn new(now: Instant) -> Self {
        RateMeter {
            window_start: now,
            packets: 0,
            rate: None,
        }
    }

    fn tick(&mut self, now: Instant) {
        // The packet that opens the window is not counted: N intervals over its length.
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed.is_zero() && self.packets == 0 {
            return;
        }
        self.packets += 1;
        if elapsed >= Duration::from_secs(1) {
            self.rate = Some(self.packets as f32 / elapsed.as_secs_f32());
            self.window_start = now;
            self.packets = 0;
        }
    }
}

#[derive(Debug, Clone)]
struct ArtSource {
    ip: Ipv4Addr,
    addr: SocketAddr,
    slots: Vec<u8>,
    last_seen: Instant,
    rate: RateMeter,
}

/// The merged look of one universe as last published.
#[derive(Debug, Clone)]
struct Published {
    slots: Vec<u8>,
    priority: Option<u8>,
    live: bool,
    changes: u64,
    last_change: Instant,
}

#[derive(Debug)]
struct State {
    sacn_universes: Vec<u16>,
    artnet_universes: Vec<u16>,
    artnet_loss_timeout: Duration,
    merger: Merger,
    /// Last address each sACN CID sent from.
    sacn_addrs: HashMap<[u8; 16], SocketAddr>,
    artnet_sources: BTreeMap<u16, Vec<ArtSource>>,
    /// Long names from ArtPollReplies, by sender.
    artnet_names: HashMap<Ipv4Addr, String>,
    published: BTreeMap<UniverseKey, Published>,
    stats: InputStats,
}

impl State {
    fn new(config: &InputConfig) -> Self {
        let mut sacn_universes = config.sacn_universes.clone();
        sacn_universes.sort_unstable();
        sacn_universes.dedup();
        let mut artnet_universes: Vec<u16> =
            config.artnet_universes.iter().map(|p| p.get()).collect();
        artnet_universes.sort_unstable();
        artnet_universes.dedup();
        State {
            sacn_universes,
            artnet_universes,
            artnet_loss_timeout: config.artnet_loss_timeout,
            merger: Merger::new(config.merge),
            sacn_addrs: HashMap::new(),
            artnet_sources: BTreeMap::new(),
            artnet_names: HashMap::new(),
            published: BTreeMap::new(),
            stats: InputStats::default(),
        }
    }

    fn wants_sacn(&self, universe: u16) -> bool {
        self.sacn_universes.is_empty() || self.sacn_universes.binary_search(&universe).is_ok()
    }

    fn wants_artnet(&self, port_address: u16) -> bool {
        self.artnet_universes.is_empty()
            || self.artnet_universes.binary_search(&port_address).is_ok()
    }

    /// Recomputes the merge of `key`; returns the frame to publish if anything changed.
    fn remerge(&mut self, key: UniverseKey, now: Instant) -> Option<InputFrame> {
        let (slots, priority, live): (&[u8], Option<u8>, bool) = match key.protocol {
            InputProtocol::Sacn => match self.merger.merged(key.universe, now) {
                Some(m) => {
                    let count = m.slot_count().min(sacn::MAX_SLOTS);
                    let slots = m.slots();
                    let priority = m.priority();
                    // Borrow ends with this arm; copy what differs below.
                    return publish(
                        &mut self.published,
                        key,
                        &slots[..count],
                        Some(priority),
                        true,
                        now,
                    );
                }
                None => (&[], None, false),
            },
            InputProtocol::ArtNet => {
                let timeout = self.artnet_loss_timeout;
                let sources = self.artnet_sources.entry(key.universe).or_default();
                sources.retain(|s| now.saturating_duration_since(s.last_seen) < timeout);
                if sources.is_empty() {
                    self.artnet_sources.remove(&key.universe);
                    (&[], None, false)
                } else {
                    let count = sources.iter().map(|s| s.slots.len()).max().unwrap_or(0);
                    let mut merged = vec![0u8; count];
                    for source in sources.iter() {
                        for (out, &v) in merged.iter_mut().zip(&source.slots) {
                            *out = (*out).max(v);
                        }
                    }
                    return publish(&mut self.published, key, &merged, None, true, now);
                }
            }
        };
        if live {
            return publish(&mut self.published, key, slots, priority, live, now);
        }
        // No live source: hold the last look, mark it once.
        let entry = self.published.get_mut(&key)?;
        if !entry.live {
            return None;
        }
        entry.live = false;
        Some(InputFrame {
            key,
            slots: entry.slots.clone(),
            priority: entry.priority,
            live: false,
            at: now,
        })
    }

    fn sources(&self, key: UniverseKey, now: Instant) -> Vec<InputSource> {
        match key.protocol {
            InputProtocol::Sacn => {
                let timeout = self.merger.config().loss_timeout;
                let infos: Vec<_> = self
                    .merger
                    .sources(key.universe)
                    .filter(|s| now.saturating_duration_since(s.last_seen) < timeout)
                    .collect();
                let top = infos.iter().map(|s| s.priority).max().unwrap_or(0);
                infos
                    .into_iter()
                    .map(|s| InputSource {
                        id: SourceId::Cid(s.cid),
                        addr: self.sacn_addrs.get(&s.cid).copied(),
                        name: s.name.to_string(),
                        priority: Some(s.priority),
                        slot_count: s.slot_count,
                        packet_rate: s.packet_rate,
                        last_seen: s.last_seen,
                        winning: s.priority == top,
                    })
                    .collect()
            }
            InputProtocol::ArtNet => self
                .artnet_sources
                .get(&key.universe)
                .into_iter()
                .flatten()
                .filter(|s| now.saturating_duration_since(s.last_seen) < self.artnet_loss_timeout)
                .map(|s| InputSource {
                    id: SourceId::Ip(s.ip),
                    addr: Some(s.addr),
                    name: self.artnet_names.get(&s.ip).cloned().unwrap_or_default(),
                    priority: None,
                    slot_count: s.slots.len(),
                    packet_rate: s.rate.rate,
                    last_seen: s.last_seen,
                    winning: true,
                })
                .collect(),
        }
    }

    fn universe(&self, key: UniverseKey, now: Instant) -> Option<InputUniverse> {
        let published = self.published.get(&key)?;
        Some(InputUniverse {
            key,
            slots: published.slots.clone(),
            priority: published.priority,
            live: published.live,
            sources: self.sources(key, now),
            changes: published.changes,
            last_change: published.last_change,
        })
    }

    fn snapshot(&self, now: Instant) -> Vec<InputUniverse> {
        self.published
            .keys()
            .filter_map(|key| self.universe(*key, now))
            .collect()
    }
}

/// Stores the merged look of `key`; returns a frame if it differs from the one published.
fn publish(
    published: &mut BTreeMap<UniverseKey, Published>,
    key: UniverseKey,
    slots: &[u8],
    priority: Option<u8>,
    live: bool,
    now: Instant,
) -> Option<InputFrame> {
    match published.get_mut(&key) {
        Some(p) if p.slots == slots && p.priority == priority && p.live == live => None,
        Some(p) => {
            p.slots.clear();
            p.slots.extend_from_slice(slots);
            p.priority = priority;
            p.live = live;
            p.changes += 1;
            p.last_change = now;
            Some(frame(key, p, now))
        }
        None => {
            let p = Published {
                slots: slots.to_vec(),
                priority,
                live,
                changes: 1,
                last_change: now,
            };
            let f = frame(key, &p, now);
            published.insert(key, p);
            Some(f)
        }
    }
}

fn frame(key: UniverseKey, p: &Published, now: Instant) -> InputFrame {
    InputFrame {
        key,
        slots: p.slots.clone(),
        priority: p.priority,
        live: p.live,
        at: now,
    }
}

/// Kinds of bad input, each warned about at most once per [`WARN_INTERVAL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Bad {
    Truncated,
    Oversized,
    WrongVersion,
    Malformed,
    Socket,
}

#[derive(Debug, Default)]
struct Warnings {
    last: HashMap<(SocketKind, Bad), (Instant, u64)>,
}

impl Warnings {
    /// Logs `message` unless this kind was logged within [`WARN_INTERVAL`]; then counts it, and
    /// the next line says how many were not logged.
    fn warn(&mut self, kind: SocketKind, bad: Bad, now: Instant, message: impl FnOnce() -> String) {
        let entry = self.last.entry((kind, bad));
        match entry {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let (at, suppressed) = e.get_mut();
                if now.saturating_duration_since(*at) < WARN_INTERVAL {
                    *suppressed += 1;
                    return;
                }
                let n = *suppressed;
                *at = now;
                *suppressed = 0;
                if n > 0 {
                    warn!("{} (and {n} more like it not logged)", message());
                } else {
                    warn!("{}", message());
                }
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((now, 0));
                warn!("{}", message());
            }
        }
    }
}

struct InputThread {
    config: InputConfig,
    poll: Poll,
    sockets: Vec<Registered>,
    shared: Arc<Shared>,
    buf: Vec<u8>,
    warnings: Warnings,
    reply_buf: Vec<u8>,
}

impl InputThread {
    fn run(&mut self) {
        let mut events = Events::with_capacity(64);
        let mut next_housekeeping = Instant::now() + HOUSEKEEPING;
        let mut next_announce = Instant::now();
        loop {
            if self.shared.stop.load(Ordering::SeqCst) {
                break;
            }
            let now = Instant::now();
            if self.config.artnet
                && self.config.artnet_reply
                && now >= next_announce
                && let Some(target) = self.config.artnet_announce
            {
                self.send_poll_replies(target, now);
                next_announce = now + ANNOUNCE_INTERVAL;
            }
            if now >= next_housekeeping {
                self.expire(now);
                next_housekeeping = now + HOUSEKEEPING;
            }
            let timeout = next_housekeeping.saturating_duration_since(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.warnings.warn(SocketKind::Sacn, Bad::Socket, now, || {
                        format!("DMX input: poll failed: {e}")
                    });
                    std::thread::sleep(HOUSEKEEPING);
                }
                continue;
            }
            for event in &events {
                let Token(index) = event.token();
                if index < self.sockets.len() {
                    self.drain(index);
                }
            }
        }
        debug!("DMX input thread stopped");
    }

    /// Reads datagrams from one socket until it would block (mio is edge-triggered), at most
    /// [`MAX_BURST`] at a time; the rest get their turn on the next poll.
    fn drain(&mut self, index: usize) {
        for _ in 0..MAX_BURST {
            let Some(registered) = self.sockets.get(index) else {
                return;
            };
            let kind = registered.kind;
            match registered.socket.recv_from(&mut self.buf) {
                Ok((len, from)) => self.datagram(kind, len, from),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let now = Instant::now();
                    lock(&self.shared.state).stats.socket_errors += 1;
                    self.warnings.warn(kind, Bad::Socket, now, || {
                        format!("DMX input: receive failed: {e}")
                    });
                    return;
                }
            }
        }
        // More may be waiting: with edge triggering no new event comes for them, so re-arm.
        if let Some(registered) = self.sockets.get_mut(index)
            && let Err(e) = self.poll.registry().reregister(
                &mut registered.socket,
                Token(index),
                Interest::READABLE,
            )
        {
            debug!("cannot re-arm an input socket: {e}");
        }
    }

    fn datagram(&mut self, kind: SocketKind, len: usize, from: SocketAddr) {
        let now = Instant::now();
        let Some(bytes) = self.buf.get(..len) else {
            return;
        };
        let mut frames = Vec::new();
        let mut reply_to = None;
        {
            let mut state = lock(&self.shared.state);
            match kind {
                SocketKind::Sacn => {
                    handle_sacn(
                        &mut state,
                        &mut self.warnings,
                        bytes,
                        from,
                        now,
                        &mut frames,
                    );
                }
                SocketKind::ArtNet => {
                    reply_to = handle_artnet(
                        &mut state,
                        &mut self.warnings,
                        bytes,
                        from,
                        now,
                        &mut frames,
                    );
                }
            }
        }
        if let Some(target) = reply_to
            && self.config.artnet_reply
        {
            self.send_poll_replies(target, now);
        }
        self.deliver(frames);
    }

    fn expire(&mut self, now: Instant) {
        let mut frames = Vec::new();
        {
            let mut state = lock(&self.shared.state);
            let keys: Vec<UniverseKey> = state
                .published
                .iter()
                .filter(|(_, p)| p.live)
                .map(|(k, _)| *k)
                .collect();
            for key in keys {
                if let Some(f) = state.remerge(key, now) {
                    frames.push(f);
                }
            }
            state.merger.expire(now);
            let live: Vec<[u8; 16]> = state
                .merger
                .universes()
                .flat_map(|u| state.merger.sources(u).map(|s| s.cid).collect::<Vec<_>>())
                .collect();
            state.sacn_addrs.retain(|cid, _| live.contains(cid));
        }
        self.deliver(frames);
    }

    fn deliver(&self, frames: Vec<InputFrame>) {
        if frames.is_empty() {
            return;
        }
        let mut dropped = 0;
        {
            let mut subscribers = lock(&self.shared.subscribers);
            if subscribers.is_empty() {
                return;
            }
            subscribers.retain(|tx| {
                for f in &frames {
                    match tx.try_send(f.clone()) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_)) => dropped += 1,
                        Err(TrySendError::Disconnected(_)) => return false,
                    }
                }
                true
            });
        }
        if dropped > 0 {
            lock(&self.shared.state).stats.frames_dropped += dropped;
        }
    }

    /// Our ArtPollReplies: the advertised Port-Addresses, four per reply (one reply per
    /// Net/Sub-Net group, `BindIndex` 1, 2, …), sent from our unicast Art-Net socket.
    fn send_poll_replies(&mut self, target: SocketAddr, now: Instant) {
        let ip = match self.config.interface {
            ip if !ip.is_unspecified() => ip,
            _ => local_ip_towards(target).unwrap_or(Ipv4Addr::UNSPECIFIED),
        };
        let port = self
            .sockets
            .iter()
            .find(|s| s.kind == SocketKind::ArtNet)
            .and_then(|s| s.socket.local_addr().ok())
            .map_or(artnet::PORT, |a| a.port());
        let replies = poll_replies(&self.config, ip, port);
        let Some(socket) = self.sockets.iter().find(|s| s.kind == SocketKind::ArtNet) else {
            return;
        };
        let mut sent = 0;
        for reply in &replies {
            if let Err(e) = reply.encode_into(&mut self.reply_buf) {
                debug!("cannot encode our ArtPollReply: {e}");
                continue;
            }
            match socket.socket.send_to(&self.reply_buf, target) {
                Ok(_) => sent += 1,
                Err(e) => {
                    self.warnings
                        .warn(SocketKind::ArtNet, Bad::Socket, now, || {
                            format!("DMX input: cannot send ArtPollReply to {target}: {e}")
                        });
                }
            }
        }
        lock(&self.shared.state).stats.artnet_poll_replies_sent += sent;
    }
}

/// The address this host sends from towards `target` (a connected UDP socket sends nothing).
fn local_ip_towards(target: SocketAddr) -> Option<Ipv4Addr> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect(target).ok()?;
    match socket.local_addr().ok()?.ip() {
        IpAddr::V4(ip) => Some(ip),
        IpAddr::V6(_) => None,
    }
}

/// ArtPollReplies naming the configured Port-Addresses as output ports (ports that take DMX
/// from the network — "output" in Art-Net's words is what this receiver does with them).
pub fn poll_replies(config: &InputConfig, ip: Ipv4Addr, port: u16) -> Vec<ArtPollReply> {
    let mut addresses: Vec<PortAddress> = config.artnet_universes.clone();
    addresses.sort_unstable();
    addresses.dedup();
    let short_name = truncate(&config.node_name, 17);
    let long_name = truncate(&config.node_name, 63);
    let base = ArtPollReply {
        ip,
        port,
        short_name,
        long_name,
        node_report: "#0001 [0000] RocKontrol input".into(),
        style: ArtPollReply::STYLE_CONTROLLER,
        bind_ip: ip,
        ..ArtPollReply::default()
    };
    if addresses.is_empty() {
        return vec![ArtPollReply {
            bind_index: 1,
            ..base
        }];
    }
    let mut replies = Vec::new();
    let mut group: Vec<PortAddress> = Vec::new();
    let flush = |group: &mut Vec<PortAddress>, replies: &mut Vec<ArtPollReply>| {
        let Some(first) = group.first().copied() else {
            return;
        };
        let mut reply = ArtPollReply {
            net_switch: first.net(),
            sub_switch: first.sub_net(),
            num_ports: group.len() as u16,
            bind_index: (replies.len() + 1).min(255) as u8,
            ..base.clone()
        };
        for (i, address) in group.iter().enumerate() {
            reply.port_types[i] = ArtPollReply::PORT_TYPE_OUTPUT;
            reply.sw_out[i] = address.universe();
            // GoodOutputA bit 7: data is being output (we take it); keeps controllers sending.
            reply.good_output_a[i] = 0x80;
        }
        replies.push(reply);
        group.clear();
    };
    for address in addresses {
        let same_group = group
            .first()
            .is_some_and(|f| f.net() == address.net() && f.sub_net() == address.sub_net());
        if !same_group || group.len() == 4 {
            flush(&mut group, &mut replies);
        }
        group.push(address);
    }
    flush(&mut group, &mut replies);
    replies
}

fn truncate(name: &str, max: usize) -> String {
    let mut end = name.len().min(max);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].replace('\0', "")
}

fn classify_sacn(e: &SacnError) -> Bad {
    match e {
        SacnError::Incomplete { .. } => Bad::Truncated,
        SacnError::Invalid { field, .. } if *field == "root layer vector" => Bad::WrongVersion,
        SacnError::Invalid { .. } => Bad::Malformed,
    }
}

fn classify_artnet(e: &ArtNetError) -> Bad {
    match e {
        ArtNetError::Incomplete { .. } => Bad::Truncated,
        ArtNetError::Invalid { field, .. } if *field == "ProtVer" => Bad::WrongVersion,
        _ => Bad::Malformed,
    }
}

fn count_bad(stats: &mut ProtocolStats, bad: Bad) {
    match bad {
        Bad::Truncated => stats.truncated += 1,
        Bad::Oversized => stats.oversized += 1,
        Bad::WrongVersion => stats.wrong_version += 1,
        Bad::Malformed | Bad::Socket => stats.malformed += 1,
    }
}

fn bad_name(bad: Bad) -> &'static str {
    match bad {
        Bad::Truncated => "truncated",
        Bad::Oversized => "oversized",
        Bad::WrongVersion => "wrong-version",
        Bad::Malformed | Bad::Socket => "malformed",
    }
}

fn handle_sacn(
    state: &mut State,
    warnings: &mut Warnings,
    bytes: &[u8],
    from: SocketAddr,
    now: Instant,
    frames: &mut Vec<InputFrame>,
) {
    state.stats.sacn.datagrams += 1;
    if bytes.len() > MAX_SACN_DATAGRAM {
        state.stats.sacn.oversized += 1;
        warnings.warn(SocketKind::Sacn, Bad::Oversized, now, || {
            format!(
                "dropped an oversized sACN datagram from {from}: {}{} bytes (at most {MAX_SACN_DATAGRAM})",
                if bytes.len() >= RECV_BUFFER { "≥ " } else { "" },
                bytes.len()
            )
        });
        return;
    }
    let packet = match sacn::decode(bytes) {
        Ok(packet) => packet,
        Err(e) => {
            let bad = classify_sacn(&e);
            count_bad(&mut state.stats.sacn, bad);
            warnings.warn(SocketKind::Sacn, bad, now, || {
                format!(
                    "dropped a {} sACN datagram ({} bytes) from {from}: {e}",
                    bad_name(bad),
                    bytes.len()
                )
            });
            return;
        }
    };
    match packet {
        Packet::Data(data) => {
            if !state.wants_sacn(data.universe) {
                state.stats.sacn.unlisted += 1;
                return;
            }
            match state.merger.receive(&data, now) {
                Reception::Accepted => {
                    state.stats.sacn.accepted += 1;
                    if state.sacn_addrs.get(&data.cid) != Some(&from) {
                        state.sacn_addrs.insert(data.cid, from);
                    }
                }
                Reception::Terminated => {
                    state.stats.sacn_terminated += 1;
                    debug!(
                        "sACN universe {}: source {} terminated its stream",
                        data.universe, data.source_name
                    );
                }
                Reception::OutOfSequence => {
                    state.stats.sacn_out_of_sequence += 1;
                    return;
                }
                Reception::Preview => {
                    state.stats.sacn_preview += 1;
                    return;
                }
                Reception::AlternateStartCode => {
                    state.stats.sacn_alternate_start_code += 1;
                    return;
                }
                Reception::TooManySources => {
                    state.stats.too_many_sources += 1;
                    return;
                }
            }
            if let Some(f) = state.remerge(UniverseKey::sacn(data.universe), now) {
                frames.push(f);
            }
        }
        Packet::Sync(_) => state.stats.sacn_sync += 1,
        Packet::Discovery(_) => state.stats.sacn_discovery += 1,
    }
}

/// Returns where to send ArtPollReplies if this was an ArtPoll.
fn handle_artnet(
    state: &mut State,
    warnings: &mut Warnings,
    bytes: &[u8],
    from: SocketAddr,
    now: Instant,
    frames: &mut Vec<InputFrame>,
) -> Option<SocketAddr> {
    state.stats.artnet.datagrams += 1;
    if bytes.len() > MAX_ARTNET_DATAGRAM {
        state.stats.artnet.oversized += 1;
        warnings.warn(SocketKind::ArtNet, Bad::Oversized, now, || {
            format!(
                "dropped an oversized Art-Net datagram from {from}: {}{} bytes (at most {MAX_ARTNET_DATAGRAM})",
                if bytes.len() >= RECV_BUFFER { "≥ " } else { "" },
                bytes.len()
            )
        });
        return None;
    }
    let packet = match artnet::decode(bytes) {
        Ok(packet) => packet,
        Err(ArtNetError::Unsupported { .. }) => {
            state.stats.artnet.ignored += 1;
            return None;
        }
        Err(e) => {
            let bad = classify_artnet(&e);
            count_bad(&mut state.stats.artnet, bad);
            warnings.warn(SocketKind::ArtNet, bad, now, || {
                format!(
                    "dropped a {} Art-Net datagram ({} bytes) from {from}: {e}",
                    bad_name(bad),
                    bytes.len()
                )
            });
            return None;
        }
    };
    let IpAddr::V4(ip) = from.ip() else {
        return None;
    };
    match packet {
        ArtPacket::Dmx(dmx) => {
            receive_artdmx(state, &dmx, ip, from, now, frames);
            None
        }
        ArtPacket::Poll(_) => {
            state.stats.artnet_polls += 1;
            // Replies go to the poller's address on the Art-Net port (Art-Net 4: unicast).
            Some(from)
        }
        ArtPacket::PollReply(reply) => {
            let name = if reply.long_name.is_empty() {
                reply.short_name.clone()
            } else {
                reply.long_name.clone()
            };
            if state.artnet_names.len() < 1024 || state.artnet_names.contains_key(&ip) {
                state.artnet_names.insert(ip, name);
            }
            state.stats.artnet.ignored += 1;
            None
        }
        ArtPacket::Sync(_) | ArtPacket::TimeCode(_) => {
            state.stats.artnet.ignored += 1;
            None
        }
    }
}

fn receive_artdmx(
    state: &mut State,
    dmx: &ArtDmx<'_>,
    ip: Ipv4Addr,
    from: SocketAddr,
    now: Instant,
    frames: &mut Vec<InputFrame>,
) {
    let universe = dmx.port_address.get();
    if !state.wants_artnet(universe) {
        state.stats.artnet.unlisted += 1;
        return;
    }
    let timeout = state.artnet_loss_timeout;
    let sources = state.artnet_sources.entry(universe).or_default();
    let index = match sources.iter().position(|s| s.ip == ip) {
        Some(i) => i,
        None => {
            sources.retain(|s| now.saturating_duration_since(s.last_seen) < timeout);
            if sources.len() >= MAX_ARTNET_SOURCES {
                state.stats.too_many_sources += 1;
                return;
            }
            sources.push(ArtSource {
                ip,
                addr: from,
                slots: Vec::new(),
                last_seen: now,
                rate: RateMeter::new(now),
            });
            sources.len() - 1
        }
    };
    let Some(source) = sources.get_mut(index) else {
        return;
    };
    let count = dmx.data.len().min(sacn::MAX_SLOTS);
    source.slots.clear();
    source.slots.extend_from_slice(&dmx.data[..count]);
    source.addr = from;
    source.last_seen = now;
    source.rate.tick(now);
    state.stats.artnet.accepted += 1;
    if let Some(f) = state.remerge(UniverseKey::artnet(universe), now) {
        frames.push(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rockontrol_wire::sacn::{DataPacket, Options};
    use std::borrow::Cow;

    fn loopback_config() -> InputConfig {
        InputConfig {
            interface: Ipv4Addr::LOCALHOST,
            sacn_port: 0,
            artnet_port: 0,
            artnet_reply: false,
            ..InputConfig::default()
        }
    }

    fn sacn_packet(
        cid: u8,
        name: &str,
        priority: u8,
        universe: u16,
        seq: u8,
        slots: &[u8],
    ) -> Vec<u8> {
        DataPacket {
            cid: [cid; 16],
            source_name: Cow::Borrowed(name),
            priority,
            sync_address: 0,
            sequence: seq,
            options: Options::default(),
            universe,
            start_code: 0,
            slots: Cow::Borrowed(slots),
        }
        .encode()
        .expect("encode")
    }

    fn artdmx(port_address: u16, seq: u8, data: &[u8]) -> Vec<u8> {
        ArtDmx {
            sequence: seq,
            physical: 0,
            port_address: PortAddress::new(port_address).expect("port-address"),
            data: Cow::Borrowed(data),
        }
        .encode()
        .expect("encode")
    }

    fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(v) = probe() {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn sacn_unicast_merges_by_priority_then_htp() {
        let handle = InputReceiver::start(InputConfig {
            artnet: false,
            ..loopback_config()
        })
        .expect("start");
        let to = handle.sacn_addr().expect("unicast socket");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("sender");
        let frames = handle.subscribe(64);
        tx.send_to(&sacn_packet(1, "low", 100, 7, 0, &[10, 200, 0]), to)
            .expect("send");
        tx.send_to(&sacn_packet(2, "low too", 100, 7, 0, &[50, 20]), to)
            .expect("send");
        let u = wait_for("two sources merged", || {
            handle
                .universe(UniverseKey::sacn(7))
                .filter(|u| u.sources.len() == 2)
        });
        assert_eq!(
            u.slots,
            vec![50, 200, 0],
            "HTP of equal priorities, 3 slots"
        );
        assert_eq!(u.priority, Some(100));
        assert!(u.live);
        let names: Vec<_> = u.sources.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["low", "low too"], "sources in order of arrival");
        assert_eq!(u.sources[0].addr, tx.local_addr().ok(), "source address");
        tx.send_to(&sacn_packet(3, "high", 150, 7, 0, &[1]), to)
            .expect("send");
        let u = wait_for("priority 150 wins", || {
            handle
                .universe(UniverseKey::sacn(7))
                .filter(|u| u.priority == Some(150))
        });
        assert_eq!(u.slots, vec![1], "only the highest priority counts");
        assert_eq!(u.sources.iter().filter(|s| s.winning).count(), 1);
        // Stream terminated: back to the HTP of the two at 100.
        let mut term = DataPacket {
            cid: [3; 16],
            source_name: Cow::Borrowed("high"),
            priority: 150,
            sync_address: 0,
            sequence: 1,
            options: Options::default(),
            universe: 7,
            start_code: 0,
            slots: Cow::Borrowed(&[1]),
        };
        term.options.stream_terminated = true;
        tx.send_to(&term.encode().expect("encode"), to)
            .expect("send");
        let u = wait_for("termination honoured", || {
            handle
                .universe(UniverseKey::sacn(7))
                .filter(|u| u.priority == Some(100))
        });
        assert_eq!(u.slots, vec![50, 200, 0]);
        let got: Vec<InputFrame> = frames.try_iter().collect();
        assert_eq!(
            got.iter().map(|f| f.slots.clone()).collect::<Vec<_>>(),
            vec![
                vec![10, 200, 0],
                vec![50, 200, 0],
                vec![1],
                vec![50, 200, 0]
            ],
            "one frame per change of the merged values"
        );
        assert_eq!(handle.stats().sacn_terminated, 1);
    }

    #[test]
    fn artnet_sources_merge_htp_and_unlisted_universes_are_dropped() {
        let handle = InputReceiver::start(InputConfig {
            sacn: false,
            artnet_universes: vec![PortAddress::new(3).expect("pa")],
            ..loopback_config()
        })
        .expect("start");
        let to = handle.artnet_addr().expect("art-net socket");
        let a = UdpSocket::bind("127.0.0.1:0").expect("a");
        let b = UdpSocket::bind("127.0.0.2:0").expect("b");
        a.send_to(&artdmx(3, 1, &[0, 9, 100, 4]), to).expect("send");
        b.send_to(&artdmx(3, 1, &[5, 8]), to).expect("send");
        a.send_to(&artdmx(4, 1, &[255; 2]), to).expect("send");
        let u = wait_for("two Art-Net sources", || {
            handle
                .universe(UniverseKey::artnet(3))
                .filter(|u| u.sources.len() == 2)
        });
        assert_eq!(u.slots, vec![5, 9, 100, 4], "HTP over both sources");
        assert_eq!(u.priority, None);
        wait_for("unlisted counted", || {
            (handle.stats().artnet.unlisted == 1).then_some(())
        });
        assert!(handle.universe(UniverseKey::artnet(4)).is_none());
    }

    #[test]
    fn bad_packets_are_counted_by_kind_and_the_receiver_keeps_going() {
        let handle = InputReceiver::start(loopback_config()).expect("start");
        let sacn_to = handle.sacn_addr().expect("sacn");
        let art_to = handle.artnet_addr().expect("artnet");
        let tx = UdpSocket::bind("127.0.0.1:0").expect("sender");
        let good = sacn_packet(1, "ok", 100, 1, 0, &[1, 2, 3]);
        tx.send_to(&good[..good.len() - 1], sacn_to)
            .expect("truncated");
        tx.send_to(&vec![0u8; 1500], sacn_to).expect("oversized");
        let mut draft = good.clone();
        draft[21] = 3; // root vector 3: the pre-standard draft
        tx.send_to(&draft, sacn_to).expect("wrong version");
        tx.send_to(b"hello", sacn_to).expect("garbage");
        let art = artdmx(0, 1, &[1, 2]);
        tx.send_to(&art[..art.len() - 1], art_to)
            .expect("truncated");
        let mut old = art.clone();
        old[11] = 13; // ProtVer 13
        tx.send_to(&old, art_to).expect("wrong version");
        tx.send_to(&vec![0u8; 1400], art_to).expect("oversized");
        tx.send_to(&good, sacn_to).expect("good");
        tx.send_to(&art, art_to).expect("good");
        wait_for("good packets after bad ones", || {
            let s = handle.stats();
            (s.sacn.accepted == 1 && s.artnet.accepted == 1).then_some(())
        });
        let s = handle.stats();
        assert_eq!(
            (
                s.sacn.truncated,
                s.sacn.oversized,
                s.sacn.wrong_version,
                s.sacn.malformed
            ),
            (1, 1, 1, 1),
            "sACN counters: {s:?}"
        );
        assert_eq!(
            (
                s.artnet.truncated,
                s.artnet.wrong_version,
                s.artnet.oversized
            ),
            (1, 1, 1),
            "Art-Net counters: {s:?}"
        );
        assert_eq!(
            handle.universe(UniverseKey::sacn(1)).map(|u| u.slots),
            Some(vec![1, 2, 3])
        );
    }

    #[test]
    fn poll_replies_group_ports_by_net_and_subnet() {
        let config = InputConfig {
            node_name: "bridge".into(),
            artnet_universes: [0u16, 1, 2, 3, 4, 0x0110]
                .iter()
                .filter_map(|p| PortAddress::new(*p))
                .collect(),
            ..InputConfig::default()
        };
        let replies = poll_replies(&config, Ipv4Addr::new(198, 18, 0, 2), artnet::PORT);
        assert_eq!(
            replies.len(),
            3,
            "4 ports, 1 port, then another Net/Sub-Net"
        );
        assert_eq!(replies[0].num_ports, 4);
        assert_eq!(replies[0].output_port_address(3).map(|p| p.get()), Some(3));
        assert_eq!(replies[1].output_port_address(0).map(|p| p.get()), Some(4));
        assert_eq!(
            replies[2].output_port_address(0).map(|p| p.get()),
            Some(0x0110)
        );
        assert_eq!(
            replies.iter().map(|r| r.bind_index).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        for reply in &replies {
            let bytes = reply.encode().expect("encode");
            let back = ArtPollReply::decode(&bytes).expect("decode");
            assert_eq!(&back, reply, "round trip");
        }
    }
}
