//! The thin UDP shell: the master's responder and each receiver's client, one named thread
//! each, blocking sockets with short timeouts so they stop promptly.
//!
//! # Timestamps
//! Receive times come from the kernel where the socket offers them: `SO_TIMESTAMPNS`, read
//! from the `recvmsg` control message through `nix` (safe wrappers; no unsafe code here). The
//! kernel stamps the packet when the network stack takes it, so the time the thread waited
//! for the CPU (up to milliseconds at p99 on a loaded 2-core machine) stays out of the
//! sample. Chosen over the `timestamped-socket` crate because that one is async-only (tokio)
//! and brings a second socket abstraction for one `recvmsg`; over `SO_TIMESTAMPING` because
//! software receive stamps are all this needs and `SO_TIMESTAMPNS` has the simplest control
//! message. The kernel stamps with `CLOCK_REALTIME`; a stamp is turned into an [`Instant`]
//! by its age (realtime now − stamp) taken back from `Instant::now()` read at the same moment,
//! so a realtime step between the two is the only thing that could spoil it (an age outside
//! 0–1 s falls back to the user-space time). Send times are user-space, read just before
//! `send` (transmit stamps need the error queue; the min-delay gate takes care of the rest).
//!
//! # WebSocket fallback
//! Where UDP to the master's clock port goes unanswered ([`ClientConfig::fallback_after`]
//! pings in a row) and the link's owner gave the client a way to send over the control
//! WebSocket ([`ClockClient::start_with`]), the same signed exchange runs there
//! ([`crate::websocket`]); one ping in [`UDP_RETRY_EVERY`] still tries UDP, so the client goes
//! back when the port opens. The master answers both paths with one [`ClockAnswerer`]
//! (one replay window, one show time).

use std::io;
use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;
use tracing::{debug, info, warn};

use crate::codec::{ClockKey, PONG_LEN, PacketError, Ping, Pong, ReplayWindow};
use crate::estimator::{ClockEstimator, Estimate, EstimatorConfig, Update};
use crate::local::{LocalClock, realtime_ns};
use crate::sample::Sample;
use crate::websocket::{WsArrival, WsClockPacket, WsSend};

/// On the WebSocket fallback, one ping in this many still goes over UDP.
pub const UDP_RETRY_EVERY: u64 = 10;

/// How often a blocked thread looks at its stop flag.
const POLL: Duration = Duration::from_millis(100);
/// Refusals are logged at most this often (with their count).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// A datagram and when it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// Bytes received.
    pub len: usize,
    /// The sender, where the socket is not connected.
    pub from: Option<SocketAddr>,
    /// The kernel's receive time, else the time `recvmsg` returned.
    pub at: Instant,
    /// Whether `at` is the kernel's stamp.
    pub kernel: bool,
}

/// Turns on kernel receive timestamps (`SO_TIMESTAMPNS`) for [`recv_stamped`].
pub fn enable_kernel_timestamps(socket: &UdpSocket) -> io::Result<()> {
    setsockopt(socket, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)
}

/// Turns on kernel receive timestamps; false (and a log line) where the socket refuses.
fn enable_rx_timestamps(socket: &UdpSocket, who: &str) -> bool {
    match enable_kernel_timestamps(socket) {
        Ok(()) => true,
        Err(e) => {
            warn!("{who}: no kernel receive timestamps ({e}); using user-space ones");
            false
        }
    }
}

