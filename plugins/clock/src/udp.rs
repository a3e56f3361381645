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
//! Where UDP to the master's clock port is blocked, the same four-timestamp exchange could run
//! over the control WebSocket (the design's `clock ping/pong`); samples would be worse (TCP
//! and the async runtime add delay on both sides) and the same filter would take them. Not
//! built yet: a receiver without a clock answer keeps following the master's 1 Hz sync
//! message as before, and says so in its status.

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

use crate::codec::{ClockKey, PONG_LEN, Ping, Pong, ReplayWindow};
use crate::estimator::{ClockEstimator, Estimate, EstimatorConfig, Update};
use crate::local::{LocalClock, realtime_ns};
use crate::sample::Sample;

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

/// The master's clock responder on its dedicated UDP port.
#[derive(Debug)]
pub struct ClockResponder {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Counters.
    pub stats: Arc<ResponderStats>,
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
        let socket = UdpSocket::bind(bind)?;
        socket.set_read_timeout(Some(POLL))?;
        let addr = socket.local_addr()?;
        let kernel_timestamps = enable_rx_timestamps(&socket, "clock responder");
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ResponderStats::default());
        let master_clock = random_u64();
        let thread = std::thread::Builder::new()
            .name("clock-responder".into())
            .spawn({
                let stop = Arc::clone(&stop);
                let stats = Arc::clone(&stats);
                move || respond(socket, keys, clock, show, master_clock, stop, stats)
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
            stats,
            kernel_timestamps,
        })
    }

    /// The bound address (the port, when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
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

fn respond(
    socket: UdpSocket,
    keys: Vec<ClockKey>,
    clock: LocalClock,
    show: ShowTimeShare,
    master_clock: u64,
    stop: Arc<AtomicBool>,
    stats: Arc<ResponderStats>,
) {
    let mut buf = [0u8; 256];
    let mut replay = ReplayWindow::new(1024);
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
        let (ping, key) = match Ping::decode(&buf[..got.len], &keys) {
            Ok(p) => p,
            Err(e) => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                refusals.refuse(Some(from), &e);
                continue;
            }
        };
        if !replay.accept(ping.session, ping.seq) {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            refusals.refuse(Some(from), &"a replayed ping (sequence already seen)");
            continue;
        }
        let t2 = clock.read(got.at);
        let now = Instant::now();
        let pong = Pong {
            session: ping.session,
            seq: ping.seq,
            t1: ping.t1,
            t2,
            t3: clock.read(now),
            master_clock,
            show_ns: show.show_ns_at(now),
        };
        match socket.send_to(&pong.encode(key), from) {
            Ok(_) => {
                stats.answered.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => debug!("clock responder: no answer to {from}: {e}"),
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
}

impl ClockClient {
    /// Starts pinging `master` with `key`, stamping with `clock`.
    pub fn start(
        master: SocketAddr,
        key: ClockKey,
        clock: LocalClock,
        config: ClientConfig,
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
        let thread = std::thread::Builder::new()
            .name("clock-client".into())
            .spawn({
                let stop = Arc::clone(&stop);
                let state = Arc::clone(&state);
                move || ping_loop(socket, key, clock, config, stop, state)
            })?;
        info!("clock sync with the master's responder at udp {master}");
        Ok(ClockClient {
            master,
            stop,
            thread: Some(thread),
            state,
        })
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

fn ping_loop(
    socket: UdpSocket,
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
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let sent_at = Instant::now();
        let t1 = clock.read(sent_at);
        let ping = Ping { session, seq, t1 };
        if let Err(e) = socket.send(&ping.encode(&key)) {
            debug!("clock client: ping not sent: {e}");
        }
        let deadline = sent_at + config.timeout;
        let mut answer = None;
        while answer.is_none() && !stop.load(Ordering::Relaxed) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let _ = socket.set_read_timeout(Some(left.min(POLL)));
            let got = match recv_stamped(&socket, &mut buf) {
                Ok(got) => got,
                Err(e) if timed_out(&e) => continue,
                Err(e) => {
                    // ECONNREFUSED: nothing listens on the master's clock port (yet).
                    debug!("clock client: {e}");
                    std::thread::sleep(left.min(POLL));
                    continue;
                }
            };
            if got.len != PONG_LEN {
                refusals.refuse(got.from, &format!("{} bytes, not a pong", got.len));
                continue;
            }
            match Pong::decode(&buf[..got.len], &key) {
                Ok(p) if p.session == session && p.seq == seq && p.t1 == t1 => {
                    answer = Some((p, got));
                }
                Ok(p) => {
                    // A late answer to an earlier ping, or a replay: not this exchange.
                    debug!(
                        "clock client: pong for seq {} while waiting for {seq}",
                        p.seq
                    );
                    if let Ok(mut s) = state.lock() {
                        s.refused += 1;
                    }
                }
                Err(e) => {
                    refusals.refuse(got.from, &e);
                    if let Ok(mut s) = state.lock() {
                        s.refused += 1;
                    }
                }
            }
        }
        let period = match answer {
            Some((pong, got)) => {
                if !was_answering {
                    info!("clock sync: the master's responder answers again");
                }
                was_answering = true;
                let sample = Sample {
                    t1,
                    t2: pong.t2,
                    t3: pong.t3,
                    t4: clock.read(got.at),
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
                config.fast_period.max(Duration::from_millis(500))
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