/// One `recvmsg`, with the kernel's receive stamp as an [`Instant`] when there is one (see
/// the [module docs](self)). Honours the socket's read timeout.
pub fn recv_stamped(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Received> {
    let mut iov = [IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(TimeSpec);
    let msg = recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let now = Instant::now();
    let realtime = realtime_ns();
    let mut at = now;
    let mut kernel = false;
    if let Ok(cmsgs) = msg.cmsgs() {
        for cmsg in cmsgs {
            if let ControlMessageOwned::ScmTimestampns(ts) = cmsg {
                let stamp = ts.tv_sec() * 1_000_000_000 + ts.tv_nsec();
                let age = realtime - stamp;
                if (0..1_000_000_000).contains(&age) {
                    at = now - Duration::from_nanos(age as u64);
                    kernel = true;
                }
            }
        }
    }
    let from = msg.address.as_ref().and_then(|a| {
        if let Some(v4) = a.as_sockaddr_in() {
            Some(SocketAddr::from((v4.ip(), v4.port())))
        } else {
            a.as_sockaddr_in6()
                .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
        }
    });
    Ok(Received {
        len: msg.bytes,
        from,
        at,
        kernel,
    })
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Counts refused packets and logs them at most every [`REFUSAL_LOG_EVERY`].
#[derive(Debug)]
struct Refusals {
    who: &'static str,
    count: u64,
    since_log: u64,
    logged: Option<Instant>,
}

impl Refusals {
    fn new(who: &'static str) -> Self {
        Refusals {
            who,
            count: 0,
            since_log: 0,
            logged: None,
        }
    }

    fn refuse(&mut self, from: Option<SocketAddr>, why: &dyn std::fmt::Display) {
        self.count += 1;
        self.since_log += 1;
        let now = Instant::now();
        if self
            .logged
            .is_none_or(|t| now.duration_since(t) >= REFUSAL_LOG_EVERY)
        {
            warn!(
                "{}: refused {} clock packet(s), the latest from {}: {why}",
                self.who,
                self.since_log,
                from.map_or_else(|| "?".to_string(), |a| a.to_string())
            );
            self.logged = Some(now);
            self.since_log = 0;
        } else {
            debug!("{}: refused a clock packet: {why}", self.who);
        }
    }
}

/// The master's show time at an instant, as the responder puts it in each pong. The master's
/// engine publishes its show time base here every frame; a timecode chase will too.
#[derive(Debug, Clone, Default)]
pub struct ShowTimeShare(Arc<Mutex<Option<rockontrol_engine::ShowTimeBase>>>);

impl ShowTimeShare {
    /// Publishes the current mapping.
    pub fn publish(&self, base: rockontrol_engine::ShowTimeBase) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(base);
        }
    }

    /// Show time at `at`, once a mapping is published.
    pub fn show_ns_at(&self, at: Instant) -> Option<u64> {
        self.0.lock().ok()?.as_ref().map(|b| b.show_ns_at(at))
    }
}

/// What the responder has done, for status.
#[derive(Debug, Default)]
pub struct ResponderStats {
    pub answered: AtomicU64,
    pub refused: AtomicU64,
}

/// Why a ping gets no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error(transparent)]
    Packet(#[from] PacketError),
    #[error("a replayed ping (sequence already seen)")]
    Replayed,
}

/// The master's answer to a ping, whichever way it came (UDP or the control WebSocket): the
/// keys, the clock, the show time handed out and one replay window.
#[derive(Debug)]
pub struct ClockAnswerer {
    /// The keys pings may be signed with; replaced when a key is revoked ([`Self::set_keys`]).
    keys: std::sync::RwLock<Vec<ClockKey>>,
    clock: LocalClock,
    show: ShowTimeShare,
    /// Random per run: receivers see a restarted master as another clock.
    master_clock: u64,
    replay: Mutex<ReplayWindow>,
    /// Counters.
    pub stats: ResponderStats,
}

impl ClockAnswerer {
    /// Answers pings signed with one of `keys`, stamping with `clock` and giving the show
    /// time in `show`.
    pub fn new(keys: Vec<ClockKey>, clock: LocalClock, show: ShowTimeShare) -> ClockAnswerer {
        ClockAnswerer {
            keys: std::sync::RwLock::new(keys),
            clock,
            show,
            master_clock: random_u64(),
            replay: Mutex::new(ReplayWindow::new(1024)),
            stats: ResponderStats::default(),
        }
    }

    /// The pong for the ping `bytes` that arrived at `received` (its `t2`); `t3` is now.
    pub fn answer(&self, bytes: &[u8], received: Instant) -> Result<Vec<u8>, AnswerError> {
        let refuse = |e: AnswerError| {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            e
        };
        let keys = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (ping, key) = Ping::decode(bytes, &keys).map_err(|e| refuse(e.into()))?;
        let fresh = self
            .replay
            .lock()
            .map(|mut r| r.accept(ping.session, ping.seq))
            .unwrap_or(false);
        if !fresh {
            return Err(refuse(AnswerError::Replayed));
        }
        let t2 = self.clock.read(received);
        let now = Instant::now();
        let pong = Pong {
            session: ping.session,
            seq: ping.seq,
            t1: ping.t1,
            t2,
            t3: self.clock.read(now),
            master_clock: self.master_clock,
            show_ns: self.show.show_ns_at(now),
        };
        self.stats.answered.fetch_add(1, Ordering::Relaxed);
        Ok(pong.encode(key))
    }

    /// From now on, answers only pings signed with one of `keys` (a revoked key's pings are
    /// refused at once, as its connections are closed).
    pub fn set_keys(&self, keys: Vec<ClockKey>) {
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
    }
}

/// The master's clock responder on its dedicated UDP port.
#[derive(Debug)]
pub struct ClockResponder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    answerer: Arc<ClockAnswerer>,
    /// Whether receive times are kernel stamps.
    pub kernel_timestamps: bool,
}

impl ClockResponder {
    /// Binds `bind` and answers pings signed with one of `keys`, stamping with `clock` and
    /// giving the show time in `show`.
    pub fn start(
        bind: SocketAddr,
        keys: Vec<ClockKey>,
        clock: LocalClock,
        show: ShowTimeShare,
    ) -> io::Result<ClockResponder> {
        ClockResponder::start_with(bind, Arc::new(ClockAnswerer::new(keys, clock, show)))
    }

    /// Binds `bind` and answers with `answerer` (shared with the WebSocket fallback).
    pub fn start_with(
        bind: SocketAddr,
        answerer: Arc<ClockAnswerer>,
    ) -> io::Result<ClockResponder> {
        let socket = UdpSocket::bind(bind)?;
        socket.set_read_timeout(Some(POLL))?;
        let addr = socket.local_addr()?;
        let kernel_timestamps = enable_rx_timestamps(&socket, "clock responder");
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("clock-responder".into())
            .spawn({
                let stop = Arc::clone(&stop);
                let answerer = Arc::clone(&answerer);
                move || respond(socket, &answerer, stop)
            })?;
        info!(
            "clock responder on udp {addr} ({} receive timestamps)",
            if kernel_timestamps {
                "kernel"
            } else {
                "user-space"
            }
        );
        Ok(ClockResponder {
            addr,
            stop,
            thread: Some(thread),
            answerer,
            kernel_timestamps,
        })
    }

    /// The bound address (the port, when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Counters (both paths).
    pub fn stats(&self) -> &ResponderStats {
        &self.answerer.stats
    }
}

impl Drop for ClockResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // Only a uniqueness hint (session and clock ids), not a secret.
        let t = crate::local::realtime_ns() as u64;
        return t ^ u64::from(std::process::id()).rotate_left(32);
    }
    u64::from_le_bytes(bytes)
}

fn respond(socket: UdpSocket, answerer: &ClockAnswerer, stop: Arc<AtomicBool>) {
    let mut buf = [0u8; 256];
    let mut refusals = Refusals::new("clock responder");
    while !stop.load(Ordering::Relaxed) {
        let got = match recv_stamped(&socket, &mut buf) {
            Ok(got) => got,
            Err(e) if timed_out(&e) => continue,
            Err(e) => {
                warn!("clock responder: receive failed: {e}; retrying");
                std::thread::sleep(POLL);
                continue;
            }
        };
        let Some(from) = got.from else { continue };
        match answerer.answer(&buf[..got.len], got.at) {
            Ok(pong) => {
                if let Err(e) = socket.send_to(&pong, from) {
                    debug!("clock responder: no answer to {from}: {e}");
                }
            }
            Err(e) => refusals.refuse(Some(from), &e),
        }
    }
    debug!("clock responder stopped");
}

/// When the client pings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientConfig {
    /// Period while converging (after start and after a step).
    pub fast_period: Duration,
    /// Period once converged.
    pub slow_period: Duration,
    /// Samples taken at the fast period after a start or a step.
    pub fast_samples: usize,
    /// How long a pong may take.
    pub timeout: Duration,
    /// UDP pings unanswered in a row before the exchange moves to the WebSocket fallback
    /// (where there is one).
    pub fallback_after: u32,
    /// The filter.
    pub estimator: EstimatorConfig,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            fast_period: Duration::from_millis(100),
            slow_period: Duration::from_secs(1),
            fast_samples: 32,
            timeout: Duration::from_millis(500),
            fallback_after: 3,
            estimator: EstimatorConfig::default(),
        }
    }
}

/// The master's show time as of one pong: show time `show_ns` at master clock `t3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShowReference {
    pub t3: i64,
    pub show_ns: u64,
}

/// What the client knows, shared with the servo.
#[derive(Debug, Clone, Default)]
pub struct ClientState {
    /// The clock model.
    pub estimate: Option<Estimate>,
    /// The latest show reference (none while the master has no show time).
    pub reference: Option<ShowReference>,
    /// Counts every change of `estimate` or `reference`.
    pub version: u64,
    /// Pongs taken.
    pub samples: u64,
    /// Pings unanswered within the timeout.
    pub timeouts: u64,
    /// Packets refused (forged, replayed, stale).
    pub refused: u64,
    /// Steps of the master's clock (confirmed by the filter, or another master).
    pub clock_steps: u64,
    /// Whether receive times are kernel stamps.
    pub kernel_timestamps: bool,
    /// The latest raw sample (for the benchmark's unfiltered figure).
    pub last_sample: Option<Sample>,
    /// Whether the latest ping was answered.
    pub answering: bool,
    /// The path of the latest answered exchange.
    pub transport: Option<Transport>,
}

/// The path an exchange took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The master's clock port, kernel receive stamps.
    Udp,
    /// The control WebSocket (the fallback).
    WebSocket,
}

impl Transport {
    /// `udp` or `websocket` (status).
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::WebSocket => "websocket",
        }
    }
}

impl ClientState {
    /// The master's show time when the local clock reads `local`.
    pub fn master_show_ns(&self, local: i64) -> Option<u64> {
        let e = self.estimate?;
        let r = self.reference?;
        let since = e.master_of(local) - r.t3;
        Some((i128::from(r.show_ns) + i128::from(since)).max(0) as u64)
    }
}

/// A receiver's clock client, pinging its master's responder.
#[derive(Debug)]
pub struct ClockClient {
    master: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    state: Arc<Mutex<ClientState>>,
    ws_arrivals: std::sync::mpsc::Sender<WsArrival>,
}

/// The client's ways to the master.
struct Paths {
    socket: UdpSocket,
    /// The WebSocket fallback: send, and the pongs the link hands back.
    ws: Option<(WsSend, std::sync::mpsc::Receiver<WsArrival>)>,
}

impl ClockClient {
    /// Starts pinging `master` with `key`, stamping with `clock`.
    pub fn start(
        master: SocketAddr,
        key: ClockKey,
        clock: LocalClock,
        config: ClientConfig,
    ) -> io::Result<ClockClient> {
        ClockClient::start_with(master, key, clock, config, None)
    }

    /// [`ClockClient::start`] with a WebSocket fallback: `ws` sends a ping over the link,
    /// whose pongs come back through [`ClockClient::ws_sender`].
    pub fn start_with(
        master: SocketAddr,
        key: ClockKey,
        clock: LocalClock,
        config: ClientConfig,
        ws: Option<WsSend>,
    ) -> io::Result<ClockClient> {
        let bind: SocketAddr = if master.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(bind)?;
        socket.connect(master)?;
        let kernel = enable_rx_timestamps(&socket, "clock client");
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(ClientState {
            kernel_timestamps: kernel,
            ..ClientState::default()
        }));
        let (ws_arrivals, arrivals) = std::sync::mpsc::channel();
        let paths = Paths {
            socket,
            ws: ws.map(|send| (send, arrivals)),
        };
        let thread = std::thread::Builder::new()
            .name("clock-client".into())
            .spawn({
                let stop = Arc::clone(&stop);
                let state = Arc::clone(&state);
                move || ping_loop(paths, key, clock, config, stop, state)
            })?;
        info!("clock sync with the master's responder at udp {master}");
        Ok(ClockClient {
            master,
            stop,
            thread: Some(thread),
            state,
            ws_arrivals,
        })
    }

    /// Where the link hands this client's pongs from the control WebSocket.
    pub fn ws_sender(&self) -> std::sync::mpsc::Sender<WsArrival> {
        self.ws_arrivals.clone()
    }

    /// The responder this client pings.
    pub fn master(&self) -> SocketAddr {
        self.master
    }

    /// A copy of what the client knows now.
    pub fn state(&self) -> ClientState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for ClockClient {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Checks that `bytes` is the pong of ping (`session`, `seq`, `t1`); the refusal otherwise.
fn match_pong(
    bytes: &[u8],
    key: &ClockKey,
    session: u64,
    seq: u64,
    t1: i64,
) -> Result<Pong, String> {
    if bytes.len() != PONG_LEN {
        return Err(format!("{} bytes, not a pong", bytes.len()));
    }
    match Pong::decode(bytes, key) {
        Ok(p) if p.session == session && p.seq == seq && p.t1 == t1 => Ok(p),
        // A late answer to an earlier ping, or a replay: not this exchange.
        Ok(p) => Err(format!("a pong for seq {} while waiting for {seq}", p.seq)),
        Err(e) => Err(e.to_string()),
    }
}

/// One ping's exchange: the pong and the instant it arrived, or none by `deadline`.
struct Exchange<'a> {
    key: &'a ClockKey,
    session: u64,
    seq: u64,
    t1: i64,
    deadline: Instant,
    stop: &'a AtomicBool,
    refusals: &'a mut Refusals,
    state: &'a Mutex<ClientState>,
}

impl Exchange<'_> {
    fn refuse(&mut self, from: Option<SocketAddr>, why: &str) {
        self.refusals.refuse(from, &why);
        if let Ok(mut s) = self.state.lock() {
            s.refused += 1;
        }
    }

    fn over_udp(&mut self, socket: &UdpSocket, buf: &mut [u8]) -> Option<(Pong, Instant)> {
        while !self.stop.load(Ordering::Relaxed) {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let _ = socket.set_read_timeout(Some(left.min(POLL)));
            let got = match recv_stamped(socket, buf) {
                Ok(got) => got,
                Err(e) if timed_out(&e) => continue,
                Err(e) => {
                    // ECONNREFUSED: nothing listens on the master's clock port (yet).
                    debug!("clock client: {e}");
                    std::thread::sleep(left.min(POLL));
                    continue;
                }
            };
            match match_pong(&buf[..got.len], self.key, self.session, self.seq, self.t1) {
                Ok(p) => return Some((p, got.at)),
                Err(why) => self.refuse(got.from, &why),
            }
        }
        None
    }

    fn over_websocket(
        &mut self,
        arrivals: &std::sync::mpsc::Receiver<WsArrival>,
    ) -> Option<(Pong, Instant)> {
        while !self.stop.load(Ordering::Relaxed) {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let Ok(got) = arrivals.recv_timeout(left.min(POLL)) else {
                continue;
            };
            match match_pong(&got.bytes, self.key, self.session, self.seq, self.t1) {
                Ok(p) => return Some((p, got.at)),
                Err(why) => self.refuse(None, &why),
            }
        }
        None
    }
}

fn ping_loop(
    paths: Paths,
    key: ClockKey,
    clock: LocalClock,
    config: ClientConfig,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<ClientState>>,
) {
    let session = random_u64();
    let mut seq = 0u64;
    let mut estimator = ClockEstimator::new(config.estimator);
    let mut master_clock: Option<u64> = None;
    let mut fast_left = config.fast_samples;
    let mut refusals = Refusals::new("clock client");
    let mut buf = [0u8; 256];
    let mut was_answering = true;
    let mut udp_misses = 0u32;
    let mut was_ws = false;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let ws = paths.ws.as_ref().filter(|_| {
            udp_misses >= config.fallback_after.max(1) && !seq.is_multiple_of(UDP_RETRY_EVERY)
        });
        if ws.is_some() != was_ws && ws.is_some() {
            warn!(
                "clock sync: {udp_misses} pings on udp unanswered; exchanging over the control WebSocket (less accurate) and trying udp every {UDP_RETRY_EVERY}th ping"
            );
        }
        let sent_at = Instant::now();
        let t1 = clock.read(sent_at);
        let packet = Ping { session, seq, t1 }.encode(&key);
        let mut exchange = Exchange {
            key: &key,
            session,
            seq,
            t1,
            deadline: sent_at + config.timeout,
            stop: &stop,
            refusals: &mut refusals,
            state: &state,
        };
        let answer = match ws {
            Some((send, arrivals)) => {
                // Pongs of earlier, timed-out pings are not this exchange's.
                while arrivals.try_recv().is_ok() {}
                if !send.send(WsClockPacket::from_bytes(&packet)) {
                    debug!("clock client: ping not queued on the link");
                }
                exchange
                    .over_websocket(arrivals)
                    .map(|(p, at)| (p, at, Transport::WebSocket))
            }
            None => {
                if let Err(e) = paths.socket.send(&packet) {
                    debug!("clock client: ping not sent: {e}");
                }
                exchange
                    .over_udp(&paths.socket, &mut buf)
                    .map(|(p, at)| (p, at, Transport::Udp))
            }
        };
        match (&answer, ws.is_some()) {
            (Some(_), false) => {
                if udp_misses >= config.fallback_after.max(1) && paths.ws.is_some() {
                    info!("clock sync: the master's clock port answers on udp again");
                }
                udp_misses = 0;
            }
            (None, false) => udp_misses = udp_misses.saturating_add(1),
            _ => {}
        }
        was_ws = ws.is_some();
        let period = match answer {
            Some((pong, at, transport)) => {
                if !was_answering {
                    info!(
                        "clock sync: the master answers again (over {})",
                        transport.name()
                    );
                }
                was_answering = true;
                let sample = Sample {
                    t1,
                    t2: pong.t2,
                    t3: pong.t3,
                    t4: clock.read(at),
                };
                let mut stepped = false;
                if master_clock.is_some_and(|c| c != pong.master_clock) {
                    info!("clock sync: another master clock answers; starting over");
                    estimator.reset();
                    stepped = true;
                }
                master_clock = Some(pong.master_clock);
                match estimator.add(sample) {
                    Update::Stepped { jump_ns } => {
                        info!(
                            "clock sync: the master's clock stepped by {:+.3} ms (confirmed by {} samples)",
                            jump_ns as f64 / -1e6,
                            config.estimator.step_confirm
                        );
                        stepped = true;
                    }
                    Update::Suspect { residual_ns } => debug!(
                        "clock sync: a sample {:+.3} ms off the model, held back",
                        residual_ns as f64 / 1e6
                    ),
                    Update::Rejected => debug!("clock sync: sample rejected: {sample:?}"),
                    Update::Added => {}
                }
                if stepped {
                    fast_left = config.fast_samples;
                }
                if let Ok(mut s) = state.lock() {
                    s.samples += 1;
                    s.clock_steps += u64::from(stepped);
                    s.estimate = estimator.estimate();
                    s.reference = pong.show_ns.map(|show_ns| ShowReference {
                        t3: pong.t3,
                        show_ns,
                    });
                    s.last_sample = Some(sample);
                    s.answering = true;
                    s.transport = Some(transport);
                    s.version += 1;
                }
                fast_left = fast_left.saturating_sub(1);
                if fast_left > 0 {
                    config.fast_period
                } else {
                    config.slow_period
                }
            }
            None => {
                if was_answering {
                    info!(
                        "clock sync: no answer from the master's responder within {:?}; still trying",
                        config.timeout
                    );
                }
                was_answering = false;
                if let Ok(mut s) = state.lock() {
                    s.timeouts += 1;
                    s.answering = false;
                }
                // Straight on to the fallback once it is due; otherwise wait a little.
                if paths.ws.is_some() && udp_misses >= config.fallback_after.max(1) {
                    config.fast_period
                } else {
                    config.fast_period.max(Duration::from_millis(500))
                }
            }
        };
        // Sleep until the next ping, looking at the stop flag.
        let next = sent_at + period;
        loop {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() || stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(left.min(POLL));
        }
    }
    debug!("clock client stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_taken_away_is_refused_at_once() {
        let kept = ClockKey::derive("kept-key-0123456789");
        let revoked = ClockKey::derive("revoked-key-0123456789");
        let answerer = ClockAnswerer::new(
            vec![kept.clone(), revoked.clone()],
            LocalClock::system(),
            ShowTimeShare::default(),
        );
        let ping = |key: &ClockKey, seq: u64| {
            Ping {
                session: 7,
                seq,
                t1: 1,
            }
            .encode(key)
        };
        assert!(answerer.answer(&ping(&revoked, 1), Instant::now()).is_ok());
        answerer.set_keys(vec![kept.clone()]);
        assert!(matches!(
            answerer.answer(&ping(&revoked, 2), Instant::now()),
            Err(AnswerError::Packet(PacketError::UnknownKey(_)))
        ));
        assert!(answerer.answer(&ping(&kept, 3), Instant::now()).is_ok());
    }
}
